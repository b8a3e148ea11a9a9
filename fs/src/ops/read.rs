//! Reading file contents: a read is planned under the filesystem lock (which extent pieces
//! to copy, and their checksums), copied from the image without it ([`copy_planned`], under
//! `Geo::read_gate` only; the checksum worker verifies each part read meanwhile), and its
//! remaining checksums verified with no lock at all ([`verify_copied`]). Holes and unwritten
//! extents read as zeros. `REMOTE` extents of an `object_data` image are read from the
//! bucket (`remote::Blocks`), checked against their object's CRC32Cs, also without the lock
//! (objects are immutable).

use super::datasum::{self, PieceSums};
use super::file::{data_pos, MAX_FILE_SIZE};
use super::Geo;
use crate::error::{corrupt, errno, FsResult};
use crate::layout::BLOCK_SIZE;
use crate::store::extent_map::{self, Extent, UNWRITTEN};
use std::sync::Arc;

/// Read up to `size` bytes at `offset` of file `ino` (holes and unwritten extents read as zeros).
pub fn read(geo: &Geo, bytes: &[u8], ino: u64, offset: u64, size: u64) -> FsResult<Vec<u8>> {
    let plan = plan_read(geo, bytes, ino, offset, size)?;
    read_planned(&*geo.image, &plan)
}

/// What a read copies: its length and (offset in the buffer, image offset, length) of
/// each written extent piece (the rest reads as zeros), with the sums of each piece's blocks
/// when the file is checksummed (`sums`, parallel to `pieces`).
pub struct ReadPlan {
    pub len: usize,
    pub pieces: Vec<(usize, u64, usize)>,
    pub sums: Vec<Option<PieceSums>>,
    /// The file and its size (sums cover the bytes before the end of file).
    pub ino: u64,
    pub size: u64,
    /// Pieces of `REMOTE` extents: (offset in the buffer, first vblock, offset in that
    /// block, length), each inside one object, and where to read them.
    pub remote: Vec<(usize, u64, usize, usize)>,
    pub source: Option<Arc<crate::remote::Blocks>>,
}

/// Plan a read (under the lock): see [`read`].
pub fn plan_read(geo: &Geo, bytes: &[u8], ino: u64, offset: u64, size: u64) -> FsResult<ReadPlan> {
    let inode = geo.inode(bytes, ino)?;
    if inode.is_dir() {
        return errno(libc::EISDIR);
    }
    if inode.size > MAX_FILE_SIZE {
        // A damaged size: reading it would stream terabytes of zeros (fsck sets it again).
        return corrupt(format!(
            "inode {ino}: size {} is past the largest file size",
            inode.size
        ));
    }
    let mut plan = ReadPlan {
        len: 0,
        pieces: Vec::new(),
        sums: Vec::new(),
        ino,
        size: inode.size,
        remote: Vec::new(),
        source: geo.remote.clone(),
    };
    let table = geo.sums_for(&inode);
    if offset >= inode.size {
        return Ok(plan);
    }
    let end = inode.size.min(offset.saturating_add(size));
    plan.len = (end - offset) as usize;
    let mut pos = offset;
    while pos < end {
        let b = pos / BLOCK_SIZE;
        match extent_map::find(bytes, ino, b)? {
            Some(e) if e.first <= b => {
                let seg_end = end.min((e.last + 1) * BLOCK_SIZE);
                if e.is_remote() {
                    let at = (pos - offset) as usize;
                    let len = (seg_end - pos) as usize;
                    plan.remote
                        .push((at, e.phys_of(b), (pos % BLOCK_SIZE) as usize, len));
                } else if e.flags & UNWRITTEN == 0 {
                    let at = data_pos(geo, e.phys_of(b), pos % BLOCK_SIZE);
                    plan.pieces
                        .push(((pos - offset) as usize, at, (seg_end - pos) as usize));
                    let sums = table.map(|t| {
                        let n = (seg_end - 1) / BLOCK_SIZE - b + 1;
                        t.get(bytes, e.phys_of(b), n).map(|want| PieceSums {
                            block_pos: data_pos(geo, e.phys_of(b), 0),
                            first: b,
                            phys: e.phys_of(b),
                            want,
                        })
                    });
                    plan.sums.push(sums.transpose()?);
                }
                pos = seg_end;
            }
            Some(e) => pos = end.min(e.first * BLOCK_SIZE),
            None => pos = end,
        }
    }
    Ok(plan)
}

/// Copy a planned read's bytes from the image (needs no lock, see `Geo::read_gate`) and
/// verify the checksums of checksummed pieces: EIO (logged) on a mismatch.
pub fn read_planned(image: &dyn rvm_core::Storage, plan: &ReadPlan) -> FsResult<Vec<u8>> {
    verify_copied(plan, copy_planned(image, plan)?)
}

/// A planned read's bytes as copied from the image, not yet wholly verified: `buf` holds
/// every piece made of whole blocks (sequential reads) in place, its blocks before `checked`
/// (by piece, parallel to the plan's) already verified; `edges`, for each checksummed piece
/// that starts or ends inside a block (by its index in the plan), its whole blocks.
pub struct Copied {
    buf: Vec<u8>,
    edges: Vec<(usize, Vec<u8>)>,
    checked: Vec<usize>,
}

/// Bytes a whole-block piece is copied by at a time, each part's sums verified by the
/// checksum worker while the next part is read (`datasum::alongside`): a 1 MiB read (the
/// mount's readahead) in two halves, one hand-off, the first half's CRC hidden behind the
/// read of the second. (Parts of 256 KiB hid more of it but cost more CPU: each hand-off
/// wakes the worker, which looks for more work before it sleeps again.)
const PART: usize = 512 << 10;

/// The copy half of [`read_planned`]: the only part that must hold `Geo::read_gate`
/// (blocks being read are not reused); [`verify_copied`] then needs no lock at all. A piece
/// of whole blocks is read in parts, each verified while the next one is read (all but the
/// last: that one is [`verify_copied`]'s). EIO (logged) on a mismatch found here.
pub fn copy_planned(image: &dyn rvm_core::Storage, plan: &ReadPlan) -> FsResult<Copied> {
    let mut buf = vec![0u8; plan.len];
    let mut edges = Vec::new();
    let mut checked = vec![0; plan.pieces.len()];
    for (i, (&(at, pos, len), sums)) in plan.pieces.iter().zip(&plan.sums).enumerate() {
        match sums {
            Some(s) if !(pos == s.block_pos && len == whole_len(s)) => {
                let mut blocks = vec![0u8; whole_len(s)];
                image.read_at(&mut blocks, s.block_pos)?;
                edges.push((i, blocks));
            }
            Some(s) => checked[i] = copy_verifying(image, plan, s, &mut buf[at..at + len])?,
            None => {
                // In the same parts as a checksummed piece: the two differ by the sums only.
                for (k, part) in buf[at..at + len].chunks_mut(PART).enumerate() {
                    image.read_at(part, pos + (k * PART) as u64)?;
                }
            }
        }
    }
    Ok(Copied {
        buf,
        edges,
        checked,
    })
}

/// Read the whole-block piece `s` into `out` in parts of [`PART`] bytes, verifying each part
/// but the last alongside the read of the next; returns the bytes verified.
fn copy_verifying(
    image: &dyn rvm_core::Storage,
    plan: &ReadPlan,
    s: &PieceSums,
    out: &mut [u8],
) -> FsResult<usize> {
    let mut done: Option<(usize, &[u8])> = None;
    let mut checked = 0;
    for (k, part) in out.chunks_mut(PART).enumerate() {
        let check = done.map(|(at, prev)| {
            move || datasum::verify_from(plan.ino, plan.size, s, at / BLOCK_SIZE as usize, prev)
        });
        let at = k * PART;
        let (verified, read) =
            datasum::alongside(check, || image.read_at(part, s.block_pos + at as u64));
        read?;
        if let Some(v) = verified {
            v?;
            checked = at;
        }
        done = Some((at, part));
    }
    Ok(checked)
}

/// `n` blocks from virtual block `vblock` of file `ino`'s `REMOTE` extent, from the bucket.
/// Errors: EIO (logged) without one (a tool opened the image) or when the read fails.
fn remote_blocks(
    source: Option<&crate::remote::Blocks>,
    ino: u64,
    vblock: u64,
    n: u64,
    out: &mut [u8],
) -> FsResult<()> {
    match source {
        Some(r) => r.read(vblock, n, out),
        None => {
            log::error!("inode {ino}: its data is in the object store, which is not open here");
            errno(libc::EIO)
        }
    }
}

/// The vblocks of the `REMOTE` blocks a write of `len` bytes at `offset` of file `ino`
/// covers only in part (its first and last block): the copy on write needs their old bytes
/// under the exclusive lock, so the daemon reads them before taking it (into the caches of
/// `remote::Blocks`), and a slow bucket stalls only this write.
pub fn partial_remote(bytes: &[u8], ino: u64, offset: u64, len: u64) -> FsResult<Vec<u64>> {
    let Some(end) = offset.checked_add(len).filter(|_| len > 0) else {
        return Ok(Vec::new());
    };
    let mut edges = Vec::new();
    if !offset.is_multiple_of(BLOCK_SIZE) {
        edges.push(offset / BLOCK_SIZE);
    }
    if !end.is_multiple_of(BLOCK_SIZE) && !edges.contains(&(end / BLOCK_SIZE)) {
        edges.push(end / BLOCK_SIZE);
    }
    let mut vblocks = Vec::new();
    for b in edges {
        let found = extent_map::find(bytes, ino, b)?;
        if let Some(e) = found.filter(|e| e.first <= b && e.is_remote()) {
            vblocks.push(e.phys_of(b));
        }
    }
    Ok(vblocks)
}

/// The current contents of block `b` of extent `e` of file `ino`, local or `REMOTE`, for
/// a copy on write (an overwrite of part of it, a zeroed tail).
/// Errors: the image's read error; EIO when a `REMOTE` block cannot be read.
pub fn old_block(geo: &Geo, ino: u64, e: &Extent, b: u64, buf: &mut [u8]) -> FsResult<()> {
    if e.is_remote() {
        return remote_blocks(geo.remote.as_deref(), ino, e.phys_of(b), 1, buf);
    }
    geo.image.read_at(buf, data_pos(geo, e.phys_of(b), 0))?;
    Ok(())
}

/// The verify half of [`read_planned`]: check each checksummed piece of `copied` against
/// its sums (whole blocks in place, no copy, from what [`copy_planned`] left unchecked),
/// then take the edge pieces' bytes from their blocks, and read the `REMOTE` pieces from
/// the bucket. Returns the read's bytes; EIO (logged) on a mismatch or a failed read of the
/// bucket.
pub fn verify_copied(plan: &ReadPlan, copied: Copied) -> FsResult<Vec<u8>> {
    let Copied {
        mut buf,
        edges,
        checked,
    } = copied;
    let mut edges = edges.into_iter().peekable();
    for (i, (&(at, pos, len), sums)) in plan.pieces.iter().zip(&plan.sums).enumerate() {
        let Some(s) = sums else { continue };
        match edges.next_if(|(j, _)| *j == i) {
            Some((_, blocks)) => {
                datasum::verify(plan.ino, plan.size, s, &blocks)?;
                let lead = (pos - s.block_pos) as usize;
                buf[at..at + len].copy_from_slice(&blocks[lead..lead + len]);
            }
            None => {
                let from = checked.get(i).copied().unwrap_or(0);
                let k = from / BLOCK_SIZE as usize;
                datasum::verify_from(plan.ino, plan.size, s, k, &buf[at + from..at + len])?
            }
        }
    }
    // `REMOTE` pieces: objects are immutable, so no gate is needed while the bucket answers.
    for &(at, vblock, lead, len) in &plan.remote {
        let n = (lead + len).div_ceil(BLOCK_SIZE as usize);
        let mut blocks = vec![0u8; n * BLOCK_SIZE as usize];
        remote_blocks(
            plan.source.as_deref(),
            plan.ino,
            vblock,
            n as u64,
            &mut blocks,
        )?;
        buf[at..at + len].copy_from_slice(&blocks[lead..lead + len]);
    }
    Ok(buf)
}

/// Bytes of the whole blocks a checksummed piece lies in.
fn whole_len(s: &PieceSums) -> usize {
    s.want.len() * BLOCK_SIZE as usize
}
