//! Idle keep-alive connections to the app, newest first. A connection is checked before reuse
//! (a non-blocking peek: the app may have closed it while idle), and the caller retries an
//! idempotent request once on a fresh connection if a reused one fails anyway.
//!
//! Each idle connection is kept with the runtime it was opened on, and only handed to a task
//! of that runtime: a socket's readiness comes from the reactor it was registered with, so a
//! connection worker (one single-threaded runtime per core, see `server`) that took another
//! worker's socket would wait on that worker's thread for every read and write.

use std::sync::Mutex;

use tokio::runtime::{Handle, Id};

use super::stream::AppSocket;

/// At most `capacity` idle connections.
#[derive(Debug)]
pub struct Pool {
    idle: Mutex<Vec<(Option<Id>, AppSocket)>>,
    capacity: usize,
}

/// The runtime the caller runs on (`None` outside any).
fn runtime() -> Option<Id> {
    Handle::try_current().ok().map(|handle| handle.id())
}

impl Pool {
    pub fn new(capacity: usize) -> Pool {
        Pool {
            idle: Mutex::new(Vec::with_capacity(capacity)),
            capacity,
        }
    }

    /// The most recently used idle connection of the caller's runtime that still looks open.
    pub fn take(&self) -> Option<AppSocket> {
        let here = runtime();
        loop {
            let stream = {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                let newest = idle.iter().rposition(|(runtime, _)| *runtime == here)?;
                idle.remove(newest).1
            };
            let mut probe = [0u8; 1];
            match crate::sys::peek(&stream, &mut probe) {
                // Nothing pending: the connection is idle and open.
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => return Some(stream),
                // Closed by the app, or bytes nobody asked for: not reusable.
                Ok(_) | Err(_) => continue,
            }
        }
    }

    /// Keeps `stream` for reuse by the caller's runtime. When the pool is full the oldest idle
    /// connection makes room (it is the likeliest to have been closed by the app anyway).
    pub fn put(&self, stream: AppSocket) {
        if self.capacity == 0 {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() >= self.capacity {
            idle.remove(0);
        }
        idle.push((runtime(), stream));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::runtime::{Builder, Runtime};

    fn runtime() -> Runtime {
        Builder::new_current_thread().enable_all().build().unwrap()
    }

    /// An idle connection goes back only to tasks of the runtime that opened it; a full pool
    /// lets its oldest connection go.
    #[test]
    fn idle_connections_stay_with_their_runtime() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let open = |rt: &Runtime| {
            rt.block_on(async {
                let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                let port = stream.local_addr().unwrap().port();
                (AppSocket::Tcp(stream), port)
            })
        };
        let local_port = |stream: &AppSocket| match stream {
            AppSocket::Tcp(stream) => stream.local_addr().unwrap().port(),
            AppSocket::Unix(_) => unreachable!("tcp only here"),
        };
        let (a, b) = (runtime(), runtime());
        let pool = Pool::new(2);
        let (first, first_port) = open(&a);
        a.block_on(async { pool.put(first) });
        assert!(
            b.block_on(async { pool.take() }).is_none(),
            "b took a's socket"
        );
        let taken = a.block_on(async { pool.take() }).expect("a's own socket");
        assert_eq!(local_port(&taken), first_port);

        // Full: a's two, then b's one pushes the oldest (a's first) out.
        a.block_on(async { pool.put(taken) });
        let (second, second_port) = open(&a);
        a.block_on(async { pool.put(second) });
        let (third, third_port) = open(&b);
        b.block_on(async { pool.put(third) });
        let from_b = b.block_on(async { pool.take() }).expect("b's socket");
        assert_eq!(local_port(&from_b), third_port);
        let from_a = a.block_on(async { pool.take() }).expect("a's newer socket");
        assert_eq!(local_port(&from_a), second_port);
        assert!(
            a.block_on(async { pool.take() }).is_none(),
            "the oldest was let go"
        );
        drop(listener);
    }
}
