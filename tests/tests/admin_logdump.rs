//! `rvmfs-admin logdump` (issue 13, item 4): after a `kill -9` of a mount whose writes were
//! fsynced, the live records are listed with what their ranges touch (the file's inode, the
//! dentry tree's nodes, its data as external ranges); `--inode` and `--lsn` filter them; the
//! spool's records beyond the log are counted; a torn last record is reported with its offset
//! (exit 1) and the records before it are still listed.

use rvmfs_tests::*;
use serde_json::Value;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;

fn logdump(m: &Mounted, args: &[&str]) -> Outcome {
    let mut all = vec!["logdump"];
    all.extend_from_slice(args);
    all.push(m.image().to_str().unwrap());
    admin(&all)
}

fn logdump_json(m: &Mounted, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let o = logdump(m, &all);
    let v = serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", o.output()));
    (o.code(), v)
}

/// What the ranges of `rec` touch, one string each.
fn touches(rec: &Value) -> Vec<String> {
    rec["ranges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["what"].as_str().unwrap().to_string())
        .collect()
}

/// A mount killed with `kill -9` after `d/synced` (8 KiB, an xattr) was written and fsynced
/// and `unsynced` created without fsync; returns the guard and the inode of `d/synced`.
fn killed_after_writes() -> (Mounted, u64) {
    let mut m = Mounted::with_mkfs(&["-s", "256M"]);
    fs::create_dir(m.path("d")).unwrap();
    let mut f = fs::File::create(m.path("d/synced")).unwrap();
    f.write_all(&pattern(5, 8192)).unwrap();
    f.sync_all().unwrap();
    fs::File::create(m.path("unsynced")).unwrap();
    m.kill9();
    let st = admin(&[
        "debug",
        "--json",
        m.image().to_str().unwrap(),
        "stat",
        "/d/synced",
    ])
    .ok("stat");
    let st: Value = serde_json::from_str(&st.stdout).unwrap();
    (m, st["ino"].as_u64().unwrap())
}

#[test]
fn live_records_after_kill9_name_what_their_ranges_touch() {
    require_fuse!();
    let (m, ino) = killed_after_writes();
    let (code, v) = logdump_json(&m, &[]);
    assert_eq!(code, 0, "{v}");
    assert!(
        v["end"]["why"]
            .as_str()
            .unwrap()
            .starts_with("end of the written log"),
        "{}",
        v["end"]
    );
    let records = v["records"].as_array().unwrap();
    let all: Vec<String> = records.iter().flat_map(touches).collect();
    let has = |what: &str| all.iter().any(|t| t.contains(what));
    assert!(
        has(&format!("inode {ino} ")),
        "no range names inode {ino}: {all:#?}"
    );
    assert!(has("of the dentry tree"), "no dentry tree node: {all:#?}");
    assert!(has("superblock inodes_used"), "{all:#?}");
    assert!(has("name \"synced\" of an entry of directory"), "{all:#?}");
    let data = format!("of inode {ino} (file block 0)");
    let external = records
        .iter()
        .flat_map(|r| r["ranges"].as_array().unwrap())
        .any(|g| g["external"] == true && g["what"].as_str().unwrap().contains(&data));
    assert!(
        external,
        "the fsynced data is not an external range: {all:#?}"
    );
    // The unsynced create is in the log (the commit timer flushed it) or in the spool, whose
    // records beyond the log are listed and named the same way.
    let spooled: Vec<String> = v["spool"]["beyond"]
        .as_array()
        .map(|recs| recs.iter().flat_map(touches).collect())
        .unwrap_or_default();
    assert_eq!(
        spooled.is_empty(),
        v["spool"]["beyond_log"].as_u64().unwrap_or(0) == 0,
        "{v}"
    );
    let unsynced = "name \"unsynced\"";
    assert!(
        has(unsynced) || spooled.iter().any(|t| t.contains(unsynced)),
        "unsynced create neither logged nor spooled: {v}"
    );
    let text = logdump(&m, &[]).stdout;
    assert!(text.contains("Valid log ends at offset"), "{text}");
    assert!(text.contains("commit time not kept"), "{text}");
}

#[test]
fn inode_and_lsn_filters_select_records() {
    require_fuse!();
    let (m, ino) = killed_after_writes();
    let (_, all) = logdump_json(&m, &[]);
    let n = ino.to_string();
    let (_, only) = logdump_json(&m, &["--inode", &n]);
    let shown = only["records"].as_array().unwrap();
    assert!(
        !shown.is_empty() && shown.len() < all["records"].as_array().unwrap().len(),
        "{only}"
    );
    for rec in shown {
        let mine =
            rec["ranges"].as_array().unwrap().iter().any(|g| {
                g["inodes"][0].as_u64() <= Some(ino) && Some(ino) <= g["inodes"][1].as_u64()
            });
        assert!(
            mine,
            "--inode {ino} shows a record without a range of it: {rec}"
        );
    }
    let lsn = shown[0]["lsn"].as_u64().unwrap();
    let (_, one) = logdump_json(&m, &["--lsn", &format!("{lsn}..{lsn}")]);
    let one = one["records"].as_array().unwrap();
    assert_eq!(one.len(), 1, "{one:?}");
    assert_eq!(one[0]["lsn"], lsn);
}

#[test]
fn a_torn_last_record_is_reported_with_its_offset() {
    require_fuse!();
    let (m, _) = killed_after_writes();
    let (_, v) = logdump_json(&m, &[]);
    let records = v["records"].as_array().unwrap();
    let last = records.last().unwrap();
    let (offset, len) = (
        last["offset"].as_u64().unwrap(),
        last["len"].as_u64().unwrap(),
    );
    // Tear it: its second half never reached the disk.
    let f = OpenOptions::new().write(true).open(m.image()).unwrap();
    let half = len / 2;
    f.write_all_at(&vec![0u8; (len - half) as usize], offset + half)
        .unwrap();
    f.sync_all().unwrap();
    let o = logdump(&m, &[]);
    assert_eq!(o.code(), 1, "{}", o.output());
    let want = format!("torn record at offset {offset:#x}");
    assert!(o.stdout.contains(&want), "want {want:?} in:\n{}", o.stdout);
    let (_, after) = logdump_json(&m, &[]);
    assert_eq!(
        after["records"].as_array().unwrap().len(),
        records.len() - 1,
        "{after}"
    );
    assert_eq!(after["end"]["offset"], offset);
}
