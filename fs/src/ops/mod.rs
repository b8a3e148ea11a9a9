//! File operations. Each one that changes metadata runs as exactly one RVM transaction
//! (`Fs::transact`): it declares every byte it changes, commits as one redo record, and on any
//! error is aborted, restoring the region as it was (LRVM §4.1 restore mode). The format of
//! what they change (trees, keys, values) is `store`'s; operations hold the POSIX rules.

pub mod attr;
pub mod bitmap_guard;
pub mod cache_space;
pub mod data_log;
pub mod datasum;
pub mod discard;
pub mod errors;
pub mod extent;
pub mod file;
pub mod fs;
pub mod geo;
pub mod heap_advice;
pub mod inode;
pub mod logged_overwrite;
pub mod lookup;
pub mod mount;
pub mod namespace;
pub mod open;
pub mod orphan;
pub mod pending;
pub mod read;
pub mod shrinks;
pub mod space;
pub mod statfs;
pub mod write_plan;
pub mod xattr;

pub use data_log::{DataLog, DATA_LOG_BUDGET, DATA_LOG_MAX_WRITE};
pub use discard::Discard;
pub use errors::{ErrorPolicy, Errors};
pub use fs::{Durability, Fs, Op};
pub use geo::{Geo, Hints};
