//! What a field's name means for forwarding (RFC 9110 §7.6.1): the hop-by-hop fields, the
//! tokens of a message's Connection header, and names compared as the apps behind a proxy
//! compare them (case-insensitive, `_` and `-` alike).

use super::headers::Headers;

/// Headers that describe one hop, never forwarded (RFC 9110 §7.6.1), in lowercase.
pub const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
];

/// Whether field names `a` and `b` are the same to an app that reads fields CGI-style (Rack,
/// WSGI, PHP): case-insensitive, with `_` and `-` alike.
pub fn same_field(a: &str, b: &str) -> bool {
    let fold = |c: u8| match c {
        b'_' => b'-',
        c => c.to_ascii_lowercase(),
    };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| fold(x) == fold(y))
}

/// Whether `name` is hop-by-hop, counting the names the message's Connection lists.
pub fn is_hop_by_hop(name: &str, connection_tokens: &[String]) -> bool {
    HOP_BY_HOP.iter().any(|h| same_field(name, h))
        || connection_tokens
            .iter()
            .any(|t| name.eq_ignore_ascii_case(t))
}

/// The comma-separated tokens of every Connection header, lowercased.
pub fn connection_tokens(headers: &Headers) -> Vec<String> {
    headers
        .get_all("connection")
        .flat_map(|v| v.split(|&b| b == b','))
        .map(|t| String::from_utf8_lossy(t).trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}
