//! The request head ferry sends to the app, without I/O: hop-by-hop headers dropped,
//! forwarded headers added, the offload advertisement set, and the fields the app must not
//! see (Connection-listed, underscored names) left out. The app's response head is read by
//! `http::response_head`.

use std::net::SocketAddr;

use crate::http::fields::{HOP_BY_HOP, connection_tokens, same_field};
use crate::http::{BodyLength, Header, Method, RequestHead};

/// Request fields a Connection token never removes. ferry routes on Host and keys its cache
/// on it, so a client listing it (`Connection: host`) would otherwise send the app a request
/// without one whose answer is stored for that host; the framing fields are set by ferry from
/// the parsed framing whatever the client listed. Such tokens are ignored, as nginx ignores
/// them (it forwards no Connection-listed field handling at all).
const NEVER_CONNECTION_LISTED: [&str; 3] = ["host", "content-length", "transfer-encoding"];

/// What ferry adds to every forwarded request.
#[derive(Debug, Clone, Default)]
pub struct ForwardOptions {
    pub forwarded_headers: bool,
    /// Forward request fields whose name holds `_` (`upstream.underscores_in_headers`).
    pub underscores: bool,
    /// `X-Sendfile-Type` value to advertise.
    pub sendfile_type: Option<&'static str>,
    /// `X-Accel-Mapping` value to advertise.
    pub accel_mapping: Option<String>,
    /// The Host sent when the client gave none (an HTTP/1.0 request): the app's address.
    pub default_host: String,
}

/// Whether a request's Connection header removes its field `name` on the way to the app:
/// listed by a token, and not one of [`NEVER_CONNECTION_LISTED`].
fn connection_listed(name: &str, connection_tokens: &[String]) -> bool {
    connection_tokens
        .iter()
        .any(|t| name.eq_ignore_ascii_case(t))
        && !NEVER_CONNECTION_LISTED.iter().any(|n| same_field(name, n))
}

/// Whether a request field the app would get is dropped instead: one a Connection token
/// lists (but see [`NEVER_CONNECTION_LISTED`]), or one whose name holds `_` unless
/// `underscores` allows those.
fn dropped_for_app(name: &str, connection_tokens: &[String], underscores: bool) -> bool {
    connection_listed(name, connection_tokens) || (!underscores && name.contains('_'))
}

/// The request as the app will see it, when that differs from `req`: the end-to-end fields
/// ferry does not forward ([`dropped_for_app`]) removed. The proxy uses this one view for the
/// cache's key and Vary as well as for the bytes it sends, so what is stored is keyed by what
/// the app was actually asked. `None` (no copy) when nothing is dropped, the usual case.
pub fn app_view(req: &RequestHead, underscores: bool) -> Option<RequestHead> {
    let tokens = connection_tokens(&req.headers);
    let drops = |h: &Header| {
        let name = h.name.as_str();
        // Hop-by-hop fields (Connection, Upgrade) stay: the proxy still reads them.
        !HOP_BY_HOP.iter().any(|n| name.eq_ignore_ascii_case(n))
            && dropped_for_app(name, &tokens, underscores)
    };
    if !req.headers.iter().any(drops) {
        return None;
    }
    let mut view = req.clone();
    view.headers.retain(|h| !drops(h));
    Some(view)
}

/// Whether the client asks to switch protocols (WebSocket and friends).
pub fn wants_upgrade(req: &RequestHead) -> bool {
    req.header("upgrade").is_some()
        && connection_tokens(&req.headers)
            .iter()
            .any(|t| t == "upgrade")
}

/// Encodes the request head ferry sends to the app for `req` (its scheme goes out as
/// X-Forwarded-Proto).
pub fn encode_request(
    req: &RequestHead,
    client: SocketAddr,
    opts: &ForwardOptions,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(req.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let tokens = connection_tokens(&req.headers);
    let upgrade = wants_upgrade(req);
    let mut forwarded_for: Option<Vec<u8>> = None;
    for header in &req.headers {
        let name = header.name.as_str();
        let dropped = dropped_for_app(name, &tokens, opts.underscores);
        if dropped
            || HOP_BY_HOP.iter().any(|h| same_field(name, h))
            || is_replaced(name, opts.forwarded_headers)
        {
            if opts.forwarded_headers && !dropped && name.eq_ignore_ascii_case("x-forwarded-for") {
                // Kept and appended to, as nginx's $proxy_add_x_forwarded_for does.
                let list = forwarded_for.get_or_insert_with(Vec::new);
                if !list.is_empty() {
                    list.extend_from_slice(b", ");
                }
                list.extend_from_slice(&header.value);
            }
            continue;
        }
        push_header(out, name, &header.value);
    }
    if req.header("host").is_none() {
        // ferry speaks HTTP/1.1 to the app, which requires a Host (RFC 9112 §3.2).
        push_header(out, "Host", opts.default_host.as_bytes());
    }
    match req.body {
        BodyLength::Empty => {
            // A body-less POST still says so; GET and friends carry no length at all.
            if matches!(req.method, Method::Post | Method::Put | Method::Patch) {
                push_header(out, "Content-Length", b"0");
            }
        }
        BodyLength::Length(n) => push_header(out, "Content-Length", n.to_string().as_bytes()),
        BodyLength::Chunked => push_header(out, "Transfer-Encoding", b"chunked"),
    }
    if upgrade {
        if let Some(value) = req.header("upgrade") {
            push_header(out, "Upgrade", value);
        }
        push_header(out, "Connection", b"upgrade");
    }
    if opts.forwarded_headers {
        let ip = client.ip().to_string();
        let mut list = forwarded_for.unwrap_or_default();
        if !list.is_empty() {
            list.extend_from_slice(b", ");
        }
        list.extend_from_slice(ip.as_bytes());
        push_header(out, "X-Forwarded-For", &list);
        push_header(out, "X-Real-IP", ip.as_bytes());
        push_header(out, "X-Forwarded-Proto", req.scheme.as_str().as_bytes());
        if let Some(host) = req.header("host") {
            push_header(out, "X-Forwarded-Host", host);
        }
    }
    if let Some(kind) = opts.sendfile_type {
        push_header(out, "X-Sendfile-Type", kind.as_bytes());
    }
    if let Some(mapping) = &opts.accel_mapping {
        push_header(out, "X-Accel-Mapping", mapping.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// Request headers ferry drops from the client and sets itself (or not at all): framing,
/// the forwarded set, `Expect` (ferry answers 100-continue itself), and the offload
/// advertisement a client must never be able to forge (CVE-2025-61780). Matched in either
/// spelling (`X_Accel_Mapping` too), as the apps that read them make no difference.
fn is_replaced(name: &str, forwarded_headers: bool) -> bool {
    const ALWAYS: [&str; 4] = [
        "content-length",
        "expect",
        "x-sendfile-type",
        "x-accel-mapping",
    ];
    const FORWARDED: [&str; 4] = [
        "x-forwarded-for",
        "x-real-ip",
        "x-forwarded-proto",
        "x-forwarded-host",
    ];
    ALWAYS.iter().any(|h| same_field(name, h))
        || (forwarded_headers && FORWARDED.iter().any(|h| same_field(name, h)))
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse_request;

    fn request(raw: &str) -> RequestHead {
        parse_request(raw.as_bytes()).unwrap().unwrap().0
    }

    fn forwarded(raw: &str, opts: &ForwardOptions) -> String {
        let mut out = Vec::new();
        encode_request(
            &request(raw),
            "10.1.2.3:5555".parse().unwrap(),
            opts,
            &mut out,
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn hop_by_hop_and_named_headers_are_dropped() {
        let out = forwarded(
            "GET /a?b=1 HTTP/1.1\r\nHost: app\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: 5\r\n\
             X-Secret: s\r\nTE: trailers\r\nAccept: */*\r\n\r\n",
            &ForwardOptions::default(),
        );
        assert_eq!(
            out,
            "GET /a?b=1 HTTP/1.1\r\nHost: app\r\nAccept: */*\r\n\r\n"
        );
    }

    #[test]
    fn connection_never_removes_host_or_framing() {
        let raw = "POST /x HTTP/1.1\r\nHost: victim.example\r\nConnection: host, content-length, \
                   transfer-encoding, x-a\r\nX-A: 1\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(
            forwarded(raw, &ForwardOptions::default()),
            "POST /x HTTP/1.1\r\nHost: victim.example\r\nContent-Length: 2\r\n\r\n"
        );
        // The view the cache keys on loses X-A, exactly as the app does, and keeps Host.
        let view = app_view(&request(raw), false).expect("X-A is dropped");
        let names: Vec<&str> = view.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["Host", "Connection", "Content-Length"]);
        // Nothing to drop: no copy.
        let plain = "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, host\r\n\r\n";
        assert!(app_view(&request(plain), false).is_none());
    }

    #[test]
    fn underscore_fields_are_dropped_unless_allowed_and_ferrys_own_always() {
        let raw = "GET / HTTP/1.1\r\nHost: a\r\nX_Accel_Mapping: /=/etc/\r\nX_Sendfile_Type: X-Sendfile\r\n\
                   X_Forwarded_For: 6.6.6.6\r\nX_Real_IP: 6.6.6.6\r\nX_Custom: c\r\nContent_Length: 5\r\n\r\n";
        let opts = ForwardOptions {
            forwarded_headers: true,
            default_host: "app".into(),
            ..ForwardOptions::default()
        };
        let ours = "X-Forwarded-For: 10.1.2.3\r\nX-Real-IP: 10.1.2.3\r\n\
                    X-Forwarded-Proto: http\r\nX-Forwarded-Host: a\r\n\r\n";
        assert_eq!(
            forwarded(raw, &opts),
            format!("GET / HTTP/1.1\r\nHost: a\r\n{ours}")
        );
        let view = app_view(&request(raw), false).expect("underscores dropped");
        assert_eq!(view.headers.len(), 1);
        let allowed = ForwardOptions {
            underscores: true,
            ..opts
        };
        assert_eq!(
            forwarded(raw, &allowed),
            format!("GET / HTTP/1.1\r\nHost: a\r\nX_Custom: c\r\n{ours}")
        );
        assert!(app_view(&request(raw), true).is_none());
    }

    #[test]
    fn forwarded_headers_and_advertisement() {
        let opts = ForwardOptions {
            forwarded_headers: true,
            sendfile_type: Some("X-Accel-Redirect"),
            accel_mapping: Some("/srv/files/=/protected/".into()),
            default_host: "app".into(),
            underscores: false,
        };
        let out = forwarded(
            "POST /up HTTP/1.1\r\nHost: example.test\r\nX-Forwarded-For: 1.1.1.1\r\nX-Real-IP: 6.6.6.6\r\n\
             X-Sendfile-Type: X-Sendfile\r\nX-Accel-Mapping: /=/\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
            &opts,
        );
        assert_eq!(
            out,
            "POST /up HTTP/1.1\r\nHost: example.test\r\nContent-Length: 5\r\nX-Forwarded-For: 1.1.1.1, 10.1.2.3\r\n\
             X-Real-IP: 10.1.2.3\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: example.test\r\n\
             X-Sendfile-Type: X-Accel-Redirect\r\nX-Accel-Mapping: /srv/files/=/protected/\r\n\r\n"
        );
    }

    #[test]
    fn client_offload_headers_never_reach_the_app() {
        let out = forwarded(
            "GET / HTTP/1.1\r\nHost: a\r\nX-Sendfile-Type: X-Sendfile\r\nx-accel-mapping: /etc/=/x/\r\n\r\n",
            &ForwardOptions::default(),
        );
        assert_eq!(out, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    }

    #[test]
    fn chunked_and_upgrade_requests() {
        let out = forwarded(
            "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            &ForwardOptions::default(),
        );
        assert_eq!(
            out,
            "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        let out = forwarded(
            "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n",
            &ForwardOptions::default(),
        );
        assert_eq!(
            out,
            "GET /ws HTTP/1.1\r\nHost: a\r\nSec-WebSocket-Key: k\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"
        );
    }

    #[test]
    fn http10_requests_get_a_host() {
        let opts = ForwardOptions {
            default_host: "127.0.0.1:3000".into(),
            ..ForwardOptions::default()
        };
        assert_eq!(
            forwarded("GET /x HTTP/1.0\r\n\r\n", &opts),
            "GET /x HTTP/1.1\r\nHost: 127.0.0.1:3000\r\n\r\n"
        );
    }

    #[test]
    fn forwarded_headers_off_passes_client_values() {
        let out = forwarded(
            "GET / HTTP/1.1\r\nHost: a\r\nX-Real-IP: 1.2.3.4\r\n\r\n",
            &ForwardOptions::default(),
        );
        assert_eq!(
            out,
            "GET / HTTP/1.1\r\nHost: a\r\nX-Real-IP: 1.2.3.4\r\n\r\n"
        );
    }
}
