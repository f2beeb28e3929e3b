//! A real Prometheus server for tests/deploy.rs: started on 127.0.0.1:0 with a config and a
//! data directory of its own, its port read back from /proc (the listening socket among its
//! file descriptors), queried over its HTTP API with curl. Killed on drop.

use super::common::tls::KillOnDrop;
use super::common::*;
use super::tools::{both, run, tool};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub struct Prometheus {
    _child: KillOnDrop,
    pub addr: SocketAddr,
    log: PathBuf,
}

/// Inodes of the TCP sockets in LISTEN state on 127.0.0.1, with their ports (/proc/net/tcp).
fn listening_sockets() -> Vec<(u64, u16)> {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address rem_address st ... inode: 0A is LISTEN; 0100007F is 127.0.0.1
            let (ip, port) = f.get(1)?.split_once(':')?;
            if f.get(3) != Some(&"0A") || ip != "0100007F" {
                return None;
            }
            Some((f.get(9)?.parse().ok()?, u16::from_str_radix(port, 16).ok()?))
        })
        .collect()
}

/// The port `pid` listens on at 127.0.0.1, once it does.
fn listening_port(pid: u32) -> Option<u16> {
    let inodes: Vec<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|e| {
            let link = std::fs::read_link(e.ok()?.path()).ok()?;
            let link = link.to_str()?;
            link.strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect();
    listening_sockets()
        .into_iter()
        .find(|(inode, _)| inodes.contains(inode))
        .map(|(_, port)| port)
}

impl Prometheus {
    /// Writes `config` (JSON is YAML) into `dir` and starts `prometheus` on it; returns once
    /// /-/ready answers 200.
    pub fn start(dir: &Path, config: &Value) -> Prometheus {
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, serde_json::to_vec_pretty(config).unwrap()).unwrap();
        let log = dir.join("prometheus.log");
        let mut cmd = tool("prometheus");
        cmd.arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg("--web.listen-address=127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let child = KillOnDrop(cmd.spawn().expect("spawn prometheus"));
        let pid = child.0.id();
        let port = poll_until(
            "prometheus to listen on 127.0.0.1",
            Duration::from_secs(60),
            || listening_port(pid),
        );
        let prometheus = Prometheus {
            _child: child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
        };
        poll_until("prometheus /-/ready", Duration::from_secs(60), || {
            let out = run(prometheus.curl("/-/ready", &[]));
            (out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Ready"))
                .then_some(())
        });
        prometheus
    }

    fn curl(&self, path: &str, query: &[(&str, &str)]) -> Command {
        let mut c = curl();
        c.args(["-sS", "-G"]);
        for (k, v) in query {
            c.arg("--data-urlencode").arg(format!("{k}={v}"));
        }
        c.arg(format!("http://{}{path}", self.addr));
        c
    }

    /// GET `path` of the HTTP API; the JSON answer (whatever its status).
    pub fn api(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let out = run(self.curl(path, query));
        assert!(out.status.success(), "curl {path}: {}", both(&out));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "prometheus {path} answered no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// An instant query: the result vector, or Prometheus's error (e.g. a parse error).
    pub fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let v = self.api("/api/v1/query", &[("query", expr)]);
        if v["status"] != "success" {
            return Err(format!("{}: {}", v["errorType"], v["error"]));
        }
        match v["data"]["resultType"].as_str() {
            Some("vector") => Ok(v["data"]["result"].as_array().cloned().unwrap_or_default()),
            // a scalar (e.g. `time()`) is one value
            Some("scalar") => Ok(vec![v["data"]["result"].clone()]),
            other => Err(format!("unexpected result type {other:?} for {expr}")),
        }
    }

    /// `label` of each series `expr` returns.
    pub fn label_set(&self, expr: &str, label: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .query(expr)
            .unwrap_or_else(|e| panic!("{expr}: {e}"))
            .iter()
            .filter_map(|s| s["metric"][label].as_str().map(str::to_string))
            .collect();
        out.sort();
        out
    }

    /// Prometheus's own log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
