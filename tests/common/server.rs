//! `Server`: the real ferry binary as a child process, its listeners parsed from stderr, its
//! stdout/stderr drained into memory, killed on drop.

use super::*;

#[derive(Default)]
struct Lines {
    lines: Vec<String>,
    closed: bool,
}

type Shared = Arc<(Mutex<Lines>, Condvar)>;

/// Drains a pipe line by line into a shared vector so the pipe never fills.
fn drain<R: Read + Send + 'static>(r: R) -> Shared {
    let shared: Shared = Arc::new((Mutex::new(Lines::default()), Condvar::new()));
    let s2 = shared.clone();
    thread::spawn(move || {
        let mut rd = BufReader::new(r);
        let mut line = Vec::new();
        loop {
            line.clear();
            match rd.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let s = String::from_utf8_lossy(&line)
                        .trim_end_matches(['\r', '\n'])
                        .to_string();
                    let (m, c) = &*s2;
                    m.lock().unwrap().lines.push(s);
                    c.notify_all();
                }
            }
        }
        let (m, c) = &*s2;
        m.lock().unwrap().closed = true;
        c.notify_all();
    });
    shared
}

fn parse_listening(lines: &[String], kind: &str) -> Vec<SocketAddr> {
    let prefix = format!("listening {kind} ");
    lines
        .iter()
        .filter_map(|l| l.trim().strip_prefix(prefix.as_str()))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect()
}

pub struct Server {
    child: Child,
    pub http: Vec<SocketAddr>,
    pub admin: SocketAddr,
    out: Shared,
    err: Shared,
    _dir: Option<TempDir>,
}

impl Server {
    pub fn start(cfg: &Config) -> Server {
        Server::start_env(cfg, &[])
    }

    /// Writes `cfg` to a temp file and runs `ferry serve --config FILE` with extra env vars.
    pub fn start_env(cfg: &Config, env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferry.toml");
        std::fs::write(&path, cfg.to_toml()).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("serve").arg("--config").arg(&path);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Server::launch(cmd, cfg.listen.len(), Some(dir))
    }

    /// Runs `ferry serve --config PATH ARGS...` on a config file the test keeps (and may
    /// rewrite, for a reload).
    pub fn start_file(path: &Path, args: &[&str]) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve").arg("--config").arg(path).args(args);
        Server::launch(cmd, 1, None)
    }

    /// Spawns `cmd` and waits (bounded) for `expected_http` http listeners and the admin listener.
    pub fn launch(mut cmd: Command, expected_http: usize, dir: Option<TempDir>) -> Server {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("failed to spawn ferry binary");
        let out = drain(child.stdout.take().unwrap());
        let err = drain(child.stderr.take().unwrap());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            {
                // ferry prints its listeners on stderr; stdout is the access log alone.
                let (m, c) = &*err;
                let g = m.lock().unwrap();
                let http = parse_listening(&g.lines, "http");
                let admin = parse_listening(&g.lines, "admin");
                if http.len() >= expected_http && !admin.is_empty() {
                    drop(g);
                    return Server {
                        child,
                        http,
                        admin: admin[0],
                        out,
                        err,
                        _dir: dir,
                    };
                }
                let closed = g.closed;
                if !closed {
                    let _ = c.wait_timeout(g, Duration::from_millis(100)).unwrap();
                }
            }
            let exited = child.try_wait().unwrap();
            if exited.is_some() || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                // give the stderr drain thread a bounded moment to finish
                let (m, c) = &*err;
                let mut g = m.lock().unwrap();
                let until = Instant::now() + Duration::from_secs(2);
                while !g.closed && Instant::now() < until {
                    g = c.wait_timeout(g, Duration::from_millis(100)).unwrap().0;
                }
                panic!(
                    "ferry did not report its listeners (exit: {:?})\nstdout:\n{}\nstderr:\n{}",
                    exited,
                    out.0.lock().unwrap().lines.join("\n"),
                    g.lines.join("\n")
                );
            }
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.http[0]
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn connect(&self) -> Conn {
        Conn::connect(self.addr())
    }

    /// One GET on a fresh connection.
    pub fn get(&self, target: &str) -> Response {
        self.request("GET", target, &[])
    }

    /// One request on a fresh connection.
    pub fn request(&self, method: &str, target: &str, headers: &[(&str, &str)]) -> Response {
        let mut c = self.connect();
        c.send(&req(method, target, headers));
        c.read_response(method)
    }

    pub fn metrics(&self) -> Metrics {
        Metrics::scrape(self.admin)
    }

    pub fn admin_get(&self, target: &str) -> Response {
        let mut c = Conn::connect(self.admin);
        c.send(&req("GET", target, &[("Connection", "close")]));
        c.read_response("GET")
    }

    pub fn stdout_lines(&self) -> Vec<String> {
        self.out.0.lock().unwrap().lines.clone()
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        self.err.0.lock().unwrap().lines.clone()
    }

    /// Every line of stdout and of stderr once ferry has closed both (call it after the
    /// process has exited); waits at most `timeout` for the drains to reach end of file.
    pub fn all_output(&self, timeout: Duration) -> (Vec<String>, Vec<String>) {
        let closed = |shared: &Shared| {
            let (m, c) = &**shared;
            let mut g = m.lock().unwrap();
            let until = Instant::now() + timeout;
            while !g.closed && Instant::now() < until {
                g = c.wait_timeout(g, Duration::from_millis(100)).unwrap().0;
            }
            assert!(g.closed, "ferry's output did not end within {timeout:?}");
            g.lines.clone()
        };
        (closed(&self.out), closed(&self.err))
    }

    /// Number of open file descriptors of the server process (/proc/PID/fd).
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("read /proc/PID/fd")
            .count()
    }

    /// Sends a signal by name ("TERM", "INT", ...) with kill(1).
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill(1)");
        assert!(st.success(), "kill -{sig} failed");
    }

    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = &mut self.child;
        poll_until("ferry process exit", timeout, || child.try_wait().unwrap())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            let err = self.err.0.lock().unwrap();
            let tail: Vec<&String> = err.lines.iter().rev().take(40).collect();
            eprintln!("---- ferry stderr (last {} lines) ----", tail.len());
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}
