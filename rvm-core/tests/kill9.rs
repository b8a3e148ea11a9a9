//! A real `kill -9`: a child process (this test binary, run with RVM_KILL9_CHILD set)
//! commits in a loop and prints each committed sequence number once `end` returned; the
//! parent kills it with SIGKILL at a random moment, recovers, and checks that every printed
//! commit is present and no later one is partially present.
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rvm_core::*;

const CHILD_ENV: &str = "RVM_KILL9_CHILD";
const LOG: Area = Area {
    offset: 0,
    len: 256 << 10,
};
const SEG: Area = Area {
    offset: 256 << 10,
    len: 64 << 10,
};
const SLOTS: u64 = 100;

fn options(img: &Path) -> RvmOptions {
    RvmOptions {
        log: LOG,
        spool: Some(spool_of(img)),
        spool_size: 1 << 20,
        ..Default::default()
    }
}

fn spool_of(img: &Path) -> PathBuf {
    img.with_extension("spool")
}

fn open(img: &Path) -> Rvm {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(img)
        .unwrap();
    Rvm::initialize(Arc::new(FileStorage::new(f)), options(img)).unwrap()
}

fn pattern(j: u64) -> [u8; 64] {
    let mut b = [j as u8 ^ 0xA5; 64];
    b[..8].copy_from_slice(&j.to_le_bytes());
    b
}

fn slot_off(j: u64) -> usize {
    64 + (j % SLOTS) as usize * 64
}

/// The child's body; does nothing unless spawned by the parent test.
#[test]
fn kill9_child() {
    let Ok(img) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rvm = open(Path::new(&img));
    rvm.set_truncate_threshold(Some(30));
    let mut r = rvm.map(SEG).unwrap();
    let mut i = u64::from_le_bytes(r.bytes()[..8].try_into().unwrap());
    let out = std::io::stdout();
    loop {
        i += 1;
        let mode = if i % 2 == 0 {
            RestoreMode::Restore
        } else {
            RestoreMode::NoRestore
        };
        let mut t = r.begin_transaction(mode);
        t.write(0, &i.to_le_bytes()).unwrap();
        t.write(slot_off(i), &pattern(i)).unwrap();
        let commit = if i % 3 == 0 {
            CommitMode::NoFlush // in the spool: survives kill -9
        } else {
            CommitMode::Flush
        };
        t.end(commit).unwrap();
        let mut o = out.lock();
        writeln!(o, "C {i}").unwrap();
        o.flush().unwrap();
        if i % 97 == 0 {
            rvm.flush().unwrap();
        }
    }
}

/// Check the recovered image: its counter `n` is at least the last printed commit (at most
/// one more), and every slot holds the value of the last commit that wrote it.
fn verify(img: &Path, last_printed: u64) -> u64 {
    let rvm = open(img);
    let r = rvm.map(SEG).unwrap();
    let b = r.bytes();
    let n = u64::from_le_bytes(b[..8].try_into().unwrap());
    assert!(
        n >= last_printed && n <= last_printed + 1,
        "recovered commit {n}, last printed {last_printed}"
    );
    for j in n.saturating_sub(SLOTS - 1).max(1)..=n {
        let o = slot_off(j);
        assert_eq!(
            b[o..o + 64],
            pattern(j),
            "slot of commit {j} (recovered {n})"
        );
    }
    n
}

#[test]
fn kill9_during_commits_loses_nothing_printed() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("k9.img");
    let f = std::fs::File::create(&img).unwrap();
    f.set_len(SEG.end()).unwrap();
    Rvm::create_log(&FileStorage::new(f), LOG).unwrap();
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    let mut last = 0;
    for round in 0..4 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_millis(40 + seed % 250);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["kill9_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &img)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut printed = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // the harness may print "test kill9_child ... " before the first line
                if let Some(at) = line.find("C ") {
                    printed.push(line[at + 2..].trim().parse::<u64>().unwrap());
                }
            }
            printed
        });
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let printed = reader.join().unwrap();
        for w in printed.windows(2) {
            assert_eq!(
                w[1],
                w[0] + 1,
                "round {round}: commits printed out of order"
            );
        }
        if let Some(&p) = printed.last() {
            assert!(p > last, "round {round}: the child went backwards");
            last = p;
        }
        let n = verify(&img, last);
        eprintln!(
            "round {round}: killed after {delay:?}, {} commits printed, recovered {n}",
            printed.len()
        );
        last = n;
    }
    assert!(last > 0, "the child never committed");
}
