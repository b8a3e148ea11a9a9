//! Files whose size went down (`file::truncate`) in a commit that may not be durable yet.
//!
//! An append into the last, partly written block of a file with data checksums may write in
//! place, like an append without them, only if no state recovery can reach shows more of
//! that block than the file's size now: the checksum of every such state covers only the
//! bytes up to its size (`datasum::valid_len`), so bytes past the size can change under it.
//! A state with a larger size exists only while a shrink is not durable (the size goes down
//! nowhere else; after `kill -9` the spool's records come back, after a power cut only the
//! durable ones, and every state from the durable one on is at or after that shrink). Before
//! this, every such append copied the block on write: an untarred file written in 10 KiB
//! writes got a new extent per write (3 a file), and `rm -rf` punched each of them.

use rvm_core::Lsn;
use std::collections::HashMap;

/// Inode -> Lsn of the last commit that made it shorter (`Lsn::MAX`: a commit whose record
/// may or may not be in the log, kept until the next mount).
#[derive(Default)]
pub struct Shrinks {
    at: HashMap<u64, Lsn>,
    /// Prune the map (drop durable entries) when it grows past this.
    prune_at: usize,
}

impl Shrinks {
    /// After a commit at `lsn` (None: it failed, and its record may still be queued) of a
    /// transaction that shrank `inos`; `durable` is `Rvm::durable_lsn`.
    pub fn note(&mut self, inos: &[u64], lsn: Option<Lsn>, durable: Lsn) {
        for &ino in inos {
            self.at.insert(ino, lsn.unwrap_or(Lsn::MAX));
        }
        if self.at.len() > self.prune_at {
            self.at.retain(|_, l| *l >= durable);
            self.prune_at = (self.at.len() * 2).max(1024);
        }
    }

    /// Whether every state recovery can reach has file `ino` at most as long as now: no
    /// shrink of it, or only ones below `durable()` (`Rvm::durable_lsn`, asked only when
    /// the file has a shrink on record: it takes rvm-core's lock).
    pub fn settled(&self, ino: u64, durable: impl FnOnce() -> Lsn) -> bool {
        self.at.get(&ino).is_none_or(|&l| l < durable())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shrink_unsettles_its_file_until_durable() {
        let mut s = Shrinks::default();
        assert!(s.settled(7, || 0));
        s.note(&[7], Some(10), 5);
        assert!(!s.settled(7, || 10), "Lsn 10 is not below durable 10");
        assert!(s.settled(7, || 11) && s.settled(8, || 0));
        s.note(&[8], None, 11);
        assert!(
            !s.settled(8, || u64::MAX - 1),
            "a failed commit's shrink never settles"
        );
    }
}
