//! Upgrading without a gap: a new ferry process takes the listening sockets of the running
//! one over a unix socket (`server.upgrade_socket`), with SCM_RIGHTS, as HAProxy's `-x` with
//! `expose-fd listeners` and nginx's binary upgrade (inherited descriptors) do.
//!
//! The two processes then hold the same sockets, so no connection in a listen backlog is
//! lost (closing a SO_REUSEPORT socket would reset the connections queued on it). The steps:
//!
//! 1. `ferry serve --upgrade-from PATH` connects to PATH and sends `ferry-upgrade 1`.
//! 2. The old process (only for a peer of its own user, or root) sends every client
//!    listener socket, its admin listener and the upgrade socket itself, one per message:
//!    `listener http|https CONFIGURED BOUND`, `admin CONFIGURED BOUND`, `control`, then `end`.
//! 3. The new process loads and checks its own configuration, keeps the sockets whose
//!    addresses it still names (as for a reload; the others it closes, new ones it binds),
//!    starts serving on them, and sends `ready`.
//! 4. On `ready` the old process stops accepting, stops its admin listener, and drains as on
//!    SIGTERM: idle keep-alive connections close, requests in flight finish (up to
//!    `server.shutdown_grace`), then it exits. A new process that fails before `ready` (a bad
//!    configuration, a port it cannot bind) closes the connection instead, and the old one
//!    carries on as if nothing had happened.
//!
//! Both processes accept on the shared sockets between 3 and 4; every connection is accepted
//! by exactly one of them. What the two do not share: counters (the new process starts at
//! zero, a counter reset to Prometheus) and the cache index (the new process indexes the
//! cache directory when it starts; objects the old one stores while draining are found at
//! the next start).

use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener as StdUnixListener, UnixStream as StdUnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::error::StartError;
use super::listeners::ListenerSet;
use crate::frontend::ListenerKind;

/// The first line a new process sends.
const HELLO: &str = "ferry-upgrade 1";
/// How long either side waits for the other's next message while sockets are being handed
/// over (not for `ready`: the new process may take its time to start).
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// `server.upgrade_socket`, open for take-over requests.
pub struct ControlSocket {
    pub path: PathBuf,
    listener: StdUnixListener,
}

impl ControlSocket {
    /// Opens `path`: the socket inherited from the old process when it is the same path,
    /// otherwise a new one, after removing a stale file no process answers on. A path a live
    /// process answers on is refused (it is another ferry's).
    pub fn open(path: &Path, inherited: Option<StdUnixListener>) -> Result<Self, StartError> {
        let error = |message: String| StartError::UpgradeSocket {
            path: path.to_path_buf(),
            message,
        };
        if let Some(listener) = inherited
            && listener
                .local_addr()
                .ok()
                .and_then(|addr| addr.as_pathname().map(Path::to_path_buf))
                .is_some_and(|bound| bound == path)
        {
            return Ok(ControlSocket {
                path: path.to_path_buf(),
                listener,
            });
        }
        if path.exists() {
            if StdUnixStream::connect(path).is_ok() {
                return Err(error(
                    "another process listens there (a running ferry? to take over from it, start this one with --upgrade-from this path)"
                        .into(),
                ));
            }
            std::fs::remove_file(path)
                .map_err(|err| error(format!("remove stale socket: {err}")))?;
        }
        let listener = StdUnixListener::bind(path).map_err(|err| error(format!("bind: {err}")))?;
        // Whoever can connect can take the listeners (and stop this process): owner only.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|err| error(format!("chmod 600: {err}")))?;
        Ok(ControlSocket {
            path: path.to_path_buf(),
            listener,
        })
    }

    /// Accepts take-over requests until `stop`, passing each connection on to `requests`.
    pub fn serve(
        &self,
        requests: mpsc::Sender<UnixStream>,
        stop: CancellationToken,
    ) -> std::io::Result<()> {
        let listener = self.listener.try_clone()?;
        listener.set_nonblocking(true)?;
        let listener = UnixListener::from_std(listener)?;
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    () = stop.cancelled() => break,
                };
                match accepted {
                    Ok((stream, _)) => {
                        if requests.send(stream).await.is_err() {
                            break;
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "upgrade socket: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        });
        Ok(())
    }

    /// A duplicate of the listening socket, to hand over.
    pub fn duplicate(&self) -> std::io::Result<OwnedFd> {
        Ok(self.listener.try_clone()?.into())
    }

    /// Removes the socket file (at exit, when it was not handed over).
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The sockets an old process hands over: duplicates of its own.
pub struct Offer {
    pub listeners: Vec<(ListenerKind, SocketAddr, SocketAddr, OwnedFd)>,
    /// The admin listener (configured, bound, socket).
    pub admin: (SocketAddr, SocketAddr, OwnedFd),
    pub control: OwnedFd,
}

/// The old process's side of a take-over: checks who asks, sends `offer`, and waits for the
/// new process to say it serves. `Ok` with the new process's pid once it does; an error
/// when it went away (or failed) before that.
pub async fn hand_over(mut stream: UnixStream, offer: Offer) -> std::io::Result<u32> {
    let peer = rustix::net::sockopt::socket_peercred(&stream)?;
    let own = rustix::process::geteuid();
    if peer.uid != own && !peer.uid.is_root() {
        return Err(std::io::Error::other(format!(
            "refused: the peer (pid {}) runs as uid {}, not as this process's",
            peer.pid.as_raw_nonzero(),
            peer.uid.as_raw()
        )));
    }
    let pid = peer.pid.as_raw_nonzero().get().unsigned_abs();
    let hello = tokio::time::timeout(STEP_TIMEOUT, read_line(&mut stream))
        .await
        .map_err(|_| std::io::Error::other("no request in time"))??;
    if hello != HELLO {
        return Err(std::io::Error::other(format!(
            "unexpected request {hello:?}"
        )));
    }
    for (kind, configured, bound, fd) in &offer.listeners {
        let line = format!("listener {} {configured} {bound}\n", kind.label());
        send(&stream, &line, Some(fd)).await?;
    }
    let (configured, bound, fd) = &offer.admin;
    send(&stream, &format!("admin {configured} {bound}\n"), Some(fd)).await?;
    send(&stream, "control\n", Some(&offer.control)).await?;
    send(&stream, "end\n", None).await?;
    // The new process answers once it serves: then this one may stop accepting.
    match read_line(&mut stream).await?.as_str() {
        "ready" => {
            let _ = stream.write_all(b"bye\n").await;
            Ok(pid)
        }
        other => Err(std::io::Error::other(format!(
            "unexpected answer {other:?}"
        ))),
    }
}

/// Reads one line (without its newline); an error at end of stream.
async fn read_line(stream: &mut UnixStream) -> std::io::Result<String> {
    let mut line = Vec::new();
    loop {
        let byte = match stream.read_u8().await {
            Ok(byte) => byte,
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(std::io::Error::other("the new process went away"));
            }
            Err(err) => return Err(err),
        };
        if byte == b'\n' {
            return String::from_utf8(line).map_err(std::io::Error::other);
        }
        if line.len() >= 256 {
            return Err(std::io::Error::other("line too long"));
        }
        line.push(byte);
    }
}

/// Sends `line` with `fd` attached (SCM_RIGHTS).
async fn send(stream: &UnixStream, line: &str, fd: Option<&OwnedFd>) -> std::io::Result<()> {
    stream
        .async_io(Interest::WRITABLE, || {
            let fds: Vec<_> = fd.iter().map(|fd| fd.as_fd()).collect();
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            if !fds.is_empty() {
                control.push(SendAncillaryMessage::ScmRights(&fds));
            }
            let iov = [IoSlice::new(line.as_bytes())];
            let sent = rustix::net::sendmsg(stream, &iov, &mut control, SendFlags::NOSIGNAL)?;
            if sent == line.len() {
                Ok(())
            } else {
                Err(std::io::Error::other("short write on the upgrade socket"))
            }
        })
        .await
}

/// What a new process received from the old one.
pub struct Inherited {
    pub sets: Vec<ListenerSet>,
    /// The admin listener (configured, bound, socket).
    pub admin: Option<(SocketAddr, SocketAddr, std::net::TcpListener)>,
    pub control: Option<StdUnixListener>,
    /// The connection to the old process, to say `ready` on.
    handshake: StdUnixStream,
}

impl Inherited {
    /// Tells the old process that this one serves: it stops accepting and drains. Waits
    /// (briefly) for its acknowledgement, so that its pid is known to be on its way out.
    pub fn ready(mut self) -> std::io::Result<()> {
        self.handshake.write_all(b"ready\n")?;
        let mut ack = [0u8; 4];
        self.handshake.read_exact(&mut ack)?;
        Ok(())
    }

    /// Takes the admin socket when `addr` (as configured) is the inherited one's address.
    pub fn take_admin(&mut self, addr: SocketAddr) -> Option<(SocketAddr, std::net::TcpListener)> {
        let (configured, bound, _) = self.admin.as_ref()?;
        if *configured == addr || (addr.port() != 0 && *bound == addr) {
            let (_, bound, socket) = self.admin.take()?;
            return Some((bound, socket));
        }
        None
    }
}

/// The new process's side: connects to the old one's upgrade socket at `path` and receives
/// its sockets (blocking; at start-up). Client listener sets get `close` tokens made by
/// `close_token`.
pub fn receive(
    path: &Path,
    close_token: impl Fn() -> CancellationToken,
) -> Result<Inherited, StartError> {
    let error = |message: String| StartError::Upgrade {
        path: path.to_path_buf(),
        message,
    };
    let mut stream =
        StdUnixStream::connect(path).map_err(|err| error(format!("connect: {err}")))?;
    stream
        .set_read_timeout(Some(STEP_TIMEOUT))
        .and_then(|()| stream.write_all(format!("{HELLO}\n").as_bytes()))
        .map_err(|err| error(format!("send: {err}")))?;
    let mut inherited = Inherited {
        sets: Vec::new(),
        admin: None,
        control: None,
        handshake: stream.try_clone().map_err(|err| error(err.to_string()))?,
    };
    let mut pending = Vec::new();
    let mut fds = std::collections::VecDeque::new();
    loop {
        let line = match take_line(&mut pending) {
            Some(line) => line,
            None => {
                let received = receive_some(&stream, &mut pending, &mut fds)
                    .map_err(|err| error(format!("receive: {err}")))?;
                if received == 0 {
                    return Err(error(
                        "the running process closed the connection (did it refuse this user?)"
                            .into(),
                    ));
                }
                continue;
            }
        };
        if line == "end" {
            break;
        }
        let fd = fds
            .pop_front()
            .ok_or_else(|| error(format!("no socket came with {line:?}")))?;
        accept_item(&mut inherited, &line, fd, &close_token).map_err(error)?;
    }
    Ok(inherited)
}

/// Takes one received item into `inherited`.
fn accept_item(
    inherited: &mut Inherited,
    line: &str,
    fd: OwnedFd,
    close_token: &impl Fn() -> CancellationToken,
) -> Result<(), String> {
    let words: Vec<&str> = line.split(' ').collect();
    let addr = |text: &str| -> Result<SocketAddr, String> {
        text.parse().map_err(|_| format!("bad address in {line:?}"))
    };
    match words.as_slice() {
        ["listener", kind, configured, bound] => {
            let kind = match *kind {
                "http" => ListenerKind::Http,
                "https" => ListenerKind::Https,
                _ => return Err(format!("unknown listener kind in {line:?}")),
            };
            let (configured, bound) = (addr(configured)?, addr(bound)?);
            let socket = tcp_listener(fd, bound)?;
            match inherited.sets.last_mut() {
                Some(set)
                    if set.kind == kind && set.configured == configured && set.bound == bound =>
                {
                    set.sockets.push(socket)
                }
                _ => inherited.sets.push(ListenerSet {
                    kind,
                    configured,
                    bound,
                    sockets: vec![socket],
                    close: close_token(),
                }),
            }
        }
        ["admin", configured, bound] => {
            let (configured, bound) = (addr(configured)?, addr(bound)?);
            inherited.admin = Some((configured, bound, tcp_listener(fd, bound)?));
        }
        ["control"] => inherited.control = Some(StdUnixListener::from(fd)),
        _ => return Err(format!("unexpected message {line:?}")),
    }
    Ok(())
}

/// A received listening socket, checked to be bound where the old process says.
fn tcp_listener(fd: OwnedFd, bound: SocketAddr) -> Result<std::net::TcpListener, String> {
    let socket = std::net::TcpListener::from(fd);
    match socket.local_addr() {
        Ok(addr) if addr == bound => {}
        other => return Err(format!("the socket for {bound} is bound to {other:?}")),
    }
    socket
        .set_nonblocking(true)
        .map_err(|err| format!("{bound}: {err}"))?;
    Ok(socket)
}

/// The first complete line in `pending`, removed from it.
fn take_line(pending: &mut Vec<u8>) -> Option<String> {
    let end = pending.iter().position(|&b| b == b'\n')?;
    let line: Vec<u8> = pending.drain(..=end).collect();
    Some(String::from_utf8_lossy(&line[..end]).into_owned())
}

/// One recvmsg: bytes appended to `pending`, descriptors to `fds` (close-on-exec).
fn receive_some(
    stream: &StdUnixStream,
    pending: &mut Vec<u8>,
    fds: &mut std::collections::VecDeque<OwnedFd>,
) -> std::io::Result<usize> {
    let mut buf = [0u8; 1024];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(8))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let received = rustix::net::recvmsg(stream, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)?;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    pending.extend_from_slice(&buf[..received.bytes]);
    Ok(received.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole conversation over a socket pair, both sides in this process: every socket
    /// arrives grouped by address, still listening, and `ready` completes the old side.
    #[tokio::test]
    async fn sockets_cross_and_keep_listening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upgrade.sock");
        let control = ControlSocket::open(&path, None).unwrap();
        let a = crate::frontend::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let a_addr = a.local_addr().unwrap();
        let a2 = crate::frontend::bind(a_addr).unwrap();
        let admin = crate::frontend::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let admin_addr = admin.local_addr().unwrap();
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let offer = Offer {
            listeners: vec![
                (
                    ListenerKind::Http,
                    any,
                    a_addr,
                    a.try_clone().unwrap().into(),
                ),
                (
                    ListenerKind::Http,
                    any,
                    a_addr,
                    a2.try_clone().unwrap().into(),
                ),
            ],
            admin: (any, admin_addr, admin.try_clone().unwrap().into()),
            control: control.duplicate().unwrap(),
        };
        let (requests, mut incoming) = mpsc::channel(1);
        control.serve(requests, CancellationToken::new()).unwrap();
        let new_side = std::thread::spawn({
            let path = path.clone();
            move || {
                let mut inherited = receive(&path, CancellationToken::new).unwrap();
                assert_eq!(inherited.sets.len(), 1);
                assert_eq!(inherited.sets[0].sockets.len(), 2);
                assert_eq!(inherited.sets[0].bound, a_addr);
                assert!(inherited.control.is_some());
                assert_eq!(inherited.take_admin(any).map(|(b, _)| b), Some(admin_addr));
                let set = inherited.sets.pop().unwrap();
                inherited.ready().unwrap();
                set
            }
        });
        let stream = incoming.recv().await.unwrap();
        let pid = hand_over(stream, offer).await.unwrap();
        assert_eq!(pid, std::process::id());
        let set = new_side.join().unwrap();
        // The old side's handles close; the received ones still take connections.
        drop((a, a2));
        let client = std::net::TcpStream::connect(a_addr).unwrap();
        // The kernel queues it on either socket of the group.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let served = loop {
            if let Some((served, _)) = set.sockets.iter().find_map(|s| s.accept().ok()) {
                break served;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no connection accepted"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(served.peer_addr().unwrap(), client.local_addr().unwrap());
    }
}
