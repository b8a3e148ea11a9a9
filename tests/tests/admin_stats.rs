//! `rvmfs-admin stats` (issue 13, item 8), as iostat and juicefs stats are used: while a
//! writer creates, writes, fsyncs and reads back files on a real mount, `stats -i 1 -c 3
//! --json` prints three intervals whose deltas show the writes, the bytes written and read,
//! commits, bytes logged, log and spool fill, lookups and write latency; the text form names the same things; a
//! path that is not on an rvmfs mount exits 8 with a clear message.

use rvmfs_tests::*;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `rvmfs-admin stats ARGS... TARGET`.
fn stats(args: &[&str], target: &Path) -> Outcome {
    run_timeout(
        cmd(bin(ADMIN), &["stats"]).args(args).arg(target),
        Duration::from_secs(60),
    )
}

/// Until `stop`: create `w.N`, write 64 KiB, fsync, read it back.
fn writer(dir: &Path, stop: &AtomicBool) {
    for n in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let p = dir.join(format!("w.{n}"));
        let data = pattern(n, 64 << 10);
        let mut f = fs::File::create(&p).expect("create");
        f.write_all(&data)
            .and_then(|_| f.sync_all())
            .expect("write");
        drop(f);
        assert_eq!(fs::read(&p).expect("read back"), data, "{}", p.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The sum over the intervals of `field.key` (a counter or a request count).
fn total(intervals: &[serde_json::Value], field: &str, key: &str) -> u64 {
    intervals
        .iter()
        .map(|i| i[field][key].as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn intervals_show_what_a_writer_does() {
    require_fuse!();
    let m = Mounted::with_mkfs(&["-s", "64M"]);
    let stop = Arc::new(AtomicBool::new(false));
    let (dir, flag) = (m.mnt().to_path_buf(), stop.clone());
    let w = std::thread::spawn(move || writer(&dir, &flag));
    let json = stats(&["-i", "1", "-c", "3", "--json"], m.mnt()).ok("stats --json");
    let text = stats(&["-i", "0.5", "-c", "1"], m.mnt()).ok("stats");
    stop.store(true, Ordering::Relaxed);
    w.join().expect("writer");

    let intervals: Vec<serde_json::Value> = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(intervals.len(), 3, "{}", json.output());
    for i in &intervals {
        let secs = i["seconds"].as_f64().expect("seconds");
        assert!(secs >= 1.0, "an interval of {secs} s: {i}");
        assert!(i["log_capacity"].as_u64() > Some(0), "{i}");
        assert!(i["log_live"].as_u64() <= i["log_capacity"].as_u64(), "{i}");
        assert!(i["spool_capacity"].as_u64() > Some(0), "{i}");
    }
    let all = json.stdout.as_str();
    assert!(total(&intervals, "requests", "write") > 0, "{all}");
    assert!(total(&intervals, "requests", "lookup") > 0, "{all}");
    assert!(
        total(&intervals, "counters", "written_bytes") >= 64 << 10,
        "{all}"
    );
    assert!(total(&intervals, "counters", "commits") > 0, "{all}");
    assert!(total(&intervals, "counters", "bytes_logged") > 0, "{all}");
    assert!(total(&intervals, "counters", "fsync") > 0, "{all}");
    let busy = intervals
        .iter()
        .find(|i| i["latency"]["write"]["n"].as_u64() > Some(0))
        .unwrap_or_else(|| panic!("no interval timed a write: {all}"));
    let l = &busy["latency"]["write"];
    assert!(l["p50_ns"].as_u64() <= l["p99_ns"].as_u64(), "{l}");
    assert!(l["p99_ns"].as_u64() <= l["max_ns"].as_u64(), "{l}");

    let t = text.stdout;
    for word in ["commits", "logged", "log ", "spool ", "written", "create "] {
        assert!(t.contains(word), "no {word:?} in the text form:\n{t}");
    }
}

#[test]
fn a_path_not_on_rvmfs_exits_8() {
    let dir = tempfile::tempdir().expect("tempdir");
    for target in [dir.path().to_path_buf(), dir.path().join("missing")] {
        let o = stats(&["-c", "1"], &target);
        assert_eq!(o.code(), 8, "{}", o.output());
        assert!(o.stderr.contains("not an rvmfs mount"), "{}", o.stderr);
        assert!(
            o.stderr.contains(&target.display().to_string()),
            "{}",
            o.stderr
        );
    }
}
