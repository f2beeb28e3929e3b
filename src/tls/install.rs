//! Moving a connection's record layer from rustls into the kernel, in an order that keeps the
//! connection when the kernel refuses:
//!
//! 1. attach the `tls` ULP to the socket. A socket with the ULP and no keys still behaves as
//!    plain TCP, and rustls is untouched, so if this fails the connection goes on with rustls
//!    (`tls_buffered`, reason `install_failed`); the same if the record boundaries were not
//!    followed (cannot happen after a handshake rustls accepted);
//! 2. let rustls finish the record it may be in the middle of, and take the plaintext it has
//!    already decrypted (`transport::RecordCork` stops reads at a record boundary);
//! 3. send the records rustls still owes the peer (its answer to a KeyUpdate read with the
//!    client's Finished: see `owed_records`), while the socket is still plain TCP;
//! 4. take the traffic secrets out of rustls (this consumes it) and install the send and
//!    receive keys. Only this step cannot be undone; the start-up probe has already installed
//!    the negotiated suite on a loopback socket, so it fails only if the kernel runs out of
//!    memory, and then the connection is closed.

use std::io::{self, Write};

use ktls::CryptoInfo;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::sys::ktls::{Direction, set_crypto_info, set_tls_ulp};
use crate::transport::{KtlsStream, RustlsStream};

/// The most plaintext rustls can hold decrypted when the handshake ends, with room to spare
/// (its buffer for received plaintext is bounded well below this).
const MAX_EARLY: usize = 1024 * 1024;

/// How the conversion ended.
pub enum Installed {
    /// The kernel holds both keys.
    Ktls(KtlsStream),
    /// The ULP could not be attached; the rustls stream is intact.
    Kept(Box<RustlsStream>, io::Error),
    /// The secrets were taken but could not be installed, or the drain failed: the
    /// connection cannot go on.
    Lost(InstallError),
}

/// Why a conversion that had started could not finish.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("ktls install: reading what rustls had buffered: {0}")]
    Drain(io::Error),
    #[error("ktls install: no negotiated cipher suite after the handshake")]
    NoSuite,
    #[error("ktls install: sending the records rustls owed the peer: {0}")]
    Owed(io::Error),
    #[error("ktls install: rustls would not give the secrets: {0}")]
    Secrets(rustls::Error),
    #[error("ktls install: {0}")]
    Suite(ktls::Error),
    #[error("ktls install: setsockopt {0:?} key: {1}")]
    Key(Direction, io::Error),
}

/// Converts `stream` (handshake done, suite known to install) to kTLS; see the module comment.
pub async fn install(mut stream: Box<RustlsStream>) -> Installed {
    if let Err(err) = set_tls_ulp(&stream.get_ref().0.io) {
        return Installed::Kept(stream, err);
    }
    // The ULP without keys passes everything through, so rustls can still go on here.
    if !stream.get_mut().0.cork() {
        let err = io::Error::new(
            io::ErrorKind::InvalidData,
            "the TLS record stream was not followed",
        );
        return Installed::Kept(stream, err);
    }
    match finish(stream).await {
        Ok(ktls) => Installed::Ktls(ktls),
        Err(err) => Installed::Lost(err),
    }
}

async fn finish(mut stream: Box<RustlsStream>) -> Result<KtlsStream, InstallError> {
    let early = drain(&mut stream).await.map_err(InstallError::Drain)?;
    let (cork, mut conn) = stream.into_inner();
    // A close_notify sent with the client's Finished was read by rustls, not the kernel: the
    // stream must still end there.
    let peer_closed = conn
        .process_new_packets()
        .is_ok_and(|state| state.peer_has_closed());
    let owed = owed_records(&mut conn).map_err(InstallError::Drain)?;
    let suite = conn
        .negotiated_cipher_suite()
        .ok_or(InstallError::NoSuite)?;
    let secrets = conn
        .dangerous_extract_secrets()
        .map_err(InstallError::Secrets)?;
    let mut tcp = cork.io;
    if !owed.is_empty() {
        // Still plain TCP under the ULP: these records go out as rustls sealed them, before the
        // kernel takes over the send sequence that follows them.
        tcp.write_all(&owed).await.map_err(InstallError::Owed)?;
    }
    for (direction, secret) in [(Direction::Tx, secrets.tx), (Direction::Rx, secrets.rx)] {
        let info = CryptoInfo::from_rustls(suite, secret)
            .map_err(|err| InstallError::Suite(ktls::Error::KtlsCompatibility(err)))?;
        set_crypto_info(&tcp, direction, &info).map_err(|err| InstallError::Key(direction, err))?;
    }
    let stream = KtlsStream::new(tcp, (!early.is_empty()).then_some(early));
    if peer_closed {
        tracing::debug!("ktls: close_notify from the peer, read by rustls before the install");
        return Ok(stream.with_peer_closed());
    }
    Ok(stream)
}

/// The TLS records rustls owes the peer, sealed under the keys and sequence numbers that come
/// before the ones it hands over. The one that matters: a KeyUpdate with update_requested read
/// with the client's Finished (before the install) makes rustls switch its send key at once but
/// hold back its own KeyUpdate, sealed under the old key, until it next queues a record. The
/// secrets it then gives up are the new ones, so without that record the peer could not decrypt
/// anything ferry sends. An empty `write` queues it and seals no data record (`write_all`
/// would not call it for an empty buffer).
fn owed_records(conn: &mut rustls::ServerConnection) -> io::Result<Vec<u8>> {
    let taken = conn.writer().write(&[])?;
    debug_assert_eq!(taken, 0);
    let mut owed = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut owed)?;
    }
    Ok(owed)
}

/// Reads the plaintext rustls has decrypted (and the rest of a record it had started) until
/// the corked stream ends at a record boundary, which rustls reports as an end of stream.
async fn drain(stream: &mut RustlsStream) -> io::Result<Vec<u8>> {
    let mut early = Vec::new();
    loop {
        early.reserve(16 * 1024);
        match stream.read_buf(&mut early).await {
            Ok(0) => return Ok(early),
            Ok(_) if early.len() > MAX_EARLY => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "more than 1 MiB of plaintext buffered at the end of the handshake",
                ));
            }
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(early),
            Err(err) => return Err(err),
        }
    }
}
