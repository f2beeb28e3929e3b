//! A real Prometheus scraping three loaded ferry processes (deploy/load.rs): every dashboard
//! query answers with at least one series, every alert rule loads and evaluates without error,
//! `promtool check metrics` accepts the live exposition, and the dashboard shows every metric
//! family ferry exports.

use super::common::*;
use super::dashboard::*;
use super::load::Load;
use super::prometheus::Prometheus;
use super::tools::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

/// The job Prometheus scrapes the ferries under: not "ferry".
const JOB: &str = "kubernetes-pods";
/// How long load runs at most before the test gives up on Prometheus seeing it all.
const LOAD_DEADLINE: Duration = Duration::from_secs(120);
/// Histogram families appear in queries under these suffixes.
const HISTOGRAM_SUFFIXES: [&str; 3] = ["_bucket", "_count", "_sum"];

#[test]
fn prometheus_scrapes_loaded_ferry_and_every_dashboard_and_rule_query_answers() {
    let load = Load::start();
    let dir = tempfile::tempdir().unwrap();
    let rules = repo_path("deploy/prometheus/ferry-rules.yml");
    // the shipped rules, and a job named as a pod-annotation scrape names it: neither the rules
    // nor the dashboard may depend on the job's name
    let config = json!({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [rules],
        "scrape_configs": [{
            "job_name": JOB,
            "static_configs": [{"targets": load.targets()}],
        }],
    });
    let prom = Prometheus::start(dir.path(), &config);
    let dash = dashboard();
    let queries: Vec<(String, String)> = panels(&dash)
        .iter()
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap().to_string();
            exprs(p)
                .into_iter()
                .map(move |e| (title.clone(), grafana_expand(&e)))
        })
        .collect();

    load_until_every_panel_has_data(&load, &prom, &queries);

    // the dashboard's `job` variable finds the job, its `instance` variable every instance
    let jobs = prom.api(
        "/api/v1/label/job/values",
        &[("match[]", "ferry_responses_total")],
    );
    assert_eq!(
        jobs["data"],
        json!([JOB]),
        "label_values(ferry_responses_total, job)"
    );
    let instances = prom.api(
        "/api/v1/label/instance/values",
        &[("match[]", "ferry_responses_total")],
    );
    let mut want = load.targets();
    want.sort();
    assert_eq!(
        instances["data"],
        json!(want),
        "label_values(ferry_responses_total, instance)"
    );

    check_rules(&prom, &rules);
    check_exposition(&load.main.metrics().raw, &queries);
    check_ferry_down(load, &prom);
}

/// One of the ferries killed: FerryDown takes it up (pending: its `for` is minutes) under
/// the job as named, and only it.
fn check_ferry_down(mut load: Load, prom: &Prometheus) {
    let gone = load.buffered.admin.to_string();
    load.buffered.signal("KILL");
    load.buffered.wait_exit(DEADLINE);
    let alerts = poll_until("FerryDown for the killed ferry", DEADLINE, || {
        let v = prom.api("/api/v1/alerts", &[]);
        let down: Vec<Value> = v["data"]["alerts"]
            .as_array()?
            .iter()
            .filter(|a| a["labels"]["alertname"] == "FerryDown")
            .cloned()
            .collect();
        (!down.is_empty()).then_some(down)
    });
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let labels = &alerts[0]["labels"];
    assert_eq!(
        (&labels["job"], &labels["instance"]),
        (&JOB.into(), &gone.into())
    );
    assert_eq!(alerts[0]["state"], "pending", "{alerts:?}");
}

/// Runs rounds of load until Prometheus has seen every kind of traffic and every dashboard
/// query returns a series (a query Prometheus refuses fails at once).
fn load_until_every_panel_has_data(load: &Load, prom: &Prometheus, queries: &[(String, String)]) {
    let deadline = Instant::now() + LOAD_DEADLINE;
    let mut rounds = 0;
    loop {
        load.round();
        rounds += 1;
        let mut missing = missing_traffic(prom);
        for (title, q) in queries {
            match prom.query(q) {
                Ok(series) if series.is_empty() => missing.push(format!("{title}: {q}")),
                Ok(_) => {}
                Err(e) => panic!("dashboard panel {title:?}: {q}: {e}"),
            }
        }
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "after {rounds} rounds of load, Prometheus still lacks:\n{}\nprometheus log:\n{}",
            missing.join("\n"),
            prom.log()
        );
        thread::sleep(Duration::from_millis(250));
    }
}

/// What Prometheus has not seen yet of the load (deploy/load.rs), each by name.
fn missing_traffic(prom: &Prometheus) -> Vec<String> {
    let mut missing = Vec::new();
    let up = prom.query("sum(up)").unwrap();
    if up.first().and_then(|s| s["value"][1].as_str()) != Some("3") {
        missing.push("all three targets up".to_string());
    }
    // over TLS the body goes on kTLS where the kernel has the `tls` module
    let tls_path = if super::common::tls::kernel_has_ktls() {
        "ktls_sendfile"
    } else {
        "tls_buffered"
    };
    let wanted: [(&str, &str, &[&str]); 6] = [
        (
            "sum by (path) (ferry_responses_total) > 0",
            "path",
            &[
                "sendfile", "splice", "buffered", "memory", "directio", tls_path,
            ],
        ),
        (
            "sum by (source) (ferry_responses_total) > 0",
            "source",
            &["static", "upstream", "accel", "cache"],
        ),
        (
            "sum by (code) (ferry_responses_total) > 0",
            "code",
            &["1xx", "2xx", "4xx", "5xx"],
        ),
        (
            "sum by (outcome) (ferry_upstream_requests_total) > 0",
            "outcome",
            &["ok", "bad_response"],
        ),
        (
            "sum by (result) (ferry_tls_handshakes_total) > 0",
            "result",
            &["ok"],
        ),
        (
            "sum by (result) (ferry_cache_requests_total) > 0",
            "result",
            &["miss", "hit"],
        ),
    ];
    for (query, label, values) in wanted {
        let seen = prom.label_set(query, label);
        for v in values {
            if !seen.iter().any(|s| s == v) {
                missing.push(format!("{label}=\"{v}\" in {query}"));
            }
        }
    }
    // rates need two scrapes with traffic between them
    let rate = prom
        .query("sum(rate(ferry_zero_copy_bytes_total[30s])) > 0")
        .unwrap();
    if rate.is_empty() {
        missing.push("a non-zero zero-copy byte rate".to_string());
    }
    missing
}

/// Every alert rule of `rules` loaded by Prometheus, evaluated without error, and its query
/// answering on its own.
fn check_rules(prom: &Prometheus, rules: &Path) {
    let names: Vec<String> = std::fs::read_to_string(rules)
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: ").map(str::to_string))
        .collect();
    let loaded = poll_until("every rule evaluated", DEADLINE, || {
        let v = prom.api("/api/v1/rules", &[]);
        let rules: Vec<Value> = v["data"]["groups"]
            .as_array()?
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        // an unevaluated rule has the zero time, 0001-01-01T00:00:00Z
        let evaluated = rules.len() == names.len()
            && rules.iter().all(|r| {
                !r["lastEvaluation"]
                    .as_str()
                    .unwrap_or("0001")
                    .starts_with("0001")
            });
        evaluated.then_some(rules)
    });
    for r in &loaded {
        let name = r["name"].as_str().unwrap();
        assert!(names.iter().any(|n| n == name), "unexpected rule {name}");
        assert_eq!(r["health"], "ok", "{name}: {}", r["lastError"]);
        let q = r["query"].as_str().unwrap();
        if let Err(e) = prom.query(q) {
            panic!("rule {name}: {q}: {e}");
        }
    }
}

/// promtool lints the live exposition `text`; the dashboard's `queries` show every family in
/// it and name no other (but Prometheus's own `up`).
fn check_exposition(text: &str, queries: &[(String, String)]) {
    let mut cmd = tool("promtool");
    cmd.args(["check", "metrics"]);
    let out = run_with_stdin(cmd, text.as_bytes());
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}",
        both(&out)
    );
    let used: BTreeSet<String> = queries.iter().flat_map(|(_, q)| metric_names(q)).collect();
    let fams = families(text);
    assert!(fams.len() >= 20, "{fams:?}");
    for (family, kind) in &fams {
        let shown = match kind.as_str() {
            "histogram" => HISTOGRAM_SUFFIXES
                .iter()
                .any(|s| used.contains(&format!("{family}{s}"))),
            _ => used.contains(family),
        };
        assert!(
            shown,
            "no dashboard panel shows {family} ({kind}); queried: {used:?}"
        );
    }
    for name in &used {
        let known = name == "up"
            || fams.iter().any(|(f, _)| {
                name == f
                    || HISTOGRAM_SUFFIXES
                        .iter()
                        .any(|s| *name == format!("{f}{s}"))
            });
        assert!(
            known,
            "the dashboard queries {name}, which ferry does not export"
        );
    }
}
