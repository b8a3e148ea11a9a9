//! Real trees to copy onto the mount (the Python standard library) and the ordinary ways of
//! copying them (`cp -a`, a `tar | tar` pipe).

use crate::processes::{run, run_timeout, Outcome};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The Python standard library directory of `python3` (sysconfig's "stdlib"), falling back to
/// Debian's /usr/lib/python3.N.
pub fn python_stdlib() -> Option<PathBuf> {
    let o = run_timeout(
        Command::new("python3").args([
            "-c",
            "import sysconfig;print(sysconfig.get_paths()['stdlib'])",
        ]),
        Duration::from_secs(30),
    );
    if o.success() {
        let p = PathBuf::from(o.stdout.trim());
        if p.join("os.py").is_file() {
            return Some(p);
        }
    }
    let mut cands: Vec<PathBuf> = fs::read_dir("/usr/lib")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("python3."))
                && p.join("os.py").is_file()
        })
        .collect();
    cands.sort();
    cands.pop()
}

/// The top-level entries of the Python standard library, without third-party packages
/// (`site-packages`, `dist-packages`) and without whatever else is named in `also_skip`
/// (e.g. `"test"`, the biggest package).
pub fn python_stdlib_entries(also_skip: &[&str]) -> Vec<PathBuf> {
    let root = python_stdlib().expect("no Python standard library found (python3)");
    let mut v: Vec<PathBuf> = fs::read_dir(&root)
        .expect("read stdlib")
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n != "site-packages" && n != "dist-packages" && !also_skip.contains(&n.as_ref())
        })
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// `cp -a SOURCES... DEST/` (DEST must exist).
pub fn cp_a(sources: &[PathBuf], dest: &Path) -> Outcome {
    run(Command::new("cp")
        .arg("-a")
        .arg("-t")
        .arg(dest)
        .args(sources))
}

/// Copy a tree by piping `tar -C src -cf - PATHS...` into `tar -C dst -xf -`.
pub fn tar_pipe(src: &Path, paths: &[&str], dst: &Path) -> Outcome {
    let start = Instant::now();
    let mut c = Command::new("tar")
        .arg("-C")
        .arg(src)
        .arg("-cf")
        .arg("-")
        .args(paths)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tar c");
    let pipe = c.stdout.take().unwrap();
    let x = Command::new("tar")
        .arg("-C")
        .arg(dst)
        .arg("-xpf")
        .arg("-")
        .stdin(pipe)
        .output()
        .expect("run tar x");
    let co = c.wait_with_output().expect("wait tar c");
    Outcome {
        status: Some(if !x.status.success() {
            x.status
        } else {
            co.status
        }),
        stdout: String::from_utf8_lossy(&x.stdout).into_owned(),
        stderr: format!(
            "tar c: {}{}\ntar x: {}{}",
            co.status,
            String::from_utf8_lossy(&co.stderr),
            x.status,
            String::from_utf8_lossy(&x.stderr)
        ),
        timed_out: false,
        elapsed: start.elapsed(),
    }
}
