//! Format compatibility (docs/format.md section 9):
//! * backward: `tests/fixtures/v1.img.gz`, a version-1 image made by the version-1 binaries
//!   (`tests/fixtures/make-v1.sh`) with three committed transactions still in its log, checks
//!   clean, mounts, reads back every file, symlink, hard link and xattr of
//!   `tests/fixtures/v1.manifest` (sha256), takes a change (150 new names too: its B+tree
//!   leaves stay sorted, as it has no `slotted_leaves`), and checks clean again;
//! * forward: an unknown incompat feature bit refuses the image (mount, fsck, mkfs without -f)
//!   and leaves it untouched; an unknown ro-compat bit mounts read-only and allows `fsck -n`
//!   only.

use rvmfs_tests::*;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// The fixture's spool file is named by its UUID, the same in every copy: one test at a time.
static FIXTURE: Mutex<()> = Mutex::new(());

/// Unpack the fixture into `m.image()` and remove a spool file a killed run may have left.
fn unpack_fixture(m: &Mounted) {
    let gz = workspace_root().join("tests/fixtures/v1.img.gz");
    let out = fs::File::create(m.image()).expect("create image");
    let st = std::process::Command::new("gzip")
        .arg("-dc")
        .arg(&gz)
        .stdout(out)
        .status()
        .expect("run gzip");
    assert!(st.success(), "gzip -dc {} failed", gz.display());
    let _ = fs::remove_file(m.spool_path());
}

/// An xattr of `path` (not following symlinks), or None.
fn lgetxattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = CString::new(path.as_os_str().as_bytes()).ok()?;
    let n = CString::new(name).ok()?;
    let mut buf = vec![0u8; 65536];
    // SAFETY: valid C strings and a buffer of the length passed.
    let r = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (r >= 0).then(|| buf[..r as usize].to_vec())
}

/// The names of `path`'s xattrs, sorted.
fn llistxattr(path: &Path) -> Vec<String> {
    let p = CString::new(path.as_os_str().as_bytes()).expect("path");
    let mut buf = vec![0u8; 65536];
    // SAFETY: a valid C string and a buffer of the length passed.
    let r = unsafe { libc::llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(r >= 0, "llistxattr {}", path.display());
    let mut names: Vec<String> = buf[..r as usize]
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    names.sort();
    names
}

/// sha256 of bytes through `sha256sum` (the tests have no hashing crate).
fn sha256_bytes(dir: &Path, data: &[u8]) -> String {
    let f = dir.join("xattr-value");
    fs::write(&f, data).expect("write value");
    sha256_file(&f)
}

/// Compare the mounted fixture at `m.mnt()` with `tests/fixtures/v1.manifest`.
fn assert_matches_manifest(m: &Mounted) {
    let text = fs::read_to_string(workspace_root().join("tests/fixtures/v1.manifest"))
        .expect("read v1.manifest");
    let mut count = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 6, "manifest line {line:?}");
        let p = m.path(f[0]);
        let md = fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("lstat {}: {e}", f[0]));
        assert_eq!(md.nlink().to_string(), f[3], "{}: nlink", f[0]);
        match f[1] {
            "dir" => assert!(md.is_dir(), "{} is a directory", f[0]),
            "symlink" => {
                let t = fs::read_link(&p).expect("readlink");
                assert_eq!(t, Path::new(f[4]), "{}: symlink target", f[0]);
            }
            _ => {
                assert_eq!(md.len().to_string(), f[2], "{}: size", f[0]);
                assert_eq!(sha256_file(&p), f[4], "{}: contents", f[0]);
            }
        }
        let want: Vec<&str> = if f[5] == "-" {
            vec![]
        } else {
            f[5].split(';').collect()
        };
        let names = llistxattr(&p);
        assert_eq!(names.len(), want.len(), "{}: xattrs {names:?}", f[0]);
        for (name, w) in names.iter().zip(&want) {
            let value = lgetxattr(&p, name).expect("getxattr");
            let got = format!("{name}={}", sha256_bytes(m.dir(), &value));
            assert_eq!(&got, w, "{}: xattr", f[0]);
        }
        count += 1;
    }
    assert!(count >= 50, "the manifest lists {count} entries");
}

#[test]
fn version_1_fixture_checks_mounts_and_reads_back() {
    require_fuse!();
    let _one = FIXTURE.lock().unwrap_or_else(|e| e.into_inner());
    let mut m = Mounted::empty();
    unpack_fixture(&m);
    let before = sha256_file(m.image());
    // fsck -n replays the log in memory only: the image stays as it was.
    let (code, out) = m.fsck(&["-n", "-f"]);
    assert_eq!(code, 0, "fsck -n of the version-1 fixture:\n{out}");
    assert!(out.contains("3 committed transactions replayed"), "{out}");
    assert_eq!(sha256_file(m.image()), before, "fsck -n changed the image");
    m.mount();
    assert_matches_manifest(&m);
    // A version-1 image stays writable by this build (and stays version 1).
    fs::write(m.path("dir/written-by-v2.txt"), b"new\n").expect("write");
    // Enough names to split dentry leaves: without `slotted_leaves` every leaf this build
    // writes stays sorted (kind 1; fsck reports a slotted one, docs/format.md section 6).
    fs::create_dir(m.path("many")).expect("mkdir");
    for i in 0..150 {
        fs::write(m.path(&format!("many/f{i}")), b"").expect("create");
    }
    fs::rename(m.path("hello.txt"), m.path("dir/hello-moved.txt")).expect("rename");
    fs::rename(m.path("dir/hello-moved.txt"), m.path("hello.txt")).expect("rename back");
    m.unmount_ok();
    m.assert_fsck_clean();
    let head = fs::read(m.image()).expect("read image");
    assert_eq!(
        head[8..12],
        1u32.to_le_bytes(),
        "the header is still version 1"
    );
    m.mount();
    assert_file(m.path("dir/written-by-v2.txt"), b"new\n");
    fs::remove_file(m.path("dir/written-by-v2.txt")).expect("rm");
    assert_eq!(fs::read_dir(m.path("many")).expect("ls").count(), 150);
    fs::remove_dir_all(m.path("many")).expect("rm -r");
    assert_matches_manifest(&m);
    m.unmount_ok();
    m.assert_fsck_clean();
}

/// Set feature `bits` in word `word` (0 compat, 1 ro_compat, 2 incompat) of the header (with
/// its CRC) and, if `superblock`, of the superblock's copy.
fn set_feature(image: &Path, word: usize, bits: u32, superblock: bool) {
    let mut img = fs::read(image).expect("read image");
    let at = 0x80 + 4 * word;
    let v = u32::from_le_bytes(img[at..at + 4].try_into().unwrap()) | bits;
    img[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let crc = crc32c::crc32c(&img[0x80..0x8c]);
    img[0x8c..0x90].copy_from_slice(&crc.to_le_bytes());
    if superblock {
        let seg = u64::from_le_bytes(img[0x30..0x38].try_into().unwrap()) as usize;
        let at = seg + 0x100 + 4 * word;
        let v = u32::from_le_bytes(img[at..at + 4].try_into().unwrap()) | bits;
        img[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    fs::write(image, img).expect("write image");
}

/// Mounting fails with a message naming the incompat features; if `untouched`, nothing is
/// written (a header bit refuses the image before the log is opened; the superblock's copy
/// is read after recovery, which may rewrite the log's status block).
fn assert_refused(m: &Mounted, what: &str, untouched: bool) {
    let before = sha256_file(m.image());
    let o = m.try_mount_at(m.mnt(), Duration::from_secs(20));
    assert!(
        !o.timed_out && !o.success(),
        "{what}: mounted:\n{}",
        o.output()
    );
    assert!(
        o.output().contains("incompat: bit 29"),
        "{what}: {}",
        o.output()
    );
    for args in [&["-n"][..], &["-y"][..]] {
        let (code, out) = m.fsck(args);
        assert_eq!(code, 8, "{what}: fsck {args:?}:\n{out}");
        assert!(
            out.contains("incompat: bit 29"),
            "{what}: fsck {args:?}: {out}"
        );
    }
    if untouched {
        assert_eq!(sha256_file(m.image()), before, "{what}: the image changed");
    }
}

#[test]
fn unknown_incompat_feature_is_refused() {
    require_fuse!();
    let m = Mounted::unmounted(&["-s", "64M"]);
    set_feature(m.image(), 2, 1 << 29, true);
    assert_refused(&m, "header and superblock", true);
    let o = mkfs(m.image(), &["-q"]);
    assert!(!o.success(), "mkfs without -f overwrote it");
    assert!(
        o.output().contains("already holds an rvmfs image") && o.output().contains("bit 29"),
        "mkfs: {}",
        o.output()
    );
    // The superblock's copy alone is refused too (after the log replay).
    let m = Mounted::unmounted(&["-s", "64M"]);
    let mut img = fs::read(m.image()).unwrap();
    let seg = u64::from_le_bytes(img[0x30..0x38].try_into().unwrap()) as usize;
    img[seg + 0x108..seg + 0x10c].copy_from_slice(&(1u32 << 29).to_le_bytes());
    fs::write(m.image(), img).unwrap();
    assert_refused(&m, "superblock only", false);
    mkfs(m.image(), &["-q", "-f"]).ok("mkfs -f over it");
}

#[test]
fn unknown_ro_compat_feature_mounts_read_only() {
    require_fuse!();
    let mut m = Mounted::with_mkfs(&["-s", "64M"]);
    fs::write(m.path("kept"), b"kept\n").unwrap();
    m.unmount_ok();
    set_feature(m.image(), 1, 1 << 30, true);
    let (code, out) = m.fsck(&["-y"]);
    assert_eq!(code, 8, "fsck -y:\n{out}");
    assert!(
        out.contains("ro-compat: bit 30") && out.contains("read-only"),
        "{out}"
    );
    m.assert_fsck_clean();
    m.mount();
    assert_file(m.path("kept"), b"kept\n");
    let err = fs::write(m.path("new"), b"x").expect_err("a write on the read-only mount");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    m.unmount_ok();
    assert!(
        m.daemon_log().contains("mounting read-only"),
        "{}",
        m.daemon_log()
    );
    m.assert_fsck_clean();
    // An unknown compat bit changes nothing.
    let mut m = Mounted::unmounted(&["-s", "64M"]);
    set_feature(m.image(), 0, 1 << 3, true);
    m.mount();
    fs::write(m.path("new"), b"x").expect("write with an unknown compat bit");
    m.unmount_ok();
    m.assert_fsck_clean();
}
