//! Recovery (LRVM §5.1.2, made lazy): what [`Rvm::initialize`](crate::Rvm::initialize)
//! does before the instance exists, as named steps:
//!
//! 1. [`scan_log`]: validate the live log from the status head and find its tail; the
//!    records stay live (`map` overlays them, truncation applies them later);
//! 2. [`read_spool`]: take the spool records that continue the log's sequence (Rio Vista's
//!    no-flush commits that survived a process crash);
//! 3. the external ranges of all of them are written to the storage (`Gather`);
//! 4. [`append_spooled`]: make the spool records durable at the log tail;
//! 5. [`jump_sequence`]: start past every sequence number still lying in the log area;
//! 6. [`Shared::recovered`]: the instance's shared state over the recovered log.
//!
//! A crash at any point of this recovers again to the same image. With `read_only`,
//! nothing is written: the recovered ranges are kept in memory for `map`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Instant;

use crate::background::Signal;
use crate::commit::{FlushScratch, MAX_MERGE};
use crate::error::{Result, RvmError};
use crate::log::{Log, Positions};
use crate::options::RvmOptions;
use crate::overlay::Overlay;
use crate::record::{self, RecordRef, HEADER_LEN};
use crate::shared::{Inner, Shared};
use crate::spool::{self, Pending, Spool};
use crate::stats::Counters;
use crate::status::{self, Status};
use crate::storage::Storage;
use crate::truncate::truncate_eagerly;

/// Bytes of range data recovery gathers before writing their union.
const RECOVERY_BATCH: usize = 16 << 20;

/// What recovery hands to the new instance.
pub(crate) struct Recovered {
    log: Log,
    /// The live log after recovery.
    pos: Positions,
    /// The status generation last written.
    generation: u64,
    /// Seq of the next commit.
    next_seq: u64,
    /// Records recovered (log + spool; those holding ranges, not recovery's jumps).
    records: u64,
    /// Records of a poisoned spool not replayed.
    discarded: u64,
    /// read_only: the recovered ranges (offset, bytes) in order, applied by `map`.
    ranges: Vec<(u64, Vec<u8>)>,
    /// When recovery started (for `Stats::recovery_time`).
    started: Instant,
}

impl Recovered {
    /// Live log bytes right after recovery (what truncation still has to apply).
    pub(crate) fn live_bytes(&self) -> u64 {
        self.pos.used()
    }
}

/// The ranges recovery collects from the live records while it validates them (later
/// value wins): external ranges, written to the storage eagerly (the caller reads them
/// from the storage, not through a region); with `read_only`, every range, kept in memory
/// for `map`. Both are gathered [`RECOVERY_BATCH`] bytes at a time.
struct Gather<'a> {
    storage: &'a dyn Storage,
    read_only: bool,
    /// read_only: ranges not yet moved to `recovered`.
    ov: Overlay,
    /// External ranges not yet written.
    ovx: Overlay,
    recovered: Vec<(u64, Vec<u8>)>,
    /// A live record holds deferred ranges (`Transaction::log_deferred`).
    deferred: bool,
    /// Keep external ranges in memory until told (spool records: their bytes may reach
    /// the storage only once the records are durable in the log).
    hold: bool,
}

impl Gather<'_> {
    fn add(&mut self, rec: &RecordRef<'_>) -> Result<()> {
        if self.read_only {
            for (off, data) in &rec.ranges {
                self.ov.push(*off, data);
            }
            if self.ov.data_len() >= RECOVERY_BATCH {
                self.drain();
            }
        } else {
            self.deferred |= !rec.deferred_ranges().is_empty();
            for (off, data) in rec.external_ranges() {
                self.ovx.push(*off, data);
            }
            if self.ovx.data_len() >= RECOVERY_BATCH && !self.hold {
                self.write_external()?;
            }
        }
        Ok(())
    }

    /// read_only: move the gathered ranges (their union) to `recovered`.
    fn drain(&mut self) {
        if !self.ov.is_empty() {
            let u = self.ov.union();
            for (off, data) in u.ranges() {
                self.recovered.push((off, data.to_vec()));
            }
        }
    }

    /// Write the gathered external ranges (their union) to the storage.
    fn write_external(&mut self) -> Result<()> {
        if !self.ovx.is_empty() {
            crate::overlay::write_union(self.storage, &self.ovx.union())?;
        }
        Ok(())
    }
}

/// Recover the log of `options.log` (steps 1 to 5 of the module docs).
///
/// Errors: [`RvmError::CorruptStatus`] if neither status copy is valid or the capacity
/// does not match `options.log`; `CorruptLog` for a spool record larger than the log;
/// `InvalidArgument` for a bad log area or one too small for the sequence jump; `Io`.
pub(crate) fn recover(
    storage: &Arc<dyn Storage>,
    log_storage: &Arc<dyn Storage>,
    options: &RvmOptions,
) -> Result<Recovered> {
    let st = status::read_status(&**log_storage, options.log)?;
    let log = Log {
        storage: log_storage.clone(),
        segment: storage.clone(),
        area: options.log,
        capacity: st.capacity,
        log_id: st.log_id,
    };
    let started = Instant::now();
    let mut gather = Gather {
        storage: &**storage,
        read_only: options.read_only,
        ov: Overlay::new(),
        ovx: Overlay::new(),
        recovered: Vec::new(),
        deferred: false,
        hold: false,
    };
    let (mut pos, mut records) = scan_log(&log, &st, &mut gather)?;
    // The log's records are durable: their external ranges may be written now. The
    // spool's only after they are appended to the log (a power cut during recovery must
    // not leave a lost record's deferred bytes in place).
    gather.write_external()?;
    gather.hold = true;
    let spooled = match &options.spool {
        Some(path) => read_spool(path, st.log_id, pos.tail_seq, &mut gather)?,
        None => Spooled {
            bytes: Vec::new(),
            next_seq: pos.tail_seq,
            records: 0,
            discarded: 0,
        },
    };
    records += spooled.records;
    gather.drain();
    let mut generation = st.generation;
    let next_seq = if options.read_only {
        spooled.next_seq
    } else {
        append_spooled(&log, &mut pos, &mut generation, &spooled.bytes)?;
        jump_sequence(&log, &mut pos, &mut generation)?;
        // Idempotent and needs no sync of its own: the records are durable and stay live
        // until a truncation, whose first sync covers these writes; a crash before that
        // replays them again.
        gather.write_external()?;
        if gather.deferred {
            // Deferred ranges were just written, in log order; a truncation would write
            // them again, over whatever the caller writes there meanwhile (it cannot know
            // which bytes they are). Apply the records now instead.
            truncate_eagerly(&log, &mut pos, &mut generation)?;
        }
        pos.tail_seq
    };
    log::info!(
        "rvm: recovered {records} records lazily, log head {} tail {}",
        pos.head_pos,
        pos.tail_pos
    );
    Ok(Recovered {
        log,
        pos,
        generation,
        next_seq,
        records,
        discarded: spooled.discarded,
        ranges: gather.recovered,
        started,
    })
}

/// Step 1: validate the live log from the status head (stopping at the first torn, stale
/// or corrupt record), gathering the ranges of its records. Returns the live positions
/// and the number of records holding ranges.
fn scan_log(log: &Log, st: &Status, gather: &mut Gather<'_>) -> Result<(Positions, u64)> {
    let mut records = 0u64;
    let (pos, _) = log.scan(st.head_pos, st.head_seq, |rec| {
        records += (rec.header.nranges > 0) as u64;
        gather.add(rec)
    })?;
    Ok((pos, records))
}

/// The spool records that continue the log.
struct Spooled {
    /// The records, as encoded.
    bytes: Vec<u8>,
    /// Seq after the last of them (the log's tail seq if there are none).
    next_seq: u64,
    records: u64,
    /// Records that would have continued the log, not replayed: the spool is poisoned.
    discarded: u64,
}

/// Step 2: the records of the spool at `path` that continue the log's sequence from
/// `next_seq` (older ones are already in the log and skipped; a gap or a record of another
/// log ends them), gathering their ranges.
fn read_spool(
    path: &Path,
    log_id: u64,
    mut next_seq: u64,
    gather: &mut Gather<'_>,
) -> Result<Spooled> {
    let mut spooled = Vec::new();
    let (mut records, mut discarded) = (0u64, 0u64);
    let file = spool::read_spool(path, log_id)?;
    let poisoned = file.as_ref().and_then(|f| f.poisoned);
    let bytes = file.map(|f| f.records).unwrap_or_default();
    // Seq the next spool record must have to continue the log (`next_seq` follows it only
    // while records are taken: a poisoned spool's are counted, not taken).
    let mut expect = next_seq;
    let mut at = 0usize;
    while at + HEADER_LEN <= bytes.len() {
        let Ok(rec) = record::decode(&bytes[at..]) else {
            break;
        };
        let h = rec.header;
        if h.log_id != log_id || h.seq > expect {
            log::warn!("spool record seq {} does not continue the log", h.seq);
            break;
        }
        if h.seq == expect {
            expect = h.next_seq();
            if poisoned.is_some() {
                discarded += 1;
            } else {
                spooled.extend_from_slice(&bytes[at..at + h.total_len as usize]);
                next_seq = expect;
                records += 1;
                gather.add(&rec)?;
            }
        }
        at += h.total_len as usize;
    }
    if let (Some(code), true) = (poisoned, discarded > 0) {
        let op = crate::failure::FailedOp::from_code(code)
            .map_or_else(|| format!("code {code}"), |op| op.to_string());
        log::warn!(
            "spool {}: {discarded} records not replayed: the instance that wrote them failed \
             ({op} failed) before they were durable, and their data may never have reached \
             the disk",
            path.display()
        );
    }
    Ok(Spooled {
        bytes: spooled,
        next_seq,
        records,
        discarded,
    })
}

/// Step 4: the spool does not survive a power loss (tmpfs), so its records become part of
/// the committed state only once they are durable in the log: append them at the tail and
/// sync (they reach the segment later, by truncation, like any record). Only if the log
/// has no room is it truncated here first (eagerly).
fn append_spooled(
    log: &Log,
    pos: &mut Positions,
    generation: &mut u64,
    spooled: &[u8],
) -> Result<()> {
    let mut at = 0;
    while at < spooled.len() {
        let free = log.capacity - pos.used();
        let (mut end, mut seq) = (at, pos.tail_seq);
        while end < spooled.len() {
            let h = record::parse_header(&spooled[end..])
                .ok_or_else(|| RvmError::CorruptLog("spool record".into()))?;
            if (end + h.total_len as usize - at) as u64 > free {
                break;
            }
            end += h.total_len as usize;
            seq = h.next_seq();
        }
        if end == at {
            if pos.used() == 0 {
                return Err(RvmError::CorruptLog(
                    "spool record larger than the log".into(),
                ));
            }
            truncate_eagerly(log, pos, generation)?;
            continue;
        }
        log.write_pos(pos.tail_pos, &spooled[at..end], false)?;
        log.storage.sync()?;
        pos.tail_pos += (end - at) as u64;
        pos.tail_seq = seq;
        at = end;
    }
    Ok(())
}

/// Step 5: start past every sequence number that may still lie in the log area (at most
/// one record per HEADER_LEN bytes of capacity, each holding at most MAX_MERGE Lsns), so a
/// stale record beyond the tail can never pass for a new one. The jump is made durable as
/// record(s) holding no ranges at the tail (the log stays live), before anything else is
/// written after it.
fn jump_sequence(log: &Log, pos: &mut Positions, generation: &mut u64) -> Result<()> {
    let jump = (log.capacity / HEADER_LEN as u64 + 1) * MAX_MERGE as u64;
    let jumps = record::jump_records(pos.tail_seq, jump, log.log_id);
    if jumps.len() as u64 > log.capacity - pos.used() {
        truncate_eagerly(log, pos, generation)?;
    }
    if jumps.len() as u64 > log.capacity {
        return Err(RvmError::InvalidArgument("log too small".into()));
    }
    log.write_pos(pos.tail_pos, &jumps, false)?;
    log.storage.sync()?;
    pos.tail_pos += jumps.len() as u64;
    pos.tail_seq += jump;
    Ok(())
}

impl Shared {
    /// Step 6: the shared state of a new instance over the recovered log: the pending
    /// records (in `spool`, the file `spool::claim` locked, emptied; or in memory), the
    /// counters (recovery's among them), the tunables from `options`.
    pub(crate) fn recovered(
        storage: Arc<dyn Storage>,
        options: RvmOptions,
        rec: Recovered,
        spool: Option<std::fs::File>,
    ) -> Result<Shared> {
        let next = rec.next_seq;
        let pending = match spool {
            Some(file) => Pending::Spool(Spool::create(
                file,
                options.spool_size,
                rec.log.log_id,
                next,
            )?),
            _ => Pending::Mem {
                buf: Vec::new(),
                limit: options.spool_size,
            },
        };
        let spool_file = match &pending {
            Pending::Spool(s) => Some(s.file()?),
            Pending::Mem { .. } => None,
        };
        let counters = Counters::default();
        counters
            .records_recovered
            .store(rec.records, Ordering::Relaxed);
        counters
            .bytes_recovered
            .store(rec.live_bytes(), Ordering::Relaxed);
        counters
            .spool_records_discarded
            .store(rec.discarded, Ordering::Relaxed);
        let threshold = options.truncate_threshold.unwrap_or(0).min(100) as u64;
        counters
            .recovery_ns
            .store(rec.started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Ok(Shared {
            storage,
            log: rec.log,
            leader: Mutex::new(FlushScratch::default()),
            durable_cv: Condvar::new(),
            pos: Mutex::new(rec.pos),
            trunc: Mutex::new(rec.generation),
            inner: Mutex::new(Inner {
                next_seq: next,
                durable_seq: next,
                pending,
                mapped: Vec::new(),
                leading: false,
            }),
            counters,
            recovered: rec.ranges,
            signal: Signal::default(),
            threshold: AtomicU64::new(threshold),
            checked: AtomicBool::new(options.checked),
            commit_interval: Mutex::new(options.commit_interval),
            truncating: AtomicBool::new(false),
            on_demand: AtomicBool::new(false),
            unlogged_noted: AtomicU64::new(0),
            unlogged_synced: AtomicU64::new(0),
            failure: OnceLock::new(),
            spool_file,
            ship: (options.ship && !options.read_only)
                .then(|| crate::ship::ShipState::new(rec.pos.head_seq)),
            intra: AtomicBool::new(true),
            inter: AtomicBool::new(true),
            opts: options,
        })
    }
}
