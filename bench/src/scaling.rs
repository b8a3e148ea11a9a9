//! The scaling rows (issue 6, issue 12 item 5): one directory grows to 100,000 entries
//! (`--quick`) or 1,000,000 (the full run) on rvmfs and ext4; the create rate at each size,
//! rvmfs's mount time and daemon memory at each size, and its recovery after kill -9 with a
//! full log. The target: the create rate at the largest size is at least half the rate at
//! 10,000 entries.

use crate::mounts::{self, Rvmfs};
use crate::workloads as w;
use crate::{MountPoint, Recovery, Results};
use anyhow::Result;
use std::fs::{self, File};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Slices of each checkpoint's window whose median rate is reported: one slow slice (the
/// disk's speed swings, a truncation, another process) does not make the row.
const SLICES: usize = 10;

/// Entries at which the create rate is taken.
pub fn checkpoints(quick: bool) -> Vec<usize> {
    if quick {
        vec![10_000, 30_000, 100_000]
    } else {
        vec![10_000, 100_000, 1_000_000]
    }
}

/// Run the scaling rows on the systems asked for (ext4's and rvmfs's; JuiceFS gets a note).
pub fn run(
    r: &mut Results,
    bin: &Path,
    work: &Path,
    quick: bool,
    (on_rvmfs, on_ext4, on_juicefs): (bool, bool, bool),
) -> Result<()> {
    let checkpoints = checkpoints(quick);
    let last = *checkpoints.last().unwrap_or(&0);
    if on_rvmfs {
        rvmfs(r, bin, work, &checkpoints)?;
    }
    if on_ext4 {
        eprintln!("== ext4: one directory grows to {last}");
        let d = work.join("ext4-big");
        let _ = fs::remove_dir_all(&d);
        let v = grow_directory(&d, &checkpoints, |_| Ok(()))?;
        r.scaling.insert("ext4".into(), v);
        mounts::run(Command::new("rm").arg("-rf").arg(&d))?;
    }
    if on_juicefs {
        r.notes.push(
            "Scaling runs on rvmfs and ext4 only: JuiceFS at ~1,000 creates/s would need \
             about 20 minutes for 1,000,000 entries."
                .into(),
        );
    }
    note_ratio(r);
    Ok(())
}

/// The target's line: rvmfs's rate at the largest size against its rate at the first.
fn note_ratio(r: &mut Results) {
    let Some(s) = r.scaling.get("rvmfs") else {
        return;
    };
    let (Some(first), Some(last)) = (s.first(), s.last()) else {
        return;
    };
    let ratio = last.1 / first.1;
    let line = format!(
        "Big directory (issue 12): rvmfs creates at {} entries at {:.2}x its rate at {} \
         ({:.0} vs {:.0} files/s; target >= 0.5x: {}). Each rate is the median of {SLICES} \
         slices of the last tenth before the size.",
        last.0,
        ratio,
        first.0,
        last.1,
        first.1,
        if ratio >= 0.5 { "met" } else { "not met" }
    );
    eprintln!("    {line}");
    r.notes.push(line);
}

/// Grow one directory to `checkpoints.last()` entries (empty files, `g0000000`...). At each
/// checkpoint c the window c*9/10..c is timed in [`SLICES`] slices and the median slice rate
/// recorded, then `at_checkpoint(c)` runs (untimed; it may remount the filesystem). Returns
/// (entries, files/s) pairs.
pub fn grow_directory(
    dir: &Path,
    checkpoints: &[usize],
    mut at_checkpoint: impl FnMut(usize) -> Result<()>,
) -> Result<Vec<(usize, f64)>> {
    fs::create_dir_all(dir)?;
    let create = |i: usize| File::create(dir.join(format!("g{i:07}"))).map(drop);
    let mut out = Vec::new();
    let mut i = 0;
    for &c in checkpoints {
        let window_start = c - c / 10;
        while i < window_start {
            create(i)?;
            i += 1;
        }
        let slice = ((c - window_start) / SLICES).max(1);
        let mut rates = Vec::new();
        while i < c {
            let end = (i + slice).min(c);
            let t = Instant::now();
            for j in i..end {
                create(j)?;
            }
            rates.push((end - i) as f64 / t.elapsed().as_secs_f64());
            i = end;
        }
        rates.sort_by(f64::total_cmp);
        let median = rates.get(rates.len() / 2).copied().unwrap_or(f64::NAN);
        out.push((c, median));
        eprintln!(
            "    {c} entries: {median:.0} creates/s (median of {} slices, {:.0}..{:.0})",
            rates.len(),
            rates.first().unwrap_or(&f64::NAN),
            rates.last().unwrap_or(&f64::NAN)
        );
        at_checkpoint(c)?;
    }
    Ok(out)
}

/// rvmfs: grow one directory through `checkpoints`, remounting at each (mount time and RSS),
/// then the recovery row.
fn rvmfs(r: &mut Results, bin: &Path, work: &Path, checkpoints: &[usize]) -> Result<()> {
    let last = *checkpoints.last().unwrap();
    eprintln!("== rvmfs: one directory grows to {last}");
    let image = work.join("rvmfs-big.img");
    let mkfs = Rvmfs::mkfs(bin, &image, "16G", Some((2 * last) as u64))?;
    let log_capacity_mib: f64 = mkfs
        .split(", ")
        .find_map(|p| p.strip_suffix(" MiB log")?.trim().parse::<f64>().ok())
        .unwrap_or(f64::NAN);
    let mnt = work.join("mnt-rvmfs-big");
    let dlog = work.join("rvmfs-big.log");
    let (m, _) = Rvmfs::mount(bin, &image, &mnt, &dlog, None)?;
    let mut cur = Some(m);
    let dir = mnt.join("big");
    let mut points = Vec::new();
    let rates = grow_directory(&dir, checkpoints, |c| {
        let m = cur.take().unwrap();
        let rss_hot_mib = m.rss_mib();
        let private_hot_mib = m.private_mib();
        let unmount_s = m.unmount()?.as_secs_f64();
        let (m2, took) = Rvmfs::mount(bin, &image, &mnt, &dlog, None)?;
        let p = MountPoint {
            files: c,
            rss_hot_mib,
            private_hot_mib,
            unmount_s,
            mount_s: took.as_secs_f64(),
            rss_after_mount_mib: m2.rss_mib(),
        };
        eprintln!(
            "    remount with {c} files: {:.3} s, RSS {:.1} MiB (was {:.1} MiB hot, {:.1} MiB private; unmount {:.2} s)",
            p.mount_s, p.rss_after_mount_mib, p.rss_hot_mib, p.private_hot_mib, p.unmount_s
        );
        points.push(p);
        cur = Some(m2);
        Ok(())
    });
    let rates = match rates {
        Ok(v) => v,
        Err(e) => {
            drop(cur);
            return Err(e);
        }
    };
    r.scaling.insert("rvmfs".into(), rates);
    r.mounts = points;

    let m = cur.take().unwrap();
    recovery(
        r,
        bin,
        &image,
        (&mnt, &dlog, &dir),
        m,
        (last, log_capacity_mib),
    )?;
    std::fs::remove_file(&image)?;
    Ok(())
}

/// Recovery: metadata churn to fill the log (1.5x its capacity in setxattr values, an fsync
/// every 8 MiB), then kill -9 and time the next mount; fsck -n afterwards.
fn recovery(
    r: &mut Results,
    bin: &Path,
    image: &Path,
    (mnt, dlog, dir): (&Path, &Path, &Path),
    m: Rvmfs,
    (last, log_capacity_mib): (usize, f64),
) -> Result<()> {
    let value_len = 32 << 10;
    let cap = if log_capacity_mib.is_finite() {
        log_capacity_mib
    } else {
        256.0
    };
    let churn_ops = (cap * 1.5 * w::MIB / value_len as f64) as usize;
    eprintln!("== rvmfs: {churn_ops} setxattrs of 32 KiB to fill the log, then kill -9");
    let churn = w::xattr_churn(dir, 512.min(last), churn_ops, value_len, 256);
    let churn = match churn {
        Ok(d) => d,
        Err(e) => {
            drop(m);
            return Err(e);
        }
    };
    m.kill9()?;
    let before = std::fs::read_to_string(dlog).unwrap_or_default().len();
    let (m, took) = Rvmfs::mount(bin, image, mnt, dlog, None)?;
    let log_text = std::fs::read_to_string(dlog).unwrap_or_default();
    let line = log_text[before.min(log_text.len())..]
        .lines()
        .find(|l| l.contains("recovered") && l.contains("records"))
        .unwrap_or("")
        .to_string();
    let num_after = |key: &str| -> Option<u64> {
        let i = line.find(key)? + key.len();
        line[i..]
            .trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    let records = line
        .split("recovered ")
        .nth(1)
        .and_then(|s| s.split(' ').next()?.parse().ok());
    let used = match (num_after("head"), num_after("tail")) {
        (Some(h), Some(t)) => Some(t.saturating_sub(h) as f64 / w::MIB),
        _ => None,
    };
    let count = std::fs::read_dir(dir)?.count();
    if count != last {
        r.notes.push(format!(
            "After kill -9 and recovery the big directory holds {count} entries, expected {last}."
        ));
    }
    m.unmount()?;
    let t = Instant::now();
    let fsck = Command::new(bin.join("fsck-rvmfs"))
        .args(["-n", "-f"])
        .arg(image)
        .output()
        .ok();
    let rec = Recovery {
        files: last,
        churn_ops,
        churn_s: churn.as_secs_f64(),
        log_capacity_mib,
        log_used_mib: used,
        records_replayed: records,
        mount_s: took.as_secs_f64(),
        daemon_log_line: line.trim().to_string(),
        fsck_exit: fsck.as_ref().and_then(|o| o.status.code()),
        fsck_s: t.elapsed().as_secs_f64(),
    };
    eprintln!(
        "    recovery mount {:.3} s; {}; fsck -n exit {:?} in {:.1} s",
        rec.mount_s, rec.daemon_log_line, rec.fsck_exit, rec.fsck_s
    );
    r.recovery = Some(rec);
    Ok(())
}
