//! Leaked data objects: objects under `data/` that no extent points at (a crash between an
//! upload and the commit that would have pointed at it leaves one; docs/format.md 11.6),
//! less those a restore to a retained earlier state may need ([`Sweep::hold_back`]).
//! [`find_leaked`] works from a **complete** listing or fails: a [`Sweep`] exists only when
//! every page of the listing came back, so [`delete_leaked`] can never act on half a listing
//! (JuiceFS's gc deleted live data after a listing error, juicefs #6479).
//!
//! The caller (fsck) holds the lease while it sweeps, so no writer uploads meanwhile, and
//! deletes only when told to (`-y`).

use crate::bucket::{Bucket, Listed};
use crate::error::Result;
use crate::object_id::{ObjectId, DATA_DIR};
use std::collections::BTreeSet;

/// What a complete listing of `data/` showed against the live set.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Objects no extent points at, in key order, with their sizes.
    pub leaked: Vec<(ObjectId, u64)>,
    /// Objects no extent points at that a restore to a retained earlier state may need
    /// ([`Sweep::hold_back`]): kept, not leaked.
    pub kept: Vec<(ObjectId, u64)>,
    /// Names under `data/` that are not data objects (reported, never deleted).
    pub strays: Vec<Listed>,
    /// Live objects the bucket does not hold: data lost, for fsck to report.
    pub missing: Vec<ObjectId>,
    /// Objects listed in all.
    pub listed: usize,
}

/// Compare the bucket's data objects with `live`, the objects the image's extents point at.
/// Errors: any failure of the listing (then nothing is known, and nothing may be deleted).
pub fn find_leaked(bucket: &Bucket, live: &BTreeSet<ObjectId>) -> Result<Sweep> {
    let all = bucket.list(DATA_DIR)?;
    let mut sweep = Sweep {
        listed: all.len(),
        ..Sweep::default()
    };
    let mut seen = BTreeSet::new();
    for l in all {
        match ObjectId::parse(&l.name) {
            Some(id) => {
                seen.insert(id);
                if !live.contains(&id) {
                    sweep.leaked.push((id, l.size));
                }
            }
            None => sweep.strays.push(l),
        }
    }
    sweep.missing = live.difference(&seen).copied().collect();
    Ok(sweep)
}

impl Sweep {
    /// Move the leaked objects `needed` says the bucket's history still needs
    /// (`ship::gc::History`) to [`Sweep::kept`].
    pub fn hold_back(&mut self, needed: impl Fn(&ObjectId) -> bool) {
        let (kept, leaked) = std::mem::take(&mut self.leaked)
            .into_iter()
            .partition(|(id, _)| needed(id));
        self.kept = kept;
        self.leaked = leaked;
    }
}

/// Delete the leaked objects of `sweep`; the number deleted. Stops at the first failure
/// (what was deleted stays deleted; a later sweep finds the rest).
pub fn delete_leaked(bucket: &Bucket, sweep: &Sweep) -> Result<usize> {
    for (n, (id, _)) in sweep.leaked.iter().enumerate() {
        if let Err(e) = bucket.delete(&id.name()) {
            log::warn!("deleted {n} leaked objects, then: {e}");
            return Err(e);
        }
    }
    Ok(sweep.leaked.len())
}
