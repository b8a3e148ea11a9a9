//! The `rvmfs-writeback` system: rvmfs on its own fresh image mounted with `-o writeback`
//! (the kernel's writeback cache, README "The promises"), measured in the same run and
//! interleaved with the others; its table next to default rvmfs and ext4, and the issue's
//! target for it (issue 12: untar >= 0.7x ext4).

use crate::mounts::Rvmfs;
use crate::report::{cell, ratio_cell, spread_cell, Check};
use crate::{table, Metric, Results};
use anyhow::Result;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The system's name in `SYSTEMS`, the samples and results.json.
pub const SYSTEM: &str = "rvmfs-writeback";

/// The target: untar at least this fraction of ext4's speed.
const UNTAR_TARGET: f64 = 0.7;

/// mkfs an image of `size` under `work` and mount it with `-o writeback` (plus env
/// RVMFS_MOUNT_OPTS); returns the mount and its image (removed by the caller).
pub fn mount(bin: &Path, work: &Path, size: &str) -> Result<(Rvmfs, PathBuf)> {
    let image = work.join("rvmfs-writeback.img");
    Rvmfs::mkfs(bin, &image, size, None)?;
    let (mnt, log) = (
        work.join("mnt-rvmfs-writeback"),
        work.join("rvmfs-writeback.log"),
    );
    let (m, took) = Rvmfs::mount(bin, &image, &mnt, &log, Some("writeback"))?;
    eprintln!(
        "rvmfs -o writeback mounted in {:.3} s (daemon pid {})",
        took.as_secs_f64(),
        m.pid()
    );
    Ok((m, image))
}

/// `m`'s speed under `-o writeback` relative to `peer` (> 1: faster; for times, peer/this).
fn ratio(m: &Metric, peer: &str) -> Option<f64> {
    let (a, b) = (m.med(SYSTEM)?, m.med(peer)?);
    let r = if m.higher_better { a / b } else { b / a };
    r.is_finite().then_some(r)
}

/// The markdown section: every workload measured under `-o writeback`, beside default
/// rvmfs and ext4.
pub fn markdown(s: &mut String, r: &Results) {
    let measured: Vec<&Metric> = r
        .metrics
        .iter()
        .filter(|m| m.samples.contains_key(SYSTEM))
        .collect();
    if measured.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\n## rvmfs -o writeback (the kernel's writeback cache; close-to-open after kill -9)\n"
    );
    let cols = [
        ("workload", false),
        ("unit", false),
        ("rvmfs", true),
        ("rvmfs -o writeback", true),
        ("ext4", true),
        ("writeback/rvmfs", true),
        ("writeback/ext4", true),
        ("writeback spread", true),
    ];
    let rows = measured.into_iter().map(|m| {
        vec![
            m.label.clone(),
            m.unit.to_string(),
            cell(m.med("rvmfs")),
            cell(m.med(SYSTEM)),
            cell(m.med("ext4")),
            ratio_cell(ratio(m, "rvmfs")),
            ratio_cell(ratio(m, "ext4")),
            spread_cell(m.samples.get(SYSTEM)),
        ]
    });
    table::write(s, &cols, rows);
}

/// The target for the writeback mode, if untar was measured on it and on ext4.
pub fn checks(r: &Results) -> Vec<Check> {
    let untar = r.metrics.iter().find(|m| m.key == "untar");
    let Some(x) = untar.and_then(|m| ratio(m, "ext4")) else {
        return Vec::new();
    };
    vec![Check {
        what: "untar with -o writeback vs ext4".into(),
        target: format!(">= {UNTAR_TARGET}x"),
        measured: format!("{x:.2}x"),
        met: Some(x >= UNTAR_TARGET),
    }]
}
