//! docs/format.md stays true: `docs/check-format.py` reads the field tables (offsets, sizes,
//! types) from the document itself, decodes a fresh image made by mkfs.rvmfs with them, and
//! checks every value against the layout rules and the CRCs. Images of several sizes, so the
//! geometry formulas are checked where their clamps and jump records differ, and one with an
//! external log (`-J device=`: the binding, the log device's header, its log).

use rvmfs_tests::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn format_doc_decodes_fresh_images() {
    if which("python3").is_none() {
        eprintln!("SKIPPED: python3 missing");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = workspace_root().join("docs/check-format.py");
    let log = dir.path().join("external.log");
    let device = format!("device={}", log.display());
    let cases: [&[&str]; 5] = [
        &["-s", "6M"],
        &["-s", "64M"],
        &["-s", "1G"],
        &["-s", "20G"],
        &["-s", "64M", "-J", &device],
    ];
    for (i, args) in cases.iter().enumerate() {
        let size = args.join(" ");
        let img = dir.path().join(format!("fresh-{i}.img"));
        mkfs(&img, args).ok(&format!("mkfs {size}"));
        let o = run_timeout(
            Command::new("python3").arg(&script).arg(&img),
            Duration::from_secs(120),
        );
        assert!(
            o.success(),
            "docs/format.md does not describe a fresh {size} image:\n{}",
            o.output()
        );
        std::fs::remove_file(&img).unwrap();
    }
}
