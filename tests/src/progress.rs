//! How far and how fast a background writer got: bytes in use on a filesystem (statvfs),
//! waiting for a writer's progress, MiB/s.

use crate::processes::ChildGuard;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// MiB/s for a byte count and a duration.
pub fn mib_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1048576.0 / d.as_secs_f64().max(1e-9)
}

/// Bytes in use on the filesystem holding `path` (statvfs: (blocks - free) * fragment size).
pub fn fs_used_bytes(path: &Path) -> Option<u64> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a zeroed out-parameter.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    Some((s.f_blocks as u64).saturating_sub(s.f_bfree as u64) * s.f_frsize as u64)
}

/// Wait until a background writer into `mnt` has added `bytes` bytes (per statvfs), or has
/// exited, or `max` has passed. If the filesystem's usage does not move within the first
/// second, falls back to sleeping `fallback` in all. Returns how long it waited.
pub fn wait_for_progress(
    mnt: &Path,
    writer: &mut ChildGuard,
    bytes: u64,
    fallback: Duration,
    max: Duration,
) -> Duration {
    let start = Instant::now();
    let base = fs_used_bytes(mnt).unwrap_or(0);
    loop {
        let el = start.elapsed();
        if !writer.is_running() || el >= max {
            return el;
        }
        let used = fs_used_bytes(mnt).unwrap_or(base);
        if used.saturating_sub(base) >= bytes {
            return el;
        }
        if used == base && el >= Duration::from_secs(1) {
            if fallback > el {
                std::thread::sleep(fallback - el);
            }
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
