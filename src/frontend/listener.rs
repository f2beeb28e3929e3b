//! Client listeners, built with socket2 so ferry sets what std does not: SO_REUSEPORT (several
//! ferry processes, or a restarting one, can share a port) and the accept backlog.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// The accept backlog; the kernel caps it at net.core.somaxconn.
const BACKLOG: i32 = 4096;

/// Binds a non-blocking TCP listener on `addr` with SO_REUSEADDR and SO_REUSEPORT.
pub fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}
