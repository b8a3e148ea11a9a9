//! Resizing an image's data area (resize2fs, xfs_growfs): grow it into space added at the end
//! of the image file or device, offline or while mounted, and shrink it offline when the
//! blocks past the new end are free.
//!
//! ```text
//! image:  | header | log | region: sb | inode bitmap | inode table | data bitmap | csum | heap | data area ... |
//!                                                                   <-- sized at mkfs -->        grows / shrinks here
//! ```
//! What changes: the superblock's `data_blocks` (and `reserved_blocks`, scaled to keep root's
//! share), in one RVM transaction flushed to the log, and the header's `data_blocks`. The data
//! bitmap and the checksum table are indexed by data block and lie before the heap, whose
//! nodes hold region offsets, so they cannot move or grow after mkfs: mkfs sizes them for
//! [`GROWTH_FACTOR`](crate::layout::geometry::GROWTH_FACTOR) x the image ([`capacity`]; older images: what their layout leaves, about
//! the size of the log and region), and growth stops there, as resize2fs stops at the GDT
//! blocks mke2fs reserved. The inode table cannot grow for the same reason ([`INODES_FIXED`]).
//!
//! Order, so a crash at any point leaves a consistent image (the superblock's count is what
//! the filesystem uses; the header's may be larger, never smaller): growing writes the header
//! first, then commits the superblock; shrinking commits the superblock, then writes the
//! header, and the caller cuts the file last.

use crate::error::FsError;
use crate::layout::header::Header;
use crate::layout::pod;
use crate::layout::superblock::{field, Superblock};
use crate::layout::BLOCK_SIZE;
use crate::ops::Fs;
use crate::store::{csum, superblock};

/// Fewest data blocks an image may have (as mkfs).
pub const MIN_DATA_BLOCKS: u64 = 16;

/// Why the inode count does not change with the size (printed by `rvmfs-admin resize`).
pub const INODES_FIXED: &str = "the inode count stays as mkfs set it (-N): the inode table \
     lies between the inode bitmap and the data bitmap at fixed region offsets, before the \
     heap whose nodes point into the region, so it has no room to grow";

/// Why a resize was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ResizeError {
    #[error(
        "{size} bytes leaves fewer than {MIN_DATA_BLOCKS} data blocks after the metadata: \
         the smallest size is {min} bytes"
    )]
    TooSmall { size: u64, min: u64 },
    #[error(
        "{size} bytes is past the growth this image has room for: its data bitmap and \
         checksum table hold {capacity} blocks, so at most {max} bytes{}",
        if *.reserved { "" } else { " (an image made before mkfs reserved room for growth: \
         it can grow only within what its layout left; mkfs.rvmfs of today reserves room for \
         8 times the size at mkfs)" }
    )]
    PastCapacity {
        size: u64,
        capacity: u64,
        max: u64,
        /// The superblock records the capacity mkfs reserved (`data_blocks_max`).
        reserved: bool,
    },
    #[error("{blocks} blocks in use past the new end (block {end} on): cannot shrink")]
    InUse { blocks: u64, end: u64 },
    #[error("the image is smaller than {need} bytes: extend the file or device first")]
    ImageTooShort { need: u64 },
    #[error("the filesystem is read-only")]
    ReadOnly,
    #[error("writing the image: {0}")]
    Header(std::io::Error),
    #[error("changing the superblock: {0}")]
    Fs(#[from] FsError),
}

/// What a resize did (sizes in bytes of the whole image, counts in 4 KiB data blocks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    pub old_blocks: u64,
    pub new_blocks: u64,
    pub old_size: u64,
    pub new_size: u64,
    /// Data blocks the free-space map has room for.
    pub capacity: u64,
}

/// Data blocks the data bitmap and the checksum table of `sb`'s image have room for: the
/// room between them and the next area, bounded by `data_blocks_max` when mkfs recorded it.
pub fn capacity(sb: &Superblock) -> u64 {
    let has_csum = sb
        .features
        .has_ro_compat(crate::layout::features::RO_COMPAT_DATA_CSUM);
    let bitmap_end = if has_csum {
        sb.csum_table
    } else {
        sb.heap_start
    };
    let bits = bitmap_end.saturating_sub(sb.data_bitmap).saturating_mul(8);
    let slots = match has_csum {
        true => sb.heap_start.saturating_sub(sb.csum_table) / csum::SLOT,
        false => u64::MAX,
    };
    let room = bits.min(slots);
    match sb.data_blocks_max {
        0 => room,
        max => room.min(max),
    }
}

/// Image size in bytes that holds `blocks` data blocks.
pub fn size_of(header: &Header, blocks: u64) -> u64 {
    header.data_offset + blocks * BLOCK_SIZE
}

/// Data blocks an image of `size` bytes holds, checked against the minimum and [`capacity`].
///
/// Errors: `TooSmall`, `PastCapacity`.
pub fn blocks_for(header: &Header, sb: &Superblock, size: u64) -> Result<u64, ResizeError> {
    let min = size_of(header, MIN_DATA_BLOCKS);
    if size < min {
        return Err(ResizeError::TooSmall { size, min });
    }
    let blocks = (size - header.data_offset) / BLOCK_SIZE;
    let cap = capacity(sb);
    if blocks > cap {
        return Err(ResizeError::PastCapacity {
            size,
            capacity: cap,
            max: size_of(header, cap),
            reserved: sb.data_blocks_max != 0,
        });
    }
    Ok(blocks)
}

/// Set bits of the data bitmap at region offset `at` in [from, to).
fn used_in(bytes: &[u8], at: u64, from: u64, to: u64) -> Result<u64, FsError> {
    let mut used = 0;
    for b in from..to {
        used += crate::store::bitmap::test(bytes, at, b)? as u64;
    }
    Ok(used)
}

/// Resize the data area of the open filesystem `fs` so the image is `size` bytes (rounded down
/// to a block): offline (`rvmfs-admin resize`) or from the daemon (`rvmfs.resize`). Growing
/// needs the image already that large (the caller extends the file; a device must have been
/// grown); shrinking needs the blocks past the new end free, and the caller cuts the file
/// after. The change is durable when this returns. See the module doc for the order.
///
/// Errors: [`ResizeError`]: refused (nothing changed) or the failed write.
pub fn resize(fs: &mut Fs, size: u64) -> Result<Change, ResizeError> {
    if fs.rvm.options().read_only {
        return Err(ResizeError::ReadOnly);
    }
    let sb = superblock(fs.bytes())?;
    let new_blocks = blocks_for(&fs.header, &sb, size)?;
    let old_blocks = sb.data_blocks;
    let change = Change {
        old_blocks,
        new_blocks,
        old_size: size_of(&fs.header, old_blocks),
        new_size: size_of(&fs.header, new_blocks),
        capacity: capacity(&sb),
    };
    if new_blocks > old_blocks {
        let mut last = [0u8; 1];
        if fs
            .geo
            .image
            .read_at(&mut last, change.new_size - 1)
            .is_err()
        {
            return Err(ResizeError::ImageTooShort {
                need: change.new_size,
            });
        }
        set_header_blocks(fs, new_blocks)?;
        commit_superblock(fs, &sb, new_blocks)?;
    } else if new_blocks < old_blocks {
        let used = used_in(fs.bytes(), sb.data_bitmap, new_blocks, old_blocks)?;
        if used > 0 {
            return Err(ResizeError::InUse {
                blocks: used,
                end: new_blocks,
            });
        }
        commit_superblock(fs, &sb, new_blocks)?;
        set_header_blocks(fs, new_blocks)?;
    }
    Ok(change)
}

/// Rewrite the header with `blocks` data blocks (synced).
fn set_header_blocks(fs: &mut Fs, blocks: u64) -> Result<(), ResizeError> {
    let header = Header {
        data_blocks: blocks,
        ..fs.header
    };
    crate::image::write_header(&*fs.geo.image, &header).map_err(ResizeError::Header)?;
    fs.header = header;
    Ok(())
}

/// One transaction: `data_blocks` = `blocks`, the root reserve scaled to it; flushed to the
/// log; then the mounted state (`Geo`, the checksum table's bound) follows.
fn commit_superblock(fs: &mut Fs, sb: &Superblock, blocks: u64) -> Result<(), ResizeError> {
    let reserved = (sb.reserved_blocks as u128 * blocks as u128 / sb.data_blocks.max(1) as u128)
        .min(blocks as u128) as u64;
    fs.transact_on("resize", 0, |op| {
        pod::put(&mut op.tx, field::DATA_BLOCKS, &blocks)?;
        pod::put(&mut op.tx, field::RESERVED_BLOCKS, &reserved)?;
        Ok(())
    })?;
    fs.rvm.flush().map_err(FsError::from)?;
    let new_sb = superblock(fs.bytes())?;
    fs.geo.data_blocks = blocks;
    fs.geo.csums = csum::Table::of(&new_sb)?;
    if fs.hints.next_block >= blocks {
        fs.hints.next_block = 0;
    }
    Ok(())
}

/// Make the image at `path` `size` bytes long for a resize to that size: a regular file is
/// extended (sparse, as mkfs leaves the data area) or, after a shrink, cut; a block device is
/// left as it is and must be at least `size` bytes (grow the device first, as with lvextend
/// before resize2fs).
///
/// Errors: the file's I/O error; `ImageTooShort` for a smaller device.
pub fn set_image_len(path: &std::path::Path, size: u64) -> Result<(), ResizeError> {
    use std::io::{Seek, SeekFrom};
    let io = ResizeError::Header;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io)?;
    if file.metadata().map_err(io)?.is_file() {
        return file.set_len(size).and_then(|_| file.sync_all()).map_err(io);
    }
    if file.seek(SeekFrom::End(0)).map_err(io)? < size {
        return Err(ResizeError::ImageTooShort { need: size });
    }
    Ok(())
}
