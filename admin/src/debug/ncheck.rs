//! `debug ncheck INO...`: the paths naming each inode (debugfs `ncheck`), from every entry
//! of the dentry tree (`rvmfs::store::names`, read leaf by leaf: a damaged node loses only
//! its own entries).

use super::Ctx;
use rvmfs::store::names::Names;

/// Print the paths of inodes.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Inode numbers.
    #[arg(required = true)]
    inodes: Vec<u64>,
}

#[derive(serde::Serialize)]
struct Named {
    ino: u64,
    path: String,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    let names = match Names::salvage(ctx.fs.bytes()) {
        Ok(n) => n,
        Err(e) => return Ok(ctx.fail("ncheck", format!("the dentry tree cannot be read: {e}"))),
    };
    let mut found = Vec::new();
    let mut missing = 0;
    for &ino in &args.inodes {
        let paths = names.paths(ino);
        if paths.is_empty() {
            missing += 1;
        }
        found.extend(paths.into_iter().map(|path| Named { ino, path }));
    }
    if ctx.json {
        ctx.json(&found)?;
    } else {
        println!("Inode\tPathname");
        for n in &found {
            println!("{}\t{}", n.ino, n.path);
        }
    }
    Ok(if missing > 0 { 1 } else { 0 })
}
