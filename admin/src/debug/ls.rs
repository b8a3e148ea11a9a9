//! `debug ls [-l] PATH`: the entries of a directory (debugfs `ls`); `-l` adds inode, mode,
//! links, uid, gid, size and mtime.

use super::Ctx;
use crate::image::{resolve_inode, time};
use rvmfs::ops::lookup;

/// List a directory (or name one file).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Long listing: inode, mode (octal), links, uid, gid, size, mtime, name.
    #[arg(short = 'l')]
    long: bool,
    /// The directory: a path or `<INO>`.
    #[arg(default_value = "/")]
    path: String,
}

#[derive(serde::Serialize)]
struct Entry {
    ino: u64,
    name: String,
    mode: Option<u32>,
    links: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    size: Option<u64>,
    mtime: Option<i64>,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    let (ino, node) = match resolve_inode(&ctx.fs, &args.path) {
        Ok(found) => found,
        Err(e) => return Ok(ctx.fail(&args.path, e)),
    };
    let mut names = Vec::new();
    if node.is_dir() {
        let listed = lookup::readdir(&ctx.fs.geo, ctx.fs.bytes(), ino, 0, |child, _, _, name| {
            names.push((child, String::from_utf8_lossy(name).into_owned()));
            true
        });
        if let Err(e) = listed {
            return Ok(ctx.fail(
                &args.path,
                format!("the directory's entries cannot be read: {e}"),
            ));
        }
    } else {
        names.push((ino, args.path.clone()));
    }
    let entries: Vec<Entry> = names
        .into_iter()
        .map(|(ino, name)| entry(ctx, ino, name))
        .collect();
    if ctx.json {
        ctx.json(&entries)?;
        return Ok(0);
    }
    for e in &entries {
        match (args.long, e.mode) {
            (true, Some(mode)) => println!(
                "{:>8} {:>7o} ({}) {:>6} {:>6} {:>10} {} {}",
                e.ino,
                mode,
                e.links.unwrap_or(0),
                e.uid.unwrap_or(0),
                e.gid.unwrap_or(0),
                e.size.unwrap_or(0),
                time(e.mtime.unwrap_or(0), 0),
                e.name
            ),
            (true, None) => println!("{:>8} (inode unreadable) {}", e.ino, e.name),
            (false, _) => println!("{:>8}  {}", e.ino, e.name),
        }
    }
    Ok(0)
}

fn entry(ctx: &Ctx, ino: u64, name: String) -> Entry {
    let node = ctx.fs.inode(ino).ok();
    Entry {
        ino,
        name,
        mode: node.map(|n| n.mode),
        links: node.map(|n| n.nlink),
        uid: node.map(|n| n.uid),
        gid: node.map(|n| n.gid),
        size: node.map(|n| n.size),
        mtime: node.map(|n| n.mtime),
    }
}
