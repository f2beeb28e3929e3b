//! Certificates reloaded without a restart (issue 17, point 2): the real ferry binary with
//! `[tls]`, pairs made per test with `openssl req`, rotated on disk the ways operators and
//! Kubernetes do it, and a rustls client reading which certificate a new handshake presents
//! (compared byte for byte with the leaf certificate of the file).
//!
//! What is asserted: files replaced in place are served to new handshakes while a download
//! already in flight finishes byte for byte on the old connection, which keeps its
//! certificate and serves another request, and a session from before the reload still
//! resumes; a Kubernetes Secret volume's `..data` symlink swap is picked up; a key that does
//! not fit, or a file that is no PEM, keeps the old certificate serving, logged with the path
//! and counted as `error`, and the next good pair is taken; SIGHUP reloads with polling off;
//! `ferry_tls_certificate_expiry_timestamp_seconds` is the served certificate's notAfter as
//! `openssl x509 -enddate` reads it, and absent without [tls].
//!
//! Every wait polls `ferry_tls_certificate_reloads_total` to DEADLINE; no sleeps.
mod common;

use common::tls::*;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

const RELOADS: &str = "ferry_tls_certificate_reloads_total";
const EXPIRY: &str = "ferry_tls_certificate_expiry_timestamp_seconds";
const OK: &[(&str, &str)] = &[("result", "ok")];
const ERROR: &[(&str, &str)] = &[("result", "error")];

// ---------------------------------------------------------------------------------------------
// fixture

/// `tls.cert` / `tls.key` as ferry is configured with them, in `live/` of the fixture.
struct Live {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Live {
    /// `live/cert.pem` and `live/key.pem`, copies of `pair`.
    fn files(fx: &Fx, pair: &CertPair) -> Live {
        let dir = fx.dir.path().join("live");
        std::fs::create_dir(&dir).unwrap();
        let live = Live {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            dir,
        };
        std::fs::copy(&pair.cert, &live.cert).unwrap();
        std::fs::copy(&pair.key, &live.key).unwrap();
        live
    }

    /// Puts `pair` in place: each file written beside its target and renamed over it, the way
    /// certbot, cert-manager's CSI driver and `install` replace files.
    fn replace(&self, pair: &CertPair) {
        self.replace_one(&pair.cert, &self.cert);
        self.replace_one(&pair.key, &self.key);
    }

    fn replace_one(&self, from: &Path, to: &Path) {
        let tmp = self.dir.join(".incoming");
        std::fs::copy(from, &tmp).unwrap();
        std::fs::rename(&tmp, to).unwrap();
    }

    fn replace_with_bytes(&self, to: &Path, bytes: &[u8]) {
        let tmp = self.dir.join(".incoming");
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, to).unwrap();
    }
}

/// ferry serving `/static/` from the fixture's root over TLS with `live`'s files, checking
/// them every `interval`.
fn start(fx: &Fx, live: &Live, interval: &str) -> TlsServer {
    let pair = CertPair {
        cert: live.cert.clone(),
        key: live.key.clone(),
    };
    let tls = TlsSection::new(&pair).with(&format!("reload_interval = \"{interval}\""));
    let toml = Config::static_root(&fx.root).to_toml() + &tls.to_toml();
    TlsServer::start(&toml, 1)
}

// ---------------------------------------------------------------------------------------------
// clients

/// The leaf certificate a new handshake gets (a client without a session to resume).
fn served(srv: &TlsServer) -> Vec<u8> {
    presented(srv.https())
}

/// Panics unless a new handshake gets the leaf certificate of `pair`.
fn assert_served(srv: &TlsServer, pair: &CertPair, ctx: &str) {
    assert!(
        served(srv) == leaf(&pair.cert),
        "{ctx}: a new handshake should present {}",
        pair.cert.display()
    );
}

/// Sends `GET target` on `tls` and reads the response head; returns the head's text, its
/// Content-Length, and the body bytes that came with it.
fn get_head(
    tls: &mut StreamOwned<ClientConnection, TcpStream>,
    target: &str,
) -> (String, u64, Vec<u8>) {
    tls.write_all(&req("GET", target, &[])).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let end = loop {
        let n = tls.read(&mut buf).unwrap();
        assert!(n > 0, "GET {target}: closed before the response head");
        got.extend_from_slice(&buf[..n]);
        if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&got[..end]).to_string();
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("GET {target}: no Content-Length in\n{head}"));
    (head, length, got.split_off(end))
}

/// Reads body bytes on `tls` until `body` holds `len`.
fn read_body(tls: &mut StreamOwned<ClientConnection, TcpStream>, body: &mut Vec<u8>, len: u64) {
    let mut buf = vec![0u8; 64 * 1024];
    while (body.len() as u64) < len {
        let n = tls.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {} of {len} body bytes", body.len());
        body.extend_from_slice(&buf[..n]);
    }
    assert_eq!(body.len() as u64, len, "no bytes past the body");
}

/// Waits until `result` reloads went up by at least `want` since `base`, then asserts exactly
/// `want`.
fn expect_reloads(srv: &TlsServer, base: &Metrics, result: &[(&str, &str)], want: f64, ctx: &str) {
    let got = wait_delta(srv, base, RELOADS, result, want);
    assert_eq!(got, want, "{ctx}: {RELOADS}{result:?} delta");
}

fn reloads(srv: &TlsServer, base: &Metrics, result: &[(&str, &str)]) -> f64 {
    srv.metrics().get(RELOADS, result) - base.get(RELOADS, result)
}

// ---------------------------------------------------------------------------------------------
// 1. files replaced in place

#[test]
fn replaced_files_reach_new_handshakes_while_an_open_connection_goes_on() {
    let fx = Fx::new();
    let (a, b) = (gen_cert(fx.dir.path(), "a"), gen_cert(fx.dir.path(), "b"));
    let big = fx.file("big.bin", 8 * MIB, 17);
    let small = fx.file("small.txt", 1000, 18);
    let live = Live::files(&fx, &a);
    let srv = start(&fx, &live, "100ms");
    assert_served(&srv, &a, "at start");

    // A download in flight across the reload, on a client that keeps its session.
    let resuming = client_config();
    let mut open = tls_connect(srv.https(), &resuming);
    assert!(handshake(&mut open) == leaf(&a.cert));
    let (head, len, mut body) = get_head(&mut open, "/static/big.bin");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(len, 8 * MIB);
    read_body(&mut open, &mut body, 64 * KIB);

    let base = srv.metrics();
    live.replace(&b);
    // (No assertion on errors here: had the machine stalled this test for two check
    // intervals between its two renames, ferry would rightly count the half-done pair.)
    expect_reloads(&srv, &base, OK, 1.0, "after the files were replaced");
    assert_served(&srv, &b, "after the reload");

    // The connection from before: the rest of the body, byte for byte, then another request.
    read_body(&mut open, &mut body, len);
    assert!(
        body == big.bytes(0, len as usize),
        "the body differs from the file"
    );
    let (head, len, mut body) = get_head(&mut open, "/static/small.txt");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    read_body(&mut open, &mut body, len);
    assert!(
        body == small.bytes(0, 1000),
        "the second body differs from the file"
    );
    assert!(open.conn.peer_certificates().unwrap()[0].as_ref() == leaf(&a.cert).as_slice());

    // The session from before the reload resumes: the session stores are not the certificate.
    let before = srv.metrics();
    let mut again = tls_connect(srv.https(), &resuming);
    handshake(&mut again);
    assert_eq!(
        again.conn.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed),
        "a session from before the reload"
    );
    // ferry counts the handshake once the client's Finished is in, after the client is done.
    let resumed = wait_delta(&srv, &before, "ferry_tls_resumed_total", &[], 1.0);
    assert_eq!(resumed, 1.0, "ferry_tls_resumed_total delta");
}

// ---------------------------------------------------------------------------------------------
// 2. a Kubernetes Secret volume

/// A Secret volume as the kubelet lays it out: the data in a timestamped directory,
/// `..data` linking to it, and each key a link through `..data`.
struct SecretVolume {
    dir: PathBuf,
    generation: usize,
}

impl SecretVolume {
    fn new(fx: &Fx, pair: &CertPair) -> SecretVolume {
        let dir = fx.dir.path().join("secret");
        std::fs::create_dir(&dir).unwrap();
        let mut volume = SecretVolume { dir, generation: 0 };
        let data = volume.write_generation(pair);
        symlink(&data, volume.dir.join("..data")).unwrap();
        for name in ["tls.crt", "tls.key"] {
            symlink(format!("..data/{name}"), volume.dir.join(name)).unwrap();
        }
        volume
    }

    /// `..2026_12_07_10_00_00.N/` with `pair` in it; returns its name.
    fn write_generation(&mut self, pair: &CertPair) -> String {
        self.generation += 1;
        let name = format!("..2026_12_07_10_00_00.{}", self.generation);
        let data = self.dir.join(&name);
        std::fs::create_dir(&data).unwrap();
        std::fs::copy(&pair.cert, data.join("tls.crt")).unwrap();
        std::fs::copy(&pair.key, data.join("tls.key")).unwrap();
        name
    }

    /// The kubelet's update: a new generation, a new link renamed over `..data` (the one
    /// atomic step), the old generation removed.
    fn update(&mut self, pair: &CertPair) {
        let old = std::fs::read_link(self.dir.join("..data")).unwrap();
        let data = self.write_generation(pair);
        symlink(&data, self.dir.join("..data_tmp")).unwrap();
        std::fs::rename(self.dir.join("..data_tmp"), self.dir.join("..data")).unwrap();
        std::fs::remove_dir_all(self.dir.join(old)).unwrap();
    }

    fn live(&self) -> Live {
        Live {
            dir: self.dir.clone(),
            cert: self.dir.join("tls.crt"),
            key: self.dir.join("tls.key"),
        }
    }
}

#[test]
fn a_kubernetes_secret_volume_update_is_picked_up() {
    let fx = Fx::new();
    let pairs: Vec<CertPair> = ["a", "b", "c"]
        .iter()
        .map(|name| gen_cert(fx.dir.path(), name))
        .collect();
    let mut volume = SecretVolume::new(&fx, &pairs[0]);
    let srv = start(&fx, &volume.live(), "100ms");
    assert_served(&srv, &pairs[0], "at start");
    let base = srv.metrics();
    for (n, pair) in pairs[1..].iter().enumerate() {
        volume.update(pair);
        expect_reloads(&srv, &base, OK, n as f64 + 1.0, "after the ..data swap");
        assert_served(&srv, pair, "after the ..data swap");
    }
    assert_eq!(reloads(&srv, &base, ERROR), 0.0, "nothing failed");
}

// ---------------------------------------------------------------------------------------------
// 3. a pair that does not load

#[test]
fn a_key_that_does_not_fit_or_a_file_that_is_no_pem_keeps_the_old_certificate() {
    let fx = Fx::new();
    let (a, b) = (gen_cert(fx.dir.path(), "a"), gen_cert(fx.dir.path(), "b"));
    let live = Live::files(&fx, &a);
    let srv = start(&fx, &live, "100ms");
    let base = srv.metrics();

    // a's certificate with b's key.
    live.replace_one(&b.key, &live.key);
    expect_reloads(&srv, &base, ERROR, 1.0, "a key that does not fit");
    assert_served(&srv, &a, "after a key that does not fit");
    let key = live.key.display().to_string();
    poll_until(
        "the failed reload logged with the key's path",
        DEADLINE,
        || {
            srv.stderr_lines()
                .iter()
                .any(|l| {
                    l.contains("certificate reload failed")
                        && l.contains(&key)
                        && l.contains("does not fit")
                })
                .then_some(())
        },
    );

    // Then a certificate file that is no PEM at all.
    live.replace_with_bytes(&live.cert, b"this is not a certificate\n");
    expect_reloads(&srv, &base, ERROR, 2.0, "a certificate file that is no PEM");
    assert_served(&srv, &a, "after a garbage certificate file");
    let cert = format!(
        "tls.cert: {}: no certificate in the file",
        live.cert.display()
    );
    poll_until("the garbage file logged with its path", DEADLINE, || {
        srv.stderr_lines()
            .iter()
            .any(|l| l.contains("certificate reload failed") && l.contains(&cert))
            .then_some(())
    });
    assert_eq!(reloads(&srv, &base, OK), 0.0, "nothing loaded");

    // b's certificate joins b's key: the pair fits and is taken.
    live.replace_one(&b.cert, &live.cert);
    expect_reloads(&srv, &base, OK, 1.0, "the fitting pair");
    assert_served(&srv, &b, "after the fitting pair");
    assert_eq!(reloads(&srv, &base, ERROR), 2.0, "no further errors");
}

// ---------------------------------------------------------------------------------------------
// 4. SIGHUP

#[test]
fn sighup_reloads_the_pair_with_polling_off() {
    let fx = Fx::new();
    let (a, b) = (gen_cert(fx.dir.path(), "a"), gen_cert(fx.dir.path(), "b"));
    let live = Live::files(&fx, &a);
    let mut srv = start(&fx, &live, "0s");
    let base = srv.metrics();
    live.replace(&b);
    // Nothing looks at the files without a signal.
    assert_served(&srv, &a, "replaced, no signal yet");

    srv.signal("HUP");
    expect_reloads(&srv, &base, OK, 1.0, "after SIGHUP");
    assert_served(&srv, &b, "after SIGHUP");
    assert!(srv.server.try_wait().is_none(), "ferry exited on SIGHUP");

    // A SIGHUP onto a broken pair counts at once and keeps b.
    live.replace_with_bytes(
        &live.key,
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    );
    srv.signal("HUP");
    expect_reloads(&srv, &base, ERROR, 1.0, "SIGHUP onto a broken key");
    assert_served(&srv, &b, "after SIGHUP onto a broken key");
    assert_eq!(reloads(&srv, &base, OK), 1.0);
}

// ---------------------------------------------------------------------------------------------
// 5. the expiry gauge

/// The certificate's notAfter as openssl reads it, in seconds since the epoch (by date(1)).
fn openssl_not_after(cert: &Path) -> f64 {
    let mut cmd = openssl();
    cmd.args(["x509", "-noout", "-enddate", "-dateopt", "iso_8601", "-in"])
        .arg(cert);
    let out = run_bounded(cmd, None, CMD_TIMEOUT);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let date = text
        .trim()
        .strip_prefix("notAfter=")
        .unwrap_or_else(|| panic!("openssl x509 -enddate: {text:?}"));
    let out = Command::new("date")
        .args(["-u", "-d", date, "+%s"])
        .output()
        .expect("run date(1)");
    let seconds = String::from_utf8_lossy(&out.stdout).trim().to_string();
    seconds
        .parse()
        .unwrap_or_else(|_| panic!("date -d {date:?}: {seconds:?}"))
}

#[test]
fn the_expiry_gauge_is_the_served_certificates_not_after() {
    let fx = Fx::new();
    let soon = gen_cert_days(fx.dir.path(), "soon", 10);
    let later = gen_cert_days(fx.dir.path(), "later", 400);
    let (soon_at, later_at) = (
        openssl_not_after(&soon.cert),
        openssl_not_after(&later.cert),
    );
    assert!(
        later_at - soon_at > 300.0 * 86_400.0,
        "{soon_at} {later_at}"
    );
    let live = Live::files(&fx, &soon);
    let srv = start(&fx, &live, "100ms");
    assert_eq!(srv.metrics().get(EXPIRY, &[]), soon_at, "at start");

    let base = srv.metrics();
    live.replace(&later);
    expect_reloads(&srv, &base, OK, 1.0, "the renewed certificate");
    assert_eq!(srv.metrics().get(EXPIRY, &[]), later_at, "after the reload");

    // A failed reload leaves the gauge on the certificate still served.
    live.replace_one(&soon.key, &live.key);
    expect_reloads(&srv, &base, ERROR, 1.0, "a key that does not fit");
    assert_eq!(
        srv.metrics().get(EXPIRY, &[]),
        later_at,
        "after the failure"
    );

    // Without [tls] there is no certificate and no expiry series, and the reloads are at 0.
    let plain = Server::start(&Config::static_root(&fx.root));
    let m = plain.metrics();
    assert!(!m.has(EXPIRY), "{EXPIRY} without [tls]:\n{}", m.raw);
    assert_eq!(m.series(RELOADS).len(), 2, "ok and error");
    assert_eq!(m.get(RELOADS, &[]), 0.0);
}
