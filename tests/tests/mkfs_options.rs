//! mkfs.rvmfs speaks mke2fs's options (issue 13, item 1): `-L LABEL`, `-U UUID|random|time|
//! clear`, `-J size=SIZE` (`--log-size` kept), `-n` (print, write nothing), `-m PERCENT`
//! reserved for root: statfs reports `bavail < bfree`, a user who is not root gets ENOSPC
//! once only the reserve is left, root does not.

use rvmfs_tests::*;
use serde_json::Value;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn dump(image: &Path) -> Value {
    let o = admin_on(image, &["dump", "--json"]).ok("dump --json");
    serde_json::from_str(&o.stdout).expect("dump --json is JSON")
}

#[test]
fn label_uuid_log_size_and_reserve_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("a.img");
    let uuid = "6a1f3c2e-9b7d-4e5f-8a01-23456789abcd";
    let o = mkfs(
        &img,
        &[
            "-s", "64M", "-L", "backup-1", "-U", uuid, "-J", "size=2", "-m", "5",
        ],
    )
    .ok("mkfs with -L -U -J -m");
    for want in [
        "Filesystem UUID: 6a1f3c2e",
        "Filesystem volume name: backup-1",
        "reserved for the super user",
    ] {
        assert!(
            o.stdout.contains(want),
            "mkfs output lacks {want:?}:\n{}",
            o.stdout
        );
    }
    let j = dump(&img);
    assert_eq!(j["header"]["uuid"], uuid);
    assert_eq!(
        j["header"]["log_len"],
        2 << 20,
        "-J size=2 is MiB, as mke2fs"
    );
    assert_eq!(j["superblock"]["label"], "backup-1");
    let blocks = j["superblock"]["data_blocks"].as_u64().unwrap();
    assert_eq!(
        j["superblock"]["reserved_blocks"].as_u64().unwrap(),
        blocks / 20
    );
    // --log-size stays for older scripts (bytes, suffixes); -q prints nothing.
    let o = mkfs(
        &img,
        &["-f", "-q", "-s", "64M", "--log-size", "3M", "-U", "clear"],
    )
    .ok("--log-size");
    assert!(o.stdout.is_empty(), "{}", o.stdout);
    let j = dump(&img);
    assert_eq!(j["header"]["log_len"], 3 << 20);
    assert_eq!(j["header"]["uuid"], "00000000-0000-0000-0000-000000000000");
    assert_eq!(
        j["superblock"]["reserved_blocks"], 0,
        "no reserve by default"
    );
    mkfs(&img, &["-f", "-q", "-s", "64M", "-U", "time"]).ok("-U time");
    assert!(
        dump(&img)["header"]["uuid"]
            .as_str()
            .unwrap()
            .chars()
            .nth(14)
            == Some('7')
    );
    for bad in [
        &["-J", "bogus=1"][..],
        &["-L", &"y".repeat(33)],
        &["-m", "60"],
        &["-U", "nope"],
    ] {
        let mut args = vec!["-f", "-s", "64M"];
        args.extend_from_slice(bad);
        let o = mkfs(&img, &args);
        assert_eq!(o.code(), 2, "mkfs {bad:?} is a usage error: {}", o.output());
    }
    assert!(fsck(&img, &["-n"]).0 == 0);
}

#[test]
fn dry_run_prints_the_layout_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("new.img");
    let o = mkfs(&new, &["-n", "-s", "1G"]).ok("mkfs -n");
    assert!(
        o.stdout.contains("Creating filesystem with") && o.stdout.contains("nothing was written"),
        "{}",
        o.stdout
    );
    assert!(!new.exists(), "-n created the file");
    let img = dir.path().join("old.img");
    mkfs(&img, &["-q", "-s", "64M", "-L", "keep"]).ok("mkfs");
    let before = fs::read(&img).unwrap();
    mkfs(&img, &["-n", "-L", "other"]).ok("mkfs -n over an image");
    assert_eq!(fs::read(&img).unwrap(), before, "-n changed the image");
}

/// Run `sh -c SCRIPT` as user nobody (setpriv); returns its outcome.
fn as_nobody(script: &str) -> Outcome {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "sh",
        "-c",
        script,
    ]);
    run_timeout(&mut c, Duration::from_secs(60))
}

#[test]
fn reserved_blocks_are_root_only() {
    require_fuse!();
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 || which("setpriv").is_none() {
        eprintln!("SKIPPED: needs root and setpriv to write as another user");
        return;
    }
    let m = Mounted::with_mkfs(&["-s", "32M", "-m", "10"]);
    let reserved = dump(m.image())["superblock"]["reserved_blocks"]
        .as_u64()
        .unwrap();
    assert!(reserved > 500, "{reserved}");
    let st = statvfs(m.mnt());
    assert_eq!(
        st.f_bfree - st.f_bavail,
        reserved,
        "statfs: bavail leaves the reserve out"
    );
    fs::create_dir(m.path("pub")).unwrap();
    fs::set_permissions(
        m.path("pub"),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let file = m.path("pub/fill");
    let o = as_nobody(&format!(
        "dd if=/dev/zero of={} bs=64k 2>&1",
        file.display()
    ));
    assert!(
        !o.success() && o.output().contains("No space left"),
        "{}",
        o.output()
    );
    let st = statvfs(m.mnt());
    // A write that does not fit whole fails whole (ENOSPC), so less than one dd block is left.
    assert!(
        st.f_bavail < 16,
        "nobody used all but the reserve: bavail {}",
        st.f_bavail
    );
    assert!(
        st.f_bfree >= reserved && st.f_bfree <= reserved + 16,
        "bfree {} reserved {reserved}",
        st.f_bfree
    );
    // Root may still write into the reserve.
    fs::write(m.path("root-file"), pattern(5, 1 << 20)).expect("root writes into the reserve");
    assert_file(m.path("root-file"), pattern(5, 1 << 20));
    drop(m);
}

fn statvfs(path: &Path) -> libc::statvfs {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: statvfs fills the zeroed struct; the path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    st
}
