//! Byte layouts of the image: header, superblock, inode, feature flags; helpers to read and
//! write them.
//!
//! Every on-disk integer is little-endian. The `repr(C)` structures here are cast to and from
//! bytes with `bytemuck` (native byte order), which is little-endian only on a little-endian
//! machine: `pod` refuses to compile for any other (the rest of the format, B+tree nodes and
//! the log, is encoded with explicit `to_le_bytes`/`from_le_bytes`).

pub mod error_record;
pub mod external_log;
pub mod features;
pub mod geometry;
pub mod header;
pub mod inode;
pub mod pod;
pub mod superblock;
pub mod superblock_backup;

/// Size of a data block and of a B+tree node, bytes.
pub const BLOCK_SIZE: u64 = 4096;
