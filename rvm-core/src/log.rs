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

/// State of the on-disk log; owned by whoever holds the log mutex.
pub(crate) struct Log {
    pub storage: Arc<dyn Storage>,
    pub area: Area,
    pub capacity: u64,
    pub log_id: u64,
    pub generation: u64,
    pub head_pos: u64,
    pub head_seq: u64,
    /// Position after the last durable record.
    pub tail_pos: u64,
    /// Sequence number of the next record written at `tail_pos`.
    pub tail_seq: u64,
}

impl Log {
    pub fn from_status(storage: Arc<dyn Storage>, area: Area, s: &Status) -> Log {
        Log {
            storage,
            area,
            capacity: s.capacity,
            log_id: s.log_id,
            generation: s.generation,
            head_pos: s.head_pos,
            head_seq: s.head_seq,
            tail_pos: s.head_pos,
            tail_seq: s.head_seq,
        }
    }

    /// Bytes of live records.
    pub fn used(&self) -> u64 {
        self.tail_pos - self.head_pos
    }

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
    /// the whole encoded record. `limit` is the position the record may not pass.
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

    /// Recovery scan from the head: call `f` on each valid record in order, then set
    /// `tail_pos`/`tail_seq` after the last one. Returns the number of records.
    pub fn scan(&mut self, mut f: impl FnMut(&RecordRef<'_>) -> Result<()>) -> Result<u64> {
        let limit = self.head_pos + self.capacity;
        let (mut pos, mut seq, mut n) = (self.head_pos, self.head_seq, 0);
        while let Some(buf) = self.read_record(pos, seq, limit)? {
            let rec = record::decode(&buf).map_err(RvmError::CorruptLog)?;
            f(&rec)?;
            pos += buf.len() as u64;
            seq += 1;
            n += 1;
        }
        self.tail_pos = pos;
        self.tail_seq = seq;
        Ok(n)
    }

    /// Append whole encoded records at the tail (no sync; the caller syncs and then calls
    /// [`Log::advance_tail`]). The caller checks free space.
    pub fn write_at_tail(&self, records: &[u8]) -> Result<()> {
        debug_assert!(self.used() + records.len() as u64 <= self.capacity);
        self.write_pos(self.tail_pos, records)
    }

    pub fn advance_tail(&mut self, bytes: u64, nrecords: u64) {
        self.tail_pos += bytes;
        self.tail_seq += nrecords;
    }

    /// Write a new status generation with the given head (no sync).
    pub fn write_status(&mut self, head_pos: u64, head_seq: u64) -> Result<()> {
        let s = Status {
            generation: self.generation + 1,
            head_pos,
            head_seq,
            capacity: self.capacity,
            log_id: self.log_id,
        };
        status::write_status(&*self.storage, self.area, &s)?;
        self.generation = s.generation;
        self.head_pos = head_pos;
        self.head_seq = head_seq;
        Ok(())
    }

    /// Truncation (LRVM §5.1.2): apply the live records to the segments, sync, move the head
    /// to the tail in the status block, sync. Returns the bytes reclaimed.
    pub fn truncate(&mut self) -> Result<u64> {
        if self.tail_pos == self.head_pos {
            return Ok(0);
        }
        let (mut pos, mut seq) = (self.head_pos, self.head_seq);
        while pos < self.tail_pos {
            let buf = self.read_record(pos, seq, self.tail_pos)?.ok_or_else(|| {
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
        self.storage.sync()?;
        let reclaimed = self.tail_pos - self.head_pos;
        self.write_status(self.tail_pos, self.tail_seq)?;
        self.storage.sync()?;
        Ok(reclaimed)
    }
}
