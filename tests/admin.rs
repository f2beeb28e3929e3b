//! The admin listener's guard (issue 17 point 4): `POST /cache/purge` needs the bearer token
//! from `admin.token_file` (401 with a `WWW-Authenticate` challenge without it or with another
//! one, raw bytes and curl alike), is off (403) when no token file is configured, and
//! /metrics, /healthz and /readyz stay open either way; a token file that is missing or empty
//! stops `ferry check` and `ferry serve` with the key named.
mod common;

use common::*;
use std::fs;
use std::path::Path;
use std::process::Command;

const TOKEN: &str = "9f2c4e6a8b0d1f3e5a7c9e1b3d5f7a9c";

/// A static root with a cache, and `admin.token_file` set to `token_file` when given.
fn config_toml(dir: &Path, token_file: Option<&Path>) -> String {
    let cfg = Config::static_root(dir);
    let mut toml = cfg.to_toml();
    if let Some(file) = token_file {
        let admin = format!("[admin]\nlisten = {:?}\n", cfg.admin_listen);
        assert!(toml.contains(&admin), "{toml}");
        let with_token = format!("{admin}token_file = {:?}\n", file.to_str().unwrap());
        toml = toml.replace(&admin, &with_token);
    }
    toml.push_str(&format!(
        "\n[cache]\ndir = {:?}\n",
        dir.join("cache").to_str().unwrap()
    ));
    toml
}

fn start(dir: TempDir, token_file: Option<&Path>) -> Server {
    let path = dir.path().join("ferry.toml");
    fs::write(&path, config_toml(dir.path(), token_file)).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("serve").arg("--config").arg(&path);
    Server::launch(cmd, 1, Some(dir))
}

/// `POST /cache/purge?prefix=/` on a raw connection, with `headers` besides the framing.
fn purge(server: &Server, headers: &[(&str, &str)]) -> Response {
    let mut all = vec![("Connection", "close"), ("Content-Length", "0")];
    all.extend_from_slice(headers);
    let mut c = Conn::connect(server.admin);
    c.send(&req("POST", "/cache/purge?prefix=/", &all));
    c.read_response("POST")
}

fn assert_reading_endpoints_open(server: &Server) {
    for (path, body) in [("/healthz", "ok\n"), ("/readyz", "ready\n")] {
        let r = server.admin_get(path);
        assert_eq!((r.status, r.text().as_str()), (200, body), "{path}");
    }
    let metrics = server.admin_get("/metrics");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.text().contains("ferry_connections_total"),
        "{}",
        metrics.text()
    );
}

#[test]
fn purge_needs_the_bearer_token_and_reading_endpoints_stay_open() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin-token");
    // A trailing newline, as `echo` or a Kubernetes Secret written by hand leaves it.
    fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let server = start(dir, Some(&token_file));

    let r = purge(&server, &[]);
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"ferry admin\"")
    );
    assert_eq!(
        r.text(),
        "unauthorized: send Authorization: Bearer <the token in admin.token_file>\n"
    );

    let wrong_token = format!("Bearer {}x", &TOKEN[..TOKEN.len() - 1]);
    for wrong in [
        wrong_token.as_str(),
        &format!("Bearer {TOKEN}{TOKEN}"),
        &format!("Basic {TOKEN}"),
        "Bearer ",
    ] {
        let r = purge(&server, &[("Authorization", wrong)]);
        assert_eq!(r.status, 401, "Authorization: {wrong}");
        assert!(
            r.header("www-authenticate")
                .is_some_and(|v| v.starts_with("Bearer realm=\"ferry admin\"")),
            "Authorization: {wrong}: {:?}",
            r.header("www-authenticate")
        );
    }
    let r = purge(&server, &[("Authorization", &wrong_token)]);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"ferry admin\", error=\"invalid_token\"")
    );

    let bearer = format!("Bearer {TOKEN}");
    let r = purge(&server, &[("Authorization", &bearer)]);
    assert_eq!((r.status, r.text().as_str()), (200, "purged 0\n"));
    // The scheme is case-insensitive (RFC 9110 §11.1).
    let r = purge(&server, &[("Authorization", &format!("bearer {TOKEN}"))]);
    assert_eq!((r.status, r.text().as_str()), (200, "purged 0\n"));
    // The token is checked before the method: a GET learns nothing without it.
    let r = server.admin_get("/cache/purge?prefix=/");
    assert_eq!(r.status, 401);

    // The same with curl, the way the README shows it.
    let url = format!("http://{}/cache/purge?prefix=/", server.admin);
    let out = curl()
        .args(["-s", "-X", "POST", "-w", "%{http_code}", "-H"])
        .arg(format!("Authorization: Bearer {TOKEN}"))
        .arg(&url)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "purged 0\n200");
    let out = curl()
        .args(["-s", "-o", "/dev/null", "-X", "POST", "-w", "%{http_code}"])
        .arg(&url)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "401");

    assert_reading_endpoints_open(&server);
}

#[test]
fn purge_is_off_without_a_token_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir, None);
    for headers in [&[][..], &[("Authorization", "Bearer anything")][..]] {
        let r = purge(&server, headers);
        assert_eq!(
            (r.status, r.text().as_str()),
            (
                403,
                "forbidden: state-changing admin calls are off; set admin.token_file to allow them\n"
            ),
            "{headers:?}"
        );
    }
    assert_reading_endpoints_open(&server);
}

/// A token file that cannot be used is a configuration error with the key (and exit 64),
/// for `check` and `serve` alike; nothing is served.
#[test]
fn a_missing_or_empty_token_file_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-token");
    let empty = dir.path().join("empty-token");
    fs::write(&empty, "\n  \n").unwrap();
    let cases = [
        (&missing, format!("cannot read {}", missing.display())),
        (
            &empty,
            format!("{} is empty: write the token into it", empty.display()),
        ),
    ];
    for (file, want) in cases {
        let path = dir.path().join("ferry.toml");
        fs::write(&path, config_toml(dir.path(), Some(file))).unwrap();
        for command in ["check", "serve"] {
            let out = Command::new(BIN)
                .args([command, "--config", path.to_str().unwrap()])
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(64), "{command}: {stderr}");
            assert!(
                stderr
                    .lines()
                    .any(|l| l.contains("admin.token_file: ") && l.contains(&want)),
                "{command}: want admin.token_file: {want}\n{stderr}"
            );
            assert!(!stderr.contains("listening"), "{stderr}");
        }
    }
}

/// A token file rewritten with a new token is read again by a reload (SIGHUP): the old token
/// stops opening purges, the new one does.
#[test]
fn a_reload_takes_a_rotated_token() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin-token");
    fs::write(&token_file, TOKEN).unwrap();
    let server = start(dir, Some(&token_file));
    let bearer = |token: &str| format!("Bearer {token}");
    assert_eq!(
        purge(&server, &[("Authorization", &bearer(TOKEN))]).status,
        200
    );

    let rotated = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
    fs::write(&token_file, rotated).unwrap();
    let reloads = |m: &Metrics| m.get("ferry_config_reloads_total", &[("result", "ok")]);
    let before = reloads(&server.metrics());
    server.signal("HUP");
    poll_until("the reload is counted", DEADLINE, || {
        (reloads(&server.metrics()) > before).then_some(())
    });

    let old = purge(&server, &[("Authorization", &bearer(TOKEN))]);
    assert_eq!(old.status, 401, "{}", old.text());
    let new = purge(&server, &[("Authorization", &bearer(rotated))]);
    assert_eq!(new.status, 200, "{}", new.text());
}
