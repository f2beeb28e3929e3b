//! Per-thread spare vectors for what every request fills and drops again: a request's header
//! bytes (`Headers`) and a reply's own header list (`route::Reply`). A request takes a spare
//! instead of allocating and its drop gives it back, so a worker serving requests one after
//! another allocates none of them.
//!
//! Each worker thread runs its own current-thread runtime, so a thread-local list needs no
//! lock; a vector dropped on another thread goes to that thread's list. Each list is
//! bounded, and so is the capacity of what it keeps: a burst of requests or one huge head
//! leaves nothing behind. (The connection's own buffers are pooled in `send::pool`.)

use std::cell::RefCell;
use std::thread::LocalKey;

/// One thread's spare vectors of one kind.
pub type Spares<T> = RefCell<Vec<Vec<T>>>;

/// An empty vector with room for `capacity` items: a spare when there is one.
pub fn take<T: 'static>(spares: &'static LocalKey<Spares<T>>, capacity: usize) -> Vec<T> {
    let spare = spares
        .try_with(|list| list.borrow_mut().pop())
        .ok()
        .flatten();
    match spare {
        Some(mut v) => {
            v.reserve(capacity);
            v
        }
        None => Vec::with_capacity(capacity),
    }
}

/// Keeps `v` (emptied) as a spare, unless it holds nothing, grew past `max_capacity` items or
/// `max_kept` spares are kept already; else it is freed.
pub fn put<T: 'static>(
    spares: &'static LocalKey<Spares<T>>,
    mut v: Vec<T>,
    max_capacity: usize,
    max_kept: usize,
) {
    if v.capacity() == 0 || v.capacity() > max_capacity {
        return;
    }
    v.clear();
    // During thread exit the list may be gone: then `v` is simply freed.
    let _ = spares.try_with(|list| {
        if let Ok(mut list) = list.try_borrow_mut()
            && list.len() < max_kept
        {
            list.push(v);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static TEST_SPARES: Spares<u8> = const { RefCell::new(Vec::new()) };
    }

    #[test]
    fn spares_are_reused_and_bounded() {
        let mut v = take(&TEST_SPARES, 10);
        v.extend_from_slice(b"abc");
        let at = v.as_ptr();
        put(&TEST_SPARES, v, 64, 1);
        let again = take(&TEST_SPARES, 10);
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), at, "the spare came back");
        put(&TEST_SPARES, again, 64, 1);
        put(&TEST_SPARES, Vec::with_capacity(8), 64, 1);
        put(&TEST_SPARES, Vec::with_capacity(128), 64, 1);
        assert_eq!(
            TEST_SPARES.with(|l| l.borrow().len()),
            1,
            "at most one kept"
        );
    }
}
