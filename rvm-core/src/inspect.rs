//! Reading a log as it lies on its storage, without recovering it: for inspectors such as
//! `rvmfs-admin logdump` (after Coda's `rvmutl` and debugfs's `logdump`). Nothing here
//! writes, and recovery does not use it: it walks the records the way the recovery scan
//! does ([`crate::log`]), from the status block's head, and says why the walk stopped
//! where recovery's scan would stop ([`LogEnd`]).
//!
//! ```text
//! let records = LogRecords::open(storage, log_area)?;  // status block, then the live log
//! let stop = records.stop().clone();                     // where and why it ends
//! for rec in records { ... }                             // each valid live record
//! ```

use std::path::Path;
use std::sync::Arc;

use crate::error::Result;
use crate::log::{Invalid, Log};
use crate::record::{self, RecordError, RecordHeader, RecordRef, HEADER_LEN};
use crate::spool::SPOOL_HEADER_LEN;
use crate::status::{self, Status};
use crate::storage::{Area, Storage};

/// One range of a record: where its new bytes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeInfo {
    /// Absolute storage offset of the range's first byte.
    pub offset: u64,
    /// Bytes of the range.
    pub len: u64,
    /// An external range (outside every region and the log, e.g. file data).
    pub external: bool,
}

/// One valid record of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    /// Logical log position (bytes, grows forever) of the record's first byte.
    pub pos: u64,
    /// Absolute storage offset of the record's first byte (a record may wrap: its tail is
    /// then at the start of the record space).
    pub offset: u64,
    /// Its header (`seq` is the Lsn of its first transaction, `total_len` its bytes).
    pub header: RecordHeader,
    /// Its ranges in record order (region ranges first, external ranges last).
    pub ranges: Vec<RangeInfo>,
}

impl LogRecord {
    /// The summary of the valid record `rec` found at `pos`, storage offset `offset`.
    fn of(rec: &RecordRef<'_>, pos: u64, offset: u64) -> LogRecord {
        let ranges = rec
            .ranges
            .iter()
            .enumerate()
            .map(|(i, (offset, data))| RangeInfo {
                offset: *offset,
                len: data.len() as u64,
                external: i >= rec.external_from,
            })
            .collect();
        LogRecord {
            pos,
            offset,
            header: rec.header,
            ranges,
        }
    }
}

/// Why a walk of the log stopped: what lies at the position after the last valid record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogEnd {
    /// No record header there (zeros, or bytes never written): the end of the written log.
    Unwritten,
    /// A record of this log from an earlier lap (a lower sequence number than expected):
    /// the end of the written log of this lap.
    Stale { seq: u64 },
    /// A record of this log whose sequence number is past the expected one: records are
    /// missing in between.
    SequenceGap { found: u64 },
    /// A record header of another log (another `log_id`).
    OtherLog { log_id: u64 },
    /// A record whose header is sound but whose bytes are not (its CRC or its ranges), with
    /// no valid record after it: a torn write, the last record not completely written.
    Torn {
        header: RecordHeader,
        error: RecordError,
    },
    /// As [`LogEnd::Torn`], but a valid next record follows it: damage inside the log,
    /// and the records after it are lost to recovery.
    Corrupt {
        header: RecordHeader,
        error: RecordError,
    },
    /// The next record would reach past one whole lap of the log from the head.
    Full,
}

/// Where and why the walk stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogStop {
    /// Logical position after the last valid record (the log's tail as recovery finds it).
    pub pos: u64,
    /// Absolute storage offset of that position.
    pub offset: u64,
    /// The sequence number a record there would have had to carry.
    pub seq: u64,
    pub reason: LogEnd,
}

/// The valid live records of a log, read from its status head in order (an iterator);
/// [`LogRecords::stop`] says where and why they end. The whole live log is read by
/// [`LogRecords::open`], in a few large reads (records are kept without their data).
pub struct LogRecords {
    status: Status,
    records: std::vec::IntoIter<LogRecord>,
    stop: LogStop,
}

impl LogRecords {
    /// Read the status block of the log in `area` of `storage`, then the live records from
    /// its head up to the first position holding no valid record.
    ///
    /// Errors: [`crate::RvmError::CorruptStatus`] when neither status copy is valid or its
    /// capacity does not match `area`, `InvalidArgument` for a bad area, `Io`.
    pub fn open(storage: Arc<dyn Storage>, area: Area) -> Result<LogRecords> {
        let status = status::read_status(&*storage, area)?;
        // Only read here: the segment (where records are applied) is never touched.
        let log = Log {
            segment: storage.clone(),
            storage,
            area,
            capacity: status.capacity,
            log_id: status.log_id,
        };
        let mut rd = log.reader(status.head_pos + log.capacity);
        let (mut pos, mut seq) = (status.head_pos, status.head_seq);
        let mut records = Vec::new();
        let invalid = loop {
            let rec = match rd.check(pos, seq)? {
                Ok(rec) => rec,
                Err(invalid) => break invalid,
            };
            records.push(LogRecord::of(&rec, pos, log.phys(pos)));
            pos += rec.header.total_len as u64;
            seq = rec.header.next_seq();
        };
        let reason = match invalid {
            Invalid::PastLimit => LogEnd::Full,
            Invalid::NoHeader => LogEnd::Unwritten,
            Invalid::OtherLog(h) => LogEnd::OtherLog { log_id: h.log_id },
            Invalid::Sequence(h) if h.seq < seq => LogEnd::Stale { seq: h.seq },
            Invalid::Sequence(h) => LogEnd::SequenceGap { found: h.seq },
            Invalid::Record(header, error) => {
                let next = pos + header.total_len as u64;
                match rd.check(next, header.next_seq())?.is_ok() {
                    true => LogEnd::Corrupt { header, error },
                    false => LogEnd::Torn { header, error },
                }
            }
        };
        let stop = LogStop {
            pos,
            offset: log.phys(pos),
            seq,
            reason,
        };
        Ok(LogRecords {
            status,
            records: records.into_iter(),
            stop,
        })
    }

    /// The status block the walk started from (head, generation, capacity, log id).
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// Where and why the valid log ends (the tail recovery would find).
    pub fn stop(&self) -> &LogStop {
        &self.stop
    }
}

impl Iterator for LogRecords {
    type Item = LogRecord;

    fn next(&mut self) -> Option<LogRecord> {
        self.records.next()
    }
}

/// What a spool file holds (Rio Vista's no-flush commits not yet in the log).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpoolSummary {
    /// Valid records of this log in the spool.
    pub records: u64,
    /// Of them, those the log already holds (sequence numbers below the log's tail).
    pub in_log: u64,
    /// Records that continue the log's sequence from its tail: what recovery would take.
    pub beyond_log: u64,
    /// Bytes of the records beyond the log.
    pub beyond_bytes: u64,
    /// The instance that wrote the spool met a storage error: recovery discards its records
    /// instead of replaying them (they may point at data that never reached the disk).
    pub poisoned: bool,
    /// The records beyond the log, in order (`pos` counts record bytes from the first
    /// record of the spool, `offset` is the byte offset in the spool file).
    pub beyond: Vec<LogRecord>,
}

/// Read the spool at `path` without changing it and count its records against a log whose
/// tail sequence number is `tail_seq` (as [`LogStop::seq`]); those beyond the log are the
/// same records recovery would take, listed. `None` when there is no spool file, or it has no valid header, or it belongs to
/// another log than `log_id`.
///
/// Errors: the file exists but cannot be read.
pub fn read_spool(
    path: &Path,
    log_id: u64,
    tail_seq: u64,
) -> std::io::Result<Option<SpoolSummary>> {
    let Some(spool) = crate::spool::read_spool(path, log_id)? else {
        return Ok(None);
    };
    let bytes = spool.records;
    let mut s = SpoolSummary {
        poisoned: spool.poisoned.is_some(),
        ..SpoolSummary::default()
    };
    let (mut at, mut next) = (0usize, tail_seq);
    while at + HEADER_LEN <= bytes.len() {
        let Ok(rec) = record::decode(&bytes[at..]) else {
            break;
        };
        let h = rec.header;
        if h.log_id != log_id || h.seq > next {
            break;
        }
        s.records += 1;
        if h.seq == next {
            s.beyond_log += 1;
            s.beyond_bytes += h.total_len as u64;
            let offset = SPOOL_HEADER_LEN + at as u64;
            s.beyond.push(LogRecord::of(&rec, at as u64, offset));
            next = h.next_seq();
        } else {
            s.in_log += 1;
        }
        at += h.total_len as usize;
    }
    Ok(Some(s))
}
