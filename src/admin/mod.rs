//! The admin listener, served by hyper (zero-copy does not matter here): `/metrics` in the
//! Prometheus text format, `/healthz` (the process is up) and `/readyz` (it accepts traffic;
//! 503 from the moment a shutdown starts, so load balancers stop sending before it exits),
//! and `POST /cache/purge?target=/path` or `?prefix=/path/` removing cached objects.
//!
//! The reading endpoints are open to whoever reaches the port; every call that changes state
//! (today the purge) passes [`refusal`] first: with `admin.token_file` set it needs
//! `Authorization: Bearer TOKEN` (401 with `WWW-Authenticate` otherwise), without it the call
//! is off (403).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::AdminToken;
use crate::metrics::Metrics;

/// The realm named in `WWW-Authenticate`.
const REALM: &str = "ferry admin";

/// State the admin endpoints read.
pub struct Admin {
    pub metrics: Metrics,
    /// Set when shutdown begins.
    pub draining: AtomicBool,
    /// The disk cache, for purges (replaced when a reload opens another `cache.dir`).
    pub cache: std::sync::RwLock<Option<Arc<crate::cache::Cache>>>,
    /// `admin.token_file`'s token (read again on a reload); `None`: state-changing calls are
    /// off.
    pub token: std::sync::RwLock<Option<AdminToken>>,
}

/// Serves admin requests until `stop` is cancelled.
pub async fn serve(listener: TcpListener, admin: Arc<Admin>, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => break,
        };
        let Ok((stream, _)) = accepted else { continue };
        let admin = Arc::clone(&admin);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let admin = Arc::clone(&admin);
                async move {
                    if req.uri().path() == "/cache/purge" {
                        return Ok::<_, Infallible>(purge(&req, &admin).await);
                    }
                    Ok::<_, Infallible>(answer(&req, &admin))
                }
            });
            if let Err(err) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %err, "admin connection");
            }
        });
    }
}

fn answer(req: &Request<Incoming>, admin: &Admin) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match req.uri().path() {
        "/metrics" => {
            let mut response = Response::new(Full::new(Bytes::from(admin.metrics.encode())));
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if admin.draining.load(Ordering::Relaxed) => {
            text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
        }
        "/readyz" => text(StatusCode::OK, "ready\n"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// `POST /cache/purge?target=T` removes the objects stored for target T (`/path?query`, every
/// host and variant); `?prefix=P` those whose target starts with P. Answers with the count.
async fn purge(req: &Request<Incoming>, admin: &Admin) -> Response<Full<Bytes>> {
    let token = admin.token.read().map_or(None, |token| token.clone());
    if let Some(refusal) = refusal(req, token.as_ref()) {
        return refusal;
    }
    if req.method() != Method::POST {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed: use POST\n",
        );
    }
    let cache = admin.cache.read().map_or(None, |cache| cache.clone());
    let Some(cache) = cache else {
        return text(StatusCode::NOT_FOUND, "no cache configured\n");
    };
    let mut target = None;
    let mut prefix = None;
    for pair in req.uri().query().unwrap_or("").split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_encoding::percent_decode_str(value)
            .decode_utf8_lossy()
            .into_owned();
        match name {
            "target" => target = Some(value),
            "prefix" => prefix = Some(value),
            _ => {}
        }
    }
    let valid = |v: &Option<String>| v.as_deref().is_none_or(|v| v.starts_with('/'));
    if (target.is_none() && prefix.is_none()) || !valid(&target) || !valid(&prefix) {
        return text(
            StatusCode::BAD_REQUEST,
            "give target=/path or prefix=/path (starting with /)\n",
        );
    }
    let removed =
        tokio::task::spawn_blocking(move || cache.purge(target.as_deref(), prefix.as_deref()))
            .await;
    match removed {
        Ok(n) => {
            let mut response = Response::new(Full::new(Bytes::from(format!("purged {n}\n"))));
            *response.status_mut() = StatusCode::OK;
            response
        }
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "purge failed\n"),
    }
}

/// The answer refusing a state-changing call, or `None` when it may go on: it needs the
/// configured bearer token (RFC 6750): 403 when no token is configured, 401 with a
/// `WWW-Authenticate` challenge when the request has no token or another one. Checked before
/// anything else about the request, so that an unauthorized caller learns nothing from the
/// answer.
fn refusal(req: &Request<Incoming>, token: Option<&AdminToken>) -> Option<Response<Full<Bytes>>> {
    let Some(token) = token else {
        return Some(text(
            StatusCode::FORBIDDEN,
            "forbidden: state-changing admin calls are off; set admin.token_file to allow them\n",
        ));
    };
    let presented = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|value| bearer(value.as_bytes()));
    let challenge = match presented {
        Some(presented) if token.verify(presented) => return None,
        Some(_) => {
            tracing::warn!(path = req.uri().path(), "admin: wrong bearer token");
            format!("Bearer realm=\"{REALM}\", error=\"invalid_token\"")
        }
        None => format!("Bearer realm=\"{REALM}\""),
    };
    let mut response = text(
        StatusCode::UNAUTHORIZED,
        "unauthorized: send Authorization: Bearer <the token in admin.token_file>\n",
    );
    if let Ok(value) = hyper::header::HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(hyper::header::WWW_AUTHENTICATE, value);
    }
    Some(response)
}

/// The token of an `Authorization: Bearer TOKEN` value (the scheme in any case, RFC 9110
/// §11.1), or `None` for another scheme or an empty token.
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let scheme = b"bearer ";
    if value.len() <= scheme.len() || !value[..scheme.len()].eq_ignore_ascii_case(scheme) {
        return None;
    }
    let token = value[scheme.len()..].trim_ascii();
    (!token.is_empty()).then_some(token)
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn bearer_takes_the_token_of_the_bearer_scheme_in_any_case() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bEaReR  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Bearer"), None);
        assert_eq!(bearer(b"Basic YWJj"), None);
        assert_eq!(bearer(b"Bearerabc"), None);
    }
}
