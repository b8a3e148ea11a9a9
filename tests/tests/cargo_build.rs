//! (d) A small crate (no dependencies) created with `cargo new` and built, tested and run with
//! `cargo --offline` entirely inside the mount; after a remount the binary still runs and
//! the crate builds again.

use rvmfs_tests::*;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn cargo(dir: &Path, target: &Path, args: &[&str]) -> Outcome {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CARGO_BUILD_RUSTC_WRAPPER")
        .env("CARGO_TERM_COLOR", "never")
        .env("CARGO_INCREMENTAL", "1");
    run_timeout(&mut c, Duration::from_secs(900))
}

const MAIN_RS: &str = r#"mod fib;

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    println!("Hello from rvmfs! fib({n}) = {}", fib::fib(n));
}
"#;

const FIB_RS: &str = r#"/// The n-th Fibonacci number.
pub fn fib(n: u64) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        let t = a.wrapping_add(b);
        a = b;
        b = t;
    }
    a
}

#[cfg(test)]
mod tests {
    #[test]
    fn small() {
        assert_eq!(super::fib(10), 55);
        assert_eq!(super::fib(50), 12586269025);
    }
}
"#;

#[test]
fn cargo_build_offline_inside_the_mount() {
    require_fuse!();
    let mut m = Mounted::with_mkfs(&["-s", "2G"]);
    let target = m.path("hello/target");
    cargo(
        m.mnt(),
        &target,
        &["new", "--offline", "--vcs", "none", "--bin", "hello"],
    )
    .ok("cargo new hello");
    let krate = m.path("hello");
    assert!(krate.join("Cargo.toml").is_file() && krate.join("src/main.rs").is_file());
    fs::write(krate.join("src/main.rs"), MAIN_RS).unwrap();
    fs::write(krate.join("src/fib.rs"), FIB_RS).unwrap();

    let b =
        cargo(&krate, &target, &["build", "--offline"]).ok("cargo build --offline in the mount");
    eprintln!("cargo build took {:.2?}", b.elapsed);
    let exe = target.join("debug/hello");
    let out = run(Command::new(&exe).arg("50")).ok("running the built binary");
    assert_eq!(out.stdout.trim(), "Hello from rvmfs! fib(50) = 12586269025");

    let t = cargo(&krate, &target, &["test", "--offline"]).ok("cargo test --offline in the mount");
    assert!(
        t.output().contains("test result: ok. 1 passed"),
        "cargo test output:\n{}",
        t.output()
    );

    let r = cargo(&krate, &target, &["build", "--offline", "--release"])
        .ok("cargo build --release in the mount");
    eprintln!("cargo build --release took {:.2?}", r.elapsed);
    let rel_sum = sha256_file(&target.join("release/hello"));

    let before = manifest(&krate);
    m.remount();
    assert_manifests_equal(
        &before,
        &manifest(&krate),
        Compare::EXACT,
        "crate directory after remount",
    );
    assert_eq!(sha256_file(&target.join("release/hello")), rel_sum);
    let out = run(Command::new(target.join("release/hello")).arg("20"))
        .ok("running the release binary after remount");
    assert_eq!(out.stdout.trim(), "Hello from rvmfs! fib(20) = 6765");

    let again = cargo(&krate, &target, &["build", "--offline"]).ok("cargo build after remount");
    eprintln!(
        "cargo build after remount: {}",
        if again.output().contains("Compiling hello") {
            "recompiled"
        } else {
            "up to date"
        }
    );
    cargo(&krate, &target, &["clean", "--offline"]).ok("cargo clean in the mount");
    assert!(!target.join("debug").exists());
    m.unmount_ok();
    m.assert_fsck_clean();
}
