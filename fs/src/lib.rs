//! rvmfs: a filesystem whose metadata lives in one recoverable virtual memory (RVM) region.
//!
//! The path of a file operation through the code:
//! - `fuse/`   answers kernel requests: decodes arguments, takes the lock, calls `ops`, replies
//!   (only with the `fuse` feature, on by default; fsck and mkfs build without it).
//! - `ops/`    one file operation = one RVM transaction over the metadata region: the POSIX
//!   rules (errno of each case), calling `store` for the format.
//! - `store/`  the on-region format: B+tree, heap, bitmaps, and the four trees' keys and values
//!   (dentries, extent maps, xattrs, orphans).
//! - `layout/` byte layouts: image header, superblock, inode; planning an image's geometry.
//! - `remote/` the object-store data tier (`object_data` images): session and lease, upload,
//!   reads of blocks in the bucket.
//! - `image.rs` opens an image: header, lock, RVM recovery, region mapping; `format.rs` makes
//!   one; `resize.rs` grows or shrinks its data area.
//!
//! fsck and mkfs read the format through `layout` and `store` alone.

pub mod error;
pub mod format;
#[cfg(feature = "fuse")]
pub mod fuse;
pub mod image;
pub mod latency;
pub mod layout;
pub mod ops;
pub mod options;
pub mod remote;
pub mod resize;
pub mod store;

pub use error::{FsError, FsResult};
