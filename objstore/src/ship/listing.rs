//! What the bucket holds of the shipped log: its segments and its snapshots, from complete
//! listings of `log/` and `snap/` (a failed listing is an error, never a shorter list).

use super::segment::{parse_segment_key, SEGMENT_HEADER_LEN, SEGMENT_MAGIC};
use super::snapshot::{parse_snapshot_key, snapshot_dir, Manifest};
use super::ShipError;
use crate::bucket::Bucket;
use crate::le::get_u64;
use rvm_core::Lsn;

/// One segment object by its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentEntry {
    pub name: String,
    pub epoch: u32,
    pub first: Lsn,
    pub size: u64,
}

/// One snapshot directory: its Lsn, epoch, part names, and whether its manifest exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotEntry {
    pub dir: String,
    pub lsn: Lsn,
    pub epoch: u32,
    pub complete: bool,
    /// Every object of it (parts and manifest), names relative to the prefix.
    pub objects: Vec<String>,
}

/// Every segment under `log/`, by first Lsn then epoch (unknown names are skipped).
pub fn segments(bucket: &Bucket) -> Result<Vec<SegmentEntry>, ShipError> {
    let mut out: Vec<SegmentEntry> = bucket
        .list("log/")?
        .into_iter()
        .filter_map(|l| {
            let (epoch, first) = parse_segment_key(&l.name)?;
            Some(SegmentEntry {
                name: l.name,
                epoch,
                first,
                size: l.size,
            })
        })
        .collect();
    out.sort_by_key(|s| (s.first, s.epoch));
    Ok(out)
}

/// Every snapshot directory under `snap/`, oldest Lsn first.
pub fn snapshots(bucket: &Bucket) -> Result<Vec<SnapshotEntry>, ShipError> {
    let mut out: Vec<SnapshotEntry> = Vec::new();
    for l in bucket.list("snap/")? {
        let Some((lsn, epoch, file)) = parse_snapshot_key(&l.name) else {
            continue;
        };
        let dir = snapshot_dir(lsn, epoch);
        if out.last().is_none_or(|e| e.dir != dir) {
            out.push(SnapshotEntry {
                dir,
                lsn,
                epoch,
                complete: false,
                objects: Vec::new(),
            });
        }
        if let Some(e) = out.last_mut() {
            e.complete |= file == "manifest";
            e.objects.push(l.name.clone());
        }
    }
    out.sort_by_key(|e| (e.lsn, e.epoch));
    Ok(out)
}

/// The manifest of the snapshot in `dir`.
pub fn manifest(bucket: &Bucket, dir: &str) -> Result<Manifest, ShipError> {
    let name = format!("{dir}/manifest");
    let (bytes, _) = bucket.get(&name)?;
    serde_json::from_slice(&bytes).map_err(|e| ShipError::Corrupt(format!("{name}: {e}")))
}

/// The first Lsn of any segment of a later epoch than `epoch`: a later writer restored the
/// state there and wrote on, so records of `epoch` from it on are a stale writer's
/// (docs/format.md 11.7 "Epochs"). `Lsn::MAX` when no later epoch shipped.
pub fn superseded_at(segs: &[SegmentEntry], epoch: u32) -> Lsn {
    segs.iter()
        .filter(|t| t.epoch > epoch)
        .map(|t| t.first)
        .min()
        .unwrap_or(Lsn::MAX)
}

/// The newest segment (by first Lsn) that no later epoch superseded.
pub fn last_live(segs: &[SegmentEntry]) -> Option<&SegmentEntry> {
    segs.iter()
        .rev()
        .find(|s| s.first < superseded_at(segs, s.epoch))
}

/// The Lsn after the last record of the newest segment (by first Lsn) that a later epoch
/// did not supersede, from its header alone; `None` with no segment.
pub fn shipped_next(bucket: &Bucket, segs: &[SegmentEntry]) -> Result<Option<Lsn>, ShipError> {
    let Some(last) = last_live(segs) else {
        return Ok(None);
    };
    let head = bucket.get_range(&last.name, 0..SEGMENT_HEADER_LEN as u64)?;
    if head.len() < SEGMENT_HEADER_LEN || &head[..8] != SEGMENT_MAGIC {
        return Err(ShipError::Corrupt(format!(
            "{}: not a log segment (bad magic number)",
            last.name
        )));
    }
    let next = get_u64(&head, 0x20);
    Ok(Some(next))
}
