//! Later-value-wins union of byte ranges (LRVM §5.2 inter-transaction optimization; also
//! used to apply many log records with few writes in truncation and recovery).

use crate::storage::Storage;

/// Ranges `(absolute offset, bytes)` pushed in commit order. [`Overlay::union`] yields the
/// union of all of them, overlapping and adjacent ranges merged, each byte holding the value
/// of the last range that wrote it: replaying the union equals replaying the ranges in order.
#[derive(Default)]
pub(crate) struct Overlay {
    /// (offset, start in `data`, len)
    ranges: Vec<(u64, usize, usize)>,
    data: Vec<u8>,
    /// Whether `ranges` are sorted and disjoint (not even adjacent) so far.
    sorted: bool,
}

/// The result of [`Overlay::union`]: disjoint, non-adjacent intervals sorted by offset;
/// interval `i` is `(offset, start in buf, len)`.
pub(crate) struct Union {
    pub intervals: Vec<(u64, usize, usize)>,
    pub buf: Vec<u8>,
}

impl Union {
    /// `(offset, bytes)` of every interval.
    pub fn ranges(&self) -> Vec<(u64, &[u8])> {
        self.intervals
            .iter()
            .map(|&(o, s, l)| (o, &self.buf[s..s + l]))
            .collect()
    }
}

/// Ranges `(absolute offset, bytes)` borrowed in commit order: the input of the
/// inter-transaction merge (LRVM §5.2). Its union copies nothing when the ranges came sorted
/// and without overlap (file data appended block after block); otherwise it is
/// [`Overlay`]'s union.
pub(crate) struct RangeList<'a> {
    list: Vec<(u64, &'a [u8])>,
    /// Whether every range so far starts at or after the end of the one before.
    sorted: bool,
}

/// The union of a [`RangeList`]: its own ranges (sorted, disjoint) or an [`Overlay`] union.
pub(crate) enum Merged<'a> {
    Borrowed(Vec<(u64, &'a [u8])>),
    Owned(Union),
}

impl Merged<'_> {
    /// `(offset, bytes)` of every range, sorted by offset, disjoint.
    pub fn ranges(&self) -> Vec<(u64, &[u8])> {
        match self {
            Merged::Borrowed(list) => list.clone(),
            Merged::Owned(u) => u.ranges(),
        }
    }
}

impl<'a> RangeList<'a> {
    pub fn new() -> Self {
        RangeList {
            list: Vec::new(),
            sorted: true,
        }
    }

    pub fn push(&mut self, off: u64, bytes: &'a [u8]) {
        if bytes.is_empty() {
            return;
        }
        if let Some(&(lo, lb)) = self.list.last() {
            if off < lo + lb.len() as u64 {
                self.sorted = false;
            }
        }
        self.list.push((off, bytes));
    }

    /// Forget every range.
    pub fn clear(&mut self) {
        self.list.clear();
        self.sorted = true;
    }

    /// Take the union (later value wins) and empty the list.
    pub fn take_union(&mut self) -> Merged<'a> {
        let list = std::mem::take(&mut self.list);
        if std::mem::replace(&mut self.sorted, true) {
            return Merged::Borrowed(list);
        }
        let mut o = Overlay::new();
        for (off, bytes) in list {
            o.push(off, bytes);
        }
        Merged::Owned(o.union())
    }
}

/// Write a union to the storage: one write per interval.
///
/// (Merging nearby intervals into one read-patch-write span would cut the writes of a
/// dense log by orders of magnitude, but a torn or garbage write of such a span damages
/// bytes between the intervals that no log record can repair; the crash simulator finds
/// that, so intervals are written exactly.)
pub(crate) fn write_union(storage: &dyn Storage, u: &Union) -> std::io::Result<()> {
    for (off, data) in u.ranges() {
        storage.write_at(data, off)?;
    }
    Ok(())
}

impl Overlay {
    pub fn new() -> Self {
        Overlay {
            sorted: true,
            ..Default::default()
        }
    }

    pub fn push(&mut self, off: u64, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if let Some(&(lo, _, ll)) = self.ranges.last() {
            if off <= lo + ll as u64 {
                self.sorted = false;
            }
        }
        self.ranges.push((off, self.data.len(), bytes.len()));
        self.data.extend_from_slice(bytes);
    }

    /// Bytes of range data pushed since the last `union`.
    pub fn data_len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Take the union (see the type docs) and empty the overlay.
    pub fn union(&mut self) -> Union {
        let ranges = std::mem::take(&mut self.ranges);
        let data = std::mem::take(&mut self.data);
        let was_sorted = std::mem::replace(&mut self.sorted, true);
        if was_sorted {
            return Union {
                intervals: ranges,
                buf: data,
            };
        }
        let mut order: Vec<(u64, usize)> = ranges.iter().map(|r| (r.0, r.2)).collect();
        order.sort_unstable();
        // (offset, start in buf, len)
        let mut intervals: Vec<(u64, usize, usize)> = Vec::new();
        let mut total = 0usize;
        for (off, len) in order {
            let end = off + len as u64;
            if let Some(last) = intervals.last_mut() {
                let last_end = last.0 + last.2 as u64;
                if off <= last_end {
                    if end > last_end {
                        total += (end - last_end) as usize;
                        last.2 = (end - last.0) as usize;
                    }
                    continue;
                }
            }
            intervals.push((off, total, len));
            total += len;
        }
        let mut buf = vec![0u8; total];
        for &(off, start, len) in &ranges {
            let i = intervals.partition_point(|iv| iv.0 <= off) - 1;
            let (io, is, _) = intervals[i];
            let at = is + (off - io) as usize;
            buf[at..at + len].copy_from_slice(&data[start..start + len]);
        }
        Union { intervals, buf }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_value_wins_and_adjacent_merge() {
        let mut o = Overlay::new();
        o.push(10, &[1; 10]); // [10,20)
        o.push(15, &[2; 10]); // [15,25)
        o.push(0, &[3; 5]); // [0,5)
        o.push(5, &[4; 5]); // [5,10) adjacent to both
        o.push(100, &[5; 4]);
        o.push(12, &[6; 2]);
        let u = o.union();
        let r = u.ranges();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].0, 0);
        let mut want = vec![3u8; 5];
        want.extend([4; 5]);
        want.extend([1; 2]);
        want.extend([6; 2]);
        want.extend([1; 1]);
        want.extend([2; 10]);
        assert_eq!(r[0].1, &want[..]);
        assert_eq!(r[1], (100, &[5u8; 4][..]));
        assert!(o.is_empty());
    }

    #[test]
    fn write_union_writes_exactly_the_intervals() {
        let st = crate::storage::MemStorage::from_bytes((0..20000u32).map(|i| i as u8).collect());
        let before = st.snapshot();
        let mut o = Overlay::new();
        o.push(10, &[0xEE; 4]);
        o.push(100, &[0xDD; 4]);
        o.push(4100, &[0xCC; 4]);
        o.push(16000, &[0xBB; 4]);
        write_union(&st, &o.union()).unwrap();
        let after = st.snapshot();
        let mut want = before.clone();
        want[10..14].fill(0xEE);
        want[100..104].fill(0xDD);
        want[4100..4104].fill(0xCC);
        want[16000..16004].fill(0xBB);
        assert_eq!(after, want);
    }

    #[test]
    fn range_list_borrows_sorted_input_and_merges_the_rest() {
        let (a, b, c) = ([1u8; 4], [2u8; 4], [3u8; 4]);
        let mut l = RangeList::new();
        l.push(0, &a);
        l.push(4, &b); // adjacent: still sorted
        assert!(
            matches!(l.take_union(), Merged::Borrowed(v) if v == vec![(0, &a[..]), (4, &b[..])])
        );
        l.push(8, &a);
        l.push(10, &c); // overlaps: later value wins
        let u = l.take_union();
        assert!(matches!(u, Merged::Owned(_)));
        assert_eq!(u.ranges(), vec![(8, &[1u8, 1, 3, 3, 3, 3][..])]);
    }

    #[test]
    fn sorted_input_passes_through() {
        let mut o = Overlay::new();
        o.push(0, &[1; 4]);
        o.push(8, &[2; 4]);
        let u = o.union();
        assert_eq!(u.ranges(), vec![(0, &[1u8; 4][..]), (8, &[2u8; 4][..])]);
    }
}
