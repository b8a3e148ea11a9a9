//! Power loss around logged overwrites (`rvmfs::ops::pending`): a small overwrite of written
//! blocks goes into the redo record only and reaches its blocks at truncation. On
//! rvm-core's `SimStorage`: a 4-block file, durable; a 4 KiB overwrite of block 1 and an
//! unaligned 4000-byte overwrite across blocks 0 and 1, each followed by an fsync or not,
//! with or without a truncation in between; then cut the power every way `SimStorage` can
//! (every write kept, none, random prefixes with a torn or garbage last write, random
//! subsets). After each cut: recover, fsck finds nothing, every block reads back (checksums
//! match), and the file is one of the states after each overwrite, whole, no earlier than
//! the last fsync: an unsynced overwrite disappears whole, a synced one is there whole.

mod common;

use common::{durable_file_image, open_sim, recovered_x, snapshot};
use rvm_core::sim::{Crash, SimStorage};
use rvmfs::layout::BLOCK_SIZE;
use rvmfs::ops::{file, Fs};
use rvmfs::store::extent_map;
use std::sync::Arc;

const IMAGE: u64 = 4 << 20;
const BS: usize = BLOCK_SIZE as usize;
/// Random crash images per workload.
const CRASHES: u64 = 12;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ seed.wrapping_mul(37) | 1)
        .collect()
}

/// The overwrites: (file offset, bytes).
fn overwrites() -> [(usize, Vec<u8>); 2] {
    [(BS, pattern(BS, 2)), (1000, pattern(4000, 3))]
}

/// The file after each overwrite (state 0: before any).
fn states() -> Vec<Vec<u8>> {
    let mut s = vec![pattern(4 * BS, 1)];
    for (at, data) in overwrites() {
        let mut next = s.last().cloned().unwrap_or_default();
        next[at..at + data.len()].copy_from_slice(&data);
        s.push(next);
    }
    s
}

/// Where block `b` of `ino` is (its physical block).
fn phys(fs: &Fs, ino: u64, b: u64) -> u64 {
    let e = extent_map::find(fs.bytes(), ino, b)
        .expect("extent map")
        .expect("mapped");
    e.phys_of(b)
}

/// Run the overwrites on `image`, an fsync after overwrite i when `sync[i]`, a truncation
/// after the first when `truncate`; returns the disk (power already cut) and the last state
/// an fsync made durable.
fn workload(image: Vec<u8>, ino: u64, sync: [bool; 2], truncate: bool) -> (Arc<SimStorage>, usize) {
    let disk = Arc::new(SimStorage::from_bytes(image));
    let mut fs = open_sim(disk.clone(), IMAGE).expect("open");
    let at = |fs: &Fs, b: u64| (fs.geo.data_offset + phys(fs, ino, b) * BLOCK_SIZE) as usize;
    let before = (phys(&fs, ino, 0), phys(&fs, ino, 1));
    let mut durable = 0;
    for (i, (off, data)) in overwrites().into_iter().enumerate() {
        fs.transact(|op| file::write(op, ino, off as u64, &data, false))
            .expect("overwrite");
        if i == 0 {
            let in_place = &disk.image()[at(&fs, 1)..at(&fs, 1) + BS];
            assert!(
                in_place == &states()[0][BS..2 * BS],
                "a logged overwrite changed its block before truncation"
            );
        }
        if sync[i] {
            fs.rvm.flush().expect("fsync");
            durable = i + 1;
        }
        if i == 0 && truncate {
            fs.rvm.flush().expect("flush before the truncation");
            fs.rvm.truncate().expect("truncation");
            durable = 1;
        }
    }
    assert_eq!(
        (phys(&fs, ino, 0), phys(&fs, ino, 1)),
        before,
        "small overwrites are logged in place, not copied on write"
    );
    assert!(
        snapshot(&fs).expect("reads")["/x"].2 == states()[2],
        "reads see the overwrites"
    );
    disk.crash_now();
    drop(fs);
    (disk, durable)
}

/// Recover `image`: fsck clean, every block verifies, /x is a whole state >= `durable`.
fn check_recovered(image: Vec<u8>, durable: usize, what: &str) {
    let body = recovered_x(image, IMAGE, what);
    let k = states().iter().position(|s| *s == body);
    assert!(
        k.is_some_and(|k| k >= durable),
        "{what}: /x is state {k:?}, want a whole state from {durable} on"
    );
}

#[test]
fn logged_overwrites_survive_power_loss_whole_or_not_at_all() {
    let (image, ino) = durable_file_image(IMAGE, &states()[0], [6; 16]);
    for sync in [[false, false], [true, false], [false, true], [true, true]] {
        for truncate in [false, true] {
            let (disk, durable) = workload(image.clone(), ino, sync, truncate);
            let what = format!("sync {sync:?} truncate {truncate}");
            check_recovered(disk.crash_image(&Crash::All), durable, &what);
            check_recovered(disk.durable_image(), durable, &what);
            for seed in 1..=CRASHES {
                let (crash, img) = disk.random_crash(seed);
                check_recovered(img, durable, &format!("{what} {crash:?}"));
            }
        }
    }
}
