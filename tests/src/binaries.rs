//! Locating the built binaries (`rvmfs`, `mkfs-rvmfs`, `fsck-rvmfs`, `rvmfs-admin`) and
//! running the offline tools on an image.
//!
//! [`bin_dir`] is `$RVMFS_BIN_DIR` if set, else whichever of `<target>/release` and
//! `<target>/debug` holds all three binaries and was built last. [`require_fuse!`](crate::require_fuse) skips a
//! test with a message when `/dev/fuse` or `fusermount3` is absent (and fails it when
//! `CI=true`).

use crate::processes::{cmd, run_timeout, Outcome};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// Name of the daemon binary.
pub const RVMFS: &str = "rvmfs";
/// Name of the mkfs binary as cargo builds it (installed as `mkfs.rvmfs`).
pub const MKFS: &str = "mkfs-rvmfs";
/// Name of the fsck binary as cargo builds it (installed as `fsck.rvmfs`).
pub const FSCK: &str = "fsck-rvmfs";
/// Name of the admin command (`rvmfs-admin dump`, `tune`, `logdump`, `debug`, `rdump`), built
/// by the `admin` crate.
pub const ADMIN: &str = "rvmfs-admin";

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The cargo target directory: `$CARGO_TARGET_DIR`, else the one the running test binary was
/// built into (`<target>/<profile>/deps/<test>`), else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        let d = PathBuf::from(d);
        return if d.is_absolute() {
            d
        } else {
            workspace_root().join(d)
        };
    }
    if let Ok(exe) = std::env::current_exe() {
        // <target>/<profile>/deps/<name>
        if let Some(t) = exe
            .parent()
            .and_then(|p| p.parent())
            .and_then(|p| p.parent())
        {
            if t.join("CACHEDIR.TAG").exists() {
                return t.to_path_buf();
            }
        }
    }
    workspace_root().join("target")
}

fn newest_mtime(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    for name in [RVMFS, MKFS, FSCK] {
        let m = fs::metadata(dir.join(name)).ok()?;
        if !m.is_file() {
            return None;
        }
        let t = m.modified().ok()?;
        newest = Some(match newest {
            Some(n) if n > t => n,
            _ => t,
        });
    }
    newest
}

/// The directory holding `rvmfs`, `mkfs-rvmfs` and `fsck-rvmfs`.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(d) = std::env::var_os("RVMFS_BIN_DIR") {
            let d = PathBuf::from(d);
            assert!(
                newest_mtime(&d).is_some(),
                "RVMFS_BIN_DIR={} does not hold all of {RVMFS}, {MKFS}, {FSCK}",
                d.display()
            );
            return d;
        }
        let t = target_dir();
        let mut best: Option<(SystemTime, PathBuf)> = None;
        for profile in ["release", "debug"] {
            let d = t.join(profile);
            if let Some(m) = newest_mtime(&d) {
                if best.as_ref().is_none_or(|(b, _)| m > *b) {
                    best = Some((m, d));
                }
            }
        }
        match best {
            Some((_, d)) => {
                eprintln!("rvmfs-tests: using binaries in {}", d.display());
                d
            }
            None => panic!(
                "no built binaries ({RVMFS}, {MKFS}, {FSCK}) in {}/release or {}/debug: \
                 run `cargo build --release --workspace` first, or set RVMFS_BIN_DIR",
                t.display(),
                t.display()
            ),
        }
    })
}

/// Full path of one of the built binaries.
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// `Ok` if FUSE mounts can be made here, else why not.
pub fn fuse_available() -> Result<(), String> {
    if !Path::new("/dev/fuse").exists() {
        return Err("/dev/fuse is absent".into());
    }
    if which("fusermount3").is_none() {
        return Err("fusermount3 is not installed (apt-get install fuse3)".into());
    }
    Ok(())
}

/// Whether we run under CI (`CI=true`, as GitHub Actions and most CI services set it): there,
/// a missing FUSE is a broken runner, not a reason to skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Skip the calling test (return early with a message) when FUSE is unavailable; under CI
/// ([`in_ci`]) fail it instead, so a runner without `/dev/fuse` or `fusermount3` cannot
/// pass the end-to-end tests without running them.
#[macro_export]
macro_rules! require_fuse {
    () => {
        if let Err(why) = $crate::fuse_available() {
            if $crate::in_ci() {
                panic!("CI=true but FUSE is unavailable: {}", why);
            }
            eprintln!("SKIPPED {}: {}", module_path!(), why);
            return;
        }
    };
}

/// Find a program in $PATH.
pub fn which(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| {
            fs::metadata(p)
                .map(|m| m.is_file() && m.mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// Run `mkfs-rvmfs ARGS IMAGE`.
pub fn mkfs(image: &Path, args: &[&str]) -> Outcome {
    run_timeout(cmd(bin(MKFS), args).arg(image), Duration::from_secs(300))
}

/// Run `rvmfs-admin ARGS` (the image is among `args`, where the subcommand wants it).
pub fn admin(args: &[&str]) -> Outcome {
    run_timeout(&mut cmd(bin(ADMIN), args), Duration::from_secs(300))
}

/// Run `rvmfs-admin ARGS IMAGE` (ARGS starting with the subcommand, e.g. `["dump", "-h"]`).
pub fn admin_on(image: &Path, args: &[&str]) -> Outcome {
    run_timeout(cmd(bin(ADMIN), args).arg(image), Duration::from_secs(300))
}

/// Run `fsck-rvmfs ARGS IMAGE`; returns (exit code, stdout+stderr).
pub fn fsck(image: &Path, args: &[&str]) -> (i32, String) {
    let o = run_timeout(cmd(bin(FSCK), args).arg(image), Duration::from_secs(600));
    if o.timed_out {
        return (-1, format!("fsck timed out after 600 s\n{}", o.output()));
    }
    (o.code(), o.output())
}
