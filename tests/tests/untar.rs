//! (a) Untar real trees into the mount and compare every file's checksum, mode, owner and
//! mtime with the source; then tar the copy back out and let `tar --diff` check it against the
//! source too.

use rvmfs_tests::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn untar_and_compare(src_parent: &Path, names: &[&str]) {
    let m = Mounted::with_mkfs(&["-s", "2G"]);
    let archive = m.dir().join("src.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(src_parent)
        .arg("-cf")
        .arg(&archive)
        .args(names))
    .ok("tar -cf");

    let dest = m.path("x");
    fs::create_dir(&dest).unwrap();
    let o = run(Command::new("tar")
        .arg("-C")
        .arg(&dest)
        .arg("-xpf")
        .arg(&archive))
    .ok("tar -xpf into the mount");
    let entries: Vec<PathBuf> = names.iter().map(|n| src_parent.join(n)).collect();
    let want = manifest_of_entries(&entries);
    let got = manifest(&dest);
    assert_manifests_equal(&want, &got, Compare::ALL, "untarred tree vs source");
    let (files, bytes) = totals(&want);
    eprintln!(
        "untarred {files} files, {:.1} MiB from {} in {:.2?} ({:.1} MiB/s)",
        bytes as f64 / 1048576.0,
        src_parent.display(),
        o.elapsed,
        mib_per_s(bytes, o.elapsed)
    );

    // Round trip: an archive made from the mount must agree with the source tree.
    let back = m.dir().join("back.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&dest)
        .arg("-cf")
        .arg(&back)
        .args(names))
    .ok("tar -cf from the mount");
    run(Command::new("tar")
        .arg("-C")
        .arg(src_parent)
        .arg("--diff")
        .arg("-f")
        .arg(&back))
    .ok("tar --diff of the archive made from the mount against the source");

    drop(m);
}

#[test]
fn untar_usr_include() {
    require_fuse!();
    let inc = Path::new("/usr/include");
    if !inc.join("stdio.h").exists() {
        eprintln!("SKIPPED: /usr/include is not there");
        return;
    }
    untar_and_compare(Path::new("/usr"), &["include"]);
}

#[test]
fn untar_python_stdlib() {
    require_fuse!();
    let entries = python_stdlib_entries(&["test"]);
    let parent = entries[0].parent().unwrap().to_path_buf();
    let names: Vec<String> = entries
        .iter()
        .map(|e| e.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let names: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
    untar_and_compare(&parent, &names);
}

/// Two writers at once: tar -x of /usr/include and cp -a of the Python standard library into
/// the same mount, then both compared with their sources, remounted and compared again.
#[test]
fn concurrent_tar_and_cp() {
    require_fuse!();
    let mut m = Mounted::with_mkfs(&["-s", "2G"]);
    let entries = python_stdlib_entries(&["test"]);
    let inc = Path::new("/usr/include");
    let (tar_parent, tar_names): (PathBuf, Vec<String>) = if inc.join("stdio.h").exists() {
        (PathBuf::from("/usr"), vec!["include".into()])
    } else {
        (
            entries[0].parent().unwrap().to_path_buf(),
            vec!["json".into(), "email".into()],
        )
    };
    fs::create_dir(m.path("tar")).unwrap();
    fs::create_dir(m.path("cp")).unwrap();
    let tar_dst = m.path("tar");
    let cp_dst = m.path("cp");
    let names: Vec<&str> = tar_names.iter().map(|s| s.as_str()).collect();
    let (t, c) = std::thread::scope(|sc| {
        let t = sc.spawn(|| tar_pipe(&tar_parent, &names, &tar_dst));
        let c = sc.spawn(|| cp_a(&entries, &cp_dst));
        (t.join().unwrap(), c.join().unwrap())
    });
    t.ok("tar pipe into the mount");
    c.ok("cp -a into the mount");
    let want_tar = manifest_of_entries(
        &tar_names
            .iter()
            .map(|n| tar_parent.join(n))
            .collect::<Vec<_>>(),
    );
    let want_cp = manifest_of_entries(&entries);
    assert_manifests_equal(
        &want_tar,
        &manifest(&tar_dst),
        Compare::ALL,
        "tar side of concurrent writers",
    );
    assert_manifests_equal(
        &want_cp,
        &manifest(&cp_dst),
        Compare::ALL,
        "cp side of concurrent writers",
    );
    m.remount();
    assert_manifests_equal(
        &want_tar,
        &manifest(&tar_dst),
        Compare::ALL,
        "tar side after remount",
    );
    assert_manifests_equal(
        &want_cp,
        &manifest(&cp_dst),
        Compare::ALL,
        "cp side after remount",
    );
    m.unmount_ok();
    m.assert_fsck_clean();
}
