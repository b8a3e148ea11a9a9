//! The checks, in e2fsck's order: superblock; pass 0 the B+trees; pass 1 inodes and extents
//! (blocks owned once, counted per file); pass 2 directory entries; pass 3 connectivity (every
//! directory reachable from the root, ".." right, no cycles); pass 4 link counts; the orphan
//! list; pass 5 bitmaps and counters; the heap (no chunk overlaps another).
//!
//! Each finding is a `Problem` with the repair that fixes it; each pass in `pass/` holds its
//! checks and its repairs, and `repair.rs` applies them.

use crate::pass::{
    connectivity, dentries, extents, free_space, heap, inodes, links, orphans, superblock, trees,
    xattrs,
};
use crate::state::State;
use rvmfs::store;
use rvmfs::FsResult;

pub use crate::pass::trees::TREES;
pub use crate::problem::{Fix, Problem, Report};

/// Run every check over the region `bytes`; `progress(stage, done, total)` is told how far
/// the long passes are.
///
/// Errors: the superblock cannot be read or its layout is inconsistent, or a structure the
/// passes walk cannot be read.
pub fn check(bytes: &[u8], progress: &dyn Fn(&str, u64, u64)) -> FsResult<Report> {
    let sb = store::superblock(bytes)?;
    superblock::check(bytes, &sb)?;
    let mut s = State::new(bytes, sb);
    if !trees::check(&mut s)? {
        return Ok(s.report);
    }
    inodes::check(&mut s, progress)?;
    extents::check(&mut s, progress)?;
    dentries::check(&mut s, progress)?;
    connectivity::check(&mut s, progress)?;
    links::check(&mut s, progress);
    xattrs::claim_chunks(&mut s)?;
    orphans::check(&mut s);
    free_space::check(&mut s, progress)?;
    heap::check(&mut s, progress)?;
    Ok(s.report)
}
