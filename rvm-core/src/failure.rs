//! The failed state of an instance: errors are sticky (the policy of ext4's `errors=` mount
//! option, and PostgreSQL's answer to "fsyncgate", 2018: after a failed `fsync` the kernel
//! may drop the dirty pages and report success to the next `fsync`, so a retry proves
//! nothing). The first storage error in a write path (commit and group commit, flush, the
//! ordered data sync, truncation, an external-range write) is recorded once, logged once with
//! its cause, and from then on every commit, flush and truncation is refused with
//! [`RvmError::Failed`]; reads of mapped regions go on. Nothing is ever reported durable
//! that is not: state (tail, durable Lsn, head, spool) only advances after the I/O that
//! justifies it succeeded and the instance is still healthy.

use std::io;

use crate::error::{Result, RvmError};
use crate::shared::Shared;

/// What the instance was doing when the storage failed (see [`Failure`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailedOp {
    /// Writing redo records at the log tail (a commit with `Flush`, `flush`, group commit,
    /// the commit timer, a full spool's flush), or reading them back.
    LogWrite,
    /// The `ordered` sync of file data before records point at it, or `flush`'s data sync.
    DataSync,
    /// Truncation (explicit, background or on a full log): applying records to the
    /// segments, the syncs, the status block write.
    Truncation,
    /// The in-place write of an external range (`Transaction::log_external`).
    ExternalWrite,
    /// The caller's own write or sync of data records point at, reported with
    /// [`Rvm::fail`](crate::Rvm::fail) (a filesystem's file data written in place).
    DataWrite,
}

impl FailedOp {
    /// The code of this operation in a poisoned spool's header (`spool`), 1 to 5.
    pub(crate) fn code(self) -> u32 {
        self as u32 + 1
    }

    /// The operation of a spool header's code, if it names one.
    pub(crate) fn from_code(code: u32) -> Option<FailedOp> {
        use FailedOp::*;
        [LogWrite, DataSync, Truncation, ExternalWrite, DataWrite]
            .into_iter()
            .find(|op| op.code() == code)
    }
}

impl std::fmt::Display for FailedOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FailedOp::LogWrite => "log write",
            FailedOp::DataSync => "ordered data sync",
            FailedOp::Truncation => "truncation",
            FailedOp::ExternalWrite => "external range write",
            FailedOp::DataWrite => "data write",
        })
    }
}

/// The first storage error of an instance, which put it in the failed state
/// ([`Rvm::failure`](crate::Rvm::failure), [`RvmError::Failed`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The operation that failed.
    pub op: FailedOp,
    /// The kind of the I/O error (`Other` for a log found inconsistent while writing it).
    pub kind: io::ErrorKind,
    /// The errno of the I/O error, if it had one (`EIO`, `ENOSPC`, ...).
    pub errno: Option<i32>,
    /// The error's text.
    pub message: String,
}

impl Failure {
    /// The errno to report for requests refused because of this failure: the first
    /// error's own errno if it had one, else `EIO`.
    pub fn errno_or_eio(&self) -> i32 {
        self.errno.unwrap_or(libc::EIO)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed: {}", self.op, self.message)
    }
}

impl Shared {
    /// The instance just failed: mark its spool poisoned, so the next recovery does not
    /// replay records that may point at data the failed I/O lost (`spool`'s module docs).
    fn poison_spool(&self, op: FailedOp) {
        let Some(file) = &self.spool_file else {
            return;
        };
        match crate::spool::poison(file, op.code()) {
            Ok(()) => log::error!(
                "rvm: the records still in the spool will not be replayed (their data may \
                 not have reached the disk)"
            ),
            Err(e) => log::error!("rvm: marking the spool poisoned failed: {e}"),
        }
    }

    /// `Err(RvmError::Failed)` once the instance has failed (one atomic load otherwise).
    pub(crate) fn healthy(&self) -> Result<()> {
        match self.failure.get() {
            None => Ok(()),
            Some(f) => Err(RvmError::Failed(f.clone())),
        }
    }

    /// Whether the instance has failed.
    pub(crate) fn is_failed(&self) -> bool {
        self.failure.get().is_some()
    }

    /// `err` came from `op`: if it is a storage error (`Io`, or `CorruptLog`: the storage
    /// gave back other bytes than were written), enter the failed state (the first error
    /// only; logged once) and return [`RvmError::Failed`]; any other error is returned as
    /// it is.
    pub(crate) fn fail(&self, op: FailedOp, err: RvmError) -> RvmError {
        let (kind, errno, message) = match &err {
            RvmError::Io(e) => (e.kind(), e.raw_os_error(), e.to_string()),
            RvmError::CorruptLog(m) => (io::ErrorKind::Other, None, format!("corrupt log: {m}")),
            _ => return err,
        };
        let first = Failure {
            op,
            kind,
            errno,
            message,
        };
        if self.failure.set(first).is_ok() {
            if let Some(f) = self.failure.get() {
                log::error!(
                    "rvm: {f}; the instance is failed: every later commit, flush and \
                     truncation is refused (mapped regions stay readable)"
                );
            }
            self.poison_spool(op);
        }
        match self.failure.get() {
            Some(f) => RvmError::Failed(f.clone()),
            None => err,
        }
    }
}
