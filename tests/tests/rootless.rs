//! Rootless use: an unprivileged user formats an image in their home directory, mounts it
//! (the daemon mounts through the setuid helper fusermount3), uses it with ordinary programs,
//! unmounts it, checks it and mounts it again, all as that user (`runuser -u USER --`).
//!
//! What the machine needs (README "Using it"): /dev/fuse mode 0666 (this test, as root, sets it
//! as udev's rule would when it is not, and restores it), fusermount3 setuid root, and
//! `user_allow_other` in /etc/fuse.conf for `-o allow_other` (without it the daemon must fail
//! with fusermount3's reason and mount nothing, which is checked).
//!
//! Skips with a message when not run as root (it creates the throwaway user `rvmfs-rootless`
//! with `useradd -m` if absent, and removes it and its files afterwards if it created it).

use rvmfs_tests::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const USER: &str = "rvmfs-rootless";

/// Skip (or, under CI, fail) the test for a reason of the machine.
fn skip(why: &str) {
    assert!(!in_ci(), "CI=true but the rootless test cannot run: {why}");
    eprintln!("SKIPPED rootless: {why}");
}

/// The user, their work directory, and what the test changed on the machine, undone on drop.
struct Rootless {
    uid: u32,
    work: PathBuf,
    created_user: bool,
    /// The mode /dev/fuse had, when the test changed it.
    fuse_mode: Option<u32>,
    /// The binaries as the user runs them (the build's, or copies where the user cannot reach).
    bins: [PathBuf; 3],
}

fn root(what: &str, args: &[&str]) -> processes::Outcome {
    run_timeout(&mut cmd(what, args), Duration::from_secs(60))
}

impl Rootless {
    /// Make the machine ready, or say why it cannot be (then None).
    fn prepare() -> Option<Rootless> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            skip("not root (the test creates a user and runs as it)");
            return None;
        }
        for prog in ["runuser", "useradd", "userdel", "fusermount3", "flock"] {
            if which(prog).is_none() {
                skip(&format!("{prog} is not installed"));
                return None;
            }
        }
        let fusermount = which("fusermount3")?.metadata().ok()?;
        if fusermount.uid() != 0 || fusermount.mode() & 0o4000 == 0 {
            skip("fusermount3 is not setuid root (a user's mount needs it)");
            return None;
        }
        let created_user = root("id", &[USER]).code() != 0;
        if created_user {
            root("useradd", &["-m", "-s", "/bin/sh", USER]).ok("useradd -m");
        }
        let uid = root("id", &["-u", USER])
            .ok("id -u")
            .stdout
            .trim()
            .parse()
            .ok()?;
        let passwd = root("getent", &["passwd", USER]).ok("getent passwd");
        let home = PathBuf::from(passwd.stdout.trim().split(':').nth(5)?);
        let mut me = Rootless {
            uid,
            work: home.join(format!("rvmfs-rootless.{}", std::process::id())),
            created_user,
            fuse_mode: None,
            bins: [bin(MKFS), bin(RVMFS), bin(FSCK)],
        };
        me.open_dev_fuse();
        me.sh("mkdir \"$W\"").ok("mkdir in the user's home");
        me.reachable_bins();
        Some(me)
    }

    /// /dev/fuse mode 0666, as udev's rule sets it on a normal machine (containers often
    /// have 0600); the old mode is put back on drop.
    fn open_dev_fuse(&mut self) {
        let meta = std::fs::metadata("/dev/fuse").expect("stat /dev/fuse");
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o666 != 0o666 {
            eprintln!("rootless: /dev/fuse is mode {mode:04o}; 0666 for the test");
            std::fs::set_permissions("/dev/fuse", PermissionsExt::from_mode(0o666))
                .expect("chmod 0666 /dev/fuse");
            self.fuse_mode = Some(mode);
        }
    }

    /// Copy the binaries into the work directory when the user cannot run them where they are
    /// (a build tree under a private directory).
    fn reachable_bins(&mut self) {
        for b in &mut self.bins {
            let path = b.display().to_string();
            if as_user(&self.work, &format!("test -x '{path}'")).success() {
                continue;
            }
            let copy = self.work.join(b.file_name().expect("binary name"));
            std::fs::copy(&*b, &copy).expect("copy a binary for the user");
            std::fs::set_permissions(&copy, PermissionsExt::from_mode(0o755)).expect("chmod");
            *b = copy;
        }
    }

    /// Run a shell script as the user, with $MKFS, $RVMFS, $FSCK and $W (the work directory).
    fn sh(&self, script: &str) -> processes::Outcome {
        let vars = format!(
            "MKFS='{}' RVMFS='{}' FSCK='{}'",
            self.bins[0].display(),
            self.bins[1].display(),
            self.bins[2].display()
        );
        as_user(&self.work, &format!("{vars}; {script}"))
    }

    fn mnt(&self) -> PathBuf {
        self.work.join("mnt")
    }
}

/// `runuser -u USER -- env W=WORK sh -c SCRIPT`, two minutes at most.
fn as_user(work: &Path, script: &str) -> processes::Outcome {
    let w = format!("W={}", work.display());
    let mut c = Command::new("runuser");
    c.args(["-u", USER, "--", "env", &w, "sh", "-c", script]);
    run_timeout(&mut c, Duration::from_secs(120))
}

impl Drop for Rootless {
    fn drop(&mut self) {
        for mnt in [self.mnt(), self.work.join("mnt2")] {
            if is_fuse_mounted(&mnt) {
                let _ = fusermount_u(&mnt, true);
            }
        }
        let _ = std::fs::remove_dir_all(&self.work);
        if let Some(mode) = self.fuse_mode {
            let _ = std::fs::set_permissions("/dev/fuse", PermissionsExt::from_mode(mode));
        }
        if self.created_user {
            let _ = root("userdel", &["-r", USER]);
        }
    }
}

/// Wait until the daemon let go of the image (its lock), after an unmount.
const WAIT_FOR_DAEMON: &str =
    "i=0; until flock -n \"$W/img\" true; do i=$((i+1)); [ $i -gt 100 ] && exit 9; sleep 0.05; done";

/// Field `n` of the mount at `mnt` in /proc/mounts (2: the type, 3: the options).
fn mount_field(mnt: &Path, n: usize) -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").expect("/proc/mounts");
    let want = format!(" {} ", mnt.display());
    let line = mounts.lines().rfind(|l| l.contains(&want));
    line.and_then(|l| l.split(' ').nth(n))
        .unwrap_or_default()
        .to_string()
}

/// The options field of the mount at `mnt` in /proc/mounts.
fn mount_options(mnt: &Path) -> String {
    mount_field(mnt, 3)
}

fn user_allow_other() -> bool {
    std::fs::read_to_string("/etc/fuse.conf")
        .is_ok_and(|s| s.lines().any(|l| l.trim() == "user_allow_other"))
}

/// Without user_allow_other, `-o allow_other` by a user fails with fusermount3's reason
/// (exit 1) and mounts nothing; with it, the mount is made and other users may use it.
fn check_allow_other(r: &Rootless) {
    let out = r.sh("mkdir \"$W/mnt2\" && \"$RVMFS\" -o allow_other \"$W/img\" \"$W/mnt2\"");
    let mnt2 = r.work.join("mnt2");
    if user_allow_other() {
        out.ok("rvmfs -o allow_other with user_allow_other");
        assert!(mount_options(&mnt2).contains("allow_other"));
        r.sh(&format!("fusermount3 -u \"$W/mnt2\" && {WAIT_FOR_DAEMON}"))
            .ok("unmount mnt2");
        return;
    }
    assert_eq!(
        out.code(),
        1,
        "allow_other without user_allow_other:\n{}",
        out.output()
    );
    assert!(
        out.stderr.contains("user_allow_other"),
        "the error names user_allow_other: {}",
        out.output()
    );
    assert!(
        !is_fuse_mounted(&mnt2),
        "a failed allow_other mount left a mount"
    );
}

#[test]
fn an_unprivileged_user_formats_mounts_uses_and_unmounts_an_image_in_their_home() {
    require_fuse!();
    let Some(r) = Rootless::prepare() else {
        return;
    };
    r.sh("\"$MKFS\" -q -s 64M \"$W/img\"")
        .ok("mkfs.rvmfs as the user");
    check_allow_other(&r);
    r.sh("mkdir \"$W/mnt\" && \"$RVMFS\" \"$W/img\" \"$W/mnt\"")
        .ok("rvmfs as the user");
    // The type is fuse.rvmfs for a user's mount too (fusermount3 gets the subtype).
    assert_eq!(mount_field(&r.mnt(), 2), "fuse.rvmfs");
    let opts = mount_options(&r.mnt());
    assert!(
        opts.contains(&format!("user_id={}", r.uid)),
        "mount options: {opts}"
    );
    assert!(
        !opts.contains("allow_other"),
        "a user's mount asked allow_other: {opts}"
    );
    // Without allow_other the kernel keeps everyone else out, root included.
    let err = std::fs::metadata(r.mnt().join(".")).expect_err("root reads a user's mount");
    assert_eq!(
        err.raw_os_error(),
        Some(libc::EACCES),
        "root on the user's mount: {err}"
    );

    let used = r
        .sh(
            "cd \"$W/mnt\" && mkdir -p d/e && printf hello > d/f && ln -s f d/link \
             && cp -a /etc/passwd d/e/ && mv d/e/passwd d/e/p && sha256sum d/f d/e/p > ../sums \
             && stat -c '%u %a' d/f && cat d/link",
        )
        .ok("using the mount as the user");
    assert_eq!(
        used.stdout,
        format!("{} 644\nhello", r.uid),
        "owner, mode, contents"
    );

    r.sh(&format!("fusermount3 -u \"$W/mnt\" && {WAIT_FOR_DAEMON}"))
        .ok("fusermount3 -u as the user");
    assert!(!is_fuse_mounted(&r.mnt()));
    r.sh("\"$FSCK\" -n \"$W/img\"")
        .ok("fsck.rvmfs -n as the user");
    r.sh(&format!(
        "\"$RVMFS\" \"$W/img\" \"$W/mnt\" && cd \"$W/mnt\" && sha256sum -c ../sums \
         && cd / && fusermount3 -u \"$W/mnt\" && {WAIT_FOR_DAEMON}"
    ))
    .ok("remount, contents intact, unmount as the user");
}
