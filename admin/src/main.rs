//! `rvmfs-admin`: one admin command with subcommands (as btrfs-progs), for what e2fsprogs
//! does in separate tools: `dump` (dumpe2fs), `tune` (tune2fs), `resize` (resize2fs,
//! xfs_growfs), `logdump` (debugfs logdump, Coda's rvmutl), `debug` (debugfs), `rdump`
//! (debugfs rdump), `stats` (juicefs stats, iostat: a mounted rvmfs, live), `restore`
//! (litestream restore: an image from its shipped log in a bucket). Each subcommand
//! lives in its own module with `pub struct Args` and `pub fn run(args) -> anyhow::Result<i32>`
//! (the exit code); this file is only the table and the dispatch.

mod debug;
mod dump;
mod exit;
mod image;
mod logdump;
mod rdump;
mod resize;
mod restore;
mod restore_log;
mod stats;
mod tune;

use clap::{Parser, Subcommand};

/// Inspect and administer rvmfs images.
///
/// One command with a subcommand for each tool: dump (the header, geometry and counters),
/// tune (label, UUID, stored mount defaults), resize (grow offline or mounted, shrink
/// offline), logdump (the redo log's records), debug
/// (debugfs's ls, stat, cat, extents, xattrs, ncheck, icheck), rdump (copy a subtree out
/// of an image, also one that no longer mounts), stats (what a mounted rvmfs does, once
/// a second) and restore (an image rebuilt from its redo log shipped to a bucket).
#[derive(Parser, Debug)]
#[command(name = "rvmfs-admin", version, verbatim_doc_comment)]
#[command(after_long_help = include_str!("after_help.txt"))]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Dump(dump::Args),
    Tune(tune::Args),
    Resize(resize::Args),
    Logdump(logdump::Args),
    Debug(debug::Args),
    Rdump(rdump::Args),
    Stats(stats::Args),
    Restore(restore::Args),
}

fn dispatch(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Dump(args) => dump::run(args),
        Command::Tune(args) => tune::run(args),
        Command::Resize(args) => resize::run(args),
        Command::Logdump(args) => logdump::run(args),
        Command::Debug(args) => debug::run(args),
        Command::Rdump(args) => rdump::run(args),
        Command::Stats(args) => stats::run(args),
        Command::Restore(args) => restore::run(args),
    }
}

fn main() {
    cli_docs::generate_if_asked::<Cli>();
    // Die quietly on a closed pipe (`rvmfs-admin dump img | head`), as C tools do.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let code = dispatch(cli.command).unwrap_or_else(|e| {
        eprintln!("rvmfs-admin: {e:#}");
        exit::ERROR
    });
    std::process::exit(code);
}
