//! The small tree the `rvmfs-admin` tests write into an image ([`small_tree`]) and what a copy
//! of it must keep beyond what a manifest compares: extended attributes ([`xattrs_of`]) and
//! which paths share an inode ([`assert_same_links_and_xattrs`]).

use crate::content::pattern;
use crate::manifests::manifest;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

fn c(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path without NUL")
}

fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    let n = CString::new(name).unwrap();
    // SAFETY: NUL-terminated path and name, a value buffer of the length given.
    let r = unsafe {
        libc::lsetxattr(
            c(p).as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        r,
        0,
        "setxattr {name} on {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

fn set_owner_and_mtime(p: &Path, uid: u32, gid: u32, mtime: i64) {
    // SAFETY: lchown and utimensat with a NUL-terminated path and plain values.
    unsafe {
        assert_eq!(
            libc::lchown(c(p).as_ptr(), uid, gid),
            0,
            "lchown {}",
            p.display()
        );
        let ts = [
            libc::timespec {
                tv_sec: mtime - 5,
                tv_nsec: 0,
            },
            libc::timespec {
                tv_sec: mtime,
                tv_nsec: 123_456_789,
            },
        ];
        let r = libc::utimensat(
            libc::AT_FDCWD,
            c(p).as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        );
        assert_eq!(r, 0, "utimensat {}", p.display());
    }
}

/// Write under `root`: `d/` (0750, 1000:1000) holding `file.txt` (0640, 1001:1002, two
/// xattrs, one binary), its hard link `link`, the symlink `sym -> file.txt`, the FIFO `fifo`,
/// `sub/deep.bin` (200 KiB) and a sparse `sub/sparse` (a hole, then 10 KiB at 1 MiB);
/// `big.bin` (1 MiB + 7 bytes) at the top. Every entry gets an old mtime (set last).
pub fn small_tree(root: &Path) {
    let d = root.join("d");
    fs::create_dir_all(d.join("sub")).unwrap();
    fs::write(d.join("file.txt"), b"hello, rescued world\n").unwrap();
    fs::hard_link(d.join("file.txt"), d.join("link")).unwrap();
    std::os::unix::fs::symlink("file.txt", d.join("sym")).unwrap();
    // SAFETY: mkfifo with a NUL-terminated path.
    assert_eq!(
        unsafe { libc::mkfifo(c(&d.join("fifo")).as_ptr(), 0o620) },
        0
    );
    fs::write(d.join("sub/deep.bin"), pattern(7, 200 << 10)).unwrap();
    let sparse = fs::File::create(d.join("sub/sparse")).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&sparse, &pattern(8, 10 << 10), 1 << 20).unwrap();
    fs::write(root.join("big.bin"), pattern(9, (1 << 20) + 7)).unwrap();
    set_xattr(&d.join("file.txt"), "user.color", b"blue");
    set_xattr(&d.join("file.txt"), "user.bin", &[0, 1, 0xff]);
    set_xattr(&d.join("sub"), "user.dir", b"yes");
    fs::set_permissions(d.join("file.txt"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::set_permissions(&d, fs::Permissions::from_mode(0o750)).unwrap();
    let owners = [
        ("d/file.txt", 1001, 1002),
        ("d/sym", 1003, 1004),
        ("d/sub/deep.bin", 1005, 1005),
    ];
    for (rel, uid, gid) in owners {
        set_owner_and_mtime(&root.join(rel), uid, gid, 1_500_000_000);
    }
    for (i, rel) in ["d/fifo", "d/sub/sparse", "big.bin", "d/sub", "d"]
        .iter()
        .enumerate()
    {
        set_owner_and_mtime(&root.join(rel), 1000, 1000, 1_600_000_000 + i as i64);
    }
}

/// The extended attributes of `p` (not following a symlink), by name.
pub fn xattrs_of(p: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut names = vec![0u8; 4096];
    // SAFETY: a NUL-terminated path and a buffer of the length given.
    let n = unsafe { libc::llistxattr(c(p).as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    assert!(
        n >= 0,
        "listxattr {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
    let mut out = BTreeMap::new();
    for name in names[..n as usize]
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
    {
        let cn = CString::new(name).unwrap();
        let mut value = vec![0u8; 65536];
        // SAFETY: as above, with a NUL-terminated name.
        let len = unsafe {
            libc::lgetxattr(
                c(p).as_ptr(),
                cn.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        assert!(len >= 0, "getxattr {}", p.display());
        value.truncate(len as usize);
        out.insert(String::from_utf8_lossy(name).into_owned(), value);
    }
    out
}

/// The groups of paths under `root` that share an inode (hard links), for groups of two or more.
fn link_groups(root: &Path) -> BTreeSet<Vec<PathBuf>> {
    let mut by_ino: HashMap<u64, Vec<PathBuf>> = HashMap::new();
    for rel in manifest(root).keys() {
        let md = fs::symlink_metadata(root.join(rel)).unwrap();
        if !md.is_dir() {
            by_ino.entry(md.ino()).or_default().push(rel.clone());
        }
    }
    by_ino
        .into_values()
        .filter(|g| g.len() > 1)
        .map(|mut g| {
            g.sort();
            g
        })
        .collect()
}

/// Assert every path under `src` has the same xattrs under `dst`, and the same paths share an
/// inode in both trees.
#[track_caller]
pub fn assert_same_links_and_xattrs(src: &Path, dst: &Path) {
    for rel in manifest(src).keys() {
        let (want, got) = (xattrs_of(&src.join(rel)), xattrs_of(&dst.join(rel)));
        assert_eq!(want, got, "xattrs of {}", rel.display());
    }
    assert_eq!(
        link_groups(src),
        link_groups(dst),
        "hard links of {} vs {}",
        src.display(),
        dst.display()
    );
}
