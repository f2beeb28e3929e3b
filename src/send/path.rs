//! The closed set of I/O paths a response body can take (the `path` label of every body
//! metric; see DESIGN.md). Paths that need TLS or the upstream are added with those features.

use crate::config::SendPathSetting;

/// How a response's bytes reach the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SendPath {
    /// sendfile(2) from the file to the socket: no user-space copy.
    Sendfile,
    /// splice(2) file → pipe → socket: no user-space copy.
    Splice,
    /// pread(2) into a reused buffer, then write(2): two CPU copies.
    Buffered,
    /// A small generated body written from memory.
    Memory,
}

impl SendPath {
    pub const ALL: [SendPath; 4] = [
        SendPath::Sendfile,
        SendPath::Splice,
        SendPath::Buffered,
        SendPath::Memory,
    ];

    pub fn label(self) -> &'static str {
        match self {
            SendPath::Sendfile => "sendfile",
            SendPath::Splice => "splice",
            SendPath::Buffered => "buffered",
            SendPath::Memory => "memory",
        }
    }

    /// Whether bytes sent on this path never enter user space.
    pub fn is_zero_copy(self) -> bool {
        matches!(self, SendPath::Sendfile | SendPath::Splice)
    }

    /// The path file bodies start on, chosen once from the configuration and what the
    /// transport allows: `auto` is sendfile wherever the socket is plaintext.
    pub fn for_files(setting: SendPathSetting, zero_copy_transport: bool) -> SendPath {
        if !zero_copy_transport {
            return SendPath::Buffered;
        }
        match setting {
            SendPathSetting::Auto | SendPathSetting::Sendfile => SendPath::Sendfile,
            SendPathSetting::Splice => SendPath::Splice,
            SendPathSetting::Buffered => SendPath::Buffered,
        }
    }

    /// Where a path falls back to when the kernel refuses it for this file or socket.
    pub fn fallback(self) -> Option<SendPath> {
        match self {
            SendPath::Sendfile => Some(SendPath::Splice),
            SendPath::Splice => Some(SendPath::Buffered),
            SendPath::Buffered | SendPath::Memory => None,
        }
    }
}
