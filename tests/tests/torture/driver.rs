//! The driver: operations, the kill, and the statistics of a run.

use crate::execute::*;
use crate::generator::*;
use crate::model::*;
use crate::ops::*;
use crate::rng::*;
use crate::scan::*;
use rvmfs_tests::*;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::time::{Duration, Instant};

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
        let mut candidates: Vec<(&'static str, Model)> = Vec::new();
        let mut inflight_op = None;
        if rng.chance(0.5) {
            let op = self.gen.op(rng, &self.model, true);
            let before = self.model.clone();
            let mut after = self.model.clone();
            let predicted = after.apply(&op);
            let files: Vec<File> = self
                .files
                .iter()
                .map(|f| f.try_clone().expect("dup"))
                .collect();
            let root = self.root.clone();
            let op2 = op.clone();
            // The kill comes 0-250 µs (sometimes up to 3 ms) after the thread starts its
            // system call: most FUSE requests take about that long.
            let delay = Duration::from_micros(match rng.below(8) {
                0 => 0,
                1 => rng.below(3000),
                _ => rng.below(250),
            });
            let started = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let started2 = started.clone();
            let t = std::thread::spawn(move || {
                started2.store(true, std::sync::atomic::Ordering::SeqCst);
                perform_inflight(&op2, &root, &files)
            });
            while !started.load(std::sync::atomic::Ordering::SeqCst) {
                std::hint::spin_loop();
            }
            let t0 = Instant::now();
            while t0.elapsed() < delay {
                std::hint::spin_loop();
            }
            signal_pid(pid, libc::SIGKILL);
            let got = t.join().expect("in-flight thread");
            self.stats.inflight += 1;
            self.stats.ops += 1;
            let res = match &got {
                Ok(None) => "ok".to_string(),
                Ok(Some(n)) => format!("ok, {n} bytes written"),
                Err(e) => format!("error {}", errno_name(errno_of(e))),
            };
            // A write(2) may be sent as two FUSE requests: the kernel ends a request after
            // a partial page that is not in its cache, so a write starting inside such a page
            // goes as [off, next page boundary) and then the rest (64 KiB stay within
            // max_pages otherwise). The first may be answered (a short write, reported) or
            // committed with its answer lost to the kill.
            let (w_len, prefix_model) = match &op {
                Op::Write {
                    target,
                    off,
                    len,
                    seed,
                } => {
                    let t = target.clone();
                    let (off, seed) = (*off, *seed);
                    let before = before.clone();
                    (
                        *len,
                        Some(move |n: u64| {
                            let mut m = before.clone();
                            m.apply(&Op::Write {
                                target: t.clone(),
                                off,
                                len: n,
                                seed,
                            })
                            .expect("a prefix of a predicted write");
                            m
                        }),
                    )
                }
                _ => (0, None),
            };
            let first_request = match &op {
                Op::Write { off, len, .. } => ((off / 4096 + 1) * 4096 - off).min(*len),
                _ => 0,
            };
            self.note(format!(
                "IN FLIGHT at the kill (after {delay:?}): {op} -> {res}"
            ));
            match (predicted, got) {
                (Ok(()), Ok(Some(n))) if (n as u64) < w_len => {
                    self.stats.inflight_answered += 1;
                    if n as u64 != first_request {
                        self.fail(&format!(
                            "in-flight {op}: a short write of {n} bytes (want {first_request}, up to the first page boundary)"
                        ));
                    }
                    candidates.push((
                        "in-flight write answered in part (a short write)",
                        prefix_model.as_ref().unwrap()(n as u64),
                    ));
                }
                (Ok(()), Ok(_)) => {
                    self.stats.inflight_answered += 1;
                    candidates.push(("in-flight op answered", after));
                }
                (Err(w), Err(e)) if w == errno_of(&e) => {
                    self.stats.inflight_answered += 1;
                    candidates.push(("in-flight op answered with an error", before));
                }
                (p, Err(e)) if matches!(errno_of(&e), libc::ECONNABORTED | libc::ENOTCONN) => {
                    if errno_of(&e) == libc::ECONNABORTED {
                        self.stats.inflight_aborted += 1;
                    }
                    if p.is_ok() {
                        candidates.push(("in-flight op applied", after));
                        if let Some(pm) = &prefix_model {
                            if first_request < w_len {
                                candidates.push((
                                    "in-flight write applied up to its first page boundary",
                                    pm(first_request),
                                ));
                            }
                        }
                    }
                    candidates.push(("in-flight op not applied", before));
                    if let Op::Write { target, .. } = &op {
                        inflight_op = Some((op.clone(), self.model.target_ino(target).unwrap()));
                    }
                }
                (w, g) => self.fail(&format!(
                    "in-flight {op}: the model predicts {:?}, the filesystem answered {:?}",
                    w.map_err(errno_name),
                    g.map(|_| ()).map_err(|e| errno_name(errno_of(&e)))
                )),
            }
        } else {
            signal_pid(pid, libc::SIGKILL);
            self.note("KILL".into());
            candidates.push(("no op in flight", self.model.clone()));
        }
        // Orphans the crash must leave: every file still held open after its unlink.
        let min_orphans = candidates
            .iter()
            .map(|(_, c)| c.open_unlinked())
            .min()
            .unwrap();
        let max_orphans = self.unlinked_open + 1;
        self.m.kill9(); // reaps the (already killed) daemon and runs fusermount3 -u -z
        self.files.clear();
        for (_, c) in candidates.iter_mut() {
            c.after_crash();
        }

        // fsck -n: nothing but orphans; fsck -p: frees them.
        let t = Instant::now();
        let (code, out) = self.m.fsck(&["-n"]);
        self.stats.fsck_n_time += t.elapsed();
        let orphans = out.lines().filter(|l| l.contains("orphan inode")).count();
        if code != 0 {
            self.fail(&format!(
                "fsck.rvmfs -n after kill -9 exited {code} (want 0):\n{out}"
            ));
        }
        if orphans < min_orphans || orphans > max_orphans {
            self.fail(&format!(
                "fsck.rvmfs -n found {orphans} orphans, want between {min_orphans} (files held open after their unlink) and {max_orphans}:\n{out}"
            ));
        }
        self.stats.orphans += orphans as u64;
        let t = Instant::now();
        let (pcode, pout) = self.m.fsck(&["-p"]);
        self.stats.fsck_p_time += t.elapsed();
        let want_p = if orphans > 0 { 1 } else { 0 };
        if pcode != want_p {
            self.fail(&format!("fsck.rvmfs -p after kill -9 exited {pcode}, want {want_p} ({orphans} orphans):\n{pout}"));
        }

        self.m.mount();
        self.stats.mount_time += self.m.last_mount_time;
        let t = Instant::now();
        self.check_mount_root();
        let mut seen = BTreeMap::new();
        scan(&self.root, "", &mut seen);
        let mut chosen = None;
        for (what, c) in &candidates {
            if differences(c, &seen).is_empty() {
                chosen = Some((*what, c.clone()));
                break;
            }
        }
        let Some((what, model)) = chosen else {
            let mut msg = String::from("after kill -9, fsck and remount the tree differs from the model of answered requests\n");
            if let Some((op, ino)) = &inflight_op {
                if let Some((_, before)) = candidates
                    .iter()
                    .find(|(w, _)| *w == "in-flight op not applied")
                {
                    if let Some((_, how)) = torn_write(before, op, *ino, &seen) {
                        msg.push_str(&format!(
                            "  THE UNANSWERED IN-FLIGHT WRITE IS TORN (see \
                             kill9_unanswered_overwrite_is_all_or_nothing): {how}\n"
                        ));
                    }
                }
            }
            for (what, c) in &candidates {
                let d = differences(c, &seen);
                msg.push_str(&format!(
                    "  against the model with {what}: {} differences:\n    {}\n",
                    d.len(),
                    d.iter()
                        .take(30)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("\n    ")
                ));
            }
            self.fail(&msg);
        };
        self.stats.verify_time += t.elapsed();
        match what {
            "in-flight op applied" => self.stats.inflight_applied += 1,
            "in-flight write applied up to its first page boundary" => {
                self.stats.inflight_first_request += 1
            }
            "in-flight op not applied" => self.stats.inflight_not_applied += 1,
            _ => {}
        }
        self.note(format!("verified: {what}; {orphans} orphans"));
        self.model = model;
        eprintln!(
            "cycle {:>4}: {nops:>3} ops, {entries:>3} entries, {:>7} bytes, {}, {orphans} orphans, fsck -n {code} / -p {pcode}, mount {:.0?}",
            self.cycle,
            bytes,
            what,
            self.m.last_mount_time
        );
    }
}

pub fn tail_of(s: &str, n: usize) -> &str {
    let mut i = s.len().saturating_sub(n);
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}
