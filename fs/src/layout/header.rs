//! The image header: the first 4 KiB of an image, naming where every area lies.
//!
//! ```text
//! | header 4 KiB | RVM log (circular) | RVM segment = metadata region | data area (4 KiB blocks) |
//! ```

use super::error_record::{ErrorRecord, ERROR_RECORD_OFFSET, ERROR_RECORD_SIZE};
use super::features::{describe, Features, Word};
use bytemuck::{Pod, Zeroable};
use rvm_core::Area;

/// Magic bytes at offset 0 of every rvmfs image.
pub const MAGIC: [u8; 8] = *b"RVMFS\0\x01\x00";
/// On-disk format version this code writes: 2 = with feature words. From now on formats
/// change by feature bits (`features`), not by version.
pub const VERSION: u32 = 2;
/// The first format, without feature words (read as all features off).
pub const VERSION_1: u32 = 1;
/// Bytes reserved for the header at the start of the image.
pub const HEADER_SIZE: u64 = 4096;

/// The image header (little-endian, `repr(C)`, 0x90 bytes), protected by two CRC32Cs: `crc`
/// over the first 0x78 bytes (a layout that never changes) and `features_crc` over the
/// feature words (version 2; zero in a version-1 header).
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
    /// Feature words (version 2; all zero in version 1).
    pub features: Features,
    /// CRC32C of `features` (bytes 0x80..0x8C); 0 in version 1.
    pub features_crc: u32,
}

/// Why a header was refused.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("not an rvmfs image (bad magic number)")]
    NotRvmfs,
    #[error("unsupported rvmfs format version {0} (this program reads versions 1 and {VERSION})")]
    Version(u32),
    #[error("the image header is corrupt (checksum mismatch)")]
    Checksum,
    #[error("the image header is corrupt (feature words' checksum mismatch)")]
    FeaturesChecksum,
    #[error(
        "the image uses features this program does not know (incompat: {}): \
         refusing it; use a newer rvmfs",
        describe(Word::Incompat, *.0)
    )]
    Incompat(u32),
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

    /// The CRC32C of the feature words (version 2).
    pub fn compute_features_crc(&self) -> u32 {
        crc32c::crc32c(bytemuck::bytes_of(&self.features))
    }

    /// Encode into the 4 KiB header block, CRCs filled in (a version-1 header keeps its
    /// feature words and their CRC zero, as version 1 wrote them).
    pub fn encode(&self) -> Vec<u8> {
        let mut h = *self;
        h.crc = h.compute_crc();
        if h.version == VERSION_1 {
            h.features = Features::default();
            h.features_crc = 0;
        } else {
            h.features_crc = h.compute_features_crc();
        }
        let mut block = vec![0u8; HEADER_SIZE as usize];
        block[..std::mem::size_of::<Header>()].copy_from_slice(bytemuck::bytes_of(&h));
        block
    }

    /// The 4 KiB header block of an image whose log is inside it, as on disk: the header
    /// ([`Header::encode`]) and the error record `error` at 0x100 (docs/format.md 2.1; zeros
    /// for none). The log shipper sends it with every snapshot (section 11.8), built from what
    /// the daemon decoded at open instead of reading the image again.
    pub fn encode_block(&self, error: Option<&ErrorRecord>) -> Vec<u8> {
        let mut block = self.encode();
        if let Some(e) = error {
            let at = ERROR_RECORD_OFFSET as usize;
            block[at..at + ERROR_RECORD_SIZE].copy_from_slice(&e.encode());
        }
        block
    }

    /// Decode and validate a header block of an image of `image_len` bytes: magic, CRC,
    /// version (1 or 2), the feature words' CRC and no unknown incompat feature (an unknown
    /// ro-compat feature is the opener's to handle: `Features::unknown_ro_compat`), geometry.
    pub fn decode(block: &[u8], image_len: u64) -> Result<Header, HeaderError> {
        if block.len() < std::mem::size_of::<Header>() || block[..8] != MAGIC {
            return Err(HeaderError::NotRvmfs);
        }
        let mut h: Header = bytemuck::pod_read_unaligned(&block[..std::mem::size_of::<Header>()]);
        if h.crc != h.compute_crc() {
            return Err(HeaderError::Checksum);
        }
        match h.version {
            VERSION_1 => {
                // Version 1 has no feature words: whatever lies there is not ours.
                h.features = Features::default();
                h.features_crc = 0;
            }
            VERSION if h.features_crc != h.compute_features_crc() => {
                return Err(HeaderError::FeaturesChecksum)
            }
            VERSION => {}
            v => return Err(HeaderError::Version(v)),
        }
        if h.features.unknown_incompat() != 0 {
            return Err(HeaderError::Incompat(h.features.unknown_incompat()));
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

/// Parse a UUID as mke2fs -U and tune2fs -U take it: a UUID, or `random` (version 4),
/// `time` (version 7) or `clear` (the nil UUID).
///
/// Errors: anything else, as a message.
pub fn parse_uuid(s: &str) -> Result<uuid::Uuid, String> {
    match s {
        "random" => Ok(uuid::Uuid::new_v4()),
        "time" => Ok(uuid::Uuid::now_v7()),
        "clear" => Ok(uuid::Uuid::nil()),
        _ => uuid::Uuid::parse_str(s)
            .map_err(|e| format!("'{s}' is not a UUID ({e}); give one, or random, time or clear")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::geometry::{plan, Plan};

    fn fresh() -> (Header, u64) {
        let size = 64 << 20;
        let p = Plan {
            size,
            inodes: None,
            log: None,
        };
        (plan(p, [7; 16], 0).expect("plan").0, size)
    }

    #[test]
    fn version_2_round_trips_its_feature_words() {
        let (mut h, size) = fresh();
        h.features.incompat = crate::layout::features::SUPPORTED_INCOMPAT;
        h.features.compat = 1 << 9; // unknown compat bits are ignored
        let block = h.encode();
        let d = Header::decode(&block, size).expect("decode");
        assert_eq!(d.features, h.features);
        assert_eq!(&block[0x80..0x8c], bytemuck::bytes_of(&h.features));
    }

    #[test]
    fn version_1_reads_as_no_features() {
        let (mut h, size) = fresh();
        h.version = VERSION_1;
        h.features.ro_compat = 3;
        let mut block = h.encode();
        assert!(block[0x80..0x90].iter().all(|&b| b == 0));
        block[0x84] = 0xff; // not a feature word in version 1
        let d = Header::decode(&block, size).expect("decode");
        assert_eq!(d.features, Features::default());
    }

    #[test]
    fn unknown_incompat_and_bad_feature_crc_are_refused() {
        let (mut h, size) = fresh();
        h.features.incompat = 1 << 30;
        let block = h.encode();
        assert!(matches!(
            Header::decode(&block, size),
            Err(HeaderError::Incompat(b)) if b == 1 << 30
        ));
        let msg = HeaderError::Incompat(1 << 30).to_string();
        assert!(msg.contains("bit 30"), "{msg}");
        h.features.incompat = 0;
        let mut block = h.encode();
        block[0x80] ^= 1;
        assert!(matches!(
            Header::decode(&block, size),
            Err(HeaderError::FeaturesChecksum)
        ));
    }

    #[test]
    fn the_block_holds_the_header_and_the_error_record() {
        let (h, _size) = fresh();
        assert_eq!(h.encode_block(None), h.encode());
        let e = ErrorRecord {
            count: 2,
            errno: 5,
            first_time: 1,
            last_time: 2,
            inode: 9,
            op: "write".into(),
            message: "EIO".into(),
        };
        let block = h.encode_block(Some(&e));
        assert_eq!(&block[..0x100], &h.encode()[..0x100], "the header's bytes");
        let at = ERROR_RECORD_OFFSET as usize;
        let record: &[u8; ERROR_RECORD_SIZE] =
            block[at..at + ERROR_RECORD_SIZE].try_into().unwrap();
        assert_eq!(ErrorRecord::decode(record).expect("decode"), Some(e));
    }

    #[test]
    fn unknown_ro_compat_decodes() {
        let (mut h, size) = fresh();
        h.features.ro_compat = 1 << 31;
        let d = Header::decode(&h.encode(), size).expect("decode");
        assert_eq!(d.features.unknown_ro_compat(), 1 << 31);
    }
}
