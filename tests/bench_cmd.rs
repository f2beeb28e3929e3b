//! `ferry bench` run as a user runs it: the real binary on a small file, its JSON and its
//! table checked for what each method must show (bytes through user space, CPU copies,
//! syscalls per chunk), the kTLS rows against what this kernel offers, bad arguments
//! refused with exit status 64, and no test file left behind, even when interrupted.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ferry");
const MIB: u64 = 1024 * 1024;
/// Bytes per read/write/sendfile call in the bench (the server's default `[io] chunk`).
const CHUNK: u64 = 2 * MIB;
/// A debug build on a busy 2-core machine moves 8 MiB x 5 methods x 3 rounds well within this.
const DEADLINE: Duration = Duration::from_secs(120);
const ULP_PATH: &str = "/proc/sys/net/ipv4/tcp_available_ulp";

fn spawn(args: &[&str], tmpdir: Option<&Path>) -> Child {
    let mut cmd = Command::new(BIN);
    cmd.arg("bench")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = tmpdir {
        cmd.env("TMPDIR", dir);
    }
    cmd.spawn().expect("spawn ferry bench")
}

fn wait(mut child: Child, args: &[&str]) -> Output {
    let deadline = Instant::now() + DEADLINE;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ferry bench {args:?} did not finish within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn bench(args: &[&str]) -> Output {
    wait(spawn(args, None), args)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn bench_json(args: &[&str]) -> Value {
    let out = bench(args);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|err| panic!("not JSON ({err}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn row<'a>(report: &'a Value, method: &str) -> &'a Value {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["method"] == method)
        .unwrap_or_else(|| panic!("no {method} row in {report:#}"))
}

fn num(row: &Value, field: &str) -> u64 {
    row[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} missing in {row:#}"))
}

fn float(row: &Value, field: &str) -> f64 {
    row[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} missing in {row:#}"))
}

/// A measured row moved exactly `size` bytes at a believable rate and recorded real CPU.
fn assert_measured(row: &Value, size: u64) {
    assert_eq!(row["status"], "ok", "{row:#}");
    assert_eq!(num(row, "bytes"), size, "{row:#}");
    let rate = float(row, "throughput_mib_s");
    assert!(
        rate > 1.0 && rate < 1e6,
        "implausible throughput {rate} MiB/s: {row:#}"
    );
    assert!(float(row, "seconds") > 0.0, "{row:#}");
    assert!(float(row, "cpu_seconds") > 0.0, "{row:#}");
    assert!(float(row, "cpu_s_per_gib") > 0.0, "{row:#}");
}

fn has_tls_ulp() -> bool {
    std::fs::read_to_string(ULP_PATH).is_ok_and(|l| l.split_whitespace().any(|u| u == "tls"))
}

/// The kTLS row: measured where the kernel has the ULP, otherwise unavailable with the
/// reason and the fix.
fn assert_ktls_row(report: &Value, size: u64) {
    let ktls = row(report, "kTLS sendfile");
    if has_tls_ulp() {
        assert_measured(ktls, size);
        assert_eq!(num(ktls, "user_space_bytes"), 0, "{ktls:#}");
    } else {
        assert_eq!(ktls["status"], "unavailable", "{ktls:#}");
        let reason = ktls["reason"].as_str().unwrap();
        assert!(reason.contains("no `tls` ULP"), "{reason}");
        assert!(
            reason.contains(ULP_PATH) && reason.contains("modprobe tls"),
            "{reason}"
        );
    }
}

#[test]
fn every_method_shows_the_copies_and_calls_it_must_have() {
    let size = 8 * MIB;
    let report = bench_json(&["--size", "8MiB", "--json"]);
    assert_eq!(num(&report, "size"), size);
    assert_eq!(num(&report, "connections"), 1);
    let chunks = size / CHUNK;

    let read_write = row(&report, "read+write");
    assert_measured(read_write, size);
    assert_eq!(num(read_write, "user_space_bytes"), size);
    assert_eq!(
        num(read_write, "cpu_copied_bytes"),
        2 * size,
        "a read and a write copy"
    );
    assert!(num(read_write, "syscalls") >= 2 * chunks, "{read_write:#}");
    assert!(
        float(read_write, "mode_switches_per_chunk") >= 4.0,
        "{read_write:#}"
    );
    assert!(
        float(read_write, "receiver_cpu_seconds") > 0.0,
        "{read_write:#}"
    );

    let mmap = row(&report, "mmap+write");
    assert_measured(mmap, size);
    assert_eq!(num(mmap, "user_space_bytes"), size);
    assert_eq!(num(mmap, "cpu_copied_bytes"), size, "only the write copies");
    // mmap + munmap + one write per chunk at least
    assert!(num(mmap, "syscalls") >= 2 + chunks, "{mmap:#}");

    let sendfile = row(&report, "sendfile");
    assert_measured(sendfile, size);
    assert_eq!(num(sendfile, "user_space_bytes"), 0);
    assert_eq!(num(sendfile, "cpu_copied_bytes"), 0);
    assert!(num(sendfile, "syscalls") >= chunks, "{sendfile:#}");
    assert!(
        float(sendfile, "mode_switches_per_chunk") >= 2.0,
        "{sendfile:#}"
    );
    assert!(
        num(sendfile, "syscalls") < num(read_write, "syscalls"),
        "sendfile needs fewer calls than read+write"
    );

    let splice = row(&report, "splice");
    assert_measured(splice, size);
    assert_eq!(num(splice, "user_space_bytes"), 0);
    assert_eq!(num(splice, "cpu_copied_bytes"), 0);
    // file→pipe and pipe→socket per pipeful; a pipe holds at most 1 MiB
    assert!(num(splice, "syscalls") >= 2 * (size / MIB), "{splice:#}");

    let direct = row(&report, "O_DIRECT+write");
    let file = report["file"].as_str().unwrap();
    if direct_io_works_in(&generated_dir(file)) {
        assert_measured(direct, size);
        assert_eq!(num(direct, "user_space_bytes"), size);
        assert_eq!(
            num(direct, "cpu_copied_bytes"),
            size,
            "the read is DMA, the write copies"
        );
        assert!(num(direct, "syscalls") >= 2 * chunks, "{direct:#}");
    } else {
        assert_eq!(direct["status"], "unavailable", "{direct:#}");
        assert!(
            direct["reason"].as_str().unwrap().contains("O_DIRECT"),
            "{direct:#}"
        );
    }

    assert_ktls_row(&report, size);

    let tls = row(&report, "userspace TLS");
    assert_measured(tls, size);
    assert_eq!(num(tls, "user_space_bytes"), size);
    // read in, ciphertext (the file plus record overhead) written out
    assert!(num(tls, "cpu_copied_bytes") > 2 * size, "{tls:#}");
    assert!(num(tls, "syscalls") >= 2 * chunks, "{tls:#}");

    let advice = report["recommendation"].as_array().unwrap();
    assert!(
        advice[0].as_str().unwrap().contains("send_path"),
        "{advice:?}"
    );
    assert!(
        advice[1].as_str().unwrap().contains("directio_threshold"),
        "{advice:?}"
    );
}

#[test]
fn the_table_lists_every_method_and_a_pipe_gets_no_progress_bar() {
    let out = bench(&["--size", "4MiB", "--rounds", "1"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    // stdout and stderr are pipes here: no bar, no escape codes.
    assert_eq!(stderr(&out), "");
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.starts_with("ferry bench: 4.0 MiB file"), "{table}");
    let header = table
        .lines()
        .find(|l| l.starts_with("method"))
        .expect(&table);
    for column in [
        "MiB/s",
        "CPU s/GiB",
        "syscalls/MiB",
        "user-space bytes",
        "CPU copies",
    ] {
        assert!(header.contains(column), "{header}");
    }
    let line = |method: &str| {
        table
            .lines()
            .find(|l| l.starts_with(method))
            .unwrap_or_else(|| panic!("no {method} line in\n{table}"))
            .to_string()
    };
    // after the method: MiB/s, CPU s/GiB, syscalls/MiB, mode sw/chunk, ctx sw/MiB,
    // user-space bytes (2 words), CPU copies
    let fields = |method: &str| -> Vec<String> {
        let l = line(method);
        l[method.len()..]
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    let read_write = fields("read+write");
    assert!(
        read_write[0].parse::<f64>().unwrap() > 0.0,
        "{read_write:?}"
    );
    assert_eq!(read_write[5..], ["4.0", "MiB", "2.00"]);
    assert_eq!(fields("mmap+write")[5..], ["4.0", "MiB", "1.00"]);
    assert_eq!(fields("sendfile")[5..], ["0", "B", "0.00"]);
    assert_eq!(fields("splice")[5..], ["0", "B", "0.00"]);
    // The classic table's context switches: two per syscall, per 2 MiB chunk.
    let switches = |method: &str| fields(method)[3].parse::<f64>().unwrap();
    assert!(switches("read+write") >= 4.0, "{table}");
    assert!(switches("sendfile") >= 2.0, "{table}");
    assert!(switches("sendfile") < switches("read+write"), "{table}");
    assert!(switches("splice") >= 4.0, "{table}");
    if !has_tls_ulp() {
        assert!(line("kTLS sendfile").contains("unavailable: the kernel has no `tls` ULP"));
    }
    let tls = fields("userspace TLS");
    assert!(tls[0].parse::<f64>().unwrap() > 0.0, "{tls:?}");
    assert_eq!(tls[5..7], ["4.0", "MiB"]);
    assert!(table.contains("recommendation: "), "{table}");
}

#[test]
fn a_given_file_split_over_connections_is_sent_whole_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("payload.bin");
    let size = 5 * MIB + 123;
    let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let report = bench_json(&[
        "--file",
        path.to_str().unwrap(),
        "--connections",
        "3",
        "--rounds",
        "1",
        "--json",
    ]);
    assert_eq!(num(&report, "size"), size);
    assert_eq!(num(&report, "connections"), 3);
    assert!(
        report["file"].as_str().unwrap().contains("payload.bin"),
        "{report:#}"
    );
    for method in [
        "read+write",
        "mmap+write",
        "sendfile",
        "splice",
        "O_DIRECT+write",
    ] {
        assert_measured(row(&report, method), size);
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        data,
        "the user's file is untouched"
    );
}

#[test]
fn bad_arguments_exit_64_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let cases: [(&[&str], &str); 9] = [
        (&["--size", "0"], "at least 1 byte"),
        (&["--size", "1.5GiB"], "invalid size"),
        (&["--size", "8m"], "ambiguous unit"),
        (&["--connections", "0"], "invalid number of connections"),
        (&["--connections", "lots"], "invalid number of connections"),
        (&["--rounds", "0"], "invalid number of rounds"),
        (&["--size", "8MiB", "--file", "x"], "cannot be used with"),
        (&["--file", missing.to_str().unwrap()], "open"),
        (&["--file", empty.to_str().unwrap()], "the file is empty"),
    ];
    for (args, message) in cases {
        let out = bench(args);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let out = bench(&["--file", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a regular file"),
        "{}",
        stderr(&out)
    );
    let out = bench(&["--config", "ferry.toml"]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("reads no configuration"),
        "{}",
        stderr(&out)
    );
    let out = bench(&["--bogus"]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
}

#[test]
fn a_filesystem_refusing_o_direct_gets_an_unavailable_row_and_no_threshold() {
    if !cfg!(debug_assertions) {
        eprintln!("skipped: FERRY_FAULT_DIRECTIO only works in debug builds");
        return;
    }
    // Debug builds: setting O_DIRECT fails with EINVAL, as on ramfs (or tmpfs before 6.6).
    let args = ["bench", "--size", "4MiB", "--rounds", "1", "--json"];
    let child = Command::new(BIN)
        .args(args)
        .env("FERRY_FAULT_DIRECTIO", "EINVAL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait(child, &args);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let direct = row(&report, "O_DIRECT+write");
    assert_eq!(direct["status"], "unavailable", "{direct:#}");
    let reason = direct["reason"].as_str().unwrap();
    assert!(reason.contains("refuses O_DIRECT (EINVAL"), "{reason}");
    assert!(
        direct.get("bytes").is_none(),
        "no figures for a row that did not run"
    );
    for method in ["read+write", "sendfile", "splice"] {
        assert_measured(row(&report, method), 4 * MIB);
    }
    let advice = report["recommendation"][1].as_str().unwrap();
    assert!(
        advice.starts_with("leave [io] directio_threshold off"),
        "{advice}"
    );
    assert!(advice.contains("refuses O_DIRECT"), "{advice}");
}

/// The directory in the report's `"generated in DIR (FS, unlinked)"`.
fn generated_dir(file: &str) -> std::path::PathBuf {
    let rest = file.strip_prefix("generated in ").expect(file);
    let end = rest.rfind(" (").expect(file);
    rest[..end].into()
}

/// Whether the filesystem of `dir` takes O_DIRECT: a file of our own there, set to it.
fn direct_io_works_in(dir: &Path) -> bool {
    let probe = tempfile::NamedTempFile::new_in(dir).unwrap();
    let flags = rustix::fs::fcntl_getfl(probe.as_file()).unwrap();
    rustix::fs::fcntl_setfl(probe.as_file(), flags | rustix::fs::OFlags::DIRECT).is_ok()
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn the_generated_file_never_appears_and_is_gone_after_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    // Big enough to still be running when interrupted.
    let args = ["--size", "512MiB", "--rounds", "100", "--json"];
    let mut child = spawn(&args, Some(dir.path()));
    // Wait until the file is being written: the process's own disk writes grow.
    let io = format!("/proc/{}/io", child.id());
    let deadline = Instant::now() + DEADLINE;
    loop {
        assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
        let written = std::fs::read_to_string(&io).ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("wchar: "))
                .and_then(|v| v.trim().parse::<u64>().ok())
        });
        if written.is_some_and(|w| w >= 64 * MIB) {
            // Open, in the directory asked for, and without a name.
            let fds = std::fs::read_dir(format!("/proc/{}/fd", child.id())).unwrap();
            let targets: Vec<String> = fds
                .filter_map(|fd| std::fs::read_link(fd.unwrap().path()).ok())
                .map(|t| t.to_string_lossy().into_owned())
                .collect();
            let inside = format!("{}/", dir.path().display());
            assert!(
                targets
                    .iter()
                    .any(|t| t.starts_with(&inside) && t.ends_with(" (deleted)")),
                "{targets:?}"
            );
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "ferry bench ended before it was interrupted"
        );
        assert!(Instant::now() < deadline, "ferry bench wrote nothing");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Ctrl-C: SIGINT to the process.
    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("kill(2)");
    let out = wait(child, &args);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(2),
        "ended by the SIGINT: {:?}",
        out.status
    );
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
}
