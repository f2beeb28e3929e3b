//! Shared helpers for ferry's integration tests: server process management,
//! config files, a blocking raw HTTP/1.1 client, a Prometheus text scraper,
//! an fd counter and a deterministic, fast file-content generator.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_ferry");
/// Every socket read/write in the suite is bounded by this.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound for every "poll until a condition holds" loop (and for the test app to come
/// up): generous, because a passing test never waits it out, and a machine busy compiling
/// took more than 10 s to start the Python app.
pub const DEADLINE: Duration = Duration::from_secs(30);
pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * 1024;
pub const GIB: u64 = 1024 * MIB;

mod config;
mod content;
mod http;
mod metrics;
mod server;

// Each test file uses a different subset of the helpers.
#[allow(unused_imports)]
pub use {config::*, content::*, http::*, metrics::*, server::*};

/// Polls `f` until it returns `Some`, at most `timeout`; panics with `what` otherwise.
pub fn poll_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// IMF-fixdate (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    // civil_from_days (H. Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        WD[days.rem_euclid(7) as usize],
        d,
        MON[(m - 1) as usize],
        y,
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

pub fn mtime(path: &Path) -> SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

/// A `curl` command; panics with a clear message if curl is not installed.
pub fn curl() -> Command {
    let ok = Command::new("curl")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "this test needs the `curl` binary on PATH (CI installs it); please install curl"
    );
    let mut c = Command::new("curl");
    c.arg("--max-time").arg("60");
    c
}
pub mod app;
pub mod cache;
pub mod tls;
