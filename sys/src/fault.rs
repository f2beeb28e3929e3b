//! Fault injection for the fallback tests: in debug builds only, `FERRY_FAULT_SENDFILE=EINVAL`
//! (or ENOSYS) makes every sendfile(2) fail with that error, and `FERRY_FAULT_SPLICE` does the
//! same for splice(2) from a file. This is how the tests prove the sendfile → splice →
//! buffered fallbacks on a kernel where the real calls always work. `FERRY_FAULT_KTLS_ULP`
//! (e.g. ENOENT) makes attaching the `tls` ULP to a connection fail, for the kTLS
//! `install_failed` fallback, and `FERRY_FAULT_KTLS_CIPHERS=none` makes the start-up probe
//! report no cipher suite, for `cipher_unsupported` (every suite rustls offers installs on
//! the kernels tested). `FERRY_FAULT_FILL_STALL=MS` makes the cache fill's writer sleep that
//! many milliseconds before each write, a cache disk too slow to keep up. Release builds compile
//! the hooks out: `Faults::get()` is then always empty.

use std::sync::OnceLock;

/// Errors to inject, read once from the environment.
#[derive(Debug, Default, Clone, Copy)]
pub struct Faults {
    pub sendfile: Option<i32>,
    pub splice: Option<i32>,
    pub ktls_ulp: Option<i32>,
    pub ktls_ciphers_none: bool,
    pub fill_stall: Option<std::time::Duration>,
}

impl Faults {
    pub fn get() -> Faults {
        static FAULTS: OnceLock<Faults> = OnceLock::new();
        *FAULTS.get_or_init(Faults::from_env)
    }

    #[cfg(debug_assertions)]
    fn from_env() -> Faults {
        Faults {
            sendfile: std::env::var("FERRY_FAULT_SENDFILE")
                .ok()
                .and_then(|v| errno(&v)),
            splice: std::env::var("FERRY_FAULT_SPLICE")
                .ok()
                .and_then(|v| errno(&v)),
            ktls_ulp: std::env::var("FERRY_FAULT_KTLS_ULP")
                .ok()
                .and_then(|v| errno(&v)),
            ktls_ciphers_none: std::env::var("FERRY_FAULT_KTLS_CIPHERS").as_deref() == Ok("none"),
            fill_stall: std::env::var("FERRY_FAULT_FILL_STALL")
                .ok()
                .and_then(|v| v.parse().ok())
                .map(std::time::Duration::from_millis),
        }
    }

    #[cfg(not(debug_assertions))]
    fn from_env() -> Faults {
        Faults::default()
    }
}

#[cfg(debug_assertions)]
fn errno(name: &str) -> Option<i32> {
    match name {
        "EINVAL" => Some(rustix::io::Errno::INVAL.raw_os_error()),
        "ENOSYS" => Some(rustix::io::Errno::NOSYS.raw_os_error()),
        "ENOENT" => Some(rustix::io::Errno::NOENT.raw_os_error()),
        _ => None,
    }
}
