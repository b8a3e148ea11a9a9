//! The raw limits behind the data rows (issue 12 item 6), so that a missed ext4 or fuse2fs
//! target can be judged against what the disk and FUSE allow on this machine.
//!
//! * **Raw disk** (workload `raw`, next to the 4 KiB pwrite + fdatasync limit): a file on the
//!   same disk, written and synced like the `rand` workload's file, then read with `O_DIRECT`
//!   (every read reaches the device, no page cache, no readahead): random 4 KiB reads at the
//!   offsets and count of the `rand` cold-read workload, and 1 MiB sequential reads of the
//!   whole file; the write of the file (1 MiB writes + fsync) gives the sequential write rate.
//! * **Lower bound** of an rvmfs operation: its FUSE requests per operation x the FUSE floor
//!   (requests.rs: one round trip answered at once) + the raw disk time of the part of the
//!   operation that must reach the disk ([`disk_us`]). Requests the kernel sends ahead
//!   (readahead) may overlap the disk time, so for cold sequential reads the sum can exceed
//!   the true bound by the round trips' share (under 2% here: ~1 request per MiB).
//!
//! A target whose wanted time per operation is below the bound is impossible through FUSE on
//! this machine, whatever the daemon does.

use crate::random_read::{self, byte_at, offsets};
use crate::report::{fmt_num, median, targets};
use crate::{table, Metric, Results};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::Instant;

/// The raw disk's rates, one sample per repetition of the `raw` workload.
#[derive(Serialize, Default)]
pub struct Raw {
    /// 4 KiB `O_DIRECT` preads at the `rand` cold-read workload's offsets, reads/s.
    pub rand_read: Vec<f64>,
    /// 1 MiB `O_DIRECT` sequential reads of the same file, MiB/s.
    pub seq_read: Vec<f64>,
    /// Writing that file: 1 MiB writes, then fsync, MiB/s.
    pub seq_write: Vec<f64>,
}

/// A zeroed buffer of `len` bytes aligned to 4 KiB (what `O_DIRECT` asks of a buffer).
fn aligned(len: usize) -> (Vec<u8>, usize) {
    let v = vec![0u8; len + 4096];
    let at = v.as_ptr().align_offset(4096);
    (v, at)
}

/// One pass of the raw reads and write in `dir` (the file removed afterwards); adds a
/// sample to each rate of `raw`.
///
/// Errors: the host filesystem refuses `O_DIRECT` (tmpfs), I/O errors, or a read that
/// returns other bytes than were written.
pub fn measure(dir: &Path, raw: &mut Raw) -> Result<()> {
    let bytes = random_read::FILE_BYTES;
    fs::create_dir_all(dir)?;
    let path = dir.join("raw-read");
    let _ = fs::remove_file(&path);
    let t = Instant::now();
    random_read::write_file(&path, bytes)?;
    let seq_write = bytes as f64 / crate::workloads::MIB / t.elapsed().as_secs_f64();
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path)
        .with_context(|| format!("open {} with O_DIRECT", path.display()))?;
    let (mut v, at) = aligned(1 << 20);
    let t = Instant::now();
    for off in offsets(bytes, random_read::READS) {
        let buf = &mut v[at..at + 4096];
        f.read_exact_at(buf, off)?;
        if buf[1] != byte_at(off + 1) {
            bail!("raw O_DIRECT read at {off} returned other bytes");
        }
    }
    let rand_read = random_read::READS as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for off in (0..bytes as u64).step_by(1 << 20) {
        f.read_exact_at(&mut v[at..at + (1 << 20)], off)?;
    }
    let seq_read = bytes as f64 / crate::workloads::MIB / t.elapsed().as_secs_f64();
    drop(f);
    fs::remove_file(&path)?;
    eprintln!(
        "  O_DIRECT: {rand_read:.0} random 4 KiB reads/s, {seq_read:.0} MiB/s sequential; \
         written at {seq_write:.0} MiB/s"
    );
    raw.rand_read.push(rand_read);
    raw.seq_read.push(seq_read);
    raw.seq_write.push(seq_write);
    Ok(())
}

/// The raw disk time one operation of metric `key` cannot avoid, µs (`ops` operations in
/// the phase): a 4 KiB file + fsync is one 4 KiB write + flush (`raw_fdatasync`); a MiB of a
/// sequential write or cold read is a MiB at the raw rate; a cold random read is one device
/// read; a random overwrite is 4 KiB at the raw write rate plus its share of the phase's one
/// fsync. 0 for the rest (nothing they do must reach the disk: no fsync, warm caches).
/// None when the raw rate it needs was not measured.
pub fn disk_us(r: &Results, key: &str, ops: f64) -> Option<f64> {
    let us = |rates: &[f64]| median(rates).map(|x| 1e6 / x);
    match key {
        "small" => us(&r.raw_fdatasync),
        "seqw" => us(&r.raw.seq_write),
        "seqr" => us(&r.raw.seq_read),
        "randr" => us(&r.raw.rand_read),
        "randw" => Some(us(&r.raw.seq_write)? / 256.0 + us(&r.raw_fdatasync)? / ops.max(1.0)),
        _ => Some(0.0),
    }
}

/// The lower bound of one rvmfs operation of metric `key`, µs: requests/op x FUSE floor +
/// [`disk_us`]. None without request counts, the floor, or the raw rate needed.
pub fn lower_bound_us(r: &Results, key: &str) -> Option<f64> {
    let p = r.requests.get(key)?;
    Some(p.total() * r.fuse_floor_us? + disk_us(r, key, p.ops)?)
}

/// The time of one operation of metric `m` on system `sys`, µs (median of its samples;
/// `ops` operations per sample for metrics measured in seconds).
pub fn per_op_us(m: &Metric, sys: &str, ops: f64) -> Option<f64> {
    let med = m.med(sys)?;
    Some(match m.unit {
        "s" => med * 1e6 / ops.max(1.0),
        _ => 1e6 / med, // ops/s, files/s, dirs/s, MiB/s: per op (per MiB)
    })
}

/// The header line of the raw disk's read and write rates, if measured.
pub fn header_line(r: &Results) -> Option<String> {
    let rr = median(&r.raw.rand_read)?;
    Some(format!(
        "- raw disk reads (O_DIRECT, a file on the same disk): {} x 4 KiB random reads/s (the \
         offsets of the random cold-read workload), {} MiB/s in 1 MiB sequential reads; that \
         file written (1 MiB writes + fsync) at {} MiB/s",
        fmt_num(rr),
        median(&r.raw.seq_read).map_or("–".into(), fmt_num),
        median(&r.raw.seq_write).map_or("–".into(), fmt_num),
    ))
}

/// A target's verdict: the time it wants of rvmfs per operation, µs, against the lower
/// bound, µs.
pub fn verdict(want: f64, bound: f64) -> String {
    if want < bound {
        "**above the bound**: impossible through FUSE here".to_string()
    } else {
        format!(
            "below the bound ({:.0}% of the wanted time)",
            100.0 * bound / want
        )
    }
}

/// The markdown section: for each ext4 and fuse2fs target of a workload whose requests
/// were counted, the time per operation the target wants of rvmfs against the lower bound.
pub fn markdown(r: &Results) -> String {
    let mut rows = Vec::new();
    for m in &r.metrics {
        let (Some(p), Some(bound)) = (r.requests.get(m.key), lower_bound_us(r, m.key)) else {
            continue;
        };
        for (peer, min) in targets(m).into_iter().filter(|t| t.0 != "juicefs") {
            let Some(peer_us) = per_op_us(m, peer, p.ops) else {
                continue;
            };
            let want = peer_us / min;
            let verdict = verdict(want, bound);
            rows.push(vec![
                format!("{} vs {peer} >= {min}x", m.label),
                fmt_num(peer_us),
                fmt_num(want),
                fmt_num(bound),
                verdict,
            ]);
        }
    }
    if rows.is_empty() {
        return String::new();
    }
    let mut s = String::from("\n## Targets against the FUSE lower bound (rvmfs)\n\n");
    let _ = writeln!(
        s,
        "Lower bound of an operation = requests/op x FUSE floor + the raw disk time of what must \
         reach the disk (4 KiB+fsync: one raw fdatasync; seq write / cold read: a MiB at the raw \
         rate; random cold read: one O_DIRECT 4 KiB read; random overwrite: 4 KiB at the raw \
         write rate + its share of the fsync; the rest: none). A target wants rvmfs at the \
         peer's time / the ratio; wanted below the bound = impossible through FUSE on this \
         machine.\n"
    );
    let cols = [
        ("target", false),
        ("peer (µs/op)", true),
        ("wanted of rvmfs (µs/op)", true),
        ("lower bound (µs/op)", true),
        ("verdict", false),
    ];
    table::write(&mut s, &cols, rows);
    s
}
