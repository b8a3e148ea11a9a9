//! The external log device (`mkfs.rvmfs -J device=`, as ext4's `mke2fs -J device=` and XFS's
//! `mkfs.xfs -l logdev=`): the RVM redo log on another file or block device, bound to the
//! image by UUID. Two pieces, both little-endian, encoded by hand, each with a CRC32C:
//!
//! The image's **log binding** at image offset 0x200 (512 bytes of the header block; the
//! image's incompat feature `external_log` says it is there):
//! ```text
//! 0x00 magic "RVMFSXLB" | 0x08 log_uuid [16] | 0x18 path [480] (NUL-padded) | 0x1F8 crc u32 | 0x1FC 0
//! ```
//! The log device's **log header** at its offset 0 (a 4 KiB block, 0x50 bytes used); the
//! RVM log area (status block and record space, docs/format.md section 3) follows:
//! ```text
//! 0x00 magic "RVMFSLOG" | 0x08 version u32 (1) | 0x0C block_size u32 (4096)
//! 0x10 image_uuid [16] | 0x20 log_uuid [16] | 0x30 log_offset u64 | 0x38 log_len u64
//! 0x40 created i64 | 0x48 crc u32 | 0x4C 0
//! ```

use rvm_core::Area;

/// Image offset of the log binding (after the error record, inside the header block).
pub const BINDING_OFFSET: u64 = 0x200;
/// Bytes of the log binding.
pub const BINDING_SIZE: usize = 0x200;
/// Magic of the log binding.
pub const BINDING_MAGIC: [u8; 8] = *b"RVMFSXLB";
/// Bytes of the recorded path (its longest is one less: NUL-terminated).
pub const PATH_LEN: usize = 480;
const BINDING_CRC_AT: usize = 0x1F8;

/// Magic at offset 0 of an external log device.
pub const LOG_MAGIC: [u8; 8] = *b"RVMFSLOG";
/// Version of the log header this code writes and reads.
pub const LOG_VERSION: u32 = 1;
/// Bytes of the log header block; the log area starts here.
pub const LOG_HEADER_SIZE: u64 = 4096;
const LOG_CRC_AT: usize = 0x48;

/// The log size for an image of `image_size` bytes when none is asked for (`mkfs.rvmfs -J
/// device=` on a new or empty file, `rvmfs-admin restore --logdev`): as the in-image log,
/// image size / 32, 4 MiB to 256 MiB, a multiple of 4 KiB; bytes of the whole device,
/// header included.
pub fn default_log_len(image_size: u64) -> u64 {
    (image_size / 32).clamp(4 << 20, 256 << 20) / 4096 * 4096
}

/// What the image records about its external log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogBinding {
    /// The log device's own UUID (its header's `log_uuid`).
    pub log_uuid: [u8; 16],
    /// The log's path as mkfs was given it, made absolute.
    pub path: String,
}

/// The header of an external log device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogHeader {
    /// UUID of the image this log belongs to.
    pub image_uuid: [u8; 16],
    /// This log's own UUID.
    pub log_uuid: [u8; 16],
    /// The RVM log area inside the device: byte offset (4096) and length (bytes, 4 KiB
    /// multiple).
    pub log: Area,
    /// Format time, seconds since the Unix epoch.
    pub created: i64,
}

/// Why the bytes are not a valid binding or log header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExternalLogError {
    #[error("not an rvmfs external log (bad magic number)")]
    NotALog,
    #[error("the external log's header is corrupt (checksum mismatch)")]
    Checksum,
    #[error("unsupported external log version {0} (this program reads version {LOG_VERSION})")]
    Version(u32),
    #[error("the external log's header names a bad log area (offset {0}, length {1})")]
    Area(u64, u64),
    #[error("the image's record of its external log is corrupt (bad magic or checksum)")]
    Binding,
    #[error("the external log's path is longer than {} bytes", PATH_LEN - 1)]
    PathTooLong,
}

fn crc_ok(b: &[u8], at: usize) -> bool {
    b[at..at + 4] == crc32c::crc32c(&b[..at]).to_le_bytes()
}

fn put_crc(b: &mut [u8], at: usize) {
    let crc = crc32c::crc32c(&b[..at]);
    b[at..at + 4].copy_from_slice(&crc.to_le_bytes());
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

fn uuid_at(b: &[u8], at: usize) -> [u8; 16] {
    let mut v = [0u8; 16];
    v.copy_from_slice(&b[at..at + 16]);
    v
}

impl LogBinding {
    /// The 512 bytes to write at [`BINDING_OFFSET`].
    ///
    /// Errors: [`ExternalLogError::PathTooLong`].
    pub fn encode(&self) -> Result<[u8; BINDING_SIZE], ExternalLogError> {
        if self.path.len() >= PATH_LEN {
            return Err(ExternalLogError::PathTooLong);
        }
        let mut b = [0u8; BINDING_SIZE];
        b[..8].copy_from_slice(&BINDING_MAGIC);
        b[0x08..0x18].copy_from_slice(&self.log_uuid);
        b[0x18..0x18 + self.path.len()].copy_from_slice(self.path.as_bytes());
        put_crc(&mut b, BINDING_CRC_AT);
        Ok(b)
    }

    /// Decode the bytes at [`BINDING_OFFSET`].
    ///
    /// Errors: [`ExternalLogError::Binding`] for a bad magic or CRC.
    pub fn decode(b: &[u8; BINDING_SIZE]) -> Result<LogBinding, ExternalLogError> {
        if b[..8] != BINDING_MAGIC || !crc_ok(b, BINDING_CRC_AT) {
            return Err(ExternalLogError::Binding);
        }
        let path = &b[0x18..0x18 + PATH_LEN];
        let end = path.iter().position(|&c| c == 0).unwrap_or(PATH_LEN);
        Ok(LogBinding {
            log_uuid: uuid_at(b, 0x08),
            path: String::from_utf8_lossy(&path[..end]).into_owned(),
        })
    }
}

impl LogHeader {
    /// A header for a log device of `device_len` bytes: the log area is everything after
    /// the header block, rounded down to 4 KiB.
    pub fn new(image_uuid: [u8; 16], log_uuid: [u8; 16], device_len: u64, created: i64) -> Self {
        let len = device_len.saturating_sub(LOG_HEADER_SIZE) / 4096 * 4096;
        LogHeader {
            image_uuid,
            log_uuid,
            log: Area {
                offset: LOG_HEADER_SIZE,
                len,
            },
            created,
        }
    }

    /// The 4 KiB block to write at offset 0 of the log device.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; LOG_HEADER_SIZE as usize];
        b[..8].copy_from_slice(&LOG_MAGIC);
        b[0x08..0x0C].copy_from_slice(&LOG_VERSION.to_le_bytes());
        b[0x0C..0x10].copy_from_slice(&4096u32.to_le_bytes());
        b[0x10..0x20].copy_from_slice(&self.image_uuid);
        b[0x20..0x30].copy_from_slice(&self.log_uuid);
        b[0x30..0x38].copy_from_slice(&self.log.offset.to_le_bytes());
        b[0x38..0x40].copy_from_slice(&self.log.len.to_le_bytes());
        b[0x40..0x48].copy_from_slice(&self.created.to_le_bytes());
        put_crc(&mut b, LOG_CRC_AT);
        b
    }

    /// Decode the first 0x50 bytes of a log device of `device_len` bytes.
    ///
    /// Errors: [`ExternalLogError`] for a bad magic, CRC, version, or a log area that is
    /// unaligned, under 12 KiB or past the device's end.
    pub fn decode(b: &[u8], device_len: u64) -> Result<LogHeader, ExternalLogError> {
        if b.len() < 0x50 || b[..8] != LOG_MAGIC {
            return Err(ExternalLogError::NotALog);
        }
        if !crc_ok(b, LOG_CRC_AT) {
            return Err(ExternalLogError::Checksum);
        }
        let version = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
        if version != LOG_VERSION {
            return Err(ExternalLogError::Version(version));
        }
        let log = Area {
            offset: u64_at(b, 0x30),
            len: u64_at(b, 0x38),
        };
        let fits = log.offset >= LOG_HEADER_SIZE
            && log
                .offset
                .checked_add(log.len)
                .is_some_and(|e| e <= device_len);
        if log.offset % 4096 != 0 || log.len % 4096 != 0 || log.len < 12 << 10 || !fits {
            return Err(ExternalLogError::Area(log.offset, log.len));
        }
        Ok(LogHeader {
            image_uuid: uuid_at(b, 0x10),
            log_uuid: uuid_at(b, 0x20),
            log,
            created: u64_at(b, 0x40) as i64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_and_header_round_trip_and_refuse_damage() {
        let b = LogBinding {
            log_uuid: [3; 16],
            path: "/dev/shm/img.log".into(),
        };
        let mut bytes = b.encode().expect("encode");
        assert_eq!(LogBinding::decode(&bytes), Ok(b));
        bytes[0x20] ^= 1;
        assert_eq!(LogBinding::decode(&bytes), Err(ExternalLogError::Binding));
        let long = LogBinding {
            log_uuid: [0; 16],
            path: "x".repeat(PATH_LEN),
        };
        assert_eq!(long.encode(), Err(ExternalLogError::PathTooLong));

        let h = LogHeader::new([1; 16], [2; 16], 4 << 20, 1234);
        assert_eq!(h.log.len, (4 << 20) - 4096);
        let mut bytes = h.encode();
        assert_eq!(LogHeader::decode(&bytes, 4 << 20), Ok(h));
        assert!(matches!(
            LogHeader::decode(&bytes, 1 << 20),
            Err(ExternalLogError::Area(..))
        ));
        bytes[0x11] ^= 1;
        assert_eq!(
            LogHeader::decode(&bytes, 4 << 20),
            Err(ExternalLogError::Checksum)
        );
        assert_eq!(
            LogHeader::decode(&[0; 4096], 4 << 20),
            Err(ExternalLogError::NotALog)
        );
    }
}
