//! The client side: listeners, the accept loops, connection limits and graceful shutdown.
//! Each accepted connection runs `conn::serve`, the HTTP/1.1 loop, in its own task (or
//! `h2::serve` when TLS negotiated HTTP/2, or when a plaintext connection's first bytes
//! were HTTP/2's preface: h2c), after its PROXY protocol header where the
//! listener requires one (`proxy_protocol`: the header's source becomes the peer) and its
//! TLS handshake; every task watches the `retire` token of the [`Generation`] (the
//! configuration) it was accepted under, which a reload or SIGTERM/SIGINT cancels. At
//! `server.max_connections` an accept loop closes the connection idle longest to make room
//! (`idle`).
//!
//! Requests go next to `route::Router`, replies out through `send::Sender`.

mod conn;
mod h2;
mod idle;
mod listener;
mod proxy_protocol;
mod shared;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use idle::Limit;
pub use listener::{bind, probe};
pub use shared::Shared;

use crate::tls::Tls;
use crate::transport::Transport;

/// Which of ferry's client listeners a socket is: its connections start plain or with a TLS
/// handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// A `server.listen` address.
    Http,
    /// A `tls.listen` address.
    Https,
}

impl ListenerKind {
    /// The config key the addresses of this kind come from.
    pub fn key(self) -> &'static str {
        match self {
            Self::Http => "server.listen",
            Self::Https => "tls.listen",
        }
    }

    /// The word in the "listening ..." lines and in logs.
    pub fn label(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

/// What new connections are served with: one configuration's shared state, its TLS side and
/// PROXY protocol settings, and the token that retires it. A reload publishes a new one;
/// each accept loop reads the current one per accepted connection, so a connection keeps the
/// generation it was accepted under. Retiring a generation (a reload, or shutdown) works on
/// its connections as shutdown does: idle keep-alive connections close, requests in flight
/// finish, then their connections close (nginx's old workers after a reload).
pub struct Generation {
    pub shared: Arc<Shared>,
    /// The TLS acceptor for `tls.listen` sockets, when there is a `[tls]` section.
    pub tls: Option<Arc<Tls>>,
    /// `server.proxy_protocol`.
    pub proxy_protocol: bool,
    /// `tls.proxy_protocol`.
    pub tls_proxy_protocol: bool,
    /// Cancelled when this generation is replaced, or at shutdown (a child of the server's
    /// shutdown token).
    pub retire: CancellationToken,
}

/// The current generation, as every accept loop sees it.
pub type Current = tokio::sync::watch::Receiver<Arc<Generation>>;

/// One client listener socket of a connection worker.
pub struct Listener {
    pub socket: TcpListener,
    pub kind: ListenerKind,
    /// Cancelled when this address is dropped from the configuration by a reload, or at
    /// shutdown: the loop stops accepting and drops its socket.
    pub close: CancellationToken,
}

/// Accepts on `listener` until its `close` token is cancelled, spawning one task per
/// connection on `tracker`, served with the generation current when it was accepted. At most
/// `server.max_connections` connections are served at once (shared across listeners and
/// connection workers through `limit`): past it, each accept loop holds the one connection it
/// has just accepted, closes the connection idle longest to make room for it (an idle
/// keep-alive connection, or one that has sent nothing yet), or if none is idle waits until a
/// permit frees or a connection becomes idle, and accepts no more meanwhile, so the backlog
/// holds the other clients rather than ferry accepting and dropping them. (A loop takes its
/// permit after `accept`, not before: a permit held by a loop waiting on an idle socket would
/// be kept from the connections queued on another worker's socket of the SO_REUSEPORT group.)
pub async fn accept_loop(listener: Listener, current: Current, limit: Limit, tracker: TaskTracker) {
    let Listener {
        socket: listener,
        kind,
        close,
    } = listener;
    let local = listener.local_addr().ok();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = close.cancelled() => break,
        };
        let (mut stream, peer): (_, SocketAddr) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                tracing::warn!(listener = ?local, error = %err, "accept failed");
                if is_resource_exhaustion(&err) {
                    // Out of descriptors: wait for connections to close instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                continue;
            }
        };
        let Some(slot) = limit.acquire(&close).await else {
            break;
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %err, "TCP_NODELAY");
        }
        let generation = Arc::clone(&current.borrow());
        let (tls, proxy_protocol) = match kind {
            ListenerKind::Http => (None, generation.proxy_protocol),
            ListenerKind::Https => match &generation.tls {
                Some(tls) => (Some(Arc::clone(tls)), generation.tls_proxy_protocol),
                // The reload that dropped [tls] closes this listener; a connection accepted
                // just before that has no TLS to be served with.
                None => continue,
            },
        };
        let shared = Arc::clone(&generation.shared);
        let shutdown = generation.retire.clone();
        drop(generation);
        // The task is what every idle connection keeps: the PROXY header read, the TLS
        // handshake and the HTTP/1.1 loop are each boxed while they run, so their states are
        // not all laid out in it. (A future awaited inside an async fn is stored in its
        // caller's state, and rustc does not overlap it with the slot it was built in:
        // unboxed, the task was 4016 bytes for a connection whose loop needs 1432.)
        tracker.spawn(async move {
            // Counted per worker: a burst of closes gives the heap back (see send::pool).
            let _open = crate::send::pool::Open::begin();
            let peer = if proxy_protocol {
                let timeout = shared.server.header_timeout;
                let read = proxy_protocol::read(&mut stream, peer, timeout, &shared.metrics);
                match Box::pin(read).await {
                    Some(source) => source,
                    None => return,
                }
            } else {
                peer
            };
            let transport = match tls {
                None => Some(Transport::Plain(stream)),
                Some(tls) => Box::pin(tls.accept(stream, &shared.metrics)).await,
            };
            if let Some(transport) = transport {
                serve(transport, peer, shared, shutdown, &slot).await;
            }
            drop(slot);
        });
    }
    tracing::debug!(listener = ?local, "stopped accepting");
}

/// Serves one connection, its transport set up, in the protocol it speaks: HTTP/2 when TLS
/// negotiated it, else HTTP/1.1, which hands back a plaintext connection that opens with
/// HTTP/2's preface (h2c) with the bytes it read, for HTTP/2.
async fn serve(
    transport: Transport,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    slot: &idle::Slot,
) {
    // Counted open until this returns, on every way out (a panic included).
    let _active = shared.open(transport.kind());
    let (transport, read) = if h2::negotiated(&transport) {
        (transport, BytesMut::new())
    } else {
        match Box::pin(conn::serve(transport, peer, &shared, &shutdown, slot)).await {
            Some(prefaced) => (prefaced.transport, prefaced.read),
            None => return,
        }
    };
    // Boxed: HTTP/2's state is not part of every HTTP/1.1 connection's task.
    Box::pin(h2::serve(transport, read, peer, shared, shutdown)).await;
}

fn is_resource_exhaustion(err: &std::io::Error) -> bool {
    use rustix::io::Errno;
    matches!(
        err.raw_os_error().map(Errno::from_raw_os_error),
        Some(Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM)
    )
}
