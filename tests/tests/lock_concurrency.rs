//! The daemon's locking (README "Concurrency"), observed from outside with the mount option
//! `inject_stall=GATE`: every log flush of the daemon waits while the file GATE exists, and
//! GATE.held exists while one waits, so a test holds a request provably inside its flush.
//! - read-only requests (lookup, getattr, readdir, getxattr, statfs) are answered while a
//!   `-o sync` writer is held inside its flush (the flush runs without the filesystem lock);
//! - concurrent `-o sync` writers share log flushes (group commit): eight writes held at one
//!   flush go to the log in at most two batches, counted by rvm-core;
//! - read-only requests and reads of another file are answered while a big write is held
//!   inside its data write (`inject_stall`'s data gate: after its plan, before its commit;
//!   the data goes to the image file without the filesystem lock);
//! - open handles are counted under the shared lock: an unlinked file reopened and closed
//!   from eight threads at once is freed exactly once, at its last release (fsck clean);
//! - lookups and readdirs of one directory run at once (FUSE_PARALLEL_DIROPS, fuse/init.rs)
//!   while other threads create and unlink in it: every listing and every stat agrees with
//!   what the threads did, and the directory is exactly right after a remount (fsck clean).
//!
//! No timing thresholds: a reader that waited for the writer would never finish while the gate
//! stays shut, so the only timeout is a deadlock guard that fails the test.

#[path = "posix_common.rs"]
mod common;
use common::*;
use rvmfs_tests::*;
use std::fs;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Generous bound for something that happens at once unless the daemon deadlocked.
const DEADLOCK: Duration = Duration::from_secs(60);

/// The gate file; shut while it exists, opened (removed) on drop so a failing test never
/// leaves the daemon stuck at unmount.
struct Gate(PathBuf);

impl Gate {
    /// The flush gate (`inject_stall=DIR/gate`), shut.
    fn shut(dir: &Path) -> Gate {
        Gate::shut_at(dir.join("gate"))
    }
    /// The data write gate of the same mount option (`DIR/gate.data`), shut.
    fn shut_data(dir: &Path) -> Gate {
        Gate::shut_at(dir.join("gate.data"))
    }
    fn shut_at(path: PathBuf) -> Gate {
        let gate = Gate(path);
        fs::write(&gate.0, b"").unwrap();
        gate
    }
    fn held(&self) -> PathBuf {
        let mut p = self.0.clone().into_os_string();
        p.push(".held");
        p.into()
    }
    fn open(&self) {
        let _ = fs::remove_file(&self.0);
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.open();
    }
}

/// Wait until `cond` holds; panic with `what` after `DEADLOCK`.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < DEADLOCK,
            "{what}: still not after {DEADLOCK:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn mount_stalled(threads: usize) -> Mounted {
    let mut m = Mounted::unmounted(&["-s", "1G"]);
    let stall = format!("inject_stall={}", m.dir().join("gate").display());
    m.set_mount_options(&["sync", &format!("threads={threads}"), &stall]);
    m.mount();
    m
}

/// Make d/f0..f19, r (holding `other`) and an empty w; mount again (the kernel then has
/// cached no names or attributes, so every lookup and getattr reaches the daemon); open w
/// for writing.
fn populate_and_remount(m: &mut Mounted, other: &[u8]) -> fs::File {
    fs::create_dir(m.path("d")).unwrap();
    for i in 0..20 {
        fs::write(m.path(format!("d/f{i}")), b"x").unwrap();
    }
    fs::write(m.path("r"), other).unwrap();
    fs::write(m.path("w"), b"").unwrap();
    m.unmount();
    m.mount();
    fs::OpenOptions::new()
        .write(true)
        .open(m.path("w"))
        .unwrap()
}

#[test]
fn readers_are_answered_while_a_sync_writer_is_inside_its_flush() {
    require_fuse!();
    let mut m = mount_stalled(4);
    let file = populate_and_remount(&mut m, b"");
    let gate = Gate::shut(m.dir());
    let (done_tx, done_rx) = mpsc::channel();
    let writer = std::thread::spawn(move || {
        let r = file.write_all_at(&[7u8; 4096], 0);
        let _ = done_tx.send(());
        r
    });
    wait_for("the writer reaching its flush", || gate.held().exists());

    let (tx, rx) = mpsc::channel();
    let (d, root) = (m.path("d"), m.path(""));
    std::thread::spawn(move || {
        let mut seen = 0;
        for i in 0..20 {
            seen += usize::from(fs::metadata(d.join(format!("f{i}"))).is_ok());
        }
        let listed = fs::read_dir(&d).map(|r| r.count()).unwrap_or(0);
        let missing = fs::metadata(d.join("nothing-here")).is_err();
        let counters = getxattr(&root, "rvmfs.counters").is_ok();
        let statfs = nix_statfs(&root);
        let _ = tx.send((seen, listed, missing, counters, statfs));
    });
    let got = rx
        .recv_timeout(DEADLOCK)
        .expect("readers were held up by a writer inside its flush");
    assert_eq!(got, (20, 20, true, true, true));
    // Provably still inside: the gate is shut and the writer has not returned.
    assert!(gate.held().exists(), "the writer left its flush early");
    assert!(done_rx.try_recv().is_err(), "the writer returned early");

    gate.open();
    writer.join().unwrap().expect("the sync write");
    assert_eq!(fs::read(m.path("w")).unwrap(), vec![7u8; 4096]);
}

#[test]
fn readers_are_answered_while_a_writer_is_inside_its_data_write() {
    require_fuse!();
    let mut m = Mounted::unmounted(&["-s", "1G"]);
    let stall = format!("inject_stall={}", m.dir().join("gate").display());
    m.set_mount_options(&["threads=4", &stall]);
    m.mount();
    let other: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let file = populate_and_remount(&mut m, &other);
    let big = vec![9u8; 1 << 20];
    let gate = Gate::shut_data(m.dir());
    let (done_tx, done_rx) = mpsc::channel();
    let writer = std::thread::spawn(move || {
        let r = file.write_all_at(&big, 0);
        let _ = done_tx.send(());
        r
    });
    wait_for("the writer reaching its data write", || {
        gate.held().exists()
    });

    let (tx, rx) = mpsc::channel();
    let (d, r) = (m.path("d"), m.path("r"));
    std::thread::spawn(move || {
        let seen = (0..20)
            .filter(|i| fs::metadata(d.join(format!("f{i}"))).is_ok())
            .count();
        let listed = fs::read_dir(&d).map(|r| r.count()).unwrap_or(0);
        let missing = fs::metadata(d.join("nothing-here")).is_err();
        let read = fs::read(&r).ok();
        let _ = tx.send((seen, listed, missing, read));
    });
    let (seen, listed, missing, read) = rx
        .recv_timeout(DEADLOCK)
        .expect("readers were held up by a writer inside its data write");
    assert_eq!((seen, listed, missing), (20, 20, true));
    assert!(
        read.as_deref() == Some(&other[..]),
        "the other file reads whole"
    );
    // Provably still inside: the gate is shut and the writer has not returned.
    assert!(gate.held().exists(), "the writer left its data write early");
    assert!(done_rx.try_recv().is_err(), "the writer returned early");
    assert_eq!(
        fs::metadata(m.path("w")).unwrap().len(),
        0,
        "nothing of the write is committed before its data is written"
    );

    gate.open();
    writer.join().unwrap().expect("the big write");
    assert!(fs::read(m.path("w")).unwrap() == vec![9u8; 1 << 20]);
    m.unmount_ok();
    m.assert_fsck_clean();
}

/// statfs(2) of `p` succeeded.
fn nix_statfs(p: &Path) -> bool {
    let path = c(p);
    // SAFETY: a valid C string and a zeroed out-struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    unsafe { libc::statfs(path.as_ptr(), &mut st) == 0 }
}

#[test]
fn concurrent_sync_writers_share_log_flushes() {
    require_fuse!();
    let writers = 8;
    let m = mount_stalled(writers + 2);
    let files: Vec<_> = (0..writers)
        .map(|i| {
            let p = m.path(format!("f{i}"));
            let mut f = fs::File::create(&p).unwrap();
            f.write_all(b"start").unwrap();
            f
        })
        .collect();
    let root = m.path("");
    let before = counters(&root);
    let gate = Gate::shut(m.dir());
    let handles: Vec<_> = files
        .into_iter()
        .enumerate()
        .map(|(i, f)| std::thread::spawn(move || f.write_all_at(&[i as u8; 4096], 0)))
        .collect();
    // Every write committed under the lock and waits for its flush outside it; the
    // counters are read by a getxattr, itself a reader answered meanwhile.
    wait_for("all writers committing", || {
        counters(&root)["commits"] >= before["commits"] + writers as u64
    });
    assert!(gate.held().exists(), "a flush should be held at the gate");
    gate.open();
    for h in handles {
        h.join().unwrap().expect("a sync write");
    }
    let after = counters(&root);
    let delta = |k: &str| after[k] - before[k];
    eprintln!(
        "{writers} sync writes: {} commits, {} records, {} log writes, {} flush syncs",
        delta("commits"),
        delta("records_logged"),
        delta("log_writes"),
        delta("flush_syncs")
    );
    assert!(delta("commits") >= writers as u64);
    // The first leader's batch, then one batch with everything that waited behind it; each
    // batch syncs the image at most once before its write, and the followers sync nothing.
    assert!(
        delta("log_writes") <= 2,
        "{writers} sync writers held at one flush should share log writes"
    );
    assert!(
        delta("flush_syncs") <= delta("log_writes"),
        "the followers of a group commit should share its syncs"
    );
    for i in 0..writers {
        assert_eq!(
            fs::read(m.path(format!("f{i}"))).unwrap(),
            vec![i as u8; 4096]
        );
    }
}

/// Free inodes of the filesystem at `p` (statfs f_ffree).
fn free_inodes(p: &Path) -> u64 {
    let path = c(p);
    // SAFETY: a valid C string and a zeroed out-struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statfs(path.as_ptr(), &mut st) }, 0);
    st.f_ffree
}

#[test]
fn an_orphan_whose_handles_close_concurrently_is_freed_once() {
    require_fuse!();
    // Opens and releases count handles under the shared lock; the last release of an
    // unlinked file frees it under the exclusive one.
    let threads = 8;
    let mut m = Mounted::with_threads(threads + 1);
    let root = m.path("");
    let free = free_inodes(&root);
    let p = m.path("orphan");
    fs::write(&p, b"held").unwrap();
    let first = fs::File::open(&p).unwrap();
    fs::remove_file(&p).unwrap();
    // Reopen the unlinked inode through /proc (a new OPEN of the same inode) and close it,
    // from many threads at once, while `first` keeps it alive.
    let via = PathBuf::from(format!(
        "/proc/self/fd/{}",
        std::os::unix::io::AsRawFd::as_raw_fd(&first)
    ));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..50 {
                    let f = fs::File::open(&via).unwrap();
                    let mut buf = [0u8; 4];
                    f.read_exact_at(&mut buf, 0).unwrap();
                    assert_eq!(&buf, b"held");
                }
            });
        }
    });
    assert_eq!(free_inodes(&root), free - 1, "the orphan is still held");
    drop(first);
    wait_for("the orphan being freed", || free_inodes(&root) == free);
    m.unmount_ok();
    m.assert_fsck_clean();
}

/// Thread `t`'s `i`th name in d/, and the bytes it writes there.
fn name(t: usize, i: usize) -> (String, Vec<u8>) {
    (format!("f{t}_{i:04}"), vec![b'a' + t as u8; 1 + i % 7])
}

#[test]
fn parallel_lookups_and_readdirs_of_one_directory_stay_right() {
    require_fuse!();
    let (threads, per) = (4, 300);
    let mut m = Mounted::with_threads(threads + 1);
    let d = m.path("d");
    fs::create_dir(&d).unwrap();
    std::thread::scope(|s| {
        for t in 0..threads {
            let d = &d;
            s.spawn(move || {
                for i in 0..per {
                    let (n, body) = name(t, i);
                    fs::write(d.join(&n), &body).unwrap();
                    // A lookup of another thread's name: absent, just created (empty), or
                    // holding all it wrote (one write call: never a part of it).
                    let (other, obody) = name((t + 1) % threads, i);
                    if let Ok(md) = fs::metadata(d.join(&other)) {
                        assert!([0, obody.len() as u64].contains(&md.len()), "{other}");
                    }
                    if i % 2 == 1 {
                        fs::remove_file(d.join(name(t, i - 1).0)).unwrap();
                    }
                    if i % 50 == 49 {
                        // This thread's names in a listing: exactly the odd ones so far.
                        let mine: Vec<String> = fs::read_dir(d)
                            .unwrap()
                            .map(|e| e.unwrap().file_name().into_string().unwrap())
                            .filter(|n| n.starts_with(&format!("f{t}_")))
                            .collect();
                        assert_eq!(mine.len(), (i + 1) / 2, "thread {t} after {i}");
                    }
                }
            });
        }
    });
    let check = |m: &Mounted| {
        let mut got: Vec<String> = fs::read_dir(m.path("d"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        got.sort();
        let mut want: Vec<String> = (0..threads)
            .flat_map(|t| (1..per).step_by(2).map(move |i| name(t, i).0))
            .collect();
        want.sort();
        assert_eq!(got, want);
        for t in 0..threads {
            let (n, body) = name(t, per - 1);
            assert_eq!(fs::read(m.path(format!("d/{n}"))).unwrap(), body);
        }
    };
    check(&m);
    m.unmount();
    m.mount();
    check(&m);
    m.unmount_ok();
    m.assert_fsck_clean();
}
