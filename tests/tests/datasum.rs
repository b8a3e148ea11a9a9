//! (issue 11, item 7) Data checksums: a CRC32C per data block in the metadata.
//!
//! * Files written through every write path (new blocks, copy-on-write overwrite, appends into
//!   a partly filled last block, truncate into a block, punched holes, preallocated blocks
//!   written, mmap) read back right and scrub clean (`fsck -c`).
//! * A bit flipped in a data block of an unmounted image: the read of that block answers EIO
//!   (and the daemon logs inode, offset and block), the rest of the file and every other file
//!   read right, `fsck -c` names the file (exit 4), `fsck -n` without `-c` is clean.
//! * `-o nodatasum`: reads are not verified, files written become unchecksummed (scrub counts
//!   them) and read as before on a checksumming mount.
//! * An image without the `data_csum` feature (as older mkfs made) reads as before and
//!   `fsck -c` says it has no checksums.

#[allow(dead_code)]
mod posix_common;

use rvmfs_tests::*;
use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

const BLOCK: usize = 4096;

/// Flip bit 0 of the byte `at` of the image file.
fn flip(image: &Path, at: u64) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    b[0] ^= 1;
    f.write_all_at(&b, at).unwrap();
    f.sync_all().unwrap();
}

/// Image offset of the first occurrence of `needle` (a data block's contents).
fn find(image: &Path, needle: &[u8]) -> u64 {
    let img = fs::read(image).unwrap();
    let at = img
        .windows(needle.len())
        .step_by(BLOCK)
        .position(|w| w == needle);
    match at {
        Some(i) => (i * BLOCK) as u64,
        None => panic!("block not found in the image"),
    }
}

fn eio(r: std::io::Result<impl Sized>) -> bool {
    matches!(r, Err(e) if e.raw_os_error() == Some(libc::EIO))
}

/// Write files through every write path; returns (name, expected contents).
fn write_all_paths(m: &Mounted) -> Vec<(&'static str, Vec<u8>)> {
    let mut want = Vec::new();
    // New blocks, unaligned end.
    let victim = pattern(1, 300_000);
    fs::write(m.path("victim"), &victim).unwrap();
    want.push(("victim", victim));
    let other = pattern(2, 200_000);
    fs::write(m.path("bystander"), &other).unwrap();
    want.push(("bystander", other));
    // Appends into a partly filled last block (small, logged; then larger).
    let mut app = b"hello".to_vec();
    fs::write(m.path("append"), &app).unwrap();
    for i in 0..20u64 {
        let more = pattern(10 + i, 700 + 300 * i as usize);
        let mut f = OpenOptions::new()
            .append(true)
            .open(m.path("append"))
            .unwrap();
        f.write_all(&more).unwrap();
        app.extend_from_slice(&more);
    }
    want.push(("append", app));
    // Copy-on-write overwrites inside blocks and across them.
    let mut cow = pattern(3, 5 * BLOCK + 123);
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(m.path("cow"))
        .unwrap();
    f.write_all_at(&cow, 0).unwrap();
    for (at, len) in [
        (10usize, 20usize),
        (4000, 200),
        (BLOCK * 2, BLOCK),
        (5 * BLOCK, 123),
    ] {
        let p = pattern(at as u64, len);
        f.write_all_at(&p, at as u64).unwrap();
        cow[at..at + len].copy_from_slice(&p);
    }
    drop(f);
    want.push(("cow", cow));
    // Truncate into the middle of a block, then grow past it with a gap.
    let mut tr = pattern(4, 20_000);
    fs::write(m.path("trunc"), &tr).unwrap();
    let f = OpenOptions::new()
        .write(true)
        .open(m.path("trunc"))
        .unwrap();
    f.set_len(9_000).unwrap();
    tr.truncate(9_000);
    f.write_all_at(b"tail", 12_000).unwrap();
    tr.resize(12_000, 0);
    tr.extend_from_slice(b"tail");
    drop(f);
    want.push(("trunc", tr));
    // A punched hole with partial blocks at both ends; preallocated blocks then written.
    let mut ph = pattern(5, 4 * BLOCK);
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(m.path("punch"))
        .unwrap();
    f.write_all_at(&ph, 0).unwrap();
    let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    // SAFETY: fallocate on an open descriptor.
    assert_eq!(
        unsafe { libc::fallocate(f.as_raw_fd(), mode, 1000, 2 * BLOCK as i64) },
        0
    );
    ph[1000..1000 + 2 * BLOCK].fill(0);
    drop(f);
    want.push(("punch", ph));
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(m.path("prealloc"))
        .unwrap();
    // SAFETY: fallocate on an open descriptor.
    assert_eq!(
        unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, 4 * BLOCK as i64) },
        0
    );
    f.write_all_at(b"written", 5000).unwrap();
    let mut pa = vec![0u8; 4 * BLOCK];
    pa[5000..5007].copy_from_slice(b"written");
    drop(f);
    want.push(("prealloc", pa));
    want.push(("mmap", mmap_write(&m.path("mmap"))));
    want
}

/// Write a file through a shared mapping (the kernel's writeback sends write requests).
fn mmap_write(path: &Path) -> Vec<u8> {
    let data = pattern(6, 3 * BLOCK);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap();
    f.set_len(data.len() as u64).unwrap();
    // SAFETY: a shared mapping of a file we hold open, of its length; unmapped below.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            data.len(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        std::ptr::copy_nonoverlapping(data.as_ptr(), p as *mut u8, data.len());
        assert_eq!(libc::msync(p, data.len(), libc::MS_SYNC), 0);
        libc::munmap(p, data.len());
    }
    data
}

fn assert_files(m: &Mounted, want: &[(&str, Vec<u8>)], except: &str) {
    for (name, data) in want.iter().filter(|(n, _)| *n != except) {
        assert_file(m.path(name), data);
    }
}

#[test]
fn a_flipped_bit_answers_eio_and_the_scrub_names_the_file() {
    require_fuse!();
    let mut m = Mounted::with_mkfs(&["-s", "64M"]);
    let want = write_all_paths(&m);
    assert_files(&m, &want, "");
    m.unmount_ok();
    let (code, out) = m.fsck(&["-n", "-c"]);
    assert_eq!(code, 0, "fsck -n -c before the damage:\n{out}");
    assert!(out.contains("0 damaged files"), "{out}");

    // Damage block 2 of `victim` (file offset 8192).
    let victim = &want[0].1;
    let at = find(m.image(), &victim[2 * BLOCK..3 * BLOCK]);
    flip(m.image(), at + 77);

    m.mount();
    assert!(
        eio(fs::read(m.path("victim"))),
        "reading the damaged file must fail"
    );
    let mut f = fs::File::open(m.path("victim")).unwrap();
    let mut first = vec![0u8; BLOCK];
    f.read_exact(&mut first).unwrap();
    assert_eq!(first, victim[..BLOCK], "an undamaged block reads right");
    f.seek(SeekFrom::Start(4 * BLOCK as u64)).unwrap();
    let mut later = vec![0u8; BLOCK];
    f.read_exact(&mut later).unwrap();
    assert_eq!(later, victim[4 * BLOCK..5 * BLOCK]);
    assert!(eio(f.read_exact_at(&mut first, 2 * BLOCK as u64 + 100)));
    drop(f);
    assert_files(&m, &want, "victim");
    m.unmount_ok();
    let log = m.daemon_log();
    assert!(
        log.contains("data checksum mismatch at file offset 8192"),
        "the daemon logs inode, offset and block:\n{log}"
    );

    let (code, out) = m.fsck(&["-n", "-c"]);
    assert_eq!(code, 4, "fsck -n -c after the damage:\n{out}");
    assert!(out.contains("(/victim): 1 data blocks fail"), "{out}");
    assert!(
        out.contains("1 damaged files") && !out.contains("bystander"),
        "{out}"
    );
    let (code, out) = m.fsck(&["-n"]);
    assert_eq!(code, 0, "the metadata is not affected:\n{out}");
}

/// Time the daemon of `m` spent computing write checksums since it mounted, ns.
fn summing_ns(m: &Mounted) -> u64 {
    posix_common::counters(&m.path(""))["csum_write_ns"]
}

#[test]
fn nodatasum_neither_verifies_nor_keeps_checksums() {
    require_fuse!();
    let mut m = Mounted::with_mkfs(&["-s", "64M"]);
    let summed = pattern(7, 10 * BLOCK);
    assert_eq!(summing_ns(&m), 0);
    fs::write(m.path("summed"), &summed).unwrap();
    assert!(summing_ns(&m) > 0, "the write's sums are timed");
    m.unmount_ok();
    m.set_mount_options(&["nodatasum"]);
    m.mount();
    let plain = pattern(8, 10 * BLOCK);
    fs::write(m.path("plain"), &plain).unwrap();
    assert_eq!(summing_ns(&m), 0, "nodatasum: no sums computed");
    m.unmount_ok();
    let (code, out) = m.fsck(&["-n", "-c"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 files not checksummed"), "{out}");

    // Damage both; without checksums the flipped bit is read back (as on ext4).
    flip(m.image(), find(m.image(), &summed[BLOCK..2 * BLOCK]) + 5);
    flip(m.image(), find(m.image(), &plain[BLOCK..2 * BLOCK]) + 5);
    m.mount();
    assert_ne!(
        fs::read(m.path("summed")).unwrap(),
        summed,
        "nodatasum: not verified"
    );
    m.unmount_ok();
    m.set_mount_options(&[]);
    m.mount();
    assert!(eio(fs::read(m.path("summed"))));
    assert_ne!(
        fs::read(m.path("plain")).unwrap(),
        plain,
        "a NODATASUM file is not verified"
    );
    // Rewritten from empty on a checksumming mount, it is checksummed again.
    fs::write(m.path("plain"), &plain).unwrap();
    m.unmount_ok();
    let (code, out) = m.fsck(&["-n", "-c"]);
    assert_eq!(code, 4, "{out}");
    assert!(
        out.contains("(/summed)") && out.contains("0 files not checksummed"),
        "{out}"
    );
}

/// Turn `data_csum` off in an unmounted image (as an older mkfs made it): the header's and
/// the superblock's ro-compat words and the superblock's `csum_table` (docs/format.md 2, 5.1).
fn clear_data_csum(image: &Path) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)
        .unwrap();
    let mut h = [0u8; 0x90];
    f.read_exact_at(&mut h, 0).unwrap();
    h[0x84..0x88].fill(0);
    let crc = crc32c::crc32c(&h[0x80..0x8C]);
    h[0x8C..0x90].copy_from_slice(&crc.to_le_bytes());
    f.write_all_at(&h[0x80..], 0x80).unwrap();
    let segment = u64::from_le_bytes(h[0x30..0x38].try_into().unwrap());
    let segment_len = u64::from_le_bytes(h[0x38..0x40].try_into().unwrap());
    // The primary superblock, and its backup (compat bit 0, docs/format.md section 5.6).
    let mut copies = vec![segment];
    if h[0x80] & 1 != 0 {
        copies.push(segment + segment_len - 4096);
    }
    for sb in copies {
        f.write_all_at(&[0u8; 4], sb + 0x104).unwrap();
        f.write_all_at(&[0u8; 8], sb + 0x120).unwrap();
    }
    f.sync_all().unwrap();
}

#[test]
fn an_image_without_data_csum_reads_as_before() {
    require_fuse!();
    let mut m = Mounted::unmounted(&["-s", "64M"]);
    clear_data_csum(m.image());
    m.mount();
    let data = pattern(9, 6 * BLOCK + 5);
    fs::write(m.path("f"), &data).unwrap();
    assert_file(m.path("f"), &data);
    m.unmount_ok();
    let (code, out) = m.fsck(&["-n", "-c"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no data checksums on this image"), "{out}");
    flip(m.image(), find(m.image(), &data[BLOCK..2 * BLOCK]) + 9);
    m.mount();
    assert_ne!(
        fs::read(m.path("f")).unwrap(),
        data,
        "no checksums: read as before"
    );
    m.unmount_ok();
    m.assert_fsck_clean();
}
