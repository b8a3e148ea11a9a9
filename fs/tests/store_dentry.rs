//! Property test of `store::dentry::find`, which a create uses both to check a name is absent
//! and to pick its collision slot: with any set of the 256 slots under a name's hash taken
//! by other names (and perhaps the name itself in one of them), it returns the name's entry
//! if present, else the lowest free slot (None when all are taken), exactly as `lookup` and
//! `Tree::free_slot` tell; an entry added there is found again.
mod common;

use common::{cases, MemRegion};
use proptest::prelude::*;
use rvmfs::store::dentry::{self, Dentry, Slot, DENTRIES};
use rvmfs::store::heap;
use std::collections::BTreeSet;

const DIR: u64 = 5;
const NAME: &[u8] = b"target";

/// Put an entry for `name` under slot `k` of `NAME`'s hash (as if its hash collided).
fn put(mem: &mut MemRegion, base: u64, k: u64, name: &[u8], ino: u64) {
    mem.commit(|tx| {
        let name_at = heap::store(tx, name)?;
        let d = Dentry {
            key: (DIR, base | k),
            ino,
            name_at,
            name_len: name.len() as u64,
            kind: libc::S_IFREG,
        };
        DENTRIES.insert(tx, d.key, d.value()).map(|_| ())
    })
    .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(64)))]
    #[test]
    fn find_returns_the_entry_or_the_lowest_free_slot(
        taken in proptest::collection::btree_set(0u64..256, 0..=256),
        all in any::<bool>(),
        own in proptest::option::of(0usize..256),
    ) {
        let taken: BTreeSet<u64> = if all { (0..256).collect() } else { taken };
        let mut mem = MemRegion::new(8 << 20);
        let base = dentry::base_key(mem.bytes(), NAME).unwrap();
        // The name itself in one of the taken slots, if any is taken and `own` says so.
        let own = own.filter(|_| !taken.is_empty()).map(|i| *taken.iter().nth(i % taken.len()).unwrap());
        for &k in &taken {
            let name = if Some(k) == own { NAME.to_vec() } else { format!("other{k}").into_bytes() };
            put(&mut mem, base, k, &name, 100 + k);
        }
        let found = dentry::find(mem.bytes(), DIR, NAME).unwrap();
        let by_lookup = dentry::lookup(mem.bytes(), DIR, NAME).unwrap().map(|d| d.key);
        let free = DENTRIES.free_slot(mem.bytes(), DIR, base).unwrap();
        match (own, found) {
            (Some(k), Slot::Taken(d)) => {
                prop_assert_eq!(d.key, (DIR, base | k));
                prop_assert_eq!(d.ino, 100 + k);
                prop_assert_eq!(by_lookup, Some(d.key));
            }
            (None, Slot::Free(key)) => {
                let lowest = (0..256).find(|k| !taken.contains(k)).map(|k| (DIR, base | k));
                prop_assert_eq!(key, lowest);
                prop_assert_eq!(key, free);
                prop_assert_eq!(by_lookup, None);
                let added = mem.commit(|tx| dentry::add_at(tx, key, NAME, 7, libc::S_IFREG));
                prop_assert_eq!(added.is_ok(), key.is_some());
                if let Some(key) = key {
                    let d = dentry::lookup(mem.bytes(), DIR, NAME).unwrap();
                    prop_assert_eq!(d.map(|d| (d.key, d.ino)), Some((key, 7)));
                }
            }
            (own, found) => prop_assert!(false, "own {:?}, found {:?}", own, found),
        }
    }
}
