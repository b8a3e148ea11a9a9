//! The local data area as a bounded cache of clean blocks (issue 14 item 1; README
//! "Object-store mode"): a `REMOTE` block read from the bucket is also written into a free
//! local block, and read from there the next time, checked against its object's CRC32C
//! like a block from the bucket.
//!
//! Nothing of it is in the metadata: the cache is an in-memory map vblock -> local block,
//! lost at restart (the blocks are free again then, as they always were), so recovery and
//! fsck never depend on it. Its blocks stay free in the data bitmap: statfs and fsck count
//! them free, and the allocator takes them back at once (`extent::alloc_blocks` calls
//! [`LocalCache::evict_run`] before anything is written into a run it hands out).
//!
//! Which free blocks: ones whose free is durable, not in the discard queue (so never punched
//! while cached), not reserved, pending or hot (`ops::cache_space`, under the filesystem lock,
//! before a read: the **spare** blocks). A block a fill writes is taken from the spares, or
//! once the bound (`-o cache_size=`) is reached is the least recently used entry's: evicted
//! LRU. When the local area has no usable free block, nothing new is cached. The write happens under the cache's mutex and only into a block
//! the cache still owns, and the allocator evicts under the same mutex, so a fill never
//! writes into a block some file got. A read of a cached block checks, after reading it, that
//! the entry is still the one it looked up (an allocation meanwhile evicts it first), and
//! then the block's CRC32C (a truncation applying an old record into a free block would change
//! it): a block that fails either is read from the bucket. Never the wrong bytes.
//!
//! Cost: roughly 100 bytes of memory per cached block (an estimate of the maps' entries, not
//! measured): some 25 MiB per GiB cached.

use super::lock;
use crate::layout::BLOCK_SIZE;
use rvm_core::Storage;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const BS: usize = BLOCK_SIZE as usize;

/// Where a cached vblock is: its local block, its last use, and which fill wrote it.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Slot {
    phys: u64,
    used: u64,
    fill: u64,
}

#[derive(Default)]
struct State {
    /// vblock -> its local block.
    slots: HashMap<u64, Slot>,
    /// Local block -> the vblock it holds (every block the cache owns but the spares).
    owner: BTreeMap<u64, u64>,
    /// Free local blocks picked for fills, not written yet.
    spare: BTreeSet<u64>,
    /// Last use -> vblock: the least recently used first.
    lru: BTreeMap<u64, u64>,
    /// Ticks for `Slot::used` and `Slot::fill`.
    tick: u64,
    /// Where the next search for spare blocks starts (`ops::cache_space`).
    cursor: u64,
}

impl State {
    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// Forget vblock `v`'s entry; its local block.
    fn drop_entry(&mut self, v: u64) -> Option<u64> {
        let s = self.slots.remove(&v)?;
        self.lru.remove(&s.used);
        self.owner.remove(&s.phys);
        Some(s.phys)
    }

    /// A local block for a new entry: a spare one while fewer than `cap` blocks are cached
    /// (None when none was lent: the local area has no usable free block), else the least
    /// recently used entry's, evicted.
    fn take_block(&mut self, cap: u64) -> Option<u64> {
        if (self.owner.len() as u64) < cap {
            return self.spare.pop_first();
        }
        let (_, v) = self.lru.pop_first()?;
        let s = self.slots.remove(&v)?;
        self.owner.remove(&s.phys);
        Some(s.phys)
    }
}

/// What the cache did since mount (`LocalCache::stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Blocks cached now, and spare blocks picked for fills.
    pub blocks: u64,
    pub spare: u64,
    /// Blocks read from the cache, blocks written into it, entries the allocator took.
    pub hits: u64,
    pub fills: u64,
    pub taken: u64,
}

/// The clean-block cache in free local blocks (see the module docs).
pub struct LocalCache {
    /// The image (None: the cache is off: a read-only mount, `cache_size=0`).
    image: Option<Arc<dyn Storage>>,
    /// Image byte offset of local block 0.
    data_offset: u64,
    /// Most blocks owned (cached and spare).
    cap: u64,
    state: Mutex<State>,
    hits: AtomicU64,
    fills: AtomicU64,
    taken: AtomicU64,
}

impl LocalCache {
    /// A cache of at most `cap` blocks in the data area of `image` (None: off) starting at
    /// byte `data_offset`; searches for free blocks start at block `first_goal`.
    pub fn new(
        image: Option<Arc<dyn Storage>>,
        data_offset: u64,
        cap: u64,
        first_goal: u64,
    ) -> Self {
        LocalCache {
            image: image.filter(|_| cap > 0),
            data_offset,
            cap,
            state: Mutex::new(State {
                cursor: first_goal,
                ..State::default()
            }),
            hits: AtomicU64::new(0),
            fills: AtomicU64::new(0),
            taken: AtomicU64::new(0),
        }
    }

    /// A cache that keeps nothing (tools, read-only mounts).
    pub fn off() -> Self {
        LocalCache::new(None, 0, 0, 0)
    }

    /// Whether blocks are cached at all.
    pub fn enabled(&self) -> bool {
        self.image.is_some()
    }

    /// Counts since mount.
    pub fn stats(&self) -> CacheStats {
        let st = lock(&self.state);
        CacheStats {
            blocks: st.slots.len() as u64,
            spare: st.spare.len() as u64,
            hits: self.hits.load(Ordering::Relaxed),
            fills: self.fills.load(Ordering::Relaxed),
            taken: self.taken.load(Ordering::Relaxed),
        }
    }

    /// Forget every entry and spare: the local blocks that hold cached bytes, as runs
    /// (first, blocks), for a clean unmount to punch (`ops::cache_space::give_back`).
    pub fn drain(&self) -> Vec<(u64, u64)> {
        let mut st = lock(&self.state);
        let owned = std::mem::take(&mut st.owner);
        *st = State::default();
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for b in owned.into_keys() {
            match runs.last_mut() {
                Some((s, l)) if *s + *l == b => *l += 1,
                _ => runs.push((b, 1)),
            }
        }
        runs
    }

    /// The allocator hands out local blocks [start, start+len): forget every entry and spare
    /// in them, before anything is written there.
    pub fn evict_run(&self, start: u64, len: u64) {
        if !self.enabled() {
            return;
        }
        let mut st = lock(&self.state);
        let end = start.saturating_add(len);
        let spares: Vec<u64> = st.spare.range(start..end).copied().collect();
        for b in spares {
            st.spare.remove(&b);
        }
        let held: Vec<u64> = st.owner.range(start..end).map(|(_, &v)| v).collect();
        self.taken.fetch_add(held.len() as u64, Ordering::Relaxed);
        for v in held {
            st.drop_entry(v);
        }
    }

    /// How many spare blocks to lend for fills of the vblocks `wanted`: those not cached, at
    /// most up to the bound (0 when off, or when the bound is reached: fills then evict
    /// LRU). Spares other reads were lent are not counted: reads run side by side, and a
    /// fill that finds no spare below the bound caches nothing rather than evict.
    pub fn spares_wanted(&self, wanted: impl Iterator<Item = u64>) -> u64 {
        if !self.enabled() {
            return 0;
        }
        let st = lock(&self.state);
        let missing = wanted.filter(|v| !st.slots.contains_key(v)).count() as u64;
        let owned = (st.owner.len() + st.spare.len()) as u64;
        missing.min(self.cap.saturating_sub(owned))
    }

    /// Add spare blocks found by `find(cursor, owned)` (runs of free local blocks from
    /// `cursor` on; `owned(start, len)` tells the first block of a run the cache owns
    /// already), under the cache's lock so two searches never pick the same block. The
    /// caller holds the filesystem lock (shared at least): nothing is allocated meanwhile.
    pub fn add_spares<E>(
        &self,
        find: impl FnOnce(u64, &dyn Fn(u64, u64) -> Option<u64>) -> Result<Vec<(u64, u64)>, E>,
    ) -> Result<(), E> {
        let mut st = lock(&self.state);
        let runs = {
            let st = &*st;
            let owned = |s: u64, l: u64| {
                let end = s.saturating_add(l);
                let a = st.owner.range(s..end).next().map(|(&b, _)| b);
                let b = st.spare.range(s..end).next().copied();
                a.into_iter().chain(b).min()
            };
            find(st.cursor, &owned)?
        };
        for (s, l) in runs {
            st.spare.extend(s..s + l);
            st.cursor = s + l;
        }
        Ok(())
    }

    /// Read the cached ones of vblocks `first..first + have.len()` into `out` (`have.len()`
    /// blocks), marking them in `have`; `good(i, block)` checks block `i`'s bytes (its CRC32C).
    /// A block that fails the checks is dropped from the cache and left unmarked.
    pub fn read(
        &self,
        first: u64,
        have: &mut [bool],
        out: &mut [u8],
        good: impl Fn(usize, &[u8]) -> bool,
    ) {
        let Some(image) = &self.image else { return };
        let found: Vec<(usize, Slot)> = {
            let mut st = lock(&self.state);
            let mut found = Vec::new();
            for i in (0..have.len()).filter(|&i| !have[i]) {
                let v = first + i as u64;
                let Some(s) = st.slots.get(&v).copied() else {
                    continue;
                };
                let used = st.next_tick();
                st.lru.remove(&s.used);
                st.lru.insert(used, v);
                let s = Slot { used, ..s };
                st.slots.insert(v, s);
                found.push((i, s));
            }
            found
        };
        for run in runs_of(&found) {
            let (i, s) = run[0];
            let buf = &mut out[i * BS..(i + run.len()) * BS];
            if let Err(e) = image.read_at(buf, self.data_offset + s.phys * BLOCK_SIZE) {
                log::debug!("clean cache: reading local block {}: {e}", s.phys);
                continue;
            }
            let mut st = lock(&self.state);
            for &(i, s) in run {
                let v = first + i as u64;
                let same = st.slots.get(&v).is_some_and(|now| now.fill == s.fill);
                if same && good(i, &out[i * BS..(i + 1) * BS]) {
                    have[i] = true;
                    self.hits.fetch_add(1, Ordering::Relaxed);
                } else if same {
                    log::debug!(
                        "clean cache: local block {} changed under vblock {v}",
                        s.phys
                    );
                    st.drop_entry(v);
                }
            }
        }
    }

    /// Keep vblocks `first..` (the whole blocks of `data`, just read from the bucket and
    /// checked) in local blocks: spare ones, or evicted LRU. A failed write drops the entry.
    pub fn fill(&self, first: u64, data: &[u8]) {
        let Some(image) = &self.image else { return };
        let mut st = lock(&self.state);
        let mut placed: Vec<(usize, Slot)> = Vec::new();
        for i in 0..data.len() / BS {
            let v = first + i as u64;
            if st.slots.contains_key(&v) {
                continue;
            }
            let Some(phys) = st.take_block(self.cap) else {
                break;
            };
            let t = st.next_tick();
            let s = Slot {
                phys,
                used: t,
                fill: t,
            };
            st.slots.insert(v, s);
            st.owner.insert(phys, v);
            st.lru.insert(t, v);
            placed.push((i, s));
        }
        for run in runs_of(&placed) {
            let (i, s) = run[0];
            let bytes = &data[i * BS..(i + run.len()) * BS];
            match image.write_at(bytes, self.data_offset + s.phys * BLOCK_SIZE) {
                Ok(()) => {
                    self.fills.fetch_add(run.len() as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    log::debug!("clean cache: writing local block {}: {e}", s.phys);
                    for &(i, _) in run {
                        st.drop_entry(first + i as u64);
                    }
                }
            }
        }
    }
}

/// `found` ((block index, slot), by index) cut into runs consecutive in both index and local
/// block: one read or write each.
fn runs_of(found: &[(usize, Slot)]) -> Vec<&[(usize, Slot)]> {
    let mut runs = Vec::new();
    let mut from = 0;
    for k in 1..=found.len() {
        let cut = k == found.len() || {
            let (pi, ps) = found[k - 1];
            let (i, s) = found[k];
            i != pi + 1 || s.phys != ps.phys + 1
        };
        if cut {
            runs.push(&found[from..k]);
            from = k;
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A memory image of `blocks` local blocks.
    fn image(blocks: usize) -> Arc<dyn Storage> {
        Arc::new(rvm_core::MemStorage::new(blocks * BS))
    }

    fn block(v: u64) -> Vec<u8> {
        vec![(v % 251) as u8 + 1; BS]
    }

    fn cache(cap: u64, spares: &[u64]) -> LocalCache {
        let c = LocalCache::new(Some(image(64)), 0, cap, 0);
        let runs: Vec<(u64, u64)> = spares.iter().map(|&b| (b, 1)).collect();
        c.add_spares::<()>(|_, _| Ok(runs)).unwrap();
        c
    }

    fn read_one(c: &LocalCache, v: u64) -> Option<Vec<u8>> {
        let mut have = [false];
        let mut out = vec![0u8; BS];
        c.read(v, &mut have, &mut out, |_, b| b == block(v).as_slice());
        have[0].then_some(out)
    }

    #[test]
    fn a_filled_block_reads_back_and_the_allocator_takes_it() {
        let c = cache(8, &[3, 4]);
        c.fill(100, &[block(100), block(101)].concat());
        assert_eq!(read_one(&c, 100), Some(block(100)));
        assert_eq!(read_one(&c, 101), Some(block(101)));
        c.evict_run(4, 1);
        assert_eq!(read_one(&c, 101), None, "taken by the allocator");
        assert_eq!(read_one(&c, 100), Some(block(100)));
        assert_eq!(c.stats().taken, 1);
    }

    #[test]
    fn drain_gives_the_filled_blocks_as_runs_and_forgets_them() {
        let c = cache(8, &[3, 4, 6, 7]);
        c.fill(100, &[block(100), block(101), block(102)].concat());
        assert_eq!(c.drain(), vec![(3, 2), (6, 1)]);
        assert_eq!(read_one(&c, 100), None);
        assert_eq!(c.stats().spare, 0);
    }

    #[test]
    fn the_bound_evicts_the_least_recently_used() {
        let c = cache(2, &[1, 2, 3]);
        c.fill(10, &block(10));
        c.fill(11, &block(11));
        assert!(read_one(&c, 10).is_some()); // 11 is now the least recently used
        c.fill(12, &block(12));
        assert_eq!(read_one(&c, 11), None);
        assert!(read_one(&c, 10).is_some() && read_one(&c, 12).is_some());
        assert_eq!(c.stats().blocks, 2);
    }

    #[test]
    fn a_changed_block_is_dropped_not_answered() {
        let img = image(8);
        let c = LocalCache::new(Some(img.clone()), 0, 8, 0);
        c.add_spares::<()>(|_, _| Ok(vec![(2, 1)])).unwrap();
        c.fill(7, &block(7));
        img.write_at(&block(99), 2 * BLOCK_SIZE).unwrap(); // a stray write into the block
        assert_eq!(read_one(&c, 7), None);
        assert_eq!(c.stats().blocks, 0);
    }

    #[test]
    fn spares_are_never_picked_twice_and_respect_the_bound() {
        let c = cache(3, &[5]);
        assert_eq!(
            c.spares_wanted(10..14),
            2,
            "4 missing, 1 spare owned, bound 3"
        );
        c.add_spares::<()>(|cursor, owned| {
            assert_eq!(cursor, 6);
            assert_eq!(owned(0, 10), Some(5));
            Ok(vec![])
        })
        .unwrap();
        assert_eq!(LocalCache::off().spares_wanted(0..4), 0);
    }
}
