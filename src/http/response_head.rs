//! An HTTP/1.x response head, as ferry reads the app's: status, headers and how the body is
//! delimited. The app is trusted less than it might be: framing it cannot express
//! unambiguously (Content-Length with Transfer-Encoding, differing lengths) or a status
//! outside 100-599 is a bad response (502), never a guess.

use super::fields::{connection_tokens, is_hop_by_hop};
use super::headers::Headers;
use super::message::Method;

/// Largest response head ferry accepts from the app.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;
const MAX_RESPONSE_HEADERS: usize = 128;

/// The app's response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// HTTP/1.1 (true) or HTTP/1.0.
    pub http11: bool,
    pub headers: Headers,
}

impl ResponseHead {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.get(name)
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
                let name = h.name;
                !is_hop_by_hop(name, &tokens)
                    && !["content-length", "date", "server"]
                        .iter()
                        .any(|n| name.eq_ignore_ascii_case(n))
                    && !name.to_ascii_lowercase().starts_with("x-accel-")
            })
            .map(|h| (h.name.to_owned(), h.value.to_vec()))
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
    #[error("status {0:03} is outside 100-599")]
    Status(u16),
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
            // httparse takes any three digits; a status outside RFC 9110 §15's range has no
            // class a client can read, and ferry would not know how to frame it.
            if !(100..=599).contains(&status) {
                return Err(BadResponse::Status(status));
            }
            let headers = response.headers.iter().map(|h| (h.name, h.value)).collect();
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
    let te: Vec<&[u8]> = head.headers.get_all("transfer-encoding").collect();
    let lengths: Vec<&[u8]> = head
        .headers
        .get_all("content-length")
        .flat_map(|v| v.split(|&b| b == b','))
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
        for status in ["000", "099", "600", "999"] {
            let raw = format!("HTTP/1.1 {status} Odd\r\nContent-Length: 0\r\n\r\n");
            let code = status.parse().unwrap();
            assert_eq!(
                parse_response(raw.as_bytes()),
                Err(BadResponse::Status(code))
            );
        }
        assert!(parse_response(b"HTTP/1.1 599 Edge\r\n\r\n").is_ok());
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\nA: b\r\n"), Ok(None));
        let big = format!("HTTP/1.1 200 OK\r\nA: {}", "x".repeat(MAX_RESPONSE_HEAD));
        assert_eq!(parse_response(big.as_bytes()), Err(BadResponse::TooLarge));
    }
}
