//! What the kernel offers for kTLS: the `tls` upper-layer protocol must be listed in
//! /proc/sys/net/ipv4/tcp_available_ulp (it is once the `tls` module is loaded); which cipher
//! suites then install is probed by the ktls crate on loopback socket pairs.

/// Where the kernel lists its TCP upper-layer protocols.
pub const ULP_PATH: &str = "/proc/sys/net/ipv4/tcp_available_ulp";

/// Whether the `tls` ULP is available.
pub fn ulp_available() -> bool {
    std::fs::read_to_string(ULP_PATH)
        .is_ok_and(|list| list.split_whitespace().any(|ulp| ulp == "tls"))
}
