//! What the kernel offers for kTLS: the `tls` upper-layer protocol must be listed in
//! /proc/sys/net/ipv4/tcp_available_ulp (it is once the `tls` module is loaded); which cipher
//! suites then install is probed by the ktls crate on loopback socket pairs, and
//! `kernel_carries` reads that probe for a negotiated suite.

use ktls::CompatibleCiphers;
use rustls::{CipherSuite, SupportedCipherSuite};

/// Where the kernel lists its TCP upper-layer protocols.
pub const ULP_PATH: &str = "/proc/sys/net/ipv4/tcp_available_ulp";

/// Whether the `tls` ULP is available.
pub fn ulp_available() -> bool {
    std::fs::read_to_string(ULP_PATH)
        .is_ok_and(|list| list.split_whitespace().any(|ulp| ulp == "tls"))
}

/// Whether the kernel can carry a connection of `suite`, from the start-up probe. The kernel's
/// record layer depends only on the TLS version and the AEAD (the key exchange and signature
/// are done by then), so an ECDHE-RSA suite is carried exactly like its ECDHE-ECDSA twin. The
/// ktls crate's own check knows only the ECDSA names of the TLS 1.2 suites, which would send
/// every TLS 1.2 connection to an RSA certificate to userspace TLS.
pub fn kernel_carries(ciphers: &CompatibleCiphers, suite: SupportedCipherSuite) -> bool {
    use CipherSuite as S;
    let (version, aead) =
        match suite.suite() {
            S::TLS13_AES_128_GCM_SHA256 => (&ciphers.tls13, Aead::AesGcm128),
            S::TLS13_AES_256_GCM_SHA384 => (&ciphers.tls13, Aead::AesGcm256),
            S::TLS13_CHACHA20_POLY1305_SHA256 => (&ciphers.tls13, Aead::Chacha20Poly1305),
            S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            | S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => (&ciphers.tls12, Aead::AesGcm128),
            S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
            | S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => (&ciphers.tls12, Aead::AesGcm256),
            S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            | S::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => {
                (&ciphers.tls12, Aead::Chacha20Poly1305)
            }
            _ => return false,
        };
    match aead {
        Aead::AesGcm128 => version.aes_gcm_128,
        Aead::AesGcm256 => version.aes_gcm_256,
        Aead::Chacha20Poly1305 => version.chacha20_poly1305,
    }
}

enum Aead {
    AesGcm128,
    AesGcm256,
    Chacha20Poly1305,
}

#[cfg(test)]
mod tests {
    use ktls::CompatibleCiphersForVersion;
    use rustls::crypto::aws_lc_rs::cipher_suite as cs;

    use super::*;

    fn only(tls12: CompatibleCiphersForVersion) -> CompatibleCiphers {
        CompatibleCiphers {
            tls12,
            tls13: CompatibleCiphersForVersion::default(),
        }
    }

    #[test]
    fn tls12_rsa_and_ecdsa_suites_follow_the_same_aead() {
        let aes128 = only(CompatibleCiphersForVersion {
            aes_gcm_128: true,
            ..Default::default()
        });
        assert!(kernel_carries(
            &aes128,
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        ));
        assert!(kernel_carries(
            &aes128,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        ));
        assert!(!kernel_carries(
            &aes128,
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
        ));
        assert!(!kernel_carries(
            &aes128,
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        ));
        // The TLS 1.3 suites are probed separately.
        assert!(!kernel_carries(&aes128, cs::TLS13_AES_128_GCM_SHA256));
    }

    #[test]
    fn each_tls13_suite_needs_its_own_probe_result() {
        let mut ciphers = CompatibleCiphers::default();
        ciphers.tls13.chacha20_poly1305 = true;
        assert!(kernel_carries(&ciphers, cs::TLS13_CHACHA20_POLY1305_SHA256));
        assert!(!kernel_carries(&ciphers, cs::TLS13_AES_128_GCM_SHA256));
        assert!(!kernel_carries(&ciphers, cs::TLS13_AES_256_GCM_SHA384));
        assert!(!kernel_carries(
            &CompatibleCiphers::default(),
            cs::TLS13_CHACHA20_POLY1305_SHA256
        ));
    }
}
