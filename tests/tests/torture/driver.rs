//! The driver: a cycle of answered operations and the kill, and the statistics of a run.

use crate::execute::{errno_name, errno_of, perform, Done};
use crate::generator::{names, Gen};
use crate::model::{Body, Model};
use crate::ops::Op;
use crate::rng::Rng;
use crate::verify::Recovered;
use rvmfs_tests::*;
use std::fs::File;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Default, Debug)]
pub struct Stats {
    pub ops: u64,
    pub ops_failed_as_predicted: u64,
    pub inflight: u64,
    pub inflight_answered: u64,
    /// Requests the kernel had sent and the dead daemon never answered (ECONNABORTED).
    pub inflight_aborted: u64,
    /// Unanswered writes found applied up to the end of their first FUSE request.
    pub inflight_first_request: u64,
    pub inflight_applied: u64,
    pub inflight_not_applied: u64,
    pub orphans: u64,
    pub fsck_n_time: Duration,
    pub fsck_p_time: Duration,
    pub mount_time: Duration,
    pub verify_time: Duration,
    pub clean_remounts: u64,
    pub max_entries: usize,
    pub max_bytes: u64,
}

impl Stats {
    /// The summary line of a run of `cycles` cycles that took `elapsed`.
    pub fn report(&self, seed: u64, cycles: u64, elapsed: Duration) {
        let s = self;
        let n = cycles.max(1) as u32;
        eprintln!(
            "torture: seed {seed}: {cycles} kill -9 cycles, {} operations ({} failed as the model predicted), 0 lost answered \
             requests, 0 fsck errors, in {:.1?}\n  in flight at the kill: {} ({} answered before it; unanswered: {} of them aborted mid-request, \
             {} found applied, {} applied up to their first FUSE request, {} not applied); {} orphans reclaimed; {} clean remounts; largest tree {} entries, {:.1} MiB\n  per cycle: fsck -n {:.0?}, \
             fsck -p {:.0?}, mount {:.0?}, verify {:.0?}",
            s.ops,
            s.ops_failed_as_predicted,
            elapsed,
            s.inflight,
            s.inflight_answered,
            s.inflight_aborted,
            s.inflight_applied,
            s.inflight_first_request,
            s.inflight_not_applied,
            s.orphans,
            s.clean_remounts,
            s.max_entries,
            s.max_bytes as f64 / 1048576.0,
            s.fsck_n_time / n,
            s.fsck_p_time / n,
            s.mount_time / n,
            s.verify_time / n,
        );
    }
}

/// A state the tree may be in after the kill: what became of the operation in flight (a
/// fixed description, also counted in [`Stats`]) and the model of the whole tree.
pub type Candidate = (&'static str, Model);

/// Runs the workload on the mount and keeps the model of what every answered request did.
pub struct Driver {
    pub m: Mounted,
    pub root: PathBuf,
    pub model: Model,
    pub files: Vec<File>,
    pub gen: Gen,
    pub seed: u64,
    pub cycle: u64,
    pub log: Vec<String>,
    pub verbose: bool,
    pub stats: Stats,
    /// Inodes unlinked while open in this cycle (an upper bound for the orphans found).
    pub unlinked_open: usize,
}

impl Driver {
    /// A driver for the mount `m` whose workload lives under `root` (an empty directory).
    pub fn new(m: Mounted, root: PathBuf, seed: u64, verbose: bool) -> Self {
        Driver {
            m,
            root,
            model: Model::new(),
            files: Vec::new(),
            gen: Gen { names: names() },
            seed,
            cycle: 0,
            log: Vec::new(),
            verbose,
            stats: Stats::default(),
            unlinked_open: 0,
        }
    }

    /// Panic with `what`, the replay command, this cycle's last operations and the daemon's
    /// log tail.
    pub fn fail(&self, what: &str) -> ! {
        let tail: Vec<&String> = self
            .log
            .iter()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        panic!(
            "TORTURE FAILURE (seed {seed}, cycle {c}; replay with TORTURE_SEED={seed} TORTURE_CYCLES={n}):\n{what}\n\
             last operations of this cycle ({} in all):\n  {}\ndaemon log tail:\n{}",
            self.log.len(),
            tail.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n  "),
            tail_of(&self.m.daemon_log(), 3000),
            seed = self.seed,
            c = self.cycle,
            n = self.cycle + 1,
        );
    }

    pub fn note(&mut self, s: String) {
        if self.verbose {
            eprintln!("  [{}] {s}", self.cycle);
        }
        self.log.push(s);
    }

    /// One operation from this thread: answered, so it must match the model's prediction.
    pub fn step(&mut self, op: Op) {
        let nlink0_before = self.model.open_unlinked();
        let predicted = self.model.apply(&op);
        let got = perform(&op, &self.root, &self.files);
        self.stats.ops += 1;
        let res = match &got {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("error {}", errno_name(errno_of(e))),
        };
        self.note(format!("{op} -> {res}"));
        match (predicted, got) {
            (Ok(()), Ok(done)) => match (done, &op) {
                (Done::File(f), _) => self.files.push(f),
                (Done::Data(d), Op::Check { path }) => {
                    let ino = self.model.resolve(path).unwrap();
                    if let Body::File(w) = &self.model.node(ino).body {
                        if let Some(diff) = bytes_diff(&d, w) {
                            self.fail(&format!(
                                "read back of {path:?} before any crash differs: {diff}"
                            ));
                        }
                    }
                }
                _ => {}
            },
            (Err(w), Err(e)) if w == errno_of(&e) => self.stats.ops_failed_as_predicted += 1,
            (w, g) => {
                let g = g.map(|_| ()).map_err(|e| errno_name(errno_of(&e)));
                self.fail(&format!(
                    "{op}: the model predicts {:?}, the filesystem answered {g:?}",
                    w.map_err(errno_name)
                ));
            }
        }
        if let Op::Close { handle } = op {
            self.files.remove(handle);
        }
        if self.model.open_unlinked() > nlink0_before {
            self.unlinked_open += self.model.open_unlinked() - nlink0_before;
        }
    }

    /// One cycle: 20-200 answered operations, the kill (half of the time with one more
    /// operation in flight), then fsck, remount and the whole tree against the model.
    pub fn cycle(&mut self, rng: &mut Rng) {
        self.log.clear();
        self.unlinked_open = self.model.open_unlinked();
        let nops = rng.range(20, 200);
        for _ in 0..nops {
            let op = self.gen.op(rng, &self.model, false);
            self.step(op);
        }
        let entries = self.model.entries().len();
        self.stats.max_entries = self.stats.max_entries.max(entries);
        let bytes: u64 = self.model.nodes.values().map(|n| n.body.file_len()).sum();
        self.stats.max_bytes = self.stats.max_bytes.max(bytes);

        // The kill, sometimes with one operation in flight from a second thread.
        let pid = self.m.daemon_pid().expect("mounted");
        let (candidates, inflight_op) = if rng.chance(0.5) {
            self.kill_with_op_in_flight(rng, pid)
        } else {
            signal_pid(pid, libc::SIGKILL);
            self.note("KILL".into());
            (vec![("no op in flight", self.model.clone())], None)
        };
        let Recovered {
            what,
            orphans,
            fsck_n: code,
            fsck_p: pcode,
        } = self.recover_and_verify(candidates, inflight_op);
        eprintln!(
            "cycle {:>4}: {nops:>3} ops, {entries:>3} entries, {:>7} bytes, {}, {orphans} orphans, fsck -n {code} / -p {pcode}, mount {:.0?}",
            self.cycle,
            bytes,
            what,
            self.m.last_mount_time
        );
    }
}

fn tail_of(s: &str, n: usize) -> &str {
    let mut i = s.len().saturating_sub(n);
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}
