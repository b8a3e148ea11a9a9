//! `rvmfs-admin dump` (issue 13, item 3), as dumpe2fs is used: on a fresh image, on a mounted
//! one (read-only, the state on disk), on one whose daemon was killed with live records in
//! its log, `-h` and `--json`, and its messages and exit codes for bad input.

use rvmfs_tests::*;
use serde_json::Value;
use std::fs;

fn dump_json(m: &Mounted, extra: &[&str]) -> Value {
    let mut args = vec!["dump", "--json"];
    args.extend_from_slice(extra);
    let o = admin_on(m.image(), &args).ok("rvmfs-admin dump --json");
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("dump --json: {e}\n{}", o.output()))
}

#[test]
fn dump_shows_geometry_counters_log_and_free_space() {
    let m = Mounted::unmounted(&["-s", "64M", "-L", "dumped", "-N", "2048"]);
    let text = admin_on(m.image(), &["dump"]).ok("dump").stdout;
    for want in [
        "Filesystem volume name:     dumped",
        "Inode count:                2048",
        "Filesystem state:           clean",
        "Filesystem features:        backup_sb data_csum keyed_hash deferred_ranges slotted_leaves",
        "Log live records:           0",
        "Free extents:               1",
    ] {
        assert!(text.contains(want), "dump lacks {want:?}:\n{text}");
    }
    let j = dump_json(&m, &[]);
    let (h, sb) = (&j["header"], &j["superblock"]);
    assert_eq!(h["data_blocks"], sb["data_blocks"]);
    assert_eq!(j["free_space"]["free_blocks"], h["data_blocks"]);
    assert_eq!(j["free_space"]["largest_free_extent"], h["data_blocks"]);
    assert_eq!(sb["inodes_used"], 1);
    assert_eq!(j["in_use"], false);
    assert_eq!(j["error"]["state"], "none");
    let header_only = dump_json(&m, &["-h"]);
    assert!(header_only["log"].is_null() && header_only["free_space"].is_null());
    assert_eq!(header_only["header"], j["header"]);
}

#[test]
fn dump_of_a_mounted_image_and_of_a_log_to_replay() {
    require_fuse!();
    let mut m = Mounted::with_mkfs(&["-s", "64M"]);
    fs::write(m.path("a"), pattern(1, 300_000)).unwrap();
    fs::write(m.path("b"), pattern(2, 5000)).unwrap();
    // A mounted image is shown read-only (dumpe2fs does so too), marked in use.
    let j = dump_json(&m, &[]);
    assert_eq!(j["in_use"], true, "{j}");
    assert_eq!(j["superblock"]["state"], "not clean");
    assert_eq!(j["superblock"]["mount_count"], 1);
    let text = admin_on(m.image(), &["dump", "-h"])
        .ok("dump -h of a mounted image")
        .stdout;
    assert!(text.contains("in use"), "{text}");
    // Killed: the commits wait in the log (and spool); dump replays them in memory.
    let f = fs::File::open(m.path("a")).unwrap();
    f.sync_all().unwrap();
    drop(f);
    m.kill9();
    let before = fs::read(m.image()).unwrap();
    let j = dump_json(&m, &[]);
    assert_eq!(
        fs::read(m.image()).unwrap(),
        before,
        "dump wrote to the image"
    );
    let log = &j["log"];
    assert!(log["live_records"].as_u64().unwrap() > 0, "{log}");
    assert!(
        log["tail"].as_u64().unwrap() > log["head"].as_u64().unwrap(),
        "{log}"
    );
    assert_eq!(
        j["superblock"]["inodes_used"], 3,
        "root, a and b after replay: {j}"
    );
    let used = j["superblock"]["blocks_used"].as_u64().unwrap();
    assert!(used >= 300_000 / 4096 + 2, "blocks used {used}");
    assert_eq!(
        j["free_space"]["free_blocks"].as_u64().unwrap(),
        j["header"]["data_blocks"].as_u64().unwrap() - used
    );
    m.assert_fsck_clean();
}

#[test]
fn dump_errors_name_the_image_and_exit_like_e2fsprogs() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.img");
    let o = admin_on(&missing, &["dump"]);
    assert_eq!(o.code(), 8, "{}", o.output());
    let prefix = format!("rvmfs-admin dump: {}: ", missing.display());
    assert!(o.stderr.starts_with(&prefix), "{}", o.output());
    let junk = dir.path().join("junk.img");
    fs::write(&junk, vec![7u8; 1 << 20]).unwrap();
    let o = admin_on(&junk, &["dump"]);
    assert_eq!(o.code(), 8);
    assert!(o.stderr.contains("not an rvmfs image"), "{}", o.output());
    let o = admin_on(&junk, &["dump", "--no-such-option"]);
    assert_eq!(o.code(), 16, "usage error: {}", o.output());
}
