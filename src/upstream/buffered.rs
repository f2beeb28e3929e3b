//! Forwarding a request whose body is already in memory (`RequestBody::InHand`): an HTTP/2
//! stream's body (hyper owns the client's socket, so nothing can be spliced from it), and a
//! background refresh's empty one. The exchange is otherwise the streamed one (same pool,
//! request encoding, response-head reading and metrics); because the body is held, an
//! idempotent request with a body can be sent again when a pooled connection turns out
//! closed, and the head and body are written within the response timeout.
//!
//! Not here: reading the client's body (frontend::h2) and relaying the app's response body.

use std::net::SocketAddr;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use super::{AppSocket, Exchange, ProxyError, Upstream, encode_request, is_idempotent};
use crate::http::RequestHead;

/// Bodies up to this size leave in the same write as the head.
const INLINE_BODY: usize = 16 * 1024;

impl Upstream {
    /// Sends `req` with `body` (all of it, which `req.body` describes) and waits for the
    /// response head.
    pub(super) async fn try_exchange_buffered(
        &self,
        req: &RequestHead,
        body: &Bytes,
        peer: SocketAddr,
    ) -> Result<Exchange, ProxyError> {
        let mut head = Vec::with_capacity(512 + body.len().min(INLINE_BODY));
        encode_request(req, peer, &self.options, &mut head);
        let inline = body.len() <= INLINE_BODY;
        if inline {
            head.extend_from_slice(body);
        }
        // The whole request is in hand, so any idempotent one can be sent again.
        let replayable = is_idempotent(&req.method);
        let mut fresh_only = false;
        loop {
            let (mut stream, reused) = match (!fresh_only).then(|| self.pool.take()).flatten() {
                Some(stream) => (stream, true),
                None => (self.connect().await?, false),
            };
            let retry = reused && replayable;
            let body = (!inline).then_some(body.as_ref());
            if let Err(detail) = self.write_request(&mut stream, &head, body).await {
                if retry {
                    fresh_only = true;
                    continue;
                }
                return Err(self.closed(detail));
            }
            match self.response(stream, &req.method).await {
                Ok(exchange) => return Ok(exchange),
                // The app closed an idle connection just as ferry reused it: try once more.
                Err(ProxyError::Closed { .. }) if retry => fresh_only = true,
                Err(err) => return Err(err),
            }
        }
    }

    /// Writes the head (with a small body inline) and then `body`, within the response
    /// timeout: an app that stops reading must not hold the stream forever.
    async fn write_request(
        &self,
        stream: &mut AppSocket,
        head: &[u8],
        body: Option<&[u8]>,
    ) -> Result<(), String> {
        let write = async {
            stream
                .write_all(head)
                .await
                .map_err(|err| format!("writing request head: {err}"))?;
            if let Some(body) = body {
                stream
                    .write_all(body)
                    .await
                    .map_err(|err| format!("writing request body: {err}"))?;
            }
            Ok(())
        };
        match tokio::time::timeout(self.response_timeout, write).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "writing request: no progress within {:?}",
                self.response_timeout
            )),
        }
    }
}
