//! The filesystem's error state: what happens after a storage error (the policies of ext4's
//! `errors=` mount option). rvm-core's failed state is the source of truth
//! (`Rvm::failure`): once set, every modifying request answers EIO without trying
//! ([`Fs::transact_on`](super::Fs::transact_on) refuses it before any I/O), reads go on. File
//! data the filesystem writes itself fails it too (`Rvm::fail`), except a data write that met
//! ENOSPC: no committed metadata points at those blocks yet, so that write answers ENOSPC and
//! metadata keeps working (a full host disk is not an I/O error).
//!
//! The first error is logged once (rvm-core logs its cause; this adds the image, the request
//! and the inode) and recorded best-effort in the image's error record
//! ([`ErrorRecord`], outside the log), which fsck shows and clears after a clean check.

use super::Fs;
use crate::error::FsError;
use crate::layout::error_record::ErrorRecord;
use crate::layout::inode::now;
use rvm_core::{Failure, Storage};
use std::sync::Arc;

/// What to do after a storage error (`-o errors=`, ext4's names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ErrorPolicy {
    /// Every later modifying request answers EIO; reads go on (the default).
    #[default]
    RemountRo,
    /// Report a failed data write (EIO to that request) and go on. Errors of the log, the
    /// metadata region or the data sync fail rvm-core, and those are always sticky: after
    /// them this behaves as `RemountRo`.
    Continue,
    /// Log the cause, record it, and abort the daemon at once (the mount dies; the next
    /// mount recovers from the log).
    Panic,
}

impl std::str::FromStr for ErrorPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "remount-ro" => Ok(ErrorPolicy::RemountRo),
            "continue" => Ok(ErrorPolicy::Continue),
            "panic" => Ok(ErrorPolicy::Panic),
            _ => Err(format!(
                "errors={s}: expected remount-ro, continue or panic"
            )),
        }
    }
}

/// The error state of a mounted filesystem (part of [`Fs`]).
pub struct Errors {
    pub policy: ErrorPolicy,
    /// The image's name in messages (the daemon sets the path; default "rvmfs").
    pub source: String,
    /// Where the error record is written (None: never, a read-only instance).
    storage: Option<Arc<dyn Storage>>,
    /// The record as on disk (read at open; None: no error recorded).
    pub record: Option<ErrorRecord>,
    /// rvm-core's failure was reported (logged and recorded) already.
    failure_reported: bool,
}

impl Errors {
    /// The error state of an image in `storage`, reading its error record (a corrupt one is
    /// logged and counts as none); `read_only`: never write it.
    pub fn new(storage: Arc<dyn Storage>, read_only: bool) -> Errors {
        let record = ErrorRecord::read(&*storage).unwrap_or_else(|e| {
            log::warn!("open: the image's error record cannot be read: {e}");
            None
        });
        Errors {
            policy: ErrorPolicy::default(),
            source: "rvmfs".into(),
            storage: (!read_only).then_some(storage),
            record,
            failure_reported: false,
        }
    }

    /// Count one error in the record and write it (best effort: a failure is only logged).
    fn record(&mut self, op: &str, ino: u64, errno: i32, message: &str) {
        let t = now().0;
        let record = match self.record.take() {
            Some(mut r) => {
                r.count = r.count.saturating_add(1);
                r.last_time = t;
                r
            }
            None => ErrorRecord {
                count: 1,
                errno: errno.max(0) as u32,
                first_time: t,
                last_time: t,
                inode: ino,
                op: op.into(),
                message: message.into(),
            },
        };
        if let Some(storage) = &self.storage {
            if let Err(e) = ErrorRecord::write(&**storage, Some(&record)) {
                log::error!(
                    "{}: recording the error in the image failed: {e}",
                    self.source
                );
            }
        }
        self.record = Some(record);
    }

    /// Abort the daemon if the policy says so (after the error was logged and recorded).
    fn maybe_panic(&self) {
        if self.policy == ErrorPolicy::Panic {
            log::error!("{}: errors=panic: aborting", self.source);
            std::process::abort();
        }
    }
}

impl Fs {
    /// Report rvm-core's failure once (log with the image, request and inode; record it;
    /// abort under `errors=panic`). Later calls do nothing.
    pub fn report_failure(&mut self, failure: &Failure, op: &str, ino: u64) {
        let e = &mut self.errors;
        if e.failure_reported {
            return;
        }
        e.failure_reported = true;
        log::error!(
            "{}: {op} (inode {ino}): {failure}; the filesystem is now read-only: every change \
             answers EIO, reads go on; unmount, then run fsck.rvmfs",
            e.source
        );
        let errno = failure.errno_or_eio();
        e.record(op, ino, errno, &failure.to_string());
        e.maybe_panic();
    }

    /// Damaged metadata met (not a storage error: the filesystem goes on): log it with the
    /// image's name and record it (EUCLEAN, as ext4's "structure needs cleaning"), so fsck
    /// is called for.
    pub fn note_corruption(&mut self, op: &str, ino: u64, message: &str) {
        let e = &mut self.errors;
        log::error!("{}: {message}; unmount, then run fsck.rvmfs", e.source);
        e.record(op, ino, libc::EUCLEAN, message);
    }

    /// Whether rvm-core failed and [`Fs::notice_failure`] has not reported it yet (one atomic
    /// load when healthy; a shared lock is enough to ask).
    pub fn failure_unreported(&self) -> bool {
        !self.errors.failure_reported && self.rvm.failure().is_some()
    }

    /// Report rvm-core's failure if it failed since the last look (a background flush or
    /// truncation): one atomic load when healthy.
    pub fn notice_failure(&mut self, op: &str, ino: u64) {
        if self.errors.failure_reported {
            return;
        }
        if let Some(f) = self.rvm.failure() {
            self.report_failure(&f, op, ino);
        }
    }

    /// A request failed with `err`: decide what it means for the filesystem. A failed data
    /// write fails rvm-core (so every later change is refused) unless `errors=continue`,
    /// which records it and goes on; either way the request answers EIO. Any rvm-core failure
    /// is reported. Returns the error to answer.
    pub(super) fn on_error(&mut self, err: FsError, op: &str, ino: u64) -> FsError {
        let err = match err {
            FsError::DataWrite(io) if self.errors.policy == ErrorPolicy::Continue => {
                log::error!(
                    "{}: {op} (inode {ino}): data write failed: {io}; continuing \
                     (errors=continue)",
                    self.errors.source
                );
                let errno = io.raw_os_error().unwrap_or(libc::EIO);
                self.errors
                    .record(op, ino, errno, &format!("data write failed: {io}"));
                FsError::DataWrite(io)
            }
            FsError::DataWrite(io) => FsError::Rvm(self.rvm.fail(io)),
            other => other,
        };
        self.notice_failure(op, ino);
        err
    }
}
