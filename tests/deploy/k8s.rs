//! deploy/k8s: every manifest through `kubernetes-validate --strict` (the prometheus-operator
//! kinds, which it has no schema for, through tests/deploy/*.schema.json), and the manifests
//! agreeing with the shipped ferry.toml, the alert rules and the README's snippet.

use super::common::*;
use super::tools::*;
use ferry::config::Config as FerryConfig;
use serde_json::{Value, json};
use std::path::PathBuf;

/// The prometheus-operator kinds kubernetes-validate has no schema for, and the schema in
/// tests/deploy that checks each instead.
const CRDS: [(&str, &str); 2] = [
    ("ServiceMonitor", "tests/deploy/servicemonitor.schema.json"),
    ("PrometheusRule", "tests/deploy/prometheusrule.schema.json"),
];

/// `kubernetes-validate --strict FILES`.
fn kubernetes_validate(files: &[PathBuf]) -> std::process::Output {
    let mut cmd = tool("kubernetes-validate");
    cmd.arg("--strict").args(files);
    run(cmd)
}

/// tests/deploy/k8s_tool.py: every document of `kind` in `files` against `schema`.
fn crd_validate(kind: &str, schema: &str, files: &[&PathBuf]) -> std::process::Output {
    let mut cmd = k8s_python();
    cmd.arg(repo_path("tests/deploy/k8s_tool.py"))
        .arg("validate")
        .arg(repo_path(schema))
        .arg(kind)
        .args(files);
    run(cmd)
}

#[test]
fn kubernetes_validate_accepts_every_manifest_and_the_crds_their_schemas() {
    let files = yaml_files(&repo_path("deploy/k8s"));
    let docs = yaml_docs(&files);
    let is_crd = |d: &Value| CRDS.iter().any(|(kind, _)| d["kind"] == *kind);
    let builtin = docs.iter().filter(|(_, d)| !is_crd(d)).count();
    assert!(
        builtin >= 8,
        "ConfigMaps, Deployment, Services, DaemonSet, PodDisruptionBudget, NetworkPolicy: \
         {docs:?}"
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
    for resource in ["poddisruptionbudget/ferry-demo", "networkpolicy/ferry-demo"] {
        assert!(
            stdout.contains(&format!(" passed for resource {resource} ")),
            "{stdout}"
        );
    }
    // the only documents without a schema there are the operator's kinds ...
    let warnings: Vec<&str> = stdout.lines().filter(|l| l.starts_with("WARN")).collect();
    assert_eq!(warnings.len(), docs.len() - builtin, "{stdout}");
    for w in &warnings {
        assert!(
            CRDS.iter()
                .any(|(kind, _)| w.contains(&format!("kind {kind} "))),
            "{w}"
        );
    }
    // ... which are validated against the schemas in tests/deploy
    for (kind, schema) in CRDS {
        let of_kind: Vec<&PathBuf> = docs
            .iter()
            .filter(|(_, d)| d["kind"] == kind)
            .map(|(f, _)| f)
            .collect();
        assert!(!of_kind.is_empty(), "deploy/k8s has a {kind}");
        let out = crd_validate(kind, schema, &of_kind);
        assert!(out.status.success(), "{kind} schema: {}", both(&out));
    }

    // controls: the validators refuse a mistyped field and a bad duration
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
    for (kind, schema, file, good, wrong) in [
        (
            "ServiceMonitor",
            CRDS[0].1,
            "servicemonitor.yaml",
            "interval: 15s",
            "interval: 15 seconds",
        ),
        (
            "PrometheusRule",
            CRDS[1].1,
            "prometheusrule.yaml",
            "for: 2m",
            "fore: 2m",
        ),
    ] {
        let text =
            std::fs::read_to_string(repo_path(&format!("deploy/k8s/prometheus-operator/{file}")))
                .unwrap();
        assert!(text.contains(good), "{file}: {good}");
        let bad = dir.path().join(file);
        std::fs::write(&bad, text.replace(good, wrong)).unwrap();
        let out = crd_validate(kind, schema, &[&bad]);
        assert!(
            !out.status.success(),
            "{kind}: {wrong:?} passed: {}",
            both(&out)
        );
    }
}

/// The PrometheusRule carries deploy/prometheus/ferry-rules.yml's groups unchanged.
#[test]
fn prometheusrule_holds_the_shipped_alert_rules() {
    let rule = yaml_docs(&[repo_path(
        "deploy/k8s/prometheus-operator/prometheusrule.yaml",
    )]);
    let shipped = yaml_docs(&[repo_path("deploy/prometheus/ferry-rules.yml")]);
    assert_eq!(rule[0].1["spec"], shipped[0].1);
}

/// The shipped ferry.toml (deploy/compose, and the ConfigMap), loaded by ferry itself.
pub fn shipped_config() -> FerryConfig {
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
fn deployment_agrees_with_the_shipped_config_and_rules() {
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

    // the cache is an emptyDir at cache.dir, bigger than max_size, which the alert reads from
    // ferry_cache_max_bytes rather than a number of its own
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
        rules.contains("> 0.9 * max by (job, instance) (ferry_cache_max_bytes)")
            && !rules.contains(&cache.max_size.to_string()),
        "FerryCacheNearMaxSize compares with ferry_cache_max_bytes, not a hard-coded {}",
        cache.max_size
    );
    // the files volume is shared: the app writes it, ferry reads it
    assert_eq!(
        mount(ferry, "/srv/files")["name"],
        mount(app, "/srv/files")["name"]
    );
    assert_eq!(mount(ferry, "/srv/files")["readOnly"], true);
}

#[test]
fn services_servicemonitor_and_daemonset_fit_the_deployment() {
    let config = shipped_config();
    let admin_port = config.admin.listen.port() as u64;
    let docs = yaml_docs(&yaml_files(&repo_path("deploy/k8s")));
    let deployment = doc(&docs, "Deployment", "ferry-demo");
    // scrape annotations and the Services point at the admin port
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], admin_port.to_string());
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    let service = doc(&docs, "Service", "ferry-demo");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
    let metrics = doc(&docs, "Service", "ferry-metrics");
    assert_eq!(metrics["spec"]["ports"][0]["targetPort"], "admin");
    // ferry-metrics exposes the admin port alone, and there only what Prometheus reads: the
    // shipped config sets no admin token, so purges are off (issue 17 point 4).
    assert_eq!(metrics["spec"]["ports"].as_array().unwrap().len(), 1);
    assert_eq!(
        config.admin.token, None,
        "purge stays off in the shipped config"
    );
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
    // the ServiceMonitor selects ferry-metrics, its port, and names the job "ferry" (any name
    // would do for the rules and the dashboard; this one is what a user finds in the UI)
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
        "job=\"ferry\", the Service's app.kubernetes.io/name"
    );

    // the DaemonSet loads the tls module with the node's modprobe
    let ds = doc(&docs, "DaemonSet", "ferry-ktls-module");
    let init = ds["spec"]["template"]["spec"]["initContainers"][0].to_string();
    assert!(
        init.contains("modprobe tls") && init.contains("tcp_available_ulp"),
        "{init}"
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

/// The PodDisruptionBudget and the NetworkPolicy select the Deployment's pods; the budget
/// always leaves one serving; the policy opens ferry's HTTP port to all and its admin port
/// to Prometheus pods in the monitoring namespace only, and names only ports ferry has.
#[test]
fn disruption_budget_and_network_policy_fit_the_deployment() {
    let docs = yaml_docs(&yaml_files(&repo_path("deploy/k8s")));
    let deployment = doc(&docs, "Deployment", "ferry-demo");
    let pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .unwrap();
    let selects_the_pods = |selector: &Value, what: &str| {
        let wanted = selector["matchLabels"].as_object().unwrap();
        assert!(!wanted.is_empty(), "{what} selects every pod");
        for (k, v) in wanted {
            assert_eq!(pod_labels.get(k), Some(v), "{what} selects the pods by {k}");
        }
    };

    let pdb = doc(&docs, "PodDisruptionBudget", "ferry-demo");
    selects_the_pods(&pdb["spec"]["selector"], "PodDisruptionBudget");
    let replicas = deployment["spec"]["replicas"].as_u64().unwrap();
    let unavailable = pdb["spec"]["maxUnavailable"].as_u64().unwrap();
    assert!(
        unavailable >= 1 && unavailable < replicas,
        "a drain can proceed ({unavailable} >= 1) and one pod always serves ({unavailable} < {replicas})"
    );
    assert_eq!(pdb["spec"]["unhealthyPodEvictionPolicy"], "AlwaysAllow");

    let policy = doc(&docs, "NetworkPolicy", "ferry-demo");
    selects_the_pods(&policy["spec"]["podSelector"], "NetworkPolicy");
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress"]));
    let ferry = container(&deployment["spec"]["template"]["spec"], "ferry");
    let rules = policy["spec"]["ingress"].as_array().unwrap();
    assert_eq!(rules.len(), 2, "{rules:?}");
    let mut opened = Vec::new();
    for rule in rules {
        let ports: Vec<&str> = rule["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["port"].as_str().expect("ports by name"))
            .collect();
        for p in &ports {
            // a port ferry's container declares (port_named panics otherwise)
            port_named(ferry, p);
            opened.push((p.to_string(), rule["from"].clone()));
        }
    }
    // the HTTP port from anywhere (no `from`: every source)
    assert_eq!(opened[0], ("http".to_string(), Value::Null), "{opened:?}");
    // the admin port only from Prometheus pods of the monitoring namespace: one peer that
    // has both selectors (both must match), nothing else
    assert_eq!(
        opened[1],
        (
            "admin".to_string(),
            json!([{
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
            }])
        ),
        "{opened:?}"
    );
    assert_eq!(opened.len(), 2, "no other port is opened: {opened:?}");
}
