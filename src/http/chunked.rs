//! Chunked transfer coding (RFC 9112 §7.1): an incremental decoder for
//! request bodies and the two encoding helpers.
//!
//! The decoder is a byte-driven state machine with no I/O and no internal
//! buffering beyond a few counters: feed it whatever arrived, it appends the
//! decoded data to the caller's `Vec` and says how much input it consumed.
//! Trailer fields are checked for framing and then discarded. Body-size
//! limits are the caller's job (look at how much `out` grew).

use super::message::ParseError;

/// Upper bound on the whole trailer section, in bytes.
pub const MAX_TRAILER_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Start of a chunk-size line: a hex digit is required.
    SizeStart,
    /// Inside the hex digits.
    Size,
    /// After the digits: BWS before `;`, or CR.
    ExtWs,
    /// Inside chunk extensions, until CR.
    Ext,
    /// Saw the CR of the size line.
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// Start of a trailer line (or of the final CRLF).
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    FinalLf,
    Done,
    Failed,
}

/// Longest chunk-size line (with extensions) ferry accepts, from a client or the app.
pub const MAX_CHUNK_LINE: usize = 4096;

/// Incremental chunked-body decoder.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    /// Size of the current chunk, or bytes still to copy in `Data`.
    remaining: u64,
    /// Bytes of the current size line (digits + extensions), excluding CRLF.
    line_len: usize,
    max_chunk_line: usize,
    trailer_bytes: usize,
}

impl ChunkedDecoder {
    /// `max_chunk_line` bounds one chunk-size line including extensions
    /// (excluding CRLF); longer lines are rejected.
    pub fn new(max_chunk_line: usize) -> Self {
        ChunkedDecoder {
            state: State::SizeStart,
            remaining: 0,
            line_len: 0,
            max_chunk_line,
            trailer_bytes: 0,
        }
    }

    /// True once the last chunk, the trailers and the final CRLF were read.
    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes bytes from `input`, appending decoded data to `out`. Returns
    /// how many input bytes were consumed: all of them, unless the body ended
    /// (then the rest belongs to the next message). After an error the
    /// decoder stays failed.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, ParseError> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Done => break,
                State::Failed => return Err(ParseError::Bad("chunked decoder already failed")),
                State::Data => {
                    let avail = input.len() - i;
                    let take = usize::try_from(self.remaining).map_or(avail, |r| r.min(avail));
                    out.extend_from_slice(&input[i..i + take]);
                    i += take;
                    self.remaining -= take as u64;
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                }
                _ => {
                    if let Err(e) = self.step(input[i]) {
                        self.state = State::Failed;
                        return Err(e);
                    }
                    i += 1;
                }
            }
        }
        if self.state == State::Failed {
            return Err(ParseError::Bad("chunked decoder already failed"));
        }
        Ok(i)
    }

    /// Advances the framing state machine by one byte (never in `Data`).
    fn step(&mut self, b: u8) -> Result<(), ParseError> {
        use State::*;
        self.state = match self.state {
            SizeStart | Size => match hex_value(b) {
                Some(d) => {
                    self.count_line()?;
                    self.remaining = self
                        .remaining
                        .checked_mul(16)
                        .and_then(|r| r.checked_add(u64::from(d)))
                        .ok_or(ParseError::Bad("chunk size overflows"))?;
                    Size
                }
                None if self.state == SizeStart => {
                    return Err(ParseError::Bad("invalid chunk size"));
                }
                None => match b {
                    b'\r' => SizeLf,
                    b';' => self.ext_byte(Ext)?,
                    b' ' | b'\t' => self.ext_byte(ExtWs)?,
                    _ => return Err(ParseError::Bad("invalid chunk size")),
                },
            },
            ExtWs => match b {
                b';' => self.ext_byte(Ext)?,
                b' ' | b'\t' => self.ext_byte(ExtWs)?,
                _ => return Err(ParseError::Bad("invalid chunk extension")),
            },
            Ext => match b {
                b'\r' => SizeLf,
                b'\n' => return Err(ParseError::Bad("bare lf in chunk size line")),
                b if is_ctl(b) => return Err(ParseError::Bad("invalid chunk extension")),
                _ => self.ext_byte(Ext)?,
            },
            SizeLf => {
                expect_lf(b, "bare cr in chunk size line")?;
                self.line_len = 0;
                if self.remaining == 0 {
                    TrailerStart
                } else {
                    Data
                }
            }
            DataCr => match b {
                b'\r' => DataLf,
                _ => return Err(ParseError::Bad("missing crlf after chunk data")),
            },
            DataLf => {
                expect_lf(b, "bare cr after chunk data")?;
                SizeStart
            }
            TrailerStart => match b {
                b'\r' => FinalLf,
                b if is_tchar(b) => self.trailer_byte(TrailerName)?,
                _ => return Err(ParseError::Bad("invalid trailer field")),
            },
            TrailerName => match b {
                b':' => self.trailer_byte(TrailerValue)?,
                b if is_tchar(b) => self.trailer_byte(TrailerName)?,
                _ => return Err(ParseError::Bad("invalid trailer field")),
            },
            TrailerValue => match b {
                b'\r' => self.trailer_byte(TrailerLf)?,
                b if is_ctl(b) => return Err(ParseError::Bad("invalid trailer field")),
                _ => self.trailer_byte(TrailerValue)?,
            },
            TrailerLf => {
                expect_lf(b, "bare cr in trailer field")?;
                self.trailer_byte(TrailerStart)?
            }
            FinalLf => {
                expect_lf(b, "bare cr at end of chunked body")?;
                Done
            }
            Data | Done | Failed => unreachable!("handled in decode"),
        };
        Ok(())
    }

    fn count_line(&mut self) -> Result<(), ParseError> {
        self.line_len += 1;
        if self.line_len > self.max_chunk_line {
            return Err(ParseError::Bad("chunk size line too long"));
        }
        Ok(())
    }

    fn ext_byte(&mut self, next: State) -> Result<State, ParseError> {
        self.count_line()?;
        Ok(next)
    }

    fn trailer_byte(&mut self, next: State) -> Result<State, ParseError> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > MAX_TRAILER_BYTES {
            return Err(ParseError::Bad("trailer section too large"));
        }
        Ok(next)
    }
}

fn expect_lf(b: u8, msg: &'static str) -> Result<(), ParseError> {
    if b == b'\n' {
        Ok(())
    } else {
        Err(ParseError::Bad(msg))
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Control bytes other than HTAB (includes CR, LF, NUL, DEL).
fn is_ctl(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Appends one chunk. Empty `data` writes nothing (an empty chunk would be
/// the last-chunk).
pub fn encode_chunk(data: &[u8], out: &mut Vec<u8>) {
    if data.is_empty() {
        return;
    }
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Appends the last-chunk with no trailers: `0\r\n\r\n`.
pub fn encode_last_chunk(out: &mut Vec<u8>) {
    out.extend_from_slice(b"0\r\n\r\n");
}
