//! Unit and property tests for the HTTP codec that are too long to sit
//! inline in their modules. Small modules (response, mime) keep theirs inline.

mod chunked;
mod codec;
mod conditional;
mod framing;
mod props;
mod range;
mod target;
