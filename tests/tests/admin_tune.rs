//! `rvmfs-admin tune` (issue 13, item 7), as tune2fs is used: the label, UUID, default mount
//! options, commit interval, error policy and root reserve are changed offline, `dump` shows
//! them, the next mount applies the stored defaults (the command line still wins), fsck stays
//! clean; a mounted image is refused; a new UUID keeps the commits a killed daemon left in
//! its spool (which is named by the UUID).

use rvmfs_tests::*;
use serde_json::Value;
use std::fs;
use std::path::Path;

fn superblock(image: &Path) -> Value {
    let o = admin_on(image, &["dump", "-h", "--json"]).ok("dump -h --json");
    let j: Value = serde_json::from_str(&o.stdout).expect("dump --json is JSON");
    j["superblock"].clone()
}

fn header(image: &Path) -> Value {
    let o = admin_on(image, &["dump", "-h", "--json"]).ok("dump -h --json");
    let j: Value = serde_json::from_str(&o.stdout).expect("dump --json is JSON");
    j["header"].clone()
}

#[test]
fn tune_changes_show_in_dump_and_fsck_stays_clean() {
    let m = Mounted::unmounted(&["-s", "64M"]);
    let o = admin_on(
        m.image(),
        &[
            "tune",
            "-L",
            "photos",
            "-o",
            "nodiscard,threads=3",
            "-c",
            "2",
            "-e",
            "panic",
            "-m",
            "5",
            "-l",
        ],
    )
    .ok("tune");
    assert!(
        o.stdout.contains("Filesystem volume name:     photos"),
        "-l prints the header:\n{}",
        o.stdout
    );
    let sb = superblock(m.image());
    assert_eq!(sb["label"], "photos");
    assert_eq!(sb["mount_opts"], "nodiscard,threads=3");
    assert_eq!(sb["commit_interval"], 2);
    assert_eq!(sb["errors"], "panic");
    let blocks = sb["data_blocks"].as_u64().unwrap();
    assert_eq!(sb["reserved_blocks"].as_u64().unwrap(), blocks * 5 / 100);
    m.assert_fsck_clean();
    // Clearing works; what is not asked for stays.
    admin_on(m.image(), &["tune", "-L", "", "-o", ""]).ok("tune -L '' -o ''");
    let sb = superblock(m.image());
    assert_eq!(
        (sb["label"].as_str(), sb["mount_opts"].as_str()),
        (Some(""), Some(""))
    );
    assert_eq!(sb["errors"], "panic");
    // Bad values are usage errors, and change nothing.
    for bad in [
        &["-o", "ro"][..],
        &["-o", "bogus"],
        &["-e", "explode"],
        &["-L", &"x".repeat(33)],
    ] {
        let mut args = vec!["tune"];
        args.extend_from_slice(bad);
        let o = admin_on(m.image(), &args);
        assert_eq!(o.code(), 16, "tune {bad:?}: {}", o.output());
    }
    assert_eq!(superblock(m.image())["errors"], "panic");
}

#[test]
fn mount_applies_the_stored_defaults_and_the_command_line_wins() {
    require_fuse!();
    let mut m = Mounted::unmounted(&["-s", "64M"]);
    admin_on(m.image(), &["tune", "-o", "nodatasum", "-e", "continue"]).ok("tune -o nodatasum");
    m.set_daemon_env("RUST_LOG", "info");
    m.mount();
    fs::write(m.path("unsummed"), pattern(1, 100_000)).unwrap();
    // A mounted image is refused (tune2fs refuses a mounted image's UUID too).
    let o = admin_on(m.image(), &["tune", "-L", "busy"]);
    assert_eq!(o.code(), 8, "{}", o.output());
    assert!(o.stderr.contains("unmount it first"), "{}", o.output());
    m.unmount_ok();
    assert!(
        m.daemon_log()
            .contains("stored default mount options: nodatasum,errors=continue"),
        "{}",
        m.daemon_log()
    );
    let (code, out) = m.fsck(&["-n", "-c"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("1 files not checksummed"),
        "stored nodatasum applied:\n{out}"
    );
    // `-o datasum` on the command line overrides the stored nodatasum.
    m.set_mount_options(&["datasum"]);
    m.mount();
    fs::write(m.path("summed"), pattern(2, 100_000)).unwrap();
    m.unmount_ok();
    let (code, out) = m.fsck(&["-n", "-c"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("of 1 files verified") && out.contains("1 files not checksummed"),
        "{out}"
    );
}

#[test]
fn new_uuid_keeps_the_commits_of_a_killed_daemon() {
    require_fuse!();
    let mut m = Mounted::with_mkfs(&["-s", "64M"]);
    let old = header(m.image())["uuid"].as_str().unwrap().to_string();
    let old_spool = Path::new("/dev/shm").join(format!("rvmfs-{old}.spool"));
    fs::create_dir(m.path("d")).unwrap();
    fs::write(m.path("d/kept"), pattern(3, 20_000)).unwrap();
    m.kill9(); // the commits wait in the spool, named by the old UUID
    assert!(
        old_spool.exists(),
        "no spool {} after kill -9",
        old_spool.display()
    );
    let new = "0e7a0b1c-2d3e-4f50-8a6b-7c8d9e0f1a2b";
    admin_on(m.image(), &["tune", "-U", new]).ok("tune -U");
    assert_eq!(header(m.image())["uuid"], new);
    assert!(!old_spool.exists(), "{} left behind", old_spool.display());
    m.assert_fsck_clean();
    m.mount();
    assert_file(&m.path("d/kept"), &pattern(3, 20_000));
    m.unmount_ok();
    for arg in ["random", "time", "clear"] {
        admin_on(m.image(), &["tune", "-U", arg]).ok(&format!("tune -U {arg}"));
        let uuid = header(m.image())["uuid"].as_str().unwrap().to_string();
        assert_eq!(
            uuid == "00000000-0000-0000-0000-000000000000",
            arg == "clear",
            "{arg}: {uuid}"
        );
    }
    m.assert_fsck_clean();
}

#[test]
fn stored_error_policy_applies_unless_the_command_line_says_otherwise() {
    require_fuse!();
    use std::io::Write;
    let mut m = Mounted::unmounted(&["-s", "64M"]);
    admin_on(m.image(), &["tune", "-e", "continue"]).ok("tune -e continue");
    // The first write(2) of the image after the mount is the big file's data: it fails.
    m.set_mount_options(&["sync", "inject_fault=write:0"]);
    m.mount();
    let data = vec![7u8; 1 << 20];
    let mut f = fs::File::create(m.path("big")).unwrap();
    assert!(f.write_all(&data).is_err());
    f.write_all(&data)
        .expect("errors=continue (stored) goes on after a data write error");
    drop(f);
    m.unmount_ok();
    let (code, out) = m.fsck(&["-y"]);
    assert!(code <= 1, "{out}");
    // The command line's errors=remount-ro wins: the next change is refused.
    m.set_mount_options(&["sync", "errors=remount-ro", "inject_fault=write:0"]);
    m.mount();
    let mut f = fs::File::create(m.path("big2")).unwrap();
    assert!(f.write_all(&data).is_err());
    assert!(
        f.write_all(&data).is_err(),
        "remount-ro refuses later changes"
    );
    drop(f);
    m.unmount();
}
