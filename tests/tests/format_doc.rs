//! docs/format.md stays true: `docs/check-format.py` reads the field tables (offsets, sizes,
//! types) from the document itself, decodes a fresh image made by mkfs.rvmfs with them, and
//! checks every value against the layout rules and the CRCs. Images of several sizes, so the
//! geometry formulas are checked where their clamps and jump records differ.

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
    for size in ["6M", "64M", "1G", "20G"] {
        let img = dir.path().join(format!("fresh-{size}.img"));
        mkfs(&img, &["-s", size]).ok(&format!("mkfs -s {size}"));
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
