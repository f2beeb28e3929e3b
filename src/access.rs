//! The access log: one event per response on the `access` tracing target, which `main` routes
//! to stdout as text or JSON (or nowhere) apart from the diagnostic log on stderr.

use std::net::SocketAddr;

use crate::http::RequestHead;
use crate::metrics::Source;
use crate::send::Tally;

/// The tracing target of access log events.
pub const TARGET: &str = "access";

/// Logs one response. `req` is absent when the head could not be parsed.
pub fn log(
    peer: SocketAddr,
    req: Option<&RequestHead>,
    status: u16,
    tally: &Tally,
    source: Source,
    seconds: f64,
) {
    let (method, target) = req.map_or(("-", "-"), |r| (r.method.as_str(), r.target.as_str()));
    tracing::info!(
        target: "access",
        client = %peer,
        method = %method,
        "target" = %target,
        status,
        bytes = tally.total(),
        path = %tally.path().label(),
        source = %source.label(),
        duration_ms = seconds * 1000.0,
    );
}
