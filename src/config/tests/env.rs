//! Environment overrides through the whole pipeline: they win over the file, their values are
//! validated like the file's, and variables that name no key are errors.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::Command;

use super::{LOCATION, addr, load_err, load_ok, secs};
use crate::config::{AccessLog, Config, SendPathSetting};

/// Set in the child processes of the process-environment tests (not a `FERRY__` name).
const CHILD: &str = "FERRY_CONFIG_TEST_CHILD";

/// Runs the test `name` of this module in a child process of this test binary with `vars`
/// added to its environment (the only safe way to give `Config::load` a real environment),
/// and asserts that it ran and passed.
fn run_in_child(name: &str, vars: &[(&str, &OsStr)]) {
    let module = module_path!()
        .split_once("::")
        .map_or(module_path!(), |(_, path)| path);
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let output = Command::new(exe)
        .args([&format!("{module}::{name}"), "--exact", "--test-threads=1"])
        .env(CHILD, "1")
        .envs(vars.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child {name} failed:\n{stdout}\n{stderr}"
    );
}

#[test]
fn environment_overrides_win_over_the_file() {
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:8080\"]\nheader_timeout = \"10s\"\n\
         [admin]\nlisten = \"127.0.0.1:9090\"\n{LOCATION}"
    );
    let config = load_ok(
        &text,
        &[
            ("FERRY__SERVER__HEADER_TIMEOUT", "5s"),
            ("FERRY__SERVER__LISTEN", "127.0.0.1:1, [::1]:2"),
            ("FERRY__SERVER__MAX_CONNECTIONS", "20000"),
            ("FERRY__SERVER__ACCESS_LOG", "off"),
            ("FERRY__ADMIN__LISTEN", "0.0.0.0:9100"),
            ("ferry__io__send_path", "buffered"),
            ("FERRY__IO__CHUNK", "65536"),
            ("FERRY_SERVER__LISTEN", "not an override: one underscore"),
            ("PATH", "/usr/bin"),
        ],
    );
    assert_eq!(config.server.header_timeout, secs(5));
    assert_eq!(config.server.listen, [addr("127.0.0.1:1"), addr("[::1]:2")]);
    assert_eq!(config.server.max_connections.get(), 20_000);
    assert_eq!(config.server.access_log, AccessLog::Off);
    assert_eq!(config.admin.listen, addr("0.0.0.0:9100"));
    assert_eq!(config.io.send_path, SendPathSetting::Buffered);
    assert_eq!(config.io.chunk.get(), 65_536);
    // Untouched keys keep the file's or the default value.
    assert_eq!(config.server.keepalive_timeout, secs(60));

    let config = load_ok(LOCATION, &[("FERRY__SERVER__LISTEN", "127.0.0.1:7")]);
    assert_eq!(config.server.listen, [addr("127.0.0.1:7")]);
    let config = load_ok(LOCATION, &[("FERRY__IO__CHUNK", "4MiB")]);
    assert_eq!(config.io.chunk.get(), 4 << 20);
}

#[test]
fn environment_values_are_validated_and_name_their_variable() {
    let errors = load_err(
        LOCATION,
        &[
            ("FERRY__SERVER__LISTEN", "127.0.0.1:1,nowhere"),
            ("FERRY__SERVER__HEADER_TIMEOUT", "10"),
            ("FERRY__SERVER__MAX_CONNECTIONS", "lots"),
            ("FERRY__ADMIN__LISTEN", "127.0.0.1:1,127.0.0.1:2"),
        ],
    );
    assert_eq!(
        errors,
        [
            "server.listen[1]: invalid address \"nowhere\": expected \"ip:port\" with a numeric \
             ip, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\" \
             (from environment variable FERRY__SERVER__LISTEN)",
            "server.header_timeout: invalid duration 10: add a unit, e.g. \"10s\" \
             (from environment variable FERRY__SERVER__HEADER_TIMEOUT)",
            "server.max_connections: expected a positive integer, found string \"lots\" \
             (from environment variable FERRY__SERVER__MAX_CONNECTIONS)",
            "admin.listen: invalid address \"127.0.0.1:1,127.0.0.1:2\": expected \"ip:port\" \
             with a numeric ip, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\" \
             (from environment variable FERRY__ADMIN__LISTEN)",
        ]
    );
}

#[test]
fn unknown_environment_keys_are_errors_alongside_file_errors() {
    let errors = load_err(
        &format!("[server]\nlistn = 1\n{LOCATION}"),
        &[
            ("FERRY__SERVER__LISTN", "127.0.0.1:1"),
            ("FERRY__LOCATION__0__ROOT", "/srv"),
            ("FERRY__SERVER__HEADER_TIMEOUT", "5s"),
        ],
    );
    assert_eq!(
        errors,
        [
            "server.listn: unknown key",
            "location.0.root: locations cannot be set from the environment \
             (FERRY__LOCATION__0__ROOT); edit the config file",
            "server.listn: unknown key (from environment variable FERRY__SERVER__LISTN)",
        ]
    );
}

#[test]
fn a_number_for_a_list_from_the_environment_is_one_bad_element() {
    assert_eq!(
        load_err(LOCATION, &[("FERRY__SERVER__LISTEN", "8080")]),
        [
            "server.listen[0]: expected an \"ip:port\" string, e.g. \"127.0.0.1:8080\", \
          found integer 8080 (from environment variable FERRY__SERVER__LISTEN)"
        ]
    );
    assert_eq!(
        load_err(LOCATION, &[("FERRY__SERVER__LISTEN", "")]),
        [
            "server.listen[0]: invalid address \"\": expected \"ip:port\" with a numeric ip, \
          e.g. \"127.0.0.1:8080\" or \"[::1]:8080\" \
          (from environment variable FERRY__SERVER__LISTEN)"
        ]
    );
}

#[test]
fn an_override_can_clash_with_the_file() {
    let text = format!("[admin]\nlisten = \"127.0.0.1:9100\"\n{LOCATION}");
    assert_eq!(
        load_err(&text, &[("FERRY__SERVER__LISTEN", "127.0.0.1:9100")]),
        ["admin.listen: 127.0.0.1:9100 is also server.listen[0]"]
    );
}

#[test]
fn the_process_environment_overrides_the_embedded_default() {
    if std::env::var_os(CHILD).is_none() {
        let vars = [
            ("FERRY__SERVER__HEADER_TIMEOUT", OsStr::new("7s")),
            (
                "FERRY__SERVER__LISTEN",
                OsStr::new("127.0.0.1:1,127.0.0.1:2"),
            ),
        ];
        return run_in_child(
            "the_process_environment_overrides_the_embedded_default",
            &vars,
        );
    }
    let config = Config::embedded_default().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.server.header_timeout, secs(7));
    assert_eq!(
        config.server.listen,
        [addr("127.0.0.1:1"), addr("127.0.0.1:2")]
    );
}

#[test]
fn the_process_environment_is_checked_by_load() {
    if std::env::var_os(CHILD).is_none() {
        let vars = [
            ("FERRY__SERVER__LISTN", OsStr::new("127.0.0.1:1")),
            ("FERRY__SERVER__ACCESS_LOG", OsStr::from_bytes(b"j\xffson")),
        ];
        return run_in_child("the_process_environment_is_checked_by_load", &vars);
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("ferry.toml");
    std::fs::write(&path, LOCATION).unwrap_or_else(|e| panic!("{e}"));
    let errors = Config::load(&path)
        .err()
        .unwrap_or_else(|| panic!("loaded"));
    assert_eq!(
        errors.to_string(),
        "server.access_log: value is not valid UTF-8 \
         (from environment variable FERRY__SERVER__ACCESS_LOG)\n\
         server.listn: unknown key (from environment variable FERRY__SERVER__LISTN)"
    );
}
