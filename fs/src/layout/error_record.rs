//! The error record: 256 bytes of the header block (image offset 0x100..0x200) where the daemon
//! writes the first error that put the filesystem in its error state, so `fsck.rvmfs` (and any
//! dump tool) can show it after the mount is gone. ext4 keeps the same fields in its superblock
//! (`s_error_count`, `s_first_error_time`, `s_first_error_func`, `s_first_error_ino`...) and
//! writes them outside the journal; so does rvmfs: a direct write, durable for these bytes only
//! (`Storage::write_durable_at`), never part of a redo record (the log may be what failed).
//!
//! All zero = no error recorded (a fresh image). Every integer is little-endian, encoded by
//! hand. `fsck.rvmfs -y`/`-p` zero it again after a clean check (e2fsck clears `ERROR_FS`).
//!
//! ```text
//! 0x00 magic "RVMFSERR" | 0x08 count u32 | 0x0C errno u32 | 0x10 first_time i64
//! 0x18 last_time i64 | 0x20 inode u64 | 0x28 op [16] | 0x38 message [192] | 0xF8 crc u32 | 0xFC 0
//! ```

/// Image offset of the error record (inside the 4 KiB header block, after the header fields).
pub const ERROR_RECORD_OFFSET: u64 = 0x100;
/// Bytes of the error record.
pub const ERROR_RECORD_SIZE: usize = 0x100;
/// Magic bytes of a written error record.
pub const ERROR_MAGIC: [u8; 8] = *b"RVMFSERR";

const OP_LEN: usize = 16;
const MESSAGE_LEN: usize = 192;
const CRC_AT: usize = 0xF8;

/// The first error of an image's error state, and how many errors were reported since the
/// record was last cleared.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ErrorRecord {
    /// Errors reported (the first one, plus each one `errors=continue` went on after, and the
    /// first of each later mount that failed again).
    pub count: u32,
    /// The errno of the first error (`EIO`, `ENOSPC`, ...; 0 if it had none).
    pub errno: u32,
    /// When the first and the last error were reported, seconds since the Unix epoch.
    pub first_time: i64,
    pub last_time: i64,
    /// The inode the failed request was about (0: none, or a background flush).
    pub inode: u64,
    /// The request or stage that met it ("write", "fsync", "background flush"...), at most
    /// 16 bytes.
    pub op: String,
    /// The cause, as logged (at most 192 bytes, cut on a character boundary).
    pub message: String,
}

/// Why the bytes at 0x100..0x200 are not a valid error record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ErrorRecordError {
    #[error("the error record has a bad magic number")]
    Magic,
    #[error("the error record is corrupt (checksum mismatch)")]
    Checksum,
}

fn put_text(out: &mut [u8], text: &str) {
    let mut n = text.len().min(out.len());
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    out[..n].copy_from_slice(&text.as_bytes()[..n]);
}

fn text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut v = [0u8; 4];
    v.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(v)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

impl ErrorRecord {
    /// The 256 bytes to write at [`ERROR_RECORD_OFFSET`], CRC32C of bytes 0..0xF8 at 0xF8.
    pub fn encode(&self) -> [u8; ERROR_RECORD_SIZE] {
        let mut b = [0u8; ERROR_RECORD_SIZE];
        b[..8].copy_from_slice(&ERROR_MAGIC);
        b[0x08..0x0C].copy_from_slice(&self.count.to_le_bytes());
        b[0x0C..0x10].copy_from_slice(&self.errno.to_le_bytes());
        b[0x10..0x18].copy_from_slice(&self.first_time.to_le_bytes());
        b[0x18..0x20].copy_from_slice(&self.last_time.to_le_bytes());
        b[0x20..0x28].copy_from_slice(&self.inode.to_le_bytes());
        put_text(&mut b[0x28..0x28 + OP_LEN], &self.op);
        put_text(&mut b[0x38..0x38 + MESSAGE_LEN], &self.message);
        let crc = crc32c::crc32c(&b[..CRC_AT]);
        b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decode the 256 bytes at [`ERROR_RECORD_OFFSET`]: `Ok(None)` when all zero (no error
    /// recorded).
    ///
    /// Errors: [`ErrorRecordError`] when the bytes are neither zero nor a valid record.
    pub fn decode(b: &[u8; ERROR_RECORD_SIZE]) -> Result<Option<ErrorRecord>, ErrorRecordError> {
        if b.iter().all(|&x| x == 0) {
            return Ok(None);
        }
        if b[..8] != ERROR_MAGIC {
            return Err(ErrorRecordError::Magic);
        }
        if u32_at(b, CRC_AT) != crc32c::crc32c(&b[..CRC_AT]) {
            return Err(ErrorRecordError::Checksum);
        }
        Ok(Some(ErrorRecord {
            count: u32_at(b, 0x08),
            errno: u32_at(b, 0x0C),
            first_time: u64_at(b, 0x10) as i64,
            last_time: u64_at(b, 0x18) as i64,
            inode: u64_at(b, 0x20),
            op: text(&b[0x28..0x28 + OP_LEN]),
            message: text(&b[0x38..0x38 + MESSAGE_LEN]),
        }))
    }

    /// Read the record of the image in `storage`.
    ///
    /// Errors: the read's I/O error, or `InvalidData` with the [`ErrorRecordError`].
    pub fn read(storage: &dyn rvm_core::Storage) -> std::io::Result<Option<ErrorRecord>> {
        let mut b = [0u8; ERROR_RECORD_SIZE];
        storage.read_at(&mut b, ERROR_RECORD_OFFSET)?;
        ErrorRecord::decode(&b).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    /// Write `record` (None: clear it, all zero) durably, with a write that is durable for
    /// these bytes only, outside the redo log.
    pub fn write(
        storage: &dyn rvm_core::Storage,
        record: Option<&ErrorRecord>,
    ) -> std::io::Result<()> {
        let bytes = record.map_or([0u8; ERROR_RECORD_SIZE], ErrorRecord::encode);
        storage.write_durable_at(&bytes, ERROR_RECORD_OFFSET)
    }
}

/// `secs` since the Unix epoch as "YYYY-MM-DD hh:mm:ss UTC", for messages about the record
/// (the civil-from-days algorithm of H. Hinnant, "chrono-Compatible Low-Level Date
/// Algorithms").
pub fn utc(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }

    fn sample() -> ErrorRecord {
        ErrorRecord {
            count: 3,
            errno: 5,
            first_time: 1_700_000_000,
            last_time: 1_700_000_100,
            inode: 42,
            op: "write".into(),
            message: "log write failed: Input/output error (os error 5)".into(),
        }
    }

    #[test]
    fn round_trip_and_zero() {
        let r = sample();
        assert_eq!(ErrorRecord::decode(&r.encode()), Ok(Some(r)));
        assert_eq!(ErrorRecord::decode(&[0u8; ERROR_RECORD_SIZE]), Ok(None));
    }

    #[test]
    fn corruption_detected_and_long_text_cut() {
        let mut b = sample().encode();
        b[0x40] ^= 1;
        assert_eq!(ErrorRecord::decode(&b), Err(ErrorRecordError::Checksum));
        b[0] = b'X';
        assert_eq!(ErrorRecord::decode(&b), Err(ErrorRecordError::Magic));
        let long = ErrorRecord {
            op: "é".repeat(20),
            message: "x".repeat(500),
            ..sample()
        };
        let back = ErrorRecord::decode(&long.encode()).unwrap().unwrap();
        assert_eq!(back.op, "é".repeat(8));
        assert_eq!(back.message.len(), MESSAGE_LEN);
    }
}
