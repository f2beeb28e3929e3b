//! The cache directory: one file per object, named by the hex SHA-256 of its key, written
//! as a temporary file (`<id>.<pid>.<n>.tmp`) that is renamed into place only once complete
//! and of the length announced. What a crash leaves behind is a temporary file, removed at
//! the next start, never a servable object. Calls here block on the disk: they run at
//! start-up, on the fill writer threads, or on the blocking pool.
//!
//! A 304 whose headers no longer fit before the body gets the object written anew the same
//! way ([`Store::write_moved`]): the new head, then the body copied from the old file by
//! copy_file_range(2), synced, then renamed over the old file by the cache.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::key::{Id, object_id};
use super::meta::{self, HEADER_LEN, Meta};

/// An object found on disk at start-up.
pub struct Found {
    pub id: Id,
    pub meta: Meta,
    pub body_offset: u64,
    pub size: u64,
    /// Last modification, for the initial LRU order.
    pub mtime: i64,
}

/// The directory and a handle to open objects beneath it.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    root: OwnedFd,
    temps: AtomicU64,
}

/// Whether [`Store::open`] could use `dir`, without creating anything (for `ferry check`): it
/// is a directory ferry may create files in, or the nearest part of it that exists is one, so
/// that it can be created. The message starts with the path.
pub fn check_dir(dir: &Path) -> Result<(), String> {
    use rustix::fs::{Access, access};
    let writable = |path: &Path| {
        access(path, Access::WRITE_OK | Access::EXEC_OK)
            .map_err(|err| format!("{} is not writable ({err})", path.display()))
    };
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {
            return writable(dir).map_err(|message| format!("{}: {message}", dir.display()));
        }
        Ok(_) => return Err(format!("{}: not a directory", dir.display())),
        // Not there, or a part of the path is a file: said below, naming that part.
        Err(err) if !missing(&err) => return Err(format!("{}: {err}", dir.display())),
        Err(_) => {}
    }
    let cannot = |why: String| format!("{}: cannot be created: {why}", dir.display());
    let mut ancestor = dir.parent();
    while let Some(path) = ancestor {
        let path = if path.as_os_str().is_empty() {
            Path::new(".")
        } else {
            path
        };
        match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => return writable(path).map_err(cannot),
            Ok(_) => return Err(cannot(format!("{} is not a directory", path.display()))),
            Err(err) if missing(&err) && path != Path::new(".") => {
                ancestor = path.parent();
            }
            Err(err) => return Err(cannot(format!("{}: {err}", path.display()))),
        }
    }
    Err(cannot("no part of the path exists".into()))
}

/// A path that is not there: absent, or under something that is not a directory.
fn missing(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

impl Store {
    /// Creates the directory if needed and opens it.
    pub fn open(dir: &Path) -> io::Result<Store> {
        fs::create_dir_all(dir)?;
        Ok(Store {
            dir: dir.to_path_buf(),
            root: crate::sys::open_root(dir)?,
            temps: AtomicU64::new(0),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(super) fn path(&self, id: &Id) -> PathBuf {
        self.dir.join(hex(id))
    }

    /// Opens object `id` for reading without blocking: `WouldBlock` when the lookup would have
    /// to go to the disk (retry with [`Store::open_object`] off the reactor).
    pub fn open_object_cached(&self, id: &Id) -> io::Result<File> {
        crate::sys::open_beneath_cached(&self.root, hex(id).as_ref()).map(File::from)
    }

    /// Opens object `id` for reading (may block).
    pub fn open_object(&self, id: &Id) -> io::Result<File> {
        crate::sys::open_beneath(&self.root, hex(id).as_ref()).map(File::from)
    }

    /// Deletes object `id`'s file; a file already gone is fine.
    pub fn remove(&self, id: &Id) {
        if let Err(err) = fs::remove_file(self.path(id))
            && err.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.dir.display(), error = %err, "cache: removing an object");
        }
    }

    /// A new temporary file for object `id`, and its path.
    pub fn create_temp(&self, id: &Id) -> io::Result<(PathBuf, File)> {
        let n = self.temps.fetch_add(1, Ordering::Relaxed);
        let path = self
            .dir
            .join(format!("{}.{}.{n}.tmp", hex(id), std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        Ok((path, file))
    }

    /// Rewrites the header and metadata of object `id` in place (after a 304). False when the
    /// new metadata does not fit before the body, or the object is gone. The caller makes sure
    /// the file under the name is the one whose body starts at `body_offset`.
    pub fn rewrite_head(&self, id: &Id, meta: &Meta, body_offset: u64) -> io::Result<bool> {
        let Some(head) = meta::encode_head(meta, body_offset) else {
            return Ok(false);
        };
        let file = match OpenOptions::new().write(true).open(self.path(id)) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(err) => return Err(err),
        };
        file.write_all_at(&head, 0)?;
        Ok(true)
    }

    /// Writes a new file for object `id`: `meta`'s head, then the `meta.body_len` body bytes
    /// of `old` (whose body starts at `old_offset`) copied in the kernel to the offset the new
    /// metadata needs, synced to the disk. The caller renames it over the old file
    /// ([`Store::rename_over`]); dropped instead, it is removed.
    pub fn write_moved(
        &self,
        id: &Id,
        meta: &Meta,
        old: &File,
        old_offset: u64,
    ) -> io::Result<Moved> {
        let body_offset = meta::body_offset(meta);
        let head = meta::encode_head(meta, body_offset)
            .ok_or_else(|| io::Error::other("metadata outgrew its room"))?;
        let old_len = old.metadata()?.len();
        if old_len != old_offset + meta.body_len {
            return Err(io::Error::other(format!(
                "old file is {old_len} bytes, {old_offset} + {} expected",
                meta.body_len
            )));
        }
        let (path, file) = self.create_temp(id)?;
        let mut moved = Moved {
            path,
            body_offset,
            size: body_offset + meta.body_len,
            copy: CopyPath::Kernel,
            placed: false,
        };
        file.write_all_at(&head, 0)?;
        moved.copy = copy_range(old, old_offset, &file, body_offset, meta.body_len)?;
        file.set_len(moved.size)?;
        // The rename replaces a good object: its data must be on the disk first, or a power
        // cut could leave the name on a file of the right length whose blocks never got
        // written (the checksum covers the metadata only). The directory is not synced: losing
        // the rename keeps the old file, still a whole object, with the old headers.
        file.sync_data()?;
        Ok(moved)
    }

    /// Renames the new file `moved` over object `id`'s file.
    pub fn rename_over(&self, moved: &mut Moved, id: &Id) -> io::Result<()> {
        fs::rename(&moved.path, self.path(id))?;
        moved.placed = true;
        Ok(())
    }

    /// Reads the directory: removes temporary files (fills a crash interrupted) and files that
    /// are not whole, valid objects under their own id; returns the rest.
    pub fn scan(&self) -> io::Result<Vec<Found>> {
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let path = entry.path();
            if name.ends_with(".tmp") {
                tracing::info!(file = %path.display(), "cache: removing an interrupted fill");
                let _ = fs::remove_file(&path);
                continue;
            }
            let Some(id) = parse_hex(name) else { continue };
            match read_object(&path, &id) {
                Ok(object) => found.push(object),
                Err(why) => {
                    tracing::warn!(file = %path.display(), error = %why, "cache: removing an unusable object");
                    let _ = fs::remove_file(&path);
                }
            }
        }
        Ok(found)
    }
}

/// Reads and checks the head of the object file at `path`.
fn read_object(path: &Path, id: &Id) -> Result<Found, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    read_head(&file, id)
}

/// Reads and checks the head of `file`, object `id`'s file: its metadata and where its body
/// starts.
pub fn read_head(file: &File, id: &Id) -> Result<Found, String> {
    let stat = file.metadata().map_err(|e| e.to_string())?;
    let mut head = [0u8; HEADER_LEN];
    file.read_exact_at(&mut head, 0)
        .map_err(|e| e.to_string())?;
    let header = meta::decode_header(&head).map_err(|e| e.to_string())?;
    let mut bytes = vec![0u8; header.meta_len as usize];
    file.read_exact_at(&mut bytes, HEADER_LEN as u64)
        .map_err(|e| e.to_string())?;
    let meta = meta::decode_checked(&header, &bytes).map_err(|e| e.to_string())?;
    if stat.len() != header.body_offset + meta.body_len {
        return Err(format!(
            "length {} is not {} + {}",
            stat.len(),
            header.body_offset,
            meta.body_len
        ));
    }
    if object_id(&meta) != *id {
        return Err("stored under another key's name".into());
    }
    Ok(Found {
        id: *id,
        body_offset: header.body_offset,
        size: stat.len(),
        mtime: stat.mtime(),
        meta,
    })
}

/// A new file for an object whose head outgrew its room, not yet renamed into place: removed
/// when dropped unless it was.
#[derive(Debug)]
pub struct Moved {
    path: PathBuf,
    /// Where the body starts in it.
    pub body_offset: u64,
    /// Its length.
    pub size: u64,
    /// How the body got there.
    pub copy: CopyPath,
    placed: bool,
}

impl Drop for Moved {
    fn drop(&mut self) {
        if !self.placed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// How [`copy_range`] moved the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyPath {
    /// copy_file_range(2) all the way: no user-space copy.
    Kernel,
    /// The kernel refused (part of) it; a read/write loop did the rest.
    Buffered,
}

/// Bytes asked of one copy_file_range(2) call. On the blocking pool there is no reactor to
/// keep responsive; the cap only bounds one call's length.
const COPY_CHUNK: u64 = 64 * 1024 * 1024;

/// Copies `len` bytes of `src` at `from` to `dst` at `to` with copy_file_range(2): within
/// the kernel (or as a reflink where the file system shares extents). Where the kernel
/// refuses the pair of files (EXDEV, EINVAL, ENOSYS, EOPNOTSUPP) the rest goes through
/// [`copy_buffered`].
pub fn copy_range(src: &File, from: u64, dst: &File, to: u64, len: u64) -> io::Result<CopyPath> {
    let (mut from, mut to, mut left) = (from, to, len);
    while left > 0 {
        let chunk = left.min(COPY_CHUNK) as usize;
        match rustix::fs::copy_file_range(src, Some(&mut from), dst, Some(&mut to), chunk) {
            Ok(0) => return Err(short_source(from)),
            Ok(n) => left -= n as u64,
            Err(rustix::io::Errno::INTR) => {}
            Err(
                err @ (rustix::io::Errno::XDEV
                | rustix::io::Errno::INVAL
                | rustix::io::Errno::NOSYS
                | rustix::io::Errno::OPNOTSUPP),
            ) => {
                tracing::debug!(error = %err, "cache: copy_file_range refused, copying through a buffer");
                copy_buffered(src, from, dst, to, left)?;
                return Ok(CopyPath::Buffered);
            }
            Err(err) => return Err(err.into()),
        }
    }
    Ok(CopyPath::Kernel)
}

/// Copies `len` bytes of `src` at `from` to `dst` at `to` through a buffer (pread/pwrite).
pub fn copy_buffered(src: &File, from: u64, dst: &File, to: u64, len: u64) -> io::Result<()> {
    let mut buf = vec![0u8; len.min(1024 * 1024) as usize];
    let mut done = 0;
    while done < len {
        let want = (len - done).min(buf.len() as u64) as usize;
        let n = match src.read_at(&mut buf[..want], from + done) {
            Ok(0) => return Err(short_source(from + done)),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        dst.write_all_at(&buf[..n], to + done)?;
        done += n as u64;
    }
    Ok(())
}

fn short_source(at: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("source file ends at {at}, before the body's end"),
    )
}

/// Lowercase hex of an id: the object's file name. By hand: it is built on every hit, and a
/// `format!` per byte cost more than the rest of the lookup.
pub fn hex(id: &Id) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(id.len() * 2);
    for b in id {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

fn parse_hex(name: &str) -> Option<Id> {
    if name.len() != 64 {
        return None;
    }
    let mut id = [0u8; 32];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(name.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    (hex(&id) == name).then_some(id)
}
