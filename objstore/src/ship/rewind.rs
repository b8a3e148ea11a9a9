//! Stepping a replay back to its last acceptable state (docs/format.md 11.8): restore of an
//! `object_data` image must stop at the newest state in which no extent points at a local
//! data block, since the restored image has none of those blocks.
//!
//! objstore knows nothing of the filesystem's structures (the fs crate depends on it, not
//! the other way round), so the caller passes a [`Judge`]: a function told the region after
//! each replayed record, with the byte ranges that record wrote, and answering whether the
//! restore may stop there. The ranges let a judge answer in O(ranges) when a record left
//! what it looks at alone (rvmfs-admin's judge rescans the extent tree only when a record
//! wrote one of its nodes or its root), so the check stays linear in the records replayed.
//!
//! Rather than copy the region at every acceptable state (a copy of up to gigabytes per
//! record), the replay keeps an undo log: the bytes each record overwrote since the last
//! acceptable state. Reaching an acceptable state drops it; at the end, if the last state
//! was not acceptable, the undo log is applied newest first, which gives back the region of
//! the last acceptable state. Its memory is the bytes replayed past that state.

use rvm_core::Lsn;
use std::ops::Range;

/// Whether the replay may stop at a state: `judge(region, touched)` with the region's bytes
/// after a record and the ranges of it (byte offsets from the region's start) that the
/// record wrote; the first call, for the snapshot, names the whole region. `Err(why)`: the
/// state cannot be judged (a damaged structure); the restore stops with that error.
pub type Judge<'a> = dyn FnMut(&[u8], &[Range<usize>]) -> Result<bool, String> + 'a;

/// Where a replay stood: the Lsn after the last record applied and the counts so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mark {
    pub next: Lsn,
    pub records: u64,
    pub segments: usize,
    pub external_ranges: u64,
}

/// The undo log since the last acceptable state, and that state's mark.
#[derive(Debug, Default)]
pub struct Rewind {
    undo: Vec<(usize, Vec<u8>)>,
    good: Option<Mark>,
}

impl Rewind {
    /// Note the bytes at `range` of `region` before a record overwrites them.
    pub fn save(&mut self, region: &[u8], range: Range<usize>) {
        if let Some(old) = region.get(range.clone()) {
            self.undo.push((range.start, old.to_vec()));
        }
    }

    /// The state at `mark` is acceptable: forget how to undo what led to it.
    pub fn accept(&mut self, mark: Mark) {
        self.undo.clear();
        self.good = Some(mark);
    }

    /// Give back the region of the last acceptable state (undoing every record after it,
    /// newest first) and its mark; None (the region left as is) if no state was acceptable.
    pub fn back(self, region: &mut [u8]) -> Option<Mark> {
        let good = self.good?;
        for (at, old) in self.undo.into_iter().rev() {
            region[at..at + old.len()].copy_from_slice(&old);
        }
        Some(good)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A replay of `records` (each: the ranges it writes with a fill byte) over a region of
    /// zeros, judged acceptable after the records whose index is in `ok` (and at the start
    /// if `start_ok`): the region given back and its mark.
    fn replay(
        records: &[&[(Range<usize>, u8)]],
        start_ok: bool,
        ok: &[usize],
    ) -> (Vec<u8>, Option<Mark>) {
        let mut region = vec![0u8; 64];
        let mut rw = Rewind::default();
        if start_ok {
            rw.accept(Mark::default());
        }
        for (i, rec) in records.iter().enumerate() {
            for (r, fill) in rec.iter() {
                rw.save(&region, r.clone());
                region[r.clone()].fill(*fill);
            }
            if ok.contains(&i) {
                let next = i as u64 + 1;
                rw.accept(Mark {
                    next,
                    records: next,
                    ..Mark::default()
                });
            }
        }
        let mark = rw.back(&mut region);
        (region, mark)
    }

    fn region_with(fills: &[(Range<usize>, u8)]) -> Vec<u8> {
        let mut r = vec![0u8; 64];
        for (range, b) in fills {
            r[range.clone()].fill(*b);
        }
        r
    }

    #[test]
    fn the_region_goes_back_to_the_last_acceptable_state() {
        let recs: [&[(Range<usize>, u8)]; 4] = [
            &[(0..8, 1)],
            &[(4..12, 2), (30..31, 9)],
            &[(8..16, 3)],
            &[(0..4, 4), (6..10, 5)],
        ];
        // Acceptable after record 1 only: records 2 and 3 are undone, overlaps and all.
        let (region, mark) = replay(&recs, true, &[1]);
        assert_eq!(region, region_with(&[(0..4, 1), (4..12, 2), (30..31, 9)]));
        assert_eq!(mark.map(|m| m.next), Some(2));
        // Acceptable at the end: nothing undone.
        let (region, mark) = replay(&recs, false, &[3]);
        let want = region_with(&[(0..4, 4), (4..6, 2), (6..10, 5), (10..16, 3), (30..31, 9)]);
        assert_eq!(region, want);
        assert_eq!(mark.map(|m| m.next), Some(4));
    }

    #[test]
    fn only_the_start_acceptable_gives_the_start_and_none_gives_nothing() {
        let recs: [&[(Range<usize>, u8)]; 2] = [&[(0..8, 1)], &[(2..3, 2)]];
        let (region, mark) = replay(&recs, true, &[]);
        assert_eq!(region, vec![0u8; 64]);
        assert_eq!(mark, Some(Mark::default()));
        let (_, mark) = replay(&recs, false, &[]);
        assert_eq!(mark, None);
    }
}
