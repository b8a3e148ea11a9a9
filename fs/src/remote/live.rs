//! The data objects one state of the region points into, and its watermark (docs/format.md
//! 11.6): what every snapshot's object list records (`objstore::ship::gc`) and what fsck
//! compares the bucket's listing with. The watermark is moved here too: to `epoch << 32`
//! when a writer's uploader starts (every older epoch's objects are decided: their writers
//! are gone), and past each object in the transaction that repoints it.

use crate::error::FsResult;
use crate::layout::pod;
use crate::layout::superblock::field;
use crate::ops::Op;
use crate::store::extent_map::{EXTENTS, REMOTE};
use objstore::ship::gc::{LiveObjects, ObjectsAt};
use objstore::ObjectId;
use std::sync::Arc;

/// The objects the `REMOTE` extents of region `bytes` point into (objects of `1 << shift`
/// blocks) and the superblock's `object_watermark`. Errors: a damaged superblock or extent
/// tree.
pub fn objects_at(bytes: &[u8], shift: u32) -> FsResult<ObjectsAt> {
    let mut out = ObjectsAt {
        watermark: crate::store::superblock(bytes)?.object_watermark,
        ..ObjectsAt::default()
    };
    EXTENTS.scan(bytes, (0, 0), (u64::MAX, u64::MAX), |_, v| {
        if v[2] & REMOTE != 0 {
            out.live.insert(ObjectId::of_vblock(v[1], shift).0);
        }
        Ok(true)
    })?;
    Ok(out)
}

/// [`objects_at`] for the log shipper (`ShipConfig::live_objects`).
pub fn reader(shift: u32) -> LiveObjects {
    LiveObjects(Arc::new(move |bytes: &[u8]| {
        objects_at(bytes, shift).map_err(|e| e.to_string())
    }))
}

/// Raise the watermark to `to` (a packed id) in `op`'s transaction; never lowers it.
pub fn raise_watermark(op: &mut Op<'_>, to: u64) -> FsResult<()> {
    let now = crate::store::superblock(op.bytes())?.object_watermark;
    if to > now {
        pod::put(&mut op.tx, field::OBJECT_WATERMARK, &to)?;
    }
    Ok(())
}
