//! Record types on a kernel-TLS socket. Once the kernel holds a connection's TLS keys, read(2)
//! returns only application data: any other record (an alert, a post-handshake message such as
//! a TLS 1.3 KeyUpdate) makes it fail with EIO, and the record's type is only told through a
//! `TLS_GET_RECORD_TYPE` control message to recvmsg(2). Sending a record that is not
//! application data (a close_notify alert) likewise takes a `TLS_SET_RECORD_TYPE` control
//! message on sendmsg(2). rustix has no way to pass these control messages, so the two calls
//! are made here through libc, each in one `unsafe` block.
//!
//! Nothing here knows about TLS beyond the record's content type byte; the caller
//! (`transport::ktls`) interprets alerts and handshake messages.

use std::io;
use std::mem::{offset_of, size_of};
use std::os::fd::{AsFd, AsRawFd};

/// `SOL_TLS` (linux/socket.h): the socket level of the TLS ULP's options and control messages.
const SOL_TLS: libc::c_int = 282;
/// Control message type (linux/tls.h) that sets the content type of a record sent.
const TLS_SET_RECORD_TYPE: libc::c_int = 1;
/// Control message type (linux/tls.h) that tells the content type of a record received.
const TLS_GET_RECORD_TYPE: libc::c_int = 2;

/// TLS content type (RFC 8446, 5.1) of an alert record.
pub const CONTENT_ALERT: u8 = 21;
/// TLS content type of a handshake record (post-handshake messages: KeyUpdate, tickets).
pub const CONTENT_HANDSHAKE: u8 = 22;
/// TLS content type of application data.
pub const CONTENT_APPLICATION_DATA: u8 = 23;

/// One control message carrying one byte, laid out as the kernel reads and writes it:
/// a `cmsghdr`, then the data, the whole aligned like `cmsghdr` (CMSG_SPACE(1) bytes).
#[repr(C)]
struct RecordTypeCmsg {
    hdr: libc::cmsghdr,
    data: [u8; size_of::<libc::cmsghdr>()],
}

/// CMSG_LEN(1): the header plus the one byte of content type.
const CMSG_LEN_1: usize = offset_of!(RecordTypeCmsg, data) + 1;

/// What one `recv_record` returned: `len` bytes of one record's content (or of several
/// records of the same type) of content type `content_type`. `len == 0` is the peer's FIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub len: usize,
    pub content_type: u8,
}

/// recvmsg(2) on a kTLS socket with room for the `TLS_GET_RECORD_TYPE` control message, so a
/// record that is not application data is returned (with its type) instead of failing with
/// EIO. The kernel never mixes record types in one call. Non-blocking: `WouldBlock` when
/// nothing is ready. Errors such as EBADMSG (a record that does not decrypt) pass through.
pub fn recv_record(sock: impl AsFd, buf: &mut [u8]) -> io::Result<Received> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: cmsghdr is plain integers, for which all-zero bytes are a valid value.
    let mut cmsg: RecordTypeCmsg = unsafe { std::mem::zeroed() };
    // SAFETY: msghdr is plain pointers and integers, for which all-zero bytes are valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = (&mut cmsg as *mut RecordTypeCmsg).cast();
    msg.msg_controllen = size_of::<RecordTypeCmsg>() as _;
    let fd = sock.as_fd().as_raw_fd();
    // SAFETY: `fd` is borrowed for the call; `msg` points at `iov` (which describes `buf`,
    // exclusively borrowed, of `buf.len()` writable bytes) and at `cmsg` (writable, of the
    // size given in msg_controllen); all of them outlive the call, and the kernel writes no
    // further than the lengths given.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let len = n as usize;
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "ktls recvmsg: record type control message truncated",
        ));
    }
    let has_type = msg.msg_controllen as usize >= CMSG_LEN_1
        && cmsg.hdr.cmsg_level == SOL_TLS
        && cmsg.hdr.cmsg_type == TLS_GET_RECORD_TYPE;
    let content_type = match (has_type, len) {
        (true, _) => cmsg.data[0],
        // The end of the stream comes without a record, so without a type.
        (false, 0) => CONTENT_APPLICATION_DATA,
        (false, _) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "ktls recvmsg: bytes without a record type (is the socket a kTLS socket?)",
            ));
        }
    };
    Ok(Received { len, content_type })
}

/// sendmsg(2) of one record of `content_type` (e.g. `CONTENT_ALERT`) with `payload` as its
/// content, encrypted by the kernel with the current TX key. Non-blocking (`WouldBlock` when
/// the socket buffer is full), no SIGPIPE. Returns the bytes of `payload` taken, which the
/// kernel takes whole or not at all for a payload this small.
pub fn send_record(sock: impl AsFd, content_type: u8, payload: &[u8]) -> io::Result<usize> {
    let mut iov = libc::iovec {
        // sendmsg only reads through this pointer; iovec has no const variant.
        iov_base: payload.as_ptr().cast_mut().cast(),
        iov_len: payload.len(),
    };
    // SAFETY: cmsghdr is plain integers, for which all-zero bytes are a valid value.
    let mut cmsg: RecordTypeCmsg = unsafe { std::mem::zeroed() };
    cmsg.hdr.cmsg_len = CMSG_LEN_1 as _;
    cmsg.hdr.cmsg_level = SOL_TLS;
    cmsg.hdr.cmsg_type = TLS_SET_RECORD_TYPE;
    cmsg.data[0] = content_type;
    // SAFETY: msghdr is plain pointers and integers, for which all-zero bytes are valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = (&mut cmsg as *mut RecordTypeCmsg).cast();
    msg.msg_controllen = size_of::<RecordTypeCmsg>() as _;
    let fd = sock.as_fd().as_raw_fd();
    // SAFETY: `fd` is borrowed for the call; `msg` points at `iov` (describing `payload`,
    // `payload.len()` readable bytes, never written by sendmsg) and at `cmsg` (one complete
    // control message within msg_controllen); all of them outlive the call.
    let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Whether the peer has ended its side (FIN received, or the connection reset/failed), asked
/// without reading: poll(2) for POLLRDHUP with a zero timeout. On a kTLS socket whose records
/// can no longer be decrypted this is the only way to see the end, since reads fail.
pub fn peer_closed(sock: impl AsFd) -> io::Result<bool> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(&sock, PollFlags::RDHUP)];
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    rustix::event::poll(&mut fds, Some(&zero))?;
    let seen = fds[0].revents();
    Ok(seen.intersects(PollFlags::RDHUP | PollFlags::HUP | PollFlags::ERR))
}

/// `SOL_TCP` and its option `TCP_ULP` (linux/tcp.h): attach an upper-layer protocol.
const SOL_TCP: libc::c_int = 6;
const TCP_ULP: libc::c_int = 31;
/// `TLS_TX` and `TLS_RX` (linux/tls.h): install the send or receive key.
const TLS_TX: libc::c_int = 1;
const TLS_RX: libc::c_int = 2;

/// Attaches the `tls` upper-layer protocol to a connected TCP socket. Until keys are installed
/// the socket behaves exactly as before (the ULP passes everything through), so a failure here,
/// or success followed by no keys, leaves the connection usable as it was. In debug builds
/// `FERRY_FAULT_KTLS_ULP` makes it fail (see `fault`).
pub fn set_tls_ulp(sock: impl AsFd) -> io::Result<()> {
    if let Some(err) = super::Faults::get().ktls_ulp {
        return Err(io::Error::from_raw_os_error(err));
    }
    let name = b"tls";
    let fd = sock.as_fd().as_raw_fd();
    // SAFETY: `fd` is borrowed for the call; the option value is `name`, 3 readable bytes that
    // outlive the call (the kernel copies at most optlen bytes of a ULP name).
    let rc = unsafe {
        libc::setsockopt(
            fd,
            SOL_TCP,
            TCP_ULP,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Which key `set_crypto_info` installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Tx,
    Rx,
}

/// Installs one direction's key, IV and record sequence number (`TLS_TX`/`TLS_RX`) on a socket
/// with the `tls` ULP. `info` is the kernel's `tls12_crypto_info_*` struct as the ktls crate
/// builds it from rustls's secrets.
pub fn set_crypto_info(
    sock: impl AsFd,
    direction: Direction,
    info: &::ktls::CryptoInfo,
) -> io::Result<()> {
    let name = match direction {
        Direction::Tx => TLS_TX,
        Direction::Rx => TLS_RX,
    };
    let fd = sock.as_fd().as_raw_fd();
    // SAFETY: `fd` is borrowed for the call; `info.as_ptr()` points at the crypto-info struct
    // inside `info`, `info.size()` bytes of it, borrowed for the call; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            SOL_TLS,
            name,
            info.as_ptr(),
            info.size() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
