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
        let pick = |p: &Pass| match io {
            Io::Write => p.write_mib_s,
            Io::Read => p.read_mib_s,
            Io::Cpu => p.daemon_cpu_s,
            Io::Faults => p.daemon_major_faults,
            Io::Logged => p.log_bytes_per_mib,
        };
        self.passes
            .iter()
            .filter(|p| p.sums == sums)
            .map(pick)
            .collect()
    }

    pub fn summary(&self, sums: bool, io: Io) -> Option<Summary> {
        Summary::of(&self.samples(sums, io))
    }

    /// Throughput lost (CPU time added) by the sums, percent of the `nodatasum` median
    /// (> 0: sums slower).
    pub fn cost_percent(&self, io: Io) -> Option<f64> {
        let with = self.summary(true, io)?.median;
        let without = self.summary(false, io)?.median;
        Some(match io {
            Io::Write | Io::Read => 100.0 * (without - with) / without,
            Io::Cpu | Io::Faults | Io::Logged => 100.0 * (with - without) / without,
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
    let mut cost = DatasumCost::default();
    for pair in 0..pairs.max(1) {
        let order = if pair % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for sums in order {
            let name = if sums { "sums" } else { "nodatasum" };
            let (m, _) = Rvmfs::mount(
                bin,
                &image,
                &work.join("mnt-rvmfs-datasum"),
                &work.join("rvmfs-datasum.log"),
                (!sums).then_some("nodatasum"),
            )?;
            let (before, logged) = (proc_stat(m.pid()), bytes_logged(&m.mnt));
            let res = w::sequential(&m.mnt.join(format!("{name}{pair}")), 1 << 30);
            let after = proc_stat(m.pid());
            let logged = bytes_logged(&m.mnt) - logged;
            m.unmount()?;
            let (wr, rd) = res?;
            let (cpu, majflt) = (after.cpu_s - before.cpu_s, after.majflt - before.majflt);
            eprintln!(
                "  {name:>9}: seq write {wr:.0} MiB/s  cold read {rd:.0} MiB/s  daemon CPU \
                 {cpu:.2} s, {majflt:.0} major faults, {:.0} log bytes/MiB",
                logged / 1024.0
            );
            cost.passes.push(Pass {
                sums,
                write_mib_s: wr,
                read_mib_s: rd,
                daemon_cpu_s: cpu,
                daemon_major_faults: majflt,
                log_bytes_per_mib: logged / 1024.0,
            });
        }
    }
    std::fs::remove_file(&image)?;
    Ok(cost)
}

/// Redo log bytes the daemon of rvmfs mount `mnt` wrote so far (`bytes_logged` of
/// `rvmfs.counters`); NaN if unreadable.
fn bytes_logged(mnt: &Path) -> f64 {
    crate::requests::counters(mnt, "rvmfs.counters")
        .ok()
        .and_then(|c| c.get("bytes_logged").copied())
        .map_or(f64::NAN, |v| v as f64)
}

/// What /proc/PID/stat says of a process so far.
pub(crate) struct ProcStat {
    /// User + system CPU time, s.
    pub(crate) cpu_s: f64,
    /// Major page faults.
    majflt: f64,
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
         cost = throughput lost, or daemon CPU time added, by the sums.\n",
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
