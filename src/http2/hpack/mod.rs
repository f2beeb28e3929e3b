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
mod error;
mod huffman;
mod table;
mod wire;

#[cfg(test)]
mod tests;

pub use decode::Decoder;
pub use encode::Encoder;
pub use error::HpackError;
