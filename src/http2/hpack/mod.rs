//! HPACK header compression (RFC 7541) for ferry's HTTP/2 layer: a `Decoder` for request
//! header blocks and an `Encoder` for response header blocks, one of each per connection.
//!
//! Pure code over byte slices: no I/O, no frames (the connection core joins HEADERS and
//! CONTINUATION payloads before decoding and splits the encoded block into frames after).
//! Neither side allocates in steady state: each dynamic table keeps its entries' bytes in
//! one buffer (`table`), Huffman output goes to a reusable scratch buffer, literal strings
//! not Huffman coded are handed to the caller straight from the input block.
//!
//! - `wire`: prefixed integers and string literals (§5).
//! - `huffman`: the canonical Huffman code (§5.2, Appendix B), decoded 4 bits at a time.
//! - `table`: the static table (Appendix A) and the dynamic table (§4).
//! - `decode`, `encode`: the field representations (§6) and the encoder's indexing policy.

mod decode;
mod encode;
mod huffman;
mod table;
mod wire;

#[cfg(test)]
mod tests;

pub use decode::Decoder;
pub use encode::Encoder;

/// HPACK errors; every one is a connection error COMPRESSION_ERROR except `ListTooLarge`.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum HpackError {
    /// The block ends inside an integer or a string.
    #[error("hpack: header block truncated")]
    Truncated,
    /// Index 0, or past the end of the static and dynamic tables (§2.3.3).
    #[error("hpack: index {0} is not in the table")]
    BadIndex(usize),
    /// Huffman padding longer than 7 bits or not the EOS prefix (§5.2).
    #[error("hpack: bad huffman padding")]
    BadHuffman,
    /// A Huffman-coded string contains the EOS symbol (§5.2).
    #[error("hpack: huffman string contains EOS")]
    HuffmanEos,
    /// An integer beyond 2^32 - 1, or with more continuation bytes than that needs (§5.1).
    #[error("hpack: integer overflow")]
    IntegerOverflow,
    /// A dynamic table size update above SETTINGS_HEADER_TABLE_SIZE (§6.3).
    #[error("hpack: table size update to {0} above the limit")]
    TableSizeTooLarge(usize),
    /// A dynamic table size update after the first field of a block (§4.2).
    #[error("hpack: table size update after a field")]
    TableSizeUpdateMidBlock,
    /// The decoded list exceeds the caller's limit (RFC 9113 §6.5.2 sizes). Not a
    /// compression error: the block was decoded to its end and the table is in step.
    #[error("hpack: header list too large")]
    ListTooLarge,
}

impl HpackError {
    /// Whether this error breaks the compression context (connection error
    /// COMPRESSION_ERROR, RFC 9113 §4.3); `false` only for `ListTooLarge`.
    pub fn is_compression_error(self) -> bool {
        self != HpackError::ListTooLarge
    }
}
