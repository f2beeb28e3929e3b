//! TLS termination: rustls does the handshake; then, per connection, ferry decides whether the
//! kernel can take over the record layer (kTLS) — the `tls` ULP exists, the negotiated suite
//! is one the kernel installs, the connection is HTTP/1.1 — and only then converts it, so a
//! connection is never lost to a conversion ferry could have known would fail. Connections
//! kTLS cannot carry stay on rustls (`tls_buffered`), each counted once in
//! `ferry_fallbacks_total{from="ktls",to="tls_buffered",reason}`.
//!
//! Session resumption (a session cache and tickets under rotating keys, both bounded by
//! `session_timeout`) is set up once with the rustls configuration, in `resume.rs`; a resumed
//! connection takes the same kTLS decision and install as a full one.
//!
//! The certificate and key (`certs.rs`) are behind a resolver whose pair a reload replaces
//! (`reload.rs`: on SIGHUP and when the files change, Kubernetes Secret volumes included);
//! new handshakes present the new pair, connections already up are untouched, and the session
//! stores and kTLS are unaffected, since neither holds the certificate. `expiry.rs` reads the
//! certificate's notAfter for ferry_tls_certificate_expiry_timestamp_seconds.

mod certs;
mod expiry;
mod install;
mod probe;
mod reload;
mod resume;

use std::sync::Arc;
use std::time::Duration;

use ktls::CompatibleCiphers;
use rustls::crypto::CryptoProvider;
use rustls::server::ResolvesServerCert;
use rustls::{HandshakeKind, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::DropGuard;

pub use probe::{ULP_PATH, kernel_carries, ulp_available};

use crate::config::{self, Alpn, KtlsMode};
use crate::metrics::{Fallback, Metrics};
use crate::sys::Faults;
use crate::transport::{RecordCork, RustlsStream, Transport};
use certs::{Loaded, Serving, Stamp};
use install::Installed;
use reload::Reloader;

/// What the kernel offers, probed once at start-up.
#[derive(Debug)]
enum Kernel {
    /// `ktls = "off"`: not asked.
    Off,
    /// No `tls` upper-layer protocol (module not loaded or not built).
    NoUlp,
    /// The ULP is there; these suites installed on a loopback socket pair.
    Ciphers(CompatibleCiphers),
}

/// Why TLS cannot start.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}", .0.join("\n"))]
    Config(Vec<String>),
    #[error(
        "tls.ktls: \"require\" but the kernel has no kTLS: `tls` is not in {ULP_PATH}; load it with `modprobe tls` (or set ktls = \"auto\")"
    )]
    KtlsRequired,
    #[error("tls.ktls: kTLS probe failed: {0}")]
    Probe(std::io::Error),
    #[error("tls: certificate reload: signal handler: {0}")]
    Signal(std::io::Error),
}

/// The TLS side of every TLS listener.
pub struct Tls {
    acceptor: TlsAcceptor,
    kernel: Kernel,
    handshake_timeout: Duration,
    /// Ends the certificate reload task when this `Tls` is dropped.
    _reload: DropGuard,
}

/// Loads the certificate chain and key and builds the rustls configuration; every problem
/// is reported with its key (`tls.cert`, `tls.key`). Used by `ferry check` too.
pub fn server_config(tls: &config::Tls) -> Result<ServerConfig, Vec<String>> {
    build(tls).map(|built| built.config)
}

/// The rustls configuration with the certificate it serves, as first loaded.
struct Built {
    config: ServerConfig,
    provider: Arc<CryptoProvider>,
    serving: Arc<Serving>,
    loaded: Loaded,
    /// The files as they were just before they were read.
    stamp: Stamp,
}

fn build(tls: &config::Tls) -> Result<Built, Vec<String>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let stamp = Stamp::take(&tls.cert, &tls.key);
    let loaded = certs::load(&tls.cert, &tls.key, &provider)?;
    let serving = Arc::new(Serving::new(Arc::clone(&loaded.pair)));
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|err| vec![format!("tls: {err}")])?;
    let mut config = builder
        .with_no_client_auth()
        .with_cert_resolver(Arc::clone(&serving) as Arc<dyn ResolvesServerCert>);
    config.alpn_protocols = alpn_protocols(&tls.alpn);
    resume::configure(&mut config, tls).map_err(|err| vec![err])?;
    // kTLS needs the traffic secrets once the handshake is done.
    config.enable_secret_extraction = tls.ktls != KtlsMode::Off;
    Ok(Built {
        config,
        provider,
        serving,
        loaded,
        stamp,
    })
}

/// How many bytes of encrypted records rustls may hold for a userspace-TLS connection (its
/// default is 64 KiB). A body chunk (256 KiB by default) is then encrypted in one go, and its
/// 16 records leave in one writev(2) instead of four.
const SEND_BUFFER_LIMIT: usize = 256 * 1024;

/// A connection that stays on rustls, with room to queue a whole body chunk of records.
fn userspace(
    mut stream: tokio_rustls::server::TlsStream<RecordCork<TcpStream>>,
) -> Box<RustlsStream> {
    stream.get_mut().1.set_buffer_limit(Some(SEND_BUFFER_LIMIT));
    Box::new(stream)
}

/// The ALPN protocols offered, in the configured order: rustls picks the first of them the
/// client also offers, so the order is the server's preference.
fn alpn_protocols(alpn: &[Alpn]) -> Vec<Vec<u8>> {
    alpn.iter()
        .map(|a| a.as_str().as_bytes().to_vec())
        .collect()
}

impl Tls {
    /// Loads the certificate, probes the kernel, and refuses `ktls = "require"` without kTLS;
    /// then starts the certificate's reload task (SIGHUP, and `tls.reload_interval`), which
    /// records in `metrics` and ends when this `Tls` is dropped.
    pub async fn new(tls: &config::Tls, metrics: &Metrics) -> Result<Tls, TlsError> {
        let built = build(tls).map_err(TlsError::Config)?;
        let kernel = match tls.ktls {
            KtlsMode::Off => Kernel::Off,
            mode => {
                if ulp_available() {
                    let probed = CompatibleCiphers::new().await.map_err(TlsError::Probe)?;
                    if Faults::get().ktls_ciphers_none {
                        Kernel::Ciphers(CompatibleCiphers::default())
                    } else {
                        Kernel::Ciphers(probed)
                    }
                } else if mode == KtlsMode::Require {
                    return Err(TlsError::KtlsRequired);
                } else {
                    Kernel::NoUlp
                }
            }
        };
        let reloader = Reloader::new(
            tls,
            built.provider,
            built.serving,
            built.stamp,
            &built.loaded,
            metrics.certificates.clone(),
        );
        let reload = reloader
            .spawn(tls.reload_interval)
            .map_err(TlsError::Signal)?;
        tracing::info!(kernel = ?kernel, not_after = built.loaded.not_after.ok(), "tls ready");
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(built.config)),
            kernel,
            handshake_timeout: tls.handshake_timeout,
            _reload: reload,
        })
    }

    /// Whether kTLS can be used at all (for the start-up log and tests).
    pub fn ktls_available(&self) -> bool {
        matches!(self.kernel, Kernel::Ciphers(_))
    }

    /// Runs the handshake within the timeout and picks the transport; `None` when the
    /// handshake failed (counted) or kTLS installation failed after the secrets were taken.
    pub async fn accept(&self, tcp: TcpStream, metrics: &Metrics) -> Option<Transport> {
        // Boxed: the handshake's state is needed only until it ends, not for the connection's
        // life (it would otherwise be part of every connection's task).
        Box::pin(self.handshake(tcp, metrics)).await
    }

    async fn handshake(&self, tcp: TcpStream, metrics: &Metrics) -> Option<Transport> {
        let handshake = tokio::time::timeout(
            self.handshake_timeout,
            self.acceptor.accept(RecordCork::new(tcp)),
        )
        .await;
        let stream = match handshake {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => {
                tracing::debug!(error = %err, "tls handshake failed");
                metrics.tls_handshake("error", false);
                return None;
            }
            Err(_) => {
                tracing::debug!(timeout = ?self.handshake_timeout, "tls handshake timed out");
                metrics.tls_handshake("timeout", false);
                return None;
            }
        };
        let (_, conn) = stream.get_ref();
        let resumed = conn.handshake_kind() == Some(HandshakeKind::Resumed);
        let ok = |ktls: bool| {
            metrics.tls_handshake("ok", ktls);
            if resumed {
                metrics.tls_resumed(ktls);
            }
        };
        let fallback = match &self.kernel {
            Kernel::Off => Some(Fallback::Disabled),
            Kernel::NoUlp => Some(Fallback::UlpUnavailable),
            Kernel::Ciphers(_) if conn.alpn_protocol() == Some(b"h2") => Some(Fallback::Http2),
            Kernel::Ciphers(ciphers) => match conn.negotiated_cipher_suite() {
                Some(suite) if kernel_carries(ciphers, suite) => None,
                _ => Some(Fallback::CipherUnsupported),
            },
        };
        if let Some(reason) = fallback {
            ok(false);
            metrics.fallback("ktls", "tls_buffered", reason.label());
            return Some(Transport::Tls(userspace(stream)));
        }
        match install::install(Box::new(stream)).await {
            Installed::Ktls(ktls) => {
                ok(true);
                Some(Transport::Ktls(ktls))
            }
            Installed::Kept(mut stream, err) => {
                // Nothing was taken from rustls: the connection goes on in user space.
                tracing::warn!(error = %err, "kTLS: attaching the tls ULP failed; this connection stays on rustls");
                ok(false);
                metrics.fallback("ktls", "tls_buffered", Fallback::InstallFailed.label());
                stream.get_mut().1.set_buffer_limit(Some(SEND_BUFFER_LIMIT));
                Some(Transport::Tls(stream))
            }
            Installed::Lost(err) => {
                // The rustls state is gone with the secrets: this connection cannot continue.
                tracing::warn!(error = %err, "kTLS install failed; connection closed");
                ok(false);
                metrics.fallback("ktls", "tls_buffered", Fallback::InstallFailed.label());
                None
            }
        }
    }
}
