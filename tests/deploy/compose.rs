//! deploy/compose and the shipped ferry.toml: the compose project holding the same sidecar shape
//! as the pod (checked against ferry's own config loader), and the shipped config serving the
//! shipped demo app for real.

use super::common::*;
use super::k8s::shipped_config;
use super::tools::*;
use ferry::config::parse_duration;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn compose_file_agrees_with_the_shipped_config() {
    let config = shipped_config();
    let http_port = config.server.listen[0].port() as u64;
    let admin_port = config.admin.listen.port() as u64;
    let cache = config
        .cache
        .as_ref()
        .expect("the shipped config has a [cache]");
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
    // health checks: ferry's own binary (the image has no shell or curl) on the mounted
    // config, the app's python; ferry waits for a healthy app, the load for a healthy ferry
    let dockerfile = std::fs::read_to_string(repo_path("Dockerfile")).unwrap();
    let entrypoint = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ENTRYPOINT [\""))
        .and_then(|l| l.split('"').next())
        .expect("the Dockerfile's ENTRYPOINT");
    assert_eq!(
        ferry["healthcheck"]["test"],
        serde_json::json!([
            "CMD",
            entrypoint,
            "health",
            "--config",
            "/etc/ferry/ferry.toml"
        ])
    );
    let (ferry_check, app_check) = healthchecks();
    assert_eq!(
        ferry_check[1..],
        ["health", "--config", "/etc/ferry/ferry.toml"]
    );
    assert!(app_check[0] == "python3", "{app_check:?}");
    for (service, on) in [("ferry", "app"), ("load", "ferry")] {
        assert_eq!(
            services[service]["depends_on"][on]["condition"], "service_healthy",
            "{service} waits for a healthy {on}"
        );
    }
    for service in ["ferry", "app"] {
        let check = &services[service]["healthcheck"];
        for key in ["interval", "timeout", "start_period"] {
            parse_duration(check[key].as_str().unwrap())
                .unwrap_or_else(|e| panic!("{service}: healthcheck.{key}: {e}"));
        }
    }
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

/// The health check commands of the compose file (after `CMD`): ferry's, the app's.
fn healthchecks() -> (Vec<String>, Vec<String>) {
    let compose = yaml_docs(&[repo_path("deploy/compose/compose.yaml")]);
    let services = &compose[0].1["services"];
    let test = |service: &str| -> Vec<String> {
        let test = services[service]["healthcheck"]["test"].as_array().unwrap();
        assert_eq!(test[0], "CMD", "{service}: exec form, no shell");
        test[1..]
            .iter()
            .map(|w| w.as_str().unwrap().to_string())
            .collect()
    };
    (test("ferry"), test("app"))
}

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
    let mut app =
        super::common::tls::KillOnDrop(app.spawn().expect("spawn python3 deploy/app/app.py"));
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

    // the compose health checks, run here as the containers run them: ferry's with the
    // image's admin address (0.0.0.0, asked on loopback), the app's against this app
    let (ferry_check, app_check) = healthchecks();
    let config_path = dir.path().join("ferry.toml");
    let args: Vec<String> = ferry_check[1..]
        .iter()
        .map(|a| match a.as_str() {
            "/etc/ferry/ferry.toml" => config_path.display().to_string(),
            a => a.to_string(),
        })
        .collect();
    let mut health = Command::new(BIN);
    health.args(&args).env(
        "FERRY__ADMIN__LISTEN",
        format!("0.0.0.0:{}", server.admin.port()),
    );
    let out = run(health);
    assert!(out.status.success(), "ferry's health check: {}", both(&out));
    let app_health = |path: &str| {
        let mut cmd = Command::new(&app_check[0]);
        cmd.args(
            app_check[1..]
                .iter()
                .map(|a| a.replace("127.0.0.1:3000/healthz", &format!("{app_addr}{path}"))),
        );
        run(cmd)
    };
    let out = app_health("/healthz");
    assert!(
        out.status.success(),
        "the app's health check: {}",
        both(&out)
    );
    // control: the same check fails on a path the app answers 404
    assert!(!app_health("/missing").status.success());
}
