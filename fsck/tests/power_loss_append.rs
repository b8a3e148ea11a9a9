//! Power loss around appends into a file's partly written last block, with data checksums
//! (`rvmfs::ops::shrinks`): such an append writes in place, and a block's checksum covers
//! only the bytes up to the file's size, so that is safe unless some state recovery can
//! reach has the file longer than now, i.e. a shrink (truncate) is not durable yet; then
//! the block is copied on write. On rvm-core's `SimStorage`: a 10,000-byte file, durable;
//! a truncate to 9,000 bytes (made durable or not) and an append, or two appends, small
//! (logged) and big (100,000 bytes: written in place, or copied on write, unlogged); then
//! cut the power every way `SimStorage` can. After each cut: recover, fsck finds
//! nothing, every block reads back (checksums match), and the file is one of the states the
//! workload went through, no earlier than the last flush.

mod common;

use common::{durable_file_image, open_sim, recovered_x, snapshot};
use rvm_core::sim::{Crash, SimStorage};
use rvmfs::ops::{file, Fs};
use rvmfs::store::extent_map;
use std::sync::Arc;

const IMAGE: u64 = 4 << 20;
/// Random crash images per workload.
const CRASHES: u64 = 12;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ seed.wrapping_mul(37) | 1)
        .collect()
}

/// One step of a workload.
#[derive(Clone, Copy, Debug)]
enum Step {
    Truncate(u64),
    Append(usize, u8),
    Flush,
}

/// The file after each step that changes it (state 0: before any).
fn states(steps: &[Step]) -> Vec<Vec<u8>> {
    let mut s = vec![pattern(10_000, 1)];
    for step in steps {
        let mut next = s.last().cloned().unwrap_or_default();
        match *step {
            Step::Truncate(n) => next.truncate(n as usize),
            Step::Append(n, seed) => next.extend_from_slice(&pattern(n, seed)),
            Step::Flush => continue,
        }
        s.push(next);
    }
    s
}

/// The physical block holding file block 2 of `ino` (the last one, partly written).
fn last_block(fs: &Fs, ino: u64) -> u64 {
    let e = extent_map::find(fs.bytes(), ino, 2)
        .expect("extent map")
        .expect("mapped");
    e.phys_of(2)
}

/// Run `steps` on `image`; returns the disk (power already cut), the first state a crash
/// may recover (the one the last flush made durable), and whether the last block stayed
/// where it was (written in place).
fn workload(image: Vec<u8>, ino: u64, steps: &[Step]) -> (Arc<SimStorage>, usize, bool) {
    let disk = Arc::new(SimStorage::from_bytes(image));
    let mut fs = open_sim(disk.clone(), IMAGE).expect("open");
    let before = last_block(&fs, ino);
    let (mut state, mut durable) = (0, 0);
    for step in steps {
        match *step {
            Step::Truncate(n) => {
                fs.transact(|op| file::truncate(op, ino, n))
                    .expect("truncate");
            }
            Step::Append(n, seed) => {
                let at = fs.inode(ino).expect("inode").size;
                fs.transact(|op| file::write(op, ino, at, &pattern(n, seed), false))
                    .expect("append");
            }
            Step::Flush => {
                fs.rvm.flush().expect("flush");
                durable = state;
                continue;
            }
        }
        state += 1;
    }
    let want = states(steps).pop().unwrap_or_default();
    assert!(
        snapshot(&fs).expect("reads")["/x"].2 == want,
        "reads see every step"
    );
    let in_place = last_block(&fs, ino) == before;
    disk.crash_now();
    drop(fs);
    (disk, durable, in_place)
}

/// Recover `image`: fsck clean, every block verifies, /x is a whole state >= `durable`.
fn check_recovered(image: Vec<u8>, steps: &[Step], durable: usize, what: &str) {
    let body = recovered_x(image, IMAGE, what);
    let k = states(steps).iter().position(|s| *s == body);
    assert!(
        k.is_some_and(|k| k >= durable),
        "{what}: /x is state {k:?}, want a whole state from {durable} on"
    );
}

/// Run `steps`, check where the last block went (`want_in_place`; a small append into a
/// block that may not change in place is logged and stays there too), and recover every
/// crash image.
fn run(steps: &[Step], want_in_place: bool) {
    let (image, ino) = durable_file_image(IMAGE, &pattern(10_000, 1), [7; 16]);
    let (disk, durable, in_place) = workload(image, ino, steps);
    let what = format!("{steps:?}");
    assert_eq!(in_place, want_in_place, "{what}: the last block stayed");
    check_recovered(disk.crash_image(&Crash::All), steps, durable, &what);
    check_recovered(disk.durable_image(), steps, durable, &what);
    for seed in 1..=CRASHES {
        let (crash, img) = disk.random_crash(seed);
        check_recovered(img, steps, durable, &format!("{what} {crash:?}"));
    }
}

/// An append of `n` bytes: small ones are logged, big ones not.
const SMALL: usize = 2_000;
const BIG: usize = 100_000;

#[test]
fn appends_write_their_last_block_in_place() {
    for n in [SMALL, BIG] {
        run(&[Step::Append(700, 2), Step::Append(n, 3)], true);
        run(
            &[Step::Append(700, 2), Step::Flush, Step::Append(n, 3)],
            true,
        );
    }
}

#[test]
fn an_append_after_a_shrink_that_is_not_durable_copies_the_block() {
    // The durable state has 10,000 bytes, and block 2's checksum covers 1,808 of its
    // bytes: an append from 9,000 in place would change 1,000 of them before its commit.
    run(&[Step::Truncate(9_000), Step::Append(BIG, 2)], false);
    // A small one goes into the redo record (a logged overwrite), applied in place only
    // once the records before it are durable.
    run(&[Step::Truncate(9_000), Step::Append(SMALL, 2)], true);
}

#[test]
fn an_append_after_a_durable_shrink_writes_in_place() {
    for n in [SMALL, BIG] {
        run(
            &[Step::Truncate(9_000), Step::Flush, Step::Append(n, 2)],
            true,
        );
    }
}
