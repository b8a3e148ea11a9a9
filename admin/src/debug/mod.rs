//! `rvmfs-admin debug IMAGE CMD ...`: look inside an image as debugfs does (`ls`, `stat`,
//! `cat`, `extents`, `xattrs`, `ncheck`, `icheck`), one module per command. Read-only.

mod cat;
mod extents;
mod icheck;
mod ls;
mod ncheck;
mod stat;
pub mod xattrs;

use crate::exit;
use crate::image::open_fs;
use rvmfs::ops::Fs;
use std::path::PathBuf;

/// Look inside an rvmfs image (debugfs's commands), read-only.
///
/// Files are named by a path from the root of the image (`/dir/file`) or by inode number
/// in angle brackets (`'<12>'`), as in debugfs. The image is opened O_RDONLY with its log
/// replayed in memory (as `fsck.rvmfs -n`), so nothing is written; it may be mounted, and
/// what this shows may then lag the daemon.
///
/// Exit status: 0 success, 1 a file is absent or its metadata is damaged, 8 operational
/// error (the image cannot be opened), 16 usage error.
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Print the output as JSON where it is data (ls, stat, extents, xattrs, ncheck, icheck).
    #[arg(long, global = true)]
    json: bool,
    /// The image file.
    image: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand, Debug)]
enum Cmd {
    Ls(ls::Args),
    Stat(stat::Args),
    Cat(cat::Args),
    Extents(extents::Args),
    Xattrs(xattrs::Args),
    Ncheck(ncheck::Args),
    Icheck(icheck::Args),
}

/// What a command has to work with: the image, its name for messages, the output form.
pub struct Ctx {
    pub fs: Fs,
    pub image: PathBuf,
    pub json: bool,
}

impl Ctx {
    /// Say `rvmfs-admin debug: IMAGE: SPEC: what` and return exit code 1.
    pub fn fail(&self, spec: &str, what: impl std::fmt::Display) -> i32 {
        exit::say("debug", &self.image, format!("{spec}: {what}"));
        exit::ERROR
    }

    /// Print `value` as JSON (pretty).
    pub fn json(&self, value: &impl serde::Serialize) -> anyhow::Result<()> {
        println!("{}", serde_json::to_string_pretty(value)?);
        Ok(())
    }
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let fs = match open_fs("debug", &args.image) {
        Ok(fs) => fs,
        Err(code) => return Ok(code),
    };
    let ctx = Ctx {
        fs,
        image: args.image,
        json: args.json,
    };
    match args.cmd {
        Cmd::Ls(a) => ls::run(&ctx, a),
        Cmd::Stat(a) => stat::run(&ctx, a),
        Cmd::Cat(a) => cat::run(&ctx, a),
        Cmd::Extents(a) => extents::run(&ctx, a),
        Cmd::Xattrs(a) => xattrs::run(&ctx, a),
        Cmd::Ncheck(a) => ncheck::run(&ctx, a),
        Cmd::Icheck(a) => icheck::run(&ctx, a),
    }
}
