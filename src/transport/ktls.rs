//! A TCP connection whose TLS record layer is in the kernel (kTLS), after rustls did the
//! handshake and the ktls crate installed the keys. Writes, sendfile(2) and splice(2) go to the
//! socket as they are and the kernel encrypts them. Reads go through `sys::ktls::recv_record`,
//! which tells each record's type, so ferry sees every record that is not application data
//! when it arrives:
//!
//! - the peer's close_notify is the end of the stream (a read of 0), answered by ferry's own
//!   close_notify when the connection is shut down;
//! - a fatal alert ends the connection without a close_notify from ferry;
//! - a TLS 1.3 KeyUpdate (or any other post-handshake message) cannot be followed: Linux before
//!   6.14 cannot take a new receive key, and ferry does not hold the traffic secret to derive
//!   one. The records after it cannot be decrypted, so the read fails with
//!   `RecordError::KeyUpdate` and the connection is closed cleanly: a close_notify on the
//!   send key (still valid), then FIN, then ferry waits (bounded by the caller) for the peer's
//!   FIN before the socket is closed. Closing a socket that holds unread bytes makes the kernel
//!   send a reset, which could reach the client before it has read the close_notify.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::sys::ktls::{self as sys, CONTENT_ALERT, CONTENT_APPLICATION_DATA, CONTENT_HANDSHAKE};

/// A close_notify alert: level warning (1), description close_notify (0).
const CLOSE_NOTIFY: [u8; 2] = [1, 0];
/// Alert description user_canceled: a warning that precedes a close_notify; ignored.
const USER_CANCELED: u8 = 90;
/// Alert level fatal.
const FATAL: u8 = 2;
/// TLS handshake message type key_update (RFC 8446, 4.6.3).
const KEY_UPDATE: u8 = 24;
/// Smallest destination handed to recvmsg: an alert (2 bytes) or a KeyUpdate (5 bytes) must
/// arrive whole. Reads into a smaller buffer go through a scratch buffer of this size.
const MIN_READ: usize = 64;

/// Why the receive side of a kTLS connection stopped before the peer closed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error(
        "ktls: the peer sent a TLS 1.3 KeyUpdate (update_requested: {update_requested}); the kernel cannot take a new receive key, so the connection is closed"
    )]
    KeyUpdate { update_requested: bool },
    #[error("ktls: unexpected post-handshake message (type {0}) from the peer")]
    Handshake(u8),
    #[error("ktls: the peer sent alert {description} (level {level})")]
    Alert { level: u8, description: u8 },
    #[error("ktls: malformed {0} record from the peer")]
    Malformed(&'static str),
    #[error("ktls: unexpected record content type {0} from the peer")]
    ContentType(u8),
    #[error("ktls: reading failed before: {0:?}")]
    Failed(io::ErrorKind),
}

impl From<RecordError> for io::Error {
    fn from(err: RecordError) -> io::Error {
        let kind = match err {
            RecordError::Failed(kind) => kind,
            RecordError::Alert { .. } => io::ErrorKind::ConnectionAborted,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, err)
    }
}

/// The receive side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rx {
    Open,
    /// The peer sent close_notify or FIN: reads return 0.
    Ended,
    /// Reads can no longer go on; the socket may still hold bytes ferry cannot read.
    Stopped(RecordError),
}

/// The send side's closing steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tx {
    Open,
    /// close_notify sent (or not to be sent); FIN next.
    Notified,
    /// FIN sent; waiting for the peer's FIN if unread bytes may remain.
    FinSent,
    Closed,
}

/// A kTLS connection (see the module comment).
#[derive(Debug)]
pub struct KtlsStream {
    tcp: TcpStream,
    /// Plaintext rustls had decrypted before the keys moved to the kernel, read first.
    early: Vec<u8>,
    early_at: usize,
    rx: Rx,
    tx: Tx,
}

impl KtlsStream {
    /// `tcp` has kTLS TX and RX installed; `early` is what rustls had already decrypted.
    pub fn new(tcp: TcpStream, early: Option<Vec<u8>>) -> KtlsStream {
        KtlsStream {
            tcp,
            early: early.unwrap_or_default(),
            early_at: 0,
            rx: Rx::Open,
            tx: Tx::Open,
        }
    }

    /// The receive side ended before the install: rustls had already read the peer's
    /// close_notify (it came in one write with the client's Finished). Reads return what
    /// rustls decrypted before it, then 0.
    pub fn with_peer_closed(mut self) -> KtlsStream {
        self.rx = Rx::Ended;
        self
    }

    pub fn get_ref(&self) -> &TcpStream {
        &self.tcp
    }

    /// Why reading stopped early, if it did (for logs and tests).
    pub fn stopped(&self) -> Option<RecordError> {
        match self.rx {
            Rx::Stopped(err) => Some(err),
            _ => None,
        }
    }

    fn stop(&mut self, err: RecordError) -> io::Error {
        tracing::debug!(error = %err, "ktls receive side stopped");
        self.rx = Rx::Stopped(err);
        if matches!(err, RecordError::Alert { .. }) {
            // After the peer's fatal alert nothing more is sent on the TLS layer.
            self.tx = self.tx.max_notified();
        }
        err.into()
    }

    /// Interprets one non-data record: `Ok(true)` to read on (an ignorable warning), `Ok(false)`
    /// for the peer's close_notify, an error for everything that stops the receive side.
    fn control_record(&mut self, content_type: u8, payload: &[u8]) -> io::Result<bool> {
        match content_type {
            CONTENT_ALERT => match payload {
                [_, 0] => {
                    tracing::debug!("ktls: close_notify from the peer");
                    self.rx = Rx::Ended;
                    Ok(false)
                }
                [level, USER_CANCELED] if *level != FATAL => Ok(true),
                [level, description] => Err(self.stop(RecordError::Alert {
                    level: *level,
                    description: *description,
                })),
                _ => Err(self.stop(RecordError::Malformed("alert"))),
            },
            CONTENT_HANDSHAKE => match payload {
                [KEY_UPDATE, _, _, _, request, ..] => Err(self.stop(RecordError::KeyUpdate {
                    update_requested: *request == 1,
                })),
                [KEY_UPDATE, ..] | [] => Err(self.stop(RecordError::Malformed("handshake"))),
                [kind, ..] => Err(self.stop(RecordError::Handshake(*kind))),
            },
            other => Err(self.stop(RecordError::ContentType(other))),
        }
    }
}

impl Tx {
    fn max_notified(self) -> Tx {
        match self {
            Tx::Open => Tx::Notified,
            later => later,
        }
    }
}

impl AsyncRead for KtlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if this.early_at < this.early.len() {
            let n = buf.remaining().min(this.early.len() - this.early_at);
            buf.put_slice(&this.early[this.early_at..this.early_at + n]);
            this.early_at += n;
            if this.early_at == this.early.len() {
                this.early = Vec::new();
                this.early_at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        match this.rx {
            Rx::Open => {}
            Rx::Ended => return Poll::Ready(Ok(())),
            Rx::Stopped(err) => return Poll::Ready(Err(err.into())),
        }
        loop {
            ready!(this.tcp.poll_read_ready(cx))?;
            let mut scratch = [0u8; MIN_READ];
            let direct = buf.remaining() >= MIN_READ;
            let dst: &mut [u8] = if direct {
                buf.initialize_unfilled()
            } else {
                &mut scratch
            };
            let tcp = &this.tcp;
            let got = tcp.try_io(Interest::READABLE, || sys::recv_record(tcp, &mut *dst));
            let got = match got {
                Ok(got) => got,
                // try_io cleared the readiness: poll_read_ready registers for the next event.
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                Err(err) => {
                    let kind = err.kind();
                    tracing::debug!(error = %err, "ktls read failed");
                    this.rx = Rx::Stopped(RecordError::Failed(kind));
                    return Poll::Ready(Err(err));
                }
            };
            if got.content_type != CONTENT_APPLICATION_DATA {
                let payload = dst[..got.len].to_vec();
                match this.control_record(got.content_type, &payload) {
                    Ok(true) => continue,
                    Ok(false) => return Poll::Ready(Ok(())),
                    Err(err) => return Poll::Ready(Err(err)),
                }
            }
            if got.len == 0 {
                // FIN without close_notify: a truncation, reported as the end like TCP.
                this.rx = Rx::Ended;
            } else if direct {
                buf.advance(got.len);
            } else {
                let n = got.len.min(buf.remaining());
                buf.put_slice(&scratch[..n]);
                this.early = scratch[n..got.len].to_vec();
                this.early_at = 0;
            }
            return Poll::Ready(Ok(()));
        }
    }
}

impl AsyncWrite for KtlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.tx != Tx::Open {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "ktls: write after the TLS session was closed",
            )));
        }
        Pin::new(&mut this.tcp).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    /// close_notify (unless the peer ended with a fatal alert), FIN, and, when the receive side
    /// stopped with bytes possibly unread, the peer's FIN (see the module comment). Callers
    /// bound the whole with a timeout.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match this.tx {
                Tx::Open => {
                    ready!(this.tcp.poll_write_ready(cx))?;
                    let tcp = &this.tcp;
                    let sent = tcp.try_io(Interest::WRITABLE, || {
                        sys::send_record(tcp, CONTENT_ALERT, &CLOSE_NOTIFY)
                    });
                    match sent {
                        Ok(_) => this.tx = Tx::Notified,
                        Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                        Err(err) => {
                            this.tx = Tx::Notified;
                            return Poll::Ready(Err(err));
                        }
                    }
                }
                Tx::Notified => {
                    ready!(Pin::new(&mut this.tcp).poll_shutdown(cx))?;
                    this.tx = Tx::FinSent;
                }
                Tx::FinSent if matches!(this.rx, Rx::Stopped(_)) => {
                    ready!(this.tcp.poll_read_ready(cx))?;
                    if sys::peer_closed(&this.tcp)? {
                        this.tx = Tx::Closed;
                        continue;
                    }
                    // Readable only because of bytes that cannot be decrypted: drop this
                    // readiness and wait for the next event (the FIN, or a timeout above).
                    let _ = this.tcp.try_io(Interest::READABLE, || {
                        Err::<(), _>(io::Error::from(io::ErrorKind::WouldBlock))
                    });
                }
                Tx::FinSent => this.tx = Tx::Closed,
                Tx::Closed => return Poll::Ready(Ok(())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A KtlsStream over a loopback TCP connection: `control_record` only interprets bytes,
    /// so no kernel TLS is needed to check what each record does to the stream's state.
    async fn stream() -> (KtlsStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (KtlsStream::new(accepted.unwrap().0, None), client.unwrap())
    }

    #[tokio::test]
    async fn close_notify_ends_the_stream_and_is_answered() {
        let (mut s, _peer) = stream().await;
        assert!(!s.control_record(CONTENT_ALERT, &[1, 0]).unwrap());
        assert_eq!(s.rx, Rx::Ended);
        assert_eq!(s.tx, Tx::Open, "ferry still owes its own close_notify");
    }

    #[tokio::test]
    async fn a_fatal_alert_stops_reading_and_no_close_notify_follows() {
        let (mut s, _peer) = stream().await;
        let err = s.control_record(CONTENT_ALERT, &[2, 40]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
        assert_eq!(
            s.stopped(),
            Some(RecordError::Alert {
                level: 2,
                description: 40
            })
        );
        assert_eq!(s.tx, Tx::Notified);
    }

    #[tokio::test]
    async fn user_canceled_is_skipped() {
        let (mut s, _peer) = stream().await;
        assert!(
            s.control_record(CONTENT_ALERT, &[1, USER_CANCELED])
                .unwrap()
        );
        assert_eq!(s.rx, Rx::Open);
    }

    #[tokio::test]
    async fn key_update_stops_reading_and_says_whether_it_was_requested() {
        for (request, requested) in [(0u8, false), (1, true)] {
            let (mut s, _peer) = stream().await;
            let err = s
                .control_record(CONTENT_HANDSHAKE, &[KEY_UPDATE, 0, 0, 1, request])
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            assert_eq!(
                s.stopped(),
                Some(RecordError::KeyUpdate {
                    update_requested: requested
                })
            );
            assert_eq!(s.tx, Tx::Open, "a close_notify is still to be sent");
        }
    }

    #[tokio::test]
    async fn other_records_stop_reading() {
        let (mut s, _peer) = stream().await;
        s.control_record(CONTENT_HANDSHAKE, &[1, 0, 0, 0])
            .unwrap_err();
        assert_eq!(s.stopped(), Some(RecordError::Handshake(1)));
        let (mut s, _peer) = stream().await;
        s.control_record(CONTENT_ALERT, &[1]).unwrap_err();
        assert_eq!(s.stopped(), Some(RecordError::Malformed("alert")));
        let (mut s, _peer) = stream().await;
        s.control_record(20, &[1]).unwrap_err();
        assert_eq!(s.stopped(), Some(RecordError::ContentType(20)));
    }
}
