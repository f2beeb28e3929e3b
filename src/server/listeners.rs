//! The client listening sockets a serving process holds, by address: one [`ListenerSet`]
//! per `server.listen` / `tls.listen` address, with one SO_REUSEPORT socket per connection
//! worker. The server keeps its own handle on every socket (the workers accept on
//! duplicates), so that a reload can tell which addresses stay, and an upgrade can hand the
//! very same sockets to a new process.
//!
//! Matching a configuration to the sockets already open ([`Listeners::prepare`]) is what
//! makes a reload and an upgrade keep an address without a gap: an address the new
//! configuration names (as written, or as bound: `127.0.0.1:0` that was bound to port 41234
//! is kept by `127.0.0.1:41234` too) keeps its sockets; a new one is probed (see
//! `frontend::probe`: taken by another process is an error naming the key) and bound; the
//! rest are closed once the new configuration is in force. Nothing changes until
//! [`Listeners::commit`], so a reload that fails keeps every socket as it was.

use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;

use super::error::StartError;
use crate::config::Config;
use crate::frontend::{self, ListenerKind};

/// The sockets of one client address.
pub struct ListenerSet {
    pub kind: ListenerKind,
    /// The address as configured (port 0 stays 0).
    pub configured: SocketAddr,
    /// The address as bound.
    pub bound: SocketAddr,
    /// The server's own handle on each socket of the SO_REUSEPORT group (the workers accept
    /// on duplicates). Dropping the set closes them, once the workers have stopped.
    pub sockets: Vec<std::net::TcpListener>,
    /// Cancelled when the address is dropped (a reload) or at shutdown: the accept loops on
    /// these sockets stop. A child of the server's shutdown token.
    pub close: CancellationToken,
}

impl ListenerSet {
    /// Binds `count` sockets on `addr` with SO_REUSEPORT, the first resolving port 0, after
    /// checking that no other socket holds the address.
    pub fn bind(
        kind: ListenerKind,
        addr: SocketAddr,
        count: usize,
        close: CancellationToken,
    ) -> Result<ListenerSet, StartError> {
        probe(kind.key(), addr)?;
        let key = kind.key();
        let bind =
            |addr| frontend::bind(addr).map_err(|source| StartError::Bind { key, addr, source });
        let first = bind(addr)?;
        let bound = first.local_addr().unwrap_or(addr);
        let mut sockets = vec![first];
        for _ in 1..count {
            sockets.push(bind(bound)?);
        }
        Ok(ListenerSet {
            kind,
            configured: addr,
            bound,
            sockets,
            close,
        })
    }

    /// Whether this set serves `addr` of `kind` as a configuration names it: the same
    /// address as configured, or, for an address with a port, as bound.
    fn serves(&self, kind: ListenerKind, addr: SocketAddr, exact: bool) -> bool {
        self.kind == kind
            && if exact {
                addr.port() != 0 && self.bound == addr
            } else {
                self.configured == addr
            }
    }
}

/// Refuses an address another socket holds (`frontend::probe`), naming its key.
pub fn probe(key: &'static str, addr: SocketAddr) -> Result<(), StartError> {
    frontend::probe(addr).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            StartError::InUse { key, addr }
        } else {
            StartError::Bind { key, addr, source }
        }
    })
}

/// The client addresses a configuration asks for, in order: `server.listen`, then
/// `tls.listen`.
pub fn wanted(config: &Config) -> Vec<(ListenerKind, SocketAddr)> {
    let http = config
        .server
        .listen
        .iter()
        .map(|&addr| (ListenerKind::Http, addr));
    let https = config
        .tls
        .iter()
        .flat_map(|tls| tls.listen.iter().map(|&addr| (ListenerKind::Https, addr)));
    http.chain(https).collect()
}

/// For each wanted address, the open set that serves it, if any; each set serves at most one.
/// Exact matches (an address with a port, as bound) are taken first, so that `127.0.0.1:0`
/// in the same list gets a set of its own.
fn assign(sets: &[ListenerSet], wanted: &[(ListenerKind, SocketAddr)]) -> Vec<Option<usize>> {
    let mut taken = vec![false; sets.len()];
    let mut assigned = vec![None; wanted.len()];
    for exact in [true, false] {
        for (slot, &(kind, addr)) in assigned.iter_mut().zip(wanted) {
            if slot.is_some() {
                continue;
            }
            let found = sets
                .iter()
                .enumerate()
                .find(|(i, set)| !taken[*i] && set.serves(kind, addr, exact));
            if let Some((i, _)) = found {
                taken[i] = true;
                *slot = Some(i);
            }
        }
    }
    assigned
}

/// A configuration's listeners, matched and bound but not yet in force.
pub struct Prepared {
    /// Per wanted address, in order: an open set (by index) or a newly bound one.
    slots: Vec<Slot>,
}

enum Slot {
    Keep(usize),
    New(ListenerSet),
}

impl Prepared {
    /// The newly bound sets.
    pub fn added(&self) -> impl Iterator<Item = &ListenerSet> {
        self.slots.iter().filter_map(|slot| match slot {
            Slot::New(set) => Some(set),
            Slot::Keep(_) => None,
        })
    }
}

/// What [`Listeners::commit`] changed.
pub struct Committed {
    /// Indices (in the new order) of the sets bound for this configuration.
    pub added: Vec<usize>,
    /// The sets no longer wanted: their accept loops are told to stop; dropping them closes
    /// the server's handles.
    pub removed: Vec<ListenerSet>,
}

/// The client listener sets in force, in configuration order.
pub struct Listeners {
    pub sets: Vec<ListenerSet>,
    /// Sockets per address: one per connection worker.
    per_address: usize,
    /// The server's shutdown token; each set's `close` is a child of it.
    shutdown: CancellationToken,
}

impl Listeners {
    /// `sets` are the ones already open: none at a plain start, those received from the old
    /// process in an upgrade.
    pub fn new(sets: Vec<ListenerSet>, per_address: usize, shutdown: CancellationToken) -> Self {
        Listeners {
            sets,
            per_address,
            shutdown,
        }
    }

    /// Matches `config`'s addresses to the open sets and binds the others. Every address that
    /// cannot be bound is an error; then nothing is kept of this attempt.
    pub fn prepare(&self, config: &Config) -> Result<Prepared, Vec<StartError>> {
        let wanted = wanted(config);
        let assigned = assign(&self.sets, &wanted);
        let mut slots = Vec::new();
        let mut errors = Vec::new();
        for (&(kind, addr), open) in wanted.iter().zip(assigned) {
            match open {
                Some(i) => slots.push(Slot::Keep(i)),
                None => {
                    let close = self.shutdown.child_token();
                    match ListenerSet::bind(kind, addr, self.per_address, close) {
                        Ok(set) => slots.push(Slot::New(set)),
                        Err(err) => errors.push(err),
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(Prepared { slots })
        } else {
            Err(errors)
        }
    }

    /// Puts `prepared` in force: the sets in configuration order, the ones no longer wanted
    /// returned (their accept loops told to stop).
    pub fn commit(&mut self, prepared: Prepared) -> Committed {
        let mut old: Vec<Option<ListenerSet>> = self.sets.drain(..).map(Some).collect();
        let mut added = Vec::new();
        for slot in prepared.slots {
            let set = match slot {
                Slot::Keep(i) => old[i].take(),
                Slot::New(set) => {
                    added.push(self.sets.len());
                    Some(set)
                }
            };
            self.sets.extend(set);
        }
        let removed: Vec<ListenerSet> = old.into_iter().flatten().collect();
        for set in &removed {
            set.close.cancel();
        }
        Committed { added, removed }
    }

    /// The bound addresses of one kind, in configuration order.
    pub fn bound(&self, kind: ListenerKind) -> Vec<SocketAddr> {
        self.sets
            .iter()
            .filter(|set| set.kind == kind)
            .map(|set| set.bound)
            .collect()
    }

    /// Closes the server's handles on every socket (at shutdown, after the accept loops were
    /// told to stop), so that new clients are refused at once.
    pub fn close_all(&mut self) {
        for set in self.sets.drain(..) {
            set.close.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(kind: ListenerKind, configured: &str, bound: &str) -> ListenerSet {
        ListenerSet {
            kind,
            configured: configured.parse().unwrap(),
            bound: bound.parse().unwrap(),
            sockets: Vec::new(),
            close: CancellationToken::new(),
        }
    }

    fn want(list: &[(ListenerKind, &str)]) -> Vec<(ListenerKind, SocketAddr)> {
        list.iter().map(|(k, a)| (*k, a.parse().unwrap())).collect()
    }

    use ListenerKind::{Http, Https};

    #[test]
    fn an_address_is_kept_as_configured_or_as_bound() {
        let sets = [
            set(Http, "127.0.0.1:0", "127.0.0.1:41000"),
            set(Http, "127.0.0.1:0", "127.0.0.1:41001"),
            set(Https, "127.0.0.1:8443", "127.0.0.1:8443"),
        ];
        // As bound first, so the port-0 entry takes the other set, not the one named.
        let wanted = want(&[
            (Http, "127.0.0.1:0"),
            (Http, "127.0.0.1:41000"),
            (Https, "127.0.0.1:8443"),
        ]);
        assert_eq!(assign(&sets, &wanted), [Some(1), Some(0), Some(2)]);
        // The kind counts: an https address never keeps an http set.
        let wanted = want(&[(Https, "127.0.0.1:41000"), (Http, "127.0.0.1:8443")]);
        assert_eq!(assign(&sets, &wanted), [None, None]);
        // Each set serves one address; a third port 0 is a new set.
        let wanted = want(&[
            (Http, "127.0.0.1:0"),
            (Http, "127.0.0.1:0"),
            (Http, "127.0.0.1:0"),
        ]);
        assert_eq!(assign(&sets, &wanted), [Some(0), Some(1), None]);
    }

    #[test]
    fn commit_keeps_order_and_returns_the_rest() {
        let shutdown = CancellationToken::new();
        let sets = vec![
            set(Http, "127.0.0.1:41000", "127.0.0.1:41000"),
            set(Http, "127.0.0.1:41001", "127.0.0.1:41001"),
        ];
        let mut listeners = Listeners::new(sets, 2, shutdown.clone());
        let config = Config::from_toml(
            "[server]\nlisten = [\"127.0.0.1:0\", \"127.0.0.1:41000\"]\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n[[location]]\nprefix = \"/\"\nroot = \".\"\n",
            &[],
        )
        .unwrap();
        let prepared = listeners.prepare(&config).unwrap();
        assert_eq!(prepared.added().count(), 1, "127.0.0.1:0 needs a new set");
        let committed = listeners.commit(prepared);
        assert_eq!(committed.added, [0]);
        assert_eq!(committed.removed.len(), 1);
        assert_eq!(committed.removed[0].bound.port(), 41001);
        assert!(committed.removed[0].close.is_cancelled());
        let bound = listeners.bound(Http);
        assert_eq!(bound.len(), 2);
        assert_ne!(bound[0].port(), 0);
        assert_eq!(bound[1].port(), 41000);
        assert_eq!(listeners.sets[0].sockets.len(), 2, "one socket per worker");
        // A newly bound set stops with the server.
        shutdown.cancel();
        assert!(listeners.sets[0].close.is_cancelled());
    }
}
