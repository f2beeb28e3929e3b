//! Giving freed heap memory back to the kernel. glibc's malloc keeps what connections freed
//! in its arenas (only the top of each heap is returned on its own), so after a burst of
//! connections closes the process would stay at its peak; `malloc_trim(3)` releases every
//! arena's free pages. Other C libraries: nothing to do here.

/// Returns the free pages of every malloc arena to the kernel; whether any were released.
/// It walks the arenas' free lists (taking each arena's lock), so call it rarely and off the
/// reactor.
#[cfg(target_env = "gnu")]
pub fn trim_heap() -> bool {
    // SAFETY: malloc_trim takes no pointers and only rearranges the allocator's own free
    // memory under its locks; it is safe to call from any thread at any time.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(not(target_env = "gnu"))]
pub fn trim_heap() -> bool {
    false
}
