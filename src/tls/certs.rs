//! The serving certificate chain and key: read from `tls.cert` and `tls.key`, checked to fit
//! each other, and held where every handshake reads it ([`Serving`], rustls's certificate
//! resolver over an `ArcSwap`), so a reload (`reload.rs`) replaces the pair for new
//! handshakes in one atomic store while connections already up keep the one they were made
//! with (a rustls connection needs its certificate only during the handshake).
//!
//! Also what a pair is on disk at one moment ([`Stamp`]): the file each path resolves to and
//! that file's identity, size and times, so a reload can tell a change from no change without
//! reading the files.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::expiry;

/// The certificate every new handshake presents: one for all server names, as with nginx's
/// `ssl_certificate` in a single server block.
#[derive(Debug)]
pub(super) struct Serving(pub(super) ArcSwap<CertifiedKey>);

impl Serving {
    pub(super) fn new(pair: Arc<CertifiedKey>) -> Serving {
        Serving(ArcSwap::new(pair))
    }

    /// From the next handshake on, `pair` is presented.
    pub(super) fn replace(&self, pair: Arc<CertifiedKey>) {
        self.0.store(pair);
    }
}

impl ResolvesServerCert for Serving {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// A pair read from disk that fits together.
pub(super) struct Loaded {
    pub(super) pair: Arc<CertifiedKey>,
    /// The leaf certificate's notAfter (seconds since the Unix epoch), or why it could not be
    /// read.
    pub(super) not_after: Result<i64, &'static str>,
}

/// Reads the chain at `cert` and the key at `key` and checks that the key is the one the
/// leaf certificate was issued for. Every problem is reported, each with its key
/// (`tls.cert`, `tls.key`) and path.
pub(super) fn load(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<Loaded, Vec<String>> {
    let mut errors = Vec::new();
    let chain: Vec<CertificateDer<'static>> = match CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
    {
        Ok(certs) if certs.is_empty() => {
            errors.push(format!(
                "tls.cert: {}: no certificate in the file",
                cert.display()
            ));
            Vec::new()
        }
        Ok(certs) => certs,
        Err(err) => {
            errors.push(format!("tls.cert: {}: {err}", cert.display()));
            Vec::new()
        }
    };
    let private = match PrivateKeyDer::from_pem_file(key) {
        Ok(private) => Some(private),
        Err(err) => {
            errors.push(format!("tls.key: {}: {err}", key.display()));
            None
        }
    };
    let (Some(private), true) = (private, errors.is_empty()) else {
        return Err(errors);
    };
    let not_after = expiry::not_after(&chain[0]);
    // Loads the key and compares its public half with the leaf certificate's.
    let pair = CertifiedKey::from_der(chain, private, provider).map_err(|err| {
        vec![format!(
            "tls.key: {}: does not fit tls.cert {}: {err}",
            key.display(),
            cert.display()
        )]
    })?;
    Ok(Loaded {
        pair: Arc::new(pair),
        not_after,
    })
}

/// What the certificate and key files are at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stamp {
    cert: FileStamp,
    key: FileStamp,
}

impl Stamp {
    pub(super) fn take(cert: &Path, key: &Path) -> Stamp {
        Stamp {
            cert: FileStamp::take(cert),
            key: FileStamp::take(key),
        }
    }
}

/// One file: where its path leads after every symlink (a Kubernetes Secret volume's
/// `cert.pem -> ..data/cert.pem`, `..data -> ..2026_12_07_...`), and what is there. A file
/// rewritten in place keeps its path and inode but not its size or times; one replaced by a
/// rename, or by a swap of the `..data` link, changes inode or path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FileStamp {
    Found {
        resolved: PathBuf,
        dev: u64,
        ino: u64,
        size: u64,
        mtime: (i64, i64),
        ctime: (i64, i64),
    },
    /// Cannot be resolved or stat'ed now: the error, so that an unchanged failure compares
    /// equal and is not taken for a change.
    Missing(String),
}

impl FileStamp {
    fn take(path: &Path) -> FileStamp {
        let found = std::fs::canonicalize(path).and_then(|resolved| {
            let meta = std::fs::metadata(&resolved)?;
            Ok(FileStamp::Found {
                resolved,
                dev: meta.dev(),
                ino: meta.ino(),
                size: meta.size(),
                mtime: (meta.mtime(), meta.mtime_nsec()),
                ctime: (meta.ctime(), meta.ctime_nsec()),
            })
        });
        found.unwrap_or_else(|err| FileStamp::Missing(err.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn a_stamp_changes_with_a_rewrite_a_rename_and_a_link_swap() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name);
        std::fs::create_dir(at("..2026_a")).unwrap();
        std::fs::create_dir(at("..2026_b")).unwrap();
        for (name, text) in [("..2026_a/cert.pem", "a"), ("..2026_b/cert.pem", "b")] {
            std::fs::write(at(name), text).unwrap();
        }
        std::fs::write(at("key.pem"), "key").unwrap();
        symlink("..2026_a", at("..data")).unwrap();
        symlink("..data/cert.pem", at("cert.pem")).unwrap();
        let stamp = || Stamp::take(&at("cert.pem"), &at("key.pem"));

        let first = stamp();
        assert_eq!(stamp(), first, "nothing changed");
        // The Secret volume update: a new `..data` link renamed over the old one.
        symlink("..2026_b", at("..data_tmp")).unwrap();
        std::fs::rename(at("..data_tmp"), at("..data")).unwrap();
        let swapped = stamp();
        assert_ne!(swapped, first);
        let FileStamp::Found { resolved, .. } = &swapped.cert else {
            panic!("{swapped:?}")
        };
        assert!(resolved.ends_with("..2026_b/cert.pem"), "{resolved:?}");
        // The key rewritten in place (to another length: a rewrite of the same length
        // within one tick of the kernel's file clock would keep size and times).
        std::fs::write(at("key.pem"), "a longer key").unwrap();
        let rewritten = stamp();
        assert_ne!(rewritten, swapped);
        // Replaced by a rename.
        std::fs::write(at("key.new"), "KEY").unwrap();
        std::fs::rename(at("key.new"), at("key.pem")).unwrap();
        assert_ne!(stamp(), rewritten);
        // Gone: a stamp of its own, equal to itself.
        std::fs::remove_file(at("key.pem")).unwrap();
        let missing = stamp();
        assert!(matches!(missing.key, FileStamp::Missing(_)), "{missing:?}");
        assert_eq!(stamp(), missing);
    }
}
