//! The client side: listeners, the accept loops, connection limits and graceful shutdown.
//! Each accepted connection runs `conn::serve`, the HTTP/1.1 loop, in its own task (or
//! `h2::serve` when TLS negotiated HTTP/2, or when a plaintext connection's first bytes
//! were HTTP/2's preface: h2c), after its PROXY protocol header where the
//! listener requires one (`proxy_protocol`: the header's source becomes the peer) and its
//! TLS handshake; every task watches one `CancellationToken` that SIGTERM/SIGINT cancels. At `server.max_connections` an accept loop closes the connection
//! idle longest to make room (`idle`).
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
pub use listener::bind;
pub use shared::Shared;

use crate::tls::Tls;
use crate::transport::Transport;

/// One client listener and what its connections begin with.
pub struct Listener {
    pub socket: TcpListener,
    /// The TLS acceptor, on a `tls.listen` socket.
    pub tls: Option<Arc<Tls>>,
    /// Whether each connection starts with a PROXY protocol header (`server.proxy_protocol`,
    /// `tls.proxy_protocol`); those without a valid one are closed.
    pub proxy_protocol: bool,
}

/// Accepts on `listener` until `shutdown` is cancelled, spawning one task per connection on
/// `tracker`. At most `server.max_connections` connections are served at once (shared across
/// listeners and connection workers through `limit`): past it, each accept loop holds the one
/// connection it has just accepted, closes the connection idle longest to make room for it
/// (an idle keep-alive connection, or one that has sent nothing yet), or if none is idle waits
/// until a permit frees or a connection becomes idle, and accepts no more meanwhile, so the
/// backlog holds the other clients rather than ferry accepting and dropping them. (A loop
/// takes its permit after `accept`, not before: a permit held by a loop waiting on an idle
/// socket would be kept from the connections queued on another worker's socket of the
/// SO_REUSEPORT group.)
pub async fn accept_loop(
    listener: Listener,
    shared: Arc<Shared>,
    limit: Limit,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let Listener {
        socket: listener,
        tls,
        proxy_protocol,
    } = listener;
    let local = listener.local_addr().ok();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
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
        let Some(slot) = limit.acquire(&shutdown).await else {
            break;
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %err, "TCP_NODELAY");
        }
        let shared = Arc::clone(&shared);
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        tracker.spawn(async move {
            // Counted per worker: a burst of closes gives the heap back (see send::pool).
            let _open = crate::send::pool::Open::begin();
            let peer = if proxy_protocol {
                let timeout = shared.server.header_timeout;
                match proxy_protocol::read(&mut stream, peer, timeout, &shared.metrics).await {
                    Some(source) => source,
                    None => return,
                }
            } else {
                peer
            };
            let transport = match tls {
                None => Some(Transport::Plain(stream)),
                Some(tls) => tls.accept(stream, &shared.metrics).await,
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
        match conn::serve(transport, peer, &shared, &shutdown, slot).await {
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
