//! Direct I/O: reading a file with `O_DIRECT`, so its pages never enter the page cache (nginx
//! `directio`). The kernel moves the bytes from the disk straight into the caller's buffer,
//! which must be aligned in memory, and reads at offsets and lengths that are multiples of
//! the file's direct-I/O block; statx(2) `STATX_DIOALIGN` (Linux 6.1) tells both, 4096 (a page)
//! is assumed where the kernel does not say.
//!
//! Here: switching `O_DIRECT` on and off for an open file (fcntl), the alignment (statx), an
//! owned aligned buffer (the one `unsafe` allocation), the read itself, and what the tests and
//! the benchmark use to look at the page cache: `mincore(2)` residency and
//! `posix_fadvise(DONTNEED)` eviction. The chunking, pooling and sending live in
//! `send::directio`.

use std::alloc::{self, Layout};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::ptr::NonNull;

use rustix::fs::{AtFlags, OFlags, StatxFlags};

/// The alignment assumed when statx does not report one: a page, which every filesystem that
/// takes `O_DIRECT` at all accepts.
pub const FALLBACK_ALIGN: usize = 4096;

/// The alignment direct reads of one file need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alignment {
    /// Buffer addresses must be multiples of this.
    pub memory: usize,
    /// File offsets and lengths must be multiples of this.
    pub offset: usize,
}

impl Alignment {
    /// The larger of the two, which every address, offset and length can simply use.
    pub fn block(self) -> usize {
        self.memory.max(self.offset)
    }
}

/// Turns `O_DIRECT` on (or off) for the open file description of `file`. Filesystems without
/// direct I/O (ramfs, some FUSE and network filesystems; tmpfs before Linux 6.6) refuse with
/// EINVAL, exactly as they refuse an open(2) with `O_DIRECT`.
pub fn set_direct(file: impl AsFd, on: bool) -> io::Result<()> {
    #[cfg(debug_assertions)]
    if on && let Some(err) = fault() {
        return Err(io::Error::from_raw_os_error(err));
    }
    let flags = rustix::fs::fcntl_getfl(&file)?;
    let wanted = if on {
        flags | OFlags::DIRECT
    } else {
        flags - OFlags::DIRECT
    };
    if wanted != flags {
        rustix::fs::fcntl_setfl(&file, wanted)?;
    }
    Ok(())
}

/// In debug builds, `FERRY_FAULT_DIRECTIO=EINVAL` (or ENOSYS) makes every `set_direct(on)`
/// fail with that error: the fallback tests use it where no filesystem refusing `O_DIRECT`
/// can be mounted. `FERRY_FAULT_DIRECTIO_READ` does the same for every `read_at`, as a
/// filesystem would that takes the flag but not the reads.
#[cfg(debug_assertions)]
fn fault() -> Option<i32> {
    static FAULT: std::sync::OnceLock<Option<i32>> = std::sync::OnceLock::new();
    *FAULT.get_or_init(|| env_errno("FERRY_FAULT_DIRECTIO"))
}

#[cfg(debug_assertions)]
fn read_fault() -> Option<i32> {
    static FAULT: std::sync::OnceLock<Option<i32>> = std::sync::OnceLock::new();
    *FAULT.get_or_init(|| env_errno("FERRY_FAULT_DIRECTIO_READ"))
}

#[cfg(debug_assertions)]
fn env_errno(name: &str) -> Option<i32> {
    match std::env::var(name).as_deref() {
        Ok("EINVAL") => Some(rustix::io::Errno::INVAL.raw_os_error()),
        Ok("ENOSYS") => Some(rustix::io::Errno::NOSYS.raw_os_error()),
        _ => None,
    }
}

/// The direct-I/O alignment of `file` from statx(2) `STATX_DIOALIGN`; 4096 for what the kernel
/// does not report (kernels before 6.1, filesystems that leave it zero).
pub fn alignment(file: impl AsFd) -> Alignment {
    let reported = rustix::fs::statx(&file, "", AtFlags::EMPTY_PATH, StatxFlags::DIOALIGN)
        .ok()
        .filter(|st| st.stx_mask & StatxFlags::DIOALIGN.bits() != 0)
        .map(|st| {
            (
                st.stx_dio_mem_align as usize,
                st.stx_dio_offset_align as usize,
            )
        });
    let sane = |n: usize| {
        if n.is_power_of_two() {
            n
        } else {
            FALLBACK_ALIGN
        }
    };
    match reported {
        Some((memory, offset)) => Alignment {
            memory: sane(memory),
            offset: sane(offset),
        },
        None => Alignment {
            memory: FALLBACK_ALIGN,
            offset: FALLBACK_ALIGN,
        },
    }
}

/// `pread(2)` into `buf` at `offset`; with `O_DIRECT` set, the caller keeps `offset` and the
/// length aligned. Near the end of the file the kernel returns fewer bytes (the last partial
/// block included), and 0 at or past it.
pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    #[cfg(debug_assertions)]
    if let Some(err) = read_fault() {
        return Err(io::Error::from_raw_os_error(err));
    }
    Ok(rustix::io::pread(file, buf, offset)?)
}

/// A zeroed heap buffer whose address is a multiple of `align`, as `O_DIRECT` needs. Owned
/// and `Send`, so a read can fill it on another thread.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: the buffer is plain owned memory, reachable only through this value.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared access only hands out `&[u8]`.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// A buffer of `len` bytes (non-zero) aligned to `align` (a power of two).
    pub fn new(len: usize, align: usize) -> io::Result<AlignedBuf> {
        let layout = Layout::from_size_align(len.max(1), align)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
        // SAFETY: the layout's size is non-zero (`max(1)` above).
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        Ok(AlignedBuf { ptr, layout })
    }

    pub fn len(&self) -> usize {
        self.layout.size()
    }

    pub fn is_empty(&self) -> bool {
        self.layout.size() == 0
    }

    /// The address alignment the buffer was made with.
    pub fn align(&self) -> usize {
        self.layout.align()
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` points to `layout.size()` initialised (zeroed at allocation) bytes
        // owned by `self`, borrowed shared for the slice's lifetime.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.layout.size()) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes this the only borrow.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.layout.size()) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_zeroed` with this very layout and is freed once.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.layout.size())
            .field("align", &self.layout.align())
            .finish()
    }
}

/// Drops the file's clean pages from the page cache (`posix_fadvise(POSIX_FADV_DONTNEED)`).
/// Dirty pages stay: sync the file first.
pub fn evict(file: impl AsFd) -> io::Result<()> {
    Ok(rustix::fs::fadvise(
        file,
        0,
        None,
        rustix::fs::Advice::DontNeed,
    )?)
}

/// How many of the file's pages are in the page cache, and how many it has: `mincore(2)` on
/// a read-only shared mapping of it (mapping reads nothing; mincore looks at the cache).
pub fn resident_pages(file: &File) -> io::Result<(usize, usize)> {
    let len = usize::try_from(file.metadata()?.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file too large to map"))?;
    // SAFETY: sysconf reads a constant of the running system.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let pages = len.div_ceil(page);
    if pages == 0 {
        return Ok((0, 0));
    }
    // SAFETY: a new read-only shared mapping of `len` bytes of an open file at an address the
    // kernel picks; nothing else refers to it, and it is unmapped below before returning.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let mut vec = vec![0u8; pages];
    // SAFETY: `addr..addr+len` is the mapping made above; `vec` has one byte per page of it.
    let rc = unsafe { libc::mincore(addr, len, vec.as_mut_ptr()) };
    let err = io::Error::last_os_error();
    // SAFETY: unmaps exactly the mapping made above, which nothing references any more.
    unsafe { libc::munmap(addr, len) };
    if rc != 0 {
        return Err(err);
    }
    Ok((vec.iter().filter(|b| **b & 1 == 1).count(), pages))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_buffers_are_aligned() {
        for align in [512, 4096, 65536] {
            let buf = AlignedBuf::new(3 * align, align).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(buf.as_slice().as_ptr() as usize % align, 0);
            assert_eq!(buf.len(), 3 * align);
            assert!(buf.as_slice().iter().all(|b| *b == 0));
        }
    }
}
