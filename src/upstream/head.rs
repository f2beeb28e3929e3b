//! The request head ferry sends to the app, without I/O: hop-by-hop headers dropped,
//! forwarded headers added, the offload advertisement set, and the fields the app must not
//! see (Connection-listed, underscored names) left out. The app's response head is read by
//! `http::response_head`.

use std::net::SocketAddr;

use crate::http::fields::{HOP_BY_HOP, connection_tokens, same_field};
use crate::http::{BodyLength, Field, Method, RequestHead};

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
    let drops = |h: Field<'_>| {
        let name = h.name;
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

/// Encodes the request head ferry sends to the app for `req`, which came from `peer` (the
/// connection's peer: the last hop, appended to X-Forwarded-For; see [`forwarded`]).
pub fn encode_request(
    req: &RequestHead,
    peer: SocketAddr,
    opts: &ForwardOptions,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(req.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let tokens = connection_tokens(&req.headers);
    let upgrade = wants_upgrade(req);
    for header in &req.headers {
        let name = header.name;
        if dropped_for_app(name, &tokens, opts.underscores)
            || HOP_BY_HOP.iter().any(|h| same_field(name, h))
            || is_replaced(name, opts.forwarded_headers)
        {
            continue;
        }
        push_header(out, name, header.value);
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
        forwarded(req, peer, &tokens, opts.underscores, out);
    }
    let request_id = &req.client.request_id;
    if !request_id.is_unset() {
        push_header(out, "X-Request-Id", request_id.as_str().as_bytes());
    }
    if let Some(kind) = opts.sendfile_type {
        push_header(out, "X-Sendfile-Type", kind.as_bytes());
    }
    if let Some(mapping) = &opts.accel_mapping {
        push_header(out, "X-Accel-Mapping", mapping.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// The forwarded set, always in this order. From a trusted proxy (`req.client.trusted`):
/// X-Forwarded-For as it came (every line, joined) with the proxy's address appended, and
/// X-Forwarded-Proto and -Host as they came (ferry's own when absent). From any other peer
/// ferry replaces them all: X-Forwarded-For is the peer alone, -Proto the scheme, -Host the
/// Host. X-Real-IP is the client address either way (`ingress::Client::addr`).
fn forwarded(
    req: &RequestHead,
    peer: SocketAddr,
    tokens: &[String],
    underscores: bool,
    out: &mut Vec<u8>,
) {
    let client = &req.client;
    // What the trusted proxy sent, unless ferry would drop the field anyway.
    let kept = |name: &str| -> Option<Vec<u8>> {
        if !client.trusted {
            return None;
        }
        let mut joined: Option<Vec<u8>> = None;
        for header in &req.headers {
            let field = header.name;
            if !field.eq_ignore_ascii_case(name) || dropped_for_app(field, tokens, underscores) {
                continue;
            }
            let list = joined.get_or_insert_with(Vec::new);
            if !list.is_empty() {
                list.extend_from_slice(b", ");
            }
            list.extend_from_slice(header.value);
        }
        joined
    };
    let peer = peer.ip().to_canonical().to_string();
    let mut list = kept("x-forwarded-for").unwrap_or_default();
    if !list.is_empty() {
        list.extend_from_slice(b", ");
    }
    list.extend_from_slice(peer.as_bytes());
    push_header(out, "X-Forwarded-For", &list);
    push_header(out, "X-Real-IP", client.addr.to_string().as_bytes());
    match kept("x-forwarded-proto") {
        Some(proto) => push_header(out, "X-Forwarded-Proto", &proto),
        None => push_header(out, "X-Forwarded-Proto", req.scheme.as_str().as_bytes()),
    }
    match kept("x-forwarded-host") {
        Some(host) => push_header(out, "X-Forwarded-Host", &host),
        None => {
            if let Some(host) = req.header("host") {
                push_header(out, "X-Forwarded-Host", host);
            }
        }
    }
}

/// Request headers ferry drops from the client and sets itself (or not at all): framing,
/// the forwarded set (kept from a trusted proxy by [`forwarded`]), the request ID (kept from
/// a trusted proxy by `ingress::identify`), `Expect` (ferry answers 100-continue itself),
/// and the offload advertisement a client must never be able to forge (CVE-2025-61780). Matched in either spelling (`X_Accel_Mapping` too), as the apps that
/// read them make no difference.
fn is_replaced(name: &str, forwarded_headers: bool) -> bool {
    const ALWAYS: [&str; 5] = [
        "content-length",
        "expect",
        "x-request-id",
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
    use crate::http::{Scheme, parse_request};
    use crate::ingress::{Cidr, Client, RequestId, identify};

    fn request(raw: &str) -> RequestHead {
        parse_request(raw.as_bytes()).unwrap().unwrap().0
    }

    const PEER: &str = "10.1.2.3:5555";

    /// `raw` from an untrusted peer, as the app gets it (without a request ID, which
    /// `request_ids_replace_the_clients` covers).
    fn forwarded(raw: &str, opts: &ForwardOptions) -> String {
        let mut req = request(raw);
        req.client = Client::peer(PEER.parse().unwrap(), false);
        req.client.request_id = RequestId::UNSET;
        encode(&req, opts)
    }

    fn encode(req: &RequestHead, opts: &ForwardOptions) -> String {
        let mut out = Vec::new();
        encode_request(req, req.client.peer, opts, &mut out);
        String::from_utf8(out).unwrap()
    }

    /// `raw` from a peer in 10.0.0.0/8, trusted.
    fn from_trusted(raw: &str, opts: &ForwardOptions) -> String {
        let mut req = request(raw);
        let networks = [Cidr::parse("10.0.0.0/8").unwrap()];
        identify(&mut req, PEER.parse().unwrap(), true, &networks);
        req.client.request_id = RequestId::UNSET;
        encode(&req, opts)
    }

    #[test]
    fn request_ids_replace_the_clients() {
        let networks = [Cidr::parse("10.0.0.0/8").unwrap()];
        let raw =
            "GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: from-edge-1\r\nX_Request_Id: x\r\n\r\n";
        let sent = |trusted: bool, raw: &str| {
            let mut req = request(raw);
            identify(&mut req, PEER.parse().unwrap(), trusted, &networks);
            let id = req.client.request_id.to_string();
            (id, encode(&req, &ForwardOptions::default()))
        };
        // From a trusted proxy: its ID, once.
        let (id, out) = sent(true, raw);
        assert_eq!(id, "from-edge-1");
        assert_eq!(
            out,
            "GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: from-edge-1\r\n\r\n"
        );
        // From anyone else, or insane, or twice: a new one, 32 hex digits.
        let twice = "GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: a\r\nX-Request-Id: b\r\n\r\n";
        let spaced = "GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: a b\r\n\r\n";
        for (trusted, raw) in [(false, raw), (true, twice), (true, spaced)] {
            let (id, out) = sent(trusted, raw);
            assert!(
                id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
                "{id}"
            );
            assert_eq!(
                out,
                format!("GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: {id}\r\n\r\n")
            );
        }
    }

    fn with_forwarded_headers() -> ForwardOptions {
        ForwardOptions {
            forwarded_headers: true,
            default_host: "app".into(),
            ..ForwardOptions::default()
        }
    }

    #[test]
    fn from_a_trusted_proxy_the_forwarded_set_is_kept_and_appended_to() {
        let raw = "GET / HTTP/1.1\r\nHost: internal\r\nX-Forwarded-For: 6.6.6.6, 192.0.2.7\r\n\
                   X-Real-IP: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: shop.example\r\n\
                   X-Forwarded-For: 10.9.9.9\r\nX_Forwarded_Host: forged\r\n\r\n";
        assert_eq!(
            from_trusted(raw, &with_forwarded_headers()),
            "GET / HTTP/1.1\r\nHost: internal\r\n\
             X-Forwarded-For: 6.6.6.6, 192.0.2.7, 10.9.9.9, 10.1.2.3\r\nX-Real-IP: 192.0.2.7\r\n\
             X-Forwarded-Proto: https\r\nX-Forwarded-Host: shop.example\r\n\r\n"
        );
        // The same request from an untrusted peer: all replaced.
        assert_eq!(
            forwarded(raw, &with_forwarded_headers()),
            "GET / HTTP/1.1\r\nHost: internal\r\nX-Forwarded-For: 10.1.2.3\r\nX-Real-IP: 10.1.2.3\r\n\
             X-Forwarded-Proto: http\r\nX-Forwarded-Host: internal\r\n\r\n"
        );
        // A trusted proxy that sends none of them: ferry's own, as from anyone.
        assert_eq!(
            from_trusted(
                "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
                &with_forwarded_headers()
            ),
            "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.1.2.3\r\nX-Real-IP: 10.1.2.3\r\n\
             X-Forwarded-Proto: http\r\nX-Forwarded-Host: a\r\n\r\n"
        );
    }

    #[test]
    fn a_trusted_forwarded_proto_is_the_requests_scheme() {
        let networks = [Cidr::parse("10.0.0.0/8").unwrap()];
        let scheme = |raw: &str, trusted: bool| {
            let mut req = request(raw);
            identify(&mut req, PEER.parse().unwrap(), trusted, &networks);
            req.scheme
        };
        let https = "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: HTTPS \r\n\r\n";
        assert_eq!(scheme(https, true), Scheme::Https);
        assert_eq!(scheme(https, false), Scheme::Http);
        let two = "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Proto: http\r\n\r\n";
        assert_eq!(scheme(two, true), Scheme::Http);
        let odd = "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: wss\r\n\r\n";
        assert_eq!(scheme(odd, true), Scheme::Http);
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
        let names: Vec<&str> = view.headers.iter().map(|h| h.name).collect();
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
            "POST /up HTTP/1.1\r\nHost: example.test\r\nContent-Length: 5\r\nX-Forwarded-For: 10.1.2.3\r\n\
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
