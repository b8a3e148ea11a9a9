//! Collecting dead data objects (docs/format.md 11.6): an object no extent points at any
//! more may still be needed by a restore to an earlier state, so it goes only once no state a
//! restore can reach points into it.
//!
//! Every snapshot of an `object_data` image carries an object list (`objects`, written with
//! its parts, before its manifest): the objects its state points into and its **watermark**,
//! the superblock's `object_watermark`: every object whose packed id (`epoch << 32 | seq`) is
//! below it was repointed, or given up, by a commit at or before the snapshot. Objects are
//! repointed in id order (one uploader, one object after the other; a new epoch only after
//! the old writer is gone), and once no extent points into an object none ever will again
//! (a new version of a block is a new object). So in the history that goes on from snapshot
//! `S`, an object below `S`'s watermark that `S` does not point into is pointed at by no
//! state after `S`. Every state a restore can reach goes on from a complete snapshot, so an
//! object may go when that holds for **every** complete snapshot in the bucket
//! ([`History::may_delete`]); an object above some watermark (uploaded, its repointing commit
//! perhaps not yet shipped) stays until later snapshots pass it.
//!
//! The daemon collects after each snapshot's retention ([`collect`]); fsck uses the same
//! rule for what it calls leaked ([`history`]). Listings are complete or an error, never
//! partial (`Bucket::list`), and any failure deletes nothing more (juicefs #6479).

use super::listing;
use super::snapshot::{ObjectsInfo, SnapshotError};
use super::ShipError;
use crate::bucket::Bucket;
use crate::le::{get_u32, get_u64};
use crate::object_id::{ObjectId, DATA_DIR};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Name of a snapshot's object list in its directory.
pub const OBJECTS_NAME: &str = "objects";
/// `magic` of an object list: "RVMFSOL1".
pub const OBJECTS_MAGIC: &[u8; 8] = b"RVMFSOL1";
/// magic, count (u32), zero (u32), watermark (u64).
const HEADER_LEN: usize = 24;

/// What one state of the metadata region says of the data objects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectsAt {
    /// The objects its `REMOTE` extents point into.
    pub live: BTreeSet<ObjectId>,
    /// Its superblock's `object_watermark` (a packed id; 0: nothing known).
    pub watermark: u64,
}

/// Reads [`ObjectsAt`] from a region's bytes (the daemon's extent-tree scan; objstore
/// knows no filesystem structure). Errors: a message naming what is damaged.
#[derive(Clone)]
pub struct LiveObjects(pub Arc<dyn Fn(&[u8]) -> Result<ObjectsAt, String> + Send + Sync>);

impl std::fmt::Debug for LiveObjects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveObjects(..)")
    }
}

/// The object list's bytes: header, then the live ids packed, ascending, u64 each.
pub fn encode(at: &ObjectsAt) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_LEN + 8 * at.live.len());
    b.extend_from_slice(OBJECTS_MAGIC);
    b.extend_from_slice(&(at.live.len() as u32).to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&at.watermark.to_le_bytes());
    for id in &at.live {
        b.extend_from_slice(&id.packed().to_le_bytes());
    }
    b
}

/// An object list checked against its manifest entry. Errors: CRC, magic or length.
pub fn decode(info: &ObjectsInfo, bytes: &[u8]) -> Result<ObjectsAt, SnapshotError> {
    let name = || info.name.clone();
    let have = crc32c::crc32c(bytes);
    if have != info.crc {
        let want = info.crc;
        return Err(SnapshotError::Crc {
            name: name(),
            have,
            want,
        });
    }
    if bytes.len() < HEADER_LEN || &bytes[..8] != OBJECTS_MAGIC {
        return Err(SnapshotError::Magic(name()));
    }
    let n = get_u32(bytes, 8) as usize;
    let watermark = get_u64(bytes, 16);
    if bytes.len() != HEADER_LEN + 8 * n || n as u64 != info.count || watermark != info.watermark {
        let why = format!(
            "{} bytes for {n} objects, watermark {watermark:x}",
            bytes.len()
        );
        return Err(SnapshotError::Shape { name: name(), why });
    }
    let live = (0..n)
        .map(|i| ObjectId::from_packed(get_u64(bytes, HEADER_LEN + 8 * i)))
        .collect();
    Ok(ObjectsAt { live, watermark })
}

/// What the bucket's snapshots say of the objects no current extent points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum History {
    /// No complete snapshot: no restore reaches a past state, so only the image's own
    /// extents keep an object.
    None,
    /// The complete snapshot in this directory has no object list (an older build took
    /// it): what its history needs is unknown, so no object may go.
    Unknown(String),
    /// From the object lists of every complete snapshot: the objects any of them points
    /// into, and the lowest watermark.
    Known {
        protected: BTreeSet<ObjectId>,
        watermark: u64,
    },
}

impl History {
    /// May object `id` go, given that the image's current state does not point into it?
    pub fn may_delete(&self, id: &ObjectId) -> bool {
        match self {
            History::None => true,
            History::Unknown(_) => false,
            History::Known {
                protected,
                watermark,
            } => id.packed() < *watermark && !protected.contains(id),
        }
    }
}

/// Read the object lists of every complete snapshot in `bucket` (see [`History`]).
/// Errors: a listing or read failure, a damaged list (then nothing may be deleted).
pub fn history(bucket: &Bucket) -> Result<History, ShipError> {
    let mut protected = BTreeSet::new();
    let mut watermark = u64::MAX;
    let mut any = false;
    for s in listing::snapshots(bucket)?.iter().filter(|s| s.complete) {
        any = true;
        let m = listing::manifest(bucket, &s.dir)?;
        let Some(info) = &m.objects else {
            return Ok(History::Unknown(s.dir.clone()));
        };
        let key = format!("{}/{}", s.dir, info.name);
        let (bytes, _) = bucket.get(&key)?;
        let at = decode(info, &bytes).map_err(|source| ShipError::Snapshot { key, source })?;
        watermark = watermark.min(at.watermark);
        protected.extend(at.live);
    }
    Ok(match any {
        true => History::Known {
            protected,
            watermark,
        },
        false => History::None,
    })
}

/// Delete every data object no reachable state points into (only on a [`History::Known`]:
/// the daemon has just completed a snapshot); `may_write` is asked before each delete (a
/// writer that lost its lease deletes nothing more). Returns the objects deleted.
/// Errors: the first failure (what was deleted stays deleted; the next run goes on).
pub fn collect(bucket: &Bucket, may_write: &dyn Fn() -> bool) -> Result<usize, ShipError> {
    let h = history(bucket)?;
    if !matches!(h, History::Known { .. }) {
        return Ok(0);
    }
    let dead: Vec<ObjectId> = bucket
        .list(DATA_DIR)?
        .iter()
        .filter_map(|l| ObjectId::parse(&l.name))
        .filter(|id| h.may_delete(id))
        .collect();
    for (n, id) in dead.iter().enumerate() {
        if !may_write() {
            log::warn!("collected {n} dead data objects, then the lease was lost");
            return Ok(n);
        }
        bucket.delete(&id.name())?;
    }
    Ok(dead.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(epoch: u32, seq: u32) -> ObjectId {
        ObjectId { epoch, seq }
    }

    #[test]
    fn a_list_round_trips_and_a_damaged_one_is_refused() {
        let at = ObjectsAt {
            live: [id(1, 3), id(2, 0)].into_iter().collect(),
            watermark: id(2, 1).packed(),
        };
        let bytes = encode(&at);
        let info = ObjectsInfo {
            name: OBJECTS_NAME.into(),
            count: 2,
            watermark: at.watermark,
            crc: crc32c::crc32c(&bytes),
        };
        assert_eq!(decode(&info, &bytes), Ok(at));
        let mut bad = bytes.clone();
        bad[HEADER_LEN] ^= 1;
        assert!(matches!(
            decode(&info, &bad),
            Err(SnapshotError::Crc { .. })
        ));
        let short = ObjectsInfo {
            crc: crc32c::crc32c(&bytes[..HEADER_LEN + 8]),
            ..info
        };
        assert!(matches!(
            decode(&short, &bytes[..HEADER_LEN + 8]),
            Err(SnapshotError::Shape { .. })
        ));
    }

    #[test]
    fn only_objects_below_every_watermark_and_in_no_snapshot_may_go() {
        let h = History::Known {
            protected: [id(1, 2)].into_iter().collect(),
            watermark: id(2, 0).packed(),
        };
        assert!(
            h.may_delete(&id(1, 1)),
            "below the watermark, in no snapshot"
        );
        assert!(!h.may_delete(&id(1, 2)), "a snapshot points into it");
        assert!(
            !h.may_delete(&id(2, 0)),
            "at the watermark: its commit may follow"
        );
        assert!(History::None.may_delete(&id(9, 9)));
        assert!(!History::Unknown("snap/x".into()).may_delete(&id(1, 1)));
    }
}
