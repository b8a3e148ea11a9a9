//! `debug extents PATH`: a file's extent map (debugfs `extents`/`ex`): logical blocks,
//! physical blocks, length, flags.

use super::Ctx;
use crate::image::resolve_inode;
use rvmfs::store::extent_map::{self, UNWRITTEN};

/// Print a file's extents.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A path or `<INO>`.
    path: String,
}

#[derive(serde::Serialize)]
struct Extent {
    first: u64,
    last: u64,
    physical: u64,
    length: u64,
    unwritten: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    let (ino, _) = match resolve_inode(&ctx.fs, &args.path) {
        Ok(found) => found,
        Err(e) => return Ok(ctx.fail(&args.path, e)),
    };
    let list = match extent_map::all(ctx.fs.bytes(), ino) {
        Ok(list) => list,
        Err(e) => return Ok(ctx.fail(&args.path, format!("the extent map cannot be read: {e}"))),
    };
    let list: Vec<Extent> = list
        .iter()
        .map(|e| Extent {
            first: e.first,
            last: e.last,
            physical: e.phys,
            length: e.len(),
            unwritten: e.flags & UNWRITTEN != 0,
        })
        .collect();
    if ctx.json {
        ctx.json(&list)?;
        return Ok(0);
    }
    println!(
        "{:>12} {:>12} {:>10} Flags",
        "Logical", "Physical", "Length"
    );
    for e in &list {
        println!(
            "{:>12} {:>12} {:>10} {}",
            format!("{}-{}", e.first, e.last),
            format!("{}-{}", e.physical, e.physical + e.length - 1),
            e.length,
            if e.unwritten { "Uninit" } else { "" }
        );
    }
    Ok(0)
}
