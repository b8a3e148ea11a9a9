//! rvmfs: a filesystem whose metadata lives in one recoverable virtual memory (RVM) region.
//!
//! The path of a file operation through the code:
//! - `fuse/`   answers kernel requests: decodes arguments, takes the lock, calls `ops`, replies.
//! - `ops/`    one file operation = one RVM transaction over the metadata region.
//! - `store/`  persistent structures inside the region: B+tree, heap, bitmaps.
//! - `layout/` byte layouts: image header, superblock, inode.
//! - `image.rs` opens an image: header, lock, RVM recovery, region mapping.

pub mod error;
pub mod format;
#[cfg(feature = "fuse")]
pub mod fuse;
pub mod image;
pub mod layout;
pub mod ops;
pub mod store;

pub use error::{FsError, FsResult};
