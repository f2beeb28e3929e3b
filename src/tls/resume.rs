//! Session resumption (`tls.session_cache`, `tls.session_tickets`, `tls.session_timeout`): a
//! client that comes back skips the certificate signature and the key exchange of a full
//! handshake, which is most of a handshake's CPU.
//!
//! rustls does the protocol; this module gives it two stores that both honour
//! `session_timeout` exactly, which rustls's own do not (its memory cache never expires an
//! entry, and its aws-lc ticketer keeps keys for 6 hours and tickets for 12):
//!
//! - [`TimedCache`]: rustls's bounded `ServerSessionMemoryCache`, each value stamped with the
//!   time it was stored; an entry older than the timeout is not resumed.
//! - [`TimedTickets`]: tickets sealed by rustls's aws-lc ticketer (an AEAD under a random key),
//!   inside a `TicketRotator` that makes a new key every `session_timeout` and forgets the
//!   previous one a timeout later, with the issue time sealed inside the ticket so a ticket
//!   is refused once it is older than the timeout whichever key sealed it.
//!
//! Nothing here runs per connection beyond what rustls asks of the stores; the kTLS install
//! (`install.rs`) is unaffected, since the TLS 1.3 tickets leave with the handshake's last
//! flight, before the keys go to the kernel.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::ServerConfig;
use rustls::crypto::GetRandomFailed;
use rustls::server::{
    NoServerSessionStorage, ProducesTickets, ServerSessionMemoryCache, StoresServerSessions,
};
use rustls::ticketer::TicketRotator;

use crate::config;

/// Seconds since the Unix epoch; a parameter so the tests can move time.
type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Sets the session cache and the ticketer of `config` from `tls`.
pub(super) fn configure(config: &mut ServerConfig, tls: &config::Tls) -> Result<(), String> {
    let clock: Clock = Arc::new(unix_now);
    let timeout = tls.session_timeout;
    config.session_storage = match tls.session_cache {
        0 => Arc::new(NoServerSessionStorage {}),
        size => Arc::new(TimedCache::new(size, timeout, clock.clone())),
    };
    if tls.session_tickets {
        let tickets = TimedTickets::new(timeout, clock)
            .map_err(|err| format!("tls.session_tickets: making the ticket key: {err}"))?;
        config.ticketer = Arc::new(tickets);
    }
    Ok(())
}

/// The bytes in front of every stored session and inside every ticket: when it was made.
const STAMP: usize = 8;

fn stamp(now: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(STAMP + value.len());
    out.extend_from_slice(&now.to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// The value behind the stamp if it is younger than `timeout` seconds at `now`. A stamp from
/// the future (the clock went back) counts as new.
fn unstamp(mut stamped: Vec<u8>, now: u64, timeout: u64) -> Option<Vec<u8>> {
    let made = u64::from_be_bytes(stamped.get(..STAMP)?.try_into().ok()?);
    if now.saturating_sub(made) >= timeout {
        return None;
    }
    stamped.drain(..STAMP);
    Some(stamped)
}

/// rustls's memory cache with the timeout applied on the way out.
pub(super) struct TimedCache {
    inner: Arc<ServerSessionMemoryCache>,
    timeout: u64,
    clock: Clock,
}

impl TimedCache {
    fn new(size: usize, timeout: Duration, clock: Clock) -> Self {
        Self {
            inner: ServerSessionMemoryCache::new(size),
            timeout: timeout.as_secs(),
            clock,
        }
    }
}

impl std::fmt::Debug for TimedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimedCache")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl StoresServerSessions for TimedCache {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.inner.put(key, stamp((self.clock)(), &value))
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let value = self.inner.get(key)?;
        unstamp(value, (self.clock)(), self.timeout)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        let value = self.inner.take(key)?;
        unstamp(value, (self.clock)(), self.timeout)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

/// Tickets under rotating keys, each carrying its issue time (see the module comment).
pub(super) struct TimedTickets {
    rotator: TicketRotator,
    timeout: u32,
    clock: Clock,
}

impl TimedTickets {
    fn new(timeout: Duration, clock: Clock) -> Result<Self, rustls::Error> {
        // Validated to 1s..=7d, whole seconds.
        let timeout = u32::try_from(timeout.as_secs()).unwrap_or(u32::MAX).max(1);
        Ok(Self {
            rotator: TicketRotator::new(timeout, new_key)?,
            timeout,
            clock,
        })
    }
}

/// One ticket key: rustls's aws-lc ticketer (ChaCha20-Poly1305 under a fresh random key). It
/// rotates its own key only every 6 hours, later than the outer rotator replaces it.
fn new_key() -> Result<Box<dyn ProducesTickets>, GetRandomFailed> {
    let key = rustls::crypto::aws_lc_rs::Ticketer::new().map_err(|_| GetRandomFailed)?;
    Ok(Box::new(TicketKey(key)))
}

#[derive(Debug)]
struct TicketKey(Arc<dyn ProducesTickets>);

impl ProducesTickets for TicketKey {
    fn enabled(&self) -> bool {
        self.0.enabled()
    }

    fn lifetime(&self) -> u32 {
        self.0.lifetime()
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.0.encrypt(plain)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.0.decrypt(cipher)
    }
}

impl std::fmt::Debug for TimedTickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimedTickets")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ProducesTickets for TimedTickets {
    fn enabled(&self) -> bool {
        true
    }

    /// The lifetime hint sent with each ticket.
    fn lifetime(&self) -> u32 {
        self.timeout
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.rotator.encrypt(&stamp((self.clock)(), plain))
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let stamped = self.rotator.decrypt(cipher)?;
        unstamp(stamped, (self.clock)(), u64::from(self.timeout))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// A clock the test moves by hand, starting at `start`.
    fn manual(start: u64) -> (Clock, Arc<AtomicU64>) {
        let now = Arc::new(AtomicU64::new(start));
        let read = now.clone();
        (Arc::new(move || read.load(Ordering::Relaxed)), now)
    }

    const T: Duration = Duration::from_secs(300);

    #[test]
    fn a_cached_session_is_resumed_until_the_timeout_and_not_after() {
        let (clock, now) = manual(1_000_000);
        let cache = TimedCache::new(4, T, clock);
        assert!(cache.put(b"a".to_vec(), b"session a".to_vec()));
        assert!(cache.put(b"b".to_vec(), b"session b".to_vec()));
        now.store(1_000_299, Ordering::Relaxed);
        assert_eq!(cache.get(b"a").as_deref(), Some(&b"session a"[..]));
        assert_eq!(cache.take(b"b").as_deref(), Some(&b"session b"[..]));
        assert_eq!(cache.take(b"b"), None, "take removes");
        now.store(1_000_300, Ordering::Relaxed);
        assert_eq!(cache.get(b"a"), None, "expired at the timeout");
        assert_eq!(cache.get(b"missing"), None);
    }

    #[test]
    fn the_cache_keeps_at_most_its_size() {
        let (clock, _) = manual(5);
        let cache = TimedCache::new(2, T, clock);
        for key in [b"1", b"2", b"3"] {
            assert!(cache.put(key.to_vec(), key.to_vec()));
        }
        let kept = [b"1", b"2", b"3"]
            .iter()
            .filter(|key| cache.get(&key[..]).is_some())
            .count();
        assert_eq!(kept, 2);
        assert_eq!(
            cache.get(b"3").as_deref(),
            Some(&b"3"[..]),
            "the newest is kept"
        );
    }

    #[test]
    fn a_ticket_opens_until_the_timeout_and_not_after() {
        let (clock, now) = manual(2_000_000);
        let tickets = TimedTickets::new(T, clock).unwrap();
        assert!(tickets.enabled());
        assert_eq!(tickets.lifetime(), 300);
        let plain = b"the session state".to_vec();
        let ticket = tickets.encrypt(&plain).unwrap();
        assert!(
            !ticket.windows(plain.len()).any(|w| w == plain),
            "a ticket is sealed, not plain"
        );
        now.store(2_000_299, Ordering::Relaxed);
        assert_eq!(tickets.decrypt(&ticket), Some(plain.clone()));
        now.store(2_000_300, Ordering::Relaxed);
        assert_eq!(tickets.decrypt(&ticket), None, "expired at the timeout");
        // A tampered ticket does not open.
        let mut bad = tickets.encrypt(&plain).unwrap();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(tickets.decrypt(&bad), None);
    }

    #[test]
    fn a_ticket_from_another_server_does_not_open() {
        let (clock, _) = manual(7);
        let ours = TimedTickets::new(T, clock.clone()).unwrap();
        let theirs = TimedTickets::new(T, clock).unwrap();
        let ticket = theirs.encrypt(b"state").unwrap();
        assert_eq!(ours.decrypt(&ticket), None);
        assert_eq!(theirs.decrypt(&ticket).as_deref(), Some(&b"state"[..]));
    }
}
