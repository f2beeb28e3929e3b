//! The access log: one event per response on the `access` tracing target, which `main` routes
//! to stdout as text or JSON (or nowhere) apart from the diagnostic log on stderr.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::http::RequestHead;
use crate::ingress::Client;
use crate::metrics::{Side, Source, Tally};

/// The tracing target of access log events.
pub const TARGET: &str = "access";

/// False once `main` has routed the access log nowhere (`access_log = "off"`). Asking
/// tracing instead costs a dispatcher lookup and a filter walk per response, because the
/// per-layer filters leave every callsite's interest at "sometimes".
static ENABLED: AtomicBool = AtomicBool::new(true);

/// Whether access log events are produced at all (on unless turned off).
pub fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

/// Logs one response. `req` is absent when the head could not be parsed; `failed` is the
/// side at fault when the body did not arrive whole (`failed=-` otherwise). `client` is the
/// client's address (the one X-Forwarded-For names when the peer is a trusted proxy), `peer`
/// the connection's (the PROXY protocol source where the listener takes one).
pub fn log(
    client: &Client,
    req: Option<&RequestHead>,
    status: u16,
    tally: &Tally,
    source: Source,
    seconds: f64,
    failed: Option<Side>,
) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    let (method, target) = req.map_or(("-", "-"), |r| (r.method.as_str(), r.target.as_str()));
    tracing::info!(
        target: "access",
        client = %client.addr,
        peer = %client.peer,
        request_id = %client.request_id,
        method = %method,
        "target" = %target,
        status,
        bytes = tally.total(),
        path = %tally.path().label(),
        source = %source.label(),
        failed = %failed.map_or("-", Side::label),
        duration_ms = seconds * 1000.0,
    );
}
