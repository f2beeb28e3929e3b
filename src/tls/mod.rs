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

mod install;
mod probe;
mod resume;

use std::sync::Arc;
use std::time::Duration;

use ktls::CompatibleCiphers;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{HandshakeKind, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

pub use probe::{ULP_PATH, kernel_carries, ulp_available};

use crate::config::{self, Alpn, KtlsMode};
use crate::metrics::{Fallback, Metrics};
use crate::sys::Faults;
use crate::transport::{RecordCork, RustlsStream, Transport};
use install::Installed;

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
}

/// The TLS side of every TLS listener.
pub struct Tls {
    acceptor: TlsAcceptor,
    kernel: Kernel,
    handshake_timeout: Duration,
}

/// Loads the certificate chain and key and builds the rustls configuration; every problem
/// is reported with its key (`tls.cert`, `tls.key`). Used by `ferry check` too.
pub fn server_config(tls: &config::Tls) -> Result<ServerConfig, Vec<String>> {
    let mut errors = Vec::new();
    let certs: Vec<CertificateDer<'static>> = match CertificateDer::pem_file_iter(&tls.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
    {
        Ok(certs) if certs.is_empty() => {
            errors.push(format!(
                "tls.cert: {}: no certificate in the file",
                tls.cert.display()
            ));
            Vec::new()
        }
        Ok(certs) => certs,
        Err(err) => {
            errors.push(format!("tls.cert: {}: {err}", tls.cert.display()));
            Vec::new()
        }
    };
    let key = match PrivateKeyDer::from_pem_file(&tls.key) {
        Ok(key) => Some(key),
        Err(err) => {
            errors.push(format!("tls.key: {}: {err}", tls.key.display()));
            None
        }
    };
    let (Some(key), true) = (key, errors.is_empty()) else {
        return Err(errors);
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| vec![format!("tls: {err}")])?;
    let mut config = builder
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|err| {
            vec![format!(
                "tls.key: {}: does not fit tls.cert {}: {err}",
                tls.key.display(),
                tls.cert.display()
            )]
        })?;
    config.alpn_protocols = alpn_protocols(&tls.alpn);
    resume::configure(&mut config, tls).map_err(|err| vec![err])?;
    // kTLS needs the traffic secrets once the handshake is done.
    config.enable_secret_extraction = tls.ktls != KtlsMode::Off;
    Ok(config)
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
    /// Loads the certificate, probes the kernel, and refuses `ktls = "require"` without kTLS.
    pub async fn new(tls: &config::Tls) -> Result<Tls, TlsError> {
        let config = server_config(tls).map_err(TlsError::Config)?;
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
        tracing::info!(kernel = ?kernel, "tls ready");
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            kernel,
            handshake_timeout: tls.handshake_timeout,
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
