//! The cost of rvmfs's data checksums (a CRC32C per data block, see fs/src/ops/datasum.rs):
//! the sequential workload (write 1 GiB + fsync, cold read) on one rvmfs image, mounted with
//! sums (the default) and with `-o nodatasum`. The two configurations alternate pass by pass,
//! in the order AB BA AB ..., because this disk's speed swings within minutes: interleaved
//! passes see the same disk, back-to-back blocks of passes would not. Each pass also records
//! what the sums might cost besides the CRC itself: the daemon's CPU time, its major page
//! faults (the checksum table's pages read back after the cache is dropped) and the redo log
//! bytes per MiB written (the table's slots ride in the records).

use crate::mounts::{self, Rvmfs};
use crate::report::{fmt_spread, median};
use crate::workloads as w;
use crate::{table, Results};
use anyhow::{bail, Result};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

/// The target: data checksums cost at most this much throughput, percent (issue 11).
pub const TARGET_PERCENT: f64 = 5.0;

/// One pass of the sequential workload, MiB/s.
#[derive(Serialize)]
pub struct Pass {
    /// Mounted with sums (true) or with `-o nodatasum` (false).
    pub sums: bool,
    pub write_mib_s: f64,
    pub read_mib_s: f64,
    /// CPU time the daemon spent over the pass (user + system), s: the sums' own cost,
    /// which the disk's swings do not blur as they blur throughput.
    pub daemon_cpu_s: f64,
    /// Page faults of the daemon over the pass that read the image (major faults: the
    /// region's pages, checksum table included, after the cache was dropped).
    pub daemon_major_faults: f64,
    /// Redo log bytes written over the pass per MiB written (the checksums' slots ride in
    /// the records: 4 bytes per 4 KiB block).
    pub log_bytes_per_mib: f64,
    /// Time the daemon spent computing the write's checksums (counter `csum_write_ns`), µs
    /// per MiB written: the CRC's own cost, free of the disk's swings; 0 with nodatasum.
    pub csum_us_per_mib: f64,
}

impl Pass {
    /// What `io` measured in this pass.
    fn value(&self, io: Io) -> f64 {
        match io {
            Io::Write => self.write_mib_s,
            Io::Read => self.read_mib_s,
            Io::Cpu => self.daemon_cpu_s,
            Io::Faults => self.daemon_major_faults,
            Io::Logged => self.log_bytes_per_mib,
            Io::CsumTime => self.csum_us_per_mib,
            // A MiB takes 1e6 / write_mib_s µs.
            Io::CsumShare => self.csum_us_per_mib * self.write_mib_s / 1e4,
        }
    }
}

/// The passes, in run order.
#[derive(Serialize, Default)]
pub struct DatasumCost {
    pub passes: Vec<Pass>,
}

/// Which half of a pass.
#[derive(Clone, Copy)]
pub enum Io {
    Write,
    Read,
    /// The daemon's CPU time over the whole pass (lower is better).
    Cpu,
    /// The daemon's major page faults over the pass.
    Faults,
    /// Redo log bytes per MiB written.
    Logged,
    /// Checksum time per MiB written, µs.
    CsumTime,
    /// Checksum time as a share of the write phase's wall time, percent.
    CsumShare,
}

/// Median and spread (min, max) of one configuration's samples, MiB/s.
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Summary {
    /// Of samples `v`; None when there are none.
    pub fn of(v: &[f64]) -> Option<Summary> {
        Some(Summary {
            median: median(v)?,
            min: v.iter().copied().fold(f64::INFINITY, f64::min),
            max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
    }
}

impl DatasumCost {
    pub fn samples(&self, sums: bool, io: Io) -> Vec<f64> {
        self.passes
            .iter()
            .filter(|p| p.sums == sums)
            .map(|p| p.value(io))
            .collect()
    }

    pub fn summary(&self, sums: bool, io: Io) -> Option<Summary> {
        Summary::of(&self.samples(sums, io))
    }

    /// Throughput lost (CPU time added) by the sums, percent: the median over the pairs of
    /// adjacent passes (AB, BA, ...) of each pair's cost against its own `nodatasum` pass
    /// (> 0: sums slower). A pair's two passes see the same disk, so the disk's swings
    /// between pairs cancel out, as a ratio of two medians taken over the whole run would
    /// not.
    pub fn cost_percent(&self, io: Io) -> Option<f64> {
        let costs: Vec<f64> = self
            .pairs()
            .map(|(with, without)| {
                let (a, b) = (with.value(io), without.value(io));
                match io {
                    Io::Write | Io::Read => 100.0 * (b - a) / b,
                    _ => 100.0 * (a - b) / b,
                }
            })
            .collect();
        median(&costs)
    }

    /// The pairs of adjacent passes, as (with sums, without).
    fn pairs(&self) -> impl Iterator<Item = (&Pass, &Pass)> {
        self.passes
            .chunks_exact(2)
            .filter_map(|p| match (p[0].sums, p[1].sums) {
                (true, false) => Some((&p[0], &p[1])),
                (false, true) => Some((&p[1], &p[0])),
                _ => None,
            })
    }
}

/// Run `pairs` pairs of passes (at least one) on a fresh image in `work`; each pass mounts,
/// runs [`w::sequential`] and unmounts. Fails if RVMFS_MOUNT_OPTS already holds nodatasum
/// (both configurations would be the same).
pub fn measure(bin: &Path, work: &Path, pairs: usize) -> Result<DatasumCost> {
    if mounts::env_mount_opts().is_some_and(|o| o.split(',').any(|x| x == "nodatasum")) {
        bail!(
            "the datasum workload compares sums with nodatasum: unset RVMFS_MOUNT_OPTS=nodatasum"
        );
    }
    let image = work.join("rvmfs-datasum.img");
    Rvmfs::mkfs(bin, &image, "8G", None)?;
    // A first pass on a fresh image is slow (4x here: the host file system allocates the
    // image's data blocks for the first time); it would count against whichever
    // configuration ran first, so it is not recorded.
    pass(bin, &image, work, true, "warmup")?;
    let mut cost = DatasumCost::default();
    for pair in 0..pairs.max(1) {
        let order = if pair % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for sums in order {
            let name = if sums { "sums" } else { "nodatasum" };
            cost.passes
                .push(pass(bin, &image, work, sums, &format!("{name}{pair}"))?);
        }
    }
    std::fs::remove_file(&image)?;
    Ok(cost)
}

/// One pass: mount `image` with sums or `-o nodatasum`, run [`w::sequential`] in directory
/// `name`, unmount.
fn pass(bin: &Path, image: &Path, work: &Path, sums: bool, name: &str) -> Result<Pass> {
    let (m, _) = Rvmfs::mount(
        bin,
        image,
        &work.join("mnt-rvmfs-datasum"),
        &work.join("rvmfs-datasum.log"),
        (!sums).then_some("nodatasum"),
    )?;
    let (before, logged) = (proc_stat(m.pid()), counter(&m.mnt, "bytes_logged"));
    let summing = counter(&m.mnt, "csum_write_ns");
    let res = w::sequential(&m.mnt.join(name), 1 << 30);
    let after = proc_stat(m.pid());
    let logged = (counter(&m.mnt, "bytes_logged") - logged) / 1024.0;
    let summing = counter(&m.mnt, "csum_write_ns") - summing;
    m.unmount()?;
    let (wr, rd) = res?;
    let (cpu, majflt) = (after.cpu_s - before.cpu_s, after.majflt - before.majflt);
    eprintln!(
        "  {name:>10}: seq write {wr:.0} MiB/s  cold read {rd:.0} MiB/s  daemon CPU {cpu:.2} s, \
         {majflt:.0} major faults, {logged:.0} log bytes/MiB"
    );
    Ok(Pass {
        sums,
        write_mib_s: wr,
        read_mib_s: rd,
        daemon_cpu_s: cpu,
        daemon_major_faults: majflt,
        log_bytes_per_mib: logged,
        csum_us_per_mib: summing / 1e3 / 1024.0,
    })
}

/// Counter `name` of `rvmfs.counters` of rvmfs mount `mnt` so far (`bytes_logged`: redo
/// log bytes written; `csum_write_ns`: ns spent on write checksums); NaN if unreadable.
fn counter(mnt: &Path, name: &str) -> f64 {
    crate::requests::counters(mnt, "rvmfs.counters")
        .ok()
        .and_then(|c| c.get(name).copied())
        .map_or(f64::NAN, |v| v as f64)
}

/// What /proc/PID/stat says of a process so far.
pub(crate) struct ProcStat {
    /// User + system CPU time, s.
    pub(crate) cpu_s: f64,
    /// Major page faults.
    pub(crate) majflt: f64,
}

/// User + system CPU time and major faults of process `pid` so far (fields 14, 15 and 12
/// of /proc/PID/stat; times in clock ticks of `sysconf(_SC_CLK_TCK)`); NaN if unreadable.
pub(crate) fn proc_stat(pid: u32) -> ProcStat {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces: count fields after its closing ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu_s = match (field(11), field(12)) {
        (Some(u), Some(s)) if hz > 0.0 => (u + s) / hz,
        _ => f64::NAN,
    };
    ProcStat {
        cpu_s,
        majflt: field(9).unwrap_or(f64::NAN),
    }
}

/// The markdown section: the two sequential workloads with sums and with `-o nodatasum`,
/// median (min–max), and the cost; then the daemon's CPU time over a pass.
pub fn table(s: &mut String, r: &Results, d: &DatasumCost) {
    let label = |key: &str| {
        r.metrics
            .iter()
            .find(|m| m.key == key)
            .map_or(key.to_string(), |m| m.label.clone())
    };
    let spread = |sums, io| fmt_spread(d.summary(sums, io));
    let cost = |io, sign: bool| {
        d.cost_percent(io).map_or("–".into(), |c| match sign {
            true => format!("{c:+.1}%"),
            false => format!("{c:.1}%"),
        })
    };
    let _ = writeln!(s, "\n## rvmfs data checksums: cost on sequential I/O\n");
    let _ = writeln!(
        s,
        "{} passes each, the two mounts interleaved (AB BA ...) on one image; median (min–max); \
         cost = throughput lost, or daemon CPU time added, by the sums: the median over the \
         pairs of adjacent passes of each pair's own ratio.\n",
        d.samples(true, Io::Write).len()
    );
    let mut rows: Vec<Vec<String>> = [("seqw", Io::Write), ("seqr", Io::Read)]
        .into_iter()
        .map(|(key, io)| {
            let unit = "MiB/s".to_string();
            vec![
                label(key),
                unit,
                spread(true, io),
                spread(false, io),
                cost(io, false),
            ]
        })
        .collect();
    rows.push(vec![
        "daemon CPU time over a pass (1 GiB write + fsync, cold read)".into(),
        "s".into(),
        spread(true, Io::Cpu),
        spread(false, Io::Cpu),
        cost(Io::Cpu, true),
    ]);
    rows.push(vec![
        "checksum time of the write (daemon, before the lock)".into(),
        "µs per MiB".into(),
        spread(true, Io::CsumTime),
        spread(false, Io::CsumTime),
        d.summary(true, Io::CsumShare)
            .map_or("–".into(), |c| format!("{:.1}% of its time", c.median)),
    ]);
    for (what, unit, io) in [
        ("daemon major page faults over a pass", "faults", Io::Faults),
        ("redo log written per MiB of the write", "bytes", Io::Logged),
    ] {
        let diff = d.summary(true, io).zip(d.summary(false, io));
        let diff = diff.map_or("–".into(), |(a, b)| {
            format!("{:+.0}", a.median - b.median)
        });
        rows.push(vec![
            what.into(),
            unit.into(),
            spread(true, io),
            spread(false, io),
            diff,
        ]);
    }
    let cols = [
        ("workload", false),
        ("unit", false),
        ("with sums", true),
        ("`-o nodatasum`", true),
        ("cost", true),
    ];
    table::write(s, &cols, rows);
}
