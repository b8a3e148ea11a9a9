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

/// Apply retention to the bucket (see the module doc); `keep` is at least 1. `may_write` is
/// asked before each delete, as `gc::collect` does: a writer whose lease was taken over
/// between its snapshot's last put and this deletes nothing more (what stays is deleted by
/// the new holder's retention).
/// Errors: the first failure (what was deleted stays deleted; the next run goes on).
pub fn retain(bucket: &Bucket, keep: usize, may_write: &dyn Fn() -> bool) -> Result<(), ShipError> {
    let delete = |name: &str| -> Result<bool, ShipError> {
        if !may_write() {
            log::warn!("retention: the lease was lost; {name} and the rest stay");
            return Ok(false);
        }
        bucket.delete(name)?;
        Ok(true)
    };
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
        if !delete_snapshot(s, &delete)? {
            return Ok(());
        }
    }
    let segs = listing::segments(bucket)?;
    for s in needless_segments(&segs, oldest.lsn) {
        if !delete(&s.name)? {
            return Ok(());
        }
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

/// Delete snapshot `s`, its manifest first, through `delete` (false: stopped, see [`retain`]).
fn delete_snapshot(
    s: &SnapshotEntry,
    delete: &dyn Fn(&str) -> Result<bool, ShipError>,
) -> Result<bool, ShipError> {
    let manifest = format!("{}/manifest", s.dir);
    if s.complete && !delete(&manifest)? {
        return Ok(false);
    }
    for o in s.objects.iter().filter(|o| **o != manifest) {
        if !delete(o)? {
            return Ok(false);
        }
    }
    Ok(true)
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
