//! The redo log streamed to the bucket (issue 14 item 2; docs/format.md sections 11.7 and
//! 11.8): committed redo records shipped as create-only **segments** under keys carrying
//! the writer's epoch, periodic **snapshots** of the metadata region (full, or incremental
//! by the pages the shipped records touched), **retention** (the newest complete snapshots
//! and every segment after the oldest of them), and **restore** (an image's region from the
//! bucket alone, to the latest state, an Lsn or a time). The idea is Litestream's (SQLite's
//! WAL shipped to S3 every second, with snapshots) on LRVM's redo log, whose records are
//! already checksummed units of one operation.
//!
//! One concept a module:
//! * [`segment`]: a segment object's bytes and key.
//! * [`snapshot`]: snapshot parts, the manifest, the page tracker.
//! * [`listing`]: the segments and snapshots a bucket holds.
//! * [`shipper`]: the thread that ships and snapshots ([`Shipper`]).
//! * [`worker`]: one shipping pass and one snapshot, what the thread runs.
//! * [`retention`]: which snapshots and segments may go.
//! * [`gc`]: which data objects no reachable state points into, and collecting them.
//! * [`restore`]: the region rebuilt from the bucket ([`restore::restore`]).
//! * [`rewind`]: stepping a restore back to the newest state its caller accepts.
//!
//! The records come from rvm-core's log shipping hooks (`rvm_core::ship`): the flush tap,
//! the shipped floor that keeps truncation from freeing unshipped records, and reading
//! the live log from an Lsn after a restart.

pub mod gc;
pub mod listing;
pub mod restore;
pub mod retention;
pub mod rewind;
pub mod segment;
pub mod shipper;
pub mod snapshot;
pub mod worker;

pub use restore::{restore, restore_where, Restored, Until};
pub use rewind::Judge;
pub use shipper::{ImageInfo, MayWrite, ShipConfig, ShipStatus, Shipper};

use rvm_core::Lsn;

/// What went wrong shipping or restoring.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error(transparent)]
    Store(#[from] crate::Error),
    #[error("the redo log: {0}")]
    Rvm(#[from] rvm_core::RvmError),
    #[error("reading the metadata region: {0}")]
    Io(#[from] std::io::Error),
    /// The lease was lost or is no longer trusted: this writer must put nothing more.
    #[error("the lease is not held (epoch {0}): this writer ships nothing more")]
    LeaseLost(u32),
    /// A create-only key already holds other bytes.
    #[error("object {key} already exists with other bytes (another writer of epoch {epoch}?)")]
    Collision { key: String, epoch: u32 },
    #[error("segment {key}: {source}")]
    Segment {
        key: String,
        source: segment::SegmentError,
    },
    #[error("snapshot {key}: {source}")]
    Snapshot {
        key: String,
        source: snapshot::SnapshotError,
    },
    /// The bucket's log goes past this image's: it is not the bucket's latest state.
    #[error("the bucket holds Lsns up to {bucket}, past this image's log (durable up to {durable}): the image is older than the bucket; restore it from the bucket instead (or, to continue from this image and supersede the later records, mount with -o takeover)")]
    Ahead { bucket: Lsn, durable: Lsn },
    /// The bucket lacks what a restore needs.
    #[error("{0}")]
    Missing(String),
    #[error("{0}")]
    Corrupt(String),
    /// A restore's judge accepted none of the states the bucket can rebuild.
    #[error("no shipped state from Lsn {from} to Lsn {to} is acceptable, and the bucket holds no earlier one to restore")]
    Unacceptable { from: Lsn, to: Lsn },
    #[error("epoch {0} does not fit the 32-bit epoch of object keys")]
    Epoch(u64),
    #[error("the shipper has stopped: {0}")]
    Stopped(String),
}

/// Milliseconds since 1970 by the wall clock (0 if the clock is before 1970).
pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
