//! After the kill: `fsck.rvmfs -n` (nothing but orphans), `fsck.rvmfs -p`, remount, and the
//! whole tree compared with the candidate models; and the clean unmount, fsck and mount.

use crate::driver::{Candidate, Driver};
use crate::model::Ino;
use crate::ops::Op;
use crate::scan::{differences, scan, torn_write, Seen};
use std::collections::BTreeMap;
use std::fs;
use std::time::Instant;

/// What [`Driver::recover_and_verify`] found: which candidate the tree matched, the orphans
/// fsck found, and the exit codes of `fsck -n` and `fsck -p`.
pub struct Recovered {
    pub what: &'static str,
    pub orphans: usize,
    pub fsck_n: i32,
    pub fsck_p: i32,
}

impl Driver {
    /// After the daemon got SIGKILL: reap it, remove the dead mount, fsck, remount, and the
    /// tree must equal one of `candidates` (that one becomes the model).
    pub fn recover_and_verify(
        &mut self,
        mut candidates: Vec<Candidate>,
        inflight_op: Option<(Op, Ino)>,
    ) -> Recovered {
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
        let (orphans, code, pcode) = self.fsck_after_kill(min_orphans, max_orphans);

        self.m.mount();
        self.stats.mount_time += self.m.last_mount_time;
        let t = Instant::now();
        self.check_mount_root();
        let mut seen = BTreeMap::new();
        scan(&self.root, "", &mut seen);
        let (what, model) = self.matching_candidate(&candidates, &inflight_op, &seen);
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
        Recovered {
            what,
            orphans,
            fsck_n: code,
            fsck_p: pcode,
        }
    }

    /// fsck -n: nothing but orphans (between `min_orphans` and `max_orphans`); fsck -p: frees
    /// them. Returns (orphans, exit code of -n, exit code of -p).
    fn fsck_after_kill(&mut self, min_orphans: usize, max_orphans: usize) -> (usize, i32, i32) {
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
        (orphans, code, pcode)
    }

    /// The first candidate the scanned tree equals; fails with the differences from each
    /// (and a diagnosis of a torn unanswered write) if there is none.
    fn matching_candidate(
        &self,
        candidates: &[Candidate],
        inflight_op: &Option<(Op, Ino)>,
        seen: &BTreeMap<String, Seen>,
    ) -> Candidate {
        for (what, c) in candidates {
            if differences(c, seen).is_empty() {
                return (what, c.clone());
            }
        }
        let mut msg = String::from("after kill -9, fsck and remount the tree differs from the model of answered requests\n");
        if let Some((op, ino)) = inflight_op {
            if let Some((_, before)) = candidates
                .iter()
                .find(|(w, _)| *w == "in-flight op not applied")
            {
                if let Some((_, how)) = torn_write(before, op, *ino, seen) {
                    msg.push_str(&format!(
                        "  THE UNANSWERED IN-FLIGHT WRITE IS TORN (see \
                         kill9_unanswered_overwrite_is_all_or_nothing): {how}\n"
                    ));
                }
            }
        }
        for (what, c) in candidates {
            let d = differences(c, seen);
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
    }

    /// The mount's root holds only `w` (and lost+found if mkfs made one).
    fn check_mount_root(&self) {
        for e in fs::read_dir(self.m.mnt()).unwrap() {
            let n = e.unwrap().file_name();
            if n != "w" && n != "lost+found" {
                self.fail(&format!("unexpected {n:?} at the root of the mount"));
            }
        }
    }

    /// Close everything, unmount cleanly, fsck must be clean, mount again, compare.
    pub fn clean_remount(&mut self) {
        while !self.model.handles.is_empty() {
            self.step(Op::Close { handle: 0 });
        }
        self.m.unmount_ok();
        let (code, out) = self.m.fsck(&["-n"]);
        if code != 0 || out.contains("orphan inode") {
            self.fail(&format!(
                "fsck.rvmfs -n after a clean unmount exited {code}:\n{out}"
            ));
        }
        self.m.mount();
        let mut seen = BTreeMap::new();
        scan(&self.root, "", &mut seen);
        let d = differences(&self.model, &seen);
        if !d.is_empty() {
            self.fail(&format!(
                "after a clean unmount and mount: {} differences:\n  {}",
                d.len(),
                d.join("\n  ")
            ));
        }
        self.stats.clean_remounts += 1;
        self.note("clean unmount, fsck, mount: verified".into());
    }
}
