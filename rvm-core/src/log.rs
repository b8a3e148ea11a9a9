//! The circular redo log (LRVM §5.1).
//!
//! Logical positions are byte counts that grow forever; position `p` lives at
//! `log.offset + STATUS_AREA_LEN + p % capacity`. A record may straddle the physical end and
//! is then written in two pieces. Live records are `[head_pos, tail_pos)`; the record at
//! `head_pos` has sequence number `head_seq` and each next one has seq + 1 (+ its `merged`). A scan stops at
//! the first record whose magic, log id, sequence number, length or CRC is wrong, so a torn
//! record or a stale one from an earlier lap ends recovery.

use std::sync::Arc;

use crate::error::{Result, RvmError};
use crate::overlay::Overlay;
use crate::record::{self, RecordError, RecordHeader, RecordRef, HEADER_LEN};
use crate::status::{self, Status, STATUS_AREA_LEN};
use crate::storage::{Area, Storage};

/// Geometry of the on-disk log (immutable) and its I/O helpers.
pub(crate) struct Log {
    /// The storage holding the log area (the segment's own, or a separate log device).
    pub storage: Arc<dyn Storage>,
    /// The storage the records' ranges are applied to (the segments and external ranges).
    pub segment: Arc<dyn Storage>,
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
    pub(crate) fn phys(&self, pos: u64) -> u64 {
        self.area.offset + STATUS_AREA_LEN + pos % self.capacity
    }

    /// Write `buf` (at most `capacity` bytes) at logical position `pos`, wrapping. With
    /// `durable`, each piece is written with `Storage::write_durable_at` (the commit syncs the
    /// log range only, not the data area's dirty pages in the same file); without, the
    /// caller syncs.
    pub fn write_pos(&self, pos: u64, buf: &[u8], durable: bool) -> Result<()> {
        let start = pos % self.capacity;
        let first = (buf.len() as u64).min(self.capacity - start) as usize;
        let pieces = [
            (&buf[..first], self.phys(pos)),
            (&buf[first..], self.area.offset + STATUS_AREA_LEN),
        ];
        for (piece, at) in pieces {
            if piece.is_empty() {
                continue;
            }
            if durable {
                self.storage.write_durable_at(piece, at)?;
            } else {
                self.storage.write_at(piece, at)?;
            }
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

    /// A buffered reader of the live log (few large reads instead of two per record).
    pub(crate) fn reader(&self, limit: u64) -> Reader<'_> {
        Reader {
            log: self,
            limit,
            buf: Vec::new(),
            buf_pos: 0,
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
        let mut rd = self.reader(limit);
        let (mut pos, mut seq, mut n) = (head_pos, head_seq, 0);
        while let Some(rec) = rd.record(pos, seq)? {
            f(&rec)?;
            pos += rec.header.total_len as u64;
            seq = rec.header.next_seq();
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

    /// Apply the durable records `[p.head_pos, p.tail_pos)` to the segment storage (no sync). The
    /// records' ranges are gathered into an [`Overlay`] (later value wins) and written as
    /// their union, a few MiB of records at a time, so a rewrite-heavy log costs few writes.
    pub fn apply(&self, p: &Positions) -> Result<()> {
        let mut rd = self.reader(p.tail_pos);
        let mut ov = Overlay::new();
        let (mut pos, mut seq) = (p.head_pos, p.head_seq);
        while pos < p.tail_pos {
            let rec = rd.record(pos, seq)?.ok_or_else(|| {
                RvmError::CorruptLog(format!(
                    "live record seq {seq} at position {pos} is unreadable"
                ))
            })?;
            // External ranges are skipped: their bytes were written in place before the
            // commit, so this truncation's sync (before the head moves past the record)
            // makes them durable (recovery wrote those of records found after a crash).
            // Deferred ones were not: they are written now, in log order.
            for (off, data) in rec.region_ranges().iter().chain(rec.deferred_ranges()) {
                ov.push(*off, data);
            }
            pos += rec.header.total_len as u64;
            seq = rec.header.next_seq();
            if ov.data_len() >= APPLY_BATCH {
                self.write_union(&mut ov)?;
            }
        }
        self.write_union(&mut ov)
    }

    /// Call `f` on each live record of `[p.head_pos, p.tail_pos)` in order, reading the log
    /// without any lock; returns the position where the walk stopped: `p.tail_pos` unless a
    /// record was unreadable (overwritten after a truncation let its space go, or corrupt).
    /// Every record passed to `f` is valid (seq, log id and CRC checked).
    pub fn walk(&self, p: &Positions, mut f: impl FnMut(&RecordRef<'_>)) -> Result<u64> {
        let mut rd = self.reader(p.tail_pos);
        let (mut pos, mut seq) = (p.head_pos, p.head_seq);
        while pos < p.tail_pos {
            let Some(rec) = rd.record(pos, seq)? else {
                break;
            };
            f(&rec);
            pos += rec.header.total_len as u64;
            seq = rec.header.next_seq();
        }
        Ok(pos)
    }

    /// As [`Log::walk`], handing `f` each record's header and encoded bytes (validated as
    /// `walk` validates them): what a log shipper copies out (`crate::ship`).
    pub fn walk_bytes(
        &self,
        p: &Positions,
        mut f: impl FnMut(&RecordHeader, &[u8]),
    ) -> Result<u64> {
        let mut rd = self.reader(p.tail_pos);
        let (mut pos, mut seq) = (p.head_pos, p.head_seq);
        while pos < p.tail_pos {
            let Some(h) = rd.record(pos, seq)?.map(|r| r.header) else {
                break;
            };
            f(&h, rd.get(pos, h.total_len as usize)?);
            pos += h.total_len as u64;
            seq = h.next_seq();
        }
        Ok(pos)
    }

    /// The position and seq of the first live record whose seq is at least `floor` (the
    /// tail if none): how far a truncation may go while shipping holds records back.
    pub fn boundary(&self, p: &Positions, floor: u64) -> Result<(u64, u64)> {
        if floor >= p.tail_seq {
            return Ok((p.tail_pos, p.tail_seq));
        }
        let (mut pos, mut seq) = (p.head_pos, p.head_seq);
        let mut rd = self.reader(p.tail_pos);
        while pos < p.tail_pos && seq < floor {
            let h = rd.record(pos, seq)?.map(|r| r.header).ok_or_else(|| {
                RvmError::CorruptLog(format!(
                    "live record seq {seq} at position {pos} is unreadable"
                ))
            })?;
            if h.next_seq() > floor {
                break;
            }
            pos += h.total_len as u64;
            seq = h.next_seq();
        }
        Ok((pos, seq))
    }

    fn write_union(&self, ov: &mut Overlay) -> Result<()> {
        if ov.is_empty() {
            return Ok(());
        }
        let u = ov.union();
        crate::overlay::write_union(&*self.segment, &u)?;
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

/// Bytes of range data gathered before `Log::apply` writes their union.
const APPLY_BATCH: usize = 4 << 20;
/// Bytes read at once by a [`Reader`].
const READ_CHUNK: u64 = 4 << 20;

/// Buffered sequential reader of log positions below `limit`.
pub(crate) struct Reader<'a> {
    log: &'a Log,
    limit: u64,
    buf: Vec<u8>,
    /// Logical position of `buf[0]`.
    buf_pos: u64,
}

impl Reader<'_> {
    /// Bytes `[pos, pos + len)`; the caller checked `pos + len <= limit`.
    fn get(&mut self, pos: u64, len: usize) -> Result<&[u8]> {
        let have = pos >= self.buf_pos && pos + len as u64 <= self.buf_pos + self.buf.len() as u64;
        if !have {
            let n = (len as u64).max(READ_CHUNK).min(self.limit - pos);
            let n = n.min(self.log.capacity) as usize;
            self.buf.resize(n, 0);
            self.buf_pos = pos;
            self.log.read_pos(pos, &mut self.buf)?;
        }
        let at = (pos - self.buf_pos) as usize;
        Ok(&self.buf[at..at + len])
    }

    /// The valid record expected at `pos` with sequence number `seq`, if any. It may not
    /// extend past `limit`.
    fn record(&mut self, pos: u64, seq: u64) -> Result<Option<RecordRef<'_>>> {
        match self.check(pos, seq)? {
            Ok(r) => Ok(Some(r)),
            Err(stop) => {
                log::debug!("log scan stops at pos {pos} seq {seq}: {stop:?}");
                Ok(None)
            }
        }
    }

    /// The record expected at `pos` with sequence number `seq`, or why there is none there
    /// (what [`Reader::record`] answers as `None`; `crate::inspect` reports it).
    pub(crate) fn check(&mut self, pos: u64, seq: u64) -> Result<Checked<'_>> {
        if pos + HEADER_LEN as u64 > self.limit {
            return Ok(Err(Invalid::PastLimit));
        }
        let log_id = self.log.log_id;
        let h = match record::parse_header(self.get(pos, HEADER_LEN)?) {
            None => return Ok(Err(Invalid::NoHeader)),
            Some(h) if h.log_id != log_id => return Ok(Err(Invalid::OtherLog(h))),
            Some(h) if h.seq != seq => return Ok(Err(Invalid::Sequence(h))),
            Some(h) => h,
        };
        if pos + h.total_len as u64 > self.limit {
            return Ok(Err(Invalid::PastLimit));
        }
        let buf = self.get(pos, h.total_len as usize)?;
        Ok(record::decode(buf).map_err(|e| Invalid::Record(h, e)))
    }
}

/// What [`Reader::check`] found at a position: the valid record, or why it is not one.
pub(crate) type Checked<'a> = std::result::Result<RecordRef<'a>, Invalid>;

/// Why no valid record lies at a log position (see [`Reader::check`]).
#[derive(Debug)]
pub(crate) enum Invalid {
    /// The record (or its header) would extend past the scan's limit (one lap of the log).
    PastLimit,
    /// No plausible record header (magic, kind, length).
    NoHeader,
    /// A record header of another log.
    OtherLog(RecordHeader),
    /// A record header of this log with another sequence number than expected.
    Sequence(RecordHeader),
    /// The header is plausible, the record is not (CRC, ranges).
    Record(RecordHeader, RecordError),
}
