//! The serving certificate's families: reloads by result, and when the certificate expires.
//! Written by `src/tls/reload.rs`; the alert on an expiry close at hand is in
//! deploy/prometheus/ferry-rules.yml.

use prometheus::{IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry};

/// `result` of ferry_tls_certificate_reloads_total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadResult {
    /// A new pair loaded and is served to new handshakes.
    Ok,
    /// A pair that did not load, or whose key does not fit the certificate: the previous one
    /// is still served.
    Error,
}

impl ReloadResult {
    pub const ALL: [ReloadResult; 2] = [ReloadResult::Ok, ReloadResult::Error];

    pub fn label(self) -> &'static str {
        match self {
            ReloadResult::Ok => "ok",
            ReloadResult::Error => "error",
        }
    }
}

/// `ferry_tls_certificate_*`.
#[derive(Clone)]
pub struct CertificateMetrics {
    reloads: Vec<IntCounter>,
    /// A family without labels, so that it has no series at all until a certificate is loaded:
    /// a ferry without [tls] exports no expiry rather than a 0 that would read as "expired in
    /// 1970" to the alert.
    expiry: IntGaugeVec,
}

impl CertificateMetrics {
    pub(super) fn new(registry: &Registry) -> CertificateMetrics {
        let reloads = IntCounterVec::new(
            Opts::new(
                "ferry_tls_certificate_reloads_total",
                "Reloads of the TLS certificate and key (on SIGHUP or a change on disk), by \
                 result; on error the previous pair is still served.",
            ),
            &["result"],
        )
        .expect("valid metric");
        let expiry = IntGaugeVec::new(
            Opts::new(
                "ferry_tls_certificate_expiry_timestamp_seconds",
                "When the serving certificate (the first of tls.cert) expires: its notAfter, \
                 in seconds since the Unix epoch.",
            ),
            &[],
        )
        .expect("valid metric");
        for collector in [
            Box::new(reloads.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(expiry.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        CertificateMetrics {
            reloads: ReloadResult::ALL
                .iter()
                .map(|r| reloads.with_label_values(&[r.label()]))
                .collect(),
            expiry,
        }
    }

    /// Counts one reload.
    pub fn reload(&self, result: ReloadResult) {
        self.reloads[result as usize].inc();
    }

    /// Sets the serving certificate's notAfter (seconds since the Unix epoch).
    pub fn expires_at(&self, unix_seconds: i64) {
        self.expiry.with_label_values::<&str>(&[]).set(unix_seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(registry: &Registry) -> String {
        let mut out = Vec::new();
        prometheus::Encoder::encode(
            &prometheus::TextEncoder::new(),
            &registry.gather(),
            &mut out,
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn reloads_start_at_zero_and_the_expiry_appears_once_set() {
        let registry = Registry::new();
        let metrics = CertificateMetrics::new(&registry);
        let before = text(&registry);
        assert!(before.contains("ferry_tls_certificate_reloads_total{result=\"ok\"} 0"));
        assert!(before.contains("ferry_tls_certificate_reloads_total{result=\"error\"} 0"));
        assert!(!before.contains("ferry_tls_certificate_expiry_timestamp_seconds"));
        metrics.reload(ReloadResult::Error);
        metrics.expires_at(1_796_000_000);
        let after = text(&registry);
        assert!(after.contains("ferry_tls_certificate_reloads_total{result=\"error\"} 1"));
        assert!(after.contains("ferry_tls_certificate_expiry_timestamp_seconds 1796000000"));
    }
}
