//! The object-store data tier's local cache (issue 14 items 1 and 4; README "Object-store
//! mode"), end to end against a real SeaweedFS behind the test proxy (`S3Proxy`, which counts
//! the daemon's requests and fails its uploads on demand):
//!
//! * blocks read from the bucket are kept in free local blocks: a second read of a file
//!   bigger than the 16 MiB memory cache makes no GET, statfs still counts those blocks free,
//!   a clean unmount gives their host space back, fsck is clean, and after `kill -9` the
//!   remount reads right;
//! * a local area filled with dirty data takes the cached blocks back, and reads stay right;
//! * every local block dirty (uploads failing): `cache_full=enospc` answers ENOSPC,
//!   `cache_full=block` waits and goes on once the bucket heals, or answers ENOSPC after
//!   `cache_wait`; nothing answered is lost (checked after a remount from the bucket alone);
//! * a partial overwrite, a truncation or a punched hole inside a `REMOTE` block fetches its
//!   old bytes before taking the filesystem lock: a slow bucket stalls that request only.

use rvmfs_tests::s3_proxy::{Action, Rule};
use rvmfs_tests::*;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The daemon's options in these tests: upload soon after each write.
const FAST_UPLOAD: &str = "upload_interval=0.2";
/// Bigger than the daemon's in-memory cache of 4096 blocks (16 MiB).
const BIG: usize = 40 << 20;
/// Keys of data objects (`PREFIX/data/EPOCH/SEQ`).
const DATA: &str = "/data/";

/// The proxy in front of `s`.
fn proxy(s: &Seaweed) -> S3Proxy {
    S3Proxy::start(&s.endpoint).expect("start the S3 proxy")
}

/// A fresh image of `size` on the server, mounted with `opts` through a new proxy.
fn proxied(s: &Seaweed, size: &str, opts: &[&str]) -> (S3Proxy, Mounted) {
    let proxy = proxy(s);
    let m = mounted_data(s, (size, "img"), Some(&proxy.endpoint), opts);
    (proxy, m)
}

/// Read `path` through the daemon, not the kernel's page cache (its pages dropped first).
fn read_uncached(path: &Path) -> Vec<u8> {
    let f = std::fs::File::open(path).unwrap();
    // SAFETY: fadvise on our own open descriptor with plain integer arguments.
    let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(r, 0, "posix_fadvise DONTNEED");
    std::fs::read(path).unwrap()
}

/// Host bytes the file at `path` takes (its allocated blocks).
fn host_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().blocks() * 512
}

/// Free blocks statfs reports for the mount at `mnt`.
fn free_blocks(mnt: &Path) -> u64 {
    let c = std::ffi::CString::new(mnt.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: statvfs fills the zeroed struct we own.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0, "statvfs");
    st.f_bfree
}

/// A mount through a proxy of an image whose file `big` (`BIG` bytes of pattern 1) is in the
/// bucket only: written, uploaded at a clean unmount, the local data area punched out.
fn remote_big_file(s: &Seaweed, proxy: &S3Proxy, opts: &[&str]) -> (Mounted, Vec<u8>) {
    let mut m = mounted_data(s, ("256M", "img"), Some(&proxy.endpoint), &[FAST_UPLOAD]);
    let want = pattern(1, BIG);
    std::fs::write(m.path("big"), &want).unwrap();
    m.unmount_ok(); // uploads what is still dirty
    drop_local_data(m.image());
    m.set_mount_options(opts);
    m.mount();
    (m, want)
}

#[test]
fn a_second_read_comes_from_the_local_cache_and_kill_9_loses_nothing() {
    require_fuse!();
    let s = require_seaweed!("cache");
    let proxy = proxy(&s);
    let (mut m, want) = remote_big_file(&s, &proxy, &[FAST_UPLOAD]);
    let host = host_bytes(m.image());
    let free = free_blocks(m.mnt());
    assert_file_eq(&read_uncached(&m.path("big")), &want, "cold read");
    let cold = proxy.count("GET", DATA);
    assert!(cold > 0, "the cold read made no GET of a data object");
    assert_file_eq(&read_uncached(&m.path("big")), &want, "warm read");
    assert_eq!(
        proxy.count("GET", DATA),
        cold,
        "the second read asked the bucket again"
    );
    assert_eq!(
        free_blocks(m.mnt()),
        free,
        "cached blocks are free blocks for statfs"
    );
    m.unmount_ok(); // with discard (the default) the cached blocks are punched
    let kept = host_bytes(m.image()).saturating_sub(host);
    assert!(
        kept < BIG as u64 / 2,
        "{kept} bytes of host space kept after unmount"
    );
    m.mount();
    assert_file_eq(&read_uncached(&m.path("big")), &want, "cold read again");
    m.kill9(); // the cache is lost with the daemon; its blocks were free all along
    let (code, out) = fsck_data(&s, m.image(), &["-y", "-f"]).code_and_output();
    assert!(code <= 1, "fsck -y after kill -9 exited {code}:\n{out}");
    let (code, out) = fsck_data(&s, m.image(), &["-n", "-f"]).code_and_output();
    assert_eq!(code, 0, "fsck -n after the kill:\n{out}");
    m.mount();
    assert_file_eq(&read_uncached(&m.path("big")), &want, "read after kill -9");
    assert!(proxy.count("GET", DATA) > cold, "a new daemon starts cold");
    unmount_fsck_clean(&s, &mut m);
}

#[test]
fn a_local_area_full_of_dirty_data_takes_the_cache_back_and_reads_stay_right() {
    require_fuse!();
    let s = require_seaweed!("evict");
    let proxy = proxy(&s);
    // Nothing uploaded while the test fills the local area.
    let (mut m, want) = remote_big_file(&s, &proxy, &["upload_interval=3600"]);
    assert_file_eq(&read_uncached(&m.path("big")), &want, "cold read");
    let cold = proxy.count("GET", DATA);
    // Fill every free local block (the cached ones too) with dirty data: ENOSPC at the end.
    let mut written = Vec::new();
    for i in 0..10_000u64 {
        let data = pattern(100 + i, 1 << 20);
        match std::fs::write(m.path(format!("fill{i}")), &data) {
            Ok(()) => written.push(i),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                break;
            }
        }
    }
    assert!(written.len() > 20, "only {} MiB written", written.len());
    assert_file_eq(&read_uncached(&m.path("big")), &want, "read after the fill");
    assert!(
        proxy.count("GET", DATA) > cold,
        "the allocator took cached blocks: they come from the bucket again"
    );
    for &i in written.iter().step_by(5) {
        assert_file(m.path(format!("fill{i}")), pattern(100 + i, 1 << 20));
    }
    unmount_fsck_clean(&s, &mut m); // uploads the fill
}

/// Write 1 MiB files `w0`, `w1`, ... into `dir` until `count` are written or a write fails:
/// the numbers answered, and the error (None: all written). `done` counts them meanwhile.
fn write_files(dir: PathBuf, count: u64, done: Arc<AtomicUsize>) -> (Vec<u64>, Option<i32>) {
    let mut ok = Vec::new();
    for i in 0..count {
        if let Err(e) = std::fs::write(dir.join(format!("w{i}")), pattern(1000 + i, 1 << 20)) {
            return (ok, Some(e.raw_os_error().unwrap_or(0)));
        }
        ok.push(i);
        done.fetch_add(1, Ordering::SeqCst);
    }
    (ok, None)
}

/// Fail every upload of a data object (the bucket down for writes).
fn fail_uploads(proxy: &S3Proxy) {
    proxy.add(Rule::new(Action::internal_error()).method("PUT").path(DATA));
}

/// Every file of `files` intact in `m`, then again after a clean unmount (which uploads
/// them), from the bucket alone; fsck clean.
fn assert_all_kept(s: &Seaweed, m: &mut Mounted, files: &[u64]) {
    for &i in files {
        assert_file(m.path(format!("w{i}")), pattern(1000 + i, 1 << 20));
    }
    m.unmount_ok();
    drop_local_data(m.image());
    m.mount();
    for &i in files {
        assert_file(m.path(format!("w{i}")), pattern(1000 + i, 1 << 20));
    }
    unmount_fsck_clean(s, m);
}

#[test]
fn with_cache_full_block_writes_wait_for_the_bucket_and_lose_nothing() {
    require_fuse!();
    let s = require_seaweed!("block");
    let opts = [FAST_UPLOAD, "cache_full=block", "cache_wait=120"];
    let (proxy, mut m) = proxied(&s, "64M", &opts);
    let area = free_blocks(m.mnt()) * 4096 >> 20; // MiB
    fail_uploads(&proxy);
    let done = Arc::new(AtomicUsize::new(0));
    let (dir, d) = (m.mnt().to_path_buf(), done.clone());
    let writer = std::thread::spawn(move || write_files(dir, area + area / 2, d));
    // The writer fills the local area, then waits (no error) for uploads that cannot happen.
    let mut last = (usize::MAX, Instant::now());
    while last.1.elapsed() < Duration::from_secs(3) {
        assert!(
            !writer.is_finished(),
            "the writer ended while uploads failed"
        );
        let now = done.load(Ordering::SeqCst);
        if now != last.0 {
            last = (now, Instant::now());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let stuck = done.load(Ordering::SeqCst) as u64;
    assert!(
        stuck < area + area / 2,
        "{stuck} MiB written into a {area} MiB area"
    );
    assert!(proxy.count("PUT", DATA) > 0, "no upload was tried");
    proxy.clear(); // the bucket heals: uploads free local blocks, the writer goes on
    let (files, err) = writer.join().unwrap();
    assert_eq!(err, None, "a write failed after {} files", files.len());
    assert_all_kept(&s, &mut m, &files);
}

#[test]
fn with_cache_full_enospc_or_after_cache_wait_a_full_local_area_answers_enospc() {
    require_fuse!();
    let s = require_seaweed!("enospc");
    let (proxy, mut m) = proxied(&s, "64M", &[FAST_UPLOAD]);
    let area = free_blocks(m.mnt()) * 4096 >> 20;
    fail_uploads(&proxy);
    let done = Arc::new(AtomicUsize::new(0));
    let (files, err) = write_files(m.mnt().to_path_buf(), area * 2, done);
    assert_eq!(err, Some(libc::ENOSPC), "after {} files", files.len());
    // Remount (the unmount's uploads fail: the blocks stay local and dirty) to wait 2 s.
    m.unmount_ok();
    m.set_mount_options(&[FAST_UPLOAD, "cache_full=block", "cache_wait=2"]);
    m.mount();
    let t = Instant::now();
    let late = std::fs::write(m.path("late"), pattern(7, 1 << 20));
    let waited = t.elapsed();
    let e = late.expect_err("a write into a full local area succeeded while uploads failed");
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
    assert!(
        waited >= Duration::from_secs(2),
        "answered after {waited:?}, before cache_wait"
    );
    proxy.clear();
    assert_all_kept(&s, &mut m, &files);
}

/// A clean unmount (it uploads what is dirty), then `fsck -n -f` finds the image clean.
fn unmount_fsck_clean(s: &Seaweed, m: &mut Mounted) {
    m.unmount_ok();
    let (code, out) = fsck_data(s, m.image(), &["-n", "-f"]).code_and_output();
    assert_eq!(code, 0, "fsck -n after a clean unmount:\n{out}");
}

/// `got` is `want` byte for byte (`what` names the read in the message).
fn assert_file_eq(got: &[u8], want: &[u8], what: &str) {
    if let Some(d) = bytes_diff(got, want) {
        panic!("{what}: {d}");
    }
}

#[test]
fn a_partial_overwrite_of_a_remote_block_fetches_it_without_stalling_other_writes() {
    require_fuse!();
    let s = require_seaweed!("cow");
    let (proxy, mut m, mut want) = slow_remote_file(&s, 5);
    let path = m.path("old");
    not_stalled_by(&m, "the overwrite", move || {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(b"patched", 5000).unwrap(); // inside block 1: its old bytes needed
    });
    proxy.clear();
    want[5000..5007].copy_from_slice(b"patched");
    assert_file(m.path("old"), &want);
    m.unmount_ok();
    drop_local_data(m.image());
    m.mount();
    assert_file(m.path("old"), &want);
    assert_file(m.path("other"), b"not stalled");
    m.unmount_ok();
}

/// A mount through the proxy holding `old`, 64 KiB of `pattern(seed)` uploaded (`REMOTE`, not
/// cached by this daemon), every answer to a GET of a data object 2 s late: a slow bucket.
/// Returns the proxy, the mount and the file's bytes.
fn slow_remote_file(s: &Seaweed, seed: u64) -> (S3Proxy, Mounted, Vec<u8>) {
    let (proxy, mut m) = proxied(s, "256M", &[FAST_UPLOAD]);
    let want = pattern(seed, 64 << 10);
    std::fs::write(m.path("old"), &want).unwrap();
    m.unmount_ok();
    m.mount();
    let slow = Action::DelayAnswer(Duration::from_secs(2));
    proxy.add(Rule::new(slow).method("GET").path(DATA));
    (proxy, m, want)
}

/// Run `act` (a request that must fetch a `REMOTE` block from a slow bucket) in a thread and,
/// while it waits, write another file: that write must be answered first (`what` names `act`).
fn not_stalled_by(m: &Mounted, what: &str, act: impl FnOnce() + Send + 'static) {
    let slow = std::thread::spawn(move || {
        act();
        Instant::now()
    });
    std::thread::sleep(Duration::from_millis(300)); // `act` waits for the bucket
    std::fs::write(m.path("other"), b"not stalled").unwrap();
    let other_done = Instant::now();
    let slow_done = slow.join().unwrap();
    assert!(
        other_done < slow_done,
        "a write of another file waited for {what}'s fetch from the bucket"
    );
}

#[test]
fn a_truncation_or_punch_inside_a_remote_block_fetches_it_without_stalling_other_writes() {
    require_fuse!();
    let s = require_seaweed!("cut");
    let (proxy, mut m, mut want) = slow_remote_file(&s, 6);
    // A truncation inside block 10: its tail is zeroed, so its old bytes are needed.
    let path = m.path("old");
    not_stalled_by(&m, "the truncation", move || {
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(10 * 4096 + 100).unwrap();
    });
    want.truncate(10 * 4096 + 100);
    // A punched hole from inside block 2 to inside block 4: both edges copied on write.
    let path = m.path("old");
    not_stalled_by(&m, "the punch", move || {
        use std::os::fd::AsRawFd;
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        // SAFETY: fallocate on a descriptor this test owns.
        let rc = unsafe { libc::fallocate(f.as_raw_fd(), mode, 2 * 4096 + 7, 2 * 4096) };
        assert_eq!(rc, 0, "fallocate: {}", std::io::Error::last_os_error());
    });
    want[2 * 4096 + 7..4 * 4096 + 7].fill(0);
    proxy.clear();
    assert_file(m.path("old"), &want);
    m.unmount_ok();
    drop_local_data(m.image());
    m.mount();
    assert_file(m.path("old"), &want);
    m.unmount_ok();
}

/// Median, smallest and largest of `v`.
fn spread(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// The figure README gives (`cargo test --release -p rvmfs-tests --test objstore_cache --
/// --ignored --nocapture figures`): a 256 MiB file in the bucket read cold (from the bucket,
/// a fresh mount) and warm (again, the kernel's pages dropped: from the local cache), MiB/s,
/// medians of 3. A figure, not a test of speed: it asserts only that the bytes are right.
#[test]
#[ignore]
fn figures_cold_and_warm_reads_of_a_256_mib_file() {
    require_fuse!();
    let s = require_seaweed!("figures");
    let mut m = mounted_data(&s, ("768M", "img"), None, &[FAST_UPLOAD]);
    let want = pattern(9, 256 << 20);
    std::fs::write(m.path("f"), &want).unwrap();
    m.unmount_ok();
    drop_local_data(m.image());
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        m.mount();
        for speeds in [&mut cold, &mut warm] {
            let t = Instant::now();
            let got = read_uncached(&m.path("f"));
            speeds.push(mib_per_s(got.len() as u64, t.elapsed()));
            assert_file_eq(&got, &want, "figures read");
        }
        m.unmount_ok();
    }
    let (c, w) = (spread(cold), spread(warm));
    println!(
        "cold read 256 MiB: median {:.0} MiB/s (min {:.0}, max {:.0})",
        c.0, c.1, c.2
    );
    println!(
        "warm read 256 MiB: median {:.0} MiB/s (min {:.0}, max {:.0})",
        w.0, w.1, w.2
    );
}

/// Writes into a block while the uploader sends it (its PUT held 2 s by the proxy): an append
/// into the partly written last block and a small overwrite inside the first one. The
/// upload's commit repoints every extent still mapping the blocks it sent, so a write in
/// place would be lost under the old bytes; on an `object_data` image both are copied on
/// write instead (`file::appends_in_place`, `logged_overwrite::applies`).
#[test]
fn writes_into_a_block_being_uploaded_are_not_lost() {
    require_fuse!();
    let s = require_seaweed!("inflight");
    let (proxy, mut m) = proxied(&s, "256M", &[FAST_UPLOAD]);
    let held = Action::Delay(Duration::from_secs(2));
    proxy.add(Rule::new(held).method("PUT").path(DATA).times(1));
    let mut want = pattern(8, 10_000);
    std::fs::write(m.path("f"), &want).unwrap();
    std::thread::sleep(Duration::from_millis(800)); // gathered, its PUT held
    let more = pattern(9, 1_000);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(m.path("f"))
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &more, 10_000).unwrap();
    want.extend_from_slice(&more);
    std::os::unix::fs::FileExt::write_all_at(&f, b"overwritten", 100).unwrap();
    want[100..111].copy_from_slice(b"overwritten");
    drop(f);
    std::thread::sleep(Duration::from_secs(3)); // the held upload lands and is committed
    assert_file_eq(&read_uncached(&m.path("f")), &want, "after the upload");
    m.unmount_ok();
    drop_local_data(m.image());
    m.mount();
    assert_file_eq(&read_uncached(&m.path("f")), &want, "from the bucket alone");
    m.unmount_ok();
}
