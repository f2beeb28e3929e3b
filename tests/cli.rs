//! Command line: --version, `check`, both ways to pass --config, several listeners, and the
//! embedded default config serving ./public.
mod common;

use common::*;
use std::fs;
use std::process::{Command, Output, Stdio};

fn run(args: &[&str]) -> Output {
    // bounded: `check` and `--version` must not start a server
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ferry");
    let deadline = std::time::Instant::now() + DEADLINE;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("ferry {args:?} did not exit within {DEADLINE:?}: {out:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn version() {
    let out = run(&["--version"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("ferry {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn check_accepts_a_valid_config() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ok.toml");
    fs::write(&path, Config::static_root(tmp.path()).to_toml()).unwrap();
    let out = run(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_lists_every_error_with_its_key() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bad.toml");
    let toml = Config::static_root(tmp.path())
        .to_toml()
        .replace(
            "header_timeout = \"10s\"",
            "header_timeout = \"ten seconds\"",
        )
        .replace(
            "access_log = \"text\"",
            "access_log = \"xml\"\nlistn = [\"127.0.0.1:0\"]",
        )
        .replace("send_path = \"auto\"", "send_path = \"teleport\"");
    fs::write(&path, &toml).unwrap();
    let out = run(&["check", "--config", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(64),
        "stderr: {stderr}\nconfig:\n{toml}"
    );
    let lines: Vec<&str> = stderr.lines().map(str::trim).collect();
    let mut missing = Vec::new();
    for key in [
        "server.listn",
        "server.header_timeout",
        "server.access_log",
        "io.send_path",
    ] {
        let prefix = format!("{key}: ");
        match lines.iter().find(|l| l.starts_with(&prefix)) {
            Some(l) if l.len() > prefix.len() => {}
            _ => missing.push(key),
        }
    }
    assert!(
        missing.is_empty(),
        "no `KEY: message` line for {missing:?} in stderr:\n{stderr}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("server.listn: ") && l.contains("unknown key")),
        "unknown key message: {stderr}"
    );
}

#[test]
fn check_rejects_unparseable_toml_and_missing_file() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("broken.toml");
    fs::write(&path, "[server\nlisten = = 3\n").unwrap();
    let out = run(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(!out.stderr.is_empty(), "an error message is printed");
    let out = run(&[
        "check",
        "--config",
        tmp.path().join("nope.toml").to_str().unwrap(),
    ]);
    assert!(
        !out.status.success(),
        "missing config file must fail: {out:?}"
    );
    assert!(!out.stderr.is_empty());
}

fn serve_hello(args: &[&str], cfg: &Config, dir: TempDir) {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    let server = Server::launch(cmd, cfg.listen.len(), Some(dir));
    assert_eq!(
        server.http.len(),
        cfg.listen.len(),
        "one `listening http` line per listen entry"
    );
    for addr in &server.http {
        let mut c = Conn::connect(*addr);
        let r = c.get("/static/hello.txt", &[]);
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"hi\n"[..]),
            "listener {addr}"
        );
    }
    assert_eq!(server.admin_get("/healthz").status, 200);
}

#[test]
fn serve_subcommand_and_bare_config_flag() {
    for form in [&["serve", "--config"][..], &["--config"][..]] {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("hello.txt"), b"hi\n").unwrap();
        let cfg = Config::static_root(tmp.path());
        let path = tmp.path().join("ferry.toml");
        fs::write(&path, cfg.to_toml()).unwrap();
        let mut args = form.to_vec();
        args.push(path.to_str().unwrap());
        serve_hello(&args, &cfg, tmp);
    }
}

#[test]
fn two_listeners() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("hello.txt"), b"hi\n").unwrap();
    let mut cfg = Config::static_root(tmp.path());
    cfg.listen = vec!["127.0.0.1:0".into(), "127.0.0.1:0".into()];
    let path = tmp.path().join("ferry.toml");
    fs::write(&path, cfg.to_toml()).unwrap();
    serve_hello(&["serve", "--config", path.to_str().unwrap()], &cfg, tmp);
}

#[test]
fn embedded_default_serves_public_dir() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir(tmp.path().join("public")).unwrap();
    let index = b"<h1>embedded default</h1>\n";
    fs::write(tmp.path().join("public/index.html"), index).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.current_dir(tmp.path())
        .env("FERRY__SERVER__LISTEN", "127.0.0.1:0")
        .env("FERRY__ADMIN__LISTEN", "127.0.0.1:0");
    let server = Server::launch(cmd, 1, Some(tmp));
    let r = server.get("/index.html");
    assert_eq!((r.status, r.body.as_slice()), (200, &index[..]));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let r = server.get("/");
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &index[..]),
        "/ serves public/index.html"
    );
}
