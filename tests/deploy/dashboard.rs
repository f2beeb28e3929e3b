//! deploy/grafana/ferry.json: its shape (the panels the issue lists, the variables, ids and
//! layout), and the helpers deploy/live.rs uses to ask Prometheus every one of its queries.

use super::tools::*;
use serde_json::Value;
use std::collections::BTreeSet;

pub fn dashboard() -> Value {
    let text = std::fs::read_to_string(repo_path("deploy/grafana/ferry.json")).unwrap();
    serde_json::from_str(&text).expect("deploy/grafana/ferry.json is JSON")
}

/// Every panel with queries (rows excluded), with its title.
pub fn panels(d: &Value) -> Vec<&Value> {
    d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] != "row")
        .collect()
}

pub fn exprs(panel: &Value) -> Vec<String> {
    panel["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect()
}

/// An expression as Prometheus gets it: Grafana's variables replaced by what Grafana would
/// send with every instance selected (`allValue`) and a window holding several scrapes.
pub fn grafana_expand(expr: &str) -> String {
    let out = expr
        .replace("$__rate_interval", "30s")
        .replace("$job", ".*")
        .replace("$instance", ".*");
    assert!(!out.contains('$'), "an unexpanded variable in {expr}");
    out
}

#[test]
fn dashboard_has_the_panels_operators_need() {
    let d = dashboard();
    let titles: Vec<&str> = panels(&d)
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for want in [
        "Responses/s by path",
        "Body bytes/s by path",
        "Zero-copy share of body bytes",
        "Fallbacks/s by reason",
        "Request latency by source (p50, p95, p99)",
        "Upstream requests/s by outcome",
        "Upstream latency (p50, p95, p99)",
        "Cache hit ratio",
        "Cache size",
        "Cache evictions/s",
        "Open connections by transport",
        "TLS handshakes/s and PROXY protocol headers/s",
    ] {
        assert!(titles.contains(&want), "no panel {want:?} in {titles:?}");
    }
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(vars, ["datasource", "job", "instance"]);
    // the job variable lists the jobs ferry is scraped under, whatever they are called, and
    // the instances are those of the jobs chosen
    let var = |name: &str| {
        d["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap()
            .clone()
    };
    let (job, instance) = (var("job"), var("instance"));
    assert_eq!(
        job["query"]["query"],
        "label_values(ferry_responses_total, job)"
    );
    assert_eq!(
        instance["query"]["query"],
        "label_values(ferry_responses_total{job=~\"$job\"}, instance)"
    );
    for v in [&job, &instance] {
        assert_eq!(
            (&v["multi"], &v["includeAll"], &v["allValue"]),
            (&true.into(), &true.into(), &".*".into()),
            "{}",
            v["name"]
        );
    }
    let mut ids = BTreeSet::new();
    for p in d["panels"].as_array().unwrap() {
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "duplicate id {}",
            p["id"]
        );
        let g = &p["gridPos"];
        assert!(
            g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap() <= 24,
            "{}",
            p["title"]
        );
        if p["type"] == "row" {
            continue;
        }
        // the data source is the variable, so the dashboard works on any Prometheus
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        let exprs = exprs(p);
        assert!(!exprs.is_empty(), "{} has no query", p["title"]);
        for e in &exprs {
            // every selector of every query: the chosen jobs and instances
            let selectors = e.matches('{').count();
            let both = e.matches("{job=~\"$job\",instance=~\"$instance\"").count();
            assert_eq!(
                selectors, both,
                "{e}: a selector without $job and $instance"
            );
        }
    }
    // the per-latency panels show p50, p95 and p99
    for title in [
        "Request latency by source (p50, p95, p99)",
        "Upstream latency (p50, p95, p99)",
    ] {
        let p = panels(&d)
            .into_iter()
            .find(|p| p["title"] == title)
            .unwrap();
        let joined = exprs(p).join("\n");
        for q in [
            "histogram_quantile(0.5,",
            "histogram_quantile(0.95,",
            "histogram_quantile(0.99,",
        ] {
            assert!(joined.contains(q), "{title}: {q}");
        }
    }
}

/// PromQL words followed by a list of label names.
const LABEL_LISTS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
/// PromQL words that are not metric names (aggregations before `by`, binary operators).
const KEYWORDS: [&str; 18] = [
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "by",
    "without", "on", "ignoring", "and", "or", "unless", "bool",
];

/// Metric names in a PromQL expression (identifiers that are not functions, keywords or
/// label names).
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = expr.as_bytes();
    let mut i = 0;
    let mut in_braces = false;
    while i < b.len() {
        let c = b[i];
        // skip strings and range selectors ("hit|stale", [30s])
        if c == b'"' || c == b'[' {
            let close = if c == b'"' { b'"' } else { b']' };
            i += 1;
            while i < b.len() && b[i] != close {
                i += 1;
            }
            i += 1;
            continue;
        }
        let before = expr[..i].trim_end();
        if c == b'{' || c == b'(' && LABEL_LISTS.iter().any(|k| before.ends_with(k)) {
            in_braces = true;
        }
        if c == b'}' || c == b')' {
            in_braces = false;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                i += 1;
            }
            let word = &expr[start..i];
            let next = expr[i..].trim_start();
            if !in_braces
                && !next.starts_with('(')
                && !next.starts_with('=')
                && !KEYWORDS.contains(&word)
            {
                out.insert(word.to_string());
            }
            continue;
        }
        i += 1;
    }
    out
}

/// Every metric family in a /metrics text, with its type.
pub fn families(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let mut w = l.split_whitespace();
            (
                w.next().unwrap().to_string(),
                w.next().unwrap_or("").to_string(),
            )
        })
        .collect()
}
