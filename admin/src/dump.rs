//! `rvmfs-admin dump IMAGE`: print what an image's header, superblock and redo log say,
//! without mounting it (as dumpe2fs / xfs_info). Read-only: the log is replayed in memory,
//! nothing is written, and a mounted image is shown too (its state on disk).

mod info;
mod text;

use crate::exit;
use clap::ArgAction;
use std::path::PathBuf;

pub use info::Info;

/// Print an image's header, geometry, features, counters, error state, log status and free
/// space (dumpe2fs).
///
/// The image is opened read-only: the redo log is replayed in memory only and nothing is
/// written. A mounted image can be dumped too; what it shows is then the state on disk,
/// which the daemon may be changing (commits still in its spool are included).
///
/// Exit status: 0 success, 8 the image cannot be opened or read, 16 usage error.
#[derive(clap::Args, Debug)]
#[command(disable_help_flag = true, verbatim_doc_comment)]
pub struct Args {
    /// Print the header only (dumpe2fs -h): geometry, label, UUID, features, counters, no
    /// log or free-space details.
    #[arg(short = 'h', long = "header")]
    pub header_only: bool,
    /// Print the data as one JSON object (the same fields, times as seconds since the epoch).
    #[arg(long = "json")]
    pub json: bool,
    /// The image's external log, if it is no longer where the image records it.
    #[arg(short = 'l', long = "logdev", value_name = "LOGDEV")]
    pub logdev: Option<PathBuf>,
    /// Print help.
    #[arg(long = "help", action = ArgAction::Help)]
    help: Option<bool>,
    /// The image file or block device.
    pub image: PathBuf,
}

impl Args {
    /// `dump -h IMAGE` (for `tune -l`).
    pub fn header_of(image: PathBuf) -> Args {
        Args {
            header_only: true,
            json: false,
            logdev: None,
            help: None,
            image,
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let info = match Info::gather(&args.image, args.header_only, args.logdev.clone()) {
        Ok(info) => info,
        Err(info::Failed::Open(e)) => return Ok(exit::open_failed("dump", &args.image, &e)),
        Err(info::Failed::Read(what)) => {
            exit::say("dump", &args.image, what);
            return Ok(exit::OPERATIONAL);
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        text::print(&info);
    }
    Ok(exit::OK)
}
