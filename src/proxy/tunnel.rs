//! After 101 Switching Protocols from the app (HTTP/1.1 only): the 101 goes to the client,
//! then both sockets are joined until either side closes — with splice(2) in both
//! directions on plain TCP, through user space on TLS. The splice loop is tokio-splice's
//! `zero_copy_bidirectional` (the crate holds its own `unsafe`, as rustix does for `sys`):
//! ferry's `sys` wraps one-shot splices into and out of its own pipe, and a bidirectional
//! readiness loop over two sockets is not worth a second copy of.

use std::net::SocketAddr;
use std::time::SystemTime;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use crate::http::{RequestHead, encode_response_head, http_date};
use crate::metrics::{SendPath, Tally, TransportKind};
use crate::transport::Transport;
use crate::upstream::{AppSocket, Exchange};

/// After a 101 from the app: sends the 101 to the client, then splices both directions
/// until either side closes. Returns the bytes moved, both directions counted on the
/// `splice` path (through user space on TLS), for the connection to record.
pub async fn tunnel(
    transport: &mut Transport,
    buf: &mut BytesMut,
    req: &RequestHead,
    exchange: Exchange,
    peer: SocketAddr,
) -> Tally {
    let Exchange { head, conn, .. } = exchange;
    let mut stream = conn.stream;
    // Date, Server and the request's ID as on every other answer; the app's own ID never
    // stands for this request's.
    let mut headers: Vec<(String, String)> = vec![
        ("Date".into(), http_date(SystemTime::now())),
        ("Server".into(), "ferry".into()),
        ("X-Request-Id".into(), req.client.request_id.as_str().into()),
    ];
    headers.extend(
        head.client_headers()
            .into_iter()
            .filter(|(name, _)| !name.eq_ignore_ascii_case("x-request-id"))
            .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned())),
    );
    if let Some(protocol) = head.header("upgrade") {
        headers.push((
            "Upgrade".into(),
            String::from_utf8_lossy(protocol).into_owned(),
        ));
    }
    headers.push(("Connection".into(), "upgrade".into()));
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let mut out = Vec::with_capacity(256);
    encode_response_head(101, &pairs, &mut out);
    // Bytes either side sent early (after its head) go first, through user space.
    out.extend_from_slice(&conn.leftover);
    // Plain TCP is joined with splice; TLS has to pass through user space.
    let kind = transport.kind();
    let path = if kind == TransportKind::Tcp {
        SendPath::Splice
    } else {
        SendPath::copying(kind)
    };
    let mut tally = Tally::default();
    tally.add_copied(path, conn.leftover.len());
    let result = async {
        transport.write_all(&out).await?;
        transport.flush().await?;
        stream.write_all(buf).await?;
        tally.add_copied(path, buf.len());
        buf.clear();
        let (up, down) = match (&mut *transport, &mut stream) {
            (Transport::Plain(client), AppSocket::Tcp(app)) => {
                tokio_splice::zero_copy_bidirectional(client, app).await?
            }
            (Transport::Plain(client), AppSocket::Unix(app)) => {
                tokio_splice::zero_copy_bidirectional(client, app).await?
            }
            // TLS bytes must be decrypted and encrypted in user space.
            (client, app) => {
                let (up, down) = tokio::io::copy_bidirectional(client, app).await?;
                tally.add_copied(path, (up + down) as usize);
                return Ok(());
            }
        };
        tally.add(SendPath::Splice, (up + down) as usize);
        Ok::<_, std::io::Error>(())
    }
    .await;
    if let Err(err) = result {
        tracing::debug!(%peer, target = %req.target, error = %err, "tunnel closed");
    }
    tally
}
