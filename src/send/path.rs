//! The closed set of I/O paths a response body can take (the `path` label of every body
//! metric; see DESIGN.md), and how the path is chosen from the configuration and the
//! transport, once per response. A file the route marked `direct` takes `directio` on every
//! transport instead (see `send::directio`).

use crate::config::SendPathSetting;
use crate::transport::Kind;

/// How a response's bytes reach the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SendPath {
    /// sendfile(2) from the file to a plaintext socket: no user-space copy.
    Sendfile,
    /// splice(2) file or app socket → pipe → plaintext socket: no user-space copy.
    Splice,
    /// sendfile(2) to a kTLS socket: no user-space copy; the kernel encrypts.
    KtlsSendfile,
    /// splice(2) through a pipe to a kTLS socket: no user-space copy; the kernel encrypts.
    KtlsSplice,
    /// pread(2)/read(2) into a reused buffer, then write(2): two CPU copies.
    Buffered,
    /// Userspace TLS: read into a buffer, rustls encrypts, write(2).
    TlsBuffered,
    /// A small generated body written from memory.
    Memory,
    /// A file at or above its directio threshold: O_DIRECT pread(2) off the reactor into an
    /// aligned buffer (the page cache bypassed), then the transport's write: one CPU copy.
    Directio,
}

impl SendPath {
    pub const ALL: [SendPath; 8] = [
        SendPath::Sendfile,
        SendPath::Splice,
        SendPath::KtlsSendfile,
        SendPath::KtlsSplice,
        SendPath::Buffered,
        SendPath::TlsBuffered,
        SendPath::Memory,
        SendPath::Directio,
    ];

    pub fn label(self) -> &'static str {
        match self {
            SendPath::Sendfile => "sendfile",
            SendPath::Splice => "splice",
            SendPath::KtlsSendfile => "ktls_sendfile",
            SendPath::KtlsSplice => "ktls_splice",
            SendPath::Buffered => "buffered",
            SendPath::TlsBuffered => "tls_buffered",
            SendPath::Memory => "memory",
            SendPath::Directio => "directio",
        }
    }

    /// Whether bytes sent on this path never enter user space.
    pub fn is_zero_copy(self) -> bool {
        matches!(
            self,
            SendPath::Sendfile | SendPath::Splice | SendPath::KtlsSendfile | SendPath::KtlsSplice
        )
    }

    /// The path file bodies start on, chosen once from the configuration and what the
    /// transport allows: `auto` is sendfile wherever the socket takes it.
    pub fn for_files(setting: SendPathSetting, kind: Kind) -> SendPath {
        let wanted = match setting {
            SendPathSetting::Auto | SendPathSetting::Sendfile => SendPath::Sendfile,
            SendPathSetting::Splice => SendPath::Splice,
            SendPathSetting::Buffered => SendPath::Buffered,
        };
        wanted.on(kind)
    }

    /// The path a Content-Length body from the app takes: splice unless buffering was asked.
    pub fn for_upstream(setting: SendPathSetting, kind: Kind) -> SendPath {
        match setting {
            SendPathSetting::Buffered => SendPath::Buffered.on(kind),
            _ => SendPath::Splice.on(kind),
        }
    }

    /// The path that copies through user space on this transport.
    pub fn copying(kind: Kind) -> SendPath {
        SendPath::Buffered.on(kind)
    }

    /// This path's variant for a transport: kTLS keeps the zero-copy paths under their kTLS
    /// names, userspace TLS can only copy.
    fn on(self, kind: Kind) -> SendPath {
        match (kind, self) {
            (Kind::Tls, _) => SendPath::TlsBuffered,
            (Kind::Ktls, SendPath::Sendfile) => SendPath::KtlsSendfile,
            (Kind::Ktls, SendPath::Splice) => SendPath::KtlsSplice,
            (_, path) => path,
        }
    }

    /// Where a path falls back to when the kernel refuses it for this file or socket.
    pub fn fallback(self) -> Option<SendPath> {
        match self {
            SendPath::Sendfile => Some(SendPath::Splice),
            SendPath::KtlsSendfile => Some(SendPath::KtlsSplice),
            SendPath::Splice | SendPath::KtlsSplice => Some(SendPath::Buffered),
            SendPath::Buffered | SendPath::TlsBuffered | SendPath::Memory => None,
            // Directio falls back to the connection's file path (`Sender::direct_path`).
            SendPath::Directio => None,
        }
    }

    /// Whether this path moves file bytes with sendfile(2) / splice(2).
    pub(super) fn uses_sendfile(self) -> bool {
        matches!(self, SendPath::Sendfile | SendPath::KtlsSendfile)
    }

    pub(super) fn uses_splice(self) -> bool {
        matches!(self, SendPath::Splice | SendPath::KtlsSplice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_per_transport() {
        assert_eq!(
            SendPath::for_files(SendPathSetting::Auto, Kind::Tcp),
            SendPath::Sendfile
        );
        assert_eq!(
            SendPath::for_files(SendPathSetting::Auto, Kind::Ktls),
            SendPath::KtlsSendfile
        );
        assert_eq!(
            SendPath::for_files(SendPathSetting::Auto, Kind::Tls),
            SendPath::TlsBuffered
        );
        assert_eq!(
            SendPath::for_files(SendPathSetting::Splice, Kind::Ktls),
            SendPath::KtlsSplice
        );
        assert_eq!(
            SendPath::for_files(SendPathSetting::Buffered, Kind::Tcp),
            SendPath::Buffered
        );
        assert_eq!(
            SendPath::for_upstream(SendPathSetting::Auto, Kind::Tcp),
            SendPath::Splice
        );
        assert_eq!(
            SendPath::for_upstream(SendPathSetting::Sendfile, Kind::Ktls),
            SendPath::KtlsSplice
        );
        assert_eq!(
            SendPath::for_upstream(SendPathSetting::Auto, Kind::Tls),
            SendPath::TlsBuffered
        );
        assert_eq!(
            SendPath::KtlsSendfile.fallback(),
            Some(SendPath::KtlsSplice)
        );
    }

    #[test]
    fn directio_is_a_copying_path_of_its_own() {
        assert_eq!(SendPath::Directio.label(), "directio");
        assert!(!SendPath::Directio.is_zero_copy());
        assert!(!SendPath::Directio.uses_sendfile() && !SendPath::Directio.uses_splice());
        // Its fallback is the connection's file path, chosen by the sender.
        assert_eq!(SendPath::Directio.fallback(), None);
        assert!(SendPath::ALL.contains(&SendPath::Directio));
    }
}
