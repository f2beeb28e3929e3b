//! Client listeners, built with socket2 so ferry sets what std does not: SO_REUSEPORT (one
//! socket per connection worker on each address, see `server`) and the accept backlog.
//!
//! SO_REUSEPORT would also let a second ferry process join a port another one serves, and
//! take half its connections without a word; [`probe`] is what refuses that: before the
//! first socket of an address is bound, a socket *without* SO_REUSEPORT binds it once and is
//! closed. That bind fails while anything listens on the address (a wildcard address on the
//! same port included). A process that is meant to take a port over gets its sockets from the
//! running one instead (`server::upgrade`), and binds nothing there.

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

/// Whether `addr` is free to listen on: binds (without listening) a socket that has
/// SO_REUSEADDR, so connections of an earlier process in TIME_WAIT do not count, but not
/// SO_REUSEPORT, so any socket bound there does; then closes it. `AddrInUse` when taken.
/// Port 0 is always free.
pub fn probe(addr: SocketAddr) -> io::Result<()> {
    if addr.port() == 0 {
        return Ok(());
    }
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_another_socket_listens_on_is_refused() {
        let first = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let taken = first.local_addr().unwrap();
        let err = probe(taken).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
        // A wildcard address on the same port overlaps it too.
        let wildcard = SocketAddr::new("0.0.0.0".parse().unwrap(), taken.port());
        assert_eq!(
            probe(wildcard).unwrap_err().kind(),
            io::ErrorKind::AddrInUse
        );
        // Once it is closed the port is free again, and the probe itself holds nothing.
        drop(first);
        probe(taken).unwrap();
        probe(taken).unwrap();
        drop(bind(taken).unwrap());
    }
}
