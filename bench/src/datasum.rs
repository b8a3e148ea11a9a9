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

    /// Throughput lost to the sums, percent of the `nodatasum` median (> 0: sums slower).
    pub fn cost_percent(&self, io: Io) -> Option<f64> {
        let with = self.summary(true, io)?.median;
        let without = self.summary(false, io)?.median;
        Some(100.0 * (without - with) / without)
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
            let res = w::sequential(&m.mnt.join(format!("{name}{pair}")), 1 << 30);
            m.unmount()?;
            let (wr, rd) = res?;
            eprintln!("  {name:>9}: seq write {wr:.0} MiB/s  cold read {rd:.0} MiB/s");
            cost.passes.push(Pass {
                sums,
                write_mib_s: wr,
                read_mib_s: rd,
            });
        }
    }
    std::fs::remove_file(&image)?;
    Ok(cost)
}
