//! The file `ferry bench` sends: the user's (`--file`) or one it writes itself. A generated
//! file is created unlinked (O_TMPFILE, or created and removed at once where the filesystem
//! lacks it), so it has no name to leak: the kernel frees it when the process exits, however
//! it exits (error, Ctrl-C, SIGKILL). It goes in a directory on a disk-backed filesystem when
//! there is one, because O_DIRECT and the page cache only mean something there.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use rustix::fs::{FsWord, Mode, OFlags};

use super::units::human_bytes;
use crate::sys;

/// Why `ferry bench` stopped before measuring.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The arguments (or the file they name) cannot be used: exit status 64.
    #[error("ferry bench: {0}")]
    Usage(String),
    #[error("ferry bench: {what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// The file under test.
#[derive(Debug)]
pub struct Source {
    pub file: File,
    pub size: u64,
    /// `Some(path)` for `--file`; `None` for a generated, unlinked file.
    pub path: Option<PathBuf>,
    /// The directory the file lives in.
    pub dir: PathBuf,
    /// Filesystem type of `dir` (`ext4`, `tmpfs`, … or the hex magic).
    pub filesystem: String,
}

impl Source {
    /// Opens `--file`, and reads it once so every buffered method starts from a warm page
    /// cache (the O_DIRECT method reads the disk regardless).
    pub fn open(path: &Path) -> Result<Source, BenchError> {
        let io_err = |what: &str, err: io::Error| {
            BenchError::Usage(format!("--file {}: {what}: {err}", path.display()))
        };
        let mut file = File::open(path).map_err(|err| io_err("open", err))?;
        let meta = file.metadata().map_err(|err| io_err("stat", err))?;
        if !meta.is_file() {
            return Err(BenchError::Usage(format!(
                "--file {}: not a regular file",
                path.display()
            )));
        }
        if meta.len() == 0 {
            return Err(BenchError::Usage(format!(
                "--file {}: the file is empty",
                path.display()
            )));
        }
        let mut buf = vec![0u8; super::methods::CHUNK];
        let read_err = |err| BenchError::Io {
            what: format!("--file {}: read", path.display()),
            source: err,
        };
        while file.read(&mut buf).map_err(read_err)? > 0 {}
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        Ok(Source {
            filesystem: filesystem_of(&dir),
            file,
            size: meta.len(),
            path: Some(path.to_path_buf()),
            dir,
        })
    }

    /// Writes `size` bytes of pseudo-random data to an unlinked file and flushes it to disk;
    /// `progress` is told the bytes written so far.
    pub fn generate(size: u64, progress: &mut dyn FnMut(u64)) -> Result<Source, BenchError> {
        let dir = pick_dir(size)?;
        let io_err = |what: &str, err: io::Error| BenchError::Io {
            what: format!("test file in {}: {what}", dir.display()),
            source: err,
        };
        let mut file = create_unlinked(&dir).map_err(|err| io_err("create", err))?;
        let mut buf = vec![0u8; super::methods::CHUNK];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut written = 0u64;
        while written < size {
            let n = (size - written).min(buf.len() as u64) as usize;
            fill_pseudo_random(&mut buf[..n], &mut state);
            file.write_all(&buf[..n])
                .map_err(|err| io_err("write", err))?;
            written += n as u64;
            progress(written);
        }
        file.sync_all().map_err(|err| io_err("fsync", err))?;
        Ok(Source {
            filesystem: filesystem_of(&dir),
            file,
            size,
            path: None,
            dir,
        })
    }

    /// A second open file description of the same file, with O_DIRECT switched on (through
    /// /proc/self/fd for the unlinked file, which has no other name).
    pub fn open_direct(&self) -> io::Result<File> {
        let path = match &self.path {
            Some(path) => path.clone(),
            None => PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd())),
        };
        let file = File::open(path)?;
        sys::directio::set_direct(&file, true)?;
        Ok(file)
    }

    /// How the table and the JSON describe the file.
    pub fn describe(&self) -> String {
        match &self.path {
            Some(path) => format!("{} ({})", path.display(), self.filesystem),
            None => format!(
                "generated in {} ({}, unlinked)",
                self.dir.display(),
                self.filesystem
            ),
        }
    }
}

/// Candidate directories in order: $TMPDIR, /var/tmp (disk-backed by convention), /tmp, the
/// current directory. The first disk-backed one with room wins; failing that, the first
/// with room at all.
fn pick_dir(size: u64) -> Result<PathBuf, BenchError> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(tmp) = std::env::var_os("TMPDIR").filter(|v| !v.is_empty()) {
        candidates.push(tmp.into());
    }
    candidates.extend(["/var/tmp", "/tmp", "."].map(PathBuf::from));
    let mut with_room = Vec::new();
    let mut seen = Vec::new();
    for dir in candidates {
        let Ok(stat) = rustix::fs::statfs(&dir) else {
            continue;
        };
        let free = stat.f_bavail.saturating_mul(stat.f_bsize as u64);
        seen.push(format!("{} ({} free)", dir.display(), human_bytes(free)));
        if free < size.saturating_add(64 << 20) {
            continue;
        }
        if !is_memory_backed(stat.f_type) {
            return Ok(dir);
        }
        with_room.push(dir);
    }
    with_room.into_iter().next().ok_or_else(|| {
        BenchError::Usage(format!(
            "no directory has room for a {} test file: {}; pass a smaller --size or --file",
            human_bytes(size),
            seen.join(", ")
        ))
    })
}

/// An unlinked, read-write file in `dir`.
fn create_unlinked(dir: &Path) -> io::Result<File> {
    let flags = OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC;
    match rustix::fs::open(dir, flags, Mode::from_raw_mode(0o600)) {
        Ok(fd) => Ok(File::from(fd)),
        // Filesystems without O_TMPFILE: a fresh name, removed as soon as it is open.
        Err(_) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let path = dir.join(format!(".ferry-bench-{}-{nanos}", std::process::id()));
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)?;
            std::fs::remove_file(&path)?;
            Ok(file)
        }
    }
}

const TMPFS_MAGIC: FsWord = 0x0102_1994;
const RAMFS_MAGIC: FsWord = 0x8584_58f6;

fn is_memory_backed(magic: FsWord) -> bool {
    magic == TMPFS_MAGIC || magic == RAMFS_MAGIC
}

/// The filesystem's usual name for the magic statfs reports.
fn filesystem_of(dir: &Path) -> String {
    let Ok(stat) = rustix::fs::statfs(dir) else {
        return "unknown".into();
    };
    let magic = stat.f_type;
    let name = match magic {
        0xef53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683e => "btrfs",
        0x2fc1_2fc1 => "zfs",
        0xf2f5_2010 => "f2fs",
        0x794c_7630 => "overlayfs",
        0x6969 => "nfs",
        0x0102_1994 => "tmpfs",
        0x8584_58f6 => "ramfs",
        _ => return format!("fs 0x{magic:x}"),
    };
    name.into()
}

/// xorshift64: bytes that no filesystem compresses or dedupes, made cheaply.
fn fill_pseudo_random(buf: &mut [u8], state: &mut u64) {
    for chunk in buf.chunks_mut(8) {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_file_has_no_name_and_the_right_size() {
        let mut seen = 0;
        let source = Source::generate(3 * 1024 * 1024 + 5, &mut |n| seen = n).unwrap();
        assert_eq!(source.size, 3 * 1024 * 1024 + 5);
        assert_eq!(seen, source.size);
        assert_eq!(source.file.metadata().unwrap().len(), source.size);
        assert_eq!(
            source.file.metadata().unwrap().nlink(),
            0,
            "the file is unlinked"
        );
    }

    #[test]
    fn pseudo_random_bytes_are_not_constant() {
        let mut buf = [0u8; 64];
        let mut state = 1;
        fill_pseudo_random(&mut buf, &mut state);
        assert!(buf.iter().any(|&b| b != buf[0]));
    }

    use std::os::unix::fs::MetadataExt;
}
