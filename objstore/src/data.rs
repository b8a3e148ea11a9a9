//! Data objects in the bucket: upload one create-only ([`upload`]), read one block of one
//! back with its CRC32C checked ([`read_trailer`], [`read_block`]). The daemon's uploader and
//! cache and mkfs/fsck build on these (docs/format.md section 11.4, 11.5).

use crate::bucket::{Bucket, Put};
use crate::error::{Error, Result};
use crate::le::get_u32;
use crate::object::{self, Trailer, BLOCK, TRAILER};
use crate::object_id::ObjectId;
use bytes::Bytes;

/// Upload object `id` holding `blocks`, create-only: the key is new or the call fails with
/// [`Error::AlreadyExists`] (an object is never rewritten). Returns the object's size in
/// bytes. Only once this returns may a commit point at the object.
pub fn upload(bucket: &Bucket, id: ObjectId, blocks: &[&[u8; BLOCK]]) -> Result<u64> {
    let bytes = object::pack(id, blocks);
    let len = bytes.len() as u64;
    put_once(bucket, id, bytes)?;
    Ok(len)
}

/// Upload a sealed object create-only (see [`upload`]).
pub fn upload_sealed(bucket: &Bucket, s: &crate::packer::Sealed) -> Result<()> {
    put_once(bucket, s.id, s.bytes.clone())
}

/// A create-only put that is idempotent: a put whose answer was lost and which the client
/// retried comes back "already exists" although it was applied; then the object is read
/// back, and if it holds exactly these bytes the upload counts as done.
fn put_once(bucket: &Bucket, id: ObjectId, bytes: Bytes) -> Result<()> {
    let name = id.name();
    match bucket.put(&name, bytes.clone(), Put::Create) {
        Err(e @ Error::AlreadyExists { .. }) => match bucket.get(&name) {
            Ok((there, _)) if there == bytes => Ok(()),
            _ => Err(e),
        },
        r => r.map(|_| ()),
    }
}

fn corrupt(bucket: &Bucket, id: ObjectId, e: object::ObjectError) -> Error {
    Error::CorruptObject {
        key: bucket.target().key(&id.name()),
        source: e,
    }
}

/// Read and check object `id`'s trailer (its last 24 bytes): how many blocks it has.
/// Errors: [`Error::NotFound`], [`Error::CorruptObject`], the request's.
pub fn read_trailer(bucket: &Bucket, id: ObjectId) -> Result<Trailer> {
    let name = id.name();
    let (tail, len) = bucket.get_tail(&name, TRAILER as u64)?;
    let count = object::trailer_count(&tail).map_err(|e| corrupt(bucket, id, e))?;
    let crcs_at = u64::from(count) * BLOCK as u64;
    if crcs_at >= len {
        let e = object::ObjectError::Size {
            count,
            len: len as usize,
        };
        return Err(corrupt(bucket, id, e));
    }
    let footer = bucket.get_range(&name, crcs_at..len)?;
    object::check_footer(&footer, len as usize, id).map_err(|e| corrupt(bucket, id, e))
}

/// Block `index` of object `id` (whose trailer is `t`), checked against its stored CRC32C.
/// Errors: [`Error::CorruptObject`] for a block past the end or a CRC mismatch (never the
/// wrong bytes), [`Error::NotFound`], the request's.
pub fn read_block(bucket: &Bucket, t: &Trailer, index: u32) -> Result<Bytes> {
    if index >= t.count {
        let e = object::ObjectError::NoBlock {
            index,
            count: t.count,
        };
        return Err(corrupt(bucket, t.id, e));
    }
    let name = t.id.name();
    let at = u64::from(index) * BLOCK as u64;
    let block = bucket.get_range(&name, at..at + BLOCK as u64)?;
    let crc_at = u64::from(t.count) * BLOCK as u64 + 4 * u64::from(index);
    let crc = bucket.get_range(&name, crc_at..crc_at + 4)?;
    // A server may answer a range short: an error, never a panic or a short block.
    for (what, len, want) in [
        ("a block", block.len(), BLOCK),
        ("its CRC32C", crc.len(), 4),
    ] {
        if len != want {
            let e = object::ObjectError::ShortRange { what, len, want };
            return Err(corrupt(bucket, t.id, e));
        }
    }
    let stored = get_u32(&crc, 0);
    object::check_block(&block, index, stored).map_err(|e| corrupt(bucket, t.id, e))?;
    Ok(block)
}
