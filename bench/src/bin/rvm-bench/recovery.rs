//! (f) Recovery of a full 64 MiB log (`initialize` + `map`), and the truncation that
//! applies the recovered log afterwards.

use std::path::Path;
use std::time::Instant;

use rvm_core::{CommitMode, RestoreMode, Rvm};

use crate::image::{Image, Rng, MIB};

/// Fill the log of `img` to ~98% with individual records (4 random 64-byte ranges each,
/// inter-transaction merging off: the worst case for recovery), truncation off.
fn fill_log(rvm: &Rvm, img: &Image) {
    rvm.set_truncate_threshold(None);
    rvm.set_optimizations(true, false);
    let mut r = rvm.map(img.seg).unwrap();
    let slots = img.seg.len / 64;
    let mut rng = Rng(99);
    let cap = rvm.stats().log_capacity;
    let mut i = 0u64;
    loop {
        let mut tx = r.begin_transaction(RestoreMode::NoRestore);
        for _ in 0..4 {
            let off = (rng.next() % slots) as usize * 64;
            tx.set_range(off, 64).unwrap().fill(i as u8);
        }
        tx.end(CommitMode::NoFlush).unwrap();
        i += 1;
        if i.is_multiple_of(4096) {
            rvm.flush().unwrap();
            let s = rvm.stats();
            if (s.log_tail - s.log_head) as f64 > cap as f64 * 0.97 {
                break;
            }
        }
    }
}

pub struct Recovery {
    /// `initialize` + `map` of the whole segment (the region shows every commit).
    pub total: f64,
    pub init: f64,
    pub map: f64,
    pub records: u64,
    /// Truncation of the recovered log afterwards, MiB/s.
    pub truncate_mib_s: f64,
}

/// (f): recovery time of a full 64 MiB log (seconds: `initialize`, then `map` of the
/// segment) and the throughput of the truncation that applies it afterwards (MiB/s).
pub fn recovery_and_truncation(dir: &Path) -> Recovery {
    let img = Image::create(dir, "recovery", 64 * MIB + 8192, 64 * MIB, true);
    let rvm = img.open(64 * MIB);
    fill_log(&rvm, &img);
    drop(rvm); // a crash: the log is full and nothing is truncated
    let t = Instant::now();
    // background truncation off, so the truncation below is timed alone
    let rvm = img.open_with(64 * MIB, None);
    let init = t.elapsed().as_secs_f64();
    let r = rvm.map(img.seg).unwrap();
    let total = t.elapsed().as_secs_f64();
    let s = rvm.stats();
    let records = s.records_recovered;
    assert!(records > 0);
    let used = s.log_tail - s.log_head;
    drop(r);
    let t = Instant::now();
    rvm.truncate().unwrap();
    let truncate_mib_s = used as f64 / MIB as f64 / t.elapsed().as_secs_f64();
    Recovery {
        total,
        init,
        map: total - init,
        records,
        truncate_mib_s,
    }
}
