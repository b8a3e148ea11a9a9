//! # rvm-core: Lightweight Recoverable Virtual Memory
//!
//! A Rust take on LRVM (Satyanarayanan et al., SOSP 1993) with Rio Vista's spool for
//! no-flush commits (Lowell & Chen, SOSP 1997). Segments of a [`Storage`] are mapped as
//! [`Region`]s; a [`Transaction`] declares the bytes it changes with `set_range`, and `end`
//! appends their new values as one checksummed redo record to a circular log. Recovery
//! replays committed records in order and stops at the first torn or invalid one.
//! See README.md for the on-disk format.

mod error;
mod log;
mod overlay;
pub mod record;
mod region;
mod rvm;
pub mod sim;
mod spool;
pub mod status;
mod storage;
mod transaction;

pub use error::{Result, RvmError};
pub use region::Region;
pub use rvm::{
    CommitMode, Lsn, RegionInfo, RestoreMode, Rvm, RvmOptions, Stats, Tunables,
    DEFAULT_TRUNCATE_THRESHOLD,
};
pub use sim::SimStorage;
pub use storage::{Area, FileStorage, MemStorage, Storage};
pub use transaction::Transaction;
