//! Planning an image: where the log, the segment and the data area go, and the region's
//! inner layout, from the image size, the inode count and the log size.

use super::features::MKFS_DEFAULT;
use super::header::{Header, HEADER_SIZE, MAGIC, VERSION};
use super::inode::INODE_SIZE;
use super::superblock::{Superblock, SB_MAGIC, SB_SIZE};
use super::BLOCK_SIZE;

/// Recoverable heap bytes planned per inode: names, B+tree nodes, symlink targets, xattrs.
pub const HEAP_PER_INODE: u64 = 1024;
/// Smallest image mkfs accepts, bytes.
pub const MIN_IMAGE: u64 = 4 << 20;
/// How many times its size an image can grow (`rvmfs-admin resize`): mkfs sizes the data
/// bitmap and the checksum table for this many times the image's blocks (1 bit + 4 bytes per
/// 4 KiB block: 0.1 % of the image per unit of growth), as mke2fs reserves GDT blocks for
/// resize2fs. The heap follows them and holds region offsets, so they cannot grow later.
pub const GROWTH_FACTOR: u64 = 8;
/// The reserve stops at this many data blocks (16 TiB, mke2fs's limit for its reserve too):
/// images of 16 TiB or more reserve no growth.
pub const GROWTH_LIMIT_BLOCKS: u64 = 1 << 32;

/// Data blocks the free-space map of an image of `max_blocks` blocks is sized for.
pub fn growth_capacity(max_blocks: u64) -> u64 {
    max_blocks
        .saturating_mul(GROWTH_FACTOR)
        .min(GROWTH_LIMIT_BLOCKS)
        .max(max_blocks)
}

/// What mkfs asks for.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Image size, bytes.
    pub size: u64,
    /// Inode count; None = one per 16 KiB of image (as mke2fs's default bytes-per-inode).
    pub inodes: Option<u64>,
    /// Log size, bytes; None = size/32 clamped to 4 MiB..256 MiB.
    pub log: Option<u64>,
}

/// Why an image cannot be laid out (the messages are mkfs.rvmfs's, after mke2fs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The image is smaller than `MIN_IMAGE`.
    #[error("image size {size} bytes is below the minimum of {} MiB", MIN_IMAGE >> 20)]
    ImageTooSmall { size: u64 },
    /// The log asked for is below 1 MiB.
    #[error("the log must be at least 1 MiB")]
    LogTooSmall,
    /// Header, log and metadata region leave fewer than 16 data blocks.
    #[error(
        "image of {} MiB too small for {inodes} inodes and a {} MiB log (metadata needs {} MiB): \
         use a larger size or fewer inodes (-N)",
        .size >> 20,
        .log_len >> 20,
        .metadata >> 20
    )]
    MetadataDoesNotFit {
        /// Image size, bytes.
        size: u64,
        inodes: u64,
        /// Log size, bytes.
        log_len: u64,
        /// Bytes before the data area (header, log, metadata region).
        metadata: u64,
    },
}

fn round_up(v: u64, to: u64) -> u64 {
    v.div_ceil(to) * to
}

/// Lay out an image. Errors name what does not fit.
pub fn plan(p: Plan, uuid: [u8; 16], created: i64) -> Result<(Header, Superblock), PlanError> {
    if p.size < MIN_IMAGE {
        return Err(PlanError::ImageTooSmall { size: p.size });
    }
    let inodes = p.inodes.unwrap_or(p.size / 16384).clamp(16, 1 << 32);
    let log_len = round_up(
        p.log.unwrap_or((p.size / 32).clamp(4 << 20, 256 << 20)),
        4096,
    );
    if log_len < (1 << 20) {
        return Err(PlanError::LogTooSmall);
    }
    // Data blocks are what remains after header, log and segment; the segment's data bitmap
    // depends on the data block count, so bound it by the whole image, times the growth
    // `resize` may ask for.
    let capacity = growth_capacity(p.size / BLOCK_SIZE);
    let region = region_layout(inodes, capacity);
    let log_offset = HEADER_SIZE;
    let segment_offset = log_offset + log_len;
    let data_offset = segment_offset + region.segment_len;
    if data_offset + 16 * BLOCK_SIZE > p.size {
        return Err(PlanError::MetadataDoesNotFit {
            size: p.size,
            inodes,
            log_len,
            metadata: data_offset,
        });
    }
    let data_blocks = (p.size - data_offset) / BLOCK_SIZE;
    let header = Header {
        magic: MAGIC,
        version: VERSION,
        block_size: BLOCK_SIZE as u32,
        uuid,
        log_offset,
        log_len,
        segment_offset,
        segment_len: region.segment_len,
        data_offset,
        data_blocks,
        created,
        label: [0; 32],
        crc: 0,
        _pad: 0,
        features: MKFS_DEFAULT,
        features_crc: 0,
    };
    let sb = new_superblock(&region, inodes, data_blocks, capacity, created);
    Ok((header, sb))
}

/// Where the metadata region's structures start (byte offsets in the region), and its length.
struct RegionLayout {
    inode_bitmap: u64,
    inode_table: u64,
    data_bitmap: u64,
    csum_table: u64,
    heap_start: u64,
    heap_end: u64,
    segment_len: u64,
}

/// The region of `inodes` inodes whose data bitmap and checksum table cover `capacity` data
/// blocks: superblock, inode bitmap, inode table, data bitmap, checksum table, heap, and the
/// backup superblock in its last 4 KiB (`superblock_backup`).
fn region_layout(inodes: u64, capacity: u64) -> RegionLayout {
    let inode_bitmap = SB_SIZE;
    let inode_table = inode_bitmap + round_up(inodes.div_ceil(8), 4096);
    let data_bitmap = inode_table + round_up(inodes * INODE_SIZE, 4096);
    let csum_table = data_bitmap + round_up(capacity.div_ceil(8), 4096);
    let heap_start = csum_table + crate::store::csum::table_len(capacity);
    let heap_end = heap_start + round_up(inodes * HEAP_PER_INODE, 4096).max(1 << 20);
    RegionLayout {
        inode_bitmap,
        inode_table,
        data_bitmap,
        csum_table,
        heap_start,
        heap_end,
        segment_len: heap_end + SB_SIZE,
    }
}

/// The superblock of a new image laid out as `r`: nothing used yet, the mkfs default
/// features (new images checksum their data, `store::csum`, and key their name hash).
fn new_superblock(
    r: &RegionLayout,
    inodes: u64,
    data_blocks: u64,
    capacity: u64,
    created: i64,
) -> Superblock {
    Superblock {
        magic: SB_MAGIC,
        version: VERSION,
        mounted: 0,
        inode_count: inodes,
        inodes_used: 0,
        data_blocks,
        blocks_used: 0,
        inode_bitmap: r.inode_bitmap,
        inode_table: r.inode_table,
        data_bitmap: r.data_bitmap,
        heap_start: r.heap_start,
        heap_end: r.heap_end,
        heap_top: r.heap_start,
        heap_free: [0; super::superblock::HEAP_CLASSES],
        dentry_root: 0,
        extent_root: 0,
        xattr_root: 0,
        orphan_root: 0,
        next_generation: 1,
        mount_count: 0,
        last_mount: 0,
        last_check: created,
        features: MKFS_DEFAULT,
        _pad: 0,
        hash_key: [0; 16],
        csum_table: r.csum_table,
        reserved_blocks: 0,
        commit_interval: 0,
        errors: 0,
        label: [0; super::superblock::LABEL_LEN],
        mount_opts: [0; super::superblock::MOUNT_OPTS_LEN],
        data_blocks_max: capacity,
        data_url: [0; super::superblock::DATA_URL_LEN],
        object_shift: 0,
        _pad_object: 0,
        object_watermark: 0,
    }
}
