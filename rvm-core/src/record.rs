//! Redo record encoding (LRVM §5.1: the log holds new values only).
//!
//! ```text
//! header (40 bytes, little endian):
//!   0  magic     u32  "RVMR"
//!   4  kind      u16  1 = redo
//!   6  flags     u16  0
//!   8  total_len u32  whole record incl. header and padding, multiple of 8
//!  12  nranges   u32
//!  16  seq       u64  sequence number (= Lsn of the first transaction it holds)
//!  24  log_id    u64  identity of the log (random at create_log)
//!  32  crc       u32  crc32c of bytes [0,32) ++ [36,total_len)
//!  36  merged    u32  number of further transactions folded into this record by the
//!                     inter-transaction optimization (LRVM §5.2): it holds the Lsns
//!                     [seq, seq + merged]; the next record has seq + merged + 1. 0 = plain.
//! then nranges times:
//!   offset u64 (absolute storage offset), len u32, flags u32, len bytes, zero pad to 8
//! ```
//! Range flags: bit 0 = external (`Transaction::log_external`: bytes outside every region
//! and the log, e.g. file data; recovery writes them to storage eagerly, truncation skips
//! them); bit 1 (with bit 0) = deferred (`Transaction::log_deferred`: external bytes not
//! written in place at commit; recovery writes them eagerly and truncation applies them).
//! External ranges come after all region ranges of a record, deferred ones last; other
//! bits are 0.

pub(crate) const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"RVMR");
/// Bytes of a record header.
pub const HEADER_LEN: usize = 40;
/// Bytes of a range header inside a record.
pub const RANGE_HEADER_LEN: usize = 16;
pub(crate) const KIND_REDO: u16 = 1;
/// Range flag: an external range (see the module docs).
pub const RANGE_EXTERNAL: u32 = 1;
/// Range flag: a deferred external range (see the module docs); set with [`RANGE_EXTERNAL`].
pub const RANGE_DEFERRED: u32 = 2;
const DEFERRED: u32 = RANGE_EXTERNAL | RANGE_DEFERRED;

#[inline]
pub(crate) fn pad8(n: u64) -> u64 {
    (n + 7) & !7
}

pub(crate) fn rd_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
pub(crate) fn rd_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}
pub(crate) fn rd_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Encoded length in bytes of a record whose ranges have the given lengths.
pub fn encoded_len<I: IntoIterator<Item = usize>>(range_lens: I) -> u64 {
    range_lens.into_iter().fold(HEADER_LEN as u64, |acc, l| {
        acc + RANGE_HEADER_LEN as u64 + pad8(l as u64)
    })
}

fn crc_of(buf: &[u8]) -> u32 {
    let c = crc32c::crc32c(&buf[..32]);
    crc32c::crc32c_append(c, &buf[36..])
}

/// Encode one redo record. `ranges` are (absolute storage offset, new bytes). The caller
/// checks the size (see [`encoded_len`]); total length and range lengths must fit in u32.
pub(crate) fn encode_into(out: &mut Vec<u8>, seq: u64, log_id: u64, ranges: &[(u64, &[u8])]) {
    encode_merged_into(out, seq, 0, log_id, ranges)
}

/// Encode one record holding the Lsns `[seq, seq + merged]` (see the module docs).
pub(crate) fn encode_merged_into(
    out: &mut Vec<u8>,
    seq: u64,
    merged: u32,
    log_id: u64,
    ranges: &[(u64, &[u8])],
) {
    let n = ranges.len();
    encode_merged_ext_into(out, seq, merged, log_id, ranges, Kinds::region_only(n))
}

/// Where the kinds of a record's ranges start: `ranges[external_from..deferred_from]` are
/// external ranges, `ranges[deferred_from..]` deferred ones (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kinds {
    pub external_from: usize,
    pub deferred_from: usize,
}

impl Kinds {
    /// `n` ranges, all of them region ranges.
    pub fn region_only(n: usize) -> Kinds {
        Kinds::external(n, n)
    }
    /// `n` ranges, external from `external_from` on, none deferred.
    pub fn external(external_from: usize, n: usize) -> Kinds {
        Kinds {
            external_from,
            deferred_from: n,
        }
    }
    fn flags(&self, i: usize) -> u32 {
        match i {
            i if i >= self.deferred_from => RANGE_EXTERNAL | RANGE_DEFERRED,
            i if i >= self.external_from => RANGE_EXTERNAL,
            _ => 0,
        }
    }
}

/// Like [`encode_merged_into`], with the ranges' kinds.
pub(crate) fn encode_merged_ext_into(
    out: &mut Vec<u8>,
    seq: u64,
    merged: u32,
    log_id: u64,
    ranges: &[(u64, &[u8])],
    kinds: Kinds,
) {
    let total = encoded_len(ranges.iter().map(|r| r.1.len())) as usize;
    let start = out.len();
    out.resize(start + total, 0);
    encode_slice(&mut out[start..], seq, merged, log_id, ranges, kinds);
}

/// Encode one record into `out`, exactly `encoded_len` bytes long (no allocation: the
/// commit path encodes straight into the spool).
/// `kinds`: which ranges are external and deferred.
pub(crate) fn encode_slice(
    out: &mut [u8],
    seq: u64,
    merged: u32,
    log_id: u64,
    ranges: &[(u64, &[u8])],
    kinds: Kinds,
) {
    let total = out.len();
    debug_assert_eq!(total as u64, encoded_len(ranges.iter().map(|r| r.1.len())));
    out[0..4].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
    out[4..6].copy_from_slice(&KIND_REDO.to_le_bytes());
    out[6..8].copy_from_slice(&0u16.to_le_bytes());
    out[8..12].copy_from_slice(&(total as u32).to_le_bytes());
    out[12..16].copy_from_slice(&(ranges.len() as u32).to_le_bytes());
    out[16..24].copy_from_slice(&seq.to_le_bytes());
    out[24..32].copy_from_slice(&log_id.to_le_bytes());
    out[32..36].copy_from_slice(&[0u8; 4]);
    out[36..40].copy_from_slice(&merged.to_le_bytes());
    let mut at = HEADER_LEN;
    for (i, (off, data)) in ranges.iter().enumerate() {
        let flags = kinds.flags(i);
        out[at..at + 8].copy_from_slice(&off.to_le_bytes());
        out[at + 8..at + 12].copy_from_slice(&(data.len() as u32).to_le_bytes());
        out[at + 12..at + 16].copy_from_slice(&flags.to_le_bytes());
        at += RANGE_HEADER_LEN;
        out[at..at + data.len()].copy_from_slice(data);
        let padded = pad8(data.len() as u64) as usize;
        out[at + data.len()..at + padded].fill(0);
        at += padded;
    }
    debug_assert_eq!(at, total);
    let crc = crc_of(out);
    out[32..36].copy_from_slice(&crc.to_le_bytes());
}

/// Encode one redo record whose ranges `ranges[ext_from..]` are external (see the module
/// docs) into a new buffer.
pub fn encode_external(seq: u64, log_id: u64, ranges: &[(u64, &[u8])], ext_from: usize) -> Vec<u8> {
    let mut v = Vec::new();
    let kinds = Kinds::external(ext_from, ranges.len());
    encode_merged_ext_into(&mut v, seq, 0, log_id, ranges, kinds);
    v
}

/// Encode one redo record into a new buffer.
pub fn encode(seq: u64, log_id: u64, ranges: &[(u64, &[u8])]) -> Vec<u8> {
    let mut v = Vec::new();
    encode_into(&mut v, seq, log_id, ranges);
    v
}

/// Encode one record holding the Lsns `[seq, seq + merged]` into a new buffer.
pub fn encode_merged(seq: u64, merged: u32, log_id: u64, ranges: &[(u64, &[u8])]) -> Vec<u8> {
    let mut v = Vec::new();
    encode_merged_into(&mut v, seq, merged, log_id, ranges);
    v
}

/// The fixed header fields of a record (checked: magic, kind, length shape).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    pub total_len: u32,
    pub nranges: u32,
    pub seq: u64,
    pub log_id: u64,
    /// Further transactions folded into this record (it holds Lsns `[seq, seq + merged]`).
    pub merged: u32,
}

impl RecordHeader {
    /// Number of transactions (Lsns) this record holds: `merged + 1`.
    pub fn seq_count(&self) -> u64 {
        self.merged as u64 + 1
    }
    /// Lsn of the record that follows this one.
    pub fn next_seq(&self) -> u64 {
        self.seq.saturating_add(self.seq_count())
    }
}

/// Parse a record header from the first [`HEADER_LEN`] bytes of `buf`; `None` if the magic,
/// kind or length are not plausible.
pub fn parse_header(buf: &[u8]) -> Option<RecordHeader> {
    if buf.len() < HEADER_LEN || rd_u32(buf, 0) != RECORD_MAGIC || rd_u16(buf, 4) != KIND_REDO {
        return None;
    }
    let total_len = rd_u32(buf, 8);
    if (total_len as usize) < HEADER_LEN || !total_len.is_multiple_of(8) {
        return None;
    }
    Some(RecordHeader {
        total_len,
        nranges: rd_u32(buf, 12),
        seq: rd_u64(buf, 16),
        log_id: rd_u64(buf, 24),
        merged: rd_u32(buf, 36),
    })
}

/// A validated record borrowing its bytes.
#[derive(Debug)]
pub struct RecordRef<'a> {
    pub header: RecordHeader,
    /// (absolute storage offset, new bytes)
    pub ranges: Vec<(u64, &'a [u8])>,
    /// `ranges[external_from..]` are external ranges (outside every region and the log;
    /// see [`RANGE_EXTERNAL`]); `ranges.len()` when there are none.
    pub external_from: usize,
    /// `ranges[deferred_from..]` are the deferred ones among them ([`RANGE_DEFERRED`]).
    pub deferred_from: usize,
}

impl<'a> RecordRef<'a> {
    /// The ranges inside regions (what `map` overlays and truncation applies).
    pub fn region_ranges(&self) -> &[(u64, &'a [u8])] {
        &self.ranges[..self.external_from]
    }
    /// The external ranges, deferred ones included (what recovery writes to storage
    /// eagerly).
    pub fn external_ranges(&self) -> &[(u64, &'a [u8])] {
        &self.ranges[self.external_from..]
    }
    /// The external ranges written in place at commit (not deferred).
    pub fn immediate_ranges(&self) -> &[(u64, &'a [u8])] {
        &self.ranges[self.external_from..self.deferred_from]
    }
    /// The deferred external ranges (what truncation applies besides region ranges).
    pub fn deferred_ranges(&self) -> &[(u64, &'a [u8])] {
        &self.ranges[self.deferred_from..]
    }
}

/// Why [`decode`] refused a record: each way a record can be invalid. Range numbers count
/// from 0 in record order.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// Magic, kind or total length (at least [`HEADER_LEN`], a multiple of 8) is wrong, or
    /// the buffer is shorter than a header.
    #[error("bad record header")]
    BadHeader,
    /// The buffer holds fewer bytes than the header's `total_len`.
    #[error("record of {total_len} bytes truncated to {available}")]
    Truncated { total_len: usize, available: usize },
    /// The CRC of the record does not match its bytes.
    #[error("record seq {seq} fails its checksum")]
    Checksum { seq: u64 },
    /// The header of range `index` extends past the record's end.
    #[error("range header past record end")]
    RangeHeaderPastEnd { index: u32 },
    /// Range `index` is an external range written in place after a deferred one (deferred
    /// ranges come last).
    #[error("external range after a deferred range")]
    ImmediateAfterDeferred { index: u32 },
    /// Range `index` is a region range after an external one (external ranges come last).
    #[error("region range after an external range")]
    RegionAfterExternal { index: u32 },
    /// Range `index` has flags other than 0 or [`RANGE_EXTERNAL`].
    #[error("unknown range flags {flags:#x}")]
    UnknownRangeFlags { index: u32, flags: u32 },
    /// The (padded) data of range `index` extends past the record's end.
    #[error("range data past record end")]
    RangeDataPastEnd { index: u32 },
    /// Offset + length of range `index` overflows u64.
    #[error("range offset overflows")]
    OffsetOverflow { index: u32 },
    /// The ranges end at `ranges_end`, before the record's `total_len`.
    #[error("record length does not match its ranges")]
    LengthMismatch { total_len: usize, ranges_end: usize },
}

/// Validate and decode a whole record (`buf` holds at least `total_len` bytes): header, CRC,
/// and that the ranges exactly fill the record. Errors: the first problem found, as a
/// [`RecordError`].
pub fn decode(buf: &[u8]) -> Result<RecordRef<'_>, RecordError> {
    let header = parse_header(buf).ok_or(RecordError::BadHeader)?;
    let total = header.total_len as usize;
    if buf.len() < total {
        return Err(RecordError::Truncated {
            total_len: total,
            available: buf.len(),
        });
    }
    let rec = &buf[..total];
    if rd_u32(rec, 32) != crc_of(rec) {
        return Err(RecordError::Checksum { seq: header.seq });
    }
    let mut ranges = Vec::with_capacity(header.nranges.min(1 << 16) as usize);
    let mut at = HEADER_LEN;
    let mut external_from = None;
    let mut deferred_from = None;
    for i in 0..header.nranges {
        if at + RANGE_HEADER_LEN > total {
            return Err(RecordError::RangeHeaderPastEnd { index: i });
        }
        let off = rd_u64(rec, at);
        let len = rd_u32(rec, at + 8) as usize;
        match rd_u32(rec, at + 12) {
            0 if external_from.is_some() => {
                return Err(RecordError::RegionAfterExternal { index: i })
            }
            0 => {}
            RANGE_EXTERNAL if deferred_from.is_some() => {
                return Err(RecordError::ImmediateAfterDeferred { index: i })
            }
            RANGE_EXTERNAL => {
                external_from.get_or_insert(i as usize);
            }
            DEFERRED => {
                external_from.get_or_insert(i as usize);
                deferred_from.get_or_insert(i as usize);
            }
            flags => return Err(RecordError::UnknownRangeFlags { index: i, flags }),
        }
        let data_at = at + RANGE_HEADER_LEN;
        let next = data_at as u64 + pad8(len as u64);
        if next > total as u64 {
            return Err(RecordError::RangeDataPastEnd { index: i });
        }
        if off.checked_add(len as u64).is_none() {
            return Err(RecordError::OffsetOverflow { index: i });
        }
        ranges.push((off, &rec[data_at..data_at + len]));
        at = next as usize;
    }
    if at != total {
        return Err(RecordError::LengthMismatch {
            total_len: total,
            ranges_end: at,
        });
    }
    let external_from = external_from.unwrap_or(ranges.len());
    let deferred_from = deferred_from.unwrap_or(ranges.len());
    Ok(RecordRef {
        header,
        ranges,
        external_from,
        deferred_from,
    })
}

/// Records holding no ranges that advance the sequence numbers from `seq` by `count`
/// (recovery's jump past every seq that may lie in the log area; see README, invariant 3).
/// Each holds at most 2^32 Lsns.
pub(crate) fn jump_records(mut seq: u64, mut count: u64, log_id: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while count > 0 {
        let c = count.min(1 << 32);
        encode_merged_into(&mut out, seq, (c - 1) as u32, log_id, &[]);
        seq += c;
        count -= c;
    }
    out
}
