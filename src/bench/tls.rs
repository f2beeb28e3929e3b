//! The TLS rows of `ferry bench`: a real TLS 1.3 handshake (rustls, both ends in this
//! process) on each loopback connection before the clock starts, then either rustls encrypting
//! in user space (`userspace TLS`, what ferry's `tls_buffered` path does) or the session keys
//! handed to the kernel and the file sent with sendfile (`kTLS sendfile`, ferry's
//! `ktls_sendfile`). The kernel side reuses ferry's own install primitives
//! (`sys::ktls::set_tls_ulp`, `set_crypto_info`, the ktls crate's `CryptoInfo`).
//!
//! There is no certificate authority: the server presents a freshly generated P-256 key as a
//! raw SubjectPublicKeyInfo, and the client accepts exactly that key, checking the handshake
//! signature against it. The receiver never decrypts: after the handshake it discards the
//! records with `recv(MSG_TRUNC)` like every other row, so the sender is what is measured.

use std::io::{self, Write};
use std::net::TcpStream;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, SubjectPublicKeyInfoDer,
    UnixTime,
};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, ServerConfig, SignatureScheme,
};

use super::methods::{CHUNK, Counters, SendError};
use crate::sys;

/// Both ends' configurations, made once per run.
#[derive(Debug, Clone)]
pub struct Configs {
    pub server: Arc<ServerConfig>,
    pub client: Arc<ClientConfig>,
}

/// DER header of a P-256 SubjectPublicKeyInfo (id-ecPublicKey, prime256v1, BIT STRING of 66
/// bytes); the 65-byte uncompressed point follows.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// A new key pair and the two configurations around it (TLS 1.3 only, aws-lc's suites; the
/// server prefers what rustls prefers, as ferry does).
pub fn configs() -> Result<Configs, String> {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|_| "generating a P-256 key failed".to_string())?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
        .map_err(|_| "reading back the generated key failed".to_string())?;
    let mut spki = P256_SPKI_PREFIX.to_vec();
    spki.extend_from_slice(pair.public_key().as_ref());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8.as_ref().to_vec()));
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|err| format!("loading the generated key: {err}"))?;
    let certified = CertifiedKey::new(vec![CertificateDer::from(spki.clone())], signing);

    let mut server = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|err| format!("tls server config: {err}"))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    server.enable_secret_extraction = true;
    // No tickets: nothing but the file's records follows the handshake.
    server.send_tls13_tickets = 0;

    let verifier = PinnedKey {
        spki,
        algorithms: provider.signature_verification_algorithms,
    };
    let client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|err| format!("tls client config: {err}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Configs {
        server: Arc::new(server),
        client: Arc::new(client),
    })
}

/// Accepts the one key it was given and checks the handshake signature against it.
#[derive(Debug)]
struct PinnedKey {
    spki: Vec<u8>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedKey {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.spki {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General(
            "the bench speaks TLS 1.3 only".into(),
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature_with_raw_key(
            message,
            &SubjectPublicKeyInfoDer::from(cert.as_ref()),
            dss,
            &self.algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ECDSA_NISTP256_SHA256]
    }
}

fn tls_error(side: &str, err: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("tls {side}: {err}"))
}

/// The server's side of the handshake, blocking; returns the connection with nothing left
/// to write.
pub fn accept(config: &Configs, mut sock: &TcpStream) -> io::Result<rustls::ServerConnection> {
    let mut conn = rustls::ServerConnection::new(config.server.clone())
        .map_err(|err| tls_error("server", err))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)?;
    }
    while conn.wants_write() {
        conn.write_tls(&mut sock)?;
    }
    Ok(conn)
}

/// The client's side of the handshake, blocking. It returns once its Finished is sent and
/// reads nothing further: what follows is the file, for the receiver to discard.
pub fn connect(config: &Configs, mut sock: &TcpStream) -> io::Result<()> {
    let name = ServerName::try_from("localhost").expect("a valid name");
    let mut conn = ClientConnection::new(config.client.clone(), name)
        .map_err(|err| tls_error("client", err))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)?;
    }
    while conn.wants_write() {
        conn.write_tls(&mut sock)?;
    }
    Ok(())
}

/// Hands the send key to the kernel: the `tls` ULP, then TLS_TX with rustls's secrets.
/// Nothing is received on this socket, so the receive key is not installed.
pub fn install_tx(conn: rustls::ServerConnection, sock: &TcpStream) -> Result<(), SendError> {
    let unsupported = |what: &str, err: &dyn std::fmt::Display| {
        SendError::Unsupported(format!("the kernel refused kTLS ({what}: {err})"))
    };
    sys::ktls::set_tls_ulp(sock).map_err(|err| unsupported("setsockopt TCP_ULP \"tls\"", &err))?;
    let suite = conn
        .negotiated_cipher_suite()
        .ok_or_else(|| SendError::Io(io::Error::other("no cipher suite after the handshake")))?;
    let secrets = conn
        .dangerous_extract_secrets()
        .map_err(|err| SendError::Io(tls_error("secrets", err)))?;
    let info = ktls::CryptoInfo::from_rustls(suite, secrets.tx)
        .map_err(|err| unsupported(&format!("{:?}", suite.suite()), &format!("{err:?}")))?;
    sys::ktls::set_crypto_info(sock, sys::ktls::Direction::Tx, &info)
        .map_err(|err| unsupported(&format!("TLS_TX for {:?}", suite.suite()), &err))
}

/// rustls in user space: pread a chunk, encrypt it into records, write them out.
pub fn send_userspace(
    conn: &mut rustls::ServerConnection,
    file: &std::fs::File,
    range: std::ops::Range<u64>,
    mut sock: &TcpStream,
    counters: &mut Counters,
) -> Result<(), SendError> {
    // A whole chunk's records may wait in rustls before they are written.
    conn.set_buffer_limit(None);
    let mut buf = vec![0u8; CHUNK];
    let mut offset = range.start;
    while offset < range.end {
        let want = (range.end - offset).min(CHUNK as u64) as usize;
        counters.syscalls += 1;
        let n = match file.read_at(&mut buf[..want], offset) {
            Ok(0) => {
                return Err(SendError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the file ended at byte {offset}"),
                )));
            }
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err.into()),
        };
        counters.cpu_copied += n as u64;
        counters.user_bytes += n as u64;
        conn.writer().write_all(&buf[..n])?;
        while conn.wants_write() {
            counters.syscalls += 1;
            // One writev of queued records; the kernel copies the ciphertext in.
            match conn.write_tls(&mut sock) {
                Ok(written) => counters.cpu_copied += written as u64,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err.into()),
            }
        }
        counters.sent += n as u64;
        offset += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn handshake_over_loopback_and_a_pinned_key_only() {
        let configs = configs().unwrap();
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let server_side = std::thread::spawn({
            let configs = configs.clone();
            move || accept(&configs, &server).map(|conn| conn.negotiated_cipher_suite())
        });
        connect(&configs, &client).unwrap();
        assert!(server_side.join().unwrap().unwrap().is_some());

        // A client pinned to another key refuses this server.
        let other = super::configs().unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let server_side = std::thread::spawn(move || accept(&configs, &server).is_err());
        let refused = connect(&other, &client).unwrap_err();
        assert!(refused.to_string().contains("UnknownIssuer"), "{refused}");
        drop(client);
        assert!(server_side.join().unwrap());
    }
}
