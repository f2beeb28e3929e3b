//! Who a request comes from when ferry runs behind an ingress or a load balancer: the
//! trusted proxy networks and the client address their X-Forwarded-For names (`trusted`),
//! the PROXY protocol header a balancer sends first (`proxy_protocol`), and the [`Client`]
//! the frontend attaches to every request head, which the forwarded head to the app
//! (`upstream::head`), the response and the access log read. No I/O here: the frontend reads
//! the PROXY header off the socket (`frontend::proxy_protocol`).

pub mod proxy_protocol;
pub mod trusted;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::http::{RequestHead, Scheme};

pub use trusted::{Cidr, is_trusted};

/// Who sent a request, as far as ferry can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// The connection's peer: its TCP peer, or the source a PROXY protocol header named.
    pub peer: SocketAddr,
    /// The client's address: the peer's, or when the peer is a trusted proxy the address its
    /// X-Forwarded-For names (`trusted::forwarded_client`). IPv4-mapped addresses are given
    /// as IPv4. What the access log and X-Real-IP say.
    pub addr: IpAddr,
    /// Whether the peer is a trusted proxy (`server.trusted_proxies`): its X-Forwarded-For is
    /// appended to and its X-Forwarded-Proto and -Host are kept.
    pub trusted: bool,
}

impl Client {
    /// A client known only by the connection's peer (a request whose head was refused).
    pub fn peer(peer: SocketAddr, trusted: bool) -> Client {
        Client {
            peer,
            addr: peer.ip().to_canonical(),
            trusted,
        }
    }
}

impl Default for Client {
    /// A placeholder for heads not built by a connection (the codec's, tests').
    fn default() -> Client {
        Client::peer(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0), false)
    }
}

/// Attaches its [`Client`] to `head`, which arrived from `peer` (`peer_trusted`: whether
/// `peer` is in `networks`, decided once per connection). From a trusted peer, an
/// X-Forwarded-Proto of exactly `http` or `https` also becomes the request's scheme, so the
/// cache keys and redirects follow the scheme the client used at the edge.
pub fn identify(head: &mut RequestHead, peer: SocketAddr, peer_trusted: bool, networks: &[Cidr]) {
    if !peer_trusted {
        head.client = Client::peer(peer, false);
        return;
    }
    head.client = Client {
        peer,
        addr: trusted::forwarded_client(head, peer.ip(), networks),
        trusted: true,
    };
    let scheme = {
        let mut protos = head.headers_all("x-forwarded-proto");
        match (protos.next().map(<[u8]>::trim_ascii), protos.next()) {
            (Some(proto), None) if proto.eq_ignore_ascii_case(b"https") => Some(Scheme::Https),
            (Some(proto), None) if proto.eq_ignore_ascii_case(b"http") => Some(Scheme::Http),
            _ => None,
        }
    };
    if let Some(scheme) = scheme {
        head.scheme = scheme;
    }
}
