//! `rvmfs-admin debug` (issue 13, item 5): ls -l, stat, cat, extents, xattrs, ncheck and
//! icheck on an image filled through a real mount (`cp -a` of [`small_tree`]) agree with what
//! was written; errors name the image and the path with e2fsprogs' exit codes; a mounted
//! image can be looked at (its log replayed in memory) with a warning.

use rvmfs_tests::*;
use serde_json::Value;
use std::fs;
use std::os::unix::fs::MetadataExt;

/// An unmounted image holding a copy of [`small_tree`] (also returned, as the original).
fn filled() -> (Mounted, tempfile::TempDir) {
    let src = tempfile::tempdir().unwrap();
    small_tree(src.path());
    let mut m = Mounted::with_mkfs(&["-s", "256M"]);
    cp_a(&[src.path().join("d"), src.path().join("big.bin")], m.mnt()).ok("cp -a into rvmfs");
    m.unmount_ok();
    (m, src)
}

fn debug(m: &Mounted, args: &[&str]) -> Outcome {
    let image = m.image().to_str().unwrap().to_string();
    let mut all = vec!["debug", image.as_str()];
    all.extend_from_slice(args);
    admin(&all)
}

fn debug_json(m: &Mounted, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let o = debug(m, &all).ok(&format!("debug --json {}", args.join(" ")));
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", o.stdout))
}

#[test]
fn ls_stat_cat_xattrs_agree_with_what_was_written() {
    require_fuse!();
    let (m, src) = filled();
    let o = debug(&m, &["ls", "-l", "/d"]).ok("debug ls -l /d");
    for name in ["file.txt", "link", "sym", "fifo", "sub"] {
        let md = fs::symlink_metadata(src.path().join("d").join(name)).unwrap();
        let line = o
            .stdout
            .lines()
            .find(|l| l.split_whitespace().last() == Some(name))
            .unwrap_or_else(|| panic!("{name} missing from ls -l:\n{}", o.stdout));
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f[1], format!("{:o}", md.mode()), "mode of {name}: {line}");
        assert_eq!(f[2], format!("({})", md.nlink()), "links of {name}: {line}");
        assert_eq!(
            (f[3], f[4]),
            (md.uid().to_string().as_str(), md.gid().to_string().as_str()),
            "{line}"
        );
        if !md.is_dir() {
            assert_eq!(f[5], md.len().to_string(), "size of {name}: {line}");
        }
        let when = jiff_like(md.mtime());
        assert_eq!(
            format!("{} {}", f[6], f[7]),
            when,
            "mtime of {name}: {line}"
        );
    }
    let st = debug_json(&m, &["stat", "/d/file.txt"]);
    assert_eq!(st["size"], 21);
    assert_eq!(st["links"], 2);
    assert_eq!(
        (st["uid"].as_u64(), st["gid"].as_u64()),
        (Some(1001), Some(1002))
    );
    assert_eq!(st["mtime"][0], 1_500_000_000);
    assert_eq!(st["mtime"][1], 123_456_789);
    let sym = debug_json(&m, &["stat", "/d/sym"]);
    assert_eq!(sym["target"], "file.txt");
    let ino = st["ino"].as_u64().unwrap();
    let text = debug(&m, &["stat", &format!("<{ino}>")]).ok("stat <INO>");
    assert!(
        text.stdout
            .contains(&format!("Inode: {ino}   Type: regular")),
        "{}",
        text.stdout
    );
    let cat = cmd(
        bin(ADMIN),
        &[
            "debug",
            m.image().to_str().unwrap(),
            "cat",
            "/d/sub/deep.bin",
        ],
    )
    .output()
    .unwrap();
    assert!(
        cat.status.success(),
        "{}",
        String::from_utf8_lossy(&cat.stderr)
    );
    assert!(
        cat.stdout == pattern(7, 200 << 10),
        "cat of deep.bin differs"
    );
    let x = debug_json(&m, &["xattrs", "/d/file.txt"]);
    let got: Vec<(String, String)> = x
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["hex"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = xattrs_of(&src.path().join("d/file.txt"))
        .into_iter()
        .map(|(n, v)| (n, v.iter().map(|b| format!("{b:02x}")).collect()))
        .collect();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    assert_eq!(got_sorted, want, "xattrs of file.txt");
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of `sec`, computed with `date`, the ordinary program.
fn jiff_like(sec: i64) -> String {
    let o = run(&mut cmd(
        "date",
        &["-u", "-d", &format!("@{sec}"), "+%Y-%m-%d %H:%M:%S"],
    ))
    .ok("date");
    o.stdout.trim().to_string()
}

#[test]
fn extents_icheck_and_ncheck_map_blocks_and_names_both_ways() {
    require_fuse!();
    let (m, _src) = filled();
    let big = debug_json(&m, &["stat", "/big.bin"])["ino"]
        .as_u64()
        .unwrap();
    let extents = debug_json(&m, &["extents", "/big.bin"]);
    let extents = extents.as_array().unwrap();
    let mapped: u64 = extents.iter().map(|e| e["length"].as_u64().unwrap()).sum();
    assert_eq!(
        mapped,
        ((1u64 << 20) + 7).div_ceil(4096),
        "blocks mapped: {extents:?}"
    );
    let first = extents[0]["physical"].as_u64().unwrap().to_string();
    let last_e = &extents[extents.len() - 1];
    let last =
        (last_e["physical"].as_u64().unwrap() + last_e["length"].as_u64().unwrap() - 1).to_string();
    let owners = debug_json(&m, &["icheck", &first, &last, "999999"]);
    assert_eq!(owners[0]["ino"], big, "{owners}");
    assert_eq!(owners[1]["ino"], big, "{owners}");
    assert!(owners[2]["ino"].is_null(), "{owners}");
    let file = debug_json(&m, &["stat", "/d/link"])["ino"]
        .as_u64()
        .unwrap();
    let o = debug(&m, &["ncheck", &file.to_string(), &big.to_string()]).ok("ncheck");
    for want in [
        format!("{file}\t/d/file.txt"),
        format!("{file}\t/d/link"),
        format!("{big}\t/big.bin"),
    ] {
        assert!(
            o.stdout.lines().any(|l| l == want),
            "ncheck lacks {want:?}:\n{}",
            o.stdout
        );
    }
}

#[test]
fn errors_name_image_and_path_with_e2fsprogs_exit_codes() {
    require_fuse!();
    let (m, _src) = filled();
    let o = debug(&m, &["stat", "/d/nope"]);
    assert_eq!(o.code(), 1, "{}", o.output());
    let want = format!("rvmfs-admin debug: {}: /d/nope: ", m.image().display());
    assert!(o.stderr.contains(&want), "{}", o.stderr);
    let o = admin(&["debug", "/nonexistent/image", "ls", "/"]);
    assert_eq!(o.code(), 8, "{}", o.output());
    assert!(
        o.stderr.contains("rvmfs-admin debug: /nonexistent/image:"),
        "{}",
        o.stderr
    );
    let o = debug(&m, &["frobnicate"]);
    assert_eq!(o.code(), 16, "{}", o.output());
}

#[test]
fn a_mounted_image_is_read_with_its_log_replayed_and_a_warning() {
    require_fuse!();
    let (mut m, _src) = filled();
    m.mount();
    let f = fs::File::create(m.path("fresh")).unwrap();
    std::io::Write::write_all(&mut &f, b"new data").unwrap();
    f.sync_all().unwrap();
    let o = debug(&m, &["ls", "/"]).ok("debug ls / while mounted");
    assert!(
        o.stdout.lines().any(|l| l.ends_with(" fresh")),
        "{}",
        o.stdout
    );
    assert!(o.stderr.contains("mounted"), "{}", o.stderr);
    let cat = debug(&m, &["cat", "/fresh"]).ok("cat while mounted");
    assert_eq!(cat.stdout, "new data");
}
