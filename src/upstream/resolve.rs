//! Host-name upstreams (`address = "app:3000"`): the name is resolved when a new connection
//! is needed (pooled connections are reused without asking), by the system resolver
//! (`getaddrinfo`, so `/etc/hosts`, Docker's and Kubernetes' DNS all apply) on tokio's
//! blocking pool, never on the reactor. The addresses are tried in the resolver's order,
//! each within `connect_timeout`, until one connects.
//!
//! The answer is kept for [`TTL`] so that a burst of new connections asks once, and a
//! failure for [`FAILURE_TTL`] so that an app that is down does not turn every request into
//! a look-up. When every remembered address fails, the name is asked again at once (unless
//! it was within [`FAILURE_TTL`]) and any new addresses are tried: an app container
//! replaced with a new address is found by the first request that needs a connection.
//! Look-ups of one name run one at a time; requests arriving meanwhile wait for that answer.
//! A look-up that outlives `connect_timeout` is abandoned (its blocking `getaddrinfo` call
//! finishes on its own) and remembered as a failure.
//!
//! Not here: connecting to one address (`stream.rs`); `ferry check`'s look-up
//! ([`check_resolves`], blocking, outside any runtime).

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::stream::AppSocket;
use crate::config::UpstreamAddress;
use crate::failure::ConnectError;

/// How long a resolved answer is used for new connections. Short: a name's address changes
/// when the app's container is replaced, and a stale answer is caught anyway by the retry
/// when all its addresses fail; long enough that a burst of new connections resolves once.
pub const TTL: Duration = Duration::from_secs(5);

/// How long a failed look-up is remembered: requests during an outage fail at once instead
/// of each waiting for the resolver, and an app that comes up is found within a second.
pub const FAILURE_TTL: Duration = Duration::from_secs(1);

/// How long `ferry check` waits for the resolver.
const CHECK_WAIT: Duration = Duration::from_secs(5);

/// A host name and port, and the last answer for it.
#[derive(Debug)]
pub(super) struct Resolver {
    name: String,
    port: u16,
    last: Mutex<Option<Answer>>,
}

#[derive(Debug)]
struct Answer {
    at: Instant,
    addrs: Result<Arc<[SocketAddr]>, String>,
}

impl Answer {
    fn fresh(&self) -> bool {
        let ttl = if self.addrs.is_ok() { TTL } else { FAILURE_TTL };
        self.at.elapsed() < ttl
    }
}

impl Resolver {
    pub(super) fn new(name: String, port: u16) -> Resolver {
        Resolver {
            name,
            port,
            last: Mutex::new(None),
        }
    }

    /// A new connection to the name's first address that accepts one. `timeout` bounds the
    /// look-up and each connection attempt.
    pub(super) async fn connect(&self, timeout: Duration) -> Result<AppSocket, ConnectError> {
        let addrs = self.addrs(timeout).await?;
        let err = match connect_first(&addrs, timeout).await {
            Ok(stream) => return Ok(stream),
            Err(err) => err,
        };
        match self.refresh(&addrs, timeout).await? {
            Some(moved) => connect_first(&moved, timeout).await,
            None => Err(err),
        }
    }

    /// The addresses of the name: the remembered answer while it is fresh, else a new one.
    async fn addrs(&self, timeout: Duration) -> Result<Arc<[SocketAddr]>, ConnectError> {
        // Held across the look-up: one look-up at a time, the others wait for its answer.
        let mut last = self.last.lock().await;
        match last.as_ref().filter(|answer| answer.fresh()) {
            Some(Answer {
                addrs: Ok(addrs), ..
            }) => Ok(Arc::clone(addrs)),
            Some(Answer {
                addrs: Err(detail), ..
            }) => Err(self.failed(detail.clone())),
            None => self.ask(&mut last, timeout).await,
        }
    }

    /// After every address of `failed` refused or timed out: the app may have moved (its
    /// container replaced), so the name is asked again, unless it was within
    /// [`FAILURE_TTL`] (then the app is down rather than moved, and a burst of requests
    /// to it must not become a burst of look-ups). The new addresses, if they differ.
    async fn refresh(
        &self,
        failed: &[SocketAddr],
        timeout: Duration,
    ) -> Result<Option<Arc<[SocketAddr]>>, ConnectError> {
        let mut last = self.last.lock().await;
        let addrs = match last.as_ref() {
            Some(answer) if answer.at.elapsed() < FAILURE_TTL => match &answer.addrs {
                Ok(addrs) => Arc::clone(addrs),
                Err(_) => return Ok(None),
            },
            _ => self.ask(&mut last, timeout).await?,
        };
        Ok((!same_set(&addrs, failed)).then_some(addrs))
    }

    /// Asks the resolver and remembers its answer in `last` (held locked by the caller).
    async fn ask(
        &self,
        last: &mut Option<Answer>,
        timeout: Duration,
    ) -> Result<Arc<[SocketAddr]>, ConnectError> {
        let addrs = self.look_up(timeout).await;
        let previous = last.as_ref().and_then(|answer| answer.addrs.as_ref().ok());
        match &addrs {
            Ok(now) if !previous.is_some_and(|previous| same_set(previous, now)) => {
                tracing::info!(upstream = %self.name, port = self.port, addresses = ?now, "upstream name resolved");
            }
            Ok(_) => {}
            Err(detail) => {
                tracing::debug!(upstream = %self.name, port = self.port, error = %detail, "upstream name did not resolve");
            }
        }
        *last = Some(Answer {
            at: Instant::now(),
            addrs: addrs.clone(),
        });
        addrs.map_err(|detail| self.failed(detail))
    }

    async fn look_up(&self, timeout: Duration) -> Result<Arc<[SocketAddr]>, String> {
        let query = tokio::net::lookup_host((self.name.as_str(), self.port));
        match tokio::time::timeout(timeout, query).await {
            Ok(Ok(addrs)) => {
                let addrs: Arc<[SocketAddr]> = addrs.collect();
                if addrs.is_empty() {
                    Err("the resolver returned no addresses".into())
                } else {
                    Ok(addrs)
                }
            }
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err(format!("no answer from the resolver within {timeout:?}")),
        }
    }

    fn failed(&self, detail: String) -> ConnectError {
        ConnectError::Resolve {
            name: self.name.clone(),
            detail,
        }
    }
}

/// Whether two answers hold the same addresses (a round-robin resolver reorders them).
fn same_set(a: &[SocketAddr], b: &[SocketAddr]) -> bool {
    let sorted = |addrs: &[SocketAddr]| {
        let mut addrs = addrs.to_vec();
        addrs.sort_unstable();
        addrs
    };
    a.len() == b.len() && sorted(a) == sorted(b)
}

/// Tries `addrs` in order, each within `timeout`. When none connects: a timeout if every
/// attempt timed out, else the last refusal (or other error), naming its address.
async fn connect_first(addrs: &[SocketAddr], timeout: Duration) -> Result<AppSocket, ConnectError> {
    let mut last = ConnectError::Timeout(timeout);
    for &addr in addrs {
        match AppSocket::connect_tcp(addr, timeout).await {
            Ok(stream) => return Ok(stream),
            Err(ConnectError::Io(err)) => {
                last = ConnectError::Io(std::io::Error::new(err.kind(), format!("{addr}: {err}")));
            }
            // A timeout: `last` stays one unless another address refused.
            Err(_) => {}
        }
    }
    Err(last)
}

/// For `ferry check`: a warning when the server `address` (the value of `key`) is a host
/// name that does not resolve here
/// and now (`None` when it resolves, or is not a name). A warning, not an error: the app's
/// container may start after ferry's, and ferry resolves the name again for every new
/// connection. Blocks for at most a few seconds; call it outside an async runtime.
pub fn check_resolves(key: &str, address: &UpstreamAddress) -> Option<String> {
    let UpstreamAddress::Host { name, port } = address else {
        return None;
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let query = (name.clone(), *port);
    // A thread of its own so that a resolver that never answers cannot hang `ferry check`.
    std::thread::spawn(move || {
        let answer = (query.0.as_str(), query.1)
            .to_socket_addrs()
            .map(|addrs| addrs.count());
        let _ = tx.send(answer);
    });
    let why = match rx.recv_timeout(CHECK_WAIT) {
        Ok(Ok(0)) => "the resolver returned no addresses".to_string(),
        Ok(Ok(_)) => return None,
        Ok(Err(err)) => err.to_string(),
        Err(_) => format!("no answer from the resolver within {CHECK_WAIT:?}"),
    };
    Some(format!(
        "{key}: {:?} does not resolve here ({why}); ferry will start anyway and \
         resolve it again for each new connection to the app (502 until it resolves)",
        address.to_string()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_warns_only_for_a_name_that_does_not_resolve() {
        let name = |name: &str| UpstreamAddress::Host {
            name: name.into(),
            port: 80,
        };
        assert_eq!(check_resolves("upstream.address", &name("localhost")), None);
        let tcp = UpstreamAddress::Tcp(SocketAddr::from(([127, 0, 0, 1], 1)));
        assert_eq!(check_resolves("upstream.address", &tcp), None);
        // RFC 6761 §6.4: `.invalid` names never resolve.
        let warning = check_resolves("upstream.address", &name("app.invalid"))
            .unwrap_or_else(|| panic!("app.invalid resolved"));
        assert!(
            warning.starts_with("upstream.address: \"app.invalid:80\" does not resolve here ("),
            "{warning}"
        );
    }

    /// An answer given `age` ago.
    fn answer(addrs: &[SocketAddr], age: Duration) -> Option<Answer> {
        Some(Answer {
            at: Instant::now().checked_sub(age).unwrap(),
            addrs: Ok(addrs.into()),
        })
    }

    #[tokio::test]
    async fn answers_are_remembered_and_failures_are_connect_errors() {
        let timeout = Duration::from_secs(5);
        let resolver = Resolver::new("localhost".into(), 9);
        let first = resolver.addrs(timeout).await.unwrap();
        assert!(
            first.iter().all(|addr| addr.ip().is_loopback()),
            "{first:?}"
        );
        let again = resolver.addrs(timeout).await.unwrap();
        assert!(Arc::ptr_eq(&first, &again), "asked again within the TTL");
        *resolver.last.lock().await = answer(&first, TTL);
        let later = resolver.addrs(timeout).await.unwrap();
        assert!(
            !Arc::ptr_eq(&first, &later),
            "an answer past its TTL is asked again"
        );

        let resolver = Resolver::new("app.invalid".into(), 80);
        for _ in 0..2 {
            match resolver.connect(timeout).await {
                Err(ConnectError::Resolve { name, detail }) => {
                    assert_eq!(name, "app.invalid");
                    assert!(!detail.is_empty());
                }
                other => panic!("app.invalid: {other:?}"),
            }
        }
    }

    /// A port nothing listens on (bound, then closed).
    fn closed_port() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    }

    #[tokio::test]
    async fn addresses_are_tried_in_order_and_a_refusal_names_its_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        let closed = closed_port();
        let timeout = Duration::from_secs(5);
        let stream = connect_first(&[closed, open], timeout).await.unwrap();
        let AppSocket::Tcp(stream) = stream else {
            panic!("not TCP")
        };
        assert_eq!(stream.peer_addr().unwrap(), open);
        match connect_first(&[closed], timeout).await {
            Err(ConnectError::Io(err)) => {
                assert!(err.to_string().starts_with(&format!("{closed}: ")), "{err}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_remembered_address_that_fails_is_looked_up_again_at_once() {
        // The app "moved": the remembered answer names a dead port, the name now resolves to
        // the listening one.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        let timeout = Duration::from_secs(5);
        let resolver = Resolver::new("localhost".into(), open.port());
        let stale = [closed_port()];
        *resolver.last.lock().await = answer(&stale, FAILURE_TTL);
        let stream = resolver.connect(timeout).await.unwrap();
        let AppSocket::Tcp(stream) = stream else {
            panic!("not TCP")
        };
        assert_eq!(stream.peer_addr().unwrap(), open);
        let now = resolver.addrs(timeout).await.unwrap();
        assert!(now.contains(&open), "the new answer is remembered: {now:?}");

        // An answer just given is not asked again when its addresses fail: the app is down.
        *resolver.last.lock().await = answer(&stale, Duration::ZERO);
        match resolver.connect(timeout).await {
            Err(ConnectError::Io(err)) => {
                assert!(
                    err.to_string().starts_with(&format!("{}: ", stale[0])),
                    "{err}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(*resolver.addrs(timeout).await.unwrap(), stale);
    }
}
