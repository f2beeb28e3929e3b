//! `ferry bench`: the classic "read+write vs mmap vs sendfile vs splice" table, measured on
//! the user's own machine and disk instead of quoted. Each method moves the same file over
//! loopback TCP (`transfer`), counting its own syscalls and user-space copies (`methods`);
//! the sender threads' CPU comes from their thread CPU clocks (getrusage(RUSAGE_THREAD) for
//! the user/system split and context switches). `report` turns the figures
//! into a table, JSON and a recommendation; `source` provides the file.
//!
//! The kTLS row needs the kernel's `tls` upper-layer protocol (probed by `tls::ulp_available`);
//! where it is missing the row says so instead of being left out. `tls` does both TLS rows.

pub mod methods;
pub mod report;
pub mod source;
pub mod tls;
pub mod transfer;
mod units;

use std::io::{IsTerminal, Write};
use std::num::NonZeroUsize;
use std::path::PathBuf;

use methods::{Method, SendError};
use report::{Report, Row};
pub use source::BenchError;
use source::Source;

/// Most connections `--connections` accepts: each is two threads and a 2 MiB buffer.
pub const MAX_CONNECTIONS: usize = 64;

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Size of the generated file (ignored with `file`).
    pub size: u64,
    pub file: Option<PathBuf>,
    pub connections: NonZeroUsize,
    /// Transfers per method, interleaved between methods; the median one is reported.
    pub rounds: NonZeroUsize,
    /// Draw a progress bar on stderr (the caller decides: a terminal, and not `--json`).
    pub progress: bool,
}

/// `--size`: a byte size as the config file writes it (`"8MiB"`, `"1GiB"`), at least 1 byte.
pub fn parse_size_arg(value: &str) -> Result<u64, String> {
    match crate::config::parse_size(value)? {
        0 => Err("the size must be at least 1 byte".into()),
        size => Ok(size),
    }
}

/// Most rounds `--rounds` accepts.
pub const MAX_ROUNDS: usize = 100;

/// `--connections`: 1 to MAX_CONNECTIONS.
pub fn parse_connections(value: &str) -> Result<NonZeroUsize, String> {
    parse_count(value, "number of connections", MAX_CONNECTIONS)
}

/// `--rounds`: 1 to MAX_ROUNDS.
pub fn parse_rounds(value: &str) -> Result<NonZeroUsize, String> {
    parse_count(value, "number of rounds", MAX_ROUNDS)
}

fn parse_count(value: &str, what: &str, max: usize) -> Result<NonZeroUsize, String> {
    value
        .trim()
        .parse::<usize>()
        .ok()
        .and_then(NonZeroUsize::new)
        .filter(|n| n.get() <= max)
        .ok_or_else(|| format!("invalid {what} {value:?}: expected 1 to {max}"))
}

/// Prepares the file, measures every method, and returns the report.
pub fn run(options: &Options) -> Result<Report, BenchError> {
    let mut bar = Progress::new(options.progress);
    let source = match &options.file {
        Some(path) => Source::open(path)?,
        None => {
            let size = options.size;
            Source::generate(size, &mut |done| bar.draw("writing file", done, size))?
        }
    };
    let connections = options.connections.get();
    let rounds = options.rounds.get();
    let tls = tls::configs();
    // Per method: the rounds measured so far, or the row that says why it cannot run.
    let mut results: Vec<Result<Vec<Row>, Box<Row>>> = Method::ALL
        .iter()
        .map(|&method| match unavailable(method, tls.as_ref().err()) {
            Some(reason) => Err(Box::new(Row::unavailable(method, reason))),
            None => Ok(Vec::new()),
        })
        .collect();
    // Rounds interleave the methods, so a burst of load elsewhere on the machine lands on
    // one round of several methods rather than on every round of one.
    for round in 1..=rounds {
        for (method, result) in Method::ALL.into_iter().zip(&mut results) {
            let Ok(done) = result else { continue };
            let label = format!("{} {round}/{rounds}", method.name());
            let mut draw = |bytes| bar.draw(&label, bytes, source.size);
            match transfer::run(method, &source, connections, tls.as_ref().ok(), &mut draw) {
                Ok(measured) => done.push(Row::measured(method, &measured)),
                Err(SendError::Unsupported(reason)) => {
                    *result = Err(Box::new(Row::unavailable(method, reason)))
                }
                Err(SendError::Io(err)) => {
                    *result = Err(Box::new(Row::failed(method, err.to_string())))
                }
            }
        }
    }
    bar.clear();
    let rows: Vec<Row> = results
        .into_iter()
        .map(|result| result.map_or_else(|row| *row, Row::median))
        .collect();
    let mem_total = mem_total();
    let kernel_aes_gcm = kernel_aes_gcm();
    Ok(Report {
        ferry_version: env!("CARGO_PKG_VERSION"),
        file: source.describe(),
        size: source.size,
        connections,
        rounds,
        chunk: methods::CHUNK,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into()),
        cpus: std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
        mem_total,
        recommendation: report::recommend(&rows, mem_total, kernel_aes_gcm.as_deref()),
        kernel_aes_gcm,
        rows,
    })
}

/// Why a method cannot run on this machine, decided before trying. `tls_error` is why the
/// TLS configuration could not be made, if it could not.
fn unavailable(method: Method, tls_error: Option<&String>) -> Option<String> {
    let tls = matches!(method, Method::KtlsSendfile | Method::TlsBuffered);
    if tls && let Some(err) = tls_error {
        return Some(format!("no TLS configuration: {err}"));
    }
    if method == Method::KtlsSendfile && !crate::tls::ulp_available() {
        return Some(format!(
            "the kernel has no `tls` ULP (not listed in {}; load it with `modprobe tls`)",
            crate::tls::ULP_PATH
        ));
    }
    None
}

/// The driver the kernel uses for `gcm(aes)` (what kTLS encrypts with): the highest-priority
/// entry in /proc/crypto, e.g. `generic-gcm-aesni`, or a `gcm_base(...)` of generic parts.
fn kernel_aes_gcm() -> Option<String> {
    let crypto = std::fs::read_to_string("/proc/crypto").ok()?;
    crypto
        .split("\n\n")
        .filter_map(|block| {
            let field = |key: &str| {
                block.lines().find_map(|line| {
                    let (k, v) = line.split_once(':')?;
                    (k.trim() == key).then(|| v.trim().to_string())
                })
            };
            if field("name")? != "gcm(aes)" {
                return None;
            }
            let priority: i64 = field("priority")?.parse().ok()?;
            Some((priority, field("driver")?))
        })
        .max_by_key(|(priority, _)| *priority)
        .map(|(_, driver)| driver)
}

/// MemTotal from /proc/meminfo, in bytes.
fn mem_total() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A one-line progress bar on stderr, redrawn in place; nothing at all when disabled.
struct Progress {
    enabled: bool,
    last: Option<std::time::Instant>,
}

impl Progress {
    fn new(enabled: bool) -> Progress {
        Progress {
            enabled: enabled && std::io::stderr().is_terminal(),
            last: None,
        }
    }

    fn draw(&mut self, label: &str, done: u64, total: u64) {
        if !self.enabled {
            return;
        }
        // Redrawing costs the measured machine CPU: at most ten times a second.
        let now = std::time::Instant::now();
        if done < total
            && self
                .last
                .is_some_and(|t| now - t < std::time::Duration::from_millis(100))
        {
            return;
        }
        self.last = Some(now);
        const WIDTH: u64 = 30;
        let filled = (done.min(total) * WIDTH)
            .checked_div(total)
            .unwrap_or(WIDTH);
        let bar: String = (0..WIDTH)
            .map(|i| if i < filled { '#' } else { '.' })
            .collect();
        let percent = (done.min(total) * 100).checked_div(total).unwrap_or(100);
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r\x1b[K{label:<20} [{bar}] {percent:>3}%");
        let _ = stderr.flush();
    }

    fn clear(&mut self) {
        if self.enabled {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_the_config_file() {
        assert_eq!(parse_size_arg("8MiB"), Ok(8 << 20));
        assert_eq!(parse_size_arg("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size_arg("4096"), Ok(4096));
        assert!(parse_size_arg("0").unwrap_err().contains("at least 1 byte"));
        assert!(
            parse_size_arg("1.5GiB")
                .unwrap_err()
                .contains("invalid size")
        );
        assert!(parse_size_arg("8m").unwrap_err().contains("ambiguous"));
    }

    #[test]
    fn connections_are_bounded() {
        assert_eq!(parse_connections("4").map(NonZeroUsize::get), Ok(4));
        assert!(parse_connections("0").is_err());
        assert!(parse_connections("-1").is_err());
        assert!(parse_connections("many").is_err());
        assert!(parse_connections(&(MAX_CONNECTIONS + 1).to_string()).is_err());
        assert!(parse_connections(&MAX_CONNECTIONS.to_string()).is_ok());
        assert_eq!(parse_rounds("3").map(NonZeroUsize::get), Ok(3));
        assert!(parse_rounds("0").unwrap_err().contains("number of rounds"));
    }
}
