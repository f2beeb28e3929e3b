//! A TLS 1.3 client on rustls, for what the guest's clients cannot do: put a request, a
//! KeyUpdate and more data in one write (or in the write of its handshake Finished), send a close_notify and then watch for ferry's, and
//! tell exactly how a connection ended (close_notify, then FIN or a reset). It accepts any
//! server certificate (the tests' is self-signed); blocking std sockets with a timeout on every
//! read and write.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

use super::IO_TIMEOUT;

/// How the server ended the connection, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// A TLS close_notify, then the TCP FIN (a read of 0), with no reset.
    CloseNotifyThenFin,
    /// A close_notify, then a reset instead of a FIN.
    CloseNotifyThenReset,
    /// A FIN without close_notify.
    FinWithoutCloseNotify,
    /// A reset before any close_notify.
    Reset,
    /// A TLS error (a fatal alert from the server, a record that did not verify, ...).
    TlsError(String),
    /// Another socket error, or nothing within `IO_TIMEOUT`.
    Io(String),
}

pub struct TlsClient {
    conn: ClientConnection,
    sock: TcpStream,
}

impl TlsClient {
    /// Connects and completes a TLS 1.3 handshake offering ALPN http/1.1.
    pub fn connect(addr: SocketAddr) -> io::Result<TlsClient> {
        let mut client = TlsClient::open(addr)?;
        while client.conn.is_handshaking() {
            client.conn.complete_io(&mut client.sock)?;
        }
        Ok(client)
    }

    /// As `connect`, but the client's last handshake flight (its Finished) stays queued: the
    /// next `flush` sends it in one write with what was queued after it, so the server reads
    /// them together while it is still finishing the handshake.
    pub fn connect_holding_finished(addr: SocketAddr) -> io::Result<TlsClient> {
        let mut client = TlsClient::open(addr)?;
        while client.conn.is_handshaking() {
            while client.conn.wants_write() {
                client.conn.write_tls(&mut client.sock)?;
            }
            if client.conn.read_tls(&mut client.sock)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed during the handshake",
                ));
            }
            client
                .conn
                .process_new_packets()
                .map_err(io::Error::other)?;
        }
        Ok(client)
    }

    /// A TCP connection and a TLS 1.3 client offering ALPN http/1.1, before the handshake.
    fn open(addr: SocketAddr) -> io::Result<TlsClient> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(io::Error::other)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = ServerName::try_from("localhost").map_err(io::Error::other)?;
        let conn = ClientConnection::new(Arc::new(config), name).map_err(io::Error::other)?;
        let sock = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        sock.set_read_timeout(Some(IO_TIMEOUT))?;
        sock.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(TlsClient { conn, sock })
    }

    /// The negotiated suite, for the evidence line.
    pub fn suite(&self) -> String {
        self.conn
            .negotiated_cipher_suite()
            .map_or("(none)".into(), |s| format!("{:?}", s.suite()))
    }

    /// Queues application data (sent by `flush`).
    pub fn queue(&mut self, data: &[u8]) {
        self.conn
            .writer()
            .write_all(data)
            .expect("rustls buffers plaintext");
    }

    /// Queues a KeyUpdate (rustls sends it with update_requested) and switches the client's
    /// own send key: data queued after it is encrypted with the new key.
    pub fn queue_key_update(&mut self) {
        self.conn
            .refresh_traffic_keys()
            .expect("KeyUpdate on a TLS 1.3 connection");
    }

    /// Queues a close_notify.
    pub fn queue_close_notify(&mut self) {
        self.conn.send_close_notify();
    }

    /// Encrypts everything queued and sends it in one write(2).
    pub fn flush(&mut self) -> io::Result<()> {
        let mut flight = Vec::new();
        while self.conn.wants_write() {
            self.conn.write_tls(&mut flight)?;
        }
        self.sock.write_all(&flight)
    }

    /// Reads until the server ends the connection: the plaintext received, and how it ended.
    pub fn read_to_end(&mut self) -> (Vec<u8>, End) {
        let mut plain = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            // Plaintext already decrypted first; Ok(0) from the reader is a close_notify.
            match self.conn.reader().read(&mut chunk) {
                Ok(0) => return (plain, self.after_close_notify()),
                Ok(n) => {
                    plain.extend_from_slice(&chunk[..n]);
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return (plain, End::FinWithoutCloseNotify);
                }
                Err(e) => return (plain, End::Io(format!("reader: {e}"))),
            }
            match self.conn.read_tls(&mut self.sock) {
                Ok(_) => {}
                Err(e) => return (plain, socket_end(&e)),
            }
            if let Err(e) = self.conn.process_new_packets() {
                return (plain, End::TlsError(e.to_string()));
            }
        }
    }

    /// After the close_notify: the raw socket must give its FIN (a read of 0), not a reset.
    fn after_close_notify(&mut self) -> End {
        let mut rest = [0u8; 4096];
        loop {
            match self.sock.read(&mut rest) {
                Ok(0) => return End::CloseNotifyThenFin,
                // Anything after close_notify is ignored, as TLS says.
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return End::CloseNotifyThenReset;
                }
                Err(e) => return End::Io(format!("after close_notify: {e}")),
            }
        }
    }
}

fn socket_end(e: &io::Error) -> End {
    if e.kind() == io::ErrorKind::ConnectionReset {
        End::Reset
    } else {
        End::Io(e.to_string())
    }
}

/// Accepts any certificate; signatures are still checked with the provider's algorithms.
#[derive(Debug)]
struct AnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
