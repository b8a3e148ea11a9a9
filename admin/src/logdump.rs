//! `rvmfs-admin logdump IMAGE`: the live records of the image's redo log (after Coda's
//! `rvmutl` and debugfs's `logdump`), what each range touches (`names`), and where the valid
//! log ends and why; the spool's records beyond the log.

mod names;

use crate::exit;
use crate::image::open_image;
use anyhow::Context;
use names::{Namer, Touch};
use rvm_core::inspect::{self, LogEnd, LogRecord, LogRecords, LogStop};
use rvm_core::{FileStorage, Storage};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;

/// List the live records of an image's redo log.
///
/// For each record: its LSN (and how many transactions the inter-transaction merge folded
/// into it), its offset in the image and length, its ranges and what each touches (a
/// superblock field, inode N, a bitmap word, a B+tree node of which tree, a heap chunk,
/// data checksums, a data block of which file); external ranges (file data logged with
/// its metadata) are marked. Records keep no commit time. Every record's CRC and sequence
/// number is checked; the last line says where the valid log ends and why (end of the
/// written log, a torn record, a CRC mismatch with valid records after it, a sequence
/// gap). Then the spool (/dev/shm/rvmfs-UUID.spool), if present: how many records it
/// holds beyond the log (no-flush commits a mount or fsck would replay), and those records.
///
/// Read-only: the image is opened O_RDONLY and never written; it may be mounted (what this
/// shows may then lag the daemon). Ranges are named from the image's metadata with the log
/// replayed in memory.
///
/// Exit status: 0 the log is sound, 1 the valid log ends at a torn or corrupt record or a
/// sequence gap, 8 operational error, 16 usage error.
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Only records whose LSNs meet FROM..TO (either end may be left out; one number = one LSN).
    #[arg(long, value_name = "FROM..TO", value_parser = parse_lsns)]
    lsn: Option<(u64, u64)>,
    /// Only records with a range that belongs to inode N (its inode slot, its names, xattrs
    /// or data blocks).
    #[arg(long, value_name = "N")]
    inode: Option<u64>,
    /// Print the records as JSON (one document).
    #[arg(long)]
    json: bool,
    /// The image file.
    image: PathBuf,
}

/// Parse `A..B`, `A..`, `..B` or `A` into an inclusive LSN range.
fn parse_lsns(s: &str) -> Result<(u64, u64), String> {
    let num = |t: &str, dflt: u64| match t.trim() {
        "" => Ok(dflt),
        t => t.parse::<u64>().map_err(|e| format!("{t:?}: {e}")),
    };
    match s.split_once("..") {
        Some((a, b)) => Ok((num(a, 0)?, num(b, u64::MAX)?)),
        None => num(s, 0).map(|n| (n, n)),
    }
}

#[derive(Serialize)]
struct Range {
    offset: u64,
    len: u64,
    external: bool,
    #[serde(flatten)]
    touch: Touch,
}

#[derive(Serialize)]
struct Record {
    lsn: u64,
    /// Last LSN it holds (= lsn unless merged).
    last_lsn: u64,
    offset: u64,
    pos: u64,
    len: u32,
    external_ranges: usize,
    ranges: Vec<Range>,
}

#[derive(Serialize)]
struct Report {
    image: String,
    log_offset: u64,
    log_len: u64,
    log_id: String,
    generation: u64,
    head_pos: u64,
    head_lsn: u64,
    records_live: usize,
    records: Vec<Record>,
    end: End,
    spool: Option<Spool>,
}

#[derive(Serialize)]
struct End {
    offset: u64,
    pos: u64,
    next_lsn: u64,
    sound: bool,
    why: String,
}

#[derive(Serialize)]
struct Spool {
    path: String,
    records: u64,
    in_log: u64,
    beyond_log: u64,
    beyond_bytes: u64,
    /// The daemon that wrote it met a storage error: a mount discards these records.
    poisoned: bool,
    /// The records beyond the log (as the filters select them); `offset` is in the spool file.
    beyond: Vec<Record>,
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let img = match open_image("logdump", &args.image) {
        Ok(img) => img,
        Err(code) => return Ok(code),
    };
    // The log as it lies in the file (the image's, or the external log device's), not as
    // the read-only open replayed it.
    let (log_path, area) = match &img.log_device {
        Some((path, log_header)) => (path.as_path(), log_header.log),
        None => (args.image.as_path(), img.header.log_area()),
    };
    let file = std::fs::File::open(log_path)
        .with_context(|| format!("logdump: {}", log_path.display()))?;
    let raw: Arc<dyn Storage> = Arc::new(FileStorage::new(file));
    let records = match LogRecords::open(raw, area) {
        Ok(r) => r,
        Err(e) => {
            exit::say(
                "logdump",
                &args.image,
                format!("the log cannot be read: {e}"),
            );
            return Ok(exit::OPERATIONAL);
        }
    };
    let namer = Namer::new(img.header, img.region.bytes());
    let log = LogPlace {
        name: log_path.display().to_string(),
        area,
    };
    let report = report(&args, &img.header, &log, records, &namer);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print(&report);
    }
    Ok(if report.end.sound {
        exit::OK
    } else {
        exit::ERROR
    })
}

/// Where the log lies: the image itself, or its external log device (`mkfs -J device=`).
struct LogPlace {
    name: String,
    area: rvm_core::Area,
}

fn report(
    args: &Args,
    header: &rvmfs::layout::header::Header,
    log: &LogPlace,
    records: LogRecords,
    namer: &Namer<'_>,
) -> Report {
    let status = *records.status();
    let stop = records.stop().clone();
    let all: Vec<LogRecord> = records.collect();
    let records_live = all.len();
    let shown = selected(args, &all, namer);
    let spool = rvmfs::image::spool_path(header).and_then(|path| {
        let s = inspect::read_spool(&path, status.log_id, stop.seq).ok()??;
        Some(Spool {
            path: path.display().to_string(),
            records: s.records,
            in_log: s.in_log,
            beyond_log: s.beyond_log,
            beyond_bytes: s.beyond_bytes,
            poisoned: s.poisoned,
            beyond: selected(args, &s.beyond, namer),
        })
    });
    Report {
        image: log.name.clone(),
        log_offset: log.area.offset,
        log_len: log.area.len,
        log_id: format!("{:#018x}", status.log_id),
        generation: status.generation,
        head_pos: status.head_pos,
        head_lsn: status.head_seq,
        records_live,
        records: shown,
        end: end(&stop),
        spool,
    }
}

/// The records of `all` the filters select, with their ranges named.
fn selected(args: &Args, all: &[LogRecord], namer: &Namer<'_>) -> Vec<Record> {
    all.iter()
        .map(|r| record(r, namer))
        .filter(|r| wanted(args, r))
        .collect()
}

fn record(r: &LogRecord, namer: &Namer<'_>) -> Record {
    let ranges: Vec<Range> = r
        .ranges
        .iter()
        .map(|g| Range {
            offset: g.offset,
            len: g.len,
            external: g.external,
            touch: namer.name(g.offset, g.len),
        })
        .collect();
    Record {
        lsn: r.header.seq,
        last_lsn: r.header.next_seq() - 1,
        offset: r.offset,
        pos: r.pos,
        len: r.header.total_len,
        external_ranges: ranges.iter().filter(|g| g.external).count(),
        ranges,
    }
}

fn wanted(args: &Args, r: &Record) -> bool {
    let lsns = args
        .lsn
        .is_none_or(|(from, to)| r.lsn <= to && r.last_lsn >= from);
    let inode = args.inode.is_none_or(|n| {
        r.ranges
            .iter()
            .any(|g| g.touch.inodes.is_some_and(|(a, b)| (a..=b).contains(&n)))
    });
    lsns && inode
}

/// Where the valid log ends, in words; `sound` unless it is a torn or damaged record or a gap.
fn end(stop: &LogStop) -> End {
    let (sound, why) =
        match &stop.reason {
            LogEnd::Unwritten => (
                true,
                "end of the written log (no record header)".to_string(),
            ),
            LogEnd::Stale { seq } => (
                true,
                format!("end of the written log (a record of an earlier lap, LSN {seq})"),
            ),
            LogEnd::Full => (
                true,
                "the log is full (one whole lap of records)".to_string(),
            ),
            LogEnd::OtherLog { log_id } => (
                false,
                format!("a record of another log (log id {log_id:#x})"),
            ),
            LogEnd::SequenceGap { found } => (
                false,
                format!("sequence gap: LSN {found} where {} was due", stop.seq),
            ),
            LogEnd::Torn { header, error } => (
                false,
                format!(
            "torn record at offset {:#x}: LSN {}, {} bytes, {error} (not completely written)",
            stop.offset, header.seq, header.total_len),
            ),
            LogEnd::Corrupt { header, error } => (
                false,
                format!(
            "CRC mismatch at offset {:#x}: LSN {}, {} bytes, {error}; valid records follow it \
             and are lost to recovery", stop.offset, header.seq, header.total_len),
            ),
        };
    End {
        offset: stop.offset,
        pos: stop.pos,
        next_lsn: stop.seq,
        sound,
        why,
    }
}

fn print(r: &Report) {
    println!(
        "Log of {}: {} bytes at offset {:#x}, log id {}, status generation {}",
        r.image, r.log_len, r.log_offset, r.log_id, r.generation
    );
    println!(
        "Head: position {}, LSN {}; {} live records{}",
        r.head_pos,
        r.head_lsn,
        r.records_live,
        match r.records.len() == r.records_live {
            true => String::new(),
            false => format!(", {} shown", r.records.len()),
        }
    );
    for rec in &r.records {
        print_record(rec, "offset");
    }
    let e = &r.end;
    println!(
        "Valid log ends at offset {:#x} (position {}, next LSN {}): {}",
        e.offset, e.pos, e.next_lsn, e.why
    );
    let Some(s) = &r.spool else {
        println!("No spool file for this image.");
        return;
    };
    println!(
        "Spool {}: {} records, {} beyond the log ({} bytes), {} already in the log",
        s.path, s.records, s.beyond_log, s.beyond_bytes, s.in_log
    );
    if s.poisoned {
        println!(
            "The spool is poisoned: its daemon met a storage error, so the next mount or fsck \
             discards these records instead of replaying them"
        );
    }
    for rec in &s.beyond {
        print_record(rec, "spool offset");
    }
}

/// One record and its ranges; `place` names where `rec.offset` counts ("offset" in the image).
fn print_record(rec: &Record, place: &str) {
    if rec.ranges.is_empty() {
        println!(
            "LSN {}..={} at {place} {:#x}: {} bytes, no ranges: recovery's jump past every \
             sequence number the log area may hold",
            rec.lsn, rec.last_lsn, rec.offset, rec.len
        );
        return;
    }
    let lsns = match rec.last_lsn > rec.lsn {
        true => format!(
            "LSN {}..={} ({} transactions merged)",
            rec.lsn,
            rec.last_lsn,
            rec.last_lsn - rec.lsn + 1
        ),
        false => format!("LSN {}", rec.lsn),
    };
    println!(
        "{lsns} at {place} {:#x}: {} bytes, {} ranges ({} external), commit time not kept",
        rec.offset,
        rec.len,
        rec.ranges.len(),
        rec.external_ranges
    );
    for g in &rec.ranges {
        let ext = if g.external { " external" } else { "" };
        println!("    {:#x}+{}{ext}: {}", g.offset, g.len, g.touch.what);
    }
}
