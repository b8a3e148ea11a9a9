//! After the checks, on an `object_data` image: the leaked-object sweep (docs/format.md
//! 11.6). fsck takes the bucket's lease (no writer runs meanwhile; a live holder means the
//! bucket is in use: no sweep), lists `data/` **to the end**, and compares it with the
//! objects the image's `REMOTE` extents point into (`rvmfs::remote::live`). An object no
//! extent points at is leaked when no state a restore can still reach needs it either (the
//! object lists of the bucket's snapshots, `objstore::ship::gc::History`): a crash between
//! an upload and its repointing commit, or a removed file's data after the snapshots that
//! saw it are gone. The others are kept (reported, not a problem: the daemon collects them
//! once retention passes them). Leaked objects are listed with their size and deleted only
//! with -y. A listing that failed or was incomplete deletes nothing
//! (`objstore::find_leaked` returns a complete listing or an error: juicefs #6479). Live
//! objects the bucket lacks are data lost: reported, never "fixed".

use objstore::ship::gc::{history, History};
use objstore::{delete_leaked, find_leaked, ObjectId, Sweep};
use rvmfs::remote::session::take_lease;
use rvmfs::remote::Access;
use std::collections::BTreeSet;

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
    let result = history(&bucket)
        .map_err(|e| format!("reading the snapshots' object lists failed, nothing deleted: {e}"))
        .and_then(|h| {
            let mut s = find_leaked(&bucket, live)
                .map_err(|e| format!("listing the data objects failed, nothing deleted: {e}"))?;
            s.hold_back(|id| !h.may_delete(id));
            Ok(act(name, &bucket, &s, &h, delete))
        });
    if let Some(Err(e)) = lease.map(|l| l.release(&bucket)) {
        println!("{name}: releasing the object store's lease: {e}");
    }
    result
}

/// Print the sweep's findings and delete the leaked objects if `delete`.
fn act(name: &str, bucket: &objstore::Bucket, s: &Sweep, h: &History, delete: bool) -> Outcome {
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
    if !s.kept.is_empty() {
        let why = match h {
            History::Unknown(dir) => format!("{dir} (made by an older build) lists no objects"),
            _ => "a restore to a retained snapshot's history may need them".into(),
        };
        let bytes: u64 = s.kept.iter().map(|(_, n)| n).sum();
        println!(
            "{name}: {} data objects ({bytes} bytes) no extent points at are kept: {why}",
            s.kept.len()
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
        "{name}: object store {url}: {} objects listed, {} live, {} kept for restore, {} leaked{}",
        s.listed,
        live_count(s),
        s.kept.len(),
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
    s.listed - s.leaked.len() - s.kept.len() - s.strays.len()
}
