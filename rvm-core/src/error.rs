//! Error type of rvm-core.

use crate::failure::Failure;

/// Every fallible rvm-core operation returns this error.
#[derive(thiserror::Error, Debug)]
pub enum RvmError {
    /// An I/O error from the [`Storage`](crate::Storage) or the spool file.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// `set_range`/`write` named bytes `[offset, offset+len)` outside a region of
    /// `region_len` bytes (all in bytes, relative to the region start).
    #[error("range [{offset}, {offset}+{len}) is outside the region of {region_len} bytes")]
    OutOfBounds {
        offset: usize,
        len: usize,
        region_len: usize,
    },
    /// One transaction's redo record (`len` bytes) does not fit in the log (`capacity` bytes).
    #[error("redo record of {len} bytes is larger than the log capacity of {capacity} bytes")]
    RecordTooLarge { len: u64, capacity: u64 },
    /// `abort` of a transaction begun in `NoRestore` mode (LRVM §4.1): the old bytes were not
    /// saved, so the region keeps the new values (they are not logged).
    #[error("cannot abort a no_restore transaction")]
    NoRestore,
    /// The log contents are inconsistent in a way recovery cannot treat as a torn tail.
    #[error("corrupt log: {0}")]
    CorruptLog(String),
    /// Neither copy of the log status block is valid (or it does not match the log area).
    #[error("corrupt log status block: {0}")]
    CorruptStatus(String),
    /// A bad argument (area not aligned, overlapping regions, log too small, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Checked mode: a region byte changed outside every declared range (the Coda lesson,
    /// "forgetting set_range"). `offset` is relative to the region start.
    #[error("region byte at offset {offset} changed outside any set_range")]
    Unrecorded { offset: usize },
    /// The instance is failed: an earlier storage error (a failed write or sync of the log,
    /// the segment or external data; the [`Failure`] holds the first one, its operation,
    /// kind, errno and text) made it refuse every later commit (`end(Flush)` and
    /// `end(NoFlush)`: a no-flush commit promises a later durable record), `flush`,
    /// `truncate` and `log_external`. Nothing is reported durable that is not; reads of
    /// mapped regions go on. Errors are sticky (ext4's `errors=`; PostgreSQL after
    /// "fsyncgate": a failed fsync may have dropped the dirty pages, so a retry that
    /// succeeds proves nothing). Only a new [`Rvm::initialize`](crate::Rvm::initialize)
    /// (recovery from what is durable) clears it.
    #[error("RVM failed earlier: {0}")]
    Failed(Failure),
}

/// Result alias.
pub type Result<T, E = RvmError> = std::result::Result<T, E>;
