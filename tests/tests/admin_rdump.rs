//! `rvmfs-admin rdump` (issue 13, item 5): a subtree copied out of an image keeps contents,
//! modes, owners, times, xattrs, symlinks, FIFOs and hard links, and the image is not written;
//! with the root directory's B+tree leaf damaged on purpose, rdump by inode number and
//! `--lost` still recover every file with its content, reporting what they skipped (exit 1).

use rvmfs_tests::*;
use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Files in the root directory: enough (more than one B+tree leaf holds) that the leftmost
/// leaf of the dentry tree holds only entries of the root directory (inode 1 sorts first).
const ROOT_FILES: usize = 150;

/// An unmounted image holding a copy of the returned tree: [`small_tree`] under `keep/` and
/// [`ROOT_FILES`] small files `rNNN` at the top.
fn filled() -> (Mounted, tempfile::TempDir) {
    let src = tempfile::tempdir().unwrap();
    small_tree(&src.path().join("keep"));
    for i in 0..ROOT_FILES {
        fs::write(
            src.path().join(format!("r{i:03}")),
            pattern(100 + i as u64, 100 + i),
        )
        .unwrap();
    }
    let mut m = Mounted::with_mkfs(&["-s", "256M"]);
    let all: Vec<PathBuf> = fs::read_dir(src.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cp_a(&all, m.mnt()).ok("cp -a into rvmfs");
    m.unmount_ok();
    (m, src)
}

fn rdump(args: &[&str]) -> Outcome {
    let mut all = vec!["rdump"];
    all.extend_from_slice(args);
    admin(&all)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Make the dentry tree's leftmost leaf unreadable (its node kind overwritten): every entry of
/// the root directory it holds is lost; returns the leaf's region offset.
fn damage_root_directory(image: &Path) -> u64 {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)
        .unwrap();
    let word = |at: u64| {
        let mut b = [0u8; 8];
        f.read_exact_at(&mut b, at).unwrap();
        u64::from_le_bytes(b)
    };
    let segment = word(0x30); // header: segment_offset (docs/format.md section 2)
    let root = word(segment + 0xC0); // superblock: dentry_root (section 5.1)
    let mut kind = [0u8; 2];
    f.read_exact_at(&mut kind, segment + root).unwrap();
    assert_eq!(
        u16::from_le_bytes(kind),
        2,
        "the dentry tree's root is an internal node"
    );
    let leaf = word(segment + root + 8); // child 0 (section 6)
    f.write_all_at(&[0xEE; 16], segment + leaf).unwrap();
    f.sync_all().unwrap();
    leaf
}

#[test]
fn rdump_keeps_contents_modes_owners_times_xattrs_and_links() {
    require_fuse!();
    let (m, src) = filled();
    let before = sha256_file(m.image());
    let dest = m.dir().join("out");
    let o = rdump(&[s(m.image()), "/", s(&dest)]);
    assert_eq!(o.code(), 0, "{}", o.output());
    assert!(o.stdout.contains("0 damaged items skipped"), "{}", o.stdout);
    assert_same_tree(src.path(), &dest, Compare::EXACT);
    assert_same_links_and_xattrs(src.path(), &dest);
    let sub = m.dir().join("sub-out");
    rdump(&[s(m.image()), "/keep/d/sub", s(&sub)]).ok("rdump of a subdirectory");
    assert_same_tree(
        &src.path().join("keep/d/sub"),
        &sub.join("sub"),
        Compare::EXACT,
    );
    assert_eq!(before, sha256_file(m.image()), "rdump wrote the image");
}

#[test]
fn rdump_by_inode_and_lost_recover_files_under_a_damaged_root_directory() {
    require_fuse!();
    let (m, src) = filled();
    let keep = admin(&["debug", s(m.image()), "ncheck", "1"]).ok("ncheck");
    assert!(keep.stdout.contains("1\t/"), "{}", keep.stdout);
    let stat = admin(&["debug", s(m.image()), "stat", "/keep"]).ok("stat /keep");
    let ino: u64 = stat
        .stdout
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    damage_root_directory(m.image());

    let o = admin(&["debug", s(m.image()), "ls", "/"]);
    assert_eq!(o.code(), 1, "ls of the damaged root: {}", o.output());
    let whole = m.dir().join("whole");
    let o = rdump(&[s(m.image()), "/", s(&whole)]);
    assert_eq!(o.code(), 1, "{}", o.output());
    assert!(
        o.stderr.contains("directory 1: its entries cannot be read"),
        "{}",
        o.stderr
    );

    let by_ino = m.dir().join("by-ino");
    let o = rdump(&[s(m.image()), &format!("<{ino}>"), s(&by_ino)]);
    assert_eq!(o.code(), 0, "rdump <{ino}>: {}", o.output());
    assert_same_tree(
        &src.path().join("keep"),
        &by_ino.join(format!("#{ino}")),
        Compare::EXACT,
    );
    assert_same_links_and_xattrs(&src.path().join("keep"), &by_ino.join(format!("#{ino}")));

    let lost = m.dir().join("lost");
    let o = rdump(&["--lost", s(m.image()), "/", s(&lost)]);
    assert_eq!(o.code(), 1, "{}", o.output());
    let lf = lost.join("lost+found");
    assert_same_tree(
        &src.path().join("keep"),
        &lf.join(format!("#{ino}")),
        Compare::ALL,
    );
    let want: BTreeSet<Vec<u8>> = (0..ROOT_FILES)
        .map(|i| pattern(100 + i as u64, 100 + i))
        .collect();
    let got: BTreeSet<Vec<u8>> = fs::read_dir(&lf)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| fs::read(p).unwrap())
        .collect();
    assert_eq!(
        got, want,
        "the root's files recovered under lost+found/#INO by content"
    );
}
