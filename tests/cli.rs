//! Command line: --version (commit, build date, rustc) and ferry_build_info, --help (the
//! environment overrides and RUST_LOG), `check` (the file named, line and column for every
//! error from the file, disk errors in the same run; listeners that overlap through a
//! wildcard address included), `health` (ready, and not), both ways to pass --config,
//! several listeners, the embedded default config
//! serving ./public, and what goes where: the access log alone on stdout, the listeners and
//! other diagnostics on stderr, colour only on a terminal.
mod common;

use common::*;
use std::fs;
use std::process::{Command, Output, Stdio};

fn run(args: &[&str]) -> Output {
    run_with(Command::new(BIN).args(args))
}

/// `line:column` (from 1) of the first `needle` in `text`.
fn at(text: &str, needle: &str) -> String {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in:\n{text}"));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("{line}:{column}")
}

fn run_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    run_with(Command::new(BIN).args(args).envs(env.iter().copied()))
}

fn run_with(cmd: &mut Command) -> Output {
    // bounded: `check`, `health` and `--version` must not start a server
    let mut child = cmd
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
            panic!("{cmd:?} did not exit within {DEADLINE:?}: {out:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// `ferry --version`: the version, then the commit, the build date and the compiler, one per
/// line; -V says the same. Returns (commit, rustc release).
fn version_lines() -> (String, String) {
    let out = run(&["--version"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(run(&["-V"]).stdout, out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let [first, commit, built, rustc] = lines[..] else {
        panic!("four lines expected:\n{stdout}");
    };
    assert_eq!(first, format!("ferry {}", env!("CARGO_PKG_VERSION")));
    let commit = commit.strip_prefix("commit ").expect(&stdout);
    // The commit of this checkout when there is one (the test builds from it).
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match head {
        Some(head) => assert_eq!(commit, head, "{stdout}"),
        None => assert_eq!(commit, "unknown", "{stdout}"),
    }
    let built = built.strip_prefix("built ").expect(&stdout);
    let b = built.as_bytes();
    assert!(
        built.len() == 20 && b[4] == b'-' && b[10] == b'T' && built.ends_with('Z'),
        "built YYYY-MM-DDTHH:MM:SSZ: {stdout}"
    );
    let release = rustc
        .strip_prefix("rustc ")
        .and_then(|r| r.split_whitespace().next())
        .expect(&stdout);
    (commit.to_string(), release.to_string())
}

#[test]
fn version_prints_commit_build_date_and_rustc() {
    version_lines();
}

/// Issue 17 point 5: the running build is in /metrics as ferry_build_info, with the labels
/// --version prints.
#[test]
fn build_info_metric_says_what_version_prints() {
    let (commit, rustc) = version_lines();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ferry.toml");
    fs::write(&path, Config::static_root(tmp.path()).to_toml()).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--config", path.to_str().unwrap()]);
    let server = Server::launch(cmd, 1, Some(tmp));
    let metrics = server.metrics();
    let series = metrics.series("ferry_build_info");
    assert_eq!(series.len(), 1, "{series:?}");
    let labels: Vec<(&str, &str)> = series[0]
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        labels,
        [
            ("commit", commit.as_str()),
            ("rustc", rustc.as_str()),
            ("version", env!("CARGO_PKG_VERSION")),
        ]
    );
    assert_eq!(series[0].value, 1.0);
}

/// `--help` says how to override a key from the environment and which variable sets the log
/// level (issue 17 point 5).
#[test]
fn help_names_the_environment_overrides_and_the_log_variable() {
    let out = run(&["--help"]);
    assert!(out.status.success(), "{out:?}");
    let help = String::from_utf8_lossy(&out.stdout);
    for want in [
        "FERRY__SECTION__KEY=VALUE",
        "FERRY__SERVER__LISTEN=0.0.0.0:8080",
        "RUST_LOG=",
        "config/ferry.toml",
    ] {
        assert!(help.contains(want), "{want:?} not in --help:\n{help}");
    }
}

/// `ferry health` asks the running ferry's admin listener (as the configuration, with its
/// environment overrides, names it; 0.0.0.0 is asked on loopback) for /readyz: 0 while it
/// serves, 1 once it is gone.
#[test]
fn health_says_whether_the_running_ferry_is_ready() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = Config::static_root(tmp.path());
    let path = tmp.path().join("ferry.toml");
    fs::write(&path, cfg.to_toml()).unwrap();
    let mut server = Server::start(&cfg);
    let admin = format!("0.0.0.0:{}", server.admin.port());
    let env = [("FERRY__ADMIN__LISTEN", admin.as_str())];
    let args = ["health", "--config", path.to_str().unwrap()];
    let out = run_env(&args, &env);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        stdout.starts_with(&format!(
            "ready: http://127.0.0.1:{}/readyz: HTTP/1.1 200",
            server.admin.port()
        )),
        "{stdout}"
    );
    server.signal("KILL");
    server.wait_exit(DEADLINE);
    let out = run_env(&args, &env);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("not ready: "),
        "{out:?}"
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
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("configuration ok: {}\n", path.display())
    );
}

/// Without --config, `check` checks the embedded default (its root ./public included) and
/// says so.
#[test]
fn check_names_the_embedded_default() {
    let tmp = tempfile::tempdir().unwrap();
    let check = |tmp: &TempDir| {
        run_with(
            Command::new(BIN)
                .arg("check")
                .current_dir(tmp.path())
                .env_remove("FERRY__SERVER__LISTEN"),
        )
    };
    let out = check(&tmp);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "location[0].root: public: No such file or directory (os error 2)\n\
         configuration invalid: embedded default: 1 error\n"
    );
    fs::create_dir(tmp.path().join("public")).unwrap();
    let out = check(&tmp);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "configuration ok: embedded default\n"
    );
}

/// Issue 17 point 6: one run reports the file's errors and what the file system says about
/// the rest (a missing root, a certificate that is not one, a key file that is missing, a
/// cache directory that cannot be created), each error from the file with its line and
/// column, and names the file; a value from the environment has no place in the file but
/// names its variable.
#[test]
fn check_reports_file_and_disk_errors_in_one_run_with_their_positions() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::create_dir(dir.join("ok")).unwrap();
    fs::write(dir.join("cert.pem"), "not a certificate\n").unwrap();
    fs::write(dir.join("a-file"), "x").unwrap();
    let d = dir.display();
    let toml = format!(
        "[server]
listen = [\"127.0.0.1:0\", \"nope\"]
header_timeout = \"ten\"
listn = 1

[admin]
listen = \"127.0.0.1:0\"

[tls]
listen = [\"127.0.0.1:0\"]
cert = \"{d}/cert.pem\"
key = \"{d}/missing.key\"

[upstream]
address = \"127.0.0.1:1\"

[cache]
dir = \"{d}/a-file/cache\"

[[location]]
prefix = \"/bad/\"
root = \"{d}/ok\"
expires = 3

[[location]]
prefix = \"/missing/\"
root = \"{d}/missing\"

[[location]]
prefix = \"/ok/\"
root = \"{d}/ok\"
"
    );
    let path = dir.join("ferry.toml");
    fs::write(&path, &toml).unwrap();
    let p = path.display();
    let out = run_with(
        Command::new(BIN)
            .args(["check", "--config", path.to_str().unwrap()])
            .env("FERRY__SERVER__SEND_TIMEOUT", "soon"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    let want = [
        format!("{p}:{}: server.listn: unknown key", at(&toml, "listn")),
        format!(
            "{p}:{}: server.listen[1]: invalid address \"nope\": expected \"ip:port\" with a \
             numeric ip, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\"",
            at(&toml, "\"nope\"")
        ),
        format!(
            "{p}:{}: server.header_timeout: invalid duration \"ten\": expected a number at \"ten\"",
            at(&toml, "\"ten\"")
        ),
        "server.send_timeout: invalid duration \"soon\": expected a number at \"soon\" (from \
         environment variable FERRY__SERVER__SEND_TIMEOUT)"
            .to_string(),
        format!(
            "{p}:{}: location[0].expires: invalid duration 3: add a unit, e.g. \"3s\"",
            at(&toml, "3\n")
        ),
        format!(
            "{p}:{}: location[1].root: {d}/missing: No such file or directory (os error 2)",
            at(&toml, &format!("\"{d}/missing\""))
        ),
        format!(
            "{p}:{}: tls.cert: {d}/cert.pem: no certificate in the file",
            at(&toml, &format!("\"{d}/cert.pem"))
        ),
        format!(
            "{p}:{}: tls.key: {d}/missing.key: I/O error: No such file or directory (os error 2)",
            at(&toml, &format!("\"{d}/missing.key"))
        ),
        format!(
            "{p}:{}: cache.dir: {d}/a-file/cache: cannot be created: {d}/a-file is not a directory",
            at(&toml, &format!("\"{d}/a-file"))
        ),
        format!("configuration invalid: {p}: 9 errors"),
    ];
    assert_eq!(stderr.lines().collect::<Vec<_>>(), want, "{stderr}");
    assert!(out.stdout.is_empty(), "{out:?}");
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
    // Each line is `FILE:LINE:COLUMN: KEY: message`.
    let lines: Vec<&str> = stderr.lines().map(str::trim).collect();
    let file = format!("{}:", path.display());
    let mut missing = Vec::new();
    for key in [
        "server.listn",
        "server.header_timeout",
        "server.access_log",
        "io.send_path",
    ] {
        let found = lines.iter().find_map(|l| {
            let rest = l.strip_prefix(&file)?;
            let (position, rest) = rest.split_once(": ")?;
            let (line, column) = position.split_once(':')?;
            line.parse::<usize>().ok()?;
            column.parse::<usize>().ok()?;
            rest.strip_prefix(&format!("{key}: "))
        });
        match found {
            Some(message) if !message.is_empty() => {}
            _ => missing.push(key),
        }
    }
    assert!(
        missing.is_empty(),
        "no `FILE:LINE:COLUMN: KEY: message` line for {missing:?} in stderr:\n{stderr}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with(": server.listn: unknown key")),
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

/// Issue 13 point 7: a public listener on a wildcard address and the admin listener on a
/// specific one with the same port used to pass the check, and at run time the loopback
/// requests went to the admin listener (SO_REUSEPORT lets both bind). Both keys are named.
/// `ferry check` binds nothing, so the fixed port here is never opened.
#[test]
fn check_rejects_listeners_that_share_a_port_through_a_wildcard() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            vec!["0.0.0.0:19090"],
            "127.0.0.1:19090",
            "admin.listen: 127.0.0.1:19090 overlaps server.listen[0] = 0.0.0.0:19090 \
             (a wildcard address on the same port)",
        ),
        (
            vec!["127.0.0.1:8080", "127.0.0.1:19090"],
            "[::]:19090",
            "admin.listen: [::]:19090 overlaps server.listen[1] = 127.0.0.1:19090 \
             (a wildcard address on the same port)",
        ),
        (
            vec!["[::]:19080", "127.0.0.1:19080"],
            "127.0.0.1:19090",
            "server.listen[1]: 127.0.0.1:19080 overlaps server.listen[0] = [::]:19080 \
             (a wildcard address on the same port)",
        ),
    ];
    for (listen, admin, want) in cases {
        let mut cfg = Config::static_root(tmp.path());
        cfg.listen = listen.iter().map(|l| l.to_string()).collect();
        cfg.admin_listen = admin.into();
        let path = tmp.path().join("overlap.toml");
        let toml = cfg.to_toml();
        fs::write(&path, &toml).unwrap();
        let out = run(&["check", "--config", path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // The error sits at the value of the key it names.
        let (key, rest) = want.split_once(": ").unwrap();
        let value = format!("\"{}\"", rest.split(' ').next().unwrap());
        let want = format!("{}:{}: {key}: {rest}", path.display(), at(&toml, &value));
        let summary = format!("configuration invalid: {}: 1 error", path.display());
        assert_eq!(
            (out.status.code(), stderr.lines().collect::<Vec<_>>()),
            (Some(64), vec![want.as_str(), summary.as_str()]),
            "server.listen = {listen:?}, admin.listen = {admin:?}\nstdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// Issue 13 point 8: with the JSON access log on, ferry's stdout is the access log and
/// nothing else (each line parses as JSON), the `listening` lines and the other diagnostics
/// go to stderr, and neither stream carries ANSI colour codes when it is not a terminal (here
/// both are pipes; RUST_LOG=debug so that stderr has plenty of diagnostics).
#[test]
fn stdout_is_the_json_access_log_alone_and_pipes_get_no_colour() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("hello.txt"), b"hi\n").unwrap();
    let mut cfg = Config::static_root(tmp.path());
    cfg.access_log = "json".into();
    let path = tmp.path().join("ferry.toml");
    fs::write(&path, cfg.to_toml()).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--config", path.to_str().unwrap()])
        .env("RUST_LOG", "debug")
        .env_remove("NO_COLOR");
    let mut server = Server::launch(cmd, 1, Some(tmp));
    let (http, admin) = (server.addr(), server.admin);
    let hello = server.get("/static/hello.txt");
    let missing = server.get("/static/missing.txt");
    assert_eq!((hello.status, hello.body.as_slice()), (200, &b"hi\n"[..]));
    assert_eq!(missing.status, 404);
    poll_until("two access log lines", DEADLINE, || {
        (server.stdout_lines().len() >= 2).then_some(())
    });
    server.signal("TERM");
    assert!(server.wait_exit(DEADLINE).success());
    let (stdout, stderr) = server.all_output(DEADLINE);

    // One line per response, in the order the responses finished.
    let mut statuses: Vec<(String, u64)> = stdout
        .iter()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line:?}"));
            let target = v["target"].as_str().unwrap_or_default().to_string();
            (target, v["status"].as_u64().unwrap_or_default())
        })
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [
            ("/static/hello.txt".to_string(), 200),
            ("/static/missing.txt".to_string(), 404)
        ],
        "stdout must be the two access log lines alone:\n{}",
        stdout.join("\n")
    );
    for want in [
        format!("listening http {http}"),
        format!("listening admin {admin}"),
    ] {
        assert!(
            stderr.contains(&want),
            "no {want:?} line on stderr:\n{}",
            stderr.join("\n")
        );
    }
    assert!(
        stderr.len() > 2,
        "RUST_LOG=debug gives diagnostics besides the listeners:\n{}",
        stderr.join("\n")
    );
    for (name, lines) in [("stdout", &stdout), ("stderr", &stderr)] {
        let coloured: Vec<&String> = lines.iter().filter(|l| l.contains("\x1b[")).collect();
        assert!(
            coloured.is_empty(),
            "ANSI escapes on {name}, which is a pipe:\n{coloured:#?}"
        );
    }
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

/// Issue 17 point 9: the minimal config at the top of the README is valid as printed (its
/// root made real) and serves its static location.
#[test]
fn the_readme_minimal_config_checks_and_serves() {
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("\n## Beside an app: a minimal config\n")
        .nth(1)
        .expect("README.md has the minimal config section");
    let snippet = section
        .split("```toml\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("the section has a toml snippet");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("static");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("a.css"), b"body { margin: 0 }\n").unwrap();
    let toml = snippet.replace("/srv/app/static", root.to_str().unwrap());
    assert_ne!(toml, snippet, "the snippet's root is /srv/app/static");
    let path = tmp.path().join("ferry.toml");
    fs::write(&path, &toml).unwrap();
    let out = run(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(
        (out.status.code(), String::from_utf8_lossy(&out.stdout)),
        (
            Some(0),
            format!("configuration ok: {}\n", path.display()).into()
        ),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Served on free ports (the snippet's own are fixed).
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--config", path.to_str().unwrap()])
        .env("FERRY__SERVER__LISTEN", "127.0.0.1:0")
        .env("FERRY__ADMIN__LISTEN", "127.0.0.1:0");
    let server = Server::launch(cmd, 1, Some(tmp));
    let r = server.get("/static/a.css");
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"body { margin: 0 }\n"[..])
    );
    assert_eq!(server.admin_get("/readyz").status, 200);
}
