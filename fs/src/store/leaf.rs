//! Changing a B+tree leaf in either of its forms (docs/format.md section 6): a sorted leaf
//! (kind 1) rewrites its entries from the changed one on; a slotted leaf (kind 3, `slotted`)
//! writes one entry and shifts only its slots. A change in place keeps the leaf's form; a leaf
//! written whole (a new root leaf, both halves of a split) takes the image's form: slotted
//! when it has the `slotted_leaves` feature, else sorted, so an image without the feature
//! never holds a slotted leaf.

use super::btree::{Key, Value};
use super::node::{write_leaf, Form, View, LEAF_CAP, NODE};
use super::{heap, slotted};
use crate::error::FsResult;
use rvm_core::Transaction;

/// A node's split: the separator key and the new right sibling's region offset.
pub(super) type Split = Option<(Key, u64)>;

/// Write a whole leaf at region offset `at` holding `entries` (sorted), in the image's form.
pub(super) fn write_new(
    tx: &mut Transaction<'_>,
    at: u64,
    entries: &[(Key, Value)],
) -> FsResult<()> {
    if slotted::wanted(tx.bytes())? {
        slotted::write(tx, at, entries)
    } else {
        write_leaf(tx, at, entries, 0)
    }
}

/// Insert or replace `key` in the leaf at `at`; returns the value replaced and the split, if
/// the leaf was full (it splits in half, both halves written whole).
pub(super) fn insert(
    tx: &mut Transaction<'_>,
    at: u64,
    key: Key,
    value: Value,
) -> FsResult<(Option<Value>, Split)> {
    let node = View::open(tx.bytes(), at)?;
    let i = node.lower_bound(key);
    let form = node.form();
    let old = (i < node.count() && node.key(i) == key).then(|| node.entry(i).1);
    if form == Form::Slotted {
        let slots = node.slots();
        if old.is_some() {
            slotted::replace(tx, at, slots[i] as usize, value)?;
            return Ok((old, None));
        }
        if slots.len() < slotted::CAP {
            slotted::insert(tx, at, &slots, i, key, value)?;
            return Ok((None, None));
        }
    }
    let mut entries = node.entries();
    if old.is_some() {
        entries[i].1 = value;
        write_leaf(tx, at, &entries, i)?;
        return Ok((old, None));
    }
    entries.insert(i, (key, value));
    if form == Form::Sorted && entries.len() <= LEAF_CAP {
        write_leaf(tx, at, &entries, i)?;
        return Ok((None, None));
    }
    split(tx, at, entries)
}

/// Split the `entries` of the full leaf at `at` (one more than it holds) in half: the left
/// half stays at `at`, the right goes to a new leaf; both are written whole in the image's
/// form (half of a full leaf of either form fits either).
fn split(
    tx: &mut Transaction<'_>,
    at: u64,
    mut entries: Vec<(Key, Value)>,
) -> FsResult<(Option<Value>, Split)> {
    let right_entries = entries.split_off(entries.len() / 2);
    let right = heap::alloc(tx, NODE)?;
    write_new(tx, right, &right_entries)?;
    write_new(tx, at, &entries)?;
    Ok((None, Some((right_entries[0].0, right))))
}

/// Remove `key` from the leaf at `at`; returns its value and whether the leaf emptied and
/// was freed.
pub(super) fn remove(
    tx: &mut Transaction<'_>,
    at: u64,
    key: Key,
) -> FsResult<(Option<Value>, bool)> {
    let node = View::open(tx.bytes(), at)?;
    let i = node.lower_bound(key);
    if i >= node.count() || node.key(i) != key {
        return Ok((None, false));
    }
    let old = node.entry(i).1;
    if node.count() == 1 {
        heap::free(tx, at, NODE)?;
        return Ok((Some(old), true));
    }
    if node.form() == Form::Slotted {
        let slots = node.slots();
        slotted::remove(tx, at, &slots, i)?;
    } else {
        let mut entries = node.entries();
        entries.remove(i);
        write_leaf(tx, at, &entries, i)?;
    }
    Ok((Some(old), false))
}
