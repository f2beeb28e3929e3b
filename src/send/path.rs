//! How the I/O path a response body takes (`metrics::SendPath`, the `path` label of every
//! body metric; see DESIGN.md) is chosen from the configuration and the transport, once per
//! response. A file the route marked `direct` takes `directio` on every
//! transport instead (see `send::directio`).

use crate::config::SendPathSetting;
use crate::metrics::{SendPath, TransportKind};

impl SendPath {
    /// The path file bodies start on, chosen once from the configuration and what the
    /// transport allows: `auto` is sendfile wherever the socket takes it.
    pub fn for_files(setting: SendPathSetting, kind: TransportKind) -> SendPath {
        let wanted = match setting {
            SendPathSetting::Auto | SendPathSetting::Sendfile => SendPath::Sendfile,
            SendPathSetting::Splice => SendPath::Splice,
            SendPathSetting::Buffered => SendPath::Buffered,
        };
        wanted.on(kind)
    }

    /// The path a Content-Length body from the app takes: splice unless buffering was asked.
    pub fn for_upstream(setting: SendPathSetting, kind: TransportKind) -> SendPath {
        match setting {
            SendPathSetting::Buffered => SendPath::Buffered.on(kind),
            _ => SendPath::Splice.on(kind),
        }
    }

    /// The path that copies through user space on this transport.
    pub fn copying(kind: TransportKind) -> SendPath {
        SendPath::Buffered.on(kind)
    }

    /// This path's variant for a transport: kTLS keeps the zero-copy paths under their kTLS
    /// names, userspace TLS can only copy.
    fn on(self, kind: TransportKind) -> SendPath {
        match (kind, self) {
            (TransportKind::Tls, _) => SendPath::TlsBuffered,
            (TransportKind::Ktls, SendPath::Sendfile) => SendPath::KtlsSendfile,
            (TransportKind::Ktls, SendPath::Splice) => SendPath::KtlsSplice,
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
            SendPath::for_files(SendPathSetting::Auto, TransportKind::Tcp),
            SendPath::Sendfile
        );
        assert_eq!(
            SendPath::for_files(SendPathSetting::Auto, TransportKind::Ktls),
            SendPath::KtlsSendfile
        );
        assert_eq!(
            SendPath::for_files(SendPathSetting::Auto, TransportKind::Tls),
            SendPath::TlsBuffered
        );
        assert_eq!(
            SendPath::for_files(SendPathSetting::Splice, TransportKind::Ktls),
            SendPath::KtlsSplice
        );
        assert_eq!(
            SendPath::for_files(SendPathSetting::Buffered, TransportKind::Tcp),
            SendPath::Buffered
        );
        assert_eq!(
            SendPath::for_upstream(SendPathSetting::Auto, TransportKind::Tcp),
            SendPath::Splice
        );
        assert_eq!(
            SendPath::for_upstream(SendPathSetting::Sendfile, TransportKind::Ktls),
            SendPath::KtlsSplice
        );
        assert_eq!(
            SendPath::for_upstream(SendPathSetting::Auto, TransportKind::Tls),
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
