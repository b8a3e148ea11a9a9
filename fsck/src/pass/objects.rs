//! After the checks, on an `object_data` image: the leaked-object sweep (docs/format.md
//! 11.6). fsck takes the bucket's lease (no writer runs meanwhile; a live holder means the
//! bucket is in use: no sweep), lists `data/` **to the end**, and compares it with the
//! objects the image's `REMOTE` extents point into: objects no extent points at are leaked
//! (a crash between an upload and its repointing commit leaves one), listed with their size,
//! and deleted only with -y. A listing that failed or was incomplete deletes nothing
//! (`objstore::find_leaked` returns a complete listing or an error: juicefs #6479). Live
//! objects the bucket lacks are data lost: reported, never "fixed".

use objstore::{delete_leaked, find_leaked, ObjectId, Sweep};
use rvmfs::remote::session::take_lease;
use rvmfs::remote::Access;
use rvmfs::store::extent_map::{EXTENTS, REMOTE};
use rvmfs::FsResult;
use std::collections::BTreeSet;

/// The data objects the extents of region `bytes` point into (objects of `1 << shift`
/// blocks).
pub fn live(bytes: &[u8], shift: u32) -> FsResult<BTreeSet<ObjectId>> {
    let mut out = BTreeSet::new();
    EXTENTS.scan(bytes, (0, 0), (u64::MAX, u64::MAX), |_, v| {
        if v[2] & REMOTE != 0 {
            out.insert(ObjectId::of_vblock(v[1], shift).0);
        }
        Ok(true)
    })?;
    Ok(out)
}

/// What the sweep found and did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Leaked objects deleted (-y).
    pub deleted: usize,
    /// Leaked objects left in the bucket (no -y, or a delete failed).
    pub leaked_left: usize,
    /// Live objects the bucket does not hold.
    pub missing: usize,
}

/// Sweep the bucket `access` names against `live`, deleting leaked objects if `delete`
/// (only then is the lease taken: -n writes nothing, not even the lease); every finding is
/// printed as `name: ...`. Errors (as a message, nothing deleted): the bucket cannot be
/// reached, its lease is held by a running writer, the listing failed.
pub fn sweep(
    name: &str,
    access: &Access,
    live: &BTreeSet<ObjectId>,
    delete: bool,
) -> Result<Outcome, String> {
    let bucket = access.open().map_err(|e| e.to_string())?;
    let lease = match delete {
        true => Some(take_lease(&bucket).map_err(|e| e.to_string())?),
        false => None,
    };
    let result = find_leaked(&bucket, live)
        .map_err(|e| format!("listing the data objects failed, nothing deleted: {e}"))
        .map(|s| act(name, &bucket, &s, delete));
    if let Some(Err(e)) = lease.map(|l| l.release(&bucket)) {
        println!("{name}: releasing the object store's lease: {e}");
    }
    result
}

/// Print the sweep's findings and delete the leaked objects if `delete`.
fn act(name: &str, bucket: &objstore::Bucket, s: &Sweep, delete: bool) -> Outcome {
    let url = bucket.target();
    for (id, size) in &s.leaked {
        let what = if delete {
            "deleting"
        } else {
            "not deleted (needs -y)"
        };
        println!(
            "{name}: leaked data object {url}/{} ({size} bytes): {what}",
            id.name()
        );
    }
    for l in &s.strays {
        println!("{name}: {url}/{} is not a data object (left alone)", l.name);
    }
    for id in &s.missing {
        println!(
            "{name}: data object {url}/{} is missing: files pointing into it read EIO",
            id.name()
        );
    }
    let mut out = Outcome {
        missing: s.missing.len(),
        ..Outcome::default()
    };
    if delete && !s.leaked.is_empty() {
        match delete_leaked(bucket, s) {
            Ok(n) => out.deleted = n,
            Err(e) => {
                println!("{name}: deleting leaked objects: {e}");
                out.leaked_left = s.leaked.len();
            }
        }
    } else {
        out.leaked_left = s.leaked.len();
    }
    println!(
        "{name}: object store {url}: {} objects listed, {} live, {} leaked{}",
        s.listed,
        live_count(s),
        s.leaked.len(),
        if out.deleted > 0 {
            format!(" ({} deleted)", out.deleted)
        } else {
            String::new()
        }
    );
    out
}

fn live_count(s: &Sweep) -> usize {
    s.listed - s.leaked.len() - s.strays.len()
}
