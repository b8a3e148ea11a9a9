//! `debug xattrs PATH`: a file's extended attributes (debugfs `ea_list`).

use super::Ctx;
use crate::image::resolve_inode;
use rvmfs::ops::xattr;

/// Print a file's extended attributes.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A path or `<INO>`.
    path: String,
}

#[derive(serde::Serialize)]
struct Xattr {
    name: String,
    len: usize,
    /// The value as text when it is UTF-8, else None (see `hex`).
    value: Option<String>,
    hex: String,
}

/// The extended attributes of `ino` as (name, value); errors as `rvmfs::ops::xattr`.
pub fn read_all(bytes: &[u8], ino: u64) -> rvmfs::FsResult<Vec<(Vec<u8>, Vec<u8>)>> {
    let names = xattr::list(bytes, ino)?;
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        out.push((name.to_vec(), xattr::get(bytes, ino, name)?));
    }
    Ok(out)
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    let (ino, _) = match resolve_inode(&ctx.fs, &args.path) {
        Ok(found) => found,
        Err(e) => return Ok(ctx.fail(&args.path, e)),
    };
    let all = match read_all(ctx.fs.bytes(), ino) {
        Ok(all) => all,
        Err(e) => return Ok(ctx.fail(&args.path, format!("the xattrs cannot be read: {e}"))),
    };
    let list: Vec<Xattr> = all
        .iter()
        .map(|(n, v)| Xattr {
            name: String::from_utf8_lossy(n).into_owned(),
            len: v.len(),
            value: String::from_utf8(v.clone()).ok(),
            hex: v.iter().map(|b| format!("{b:02x}")).collect(),
        })
        .collect();
    if ctx.json {
        ctx.json(&list)?;
        return Ok(0);
    }
    println!("Extended attributes:");
    for x in &list {
        match &x.value {
            Some(v) => println!("  {} ({}) = \"{}\"", x.name, x.len, v.escape_default()),
            None => println!("  {} ({}) = {}", x.name, x.len, x.hex),
        }
    }
    Ok(0)
}
