//! The name hash: FNV-1a, 64-bit, over a name's bytes. It is stored on disk (inside the keys
//! of the dentry and xattr trees, see `dentry` and `xattr`), so it can never change.
//!
//! Both trees key a name as `hash bits << 8 | k`: the low byte k (0..255) tells apart names
//! whose kept hash bits collide, so a lookup is one seek plus a scan of (almost always) one
//! entry.

/// FNV-1a, 64-bit: a stable hash (it is stored on disk).
pub fn hash(name: &[u8]) -> u64 {
    name.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}
