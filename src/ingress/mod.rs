//! Who a request comes from when ferry runs behind an ingress or a load balancer: the
//! trusted proxy networks and the client address their X-Forwarded-For names (`trusted`),
//! the PROXY protocol header a balancer sends first (`proxy_protocol`), and [`identify`],
//! which attaches to every request head its [`Client`] (address, trust, request ID), read
//! by the forwarded head to the app (`upstream::head`), the response and the access log. No I/O here: the frontend reads
//! the PROXY header off the socket (`frontend::proxy_protocol`).

pub mod proxy_protocol;
pub mod trusted;

use std::net::SocketAddr;

use crate::http::{RequestHead, Scheme};

/// `Client` and `RequestId` are plain data the request head carries, so they live with it in
/// `http`; what decides them lives here.
pub use crate::http::{Client, RequestId};
pub use trusted::{Cidr, is_trusted};

/// Attaches its [`Client`] to `head`, which arrived from `peer` (`peer_trusted`: whether
/// `peer` is in `networks`, decided once per connection). From a trusted peer, an
/// X-Forwarded-Proto of exactly `http` or `https` also becomes the request's scheme, so the
/// cache keys and redirects follow the scheme the client used at the edge, and a sane
/// X-Request-Id (one field, see `RequestId::kept`) is the request's ID; otherwise the
/// request gets a new one.
pub fn identify(head: &mut RequestHead, peer: SocketAddr, peer_trusted: bool, networks: &[Cidr]) {
    if !peer_trusted {
        head.client = Client::peer(peer, false);
        return;
    }
    let request_id = {
        let mut ids = head.headers_all("x-request-id");
        match (ids.next(), ids.next()) {
            (Some(id), None) => RequestId::kept(id),
            _ => None,
        }
    };
    head.client = Client {
        peer,
        addr: trusted::forwarded_client(head, peer.ip(), networks),
        trusted: true,
        request_id: request_id.unwrap_or_else(RequestId::generate),
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
