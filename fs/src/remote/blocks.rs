//! Blocks of an `object_data` image in the bucket (docs/format.md 11.4, 11.5): reading
//! virtual blocks back checked against their object's CRC32Cs, through a bounded in-memory
//! cache of clean blocks and the clean cache in free local blocks ([`LocalCache`]), and the
//! set of inodes with dirty (local, not yet uploaded) blocks.
//!
//! A read of `n` consecutive vblocks of one object takes what the two caches hold, and one
//! ranged GET per run of the rest, its object's CRC array one more the first time (cached per
//! object: objects are immutable). A mismatch, a missing object or a request that fails or
//! times out (objstore's `Config::op_timeout`) is EIO, logged with the key; never the wrong
//! bytes.

use super::cache::LocalCache;
use super::full::Freed;
use super::{eio, lock};
use crate::error::FsResult;
use objstore::object::{self, BLOCK, TRAILER};
use objstore::{Bucket, ObjectId};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Clean blocks kept in memory (4096 blocks: 16 MiB), dropped oldest first.
pub const CACHE_BLOCKS: usize = 4096;
/// Objects whose CRC arrays are kept (4 KiB each at the default shift).
const FOOTERS: usize = 1024;

/// The bucket's blocks as the filesystem reads them, and its dirty inodes.
pub struct Blocks {
    bucket: Arc<Bucket>,
    shift: u32,
    footers: Mutex<Fifo<ObjectId, Arc<Vec<u32>>>>,
    cache: Mutex<Fifo<u64, Arc<[u8]>>>,
    local: LocalCache,
    dirty: Mutex<BTreeSet<u64>>,
    freed: Freed,
}

/// A vblock and its index in its object.
#[derive(Clone, Copy)]
struct Placed {
    vblock: u64,
    index: u32,
}

/// A map that forgets its oldest entries beyond `cap` (first in, first out).
struct Fifo<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
    cap: usize,
}

impl<K: std::hash::Hash + Eq + Copy, V: Clone> Fifo<K, V> {
    fn new(cap: usize) -> Self {
        Fifo {
            map: HashMap::new(),
            order: VecDeque::new(),
            cap,
        }
    }
    fn get(&self, k: &K) -> Option<V> {
        self.map.get(k).cloned()
    }
    fn put(&mut self, k: K, v: V) {
        if self.map.insert(k, v).is_none() {
            self.order.push_back(k);
        }
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }
}

impl Blocks {
    /// Blocks of objects of `1 << shift` blocks in `bucket`, kept in `local` too.
    pub fn new(bucket: Arc<Bucket>, shift: u32, local: LocalCache) -> Blocks {
        Blocks {
            bucket,
            shift,
            footers: Mutex::new(Fifo::new(FOOTERS)),
            cache: Mutex::new(Fifo::new(CACHE_BLOCKS)),
            local,
            dirty: Mutex::default(),
            freed: Freed::default(),
        }
    }

    /// The clean cache in free local blocks.
    pub fn local(&self) -> &LocalCache {
        &self.local
    }

    /// Local blocks freed by the uploader, for writes waiting for space (`-o cache_full=`).
    pub fn freed(&self) -> &Freed {
        &self.freed
    }

    /// Whether some inode is noted dirty (an upload could free local blocks).
    pub fn any_dirty(&self) -> bool {
        !lock(&self.dirty).is_empty()
    }

    /// log2 of the blocks per object.
    pub fn shift(&self) -> u32 {
        self.shift
    }

    /// Note that inode `ino` has (or may have) local blocks to upload.
    pub fn mark_dirty(&self, ino: u64) {
        lock(&self.dirty).insert(ino);
    }

    /// The inodes noted dirty, oldest number first.
    pub fn dirty(&self) -> Vec<u64> {
        lock(&self.dirty).iter().copied().collect()
    }

    /// Inode `ino` has no local blocks left.
    pub fn clean(&self, ino: u64) {
        lock(&self.dirty).remove(&ino);
    }

    /// Keep a just-uploaded block in the clean cache (its bytes are the object's).
    pub fn keep(&self, vblock: u64, data: &[u8]) {
        lock(&self.cache).put(vblock, Arc::from(data));
    }

    /// Read `n` blocks from virtual block `vblock` on (inside one object) into `out`
    /// (`n * 4096` bytes): from the memory cache, the local cache, then the bucket.
    /// Errors: EIO (logged) when the bucket cannot give them checked.
    pub fn read(&self, vblock: u64, n: u64, out: &mut [u8]) -> FsResult<()> {
        let n = n as usize;
        let mut have = vec![false; n];
        {
            let cache = lock(&self.cache);
            for (i, h) in have.iter_mut().enumerate() {
                if let Some(b) = cache.get(&(vblock + i as u64)) {
                    out[i * BLOCK..(i + 1) * BLOCK].copy_from_slice(&b);
                    *h = true;
                }
            }
        }
        if have.iter().all(|&h| h) {
            return Ok(());
        }
        let (id, index) = ObjectId::of_vblock(vblock, self.shift);
        let crcs = self.footer(id)?;
        let end = index as usize + n;
        if end > crcs.len() {
            return Err(eio(format_args!(
                "{}: blocks {index}..{end} asked of an object of {} blocks",
                id.name(),
                crcs.len()
            )));
        }
        let crc_of = |i: usize| crcs[index as usize + i];
        self.local.read(vblock, &mut have, out, |i, b| {
            object::check_block(b, index + i as u32, crc_of(i)).is_ok()
        });
        let mut i = 0;
        while i < n {
            let j = (i..n).find(|&j| have[j]).unwrap_or(n);
            if i < j {
                let at = Placed {
                    vblock: vblock + i as u64,
                    index: index + i as u32,
                };
                self.fetch(at, &crcs, &mut out[i * BLOCK..j * BLOCK])?;
            }
            i = j + 1;
        }
        Ok(())
    }

    /// Blocks `at..` (as many as `out` holds) from the bucket: one ranged GET, each block
    /// checked against `crcs` (its object's), then kept in both caches.
    fn fetch(&self, at: Placed, crcs: &[u32], out: &mut [u8]) -> FsResult<()> {
        let (id, _) = ObjectId::of_vblock(at.vblock, self.shift);
        let n = out.len() / BLOCK;
        let from = u64::from(at.index) * BLOCK as u64;
        let got = self
            .bucket
            .get_range(&id.name(), from..from + out.len() as u64)
            .map_err(eio)?;
        if got.len() != out.len() {
            return Err(eio(format_args!("{}: short ranged read", id.name())));
        }
        for i in 0..n {
            let b = &got[i * BLOCK..(i + 1) * BLOCK];
            let ix = at.index + i as u32;
            object::check_block(b, ix, crcs[ix as usize])
                .map_err(|e| eio(format_args!("{}: {e}", id.name())))?;
        }
        out.copy_from_slice(&got);
        {
            let mut cache = lock(&self.cache);
            for i in 0..n {
                cache.put(
                    at.vblock + i as u64,
                    Arc::from(&got[i * BLOCK..(i + 1) * BLOCK]),
                );
            }
        }
        self.local.fill(at.vblock, &got);
        Ok(())
    }

    /// The CRC32C of every block of object `id` (its footer, checked), cached.
    fn footer(&self, id: ObjectId) -> FsResult<Arc<Vec<u32>>> {
        if let Some(f) = lock(&self.footers).get(&id) {
            return Ok(f);
        }
        let name = id.name();
        let (tail, len) = self.bucket.get_tail(&name, TRAILER as u64).map_err(eio)?;
        let count = object::trailer_count(&tail).map_err(|e| eio(format_args!("{name}: {e}")))?;
        let crcs_at = u64::from(count) * BLOCK as u64;
        if crcs_at >= len {
            return Err(eio(format_args!("{name}: {count} blocks in {len} bytes")));
        }
        let footer = self.bucket.get_range(&name, crcs_at..len).map_err(eio)?;
        object::check_footer(&footer, len as usize, id)
            .map_err(|e| eio(format_args!("{name}: {e}")))?;
        let crcs: Vec<u32> = footer[..count as usize * 4]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let crcs = Arc::new(crcs);
        lock(&self.footers).put(id, crcs.clone());
        Ok(crcs)
    }
}

impl std::fmt::Debug for Blocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "remote::Blocks({})", self.bucket.target())
    }
}
