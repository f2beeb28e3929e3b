//! Listeners kept apart: no two of ferry's listeners (`server.listen[i]`, `admin.listen`,
//! `tls.listen[i]`) may take connections for the same address. ferry binds every listener with
//! SO_REUSEPORT (src/frontend/listener.rs), so a second bind on an overlapping address
//! succeeds and the kernel hands it connections meant for the first: with
//! `server.listen = ["0.0.0.0:9090"]` and `admin.listen = "127.0.0.1:9090"`, loopback requests
//! would land on the admin listener. Each clash is reported on the later key and names the
//! earlier one. The `[tls]` listeners use [`clash`] from `schema/tls.rs`.

use std::net::{IpAddr, SocketAddr};

use ::config::{Value, ValueKind};

use super::walker::Walker;
use crate::config::{Admin, Server};

impl Walker<'_> {
    /// `server.listen` items against each other (exact duplicates are already reported by the
    /// list parser), then `admin.listen` against all of them. `server_value` and
    /// `admin_value` are the keys as given; `None` for a default. A key whose own value is
    /// invalid (reported, replaced by its default) is not compared.
    pub(super) fn listeners_apart(
        &mut self,
        server: &Server,
        server_value: Option<&Value>,
        admin: &Admin,
        admin_value: Option<&Value>,
    ) {
        let mut seen: Vec<(String, SocketAddr)> = Vec::new();
        if !self.reported("server.listen") {
            for (index, addr) in server.listen.iter().enumerate() {
                let earlier = seen.iter().filter(|(_, other)| other != addr);
                if let Some(relation) = clash(*addr, earlier) {
                    let key = format!("server.listen[{index}]");
                    self.fail(
                        &key,
                        item(server_value, index),
                        format!("{addr} {relation}"),
                    );
                }
                seen.push((format!("server.listen[{index}]"), *addr));
            }
        }
        if self.reported("admin.listen") {
            return;
        }
        let addr = admin.listen;
        let Some(relation) = clash(addr, seen.iter()) else {
            return;
        };
        let message = match admin_value {
            Some(_) => format!("{addr} {relation}"),
            None => format!("{addr} (the default) {relation}; set admin.listen to another address"),
        };
        self.fail("admin.listen", admin_value, message);
    }
}

/// Item `index` of a list key as given: an array's item, or the whole value where the
/// environment gave a scalar.
pub(super) fn item(value: Option<&Value>, index: usize) -> Option<&Value> {
    let value = value?;
    match &value.kind {
        ValueKind::Array(items) => items.get(index),
        _ => Some(value),
    }
}

/// How `addr` clashes with the first of `others` (key, address) it overlaps, as the rest of a
/// message that starts with `addr`: "is also server.listen[0]", or "overlaps admin.listen =
/// 0.0.0.0:9090 (a wildcard address on the same port)". `None` when it overlaps none.
pub(super) fn clash<'a>(
    addr: SocketAddr,
    mut others: impl Iterator<Item = &'a (String, SocketAddr)>,
) -> Option<String> {
    let (key, other) = others.find(|(_, other)| overlaps(addr, *other))?;
    Some(if *other == addr {
        format!("is also {key}")
    } else if canonical(addr) == canonical(*other) {
        format!("overlaps {key} = {other} (the same IPv4 address, mapped into IPv6)")
    } else {
        format!("overlaps {key} = {other} (a wildcard address on the same port)")
    })
}

/// Whether listeners on `a` and `b` would take connections for the same address: the same
/// address (an IPv4-mapped IPv6 address is its IPv4 one), or the same port with a wildcard
/// address of the same family on one side, or `[::]` on one side (dual-stack: ferry does not
/// set IPV6_V6ONLY, so `[::]` takes IPv4 too). Port 0 listeners get a fresh port each.
pub(super) fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() == 0 || a.port() != b.port() {
        return false;
    }
    let (a, b) = (canonical(a), canonical(b));
    a == b || covers(a, b) || covers(b, a)
}

/// Whether a listener on `wide` also takes the connections for `narrow`.
fn covers(wide: IpAddr, narrow: IpAddr) -> bool {
    wide.is_unspecified() && (wide.is_ipv6() || narrow.is_ipv4())
}

fn canonical(addr: SocketAddr) -> IpAddr {
    addr.ip().to_canonical()
}
