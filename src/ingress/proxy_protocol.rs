//! The PROXY protocol header (HAProxy's, versions 1 and 2) that a load balancer such as AWS
//! NLB or HAProxy sends before the client's first byte, naming the client's address. Parsing
//! only, from byte slices: `frontend::proxy_protocol` reads the header off the socket,
//! exactly its bytes and no more, so the HTTP request or TLS ClientHello after it stays
//! unread for the connection.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The longest version 1 header, CRLF included (the specification's bound).
pub const V1_MAX: usize = 107;
/// The fixed part of a version 2 header: signature, version and command, family, length.
pub const V2_FIXED: usize = 16;
/// The version 2 signature.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
const V1_PREFIX: &[u8] = b"PROXY ";

/// What a valid header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// The client's address (TCP over IPv4 or IPv6).
    Source(SocketAddr),
    /// The connection's own peer stands: a version 2 LOCAL command (the balancer's own
    /// health check), version 1 UNKNOWN, or a version 2 address family other than TCP/IP.
    Local,
}

/// Why bytes are not a PROXY protocol header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("no proxy protocol signature")]
    Signature,
    #[error("proxy protocol v1 line longer than 107 bytes")]
    TooLong,
    #[error("malformed proxy protocol v1 line")]
    V1,
    #[error("unsupported proxy protocol version {0}")]
    Version(u8),
    #[error("unsupported proxy protocol v2 command {0}")]
    Command(u8),
    #[error("unsupported proxy protocol v2 family/transport byte {0:#04x}")]
    Family(u8),
    #[error("proxy protocol v2 address block of {0} bytes is too short")]
    Short(u16),
}

/// The version the first byte of a connection announces, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

pub fn version(first: u8) -> Option<Version> {
    match first {
        b'P' => Some(Version::V1),
        b'\r' => Some(Version::V2),
        _ => None,
    }
}

/// Whether `partial`, the start of a version 1 line without its LF yet, can still become a
/// valid one: the "PROXY " prefix (as far as it goes), no CR but as the last byte, and room
/// left for the line's end.
pub fn v1_may_continue(partial: &[u8]) -> Result<(), Invalid> {
    let n = partial.len().min(V1_PREFIX.len());
    if partial[..n] != V1_PREFIX[..n] {
        return Err(Invalid::Signature);
    }
    if partial.len() >= V1_MAX {
        return Err(Invalid::TooLong);
    }
    match partial.iter().position(|&b| b == b'\r') {
        Some(at) if at + 1 != partial.len() => Err(Invalid::V1),
        _ => Ok(()),
    }
}

/// Parses a whole version 1 line, `"PROXY TCP4 1.2.3.4 10.0.0.1 56324 443\r\n"`.
pub fn parse_v1(line: &[u8]) -> Result<Header, Invalid> {
    if line.len() > V1_MAX {
        return Err(Invalid::TooLong);
    }
    let rest = line.strip_prefix(V1_PREFIX).ok_or(Invalid::Signature)?;
    let rest = rest.strip_suffix(b"\r\n").ok_or(Invalid::V1)?;
    let text = std::str::from_utf8(rest).map_err(|_| Invalid::V1)?;
    if text == "UNKNOWN" || text.starts_with("UNKNOWN ") {
        return Ok(Header::Local);
    }
    let fields: Vec<&str> = text.split(' ').collect();
    let [proto, source, destination, source_port, destination_port] = fields[..] else {
        return Err(Invalid::V1);
    };
    let source: IpAddr = match proto {
        "TCP4" => IpAddr::V4(source.parse::<Ipv4Addr>().map_err(|_| Invalid::V1)?),
        "TCP6" => IpAddr::V6(source.parse::<Ipv6Addr>().map_err(|_| Invalid::V1)?),
        _ => return Err(Invalid::V1),
    };
    let destination_ok = match proto {
        "TCP4" => destination.parse::<Ipv4Addr>().is_ok(),
        _ => destination.parse::<Ipv6Addr>().is_ok(),
    };
    let port = port(source_port).ok_or(Invalid::V1)?;
    if !destination_ok || self::port(destination_port).is_none() {
        return Err(Invalid::V1);
    }
    Ok(Header::Source(SocketAddr::new(source, port)))
}

/// A version 1 port: decimal, no sign, no leading zero, at most 65535.
fn port(text: &str) -> Option<u16> {
    let plain = !text.is_empty()
        && text.len() <= 5
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    plain.then(|| text.parse().ok()).flatten()
}

/// The fixed part of a version 2 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V2 {
    /// The LOCAL command: the balancer speaking for itself.
    local: bool,
    /// The family and transport byte.
    family: u8,
    /// The bytes that follow the fixed part: addresses, then TLVs (ignored).
    pub len: u16,
}

/// Parses the 16 fixed bytes of a version 2 header.
pub fn parse_v2(fixed: &[u8; V2_FIXED]) -> Result<V2, Invalid> {
    if fixed[..12] != V2_SIGNATURE {
        return Err(Invalid::Signature);
    }
    let version = fixed[12] >> 4;
    if version != 2 {
        return Err(Invalid::Version(version));
    }
    let local = match fixed[12] & 0x0f {
        0 => true,
        1 => false,
        command => return Err(Invalid::Command(command)),
    };
    let family = fixed[13];
    // Families UNSPEC, INET, INET6, UNIX; transports UNSPEC, STREAM, DGRAM.
    if family >> 4 > 3 || family & 0x0f > 2 {
        return Err(Invalid::Family(family));
    }
    let v2 = V2 {
        local,
        family,
        len: u16::from_be_bytes([fixed[14], fixed[15]]),
    };
    if v2.addresses_len() > usize::from(v2.len) {
        return Err(Invalid::Short(v2.len));
    }
    Ok(v2)
}

impl V2 {
    /// How many of the bytes after the fixed part are the addresses this header's source
    /// is read from (0 when it names none ferry uses).
    pub fn addresses_len(&self) -> usize {
        if self.local {
            return 0;
        }
        match self.family {
            0x11 => 12,
            0x21 => 36,
            _ => 0,
        }
    }

    /// What the header says, given its first [`V2::addresses_len`] bytes after the fixed
    /// part.
    pub fn header(&self, addresses: &[u8]) -> Header {
        match (self.addresses_len(), addresses) {
            (12, [a, b, c, d, _, _, _, _, p, q, ..]) => {
                let ip = Ipv4Addr::new(*a, *b, *c, *d);
                Header::Source(SocketAddr::new(ip.into(), u16::from_be_bytes([*p, *q])))
            }
            (36, bytes) if bytes.len() >= 34 => {
                let mut octets = [0; 16];
                octets.copy_from_slice(&bytes[..16]);
                let port = u16::from_be_bytes([bytes[32], bytes[33]]);
                Header::Source(SocketAddr::new(Ipv6Addr::from(octets).into(), port))
            }
            _ => Header::Local,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1(line: &str) -> Result<Header, Invalid> {
        parse_v1(line.as_bytes())
    }

    fn source(s: &str) -> Header {
        Header::Source(s.parse().unwrap())
    }

    #[test]
    fn version_1_lines() {
        assert_eq!(
            v1("PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\r\n"),
            Ok(source("192.0.2.7:56324"))
        );
        assert_eq!(
            v1("PROXY TCP6 2001:db8::7 2001:db8::1 65535 0\r\n"),
            Ok(source("[2001:db8::7]:65535"))
        );
        assert_eq!(v1("PROXY UNKNOWN\r\n"), Ok(Header::Local));
        assert_eq!(
            v1("PROXY UNKNOWN ffff:f...f:ffff 1 2\r\n"),
            Ok(Header::Local)
        );
        for bad in [
            "PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\n",
            "PROXY TCP4 192.0.2.7  10.0.0.1 56324 443\r\n",
            "PROXY TCP4 2001:db8::7 10.0.0.1 56324 443\r\n",
            "PROXY TCP6 192.0.2.7 2001:db8::1 1 2\r\n",
            "PROXY TCP4 192.0.2.7 10.0.0.1 65536 443\r\n",
            "PROXY TCP4 192.0.2.7 10.0.0.1 0443 443\r\n",
            "PROXY TCP4 192.0.2.7 10.0.0.1 +443 443\r\n",
            "PROXY TCP4 192.0.2.7 10.0.0.1 56324\r\n",
            "PROXY UDP4 192.0.2.7 10.0.0.1 1 2\r\n",
            "PROXY tcp4 192.0.2.7 10.0.0.1 1 2\r\n",
        ] {
            assert_eq!(v1(bad), Err(Invalid::V1), "{bad:?}");
        }
        assert_eq!(v1("GET / HTTP/1.1\r\n"), Err(Invalid::Signature));
        let long = format!("PROXY UNKNOWN {}\r\n", "x".repeat(92));
        assert_eq!(long.len(), 108);
        assert_eq!(v1(&long), Err(Invalid::TooLong));
        assert_eq!(v1(&long[1..]), Err(Invalid::Signature));
    }

    #[test]
    fn partial_version_1_lines() {
        assert_eq!(v1_may_continue(b"PRO"), Ok(()));
        assert_eq!(v1_may_continue(b"PROXY TCP4 1.2"), Ok(()));
        assert_eq!(v1_may_continue(b"PROXY UNKNOWN\r"), Ok(()));
        assert_eq!(v1_may_continue(b"PROXY UNK\rNOWN"), Err(Invalid::V1));
        assert_eq!(v1_may_continue(b"POST / HTTP/1.1"), Err(Invalid::Signature));
        assert_eq!(v1_may_continue(&[b'P'; 3]), Err(Invalid::Signature));
        let mut long = b"PROXY ".to_vec();
        long.resize(V1_MAX, b'1');
        assert_eq!(v1_may_continue(&long), Err(Invalid::TooLong));
    }

    fn fixed(command: u8, family: u8, len: u16) -> [u8; V2_FIXED] {
        let mut out = [0; V2_FIXED];
        out[..12].copy_from_slice(&V2_SIGNATURE);
        out[12] = command;
        out[13] = family;
        out[14..].copy_from_slice(&len.to_be_bytes());
        out
    }

    #[test]
    fn version_2_headers() {
        // PROXY, TCP over IPv4, 12 address bytes plus a 7-byte TLV.
        let v2 = parse_v2(&fixed(0x21, 0x11, 19)).unwrap();
        assert_eq!((v2.addresses_len(), v2.len), (12, 19));
        let addresses = [192, 0, 2, 7, 10, 0, 0, 1, 0xdc, 0x04, 0x01, 0xbb];
        assert_eq!(v2.header(&addresses), source("192.0.2.7:56324"));
        // TCP over IPv6.
        let v2 = parse_v2(&fixed(0x21, 0x21, 36)).unwrap();
        let mut addresses = [0u8; 36];
        addresses[..16].copy_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        addresses[32..34].copy_from_slice(&8080u16.to_be_bytes());
        assert_eq!(v2.header(&addresses), source("[2001:db8::7]:8080"));
        // LOCAL (a health check), whatever follows; UNSPEC, UNIX and UDP: the real peer.
        for (command, family, len) in [
            (0x20, 0x00, 0),
            (0x20, 0x11, 12),
            (0x21, 0x00, 0),
            (0x21, 0x31, 216),
            (0x21, 0x12, 12),
        ] {
            let v2 = parse_v2(&fixed(command, family, len)).unwrap();
            assert_eq!((v2.addresses_len(), v2.header(&[])), (0, Header::Local));
        }
    }

    #[test]
    fn bad_version_2_headers() {
        let mut bad = fixed(0x21, 0x11, 12);
        bad[11] = b'X';
        assert_eq!(parse_v2(&bad), Err(Invalid::Signature));
        assert_eq!(parse_v2(&fixed(0x11, 0x11, 12)), Err(Invalid::Version(1)));
        assert_eq!(parse_v2(&fixed(0x22, 0x11, 12)), Err(Invalid::Command(2)));
        assert_eq!(parse_v2(&fixed(0x21, 0x41, 12)), Err(Invalid::Family(0x41)));
        assert_eq!(parse_v2(&fixed(0x21, 0x13, 12)), Err(Invalid::Family(0x13)));
        assert_eq!(parse_v2(&fixed(0x21, 0x11, 11)), Err(Invalid::Short(11)));
        assert_eq!(parse_v2(&fixed(0x21, 0x21, 12)), Err(Invalid::Short(12)));
    }
}
