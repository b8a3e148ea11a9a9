//! `rvmfs-admin resize` (issue 13, item 6), as resize2fs and xfs_growfs are used: an image
//! filled until ENOSPC grows offline and takes more data, grows again online while a writer
//! runs, shrinks offline when the blocks past the new end are free and is refused when not or
//! past the room mkfs reserved; df (statvfs) shows each new size, fsck stays clean and every
//! file keeps its contents (sha256 manifest).

use rvmfs_tests::*;
use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

const MIB: u64 = 1 << 20;

fn statvfs(p: &Path) -> libc::statvfs {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid C string and a zeroed out-parameter.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut s) }, 0, "statvfs");
    s
}

/// `rvmfs-admin resize TARGET SIZE`.
fn resize(target: &Path, size: &str) -> Outcome {
    run_timeout(
        cmd(bin(ADMIN), &["resize"]).arg(target).arg(size),
        Duration::from_secs(120),
    )
}

/// The data block count the superblock holds (`dump -h --json`).
fn data_blocks(image: &Path) -> u64 {
    let o = admin_on(image, &["dump", "-h", "--json"]).ok("dump -h --json");
    let j: serde_json::Value = serde_json::from_str(&o.stdout).expect("dump --json is JSON");
    j["superblock"]["data_blocks"]
        .as_u64()
        .expect("data_blocks")
}

/// Write files of `chunk` bytes named `prefix.N` until ENOSPC or `limit` bytes; returns the
/// bytes written. The file that met ENOSPC keeps what was written of it.
fn fill(dir: &Path, prefix: &str, chunk: usize, limit: u64) -> u64 {
    let mut total = 0;
    for n in 0.. {
        if total >= limit {
            break;
        }
        let mut f = fs::File::create(dir.join(format!("{prefix}.{n}"))).expect("create");
        match f.write_all(&pattern(n, chunk)).and_then(|_| f.sync_all()) {
            Ok(()) => total += chunk as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("writing {prefix}.{n}: {e}"),
        }
    }
    total
}

#[test]
fn grow_offline_after_enospc_then_online_while_writing() {
    require_fuse!();
    let mut m = Mounted::with_mkfs(&["-s", "16M"]);
    let before = statvfs(m.mnt()).f_blocks;
    let written = fill(m.mnt(), "a", 256 << 10, u64::MAX);
    assert!(written < 16 * MIB, "a 16 MiB image took {written} bytes");
    let full = manifest(m.mnt());
    m.unmount_ok();

    // Offline: the image file grows, the data area with it.
    let o = resize(m.image(), "48M").ok("resize 48M");
    assert!(o.stdout.contains("is now"), "{}", o.output());
    assert_eq!(fs::metadata(m.image()).unwrap().len(), 48 * MIB);
    m.assert_fsck_clean();
    let grown = data_blocks(m.image());
    assert!(
        grown > before + 32 * MIB / 4096 - 1,
        "{grown} blocks after growing from {before}"
    );
    m.mount();
    assert_eq!(statvfs(m.mnt()).f_blocks, grown, "df shows the new size");
    assert_manifests_equal(
        &full,
        &manifest(m.mnt()),
        Compare::CONTENT,
        "after the offline grow",
    );
    let more = fill(m.mnt(), "b", 256 << 10, 24 * MIB);
    assert_eq!(more, 24 * MIB, "the grown area takes writes");

    // Online: grow by the image file while a writer runs, then use the new room.
    let dir = m.mnt().to_path_buf();
    let writer = std::thread::spawn(move || fill(&dir, "c", 64 << 10, 4 * MIB));
    let o = resize(m.mnt(), "96M").ok("resize MOUNTPOINT 96M");
    assert!(o.stdout.contains("on-line"), "{}", o.output());
    assert_eq!(
        writer.join().expect("writer"),
        4 * MIB,
        "the writer during the resize"
    );
    let online = statvfs(m.mnt()).f_blocks;
    assert!(
        online >= grown + 48 * MIB / 4096,
        "df after the online grow: {online} blocks"
    );
    assert_eq!(
        fill(m.mnt(), "d", 1 << 20, 40 * MIB),
        40 * MIB,
        "writes into the online growth"
    );
    // Online shrinking is refused, the image as it was.
    let o = resize(m.image(), "64M");
    assert_eq!(o.code(), 1, "{}", o.output());
    assert!(
        o.stderr.contains("on-line shrinking is not supported"),
        "{}",
        o.output()
    );
    let all = manifest(m.mnt());
    m.unmount_ok();
    m.assert_fsck_clean();
    assert_eq!(data_blocks(m.image()), online);
    assert_eq!(fs::metadata(m.image()).unwrap().len(), 96 * MIB);
    m.mount();
    assert_manifests_equal(
        &all,
        &manifest(m.mnt()),
        Compare::CONTENT,
        "after the online grow",
    );
}

#[test]
fn shrink_only_when_free_and_grow_only_within_the_reserve() {
    require_fuse!();
    let mut m = Mounted::with_mkfs(&["-s", "64M"]);
    fs::write(m.path("first"), pattern(1, 40 << 20)).unwrap();
    fs::write(m.path("last"), pattern(2, 4 << 20)).unwrap();
    fs::remove_file(m.path("first")).unwrap();
    m.unmount_ok();
    let blocks = data_blocks(m.image());

    // "last" lies past 32 MiB: refused, nothing changed.
    let o = resize(m.image(), "32M");
    assert_eq!(o.code(), 1, "{}", o.output());
    assert!(
        o.stderr.contains("1024 blocks in use past the new end"),
        "{}",
        o.output()
    );
    assert_eq!(fs::metadata(m.image()).unwrap().len(), 64 * MIB);
    assert_eq!(data_blocks(m.image()), blocks);
    // Past what mkfs reserved (8x), and below the metadata: refused, with the limits.
    let o = resize(m.image(), "1G");
    assert_eq!(o.code(), 1, "{}", o.output());
    assert!(
        o.stderr.contains("past the growth this image has room for"),
        "{}",
        o.output()
    );
    let o = resize(m.image(), "1M");
    assert_eq!(o.code(), 1, "{}", o.output());
    assert!(o.stderr.contains("the smallest size is"), "{}", o.output());
    let o = resize(m.image(), "12345x");
    assert_eq!(o.code(), 16, "{}", o.output());
    assert_eq!(data_blocks(m.image()), blocks);

    // Move the data to the front, then the shrink goes through.
    m.mount();
    let kept = pattern(2, 4 << 20);
    fs::remove_file(m.path("last")).unwrap();
    fs::write(m.path("kept"), &kept).unwrap();
    m.unmount_ok();
    resize(m.image(), "32M").ok("resize 32M");
    assert_eq!(fs::metadata(m.image()).unwrap().len(), 32 * MIB);
    m.assert_fsck_clean();
    let shrunk = data_blocks(m.image());
    assert!(
        shrunk < blocks - 8000,
        "{shrunk} blocks after shrinking from {blocks}"
    );
    m.mount();
    assert_eq!(statvfs(m.mnt()).f_blocks, shrunk, "df shows the new size");
    assert_file(m.path("kept"), &kept);
    let err = fill(m.mnt(), "x", 1 << 20, 64 * MIB);
    assert!(err < 28 * MIB, "a 32 MiB image took {err} more bytes");
    assert_eq!(
        fs::write(m.path("one-more"), pattern(3, 1 << 20)).map_err(|e| e.raw_os_error()),
        Err(Some(libc::ENOSPC))
    );
    m.unmount_ok();
    m.assert_fsck_clean();
}

/// An image made before mkfs reserved room for growth (the version-1 fixture, 6 MiB) grows
/// within what its layout left, and no further, with files and fsck intact.
#[test]
fn old_image_grows_within_its_layout() {
    require_fuse!();
    let mut m = Mounted::empty();
    let gz = workspace_root().join("tests/fixtures/v1.img.gz");
    let unpack = format!("gzip -dc '{}' > '{}'", gz.display(), m.image().display());
    run(&mut cmd("sh", &["-c", &unpack])).ok("gzip -dc");
    let o = admin_on(m.image(), &["dump", "-h", "--json"]).ok("dump -h --json");
    let j: serde_json::Value = serde_json::from_str(&o.stdout).expect("dump --json is JSON");
    let uuid = j["header"]["uuid"].as_str().expect("uuid").to_string();
    // A spool a killed run of another test left for the same fixture.
    let _ = fs::remove_file(format!("/dev/shm/rvmfs-{uuid}.spool"));
    m.mount();
    let files = manifest(m.mnt());
    m.unmount_ok();
    let o = resize(m.image(), "1G");
    assert_eq!(o.code(), 1, "{}", o.output());
    assert!(
        o.stderr.contains("made before mkfs reserved room"),
        "{}",
        o.output()
    );
    resize(m.image(), "64M").ok("resize 64M");
    m.assert_fsck_clean();
    m.mount();
    assert_eq!(statvfs(m.mnt()).f_blocks, data_blocks(m.image()));
    assert!(
        statvfs(m.mnt()).f_blocks > 60 * MIB / 4096,
        "df after growing the old image"
    );
    assert_manifests_equal(
        &files,
        &manifest(m.mnt()),
        Compare::ALL,
        "the fixture's files",
    );
}
