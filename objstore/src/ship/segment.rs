//! A redo-log segment object (docs/format.md section 11.7): a 64-byte header, then whole
//! redo records exactly as they are in the image's log (section 3.3), so restore replays
//! them with rvm-core's own record code. Key `log/EEEEEEEE/LLLLLLLLLLLLLLLL`: the writer's
//! epoch and the segment's first Lsn, fixed-width hex.

use crate::le::{get_u32, get_u64};
use rvm_core::record::{self, HEADER_LEN};
use rvm_core::Lsn;

/// Bytes of the segment header.
pub const SEGMENT_HEADER_LEN: usize = 64;
/// `magic`: "RVMFSLS1".
pub const SEGMENT_MAGIC: &[u8; 8] = b"RVMFSLS1";
const VERSION: u32 = 1;
/// Offset of the header's CRC (it covers `[0, CRC_AT)` and the records).
const CRC_AT: usize = 0x3C;

/// What a segment's header says, checked against its key and its records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub epoch: u32,
    /// Lsn of the first record, and the Lsn after the last one: Lsns `[first, next)`.
    pub first: Lsn,
    pub next: Lsn,
    /// When the shipper sealed it, milliseconds since 1970 (what `restore --time` reads).
    pub created_unix_ms: u64,
    pub records: u32,
}

/// Why a segment object is not one rvmfs wrote whole.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SegmentError {
    #[error("too short ({0} bytes) for a segment header")]
    Short(usize),
    #[error("bad magic number (not a log segment)")]
    Magic,
    #[error("unsupported segment version {0}")]
    Version(u32),
    #[error("length {have} bytes, the header says {want}")]
    Length { have: u64, want: u64 },
    #[error("checksum mismatch (CRC32C {have:08x}, header says {want:08x})")]
    Crc { have: u32, want: u32 },
    #[error("its header says epoch {epoch} and first Lsn {first}, its key another")]
    Key { epoch: u32, first: Lsn },
    #[error("record {index}: {why}")]
    Record { index: u32, why: String },
}

/// The key of the segment of `epoch` starting at Lsn `first`.
pub fn segment_key(epoch: u32, first: Lsn) -> String {
    format!("log/{epoch:08x}/{first:016x}")
}

/// `(epoch, first Lsn)` from a key `log/EEEEEEEE/LLLLLLLLLLLLLLLL`; `None` for other names.
pub fn parse_segment_key(name: &str) -> Option<(u32, Lsn)> {
    let rest = name.strip_prefix("log/")?;
    let (e, l) = rest.split_once('/')?;
    if e.len() != 8 || l.len() != 16 {
        return None;
    }
    Some((
        u32::from_str_radix(e, 16).ok()?,
        u64::from_str_radix(l, 16).ok()?,
    ))
}

/// The segment object of `records` (whole encoded records, Lsns `[first, next)`, `count`
/// of them).
pub fn encode(h: &SegmentHeader, records: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SEGMENT_HEADER_LEN + records.len());
    out.extend_from_slice(SEGMENT_MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(h.epoch as u64).to_le_bytes());
    out.extend_from_slice(&h.first.to_le_bytes());
    out.extend_from_slice(&h.next.to_le_bytes());
    out.extend_from_slice(&(records.len() as u64).to_le_bytes());
    out.extend_from_slice(&h.created_unix_ms.to_le_bytes());
    out.extend_from_slice(&h.records.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out), records);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(records);
    out
}

/// Check a segment object (its bytes, its key's epoch and first Lsn) and return its header
/// and records. Every record is decoded (its own CRC included) and their Lsns must run
/// from `first` to `next` without a gap.
pub fn decode(bytes: &[u8], key: (u32, Lsn)) -> Result<(SegmentHeader, &[u8]), SegmentError> {
    if bytes.len() < SEGMENT_HEADER_LEN {
        return Err(SegmentError::Short(bytes.len()));
    }
    if &bytes[..8] != SEGMENT_MAGIC {
        return Err(SegmentError::Magic);
    }
    let version = get_u32(bytes, 8);
    if version != VERSION {
        return Err(SegmentError::Version(version));
    }
    let len = get_u64(bytes, 0x28);
    let want = SEGMENT_HEADER_LEN as u64 + len;
    if bytes.len() as u64 != want {
        return Err(SegmentError::Length {
            have: bytes.len() as u64,
            want,
        });
    }
    let records = &bytes[SEGMENT_HEADER_LEN..];
    let have = crc32c::crc32c_append(crc32c::crc32c(&bytes[..CRC_AT]), records);
    let want_crc = get_u32(bytes, CRC_AT);
    if have != want_crc {
        return Err(SegmentError::Crc {
            have,
            want: want_crc,
        });
    }
    let h = SegmentHeader {
        epoch: get_u64(bytes, 0x10) as u32,
        first: get_u64(bytes, 0x18),
        next: get_u64(bytes, 0x20),
        created_unix_ms: get_u64(bytes, 0x30),
        records: get_u32(bytes, 0x38),
    };
    if (h.epoch, h.first) != key {
        return Err(SegmentError::Key {
            epoch: h.epoch,
            first: h.first,
        });
    }
    check_records(&h, records)?;
    Ok((h, records))
}

/// Every record of `records` decodes and their Lsns run `[h.first, h.next)`, `h.records`
/// of them.
fn check_records(h: &SegmentHeader, records: &[u8]) -> Result<(), SegmentError> {
    let (mut at, mut seq, mut index) = (0usize, h.first, 0u32);
    let bad = |index, why: String| SegmentError::Record { index, why };
    while at < records.len() {
        let rec = record::decode(&records[at..]).map_err(|e| bad(index, e.to_string()))?;
        if rec.header.seq != seq {
            return Err(bad(
                index,
                format!("Lsn {} where {seq} was expected", rec.header.seq),
            ));
        }
        seq = rec.header.next_seq();
        at += rec.header.total_len as usize;
        index += 1;
    }
    if seq != h.next || index != h.records {
        return Err(bad(
            index,
            format!(
                "{index} records ending before Lsn {seq}; the header says {} ending before {}",
                h.records, h.next
            ),
        ));
    }
    Ok(())
}

/// Walk whole records of `records`, calling `f(seq, next_seq, bytes)` for each; stops at
/// bytes that are not a record header (the caller gave whole records).
pub fn each_record(records: &[u8], mut f: impl FnMut(Lsn, Lsn, &[u8])) {
    let mut at = 0usize;
    while at + HEADER_LEN <= records.len() {
        let Some(h) = record::parse_header(&records[at..]) else {
            return;
        };
        let end = at + h.total_len as usize;
        if end > records.len() {
            return;
        }
        f(h.seq, h.next_seq(), &records[at..end]);
        at = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(first: Lsn, n: u64) -> Vec<u8> {
        (0..n)
            .flat_map(|i| record::encode(first + i, 7, &[(4096 + i * 8, &[i as u8; 5][..])]))
            .collect()
    }

    fn header(first: Lsn, n: u64) -> SegmentHeader {
        SegmentHeader {
            epoch: 3,
            first,
            next: first + n,
            created_unix_ms: 1,
            records: n as u32,
        }
    }

    #[test]
    fn a_segment_round_trips_and_names_its_key() {
        let recs = records(10, 4);
        let body = encode(&header(10, 4), &recs);
        let (h, got) = decode(&body, (3, 10)).unwrap();
        assert_eq!((h, got), (header(10, 4), &recs[..]));
        assert_eq!(segment_key(3, 10), "log/00000003/000000000000000a");
        assert_eq!(parse_segment_key(&segment_key(3, 10)), Some((3, 10)));
        assert_eq!(parse_segment_key("log/3/10"), None);
    }

    #[test]
    fn every_damage_is_refused() {
        let recs = records(10, 4);
        let body = encode(&header(10, 4), &recs);
        for at in [0, 0x10, 0x20, 0x3C, SEGMENT_HEADER_LEN + 3, body.len() - 1] {
            let mut bad = body.clone();
            bad[at] ^= 1;
            assert!(decode(&bad, (3, 10)).is_err(), "flipped byte {at}");
        }
        assert!(matches!(
            decode(&body, (4, 10)),
            Err(SegmentError::Key { .. })
        ));
        assert!(matches!(
            decode(&body[..body.len() - 8], (3, 10)),
            Err(SegmentError::Length { .. })
        ));
        // A header whose Lsns do not match its records (CRC recomputed).
        let lying = encode(&header(10, 5), &recs);
        assert!(matches!(
            decode(&lying, (3, 10)),
            Err(SegmentError::Record { .. })
        ));
    }
}
