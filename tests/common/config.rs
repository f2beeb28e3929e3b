//! `Config`: a typed builder for ferry's TOML configuration, written to a temp file per test.

use super::*;

#[derive(Clone, Debug)]
pub struct Location {
    pub prefix: String,
    pub root: PathBuf,
    pub index: Option<String>,
    pub expires: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub listen: Vec<String>,
    pub header_timeout: String,
    pub keepalive_timeout: String,
    pub send_timeout: String,
    pub max_connections: u64,
    pub shutdown_grace: String,
    pub access_log: String,
    /// More `[server]` lines, as TOML (e.g. `add_header = [...]`).
    pub server_extra: String,
    pub admin_listen: String,
    pub send_path: String,
    pub chunk: String,
    pub locations: Vec<Location>,
}

fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Config {
    pub fn new() -> Config {
        Config {
            listen: vec!["127.0.0.1:0".into()],
            header_timeout: "10s".into(),
            keepalive_timeout: "60s".into(),
            send_timeout: "60s".into(),
            max_connections: 10000,
            shutdown_grace: "30s".into(),
            access_log: "text".into(),
            server_extra: String::new(),
            admin_listen: "127.0.0.1:0".into(),
            send_path: "auto".into(),
            chunk: "2MiB".into(),
            locations: Vec::new(),
        }
    }

    /// Config with a single `/static/` location rooted at `root`.
    pub fn static_root(root: &Path) -> Config {
        Config::new().location("/static/", root, Some("index.html"), None)
    }

    pub fn location(
        mut self,
        prefix: &str,
        root: &Path,
        index: Option<&str>,
        expires: Option<&str>,
    ) -> Config {
        self.locations.push(Location {
            prefix: prefix.into(),
            root: root.to_path_buf(),
            index: index.map(Into::into),
            expires: expires.map(Into::into),
        });
        self
    }

    pub fn send_path(mut self, p: &str) -> Config {
        self.send_path = p.into();
        self
    }

    pub fn to_toml(&self) -> String {
        let listen: Vec<String> = self.listen.iter().map(|l| toml_str(l)).collect();
        let mut s = format!(
            "[server]\nlisten = [{}]\nheader_timeout = {}\nkeepalive_timeout = {}\nsend_timeout = {}\n\
             max_connections = {}\nshutdown_grace = {}\naccess_log = {}\n{}\n[admin]\nlisten = {}\n\n\
             [io]\nsend_path = {}\nchunk = {}\n",
            listen.join(", "),
            toml_str(&self.header_timeout),
            toml_str(&self.keepalive_timeout),
            toml_str(&self.send_timeout),
            self.max_connections,
            toml_str(&self.shutdown_grace),
            toml_str(&self.access_log),
            self.server_extra,
            toml_str(&self.admin_listen),
            toml_str(&self.send_path),
            toml_str(&self.chunk),
        );
        for l in &self.locations {
            s.push_str(&format!(
                "\n[[location]]\nprefix = {}\nroot = {}\n",
                toml_str(&l.prefix),
                toml_str(l.root.to_str().expect("utf-8 path"))
            ));
            if let Some(i) = &l.index {
                s.push_str(&format!("index = {}\n", toml_str(i)));
            }
            if let Some(e) = &l.expires {
                s.push_str(&format!("expires = {}\n", toml_str(e)));
            }
        }
        s
    }
}
