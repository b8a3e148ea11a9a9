//! The uploader's packer (docs/format.md section 11.4, 11.5): dirty blocks, whichever files
//! they belong to, go into the object being filled in the order they come; at `1 << shift`
//! blocks (or when sealed early: fsync with `upload=sync`, the upload interval) the object is
//! sealed into its bytes, with the vblock each block got. The caller uploads it create-only
//! ([`crate::data::upload_sealed`]) and only then commits the repointing of the extents.
//!
//! Sequence numbers start at 0 in every epoch (each mount has a new epoch, section 11.3), so
//! nothing about them is stored.

use crate::error::{Error, Result};
use crate::object::{self, BLOCK};
use crate::object_id::{ObjectId, MAX_EPOCH};
use bytes::Bytes;

/// What a packed block was: inode and logical block (the extent to repoint).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockRef {
    pub ino: u64,
    pub lblock: u64,
}

/// A sealed object: its id, bytes, and the vblock of each block it holds, in order.
#[derive(Debug)]
pub struct Sealed {
    pub id: ObjectId,
    pub bytes: Bytes,
    pub placed: Vec<(BlockRef, u64)>,
}

/// Packs blocks into the objects of one epoch.
pub struct Packer {
    epoch: u32,
    shift: u32,
    next_seq: u32,
    refs: Vec<BlockRef>,
    blocks: Vec<Box<[u8; BLOCK]>>,
}

impl Packer {
    /// A packer for the writer of `epoch`, objects of `1 << shift` blocks (shift 0..=20).
    /// Errors: [`Error::Config`] for an epoch above [`MAX_EPOCH`] or a shift out of range.
    pub fn new(epoch: u32, shift: u32) -> Result<Packer> {
        if epoch > MAX_EPOCH || shift > 20 {
            return Err(Error::Config(format!(
                "epoch {epoch} (at most {MAX_EPOCH}) or object shift {shift} (at most 20) out of range"
            )));
        }
        Ok(Packer {
            epoch,
            shift,
            next_seq: 0,
            refs: Vec::new(),
            blocks: Vec::new(),
        })
    }

    /// Blocks waiting in the object being filled.
    pub fn pending(&self) -> usize {
        self.blocks.len()
    }

    /// Add one block; the sealed object if this filled it.
    /// Errors: [`Error::Config`] when the epoch's sequence numbers are used up.
    pub fn add(&mut self, r: BlockRef, data: &[u8; BLOCK]) -> Result<Option<Sealed>> {
        self.refs.push(r);
        self.blocks.push(Box::new(*data));
        if self.blocks.len() == 1 << self.shift {
            return self.seal();
        }
        Ok(None)
    }

    /// Seal the object being filled now (`None` if it is empty).
    pub fn seal(&mut self) -> Result<Option<Sealed>> {
        if self.blocks.is_empty() {
            return Ok(None);
        }
        let id = ObjectId {
            epoch: self.epoch,
            seq: self.next_seq,
        };
        let vblock = |i: usize| {
            id.vblock(i as u32, self.shift).ok_or_else(|| {
                Error::Config(format!(
                    "epoch {} has used all its object numbers",
                    self.epoch
                ))
            })
        };
        let placed = (0..self.refs.len())
            .map(|i| Ok((self.refs[i], vblock(i)?)))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&[u8; BLOCK]> = self.blocks.iter().map(|b| &**b).collect();
        let bytes = object::pack(id, &refs);
        self.next_seq += 1;
        self.refs.clear();
        self.blocks.clear();
        Ok(Some(Sealed { id, bytes, placed }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_objects_in_order_and_gives_consecutive_vblocks() {
        let mut p = Packer::new(3, 2).unwrap();
        let mut sealed = Vec::new();
        for i in 0..10u64 {
            let r = BlockRef { ino: 7, lblock: i };
            if let Some(s) = p.add(r, &[i as u8; BLOCK]).unwrap() {
                sealed.push(s);
            }
        }
        assert_eq!(p.pending(), 2);
        sealed.extend(p.seal().unwrap());
        assert!(p.seal().unwrap().is_none(), "nothing left to seal");
        let counts: Vec<usize> = sealed.iter().map(|s| s.placed.len()).collect();
        assert_eq!(counts, vec![4, 4, 2]);
        for (n, s) in sealed.iter().enumerate() {
            assert_eq!(
                s.id,
                ObjectId {
                    epoch: 3,
                    seq: n as u32
                }
            );
            assert_eq!(
                object::verify(&s.bytes, s.id).unwrap().count as usize,
                s.placed.len()
            );
            for (i, (r, v)) in s.placed.iter().enumerate() {
                assert_eq!(r.lblock, (n * 4 + i) as u64);
                assert_eq!(ObjectId::of_vblock(*v, 2), (s.id, i as u32));
            }
            // Consecutive blocks of one object get consecutive vblocks: extents stay long.
            assert!(s.placed.windows(2).all(|w| w[1].1 == w[0].1 + 1));
        }
        assert!(Packer::new(MAX_EPOCH + 1, 10).is_err());
    }
}
