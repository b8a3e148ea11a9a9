//! Whether a region's files read only data that is in the bucket (`object_data` images,
//! docs/format.md 11.5 and 11.8): no written extent (neither [`UNWRITTEN`] nor [`REMOTE`])
//! points at a local data block. A restore from the bucket has none of the local blocks, so
//! `rvmfs-admin restore` stops at the newest shipped state this holds in
//! (`objstore::ship::restore_where`).
//!
//! A restore asks after every replayed record. Scanning the whole extent tree each time
//! would cost records x extents; [`LocalData`] instead remembers the tree's nodes (their
//! region offsets) and its root, and rescans only after a record that wrote into one of
//! those nodes or changed the root. A record that leaves them alone leaves the tree, hence
//! the answer, as it was (a node that joins the tree is linked in by a write to its parent
//! or to the root). So the cost is O(ranges x log nodes) per record, plus a scan per record
//! that changed the extent tree; a scan stops at the first local extent.

use super::btree::NODE_BYTES;
use super::extent_map::{EXTENTS, REMOTE, UNWRITTEN};
use crate::error::FsResult;
use crate::layout::pod;
use crate::layout::superblock::field;
use std::ops::Range;

/// The last answer and what it rests on (see the module doc).
#[derive(Debug, Default)]
pub struct LocalData {
    /// Region offsets of the extent tree's nodes at the last scan, sorted.
    nodes: Vec<u64>,
    /// The tree's root at the last scan; None before the first.
    root: Option<u64>,
    /// The first written local extent found by the last scan: (inode, first logical
    /// block), or None when there is none.
    local: Option<(u64, u64)>,
    scans: u64,
}

impl LocalData {
    /// A judge that has seen no state yet (its first call scans).
    pub fn new() -> LocalData {
        LocalData::default()
    }

    /// Whether no written extent of the region `bytes` points at a local block, given the
    /// byte ranges of the region (offsets from its start) written since the last call.
    /// Errors: the extent tree is damaged (a node that does not decode, a cycle).
    pub fn all_remote(&mut self, bytes: &[u8], touched: &[Range<usize>]) -> FsResult<bool> {
        let root: u64 = pod::get(bytes, field::EXTENT_ROOT)?;
        if self.root != Some(root) || touched.iter().any(|t| self.hits(t)) {
            self.scan(bytes)?;
            self.root = Some(root);
        }
        Ok(self.local.is_none())
    }

    /// The first written local extent the last answer saw: (inode, first logical block).
    pub fn first_local(&self) -> Option<(u64, u64)> {
        self.local
    }

    /// How many times the tree was scanned (a measure for tests and figures).
    pub fn scans(&self) -> u64 {
        self.scans
    }

    /// Does byte range `t` overlap one of the remembered nodes?
    fn hits(&self, t: &Range<usize>) -> bool {
        let (start, end) = (t.start as u64, t.end as u64);
        let i = self.nodes.partition_point(|&n| n + NODE_BYTES <= start);
        self.nodes.get(i).is_some_and(|&n| n < end)
    }

    fn scan(&mut self, bytes: &[u8]) -> FsResult<()> {
        self.scans += 1;
        let mut nodes = EXTENTS.nodes(bytes)?;
        nodes.sort_unstable();
        self.nodes = nodes;
        self.local = None;
        EXTENTS.scan(bytes, (0, 0), (u64::MAX, u64::MAX), |k, v| {
            if v[2] & (REMOTE | UNWRITTEN) == 0 {
                self.local = Some((k.0, v[0]));
                return Ok(false);
            }
            Ok(true)
        })
    }
}
