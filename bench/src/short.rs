//! The short workloads (meta, tree, small, seq, rand, real): their rows of the results table
//! ([`metrics`]) and their runs ([`run`]). Every system is mounted at once and each
//! repetition runs them all in turn, the order rotating: this disk's speed swings within an
//! hour, so no system gets one period of it.

use crate::{peers, random_read, requests, workloads as w, writeback, Class, Metric, Results};
use anyhow::Result;
use std::path::Path;

/// The short workloads' names (`--workloads`).
pub const NAMES: [&str; 6] = ["meta", "tree", "small", "seq", "rand", "real"];
/// Files the meta workload creates, stats and unlinks.
const META_FILES: usize = 10_000;

/// The table's rows of the short workloads, no samples yet (the untar label gets the
/// tarball's size later).
pub fn metrics() -> Vec<Metric> {
    let rows: [(&'static str, &str, &'static str, bool, Class); 14] = [
        (
            "create",
            "create 10,000 empty files in one dir",
            "ops/s",
            true,
            Class::Meta,
        ),
        (
            "stat",
            "stat 10,000 files (warm)",
            "ops/s",
            true,
            Class::Meta,
        ),
        ("unlink", "unlink 10,000 files", "ops/s", true, Class::Meta),
        (
            "mkdir",
            "mkdir tree of 1,110 dirs",
            "dirs/s",
            true,
            Class::Meta,
        ),
        ("rmdir", "rm -rf of that tree", "s", false, Class::Meta),
        (
            "small",
            "1,000 x (4 KiB write + fsync)",
            "files/s",
            true,
            Class::Small,
        ),
        (
            "seqw",
            "sequential write 1 GiB + fsync",
            "MiB/s",
            true,
            Class::Seq,
        ),
        (
            "seqr",
            "sequential read 1 GiB, cold cache",
            "MiB/s",
            true,
            Class::Seq,
        ),
        (
            "randw",
            "20,000 random 4 KiB overwrites + fsync",
            "ops/s",
            true,
            Class::Random,
        ),
        (
            "randr",
            "5,000 random 4 KiB reads, cold cache",
            "ops/s",
            true,
            Class::Random,
        ),
        ("untar", "untar stdlib tarball", "s", false, Class::Tree),
        ("find", "find | wc -l", "s", false, Class::Tree),
        ("du", "du -s", "s", false, Class::Tree),
        ("rmrf", "rm -rf stdlib tree", "s", false, Class::Tree),
    ];
    rows.into_iter()
        .map(|(key, label, unit, higher, class)| {
            Metric::new(key, label.into(), unit, higher, class)
        })
        .collect()
}

/// What a run of the short workloads needs besides the systems.
pub struct Plan<'a> {
    /// `--workloads` (those of [`NAMES`] in it run).
    pub workloads: &'a [String],
    /// The stdlib tarball of the real workload.
    pub tarball: &'a Path,
    pub reps: usize,
}

impl Plan<'_> {
    fn on(&self, name: &str) -> bool {
        self.workloads.iter().any(|w| w == name)
    }
}

/// Mount `systems` at once and run `plan.reps` repetitions, each over every system in
/// turn, the order rotating; rvmfs's FUSE requests are counted per phase (`requests`).
pub fn run(
    r: &mut Results,
    bin: &Path,
    work: &Path,
    plan: &Plan<'_>,
    systems: &[&str],
) -> Result<()> {
    let peers = peers::Peers::mount(r, bin, work, systems)?;
    let systems = peers.systems.clone();
    for rep in 0..plan.reps {
        for k in 0..systems.len() {
            let (sys, root) = &systems[(rep + k) % systems.len()];
            match *sys {
                "rvmfs" => requests::record_on(root, ""),
                writeback::SYSTEM => requests::record_on(root, writeback::REQUESTS),
                _ => {}
            }
            let res = run_rep(r, plan, sys, root, rep);
            requests::pause();
            res?;
        }
    }
    r.requests = requests::take(r.tree_entries);
    peers.unmount()
}

/// Repetition `rep` of the short workloads on `sys`, mounted at `root`.
fn run_rep(r: &mut Results, plan: &Plan<'_>, sys: &str, root: &Path, rep: usize) -> Result<()> {
    eprintln!("== {sys}: repetition {}/{}", rep + 1, plan.reps);
    let d = |name: &str| root.join(format!("{name}{rep}"));
    if plan.on("meta") {
        let [c, s, u] = w::files_create_stat_unlink(&d("meta"), META_FILES)?;
        eprintln!("  create {c:.0}/s  stat {s:.0}/s  unlink {u:.0}/s");
        r.add("create", sys, c);
        r.add("stat", sys, s);
        r.add("unlink", sys, u);
    }
    if plan.on("tree") {
        let (mk, rm) = w::dir_tree(&d("tree"))?;
        eprintln!("  mkdir {mk:.0}/s  rm -rf {rm:.3} s");
        r.add("mkdir", sys, mk);
        r.add("rmdir", sys, rm);
    }
    if plan.on("small") {
        let v = w::small_fsync(&d("small"), 1000)?;
        eprintln!("  4 KiB+fsync {v:.0} files/s");
        r.add("small", sys, v);
    }
    if plan.on("seq") {
        let (wr, rd) = w::sequential(&d("seq"), 1 << 30)?;
        eprintln!("  seq write {wr:.0} MiB/s  cold read {rd:.0} MiB/s");
        r.add("seqw", sys, wr);
        r.add("seqr", sys, rd);
    }
    if plan.on("rand") {
        let v = w::random_overwrite(&d("rand"), 256 << 20, 20_000)?;
        eprintln!("  random 4 KiB {v:.0} ops/s");
        r.add("randw", sys, v);
        let v = random_read::random_cold_read(
            &d("randr"),
            random_read::FILE_BYTES,
            random_read::READS,
        )?;
        eprintln!("  random 4 KiB cold reads {v:.0} ops/s");
        r.add("randr", sys, v);
    }
    if plan.on("real") {
        let t = w::real_tree(&d("real"), plan.tarball)?;
        eprintln!(
            "  untar {:.2} s  find {:.2} s ({} entries)  du {:.2} s  rm -rf {:.2} s",
            t.untar, t.find, t.entries, t.du, t.rm
        );
        r.add("untar", sys, t.untar);
        r.add("find", sys, t.find);
        r.add("du", sys, t.du);
        r.add("rmrf", sys, t.rm);
    }
    Ok(())
}
