//! Who sent a request, as the request head carries it: the connection's peer, the client's
//! address, whether the peer is a trusted proxy, and the request's ID. Plain data: the
//! connection decides it (`ingress::identify`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::request_id::RequestId;

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
    /// appended to and its X-Forwarded-Proto and -Host and X-Request-Id are kept.
    pub trusted: bool,
    /// The request's ID: sent to the app and the client as X-Request-Id, and logged.
    pub request_id: RequestId,
}

impl Client {
    /// A client known only by the connection's peer (a request whose head was refused),
    /// with a new request ID.
    pub fn peer(peer: SocketAddr, trusted: bool) -> Client {
        Client {
            peer,
            addr: peer.ip().to_canonical(),
            trusted,
            request_id: RequestId::generate(),
        }
    }
}

impl Default for Client {
    /// A placeholder for heads not built by a connection (the codec's, tests'): no address,
    /// no request ID.
    fn default() -> Client {
        Client {
            peer: SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0),
            addr: Ipv4Addr::UNSPECIFIED.into(),
            trusted: false,
            request_id: RequestId::UNSET,
        }
    }
}
