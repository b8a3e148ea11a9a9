//! Pass 1b: extents. Every extent belongs to a regular file in use, lies inside the data area
//! and owns its blocks alone; each file's block count equals the sum of its extents. Counts
//! extents and fragmented files. A `REMOTE` extent (`object_data` images) is checked against
//! its vblock form instead (inside one data object, never unwritten) and owns no local
//! blocks (the leaked-object sweep, `objects.rs`, looks at its object).

use crate::problem::Fix;
use crate::repair::update;
use crate::state::State;
use rvmfs::layout::BLOCK_SIZE;
use rvmfs::ops::file::MAX_FILE_SIZE;
use rvmfs::ops::Op;
use rvmfs::store::extent_map::{check_remote, Extent, EXTENTS};
use rvmfs::FsResult;
use std::collections::HashMap;

/// Run pass 1b; fills `s.owned` and `s.blocks_of`.
pub(crate) fn check(s: &mut State, progress: &dyn Fn(&str, u64, u64)) -> FsResult<()> {
    progress("Pass 1b: extents", 0, 1);
    // ino -> (physical end of its previous extent, counted as non-contiguous already).
    let mut last_of: HashMap<u64, (u64, bool)> = HashMap::new();
    // ino -> one past its last mapped file block.
    let mut ends: HashMap<u64, u64> = HashMap::new();
    let mut extent_problems = Vec::new();
    let bytes = s.bytes;
    EXTENTS.scan(bytes, (0, 0), (u64::MAX, u64::MAX), |k, v| {
        let (ino, last) = k;
        let e = Extent {
            first: v[0],
            last,
            phys: v[1],
            flags: v[2],
        };
        s.report.extents += 1;
        if let Some(what) = misplaced(s, ino, &e).or_else(|| owned_twice(s, ino, &e)) {
            extent_problems.push((what, Fix::RemoveExtent { ino, last }));
            return Ok(true);
        }
        if !e.is_remote() {
            for b in e.phys..e.phys + e.len() {
                s.claim(b);
            }
        }
        *s.blocks_of.entry(ino).or_default() += e.len();
        let end = ends.entry(ino).or_default();
        *end = (*end).max(e.last + 1);
        // A file is non-contiguous (counted once) when an extent does not start where the
        // previous one ended on disk, as e2fsck counts it (physical blocks only: a hole
        // between physically adjacent extents is no fragmentation).
        let counted = match last_of.get(&ino) {
            Some(&(prev_end, counted)) if !counted && prev_end != e.phys => {
                s.report.fragmented += 1;
                true
            }
            Some(&(_, counted)) => counted,
            None => false,
        };
        last_of.insert(ino, (e.phys + e.len(), counted));
        Ok(true)
    })?;
    for (what, fix) in extent_problems {
        s.report.add(what, fix);
    }
    check_block_counts(s);
    check_sizes(s, &ends);
    Ok(())
}

/// A regular file's size must not pass the largest file size (`file::MAX_FILE_SIZE`): the
/// daemon refuses to read such a file; the size becomes the end of its last extent.
fn check_sizes(s: &mut State, ends: &HashMap<u64, u64>) {
    for (&ino, node) in &s.inodes {
        if node.is_reg() && node.size > MAX_FILE_SIZE {
            let size = ends.get(&ino).copied().unwrap_or(0) * BLOCK_SIZE;
            s.report.add(
                format!(
                    "inode {ino}: size {} is past the largest file size, should be {size}",
                    node.size
                ),
                Fix::SetSize { ino, size },
            );
        }
    }
}

/// Why extent `e` of inode `ino` cannot stand: its inode is free or not a regular file, or it
/// lies outside the data area.
fn misplaced(s: &State, ino: u64, e: &Extent) -> Option<String> {
    match s.inodes.get(&ino) {
        None => Some(format!(
            "extent of blocks {}..={} belongs to free inode {ino}",
            e.first, e.last
        )),
        Some(n) if !n.is_reg() => Some(format!(
            "inode {ino} is not a regular file but has an extent"
        )),
        _ if e.is_remote() => check_remote(ino, *e, s.sb.object_shift)
            .err()
            .map(|err| err.to_string()),
        _ if e.first > e.last
            || e.phys
                .checked_add(e.len())
                .is_none_or(|end| end > s.sb.data_blocks) =>
        {
            Some(format!(
                "inode {ino}: extent {}..={} at block {} lies outside the data area",
                e.first, e.last, e.phys
            ))
        }
        _ => None,
    }
}

/// The first block of extent `e` that an earlier extent already owns, as a message.
fn owned_twice(s: &State, ino: u64, e: &Extent) -> Option<String> {
    if e.is_remote() {
        return None; // no local blocks (a vblock is never reused: objects are immutable)
    }
    let b = (e.phys..e.phys + e.len()).find(|&b| s.owns(b))?;
    Some(format!(
        "inode {ino}: block {b} (file block {}) is owned twice",
        e.first + (b - e.phys)
    ))
}

/// Each regular file's block count must equal the blocks its extents own.
fn check_block_counts(s: &mut State) {
    for (&ino, node) in &s.inodes {
        let counted = s.blocks_of.get(&ino).copied().unwrap_or(0);
        if node.is_reg() && node.blocks != counted {
            s.report.add(
                format!(
                    "inode {ino}: block count {} should be {counted}",
                    node.blocks
                ),
                Fix::SetBlocks {
                    ino,
                    blocks: counted,
                },
            );
        }
    }
}

/// Repair [`Fix::RemoveExtent`]: remove the extent of inode `ino` ending at file block `last`.
pub(crate) fn remove(op: &mut Op<'_>, ino: u64, last: u64) -> FsResult<()> {
    EXTENTS.remove(&mut op.tx, (ino, last)).map(|_| ())
}

/// Repair [`Fix::SetSize`]: set inode `ino`'s size (bytes).
pub(crate) fn set_size(op: &mut Op<'_>, ino: u64, size: u64) -> FsResult<()> {
    update(op, ino, |n| n.size = size)
}

/// Repair [`Fix::SetBlocks`]: set inode `ino`'s block count.
pub(crate) fn set_blocks(op: &mut Op<'_>, ino: u64, blocks: u64) -> FsResult<()> {
    update(op, ino, |n| n.blocks = blocks)
}
