//! (c) `kill -9` of the daemon. Every request the daemon had answered survives; fsck finds the
//! image consistent; remounting (which replays the log) gives back every completed file
//! byte for byte.

use rvmfs_tests::*;
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// fsck -n after a crash must exit 0, or 1 only when all it reports is orphans. If it is not
/// 0, `fsck -p` must then fix the image and a second `fsck -n` must exit 0.
fn fsck_after_crash(m: &Mounted) -> (i32, Duration) {
    let t = Instant::now();
    let (code, out) = m.fsck(&["-n", "-f"]);
    let dt = t.elapsed();
    eprintln!("fsck -n -f after kill -9: exit {code} in {dt:.2?}\n{out}");
    assert!(
        code == 0 || (code == 1 && out.to_lowercase().contains("orphan")),
        "fsck -n -f after kill -9 exited {code} (want 0, or 1 reporting only orphans):\n{out}"
    );
    if code != 0 {
        let (c2, o2) = m.fsck(&["-p", "-f"]);
        assert!(c2 == 0 || c2 == 1, "fsck -p -f exited {c2}:\n{o2}");
        let (c3, o3) = m.fsck(&["-n", "-f"]);
        assert_eq!(c3, 0, "fsck -n -f after fsck -p still exits {c3}:\n{o3}");
    }
    (code, dt)
}

/// Check a partial copy against the source: only paths of the source, symlinks right, and every
/// regular file complete and exact except at most one (the file in flight). Returns the number
/// of complete files.
fn check_partial_copy(src: &BTreeMap<PathBuf, Entry>, dir: &Path, what: &str) -> usize {
    let got = manifest(dir);
    let mut complete = 0usize;
    let mut differ: Vec<String> = Vec::new();
    for (p, g) in &got {
        let Some(w) = src.get(p) else {
            panic!("{what}: {} is not in the source", p.display())
        };
        match (&w.kind, &g.kind) {
            (
                Kind::File {
                    size: ws,
                    sha256: wh,
                },
                Kind::File {
                    size: gs,
                    sha256: gh,
                },
            ) => {
                if ws == gs && wh == gh {
                    complete += 1;
                } else {
                    differ.push(format!(
                        "{}: size {gs} of {ws}{}",
                        p.display(),
                        if ws == gs { ", content differs" } else { "" }
                    ));
                }
            }
            (Kind::Dir, Kind::Dir) => {}
            (Kind::Symlink(a), Kind::Symlink(b)) => {
                assert_eq!(a, b, "{what}: symlink {} has the wrong target", p.display())
            }
            (a, b) => panic!("{what}: {}: source is {a:?}, copy has {b:?}", p.display()),
        }
    }
    eprintln!("{what}: {complete} complete files; not complete: {differ:?}");
    assert!(
        differ.len() <= 1,
        "{what}: more than the one file in flight differs after kill -9:\n  {}",
        differ.join("\n  ")
    );
    complete
}

/// The tree copied in [`kill9_during_cp_a_of_a_real_tree`] and its first complete copy.
#[derive(Clone, Copy)]
struct Copied<'a> {
    /// The top-level entries of the source tree, and its manifest.
    entries: &'a [PathBuf],
    src: &'a BTreeMap<PathBuf, Entry>,
    /// The first copy, on the mount.
    first: &'a Path,
    /// How long the first copy took, and the bytes of the tree.
    t_copy: Duration,
    nbytes: u64,
}

/// Copy `entries` again into `second-{i}` with `cp -a` in the background, `kill -9` the
/// daemon when about `frac` of the bytes are in, and check after fsck and mount: the first
/// copy exact, the second a partial copy whose files are exact but for the one in flight.
fn kill9_during_second_copy(m: &mut Mounted, copied: &Copied, i: usize, frac: f64) {
    let Copied {
        entries,
        src,
        first,
        t_copy,
        nbytes,
    } = *copied;
    let second = m.path(format!("second-{i}"));
    fs::create_dir(&second).unwrap();
    let mut cp = ChildGuard(
        Command::new("cp")
            .arg("-a")
            .arg("-t")
            .arg(&second)
            .args(entries)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn cp"),
    );
    // Kill when about `frac` of the bytes are in (statvfs), else after that share of the time.
    let wait = wait_for_progress(
        m.mnt(),
        &mut cp,
        (nbytes as f64 * frac) as u64,
        t_copy.mul_f64(frac),
        Duration::from_secs(120),
    );
    let cp_still_running = cp.is_running();
    m.kill9();
    cp.finish(Duration::from_secs(30));
    eprintln!(
        "killed the daemon {wait:.2?} into copy {i} (cp still running then: {cp_still_running})"
    );

    fsck_after_crash(m);
    m.mount();
    eprintln!("mount after the crash took {:.2?}", m.last_mount_time);
    assert_manifests_equal(
        src,
        &manifest(first),
        Compare::ALL,
        &format!("first copy after kill -9 number {}", i + 1),
    );
    check_partial_copy(
        src,
        &second,
        &format!("copy {i} killed at {:.0}%", frac * 100.0),
    );
    fs::remove_dir_all(&second).unwrap();
}

/// kill -9 during rm -rf of the first copy: whatever is left is exact.
fn kill9_during_rm_rf(m: &mut Mounted, src: &BTreeMap<PathBuf, Entry>, first: &Path) {
    let mut rm = ChildGuard(
        Command::new("rm")
            .arg("-rf")
            .arg(first)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn rm"),
    );
    std::thread::sleep(Duration::from_millis(150));
    let rm_running = rm.is_running();
    m.kill9();
    rm.finish(Duration::from_secs(30));
    fsck_after_crash(m);
    m.mount();
    if first.exists() {
        let left = check_partial_copy(src, first, "after kill -9 during rm -rf");
        eprintln!("rm -rf killed (running then: {rm_running}): {left} files left, all exact");
    }
}

#[test]
fn kill9_during_cp_a_of_a_real_tree() {
    require_fuse!();
    let entries = python_stdlib_entries(&["test"]);
    let src = manifest_of_entries(&entries);
    let (nfiles, nbytes) = totals(&src);

    let mut m = Mounted::with_mkfs(&["-s", "2G"]);
    let first = m.path("first");
    fs::create_dir(&first).unwrap();

    // A first complete copy.
    let o = cp_a(&entries, &first).ok("cp -a (first copy)");
    let t_copy = o.elapsed;
    eprintln!(
        "first copy: {nfiles} files, {:.1} MiB in {t_copy:.2?} ({:.1} MiB/s)",
        nbytes as f64 / 1048576.0,
        mib_per_s(nbytes, t_copy)
    );
    assert_manifests_equal(
        &src,
        &manifest(&first),
        Compare::ALL,
        "first copy before the kill",
    );

    // Second copies in the background, the daemon killed at several points of each.
    let copied = Copied {
        entries: &entries,
        src: &src,
        first: &first,
        t_copy,
        nbytes,
    };
    for (i, frac) in [0.5f64, 0.15, 0.85].into_iter().enumerate() {
        kill9_during_second_copy(&mut m, &copied, i, frac);
    }

    kill9_during_rm_rf(&mut m, &src, &first);

    // The recovered filesystem is usable and unmounts clean.
    fs::write(m.path("after"), b"after the crash").unwrap();
    if first.exists() {
        fs::remove_dir_all(&first).unwrap();
    }
    m.unmount_ok();
    m.assert_fsck_clean();
}

/// Build a small tree through std::fs; return its manifest.
fn small_tree(root: &Path, seed: u64) -> BTreeMap<PathBuf, Entry> {
    fs::create_dir_all(root.join("d/e")).unwrap();
    for i in 0..50u64 {
        fs::write(
            root.join(format!("d/f{i}")),
            pattern(seed * 1000 + i, (i as usize * 7919) % 70_000),
        )
        .unwrap();
    }
    fs::write(root.join("d/e/g"), b"g").unwrap();
    std::os::unix::fs::symlink("../d/f1", root.join("d/e/link")).unwrap();
    fs::hard_link(root.join("d/f2"), root.join("d/e/hard")).unwrap();
    fs::rename(root.join("d/f3"), root.join("d/e/moved")).unwrap();
    fs::remove_file(root.join("d/f4")).unwrap();
    let f = fs::OpenOptions::new()
        .write(true)
        .open(root.join("d/f5"))
        .unwrap();
    f.set_len(3).unwrap();
    f.sync_all().unwrap();
    manifest(root)
}

#[test]
fn kill9_after_answered_requests_then_fsck_and_mount() {
    require_fuse!();
    let mut m = Mounted::new();
    let want = small_tree(&m.path("t"), 1);
    // A file unlinked while open when the daemon dies: an orphan for fsck to reclaim.
    let mut held = fs::File::create(m.path("held")).unwrap();
    held.write_all(&pattern(5, 200_000)).unwrap();
    fs::remove_file(m.path("held")).unwrap();
    m.kill9();
    drop(held);
    fsck_after_crash(&m);
    m.mount();
    assert_manifests_equal(
        &want,
        &manifest(&m.path("t")),
        Compare::EXACT,
        "after kill -9, fsck and mount",
    );
    assert!(!m.path("held").exists());
    m.unmount_ok();
    m.assert_fsck_clean();
}

#[test]
fn kill9_then_mount_replays_the_log() {
    require_fuse!();
    let mut m = Mounted::new();
    let mut wants = Vec::new();
    for round in 0..5u64 {
        let dir = m.path(format!("r{round}"));
        wants.push((dir.clone(), small_tree(&dir, round + 10)));
        m.kill9();
        m.mount(); // no fsck in between: the daemon replays the log itself
        for (d, w) in &wants {
            assert_manifests_equal(
                w,
                &manifest(d),
                Compare::EXACT,
                &format!("round {round}: {}", d.display()),
            );
        }
    }
    m.unmount_ok();
    m.assert_fsck_clean();
}
