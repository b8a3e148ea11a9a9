//! (g) The resident set after mapping a 4 GiB segment and touching 1% of its pages,
//! measured in a child process (this binary run with `--rss-child`).

use std::path::Path;

use rvm_core::{CommitMode, RestoreMode};

use crate::image::{Image, MIB};

fn vm_rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// (g), in a child process: map a 4 GiB segment (sparse file) and touch 1% of its pages
/// with transactions; print the resident set in MiB.
pub fn rss_child(dir: &Path) {
    let img = Image::create(dir, "rss", 64 * MIB + 8192, 4096 * MIB, false);
    let rvm = img.open(64 * MIB);
    let mut r = rvm.map(img.seg).unwrap();
    let pages = img.seg.len / 4096;
    let touch = pages / 100;
    let stride = pages / touch;
    for p in 0..touch {
        let mut tx = r.begin_transaction(RestoreMode::NoRestore);
        tx.set_range((p * stride * 4096) as usize, 64)
            .unwrap()
            .fill(p as u8 | 1);
        tx.end(CommitMode::NoFlush).unwrap();
    }
    rvm.flush().unwrap();
    println!("{:.1}", vm_rss_mib());
}

pub fn rss_4gib(dir: &Path) -> f64 {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--rss-child")
        .arg(dir)
        .output()
        .expect("spawn rss child");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(f64::NAN)
}
