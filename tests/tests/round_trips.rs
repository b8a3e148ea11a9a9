//! FUSE round trips: the daemon counts every request by opcode (virtual attributes
//! `rvmfs.requests` and `rvmfs.latency`), and the kernel features that save requests
//! (FUSE_HANDLE_KILLPRIV_V2, FOPEN_NOFLUSH, negative entries, READDIRPLUS) send fewer of them
//! while the semantics hold.

#[path = "posix_common.rs"]
mod common;
use common::*;
use rvmfs_tests::*;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;

#[test]
fn every_request_is_counted_by_opcode() {
    require_fuse!();
    let m = Mounted::new();
    let base = requests(m.mnt());
    assert!(base.contains_key("lookup") && base.contains_key("copy_file_range"));
    let f = File::create(m.path("f")).unwrap();
    for i in 0..3u64 {
        f.write_all_at(&[7u8; 4096], i * 4096).unwrap();
    }
    f.sync_all().unwrap();
    drop(f);
    fs::create_dir(m.path("d")).unwrap();
    fs::remove_file(m.path("f")).unwrap();
    let d = requests_since(m.mnt(), &base);
    let n = |k: &str| d.get(k).copied().unwrap_or(0);
    assert_eq!(
        (n("create"), n("write"), n("fsync"), n("mkdir"), n("unlink")),
        (1, 3, 1, 1, 1),
        "{d:?}"
    );
    // FOPEN_NOFLUSH: close sends RELEASE only.
    assert_eq!((n("flush"), n("release")), (0, 1), "{d:?}");
    // Reading the counters is not counted: two readings in a row differ in nothing but
    // FORGET, which the kernel sends on its own schedule (dentry cache eviction).
    let again = requests(m.mnt());
    let mut between = requests_since(m.mnt(), &again);
    between.remove("forget");
    assert_eq!(between, Default::default());
    // The old durability counters keep their format.
    assert_eq!(counters(m.mnt())["fsync"], 1);
    // Latency per opcode: one line per opcode received, with its count.
    // A request's latency is recorded when its handler returns, just after the reply: on a
    // busy machine the reading can come first, so ask again for a moment.
    let mut lat = String::new();
    for _ in 0..100 {
        let (v, _) = getxattr_cap(m.mnt(), "rvmfs.latency", 1 << 16).unwrap();
        lat = String::from_utf8(v).unwrap();
        if lat.lines().any(|l| l.starts_with("write n=3 ")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let write = lat.lines().find(|l| l.starts_with("write ")).expect(&lat);
    assert!(write.starts_with("write n=3 p50_ns="), "{lat}");
    assert_eq!(write.split("hist=").nth(1).unwrap().split(',').count(), 40);
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A valid file-capability value (VFS_CAP_REVISION_2, CAP_NET_RAW permitted, little endian),
/// as `setcap cap_net_raw+p` writes it.
fn capability_value() -> Vec<u8> {
    let words: [u32; 5] = [0x0200_0000, 1 << 13, 0, 0, 0];
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(p).unwrap().mode() & 0o7777
}

/// FUSE_HANDLE_KILLPRIV_V2: the kernel no longer asks for security.capability before every
/// write (it asks at most once per inode between attribute refreshes).
#[test]
fn writes_do_not_ask_for_security_capability() {
    require_fuse!();
    let m = Mounted::new();
    let f = File::create(m.path("f")).unwrap();
    let base = requests(m.mnt());
    for i in 0..32u64 {
        f.write_all_at(&[1u8; 4096], i * 4096).unwrap();
    }
    let d = requests_since(m.mnt(), &base);
    assert_eq!(d.get("write"), Some(&32), "{d:?}");
    assert!(
        d.get("getxattr").copied().unwrap_or(0) <= 1,
        "GETXATTR per write should be ~0: {d:?}"
    );
}

/// The daemon clears what the kernel now leaves to it: set-ID bits on a write, truncate and
/// open O_TRUNC by a caller other than root and on chown; file capabilities on every write,
/// truncate and chown.
#[test]
fn privileges_are_removed_on_write_truncate_and_chown() {
    require_fuse!();
    if !is_root() {
        eprintln!("SKIPPED privileges_are_removed: needs root");
        return;
    }
    use std::os::unix::fs::{chown, PermissionsExt};
    let m = Mounted::new();
    fs::set_permissions(m.mnt(), fs::Permissions::from_mode(0o777)).unwrap();
    let f = m.path("f");
    fs::write(&f, b"x").unwrap();
    let (uid, gid) = (65534u32, 65534u32);
    let set = |bits: u32| fs::set_permissions(&f, fs::Permissions::from_mode(bits)).unwrap();
    set(0o6777);
    // Root (CAP_FSETID) writing keeps the set-ID bits but not a file capability.
    setxattr(&f, "security.capability", &capability_value(), 0).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(&f)
        .unwrap()
        .write_all_at(b"r", 0)
        .unwrap();
    assert_eq!(mode(&f), 0o6777);
    assert_eq!(
        errno(getxattr(&f, "security.capability")),
        libc::ENODATA,
        "write kept the capability"
    );
    // Another user (no CAP_FSETID) writing clears both set-ID bits (group-executable).
    let p = f.clone();
    assert!(as_user(uid, gid, move || {
        let w = fs::OpenOptions::new().write(true).open(&p).unwrap();
        w.write_all_at(b"u", 0).is_ok()
    }));
    assert_eq!(mode(&f), 0o0777, "a non-owner's write kept the set-ID bits");
    // Not group-executable: set-group-ID stays (it marks mandatory locking, not a program).
    set(0o6766);
    let p = f.clone();
    assert!(as_user(uid, gid, move || {
        let w = fs::OpenOptions::new().write(true).open(&p).unwrap();
        w.write_all_at(b"u", 0).is_ok()
    }));
    assert_eq!(mode(&f), 0o2766);
    // truncate by that user clears them, and the capability.
    set(0o6777);
    setxattr(&f, "security.capability", &capability_value(), 0).unwrap();
    let p = f.clone();
    assert!(as_user(uid, gid, move || {
        let w = fs::OpenOptions::new().write(true).open(&p).unwrap();
        w.set_len(1).is_ok()
    }));
    assert_eq!(mode(&f), 0o0777, "truncate kept the set-ID bits");
    assert_eq!(errno(getxattr(&f, "security.capability")), libc::ENODATA);
    // open O_TRUNC by that user clears them.
    set(0o4777);
    let p = f.clone();
    assert!(as_user(uid, gid, move || File::create(&p).is_ok()));
    assert_eq!((mode(&f), fs::metadata(&f).unwrap().len()), (0o0777, 0));
    // chown, even by root, clears them and the capability.
    set(0o6755);
    setxattr(&f, "security.capability", &capability_value(), 0).unwrap();
    chown(&f, Some(1), Some(1)).unwrap();
    assert_eq!(mode(&f), 0o0755, "chown kept the set-ID bits");
    assert_eq!(errno(getxattr(&f, "security.capability")), libc::ENODATA);
    // A directory keeps its set-group-ID through chown.
    let d = m.path("d");
    fs::create_dir(&d).unwrap();
    fs::set_permissions(&d, fs::Permissions::from_mode(0o2775)).unwrap();
    chown(&d, Some(1), Some(1)).unwrap();
    assert_eq!(mode(&d), 0o2775);
    let mut m = m;
    m.unmount_ok();
    m.assert_fsck_clean();
}

/// Negative entries: a name that does not exist is looked up once, then the kernel answers
/// from its cache; creating it through the mount (file, directory, rename onto it) makes it
/// appear at once, and removing it makes it vanish.
#[test]
fn missing_names_are_cached_and_then_created() {
    require_fuse!();
    let m = Mounted::new();
    let p = m.path("later");
    let base = requests(m.mnt());
    for _ in 0..5 {
        assert_eq!(errno(fs::metadata(&p)), libc::ENOENT);
    }
    let d = requests_since(m.mnt(), &base);
    assert_eq!(d.get("lookup"), Some(&1), "{d:?}");
    // Created after the cached negative lookup: visible, with its contents.
    fs::write(&p, b"now").unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"now");
    fs::remove_file(&p).unwrap();
    assert_eq!(errno(fs::metadata(&p)), libc::ENOENT);
    fs::create_dir(&p).unwrap();
    assert!(fs::metadata(&p).unwrap().is_dir());
    fs::remove_dir(&p).unwrap();
    // rename onto a cached missing name, and a hard link to another one.
    let (other, moved, linked) = (m.path("other"), m.path("moved"), m.path("linked"));
    assert_eq!(errno(fs::metadata(&moved)), libc::ENOENT);
    assert_eq!(errno(fs::metadata(&linked)), libc::ENOENT);
    fs::write(&other, b"o").unwrap();
    fs::hard_link(&other, &linked).unwrap();
    fs::rename(&other, &moved).unwrap();
    assert_eq!(fs::read(&moved).unwrap(), b"o");
    assert_eq!(fs::read(&linked).unwrap(), b"o");
    assert_eq!(errno(fs::metadata(&other)), libc::ENOENT);
    // The names survive a remount (nothing only in the kernel's cache).
    let mut m = m;
    m.remount();
    let mut names: Vec<_> = fs::read_dir(m.mnt())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(
        names.ends_with(&["linked".to_string(), "moved".to_string()]),
        "{names:?}"
    );
}

/// READDIRPLUS: `ls -l` of a directory the kernel has not seen costs no LOOKUP per entry.
#[test]
fn ls_l_of_a_fresh_directory_needs_no_lookups() {
    require_fuse!();
    let mut m = Mounted::new();
    fs::create_dir(m.path("d")).unwrap();
    for i in 0..100 {
        fs::write(m.path(format!("d/f{i:03}")), [i as u8]).unwrap();
    }
    m.remount(); // an empty dentry cache
    let base = requests(m.mnt());
    let out = std::process::Command::new("ls")
        .arg("-l")
        .arg(m.path("d"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().filter(|l| l.starts_with('-')).count(),
        100,
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains(" 1 ") && l.ends_with("f042")),
        "{text}"
    );
    let d = requests_since(m.mnt(), &base);
    assert!(d.get("readdirplus").copied().unwrap_or(0) >= 1, "{d:?}");
    assert!(
        d.get("lookup").copied().unwrap_or(0) <= 2,
        "a LOOKUP per entry: {d:?}"
    );
}

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// OPENDIR is answered (no kernel directory cache, see `fs/src/fuse/dir.rs`): a walk sends
/// one OPENDIR and one RELEASEDIR per directory, a second walk reads the entries again, and
/// every change through the mount shows in the next listing.
#[test]
fn directories_are_listed_from_the_region_and_listings_stay_right() {
    require_fuse!();
    let mut m = Mounted::new();
    for d in ["a", "b"] {
        fs::create_dir(m.path(d)).unwrap();
        for i in 0..40 {
            fs::write(m.path(format!("{d}/f{i:02}")), b"x").unwrap();
        }
    }
    m.remount();
    let find = |m: &Mounted| {
        let out = std::process::Command::new("find")
            .arg(m.mnt())
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    let n = |d: &std::collections::BTreeMap<String, u64>, k: &str| d.get(k).copied().unwrap_or(0);
    for walk in 0..2 {
        let base = requests(m.mnt());
        assert_eq!(find(&m), 1 + 2 + 80);
        let d = requests_since(m.mnt(), &base);
        assert_eq!(
            (n(&d, "opendir"), n(&d, "releasedir")),
            (3, 3),
            "walk {walk}: {d:?}"
        );
        assert!(
            n(&d, "readdir") + n(&d, "readdirplus") >= 3,
            "walk {walk}: {d:?}"
        );
    }
    // Changes through the mount show in the next listing.
    fs::write(m.path("a/new"), b"n").unwrap();
    fs::remove_file(m.path("a/f00")).unwrap();
    fs::rename(m.path("a/f01"), m.path("b/moved")).unwrap();
    fs::create_dir(m.path("a/sub")).unwrap();
    let a = names(&m.path("a"));
    assert!(
        a.contains(&"new".into()) && a.contains(&"sub".into()),
        "{a:?}"
    );
    assert!(
        !a.contains(&"f00".into()) && !a.contains(&"f01".into()),
        "{a:?}"
    );
    assert_eq!(a.len(), 40, "{a:?}");
    let b = names(&m.path("b"));
    assert!(b.contains(&"moved".into()) && b.len() == 41, "{b:?}");
    // A directory removed while open holds no handle in the daemon: its descriptor lists
    // nothing (the VFS answers for a dead directory) and its inode is free for reuse.
    let open = fs::File::open(m.path("a/sub")).unwrap();
    fs::remove_dir(m.path("a/sub")).unwrap();
    fs::create_dir(m.path("a/other")).unwrap();
    fs::write(m.path("a/other/inside"), b"i").unwrap();
    let mut buf = [0u8; 4096];
    // SAFETY: getdents64 into a buffer of the given length, on a descriptor this test owns.
    let got = unsafe {
        use std::os::fd::AsRawFd;
        libc::syscall(
            libc::SYS_getdents64,
            open.as_raw_fd(),
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    assert!(got <= 0, "a removed directory lists nothing: {got}");
    drop(open);
    assert_eq!(names(&m.path("a/other")), vec!["inside".to_string()]);
    m.unmount_ok();
    m.assert_fsck_clean();
}

/// Four threads create, remove and list names in one directory: a listing begun after an
/// unlink returned never shows the removed name, nor misses one created before it began.
/// With OPENDIR declined, the kernel's directory cache kept a stale listing here (see
/// `fs/src/fuse/dir.rs`).
#[test]
fn listings_never_show_a_removed_name() {
    require_fuse!();
    let (threads, rounds) = (4, 300);
    let mut m = Mounted::with_threads(threads + 1);
    let d = m.path("d");
    fs::create_dir(&d).unwrap();
    std::thread::scope(|s| {
        for t in 0..threads {
            let d = &d;
            s.spawn(move || {
                let mine = |i: usize| format!("t{t}_{i:04}");
                for i in 1..rounds {
                    fs::write(d.join(mine(i)), b"").unwrap();
                    fs::remove_file(d.join(mine(i - 1))).ok();
                    let got: Vec<String> = names(d)
                        .into_iter()
                        .filter(|n| n.starts_with(&format!("t{t}_")))
                        .collect();
                    assert_eq!(got, [mine(i)], "thread {t} round {i}");
                }
            });
        }
    });
    m.unmount_ok();
    m.assert_fsck_clean();
}
