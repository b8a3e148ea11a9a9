//! Options of an RVM instance (LRVM §4.1 `initialize`, `set_options`, `query_options`):
//! the fixed [`RvmOptions`] an instance is opened with, the [`Tunables`] it changes at run
//! time, what it reports about one region ([`RegionInfo`]), and their defaults.

use std::path::PathBuf;
use std::time::Duration;

use crate::storage::Area;
use crate::types::Lsn;
#[cfg(doc)]
use crate::{Rvm, RvmError};

/// Options of [`Rvm::initialize`].
#[derive(Clone, Debug)]
pub struct RvmOptions {
    /// The circular redo log inside the storage (formatted by [`Rvm::create_log`]).
    pub log: Area,
    /// Spool file for no-flush records (normally on tmpfs); `None` = process memory.
    pub spool: Option<PathBuf>,
    /// Bytes of pending no-flush records before a commit forces a flush (and the spool file
    /// size). Default 64 MiB.
    pub spool_size: u64,
    /// Background flush timer; `None` = off.
    pub commit_interval: Option<Duration>,
    /// `flush()` (and `end(Flush)`) sync the storage before writing records, so file data
    /// the caller wrote earlier reaches disk before the records that point at it.
    pub ordered: bool,
    /// Checked mode: `end` compares the region with a shadow copy and fails with
    /// [`RvmError::Unrecorded`] if a byte changed outside every declared range. Costs a copy
    /// of each region and a full compare per commit.
    pub checked: bool,
    /// Recovery replays into memory only and `map` applies it to the private mapping;
    /// nothing is ever written (commits stay in memory, flush/truncate do nothing).
    pub read_only: bool,
    /// Background truncation starts when the live log exceeds this percent of its
    /// capacity (default `Some(DEFAULT_TRUNCATE_THRESHOLD)`); `None` or 0 = never (a
    /// committer then truncates when the log is full). Also [`Rvm::set_options`].
    pub truncate_threshold: Option<u8>,
    /// Log shipping (`crate::ship`): truncation frees no record at or above the shipped
    /// floor ([`Rvm::set_shipped_lsn`]), which starts at the recovered head. Default off.
    pub ship: bool,
}

impl Default for RvmOptions {
    fn default() -> Self {
        RvmOptions {
            log: Area { offset: 0, len: 0 },
            spool: None,
            spool_size: 64 << 20,
            commit_interval: None,
            ordered: false,
            checked: false,
            read_only: false,
            truncate_threshold: Some(DEFAULT_TRUNCATE_THRESHOLD),
            ship: false,
        }
    }
}

/// The options [`Rvm::set_options`] changes at run time ([`Rvm::query_options`] reads them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tunables {
    /// Background flush timer; `None` = off.
    pub commit_interval: Option<Duration>,
    /// Background truncation threshold in percent of the log; `None` = never.
    pub truncate_threshold: Option<u8>,
    /// Checked mode (see [`RvmOptions::checked`]).
    pub checked: bool,
    /// LRVM §5.2 intra- and inter-transaction optimizations.
    pub intra: bool,
    pub inter: bool,
}

/// One region as [`Rvm::query_region`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionInfo {
    pub area: Area,
    /// Lsn of the last transaction this region committed, if any.
    pub last_lsn: Option<Lsn>,
    /// Whether that transaction (and every earlier one) is durable in the log.
    pub durable: bool,
    /// Whether checked mode keeps a shadow copy of this region.
    pub checked: bool,
}

/// Default `truncate_threshold`: percent of the log capacity.
pub const DEFAULT_TRUNCATE_THRESHOLD: u8 = 50;
