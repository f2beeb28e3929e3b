//! HTTP/1.1 codec: request-head parsing, chunked bodies, response heads,
//! byte ranges, conditional requests, content types and Accept-Encoding; and what a request
//! head carries besides its bytes: who sent it (`Client`) and its ID (`RequestId`).
//!
//! Everything here is pure: it parses from byte slices and encodes into
//! `Vec<u8>`/`String`. Sockets, files, timeouts and routing live elsewhere. What every
//! request carries is held without an allocation per item: its header fields in one block
//! (`Headers`), ferry's own header values inline (`ShortText`), and both blocks reused per
//! thread (`spare`).

pub mod accept_encoding;
pub mod chunked;
mod client;
pub mod codec;
pub mod conditional;
pub mod fields;
mod headers;
mod message;
pub mod mime;
pub mod range;
pub mod request_id;
pub mod response;
pub mod response_head;
mod short_text;
pub mod spare;
mod validate;

#[cfg(test)]
mod tests;

pub use accept_encoding::{AcceptEncoding, Codings, ContentCoding};
pub use chunked::{ChunkedDecoder, MAX_CHUNK_LINE, encode_chunk, encode_last_chunk};
pub use client::Client;
pub use codec::{MAX_HEAD, MAX_HEADERS, MAX_REQUEST_LINE, parse_request};
pub use conditional::{
    Precondition, Validators, evaluate, http_date, http_date_text, if_range_allows, strong_etag,
};
pub use headers::{Field, Headers};
pub use message::{BodyLength, Method, ParseError, RequestHead, Scheme, Version};
pub use mime::content_type;
pub use range::{
    ByteRange, MAX_RANGES, RangeRequest, content_range, multipart_boundary, multipart_end,
    multipart_len, multipart_part_head, parse_range, unsatisfied_range,
};
pub use request_id::RequestId;
pub use response::{HeadEncoder, encode_response_head, reason};
pub use response_head::{
    BadResponse, Framing, MAX_RESPONSE_HEAD, ResponseHead, framing, parse_response,
};
pub use short_text::ShortText;
