//! Feature flags: ext4's three words (compat, ro-compat, incompat; see e2fsprogs'
//! `lib/ext2fs/ext2_fs.h` and the ext4 "Super Block" documentation), carried by the header of
//! a version-2 image (offset 0x80, with a CRC of their own) and mirrored in the superblock
//! (offset 0x100), so code that sees only the region's bytes knows them too.
//!
//! What a reader does with a bit it does not know:
//!
//! | word        | unknown bit means                              | this build                   |
//! |-------------|------------------------------------------------|------------------------------|
//! | `compat`    | nothing an old reader or writer can get wrong  | ignored                      |
//! | `ro_compat` | old readers read correctly; writers would not  | read-only mount, `fsck -n`   |
//! |             | keep the feature's structures up to date       |                              |
//! | `incompat`  | old code would misread the image               | refused (mount, fsck, mkfs)  |
//!
//! A version-1 image has no feature words: it reads as all features off. New formats are new
//! bits, never a new version. A helper implementing a feature adds its bit to `SUPPORTED_*`.

use bytemuck::{Pod, Zeroable};

/// INCOMPAT bit 0, `keyed_hash`: dentry and xattr name keys hash names with SipHash-1-3 under
/// the superblock's 128-bit `hash_key` instead of FNV-1a (docs/format.md section 7.1). Old code
/// would look names up under the wrong hash.
pub const INCOMPAT_KEYED_HASH: u32 = 1 << 0;
/// INCOMPAT bit 1, `external_log`: the redo log is on another file or device (the header
/// block's log binding at 0x200 names it, `layout::external_log`); the image's own log area
/// is unused. Old code would replay and write the wrong log.
pub const INCOMPAT_EXTERNAL_LOG: u32 = 1 << 1;
/// INCOMPAT bit 2, `deferred_ranges`: the redo log may hold deferred ranges (small overwrites
/// of written data blocks logged instead of copied on write, `ops::logged_overwrite`; docs/
/// format.md section 3.3). A build without it would end its log scan at such a record, as at a
/// torn tail, and lose that record and every later one. Set by mkfs; the daemon logs
/// overwrites only on images that have it.
pub const INCOMPAT_DEFERRED_RANGES: u32 = 1 << 2;
/// INCOMPAT bit 3, `object_data`: file data lives in an S3-compatible bucket (docs/format.md
/// section 11): the superblock's `data_url` and `object_shift` (0x1A0, 0x2A0) name it, and an
/// extent with the flag `REMOTE` maps file blocks to virtual blocks of data objects, not to
/// local blocks. Old code would read such extents as local blocks.
pub const INCOMPAT_OBJECT_DATA: u32 = 1 << 3;
/// INCOMPAT bit 4, `slotted_leaves`: B+tree leaves may be slotted (node kind 3: entries stay
/// where they were written, a sorted array of 2-byte slots orders them; `store::slotted`,
/// docs/format.md section 6), so an insert logs the new entry and the shifted slots instead of
/// the shifted tail of a sorted leaf. Old code would refuse every such node as corrupt. Set by
/// mkfs; on an image without it every leaf is written sorted (kind 1).
pub const INCOMPAT_SLOTTED_LEAVES: u32 = 1 << 4;
/// RO_COMPAT bit 0, `data_csum`: a CRC32C per data block in the metadata. Old code reads the
/// data correctly but would write blocks without updating their checksums.
pub const RO_COMPAT_DATA_CSUM: u32 = 1 << 0;

/// COMPAT bit 0, `backup_sb`: a copy of the superblock in the region's last 4 KiB
/// (`layout::superblock_backup`, docs/format.md section 4.3), kept equal by every transaction,
/// for fsck when the primary is damaged. Old code may write the image; it leaves the copy
/// stale, which fsck notices and rewrites.
pub const COMPAT_BACKUP_SB: u32 = 1 << 0;

/// Compat bits this build knows.
pub const SUPPORTED_COMPAT: u32 = COMPAT_BACKUP_SB;
/// Ro-compat bits this build reads and writes.
pub const SUPPORTED_RO_COMPAT: u32 = RO_COMPAT_DATA_CSUM;
/// Incompat bits this build reads and writes.
pub const SUPPORTED_INCOMPAT: u32 = INCOMPAT_KEYED_HASH
    | INCOMPAT_EXTERNAL_LOG
    | INCOMPAT_DEFERRED_RANGES
    | INCOMPAT_OBJECT_DATA
    | INCOMPAT_SLOTTED_LEAVES;
/// Features mkfs turns on in a new image.
pub const MKFS_DEFAULT: Features = Features {
    compat: COMPAT_BACKUP_SB,
    ro_compat: RO_COMPAT_DATA_CSUM,
    incompat: INCOMPAT_KEYED_HASH | INCOMPAT_DEFERRED_RANGES | INCOMPAT_SLOTTED_LEAVES,
};

/// Names of the defined bits, for messages: (word, bit, name).
pub const NAMES: &[(Word, u32, &str)] = &[
    (Word::Incompat, INCOMPAT_KEYED_HASH, "keyed_hash"),
    (Word::Incompat, INCOMPAT_EXTERNAL_LOG, "external_log"),
    (Word::Incompat, INCOMPAT_DEFERRED_RANGES, "deferred_ranges"),
    (Word::Incompat, INCOMPAT_OBJECT_DATA, "object_data"),
    (Word::Incompat, INCOMPAT_SLOTTED_LEAVES, "slotted_leaves"),
    (Word::RoCompat, RO_COMPAT_DATA_CSUM, "data_csum"),
    (Word::Compat, COMPAT_BACKUP_SB, "backup_sb"),
];

/// One of the three feature words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Word {
    Compat,
    RoCompat,
    Incompat,
}

/// The three feature words (little-endian u32s, `repr(C)`), as both the header and the
/// superblock store them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq, Eq)]
pub struct Features {
    pub compat: u32,
    pub ro_compat: u32,
    pub incompat: u32,
}

impl Features {
    /// Incompat bits this build does not know: the image must be refused.
    pub fn unknown_incompat(&self) -> u32 {
        self.incompat & !SUPPORTED_INCOMPAT
    }

    /// Ro-compat bits this build does not know: the image may only be read.
    pub fn unknown_ro_compat(&self) -> u32 {
        self.ro_compat & !SUPPORTED_RO_COMPAT
    }

    /// Is incompat feature `bit` on?
    pub fn has_incompat(&self, bit: u32) -> bool {
        self.incompat & bit != 0
    }

    /// Is ro-compat feature `bit` on?
    pub fn has_ro_compat(&self, bit: u32) -> bool {
        self.ro_compat & bit != 0
    }
}

/// `bits` of `word` as text: known names, unknown bits as `bit N`
/// (e.g. "keyed_hash, bit 5").
pub fn describe(word: Word, bits: u32) -> String {
    (0..32)
        .map(|i| 1u32 << i)
        .filter(|b| bits & b != 0)
        .map(|b| {
            NAMES
                .iter()
                .find(|(w, nb, _)| *w == word && *nb == b)
                .map_or_else(|| format!("bit {}", b.trailing_zeros()), |n| n.2.into())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_distinct_per_word_and_named() {
        for (i, a) in NAMES.iter().enumerate() {
            assert_eq!(a.1.count_ones(), 1, "{} is one bit", a.2);
            for b in &NAMES[i + 1..] {
                assert!(a.0 != b.0 || a.1 != b.1, "{} and {} share a bit", a.2, b.2);
            }
        }
        assert_eq!(INCOMPAT_KEYED_HASH, 1);
        assert_eq!(RO_COMPAT_DATA_CSUM, 1);
    }

    #[test]
    fn unknown_bits_and_their_names() {
        let f = Features {
            compat: 1 << 7,
            ro_compat: RO_COMPAT_DATA_CSUM | 1 << 3,
            incompat: INCOMPAT_KEYED_HASH | 1 << 5,
        };
        assert_eq!(f.unknown_incompat() & (1 << 5), 1 << 5);
        assert_eq!(f.unknown_ro_compat() & (1 << 3), 1 << 3);
        assert_eq!(describe(Word::Incompat, f.incompat), "keyed_hash, bit 5");
        assert_eq!(describe(Word::RoCompat, 1 << 3), "bit 3");
        assert!(Features::default().unknown_incompat() == 0);
    }
}
