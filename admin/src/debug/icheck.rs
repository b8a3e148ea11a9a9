//! `debug icheck BLOCK...`: the inode owning each data block (debugfs `icheck`), from every
//! extent of the extent tree.

use super::Ctx;
use rvmfs::store::extent_map::{Extent, EXTENTS};
use std::collections::BTreeMap;

/// Print the owners of data blocks.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Physical data block numbers (block 0 is the first of the data area).
    #[arg(required = true)]
    blocks: Vec<u64>,
}

#[derive(serde::Serialize)]
struct Owner {
    block: u64,
    ino: Option<u64>,
    /// The file block it holds.
    file_block: Option<u64>,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    let entries = match EXTENTS.salvage(ctx.fs.bytes()) {
        Ok(e) => e,
        Err(e) => return Ok(ctx.fail("icheck", format!("the extent tree cannot be read: {e}"))),
    };
    // First physical block -> (extent, inode).
    let by_phys: BTreeMap<u64, (Extent, u64)> = entries
        .into_iter()
        .map(|(k, v)| (Extent::decode(k, v), k.0))
        .map(|(e, ino)| (e.phys, (e, ino)))
        .collect();
    let owners: Vec<Owner> = args
        .blocks
        .iter()
        .map(|&block| {
            let hit = by_phys
                .range(..=block)
                .next_back()
                .filter(|(phys, (e, _))| block < *phys + e.len());
            Owner {
                block,
                ino: hit.map(|(_, (_, ino))| *ino),
                file_block: hit.map(|(phys, (e, _))| e.first + (block - phys)),
            }
        })
        .collect();
    if ctx.json {
        ctx.json(&owners)?;
    } else {
        println!("Block\tInode number");
        for o in &owners {
            match o.ino {
                Some(ino) => println!("{}\t{ino}", o.block),
                None => println!("{}\t<block not found>", o.block),
            }
        }
    }
    Ok(0)
}
