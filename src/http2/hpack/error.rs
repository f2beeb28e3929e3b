//! What can be wrong with a header block.

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
