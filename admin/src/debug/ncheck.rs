//! `debug ncheck INO...`: the paths naming each inode (debugfs `ncheck`), from every entry
//! of the dentry tree (read leaf by leaf, so a damaged node loses only its own entries).

use super::Ctx;
use rvmfs::layout::superblock::ROOT_INO;
use rvmfs::store::dentry::{Dentry, DENTRIES};
use std::collections::HashMap;

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

/// Deepest path followed (deeper means a cycle in damaged metadata).
const MAX_DEPTH: usize = 4096;

/// Every name in the image: child inode -> (directory, name).
pub struct Names(HashMap<u64, Vec<(u64, String)>>);

impl Names {
    /// Read every entry the dentry tree's leaves hold (`Tree::salvage`).
    pub fn read(bytes: &[u8]) -> rvmfs::FsResult<Names> {
        let mut map: HashMap<u64, Vec<(u64, String)>> = HashMap::new();
        for (k, v) in DENTRIES.salvage(bytes)? {
            let d = Dentry::decode(k, v);
            let name = d.name(bytes).map(String::from_utf8_lossy).unwrap_or_default();
            map.entry(d.ino).or_default().push((k.0, name.into_owned()));
        }
        Ok(Names(map))
    }

    /// The path of directory `dir` from the root, if its names lead there.
    fn dir_path(&self, dir: u64) -> Option<String> {
        let mut parts = Vec::new();
        let mut at = dir;
        for _ in 0..MAX_DEPTH {
            if at == ROOT_INO {
                parts.reverse();
                return Some(parts.iter().map(|p| format!("/{p}")).collect());
            }
            let (parent, name) = self.0.get(&at)?.first()?;
            parts.push(name.clone());
            at = *parent;
        }
        None
    }

    /// Every path naming `ino` (the root: "/").
    pub fn paths(&self, ino: u64) -> Vec<String> {
        if ino == ROOT_INO {
            return vec!["/".into()];
        }
        let Some(names) = self.0.get(&ino) else {
            return Vec::new();
        };
        names
            .iter()
            .map(|(dir, name)| match self.dir_path(*dir) {
                Some(p) => format!("{p}/{name}"),
                None => format!("<{dir}>/{name}"),
            })
            .collect()
    }
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    let names = match Names::read(ctx.fs.bytes()) {
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
