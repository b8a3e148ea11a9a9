//! Naming data objects and the blocks in them (docs/format.md section 11.1, 11.4): an object
//! is `(epoch, seq)`, its key `data/EEEEEEEE/SSSSSSSS` (fixed-width hex: key order is
//! numeric order), and a block in it a **virtual block number**, one u64:
//! `vblock = epoch << 42 | seq << shift | index`, where `shift` is log2 of the blocks per
//! object (10: 4 MiB objects of 4096-byte blocks).

/// The folder of the data objects under the prefix.
pub const DATA_DIR: &str = "data";
/// Bits of the epoch in a vblock (the top 22).
pub const EPOCH_BITS: u32 = 22;
/// Where the epoch starts in a vblock.
const EPOCH_SHIFT: u32 = 64 - EPOCH_BITS;
/// The largest epoch a vblock can carry.
pub const MAX_EPOCH: u32 = (1 << EPOCH_BITS) - 1;
/// Default log2 of the blocks per object: 1024 blocks, 4 MiB.
pub const DEFAULT_SHIFT: u32 = 10;

/// One data object: written by the writer of `epoch`, its `seq`-th object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId {
    pub epoch: u32,
    pub seq: u32,
}

impl ObjectId {
    /// Its name under the prefix: `data/EEEEEEEE/SSSSSSSS`.
    pub fn name(&self) -> String {
        format!("{DATA_DIR}/{:08x}/{:08x}", self.epoch, self.seq)
    }

    /// The object a name under the prefix names, `None` for anything else (fsck reports
    /// such strays, never deletes them as leaked data objects).
    pub fn parse(name: &str) -> Option<ObjectId> {
        let rest = name.strip_prefix(DATA_DIR)?.strip_prefix('/')?;
        let (e, s) = rest.split_once('/')?;
        let hex = |x: &str| {
            (x.len() == 8
                && x.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
            .then(|| u32::from_str_radix(x, 16).ok())
            .flatten()
        };
        Some(ObjectId {
            epoch: hex(e)?,
            seq: hex(s)?,
        })
    }

    /// The vblock of block `index` of this object, for objects of `1 << shift` blocks;
    /// `None` if the epoch, seq or index does not fit (epoch > [`MAX_EPOCH`], seq of
    /// `42 - shift` bits or more, index >= `1 << shift`).
    pub fn vblock(&self, index: u32, shift: u32) -> Option<u64> {
        let seq_bits = EPOCH_SHIFT - shift;
        let fits = self.epoch <= MAX_EPOCH
            && u64::from(self.seq) < (1u64 << seq_bits)
            && u64::from(index) < (1u64 << shift);
        fits.then(|| {
            u64::from(self.epoch) << EPOCH_SHIFT | u64::from(self.seq) << shift | u64::from(index)
        })
    }

    /// As one u64, `epoch << 32 | seq`: ordered as the ids are (the watermark's form,
    /// docs/format.md 11.6).
    pub fn packed(&self) -> u64 {
        u64::from(self.epoch) << 32 | u64::from(self.seq)
    }

    /// The id [`ObjectId::packed`] gave `v`.
    pub fn from_packed(v: u64) -> ObjectId {
        ObjectId {
            epoch: (v >> 32) as u32,
            seq: v as u32,
        }
    }

    /// The object and the block index in it that `vblock` names (objects of `1 << shift`
    /// blocks).
    pub fn of_vblock(vblock: u64, shift: u32) -> (ObjectId, u32) {
        let seq_mask = (1u64 << (EPOCH_SHIFT - shift)) - 1;
        let id = ObjectId {
            epoch: (vblock >> EPOCH_SHIFT) as u32,
            seq: ((vblock >> shift) & seq_mask) as u32,
        };
        (id, (vblock & ((1u64 << shift) - 1)) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_sort_numerically() {
        let a = ObjectId {
            epoch: 2,
            seq: 0xff,
        };
        let b = ObjectId {
            epoch: 2,
            seq: 0x100,
        };
        assert_eq!(a.name(), "data/00000002/000000ff");
        assert_eq!(ObjectId::parse(&a.name()), Some(a));
        assert!(a.name() < b.name(), "key order is numeric order");
        for bad in [
            "data/2/ff",
            "data/00000002/000000FF",
            "data/00000002",
            "log/00000002/000000ff",
            "data/00000002/000000ff/x",
        ] {
            assert_eq!(ObjectId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn vblocks_round_trip_at_the_limits() {
        for shift in [0, 4, DEFAULT_SHIFT, 14] {
            let max_seq = ((1u64 << (42 - shift)) - 1).min(u32::MAX as u64) as u32;
            for (epoch, seq, index) in [
                (1, 0, 0),
                (MAX_EPOCH, max_seq, (1 << shift) - 1),
                (77, (12345 % (u64::from(max_seq) + 1)) as u32, 0),
            ] {
                let id = ObjectId { epoch, seq };
                let v = id.vblock(index, shift).unwrap();
                assert_eq!(ObjectId::of_vblock(v, shift), (id, index), "shift {shift}");
            }
        }
        let id = ObjectId {
            epoch: MAX_EPOCH + 1,
            seq: 0,
        };
        assert_eq!(id.vblock(0, DEFAULT_SHIFT), None);
        assert_eq!(
            ObjectId { epoch: 1, seq: 0 }.vblock(1024, DEFAULT_SHIFT),
            None
        );
    }
}
