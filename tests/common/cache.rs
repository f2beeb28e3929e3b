//! Helpers for the disk cache tests: ferry in front of the test app with a `[cache]` section
//! over a directory the test owns (so it survives a restart), and targets on the app's
//! `/cacheable/` endpoint.

use super::app::{App, ProxyConfig, qenc};
use super::*;

/// A cache directory, a directory for the files the app serves, and the app.
pub struct CacheFixture {
    pub app: App,
    pub cache_dir: PathBuf,
    pub files: PathBuf,
    _tmp: TempDir,
}

impl CacheFixture {
    pub fn new() -> CacheFixture {
        let tmp = tempfile::tempdir().unwrap();
        let cache_dir = tmp.path().join("cache");
        let files = tmp.path().join("files");
        std::fs::create_dir_all(&files).unwrap();
        CacheFixture {
            app: App::start(),
            cache_dir,
            files,
            _tmp: tmp,
        }
    }

    /// Writes `len` deterministic bytes (seed `seed`) as `files/name`; returns its path.
    pub fn file(&self, name: &str, len: u64, seed: u64) -> PathBuf {
        let path = self.files.join(name);
        pattern_file(&path, len, seed);
        path
    }

    /// Starts ferry in front of the app with `[cache]` over `cache_dir` and `extra` keys.
    pub fn start(&self, extra: &str) -> Server {
        self.start_with(ProxyConfig::new(&self.app.address), extra)
    }

    pub fn start_with(&self, proxy: ProxyConfig, extra: &str) -> Server {
        self.start_env(proxy, extra, &[])
    }

    /// `start_with` with environment variables for ferry (e.g. FERRY_FAULT_*).
    pub fn start_env(&self, proxy: ProxyConfig, extra: &str, env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferry.toml");
        let toml = format!(
            "{}\n[cache]\ndir = {:?}\n{extra}\n",
            proxy.to_toml(),
            self.cache_dir.to_str().unwrap()
        );
        std::fs::write(&path, toml).unwrap();
        let mut cmd = std::process::Command::new(BIN);
        cmd.arg("serve").arg("--config").arg(&path);
        cmd.envs(env.iter().copied());
        Server::launch(cmd, 1, Some(dir))
    }

    /// How many requests the app has logged for `target`.
    pub fn app_count(&self, target: &str) -> usize {
        self.app.requests_to(target).len()
    }

    /// The files in the cache directory (name, size).
    pub fn cache_files(&self) -> Vec<(String, u64)> {
        let Ok(entries) = std::fs::read_dir(&self.cache_dir) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .map(|e| {
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                (e.file_name().to_string_lossy().into_owned(), size)
            })
            .collect()
    }
}

/// `/cacheable/<name>?path=<file>` with `h=` headers from `headers` ("Name: value").
pub fn cacheable(name: &str, file: &Path, headers: &[&str]) -> String {
    let mut target = format!("/cacheable/{name}?path={}", qenc(file.to_str().unwrap()));
    for h in headers {
        let (n, v) = h.split_once(':').unwrap();
        target.push_str(&format!("&h={}", qenc(&format!("{n}:{}", v.trim()))));
    }
    target
}

/// Polls /metrics until `ferry_cache_objects` is `n` (fills commit just after the response).
pub fn wait_objects(server: &Server, n: usize) {
    poll_until(&format!("ferry_cache_objects == {n}"), DEADLINE, || {
        (server.metrics().get("ferry_cache_objects", &[]) as usize == n).then_some(())
    });
}

/// One GET on a fresh connection with `headers`, returning the response.
pub fn get_with(server: &Server, target: &str, headers: &[(&str, &str)]) -> Response {
    server.request("GET", target, headers)
}

/// `X-Cache` of a response ("" when absent).
pub fn x_cache(r: &Response) -> String {
    r.header("x-cache").unwrap_or("").to_string()
}
