//! Crash simulation: a [`Storage`] that records every write and sync barrier and produces
//! the states a real disk may be left in by a power loss or a crash (issue 3).
//!
//! The simulated disk keeps the image as of the last barrier (`sync`) and the list of writes
//! since then. A crash image is the durable image plus some of those writes:
//! * [`Crash::Prefix`]: the first `n` writes, the next one possibly torn (only its first
//!   bytes reached the disk) or filled with garbage (a sector written with junk);
//! * [`Crash::Subset`]: any subset of them, in order (the disk reorders unsynced writes);
//! * [`Crash::All`]: every write (a process crash: the page cache survives).
//!
//! [`SimStorage::crash_after`] makes the disk "lose power" after a number of I/O operations:
//! from then on the state is frozen and every read, write and sync fails, so the code under
//! test stops wherever it was (in a commit, a truncation, a recovery...).

use std::io;
use std::sync::Mutex;

use crate::storage::Storage;

/// How the last write reaching the disk in a [`Crash::Prefix`] is damaged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tear {
    /// The write is not applied at all.
    None,
    /// Only the first `n` bytes of the write reached the disk.
    Torn(usize),
    /// The whole write range holds garbage (deterministic from the seed).
    Garbage(u64),
}

/// Which writes since the last barrier a crash image keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Crash {
    /// The first `n` writes, then write `n` (if any) damaged as `tear` says.
    Prefix { n: usize, tear: Tear },
    /// The writes whose indexes are listed (any order; applied in write order).
    Subset(Vec<usize>),
    /// All writes (process crash).
    All,
}

#[derive(Debug, Default)]
struct State {
    /// The image as of the last barrier.
    durable: Vec<u8>,
    /// What reads see: `durable` plus every write since.
    current: Vec<u8>,
    /// Writes since the last barrier, in order.
    pending: Vec<(u64, Vec<u8>)>,
    writes: u64,
    syncs: u64,
    /// I/O operations (writes and syncs) left before the power fails; `None` = never.
    budget: Option<u64>,
    crashed: bool,
}

/// A simulated disk for crash tests; see the module docs.
#[derive(Debug, Default)]
pub struct SimStorage {
    st: Mutex<State>,
}

fn put(img: &mut Vec<u8>, off: u64, data: &[u8]) {
    let off = off as usize;
    let end = off + data.len();
    if img.len() < end {
        img.resize(end, 0);
    }
    img[off..end].copy_from_slice(data);
}

fn crashed_err() -> io::Error {
    io::Error::other("simulated power loss")
}

impl SimStorage {
    /// A zero-filled disk of `len` bytes (all durable).
    pub fn new(len: usize) -> Self {
        Self::from_bytes(vec![0; len])
    }

    /// A disk holding `bytes` (all durable), e.g. a crash image.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        SimStorage {
            st: Mutex::new(State {
                current: bytes.clone(),
                durable: bytes,
                ..Default::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lose power after `ops` more writes and syncs (`None`: never). At that point the
    /// state freezes and all I/O fails.
    pub fn crash_after(&self, ops: Option<u64>) {
        let mut s = self.lock();
        s.budget = ops;
        if ops == Some(0) {
            s.crashed = true;
        }
    }

    /// Lose power now.
    pub fn crash_now(&self) {
        self.crash_after(Some(0));
    }

    /// Whether the power is lost.
    pub fn is_crashed(&self) -> bool {
        self.lock().crashed
    }

    /// Writes and syncs performed so far.
    pub fn op_counts(&self) -> (u64, u64) {
        let s = self.lock();
        (s.writes, s.syncs)
    }

    /// Writes since the last barrier.
    pub fn pending_writes(&self) -> usize {
        self.lock().pending.len()
    }

    /// What reads see now (every write applied).
    pub fn image(&self) -> Vec<u8> {
        self.lock().current.clone()
    }

    /// The image as of the last barrier.
    pub fn durable_image(&self) -> Vec<u8> {
        self.lock().durable.clone()
    }

    /// The disk contents after a crash of the given kind.
    pub fn crash_image(&self, crash: &Crash) -> Vec<u8> {
        let s = self.lock();
        let mut img = s.durable.clone();
        match crash {
            Crash::All => return s.current.clone(),
            Crash::Subset(keep) => {
                for (i, (off, data)) in s.pending.iter().enumerate() {
                    if keep.contains(&i) {
                        put(&mut img, *off, data);
                    }
                }
            }
            Crash::Prefix { n, tear } => {
                let n = (*n).min(s.pending.len());
                for (off, data) in &s.pending[..n] {
                    put(&mut img, *off, data);
                }
                if let Some((off, data)) = s.pending.get(n) {
                    match *tear {
                        Tear::None => {}
                        Tear::Torn(k) => put(&mut img, *off, &data[..k.min(data.len())]),
                        Tear::Garbage(seed) => {
                            let mut x = seed | 1;
                            let junk: Vec<u8> = (0..data.len())
                                .map(|_| {
                                    x ^= x << 13;
                                    x ^= x >> 7;
                                    x ^= x << 17;
                                    x as u8
                                })
                                .collect();
                            put(&mut img, *off, &junk);
                        }
                    }
                }
            }
        }
        img
    }

    /// A crash of a random kind chosen from `seed` (every kind of [`Crash`] and [`Tear`]
    /// is possible), and its image.
    pub fn random_crash(&self, seed: u64) -> (Crash, Vec<u8>) {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let np = self.lock().pending.len();
        let crash = match next() % 4 {
            0 => Crash::All,
            1 => {
                let keep = (0..np).filter(|_| next() % 2 == 0).collect();
                Crash::Subset(keep)
            }
            _ => {
                let n = (next() % (np as u64 + 1)) as usize;
                let tear = match next() % 3 {
                    0 => Tear::None,
                    1 => Tear::Torn((next() % 4096) as usize),
                    _ => Tear::Garbage(next()),
                };
                Crash::Prefix { n, tear }
            }
        };
        let img = self.crash_image(&crash);
        (crash, img)
    }

    /// Count one I/O operation against the budget; false if the power is (now) lost.
    fn spend(s: &mut State) -> bool {
        if s.crashed {
            return false;
        }
        if let Some(b) = s.budget.as_mut() {
            if *b == 0 {
                s.crashed = true;
                return false;
            }
            *b -= 1;
        }
        true
    }
}

impl Storage for SimStorage {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let s = self.lock();
        if s.crashed {
            return Err(crashed_err());
        }
        buf.fill(0);
        let len = s.current.len() as u64;
        if offset < len {
            let start = offset as usize;
            let n = buf.len().min(s.current.len() - start);
            buf[..n].copy_from_slice(&s.current[start..start + n]);
        }
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut s = self.lock();
        if !Self::spend(&mut s) {
            return Err(crashed_err());
        }
        s.writes += 1;
        put(&mut s.current, offset, buf);
        s.pending.push((offset, buf.to_vec()));
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        let mut s = self.lock();
        if !Self::spend(&mut s) {
            return Err(crashed_err());
        }
        s.syncs += 1;
        let pending = std::mem::take(&mut s.pending);
        for (off, data) in pending {
            put(&mut s.durable, off, &data);
        }
        Ok(())
    }

    /// A write (which a crash can tear or drop like any other) and then a barrier for the
    /// writes overlapping its range only: they become durable, in order; every other
    /// pending write stays volatile. Two I/O operations against the crash budget.
    fn write_durable_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.write_at(buf, offset)?;
        let mut s = self.lock();
        if !Self::spend(&mut s) {
            return Err(crashed_err());
        }
        s.syncs += 1;
        let end = offset + buf.len() as u64;
        let pending = std::mem::take(&mut s.pending);
        for (off, data) in pending {
            if off < end && offset < off + data.len() as u64 {
                put(&mut s.durable, off, &data);
            } else {
                s.pending.push((off, data));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_images() {
        let s = SimStorage::new(16);
        s.write_at(&[1; 4], 0).unwrap();
        s.sync().unwrap();
        s.write_at(&[2; 4], 4).unwrap();
        s.write_at(&[3; 4], 8).unwrap();
        assert_eq!(s.pending_writes(), 2);
        let p0 = s.crash_image(&Crash::Prefix {
            n: 0,
            tear: Tear::Torn(2),
        });
        assert_eq!(&p0[..8], &[1, 1, 1, 1, 2, 2, 0, 0]);
        let sub = s.crash_image(&Crash::Subset(vec![1]));
        assert_eq!(&sub[4..12], &[0, 0, 0, 0, 3, 3, 3, 3]);
        assert_eq!(s.crash_image(&Crash::All), s.image());
        let g = s.crash_image(&Crash::Prefix {
            n: 1,
            tear: Tear::Garbage(7),
        });
        assert_eq!(&g[4..8], &[2; 4]);
        s.crash_after(Some(1));
        s.write_at(&[4; 4], 12).unwrap();
        assert!(s.sync().is_err());
        assert!(s.is_crashed());
        assert!(s.write_at(&[5; 1], 0).is_err());
        assert_eq!(s.pending_writes(), 3);
    }

    #[test]
    fn durable_write_syncs_its_range_only() {
        let s = SimStorage::new(16);
        s.write_at(&[1; 4], 0).unwrap();
        s.write_at(&[2; 4], 8).unwrap();
        s.write_durable_at(&[3; 2], 10).unwrap();
        assert_eq!(s.pending_writes(), 1);
        let d = s.durable_image();
        assert_eq!(
            &d[..4],
            &[0; 4],
            "the write outside the range stays volatile"
        );
        assert_eq!(
            &d[8..12],
            &[2, 2, 3, 3],
            "overlapping writes are durable, in order"
        );
    }
}
