//! Reloading the configuration with SIGHUP (and `ferry reload`): a real ferry process, its
//! config file rewritten, a real signal. A good configuration applies to new connections
//! while what is in flight finishes byte for byte on the old one; a bad one is logged with
//! its keys and changes nothing; listeners come and go as the file says.
mod common;

use common::app::*;
use common::tls::{CertPair, TlsSection, gen_cert, leaf, presented};
use common::*;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const BIG: u64 = 64 * MIB;

/// A config file the test rewrites, in its own directory.
struct ConfigFile {
    dir: TempDir,
    path: PathBuf,
}

impl ConfigFile {
    fn new(text: &str) -> ConfigFile {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferry.toml");
        fs::write(&path, text).unwrap();
        ConfigFile { dir, path }
    }

    fn start(&self) -> Server {
        Server::start_file(&self.path, &[])
    }

    /// Rewrites the file, sends SIGHUP and waits until the reload is counted; returns its
    /// result label.
    fn reload(&self, server: &Server, text: &str) -> &'static str {
        fs::write(&self.path, text).unwrap();
        let base = server.metrics();
        server.signal("HUP");
        counted_reload(server, &base)
    }
}

/// Waits until one more reload is counted in `ferry_config_reloads_total`; its result.
fn counted_reload(server: &Server, base: &Metrics) -> &'static str {
    let name = "ferry_config_reloads_total";
    poll_until("the reload is counted", DEADLINE, || {
        let now = server.metrics();
        let delta =
            |result| now.get(name, &[("result", result)]) - base.get(name, &[("result", result)]);
        let (ok, error) = (delta("ok"), delta("error"));
        assert!(
            ok + error <= 1.0,
            "{ok} ok and {error} failed reloads, one expected"
        );
        if ok == 1.0 {
            Some("ok")
        } else if error == 1.0 {
            Some("error")
        } else {
            None
        }
    })
}

fn static_config(root: &Path) -> Config {
    Config::static_root(root)
}

/// The body of GET `target` on a new connection to `addr`.
fn get_on(addr: SocketAddr, target: &str) -> Response {
    let mut c = Conn::connect(addr);
    c.get(target, &[("Connection", "close")])
}

/// A download of `/static/big.bin` begun on `addr` and held after its first 64 KiB, with a
/// small receive buffer so that most of it is still to come.
fn begin_download(addr: SocketAddr, target: &str, pattern: &Pattern) -> (Conn, u64) {
    let mut c = Conn::connect_small_rcvbuf(addr, 64 * 1024);
    c.send(&req("GET", target, &[]));
    let r = c.read_head();
    assert_eq!((r.status, r.content_length()), (200, Some(BIG)), "{r:?}");
    let mut first = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < first.len() {
        let n = c.read_some(&mut first[got..]).expect("read body");
        assert!(n > 0, "body ended early");
        got += n;
    }
    assert!(first == pattern.bytes(0, first.len()));
    (c, got as u64)
}

fn finish_download(c: &mut Conn, pattern: &Pattern, got: u64, ctx: &str) {
    expect_pattern_body(c, pattern, got, BIG - got, ctx);
}

/// The last reload's log line.
fn reload_line(server: &Server) -> String {
    let lines = server.stderr_lines();
    lines
        .into_iter()
        .rev()
        .find(|l| l.contains("configuration reloaded"))
        .expect("a reload log line")
}

/// The `kind` ("http", "https") addresses a reload added, from its log line
/// (`listeners_added=["http ADDR", ...]`).
fn added(server: &Server, kind: &str) -> Vec<SocketAddr> {
    let line = reload_line(server);
    let list = line
        .split("listeners_added=[")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .expect("listeners_added in the reload line");
    let prefix = format!("{kind} ");
    list.split(',')
        .filter_map(|item| item.trim().trim_matches('"').strip_prefix(prefix.as_str()))
        .map(|addr| addr.parse().expect("an address"))
        .collect()
}

/// The http addresses a reload added.
fn added_listeners(server: &Server) -> Vec<SocketAddr> {
    added(server, "http")
}

#[test]
fn sighup_applies_new_roots_and_headers_while_a_download_finishes_on_the_old() {
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    fs::write(one.path().join("hello.txt"), b"one\n").unwrap();
    fs::write(two.path().join("hello.txt"), b"two\n").unwrap();
    let pattern = pattern_file(&one.path().join("big.bin"), BIG, 7);
    let file = ConfigFile::new(&static_config(one.path()).to_toml());
    let server = file.start();
    assert_eq!(server.get("/static/hello.txt").body, b"one\n");

    let (mut download, got) = begin_download(server.addr(), "/static/big.bin", &pattern);
    let mut idle = server.connect();
    let r = idle.get("/static/hello.txt", &[]);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"one\n"[..]));

    let mut new = static_config(two.path());
    new.server_extra = "add_header = [{ name = \"X-Generation\", value = \"two\" }]\n".into();
    assert_eq!(file.reload(&server, &new.to_toml()), "ok");

    let r = server.get("/static/hello.txt");
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"two\n"[..]),
        "the new root"
    );
    assert_eq!(r.header("x-generation"), Some("two"), "{:?}", r.headers);
    // The old configuration's idle keep-alive connection is closed, as nginx's old workers
    // close theirs; the download it is serving finishes whole, from the old root.
    idle.expect_closed("an idle keep-alive connection after the reload");
    finish_download(&mut download, &pattern, got, "download across the reload");
    download.expect_closed("the old configuration's connection after its response");
    let lines = server.stderr_lines();
    assert!(
        lines.iter().any(|l| l.contains("configuration reloaded")),
        "{lines:#?}"
    );
}

#[test]
fn a_bad_configuration_is_logged_with_its_keys_and_the_running_one_stays() {
    let root = tempfile::tempdir().unwrap();
    fs::write(root.path().join("hello.txt"), b"hello\n").unwrap();
    let good = static_config(root.path());
    let file = ConfigFile::new(&good.to_toml());
    let server = file.start();

    // A typo'd key and a bad value in one file: both reported, each with its key.
    let mut typo = good.clone();
    typo.server_extra = "keepalive_timout = \"5s\"\nmax_body_size = \"lots\"\n".into();
    assert_eq!(file.reload(&server, &typo.to_toml()), "error");
    assert_eq!(server.get("/static/hello.txt").body, b"hello\n");
    let lines = server.stderr_lines().join("\n");
    for key in ["server.keepalive_timout", "server.max_body_size"] {
        assert!(lines.contains(key), "{key} not named in:\n{lines}");
    }
    // A root that does not exist: a file-system check, as at start-up.
    let missing = file.dir.path().join("no-such-root");
    assert_eq!(
        file.reload(&server, &static_config(&missing).to_toml()),
        "error"
    );
    let r = server.get("/static/hello.txt");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello\n"[..]));
    let lines = server.stderr_lines().join("\n");
    assert!(lines.contains("location[0].root"), "{lines}");

    // And the good file again is taken.
    assert_eq!(file.reload(&server, &good.to_toml()), "ok");
    let m = server.metrics();
    assert_eq!(
        m.get("ferry_config_reloads_total", &[("result", "error")]),
        2.0
    );
    assert_eq!(
        m.get("ferry_config_reloads_total", &[("result", "ok")]),
        1.0
    );
}

#[test]
fn listeners_are_opened_and_closed_as_the_file_says() {
    let root = tempfile::tempdir().unwrap();
    fs::write(root.path().join("hello.txt"), b"hello\n").unwrap();
    let pattern = pattern_file(&root.path().join("big.bin"), BIG, 9);
    let mut cfg = static_config(root.path());
    let file = ConfigFile::new(&cfg.to_toml());
    let server = file.start();
    let first = server.addr();

    // Keep the first address (named as bound) and add a second one.
    cfg.listen = vec![first.to_string(), "127.0.0.1:0".into()];
    assert_eq!(file.reload(&server, &cfg.to_toml()), "ok");
    let added = added_listeners(&server);
    assert_eq!(added.len(), 1, "{added:?}");
    let second = added[0];
    assert_ne!(second, first);
    assert_eq!(get_on(first, "/static/hello.txt").body, b"hello\n");
    assert_eq!(get_on(second, "/static/hello.txt").body, b"hello\n");

    // Drop the first address while a download on it is in flight.
    let (mut download, got) = begin_download(first, "/static/big.bin", &pattern);
    cfg.listen = vec![second.to_string()];
    assert_eq!(file.reload(&server, &cfg.to_toml()), "ok");
    poll_until("the removed address refuses new clients", DEADLINE, || {
        refused(first).then_some(())
    });
    assert_eq!(get_on(second, "/static/hello.txt").body, b"hello\n");
    finish_download(
        &mut download,
        &pattern,
        got,
        "download on a removed listener",
    );
}

#[test]
fn a_proxied_request_in_flight_survives_and_new_requests_go_to_the_new_app() {
    let files = tempfile::tempdir().unwrap();
    let big = files.path().join("big.bin");
    let pattern = pattern_file(&big, BIG, 11);
    let one = App::start();
    let two = App::start();
    let address = |app: &App| format!("127.0.0.1:{}", app.port());
    let file = ConfigFile::new(&ProxyConfig::new(&address(&one)).to_toml());
    let server = file.start();
    assert_eq!(server.get("/whoami").text(), address(&one));

    let target = format!("/file?path={}", qenc(big.to_str().unwrap()));
    let (mut download, got) = begin_download(server.addr(), &target, &pattern);
    assert_eq!(
        file.reload(&server, &ProxyConfig::new(&address(&two)).to_toml()),
        "ok"
    );
    assert_eq!(
        server.get("/whoami").text(),
        address(&two),
        "the new upstream"
    );
    finish_download(
        &mut download,
        &pattern,
        got,
        "proxied download across the reload",
    );
    assert_eq!(one.requests_to(&target).len(), 1);
    // The server taken out of the file is no longer exported; the new one is.
    let m = server.metrics();
    for family in [
        "ferry_upstream_server_requests_total",
        "ferry_upstream_server_failures_total",
        "ferry_upstream_server_up",
        "ferry_upstream_server_active",
    ] {
        let servers: Vec<&str> = m
            .series(family)
            .iter()
            .map(|s| s.labels["server"].as_str())
            .collect();
        assert_eq!(servers, [address(&two).as_str()], "{family}");
    }
    let sent = [("server", address(&two))];
    let sent: Vec<(&str, &str)> = sent.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(m.get("ferry_upstream_server_requests_total", &sent), 1.0);
}

#[test]
fn ferry_reload_signals_the_pid_in_the_pid_file() {
    let root = tempfile::tempdir().unwrap();
    fs::write(root.path().join("hello.txt"), b"hello\n").unwrap();
    let mut cfg = static_config(root.path());
    let pid_path = root.path().join("ferry.pid");
    cfg.server_extra = format!("pid_file = {:?}\n", pid_path.to_str().unwrap());
    let file = ConfigFile::new(&cfg.to_toml());
    let mut server = file.start();
    let pid: u32 = fs::read_to_string(&pid_path)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, server.pid());

    // With the config file (which names the pid file), then with the pid file itself.
    let base = server.metrics();
    let out = Command::new(BIN)
        .args(["reload", "--config"])
        .arg(&file.path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(counted_reload(&server, &base), "ok");
    let base = server.metrics();
    let out = Command::new(BIN)
        .args(["reload", "--pid-file"])
        .arg(&pid_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&pid.to_string()));
    assert_eq!(counted_reload(&server, &base), "ok");

    // A pid file that is not there: a clear error, non-zero.
    let out = Command::new(BIN)
        .args(["reload", "--pid-file"])
        .arg(root.path().join("missing.pid"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("missing.pid"),
        "{out:?}"
    );

    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0));
    assert!(!pid_path.exists(), "the pid file is removed at exit");
}

/// `cfg` with `[tls]` serving `pair` on `listen`.
fn with_tls(cfg: &Config, pair: &CertPair, listen: &str) -> String {
    let mut tls = TlsSection::new(pair);
    tls.listen = vec![listen.into()];
    format!("{}{}", cfg.to_toml(), tls.to_toml())
}

#[test]
fn a_reload_adds_tls_changes_its_pair_and_removes_it() {
    let root = tempfile::tempdir().unwrap();
    fs::write(root.path().join("hello.txt"), b"hello\n").unwrap();
    let certs = tempfile::tempdir().unwrap();
    let (a, b) = (gen_cert(certs.path(), "a"), gen_cert(certs.path(), "b"));
    let cfg = static_config(root.path());
    let file = ConfigFile::new(&cfg.to_toml());
    let server = file.start();

    // [tls] added: a TLS listener opens and presents the pair.
    assert_eq!(
        file.reload(&server, &with_tls(&cfg, &a, "127.0.0.1:0")),
        "ok"
    );
    let https = added(&server, "https");
    assert_eq!(https.len(), 1, "{}", reload_line(&server));
    let https = https[0];
    assert!(
        presented(https) == leaf(&a.cert),
        "the added listener serves a"
    );
    let mut tls = common::tls::tls_connect(https, &common::tls::client_config());
    std::io::Write::write_all(
        &mut tls,
        b"GET /static/hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut tls, &mut got).unwrap();
    let got = String::from_utf8_lossy(&got);
    assert!(
        got.starts_with("HTTP/1.1 200") && got.ends_with("\r\n\r\nhello\n"),
        "{got}"
    );

    // Another pair on the same address: the listener stays, new handshakes get b.
    assert_eq!(
        file.reload(&server, &with_tls(&cfg, &b, &https.to_string())),
        "ok"
    );
    let line = reload_line(&server);
    assert!(line.contains("tls_kept=false"), "{line}");
    assert!(added(&server, "https").is_empty(), "{line}");
    assert!(presented(https) == leaf(&b.cert), "after the change: b");
    assert_eq!(server.get("/static/hello.txt").body, b"hello\n");

    // [tls] gone: its listener closes, plaintext goes on.
    assert_eq!(file.reload(&server, &cfg.to_toml()), "ok");
    poll_until("the TLS listener refuses new clients", DEADLINE, || {
        refused(https).then_some(())
    });
    assert_eq!(server.get("/static/hello.txt").body, b"hello\n");
}

#[test]
fn a_reload_moves_the_admin_listener() {
    let root = tempfile::tempdir().unwrap();
    fs::write(root.path().join("hello.txt"), b"hello\n").unwrap();
    let mut cfg = static_config(root.path());
    let file = ConfigFile::new(&cfg.to_toml());
    let server = file.start();
    let old = server.admin;

    // Another loopback address, so the configured value differs (127.0.0.1:0 again would be
    // the same listener): the reload's log line says where it went.
    cfg.admin_listen = "127.0.0.2:0".into();
    fs::write(&file.path, cfg.to_toml()).unwrap();
    server.signal("HUP");
    let moved: SocketAddr = poll_until("the reload to move the admin listener", DEADLINE, || {
        let lines = server.stderr_lines();
        let line = lines
            .iter()
            .rev()
            .find(|l| l.contains("configuration reloaded"))?;
        let addr = line
            .split("admin_moved_to=Some(\"")
            .nth(1)?
            .split('"')
            .next()?;
        Some(addr.parse().expect("an address"))
    });
    assert_eq!(moved.ip().to_string(), "127.0.0.2");
    poll_until("the old admin address refuses", DEADLINE, || {
        refused(old).then_some(())
    });
    let m = Metrics::scrape(moved);
    assert_eq!(
        m.get("ferry_config_reloads_total", &[("result", "ok")]),
        1.0
    );
    let mut c = Conn::connect(moved);
    let r = c.get("/healthz", &[("Connection", "close")]);
    assert_eq!(r.status, 200);
    assert_eq!(server.get("/static/hello.txt").body, b"hello\n");
}
