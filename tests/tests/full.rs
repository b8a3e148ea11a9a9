//! (issue 5, item 5) Full disk, full inode table and full log.
//!
//! * Writing until the data area is full fails with ENOSPC (no other error), the image is
//!   clean for fsck, the files written before are intact, and deleting files gives the space
//!   back (statfs) so writing works again.
//! * Creating files until the inode table is full fails with ENOSPC, fsck is clean, and an
//!   unlink makes room for one more.
//! * A storm of metadata operations on an image with a 1 MiB log (the minimum mkfs accepts)
//!   wraps the log many times (the committer waits for truncation when it is full); every
//!   operation succeeds, `kill -9` at the end, fsck -n is clean, and after a remount the tree is
//!   exactly what the answered operations produced.

use rvmfs_tests::*;
use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn statvfs(p: &Path) -> libc::statvfs {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid C string and a zeroed out-parameter.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut s) }, 0, "statvfs");
    s
}

fn setxattr(p: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    // SAFETY: valid C strings and a live buffer.
    let r = unsafe {
        libc::setxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn getxattr(p: &Path, name: &str) -> io::Result<Vec<u8>> {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid C strings and a buffer of the length passed.
    let r = unsafe { libc::getxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(r as usize);
    Ok(buf)
}

const FILE_LEN: usize = 4 << 20;

/// Write `data` to a new file at `path`, returning how many bytes went in and the error that
/// stopped it, if any (write(2) by write(2), so a short write is seen as such).
fn write_file(path: &Path, data: &[u8]) -> (usize, Option<io::Error>) {
    let mut f = match fs::File::create(path) {
        Ok(f) => f,
        Err(e) => return (0, Some(e)),
    };
    let mut done = 0;
    while done < data.len() {
        let end = (done + (1 << 20)).min(data.len());
        match f.write(&data[done..end]) {
            Ok(0) => return (done, Some(io::Error::other("write returned 0"))),
            Ok(n) => done += n,
            Err(e) => return (done, Some(e)),
        }
    }
    (done, f.sync_all().err())
}

/// 4 MiB files `f0`, `f1`, ... until one stops with an error: returns the complete ones, the
/// partial one, how many bytes of it were written and the error.
fn fill_with_files(m: &Mounted) -> (Vec<u64>, u64, usize, io::Error) {
    let mut complete = Vec::new();
    let (partial, written, err) = (0..100u64)
        .find_map(|i| {
            let path = m.path(format!("f{i}"));
            let (n, e) = write_file(&path, &pattern(i, FILE_LEN));
            match e {
                None => {
                    complete.push(i);
                    None
                }
                Some(e) => Some((i, n, e)),
            }
        })
        .expect("64 MiB image never filled up");
    (complete, partial, written, err)
}

/// 16 KiB writes into `tail` until ENOSPC; the file must hold only what was written.
/// Returns its length.
fn fill_tail(m: &Mounted) -> u64 {
    let mut tail = fs::File::create(m.path("tail")).unwrap();
    let tail_err = loop {
        if let Err(e) = tail.write_all(&[0x5a; 16384]) {
            break e;
        }
    };
    assert_eq!(tail_err.raw_os_error(), Some(libc::ENOSPC), "{tail_err}");
    drop(tail);
    let tail_len = fs::metadata(m.path("tail")).unwrap().len();
    let tail_bytes = fs::read(m.path("tail")).unwrap();
    assert!(tail_bytes.iter().all(|&b| b == 0x5a), "tail holds garbage");
    tail_len
}

/// Delete every other complete file and the partial ones: the space comes back; then new
/// files fit into it, and after a remount every file left holds its data.
fn delete_and_write_again(m: &mut Mounted, complete: &[u64], partial: u64, full: &libc::statvfs) {
    let mut freed = 0u64;
    for &i in complete.iter().step_by(2) {
        fs::remove_file(m.path(format!("f{i}"))).unwrap();
        freed += (FILE_LEN / 4096) as u64;
    }
    fs::remove_file(m.path(format!("f{partial}"))).unwrap();
    fs::remove_file(m.path("more2")).unwrap();
    fs::remove_file(m.path("tail")).unwrap();
    let after = statvfs(m.mnt());
    assert!(
        after.f_bfree >= full.f_bfree + freed,
        "deleting {freed} blocks of files: free blocks {} -> {}",
        full.f_bfree,
        after.f_bfree
    );
    // Writing works again, into the space just freed.
    for j in 0..(complete.len() / 2) as u64 {
        let (n, e) = write_file(&m.path(format!("g{j}")), &pattern(1000 + j, FILE_LEN));
        assert!(e.is_none(), "g{j}: {e:?} after {n} bytes");
    }
    m.remount();
    for &i in complete.iter().skip(1).step_by(2) {
        assert_file(m.path(format!("f{i}")), pattern(i, FILE_LEN));
    }
    for j in 0..(complete.len() / 2) as u64 {
        assert_file(m.path(format!("g{j}")), pattern(1000 + j, FILE_LEN));
    }
}

#[test]
fn data_area_full_gives_enospc_and_deleting_gives_space_back() {
    require_fuse!();
    let mut m = Mounted::with_mkfs(&["-s", "64M"]);
    let before = statvfs(m.mnt());
    let (complete, partial, written, err) = fill_with_files(&m);
    assert_eq!(
        err.raw_os_error(),
        Some(libc::ENOSPC),
        "file f{partial} stopped at {written} bytes with {err}, not ENOSPC"
    );
    assert!(
        complete.len() >= 10,
        "only {} files of 4 MiB fit",
        complete.len()
    );
    // The last free blocks are usable by smaller writes, down to ENOSPC again.
    let tail_len = fill_tail(&m);
    let full = statvfs(m.mnt());
    assert!(
        full.f_bavail < 8,
        "ENOSPC with {} blocks still free",
        full.f_bavail
    );
    // More writes keep failing with ENOSPC only; metadata-only operations still work.
    let (_, e) = write_file(&m.path("more"), &pattern(999, 1 << 20));
    assert_eq!(e.and_then(|e| e.raw_os_error()), Some(libc::ENOSPC));
    fs::create_dir(m.path("still-room-for-names")).unwrap();
    fs::rename(m.path("more"), m.path("more2")).unwrap();
    // The partial file holds a prefix of what was written (the kernel may report a short write
    // before ENOSPC), never garbage.
    let got = fs::read(m.path(format!("f{partial}"))).unwrap();
    assert!(got.len() <= FILE_LEN);
    assert!(
        got == pattern(partial, FILE_LEN)[..got.len()],
        "partial file f{partial} ({} bytes) is not a prefix of its data",
        got.len()
    );
    eprintln!(
        "{} files of 4 MiB written, f{partial} stopped at {written} bytes with ENOSPC, then {tail_len} bytes in 16 KiB writes ({} of {} blocks free before, {} after)",
        complete.len(),
        before.f_bfree,
        before.f_blocks,
        full.f_bfree
    );
    m.unmount_ok();
    m.assert_fsck_clean();
    m.mount();
    for &i in &complete {
        assert_file(m.path(format!("f{i}")), pattern(i, FILE_LEN));
    }
    delete_and_write_again(&mut m, &complete, partial, &full);
    m.unmount_ok();
    m.assert_fsck_clean();
}

#[test]
fn inode_table_full_gives_enospc() {
    require_fuse!();
    let mut m = Mounted::with_mkfs(&["-s", "64M", "-N", "64"]);
    let st = statvfs(m.mnt());
    assert_eq!(st.f_files, 64);
    let mut made = 0u64;
    let err = loop {
        match fs::write(m.path(format!("f{made}")), made.to_le_bytes()) {
            Ok(()) => made += 1,
            Err(e) => break e,
        }
        assert!(made <= 64, "more files than inodes");
    };
    assert_eq!(
        err.raw_os_error(),
        Some(libc::ENOSPC),
        "create number {made} failed with {err}, not ENOSPC"
    );
    assert_eq!(made, 63, "64 inodes, the root holds one");
    assert_eq!(statvfs(m.mnt()).f_ffree, 0);
    for what in ["mkdir", "symlink"] {
        let r = if what == "mkdir" {
            fs::create_dir(m.path("d"))
        } else {
            std::os::unix::fs::symlink("f0", m.path("s"))
        };
        assert_eq!(
            r.unwrap_err().raw_os_error(),
            Some(libc::ENOSPC),
            "{what} on a full inode table"
        );
    }
    // A hard link needs no inode.
    fs::hard_link(m.path("f0"), m.path("f0-link")).unwrap();
    m.unmount_ok();
    m.assert_fsck_clean();
    m.mount();
    for i in 0..made {
        assert_file(m.path(format!("f{i}")), i.to_le_bytes());
    }
    fs::remove_file(m.path("f1")).unwrap();
    fs::create_dir(m.path("d")).unwrap();
    assert_eq!(
        fs::write(m.path("one-more"), b"x")
            .unwrap_err()
            .raw_os_error(),
        Some(libc::ENOSPC)
    );
    m.unmount_ok();
    m.assert_fsck_clean();
}

/// The logical head position (bytes ever truncated from the log) and the log's capacity, from
/// the status block at the start of the log area (two copies; the valid one with the higher
/// generation wins; see rvm-core/src/status.rs).
fn log_status(image: &Path) -> (u64, u64) {
    use std::os::unix::fs::FileExt;
    let f = fs::File::open(image).unwrap();
    let mut head = [0u8; 64];
    f.read_exact_at(&mut head, 0).unwrap();
    let log = u64::from_le_bytes(head[32..40].try_into().unwrap()); // header.log_offset
    let mut bytes = vec![0u8; 8192];
    f.read_exact_at(&mut bytes, log).unwrap();
    let rd = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    (0..2)
        .map(|i| i * 4096)
        .filter(|&c| &bytes[c..c + 4] == b"RVMS")
        .map(|c| (rd(c + 8), rd(c + 16), rd(c + 32)))
        .max()
        .map(|(_, head, cap)| (head, cap))
        .expect("no valid log status block")
}

/// Directories of the metadata storm.
const DIRS: u64 = 16;

/// Path -> (contents, value of `user.k`).
type StormModel = BTreeMap<String, (Vec<u8>, Vec<u8>)>;

/// `ops` rounds of create, setxattr, rename into another directory, now and then an unlink
/// or an xattr overwrite, in `DIRS` directories. Returns the model of what is left and the
/// number of operations answered.
fn metadata_storm(m: &Mounted, ops: u64) -> (StormModel, u64) {
    let mut model: StormModel = BTreeMap::new();
    for d in 0..DIRS {
        fs::create_dir(m.path(format!("d{d}"))).unwrap();
    }
    let mut x = 0x5eed_u64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut count = 0u64;
    for i in 0..ops {
        // create, setxattr, rename into another directory, and every third: unlink an older one.
        let a = format!("d{}/n{i}", i % DIRS);
        let body = format!("file {i}").into_bytes();
        fs::write(m.path(&a), &body).unwrap();
        let value = format!("v{}", rnd() % 1000).into_bytes();
        setxattr(&m.path(&a), "user.k", &value).unwrap();
        let b = format!("d{}/r{i}", rnd() % DIRS);
        fs::rename(m.path(&a), m.path(&b)).unwrap();
        model.insert(b, (body, value));
        count += 4;
        if i % 3 == 2 {
            let victim = model
                .keys()
                .nth((rnd() % model.len() as u64) as usize)
                .unwrap()
                .clone();
            fs::remove_file(m.path(&victim)).unwrap();
            model.remove(&victim);
            count += 1;
        }
        if i % 5 == 4 {
            // Overwrite the xattr of a random survivor.
            let k = model
                .keys()
                .nth((rnd() % model.len() as u64) as usize)
                .unwrap()
                .clone();
            let v = format!("w{i}").into_bytes();
            setxattr(&m.path(&k), "user.k", &v).unwrap();
            model.get_mut(&k).unwrap().1 = v;
            count += 1;
        }
        if i % 500 == 499 {
            // Push the spool into the log now and then (fsync of a directory flushes it all).
            fs::File::open(m.mnt()).unwrap().sync_all().unwrap();
        }
    }
    (model, count)
}

/// Every file in the storm's directories with its contents and `user.k`.
fn storm_files(m: &Mounted) -> StormModel {
    let mut found: StormModel = BTreeMap::new();
    for d in 0..DIRS {
        for e in fs::read_dir(m.path(format!("d{d}"))).unwrap() {
            let e = e.unwrap();
            let rel = format!("d{d}/{}", e.file_name().to_string_lossy());
            let p = e.path();
            found.insert(
                rel,
                (fs::read(&p).unwrap(), getxattr(&p, "user.k").unwrap()),
            );
        }
    }
    found
}

#[test]
fn metadata_storm_wraps_a_small_log_and_loses_nothing_at_kill9() {
    require_fuse!();
    let mut m = Mounted::with_mkfs(&["-s", "256M", "-J", "size=1M", "-N", "65536"]);
    let (head0, cap) = log_status(m.image());
    let ops: u64 = std::env::var("STORM_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6000);
    let (model, count) = metadata_storm(&m, ops);
    m.kill9();
    let (head1, _) = log_status(m.image());
    let wraps = (head1 - head0) as f64 / cap as f64;
    eprintln!(
        "{count} metadata operations answered; the log ({cap} bytes) was truncated {wraps:.1} times over before the kill"
    );
    assert!(
        wraps >= 3.0,
        "the storm should wrap the {cap}-byte log several times, head moved {} bytes",
        head1 - head0
    );
    let (code, out) = m.fsck(&["-n", "-f"]);
    assert_eq!(code, 0, "fsck -n after kill -9:\n{out}");
    m.mount();
    let found = storm_files(&m);
    assert_eq!(found.len(), model.len(), "number of files after remount");
    for (k, v) in &model {
        assert_eq!(found.get(k), Some(v), "{k} after kill -9 and remount");
    }
    let root: Vec<_> = fs::read_dir(m.mnt())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(root.len(), DIRS as usize, "root holds only the directories");
    m.unmount_ok();
    m.assert_fsck_clean();
}
