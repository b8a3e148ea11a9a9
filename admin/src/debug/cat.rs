//! `debug cat PATH`: a file's contents on stdout (debugfs `cat`).

use super::Ctx;
use crate::image::resolve_inode;
use rvmfs::ops::file;
use std::io::Write;

/// Write a file's contents to stdout.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A path or `<INO>`.
    path: String,
}

/// Bytes read at once.
const CHUNK: u64 = 1 << 20;

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    let (ino, node) = match resolve_inode(&ctx.fs, &args.path) {
        Ok(found) => found,
        Err(e) => return Ok(ctx.fail(&args.path, e)),
    };
    let mut out = std::io::stdout().lock();
    let mut at = 0;
    while at < node.size {
        match file::read(&ctx.fs.geo, ctx.fs.bytes(), ino, at, CHUNK) {
            Ok(buf) if buf.is_empty() => break,
            Ok(buf) => {
                out.write_all(&buf)?;
                at += buf.len() as u64;
            }
            Err(e) => return Ok(ctx.fail(&args.path, format!("reading at byte {at}: {e}"))),
        }
    }
    out.flush()?;
    Ok(0)
}
