//! The superblock: the first bytes of the metadata region.
//!
//! It names where every structure of the region lies, holds the counters statfs reports, the
//! roots of the four B+trees, and the recoverable heap's free lists.

use super::features::Features;
use bytemuck::{Pod, Zeroable};
use std::mem::offset_of;

/// Magic number of the superblock ("RVMFSSB1").
pub const SB_MAGIC: u64 = u64::from_le_bytes(*b"RVMFSSB1");
/// Number of heap size classes: 32, 64, ..., 65536 bytes.
pub const HEAP_CLASSES: usize = 12;
/// Bytes reserved for the superblock at region offset 0.
pub const SB_SIZE: u64 = 4096;
/// Inode number of the root directory.
pub const ROOT_INO: u64 = 1;

/// The superblock (region offset 0; 0x120 bytes, little-endian `repr(C)`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Superblock {
    pub magic: u64,
    pub version: u32,
    /// 1 while mounted read-write; 0 after a clean unmount.
    pub mounted: u32,
    pub inode_count: u64,
    pub inodes_used: u64,
    pub data_blocks: u64,
    pub blocks_used: u64,
    /// Region offsets, bytes.
    pub inode_bitmap: u64,
    pub inode_table: u64,
    pub data_bitmap: u64,
    pub heap_start: u64,
    pub heap_end: u64,
    /// First never-allocated heap byte (bump pointer).
    pub heap_top: u64,
    /// Heads of the heap's per-class free lists (region offsets, 0 = empty).
    pub heap_free: [u64; HEAP_CLASSES],
    /// Roots of the B+trees (region offsets of nodes, 0 = empty tree).
    pub dentry_root: u64,
    pub extent_root: u64,
    pub xattr_root: u64,
    pub orphan_root: u64,
    /// Next inode generation number (NFS-style reuse detection).
    pub next_generation: u64,
    pub mount_count: u64,
    pub last_mount: i64,
    pub last_check: i64,
    /// The header's feature words, mirrored (0x100; zero in a version-1 image).
    pub features: Features,
    pub _pad: u32,
    /// Secret key of the keyed name hash (0x110; `INCOMPAT_KEYED_HASH`, else zero).
    pub hash_key: [u8; 16],
    /// Region offset of the data checksum table (0x120; `store::csum`): meaningful with the
    /// ro-compat feature `data_csum`, else 0 (images made before checksums).
    pub csum_table: u64,
}

/// Region offsets of superblock fields, for transactions that change one field.
pub mod field {
    use super::*;
    pub const MOUNTED: u64 = offset_of!(Superblock, mounted) as u64;
    pub const INODES_USED: u64 = offset_of!(Superblock, inodes_used) as u64;
    pub const BLOCKS_USED: u64 = offset_of!(Superblock, blocks_used) as u64;
    pub const HEAP_TOP: u64 = offset_of!(Superblock, heap_top) as u64;
    pub const HEAP_FREE: u64 = offset_of!(Superblock, heap_free) as u64;
    pub const DENTRY_ROOT: u64 = offset_of!(Superblock, dentry_root) as u64;
    pub const EXTENT_ROOT: u64 = offset_of!(Superblock, extent_root) as u64;
    pub const XATTR_ROOT: u64 = offset_of!(Superblock, xattr_root) as u64;
    pub const ORPHAN_ROOT: u64 = offset_of!(Superblock, orphan_root) as u64;
    pub const NEXT_GENERATION: u64 = offset_of!(Superblock, next_generation) as u64;
    pub const MOUNT_COUNT: u64 = offset_of!(Superblock, mount_count) as u64;
    pub const LAST_MOUNT: u64 = offset_of!(Superblock, last_mount) as u64;
    pub const LAST_CHECK: u64 = offset_of!(Superblock, last_check) as u64;
    pub const FEATURES: u64 = offset_of!(Superblock, features) as u64;
    pub const HASH_KEY: u64 = offset_of!(Superblock, hash_key) as u64;
}
