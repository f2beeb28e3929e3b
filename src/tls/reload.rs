//! Certificate reload without a restart: on SIGHUP, and when `tls.cert` or `tls.key` changes
//! on disk (checked every `tls.reload_interval`), the pair is read again and, if it loads and
//! fits, handed to [`Serving`] for new handshakes. A pair that fails keeps the old one
//! serving; it is logged with both paths and the reason and counted in
//! `ferry_tls_certificate_reloads_total{result="error"}`.
//!
//! Why polling and not inotify: a Kubernetes Secret volume is updated by renaming a new
//! `..data` symlink over the old one, so no file ferry reads is ever written: an inotify watch
//! on `cert.pem` follows the links to the old generation's file and sees, at best, that file
//! deleted later; the directory would need a watch of its own, the file watches re-armed on
//! every swap, and no watch sees changes made by another host on a network file system. A
//! poll compares what each path resolves to now (after every symlink) with that file's inode,
//! size and times: a realpath(3) and a stat(2) per file every few seconds, right across every
//! way a file can be replaced, with nothing to re-arm. Its cost is the delay, at most one interval; SIGHUP does not wait for it. (One
//! change it cannot see: a file rewritten in place to the same size within one tick of the
//! kernel's file clock after its previous write, which no rotation tool does; SIGHUP reloads
//! whatever the files are.)
//!
//! A rotation that writes the two files one after the other can be seen half done (new
//! certificate, old key). A pair that changed and fails is therefore tried again at the next
//! poll and counted as an error only if it is still the same and still fails then; a pair
//! that changed while it was being read is read again too. SIGHUP reloads at once and counts
//! what it finds: the operator asked for that pair.
//!
//! The task runs on the main runtime with the file reads on the blocking pool, and ends
//! when the `Tls` that started it is dropped (a config reload replacing [tls], or shutdown).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::certs::{Loaded, Serving, Stamp, load};
use crate::metrics::{CertificateMetrics, ReloadResult};

/// Reloads the pair at `cert` and `key` into `serving`.
pub(super) struct Reloader {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    serving: Arc<Serving>,
    metrics: CertificateMetrics,
    /// The files as last acted on: loaded, or counted as an error.
    seen: Stamp,
    /// A changed pair that failed once, to be counted if it fails again unchanged.
    pending: Option<Stamp>,
}

/// What set off a reload.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    Poll,
    Hangup,
}

impl Reloader {
    /// `loaded` is what `serving` holds, read from files that were `seen` just before.
    pub(super) fn new(
        tls: &crate::config::Tls,
        provider: Arc<CryptoProvider>,
        serving: Arc<Serving>,
        seen: Stamp,
        loaded: &Loaded,
        metrics: CertificateMetrics,
    ) -> Reloader {
        let reloader = Reloader {
            cert: tls.cert.clone(),
            key: tls.key.clone(),
            provider,
            serving,
            metrics,
            seen,
            pending: None,
        };
        reloader.record_expiry(loaded);
        reloader
    }

    /// Starts the task: a reload on every SIGHUP and, unless `interval` is zero, a poll every
    /// `interval`. It ends when the returned guard is dropped.
    pub(super) fn spawn(self, interval: Duration) -> std::io::Result<DropGuard> {
        let hangup = signal(SignalKind::hangup())?;
        let stop = CancellationToken::new();
        let ticks = (!interval.is_zero()).then(|| {
            let mut ticks = tokio::time::interval_at(Instant::now() + interval, interval);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            ticks
        });
        tokio::spawn(self.run(ticks, hangup, stop.clone()));
        Ok(stop.drop_guard())
    }

    async fn run(
        mut self,
        mut ticks: Option<Interval>,
        mut hangup: Signal,
        stop: CancellationToken,
    ) {
        loop {
            let trigger = tokio::select! {
                () = stop.cancelled() => return,
                Some(()) = hangup.recv() => Trigger::Hangup,
                () = tick(&mut ticks) => Trigger::Poll,
            };
            let done = tokio::task::spawn_blocking(move || {
                match trigger {
                    Trigger::Poll => self.poll(),
                    Trigger::Hangup => self.reload(),
                }
                self
            });
            self = match done.await {
                Ok(reloader) => reloader,
                // The runtime is shutting down.
                Err(_) => return,
            };
        }
    }

    /// Loads the pair if the files changed since they were last acted on.
    fn poll(&mut self) {
        let before = Stamp::take(&self.cert, &self.key);
        if before == self.seen {
            return;
        }
        let loaded = load(&self.cert, &self.key, &self.provider);
        if Stamp::take(&self.cert, &self.key) != before {
            tracing::debug!(
                "tls: certificate files changed while being read; reading them again at the next check"
            );
            return;
        }
        match loaded {
            Ok(loaded) => self.apply(loaded, before, Trigger::Poll),
            Err(errors) if self.pending.as_ref() == Some(&before) => {
                self.fail(&errors, before, Trigger::Poll)
            }
            Err(errors) => {
                tracing::debug!(
                    errors = %errors.join("; "),
                    "tls: changed certificate files do not load yet; trying again at the next check"
                );
                self.pending = Some(before);
            }
        }
    }

    /// Loads the pair whatever the files are (SIGHUP).
    fn reload(&mut self) {
        let stamp = Stamp::take(&self.cert, &self.key);
        match load(&self.cert, &self.key, &self.provider) {
            Ok(loaded) => self.apply(loaded, stamp, Trigger::Hangup),
            Err(errors) => self.fail(&errors, stamp, Trigger::Hangup),
        }
    }

    fn apply(&mut self, loaded: Loaded, stamp: Stamp, trigger: Trigger) {
        self.serving.replace(Arc::clone(&loaded.pair));
        self.record_expiry(&loaded);
        self.metrics.reload(ReloadResult::Ok);
        self.seen = stamp;
        self.pending = None;
        tracing::info!(
            cert = %self.cert.display(),
            key = %self.key.display(),
            not_after = loaded.not_after.ok(),
            trigger = ?trigger,
            "tls: certificate reloaded; new handshakes present it"
        );
    }

    fn fail(&mut self, errors: &[String], stamp: Stamp, trigger: Trigger) {
        self.metrics.reload(ReloadResult::Error);
        self.seen = stamp;
        self.pending = None;
        tracing::error!(
            cert = %self.cert.display(),
            key = %self.key.display(),
            errors = %errors.join("; "),
            trigger = ?trigger,
            "tls: certificate reload failed; still serving the previous certificate"
        );
    }

    fn record_expiry(&self, loaded: &Loaded) {
        match loaded.not_after {
            Ok(seconds) => self.metrics.expires_at(seconds),
            Err(why) => tracing::warn!(
                cert = %self.cert.display(),
                error = why,
                "tls: cannot read the certificate's expiry date; \
                 ferry_tls_certificate_expiry_timestamp_seconds not updated"
            ),
        }
    }
}

/// The next tick, or never without polling.
async fn tick(ticks: &mut Option<Interval>) {
    match ticks {
        Some(ticks) => {
            ticks.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use rustls::sign::CertifiedKey;

    use super::*;
    use crate::metrics::Metrics;

    /// A pair whose key is real (made now) and whose "certificate" is a placeholder: the
    /// resolver and the task never look inside it.
    fn placeholder(provider: &CryptoProvider) -> Loaded {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let alg = &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING;
        let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let der = PrivatePkcs8KeyDer::from(pkcs8.as_ref().to_vec());
        let key = provider
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(der))
            .unwrap();
        let chain = vec![CertificateDer::from(vec![0x30, 0x00])];
        Loaded {
            pair: Arc::new(CertifiedKey::new(chain, key)),
            not_after: Ok(1_796_733_296),
        }
    }

    #[test]
    fn the_task_ends_when_its_guard_is_dropped() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let loaded = placeholder(&provider);
            let serving = Arc::new(Serving::new(Arc::clone(&loaded.pair)));
            let dir = tempfile::tempdir().unwrap();
            let tls = crate::config::Tls::new(dir.path().join("c.pem"), dir.path().join("k.pem"));
            let seen = Stamp::take(&tls.cert, &tls.key);
            let metrics = Metrics::new();
            let reloader = Reloader::new(
                &tls,
                provider,
                Arc::clone(&serving),
                seen,
                &loaded,
                metrics.certificates.clone(),
            );
            let text = String::from_utf8(metrics.encode()).unwrap();
            assert!(
                text.contains("ferry_tls_certificate_expiry_timestamp_seconds 1796733296"),
                "the first pair's expiry is recorded"
            );
            let tasks = || {
                tokio::runtime::Handle::current()
                    .metrics()
                    .num_alive_tasks()
            };
            let guard = reloader.spawn(Duration::from_millis(10)).unwrap();
            assert_eq!(tasks(), 1);
            // Polls of unchanged (here: missing) files do nothing.
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(tasks(), 1, "still running");
            drop(guard);
            let deadline = Instant::now() + Duration::from_secs(10);
            while tasks() > 0 {
                assert!(Instant::now() < deadline, "the task outlived its guard");
                tokio::task::yield_now().await;
            }
            assert!(Arc::ptr_eq(&serving.0.load_full(), &loaded.pair));
        });
    }
}
