//! Pass 1b: extents. Every extent belongs to a regular file in use, lies inside the data area
//! and owns its blocks alone; each file's block count equals the sum of its extents. Counts
//! extents and fragmented files.

use crate::problem::Fix;
use crate::repair::update;
use crate::state::State;
use rvmfs::ops::Op;
use rvmfs::store::extent_map::{Extent, EXTENTS};
use rvmfs::FsResult;
use std::collections::HashMap;

/// Run pass 1b; fills `s.owned` and `s.blocks_of`.
pub(crate) fn check(s: &mut State, progress: &dyn Fn(&str, u64, u64)) -> FsResult<()> {
    progress("Pass 1b: extents", 0, 1);
    // ino -> (physical end of its previous extent, counted as non-contiguous already).
    let mut last_of: HashMap<u64, (u64, bool)> = HashMap::new();
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
        for b in e.phys..e.phys + e.len() {
            s.claim(b);
        }
        *s.blocks_of.entry(ino).or_default() += e.len();
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
    Ok(())
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

/// Repair [`Fix::SetBlocks`]: set inode `ino`'s block count.
pub(crate) fn set_blocks(op: &mut Op<'_>, ino: u64, blocks: u64) -> FsResult<()> {
    update(op, ino, |n| n.blocks = blocks)
}
