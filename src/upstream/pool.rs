//! Idle keep-alive connections to the app, newest first. A connection is checked before reuse
//! (a non-blocking peek: the app may have closed it while idle), and the caller retries an
//! idempotent request once on a fresh connection if a reused one fails anyway.

use std::sync::Mutex;

use super::stream::UpStream;

/// At most `capacity` idle connections.
#[derive(Debug)]
pub struct Pool {
    idle: Mutex<Vec<UpStream>>,
    capacity: usize,
}

impl Pool {
    pub fn new(capacity: usize) -> Pool {
        Pool {
            idle: Mutex::new(Vec::with_capacity(capacity)),
            capacity,
        }
    }

    /// The most recently used idle connection that still looks open.
    pub fn take(&self) -> Option<UpStream> {
        loop {
            let stream = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()?;
            let mut probe = [0u8; 1];
            match crate::sys::peek(&stream, &mut probe) {
                // Nothing pending: the connection is idle and open.
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => return Some(stream),
                // Closed by the app, or bytes nobody asked for: not reusable.
                Ok(_) | Err(_) => continue,
            }
        }
    }

    /// Keeps `stream` for reuse, or drops it when the pool is full.
    pub fn put(&self, stream: UpStream) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.capacity {
            idle.push(stream);
        }
    }
}
