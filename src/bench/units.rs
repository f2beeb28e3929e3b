//! How `ferry bench` writes a byte count for people: `1.00 GiB`, `512.0 MiB`, `4 KiB`.

/// `1.00 GiB`, `512.0 MiB`, `4 KiB`, `17 B`.
pub fn human_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    if bytes >= 1 << 30 {
        format!("{:.2} GiB", b / (1u64 << 30) as f64)
    } else if bytes >= 1 << 20 {
        format!("{:.1} MiB", b / (1u64 << 20) as f64)
    } else if bytes >= 1 << 10 {
        format!("{:.0} KiB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(17), "17 B");
        assert_eq!(human_bytes(4096), "4 KiB");
        assert_eq!(human_bytes(8 << 20), "8.0 MiB");
        assert_eq!(human_bytes(1 << 30), "1.00 GiB");
    }
}
