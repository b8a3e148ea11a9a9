//! POSIX details checked directly (some of them pjdfstest cannot reach through FUSE):
//! LINK_MAX (65000) and EMLINK, NAME_MAX (255) and ENAMETOOLONG, symlink targets up to 4095
//! bytes, special files from mknod, renameat2 (NOREPLACE, EXCHANGE), utimensat with UTIME_NOW /
//! UTIME_OMIT and nanoseconds, setuid/setgid clearing on write and chown by a non-root user.

#[path = "posix_common.rs"]
mod common;
use common::*;
use rvmfs_tests::*;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

const LINK_MAX: u64 = 65000;

#[test]
fn link_max_and_emlink() {
    require_fuse!();
    let mut m = Mounted::new();
    let f = m.path("f");
    fs::write(&f, b"x").unwrap();
    fs::create_dir(m.path("l")).unwrap();
    for i in 1..LINK_MAX {
        fs::hard_link(&f, m.path(format!("l/{i}"))).unwrap();
    }
    assert_eq!(fs::metadata(&f).unwrap().nlink(), LINK_MAX);
    assert_eq!(
        errno(fs::hard_link(&f, m.path("l/one-too-many"))),
        libc::EMLINK
    );
    fs::remove_file(m.path("l/1")).unwrap();
    fs::hard_link(&f, m.path("l/again")).unwrap();
    fsck_and_remount(&mut m);
    assert_eq!(fs::metadata(&f).unwrap().nlink(), LINK_MAX);
}

#[test]
fn names_symlinks_and_special_files() {
    require_fuse!();
    let mut m = Mounted::new();
    let n255 = "n".repeat(255);
    let n256 = "n".repeat(256);
    fs::write(m.path(&n255), b"ok").unwrap();
    assert_eq!(errno(fs::write(m.path(&n256), b"no")), libc::ENAMETOOLONG);
    assert_eq!(errno(fs::metadata(m.path(&n256))), libc::ENAMETOOLONG);
    assert_eq!(errno(fs::create_dir(m.path(&n256))), libc::ENAMETOOLONG);
    assert_eq!(
        errno(fs::rename(m.path(&n255), m.path(&n256))),
        libc::ENAMETOOLONG
    );
    assert_eq!(
        errno(fs::hard_link(m.path(&n255), m.path(&n256))),
        libc::ENAMETOOLONG
    );
    // Symlink targets: 4095 bytes is the longest.
    let long_target = "t/".repeat(2047) + "x";
    assert_eq!(long_target.len(), 4095);
    std::os::unix::fs::symlink(&long_target, m.path("long")).unwrap();
    assert_eq!(
        fs::read_link(m.path("long")).unwrap().as_os_str().len(),
        4095
    );
    assert_eq!(fs::symlink_metadata(m.path("long")).unwrap().len(), 4095);
    let too_long = "t".repeat(4096);
    assert_eq!(
        errno(std::os::unix::fs::symlink(&too_long, m.path("toolong"))),
        libc::ENAMETOOLONG
    );
    // Special files.
    mknod(&m.path("fifo"), libc::S_IFIFO | 0o644, 0).unwrap();
    mknod(&m.path("sock"), libc::S_IFSOCK | 0o644, 0).unwrap();
    mknod(&m.path("chr"), libc::S_IFCHR | 0o644, libc::makedev(1, 3)).unwrap();
    mknod(&m.path("blk"), libc::S_IFBLK | 0o644, libc::makedev(7, 200)).unwrap();
    let check = |m: &Mounted| {
        let t = |n: &str| fs::symlink_metadata(m.path(n)).unwrap();
        assert!(t("fifo").file_type().is_fifo());
        assert!(t("sock").file_type().is_socket());
        assert!(t("chr").file_type().is_char_device());
        assert_eq!(t("chr").rdev(), libc::makedev(1, 3));
        assert!(t("blk").file_type().is_block_device());
        assert_eq!(t("blk").rdev(), libc::makedev(7, 200));
        assert_eq!(
            fs::read_link(m.path("long")).unwrap().as_os_str().len(),
            4095
        );
    };
    check(&m);
    // A fifo works as a pipe.
    let fifo = m.path("fifo");
    let writer = std::thread::spawn(move || fs::write(fifo, b"through the fifo").unwrap());
    assert_eq!(fs::read(m.path("fifo")).unwrap(), b"through the fifo");
    writer.join().unwrap();
    fsck_and_remount(&mut m);
    check(&m);
}

#[test]
fn rename_flags_and_times() {
    require_fuse!();
    let mut m = Mounted::new();
    let (a, b) = (m.path("a"), m.path("b"));
    fs::write(&a, b"A").unwrap();
    fs::write(&b, b"B").unwrap();
    assert_eq!(
        errno(renameat2(&a, &b, libc::RENAME_NOREPLACE)),
        libc::EEXIST
    );
    renameat2(&a, &b, libc::RENAME_EXCHANGE).unwrap();
    assert_file(&a, b"B");
    assert_file(&b, b"A");
    fs::create_dir(m.path("d")).unwrap();
    fs::write(m.path("d/inner"), b"I").unwrap();
    renameat2(&a, &m.path("d"), libc::RENAME_EXCHANGE).unwrap(); // a file and a directory
    assert_file(m.path("a/inner"), b"I");
    assert_file(m.path("d"), b"B");
    assert_eq!(
        errno(renameat2(&m.path("a"), &m.path("a/inner2"), 0)),
        libc::EINVAL
    );
    assert_eq!(
        errno(renameat2(&m.path("nope"), &b, libc::RENAME_EXCHANGE)),
        libc::ENOENT
    );
    renameat2(&b, &m.path("c"), libc::RENAME_NOREPLACE).unwrap();

    // utimensat: explicit nanoseconds, UTIME_OMIT, UTIME_NOW; ctime always moves on.
    let c = m.path("c");
    utimens(
        &c,
        (1_000_000_000, 123_456_789),
        (1_100_000_000, 987_654_321),
    )
    .unwrap();
    let md = fs::metadata(&c).unwrap();
    assert_eq!((md.atime(), md.atime_nsec()), (1_000_000_000, 123_456_789));
    assert_eq!((md.mtime(), md.mtime_nsec()), (1_100_000_000, 987_654_321));
    utimens(&c, (0, libc::UTIME_OMIT), (5, 6)).unwrap();
    let md2 = fs::metadata(&c).unwrap();
    assert_eq!(
        (md2.atime(), md2.atime_nsec()),
        (1_000_000_000, 123_456_789)
    );
    assert_eq!((md2.mtime(), md2.mtime_nsec()), (5, 6));
    assert!((md2.ctime(), md2.ctime_nsec()) >= (md.ctime(), md.ctime_nsec()));
    utimens(&c, (0, libc::UTIME_NOW), (0, libc::UTIME_OMIT)).unwrap();
    let md3 = fs::metadata(&c).unwrap();
    assert!(
        md3.atime() > 1_500_000_000,
        "UTIME_NOW did not set atime to now"
    );
    assert_eq!((md3.mtime(), md3.mtime_nsec()), (5, 6));
    // Times before the epoch.
    utimens(&c, (-1, 500), (-1_000_000, 0)).unwrap();
    let md4 = fs::metadata(&c).unwrap();
    assert_eq!((md4.atime(), md4.atime_nsec()), (-1, 500));
    assert_eq!(md4.mtime(), -1_000_000);
    fsck_and_remount(&mut m);
    let md5 = fs::metadata(&c).unwrap();
    assert_eq!(
        (md5.atime(), md5.atime_nsec(), md5.mtime()),
        (-1, 500, -1_000_000)
    );
}

#[test]
fn setid_bits_cleared_on_unprivileged_write_and_chown() {
    require_fuse!();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED setid_bits: needs root");
        return;
    }
    let m = Mounted::new();
    fs::set_permissions(m.dir(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(m.mnt(), fs::Permissions::from_mode(0o777)).unwrap();
    let f = m.path("f");
    fs::write(&f, b"x").unwrap();
    let (uid, gid) = (65534u32, 65534u32);
    std::os::unix::fs::chown(&f, Some(uid), Some(gid)).unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o6777)).unwrap();
    // Root writing keeps the bits (CAP_FSETID).
    fs::OpenOptions::new().append(true).open(&f).unwrap();
    std::os::unix::fs::FileExt::write_all_at(
        &fs::OpenOptions::new().write(true).open(&f).unwrap(),
        b"r",
        0,
    )
    .unwrap();
    assert_eq!(fs::metadata(&f).unwrap().mode() & 0o7777, 0o6777);
    // The owner (unprivileged) writing clears both (group-executable file).
    let path = f.clone();
    assert!(as_user(uid, gid, move || {
        std::os::unix::fs::FileExt::write_all_at(
            &fs::OpenOptions::new().write(true).open(&path).unwrap(),
            b"u",
            0,
        )
        .is_ok()
    }));
    assert_eq!(fs::metadata(&f).unwrap().mode() & 0o7777, 0o0777);
    // chown clears them too.
    fs::set_permissions(&f, fs::Permissions::from_mode(0o6755)).unwrap();
    std::os::unix::fs::chown(&f, Some(1), None).unwrap();
    assert_eq!(fs::metadata(&f).unwrap().mode() & 0o7777, 0o0755);
    // O_TRUNC by the owner clears them.
    std::os::unix::fs::chown(&f, Some(uid), Some(gid)).unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o4766)).unwrap();
    let path = f.clone();
    assert!(as_user(uid, gid, move || fs::File::create(&path).is_ok()));
    let md = fs::metadata(&f).unwrap();
    assert_eq!((md.len(), md.mode() & 0o7777), (0, 0o0766));
}
