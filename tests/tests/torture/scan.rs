//! Reading the real tree under the mount ([`scan`]: types, contents, modes, link counts,
//! inode numbers, xattrs) and its differences from a model ([`differences`], [`torn_write`]).

use crate::execute::cpath;
use crate::model::{join, Body, Ino, MNode, Model};
use crate::ops::Op;
use rvmfs_tests::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

#[derive(Debug)]
pub struct Seen {
    pub body: Body,
    pub perm: u32,
    pub nlink: u64,
    pub ino: u64,
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

fn xattr_list(path: &Path) -> io::Result<BTreeMap<String, Vec<u8>>> {
    let c = cpath(path);
    let mut out = BTreeMap::new();
    // SAFETY: size query with a null buffer.
    let n = unsafe { libc::llistxattr(c.as_ptr(), std::ptr::null_mut(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; n as usize + 1];
    // SAFETY: a buffer of buf.len() bytes.
    let n = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    for name in buf[..n as usize]
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
    {
        let cn = CString::new(name).unwrap();
        let mut val = vec![0u8; 70_000];
        // SAFETY: a buffer of val.len() bytes.
        let v =
            unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), val.as_mut_ptr().cast(), val.len()) };
        if v < 0 {
            return Err(io::Error::last_os_error());
        }
        val.truncate(v as usize);
        out.insert(String::from_utf8_lossy(name).into_owned(), val);
    }
    Ok(out)
}

pub fn scan(root: &Path, rel: &str, out: &mut BTreeMap<String, Seen>) {
    let dir = root.join(rel);
    let rd = fs::read_dir(&dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()));
    for ent in rd {
        let ent = ent.unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()));
        let name = ent.file_name().into_string().expect("UTF-8 name");
        let r = join(rel, &name);
        let p = root.join(&r);
        let md = fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()));
        let ft = md.file_type();
        let body = if ft.is_file() {
            Body::File(fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())))
        } else if ft.is_dir() {
            Body::Dir(BTreeMap::new())
        } else if ft.is_symlink() {
            Body::Symlink(
                fs::read_link(&p)
                    .unwrap()
                    .into_os_string()
                    .into_string()
                    .unwrap(),
            )
        } else {
            panic!("{}: unexpected file type {:o}", p.display(), md.mode());
        };
        let xattrs = xattr_list(&p).unwrap_or_else(|e| panic!("listxattr {}: {e}", p.display()));
        let is_dir = ft.is_dir();
        out.insert(
            r.clone(),
            Seen {
                body,
                perm: md.mode() & 0o7777,
                nlink: md.nlink(),
                ino: md.ino(),
                xattrs,
            },
        );
        if is_dir {
            scan(root, &r, out);
        }
    }
}

/// Differences between the model and the scanned tree, one line each.
pub fn differences(m: &Model, seen: &BTreeMap<String, Seen>) -> Vec<String> {
    let mut diffs = Vec::new();
    let mut ino_map: HashMap<Ino, u64> = HashMap::new();
    let mut real_map: HashMap<u64, Ino> = HashMap::new();
    let mut want_paths = BTreeSet::new();
    for (path, ino) in m.entries() {
        want_paths.insert(path.clone());
        let n = m.node(ino);
        let Some(s) = seen.get(&path) else {
            diffs.push(format!("missing: {path:?} ({})", kind_name(&n.body)));
            continue;
        };
        if !entry_differences(m, &path, n, s, &mut diffs) {
            continue;
        }
        // Hard links: the same model inode is the same real inode, and different ones differ.
        if let Some(&r) = ino_map.get(&ino) {
            if r != s.ino {
                diffs.push(format!(
                    "{path:?}: hard link to model inode {ino} is real inode {} instead of {r}",
                    s.ino
                ));
            }
        } else {
            ino_map.insert(ino, s.ino);
            if let Some(other) = real_map.insert(s.ino, ino) {
                diffs.push(format!(
                    "{path:?}: real inode {} also holds model inode {other}",
                    s.ino
                ));
            }
        }
    }
    for p in seen.keys() {
        if !want_paths.contains(p) {
            diffs.push(format!("unexpected: {p:?} ({})", kind_name(&seen[p].body)));
        }
    }
    diffs
}

/// Differences of one entry's type, content, mode, link count and xattrs, appended to
/// `diffs`; `false` when the types differ (nothing else is compared then).
fn entry_differences(m: &Model, path: &str, n: &MNode, s: &Seen, diffs: &mut Vec<String>) -> bool {
    match (&n.body, &s.body) {
        (Body::File(w), Body::File(g)) => {
            if let Some(d) = bytes_diff(g, w) {
                diffs.push(format!("{path:?}: content: {d}"));
            }
        }
        (Body::Dir(_), Body::Dir(_)) => {}
        (Body::Symlink(w), Body::Symlink(g)) => {
            if w != g {
                diffs.push(format!("{path:?}: symlink target want {w:?} got {g:?}"));
            }
        }
        (w, g) => {
            diffs.push(format!(
                "{path:?}: want a {}, got a {}",
                kind_name(w),
                kind_name(g)
            ));
            return false;
        }
    }
    if n.perm != s.perm {
        diffs.push(format!("{path:?}: mode want {:o} got {:o}", n.perm, s.perm));
    }
    let want_nlink = match &n.body {
        Body::Dir(c) => 2 + c.values().filter(|&&i| m.is_dir(i)).count() as u64,
        _ => n.nlink as u64,
    };
    if want_nlink != s.nlink {
        diffs.push(format!("{path:?}: nlink want {want_nlink} got {}", s.nlink));
    }
    if n.xattrs != s.xattrs {
        let show = |x: &BTreeMap<String, Vec<u8>>| {
            x.iter()
                .map(|(k, v)| format!("{k}={}B", v.len()))
                .collect::<Vec<_>>()
                .join(",")
        };
        diffs.push(format!(
            "{path:?}: xattrs want [{}] got [{}]",
            show(&n.xattrs),
            show(&s.xattrs)
        ));
    }
    true
}

fn kind_name(b: &Body) -> &'static str {
    match b {
        Body::File(_) => "file",
        Body::Dir(_) => "directory",
        Body::Symlink(_) => "symlink",
    }
}

/// Diagnosis of a failure: is the tree `before` except that the file an unanswered write
/// went to kept its old size but holds some of the new bytes (written in place before the
/// daemon died and before its transaction committed)? Returns that model and a description.
pub fn torn_write(
    before: &Model,
    op: &Op,
    ino: Ino,
    seen: &BTreeMap<String, Seen>,
) -> Option<(Model, String)> {
    let Op::Write { off, len, seed, .. } = op else {
        return None;
    };
    let Body::File(old) = &before.nodes.get(&ino)?.body else {
        return None;
    };
    let new = pattern(*seed, *len as usize);
    // The file's contents as seen through any of its names.
    let path = before.entries().into_iter().find(|(_, i)| *i == ino)?.0;
    let Body::File(got) = &seen.get(&path)?.body else {
        return None;
    };
    if got.len() != old.len() {
        return None;
    }
    let (mut changed, mut first, mut last) = (0u64, u64::MAX, 0u64);
    for (i, (&g, &o)) in got.iter().zip(old.iter()).enumerate() {
        let i = i as u64;
        let in_range = i >= *off && i < off + len;
        if g != o {
            if !(in_range && g == new[(i - off) as usize]) {
                return None;
            }
            changed += 1;
            first = first.min(i);
            last = i;
        }
    }
    let mut m = before.clone();
    *m.file_data(ino) = got.clone();
    if !differences(&m, seen).is_empty() {
        return None;
    }
    let overlap = (off + len).min(old.len() as u64).saturating_sub(*off);
    let how = format!(
        "{path:?} kept its old size {} (the write would make it {}) but {changed} of the {overlap} bytes it \
         overwrote in place are new (offsets {first}..={last})",
        old.len(),
        old.len().max((off + len) as usize)
    );
    Some((m, how))
}
