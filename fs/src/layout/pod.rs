//! Bounds-checked access to plain-old-data values in the region.
//!
//! Reads take the region's bytes (`Region::bytes` or `Transaction::bytes`); writes go through
//! a transaction, which declares the range (LRVM §4.1 set_range), so no write can be forgotten.

// The casts below (and `Header::encode`/`decode`) copy structures in native byte order; the
// format is little-endian (docs/format.md, conventions), so native must be little.
#[cfg(not(target_endian = "little"))]
compile_error!("rvmfs's on-disk structures are little-endian and cast in native byte order: build for a little-endian target");

use crate::error::{FsError, FsResult};
use bytemuck::Pod;
use rvm_core::Transaction;

/// Read a `T` at byte `offset` of `bytes`; a corrupt pointer gives `FsError::Corrupt`.
pub fn get<T: Pod>(bytes: &[u8], offset: u64) -> FsResult<T> {
    let slice = slice(bytes, offset, std::mem::size_of::<T>() as u64)?;
    Ok(bytemuck::pod_read_unaligned(slice))
}

/// `len` bytes at `offset` of `bytes`, or `FsError::Corrupt` when out of bounds.
pub fn slice(bytes: &[u8], offset: u64, len: u64) -> FsResult<&[u8]> {
    let end = offset.checked_add(len).filter(|&e| e <= bytes.len() as u64);
    match end {
        Some(end) => Ok(&bytes[offset as usize..end as usize]),
        None => Err(FsError::Corrupt(format!(
            "range {offset}+{len} outside the {}-byte region",
            bytes.len()
        ))),
    }
}

/// Write `value` at byte `offset` inside transaction `tx`.
pub fn put<T: Pod>(tx: &mut Transaction<'_>, offset: u64, value: &T) -> FsResult<()> {
    tx.write(offset as usize, bytemuck::bytes_of(value))?;
    Ok(())
}

/// Write raw `data` at byte `offset` inside transaction `tx`.
pub fn put_bytes(tx: &mut Transaction<'_>, offset: u64, data: &[u8]) -> FsResult<()> {
    tx.write(offset as usize, data)?;
    Ok(())
}
