//! The recoverable heap: every claimed chunk (dentry names, symlink targets, xattrs, tree
//! nodes, free-list chunks) lies inside [heap_start, heap_top), and none overlaps another. Of two
//! overlapping chunks, the one with the higher blame priority is repaired.

use crate::problem::Fix;
use crate::state::{Chunk, State};
use rvmfs::layout::pod;
use rvmfs::layout::superblock::field;
use rvmfs::ops::Op;
use rvmfs::store::btree::Tree;
use rvmfs::store::dentry::DENTRIES;
use rvmfs::store::extent_map::EXTENTS;
use rvmfs::store::heap;
use rvmfs::store::orphan::ORPHANS;
use rvmfs::store::xattr::XATTRS;
use rvmfs::FsResult;

/// Run the heap pass over the chunks the earlier passes claimed, plus tree nodes and free lists.
pub(crate) fn check(s: &mut State, progress: &dyn Fn(&str, u64, u64)) -> FsResult<()> {
    progress("Heap", 0, 1);
    claim_tree_nodes(s)?;
    claim_free_lists(s);
    check_overlaps(s);
    Ok(())
}

/// Claim every node of the four B+trees (blame 0: a tree is rebuilt only as a last resort).
fn claim_tree_nodes(s: &mut State) -> FsResult<()> {
    for (tree, name) in [
        (DENTRIES, "dentry"),
        (EXTENTS, "extent"),
        (XATTRS, "xattr"),
        (ORPHANS, "orphan"),
    ] {
        for node in Tree::nodes(&tree, s.bytes)? {
            s.heap_chunks.push(Chunk::new(
                node,
                4096,
                format!("{name} tree node"),
                Fix::RebuildTree(tree.0),
                0,
            ));
        }
    }
    Ok(())
}

/// Claim every chunk on the free lists (blame 2: a free list is the cheapest to give up).
fn claim_free_lists(s: &mut State) {
    for (class, &head) in s.sb.heap_free.iter().enumerate() {
        let size = heap::MIN_CHUNK << class;
        let mut at = head;
        let mut n = 0u64;
        while at != 0 && n <= s.sb.heap_end / size {
            s.heap_chunks.push(Chunk::new(
                at,
                size,
                format!("free {size}-byte heap chunk"),
                Fix::ResetFreeList(class),
                2,
            ));
            at = pod::get(s.bytes, at).unwrap_or(0);
            n += 1;
        }
    }
}

/// Sort the chunks by offset (each rounded up to its size class) and report every one outside
/// the heap or overlapping the furthest-reaching chunk before it.
fn check_overlaps(s: &mut State) {
    let mut spans: Vec<Chunk> = std::mem::take(&mut s.heap_chunks);
    for c in &mut spans {
        c.len = heap::class_of(c.len).map_or(c.len, |(_, size)| size);
    }
    spans.sort_by_key(|c| (c.at, c.len));
    let mut prev: Option<(u64, Chunk)> = None; // (end, chunk) of the furthest-reaching chunk
    for c in spans {
        let (at, len) = (c.at, c.len);
        if at < s.sb.heap_start || at + len > s.sb.heap_top {
            s.report.add(
                format!("heap: {} at {at} lies outside the heap", c.what),
                c.fix.clone(),
            );
            continue;
        }
        if let Some((end, p)) = &prev {
            if at < *end {
                let culprit = if c.blame >= p.blame {
                    c.fix.clone()
                } else {
                    p.fix.clone()
                };
                s.report.add(
                    format!("heap: {} at {at} overlaps {}", c.what, p.what),
                    culprit,
                );
            }
        }
        if prev.as_ref().is_none_or(|(end, _)| at + len > *end) {
            prev = Some((at + len, c));
        }
    }
}

/// Repair [`Fix::ResetFreeList`]: empty heap free list `class` (its chunks are leaked).
pub(crate) fn reset_free_list(op: &mut Op<'_>, class: usize) -> FsResult<()> {
    pod::put(&mut op.tx, field::HEAP_FREE + 8 * class as u64, &0u64)
}
