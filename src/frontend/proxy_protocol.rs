//! Reading the PROXY protocol header on a listener that requires one (`server.proxy_protocol`,
//! `tls.proxy_protocol`), first thing after accept and before any TLS. Exactly the header's
//! bytes are taken from the socket: version 2 says its length in its first 16 bytes, and a
//! version 1 line is peeked at (MSG_PEEK) and only the bytes up to its LF are read. So the
//! HTTP request or the TLS ClientHello that came in the same segment stays in the socket for
//! the connection, and kTLS still gets the raw socket. Parsing is `ingress::proxy_protocol`'s.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::ingress::proxy_protocol::{
    self as pp, Header, Invalid, V1_MAX, V2_FIXED, Version, parse_v1, parse_v2,
};
use crate::metrics::Metrics;

/// Why a connection was refused.
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("{0}")]
    Invalid(#[from] Invalid),
    #[error("closed before a whole header")]
    Closed,
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Reads the header within `timeout` and returns the connection's peer as it names it (the
/// source address, or `peer` itself for LOCAL and UNKNOWN); `None` when the connection is to
/// be closed. Counts the result in ferry_proxy_protocol_headers_total.
pub async fn read(
    stream: &mut TcpStream,
    peer: SocketAddr,
    timeout: Duration,
    metrics: &Metrics,
) -> Option<SocketAddr> {
    let (result, refused) = match tokio::time::timeout(timeout, read_header(stream)).await {
        Ok(Ok(Header::Source(source))) => return counted(metrics, "ok", Some(source)),
        Ok(Ok(Header::Local)) => return counted(metrics, "local", Some(peer)),
        Ok(Err(Refused::Invalid(err))) => ("invalid", err.to_string()),
        Ok(Err(Refused::Closed)) => ("closed", Refused::Closed.to_string()),
        Ok(Err(Refused::Io(err))) => ("closed", err.to_string()),
        Err(_) => ("timeout", format!("no header within {timeout:?}")),
    };
    tracing::debug!(%peer, error = %refused, "proxy protocol: connection refused");
    counted(metrics, result, None)
}

fn counted(
    metrics: &Metrics,
    result: &'static str,
    peer: Option<SocketAddr>,
) -> Option<SocketAddr> {
    metrics.proxy_protocol(result);
    peer
}

async fn read_header(stream: &mut TcpStream) -> Result<Header, Refused> {
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await? == 0 {
        return Err(Refused::Closed);
    }
    match pp::version(first[0]) {
        Some(Version::V1) => read_v1(stream).await,
        Some(Version::V2) => read_v2(stream).await,
        None => Err(Invalid::Signature.into()),
    }
}

/// A version 1 line: peeked, and read only up to its LF. Bytes without an LF among them
/// are all the line's, so they are read (taken) before peeking again, which then waits for
/// new bytes instead of returning the same ones.
async fn read_v1(stream: &mut TcpStream) -> Result<Header, Refused> {
    let mut line = [0u8; V1_MAX];
    let mut have = 0;
    loop {
        let n = stream.peek(&mut line[have..]).await?;
        if n == 0 {
            return Err(Refused::Closed);
        }
        let end = line[have..have + n].iter().position(|&b| b == b'\n');
        let take = end.map_or(n, |at| at + 1);
        stream.read_exact(&mut line[have..have + take]).await?;
        have += take;
        if end.is_some() {
            return Ok(parse_v1(&line[..have])?);
        }
        pp::v1_may_continue(&line[..have])?;
    }
}

/// A version 2 header: its fixed 16 bytes, then as many as its length says; of those only
/// the addresses are kept, the TLVs after them are read and dropped.
async fn read_v2(stream: &mut TcpStream) -> Result<Header, Refused> {
    let mut fixed = [0u8; V2_FIXED];
    read_all(stream, &mut fixed).await?;
    let v2 = parse_v2(&fixed)?;
    let mut addresses = [0u8; 36];
    let wanted = v2.addresses_len();
    read_all(stream, &mut addresses[..wanted]).await?;
    let mut rest = usize::from(v2.len) - wanted;
    let mut scratch = [0u8; 512];
    while rest > 0 {
        let n = rest.min(scratch.len());
        read_all(stream, &mut scratch[..n]).await?;
        rest -= n;
    }
    Ok(v2.header(&addresses[..wanted]))
}

/// `read_exact`, with an early end of stream told apart as [`Refused::Closed`].
async fn read_all(stream: &mut TcpStream, buf: &mut [u8]) -> Result<(), Refused> {
    match stream.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => Err(Refused::Closed),
        Err(err) => Err(err.into()),
    }
}
