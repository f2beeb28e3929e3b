//! The one error type of a request's trip, from the app's connect to the last body byte:
//! each variant says what went wrong and on which side, and everything a caller needs is
//! derived from it — the status a client is answered with when no head has gone out yet
//! ([`Failure::status`]), the `outcome` of `ferry_upstream_requests_total`
//! ([`Failure::upstream_outcome`]) and the `side` of `ferry_responses_incomplete_total`
//! ([`Failure::side`]). So an app that fails mid-body and a client that leaves are never
//! counted as one another.

use std::io;
use std::time::Duration;

use crate::http::{BadResponse, ParseError};
use crate::metrics::{Side, UpstreamOutcome};

#[derive(Debug, thiserror::Error)]
pub enum Failure {
    // --- the client's side
    /// A write to the client failed (gone, reset).
    #[error("client write: {0}")]
    ClientWrite(#[from] io::Error),
    /// The client accepted no bytes for this long.
    #[error("client accepted no bytes for {0:?}")]
    ClientStalled(Duration),
    /// The client went away (or stalled) while its request body was being forwarded.
    #[error("client: {0}")]
    ClientGone(io::Error),
    /// The client's chunked request body is malformed.
    #[error("client: request body: {0}")]
    ClientBody(ParseError),
    /// The client's streamed chunked body passed `server.max_body_size` (this many bytes).
    #[error("client: request body over {0} bytes")]
    BodyTooLarge(u64),

    // --- the app's side, before its response head
    #[error("upstream {addr}: {source}")]
    Connect { addr: String, source: ConnectError },
    #[error("upstream {addr}: no response head within {timeout:?}")]
    HeadTimeout { addr: String, timeout: Duration },
    #[error("upstream {addr}: {source}")]
    Bad { addr: String, source: BadResponse },
    #[error("upstream {addr}: closed before responding: {detail}")]
    Closed { addr: String, detail: String },
    /// Not sent: the upstream's connection cap was reached and its queue full, or the wait
    /// in it timed out (`upstream` is the configured name).
    #[error("upstream {upstream}: {why}")]
    Overloaded { upstream: String, why: &'static str },

    // --- the app's side, in its body
    #[error("upstream body: {0}")]
    Upstream(io::Error),
    #[error("upstream closed before the end of the body")]
    UpstreamClosed,
    #[error("upstream sent no body bytes for {0:?}")]
    UpstreamTimeout(Duration),
    #[error("upstream body framing: {0}")]
    UpstreamFraming(ParseError),

    // --- the disk's side
    #[error("file shrank while being sent")]
    Truncated,
    #[error("file read: {0}")]
    Disk(io::Error),

    // --- ferry's own
    #[error("internal: {0}")]
    Internal(String),
}

impl Failure {
    /// The side at fault. A failed client write is the client's unless the kernel said EIO,
    /// which on sendfile(2) comes from reading the file.
    pub fn side(&self) -> Side {
        match self {
            Failure::ClientWrite(err) if err.raw_os_error() == Some(libc::EIO) => Side::Disk,
            Failure::ClientWrite(_)
            | Failure::ClientStalled(_)
            | Failure::ClientGone(_)
            | Failure::ClientBody(_)
            | Failure::BodyTooLarge(_) => Side::Client,
            Failure::Connect { .. }
            | Failure::HeadTimeout { .. }
            | Failure::Bad { .. }
            | Failure::Closed { .. }
            | Failure::Overloaded { .. }
            | Failure::Upstream(_)
            | Failure::UpstreamClosed
            | Failure::UpstreamTimeout(_)
            | Failure::UpstreamFraming(_) => Side::Upstream,
            Failure::Truncated | Failure::Disk(_) => Side::Disk,
            Failure::Internal(_) => Side::Internal,
        }
    }

    /// The status the client is answered with when this happens before a response head went
    /// out; `None` when nobody is left to answer (the client is gone) or a head already went.
    pub fn status(&self) -> Option<u16> {
        match self {
            Failure::Connect {
                source: ConnectError::Timeout(_),
                ..
            }
            | Failure::HeadTimeout { .. } => Some(504),
            Failure::Connect { .. } | Failure::Bad { .. } | Failure::Closed { .. } => Some(502),
            Failure::ClientBody(_) => Some(400),
            Failure::BodyTooLarge(_) => Some(413),
            Failure::Overloaded { .. } => Some(503),
            _ => None,
        }
    }

    /// The `Retry-After` seconds to answer with: only for a request the upstream's queue
    /// turned away, which a client may well get served a moment later (the queue drains at
    /// the app's pace, so a short hint).
    pub fn retry_after(&self) -> Option<u32> {
        matches!(self, Failure::Overloaded { .. }).then_some(1)
    }

    /// How an exchange with the app that ended in this counts in
    /// `ferry_upstream_requests_total`.
    pub fn upstream_outcome(&self) -> UpstreamOutcome {
        match self {
            Failure::Connect {
                source: ConnectError::Timeout(_),
                ..
            }
            | Failure::HeadTimeout { .. }
            | Failure::UpstreamTimeout(_) => UpstreamOutcome::Timeout,
            Failure::Connect { .. } => UpstreamOutcome::ConnectError,
            Failure::Overloaded { .. } => UpstreamOutcome::Overloaded,
            Failure::Bad { .. } | Failure::UpstreamFraming(_) => UpstreamOutcome::BadResponse,
            Failure::Closed { .. } | Failure::Upstream(_) | Failure::UpstreamClosed => {
                UpstreamOutcome::Closed
            }
            Failure::ClientWrite(_)
            | Failure::ClientStalled(_)
            | Failure::ClientGone(_)
            | Failure::ClientBody(_)
            | Failure::BodyTooLarge(_)
            | Failure::Truncated
            | Failure::Disk(_)
            | Failure::Internal(_) => UpstreamOutcome::ClientAbort,
        }
    }
}

/// Why no connection to the app could be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect: {0}")]
    Io(#[from] io::Error),
    #[error("connect: timed out after {0:?}")]
    Timeout(Duration),
    /// The host name gave no address: the resolver's error, or that it did not answer in
    /// time. Nothing was connected to, so this is a connect failure (502), not a timeout.
    #[error("resolve {name}: {detail}")]
    Resolve { name: String, detail: String },
}
