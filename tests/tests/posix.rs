//! (f) Basic POSIX operations through std::fs: create/write/read, rename, link and link counts,
//! symlink/readlink, mkdir/rmdir, truncate, chmod, unlink while open, and a directory of
//! 20,000 files listed with every name exactly once. Every test ends with a remount check and a
//! clean fsck.

use rvmfs_tests::*;
use std::collections::HashMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;

fn errno(r: std::io::Result<impl std::fmt::Debug>) -> i32 {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

/// Unmount, fsck -n must be clean, remount, and the tree must be exactly as before.
fn remount_check(m: &mut Mounted) {
    let before = manifest(m.mnt());
    m.unmount_ok();
    m.assert_fsck_clean();
    m.mount();
    assert_manifests_equal(&before, &manifest(m.mnt()), Compare::EXACT, "after remount");
}

#[test]
fn create_write_read() {
    require_fuse!();
    let mut m = Mounted::new();
    let p = m.path("a");
    fs::write(&p, b"hello").unwrap();
    assert_file(&p, b"hello");
    assert_eq!(fs::metadata(&p).unwrap().len(), 5);
    // create_new on an existing file fails with EEXIST.
    assert_eq!(
        errno(fs::OpenOptions::new().write(true).create_new(true).open(&p)),
        libc::EEXIST
    );
    // Append.
    let mut f = fs::OpenOptions::new().append(true).open(&p).unwrap();
    f.write_all(b", world").unwrap();
    drop(f);
    assert_file(&p, b"hello, world");
    // Overwrite in the middle, positional reads and writes.
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&p)
        .unwrap();
    f.write_all_at(b"J", 0).unwrap();
    f.write_all_at(b"W", 7).unwrap();
    let mut buf = [0u8; 5];
    f.read_exact_at(&mut buf, 7).unwrap();
    assert_eq!(&buf, b"World");
    drop(f);
    assert_file(&p, b"Jello, World");
    // Writing past the end leaves a hole of zeros.
    let mut f = fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.seek(SeekFrom::Start(100_000)).unwrap();
    f.write_all(b"end").unwrap();
    drop(f);
    let d = fs::read(&p).unwrap();
    assert_eq!(d.len(), 100_003);
    assert!(
        d[12..100_000].iter().all(|&b| b == 0),
        "a hole reads non-zero bytes"
    );
    // Many sizes, written in odd chunks and read back whole.
    for (i, len) in [0usize, 1, 4095, 4096, 4097, 131_071, 1_000_003]
        .into_iter()
        .enumerate()
    {
        let data = pattern(i as u64, len);
        let q = m.path(format!("s{len}"));
        let mut f = fs::File::create(&q).unwrap();
        for c in data.chunks(3001) {
            f.write_all(c).unwrap();
        }
        f.sync_all().unwrap();
        drop(f);
        let mut r = Vec::new();
        fs::File::open(&q).unwrap().read_to_end(&mut r).unwrap();
        assert!(r == data, "file of {len} bytes reads back different");
    }
    // Reading a missing file: ENOENT.
    assert_eq!(errno(fs::read(m.path("missing"))), libc::ENOENT);
    remount_check(&mut m);
    assert_file(m.path("s1000003"), pattern(6, 1_000_003));
}

#[test]
fn rename() {
    require_fuse!();
    let mut m = Mounted::new();
    fs::create_dir_all(m.path("d1/sub")).unwrap();
    fs::create_dir(m.path("d2")).unwrap();
    fs::write(m.path("d1/f"), b"f").unwrap();
    fs::write(m.path("d1/sub/g"), b"g").unwrap();
    // Within a directory and across directories.
    fs::rename(m.path("d1/f"), m.path("d1/f2")).unwrap();
    fs::rename(m.path("d1/f2"), m.path("d2/f3")).unwrap();
    assert!(!m.path("d1/f").exists() && !m.path("d1/f2").exists());
    assert_file(m.path("d2/f3"), b"f");
    // Over an existing file: replaced.
    let ino_before = fs::metadata(m.path("d2/f3")).unwrap().ino();
    fs::write(m.path("d2/victim"), b"old content").unwrap();
    fs::rename(m.path("d2/f3"), m.path("d2/victim")).unwrap();
    assert_file(m.path("d2/victim"), b"f");
    assert_eq!(fs::metadata(m.path("d2/victim")).unwrap().ino(), ino_before);
    // A directory with contents, across parents.
    fs::rename(m.path("d1/sub"), m.path("d2/sub-moved")).unwrap();
    assert_file(m.path("d2/sub-moved/g"), b"g");
    // Directory over an empty directory works; over a non-empty one fails.
    fs::create_dir(m.path("empty")).unwrap();
    fs::rename(m.path("d2/sub-moved"), m.path("empty")).unwrap();
    assert_file(m.path("empty/g"), b"g");
    fs::create_dir(m.path("d3")).unwrap();
    let e = errno(fs::rename(m.path("d3"), m.path("empty")));
    assert!(
        e == libc::ENOTEMPTY || e == libc::EEXIST,
        "rename over a non-empty dir: errno {e}"
    );
    // File over directory and directory over file fail.
    assert_eq!(
        errno(fs::rename(m.path("d2/victim"), m.path("d3"))),
        libc::EISDIR
    );
    assert_eq!(
        errno(fs::rename(m.path("d3"), m.path("d2/victim"))),
        libc::ENOTDIR
    );
    // A directory into its own subtree fails.
    assert_eq!(
        errno(fs::rename(m.path("d2"), m.path("d2/victim-dir"))),
        libc::EINVAL
    );
    // Rename onto itself is a no-op.
    fs::rename(m.path("d2/victim"), m.path("d2/victim")).unwrap();
    assert_file(m.path("d2/victim"), b"f");
    let names: Vec<_> = fs::read_dir(m.path("d2"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["victim"]);
    remount_check(&mut m);
}

#[test]
fn hard_links_and_counts() {
    require_fuse!();
    let mut m = Mounted::new();
    fs::create_dir(m.path("d")).unwrap();
    fs::write(m.path("a"), b"linked").unwrap();
    assert_eq!(fs::metadata(m.path("a")).unwrap().nlink(), 1);
    fs::hard_link(m.path("a"), m.path("b")).unwrap();
    fs::hard_link(m.path("a"), m.path("d/c")).unwrap();
    for p in ["a", "b", "d/c"] {
        let md = fs::metadata(m.path(p)).unwrap();
        assert_eq!(md.nlink(), 3, "nlink of {p}");
        assert_eq!(md.ino(), fs::metadata(m.path("a")).unwrap().ino());
    }
    // A write through one name is seen through the others.
    fs::write(m.path("d/c"), b"changed via c").unwrap();
    assert_file(m.path("b"), b"changed via c");
    fs::remove_file(m.path("a")).unwrap();
    assert_eq!(fs::metadata(m.path("b")).unwrap().nlink(), 2);
    // Link onto an existing name: EEXIST; link of a directory: EPERM.
    assert_eq!(
        errno(fs::hard_link(m.path("b"), m.path("d/c"))),
        libc::EEXIST
    );
    assert_eq!(
        errno(fs::hard_link(m.path("d"), m.path("dlink"))),
        libc::EPERM
    );
    remount_check(&mut m);
    assert_eq!(fs::metadata(m.path("b")).unwrap().nlink(), 2);
    fs::remove_file(m.path("b")).unwrap();
    assert_eq!(fs::metadata(m.path("d/c")).unwrap().nlink(), 1);
    assert_file(m.path("d/c"), b"changed via c");
    // Directory link counts: 2 + subdirectories, the common convention; checked only for
    // consistency across a remount by remount_check, reported here.
    fs::create_dir_all(m.path("p/q1")).unwrap();
    fs::create_dir_all(m.path("p/q2")).unwrap();
    eprintln!(
        "nlink of a directory with 2 subdirectories: {}",
        fs::metadata(m.path("p")).unwrap().nlink()
    );
    remount_check(&mut m);
}

#[test]
fn symlinks() {
    require_fuse!();
    let mut m = Mounted::new();
    fs::create_dir(m.path("dir")).unwrap();
    fs::write(m.path("dir/target"), b"pointed at").unwrap();
    std::os::unix::fs::symlink("dir/target", m.path("rel")).unwrap();
    std::os::unix::fs::symlink(m.path("dir"), m.path("abs-dir")).unwrap();
    std::os::unix::fs::symlink("nowhere", m.path("dangling")).unwrap();
    let long = "y/".repeat(1500) + "end";
    std::os::unix::fs::symlink(&long, m.path("long")).unwrap();
    assert_eq!(
        fs::read_link(m.path("rel")).unwrap(),
        Path::new("dir/target")
    );
    assert_eq!(fs::read_link(m.path("abs-dir")).unwrap(), m.path("dir"));
    assert_eq!(fs::read_link(m.path("long")).unwrap(), Path::new(&long));
    assert_file(m.path("rel"), b"pointed at");
    assert_file(m.path("abs-dir/target"), b"pointed at");
    assert_eq!(errno(fs::read(m.path("dangling"))), libc::ENOENT);
    let l = fs::symlink_metadata(m.path("rel")).unwrap();
    assert!(l.file_type().is_symlink());
    assert_eq!(l.len(), "dir/target".len() as u64);
    assert!(fs::metadata(m.path("rel")).unwrap().is_file());
    assert_eq!(errno(fs::read_link(m.path("dir/target"))), libc::EINVAL);
    assert_eq!(
        errno(std::os::unix::fs::symlink("x", m.path("rel"))),
        libc::EEXIST
    );
    remount_check(&mut m);
    assert_eq!(fs::read_link(m.path("long")).unwrap(), Path::new(&long));
    fs::remove_file(m.path("rel")).unwrap();
    assert!(
        m.path("dir/target").exists(),
        "removing a symlink removed its target"
    );
}

#[test]
fn mkdir_rmdir() {
    require_fuse!();
    let mut m = Mounted::new();
    fs::create_dir_all(m.path("a/b/c/d")).unwrap();
    assert_eq!(errno(fs::create_dir(m.path("a/b"))), libc::EEXIST);
    assert_eq!(errno(fs::remove_dir(m.path("a/b"))), libc::ENOTEMPTY);
    fs::write(m.path("a/file"), b"").unwrap();
    assert_eq!(errno(fs::remove_dir(m.path("a/file"))), libc::ENOTDIR);
    assert_eq!(errno(fs::remove_file(m.path("a/b"))), libc::EISDIR);
    assert_eq!(errno(fs::create_dir(m.path("a/file/x"))), libc::ENOTDIR);
    assert_eq!(errno(fs::create_dir(m.path("missing/x"))), libc::ENOENT);
    fs::remove_dir(m.path("a/b/c/d")).unwrap();
    fs::remove_dir(m.path("a/b/c")).unwrap();
    assert!(!m.path("a/b/c").exists());
    assert_eq!(fs::read_dir(m.path("a/b")).unwrap().count(), 0);
    // A name of 255 bytes works, 256 does not.
    fs::create_dir(m.path("n".repeat(255))).unwrap();
    assert_eq!(
        errno(fs::create_dir(m.path("n".repeat(256)))),
        libc::ENAMETOOLONG
    );
    // Many directories, removed again.
    for i in 0..200 {
        fs::create_dir(m.path(format!("a/b/sub{i}"))).unwrap();
    }
    for i in (0..200).step_by(2) {
        fs::remove_dir(m.path(format!("a/b/sub{i}"))).unwrap();
    }
    assert_eq!(fs::read_dir(m.path("a/b")).unwrap().count(), 100);
    remount_check(&mut m);
    fs::remove_dir_all(m.path("a")).unwrap();
    assert!(!m.path("a").exists());
    remount_check(&mut m);
}

#[test]
fn truncate() {
    require_fuse!();
    let mut m = Mounted::with_mkfs(&["-s", "4G"]);
    let p = m.path("t");
    fs::write(&p, vec![0xAAu8; 3 * 4096 + 100]).unwrap();
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&p)
        .unwrap();
    f.set_len(100).unwrap();
    assert_eq!(fs::metadata(&p).unwrap().len(), 100);
    // Growing again must show zeros, not the old bytes.
    f.set_len(3 * 4096 + 100).unwrap();
    drop(f);
    let d = fs::read(&p).unwrap();
    assert_eq!(d.len(), 3 * 4096 + 100);
    assert!(d[..100].iter().all(|&b| b == 0xAA));
    assert!(
        d[100..].iter().all(|&b| b == 0),
        "old data reappeared after truncate down and up"
    );
    // Truncate to 0 through open(O_TRUNC), then write.
    fs::write(&p, b"new").unwrap();
    assert_file(&p, b"new");
    // Grow a new file to 1 GiB sparse; the end reads zeros.
    let big = m.path("big-sparse");
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&big)
        .unwrap();
    f.set_len(1 << 30).unwrap();
    let mut tail = [1u8; 16];
    f.read_exact_at(&mut tail, (1 << 30) - 16).unwrap();
    assert_eq!(tail, [0u8; 16]);
    f.set_len(12345).unwrap();
    drop(f);
    assert_eq!(fs::metadata(&big).unwrap().len(), 12345);
    remount_check(&mut m);
    assert_file(&p, b"new");
}

#[test]
fn chmod() {
    require_fuse!();
    let mut m = Mounted::new();
    fs::write(m.path("f"), b"x").unwrap();
    fs::create_dir(m.path("d")).unwrap();
    for mode in [0o600, 0o644, 0o755, 0o4755, 0o2750, 0o1777, 0o000] {
        fs::set_permissions(m.path("f"), fs::Permissions::from_mode(mode)).unwrap();
        assert_eq!(
            fs::metadata(m.path("f")).unwrap().permissions().mode() & 0o7777,
            mode,
            "file mode {mode:o}"
        );
    }
    fs::set_permissions(m.path("f"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::set_permissions(m.path("d"), fs::Permissions::from_mode(0o1777)).unwrap();
    assert!(fs::metadata(m.path("f")).unwrap().is_file());
    assert!(fs::metadata(m.path("d")).unwrap().is_dir());
    remount_check(&mut m);
    assert_eq!(
        fs::metadata(m.path("f")).unwrap().permissions().mode() & 0o7777,
        0o640
    );
    assert_eq!(
        fs::metadata(m.path("d")).unwrap().permissions().mode() & 0o7777,
        0o1777
    );
}

#[test]
fn unlink_while_open() {
    require_fuse!();
    let mut m = Mounted::new();
    let p = m.path("open");
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .open(&p)
        .unwrap();
    f.write_all(&pattern(1, 100_000)).unwrap();
    fs::remove_file(&p).unwrap();
    assert!(!p.exists());
    assert_eq!(fs::read_dir(m.mnt()).unwrap().count(), 0);
    // Still usable through the descriptor.
    f.write_all(b"more").unwrap();
    let mut back = Vec::new();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_to_end(&mut back).unwrap();
    assert_eq!(back.len(), 100_004);
    if let Some(d) = bytes_diff(&back[..100_000], &pattern(1, 100_000)) {
        panic!("unlinked open file reads back wrong: {d}");
    }
    // A new file may take the name.
    fs::write(&p, b"other").unwrap();
    drop(f);
    assert_file(&p, b"other");
    remount_check(&mut m);
}

#[test]
fn directory_of_20000_files() {
    require_fuse!();
    let mut m = Mounted::with_mkfs(&["-s", "1G", "-N", "100000"]);
    let dir = m.path("many");
    fs::create_dir(&dir).unwrap();
    let name = |i: usize| format!("file-{i:05}-{}", "x".repeat(i % 40));
    let t = std::time::Instant::now();
    for i in 0..20_000 {
        fs::write(
            dir.join(name(i)),
            if i % 100 == 0 {
                format!("{i}")
            } else {
                String::new()
            },
        )
        .unwrap();
    }
    eprintln!("created 20000 files in {:.2?}", t.elapsed());
    let check = |dir: &Path, want: &dyn Fn(usize) -> bool, what: &str| {
        let t = std::time::Instant::now();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for e in fs::read_dir(dir).unwrap() {
            *seen
                .entry(e.unwrap().file_name().to_string_lossy().into_owned())
                .or_default() += 1;
        }
        let dups: Vec<_> = seen
            .iter()
            .filter(|(_, &c)| c > 1)
            .map(|(n, c)| format!("{n} x{c}"))
            .take(10)
            .collect();
        assert!(
            dups.is_empty(),
            "{what}: names listed more than once: {dups:?}"
        );
        let expected: Vec<String> = (0..20_000).filter(|&i| want(i)).map(name).collect();
        let missing: Vec<_> = expected
            .iter()
            .filter(|n| !seen.contains_key(*n))
            .take(10)
            .collect();
        assert!(
            missing.is_empty(),
            "{what}: names missing from the listing: {missing:?}"
        );
        assert_eq!(
            seen.len(),
            expected.len(),
            "{what}: listing has extra names"
        );
        eprintln!("{what}: listed {} names in {:.2?}", seen.len(), t.elapsed());
    };
    check(&dir, &|_| true, "after creating 20000");
    assert_file(dir.join(name(1200)), b"1200");
    // Remove every third file and list again, also while removing more (every name at most once).
    for i in (0..20_000).step_by(3) {
        fs::remove_file(dir.join(name(i))).unwrap();
    }
    check(&dir, &|i| i % 3 != 0, "after removing every third");
    m.remount();
    check(&dir, &|i| i % 3 != 0, "after remount");
    assert_file(dir.join(name(1300)), b"1300");
    // A listing interleaved with unlinks returns each name at most once.
    let mut seen = HashMap::new();
    for (k, e) in fs::read_dir(&dir).unwrap().enumerate() {
        let n = e.unwrap().file_name().to_string_lossy().into_owned();
        *seen.entry(n.clone()).or_insert(0) += 1;
        if k % 2 == 0 {
            fs::remove_file(dir.join(&n)).unwrap();
        }
    }
    assert!(
        seen.values().all(|&c| c == 1),
        "a name came twice in a listing interleaved with unlinks"
    );
    m.unmount_ok();
    m.assert_fsck_clean();
}
