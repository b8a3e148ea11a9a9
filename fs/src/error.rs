//! Errors of filesystem operations, and their errno for the kernel.

use thiserror::Error;

/// An error of a filesystem operation.
#[derive(Debug, Error)]
pub enum FsError {
    /// A POSIX error the caller asked for (ENOENT, EEXIST, ENOSPC...): not a fault.
    #[error("{}", std::io::Error::from_raw_os_error(*.0))]
    Errno(i32),
    /// The RVM library failed (log I/O, a record too large).
    #[error("recoverable memory: {0}")]
    Rvm(#[from] rvm_core::RvmError),
    /// Reading or writing the data area failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A structure in the region is inconsistent (a pointer out of bounds, a bad node).
    #[error("corrupt metadata: {0}")]
    Corrupt(String),
}

/// Result of a filesystem operation.
pub type FsResult<T> = Result<T, FsError>;

impl FsError {
    /// The errno reported to the kernel: the POSIX error itself, EIO for faults.
    pub fn errno(&self) -> i32 {
        match self {
            FsError::Errno(e) => *e,
            FsError::Io(e) => e.raw_os_error().unwrap_or(libc::EIO),
            FsError::Rvm(_) | FsError::Corrupt(_) => libc::EIO,
        }
    }
}

/// Shorthand for `Err(FsError::Errno(e))`.
pub fn errno<T>(e: i32) -> FsResult<T> {
    Err(FsError::Errno(e))
}

/// Shorthand for a corruption error.
pub fn corrupt<T>(what: impl Into<String>) -> FsResult<T> {
    Err(FsError::Corrupt(what.into()))
}
