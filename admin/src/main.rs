//! `rvmfs-admin`: one admin command with subcommands (as btrfs-progs), for what e2fsprogs
//! does in separate tools: `dump` (dumpe2fs), `tune` (tune2fs), ... Each subcommand lives in its own module
//! with `pub struct Args` and `pub fn run(args) -> anyhow::Result<i32>` (the exit code);
//! this file is only the table and the dispatch.

mod dump;
mod exit;
mod resize;
mod tune;

use clap::{Parser, Subcommand};

/// Inspect and administer rvmfs images.
///
/// Exit status (as e2fsprogs): 0 success, 1 error, 8 operational error (the image cannot be
/// opened, or is mounted and the operation refuses a mounted image), 16 usage error.
#[derive(Parser, Debug)]
#[command(name = "rvmfs-admin", version, verbatim_doc_comment)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Dump(dump::Args),
    Tune(tune::Args),
    Resize(resize::Args),
}

fn dispatch(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Dump(args) => dump::run(args),
        Command::Tune(args) => tune::run(args),
        Command::Resize(args) => resize::run(args),
    }
}

fn main() {
    // Die quietly on a closed pipe (`rvmfs-admin dump img | head`), as C tools do.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { exit::OK };
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
