//! `rvmfs-admin rdump` (issue 13, item 5): a subtree copied out of an image keeps contents,
//! modes, owners, times, xattrs, symlinks, FIFOs and hard links, and the image is not written;
//! a data block failing its checksum becomes a hole and an inode of no known type is skipped,
//! both reported (exit 1), the rest copied; with the root directory's B+tree leaf damaged on
//! purpose, rdump by inode number and `--lost` still recover every file with its content.

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
    let segment = word_at(image, 0x30); // header: segment_offset (docs/format.md section 2)
    let root = word_at(image, segment + 0xC0); // superblock: dentry_root (section 5.1)
    let kind = word_at(image, segment + root) & 0xffff;
    assert_eq!(kind, 2, "the dentry tree's root is an internal node");
    let leaf = word_at(image, segment + root + 8); // child 0 (section 6)
    write_at(image, segment + leaf, &[0xEE; 16]);
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

/// Little-endian u64 at `at` of `image`.
fn word_at(image: &Path, at: u64) -> u64 {
    let mut b = [0u8; 8];
    fs::File::open(image)
        .unwrap()
        .read_exact_at(&mut b, at)
        .unwrap();
    u64::from_le_bytes(b)
}

fn write_at(image: &Path, at: u64, bytes: &[u8]) {
    let f = OpenOptions::new().write(true).open(image).unwrap();
    f.write_all_at(bytes, at).unwrap();
    f.sync_all().unwrap();
}

fn json(o: &Outcome) -> serde_json::Value {
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", o.output()))
}

#[test]
fn rdump_skips_a_damaged_block_and_an_invalid_inode_and_goes_on() {
    require_fuse!();
    let (m, src) = filled();
    let img = s(m.image());
    let ex = json(&admin(&["debug", "--json", img, "extents", "/keep/big.bin"]).ok("extents"));
    let phys = ex[0]["physical"].as_u64().unwrap();
    assert!(ex[0]["length"].as_u64().unwrap() >= 2, "{ex}");
    let deep = json(&admin(&["debug", "--json", img, "stat", "/keep/d/sub/deep.bin"]).ok("stat"));
    let deep = deep["ino"].as_u64().unwrap();
    // Block 1 of big.bin overwritten (it fails its checksum); deep.bin's mode of no known type.
    let data_offset = word_at(m.image(), 0x40); // header: data_offset (docs/format.md section 2)
    write_at(m.image(), data_offset + (phys + 1) * 4096, &[0x55; 4096]);
    let segment = word_at(m.image(), 0x30);
    let table = word_at(m.image(), segment + 0x38); // superblock: inode_table (section 5.1)
    write_at(
        m.image(),
        segment + table + (deep - 1) * 128,
        &0o170644u32.to_le_bytes(),
    );

    let dest = m.dir().join("out");
    let o = rdump(&[img, "/", s(&dest)]);
    assert_eq!(o.code(), 1, "{}", o.output());
    let hole = "/keep/big.bin: inode";
    assert!(
        o.stderr.contains(hole) && o.stderr.contains("bytes 4096..8192 cannot be read"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr
            .contains(&format!("inode {deep} skipped: unknown file type")),
        "{}",
        o.stderr
    );
    let mut want = fs::read(src.path().join("keep/big.bin")).unwrap();
    want[4096..8192].fill(0);
    assert!(
        fs::read(dest.join("keep/big.bin")).unwrap() == want,
        "big.bin: only block 1 is a hole"
    );
    let diffs = compare_manifests(&manifest(src.path()), &manifest(&dest), Compare::EXACT);
    let expected = |d: &String| {
        d == "missing: keep/d/sub/deep.bin" || d.starts_with("keep/big.bin: want file size")
    };
    assert!(diffs.len() == 2 && diffs.iter().all(expected), "{diffs:#?}");
}
