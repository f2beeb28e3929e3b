//! Forwarding a request whose body is already in memory: what the HTTP/2 frontend needs, since
//! hyper owns the client's socket and a stream's body arrives as frames, so nothing can be
//! spliced from the client. The exchange is otherwise the HTTP/1.1 one (same pool, same
//! request encoding, same response-head reading, same metrics); because the body is held,
//! an idempotent request with a body can be sent again when a pooled connection turns out
//! closed.
//!
//! Not here: reading the client's body (frontend::h2) and relaying the app's response body.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use super::{Exchange, ProxyError, UpStream, Upstream, encode_request, is_idempotent};
use crate::http::{BodyLength, RequestHead};
use crate::metrics::{Metrics, UpstreamOutcome};

/// Bodies up to this size leave in the same write as the head.
const INLINE_BODY: usize = 16 * 1024;

impl Upstream {
    /// Forwards `req` with `body` (which `req.body` must describe: `Length(body.len())`, or
    /// `Empty` for no body) and waits for the response head. Records the outcome in `metrics`.
    pub async fn exchange_buffered(
        &self,
        req: &RequestHead,
        body: Bytes,
        peer: SocketAddr,
        metrics: &Metrics,
    ) -> Result<Exchange, ProxyError> {
        debug_assert_eq!(
            req.body,
            if body.is_empty() {
                BodyLength::Empty
            } else {
                BodyLength::Length(body.len() as u64)
            }
        );
        let started = Instant::now();
        let result = self.try_exchange_buffered(req, &body, peer).await;
        let outcome = result
            .as_ref()
            .map_or_else(ProxyError::outcome, |_| UpstreamOutcome::Ok);
        metrics.upstream(outcome, started.elapsed().as_secs_f64());
        result
    }

    async fn try_exchange_buffered(
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
        stream: &mut UpStream,
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
