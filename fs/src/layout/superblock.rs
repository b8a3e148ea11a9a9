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

/// The superblock (region offset 0; 0x2B0 bytes, little-endian `repr(C)`).
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
    /// Data blocks only root may allocate (0x128; `mkfs -m`, as ext4's `s_r_blocks_count`):
    /// statfs's `bavail` leaves them out, unprivileged writes get ENOSPC when only they are
    /// left. 0 (older images): no reserve.
    pub reserved_blocks: u64,
    /// Default commit interval, seconds (0x130; `tune -c`), applied when the mount command
    /// line gives no `commit=`; 0: the daemon's default (5 s).
    pub commit_interval: u32,
    /// Default error policy (0x134; `tune -e`, as ext4's `s_errors`): [`ERRORS_DEFAULT`],
    /// [`ERRORS_CONTINUE`], [`ERRORS_REMOUNT_RO`], [`ERRORS_PANIC`]; `-o errors=` overrides.
    pub errors: u32,
    /// Volume label (0x138; `mkfs -L`, `tune -L`), UTF-8, NUL-padded; all zero: none.
    pub label: [u8; LABEL_LEN],
    /// Default mount options (0x158; `tune -o`, as ext4's `s_mount_opts`), comma-separated
    /// text, NUL-padded; applied before the mount command line's.
    pub mount_opts: [u8; MOUNT_OPTS_LEN],
    /// Data blocks the data bitmap and the checksum table have room for (0x198; `resize`
    /// grows `data_blocks` up to it, as mke2fs's reserved GDT blocks bound resize2fs): mkfs
    /// sizes both for [`crate::layout::geometry::GROWTH_FACTOR`] x the image. 0 (older
    /// images): what the layout leaves room for ([`crate::resize::capacity`]).
    pub data_blocks_max: u64,
    /// Where the file data lives (0x1A0; incompat `object_data`, `mkfs.rvmfs --data`):
    /// `s3://BUCKET/PREFIX`, NUL-padded; all zero without the feature. Never a credential.
    pub data_url: [u8; DATA_URL_LEN],
    /// log2 of the blocks per data object (0x2A0; `object_data`, docs/format.md 11.4): 10 =
    /// 1024 blocks of 4096 bytes, 4 MiB objects. 0 without the feature.
    pub object_shift: u32,
    pub _pad_object: u32,
    /// The data-object watermark (0x2A8; `object_data`, docs/format.md 11.6): every data
    /// object whose id (`epoch << 32 | seq`) is below it was repointed, or given up, by a
    /// commit at or before this state; set to `epoch << 32` when a writer starts its
    /// uploader and past each object it repoints. 0 in older images (nothing known).
    pub object_watermark: u64,
}

/// Bytes of the data URL (`s3://BUCKET/PREFIX`; at most 255 used, so it ends in a NUL).
pub const DATA_URL_LEN: usize = 256;

/// Bytes of the volume label (longer labels are refused; ext4 has 16, XFS 12).
pub const LABEL_LEN: usize = 32;
/// Bytes of the default mount options (ext4's `s_mount_opts` has 64 too).
pub const MOUNT_OPTS_LEN: usize = 64;
/// `errors`: no policy stored, the daemon's default (remount-ro).
pub const ERRORS_DEFAULT: u32 = 0;
pub const ERRORS_CONTINUE: u32 = 1;
pub const ERRORS_REMOUNT_RO: u32 = 2;
pub const ERRORS_PANIC: u32 = 3;
/// The names of `errors` values 1..=3, as `-o errors=` spells them.
pub const ERRORS_NAMES: [&str; 3] = ["continue", "remount-ro", "panic"];

/// A NUL-padded text field (label, mount options) as a string: the bytes before the first
/// NUL, invalid UTF-8 replaced.
pub fn text_field(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// `text` as a NUL-padded field of `N` bytes; None if it is longer or holds a NUL.
pub fn to_text_field<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() > N || text.contains('\0') {
        return None;
    }
    let mut out = [0u8; N];
    out[..text.len()].copy_from_slice(text.as_bytes());
    Some(out)
}

/// A volume label for the superblock (`mkfs -L`, `tune -L`).
///
/// Errors: longer than [`LABEL_LEN`] bytes or holding a NUL, as a message.
pub fn parse_label(s: &str) -> Result<[u8; LABEL_LEN], String> {
    to_text_field(s).ok_or_else(|| {
        format!(
            "label '{s}' is {} bytes; at most {LABEL_LEN} bytes, without NUL",
            s.len()
        )
    })
}

impl Superblock {
    /// The volume label ("" if none).
    pub fn label(&self) -> String {
        text_field(&self.label)
    }
    /// The default mount options ("" if none).
    pub fn mount_opts(&self) -> String {
        text_field(&self.mount_opts)
    }
    /// The object store's URL (`object_data`), "" if none.
    pub fn data_url(&self) -> String {
        text_field(&self.data_url)
    }
    /// The stored error policy's name, None for [`ERRORS_DEFAULT`] (or an unknown value).
    pub fn errors_name(&self) -> Option<&'static str> {
        (self.errors as usize)
            .checked_sub(1)
            .and_then(|i| ERRORS_NAMES.get(i).copied())
    }
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
    pub const RESERVED_BLOCKS: u64 = offset_of!(Superblock, reserved_blocks) as u64;
    pub const COMMIT_INTERVAL: u64 = offset_of!(Superblock, commit_interval) as u64;
    pub const ERRORS: u64 = offset_of!(Superblock, errors) as u64;
    pub const LABEL: u64 = offset_of!(Superblock, label) as u64;
    pub const MOUNT_OPTS: u64 = offset_of!(Superblock, mount_opts) as u64;
    pub const DATA_BLOCKS: u64 = offset_of!(Superblock, data_blocks) as u64;
    pub const DATA_BLOCKS_MAX: u64 = offset_of!(Superblock, data_blocks_max) as u64;
    pub const DATA_URL: u64 = offset_of!(Superblock, data_url) as u64;
    pub const OBJECT_SHIFT: u64 = offset_of!(Superblock, object_shift) as u64;
    pub const OBJECT_WATERMARK: u64 = offset_of!(Superblock, object_watermark) as u64;
}
