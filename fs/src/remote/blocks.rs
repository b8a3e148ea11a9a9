//! Blocks of an `object_data` image in the bucket (docs/format.md 11.4, 11.5): reading
//! virtual blocks back checked against their object's CRC32Cs, a bounded in-memory cache of
//! clean blocks, and the set of inodes with dirty (local, not yet uploaded) blocks.
//!
//! A read of `n` consecutive vblocks of one object is one ranged GET, its object's CRC array
//! one more the first time (cached per object: objects are immutable). A mismatch, a missing
//! object or a request that fails or times out (objstore's `Config::op_timeout`) is EIO,
//! logged with the key; never the wrong bytes.

use super::{eio, lock};
use crate::error::FsResult;
use crate::layout::BLOCK_SIZE;
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
    dirty: Mutex<BTreeSet<u64>>,
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
    /// Blocks of objects of `1 << shift` blocks in `bucket`.
    pub fn new(bucket: Arc<Bucket>, shift: u32) -> Blocks {
        Blocks {
            bucket,
            shift,
            footers: Mutex::new(Fifo::new(FOOTERS)),
            cache: Mutex::new(Fifo::new(CACHE_BLOCKS)),
            dirty: Mutex::default(),
        }
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
    /// (`n * 4096` bytes). Errors: EIO (logged) when the bucket cannot give them checked.
    pub fn read(&self, vblock: u64, n: u64, out: &mut [u8]) -> FsResult<()> {
        let bs = BLOCK_SIZE as usize;
        let mut missing = None;
        {
            let cache = lock(&self.cache);
            for i in 0..n {
                match cache.get(&(vblock + i)) {
                    Some(b) => out[i as usize * bs..(i as usize + 1) * bs].copy_from_slice(&b),
                    None => {
                        missing = Some(i);
                        break;
                    }
                }
            }
        }
        let Some(from) = missing else { return Ok(()) };
        self.fetch(vblock + from, n - from, &mut out[from as usize * bs..])
    }

    /// [`Blocks::read`] from the bucket: one ranged GET, each block checked.
    fn fetch(&self, vblock: u64, n: u64, out: &mut [u8]) -> FsResult<()> {
        let (id, index) = ObjectId::of_vblock(vblock, self.shift);
        let crcs = self.footer(id)?;
        let end = u64::from(index) + n;
        if end > crcs.len() as u64 {
            return Err(eio(format_args!(
                "{}: blocks {index}..{end} asked of an object of {} blocks",
                id.name(),
                crcs.len()
            )));
        }
        let at = u64::from(index) * BLOCK as u64;
        let got = self
            .bucket
            .get_range(&id.name(), at..at + n * BLOCK as u64)
            .map_err(eio)?;
        if got.len() as u64 != n * BLOCK as u64 {
            return Err(eio(format_args!("{}: short ranged read", id.name())));
        }
        let mut cache = lock(&self.cache);
        for i in 0..n as usize {
            let b = &got[i * BLOCK..(i + 1) * BLOCK];
            let ix = index + i as u32;
            object::check_block(b, ix, crcs[ix as usize])
                .map_err(|e| eio(format_args!("{}: {e}", id.name())))?;
            out[i * BLOCK..(i + 1) * BLOCK].copy_from_slice(b);
            cache.put(vblock + i as u64, Arc::from(b));
        }
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
