//! The calls only `ferry bench` makes: a read-only mapping of a file range (mmap+write) and
//! what the calling thread has used: its CPU time to the nanosecond
//! (`clock_gettime(CLOCK_THREAD_CPUTIME_ID)`, the scheduler's own runtime) and its user/system
//! split and context switches (getrusage `RUSAGE_THREAD`, whose times are tick-sampled and
//! can stand still over a few milliseconds). Its O_DIRECT row uses `sys::directio`.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

/// A read-only, private mapping of `len` bytes of a file; unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// Maps `len` (> 0) bytes of `file` from `offset`, which must be a multiple of the page
    /// size. Counts as one syscall (mmap); the drop is another (munmap).
    pub fn map(file: impl AsFd, offset: u64, len: usize) -> io::Result<Mapping> {
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "mmap of zero bytes",
            ));
        }
        let offset = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "mmap offset too large"))?;
        // SAFETY: a fresh mapping chosen by the kernel (addr NULL) aliases no Rust object;
        // the fd is valid for the call; the result is checked against MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_fd().as_raw_fd(),
                offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = std::ptr::NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned NULL"))?;
        Ok(Mapping { ptr, len })
    }

    /// The mapped bytes. A file truncated underneath raises SIGBUS on access, as with any
    /// mmap reader; the bench maps files it created or was pointed at and does not truncate.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` is a live PROT_READ mapping of exactly `len` bytes until drop, and
        // nothing in this process writes through it (MAP_PRIVATE, read-only).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the region `map` created; no slice from `as_slice` outlives
        // `self` (it borrows it).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// What the kernel has accounted to the calling thread so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ThreadUsage {
    /// CPU time (user + system) from the thread's CPU clock: exact.
    pub cpu: Duration,
    /// The tick-sampled split of it, from getrusage.
    pub user: Duration,
    pub system: Duration,
    /// The thread gave up the CPU (blocked).
    pub voluntary_switches: u64,
    /// The scheduler took the CPU away.
    pub involuntary_switches: u64,
}

impl ThreadUsage {
    /// Resources used between `earlier` and `self`.
    pub fn since(&self, earlier: &ThreadUsage) -> ThreadUsage {
        ThreadUsage {
            cpu: self.cpu.saturating_sub(earlier.cpu),
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
            voluntary_switches: self
                .voluntary_switches
                .saturating_sub(earlier.voluntary_switches),
            involuntary_switches: self
                .involuntary_switches
                .saturating_sub(earlier.involuntary_switches),
        }
    }
}

/// The calling thread's CPU clock and `getrusage(RUSAGE_THREAD)`.
pub fn thread_usage() -> io::Result<ThreadUsage> {
    let mut now = std::mem::MaybeUninit::<libc::timespec>::zeroed();
    // SAFETY: `now` is a writable timespec the kernel fills; the result is checked first.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, now.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: clock_gettime succeeded, so the struct is initialised (it was zeroed too).
    let now = unsafe { now.assume_init() };
    let cpu = Duration::new(
        now.tv_sec.max(0) as u64,
        now.tv_nsec.clamp(0, 999_999_999) as u32,
    );
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` is a writable rusage the kernel fills; the return value is checked
    // before the struct is read.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: getrusage succeeded, so the kernel initialised the struct (it was zeroed too).
    let usage = unsafe { usage.assume_init() };
    let time = |tv: libc::timeval| {
        Duration::from_secs(tv.tv_sec.max(0) as u64)
            + Duration::from_micros(tv.tv_usec.max(0) as u64)
    };
    Ok(ThreadUsage {
        cpu,
        user: time(usage.ru_utime),
        system: time(usage.ru_stime),
        voluntary_switches: usage.ru_nvcsw.max(0) as u64,
        involuntary_switches: usage.ru_nivcsw.max(0) as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn mapping_reads_the_file() {
        let mut file = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..3 * 4096u32).map(|i| (i % 251) as u8).collect();
        file.write_all(&data).unwrap();
        let whole = Mapping::map(&file, 0, data.len()).unwrap();
        assert_eq!(whole.as_slice(), &data[..]);
        let tail = Mapping::map(&file, 4096, 8192).unwrap();
        assert_eq!(tail.as_slice(), &data[4096..]);
        assert!(Mapping::map(&file, 0, 0).is_err());
    }

    #[test]
    fn the_thread_cpu_clock_advances_with_work_and_not_with_sleep() {
        let before = thread_usage().unwrap();
        std::thread::sleep(Duration::from_millis(30));
        let slept = thread_usage().unwrap().since(&before);
        assert!(slept.cpu < Duration::from_millis(30), "{slept:?}");

        let before = thread_usage().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut x = 0u64;
        loop {
            for _ in 0..100_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
            std::hint::black_box(x);
            let used = thread_usage().unwrap().since(&before);
            if used.cpu >= Duration::from_millis(20) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "20 s of spinning gave the thread {used:?} of CPU"
            );
        }
    }
}
