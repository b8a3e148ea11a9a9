//! A full host disk (issue 11, item 2): the image lives on a small tmpfs, or on a small
//! loop-mounted ext4, and is filled through the mount until the host has no space left. The
//! daemon must live (no SIGBUS: mkfs allocated the log and the metadata region), the write
//! that found no room answers ENOSPC, metadata operations keep working, deleting the big
//! file gives its blocks back to the host (`-o discard`), writes succeed again, the unmount
//! is clean, fsck -n is clean, and every answered request is there after a remount.
//! Also: an image file shorter than its header says is refused by mount and by fsck.

use rvmfs_tests::*;
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A small host file system mounted on a temporary directory; unmounted (and its loop device
/// released, `mount -o loop` sets autoclear) on drop, even when the test fails.
struct Host {
    dir: tempfile::TempDir,
    mnt: PathBuf,
}

impl Host {
    fn tmpfs(size: &str) -> Host {
        let h = Host::empty();
        let o = run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&h.mnt));
        assert!(o.success(), "mount tmpfs: {}", o.output());
        h
    }

    fn loop_ext4(size: &str) -> Host {
        let h = Host::empty();
        let backing = h.dir.path().join("ext4.img");
        run(Command::new("truncate").args(["-s", size]).arg(&backing)).ok("truncate");
        run(Command::new("mkfs.ext4").arg("-q").arg(&backing)).ok("mkfs.ext4");
        let o = run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&backing)
            .arg(&h.mnt));
        assert!(o.success(), "mount -o loop: {}", o.output());
        h
    }

    fn empty() -> Host {
        let dir = tempfile::Builder::new()
            .prefix("rvmfs-host.")
            .tempdir()
            .expect("tempdir");
        let mnt = dir.path().join("host");
        fs::create_dir(&mnt).expect("mkdir host");
        Host { dir, mnt }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        for _ in 0..50 {
            if run(Command::new("umount").arg(&self.mnt)).success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = run(Command::new("umount").arg("-l").arg(&self.mnt));
    }
}

/// Bytes of `path` the host has allocated.
fn allocated(path: &Path) -> u64 {
    fs::metadata(path).expect("stat").blocks() * 512
}

/// "Layout: 18 MiB metadata region, 8 MiB log, ...": the MiB before `what` in mkfs's output.
fn mib_before(out: &str, what: &str) -> u64 {
    let head = &out[..out.find(what).expect("mkfs output")];
    let n = head.rsplit(" ").next().expect("number");
    n.parse::<u64>().expect("MiB") << 20
}

/// Write `data` to `path` (created or truncated); whether every byte was answered.
fn write_file(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = fs::File::create(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// Append 1 MiB chunks to `path` until a write fails; returns the bytes answered and the
/// error, which must be ENOSPC.
fn fill(path: &Path, limit: u64) -> u64 {
    let mut f = fs::File::create(path).expect("create big");
    let chunk = pattern(99, 1 << 20);
    let mut done = 0u64;
    while done < limit {
        match f.write(&chunk) {
            Ok(n) => done += n as u64,
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "filling: {e}");
                return done;
            }
        }
    }
    panic!("wrote {limit} bytes without filling the host");
}

fn full_host(host: Host) {
    // The Mounted guard is declared after the host, so it is dropped (unmounted) first.
    let mut m = Mounted::empty();
    let img = host.mnt.join("img");
    std::os::unix::fs::symlink(&img, m.image()).expect("symlink image");
    let out = mkfs(m.image(), &["-s", "256M"]).ok("mkfs").stdout;
    let meta = mib_before(&out, " MiB log") + mib_before(&out, " MiB metadata region");
    assert!(
        allocated(&img) >= meta,
        "mkfs allocated {} bytes, the log and region are {meta}",
        allocated(&img)
    );
    m.mount();
    let mut want: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for i in 0..8u64 {
        let data = pattern(i, 1000 + i as usize * 5000);
        write_file(&m.path(format!("a{i}")), &data).expect("write before the fill");
        want.insert(format!("a{i}"), data);
    }
    let answered = fill(&m.path("big"), 1 << 30);
    assert!(answered > 0);
    // Small writes (their data also goes into the redo record) until one finds no room:
    // ENOSPC, and the filesystem goes on.
    for i in 0.. {
        assert!(i < 5000, "5000 small files fitted on a full host");
        let (name, data) = (format!("s{i}"), pattern(1000 + i, 3000));
        match write_file(&m.path(&name), &data) {
            Ok(()) => want.insert(name, data),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "small write: {e}");
                want.insert(name, Vec::new()); // created, the write answered ENOSPC
                break;
            }
        };
    }
    // Metadata operations need no host space (the region is allocated).
    fs::create_dir(m.path("d")).expect("mkdir on a full host");
    fs::File::create(m.path("d/empty")).expect("create on a full host");
    fs::rename(m.path("d/empty"), m.path("d/moved")).expect("rename on a full host");
    fs::remove_file(m.path("a0")).expect("unlink on a full host");
    want.remove("a0");
    want.insert("d/moved".into(), Vec::new());
    // The answered part of the big file reads back.
    let big = fs::read(m.path("big")).expect("read big");
    assert_eq!(big.len() as u64, answered);
    assert!(big
        .chunks(1 << 20)
        .all(|c| c == &pattern(99, 1 << 20)[..c.len()]));
    drop(big);
    fs::remove_file(m.path("big")).expect("unlink big");
    // Deleting gives the blocks back to the host: a write larger than what was left succeeds.
    let after = pattern(7, 8 << 20);
    write_file(&m.path("after"), &after).expect("write after the delete");
    want.insert("after".into(), after);
    m.unmount_ok();
    m.assert_fsck_clean();
    m.mount();
    for (name, data) in &want {
        let got = fs::read(m.path(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(&got == data, "{name}: contents differ after remount");
    }
    assert!(!m.path("big").exists() && !m.path("a0").exists());
    m.unmount_ok();
    m.assert_fsck_clean();
    drop(m);
    drop(host);
}

#[test]
fn full_tmpfs_host() {
    require_fuse!();
    full_host(Host::tmpfs("80m"));
}

#[test]
fn full_ext4_host() {
    require_fuse!();
    if which("mkfs.ext4").is_none() {
        eprintln!("skipped: no mkfs.ext4");
        return;
    }
    full_host(Host::loop_ext4("89M"));
}

#[test]
fn image_shorter_than_its_header_is_refused() {
    require_fuse!();
    let m = Mounted::unmounted(&["-s", "64M"]);
    let f = fs::OpenOptions::new()
        .write(true)
        .open(m.image())
        .expect("open");
    f.set_len(32 << 20).expect("shrink");
    let o = m.try_mount_at(m.mnt(), MOUNT_TIMEOUT);
    assert!(!o.timed_out, "a shrunk image mounted");
    assert!(o.output().contains("truncated"), "{}", o.output());
    let (code, out) = m.fsck(&["-n"]);
    assert_ne!(code, 0, "fsck -n of a shrunk image: {out}");
    assert!(out.contains("truncated"), "{out}");
}
