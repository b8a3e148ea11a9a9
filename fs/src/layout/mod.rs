//! Byte layouts of the image: header, superblock, inode; helpers to read and write them.

pub mod error_record;
pub mod geometry;
pub mod header;
pub mod inode;
pub mod pod;
pub mod superblock;

/// Size of a data block and of a B+tree node, bytes.
pub const BLOCK_SIZE: u64 = 4096;
