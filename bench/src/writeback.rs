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

/// The prefix of this system's phases in `Results::requests` (`writeback:untar`, ...).
pub const REQUESTS: &str = "writeback:";

/// The FUSE requests counted on this system for metric `key`.
fn requests<'a>(r: &'a Results, key: &str) -> Option<&'a crate::requests::PerOp> {
    r.requests.get(&format!("{REQUESTS}{key}"))
}

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
        ("requests/op", true),
        ("at the floor (µs/op)", true),
        ("measured (µs/op)", true),
        ("largest opcodes (per op)", false),
    ];
    let rows = measured.iter().map(|m| {
        let p = requests(r, m.key);
        let at_floor = p.zip(r.fuse_floor_us).map(|(p, f)| p.total() * f);
        let measured = p.and_then(|p| crate::limits::per_op_us(m, SYSTEM, p.ops));
        let us = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.1}"));
        vec![
            m.label.clone(),
            m.unit.to_string(),
            cell(m.med("rvmfs")),
            cell(m.med(SYSTEM)),
            cell(m.med("ext4")),
            ratio_cell(ratio(m, "rvmfs")),
            ratio_cell(ratio(m, "ext4")),
            spread_cell(m.samples.get(SYSTEM)),
            p.map_or("–".into(), |p| format!("{:.2}", p.total())),
            us(at_floor),
            us(measured),
            p.map_or(String::new(), |p| p.largest()),
        ]
    });
    table::write(s, &cols, rows);
    if let Some(line) = untar_bound(r) {
        let _ = writeln!(s, "\n{line}");
    }
}

/// The untar target against the FUSE floor: what 0.7x of ext4 wants of one tree entry,
/// beside the time this system's requests per entry take at the floor alone.
fn untar_bound(r: &Results) -> Option<String> {
    let m = r.metrics.iter().find(|m| m.key == "untar")?;
    let p = requests(r, m.key)?;
    let ext4 = crate::limits::per_op_us(m, "ext4", p.ops)?;
    let (want, floor) = (ext4 / UNTAR_TARGET, p.total() * r.fuse_floor_us?);
    let verdict = crate::limits::verdict(want, floor);
    Some(format!(
        "Untar's target against the FUSE floor: ext4 takes {ext4:.1} µs per tree entry, so \
         {UNTAR_TARGET}x wants {want:.1} µs of rvmfs -o writeback; its {:.2} requests per entry \
         take {floor:.1} µs at the floor alone: {verdict}.",
        p.total()
    ))
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
