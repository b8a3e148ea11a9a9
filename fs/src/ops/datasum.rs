//! Keeping data checksums right (the table's format is `store::csum`): the sums of the blocks
//! a write, truncate or punch changes go into the same transaction as the change itself, and
//! reads verify what they copy.
//!
//! | path | blocks | sum |
//! |---|---|---|
//! | write into new or unwritten blocks, copy-on-write overwrite | whole blocks built in memory | [`Op::put_sums_with`] of that buffer: the request's whole blocks summed before the lock ([`WriteSums::of`]), the edge blocks under it |
//! | append into the last, partly filled block; growing past it (truncate, fallocate) | copied on write: a state not yet durable may have shrunk the file, so its bytes past the end of file are not free to change in place | [`Op::put_sums`] |
//! | truncate to the middle of a block | the new last block, masked at the new size | [`Op::resum_block`] |
//! | punch hole / zero range, partial blocks | the block after its bytes were zeroed | [`Op::resum_block`] |
//! | fallocate (unwritten), punch of whole blocks, free | none: a slot counts only while its block is written | - |
//!
//! Logged small writes and copy_file_range go through the same write path; mmap writes reach
//! the daemon as ordinary write requests (the kernel's writeback).

use super::Op;
use crate::error::{errno, FsResult};
use crate::layout::inode::Inode;
use crate::layout::BLOCK_SIZE;
use crate::store::csum::{self, block_sum, valid_len, NODATASUM};
use std::sync::OnceLock;

/// The checksum worker: one thread, made on first use (rayon-core's pool, so that a read
/// hands it work borrowed from its buffer, a scoped spawn, without starting a thread per
/// request: that costs 27-62 µs here, as much as the sums of 1 MiB). None if the thread
/// could not be made; sums are then verified in line.
fn worker() -> Option<&'static rayon_core::ThreadPool> {
    static POOL: OnceLock<Option<rayon_core::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon_core::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(|_| "rvmfs-sums".into())
            .build()
            .ok()
    })
    .as_ref()
}

/// Run `sum` (if any) on the checksum worker while `io` runs on this thread, and return
/// both results: a read's CRC pass overlaps the read of its next part instead of adding to
/// it (as btrfs verifies reads in end-io workers). `sum` runs in line, before `io`, when
/// there is no worker; its result is None only when `sum` is.
///
/// For reads only: `io` there waits for the disk, so the worker gets this thread's core. A
/// write's `pwrite` into the page cache keeps its core busy; with the sums of a 1 MiB write
/// handed to the worker (tried: `rvmfs-bench --workloads datasum --reps 5`, load 3.7-7) the
/// write lost 17.9% to the sums instead of a few: the worker waited for a core and read the
/// data from the other core's cache. Writes sum in line, before the lock ([`WriteSums::of`]).
pub fn alongside<S: Send, R>(
    sum: Option<impl FnOnce() -> S + Send>,
    io: impl FnOnce() -> R,
) -> (Option<S>, R) {
    let Some(sum) = sum else {
        return (None, io());
    };
    let Some(pool) = worker() else {
        let s = sum();
        return (Some(s), io());
    };
    let mut s = None;
    // The scope returns once the spawned job has run: `s` is set then.
    let r = pool.in_place_scope(|scope| {
        scope.spawn(|_| s = Some(sum()));
        io()
    });
    (s, r)
}

/// The sums of the whole blocks a write request's buffer covers, computed from the request
/// before the filesystem lock is taken (`WriteSums::of`): logical blocks from `first` on.
/// [`Op::put_sums_with`] takes a block's sum from here when the block it stores is one of
/// these (whole blocks of the request hold the request's bytes whatever the path).
#[derive(Default)]
pub struct WriteSums {
    first: u64,
    sums: Vec<u32>,
}

impl WriteSums {
    /// The sums of the whole blocks of `data`, to be written at byte `offset` of a file;
    /// nothing when `on` is false (the mount keeps no checksums).
    pub fn of(on: bool, offset: u64, data: &[u8]) -> WriteSums {
        let first = offset.div_ceil(BLOCK_SIZE);
        let lead = first
            .checked_mul(BLOCK_SIZE)
            .map(|start| (start - offset) as usize);
        match lead {
            Some(lead) if on && lead < data.len() => WriteSums {
                first,
                sums: data[lead..]
                    .chunks_exact(BLOCK_SIZE as usize)
                    .map(|blk| block_sum(blk, BLOCK_SIZE as usize))
                    .collect(),
            },
            _ => WriteSums::default(),
        }
    }

    /// The sum of logical block `b`, if the request covers it whole.
    fn get(&self, b: u64) -> Option<u32> {
        let i = usize::try_from(b.checked_sub(self.first)?).ok()?;
        self.sums.get(i).copied()
    }
}

/// A planned read's checksums for one piece: its blocks' image offset, first logical and
/// physical block, and the stored sum of each block.
pub struct PieceSums {
    pub block_pos: u64,
    pub first: u64,
    pub phys: u64,
    pub want: Vec<u32>,
}

impl Op<'_> {
    /// Before a write to `node`: on a `nodatasum` mount of an image with checksums the file
    /// becomes NODATASUM; on a checksumming mount a NODATASUM file holding no blocks is
    /// checksummed again.
    pub fn note_data_write(&self, node: &mut Inode) {
        if self.geo.csums.is_none() {
            return;
        }
        if self.geo.nodatasum {
            node.flags |= NODATASUM;
        } else if node.blocks == 0 {
            node.flags &= !NODATASUM;
        }
    }

    /// Store the sums of `data` (whole blocks, logical blocks from `b`, at physical block
    /// `phys`) of file `node` once it is `size` bytes long.
    pub fn put_sums(
        &mut self,
        node: &Inode,
        phys: u64,
        b: u64,
        data: &[u8],
        size: u64,
    ) -> FsResult<()> {
        self.put_sums_with(node, phys, b, data, size, &WriteSums::default())
    }

    /// [`Op::put_sums`], taking the sums of the blocks `pre` holds from there (computed
    /// before the lock) and computing only the others (the partly written edge blocks).
    /// Nothing in a plan's dry run (`write_plan.rs`): it is aborted, and its commit stores
    /// the sums.
    pub fn put_sums_with(
        &mut self,
        node: &Inode,
        phys: u64,
        b: u64,
        data: &[u8],
        size: u64,
        pre: &WriteSums,
    ) -> FsResult<()> {
        let Some(t) = self.geo.sums_for(node).filter(|_| !self.planning()) else {
            return Ok(());
        };
        let sums: Vec<u32> = data
            .chunks(BLOCK_SIZE as usize)
            .zip(b..)
            .map(|(blk, lb)| {
                pre.get(lb)
                    .unwrap_or_else(|| block_sum(blk, valid_len(size, lb)))
            })
            .collect();
        t.put(&mut self.tx, phys, &sums)
    }

    /// Recompute the sum of logical block `b` (physical `phys`) of file `node`, `size` bytes
    /// long once this operation commits: read the block from the image, let `edit` change it
    /// (to what it will hold), sum it. Nothing in a plan's dry run, as [`Op::put_sums_with`].
    pub fn resum_block(
        &mut self,
        node: &Inode,
        phys: u64,
        b: u64,
        size: u64,
        edit: impl FnOnce(&mut [u8]),
    ) -> FsResult<()> {
        let Some(t) = self.geo.sums_for(node).filter(|_| !self.planning()) else {
            return Ok(());
        };
        let mut blk = vec![0u8; BLOCK_SIZE as usize];
        let at = super::file::data_pos(self.geo, phys, 0);
        self.geo.image.read_at(&mut blk, at)?;
        edit(&mut blk);
        t.put(&mut self.tx, phys, &[block_sum(&blk, valid_len(size, b))])
    }
}

/// Check the blocks a piece read (`data`: whole blocks) against their sums; EIO on a
/// mismatch, logged with the inode, the file offset and the physical block.
pub fn verify(ino: u64, size: u64, s: &PieceSums, data: &[u8]) -> FsResult<()> {
    verify_from(ino, size, s, 0, data)
}

/// [`verify`] of part of a piece: `data` holds its blocks from block `k` of the piece on.
pub fn verify_from(ino: u64, size: u64, s: &PieceSums, k: usize, data: &[u8]) -> FsResult<()> {
    let want = s.want.get(k..).unwrap_or(&[]);
    match csum::first_mismatch(data, s.first + k as u64, size, want) {
        None => Ok(()),
        Some((i, stored, computed)) => {
            let i = (k + i) as u64;
            log::error!(
                "inode {ino}: data checksum mismatch at file offset {} (data block {}): \
                 stored {stored:08x}, computed {computed:08x}; answering EIO",
                (s.first + i) * BLOCK_SIZE,
                s.phys + i
            );
            errno(libc::EIO)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_sums_cover_exactly_the_whole_blocks_of_the_request() {
        let bs = BLOCK_SIZE as usize;
        let data: Vec<u8> = (0..3 * bs + 5).map(|i| (i * 7 % 253) as u8).collect();
        // Bytes 1000.. of the file: block 0 and block 3 are partly written, 1 and 2 whole.
        let w = WriteSums::of(true, 1000, &data);
        let lead = bs - 1000;
        assert_eq!(w.get(0), None);
        assert_eq!(w.get(1), Some(block_sum(&data[lead..lead + bs], bs)));
        assert_eq!(
            w.get(2),
            Some(block_sum(&data[lead + bs..lead + 2 * bs], bs))
        );
        assert_eq!(w.get(3), None);
        assert_eq!(WriteSums::of(false, 0, &data).get(0), None, "off: none");
        assert_eq!(WriteSums::of(true, 4096, &data[..100]).get(1), None);
        assert_eq!(WriteSums::of(true, u64::MAX - 10, &data).get(0), None);
    }
}
