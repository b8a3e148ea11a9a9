//! Snapshots of the metadata region (docs/format.md section 11.8): the region's pages as of
//! a head Lsn (every record below it applied, none at or above it), full (every page that
//! is not all zeros) or incremental (the pages records touched since a base snapshot), in
//! part objects, then a JSON manifest written last: a snapshot is complete only when its
//! manifest exists. Keys `snap/LLLLLLLLLLLLLLLL-EEEEEEEE/part-NNNNNNNN` and `.../manifest`.

use crate::le::get_u32;
use rvm_core::Lsn;
use serde::{Deserialize, Serialize};

/// Bytes of a region page.
pub const PAGE: usize = 4096;
/// Pages one part object holds at most (16 MiB of pages).
pub const PART_PAGES: usize = 4096;
/// `magic` of a part object: "RVMFSSP1".
pub const PART_MAGIC: &[u8; 8] = b"RVMFSSP1";
const PART_HEADER_LEN: usize = 16;

/// The snapshot manifest (`manifest`, JSON), written create-only after every part.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// 1.
    pub version: u32,
    /// The head Lsn it is consistent at: records below it applied, none at or above.
    pub lsn: Lsn,
    /// The epoch of the writer that took it.
    pub epoch: u32,
    /// Whole region (`None`), or only the pages changed since the snapshot named here
    /// (its directory name, `snap/...`), which must be complete too.
    pub base: Option<String>,
    /// When it was taken, milliseconds since 1970.
    pub created_unix_ms: u64,
    /// Length of the image file in bytes.
    pub image_len: u64,
    /// Image offset and length of the metadata region (header `segment_offset`, `segment_len`).
    pub segment_offset: u64,
    pub segment_len: u64,
    /// The image's header block (image offset 0, 4096 bytes), base64 (RFC 4648).
    pub header_block: String,
    /// The part objects, in order.
    pub parts: Vec<PartInfo>,
    /// The data objects the snapshot's state points into, and its watermark (`object_data`
    /// images; docs/format.md 11.6, `super::gc`). Absent in snapshots of local-data images
    /// and of older builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<ObjectsInfo>,
}

/// The object list of a snapshot (`objects`, written with the parts, before the manifest).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObjectsInfo {
    /// Name relative to the snapshot's directory (`objects`).
    pub name: String,
    /// Data objects listed.
    pub count: u64,
    /// The state's watermark (superblock `object_watermark`): every object whose packed id
    /// is below it was repointed or given up at or before the snapshot's Lsn.
    pub watermark: u64,
    /// CRC32C of the whole list object.
    pub crc: u32,
}

/// One part object of a snapshot.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartInfo {
    /// Name relative to the snapshot's directory (`part-00000000`).
    pub name: String,
    pub pages: u32,
    /// CRC32C of the whole part object.
    pub crc: u32,
}

/// Why a snapshot object is not what its manifest says.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    #[error("part {0}: bad magic number or too short")]
    Magic(String),
    #[error("part {name}: checksum mismatch (CRC32C {have:08x}, manifest says {want:08x})")]
    Crc { name: String, have: u32, want: u32 },
    #[error("part {name}: {why}")]
    Shape { name: String, why: String },
    #[error("manifest: {0}")]
    Manifest(String),
}

/// The directory of the snapshot at `lsn` by `epoch`: `snap/LLLLLLLLLLLLLLLL-EEEEEEEE`.
pub fn snapshot_dir(lsn: Lsn, epoch: u32) -> String {
    format!("snap/{lsn:016x}-{epoch:08x}")
}

/// `(lsn, epoch)` and the rest of the name, of a key under `snap/`.
pub fn parse_snapshot_key(name: &str) -> Option<(Lsn, u32, &str)> {
    let rest = name.strip_prefix("snap/")?;
    let (dir, file) = rest.split_once('/')?;
    let (l, e) = dir.split_once('-')?;
    if l.len() != 16 || e.len() != 8 {
        return None;
    }
    Some((
        u64::from_str_radix(l, 16).ok()?,
        u32::from_str_radix(e, 16).ok()?,
        file,
    ))
}

/// A part object: header (magic, page count), the page numbers (u32 each, region page =
/// region offset / 4096), then the pages.
pub fn encode_part(pages: &[(u32, &[u8])]) -> Vec<u8> {
    let mut out = Vec::with_capacity(PART_HEADER_LEN + pages.len() * (4 + PAGE));
    out.extend_from_slice(PART_MAGIC);
    out.extend_from_slice(&(pages.len() as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    for (n, _) in pages {
        out.extend_from_slice(&n.to_le_bytes());
    }
    for (_, p) in pages {
        out.extend_from_slice(p);
    }
    out
}

/// Check a part object against its manifest entry and write its pages into `region`.
pub fn apply_part(info: &PartInfo, bytes: &[u8], region: &mut [u8]) -> Result<(), SnapshotError> {
    let name = || info.name.clone();
    let have = crc32c::crc32c(bytes);
    if have != info.crc {
        return Err(SnapshotError::Crc {
            name: name(),
            have,
            want: info.crc,
        });
    }
    if bytes.len() < PART_HEADER_LEN || &bytes[..8] != PART_MAGIC {
        return Err(SnapshotError::Magic(name()));
    }
    let n = get_u32(bytes, 8) as usize;
    if n != info.pages as usize || bytes.len() != PART_HEADER_LEN + n * (4 + PAGE) {
        return Err(SnapshotError::Shape {
            name: name(),
            why: format!("{} bytes for {n} pages", bytes.len()),
        });
    }
    let data = PART_HEADER_LEN + 4 * n;
    for i in 0..n {
        let at = PART_HEADER_LEN + 4 * i;
        let page = get_u32(bytes, at);
        let off = page as usize * PAGE;
        let Some(dst) = region.get_mut(off..off + PAGE) else {
            return Err(SnapshotError::Shape {
                name: name(),
                why: format!("page {page} is past the region's {} bytes", region.len()),
            });
        };
        dst.copy_from_slice(&bytes[data + i * PAGE..data + (i + 1) * PAGE]);
    }
    Ok(())
}

/// Which region pages the shipped records touched, and the last Lsn that touched each: an
/// incremental snapshot on a base at Lsn `B` holds every page touched at an Lsn `>= B`.
pub struct PageTracker {
    segment_offset: u64,
    last_touch: Vec<Lsn>,
}

/// `last_touch` of a page no shipped record touched.
const UNTOUCHED: Lsn = 0;

impl PageTracker {
    pub fn new(segment_offset: u64, segment_len: u64) -> PageTracker {
        PageTracker {
            segment_offset,
            last_touch: vec![UNTOUCHED; segment_len.div_ceil(PAGE as u64) as usize],
        }
    }

    /// Note the region ranges of the encoded record `rec` with Lsn `seq`.
    pub fn note_record(&mut self, seq: Lsn, rec: &[u8]) {
        let Ok(r) = rvm_core::record::decode(rec) else {
            return;
        };
        for (off, data) in r.region_ranges() {
            let Some(start) = off.checked_sub(self.segment_offset) else {
                continue;
            };
            let first = (start / PAGE as u64) as usize;
            let last = ((start + data.len().max(1) as u64 - 1) / PAGE as u64) as usize;
            for t in self.last_touch.iter_mut().take(last + 1).skip(first) {
                *t = (*t).max(seq);
            }
        }
    }

    /// Pages touched at an Lsn at or above `since`.
    pub fn pages_since(&self, since: Lsn) -> Vec<u32> {
        (0..self.last_touch.len())
            .filter(|&p| self.last_touch[p] != UNTOUCHED && self.last_touch[p] >= since)
            .map(|p| p as u32)
            .collect()
    }

    /// Pages of the region.
    pub fn page_count(&self) -> usize {
        self.last_touch.len()
    }
}

/// The header block as the manifest holds it: standard base64 (RFC 4648).
pub fn encode_block(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// The header block from the manifest's base64.
pub fn decode_block(s: &str) -> Result<Vec<u8>, SnapshotError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| SnapshotError::Manifest(format!("header_block: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_round_trips_and_a_damaged_one_is_refused() {
        let (a, b) = (vec![1u8; PAGE], vec![2u8; PAGE]);
        let body = encode_part(&[(0, &a), (2, &b)]);
        let info = PartInfo {
            name: "part-00000000".into(),
            pages: 2,
            crc: crc32c::crc32c(&body),
        };
        let mut region = vec![9u8; 3 * PAGE];
        apply_part(&info, &body, &mut region).unwrap();
        assert_eq!(&region[..PAGE], &a[..]);
        assert_eq!(&region[PAGE..2 * PAGE], &[9u8; PAGE][..]);
        assert_eq!(&region[2 * PAGE..], &b[..]);
        let mut bad = body.clone();
        bad[100] ^= 1;
        assert!(matches!(
            apply_part(&info, &bad, &mut region),
            Err(SnapshotError::Crc { .. })
        ));
        let mut small = vec![0u8; 2 * PAGE];
        assert!(
            apply_part(&info, &body, &mut small).is_err(),
            "page past the region"
        );
        assert_eq!(
            parse_snapshot_key(&format!("{}/manifest", snapshot_dir(5, 2))),
            Some((5, 2, "manifest"))
        );
    }

    #[test]
    fn the_tracker_names_the_pages_touched_since_an_lsn() {
        let mut t = PageTracker::new(8192, 4 * PAGE as u64);
        t.note_record(
            5,
            &rvm_core::record::encode(5, 1, &[(8192 + 4090, &[1u8; 10][..])]),
        );
        t.note_record(
            9,
            &rvm_core::record::encode(9, 1, &[(8192 + 3 * 4096, &[1u8; 1][..])]),
        );
        assert_eq!(t.pages_since(0), vec![0, 1, 3]);
        assert_eq!(t.pages_since(6), vec![3]);
        assert!(t.pages_since(10).is_empty());
    }
}
