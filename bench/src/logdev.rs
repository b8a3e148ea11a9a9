//! Workload `logdev`: 1,000 x (4 KiB write + fsync) on rvmfs with the redo log in three
//! places, in the same run: in the image (the default), on an external log file on the same
//! disk (`mkfs -J device=`, what a second file costs by itself), and on an external log on
//! tmpfs (/dev/shm: a "RAM-speed log", the case of LRVM's experience paper). This machine has
//! no second disk, so the tmpfs log stands in for a faster log device; it is not durable
//! across a power cut (README, "The promises"). Passes rotate the order (ABC, BCA, CAB ...)
//! so that drifts of the disk's speed hit every configuration alike. Prints the medians with
//! their spread and writes `logdev.md` and `logdev.json` in the output directory.

use crate::mounts::{run, Rvmfs};
use crate::report::median;
use crate::table;
use crate::workloads as w;
use anyhow::Result;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Files written and fsynced per pass.
const FILES: usize = 1000;
/// The log size in every configuration (the default of a 1 GiB image).
const LOG_SIZE: &str = "32M";

/// Where a configuration puts the log.
#[derive(Clone, Copy, Serialize, PartialEq, Eq)]
pub enum Place {
    /// In the image.
    Internal,
    /// A separate file in the work directory (same disk).
    SameDisk,
    /// A file in /dev/shm.
    Tmpfs,
}

impl Place {
    fn name(self) -> &'static str {
        match self {
            Place::Internal => "log in the image",
            Place::SameDisk => "external log, same disk",
            Place::Tmpfs => "external log on tmpfs (RAM-speed log)",
        }
    }

    fn log_path(self, work: &Path) -> Option<PathBuf> {
        match self {
            Place::Internal => None,
            Place::SameDisk => Some(work.join("rvmfs-logdev.log")),
            Place::Tmpfs => Some(PathBuf::from("/dev/shm/rvmfs-bench-logdev.log")),
        }
    }
}

/// One configuration's samples, files/s.
#[derive(Serialize)]
pub struct Samples {
    pub place: Place,
    pub name: &'static str,
    pub files_per_s: Vec<f64>,
}

/// A fresh 1 GiB image in `work` with its log at `place`.
fn mkfs(bin: &Path, image: &Path, log: Option<&Path>) -> Result<()> {
    let mut c = Command::new(bin.join("mkfs-rvmfs"));
    c.args(["-q", "-f", "-s", "1G", "-J"]);
    match log {
        Some(l) => c.arg(format!("size={LOG_SIZE},device={}", l.display())),
        None => c.arg(format!("size={LOG_SIZE}")),
    };
    run(c.arg(image))?;
    Ok(())
}

/// One pass: mkfs, mount, the small-fsync workload, unmount; files/s.
fn pass(bin: &Path, work: &Path, place: Place) -> Result<f64> {
    let image = work.join("rvmfs-logdev.img");
    let log = place.log_path(work);
    mkfs(bin, &image, log.as_deref())?;
    let (m, _) = Rvmfs::mount(
        bin,
        &image,
        &work.join("mnt-rvmfs-logdev"),
        &work.join("rvmfs-logdev.daemon.log"),
        None,
    )?;
    let res = w::small_fsync(&m.mnt.join("small"), FILES);
    m.unmount()?;
    std::fs::remove_file(&image)?;
    if let Some(l) = log {
        std::fs::remove_file(l)?;
    }
    res
}

/// Run `reps` rotations of the three configurations (tmpfs skipped without /dev/shm), print
/// the summary and write `logdev.md` / `logdev.json` in `out`.
pub fn measure(bin: &Path, work: &Path, out: &Path, reps: usize) -> Result<Vec<Samples>> {
    let mut places = vec![Place::Internal, Place::SameDisk];
    if Path::new("/dev/shm").is_dir() {
        places.push(Place::Tmpfs);
    }
    let mut all: Vec<Samples> = places
        .iter()
        .map(|&place| Samples {
            place,
            name: place.name(),
            files_per_s: Vec::new(),
        })
        .collect();
    for rep in 0..reps.max(1) {
        for k in 0..places.len() {
            let i = (rep + k) % places.len();
            let v = pass(bin, work, places[i])?;
            eprintln!("  {:>40}: {v:.0} files/s", places[i].name());
            all[i].files_per_s.push(v);
        }
    }
    let md = markdown(&all);
    eprint!("{md}");
    std::fs::write(out.join("logdev.md"), &md)?;
    std::fs::write(out.join("logdev.json"), serde_json::to_string_pretty(&all)?)?;
    Ok(all)
}

/// The table: median (min–max) files/s per configuration and the ratio to the in-image log.
fn markdown(all: &[Samples]) -> String {
    let med = |s: &Samples| median(&s.files_per_s).unwrap_or(f64::NAN);
    let base = all.first().map(med).unwrap_or(f64::NAN);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n### 1,000 x (4 KiB write + fsync), by where the redo log is\n"
    );
    let cols = [
        ("log", false),
        ("files/s, median (min–max)", false),
        ("vs log in the image", false),
    ];
    let rows = all.iter().map(|x| {
        let min = x.files_per_s.iter().copied().fold(f64::INFINITY, f64::min);
        let max = x
            .files_per_s
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        let (m, n) = (med(x), x.files_per_s.len());
        vec![
            x.name.to_string(),
            format!("{m:.0} ({min:.0}–{max:.0}, {n} passes)"),
            format!("{:.2}x", m / base),
        ]
    });
    table::write(&mut s, &cols, rows);
    let _ = writeln!(
        s,
        "\nNo second disk on this machine: the tmpfs log stands for a fast log device and \
         gives up the power-cut promise (README)."
    );
    s
}
