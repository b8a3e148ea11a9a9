//! External conformance tools on a mounted rvmfs; each test skips with a message when its tool
//! is not installed (scripts/pjdfstest.sh and scripts/fsx.sh install them):
//! - pjdfstest (`cargo install pjdfstest`) with ../shared/pjdfstest.toml: 0 failures, and at
//!   least PJDFSTEST_MIN_PASSED passes (default 382: ext4 passes 383 with this config; the one
//!   difference, link::link_count_max, is skipped on every FUSE mount because glibc's
//!   pathconf(_PC_LINK_MAX) answers 127, "unknown", for FUSE's f_type; posix_limits tests the
//!   same EMLINK limit directly). Needs root and the users nobody/nogroup and daemon.
//! - fsx (`cargo install fsx`): 3 seeds x RVMFS_FSX_OPS operations (default 5000; the script
//!   runs 20000) with mmap, fallocate, punch hole and copy_file_range enabled.

#[path = "posix_common.rs"]
mod common;
use common::*;
use rvmfs_tests::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

const PJDFSTEST_CONFIG: &str = r#"[features]
posix_fallocate = {}
utime_now = {}
utimensat = {}
rename_ctime = {}

[settings]
naptime = 0.01
allow_remount = false

[dummy_auth]
entries = [
  ["nobody", "nogroup"],
  ["daemon", "daemon"],
]
"#;

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// (failed, skipped, passed) from pjdfstest's summary line.
fn pjdfstest_summary(output: &str) -> Option<(u64, u64, u64)> {
    let line = output
        .lines()
        .rev()
        .find(|l| l.starts_with("Summary:"))?
        .to_string();
    let num = |word: &str| -> Option<u64> {
        let words: Vec<&str> = line.split([',', ' ']).filter(|w| !w.is_empty()).collect();
        let at = words.iter().position(|w| *w == word)?;
        words.get(at.checked_sub(1)?)?.parse().ok()
    };
    Some((num("failed")?, num("skipped")?, num("passed")?))
}

#[test]
fn pjdfstest_suite() {
    require_fuse!();
    let Some(pjd) = tool("pjdfstest") else {
        eprintln!("SKIPPED pjdfstest_suite: pjdfstest is not installed (cargo install pjdfstest, or run scripts/pjdfstest.sh)");
        return;
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED pjdfstest_suite: needs root (the suite switches to dummy users)");
        return;
    }
    for (kind, name) in [
        ("passwd", "nobody"),
        ("group", "nogroup"),
        ("passwd", "daemon"),
        ("group", "daemon"),
    ] {
        if !run(Command::new("getent").args([kind, name])).success() {
            eprintln!("SKIPPED pjdfstest_suite: {kind} entry {name} missing (scripts/pjdfstest.sh creates it)");
            return;
        }
    }
    let mut m = Mounted::new();
    // The dummy users must reach the mount point.
    fs::set_permissions(m.dir(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(m.mnt(), fs::Permissions::from_mode(0o755)).unwrap();
    let shared = workspace_root().join("../shared/pjdfstest.toml");
    let config = if shared.is_file() {
        shared
    } else {
        let c = m.dir().join("pjdfstest.toml");
        fs::write(&c, PJDFSTEST_CONFIG).unwrap();
        c
    };
    let o = run_timeout(
        Command::new(&pjd)
            .arg("-c")
            .arg(&config)
            .arg("-p")
            .arg(m.mnt())
            .current_dir(m.mnt()),
        Duration::from_secs(600),
    );
    let text = strip_ansi(&o.output());
    let not_ok: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_end().ends_with(" ok") && !l.trim().is_empty())
        .collect();
    let Some((failed, skipped, passed)) = pjdfstest_summary(&text) else {
        panic!(
            "no summary from pjdfstest (exit {}):\n{}",
            o.code(),
            not_ok.join("\n")
        );
    };
    eprintln!("pjdfstest on rvmfs: {failed} failed, {skipped} skipped, {passed} passed");
    assert_eq!(failed, 0, "pjdfstest failures:\n{}", not_ok.join("\n"));
    let min = env_count("PJDFSTEST_MIN_PASSED", 382);
    assert!(
        passed >= min,
        "only {passed} passed (want >= {min}):\n{}",
        not_ok.join("\n")
    );
    m.unmount_ok();
    m.assert_fsck_clean();
}

const FSX_CONFIG: &str = r#"flen = 1048576
[opsize]
max = 131072
[weights]
close_open = 1
read = 10
write = 10
mapread = 10
mapwrite = 10
invalidate = 1
truncate = 2
fsync = 1
fdatasync = 1
posix_fallocate = 3
punch_hole = 3
sendfile = 1
posix_fadvise = 1
copy_file_range = 3
"#;

#[test]
fn fsx_three_seeds() {
    require_fuse!();
    let Some(fsx) = tool("fsx") else {
        eprintln!("SKIPPED fsx_three_seeds: fsx is not installed (cargo install fsx, or run scripts/fsx.sh)");
        return;
    };
    let ops = env_count("RVMFS_FSX_OPS", 5000).to_string();
    let mut m = Mounted::new();
    let config = m.dir().join("fsx.toml");
    fs::write(&config, FSX_CONFIG).unwrap();
    for seed in ["1", "2", "3"] {
        let artifacts = m.dir().join(format!("fsx-{seed}"));
        fs::create_dir(&artifacts).unwrap();
        let o = run_timeout(
            Command::new(&fsx)
                .args(["-q", "-N", &ops, "-S", seed, "-f"])
                .arg(&config)
                .arg("-P")
                .arg(&artifacts)
                .arg(m.path(format!("fsx-{seed}"))),
            Duration::from_secs(600),
        );
        assert!(
            o.success(),
            "fsx seed {seed} ({ops} ops) failed (exit {}):\n{}",
            o.code(),
            o.output()
        );
    }
    m.unmount_ok();
    m.assert_fsck_clean();
}
