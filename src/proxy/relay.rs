//! The app's own answer (not 101, not the cache's) made into a reply: the file it points at
//! (X-Accel-Redirect into an internal location, X-Sendfile beneath a configured root: both
//! resolved by `route`, the app's body discarded), or its response relayed as it comes.

use crate::config::Offload;
use crate::http::{Framing, ResponseHead};
use crate::http::{Method, RequestHead};
use crate::metrics::Source;
use crate::route::{Reply, Router};
use crate::send::{Body, UpstreamBody};
use crate::upstream::UpConn;

/// The reply for the app's (non-101) answer: the file it points at (X-Accel-Redirect,
/// X-Sendfile), or its own response relayed.
pub(super) async fn answer(
    offload: &Offload,
    router: &Router,
    req: &RequestHead,
    head: ResponseHead,
    framing: Framing,
    conn: UpConn,
) -> Reply {
    if offload.x_accel_redirect
        && let Some(value) = head.header("x-accel-redirect").map(<[u8]>::to_vec)
    {
        conn.discard(framing).await;
        return router.accel_redirect(req, &value, &head).await;
    }
    if !offload.x_sendfile_roots.is_empty()
        && let Some(value) = head.header("x-sendfile").map(<[u8]>::to_vec)
    {
        conn.discard(framing).await;
        return router.x_sendfile(req, &value, &head).await;
    }
    let head_length = if req.method == Method::Head {
        head.header("content-length")
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok())
    } else {
        None
    };
    let mut reply = Reply::new(
        head.status,
        Source::Upstream,
        Body::Upstream(UpstreamBody {
            conn,
            framing,
            chunked: false,
            fill: None,
            spool: None,
            unbuffered: head
                .header("x-accel-buffering")
                .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"no")),
        }),
    );
    reply.passed_headers = head
        .client_headers()
        .into_iter()
        .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
        .collect();
    reply.head_length = head_length;
    reply
}
