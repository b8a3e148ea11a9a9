//! The cost of rvmfs's data checksums (a CRC32C per data block, see fs/src/ops/datasum.rs):
//! the sequential workload (write 1 GiB + fsync, cold read) on one rvmfs image, mounted with
//! sums (the default) and with `-o nodatasum`. The two configurations alternate pass by pass,
//! in the order AB BA AB ..., because this disk's speed swings within minutes: interleaved
//! passes see the same disk, back-to-back blocks of passes would not.

use crate::mounts::{self, Rvmfs};
use crate::report::median;
use crate::workloads as w;
use anyhow::{bail, Result};
use serde::Serialize;
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
            Io::Cpu => 100.0 * (with - without) / without,
            Io::Write | Io::Read => 100.0 * (without - with) / without,
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
            let cpu = cpu_seconds(m.pid());
            let res = w::sequential(&m.mnt.join(format!("{name}{pair}")), 1 << 30);
            let cpu = cpu_seconds(m.pid()) - cpu;
            m.unmount()?;
            let (wr, rd) = res?;
            eprintln!(
                "  {name:>9}: seq write {wr:.0} MiB/s  cold read {rd:.0} MiB/s  daemon CPU {cpu:.2} s"
            );
            cost.passes.push(Pass {
                sums,
                write_mib_s: wr,
                read_mib_s: rd,
                daemon_cpu_s: cpu,
            });
        }
    }
    std::fs::remove_file(&image)?;
    Ok(cost)
}

/// User + system CPU time of process `pid` so far, s (fields 14 and 15 of /proc/PID/stat,
/// clock ticks of `sysconf(_SC_CLK_TCK)`); NaN if unreadable.
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // The command name (field 2) may hold spaces: count fields after its closing ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    match (tick(11), tick(12)) {
        (Some(u), Some(s)) if hz > 0.0 => (u + s) / hz,
        _ => f64::NAN,
    }
}
