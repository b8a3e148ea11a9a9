//! The passes, one file each, in the order `check::check` runs them (e2fsck's numbering where
//! it fits). Each file holds its checks and the repairs of the problems it reports.
//!
//! | file | pass |
//! | --- | --- |
//! | `replay.rs` | log recovery before any check (in memory with -n) |
//! | `backup_sb.rs` | the superblock against its backup, before the filesystem opens (`-b`) |
//! | `error_record.rs` | the error record the daemon wrote after a storage error |
//! | `superblock.rs` | the superblock's layout |
//! | `trees.rs` | pass 0: B+tree structure of each tree |
//! | `inodes.rs` | pass 1: inode table against the inode bitmap, file types |
//! | `extents.rs` | pass 1b: extents, block owners, block counts |
//! | `dentries.rs` | pass 2: directory entries |
//! | `connectivity.rs` | pass 3: every directory reachable from the root, '..' right |
//! | `links.rs` | pass 4: link counts |
//! | `orphans.rs` | the orphan list |
//! | `xattrs.rs` | heap chunks of inodes: symlink targets, extended attributes |
//! | `free_space.rs` | pass 5: data bitmap and superblock counters |
//! | `heap.rs` | the heap: chunks inside it, none overlapping, free lists |
//! | `scrub.rs` | with -c, after the checks: every data block against its checksum |
//! | `objects.rs` | `object_data` images, after the checks: leaked data objects in the bucket |

pub mod backup_sb;
pub(crate) mod connectivity;
pub(crate) mod dentries;
pub mod error_record;
pub(crate) mod extents;
pub(crate) mod free_space;
pub(crate) mod heap;
pub(crate) mod inodes;
pub(crate) mod links;
pub mod objects;
pub(crate) mod orphans;
pub mod replay;
pub mod scrub;
pub(crate) mod superblock;
pub(crate) mod trees;
pub(crate) mod xattrs;
