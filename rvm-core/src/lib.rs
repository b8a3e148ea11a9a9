//! # rvm-core: Lightweight Recoverable Virtual Memory
//!
//! A Rust take on LRVM (Satyanarayanan et al., SOSP 1993) with Rio Vista's spool for
//! no-flush commits (Lowell & Chen, SOSP 1997). Segments of a [`Storage`] are mapped as
//! [`Region`]s; a [`Transaction`] declares the bytes it changes with `set_range`, and `end`
//! appends their new values as one checksummed redo record to a circular log. Recovery
//! replays committed records in order and stops at the first torn or invalid one.
//! README.md describes the API and the log's protocols; `docs/format.md` at the
//! repository root gives the byte layout of the log status block and the redo record.

// The on-disk pieces: records, the circular log, its status block, the spool, storages.
pub mod fault;
pub mod inspect;
mod log;
mod overlay;
pub mod record;
pub mod sim;
mod spool;
pub mod status;
mod storage;
// The instance: its handle, its options, and one module per concept of its work.
mod background;
mod commit;
mod error;
mod failure;
mod mapping;
mod options;
mod recovery;
mod rvm;
mod shared;
pub mod ship;
mod stats;
mod truncate;
mod types;
// What the caller changes: regions and the transactions on them.
mod region;
mod transaction;

pub use error::{Result, RvmError};
pub use failure::{FailedOp, Failure};
pub use fault::{FaultCounts, FaultOp, FaultStorage};
pub use options::{RegionInfo, RvmOptions, Tunables, DEFAULT_TRUNCATE_THRESHOLD};
pub use region::Region;
pub use rvm::Rvm;
pub use ship::{FlushTap, Flushed, LogChunk};
pub use sim::SimStorage;
pub use stats::Stats;
pub use storage::{Area, FileStorage, MemStorage, Storage};
pub use transaction::Transaction;
pub use types::{CommitMode, Lsn, RestoreMode};
