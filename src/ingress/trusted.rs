//! Trusted proxy networks (`server.trusted_proxies`, nginx `set_real_ip_from`) and the client
//! address a request from one of them names: X-Forwarded-For walked from the right, past every
//! trusted address, as nginx's `real_ip_recursive on` does. Pure: no I/O.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::http::RequestHead;

/// One network: an address with a prefix length, its host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `"10.0.0.0/8"`, `"fd00::/8"`, or a bare address (`/32`, `/128`). The error is
    /// the message for the config key.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = addr.parse().map_err(|_| {
            format!(
                "invalid network {text:?}: expected an IP address or address/prefix, \
                 e.g. \"10.0.0.0/8\" or \"fd00::/8\""
            )
        })?;
        let bits = max_prefix(network);
        let prefix = match prefix {
            None => bits,
            Some(p) => match prefix_length(p) {
                Some(p) if p <= bits => p,
                _ => {
                    return Err(format!(
                        "invalid network {text:?}: the prefix length must be a number from 0 \
                         to {bits} for an IPv{} address",
                        if network.is_ipv4() { 4 } else { 6 }
                    ));
                }
            },
        };
        let cidr = Cidr {
            network: mask(network, prefix),
            prefix,
        };
        if cidr.network != network {
            return Err(format!(
                "invalid network {text:?}: it has bits set past the prefix; did you mean \
                 \"{cidr}\"?"
            ));
        }
        Ok(cidr)
    }

    /// Whether `ip` is in this network; an IPv4-mapped IPv6 address (`::ffff:10.1.2.3`, as
    /// a dual-stack listener sees IPv4 peers) counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4() && mask(ip, self.prefix) == self.network
    }
}

/// A prefix length in plain decimal digits, without a leading zero ("08", "+8" are refused).
fn prefix_length(text: &str) -> Option<u8> {
    let plain = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    plain.then(|| text.parse().ok()).flatten()
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

/// `ip` with the bits past `prefix` cleared.
fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let keep = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from_bits(v4.to_bits() & keep))
        }
        IpAddr::V6(v6) => {
            let keep = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & keep))
        }
    }
}

/// Whether `ip` is in one of `networks`.
pub fn is_trusted(networks: &[Cidr], ip: IpAddr) -> bool {
    networks.iter().any(|n| n.contains(ip))
}

/// The client address of `req`, which came from `peer`, a trusted proxy: the X-Forwarded-For
/// entries (every field line, in order) walked from the right, each trusted one skipped; the
/// first untrusted one is the client. When every entry is trusted, the leftmost is; an entry
/// that is not an address ends the walk at the last address reached (what lies beyond it
/// cannot be vouched for).
pub fn forwarded_client(req: &RequestHead, peer: IpAddr, networks: &[Cidr]) -> IpAddr {
    let mut client = peer.to_canonical();
    let lines: Vec<&[u8]> = req.headers_all("x-forwarded-for").collect();
    for line in lines.into_iter().rev() {
        for entry in line.rsplit(|&b| b == b',') {
            let Some(addr) = parse_entry(entry) else {
                return client;
            };
            client = addr;
            if !is_trusted(networks, addr) {
                return client;
            }
        }
    }
    client
}

/// One X-Forwarded-For entry: an address, or an address with a port (`1.2.3.4:80`,
/// `[::1]:80`) as some proxies write it, or a bracketed IPv6 address.
fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(entry).ok()?.trim_matches([' ', '\t']);
    let addr = text
        .parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            let inner = text.strip_prefix('[')?.strip_suffix(']')?;
            inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
        })?;
    Some(addr.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse_request;

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|c| Cidr::parse(c).unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_parse_and_match() {
        let net = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(net.contains(ip("10.255.0.1")));
        assert!(net.contains(ip("::ffff:10.1.2.3")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(!net.contains(ip("::a00:1")));
        let host = Cidr::parse(" 192.168.1.7 ").unwrap();
        assert_eq!(host.to_string(), "192.168.1.7/32");
        assert!(host.contains(ip("192.168.1.7")) && !host.contains(ip("192.168.1.8")));
        let v6 = Cidr::parse("fd00::/8").unwrap();
        assert!(v6.contains(ip("fdab::1")) && !v6.contains(ip("fe80::1")));
        assert_eq!(Cidr::parse("::1").unwrap().to_string(), "::1/128");
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("8.8.8.8")) && !all.contains(ip("2001:db8::1")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("2001:db8::1")));
    }

    #[test]
    fn bad_networks_say_why() {
        let err = |s: &str| Cidr::parse(s).unwrap_err();
        assert!(
            err("10.0.0.0/33").contains("from 0 to 32 for an IPv4"),
            "{}",
            err("10.0.0.0/33")
        );
        assert!(err("fd00::/129").contains("from 0 to 128 for an IPv6"));
        assert!(err("10.0.0.0/08").contains("prefix length"));
        assert!(err("10.0.0.0/").contains("prefix length"));
        assert!(err("proxy.internal").contains("expected an IP address"));
        assert_eq!(
            err("10.1.2.3/8"),
            "invalid network \"10.1.2.3/8\": it has bits set past the prefix; did you mean \
             \"10.0.0.0/8\"?"
        );
    }

    fn client(xff: &[&str], peer: &str, trusted: &[&str]) -> String {
        let mut raw = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for line in xff {
            raw.push_str(&format!("X-Forwarded-For: {line}\r\n"));
        }
        raw.push_str("\r\n");
        let req = parse_request(raw.as_bytes()).unwrap().unwrap().0;
        forwarded_client(&req, ip(peer), &cidrs(trusted)).to_string()
    }

    #[test]
    fn the_client_is_the_first_untrusted_address_from_the_right() {
        let trusted = ["10.0.0.0/8", "fd00::/8"];
        assert_eq!(client(&["1.2.3.4"], "10.0.0.1", &trusted), "1.2.3.4");
        // A forged entry on the left stays forged: the walk stops at the first untrusted.
        assert_eq!(
            client(&["6.6.6.6, 1.2.3.4, 10.0.0.9"], "10.0.0.1", &trusted),
            "1.2.3.4"
        );
        // Several field lines are one list, the last line rightmost.
        assert_eq!(
            client(&["6.6.6.6, 1.2.3.4", "10.0.0.9"], "10.0.0.1", &trusted),
            "1.2.3.4"
        );
        // Every entry trusted: the leftmost.
        assert_eq!(
            client(&["10.9.9.9, 10.0.0.9"], "10.0.0.1", &trusted),
            "10.9.9.9"
        );
        // No header: the peer itself.
        assert_eq!(client(&[], "10.0.0.1", &trusted), "10.0.0.1");
        // Ports and brackets, IPv6, mapped IPv4.
        assert_eq!(
            client(&["[2001:db8::7]:443"], "fd00::1", &trusted),
            "2001:db8::7"
        );
        assert_eq!(
            client(&["1.2.3.4:5678"], "::ffff:10.0.0.1", &trusted),
            "1.2.3.4"
        );
        assert_eq!(
            client(&["[2001:db8::8]"], "10.0.0.1", &trusted),
            "2001:db8::8"
        );
        // Garbage ends the walk at the last address reached.
        assert_eq!(
            client(&["1.2.3.4, unknown, 10.0.0.9"], "10.0.0.1", &trusted),
            "10.0.0.9"
        );
        assert_eq!(client(&["1.2.3.4, "], "10.0.0.1", &trusted), "10.0.0.1");
    }
}
