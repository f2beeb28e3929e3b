//! kTLS end to end, inside a VM whose kernel has the `tls` ULP:
//!
//! - a 64 MiB static file over HTTPS, sent by `sendfile(2)` on a socket the kernel encrypts
//!   (`ktls = "require"`), and the same download with kTLS switched off (`ktls = "off"`,
//!   userspace TLS);
//! - the life of one kTLS connection (`ktls = "require"`): a second request on it (keep-alive
//!   over kTLS), a TLS close_notify when ferry shuts down (SIGTERM) while it is idle, the
//!   client's close_notify answered with ferry's, and a TLS 1.3 KeyUpdate from the client
//!   (the kernel cannot take the new key: ferry answers what came before it, then closes with
//!   close_notify and FIN, never a reset, never a spin; one read by rustls with the client's
//!   Finished is answered before the install, and the connection goes on);
//! - the other bodies a kTLS socket carries: the app's body spliced in (`ktls_splice`), a disk
//!   cache MISS teed into the cache on the way and its HIT sent by `ktls_sendfile`, and a file
//!   above `directio_threshold` read with O_DIRECT (`directio`, whole and a Range).
//! - session resumption (`openssl s_client -sess_out/-sess_in`; TLS 1.3 tickets, TLS 1.2
//!   tickets and session IDs): the resumed connection is carried by the kernel too, and the
//!   TLS 1.3 tickets sent after the handshake are neither lost nor reordered by the install.
//!
//! These tests need a kernel with the `tls` ULP, which the development and CI hosts do not have.
//! `scripts/vm-test.sh` builds this test binary and ferry on the host and runs the binary inside
//! the throwaway VM of `tests/vm/` (Debian's 6.1 kernel, `tls` loaded) with
//! `FERRY_IN_KTLS_VM=1`, `FERRY_BIN=<host path of target/debug/ferry>` and
//! `--include-ignored`; the repository is shared into the guest at the same absolute path.
//! Every kTLS test is `#[ignore]`d, so a plain `cargo test` on the host lists them as ignored
//! instead of counting them as passed, and one run outside the VM on purpose (`--ignored`
//! without `FERRY_IN_KTLS_VM=1`) fails and says why. The one test that runs on the host,
//! `every_ktls_test_is_ignored_outside_the_vm`, checks exactly that.
//!
//! The guest has no Rust toolchain, only curl, openssl, python3 and coreutils, so the clients
//! are curl, a Python `ssl` script, `openssl s_client` (which sends a KeyUpdate on command),
//! and a rustls client built into this test binary (a request, a KeyUpdate and more data in
//! one write; exactly how the connection ended); the digests come from `sha256sum`/`hashlib`. Everything is bounded: ferry's
//! start-up, every socket read (`IO_TIMEOUT`), curl (`--max-time`), every client and every
//! metrics poll (`DEADLINE`). The VM runs under TCG (no KVM), so the bounds are generous; none
//! of them is a timing assertion. The helpers are in `tests/ktls_vm_support/mod.rs`.

mod ktls_vm_support;

use std::process::Command;
use std::thread;
use std::time::Duration;

use ktls_vm_support::offload::{App, Got, curl_get, direct_dir, evict_file, qenc, residency};
use ktls_vm_support::tls_client::{End, TlsClient};
use ktls_vm_support::*;

/// Issue 13 point 8: the host's `cargo test` must not count the kTLS tests as passed when
/// they did nothing. This binary lists itself: every test but this one is ignored (so a host
/// run shows them as ignored), and scripts/vm-test.sh runs the ignored ones in the VM.
#[test]
fn every_ktls_test_is_ignored_outside_the_vm() {
    let list = |extra: &[&str]| -> Vec<String> {
        let exe = std::env::current_exe().expect("this test binary");
        let out = Command::new(&exe)
            .args(["--list", "--format", "terse"])
            .args(extra)
            .output()
            .expect("run this test binary with --list");
        assert!(out.status.success(), "{} --list: {out:?}", exe.display());
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_suffix(": test"))
            .map(str::to_string)
            .collect()
    };
    let all = list(&[]);
    let ignored = list(&["--ignored"]);
    let this = "every_ktls_test_is_ignored_outside_the_vm";
    let not_ignored: Vec<&String> = all
        .iter()
        .filter(|t| *t != this && !ignored.contains(t))
        .collect();
    assert!(
        not_ignored.is_empty(),
        "kTLS tests that a host `cargo test` would run (and pass without doing anything): \
         {not_ignored:?}"
    );
    assert_eq!(
        ignored.len() + 1,
        all.len(),
        "all: {all:?}\nignored: {ignored:?}"
    );
    assert!(ignored.len() >= 17, "the kTLS tests: {ignored:?}");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/vm-test.sh");
    let script = std::fs::read_to_string(script).expect("scripts/vm-test.sh");
    assert!(
        script.contains("--include-ignored"),
        "scripts/vm-test.sh must pass --include-ignored, or the VM runs none of them"
    );
}

#[test]
#[ignore = "needs the kTLS VM: scripts/vm-test.sh runs it"]
fn ktls_require_sends_static_file_with_sendfile_on_kernel_tls() {
    let _serial = vm_only();
    assert_tls_ulp();
    let fx = Fixture::new();
    let ferry = Ferry::start(&fx, "require");

    let before = ferry.scrape();
    let tx_before = tls_stat("TlsTxSw");
    let out = fx.download(ferry.https, &ferry);
    fx.assert_same_file(&out, &ferry);
    let tx_after = tls_stat("TlsTxSw");
    assert!(
        tx_after > tx_before,
        "TlsTxSw did not rise ({tx_before} -> {tx_after}): no kTLS TX session was installed\n{}",
        ferry.diagnostics()
    );

    let responses = [
        ("path", "ktls_sendfile"),
        ("source", "static"),
        ("code", "2xx"),
    ];
    ferry.wait_for(&before, "ferry_responses_total", &responses, 1.0);
    let zero_copy = [("path", "ktls_sendfile")];
    let after = ferry.wait_for(
        &before,
        "ferry_zero_copy_bytes_total",
        &zero_copy,
        FILE_SIZE as f64,
    );
    let grew = delta(&before, &after, "ferry_zero_copy_bytes_total", &zero_copy);
    assert_eq!(
        grew,
        FILE_SIZE as f64,
        "ferry_zero_copy_bytes_total{{path=\"ktls_sendfile\"}} must grow by exactly the file size\n{}",
        ferry.diagnostics()
    );
    let handshakes = after.get(
        "ferry_tls_handshakes_total",
        &[("result", "ok"), ("ktls", "true")],
    );
    assert!(
        handshakes >= 1.0,
        "ferry_tls_handshakes_total{{result=\"ok\",ktls=\"true\"}} is {handshakes}\n{}",
        ferry.diagnostics()
    );
    eprintln!(
        "ktls require: {FILE_SIZE} bytes identical, TlsTxSw {tx_before} -> {tx_after}, \
         ktls_sendfile zero-copy +{grew}, kTLS handshakes {handshakes}"
    );
}

#[test]
#[ignore = "needs the kTLS VM: scripts/vm-test.sh runs it"]
fn ktls_off_sends_static_file_with_userspace_tls() {
    let _serial = vm_only();
    let fx = Fixture::new();
    let ferry = Ferry::start(&fx, "off");

    let before = ferry.scrape();
    let tx_before = tls_stat("TlsTxSw");
    let out = fx.download(ferry.https, &ferry);
    fx.assert_same_file(&out, &ferry);
    let tx_after = tls_stat("TlsTxSw");
    assert_eq!(
        tx_after,
        tx_before,
        "ktls = \"off\", yet TlsTxSw rose: a kTLS session was installed\n{}",
        ferry.diagnostics()
    );

    let responses = [
        ("path", "tls_buffered"),
        ("source", "static"),
        ("code", "2xx"),
    ];
    ferry.wait_for(&before, "ferry_responses_total", &responses, 1.0);
    let fallback = [
        ("from", "ktls"),
        ("to", "tls_buffered"),
        ("reason", "disabled"),
    ];
    let after = ferry.wait_for(&before, "ferry_fallbacks_total", &fallback, 1.0);
    eprintln!(
        "ktls off: {FILE_SIZE} bytes identical, TlsTxSw unchanged at {tx_after}, \
         fallbacks{{reason=\"disabled\"}} +{}",
        delta(&before, &after, "ferry_fallbacks_total", &fallback)
    );
}

/// Keep-alive over kTLS: two requests, one after the other, on one connection (Python `ssl`).
/// The second response proves the `KtlsStream` read path after a first response went out by
/// `sendfile(2)` on the kTLS socket.
#[test]
#[ignore = "needs the kTLS VM: scripts/vm-test.sh runs it"]
fn ktls_keep_alive_serves_second_request_on_same_connection() {
    let _serial = vm_only();
    assert_tls_ulp();
    let fx = Fixture::small();
    let ferry = Ferry::start(&fx, "require");
    let before = ferry.scrape();
    let (tx_before, rx_before) = (tls_stat("TlsTxSw"), tls_stat("TlsRxSw"));

    let path = format!("/static/{SMALL_NAME}");
    let mut client = Proc::python(&fx, ferry.https, "requests", &path, 2);
    let status = client.wait_exit(DEADLINE);
    assert!(
        status.is_some_and(|s| s.success()) && client.line("DONE").is_some(),
        "two requests on one kTLS connection failed ({status:?})\n{}\n{}",
        client.report(),
        ferry.diagnostics()
    );
    let responses = response_lines(&client);
    assert_eq!(responses.len(), 2, "{}", client.report());
    for r in &responses {
        assert!(
            r.status == 200 && r.length == SMALL_SIZE && r.sha256 == fx.small_sha256,
            "response {} on the kTLS connection is wrong: {r:?}, want 200, {SMALL_SIZE} bytes, \
             sha256 {}\n{}\n{}",
            r.index,
            fx.small_sha256,
            client.report(),
            ferry.diagnostics()
        );
    }
    assert_ktls_connection(&ferry, &before, tx_before, rx_before);
    let sendfile = [
        ("path", "ktls_sendfile"),
        ("source", "static"),
        ("code", "2xx"),
    ];
    let after = ferry.wait_for(&before, "ferry_responses_total", &sendfile, 2.0);
    let connections = delta(
        &before,
        &after,
        "ferry_connections_total",
        &[("transport", "ktls")],
    );
    assert_eq!(
        connections,
        1.0,
        "both responses must come over one kTLS connection\n{}",
        ferry.diagnostics()
    );
    eprintln!(
        "ktls keep-alive: 2 responses of {SMALL_SIZE} bytes, both sha256 right, on 1 kTLS \
         connection ({}), ktls_sendfile responses +{}",
        client.line("TLS").unwrap_or_default(),
        delta(&before, &after, "ferry_responses_total", &sendfile)
    );
}

/// SIGTERM with an idle keep-alive kTLS connection open: the client must read a TLS
/// close_notify (Python: the read returns b'' with `suppress_ragged_eofs=False`), not a reset
/// or a TCP FIN without close_notify (SSLEOFError), and ferry must exit 0.
#[test]
#[ignore = "needs the kTLS VM: scripts/vm-test.sh runs it"]
fn ktls_sigterm_sends_close_notify_to_idle_keep_alive_connection() {
    let _serial = vm_only();
    assert_tls_ulp();
    let fx = Fixture::small();
    let mut ferry = Ferry::start(&fx, "require");
    let before = ferry.scrape();
    let (tx_before, rx_before) = (tls_stat("TlsTxSw"), tls_stat("TlsRxSw"));

    let path = format!("/static/{SMALL_NAME}");
    let mut client = Proc::python(&fx, ferry.https, "wait-close", &path, 1);
    let idle = client.wait_until(DEADLINE, |c| {
        c.line("IDLE").is_some() || c.line("ERROR").is_some() || c.exited().is_some()
    });
    assert!(
        idle && client.line("IDLE").is_some(),
        "the request before the SIGTERM failed\n{}\n{}",
        client.report(),
        ferry.diagnostics()
    );
    let responses = response_lines(&client);
    assert!(
        responses.len() == 1
            && responses[0].status == 200
            && responses[0].sha256 == fx.small_sha256
            && responses[0].connection != "close",
        "the keep-alive response before the SIGTERM is wrong: {responses:?}\n{}",
        client.report()
    );
    assert_ktls_connection(&ferry, &before, tx_before, rx_before);

    ferry.sigterm();
    let closed = client.wait_until(DEADLINE, |c| c.line("CLOSE").is_some());
    let exit = ferry.wait_exit(DEADLINE);
    client.wait_exit(Duration::from_secs(5));
    let close = client.line("CLOSE").unwrap_or_default();
    let clean = closed && close.starts_with("CLOSE close_notify");
    let exited_ok = exit.is_some_and(|s| s.success());
    let seen = if closed {
        close.as_str()
    } else {
        "(nothing within the deadline)"
    };
    let status = exit.map_or("(still running after the deadline)".into(), |s| {
        s.to_string()
    });
    eprintln!("ktls SIGTERM: client saw {seen:?}; ferry exit status {status}");
    assert!(
        clean && exited_ok,
        "on SIGTERM, an idle keep-alive kTLS connection must get a TLS close_notify and ferry \
         must exit 0; the client saw {close:?}, ferry exit status {exit:?}\n{}\n{}",
        client.report(),
        ferry.diagnostics()
    );
}

/// A TLS 1.3 KeyUpdate from `openssl s_client` (`k`: update_not_requested) on an idle kTLS
/// connection: s_client reads a close_notify ("closed"), no reset; ferry never spins and
/// keeps serving others.
#[test]
#[ignore = "needs the kTLS VM: scripts/vm-test.sh runs it"]
fn ktls_peer_key_update_closes_with_close_notify() {
    let _serial = vm_only();
    peer_key_update("k", false);
}

/// The same with `K` (update_requested: the client also asks ferry to update its send key,
/// which the kernel cannot do either).
#[test]
#[ignore = "needs the kTLS VM: scripts/vm-test.sh runs it"]
fn ktls_peer_key_update_requested_closes_with_close_notify() {
    let _serial = vm_only();
    peer_key_update("K", true);
}

/// A request, a KeyUpdate and a second request (under the new key) in one write, sent once the
/// kernel holds the keys: ferry answers the first request in full, then closes with
/// close_notify and FIN (no reset); the second request, which ferry cannot decrypt, gets no
/// answer.
#[test]
#[ignore = "needs the kTLS VM: scripts/vm-test.sh runs it"]
fn ktls_key_update_after_a_request_in_one_flight_gets_the_response_then_close_notify() {
    let _serial = vm_only();
    key_update_flight(false);
}

/// A request, a KeyUpdate with update_requested, a second request under the client's new key
/// and a close_notify, all in the write of the client's handshake Finished: rustls reads them
/// before the keys move to the kernel, answers the KeyUpdate by switching its own send key and
/// owes the client its KeyUpdate. ferry must send that record before the kernel encrypts with
/// the new key: the client then decrypts both responses (each the whole file, on
/// `ktls_sendfile`), then ferry's close_notify and FIN. (Without it the client cannot decrypt
/// the first response.)
#[test]
#[ignore = "needs the kTLS VM: scripts/vm-test.sh runs it"]
fn ktls_key_update_sent_with_the_handshake_finished_is_answered_before_the_install() {
    let _serial = vm_only();
    key_update_flight(true);
}

/// A request, a KeyUpdate (update_requested) and a second request under the client's new key
/// in one write. Without `with_finished` the write goes out once the kernel holds the keys:
/// the first request is answered, then close_notify and FIN. With it, the write is the one of
/// the client's Finished and ends with a close_notify: rustls reads it all, both requests are
/// answered, then close_notify and FIN.
fn key_update_flight(with_finished: bool) {
    assert_tls_ulp();
    let fx = Fixture::small();
    let ferry = Ferry::start_logged(&fx, "require", Some("info,ferry=debug"));
    let before = ferry.scrape();
    let (tx_before, rx_before) = (tls_stat("TlsTxSw"), tls_stat("TlsRxSw"));

    let connected = if with_finished {
        TlsClient::connect_holding_finished(ferry.https)
    } else {
        TlsClient::connect(ferry.https)
    };
    let mut client =
        connected.unwrap_or_else(|e| panic!("TLS 1.3 connect: {e}\n{}", ferry.diagnostics()));
    if !with_finished {
        // Only once the keys are in the kernel does the KeyUpdate reach it (sent earlier, it
        // can arrive with the client's Finished and be read by rustls).
        let handshakes = [("result", "ok"), ("ktls", "true")];
        ferry.wait_for(&before, "ferry_tls_handshakes_total", &handshakes, 1.0);
    }
    let request = format!("GET /static/{SMALL_NAME} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    client.queue(request.as_bytes());
    client.queue_key_update();
    client.queue(request.as_bytes());
    if with_finished {
        client.queue_close_notify();
    }
    client.flush().expect("send the flight");
    let (plain, end) = client.read_to_end();
    assert_ktls_connection(&ferry, &before, tx_before, rx_before);

    let responses = split_responses(&plain);
    eprintln!(
        "ktls KeyUpdate in one flight (with the Finished: {with_finished}, {}): {} response(s) \
         {:?}, then {end:?}",
        client.suite(),
        responses.len(),
        responses
            .iter()
            .map(|r| (r.status, r.body.len()))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        end,
        End::CloseNotifyThenFin,
        "the client must decrypt all ferry sends after the KeyUpdate, then get close_notify \
         and FIN, with no reset\n{}",
        ferry.diagnostics()
    );
    let answered = if with_finished { 2 } else { 1 };
    assert!(
        responses.len() == answered
            && responses
                .iter()
                .all(|r| r.status == 200 && r.body == fx.small_bytes())
            && responses.last().is_some_and(|r| r.rest.is_empty()),
        "want {answered} response(s) (200, {SMALL_SIZE} bytes identical to the file) and \
         nothing after; got {} response(s): {:?}\n{}",
        responses.len(),
        responses
            .iter()
            .map(|r| (r.status, r.body.len(), r.rest.len()))
            .collect::<Vec<_>>(),
        ferry.diagnostics()
    );
    let sendfile = [
        ("path", "ktls_sendfile"),
        ("source", "static"),
        ("code", "2xx"),
    ];
    ferry.wait_for(&before, "ferry_responses_total", &sendfile, answered as f64);
    if !with_finished {
        assert_key_update_logged(&ferry, true);
    }
    ferry.wait_no_active("ktls");
}

/// The peer's close_notify on a kTLS connection (sent after a request, in the same write) is
/// the end of the stream: ferry answers the request, then its own close_notify and FIN.
#[test]
#[ignore = "needs the kTLS VM: scripts/vm-test.sh runs it"]
fn ktls_peer_close_notify_is_answered_with_close_notify() {
    let _serial = vm_only();
    peer_close_notify(false);
}

/// The same, with the request and the close_notify in the write of the client's handshake
/// Finished: rustls reads all three before the keys move to the kernel, so the close_notify
/// never reaches the kernel. It must still end the stream once the request is answered,
/// rather than leave the connection waiting for a request that never comes.
#[test]
#[ignore = "needs the kTLS VM: scripts/vm-test.sh runs it"]
fn ktls_close_notify_sent_with_the_handshake_finished_is_answered_with_close_notify() {
    let _serial = vm_only();
    peer_close_notify(true);
}

/// A request and a close_notify in one write (with the client's Finished when
/// `with_finished`): the response in full, then ferry's close_notify and FIN.
fn peer_close_notify(with_finished: bool) {
    assert_tls_ulp();
    let fx = Fixture::small();
    let ferry = Ferry::start_logged(&fx, "require", Some("info,ferry=debug"));
    let before = ferry.scrape();
    let (tx_before, rx_before) = (tls_stat("TlsTxSw"), tls_stat("TlsRxSw"));

    let connected = if with_finished {
        TlsClient::connect_holding_finished(ferry.https)
    } else {
        TlsClient::connect(ferry.https)
    };
    let mut client =
        connected.unwrap_or_else(|e| panic!("TLS 1.3 connect: {e}\n{}", ferry.diagnostics()));
    let request = format!("GET /static/{SMALL_NAME} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    client.queue(request.as_bytes());
    client.queue_close_notify();
    client.flush().expect("send the flight");
    let (plain, end) = client.read_to_end();
    assert_ktls_connection(&ferry, &before, tx_before, rx_before);
    let responses = split_responses(&plain);
    eprintln!(
        "ktls peer close_notify (with the Finished: {with_finished}): {} response(s), then \
         {end:?}",
        responses.len()
    );
    assert_eq!(
        end,
        End::CloseNotifyThenFin,
        "ferry must answer the peer's close_notify with its own, then FIN\n{}",
        ferry.diagnostics()
    );
    assert!(
        responses.len() == 1 && responses[0].status == 200 && responses[0].body == fx.small_bytes(),
        "the request before the close_notify must be answered in full\n{}",
        ferry.diagnostics()
    );
    let seen = ferry.stderr_matching(&["close_notify from the peer"]);
    assert!(
        !seen.is_empty(),
        "ferry's debug log does not show the peer's close_notify\n{}",
        ferry.diagnostics()
    );
    ferry.wait_no_active("ktls");
}

/// ferry logs, at debug level, the KeyUpdate that stopped a kTLS connection's receive side.
fn assert_key_update_logged(ferry: &Ferry, update_requested: bool) {
    let want = format!("KeyUpdate (update_requested: {update_requested})");
    let lines = ferry.stderr_matching(&[&want]);
    assert!(
        !lines.is_empty(),
        "ferry's debug log has no line with {want:?}\n{}",
        ferry.diagnostics()
    );
}

/// CPU ticks ferry may use in `IDLE_WINDOW` while its only connection is idle. This bounds the
/// CPU time consumed (utime + stime from /proc/PID/stat, USER_HZ = 100 on Linux, so 100 ticks
/// is 1 s of CPU in 3 s of wall time), not wall-clock time: an idle ferry uses about 0 ticks,
/// one thread spinning on the connection about 300.
const IDLE_TICKS_BOUND: u64 = 100;
const IDLE_WINDOW: Duration = Duration::from_secs(3);
/// How long the client waits for the close after the KeyUpdate (and the second request).
const AFTER_UPDATE: Duration = Duration::from_secs(30);

/// How the connection ended up after the KeyUpdate and the second request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterKeyUpdate {
    /// The second response arrived.
    Served,
    /// ferry closed with a TLS close_notify (`s_client` printed `closed`).
    ClosedWithCloseNotify,
    /// TCP FIN without close_notify (`s_client`: "unexpected eof while reading").
    ClosedWithoutCloseNotify,
    /// ECONNRESET.
    Reset,
    /// `s_client` ended some other way.
    OtherEnd,
    /// No second response and no close within `AFTER_UPDATE`.
    NoAnswer,
}

/// One kTLS connection driven by `openssl s_client`: a request, then the KeyUpdate command
/// `letter` on a line of its own, then (connection idle for `IDLE_WINDOW`) a second request if
/// the connection is still open. The client must read a close_notify (s_client prints
/// `closed`) and no reset, whenever ferry's close arrives.
///
/// `s_client` runs without `-ign_eof`/`-quiet`/`-nocommands`: in OpenSSL 3.0 (the guest's)
/// `-ign_eof` also turns the command letters off (`k` would be sent as data), so instead its
/// stdin stays open until the end of the test. The requests are written whole, in one write
/// each, with CRLF line ends; no line of them starts with a command letter.
fn peer_key_update(letter: &str, update_requested: bool) {
    assert_tls_ulp();
    let fx = Fixture::small();
    let ferry = Ferry::start_logged(&fx, "require", Some("info,ferry=debug"));
    let before = ferry.scrape();
    let (tx_before, rx_before) = (tls_stat("TlsTxSw"), tls_stat("TlsRxSw"));

    let mut command = Command::new("openssl");
    command
        .args(["s_client", "-connect"])
        .arg(ferry.https.to_string())
        .args(["-tls1_3", "-alpn", "http/1.1", "-no_ign_eof"]);
    let mut client = Proc::spawn(&format!("openssl s_client ({letter})"), command);
    let bodies = |c: &Proc| c.stdout().matches(TEXT_END).count();
    let handshake = client.wait_until(DEADLINE, |c| {
        c.stdout().contains("Verify return code") || c.exited().is_some()
    });
    assert!(
        handshake && client.exited().is_none(),
        "s_client did not connect\n{}\n{}",
        client.report(),
        ferry.diagnostics()
    );
    let request = format!("GET /static/{TEXT_NAME} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    client.write(request.as_bytes());
    let first = client.wait_until(DEADLINE, |c| bodies(c) >= 1 || c.exited().is_some());
    assert!(
        first
            && bodies(&client) == 1
            && client.stdout().contains("HTTP/1.1 200")
            && client.stdout().contains(&fx.text),
        "the first request (before the KeyUpdate) was not answered\n{}\n{}",
        client.report(),
        ferry.diagnostics()
    );
    assert_ktls_connection(&ferry, &before, tx_before, rx_before);

    // The KeyUpdate. OpenSSL sends it at once (checked in the guest against `s_server -msg`).
    client.write(format!("{letter}\n").as_bytes());
    let sent = client.wait_until(DEADLINE, |c| {
        c.stderr().contains("KEYUPDATE") || c.exited().is_some()
    });
    assert!(
        sent && client.stderr().contains("KEYUPDATE"),
        "s_client did not take the KeyUpdate command {letter:?}\n{}",
        client.report()
    );
    // A bound on CPU consumed while the connection is idle, not a wall-clock assertion.
    let t0 = ferry.cpu_ticks();
    thread::sleep(IDLE_WINDOW);
    let idle_after_update = ferry.cpu_ticks() - t0;
    let still_open = client.exited().is_none();

    if still_open {
        client.write(request.as_bytes());
    }
    let _ = client.wait_until(AFTER_UPDATE, |c| bodies(c) >= 2 || c.exited().is_some());
    let status = client
        .exited()
        .and_then(|_| client.wait_exit(Duration::from_secs(1)));
    let body_count = bodies(&client);
    let outcome = classify(&mut client, body_count);
    // Same bound after the second request (if one was sent).
    let t1 = ferry.cpu_ticks();
    thread::sleep(IDLE_WINDOW);
    let idle_after_request = ferry.cpu_ticks() - t1;

    // ferry still serves a new connection.
    let small = format!("/static/{SMALL_NAME}");
    let mut fresh = Proc::python(&fx, ferry.https, "requests", &small, 1);
    let fresh_status = fresh.wait_exit(DEADLINE);
    let fresh_ok = fresh_status.is_some_and(|s| s.success())
        && response_lines(&fresh)
            .first()
            .is_some_and(|r| r.status == 200 && r.sha256 == fx.small_sha256);

    let ktls_lines = ferry.stderr_matching(&["ktls"]);
    eprintln!(
        "ktls KeyUpdate {letter:?}: outcome {outcome:?}, s_client exit {status:?} (connection \
         {} after the KeyUpdate); ferry CPU {idle_after_update} ticks in {IDLE_WINDOW:?} after \
         the KeyUpdate, {idle_after_request} ticks in {IDLE_WINDOW:?} after that (bound \
         {IDLE_TICKS_BOUND}); new connection served: {fresh_ok}\n\
         ferry's ktls log lines:\n  {}",
        if still_open {
            "still open"
        } else {
            "already closed"
        },
        ktls_lines.join("\n  ")
    );
    let spun = idle_after_update >= IDLE_TICKS_BOUND || idle_after_request >= IDLE_TICKS_BOUND;
    assert!(
        !spun,
        "ferry used {idle_after_update} then {idle_after_request} CPU ticks in {IDLE_WINDOW:?} \
         windows with one idle connection (bound {IDLE_TICKS_BOUND}): it spins after a \
         KeyUpdate\n{}\n{}",
        client.report(),
        ferry.diagnostics()
    );
    assert!(
        fresh_ok,
        "after the KeyUpdate, ferry did not serve a new connection ({fresh_status:?})\n{}\n{}",
        fresh.report(),
        ferry.diagnostics()
    );
    assert_eq!(
        outcome,
        AfterKeyUpdate::ClosedWithCloseNotify,
        "after a KeyUpdate ({letter:?}) the kTLS connection must end with ferry's close_notify \
         (s_client prints \"closed\"), with no reset\n{}\n{}",
        client.report(),
        ferry.diagnostics()
    );
    assert_eq!(
        body_count,
        1,
        "only the request sent before the KeyUpdate may be answered\n{}",
        client.report()
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "s_client must end normally after reading the close_notify ({status:?})\n{}",
        client.report()
    );
    assert_key_update_logged(&ferry, update_requested);
    ferry.wait_no_active("ktls");
}

/// What s_client saw. A reset anywhere in its stderr wins over a "closed" on its stdout.
fn classify(client: &mut Proc, bodies: usize) -> AfterKeyUpdate {
    let (out, err) = (client.stdout(), client.stderr());
    if bodies >= 2 {
        AfterKeyUpdate::Served
    } else if client.exited().is_none() {
        AfterKeyUpdate::NoAnswer
    } else if err.contains("errno=104") || err.contains("reset by peer") {
        AfterKeyUpdate::Reset
    } else if out.lines().any(|l| l.trim() == "closed") {
        AfterKeyUpdate::ClosedWithCloseNotify
    } else if err.contains("unexpected eof while reading") {
        AfterKeyUpdate::ClosedWithoutCloseNotify
    } else {
        AfterKeyUpdate::OtherEnd
    }
}

/// The kTLS handshake of the test's connection happened: `ferry_tls_handshakes_total{result=
/// "ok",ktls="true"}` rose, and the kernel installed TX and RX kTLS state (`TlsTxSw`,
/// `TlsRxSw`).
fn assert_ktls_connection(ferry: &Ferry, before: &Metrics, tx_before: u64, rx_before: u64) {
    let handshakes = [("result", "ok"), ("ktls", "true")];
    ferry.wait_for(before, "ferry_tls_handshakes_total", &handshakes, 1.0);
    let (tx, rx) = (tls_stat("TlsTxSw"), tls_stat("TlsRxSw"));
    assert!(
        tx > tx_before && rx > rx_before,
        "no kTLS TX+RX install for the connection: TlsTxSw {tx_before} -> {tx}, TlsRxSw \
         {rx_before} -> {rx}\n{}",
        ferry.diagnostics()
    );
}

/// One `RESPONSE` line of the Python client.
#[derive(Debug)]
struct Response {
    index: u32,
    status: u16,
    length: u64,
    sha256: String,
    connection: String,
}

fn response_lines(client: &Proc) -> Vec<Response> {
    client
        .stdout()
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.first() != Some(&"RESPONSE") || w.len() < 6 {
                return None;
            }
            Some(Response {
                index: w[1].parse().ok()?,
                status: w[2].parse().ok()?,
                length: w[3].parse().ok()?,
                sha256: w[4].to_string(),
                connection: w[5].trim_start_matches("connection=").to_string(),
            })
        })
        .collect()
}

/// HTTP/2 (ALPN h2) on a kernel with kTLS, `ktls = "auto"`: the connection stays on rustls,
/// counted once as `reason="http2"`, and the body is byte-identical. An HTTP/1.1 request to
/// the same ferry afterwards goes out by `ktls_sendfile`, so kTLS was there to be used.
#[test]
#[ignore = "needs the kTLS VM: scripts/vm-test.sh runs it"]
fn ktls_auto_http2_is_served_on_tls_buffered_with_reason_http2() {
    let _serial = vm_only();
    assert_tls_ulp();
    let fx = Fixture::small();
    let config = fx.config_alpn("auto", &["h2", "http/1.1"]);
    let ferry = Ferry::start_config(config, &[], None);
    let got = fallback_case(&fx, &ferry, &["--http2"], "http2");
    assert_eq!(
        got.version, "2",
        "curl --http2 did not speak HTTP/2\n{}",
        got.stderr
    );
    ktls_control(&fx, &ferry, &["--http1.1"]);
}

/// The start-up probe finding no suite the kernel installs (`FERRY_FAULT_KTLS_CIPHERS=none`, a
/// debug build's fault injection: every suite rustls offers installs on this kernel), with
/// `ktls = "auto"`: the connection stays on rustls with `reason="cipher_unsupported"`.
#[test]
#[ignore = "needs the kTLS VM: scripts/vm-test.sh runs it"]
fn ktls_auto_unsupported_suite_is_served_on_tls_buffered_with_reason_cipher_unsupported() {
    let _serial = vm_only();
    assert_tls_ulp();
    let fx = Fixture::small();
    let fault = [("FERRY_FAULT_KTLS_CIPHERS", "none")];
    let ferry = Ferry::start_config(fx.config("auto"), &fault, None);
    fallback_case(&fx, &ferry, &["--http1.1"], "cipher_unsupported");
    let tls12 = ["--http1.1", "--tlsv1.2", "--tls-max", "1.2"];
    fallback_case(&fx, &ferry, &tls12, "cipher_unsupported");
}

/// TLS 1.2 with an RSA certificate (suite ECDHE-RSA-AES-GCM) goes to the kernel like TLS 1.3:
/// two requests on one connection (`curl URL URL`), both bodies identical, both sent by
/// `ktls_sendfile`, one kTLS connection with TX and RX keys installed.
#[test]
#[ignore = "needs the kTLS VM: scripts/vm-test.sh runs it"]
fn ktls_tls12_ecdhe_rsa_is_carried_by_the_kernel_with_keep_alive() {
    let _serial = vm_only();
    assert_tls_ulp();
    let fx = Fixture::small_rsa();
    let ferry = Ferry::start(&fx, "require");
    let before = ferry.scrape();
    let (tx_before, rx_before) = (tls_stat("TlsTxSw"), tls_stat("TlsRxSw"));
    let url = format!("https://{}/static/{SMALL_NAME}", ferry.https);
    let outs = [
        fx.dir.path().join("tls12-1.bin"),
        fx.dir.path().join("tls12-2.bin"),
    ];
    let result = Command::new("curl")
        .args([
            "-sSkv",
            "--http1.1",
            "--tlsv1.2",
            "--tls-max",
            "1.2",
            "--max-time",
            "120",
        ])
        .args(["-w", "%{http_code}\\n", "-o"])
        .arg(&outs[0])
        .arg(&url)
        .arg("-o")
        .arg(&outs[1])
        .arg(&url)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl: {e}"));
    let codes = String::from_utf8_lossy(&result.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
    assert!(
        result.status.success() && codes.lines().collect::<Vec<_>>() == ["200", "200"],
        "curl (TLS 1.2, two URLs): {} codes {codes:?}\n{stderr}\n{}",
        result.status,
        ferry.diagnostics()
    );
    assert!(
        stderr.contains("TLSv1.2 / ECDHE-RSA-") && stderr.contains("Re-using existing connection"),
        "want TLS 1.2 with an ECDHE-RSA suite and the second request on the same connection\n\
         {stderr}"
    );
    for out in &outs {
        assert_eq!(
            sha256sum(out),
            fx.small_sha256,
            "{} differs from files/{SMALL_NAME}\n{}",
            out.display(),
            ferry.diagnostics()
        );
    }
    assert_ktls_connection(&ferry, &before, tx_before, rx_before);
    let sendfile = [
        ("path", "ktls_sendfile"),
        ("source", "static"),
        ("code", "2xx"),
    ];
    let after = ferry.wait_for(&before, "ferry_responses_total", &sendfile, 2.0);
    let connections = delta(
        &before,
        &after,
        "ferry_connections_total",
        &[("transport", "ktls")],
    );
    assert_eq!(
        connections,
        1.0,
        "both responses must come over one kTLS connection\n{}",
        ferry.diagnostics()
    );
    let suite = stderr
        .lines()
        .find(|l| l.contains("SSL connection using"))
        .unwrap_or_default()
        .trim()
        .to_string();
    eprintln!(
        "ktls TLS 1.2 RSA: {suite:?}; 2 responses identical on 1 kTLS connection, TlsTxSw \
         {tx_before} -> {}, TlsRxSw {rx_before} -> {}",
        tls_stat("TlsTxSw"),
        tls_stat("TlsRxSw")
    );
}

/// The kernel refusing the `tls` ULP on a connection (`FERRY_FAULT_KTLS_ULP=ENOENT`, a debug
/// build's fault injection; the start-up probe is not affected): the connection is still
/// served, on rustls, counted once as `reason="install_failed"`.
#[test]
#[ignore = "needs the kTLS VM: scripts/vm-test.sh runs it"]
fn ktls_install_failure_is_served_on_tls_buffered_with_reason_install_failed() {
    let _serial = vm_only();
    assert_tls_ulp();
    let fx = Fixture::small();
    let fault = [("FERRY_FAULT_KTLS_ULP", "ENOENT")];
    let ferry = Ferry::start_config(fx.config("auto"), &fault, None);
    fallback_case(&fx, &ferry, &["--http1.1"], "install_failed");
    // And again: every connection is served, each counted once.
    fallback_case(&fx, &ferry, &["--http1.1"], "install_failed");
}

/// What one curl download returned.
struct CurlGot {
    /// `%{http_version}`: "1.1" or "2".
    version: String,
    /// curl's `-v` output (the TLS version and suite are in it).
    stderr: String,
}

/// `curl -sSkv ARGS https://FERRY/static/small.bin`: asserts a 200 and the body's sha256.
fn curl_small(fx: &Fixture, ferry: &Ferry, args: &[&str], out_name: &str) -> CurlGot {
    let target = format!("/static/{SMALL_NAME}");
    curl_small_at(fx, ferry, args, &target, out_name)
}

/// `curl -sSkv ARGS https://FERRY/TARGET`, whose body must be files/small.bin's: asserts a
/// 200 and the body's sha256.
fn curl_small_at(
    fx: &Fixture,
    ferry: &Ferry,
    args: &[&str],
    target: &str,
    out_name: &str,
) -> CurlGot {
    let out = fx.dir.path().join(out_name);
    let url = format!("https://{}{target}", ferry.https);
    let result = Command::new("curl")
        .args(["-sSkv", "--max-time", "120"])
        .args(args)
        .args(["-w", "%{http_version} %{http_code}", "-o"])
        .arg(&out)
        .arg(&url)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl: {e}"));
    let stdout = String::from_utf8_lossy(&result.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
    let (version, code) = stdout.split_once(' ').unwrap_or((&stdout, ""));
    assert!(
        result.status.success() && code == "200",
        "curl {args:?} {url}: {} (-w {stdout:?})\n{stderr}\n{}",
        result.status,
        ferry.diagnostics()
    );
    let sha = sha256sum(&out);
    assert_eq!(
        sha,
        fx.small_sha256,
        "curl {args:?}: the body differs from files/{SMALL_NAME}\n{}",
        ferry.diagnostics()
    );
    CurlGot {
        version: version.to_string(),
        stderr,
    }
}

/// One download that must fall back from kTLS for `reason`: body identical, no kTLS install
/// (TlsTxSw unchanged), the response on `tls_buffered`, one userspace-TLS connection, and
/// `ferry_fallbacks_total{from="ktls",to="tls_buffered"}` up by exactly one, with `reason`.
fn fallback_case(fx: &Fixture, ferry: &Ferry, args: &[&str], reason: &str) -> CurlGot {
    let before = ferry.scrape();
    let tx_before = tls_stat("TlsTxSw");
    let got = curl_small(fx, ferry, args, &format!("fallback-{reason}.bin"));
    let tx_after = tls_stat("TlsTxSw");
    let buffered = [
        ("path", "tls_buffered"),
        ("source", "static"),
        ("code", "2xx"),
    ];
    let wanted = [("from", "ktls"), ("to", "tls_buffered"), ("reason", reason)];
    ferry.wait_for(&before, "ferry_responses_total", &buffered, 1.0);
    let after = ferry.wait_for(&before, "ferry_fallbacks_total", &wanted, 1.0);
    let all = [("from", "ktls"), ("to", "tls_buffered")];
    let counts = [
        (
            "fallbacks{reason}",
            delta(&before, &after, "ferry_fallbacks_total", &wanted),
        ),
        (
            "fallbacks (all reasons)",
            delta(&before, &after, "ferry_fallbacks_total", &all),
        ),
        (
            "handshakes{ok,ktls=false}",
            delta(
                &before,
                &after,
                "ferry_tls_handshakes_total",
                &[("result", "ok"), ("ktls", "false")],
            ),
        ),
        (
            "connections{tls}",
            delta(
                &before,
                &after,
                "ferry_connections_total",
                &[("transport", "tls")],
            ),
        ),
    ];
    let kernel = [
        (
            "handshakes{ok,ktls=true}",
            delta(
                &before,
                &after,
                "ferry_tls_handshakes_total",
                &[("result", "ok"), ("ktls", "true")],
            ),
        ),
        (
            "connections{ktls}",
            delta(
                &before,
                &after,
                "ferry_connections_total",
                &[("transport", "ktls")],
            ),
        ),
    ];
    eprintln!(
        "fallback {reason} (curl {args:?}, HTTP/{}): TlsTxSw {tx_before} -> {tx_after}; {counts:?}; \
         {kernel:?}",
        got.version
    );
    assert!(
        counts.iter().all(|(_, n)| *n == 1.0) && kernel.iter().all(|(_, n)| *n == 0.0),
        "want exactly one fallback with reason {reason:?}, one userspace-TLS handshake and \
         connection, and nothing on kTLS: {counts:?} {kernel:?}\n{}\n{}",
        after.lines("ferry_fallbacks_total"),
        ferry.diagnostics()
    );
    assert_eq!(
        tx_after,
        tx_before,
        "a kTLS TX key was installed for a connection that fell back ({reason})\n{}",
        ferry.diagnostics()
    );
    got
}

/// A download from the same ferry that does get kTLS (`ktls_sendfile`, TlsTxSw rises).
fn ktls_control(fx: &Fixture, ferry: &Ferry, args: &[&str]) {
    let before = ferry.scrape();
    let tx_before = tls_stat("TlsTxSw");
    curl_small(fx, ferry, args, "control.bin");
    let tx_after = tls_stat("TlsTxSw");
    let sendfile = [
        ("path", "ktls_sendfile"),
        ("source", "static"),
        ("code", "2xx"),
    ];
    ferry.wait_for(&before, "ferry_responses_total", &sendfile, 1.0);
    assert!(
        tx_after > tx_before,
        "control download {args:?}: TlsTxSw did not rise ({tx_before} -> {tx_after})\n{}",
        ferry.diagnostics()
    );
    eprintln!("control (curl {args:?}): ktls_sendfile, TlsTxSw {tx_before} -> {tx_after}");
}

/// A body from the app (tests/app/app.py in the guest, Content-Length) to a kTLS client goes
/// by splice(2) into the kTLS socket: `ktls_splice`, zero-copy bytes equal to the body, the
/// body byte-identical.
#[test]
#[ignore = "needs the kTLS VM: scripts/vm-test.sh runs it"]
fn ktls_proxied_body_is_spliced_into_the_kernel_tls_socket() {
    let _serial = vm_only();
    assert_tls_ulp();
    let fx = Fixture::small();
    let app = App::start(&fx);
    let config = format!("{}{}", fx.config("require"), app.upstream_toml());
    let ferry = Ferry::start_config(config, &[], None);
    let before = ferry.scrape();
    let tx_before = tls_stat("TlsTxSw");
    let small = fx.dir.path().join("files").join(SMALL_NAME);
    let target = format!("/file?path={}&mode=length", small.display());
    curl_small_at(&fx, &ferry, &["--http1.1"], &target, "spliced.bin");
    let tx_after = tls_stat("TlsTxSw");
    let spliced = [
        ("path", "ktls_splice"),
        ("source", "upstream"),
        ("code", "2xx"),
    ];
    ferry.wait_for(&before, "ferry_responses_total", &spliced, 1.0);
    let zero_copy = [("path", "ktls_splice")];
    let after = ferry.wait_for(
        &before,
        "ferry_zero_copy_bytes_total",
        &zero_copy,
        SMALL_SIZE as f64,
    );
    let grew = delta(&before, &after, "ferry_zero_copy_bytes_total", &zero_copy);
    assert_eq!(
        grew,
        SMALL_SIZE as f64,
        "ferry_zero_copy_bytes_total{{path=\"ktls_splice\"}} must grow by exactly the body\n{}",
        ferry.diagnostics()
    );
    assert!(
        tx_after > tx_before,
        "TlsTxSw did not rise ({tx_before} -> {tx_after})\n{}",
        ferry.diagnostics()
    );
    eprintln!(
        "ktls splice: {SMALL_SIZE} bytes from the app identical, ktls_splice zero-copy +{grew}, \
         TlsTxSw {tx_before} -> {tx_after}"
    );
}

/// The cached body: a few MiB and an odd tail, so the fill spans many pipe loads.
const CACHED_SIZE: u64 = 3 * 1024 * 1024 + 4321;

/// Asserts a download's status, `X-Cache` and body (byte for byte).
fn assert_got(got: &Got, code: u16, x_cache: &str, want: &[u8], what: &str, ferry: &Ferry) {
    assert!(
        got.code == code && got.header("x-cache") == Some(x_cache),
        "{what}: want {code} with X-Cache: {x_cache}, got {} with {:?}\n{}\n{}",
        got.code,
        got.header("x-cache"),
        got.head,
        ferry.diagnostics()
    );
    assert!(
        got.body == want,
        "{what}: the body ({} bytes) differs from the file ({} bytes)\n{}",
        got.body.len(),
        want.len(),
        ferry.diagnostics()
    );
}

/// Polls until `name{filter}` grew by at least `want` since `before`, then asserts it grew by
/// exactly `want`; returns that scrape.
fn grew_exactly(
    ferry: &Ferry,
    before: &Metrics,
    name: &str,
    filter: &[(&str, &str)],
    want: f64,
) -> Metrics {
    let after = ferry.wait_for(before, name, filter, want);
    let grew = delta(before, &after, name, filter);
    assert_eq!(
        grew,
        want,
        "{name}{} must grow by exactly {want}\n{}\n{}",
        show(filter),
        after.lines(name),
        ferry.diagnostics()
    );
    after
}

/// A cacheable response from the app (tests/app/app.py, `Cache-Control: max-age=600`) fetched
/// twice by curl over kTLS. The first is a MISS: spliced into the kTLS socket (`ktls_splice`)
/// while tee(2) fills the cache (`ferry_cache_fill_bytes_total{path="tee"}` + exactly the body,
/// nothing `buffered`). The second is a HIT sent from the cache file by sendfile(2) on the kTLS
/// socket (`ktls_sendfile`, source `cache`, zero-copy + exactly the body) that never reaches the
/// app. Both bodies byte-identical to the file; a kTLS TX key installed for each. A third GET
/// with a Range is a HIT too: 206, exactly the bytes asked for, by `ktls_sendfile`.
#[test]
#[ignore = "needs the kTLS VM: scripts/vm-test.sh runs it"]
fn ktls_cache_miss_is_teed_into_the_cache_and_the_hit_goes_out_by_ktls_sendfile() {
    let _serial = vm_only();
    assert_tls_ulp();
    let fx = Fixture::small();
    let file = fx.dir.path().join("files").join("cached.bin");
    write_pseudo_random(&file, CACHED_SIZE);
    let want = std::fs::read(&file).expect("read cached.bin");
    let app = App::start(&fx);
    let config = format!(
        "{}{}[cache]\ndir = {}\n",
        fx.config("require"),
        app.upstream_toml(),
        toml_str(&fx.dir.path().join("cache"))
    );
    let ferry = Ferry::start_config(config, &[], None);
    let target = format!(
        "/cacheable/ktls?path={}&h={}",
        qenc(file.to_str().expect("utf-8 path")),
        qenc("Cache-Control:max-age=600")
    );

    let before = ferry.scrape();
    let tx_before = tls_stat("TlsTxSw");
    let miss = curl_get(&fx, &ferry, &target, None, "miss");
    assert_got(&miss, 200, "MISS", &want, "first GET", &ferry);
    let tx_miss = tls_stat("TlsTxSw");
    // The object is renamed into place once the fill thread has it all.
    ferry.wait_for(&before, "ferry_cache_objects", &[], 1.0);
    let tee = [("path", "tee")];
    let filled = grew_exactly(
        &ferry,
        &before,
        "ferry_cache_fill_bytes_total",
        &tee,
        CACHED_SIZE as f64,
    );
    let spliced = [
        ("path", "ktls_splice"),
        ("source", "upstream"),
        ("code", "2xx"),
    ];
    grew_exactly(&ferry, &before, "ferry_responses_total", &spliced, 1.0);
    let buffered_fill = delta(
        &before,
        &filled,
        "ferry_cache_fill_bytes_total",
        &[("path", "buffered")],
    );
    assert_eq!(
        buffered_fill,
        0.0,
        "a fill over kTLS must be teed, not copied from a buffer\n{}",
        ferry.diagnostics()
    );

    let filled = ferry.scrape();
    let hit = curl_get(&fx, &ferry, &target, None, "hit");
    assert_got(&hit, 200, "HIT", &want, "second GET", &ferry);
    let tx_hit = tls_stat("TlsTxSw");
    assert!(
        hit.header("age").is_some_and(|a| a.parse::<u64>().is_ok()),
        "a hit carries an Age header\n{}",
        hit.head
    );
    let from_cache = [
        ("path", "ktls_sendfile"),
        ("source", "cache"),
        ("code", "2xx"),
    ];
    grew_exactly(&ferry, &filled, "ferry_responses_total", &from_cache, 1.0);
    let zero_copy = [("path", "ktls_sendfile")];
    let after = grew_exactly(
        &ferry,
        &filled,
        "ferry_zero_copy_bytes_total",
        &zero_copy,
        CACHED_SIZE as f64,
    );
    let hits = delta(
        &filled,
        &after,
        "ferry_cache_requests_total",
        &[("result", "hit")],
    );
    let ktls_connections = delta(
        &before,
        &after,
        "ferry_connections_total",
        &[("transport", "ktls")],
    );
    let app_requests = app.count(&target);
    eprintln!(
        "ktls cache: {CACHED_SIZE} bytes; MISS by ktls_splice, tee fill +{CACHED_SIZE}; HIT by \
         ktls_sendfile from the cache (cache hits +{hits}); app requests {app_requests}; kTLS \
         connections +{ktls_connections}; TlsTxSw {tx_before} -> {tx_miss} -> {tx_hit}"
    );
    assert_eq!(
        app_requests,
        1,
        "the hit must not reach the app\n{}",
        ferry.diagnostics()
    );
    assert!(
        hits == 1.0 && ktls_connections == 2.0 && tx_miss > tx_before && tx_hit > tx_miss,
        "want one cache hit, two kTLS connections and a kTLS TX install for each download: \
         hits +{hits}, kTLS connections +{ktls_connections}, TlsTxSw {tx_before} -> {tx_miss} \
         -> {tx_hit}\n{}",
        ferry.diagnostics()
    );

    // A Range on the stored object is answered from the cache file as well.
    let (first, last) = (100_000_u64, 2_000_000_u64);
    let range = format!("{first}-{last}");
    let part = curl_get(&fx, &ferry, &target, Some(&range), "hit-range");
    let slice = &want[first as usize..=last as usize];
    assert_got(&part, 206, "HIT", slice, "ranged GET", &ferry);
    let content_range = format!("bytes {first}-{last}/{CACHED_SIZE}");
    assert_eq!(
        part.header("content-range"),
        Some(content_range.as_str()),
        "ranged hit\n{}",
        part.head
    );
    grew_exactly(&ferry, &after, "ferry_responses_total", &from_cache, 1.0);
    let sent = slice.len() as f64;
    grew_exactly(
        &ferry,
        &after,
        "ferry_zero_copy_bytes_total",
        &zero_copy,
        sent,
    );
    assert_eq!(
        app.count(&target),
        1,
        "the ranged hit must not reach the app\n{}",
        ferry.diagnostics()
    );
    eprintln!("ktls cache: Range {range} HIT, 206, ktls_sendfile +{sent} bytes");
}

/// The file served by the directio test: above the 1 MiB threshold, with a partial last
/// block.
const DIRECT_SIZE: u64 = 6 * 1024 * 1024 + 1234;

/// `[io] directio_threshold = "1MiB"` and a file above it, on a filesystem that takes O_DIRECT
/// (the guest's ext4 root disk), fetched over kTLS by curl, whole and with an unaligned Range:
/// both bodies byte-identical, both responses on `directio` with exactly their bytes and no
/// fallback, the file's pages still out of the page cache afterwards (mincore), and both
/// connections kTLS (`ferry_connections_total{transport="ktls"}` +2, TlsTxSw rose).
#[test]
#[ignore = "needs the kTLS VM: scripts/vm-test.sh runs it"]
fn ktls_directio_reads_a_file_above_the_threshold_and_the_kernel_encrypts_it() {
    let _serial = vm_only();
    assert_tls_ulp();
    let fx = Fixture::small();
    let direct = direct_dir();
    let file = direct.path().join("huge.bin");
    write_pseudo_random(&file, DIRECT_SIZE);
    let want = std::fs::read(&file).expect("read huge.bin");
    evict_file(&file);
    let config = format!(
        "{}[[location]]\nprefix = \"/direct/\"\nroot = {}\n[io]\ndirectio_threshold = \"1MiB\"\n",
        fx.config("require"),
        toml_str(direct.path())
    );
    let ferry = Ferry::start_config(config, &[], None);

    let before = ferry.scrape();
    let tx_before = tls_stat("TlsTxSw");
    let whole = curl_get(&fx, &ferry, "/direct/huge.bin", None, "direct-whole");
    assert!(
        whole.code == 200 && whole.body == want,
        "whole file: HTTP {} and {} bytes, want 200 and the file's {DIRECT_SIZE} bytes \
         identical\n{}\n{}",
        whole.code,
        whole.body.len(),
        whole.head,
        ferry.diagnostics()
    );
    let (first, last) = (1_000_001_u64, 5_000_000_u64);
    let range = format!("{first}-{last}");
    let part = curl_get(
        &fx,
        &ferry,
        "/direct/huge.bin",
        Some(&range),
        "direct-range",
    );
    let content_range = format!("bytes {first}-{last}/{DIRECT_SIZE}");
    assert!(
        part.code == 206
            && part.header("content-range") == Some(content_range.as_str())
            && part.body == want[first as usize..=last as usize],
        "range {range}: HTTP {}, Content-Range {:?}, {} bytes; want 206, {content_range:?} and \
         the file's bytes\n{}\n{}",
        part.code,
        part.header("content-range"),
        part.body.len(),
        part.head,
        ferry.diagnostics()
    );
    let tx_after = tls_stat("TlsTxSw");
    let (resident, pages) = residency(&file);

    let directio = [("path", "directio"), ("source", "static"), ("code", "2xx")];
    grew_exactly(&ferry, &before, "ferry_responses_total", &directio, 2.0);
    let sent = (DIRECT_SIZE + last - first + 1) as f64;
    let after = grew_exactly(
        &ferry,
        &before,
        "ferry_body_bytes_total",
        &[("path", "directio")],
        sent,
    );
    let fallbacks = delta(
        &before,
        &after,
        "ferry_fallbacks_total",
        &[("from", "directio")],
    );
    let ktls_connections = delta(
        &before,
        &after,
        "ferry_connections_total",
        &[("transport", "ktls")],
    );
    let tls_connections = delta(
        &before,
        &after,
        "ferry_connections_total",
        &[("transport", "tls")],
    );
    eprintln!(
        "ktls directio ({}): whole {DIRECT_SIZE} and range {range} identical, directio bytes \
         +{sent}, fallbacks +{fallbacks}, {resident} of {pages} pages cached after; kTLS \
         connections +{ktls_connections}, TlsTxSw {tx_before} -> {tx_after}",
        direct.path().display()
    );
    assert_eq!(
        fallbacks,
        0.0,
        "directio fell back\n{}\n{}",
        after.lines("ferry_fallbacks_total"),
        ferry.diagnostics()
    );
    assert!(
        resident <= pages / 100,
        "after the directio downloads {resident} of {pages} pages are in the page cache"
    );
    assert!(
        ktls_connections == 2.0 && tls_connections == 0.0 && tx_after >= tx_before + 2,
        "both downloads must be on kTLS: kTLS connections +{ktls_connections}, userspace TLS \
         +{tls_connections}, TlsTxSw {tx_before} -> {tx_after}\n{}",
        ferry.diagnostics()
    );
}

/// Session resumption on kTLS (`ktls = "require"`, resumption at its defaults): for TLS 1.3
/// (by ticket), TLS 1.2 by ticket and TLS 1.2 by session ID (the cache), `openssl s_client`
/// makes a full handshake saving its session (`-sess_out`), then offers it back (`-sess_in`).
/// The TLS 1.3 tickets are sent after the handshake, just before the keys move to the
/// kernel: had one been lost, s_client would have no session to save; had it been sealed out
/// of order with the kernel's records, s_client could not decrypt the response. Both
/// connections must be carried by the kernel, the second resumed, and both responses must be
/// the file byte for byte.
#[test]
#[ignore = "needs the kTLS VM: scripts/vm-test.sh runs it"]
fn ktls_resumed_sessions_are_carried_by_the_kernel_with_the_right_bytes() {
    let _serial = vm_only();
    assert_tls_ulp();
    let fx = Fixture::small();
    let ferry = Ferry::start(&fx, "require");
    let want = fx.small_bytes();
    let cases: [(&[&str], &str); 3] = [
        (&["-tls1_3"], "TLSv1.3"),
        (&["-tls1_2"], "TLSv1.2"),
        (&["-tls1_2", "-no_ticket"], "TLSv1.2"),
    ];
    for (i, (opts, protocol)) in cases.into_iter().enumerate() {
        let ctx = format!("s_client {opts:?}");
        let session = fx.dir.path().join(format!("session{i}.pem"));
        let before = ferry.scrape();
        let tx_before = tls_stat("TlsTxSw");
        let first = s_client_fetch(&ferry, opts, "-sess_out", &session);
        let second = s_client_fetch(&ferry, opts, "-sess_in", &session);
        for (got, state) in [(&first, "New"), (&second, "Reused")] {
            assert!(
                got.line.starts_with(&format!("{state}, {protocol}, ")),
                "{ctx}: {:?}, want {state} {protocol}\n{}",
                got.line,
                ferry.diagnostics()
            );
            assert!(
                got.body == want,
                "{ctx} ({state}): {} bytes, not files/{SMALL_NAME}\n{}",
                got.body.len(),
                ferry.diagnostics()
            );
        }
        let sendfile = [
            ("path", "ktls_sendfile"),
            ("source", "static"),
            ("code", "2xx"),
        ];
        let after = ferry.wait_for(&before, "ferry_responses_total", &sendfile, 2.0);
        let on_ktls = [("result", "ok"), ("ktls", "true")];
        let counted = [
            delta(&before, &after, "ferry_tls_handshakes_total", &on_ktls),
            delta(&before, &after, "ferry_tls_handshakes_total", &[]),
            delta(
                &before,
                &after,
                "ferry_tls_resumed_total",
                &[("ktls", "true")],
            ),
            delta(&before, &after, "ferry_tls_resumed_total", &[]),
        ];
        assert_eq!(
            counted,
            [2.0, 2.0, 1.0, 1.0],
            "{ctx}: handshakes on kTLS, all handshakes, resumed on kTLS, all resumed\n{}",
            ferry.diagnostics()
        );
        let tx = tls_stat("TlsTxSw");
        assert!(
            tx >= tx_before + 2,
            "{ctx}: TlsTxSw {tx_before} -> {tx}, want two kTLS installs"
        );
        eprintln!(
            "ktls resumption {ctx}: {:?} then {:?}, both bodies identical, TlsTxSw {tx_before} \
             -> {tx}",
            first.line, second.line
        );
    }
}

/// What `openssl s_client` saw on one connection.
struct Fetched {
    /// Its "New, ..." or "Reused, ..." line.
    line: String,
    /// The response body (Content-Length framed).
    body: Vec<u8>,
}

/// GET /static/small.bin with `Connection: close` over `openssl s_client OPTS SESS FILE`
/// (not `-brief`: that does not say whether the session was reused), bounded by `timeout`.
fn s_client_fetch(ferry: &Ferry, opts: &[&str], sess: &str, file: &std::path::Path) -> Fetched {
    use std::io::Write;
    let mut child = Command::new("timeout")
        .arg("120")
        .args(["openssl", "s_client", "-connect"])
        .arg(ferry.https.to_string())
        .args(["-servername", "localhost", "-ign_eof", "-alpn", "http/1.1"])
        .args(opts)
        .arg(sess)
        .arg(file)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run openssl s_client: {e}"));
    let request = format!(
        "GET /static/{SMALL_NAME} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    );
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(request.as_bytes())
        .expect("write the request");
    drop(stdin);
    let out = child.wait_with_output().expect("s_client output");
    let stdout = out.stdout;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "s_client {opts:?} {sess}: {}\n{stderr}\n{}",
        out.status,
        ferry.diagnostics()
    );
    let text = String::from_utf8_lossy(&stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("New, ") || l.starts_with("Reused, "))
        .unwrap_or_else(|| panic!("no New/Reused line from s_client:\n{text}\n{stderr}"))
        .to_string();
    let head = stdout
        .windows(9)
        .position(|w| w == b"HTTP/1.1 ")
        .unwrap_or_else(|| panic!("no response from s_client {opts:?}:\n{stderr}"));
    let end = stdout[head..]
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| head + at + 4)
        .expect("end of the response head");
    let head_text = String::from_utf8_lossy(&stdout[head..end]).to_ascii_lowercase();
    assert!(head_text.starts_with("http/1.1 200 "), "{head_text}");
    let length: usize = head_text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Content-Length in {head_text}"));
    let body = stdout[end..(end + length).min(stdout.len())].to_vec();
    Fetched { line, body }
}
