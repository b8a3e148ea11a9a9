//! `rvmfs-admin tune IMAGE`: change an image's label, UUID, default mount options, default
//! commit interval, error policy and root reserve (tune2fs). Every superblock change is one
//! RVM transaction through the rvmfs library, flushed and truncated into the region; the
//! UUID, which lives in the header, is rewritten after that (its old spool is then empty and
//! removed). Refuses a mounted image, except for `-l` alone, which only reads.

use crate::exit;
use rvmfs::image::{self, ImageError, OpenMode};
use rvmfs::layout::pod;
use rvmfs::layout::superblock::{self as sb, field, ERRORS_NAMES, MOUNT_OPTS_LEN};
use rvmfs::ops::Fs;
use std::path::PathBuf;

/// Change an image's label, UUID, stored mount defaults and error policy (tune2fs).
///
/// The image must not be mounted (exit 8 if it is), except with -l alone. All the changes
/// asked for are made in one transaction of the metadata region, made durable and applied
/// before tune exits; -U then rewrites the header, and the image's spool file (named by the
/// UUID, empty at that point) is removed. With -l, prints the header as `dump -h` does, after
/// the changes.
///
/// Exit status: 0 success, 1 a change failed, 8 the image cannot be opened or is mounted,
/// 16 usage error.
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Set the volume label (at most 32 bytes; "" clears it).
    #[arg(short = 'L', value_name = "LABEL", value_parser = sb::parse_label)]
    pub label: Option<[u8; sb::LABEL_LEN]>,
    /// Set the UUID: a UUID, or random, time or clear (offline only).
    #[arg(short = 'U', value_name = "UUID", value_parser = rvmfs::layout::header::parse_uuid)]
    pub uuid: Option<uuid::Uuid>,
    /// Set the default mount options, comma-separated as after `rvmfs -o` (at most 64 bytes;
    /// "" clears them). The daemon applies them before the command line's; ro, rw and
    /// inject_fault can only be given on the command line.
    #[arg(short = 'o', value_name = "OPTIONS", value_parser = parse_mount_opts)]
    pub mount_opts: Option<[u8; MOUNT_OPTS_LEN]>,
    /// Set the default commit interval, seconds (0: the daemon's default, 5), used when the
    /// mount command line has no commit=.
    #[arg(short = 'c', long = "commit", value_name = "SECONDS")]
    pub commit: Option<u32>,
    /// Set the error policy: continue, remount-ro or panic (`-o errors=` overrides it).
    #[arg(short = 'e', value_name = "POLICY", value_parser = parse_errors)]
    pub errors: Option<u32>,
    /// Set the percentage of data blocks reserved for root (0 to 50, as tune2fs -m).
    #[arg(short = 'm', value_name = "PERCENT", value_parser = parse_percent)]
    pub reserved_permille: Option<u64>,
    /// Print the header (as `dump -h`), after any change.
    #[arg(short = 'l')]
    pub list: bool,
    /// The image file or block device (not mounted).
    pub image: PathBuf,
}

impl Args {
    fn changes_superblock(&self) -> bool {
        self.label.is_some()
            || self.mount_opts.is_some()
            || self.commit.is_some()
            || self.errors.is_some()
            || self.reserved_permille.is_some()
    }
}

fn parse_mount_opts(s: &str) -> Result<[u8; MOUNT_OPTS_LEN], String> {
    rvmfs::options::check_stored(s)?;
    sb::to_text_field(s)
        .ok_or_else(|| format!("'{s}' is {} bytes; at most {MOUNT_OPTS_LEN}", s.len()))
}

fn parse_errors(s: &str) -> Result<u32, String> {
    ERRORS_NAMES
        .iter()
        .position(|n| *n == s)
        .map(|i| i as u32 + 1)
        .ok_or_else(|| format!("'{s}' is not an error policy (continue, remount-ro, panic)"))
}

fn parse_percent(s: &str) -> Result<u64, String> {
    match s.trim().parse::<f64>() {
        Ok(p) if (0.0..=50.0).contains(&p) => Ok((p * 10.0).round() as u64),
        _ => Err(format!("'{s}' is not a percentage between 0 and 50")),
    }
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    if args.changes_superblock() || args.uuid.is_some() {
        if let Some(code) = change(&args) {
            return Ok(code);
        }
    } else if !args.list {
        exit::say(
            "tune",
            &args.image,
            "nothing to change (see rvmfs-admin tune --help)",
        );
        return Ok(exit::USAGE);
    }
    if args.list {
        let dump = crate::dump::Args::header_of(args.image.clone());
        return crate::dump::run(dump);
    }
    Ok(exit::OK)
}

/// Make the changes; None on success, else the exit code after saying what went wrong.
fn change(args: &Args) -> Option<i32> {
    let mode = OpenMode {
        read_only: false,
        ..OpenMode::default()
    };
    let img = match image::open(&args.image, mode) {
        Ok(img) => img,
        Err(e @ ImageError::Busy { .. }) => {
            exit::open_failed("tune", &args.image, &e);
            exit::say(
                "tune",
                &args.image,
                "unmount it first: tune changes only an unmounted image",
            );
            return Some(exit::OPERATIONAL);
        }
        Err(e) => return Some(exit::open_failed("tune", &args.image, &e)),
    };
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        exit::say("tune", &args.image, format!("{what}: {e}"));
        Some(exit::ERROR)
    };
    if args.uuid.is_some() && img.log_device.is_some() {
        // Two headers on two devices cannot change in one atomic write: a crash between them
        // would leave the image and its log refusing each other.
        let why =
            "the image has an external log: -U cannot change its UUID (the log is bound to it)";
        exit::say("tune", &args.image, why);
        return Some(exit::OPERATIONAL);
    }
    let mut fs = match Fs::new(img.region, img.rvm, img.header, img.storage) {
        Ok(fs) => fs,
        Err(e) => return failed("reading the superblock", &e),
    };
    if let Err(e) = write_superblock(&mut fs, args) {
        return failed("changing the superblock", &e);
    }
    if let Some(uuid) = args.uuid {
        if let Err(e) = set_uuid(&mut fs, uuid) {
            return failed("writing the new UUID to the header", &e);
        }
    }
    None
}

/// One transaction with every superblock change asked for, then flushed and truncated into
/// the region (the image is left with an empty log, as after a clean unmount).
fn write_superblock(fs: &mut Fs, args: &Args) -> rvmfs::FsResult<()> {
    fs.transact_on("tune", 0, |op| {
        if let Some(label) = &args.label {
            pod::put(&mut op.tx, field::LABEL, label)?;
        }
        if let Some(opts) = &args.mount_opts {
            pod::put(&mut op.tx, field::MOUNT_OPTS, opts)?;
        }
        if let Some(secs) = &args.commit {
            pod::put(&mut op.tx, field::COMMIT_INTERVAL, secs)?;
        }
        if let Some(policy) = &args.errors {
            pod::put(&mut op.tx, field::ERRORS, policy)?;
        }
        if let Some(permille) = args.reserved_permille {
            let blocks = op.superblock()?.data_blocks * permille / 1000;
            pod::put(&mut op.tx, field::RESERVED_BLOCKS, &blocks)?;
        }
        Ok(())
    })?;
    fs.rvm.flush()?;
    fs.rvm.truncate()?;
    Ok(())
}

/// Rewrite the header with `uuid` (the log is empty: `write_superblock` truncated it), then
/// remove the spool file named by the old UUID: its records are all in the region now, and
/// the next mount looks for the new name.
fn set_uuid(fs: &mut Fs, uuid: uuid::Uuid) -> std::io::Result<()> {
    let old_spool = image::spool_path(&fs.header);
    let mut header = fs.header;
    header.uuid = *uuid.as_bytes();
    image::write_header(&*fs.geo.image, &header)?;
    fs.header = header;
    match old_spool.filter(|p| image::spool_path(&header).as_ref() != Some(p)) {
        Some(path) => match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
        None => Ok(()),
    }
}
