//! Writing a request whose body is already held: in memory (`RequestBody::InHand`), or in a
//! spool file (`RequestBody::File`, sent with sendfile, never entering user space). An HTTP/2
//! stream's body (its bytes come out of DATA frames, so nothing can be spliced from the socket), and a
//! background refresh's empty one. A small body leaves in the head's write; head and body
//! are written within the response timeout. Because the body is held, an idempotent request
//! with a body can be sent again when a pooled connection turns out closed (the exchange in
//! `mod.rs` decides).
//!
//! Not here: reading the client's body (frontend::h2) and relaying the app's response body.

use std::fs::File;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncWriteExt, Interest};

use super::stream::AppSocket;
use crate::sys;

/// Bodies up to this size leave in the same write as the head.
const INLINE_BODY: usize = 16 * 1024;

/// Appends `body` to `head` when it is small enough to leave in the same write; whether it
/// did.
pub(super) fn inline(head: &mut Vec<u8>, body: &Bytes) -> bool {
    let inline = body.len() <= INLINE_BODY;
    if inline {
        head.extend_from_slice(body);
    }
    inline
}

/// Writes the head (with a small body inline) and then `body`, within `timeout` (the
/// response timeout): an app that stops reading must not hold the stream forever.
pub(super) async fn write_held(
    stream: &mut AppSocket,
    head: &[u8],
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<(), String> {
    let write = async {
        stream
            .write_all(head)
            .await
            .map_err(|err| format!("writing request head: {err}"))?;
        if let Some(body) = body {
            stream
                .write_all(body)
                .await
                .map_err(|err| format!("writing request body: {err}"))?;
        }
        Ok(())
    };
    match tokio::time::timeout(timeout, write).await {
        Ok(result) => result,
        Err(_) => Err(format!("writing request: no progress within {timeout:?}")),
    }
}

/// Writes the head and then `len` bytes of `file` with sendfile, within `timeout` without
/// progress (the response timeout).
pub(super) async fn write_file(
    stream: &mut AppSocket,
    head: &[u8],
    file: &File,
    len: u64,
    timeout: Duration,
) -> Result<(), String> {
    let written = tokio::time::timeout(timeout, stream.write_all(head)).await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(err)) => return Err(format!("writing request head: {err}")),
        Err(_) => return Err(format!("writing request: no progress within {timeout:?}")),
    }
    let mut offset = 0;
    while offset < len {
        match tokio::time::timeout(timeout, stream.writable()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => return Err(format!("writing request body: {err}")),
            Err(_) => {
                return Err(format!(
                    "writing request body: no progress within {timeout:?}"
                ));
            }
        }
        let want = (len - offset).min(1 << 20) as usize;
        match stream.try_io(Interest::WRITABLE, || {
            sys::sendfile(&*stream, file, &mut offset, want)
        }) {
            Ok(0) => return Err("writing request body: the spool file ended early".into()),
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) => return Err(format!("writing request body: {err}")),
        }
    }
    Ok(())
}
