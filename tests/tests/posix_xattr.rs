//! Extended attributes: set/get/list/remove in the user. and trusted. namespaces, the
//! XATTR_CREATE / XATTR_REPLACE flags, ENODATA, ERANGE for short buffers and long names, E2BIG
//! for values over 64 KiB, user. attributes refused on symlinks, ctime updates, many attributes
//! on one file, persistence across a remount, and reclamation with the file (fsck clean).

#[path = "posix_common.rs"]
mod common;
use common::*;
use rvmfs_tests::*;
use std::fs;
use std::os::unix::fs::MetadataExt;

#[test]
fn xattr_semantics() {
    require_fuse!();
    let mut m = Mounted::new();
    let f = m.path("f");
    fs::write(&f, b"data").unwrap();
    assert_eq!(listxattr(&f).unwrap(), Vec::<String>::new());
    assert_eq!(errno(getxattr(&f, "user.missing")), libc::ENODATA);
    assert_eq!(errno(removexattr(&f, "user.missing")), libc::ENODATA);

    // Plain set, get, overwrite; an empty value.
    setxattr(&f, "user.a", b"one", 0).unwrap();
    assert_eq!(getxattr(&f, "user.a").unwrap(), b"one");
    setxattr(&f, "user.a", b"two!", 0).unwrap();
    assert_eq!(getxattr(&f, "user.a").unwrap(), b"two!");
    setxattr(&f, "user.empty", b"", 0).unwrap();
    assert_eq!(getxattr(&f, "user.empty").unwrap(), b"");
    setxattr(&f, "trusted.t", b"root only", 0).unwrap();
    assert_eq!(getxattr(&f, "trusted.t").unwrap(), b"root only");

    // Flags.
    assert_eq!(
        errno(setxattr(&f, "user.a", b"x", libc::XATTR_CREATE)),
        libc::EEXIST
    );
    assert_eq!(
        errno(setxattr(&f, "user.b", b"x", libc::XATTR_REPLACE)),
        libc::ENODATA
    );
    setxattr(&f, "user.b", b"created", libc::XATTR_CREATE).unwrap();
    setxattr(&f, "user.b", b"replaced", libc::XATTR_REPLACE).unwrap();
    assert_eq!(getxattr(&f, "user.b").unwrap(), b"replaced");

    // Sizes: the size query, a short buffer, a long name, a value over XATTR_SIZE_MAX.
    assert_eq!(getxattr_cap(&f, "user.b", 0).unwrap().1, 8);
    assert_eq!(errno(getxattr_cap(&f, "user.b", 3)), libc::ERANGE);
    assert_eq!(errno(listxattr_cap(&f, 3)), libc::ERANGE);
    let long = format!("user.{}", "n".repeat(251));
    assert_eq!(errno(setxattr(&f, &long, b"v", 0)), libc::ERANGE);
    let max_name = format!("user.{}", "n".repeat(250));
    setxattr(&f, &max_name, b"v", 0).unwrap();
    assert_eq!(
        errno(setxattr(&f, "user.big", &vec![7u8; 65537], 0)),
        libc::E2BIG
    );
    let big = pattern(9, 65536);
    setxattr(&f, "user.big", &big, 0).unwrap();
    assert_eq!(getxattr(&f, "user.big").unwrap(), big);
    // An unknown namespace.
    assert_eq!(errno(setxattr(&f, "bogus.name", b"v", 0)), libc::EOPNOTSUPP);

    let mut want = vec![
        "trusted.t",
        "user.a",
        "user.b",
        "user.big",
        "user.empty",
        &max_name,
    ];
    want.sort();
    assert_eq!(listxattr(&f).unwrap(), want);

    // ctime changes with setxattr and removexattr.
    let before = fs::metadata(&f).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    setxattr(&f, "user.c", b"c", 0).unwrap();
    let after = fs::metadata(&f).unwrap();
    assert!((after.ctime(), after.ctime_nsec()) > (before.ctime(), before.ctime_nsec()));
    removexattr(&f, "user.c").unwrap();
    assert_eq!(errno(getxattr(&f, "user.c")), libc::ENODATA);

    // Directories take user. attributes; symlinks do not (EPERM), but trusted. ones.
    fs::create_dir(m.path("d")).unwrap();
    setxattr(&m.path("d"), "user.dir", b"yes", 0).unwrap();
    std::os::unix::fs::symlink("f", m.path("l")).unwrap();
    assert_eq!(
        errno(lsetxattr(&m.path("l"), "user.x", b"v", 0)),
        libc::EPERM
    );
    lsetxattr(&m.path("l"), "trusted.x", b"v", 0).unwrap();

    // Persistence, then removal with the file.
    fsck_and_remount(&mut m);
    assert_eq!(listxattr(&f).unwrap(), want);
    assert_eq!(getxattr(&f, "user.big").unwrap(), big);
    assert_eq!(getxattr(&m.path("d"), "user.dir").unwrap(), b"yes");
    fs::remove_file(&f).unwrap();
    fs::remove_file(m.path("l")).unwrap();
    fsck_and_remount(&mut m);
}

#[test]
fn many_xattrs_on_one_file() {
    require_fuse!();
    let mut m = Mounted::new();
    let f = m.path("f");
    fs::write(&f, b"").unwrap();
    let n = 2000;
    for i in 0..n {
        setxattr(
            &f,
            &format!("user.k{i}"),
            format!("value {i}").as_bytes(),
            0,
        )
        .unwrap();
    }
    assert_eq!(listxattr(&f).unwrap().len(), n);
    for i in (0..n).step_by(2) {
        removexattr(&f, &format!("user.k{i}")).unwrap();
    }
    fsck_and_remount(&mut m);
    let names = listxattr(&f).unwrap();
    assert_eq!(names.len(), n / 2);
    for i in 0..n {
        let r = getxattr(&f, &format!("user.k{i}"));
        if i % 2 == 0 {
            assert_eq!(errno(r), libc::ENODATA);
        } else {
            assert_eq!(r.unwrap(), format!("value {i}").as_bytes());
        }
    }
    // The virtual counters attribute is readable but never listed.
    assert!(!names.iter().any(|n| n.contains("rvmfs")));
    fs::remove_file(&f).unwrap();
    m.unmount_ok();
    m.assert_fsck_clean();
}
