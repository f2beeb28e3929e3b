//! Who built this binary: the version, the git commit, the build date and the compiler,
//! recorded by `build.rs` at compile time. `ferry --version` prints them; the
//! `ferry_build_info` metric carries the version, commit and rustc release as labels.

/// The crate version, e.g. `0.1.0`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commit built, 12 hex digits, or `unknown` when built outside a git checkout.
pub const COMMIT: &str = env!("FERRY_GIT_COMMIT");

/// When it was built, UTC, RFC 3339 (`SOURCE_DATE_EPOCH` when that was set).
pub const DATE: &str = env!("FERRY_BUILD_DATE");

/// What `rustc --version` printed, e.g. `rustc 1.95.0 (59807616e 2026-04-14)`.
pub const RUSTC: &str = env!("FERRY_RUSTC_VERSION");

/// The text after `ferry ` in `ferry --version`: the version on the first line, then the
/// commit, the build date and the compiler, one per line.
pub const VERSION_TEXT: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\ncommit ",
    env!("FERRY_GIT_COMMIT"),
    "\nbuilt ",
    env!("FERRY_BUILD_DATE"),
    "\n",
    env!("FERRY_RUSTC_VERSION"),
);

/// The compiler's release alone (`1.95.0`), the `rustc` label of `ferry_build_info`; the
/// whole `rustc --version` line when it does not have the usual shape.
pub fn rustc_release() -> &'static str {
    RUSTC
        .strip_prefix("rustc ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or(RUSTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_values_have_their_shapes() {
        assert!(
            COMMIT == "unknown"
                || (COMMIT.len() == 12 && COMMIT.bytes().all(|b| b.is_ascii_hexdigit())),
            "{COMMIT}"
        );
        // YYYY-MM-DDTHH:MM:SSZ
        assert_eq!(DATE.len(), 20, "{DATE}");
        assert!(DATE.ends_with('Z') && DATE.as_bytes()[10] == b'T', "{DATE}");
        assert!(RUSTC.starts_with("rustc "), "{RUSTC}");
        let release = rustc_release();
        assert!(
            release.split('.').count() == 3 && !release.contains(' '),
            "{release}"
        );
    }
}
