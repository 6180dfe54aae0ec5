//! CPU count and memory of the host.

use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostResources {
    pub cpus: u32,
    pub total_memory_bytes: u64,
}

/// Read the host's online CPU count and total memory.
pub fn read_host_resources() -> std::io::Result<HostResources> {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1);
    let meminfo = std::fs::read_to_string(Path::new("/proc/meminfo"))?;
    let total_memory_bytes = parse_mem_total(&meminfo).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "/proc/meminfo has no MemTotal line",
        )
    })?;
    Ok(HostResources {
        cpus,
        total_memory_bytes,
    })
}

/// Parse `MemTotal:  24567890 kB` into bytes.
pub fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_meminfo() {
        let s = "MemTotal:       24567892 kB\nMemFree: 1 kB\n";
        assert_eq!(parse_mem_total(s), Some(24567892 * 1024));
        assert_eq!(parse_mem_total("MemFree: 1 kB\n"), None);
        assert_eq!(parse_mem_total("MemTotal: lots kB\n"), None);
    }

    #[test]
    fn reads_this_host() {
        let r = read_host_resources().unwrap();
        assert!(r.cpus >= 1);
        assert!(r.total_memory_bytes > 64 * 1024 * 1024);
    }
}
