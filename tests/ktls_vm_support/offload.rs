//! Helpers for the kTLS tests of the disk cache and of directio (`tests/ktls_vm.rs`): the app
//! (tests/app/app.py, run by the guest's python3) with its request log, a curl download that
//! keeps the response head, and a directory on a filesystem that takes O_DIRECT (the guest's
//! `/tmp` is a tmpfs, which on 6.1 refuses it; its root disk is ext4).

use std::fs::{self, File};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ferry::sys::directio::{AlignedBuf, evict, read_at, resident_pages};

use super::{DEADLINE, Ferry, Fixture, Proc};

/// tests/app/app.py, listening on 127.0.0.1:0, logging every request to a file.
pub struct App {
    pub port: u16,
    log: PathBuf,
    _proc: Proc,
}

impl App {
    /// Starts the app and waits (at most `DEADLINE`) for its `port N` and `ready` lines.
    pub fn start(fx: &Fixture) -> App {
        let app_py = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/app/app.py");
        let log = fx.dir.path().join("app.log");
        let mut command = Command::new("python3");
        command.arg(app_py).arg("--log").arg(&log);
        let mut app = Proc::spawn("tests/app/app.py", command);
        let ready = app.wait_until(DEADLINE, |a| {
            a.line("ready").is_some() || a.exited().is_some()
        });
        let port = app
            .line("port ")
            .and_then(|l| l.trim_start_matches("port ").trim().parse::<u16>().ok());
        let Some(port) = port.filter(|_| ready && app.exited().is_none()) else {
            panic!("the app did not start\n{}", app.report());
        };
        App {
            port,
            log,
            _proc: app,
        }
    }

    /// `[upstream]` pointing at the app.
    pub fn upstream_toml(&self) -> String {
        format!("[upstream]\naddress = \"127.0.0.1:{}\"\n", self.port)
    }

    /// How many requests for `target` the app has logged.
    pub fn count(&self, target: &str) -> usize {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        log.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|r| r["kind"] == "request" && r["target"] == target)
            .count()
    }
}

/// Percent-encodes everything but unreserved characters and `/`, for a query value.
pub fn qenc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What one curl download got.
pub struct Got {
    pub code: u16,
    /// The response head as curl wrote it (`-D`).
    pub head: String,
    pub body: Vec<u8>,
}

impl Got {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// `curl -sSk --http1.1 [-r RANGE] -D HEAD -o BODY https://FERRY/TARGET`; asserts curl
/// succeeded (any HTTP status) and returns the status, head and body.
pub fn curl_get(fx: &Fixture, ferry: &Ferry, target: &str, range: Option<&str>, name: &str) -> Got {
    let out = fx.dir.path().join(format!("{name}.body"));
    let head = fx.dir.path().join(format!("{name}.head"));
    let url = format!("https://{}{target}", ferry.https);
    let mut command = Command::new("curl");
    command.args(["-sSk", "--http1.1", "--max-time", "300"]);
    if let Some(range) = range {
        command.args(["-r", range]);
    }
    let result = command
        .args(["-w", "%{http_code}", "-D"])
        .arg(&head)
        .arg("-o")
        .arg(&out)
        .arg(&url)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl: {e}"));
    let code = String::from_utf8_lossy(&result.stdout).trim().to_string();
    assert!(
        result.status.success(),
        "curl {url} (range {range:?}): {} (HTTP code {code:?}), stderr: {}\n{}",
        result.status,
        String::from_utf8_lossy(&result.stderr).trim(),
        ferry.diagnostics()
    );
    let got = Got {
        code: code.parse().unwrap_or(0),
        head: fs::read_to_string(&head).unwrap_or_default(),
        body: fs::read(&out).unwrap_or_default(),
    };
    let _ = fs::remove_file(&out);
    got
}

/// A temp dir on a filesystem that is not tmpfs and opens and reads a file with O_DIRECT:
/// `/var/tmp` (the guest's ext4 root disk), then the temp dir. Panics when there is none: a
/// directio test served by the sendfile fallback would prove nothing.
pub fn direct_dir() -> tempfile::TempDir {
    let candidates = [PathBuf::from("/var/tmp"), std::env::temp_dir()];
    let mut seen = Vec::new();
    for dir in &candidates {
        let Ok(tmp) = tempfile::tempdir_in(dir) else {
            seen.push(format!("{}: cannot create a temp dir", dir.display()));
            continue;
        };
        let fs_type = fs_type(tmp.path());
        let direct = takes_o_direct(tmp.path());
        if direct && fs_type != "tmpfs" {
            return tmp;
        }
        seen.push(format!(
            "{}: {fs_type}, O_DIRECT read {}",
            dir.display(),
            if direct { "ok" } else { "refused" }
        ));
    }
    panic!("no filesystem here takes O_DIRECT (needed by the directio test): {seen:?}");
}

/// `stat -f -c %T DIR`: the filesystem type's name.
fn fs_type(dir: &Path) -> String {
    let out = Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run stat: {e}"));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Whether a file in `dir` opens with O_DIRECT and reads 4096 aligned bytes.
fn takes_o_direct(dir: &Path) -> bool {
    let probe = dir.join("o_direct.probe");
    if fs::write(&probe, vec![7u8; 8192]).is_err() {
        return false;
    }
    let ok = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(&probe)
        .and_then(|file| {
            let mut buf = AlignedBuf::new(4096, 4096)?;
            read_at(&file, buf.as_mut_slice(), 4096)
        })
        .is_ok_and(|n| n == 4096);
    let _ = fs::remove_file(&probe);
    ok
}

/// Syncs `path` and drops its pages from the page cache; panics if they stay.
pub fn evict_file(path: &Path) {
    let file = File::open(path).expect("open for eviction");
    file.sync_all().expect("fsync before eviction");
    evict(&file).expect("posix_fadvise(DONTNEED)");
    let (resident, pages) = residency(path);
    assert!(
        resident <= pages / 100,
        "{} still has {resident} of {pages} pages cached after DONTNEED",
        path.display()
    );
}

/// (pages of `path` in the page cache, pages of the file), by mincore(2).
pub fn residency(path: &Path) -> (usize, usize) {
    resident_pages(&File::open(path).expect("open for mincore")).expect("mincore")
}
