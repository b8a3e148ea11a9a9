//! Real programs on a mounted rvmfs: git (init/add/commit/status/fsck on a real source tree)
//! and SQLite (python3's sqlite3 module: transactions, rollbacks, rollback-journal and WAL
//! modes, integrity check, persistence across a remount). Each skips if its program is absent.

#[path = "posix_common.rs"]
mod common;
use common::*;
use rvmfs_tests::*;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn git(repo: &Path, args: &[&str]) -> Outcome {
    let mut c = Command::new("git");
    c.arg("-C").arg(repo);
    c.args([
        "-c",
        "user.name=rvmfs test",
        "-c",
        "user.email=test@rvmfs.invalid",
    ]);
    c.args(["-c", "init.defaultBranch=main", "-c", "core.fsync=all"]);
    c.args(args);
    c.env("GIT_CONFIG_NOSYSTEM", "1").env("HOME", repo);
    run_timeout(&mut c, Duration::from_secs(300))
}

#[test]
fn git_on_a_real_tree() {
    require_fuse!();
    if which("git").is_none() {
        eprintln!("SKIPPED git_on_a_real_tree: git is not installed");
        return;
    }
    let mut m = Mounted::new();
    let repo = m.path("repo");
    fs::create_dir(&repo).unwrap();
    // A real tree: this workspace's sources (the fs crate and the tests).
    let root = workspace_root();
    cp_a(
        &[root.join("fs"), root.join("tests"), root.join("Cargo.toml")],
        &repo,
    )
    .ok("cp -a");
    let _ = fs::remove_dir_all(repo.join("fs/target"));
    git(&repo, &["init", "-q"]).ok("git init");
    git(&repo, &["add", "-A"]).ok("git add");
    git(&repo, &["commit", "-q", "-m", "first"]).ok("git commit");
    let st = git(&repo, &["status", "--porcelain"]).ok("git status");
    assert_eq!(st.stdout, "", "a clean tree shows changes");
    // Change, add, delete, rename; status sees each; a second commit.
    fs::write(repo.join("Cargo.toml"), "# changed\n").unwrap();
    fs::write(repo.join("new.txt"), "new\n").unwrap();
    fs::remove_file(repo.join("fs/src/lib.rs")).unwrap();
    git(&repo, &["mv", "fs/src/main.rs", "fs/src/main2.rs"]).ok("git mv");
    let st = git(&repo, &["status", "--porcelain"])
        .ok("git status")
        .stdout;
    for want in [
        " M Cargo.toml",
        "?? new.txt",
        " D fs/src/lib.rs",
        "R  fs/src/main.rs -> fs/src/main2.rs",
    ] {
        assert!(
            st.lines().any(|l| l == want),
            "git status lacks {want:?}:\n{st}"
        );
    }
    git(&repo, &["add", "-A"]).ok("git add");
    git(&repo, &["commit", "-q", "-m", "second"]).ok("git commit");
    git(&repo, &["gc", "-q"]).ok("git gc");
    fsck_and_remount(&mut m);
    let log = git(&repo, &["log", "--oneline"]).ok("git log").stdout;
    assert_eq!(log.lines().count(), 2, "{log}");
    git(&repo, &["fsck", "--full", "--strict"]).ok("git fsck");
    assert_eq!(
        git(&repo, &["status", "--porcelain"])
            .ok("git status")
            .stdout,
        ""
    );
    // Check out the first commit and back: the working tree follows.
    git(&repo, &["checkout", "-q", "HEAD~1"]).ok("git checkout");
    assert!(repo.join("fs/src/lib.rs").exists());
    git(&repo, &["checkout", "-q", "main"]).ok("git checkout main");
    assert!(!repo.join("fs/src/lib.rs").exists());
}

const SQLITE_SCRIPT: &str = r#"
import sqlite3, sys
path, mode, phase = sys.argv[1], sys.argv[2], sys.argv[3]
db = sqlite3.connect(path, isolation_level=None)
db.execute(f"PRAGMA journal_mode={mode}")
db.execute("PRAGMA synchronous=FULL")
if phase == "write":
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT UNIQUE, v BLOB)")
    for i in range(400):
        db.execute("BEGIN")
        for j in range(10):
            n = i * 10 + j
            db.execute("INSERT INTO t (k, v) VALUES (?, ?)", (f"key{n}", bytes([n % 256]) * (n % 3000)))
        if i % 10 == 9:
            db.execute("ROLLBACK")
        else:
            db.execute("COMMIT")
    db.execute("BEGIN")
    db.execute("UPDATE t SET v = x'00' WHERE id % 2 = 0")
    db.execute("DELETE FROM t WHERE id % 7 = 0")
    db.execute("COMMIT")
    db.execute("VACUUM")
ok = db.execute("PRAGMA integrity_check").fetchone()[0]
count = db.execute("SELECT count(*) FROM t").fetchone()[0]
total = db.execute("SELECT sum(length(v)) FROM t").fetchone()[0]
print(ok, count, total)
"#;

#[test]
fn sqlite_transactions() {
    require_fuse!();
    if which("python3").is_none() {
        eprintln!("SKIPPED sqlite_transactions: python3 is not installed");
        return;
    }
    let mut m = Mounted::new();
    let script = m.dir().join("db.py");
    fs::write(&script, SQLITE_SCRIPT).unwrap();
    let py = |db: &Path, mode: &str, phase: &str| {
        run_timeout(
            Command::new("python3")
                .arg(&script)
                .arg(db)
                .arg(mode)
                .arg(phase),
            Duration::from_secs(300),
        )
        .ok("python3 sqlite3")
        .stdout
    };
    let mut results = Vec::new();
    for mode in ["DELETE", "WAL", "TRUNCATE"] {
        let db = m.path(format!("{mode}.db"));
        let out = py(&db, mode, "write");
        assert!(out.starts_with("ok "), "{mode}: {out}");
        // The same statements on a local disk give the same answer.
        let reference = m.dir().join(format!("{mode}-ref.db"));
        assert_eq!(
            out,
            py(&reference, mode, "write"),
            "{mode}: rvmfs and the local disk disagree"
        );
        results.push((db, mode, out));
    }
    fsck_and_remount(&mut m);
    for (db, mode, out) in results {
        assert_eq!(
            py(&db, mode, "read"),
            out,
            "{mode}: different after a remount"
        );
    }
}
