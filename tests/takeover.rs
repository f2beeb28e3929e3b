//! Upgrading without a gap: a new ferry process takes the listening sockets of a running one
//! (`ferry serve --upgrade-from SOCKET`, over `server.upgrade_socket`) while clients keep
//! connecting, and the old one drains; and a second ferry started by mistake on an address
//! that is already served is refused. (tests/upgrade.rs is about HTTP's Upgrade header.)
mod common;

use common::*;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

const BIG: u64 = 64 * MIB;
const HELLO: &[u8] = b"hello, upgrade\n";

/// Runs `ferry serve --config PATH` expecting it to refuse to start; its exit status and
/// stderr. Killed (and the test failed) if it is still running after the deadline.
fn run_refused(config: &Config, dir: &Path) -> (Option<i32>, String) {
    let path = dir.join("second.toml");
    fs::write(&path, config.to_toml()).unwrap();
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = poll_until("the second ferry exits", DEADLINE, || {
        child.try_wait().unwrap()
    });
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let _ = child.kill();
    (status.code(), stderr)
}

#[test]
fn a_second_ferry_on_a_served_address_exits_naming_the_address_and_key() {
    let root = tempfile::tempdir().unwrap();
    fs::write(root.path().join("hello.txt"), HELLO).unwrap();
    let first = Server::start(&Config::static_root(root.path()));

    let mut second = Config::static_root(root.path());
    second.listen = vec![first.addr().to_string()];
    let (code, stderr) = run_refused(&second, root.path());
    assert_eq!(code, Some(1), "{stderr}");
    let wanted = format!("server.listen {}: address already in use", first.addr());
    assert!(stderr.contains(&wanted), "{stderr}");

    let mut second = Config::static_root(root.path());
    second.admin_listen = first.admin.to_string();
    let (code, stderr) = run_refused(&second, root.path());
    assert_eq!(code, Some(1), "{stderr}");
    let wanted = format!("admin.listen {}: address already in use", first.admin);
    assert!(stderr.contains(&wanted), "{stderr}");

    // The first one never shared its port: every request is still its own.
    let base = first.metrics();
    for _ in 0..20 {
        assert_eq!(first.get("/static/hello.txt").body, HELLO);
    }
    let served = wait_delta(
        &first,
        &base,
        "ferry_responses_total",
        &[("code", "2xx")],
        20.0,
    );
    assert_eq!(served, 20.0);
}

/// Clients each making requests on new connections until told to stop, counting what they
/// got; every failure is kept with its reason.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    threads: Vec<thread::JoinHandle<Vec<String>>>,
}

impl Load {
    fn start(addr: SocketAddr, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let threads = (0..clients)
            .map(|_| {
                let (stop, ok) = (stop.clone(), ok.clone());
                thread::spawn(move || {
                    let mut failures = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        match one_request(addr) {
                            Ok(()) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(why) => failures.push(why),
                        }
                    }
                    failures
                })
            })
            .collect();
        Load { stop, ok, threads }
    }

    fn served(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Waits until `more` requests beyond now have succeeded.
    fn wait_for(&self, more: u64) {
        let target = self.served() + more;
        poll_until("clients keep being served", DEADLINE, || {
            (self.served() >= target).then_some(())
        });
    }

    fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let failures = self
            .threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        (self.ok.load(Ordering::Relaxed), failures)
    }
}

fn one_request(addr: SocketAddr) -> Result<(), String> {
    let stream = std::net::TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .map_err(|e| format!("connect: {e}"))?;
    let mut c = Conn::from_stream(stream);
    c.try_send(&req("GET", "/static/hello.txt", &[("Connection", "close")]))
        .map_err(|e| format!("send: {e}"))?;
    let r = c
        .try_read_response("GET")
        .map_err(|e| format!("response: {e}"))?;
    if r.status != 200 || r.body != HELLO {
        return Err(format!("got {} {:?}", r.status, r.text()));
    }
    Ok(())
}

#[test]
fn new_processes_take_over_with_no_failed_request_while_the_old_drain() {
    let root = tempfile::tempdir().unwrap();
    fs::write(root.path().join("hello.txt"), HELLO).unwrap();
    let pattern = pattern_file(&root.path().join("big.bin"), BIG, 3);
    let socket = root.path().join("upgrade.sock");
    let pid_file = root.path().join("ferry.pid");
    let mut cfg = Config::static_root(root.path());
    cfg.server_extra = format!(
        "upgrade_socket = {:?}\npid_file = {:?}\n",
        socket.to_str().unwrap(),
        pid_file.to_str().unwrap()
    );
    let path = root.path().join("ferry.toml");
    fs::write(&path, cfg.to_toml()).unwrap();
    let mut old = Server::start_file(&path, &[]);
    let addr = old.addr();

    // A large download in flight on the old process, and clients hammering the address.
    let mut download = Conn::connect_small_rcvbuf(addr, 64 * 1024);
    download.send(&req("GET", "/static/big.bin", &[]));
    let head = download.read_head();
    assert_eq!((head.status, head.content_length()), (200, Some(BIG)));
    let load = Load::start(addr, 4);
    load.wait_for(50);

    let upgrade_from = socket.to_str().unwrap();
    let mut new = Server::start_file(&path, &["--upgrade-from", upgrade_from]);
    assert_eq!(new.addr(), addr, "the new process serves the same address");
    assert_eq!(new.admin, old.admin, "and the same admin address");
    // The old process stops accepting and waits for its download; the clients go on.
    load.wait_for(50);
    assert!(
        old.try_wait().is_none(),
        "the old process drains its download first"
    );
    expect_pattern_body(
        &mut download,
        &pattern,
        0,
        BIG,
        "download across the take-over",
    );
    let status = old.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "the old process exits cleanly");
    assert_eq!(
        fs::read_to_string(&pid_file).unwrap().trim(),
        new.pid().to_string(),
        "the pid file names the new process, and the old one left it alone"
    );
    let base = new.metrics();
    load.wait_for(50);
    assert!(
        new.metrics()
            .get("ferry_responses_total", &[("code", "2xx")])
            > base.get("ferry_responses_total", &[("code", "2xx")]),
        "the new process serves"
    );

    // The upgrade socket went over too: a third process takes over from the second.
    let third = Server::start_file(&path, &["--upgrade-from", upgrade_from]);
    assert_eq!(third.addr(), addr);
    let status = new.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0));
    load.wait_for(50);

    let (served, failures) = load.finish();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}",
        failures.len(),
        served as usize + failures.len(),
        &failures[..failures.len().min(10)]
    );
    let lines = old.stderr_lines().join("\n");
    assert!(
        lines.contains("the new process serves; draining"),
        "{lines}"
    );
}

#[test]
fn a_take_over_that_fails_leaves_the_old_process_serving() {
    let root = tempfile::tempdir().unwrap();
    fs::write(root.path().join("hello.txt"), HELLO).unwrap();
    let socket = root.path().join("upgrade.sock");
    let mut cfg = Config::static_root(root.path());
    cfg.server_extra = format!("upgrade_socket = {:?}\n", socket.to_str().unwrap());
    let path = root.path().join("ferry.toml");
    fs::write(&path, cfg.to_toml()).unwrap();
    let mut old = Server::start_file(&path, &[]);
    let load = Load::start(old.addr(), 2);
    load.wait_for(20);

    // The new process receives the sockets, keeps the old address, and then cannot bind a
    // second address another socket holds: it exits without saying `ready`.
    let blocker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut bad = cfg.clone();
    bad.listen = vec![
        "127.0.0.1:0".into(),
        blocker.local_addr().unwrap().to_string(),
    ];
    let bad_path = root.path().join("bad.toml");
    fs::write(&bad_path, bad.to_toml()).unwrap();
    let out = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(&bad_path)
        .arg("--upgrade-from")
        .arg(&socket)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("received the running process's listeners"),
        "{stderr}"
    );
    assert!(stderr.contains("address already in use"), "{stderr}");
    poll_until(
        "the old process logs the failed take-over",
        DEADLINE,
        || {
            let lines = old.stderr_lines().join("\n");
            lines.contains("take-over did not complete").then_some(())
        },
    );

    load.wait_for(20);
    assert!(old.try_wait().is_none(), "the old process still runs");
    let (_, failures) = load.finish();
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(old.get("/static/hello.txt").body, HELLO);
}

#[test]
fn a_connection_accepted_before_the_drain_has_its_first_request_served() {
    let root = tempfile::tempdir().unwrap();
    fs::write(root.path().join("hello.txt"), HELLO).unwrap();
    let socket = root.path().join("upgrade.sock");
    let mut cfg = Config::static_root(root.path());
    cfg.server_extra = format!("upgrade_socket = {:?}\n", socket.to_str().unwrap());
    let path = root.path().join("ferry.toml");
    fs::write(&path, cfg.to_toml()).unwrap();
    let mut old = Server::start_file(&path, &[]);
    let base = old.metrics();

    // Accepted by the old process, request not sent yet.
    let mut early = old.connect();
    let accepted = wait_delta(&old, &base, "ferry_connections_total", &[], 1.0);
    assert_eq!(accepted, 1.0);
    let _new = Server::start_file(&path, &["--upgrade-from", socket.to_str().unwrap()]);
    poll_until("the old process drains", DEADLINE, || {
        let lines = old.stderr_lines().join("\n");
        lines
            .contains("stopped accepting; connections finishing")
            .then_some(())
    });
    // Its request arrives during the drain: answered, then the connection closes.
    let r = early.get("/static/hello.txt", &[]);
    assert_eq!((r.status, r.body.as_slice()), (200, HELLO));
    assert_eq!(r.header("connection"), Some("close"), "{:?}", r.headers);
    early.expect_closed("the early connection after its response");
    assert_eq!(old.wait_exit(Duration::from_secs(30)).code(), Some(0));
}
