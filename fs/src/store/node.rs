//! One B+tree node in the region (docs/format.md section 6): its layout, a borrowed view that
//! searches it in place, and the decoded form the changes work on.
//!
//! ```text
//! leaf:     kind=1 u16 | count u16 | pad 12 | count x (key u64,u64 | value u64,u64,u64)
//! slotted:  kind=3 u16 | count u16 | pad 12 | count x slot u16 | ... | entries (`slotted`)
//! internal: kind=2 u16 | count u16 | pad 4 | child0 u64 | count x (key u64,u64 | child u64)
//! ```
//! Lookups descend through [`View`]s: a binary search over the keys where they lie, so a
//! descent reads about log2(count) keys of each node and copies nothing; a big directory's
//! deeper tree costs a few more key reads, not one more 4 KiB decode per level. A slotted
//! leaf's keys are read through its slots, each checked when the view is opened. Only a node
//! being changed is decoded ([`read_node`]) and written back.

use std::mem::offset_of;

use super::btree::{Key, Value};
use super::slotted;
use crate::error::{corrupt, FsResult};
use crate::layout::pod;
use crate::layout::superblock::Superblock;
use rvm_core::Transaction;

pub(super) const NODE: u64 = 4096;
const LEAF: u16 = 1;
const INTERNAL: u16 = 2;
const LEAF_ENTRY: usize = 40;
pub(super) const LEAF_CAP: usize = (NODE as usize - 16) / LEAF_ENTRY;
const INT_ENTRY: usize = 24;
pub(super) const INT_CAP: usize = (NODE as usize - 24) / INT_ENTRY;

/// A decoded node (nodes are small; decoding whole keeps the changes plain).
pub(super) enum Node {
    Leaf(Vec<(Key, Value)>),
    Internal { children: Vec<u64>, keys: Vec<Key> },
}

/// The three kinds of node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Form {
    /// A leaf whose entries lie in key order (kind 1).
    Sorted,
    /// A leaf whose entries are ordered by slots (kind 3, `slotted`).
    Slotted,
    /// An internal node (kind 2).
    Internal,
}

/// A node read where it lies in the region: kind, count and slots checked, entries read on
/// demand.
#[derive(Clone, Copy)]
pub(super) struct View<'a> {
    b: &'a [u8],
    form: Form,
    count: usize,
}

/// The 4 KiB of the node at region offset `at`, which must be a 4 KiB-aligned heap chunk
/// below the heap's bump pointer.
pub(super) fn node_bytes(bytes: &[u8], at: u64) -> FsResult<&[u8]> {
    let heap_start: u64 = pod::get(bytes, offset_of!(Superblock, heap_start) as u64)?;
    let heap_top: u64 = pod::get(bytes, offset_of!(Superblock, heap_top) as u64)?;
    let in_heap = at >= heap_start
        && at.is_multiple_of(NODE)
        && at.checked_add(NODE).is_some_and(|end| end <= heap_top);
    if !in_heap {
        return corrupt(format!(
            "B+tree node pointer {at} is not a node of the heap"
        ));
    }
    pod::slice(bytes, at, NODE)
}

impl<'a> View<'a> {
    /// The node at region offset `at`, which must be a 4 KiB-aligned heap chunk below the
    /// heap's bump pointer (a damaged child pointer or root is `FsError::Corrupt`, never
    /// followed into the superblock, the bitmaps or the inode table), of a known kind with a
    /// count within its capacity; a slotted leaf's slots must each name one of its entries,
    /// no two the same (`slotted::check`).
    pub(super) fn open(bytes: &'a [u8], at: u64) -> FsResult<View<'a>> {
        let b = node_bytes(bytes, at)?;
        let kind = u16::from_le_bytes([b[0], b[1]]);
        let count = u16::from_le_bytes([b[2], b[3]]) as usize;
        let form = match kind {
            LEAF if count <= LEAF_CAP => Form::Sorted,
            INTERNAL if count <= INT_CAP => Form::Internal,
            slotted::KIND if count <= slotted::CAP => {
                if let Err(why) = slotted::check(b, count) {
                    return corrupt(format!("B+tree leaf at {at}: {why}"));
                }
                Form::Slotted
            }
            _ => return corrupt(format!("B+tree node at {at}: kind {kind}, count {count}")),
        };
        Ok(View { b, form, count })
    }

    pub(super) fn is_leaf(&self) -> bool {
        self.form != Form::Internal
    }

    pub(super) fn form(&self) -> Form {
        self.form
    }

    /// A slotted leaf's slots (checked), empty for any other node.
    pub(super) fn slots(&self) -> Vec<u16> {
        match self.form {
            Form::Slotted => slotted::slots(self.b, self.count),
            _ => Vec::new(),
        }
    }

    /// Node offset of entry `i` (`i < count`): where a slotted leaf's slot `i` points.
    pub(super) fn entry_offset(&self, i: usize) -> usize {
        match self.form {
            Form::Sorted => 16 + i * LEAF_ENTRY,
            Form::Slotted => slotted::slot(self.b, i),
            Form::Internal => 16 + i * INT_ENTRY,
        }
    }

    /// Entries of a leaf, keys of an internal node.
    pub(super) fn count(&self) -> usize {
        self.count
    }

    fn word(&self, o: usize) -> u64 {
        u64::from_le_bytes(self.b[o..o + 8].try_into().unwrap_or_default())
    }

    /// Key `i` (`i < count`).
    pub(super) fn key(&self, i: usize) -> Key {
        let o = self.entry_offset(i);
        (self.word(o), self.word(o + 8))
    }

    /// Entry `i` of a leaf (`i < count`).
    pub(super) fn entry(&self, i: usize) -> (Key, Value) {
        let o = self.entry_offset(i);
        (
            (self.word(o), self.word(o + 8)),
            [self.word(o + 16), self.word(o + 24), self.word(o + 32)],
        )
    }

    /// Child `i` of an internal node (`i <= count`): region offset.
    pub(super) fn child(&self, i: usize) -> u64 {
        if i == 0 {
            self.word(8)
        } else {
            self.word(self.entry_offset(i - 1) + 16)
        }
    }

    /// The number of keys `k` with `below(k)`, which must hold for a prefix of the sorted keys.
    fn partition(&self, below: impl Fn(Key) -> bool) -> usize {
        let (mut lo, mut hi) = (0, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if below(self.key(mid)) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Leaf: index of the first entry whose key is >= `key`.
    pub(super) fn lower_bound(&self, key: Key) -> usize {
        self.partition(|k| k < key)
    }

    /// Internal node: index of the child that may hold `key` (the number of keys <= `key`).
    pub(super) fn child_index(&self, key: Key) -> usize {
        self.partition(|k| k <= key)
    }

    /// Every entry of a leaf, decoded.
    pub(super) fn entries(&self) -> Vec<(Key, Value)> {
        (0..self.count).map(|i| self.entry(i)).collect()
    }

    /// The whole node, decoded.
    pub(super) fn decode(&self) -> Node {
        if self.is_leaf() {
            Node::Leaf(self.entries())
        } else {
            Node::Internal {
                children: (0..=self.count).map(|i| self.child(i)).collect(),
                keys: (0..self.count).map(|i| self.key(i)).collect(),
            }
        }
    }
}

/// Decode the node at region offset `at` (checked as [`View::open`] checks it).
pub(super) fn read_node(bytes: &[u8], at: u64) -> FsResult<Node> {
    Ok(View::open(bytes, at)?.decode())
}

/// Write a leaf's entries from index `from` on (plus its header): earlier entries are unchanged,
/// so only the changed tail is declared and logged.
pub(super) fn write_leaf(
    tx: &mut Transaction<'_>,
    at: u64,
    entries: &[(Key, Value)],
    from: usize,
) -> FsResult<()> {
    let mut header = [0u8; 4];
    header[..2].copy_from_slice(&LEAF.to_le_bytes());
    header[2..].copy_from_slice(&(entries.len() as u16).to_le_bytes());
    pod::put_bytes(tx, at, &header)?;
    if from < entries.len() {
        let mut buf = Vec::with_capacity((entries.len() - from) * LEAF_ENTRY);
        for (k, v) in &entries[from..] {
            for w in [k.0, k.1, v[0], v[1], v[2]] {
                buf.extend_from_slice(&w.to_le_bytes());
            }
        }
        pod::put_bytes(tx, at + 16 + (from * LEAF_ENTRY) as u64, &buf)?;
    }
    Ok(())
}

/// Write an internal node whose entries before index `from` are unchanged (0: all of it,
/// child 0 too): its header, then entries `from..` (key, child `from + 1`, ...), so a
/// child's split logs the shifted tail only.
pub(super) fn write_internal(
    tx: &mut Transaction<'_>,
    at: u64,
    children: &[u64],
    keys: &[Key],
    from: usize,
) -> FsResult<()> {
    let mut buf = Vec::with_capacity(16 + keys.len() * INT_ENTRY);
    buf.extend_from_slice(&INTERNAL.to_le_bytes());
    buf.extend_from_slice(&(keys.len() as u16).to_le_bytes());
    buf.extend_from_slice(&[0u8; 4]);
    let from = from.min(keys.len());
    if from > 0 {
        pod::put_bytes(tx, at, &buf)?;
        buf.clear();
    } else {
        let Some(first) = children.first() else {
            return corrupt(format!("B+tree node at {at}: written without children"));
        };
        buf.extend_from_slice(&first.to_le_bytes());
    }
    let later = children.get(from + 1..).unwrap_or_default();
    for (k, c) in keys[from..].iter().zip(later) {
        for w in [k.0, k.1, *c] {
            buf.extend_from_slice(&w.to_le_bytes());
        }
    }
    let start = if from > 0 { 16 + from * INT_ENTRY } else { 0 };
    pod::put_bytes(tx, at + start as u64, &buf)
}
