//! The first big write after a mount that recovered records (`ops::data_log`): until
//! truncation has applied those records every data write is logged, and a write logged
//! whole can outgrow the log. Such a write has the truncation done first instead of logging
//! its data: the mount's background truncation is held up here (its region-page writes wait
//! at a `StallStorage` gate) so the write provably comes first. CI once failed
//! `fsck/tests/power_loss_reuse.rs` on exactly this race, with `RecordTooLarge`.

use rvm_core::{MemStorage, Storage};
use rvmfs::image::stall::StallStorage;
use rvmfs::image::{self, OpenMode};
use rvmfs::ops::{file, Fs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

mod mem_image;

const IMAGE: u64 = 16 << 20;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

/// A gate file for `StallStorage` of this test process; its `.data` twin gates plain writes.
fn gate() -> (PathBuf, PathBuf) {
    let base = std::env::temp_dir().join(format!("rvmfs-recovered-write-{}", std::process::id()));
    let mut data = base.clone().into_os_string();
    data.push(".data");
    (base, data.into())
}

#[test]
fn a_big_first_write_after_recovery_waits_for_truncation_instead_of_outgrowing_the_log() {
    let disk = Arc::new(MemStorage::new(IMAGE as usize));
    let (mut fs, ino) = mem_image::with_empty_file(&disk, IMAGE);
    fs.transact(|op| file::write(op, ino, 0, b"before the crash", false))
        .unwrap();
    fs.rvm.flush().unwrap();
    drop(fs); // no truncation: the records stay live in the log

    let (flushes, writes) = gate();
    let stalled: Arc<dyn Storage> = Arc::new(StallStorage::new(disk.clone(), flushes));
    let img = image::open_on(stalled, IMAGE, OpenMode::default()).unwrap();
    assert!(
        img.rvm.stats().records_recovered > 0,
        "the mount recovers records"
    );
    std::fs::write(&writes, b"").unwrap(); // hold the truncation the mount asks for
    let mut fs = Fs::new(img.region, img.rvm, img.header, img.storage).unwrap();
    let ungate = {
        let writes = writes.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            std::fs::remove_file(writes)
        })
    };

    let capacity = 1 << 20; // the log's whole size: no record of it fits
    let data = pattern(2 * capacity, 3);
    let wrote = fs.transact(|op| file::write(op, ino, 0, &data, false));
    ungate.join().unwrap().unwrap();
    wrote.expect("the write goes in place once truncation applied the recovered records");
    assert!(
        fs.rvm.applied_lsn() >= fs.dlog.recovered,
        "truncation applied the recovered records"
    );
    let node = fs.inode(ino).unwrap();
    let back = file::read(&fs.geo, fs.bytes(), ino, 0, node.size).unwrap();
    assert!(back == data, "the file reads what was written");

    fs.rvm.flush().unwrap();
    drop(fs);
    let fs = mem_image::open(disk, IMAGE);
    let back = file::read(&fs.geo, fs.bytes(), ino, 0, data.len() as u64).unwrap();
    assert!(back == data, "and again after recovery");
}
