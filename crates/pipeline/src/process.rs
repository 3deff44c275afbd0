//! Facts about the running process, for logs and benchmarks, and its one
//! memory setting.

/// Makes memory freed by the program go back to the system. glibc serves
/// blocks above its mmap threshold with their own mappings, but raises the
/// threshold each time one is freed (up to 32 MiB), so the stitch's row
/// buffers and the tiles' counts end up in per-thread heaps that keep
/// what they held at their peak. A fixed threshold keeps every large block
/// in a mapping of its own: measured on the 16384² default-viewport job
/// embedded (2 cores, 2026-11-26), peak RSS 154 MiB → 52 MiB, time
/// 22.7 s → 21.1–23.6 s (run-to-run noise). Call it first thing in `main`.
pub fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a parameter of the allocator, under the
    // allocator's own lock.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// The process's peak resident set size in bytes (`VmHWM` on Linux), or
/// `None` where the kernel does not report it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn peak_rss_is_reported_on_linux() {
        if cfg!(target_os = "linux") {
            let rss = super::peak_rss_bytes().expect("VmHWM");
            assert!(rss > 1 << 20 && rss < 1 << 40, "{rss}");
        }
    }
}
