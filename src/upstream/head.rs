//! The proxy's codec, without I/O: the request head ferry sends to the app (hop-by-hop
//! headers dropped, forwarded headers added, the offload advertisement set) and the app's
//! response head parsed into status, headers and body framing. The app is trusted less than
//! it might be: framing it cannot express unambiguously (Content-Length with
//! Transfer-Encoding, differing lengths) is a bad response (502), never a guess.

use std::net::SocketAddr;

use crate::http::{BodyLength, Header, Method, RequestHead};

/// Largest response head ferry accepts from the app.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;
const MAX_RESPONSE_HEADERS: usize = 128;

/// Headers that describe one hop, never forwarded (RFC 9110 §7.6.1), in lowercase.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
];

/// What ferry adds to every forwarded request.
#[derive(Debug, Clone, Default)]
pub struct ForwardOptions {
    pub forwarded_headers: bool,
    /// `X-Sendfile-Type` value to advertise.
    pub sendfile_type: Option<&'static str>,
    /// `X-Accel-Mapping` value to advertise.
    pub accel_mapping: Option<String>,
    /// The Host sent when the client gave none (an HTTP/1.0 request): the app's address.
    pub default_host: String,
}

/// Whether `name` is hop-by-hop, counting the names the message's Connection lists.
fn is_hop_by_hop(name: &str, connection_tokens: &[String]) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
        || connection_tokens
            .iter()
            .any(|t| name.eq_ignore_ascii_case(t))
}

/// The comma-separated tokens of every Connection header, lowercased.
pub fn connection_tokens(headers: &[Header]) -> Vec<String> {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .map(|t| String::from_utf8_lossy(t).trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Whether the client asks to switch protocols (WebSocket and friends).
pub fn wants_upgrade(req: &RequestHead) -> bool {
    req.header("upgrade").is_some()
        && connection_tokens(&req.headers)
            .iter()
            .any(|t| t == "upgrade")
}

/// Encodes the request head ferry sends to the app for `req`; `tls` is whether the client
/// came over TLS (X-Forwarded-Proto).
pub fn encode_request(
    req: &RequestHead,
    client: SocketAddr,
    tls: bool,
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
        if is_hop_by_hop(name, &tokens) || is_replaced(name, opts.forwarded_headers) {
            if name.eq_ignore_ascii_case("x-forwarded-for") {
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
        push_header(
            out,
            "X-Forwarded-Proto",
            if tls { b"https" } else { b"http" },
        );
        if let Some(host) = req.header("host") {
            push_header(out, "X-Forwarded-Host", host);
        }
    } else if let Some(list) = forwarded_for {
        push_header(out, "X-Forwarded-For", &list);
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
/// advertisement a client must never be able to forge (CVE-2025-61780).
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
    ALWAYS.iter().any(|h| name.eq_ignore_ascii_case(h))
        || (forwarded_headers && FORWARDED.iter().any(|h| name.eq_ignore_ascii_case(h)))
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The app's response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// HTTP/1.1 (true) or HTTP/1.0.
    pub http11: bool,
    pub headers: Vec<Header>,
}

impl ResponseHead {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_slice())
    }

    /// Whether the app lets ferry keep this connection after the body.
    pub fn keep_alive(&self) -> bool {
        let tokens = connection_tokens(&self.headers);
        if self.http11 {
            !tokens.iter().any(|t| t == "close")
        } else {
            tokens.iter().any(|t| t == "keep-alive")
        }
    }

    /// The headers a client may see: hop-by-hop, framing, Date/Server (ferry sets its own)
    /// and every `X-Accel-*` control header removed.
    pub fn client_headers(&self) -> Vec<(String, Vec<u8>)> {
        let tokens = connection_tokens(&self.headers);
        self.headers
            .iter()
            .filter(|h| {
                let name = h.name.as_str();
                !is_hop_by_hop(name, &tokens)
                    && !["content-length", "date", "server"]
                        .iter()
                        .any(|n| name.eq_ignore_ascii_case(n))
                    && !name.to_ascii_lowercase().starts_with("x-accel-")
            })
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect()
    }
}

/// How the app's response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Until the app closes the connection.
    Close,
}

/// Why the app's response is unusable (answered with 502).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadResponse {
    #[error("malformed response head: {0}")]
    Syntax(String),
    #[error("response head over {MAX_RESPONSE_HEAD} bytes")]
    TooLarge,
    #[error("ambiguous framing: {0}")]
    Framing(&'static str),
}

/// `Ok(None)`: need more bytes. Otherwise the head and its length in `buf`.
pub fn parse_response(buf: &[u8]) -> Result<Option<(ResponseHead, usize)>, BadResponse> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut response = httparse::Response::new(&mut slots);
    match response.parse(buf) {
        Ok(httparse::Status::Complete(used)) => {
            // httparse takes a bare LF as a line end; re-encoded with CRLF it would turn
            // `a\nX-Injected: 1` from the app into a header of its own at the client.
            if buf[..used]
                .iter()
                .enumerate()
                .any(|(i, &b)| b == b'\n' && (i == 0 || buf[i - 1] != b'\r'))
            {
                return Err(BadResponse::Syntax("bare LF in the response head".into()));
            }
            let status = response
                .code
                .ok_or_else(|| BadResponse::Syntax("no status".into()))?;
            let headers = response
                .headers
                .iter()
                .map(|h| Header {
                    name: h.name.to_string(),
                    value: h.value.to_vec(),
                })
                .collect();
            Ok(Some((
                ResponseHead {
                    status,
                    http11: response.version == Some(1),
                    headers,
                },
                used,
            )))
        }
        Ok(httparse::Status::Partial) if buf.len() >= MAX_RESPONSE_HEAD => {
            Err(BadResponse::TooLarge)
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(err) => Err(BadResponse::Syntax(err.to_string())),
    }
}

/// The body framing of `head`, answering a request made with `method` (RFC 9112 §6.3).
pub fn framing(head: &ResponseHead, method: &Method) -> Result<Framing, BadResponse> {
    if *method == Method::Head || head.status < 200 || head.status == 204 || head.status == 304 {
        return Ok(Framing::None);
    }
    let te: Vec<&[u8]> = head
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
        .map(|h| h.value.as_slice())
        .collect();
    let lengths: Vec<&[u8]> = head
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .map(|v| v.trim_ascii())
        .collect();
    if !te.is_empty() {
        if !lengths.is_empty() {
            return Err(BadResponse::Framing(
                "content-length with transfer-encoding",
            ));
        }
        let codings: Vec<&[u8]> = te
            .iter()
            .flat_map(|v| v.split(|&b| b == b','))
            .map(|c| c.trim_ascii())
            .filter(|c| !c.is_empty())
            .collect();
        // ferry re-frames bodies for the client, so it can only take codings it can undo:
        // chunked alone. A gzip transfer coding relayed without its header would be garbage.
        return match codings.as_slice() {
            [only] if only.eq_ignore_ascii_case(b"chunked") => Ok(Framing::Chunked),
            _ => Err(BadResponse::Framing("transfer-coding other than chunked")),
        };
    }
    let mut length = None;
    for value in lengths {
        let parsed = std::str::from_utf8(value)
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or(BadResponse::Framing("invalid content-length"))?;
        if length.is_some_and(|l| l != parsed) {
            return Err(BadResponse::Framing("differing content-length values"));
        }
        length = Some(parsed);
    }
    Ok(length.map_or(Framing::Close, Framing::Length))
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
            false,
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
    fn forwarded_headers_and_advertisement() {
        let opts = ForwardOptions {
            forwarded_headers: true,
            sendfile_type: Some("X-Accel-Redirect"),
            accel_mapping: Some("/srv/files/=/protected/".into()),
            default_host: "app".into(),
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

    fn response(raw: &str) -> ResponseHead {
        parse_response(raw.as_bytes()).unwrap().unwrap().0
    }

    #[test]
    fn response_framing() {
        let get = Method::Get;
        assert_eq!(
            framing(
                &response("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n"),
                &get
            ),
            Ok(Framing::Length(12))
        );
        assert_eq!(
            framing(
                &response("HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n"),
                &get
            ),
            Ok(Framing::Length(3))
        );
        assert_eq!(
            framing(
                &response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
                &get
            ),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            framing(&response("HTTP/1.0 200 OK\r\n\r\n"), &get),
            Ok(Framing::Close)
        );
        assert_eq!(
            framing(
                &response("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n"),
                &get
            ),
            Ok(Framing::None)
        );
        assert_eq!(
            framing(
                &response("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"),
                &Method::Head
            ),
            Ok(Framing::None)
        );
        assert!(
            framing(
                &response("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
                &get
            )
            .is_err()
        );
        assert!(
            framing(
                &response(
                    "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
                ),
                &get
            )
            .is_err()
        );
        assert!(
            framing(
                &response("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
                &get
            )
            .is_err()
        );
        assert!(
            framing(
                &response("HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n"),
                &get
            )
            .is_err()
        );
    }

    #[test]
    fn hostile_app_heads() {
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nX-Foo: a\nX-Injected: 1\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\nA: b\n\n").is_err());
        let gzip = response("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert!(framing(&gzip, &Method::Get).is_err());
        let gzip = response("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
        assert!(framing(&gzip, &Method::Get).is_err());
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

    #[test]
    fn client_headers_hide_control_headers() {
        let head = response(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Accel-Buffering: no\r\nConnection: close, X-Hop\r\n\
             X-Hop: 1\r\nDate: x\r\nServer: app\r\nContent-Length: 3\r\nSet-Cookie: a=1\r\n\r\n",
        );
        let names: Vec<String> = head.client_headers().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["Content-Type", "Set-Cookie"]);
        assert!(!head.keep_alive());
    }

    #[test]
    fn bad_response_heads() {
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n").is_err());
        assert!(parse_response(b"garbage\r\n\r\n").is_err());
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\nA: b\r\n"), Ok(None));
        let big = format!("HTTP/1.1 200 OK\r\nA: {}", "x".repeat(MAX_RESPONSE_HEAD));
        assert_eq!(parse_response(big.as_bytes()), Err(BadResponse::TooLarge));
    }
}
