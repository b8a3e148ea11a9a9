//! The mount type and mount(8) (issue 13, item 1): a mount shows as type `fuse.rvmfs` with the
//! image as its source (`findmnt -t fuse.rvmfs`, `df -T`); `mount -t rvmfs IMAGE DIR` works
//! through the `mount.rvmfs` helper (scripts/mount.rvmfs, installed as /sbin/mount.rvmfs), as
//! does an fstab line of type rvmfs (`mount -T FSTAB DIR`) and `mount -t fuse.rvmfs` (through
//! fuse3's mount.fuse3). The helper is put in /usr/sbin only inside a private mount namespace
//! (`unshare -m`, an overlay over /usr/sbin), so the machine is left as it was.

use rvmfs_tests::*;
use std::fs;
use std::process::Command;
use std::time::Duration;

#[test]
fn mounts_show_type_fuse_rvmfs_with_the_image_as_source() {
    require_fuse!();
    let m = Mounted::new();
    assert_eq!(mount_type(m.mnt()).as_deref(), Some("fuse.rvmfs"));
    let o = run(Command::new("findmnt")
        .args(["-n", "-t", "fuse.rvmfs", "-o", "SOURCE"])
        .arg(m.mnt()));
    let image = fs::canonicalize(m.image()).unwrap();
    assert_eq!(
        o.stdout.trim(),
        image.display().to_string(),
        "{}",
        o.output()
    );
}

#[test]
fn mount_t_rvmfs_fstab_and_fuse_rvmfs() {
    require_fuse!();
    // SAFETY: getuid has no preconditions.
    let root = unsafe { libc::getuid() } == 0;
    if !root || which("unshare").is_none() || which("findmnt").is_none() {
        eprintln!("SKIPPED: needs root, unshare and findmnt");
        return;
    }
    let m = Mounted::unmounted(&["-s", "64M"]);
    let dir = m.dir();
    let helper_dir = dir.join("sbin");
    fs::create_dir(&helper_dir).unwrap();
    fs::copy(
        workspace_root().join("scripts/mount.rvmfs"),
        helper_dir.join("mount.rvmfs"),
    )
    .unwrap();
    // mount.fuse3 (for -t fuse.rvmfs) runs `rvmfs` with a PATH of its own, /usr/sbin in it.
    std::os::unix::fs::symlink(bin(RVMFS), helper_dir.join("rvmfs")).unwrap();
    let fstab = dir.join("fstab");
    fs::write(
        &fstab,
        format!(
            "{} {} rvmfs defaults,noauto,commit=1 0 0\n",
            m.image().display(),
            m.mnt().display()
        ),
    )
    .unwrap();
    // umount answers EBUSY while a request of the mount is still in flight (retried), and
    // returns before the daemon has finished its clean unmount: wait for the image's lock
    // before the next mount.
    let script = format!(
        r#"set -e
mount -t overlay overlay -o lowerdir={helper}:/usr/sbin /usr/sbin
export RVMFS={bin}/rvmfs
settle() {{
    n=0; until umount "$MNT"; do n=$((n+1)); [ $n -lt 50 ] || exit 1; sleep 0.1; done
    while ! flock -n "$IMG" true; do sleep 0.05; done
}}
mount -t rvmfs -o nofail,commit=2 "$IMG" "$MNT"
echo "t=$(findmnt -n -o FSTYPE "$MNT")"
echo one > "$MNT/one"
settle
mount -T {fstab} "$MNT"
echo "fstab=$(findmnt -n -o FSTYPE,SOURCE "$MNT")"
cat "$MNT/one"
settle
mount -t fuse.rvmfs "$IMG" "$MNT"
echo "fuse=$(findmnt -n -o FSTYPE "$MNT")"
settle
"#,
        helper = helper_dir.display(),
        bin = bin_dir().display(),
        fstab = fstab.display(),
    );
    let mut c = Command::new("unshare");
    c.args(["-m", "--propagation", "private", "sh", "-c", &script])
        .env("IMG", m.image())
        .env("MNT", m.mnt());
    let o = run_timeout(&mut c, Duration::from_secs(60));
    if o.output().contains("unknown filesystem type 'overlay'") {
        eprintln!(
            "SKIPPED: no overlayfs to put the helper in /usr/sbin: {}",
            o.output()
        );
        return;
    }
    assert!(o.success(), "{}", o.output());
    let image = m.image().display().to_string();
    for want in [
        "t=fuse.rvmfs".to_string(),
        format!("fstab=fuse.rvmfs {image}"),
        "one".into(),
        "fuse=fuse.rvmfs".into(),
    ] {
        assert!(
            o.stdout.lines().any(|l| l.trim() == want),
            "missing {want:?}:\n{}",
            o.output()
        );
    }
    m.assert_fsck_clean();
}
