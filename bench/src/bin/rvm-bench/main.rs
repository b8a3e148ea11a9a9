//! rvm-bench: rvm-core against the raw disk (issue 3).
//!
//! `cargo run --release -p rvmfs-bench --bin rvm-bench -- [--dir DIR] [--json]`
//!
//! Every measurement runs in one invocation on files in DIR (the same disk); rates are the
//! median of `--reps` repetitions. The spool lives in /dev/shm when it exists (as the
//! filesystem uses it), else in DIR.
//!
//! Modules: `image` (the bench files), `rates` (a)-(e), `recovery` (f), `stall` (f'),
//! `rss` (g), `report` (the table and the JSON line).

mod image;
mod rates;
mod recovery;
mod report;
mod rss;
mod stall;

use std::path::PathBuf;

use clap::Parser;

use image::{median, Image, MIB};
use report::Results;

#[derive(Parser, Debug)]
#[command(about = "Benchmark rvm-core against the raw fdatasync rate of the disk")]
struct Args {
    /// Directory for the test files (the disk under test).
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    dir: PathBuf,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Repetitions of each rate measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Seconds per rate measurement.
    #[arg(long, default_value_t = 1.0)]
    secs: f64,
    /// Run one measurement only and print its details: `recovery` or `stall`.
    #[arg(long)]
    only: Option<String>,
    /// Internal: measure the resident set after mapping a 4 GiB segment (child process).
    #[arg(long, hide = true)]
    rss_child: Option<PathBuf>,
}

fn main() {
    let a = Args::parse();
    if let Some(d) = &a.rss_child {
        rss::rss_child(d);
        return;
    }
    std::fs::create_dir_all(&a.dir).expect("create --dir");
    match a.only.as_deref() {
        Some(only) => run_only(&a, only),
        None => {
            let r = run_all(&a);
            if a.json {
                println!("{}", r.json());
            } else {
                r.print_table();
            }
        }
    }
}

/// `--only recovery` or `--only stall`: one measurement, with its details.
fn run_only(a: &Args, only: &str) {
    match only {
        "recovery" => {
            for _ in 0..a.reps.max(1) {
                let r = recovery::recovery_and_truncation(&a.dir);
                println!(
                    "recovery {:.3} s (initialize {:.3} s, map {:.3} s), {} records; truncation {:.1} MiB/s",
                    r.total, r.init, r.map, r.records, r.truncate_mib_s
                );
            }
        }
        "stall" => {
            let s = stall::commit_stall(&a.dir, a.secs);
            println!(
                "no-flush commits {}: max {:.3} ms; while truncating {} commits, max {:.3} ms, histogram <10us/<100us/<1ms/<10ms/>=10ms {:?}; max with no truncation running {:.3} ms; {} truncations, {} log-full waits, max flush() {:.1} ms",
                s.commits, s.max_ms, s.commits_truncating, s.max_truncating_ms, s.hist, s.max_idle_ms, s.truncations, s.log_full_waits, s.max_flush_ms
            );
        }
        o => panic!("--only {o}: expected recovery or stall"),
    }
}

/// Every measurement, (a) to (g), in order.
fn run_all(a: &Args) -> Results {
    let reps = a.reps.max(1);
    let say = |s: &str| {
        if !a.json {
            eprintln!("... {s}");
        }
    };
    say("raw 4 KiB pwrite + fdatasync");
    let raw = median(
        (0..reps)
            .map(|_| rates::raw_fdatasync(&a.dir, a.secs))
            .collect(),
    );
    let img = Image::create(&a.dir, "flush", 64 * MIB + 8192, 16 * MIB, true);
    let mut flush = [0f64; 4];
    let mut syncs = [0f64; 4];
    for (i, th) in [1u64, 2, 4, 8].into_iter().enumerate() {
        say(&format!("flush transactions, {th} thread(s)"));
        let runs: Vec<(f64, f64)> = (0..reps)
            .map(|_| rates::flush_tx(&img, th, a.secs))
            .collect();
        flush[i] = median(runs.iter().map(|r| r.0).collect());
        syncs[i] = median(runs.iter().map(|r| r.1).collect());
    }
    drop(img);
    say("no-flush transactions");
    let img = Image::create(&a.dir, "noflush", 64 * MIB + 8192, 16 * MIB, true);
    let noflush = median(
        (0..reps)
            .map(|_| rates::noflush_tx(&img, 1_000_000))
            .collect(),
    );
    drop(img);
    say("log bytes per transaction");
    let (opt, saved_intra, saved_inter) = rates::log_bytes(true);
    let (unopt, _, _) = rates::log_bytes(false);
    say("recovery of a full 64 MiB log, truncation");
    let rec = recovery::recovery_and_truncation(&a.dir);
    say("commit stalls during background truncation");
    let stall = stall::commit_stall(&a.dir, a.secs);
    say("resident set, 4 GiB segment, 1% touched");
    let rss = rss::rss_4gib(&a.dir);
    Results {
        raw,
        flush,
        syncs,
        noflush,
        opt,
        unopt,
        saved_intra,
        saved_inter,
        rec,
        stall,
        rss,
    }
}
