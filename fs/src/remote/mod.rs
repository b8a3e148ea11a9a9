//! The object-store data tier of an `object_data` image (issue 14; docs/format.md section
//! 11): file data goes to local blocks first (dirty), is uploaded into immutable data objects
//! and then repointed to them (`REMOTE` extents); reads of `REMOTE` blocks come from the
//! bucket, checked.
//!
//! * [`session`]: the bucket, the conditional-write probe, the single-writer lease and its
//!   epoch, the watcher that stops commits when the lease is lost ([`Session`]).
//! * [`blocks`]: reading vblocks back checked, the memory cache, the dirty inodes ([`Blocks`]).
//! * [`cache`]: the clean cache in free local blocks, LRU, taken back by the allocator
//!   ([`LocalCache`]).
//! * [`full`]: writes when every local block is dirty (`-o cache_full=`, [`CacheFull`]).
//! * [`uploader`]: the upload thread: pack, upload create-only, repoint ([`Uploader`]).
//! * [`live`]: the objects a state points into and its watermark, for object collection.
//! * [`mount`]: what the daemon starts and stops for such an image ([`Remote`]).

pub mod blocks;
pub mod cache;
pub mod full;
pub mod live;
pub mod mount;
pub mod session;
pub mod uploader;

pub use blocks::Blocks;
pub use cache::{CacheStats, LocalCache};
pub use full::CacheFull;
pub use mount::Remote;
pub use session::{Access, Session, SessionError};
pub use uploader::Uploader;

/// Take `m` even if a holder panicked (every value behind these mutexes stays whole).
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// EIO for a failed object-store request, logged with what failed.
fn eio(what: impl std::fmt::Display) -> crate::FsError {
    log::error!("object store: {what}");
    crate::FsError::Io(std::io::Error::from_raw_os_error(libc::EIO))
}
