//! Restore from the bucket alone (docs/format.md section 11.8): the newest complete
//! snapshot at or before the target (its incremental chain applied on its full base), then
//! the segments' records from the snapshot's Lsn replayed up to the target, with rvm-core's
//! record decoder. Refuses, naming what is missing, when the bucket lacks a snapshot, has a
//! gap in the Lsns, or holds a segment or part whose checksums do not match.
//!
//! [`restore_where`] also takes a [`Judge`] of the states: the replay then stops at the
//! newest acceptable state at or before the target (module [`super::rewind`]: an undo log
//! back to it), and when no state from the snapshot on is acceptable, it starts again from
//! the next older snapshot, aiming just before the refused one.

use super::listing::{self, SegmentEntry};
use super::rewind::{Judge, Mark, Rewind};
use super::segment::{self, SegmentHeader};
use super::snapshot::{apply_part, decode_block, Manifest};
use super::ShipError;
use crate::bucket::Bucket;
use rvm_core::record;
use rvm_core::Lsn;

/// The largest metadata region a restore accepts (bytes): far above what mkfs makes for a
/// 16 TiB image.
const MAX_REGION: u64 = 64 << 30;

/// How far to replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Until {
    /// Everything shipped.
    Latest,
    /// The state after the transaction with this Lsn (records whose Lsns all lie at or
    /// below it; a merged record holding it and later Lsns stops the replay before it).
    Lsn(Lsn),
    /// The segments sealed at or before this time, milliseconds since 1970.
    Time(u64),
}

/// A metadata region rebuilt from the bucket, and what the image around it needs.
#[derive(Clone, Debug)]
pub struct Restored {
    /// The image's header block (4096 bytes) and length, from the snapshot's manifest.
    pub header_block: Vec<u8>,
    pub image_len: u64,
    pub segment_offset: u64,
    /// The region's bytes (`segment_len` of them).
    pub region: Vec<u8>,
    /// The snapshot used (its directory) and its Lsn.
    pub snapshot: String,
    pub snapshot_lsn: Lsn,
    /// The Lsn after the last record replayed: the state is the one after `next - 1`.
    pub next: Lsn,
    /// The Lsn after the last record the target allowed: `next` unless a [`Judge`] stepped
    /// the replay back from there.
    pub shipped: Lsn,
    pub segments: usize,
    pub records: u64,
    /// File-data ranges in the replayed records, not applied (the data is not the region's).
    pub external_ranges: u64,
}

/// Restore the region as of `until` from `bucket` (see the module doc).
///
/// Errors: [`ShipError::Missing`] (no snapshot, a gap, a target past what was shipped),
/// `Segment` / `Snapshot` (a checksum mismatch, a bad object), the bucket's errors.
pub fn restore(bucket: &Bucket, until: Until) -> Result<Restored, ShipError> {
    restore_where(bucket, until, None)
}

/// A replay's judge, and how to step back to the last state it accepted.
struct Judged<'j, 'f> {
    judge: &'j mut Judge<'f>,
    rewind: Rewind,
}

/// Restore the region as of the newest state at or before `until` that `judge` accepts
/// (every state if None; see the module doc). `Restored::shipped` tells where the replay
/// would have stopped without the judge.
///
/// Errors: those of [`restore`]; [`ShipError::Unacceptable`] when the judge accepts no
/// state the bucket can still rebuild; [`ShipError::Corrupt`] when it cannot judge one.
pub fn restore_where(
    bucket: &Bucket,
    until: Until,
    judge: Option<&mut Judge<'_>>,
) -> Result<Restored, ShipError> {
    let segs = listing::segments(bucket)?;
    let Some(judge) = judge else {
        let (dir, m) = pick_snapshot(bucket, &segs, until)?;
        return Ok(restore_from(bucket, &segs, until, dir, m, None)?.0);
    };
    let mut target = until;
    // The states refused so far (after Lsns from..=to), once a replay accepted none.
    let mut refused: Option<(Lsn, Lsn)> = None;
    loop {
        let attempt = pick_snapshot(bucket, &segs, target).and_then(|(dir, m)| {
            let lsn = m.lsn;
            let mut j = Judged {
                judge: &mut *judge,
                rewind: Rewind::default(),
            };
            restore_from(bucket, &segs, target, dir, m, Some(&mut j)).map(|r| (lsn, r))
        });
        let (lsn, (mut r, accepted)) = match (attempt, refused) {
            (Ok(a), _) => a,
            // No older snapshot, or a gap after it: nothing earlier can be rebuilt.
            (Err(ShipError::Missing(_)), Some((from, to))) => {
                return Err(ShipError::Unacceptable { from, to })
            }
            (Err(e), _) => return Err(e),
        };
        let to = refused.map_or(r.shipped.saturating_sub(1), |x| x.1);
        if accepted {
            r.shipped = to.saturating_add(1);
            return Ok(r);
        }
        let from = lsn.saturating_sub(1);
        if lsn < 2 {
            return Err(ShipError::Unacceptable { from, to });
        }
        refused = Some((from, to));
        // The states strictly before the refused snapshot's (the one after Lsn lsn - 1).
        target = Until::Lsn(lsn - 2);
    }
}

/// Build the region of snapshot `dir` and replay onto it up to `until`, stepped back to
/// the judge's last acceptable state if `j`: the region, and whether a state was accepted
/// (true without a judge; when false, the region is the one the target allowed).
fn restore_from(
    bucket: &Bucket,
    segs: &[SegmentEntry],
    until: Until,
    dir: String,
    m: Manifest,
    mut j: Option<&mut Judged<'_, '_>>,
) -> Result<(Restored, bool), ShipError> {
    let region = build_region(bucket, &dir, &m)?;
    let mut r = Restored {
        header_block: decode_block(&m.header_block).map_err(|source| ShipError::Snapshot {
            key: format!("{dir}/manifest"),
            source,
        })?,
        image_len: m.image_len,
        segment_offset: m.segment_offset,
        region,
        snapshot: dir,
        snapshot_lsn: m.lsn,
        next: m.lsn,
        shipped: m.lsn,
        segments: 0,
        records: 0,
        external_ranges: 0,
    };
    if let Some(j) = j.as_deref_mut() {
        let whole = 0..r.region.len();
        if judge(j, &r.region, std::slice::from_ref(&whole), r.next)? {
            j.rewind.accept(mark(&r, 0));
        }
    }
    replay(bucket, segs, until, &mut r, j.as_deref_mut())?;
    r.shipped = r.next;
    let Some(j) = j else {
        return Ok((r, true));
    };
    let Some(good) = std::mem::take(&mut j.rewind).back(&mut r.region) else {
        return Ok((r, false));
    };
    r.next = good.next;
    r.records = good.records;
    r.segments = good.segments;
    r.external_ranges = good.external_ranges;
    Ok((r, true))
}

/// Ask the judge about the state after Lsn `next - 1`.
fn judge(
    j: &mut Judged<'_, '_>,
    region: &[u8],
    touched: &[std::ops::Range<usize>],
    next: Lsn,
) -> Result<bool, ShipError> {
    (j.judge)(region, touched).map_err(|why| {
        ShipError::Corrupt(format!(
            "the state after Lsn {} cannot be judged: {why}",
            next.saturating_sub(1)
        ))
    })
}

/// The replay's position and counts in `r`, `segments` of them read.
fn mark(r: &Restored, segments: usize) -> Mark {
    Mark {
        next: r.next,
        records: r.records,
        segments,
        external_ranges: r.external_ranges,
    }
}

/// The newest complete snapshot at or before `until` that no later epoch superseded (a
/// stale writer's snapshot past the Lsn a later writer continued from is not the bucket's
/// history): its directory and manifest.
fn pick_snapshot(
    bucket: &Bucket,
    segs: &[SegmentEntry],
    until: Until,
) -> Result<(String, Manifest), ShipError> {
    let snaps = listing::snapshots(bucket)?;
    let current = |s: &&listing::SnapshotEntry| s.lsn <= listing::superseded_at(segs, s.epoch);
    for s in snaps.iter().rev().filter(|s| s.complete).filter(current) {
        let m = listing::manifest(bucket, &s.dir)?;
        let fits = match until {
            Until::Latest => true,
            Until::Lsn(n) => m.lsn <= n.saturating_add(1),
            Until::Time(t) => m.created_unix_ms <= t,
        };
        if fits {
            return Ok((s.dir.clone(), m));
        }
    }
    Err(ShipError::Missing(format!(
        "the bucket {} has no complete snapshot{} (a snapshot is complete once its manifest is written)",
        bucket.target(),
        match until {
            Until::Latest => String::new(),
            Until::Lsn(n) => format!(" at or before Lsn {n}"),
            Until::Time(t) => format!(" taken at or before {t} ms since 1970"),
        }
    )))
}

/// The region of snapshot `dir`: its full base, then each incremental one on it, in order.
fn build_region(bucket: &Bucket, dir: &str, m: &Manifest) -> Result<Vec<u8>, ShipError> {
    let mut chain = vec![(dir.to_string(), m.clone())];
    while let Some(base) = chain.last().and_then(|c| c.1.base.clone()) {
        let bm = listing::manifest(bucket, &base).map_err(|e| {
            ShipError::Missing(format!(
                "snapshot {dir} rests on {base}, which is unreadable: {e}"
            ))
        })?;
        chain.push((base, bm));
    }
    // The region is held in memory: refuse a manifest whose size no image has.
    if m.segment_len > m.image_len
        || m.segment_len > MAX_REGION
        || m.segment_offset > m.image_len - m.segment_len
    {
        return Err(ShipError::Corrupt(format!(
            "snapshot {dir}: region of {} bytes at {} in an image of {} bytes",
            m.segment_len, m.segment_offset, m.image_len
        )));
    }
    let mut region = vec![0u8; m.segment_len as usize];
    for (d, cm) in chain.iter().rev() {
        for p in &cm.parts {
            let key = format!("{d}/{}", p.name);
            let (bytes, _) = bucket.get(&key)?;
            apply_part(p, &bytes, &mut region)
                .map_err(|source| ShipError::Snapshot { key, source })?;
        }
    }
    Ok(region)
}

/// Replay the segments from `r.next` up to `until` into `r.region`.
fn replay(
    bucket: &Bucket,
    segs: &[SegmentEntry],
    until: Until,
    r: &mut Restored,
    mut j: Option<&mut Judged<'_, '_>>,
) -> Result<(), ShipError> {
    let limit = match until {
        Until::Lsn(n) => n.saturating_add(1),
        _ => Lsn::MAX,
    };
    for (i, s) in segs.iter().enumerate() {
        let cut = listing::superseded_at(segs, s.epoch);
        if s.first >= cut || r.next >= limit {
            continue;
        }
        // Wholly before the cursor (the next usable segment starts at or before it).
        if segs
            .get(i + 1)
            .is_some_and(|t| t.first <= r.next && t.epoch >= s.epoch)
        {
            continue;
        }
        if s.first > r.next {
            return Err(ShipError::Missing(format!(
                "the bucket lacks Lsns {}..{} (a gap before segment {}): cannot restore past Lsn {}",
                r.next,
                s.first,
                s.name,
                r.next.saturating_sub(1)
            )));
        }
        let (bytes, _) = bucket.get(&s.name)?;
        let (h, records) =
            segment::decode(&bytes, (s.epoch, s.first)).map_err(|source| ShipError::Segment {
                key: s.name.clone(),
                source,
            })?;
        if matches!(until, Until::Time(t) if h.created_unix_ms > t) {
            break;
        }
        let stop = cut.min(limit);
        if apply_segment(&h, records, &s.name, stop, r, j.as_deref_mut())? && cut >= limit {
            // The next record holds the target and later Lsns: this is the closest state.
            return Ok(());
        }
    }
    if let Until::Lsn(n) = until {
        if r.next <= n {
            return Err(ShipError::Missing(format!(
                "Lsn {n} is past the last shipped Lsn {} in the bucket",
                r.next.saturating_sub(1)
            )));
        }
    }
    Ok(())
}

/// Apply the records of one segment whose Lsns lie in `[r.next, stop)`; whether a record
/// at the cursor reaches past `stop` (the replay is done).
fn apply_segment(
    h: &SegmentHeader,
    records: &[u8],
    key: &str,
    stop: Lsn,
    r: &mut Restored,
    mut j: Option<&mut Judged<'_, '_>>,
) -> Result<bool, ShipError> {
    if h.next <= r.next {
        return Ok(false);
    }
    let mut err: Option<String> = None;
    let mut failed: Option<ShipError> = None;
    let (mut used, mut blocked) = (false, false);
    let mut touched = Vec::new();
    let (start, end) = (r.segment_offset, r.segment_offset + r.region.len() as u64);
    segment::each_record(records, |seq, next, bytes| {
        if err.is_some() || failed.is_some() || blocked || seq < r.next {
            return;
        }
        if next > stop {
            blocked = seq == r.next;
            return;
        }
        if seq != r.next {
            err = Some(format!("no record starts at Lsn {} (found {seq})", r.next));
            return;
        }
        let Ok(rec) = record::decode(bytes) else {
            err = Some(format!("record at Lsn {seq} does not decode"));
            return;
        };
        touched.clear();
        for (off, data) in rec.region_ranges() {
            let e = off + data.len() as u64;
            if *off < start || e > end {
                err = Some(format!(
                    "record at Lsn {seq} writes [{off}, {e}) outside the region"
                ));
                return;
            }
            let range = (off - start) as usize..(e - start) as usize;
            if let Some(j) = j.as_deref_mut() {
                j.rewind.save(&r.region, range.clone());
                touched.push(range.clone());
            }
            r.region[range].copy_from_slice(data);
        }
        r.external_ranges += rec.external_ranges().len() as u64;
        r.records += 1;
        r.next = next;
        used = true;
        if let Some(j) = j.as_deref_mut() {
            match judge(j, &r.region, &touched, next) {
                Ok(true) => j.rewind.accept(mark(r, r.segments + 1)),
                Ok(false) => {}
                Err(e) => failed = Some(e),
            }
        }
    });
    if let Some(why) = err {
        return Err(ShipError::Corrupt(format!("segment {key}: {why}")));
    }
    if let Some(e) = failed {
        return Err(e);
    }
    r.segments += used as usize;
    Ok(blocked)
}
