//! The name hash, stored on disk inside the keys of the dentry and xattr trees (see `dentry`
//! and `xattr`), so an image's hash can never change. Two hashes exist:
//!
//! * **SipHash-1-3** (Aumasson and Bernstein, "SipHash: a fast short-input PRF", 2012; the
//!   `siphasher` crate) under the image's secret 128-bit key (superblock `hash_key`, chosen at
//!   random by mkfs), in images with the incompat feature `keyed_hash`. Without the key nobody
//!   can craft names that collide, so nobody can fill a directory's 256 collision slots for a
//!   hash and make it refuse creates (the hash-flooding attack SipHash was made against).
//! * **FNV-1a**, 64-bit, unkeyed, in older images (no `keyed_hash`): names that collide in the
//!   kept bits can be computed offline.
//!
//! Both trees key a name as `hash bits << 8 | k`: the low byte k (0..255) tells apart names
//! whose kept hash bits collide, so a lookup is one seek plus a scan of (almost always) one
//! entry.

use crate::error::FsResult;
use crate::layout::features::{Features, INCOMPAT_KEYED_HASH};
use crate::layout::pod;
use crate::layout::superblock::field;
use std::hash::Hasher;

/// The hash an image's name keys use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameHash {
    /// FNV-1a, 64-bit (images without `keyed_hash`).
    Fnv1a,
    /// SipHash-1-3 under this key: k0 = little-endian u64 of bytes 0..8, k1 of bytes 8..16.
    SipHash13([u8; 16]),
}

impl NameHash {
    /// The hash of the image whose region is `bytes`: its superblock's `keyed_hash` feature
    /// bit and `hash_key`.
    ///
    /// Errors: `FsError::Corrupt` if the region is too short to hold a superblock.
    pub fn of(bytes: &[u8]) -> FsResult<NameHash> {
        let features: Features = pod::get(bytes, field::FEATURES)?;
        if features.has_incompat(INCOMPAT_KEYED_HASH) {
            Ok(NameHash::SipHash13(pod::get(bytes, field::HASH_KEY)?))
        } else {
            Ok(NameHash::Fnv1a)
        }
    }

    /// The 64-bit hash of `name`'s bytes.
    pub fn hash(&self, name: &[u8]) -> u64 {
        match self {
            NameHash::Fnv1a => fnv1a(name),
            NameHash::SipHash13(key) => {
                let mut h = siphasher::sip::SipHasher13::new_with_key(key);
                h.write(name);
                h.finish()
            }
        }
    }
}

/// FNV-1a, 64-bit: the hash of images without `keyed_hash`.
pub fn fnv1a(name: &[u8]) -> u64 {
    name.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The hash of `name` in the image whose region is `bytes` (see [`NameHash::of`]).
pub fn hash(bytes: &[u8], name: &[u8]) -> FsResult<u64> {
    Ok(NameHash::of(bytes)?.hash(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // docs/format.md section 7.1.
        assert_eq!(fnv1a(b"lost+found"), 0xa213_ba07_215f_7714);
        // SipHash-1-3 of "" under key 00 01 .. 0f (the reference test key).
        let key: [u8; 16] = std::array::from_fn(|i| i as u8);
        let h = NameHash::SipHash13(key);
        assert_eq!(h.hash(b""), 0xabac_0158_050f_c4dc);
        assert_ne!(h.hash(b"a"), NameHash::SipHash13([0; 16]).hash(b"a"));
    }
}
