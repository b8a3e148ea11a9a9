//! The kill with one operation in flight from a second thread, and the models the tree may
//! equal afterwards: the operation answered (so applied, or failed as predicted), applied
//! without an answer, applied up to its first FUSE request (a write), or not applied.

use crate::driver::{Candidate, Driver};
use crate::execute::{errno_name, errno_of, perform_racing_kill};
use crate::model::{Errno, Ino, Model};
use crate::ops::Op;
use crate::rng::Rng;
use std::io;
use std::time::Duration;

impl Driver {
    /// Generate one more operation, run it from a second thread and `kill -9` the daemon `pid`
    /// while it runs. Returns the candidate models of the tree after the kill, and for an
    /// unanswered write the write and its inode (to diagnose a torn write if none matches).
    pub fn kill_with_op_in_flight(
        &mut self,
        rng: &mut Rng,
        pid: u32,
    ) -> (Vec<Candidate>, Option<(Op, Ino)>) {
        let op = self.gen.op(rng, &self.model, true);
        let before = self.model.clone();
        let mut after = self.model.clone();
        let predicted = after.apply(&op);
        let delay = kill_delay(rng);
        let got = perform_racing_kill(&op, &self.root, &self.files, pid, delay);
        self.stats.inflight += 1;
        self.stats.ops += 1;
        let res = match &got {
            Ok(None) => "ok".to_string(),
            Ok(Some(n)) => format!("ok, {n} bytes written"),
            Err(e) => format!("error {}", errno_name(errno_of(e))),
        };
        self.note(format!(
            "IN FLIGHT at the kill (after {delay:?}): {op} -> {res}"
        ));
        self.in_flight_candidates(&op, predicted, got, before, after)
    }

    /// What the answer (or its absence) to the in-flight `op` allows: an answer must match
    /// the model's prediction; an unanswered request may or may not have been applied.
    fn in_flight_candidates(
        &mut self,
        op: &Op,
        predicted: Result<(), Errno>,
        got: io::Result<Option<usize>>,
        before: Model,
        after: Model,
    ) -> (Vec<Candidate>, Option<(Op, Ino)>) {
        let mut candidates: Vec<Candidate> = Vec::new();
        let mut inflight_op = None;
        let w_len = match op {
            Op::Write { len, .. } => *len,
            _ => 0,
        };
        let first_request = first_request_len(op);
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
                    write_prefix(&before, op, n as u64),
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
                    if matches!(op, Op::Write { .. }) && first_request < w_len {
                        candidates.push((
                            "in-flight write applied up to its first page boundary",
                            write_prefix(&before, op, first_request),
                        ));
                    }
                }
                candidates.push(("in-flight op not applied", before));
                if let Op::Write { target, .. } = op {
                    inflight_op = Some((op.clone(), self.model.target_ino(target).unwrap()));
                }
            }
            (w, g) => self.fail(&format!(
                "in-flight {op}: the model predicts {:?}, the filesystem answered {:?}",
                w.map_err(errno_name),
                g.map(|_| ()).map_err(|e| errno_name(errno_of(&e)))
            )),
        }
        (candidates, inflight_op)
    }
}

/// The kill comes 0-250 µs (sometimes up to 3 ms) after the thread starts its system call:
/// most FUSE requests take about that long.
fn kill_delay(rng: &mut Rng) -> Duration {
    Duration::from_micros(match rng.below(8) {
        0 => 0,
        1 => rng.below(3000),
        _ => rng.below(250),
    })
}

/// A write(2) may be sent as two FUSE requests: the kernel ends a request after a partial page
/// that is not in its cache, so a write starting inside such a page goes as [off, next page
/// boundary) and then the rest (64 KiB stay within max_pages otherwise). The first may be
/// answered (a short write, reported) or committed with its answer lost to the kill. This is
/// the length of that first request (0 for anything but a write).
fn first_request_len(op: &Op) -> u64 {
    match op {
        Op::Write { off, len, .. } => ((off / 4096 + 1) * 4096 - off).min(*len),
        _ => 0,
    }
}

/// The model `before` with the first `n` bytes of the write `op` applied.
fn write_prefix(before: &Model, op: &Op, n: u64) -> Model {
    let Op::Write {
        target, off, seed, ..
    } = op
    else {
        panic!("write_prefix of {op}, not a write");
    };
    let mut m = before.clone();
    m.apply(&Op::Write {
        target: target.clone(),
        off: *off,
        len: n,
        seed: *seed,
    })
    .expect("a prefix of a predicted write");
    m
}
