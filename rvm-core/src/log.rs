//! The circular redo log (LRVM §5.1).
//!
//! Logical positions are byte counts that grow forever; position `p` lives at
//! `log.offset + STATUS_AREA_LEN + p % capacity`. A record may straddle the physical end and
//! is then written in two pieces. Live records are `[head_pos, tail_pos)`; the record at
//! `head_pos` has sequence number `head_seq` and each next one has seq + 1. A scan stops at
//! the first record whose magic, log id, sequence number, length or CRC is wrong, so a torn
//! record or a stale one from an earlier lap ends recovery.

use std::sync::Arc;

use crate::error::{Result, RvmError};
use crate::record::{self, RecordRef, HEADER_LEN};
use crate::status::{self, Status, STATUS_AREA_LEN};
use crate::storage::{Area, Storage};

/// Geometry of the on-disk log (immutable) and its I/O helpers.
pub(crate) struct Log {
    pub storage: Arc<dyn Storage>,
    pub area: Area,
    pub capacity: u64,
    pub log_id: u64,
}

/// Live part of the log: `[head_pos, tail_pos)`, seqs `[head_seq, tail_seq)`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Positions {
    pub head_pos: u64,
    pub head_seq: u64,
    /// Position after the last durable record.
    pub tail_pos: u64,
    /// Sequence number of the next record written at `tail_pos`.
    pub tail_seq: u64,
}

impl Positions {
    pub fn used(&self) -> u64 {
        self.tail_pos - self.head_pos
    }
}

impl Log {
    fn phys(&self, pos: u64) -> u64 {
        self.area.offset + STATUS_AREA_LEN + pos % self.capacity
    }

    /// Write `buf` (at most `capacity` bytes) at logical position `pos`, wrapping.
    pub fn write_pos(&self, pos: u64, buf: &[u8]) -> Result<()> {
        let start = pos % self.capacity;
        let first = (buf.len() as u64).min(self.capacity - start) as usize;
        self.storage.write_at(&buf[..first], self.phys(pos))?;
        if first < buf.len() {
            self.storage
                .write_at(&buf[first..], self.area.offset + STATUS_AREA_LEN)?;
        }
        Ok(())
    }

    /// Read `buf.len()` (at most `capacity`) bytes at logical position `pos`, wrapping.
    pub fn read_pos(&self, pos: u64, buf: &mut [u8]) -> Result<()> {
        let start = pos % self.capacity;
        let first = (buf.len() as u64).min(self.capacity - start) as usize;
        self.storage.read_at(&mut buf[..first], self.phys(pos))?;
        if first < buf.len() {
            self.storage
                .read_at(&mut buf[first..], self.area.offset + STATUS_AREA_LEN)?;
        }
        Ok(())
    }

    /// Read the valid record expected at `pos` with sequence number `seq`, if any; returns
    /// the whole encoded record. The record may not extend past position `limit`.
    fn read_record(&self, pos: u64, seq: u64, limit: u64) -> Result<Option<Vec<u8>>> {
        if pos + HEADER_LEN as u64 > limit {
            return Ok(None);
        }
        let mut hdr = [0u8; HEADER_LEN];
        self.read_pos(pos, &mut hdr)?;
        let h = match record::parse_header(&hdr) {
            Some(h) if h.seq == seq && h.log_id == self.log_id => h,
            _ => return Ok(None),
        };
        if pos + h.total_len as u64 > limit {
            return Ok(None);
        }
        let mut buf = vec![0u8; h.total_len as usize];
        self.read_pos(pos, &mut buf)?;
        match record::decode(&buf) {
            Ok(_) => Ok(Some(buf)),
            Err(e) => {
                log::debug!("log scan stops at pos {pos} seq {seq}: {e}");
                Ok(None)
            }
        }
    }

    /// Recovery scan from `head`: call `f` on each valid record in order; returns the
    /// positions with the tail after the last valid record, and the number of records.
    pub fn scan(
        &self,
        head_pos: u64,
        head_seq: u64,
        mut f: impl FnMut(&RecordRef<'_>) -> Result<()>,
    ) -> Result<(Positions, u64)> {
        let limit = head_pos + self.capacity;
        let (mut pos, mut seq, mut n) = (head_pos, head_seq, 0);
        while let Some(buf) = self.read_record(pos, seq, limit)? {
            let rec = record::decode(&buf).map_err(RvmError::CorruptLog)?;
            f(&rec)?;
            pos += buf.len() as u64;
            seq += 1;
            n += 1;
        }
        let p = Positions {
            head_pos,
            head_seq,
            tail_pos: pos,
            tail_seq: seq,
        };
        Ok((p, n))
    }

    /// Apply the durable records `[p.head_pos, p.tail_pos)` to the storage (no sync).
    pub fn apply(&self, p: &Positions) -> Result<()> {
        let (mut pos, mut seq) = (p.head_pos, p.head_seq);
        while pos < p.tail_pos {
            let buf = self.read_record(pos, seq, p.tail_pos)?.ok_or_else(|| {
                RvmError::CorruptLog(format!(
                    "live record seq {seq} at position {pos} is unreadable"
                ))
            })?;
            let rec = record::decode(&buf).map_err(RvmError::CorruptLog)?;
            for (off, data) in &rec.ranges {
                self.storage.write_at(data, *off)?;
            }
            pos += buf.len() as u64;
            seq += 1;
        }
        Ok(())
    }

    /// Write status `generation` with the given head (no sync).
    pub fn write_status(&self, generation: u64, head_pos: u64, head_seq: u64) -> Result<()> {
        let s = Status {
            generation,
            head_pos,
            head_seq,
            capacity: self.capacity,
            log_id: self.log_id,
        };
        status::write_status(&*self.storage, self.area, &s)
    }
}
