//! `ferry::route::relative_path` on arbitrary strings (the request path below a location
//! prefix, and X-Accel-Redirect values from the app).
//!
//! When it accepts, the result must be safe to hand to openat2(RESOLVE_BENEATH) as a
//! relative path: non-empty, relative, no NUL, no empty, `.` or `..` segment (the root
//! itself is the single documented `"."`).
#![no_main]

use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let Ok(path) = ferry::route::relative_path(&input) else {
        return;
    };
    let bytes = path.as_bytes();
    assert!(!bytes.is_empty(), "empty path for {input:?}");
    assert!(!bytes.contains(&0), "NUL in {path:?} for {input:?}");
    assert!(bytes[0] != b'/', "absolute {path:?} for {input:?}");
    assert!(
        Path::new(&path).is_relative(),
        "not relative: {path:?} for {input:?}"
    );
    if bytes == b"." {
        return;
    }
    for segment in bytes.split(|&b| b == b'/') {
        assert!(
            !segment.is_empty(),
            "empty segment in {path:?} for {input:?}"
        );
        assert!(
            segment != b"." && segment != b"..",
            "dot segment in {path:?} for {input:?}"
        );
    }
    for component in Path::new(&path).components() {
        assert!(
            matches!(component, Component::Normal(_)),
            "{component:?} in {path:?} for {input:?}"
        );
    }
});
