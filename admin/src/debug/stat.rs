//! `debug stat PATH|<INO>`: an inode's fields, as debugfs `stat` prints them.

use super::Ctx;
use crate::image::{resolve_inode, time};
use rvmfs::layout::inode::Inode;
use rvmfs::ops::lookup;
use rvmfs::store::extent_map;

/// Print an inode.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A path or `<INO>`.
    path: String,
}

#[derive(serde::Serialize)]
struct Stat {
    ino: u64,
    kind: &'static str,
    mode: u32,
    flags: u32,
    generation: u64,
    uid: u32,
    gid: u32,
    size: u64,
    links: u32,
    blocks: u64,
    rdev: u32,
    atime: (i64, u32),
    mtime: (i64, u32),
    ctime: (i64, u32),
    crtime: (i64, u32),
    parent: Option<u64>,
    target: Option<String>,
    extents: Vec<(u64, u64, u64)>,
}

/// The file type of `node` in words.
pub fn kind(node: &Inode) -> &'static str {
    match node.kind() {
        libc::S_IFREG => "regular",
        libc::S_IFDIR => "directory",
        libc::S_IFLNK => "symlink",
        libc::S_IFCHR => "character special",
        libc::S_IFBLK => "block special",
        libc::S_IFIFO => "FIFO",
        libc::S_IFSOCK => "socket",
        _ => "unknown",
    }
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    let (ino, n) = match resolve_inode(&ctx.fs, &args.path) {
        Ok(found) => found,
        Err(e) => return Ok(ctx.fail(&args.path, e)),
    };
    let bytes = ctx.fs.bytes();
    let extents = match extent_map::all(bytes, ino) {
        Ok(list) => list.iter().map(|e| (e.first, e.last, e.phys)).collect(),
        Err(e) => return Ok(ctx.fail(&args.path, format!("the extent map cannot be read: {e}"))),
    };
    let target = n
        .is_symlink()
        .then(|| {
            lookup::readlink(&ctx.fs.geo, bytes, ino)
                .map(|t| String::from_utf8_lossy(&t).into_owned())
        })
        .transpose();
    let target = match target {
        Ok(t) => t,
        Err(e) => {
            return Ok(ctx.fail(
                &args.path,
                format!("the symlink target cannot be read: {e}"),
            ))
        }
    };
    let s = Stat {
        ino,
        kind: kind(&n),
        mode: n.mode,
        flags: n.flags,
        generation: n.generation,
        uid: n.uid,
        gid: n.gid,
        size: n.size,
        links: n.nlink,
        blocks: n.blocks,
        rdev: n.rdev,
        atime: (n.atime, n.atime_ns),
        mtime: (n.mtime, n.mtime_ns),
        ctime: (n.ctime, n.ctime_ns),
        crtime: (n.crtime, n.crtime_ns),
        parent: n.is_dir().then_some(n.parent_or_target),
        target,
        extents,
    };
    if ctx.json {
        ctx.json(&s)?;
    } else {
        print(&s);
    }
    Ok(0)
}

fn print(s: &Stat) {
    println!(
        "Inode: {}   Type: {}    Mode:  {:04o}   Flags: {:#x}",
        s.ino,
        s.kind,
        s.mode & 0o7777,
        s.flags
    );
    println!("Generation: {}", s.generation);
    println!(
        "User: {:>5}   Group: {:>5}   Size: {}",
        s.uid, s.gid, s.size
    );
    println!(
        "Links: {}   Blockcount: {}   Device: {}",
        s.links, s.blocks, s.rdev
    );
    for (name, (sec, ns)) in [
        ("ctime", s.ctime),
        ("atime", s.atime),
        ("mtime", s.mtime),
        ("crtime", s.crtime),
    ] {
        println!("{name:>6}: {sec:#010x}:{ns:08x} -- {}", time(sec, ns));
    }
    if let Some(p) = s.parent {
        println!("Parent: {p}");
    }
    if let Some(t) = &s.target {
        println!("Fast link dest: \"{t}\"");
    }
    if !s.extents.is_empty() {
        let list: Vec<String> = s
            .extents
            .iter()
            .map(|(first, last, phys)| match first == last {
                true => format!("({first}):{phys}"),
                false => format!("({first}-{last}):{phys}-{}", phys + (last - first)),
            })
            .collect();
        println!("EXTENTS:\n{}", list.join(", "));
    }
}
