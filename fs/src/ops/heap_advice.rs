//! Readahead on the heap's mapping (issue 12). The heap holds the B+tree nodes and names,
//! reached by hash, so once it is big a fault there wants its own page only:
//! `madvise(MADV_RANDOM)` ([`Region::advise_random`](rvm_core::Region::advise_random)). On
//! Linux 6.18, whose page cache uses large folios, a fault with readahead maps a whole
//! folio (up to 2 MiB), and at 1M entries the daemon's RSS was 138.4 MiB against 46.6
//! advised (c16fdaa). While the heap is small, though, readahead is what makes a cold
//! lookup cheap: advised from the start, 20,000 cold stats took ~635 synchronous 4 KiB
//! faults, and 2 threads of them ran only 1.38x one thread (5 faults and 1.86x without the
//! advice: `rvmfs-bench --workloads parallel --reps 4`, 2026-12-02). So the heap keeps
//! readahead until its used part (up to the bump pointer) passes [`HEAP_READAHEAD_MAX`].
//! The large folios read before the advice stay in the page cache, and a later fault in one
//! still maps all of it: that much more RSS at any size (at 1M entries 60.6 and 61.2 MiB
//! with the switch at 16 and 8 MiB, 55.6 advised from the start, in one hour's runs), so the
//! size is half of what the 64 MiB target leaves at 1M entries.

use super::Fs;

/// Used heap bytes up to which its mapping keeps readahead (see the module docs).
pub const HEAP_READAHEAD_MAX: u64 = 4 << 20;

impl Fs {
    /// Advise the heap `MADV_RANDOM` once its used part is past [`HEAP_READAHEAD_MAX`]
    /// (once: a heap does not shrink). The daemon calls it at mount; every commit batch
    /// that releases pages calls it again, as the heap grows. A refusal by the kernel only
    /// costs memory: it is logged and not retried.
    pub fn advise_heap(&mut self) {
        if self.heap_advised {
            return;
        }
        let Ok(sb) = crate::store::superblock(self.bytes()) else {
            return; // a damaged superblock fails the next request on its own
        };
        if sb.heap_top.saturating_sub(sb.heap_start) <= HEAP_READAHEAD_MAX {
            return;
        }
        self.heap_advised = true;
        let len = sb.heap_end.saturating_sub(sb.heap_start);
        if !self
            .region
            .advise_random(sb.heap_start as usize, len as usize)
        {
            log::warn!("madvise(MADV_RANDOM) of the heap refused: the daemon may use more memory");
        }
    }
}
