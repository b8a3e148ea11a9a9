//! Retention: keep the newest `keep` complete snapshots (and the snapshots their
//! incremental chains rest on) and every segment a restore from the oldest kept one needs;
//! delete the rest. Runs only after a snapshot completed, so a snapshot is dropped only
//! once a newer one is complete; a snapshot's manifest is deleted before its parts, so a
//! half-deleted snapshot is merely incomplete.

use super::listing::{self, SegmentEntry, SnapshotEntry};
use super::ShipError;
use crate::bucket::Bucket;
use rvm_core::Lsn;
use std::collections::HashSet;

/// Apply retention to the bucket (see the module doc); `keep` is at least 1.
pub fn retain(bucket: &Bucket, keep: usize) -> Result<(), ShipError> {
    let snaps = listing::snapshots(bucket)?;
    let complete: Vec<&SnapshotEntry> = snaps.iter().filter(|s| s.complete).collect();
    let kept_from = complete.len().saturating_sub(keep.max(1));
    let newest = &complete[kept_from..];
    let Some(oldest) = newest.first() else {
        return Ok(());
    };
    let mut keep_dirs: HashSet<String> = HashSet::new();
    for s in newest {
        chain_into(bucket, &s.dir, &mut keep_dirs)?;
    }
    let newest_lsn = newest.last().map_or(oldest.lsn, |s| s.lsn);
    for s in snaps
        .iter()
        .filter(|s| !keep_dirs.contains(&s.dir) && s.lsn < newest_lsn)
    {
        delete_snapshot(bucket, s)?;
    }
    let segs = listing::segments(bucket)?;
    for s in needless_segments(&segs, oldest.lsn) {
        bucket.delete(&s.name)?;
    }
    Ok(())
}

/// Add `dir` and the bases its manifest rests on to `set`.
fn chain_into(bucket: &Bucket, dir: &str, set: &mut HashSet<String>) -> Result<(), ShipError> {
    let mut at = Some(dir.to_string());
    while let Some(d) = at {
        if !set.insert(d.clone()) {
            break;
        }
        at = listing::manifest(bucket, &d)?.base;
    }
    Ok(())
}

fn delete_snapshot(bucket: &Bucket, s: &SnapshotEntry) -> Result<(), ShipError> {
    let manifest = format!("{}/manifest", s.dir);
    if s.complete {
        bucket.delete(&manifest)?;
    }
    for o in s.objects.iter().filter(|o| **o != manifest) {
        bucket.delete(o)?;
    }
    Ok(())
}

/// The segments wholly before Lsn `from`: each one followed by a segment that starts at or
/// before `from` (so its records all lie below it).
pub fn needless_segments(segs: &[SegmentEntry], from: Lsn) -> Vec<&SegmentEntry> {
    segs.windows(2)
        .filter(|w| w[1].first <= from && w[0].first < w[1].first)
        .map(|w| &w[0])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(epoch: u32, first: Lsn) -> SegmentEntry {
        SegmentEntry {
            name: format!("log/{epoch:08x}/{first:016x}"),
            epoch,
            first,
            size: 1,
        }
    }

    #[test]
    fn only_segments_wholly_before_the_snapshot_go() {
        let segs = [seg(1, 1), seg(1, 10), seg(1, 20), seg(2, 20), seg(2, 30)];
        let gone: Vec<Lsn> = needless_segments(&segs, 20)
            .iter()
            .map(|s| s.first)
            .collect();
        // 1 and 10 end at or before 20; the segment at 20 and after are needed.
        assert_eq!(gone, vec![1, 10]);
        let gone: Vec<Lsn> = needless_segments(&segs, 15)
            .iter()
            .map(|s| s.first)
            .collect();
        assert_eq!(gone, vec![1], "the segment at 10 holds Lsn 15");
    }
}
