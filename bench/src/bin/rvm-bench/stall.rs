//! (f') Commit stalls: the latency of no-flush commits while background truncations run.

use std::path::Path;
use std::time::Instant;

use rvm_core::{CommitMode, RestoreMode};

use crate::image::{Image, Rng, MIB};

pub struct Stall {
    /// Longest `end(NoFlush)` overall, and while a truncation ran (ms).
    pub max_ms: f64,
    pub max_truncating_ms: f64,
    /// Commits while a truncation ran, and the latency histogram of those commits:
    /// [<10 us, <100 us, <1 ms, <10 ms, >=10 ms].
    pub commits_truncating: u64,
    pub hist: [u64; 5],
    pub commits: u64,
    /// Longest commit while no truncation ran (the control).
    pub max_idle_ms: f64,
    pub max_flush_ms: f64,
    pub truncations: u64,
    pub log_full_waits: u64,
}

/// (f'): per-commit latency of no-flush commits while background truncations run (the log
/// is filled past its threshold over and over, never full), and the longest `flush()`.
pub fn commit_stall(dir: &Path, secs: f64) -> Stall {
    let img = Image::create(dir, "stall", 16 * MIB + 8192, 64 * MIB, true);
    let rvm = img.open(256 * MIB);
    rvm.set_truncate_threshold(Some(50));
    let mut r = rvm.map(img.seg).unwrap();
    let slots = img.seg.len / 64;
    let mut rng = Rng(5);
    let mut st = Stall {
        max_ms: 0.0,
        max_truncating_ms: 0.0,
        commits_truncating: 0,
        hist: [0; 5],
        commits: 0,
        max_idle_ms: 0.0,
        max_flush_ms: 0.0,
        truncations: 0,
        log_full_waits: 0,
    };
    let t = Instant::now();
    let mut i = 0u64;
    while t.elapsed().as_secs_f64() < secs.max(2.0) || rvm.stats().truncations < 3 {
        let before = rvm.is_truncating();
        let c = Instant::now();
        let mut tx = r.begin_transaction(RestoreMode::NoRestore);
        for _ in 0..4 {
            let off = (rng.next() % slots) as usize * 64;
            tx.set_range(off, 64).unwrap().fill(i as u8);
        }
        tx.end(CommitMode::NoFlush).unwrap();
        let ms = c.elapsed().as_secs_f64() * 1e3;
        st.max_ms = st.max_ms.max(ms);
        if before || rvm.is_truncating() {
            st.commits_truncating += 1;
            st.max_truncating_ms = st.max_truncating_ms.max(ms);
            let b = match ms {
                x if x < 0.01 => 0,
                x if x < 0.1 => 1,
                x if x < 1.0 => 2,
                x if x < 10.0 => 3,
                _ => 4,
            };
            st.hist[b] += 1;
        } else {
            st.max_idle_ms = st.max_idle_ms.max(ms);
        }
        i += 1;
        if i.is_multiple_of(2048) {
            let f = Instant::now();
            rvm.flush().unwrap();
            st.max_flush_ms = st.max_flush_ms.max(f.elapsed().as_secs_f64() * 1e3);
        }
        if t.elapsed().as_secs_f64() > 60.0 {
            break;
        }
    }
    st.commits = i;
    let s = rvm.stats();
    st.truncations = s.truncations;
    st.log_full_waits = s.log_full_waits;
    st
}
