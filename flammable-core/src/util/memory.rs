//! How much memory this machine can still give: what an allocation too large to succeed is
//! checked against, so that it is refused with a reason instead of aborting the process.

/// The memory available to new allocations, in bytes (`MemAvailable` of `/proc/meminfo`);
/// `None` where it is not known.
pub fn available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_available(&text)
}

/// `MemAvailable` of a `/proc/meminfo` text, in bytes.
fn parse_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// `bytes` for a person: `25.6 GB`, `512.0 MB`, `3 KB`.
pub fn human_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{} KB", bytes.div_ceil(1000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_meminfo_and_names_sizes() {
        let text = "MemTotal:       24000000 kB\nMemFree:  1 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(parse_available(text), Some(20_480_000_000));
        assert_eq!(parse_available("MemTotal: 1 kB\n"), None);
        assert_eq!(human_bytes(25_600_000_000), "25.6 GB");
        assert_eq!(human_bytes(512_000_000), "512.0 MB");
        assert_eq!(human_bytes(2_500), "3 KB");
        if cfg!(target_os = "linux") {
            assert!(available_bytes().is_some_and(|b| b > 0));
        }
    }
}
