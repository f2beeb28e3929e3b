//! The admin listener, served by hyper (zero-copy does not matter here): `/metrics` in the
//! Prometheus text format, `/healthz` (the process is up) and `/readyz` (it accepts traffic;
//! 503 from the moment a shutdown starts, so load balancers stop sending before it exits),
//! and `POST /cache/purge?target=/path` or `?prefix=/path/` removing cached objects.

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

use crate::metrics::Metrics;

/// State the admin endpoints read.
pub struct Admin {
    pub metrics: Metrics,
    /// Set when shutdown begins.
    pub draining: AtomicBool,
    /// The disk cache, for purges (replaced when a reload opens another `cache.dir`).
    pub cache: std::sync::RwLock<Option<Arc<crate::cache::Cache>>>,
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

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}
