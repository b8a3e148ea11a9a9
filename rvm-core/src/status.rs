//! The log status block: two alternating 4 KiB copies at the start of the log area
//! (LRVM §5.1 keeps the log head and tail in a status block; we double it so a torn write
//! of one copy is survivable).
//!
//! ```text
//! copy i at log.offset + i*4096, little endian:
//!   0 magic u32 "RVMS" | 4 version u32 | 8 generation u64 | 16 head_pos u64
//!  24 head_seq u64 | 32 capacity u64 | 40 log_id u64 | 48 crc32c u32 of [0,48)
//! ```
//! Generation g is written to copy g % 2; the valid copy with the highest generation wins.

use crate::error::{Result, RvmError};
use crate::record::{rd_u32, rd_u64};
use crate::storage::{Area, Storage};
use crate::types::PAGE_SIZE;

pub(crate) const STATUS_MAGIC: u32 = u32::from_le_bytes(*b"RVMS");
pub(crate) const STATUS_VERSION: u32 = 1;
/// Bytes of one status copy.
pub const STATUS_COPY_LEN: u64 = 4096;
/// Bytes of the status area at the start of the log area (two copies).
pub const STATUS_AREA_LEN: u64 = 2 * STATUS_COPY_LEN;

/// Decoded status block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    pub generation: u64,
    /// Logical log position (bytes, grows forever) of the first live record.
    pub head_pos: u64,
    /// Sequence number expected at `head_pos`.
    pub head_seq: u64,
    /// Record capacity of the log in bytes (log area length - 8 KiB).
    pub capacity: u64,
    pub log_id: u64,
}

impl Status {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; STATUS_COPY_LEN as usize];
        b[0..4].copy_from_slice(&STATUS_MAGIC.to_le_bytes());
        b[4..8].copy_from_slice(&STATUS_VERSION.to_le_bytes());
        b[8..16].copy_from_slice(&self.generation.to_le_bytes());
        b[16..24].copy_from_slice(&self.head_pos.to_le_bytes());
        b[24..32].copy_from_slice(&self.head_seq.to_le_bytes());
        b[32..40].copy_from_slice(&self.capacity.to_le_bytes());
        b[40..48].copy_from_slice(&self.log_id.to_le_bytes());
        let crc = crc32c::crc32c(&b[..48]);
        b[48..52].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8]) -> Option<Status> {
        if b.len() < 52
            || rd_u32(b, 0) != STATUS_MAGIC
            || rd_u32(b, 4) != STATUS_VERSION
            || rd_u32(b, 48) != crc32c::crc32c(&b[..48])
        {
            return None;
        }
        Some(Status {
            generation: rd_u64(b, 8),
            head_pos: rd_u64(b, 16),
            head_seq: rd_u64(b, 24),
            capacity: rd_u64(b, 32),
            log_id: rd_u64(b, 40),
        })
    }
}

/// Record capacity (bytes) of a log area, or an error if the area is unusable.
pub(crate) fn capacity_of(log: Area) -> Result<u64> {
    let page = PAGE_SIZE as u64;
    if !log.offset.is_multiple_of(page) || !log.len.is_multiple_of(page) {
        return Err(RvmError::InvalidArgument(format!(
            "log area {log:?} is not 4096-aligned"
        )));
    }
    if log.len < STATUS_AREA_LEN + page {
        return Err(RvmError::InvalidArgument(format!(
            "log area of {} bytes is too small (min {})",
            log.len,
            STATUS_AREA_LEN + page
        )));
    }
    Ok(log.len - STATUS_AREA_LEN)
}

/// Read both copies; the valid one with the highest generation wins.
pub fn read_status(storage: &dyn Storage, log: Area) -> Result<Status> {
    let capacity = capacity_of(log)?;
    let mut best: Option<Status> = None;
    for i in 0..2 {
        let mut b = vec![0u8; STATUS_COPY_LEN as usize];
        storage.read_at(&mut b, log.offset + i * STATUS_COPY_LEN)?;
        if let Some(s) = Status::decode(&b) {
            if s.generation % 2 != i {
                continue;
            }
            if best.is_none_or(|b| s.generation > b.generation) {
                best = Some(s);
            }
        }
    }
    let s = best.ok_or_else(|| {
        RvmError::CorruptStatus("neither status copy is valid (not an RVM log?)".into())
    })?;
    if s.capacity != capacity {
        return Err(RvmError::CorruptStatus(format!(
            "status says capacity {} but the log area holds {}",
            s.capacity, capacity
        )));
    }
    Ok(s)
}

/// Write `s` into copy `s.generation % 2` (no sync).
pub(crate) fn write_status(storage: &dyn Storage, log: Area, s: &Status) -> Result<()> {
    storage.write_at(
        &s.encode(),
        log.offset + (s.generation % 2) * STATUS_COPY_LEN,
    )?;
    Ok(())
}
