//! The image header: the first 4 KiB of an image, naming where every area lies.
//!
//! ```text
//! | header 4 KiB | RVM log (circular) | RVM segment = metadata region | data area (4 KiB blocks) |
//! ```

use bytemuck::{Pod, Zeroable};
use rvm_core::Area;

/// Magic bytes at offset 0 of every rvmfs image.
pub const MAGIC: [u8; 8] = *b"RVMFS\0\x01\x00";
/// On-disk format version this code reads and writes.
pub const VERSION: u32 = 1;
/// Bytes reserved for the header at the start of the image.
pub const HEADER_SIZE: u64 = 4096;

/// The image header (little-endian, `repr(C)`), protected by a CRC32C.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable, PartialEq, Eq)]
pub struct Header {
    pub magic: [u8; 8],
    pub version: u32,
    /// Data block size, bytes (4096).
    pub block_size: u32,
    pub uuid: [u8; 16],
    /// The RVM log area: byte offset and length within the image.
    pub log_offset: u64,
    pub log_len: u64,
    /// The RVM segment (metadata region): byte offset and length.
    pub segment_offset: u64,
    pub segment_len: u64,
    /// The data area: byte offset and number of blocks.
    pub data_offset: u64,
    pub data_blocks: u64,
    /// Creation time, seconds since the epoch.
    pub created: i64,
    /// Volume label, NUL-padded.
    pub label: [u8; 32],
    /// CRC32C of every byte before this field.
    pub crc: u32,
    pub _pad: u32,
}

/// Why a header was refused.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("not an rvmfs image (bad magic number)")]
    NotRvmfs,
    #[error("unsupported rvmfs format version {0} (this program reads version {VERSION})")]
    Version(u32),
    #[error("the image header is corrupt (checksum mismatch)")]
    Checksum,
    #[error("the image header is corrupt: {0}")]
    Geometry(#[from] AreaError),
}

/// What is wrong with the areas a header names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AreaError {
    #[error("block size is not 4096")]
    BlockSize,
    #[error("an area is empty or not 4 KiB aligned")]
    Unaligned,
    #[error("the image is shorter than its areas (truncated file?)")]
    Truncated,
    #[error("areas overlap or overflow")]
    Overlap,
}

impl Header {
    /// The CRC32C the header should carry.
    pub fn compute_crc(&self) -> u32 {
        let bytes = bytemuck::bytes_of(self);
        crc32c::crc32c(&bytes[..std::mem::offset_of!(Header, crc)])
    }

    /// Encode into the 4 KiB header block, CRC filled in.
    pub fn encode(&self) -> Vec<u8> {
        let mut h = *self;
        h.crc = h.compute_crc();
        let mut block = vec![0u8; HEADER_SIZE as usize];
        block[..std::mem::size_of::<Header>()].copy_from_slice(bytemuck::bytes_of(&h));
        block
    }

    /// Decode and validate a header block of an image of `image_len` bytes.
    pub fn decode(block: &[u8], image_len: u64) -> Result<Header, HeaderError> {
        if block.len() < std::mem::size_of::<Header>() || block[..8] != MAGIC {
            return Err(HeaderError::NotRvmfs);
        }
        let h: Header = bytemuck::pod_read_unaligned(&block[..std::mem::size_of::<Header>()]);
        if h.crc != h.compute_crc() {
            return Err(HeaderError::Checksum);
        }
        if h.version != VERSION {
            return Err(HeaderError::Version(h.version));
        }
        h.check_geometry(image_len)?;
        Ok(h)
    }

    fn check_geometry(&self, image_len: u64) -> Result<(), AreaError> {
        if self.block_size != super::BLOCK_SIZE as u32 {
            return Err(AreaError::BlockSize);
        }
        let aligned = [
            self.log_offset,
            self.log_len,
            self.segment_offset,
            self.segment_len,
            self.data_offset,
        ];
        if aligned.iter().any(|v| v % 4096 != 0) || self.log_len == 0 || self.segment_len == 0 {
            return Err(AreaError::Unaligned);
        }
        let data_end = self
            .data_blocks
            .checked_mul(super::BLOCK_SIZE)
            .and_then(|d| d.checked_add(self.data_offset));
        let ordered = self.log_offset >= HEADER_SIZE
            && self.segment_offset >= self.log_offset + self.log_len
            && self.data_offset >= self.segment_offset + self.segment_len;
        match data_end {
            Some(end) if ordered && end <= image_len => Ok(()),
            Some(_) if ordered => Err(AreaError::Truncated),
            _ => Err(AreaError::Overlap),
        }
    }

    pub fn log_area(&self) -> Area {
        Area {
            offset: self.log_offset,
            len: self.log_len,
        }
    }

    pub fn segment_area(&self) -> Area {
        Area {
            offset: self.segment_offset,
            len: self.segment_len,
        }
    }

    /// The UUID in its usual text form.
    pub fn uuid_string(&self) -> String {
        uuid::Uuid::from_bytes(self.uuid).hyphenated().to_string()
    }
}
