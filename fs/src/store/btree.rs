//! A B+tree inside the region: fixed 16-byte keys, 24-byte values, 4 KiB nodes from the heap.
//!
//! Four trees hold the variable structures of the filesystem (their roots are superblock
//! fields): dentries `(dir, name hash) -> (child, name, type)`, extents
//! `(inode, last block) -> (first block, physical block, flags)`, xattrs and orphans.
//! Lookup, insert and remove are O(log n); a scan is a repeated `seek` (each O(log n)), so no
//! leaf chain needs maintaining. Removal frees a leaf when it empties and collapses a root left
//! with one child; it does not merge half-full siblings (as many production B-trees, it trades
//! some space for simplicity).
//!
//! The node layout and the in-place search live in `node`; a leaf's changes in `leaf`: a
//! sorted leaf, or in images with `slotted_leaves` a slotted one (`slotted`), whose insert
//! logs the new entry and 2-byte slots instead of the shifted tail of the leaf. An internal
//! node's change writes its header and the entries from the changed one on.
//! In an internal node, child i holds keys in [key(i-1), key(i)).

use super::heap;
use super::leaf::{self, Split};
use super::node::{
    node_bytes, read_node, write_internal, Form, Node, View, INT_CAP, LEAF_CAP, NODE,
};
use super::slotted;
use crate::error::{corrupt, FsResult};
use crate::layout::pod;
use rvm_core::Transaction;

/// Key: compared as (high, low).
pub type Key = (u64, u64);
/// Value: three words whose meaning belongs to the tree.
pub type Value = [u64; 3];

/// Deepest tree accepted; deeper means a cycle in corrupt metadata.
const MAX_DEPTH: usize = 16;

/// A tree, named by the region offset of the superblock field holding its root.
#[derive(Clone, Copy, Debug)]
pub struct Tree(pub u64);

/// The internal node at `at`, decoded to be changed: its children, its keys, and the index
/// of the child that may hold `key`.
fn decode_internal(bytes: &[u8], at: u64, key: Key) -> FsResult<(Vec<u64>, Vec<Key>, usize)> {
    match read_node(bytes, at)? {
        Node::Internal { children, keys } => {
            let i = keys.partition_point(|k| *k <= key);
            Ok((children, keys, i))
        }
        Node::Leaf(_) => corrupt(format!("B+tree node at {at}: a leaf above other nodes")),
    }
}

impl Tree {
    fn root(&self, bytes: &[u8]) -> FsResult<u64> {
        pod::get(bytes, self.0)
    }

    /// The value stored under `key`.
    pub fn get(&self, bytes: &[u8], key: Key) -> FsResult<Option<Value>> {
        Ok(self
            .seek(bytes, key)?
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v))
    }

    /// The leaf that holds `from` (or would), read in place: the leaf, the index of its first
    /// entry >= `from`, and the smallest separator to the right of the path (where the next
    /// leaf starts).
    fn leaf_for<'b>(
        &self,
        bytes: &'b [u8],
        from: Key,
    ) -> FsResult<Option<(View<'b>, usize, Option<Key>)>> {
        let mut at = self.root(bytes)?;
        if at == 0 {
            return Ok(None);
        }
        let mut next_bound: Option<Key> = None;
        for _ in 0..MAX_DEPTH {
            let node = View::open(bytes, at)?;
            if node.is_leaf() {
                return Ok(Some((node, node.lower_bound(from), next_bound)));
            }
            let i = node.child_index(from);
            if i < node.count() {
                next_bound = Some(node.key(i));
            }
            at = node.child(i);
        }
        corrupt("B+tree deeper than 16 levels (a cycle?)")
    }

    /// The first entry whose key is >= `from`.
    pub fn seek(&self, bytes: &[u8], from: Key) -> FsResult<Option<(Key, Value)>> {
        let mut from = from;
        while let Some((leaf, i, next_bound)) = self.leaf_for(bytes, from)? {
            if i < leaf.count() {
                return Ok(Some(leaf.entry(i)));
            }
            match next_bound {
                Some(b) if b > from => from = b,
                _ => return Ok(None),
            }
        }
        Ok(None)
    }

    /// Visit every entry with key in [from, to] in order; `visit` returns false to stop. Walks
    /// each leaf once: one descent per leaf, not per entry.
    pub fn scan(
        &self,
        bytes: &[u8],
        from: Key,
        to: Key,
        mut visit: impl FnMut(Key, Value) -> FsResult<bool>,
    ) -> FsResult<()> {
        let mut cursor = from;
        while let Some((leaf, i, next_bound)) = self.leaf_for(bytes, cursor)? {
            for (k, v) in (i..leaf.count()).map(|j| leaf.entry(j)) {
                if k > to || !visit(k, v)? {
                    return Ok(());
                }
            }
            // Separators only grow along a sound tree; a damaged one must not loop.
            match next_bound {
                Some(b) if b > cursor && b <= to => cursor = b,
                _ => return Ok(()),
            }
        }
        Ok(())
    }

    /// The first absent key among `(high, base | k)` for k in 0..=255: the slots that tell
    /// apart names whose hashes collide (dentry and xattr keys). None when all 256 are taken.
    pub fn free_slot(&self, bytes: &[u8], high: u64, base: u64) -> FsResult<Option<Key>> {
        for k in 0..=0xff {
            if self.get(bytes, (high, base | k))?.is_none() {
                return Ok(Some((high, base | k)));
            }
        }
        Ok(None)
    }

    /// Insert or replace; returns the value replaced.
    pub fn insert(
        &self,
        tx: &mut Transaction<'_>,
        key: Key,
        value: Value,
    ) -> FsResult<Option<Value>> {
        let root = self.root(tx.bytes())?;
        if root == 0 {
            let at = heap::alloc(tx, NODE)?;
            leaf::write_new(tx, at, &[(key, value)])?;
            pod::put(tx, self.0, &at)?;
            return Ok(None);
        }
        let (old, split) = insert_at(tx, root, key, value, 0)?;
        if let Some((sep, right)) = split {
            let new_root = heap::alloc(tx, NODE)?;
            write_internal(tx, new_root, &[root, right], &[sep], 0)?;
            pod::put(tx, self.0, &new_root)?;
        }
        Ok(old)
    }

    /// Remove `key`; returns its value.
    pub fn remove(&self, tx: &mut Transaction<'_>, key: Key) -> FsResult<Option<Value>> {
        let root = self.root(tx.bytes())?;
        if root == 0 {
            return Ok(None);
        }
        let (old, emptied) = remove_at(tx, root, key, 0)?;
        if emptied {
            pod::put(tx, self.0, &0u64)?;
        }
        // Collapse a root left with a single child.
        loop {
            let root = self.root(tx.bytes())?;
            if root == 0 {
                break;
            }
            match read_node(tx.bytes(), root)? {
                Node::Internal { children, keys } if keys.is_empty() => {
                    pod::put(tx, self.0, &children[0])?;
                    heap::free(tx, root, NODE)?;
                }
                _ => break,
            }
        }
        Ok(old)
    }

    /// Every node of the tree (for fsck's heap accounting), root first.
    pub fn nodes(&self, bytes: &[u8]) -> FsResult<Vec<u64>> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut stack = vec![(self.root(bytes)?, 0usize)];
        while let Some((at, depth)) = stack.pop() {
            if at == 0 {
                continue;
            }
            if depth > MAX_DEPTH || !seen.insert(at) {
                return corrupt(format!(
                    "B+tree node {at} is reached twice or too deep (a cycle?)"
                ));
            }
            out.push(at);
            if let Node::Internal { children, .. } = read_node(bytes, at)? {
                stack.extend(children.into_iter().map(|c| (c, depth + 1)));
            }
        }
        Ok(out)
    }
}

fn insert_at(
    tx: &mut Transaction<'_>,
    at: u64,
    key: Key,
    value: Value,
    depth: usize,
) -> FsResult<(Option<Value>, Split)> {
    if depth > MAX_DEPTH {
        return corrupt("B+tree deeper than 16 levels (a cycle?)");
    }
    let node = View::open(tx.bytes(), at)?;
    if node.is_leaf() {
        return leaf::insert(tx, at, key, value);
    }
    // Descend without decoding; only a child's split changes this node.
    let child = node.child(node.child_index(key));
    let (old, split) = insert_at(tx, child, key, value, depth + 1)?;
    let Some((sep, new_child)) = split else {
        return Ok((old, None));
    };
    let (mut children, mut keys, i) = decode_internal(tx.bytes(), at, key)?;
    keys.insert(i, sep);
    children.insert(i + 1, new_child);
    if keys.len() <= INT_CAP {
        write_internal(tx, at, &children, &keys, i)?;
        return Ok((old, None));
    }
    let mid = keys.len() / 2;
    let up = keys[mid];
    let right_keys = keys.split_off(mid + 1);
    keys.truncate(mid);
    let right_children = children.split_off(mid + 1);
    let right = heap::alloc(tx, NODE)?;
    write_internal(tx, right, &right_children, &right_keys, 0)?;
    write_internal(tx, at, &children, &keys, mid.min(i))?;
    Ok((old, Some((up, right))))
}

/// Returns the removed value and whether the node at `at` emptied and was freed.
fn remove_at(
    tx: &mut Transaction<'_>,
    at: u64,
    key: Key,
    depth: usize,
) -> FsResult<(Option<Value>, bool)> {
    if depth > MAX_DEPTH {
        return corrupt("B+tree deeper than 16 levels (a cycle?)");
    }
    let node = View::open(tx.bytes(), at)?;
    if node.is_leaf() {
        return leaf::remove(tx, at, key);
    }
    // Descend without decoding; only a child's freeing changes this node.
    let child = node.child(node.child_index(key));
    let (old, emptied) = remove_at(tx, child, key, depth + 1)?;
    if !emptied {
        return Ok((old, false));
    }
    let (mut children, mut keys, i) = decode_internal(tx.bytes(), at, key)?;
    children.remove(i);
    if !keys.is_empty() {
        keys.remove(i.saturating_sub(1));
    }
    if children.is_empty() {
        heap::free(tx, at, NODE)?;
        return Ok((old, true));
    }
    // Removing child i > 0 shifts the entries from i - 1 on; child 0, all of them.
    write_internal(tx, at, &children, &keys, i.saturating_sub(1))?;
    Ok((old, false))
}

/// Integrity of one tree, for fsck.
impl Tree {
    /// Check the ordering invariants: keys sorted inside every node (a slotted leaf's in slot
    /// order, its slots checked as every read checks them) and inside the key range their
    /// parent assigns, every leaf at the same depth, no slotted leaf in an image without
    /// `slotted_leaves`. Returns what is wrong (empty = sound).
    pub fn verify(&self, bytes: &[u8]) -> FsResult<Vec<String>> {
        let slotted_image = slotted::wanted(bytes)?;
        let mut problems = Vec::new();
        let mut leaf_depth = None;
        let mut seen = std::collections::HashSet::new();
        // (node, depth, lower bound inclusive, upper bound exclusive)
        let mut stack = vec![(self.root(bytes)?, 0usize, None::<Key>, None::<Key>)];
        while let Some((at, depth, lo, hi)) = stack.pop() {
            if at == 0 {
                continue;
            }
            if depth > MAX_DEPTH || !seen.insert(at) {
                problems.push(format!("node {at} is reached twice or too deep (a cycle)"));
                continue;
            }
            let node = match View::open(bytes, at) {
                Ok(v) => {
                    if v.form() == Form::Slotted && !slotted_image {
                        problems.push(format!(
                            "leaf {at} is slotted in an image without slotted_leaves"
                        ));
                    }
                    v.decode()
                }
                Err(e) => {
                    problems.push(e.to_string());
                    continue;
                }
            };
            let keys: Vec<Key> = match &node {
                Node::Leaf(entries) => entries.iter().map(|(k, _)| *k).collect(),
                Node::Internal { keys, .. } => keys.clone(),
            };
            let sorted = keys.windows(2).all(|w| w[0] < w[1]);
            let in_range = keys
                .iter()
                .all(|k| lo.is_none_or(|l| *k >= l) && hi.is_none_or(|h| *k < h));
            if !sorted || !in_range {
                problems.push(format!("node {at}: keys out of order"));
            }
            match node {
                Node::Leaf(entries) => {
                    if entries.is_empty() && depth > 0 {
                        problems.push(format!("leaf {at} is empty"));
                    }
                    if *leaf_depth.get_or_insert(depth) != depth {
                        problems.push(format!(
                            "leaf {at} is at depth {depth}, others deeper or shallower"
                        ));
                    }
                }
                Node::Internal { children, keys } => {
                    for (i, &child) in children.iter().enumerate() {
                        let clo = if i == 0 { lo } else { Some(keys[i - 1]) };
                        let chi = if i < keys.len() { Some(keys[i]) } else { hi };
                        stack.push((child, depth + 1, clo, chi));
                    }
                }
            }
        }
        Ok(problems)
    }

    /// Every entry found in the leaves, walking nodes (not seeking), sorted, first of each key
    /// kept: what can be saved of a damaged tree. A slotted leaf whose slots are damaged still
    /// gives the entries it holds (they are dense, `slotted::cells`).
    pub fn salvage(&self, bytes: &[u8]) -> FsResult<Vec<(Key, Value)>> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut stack = vec![(self.root(bytes)?, 0usize)];
        while let Some((at, depth)) = stack.pop() {
            if at == 0 || depth > MAX_DEPTH || !seen.insert(at) {
                continue;
            }
            match read_node(bytes, at) {
                Ok(Node::Leaf(entries)) => out.extend(entries),
                Ok(Node::Internal { children, .. }) => {
                    stack.extend(children.into_iter().map(|c| (c, depth + 1)))
                }
                Err(_) => out.extend(damaged_slotted_leaf(bytes, at).unwrap_or_default()),
            }
        }
        out.sort_by_key(|(k, _)| *k);
        out.dedup_by_key(|(k, _)| *k);
        Ok(out)
    }

    /// Rebuild the tree from `entries` (e.g. `salvage`'s): the old nodes in `old_nodes` go back to
    /// the heap, then every entry is inserted into a fresh tree. One transaction: all or nothing.
    pub fn rebuild(
        &self,
        tx: &mut Transaction<'_>,
        old_nodes: &[u64],
        entries: &[(Key, Value)],
    ) -> FsResult<()> {
        for &node in old_nodes {
            heap::free(tx, node, NODE)?;
        }
        pod::put(tx, self.0, &0u64)?;
        for (k, v) in entries {
            self.insert(tx, *k, *v)?;
        }
        Ok(())
    }

    /// Nodes reachable from the root, tolerating damage (for a rebuild): no error on a bad node.
    pub fn reachable_nodes(&self, bytes: &[u8]) -> FsResult<Vec<u64>> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut stack = vec![(self.root(bytes)?, 0usize)];
        while let Some((at, depth)) = stack.pop() {
            if at == 0 || depth > MAX_DEPTH || !seen.insert(at) {
                continue;
            }
            match read_node(bytes, at) {
                Ok(Node::Leaf(_)) => out.push(at),
                Ok(Node::Internal { children, .. }) => {
                    out.push(at);
                    stack.extend(children.into_iter().map(|c| (c, depth + 1)));
                }
                Err(_) if damaged_slotted_leaf(bytes, at).is_some() => out.push(at),
                Err(_) => {}
            }
        }
        Ok(out)
    }
}

/// The entries of the node at `at` if it is a slotted leaf in the heap whose count is sound but
/// whose slots are not (read where they lie).
fn damaged_slotted_leaf(bytes: &[u8], at: u64) -> Option<Vec<(Key, Value)>> {
    slotted::cells(node_bytes(bytes, at).ok()?)
}

/// Most entries a sorted leaf holds (a leaf splits when an insert would exceed it).
pub const LEAF_CAPACITY: usize = LEAF_CAP;
/// Most entries a slotted leaf holds (images with `slotted_leaves`; docs/format.md section 6).
pub const SLOTTED_LEAF_CAPACITY: usize = slotted::CAP;
/// Most separator keys an internal node holds (it has one more child than keys).
pub const INTERNAL_CAPACITY: usize = INT_CAP;
/// Bytes of a node (a heap chunk of this size, at the region offset [`Tree::nodes`] gives).
pub const NODE_BYTES: u64 = NODE;

/// Shape checks beyond [`Tree::verify`], for tests and fsck.
impl Tree {
    /// Everything [`Tree::verify`] checks, plus the fill bounds and the order across leaves:
    /// an empty tree has root 0; every leaf holds 1..=[`LEAF_CAPACITY`] entries; an internal
    /// root has at least two children (a root with one is collapsed); every internal node
    /// has 1..=[`INTERNAL_CAPACITY`]+1 children; the leaves, read left to right, hold strictly
    /// increasing keys. Returns what is wrong (empty = sound); `Err` only if the root pointer
    /// itself cannot be read.
    pub fn check_invariants(&self, bytes: &[u8]) -> FsResult<Vec<String>> {
        let mut problems = self.verify(bytes)?;
        let root = self.root(bytes)?;
        let mut last: Option<Key> = None;
        // Depth-first, children left to right: (node, depth, is root).
        let mut stack = vec![(root, 0usize, true)];
        let mut seen = std::collections::HashSet::new();
        while let Some((at, depth, is_root)) = stack.pop() {
            if at == 0 || depth > MAX_DEPTH || !seen.insert(at) {
                continue; // verify reported cycles and depth
            }
            let Ok(node) = read_node(bytes, at) else {
                continue; // verify reported it
            };
            match node {
                Node::Leaf(entries) => {
                    if entries.is_empty() && is_root {
                        // (verify reports empty leaves below the root)
                        problems.push(format!(
                            "root leaf {at} is empty (an empty tree has root 0)"
                        ));
                    }
                    for (k, _) in entries {
                        if last.is_some_and(|l| l >= k) {
                            problems.push(format!("leaf {at}: key {k:?} not above {last:?}"));
                        }
                        last = Some(k);
                    }
                }
                Node::Internal { children, .. } => {
                    if is_root && children.len() < 2 {
                        problems.push(format!("internal root {at} has a single child"));
                    }
                    stack.extend(children.into_iter().rev().map(|c| (c, depth + 1, false)));
                }
            }
        }
        Ok(problems)
    }
}
