//! The socket under rustls, for two jobs:
//!
//! - **writes, vectored**: rustls hands over its queued TLS records as one `write_vectored`
//!   (up to 64 records); this passes them to the socket as one writev(2). (A wrapper without
//!   `poll_write_vectored` makes tokio write only the first record per call: one sendto(2)
//!   per 16 KiB record on the `tls_buffered` path.)
//! - **reads that can stop at a record boundary** (`cork`): before the keys move to the
//!   kernel, rustls must have consumed whole records only, so that the next byte on the
//!   socket starts a record the kernel will decrypt. The wrapper follows the record headers
//!   (5 bytes: type, version, length) of everything it passes up; once corked, it reads at most
//!   to the end of the current record and then reports the end of the stream, which makes
//!   rustls finish that record and stop.
//!
//! Bytes that do not look like TLS records (which rustls rejects anyway) turn the tracking
//! off; corking then has nothing to stop at, and `cork` says so.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Largest TLS record payload on the wire: 2^14 plaintext + 2048 (TLS 1.2's bound; TLS 1.3's is
/// 2^14 + 256).
const MAX_RECORD: usize = (1 << 14) + 2048;
const HEADER: usize = 5;

/// Where the byte stream read so far stands in the record sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Records {
    /// `seen` bytes of a header (0 = at a record boundary).
    Header { bytes: [u8; HEADER], seen: usize },
    /// `left` payload bytes of the current record still to come.
    Payload { left: usize },
    /// Not TLS records: no tracking.
    Lost,
}

/// A socket under rustls (see the module comment).
#[derive(Debug)]
pub struct RecordCork<IO> {
    pub io: IO,
    records: Records,
    corked: bool,
}

impl<IO> RecordCork<IO> {
    pub fn new(io: IO) -> RecordCork<IO> {
        RecordCork {
            io,
            records: Records::Header {
                bytes: [0; HEADER],
                seen: 0,
            },
            corked: false,
        }
    }

    /// From now on reads end at the next record boundary. False (and nothing changes) when the
    /// record tracking was lost.
    pub fn cork(&mut self) -> bool {
        if self.records == Records::Lost {
            return false;
        }
        self.corked = true;
        true
    }

    /// How many of the next bytes may be read without passing a record boundary; 0 at one.
    fn to_boundary(&self) -> usize {
        match self.records {
            Records::Header { seen: 0, .. } => 0,
            Records::Header { seen, .. } => HEADER - seen,
            Records::Payload { left } => left,
            Records::Lost => usize::MAX,
        }
    }

    /// Follows the record headers through `bytes`, just read.
    fn track(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut self.records {
                Records::Lost => return,
                Records::Payload { left } => {
                    let n = (*left).min(bytes.len());
                    *left -= n;
                    bytes = &bytes[n..];
                    if *left == 0 {
                        self.records = Records::Header {
                            bytes: [0; HEADER],
                            seen: 0,
                        };
                    }
                }
                Records::Header {
                    bytes: header,
                    seen,
                } => {
                    let n = (HEADER - *seen).min(bytes.len());
                    header[*seen..*seen + n].copy_from_slice(&bytes[..n]);
                    *seen += n;
                    bytes = &bytes[n..];
                    if *seen == HEADER {
                        self.records = parse_header(header);
                    }
                }
            }
        }
    }
}

/// The state after a complete header: its payload, or `Lost` if it is not a TLS record header.
fn parse_header(header: &[u8; HEADER]) -> Records {
    let content_type_ok = (20..=24).contains(&header[0]);
    let version_ok = header[1] == 3;
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    if !content_type_ok || !version_ok || len > MAX_RECORD {
        return Records::Lost;
    }
    if len == 0 {
        Records::Header {
            bytes: [0; HEADER],
            seen: 0,
        }
    } else {
        Records::Payload { left: len }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for RecordCork<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let limit = if this.corked {
            this.to_boundary()
        } else {
            usize::MAX
        };
        if limit == 0 {
            // At the boundary: the end, as far as rustls is concerned.
            return Poll::Ready(Ok(()));
        }
        let room = buf.remaining().min(limit);
        let mut part = ReadBuf::new(buf.initialize_unfilled_to(room));
        ready!(Pin::new(&mut this.io).poll_read(cx, &mut part))?;
        let n = part.filled().len();
        this.track(part.filled());
        // The bytes were read into `buf`'s own (initialised) unfilled region.
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for RecordCork<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    fn record(content_type: u8, payload: &[u8]) -> Vec<u8> {
        let mut r = vec![content_type, 3, 3];
        r.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        r.extend_from_slice(payload);
        r
    }

    #[tokio::test]
    async fn corked_reads_stop_at_the_end_of_the_current_record() {
        let mut wire = record(23, &[1; 300]);
        wire.extend(record(23, &[2; 40]));
        let mut cork = RecordCork::new(&wire[..]);
        let mut first = [0u8; 7];
        cork.read_exact(&mut first).await.unwrap();
        assert!(cork.cork());
        let mut rest = Vec::new();
        cork.read_to_end(&mut rest).await.unwrap();
        // The 5-byte header and 2 payload bytes were read; the record's other 298 follow.
        assert_eq!(rest, vec![1; 298]);
    }

    #[tokio::test]
    async fn corked_at_a_boundary_reads_nothing_more() {
        let mut wire = record(22, &[9; 10]);
        wire.extend(record(23, &[8; 10]));
        let mut cork = RecordCork::new(&wire[..]);
        let mut first = vec![0u8; 15];
        cork.read_exact(&mut first).await.unwrap();
        assert!(cork.cork());
        let mut rest = Vec::new();
        assert_eq!(cork.read_to_end(&mut rest).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_header_split_across_reads_is_followed() {
        let wire = [record(23, &[5; 3]), record(21, &[1, 0])].concat();
        let mut cork = RecordCork::new(&wire[..]);
        let mut byte = [0u8; 1];
        for _ in 0..9 {
            cork.read_exact(&mut byte).await.unwrap();
        }
        // 9 bytes: header (5) + payload (3) + 1 header byte of the next record.
        assert!(cork.cork());
        let mut rest = Vec::new();
        cork.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, vec![3, 3, 0, 2, 1, 0]);
    }

    /// Records every write call it gets, as vectored writes of so many slices.
    #[derive(Default)]
    struct Calls(Vec<usize>);

    impl AsyncWrite for Calls {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().0.push(1);
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().0.push(bufs.len());
            Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn queued_records_reach_the_socket_in_one_vectored_write() {
        use tokio::io::AsyncWriteExt;
        let records = [
            record(23, &[1; 100]),
            record(23, &[2; 100]),
            record(23, &[3; 7]),
        ];
        let slices: Vec<IoSlice<'_>> = records.iter().map(|r| IoSlice::new(r)).collect();
        let mut cork = RecordCork::new(Calls::default());
        assert!(cork.is_write_vectored());
        let n = cork.write_vectored(&slices).await.unwrap();
        assert_eq!(n, 105 + 105 + 12);
        assert_eq!(cork.io.0, vec![3], "one call carrying all three records");
    }

    #[tokio::test]
    async fn bytes_that_are_not_records_turn_tracking_off() {
        let wire = b"GET / HTTP/1.1\r\n\r\n".to_vec();
        let mut cork = RecordCork::new(&wire[..]);
        let mut got = Vec::new();
        cork.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, wire);
        assert!(!cork.cork());
    }
}
