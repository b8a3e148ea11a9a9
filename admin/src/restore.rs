//! `rvmfs-admin restore s3://BUCKET/PREFIX IMAGE`: build an image from the bucket alone
//! (docs/format.md section 11.8): the newest complete snapshot at or before the target,
//! then the shipped redo-log segments replayed up to it. The new image gets the shipped
//! header (UUID, geometry), the rebuilt metadata region, and an empty log whose first Lsn
//! continues the restored one; its data area is sparse (file data of a local-data image is
//! not in the bucket). An image made with an external log gets a new one (`--logdev`,
//! `restore_log`).
//!
//! For an `object_data` image the replay stops at the newest shipped state in which no
//! written extent points at a local block (`rvmfs::store::local_data`, judged after each
//! record through `objstore::ship::restore_where`): a later state names file data that was
//! written but never uploaded, which the restored image cannot have. `--allow-local-data`
//! replays everything shipped instead.

use crate::exit;
use crate::restore_log;
use anyhow::Context;
use objstore::ship::{restore_where, Restored, ShipError, Until};
use objstore::{Bucket, Config};
use rvm_core::{FileStorage, Rvm, Storage};
use rvmfs::layout::external_log::BINDING_OFFSET;
use rvmfs::layout::features::{Features, INCOMPAT_EXTERNAL_LOG, INCOMPAT_OBJECT_DATA};
use rvmfs::layout::header::Header;
use rvmfs::layout::pod;
use rvmfs::layout::superblock::field;
use rvmfs::store::local_data::LocalData;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Build an image from a bucket's shipped log and snapshots.
///
/// Reads s3://BUCKET/PREFIX, chooses the newest complete snapshot at or before the target
/// (the latest state; --lsn N, the state after the transaction with Lsn N; or --time T,
/// the segments shipped by then), replays the shipped redo records after it, and writes
/// IMAGE: the shipped header, the metadata region, an empty redo log continuing the Lsns,
/// and a sparse data area. Refuses (exit 1) when the bucket lacks what the target needs:
/// no complete snapshot, a gap in the Lsns, a segment or snapshot part whose checksum does
/// not match. Credentials and endpoint come from the usual AWS environment variables
/// (AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE).
///
/// An object_data image's restore stops at the newest shipped state (at or before the
/// target) in which every written extent points at the bucket: a later state names file
/// data written but not yet uploaded when the writer was lost. The output says where it
/// stopped and up to where the log was shipped. With --allow-local-data it replays
/// everything shipped; the files whose data never reached the bucket then read zeros (or
/// fail their data checksums: EIO). A local-data image's file data is not in the bucket:
/// the restored files have their names, attributes, extended attributes and sizes, and
/// read zeros. fsck.rvmfs -n checks the restored metadata as any image's.
///
/// Exit status: 0 restored, 1 the bucket lacks what the restore needs (also: no state with
/// all its file data in the bucket is left), cannot be read, or a write failed, 8 IMAGE exists (without -f) or the URL or AWS configuration is unusable,
/// 16 usage error.
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Restore the state after the transaction with this Lsn (as logdump shows them).
    #[arg(long, value_name = "N", conflicts_with = "time")]
    pub lsn: Option<u64>,
    /// Restore the state shipped by this time: RFC 3339 (2026-12-01T18:30:00Z) or seconds
    /// since 1970.
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub time: Option<u64>,
    /// Object-data images: replay everything shipped, also states whose extents point at
    /// file data that never reached the bucket (those files read zeros or fail their data
    /// checksums).
    #[arg(long)]
    pub allow_local_data: bool,
    /// For an image made with an external log (mkfs.rvmfs -J device=): the file or block
    /// device to make its new redo log on. A file is created (or cut) to the size mkfs
    /// would give it, a device is used whole; the image is bound to it by a new log UUID.
    /// Refused for an image whose log is inside it.
    #[arg(short = 'l', long, value_name = "PATH")]
    pub logdev: Option<PathBuf>,
    /// Overwrite IMAGE if it exists (and the --logdev file or device if it holds data).
    #[arg(short = 'f', long)]
    pub force: bool,
    /// The bucket and prefix the image was shipped to.
    #[arg(value_name = "s3://BUCKET/PREFIX")]
    pub url: String,
    /// The image file to create.
    pub image: PathBuf,
}

/// Milliseconds since 1970 from RFC 3339 or seconds.
fn parse_time(s: &str) -> Result<u64, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(secs.saturating_mul(1000));
    }
    let t: jiff::Timestamp = s
        .parse()
        .map_err(|e| format!("{s:?} is neither RFC 3339 nor seconds since 1970: {e}"))?;
    u64::try_from(t.as_millisecond()).map_err(|_| format!("{s:?} is before 1970"))
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let image = &args.image;
    if image.exists() && !args.force {
        exit::say("restore", image, "exists (use -f to overwrite it)");
        return Ok(exit::OPERATIONAL);
    }
    let until = match (args.lsn, args.time) {
        (Some(n), _) => Until::Lsn(n),
        (_, Some(t)) => Until::Time(t),
        _ => Until::Latest,
    };
    let bucket = match Config::from_env(&args.url).and_then(|c| Bucket::open(&c)) {
        Ok(b) => b,
        Err(e) => {
            exit::say("restore", image, e);
            return Ok(exit::OPERATIONAL);
        }
    };
    let started = Instant::now();
    let mut local = LocalData::new();
    let mut judge = |region: &[u8], touched: &[std::ops::Range<usize>]| {
        let features: Features = pod::get(region, field::FEATURES).map_err(|e| e.to_string())?;
        if !features.has_incompat(INCOMPAT_OBJECT_DATA) {
            return Ok(true);
        }
        local.all_remote(region, touched).map_err(|e| e.to_string())
    };
    let judged = (!args.allow_local_data).then_some(&mut judge as &mut objstore::ship::Judge);
    let r = match restore_where(&bucket, until, judged) {
        Ok(r) => r,
        Err(e) => {
            let hint = match e {
                ShipError::Unacceptable { .. } => " (each points at file data that never reached the bucket; --allow-local-data restores the latest anyway)",
                _ => "",
            };
            let what = format!("cannot restore from {}: {e}{hint}", args.url);
            exit::say("restore", image, what);
            return Ok(exit::ERROR);
        }
    };
    if let Err(e) = write_image(image, &r, args.logdev.as_deref(), args.force) {
        exit::say("restore", image, format!("{e:#}"));
        return Ok(exit::ERROR);
    }
    report(&args, &r, local.first_local(), started)?;
    Ok(exit::OK)
}

/// Print what was restored; where and why the replay stopped short of the target
/// (`local`: a written local extent of a refused state, inode and block).
fn report(
    args: &Args,
    r: &Restored,
    local: Option<(u64, u64)>,
    started: Instant,
) -> std::io::Result<()> {
    let (image, mut out) = (&args.image, std::io::stdout().lock());
    writeln!(
        out,
        "Restored {} from {}: snapshot {} (Lsn {}), {} records from {} segments, up to Lsn {} ({:.2} s)",
        image.display(),
        args.url,
        r.snapshot,
        r.snapshot_lsn,
        r.records,
        r.segments,
        r.next.saturating_sub(1),
        started.elapsed().as_secs_f64()
    )?;
    if r.shipped != r.next {
        let (lsn, shipped) = (r.next.saturating_sub(1), r.shipped.saturating_sub(1));
        let reach = match (args.lsn, args.time) {
            (None, None) => "shipped up to",
            _ => "the target reaches",
        };
        let example = match local {
            Some((ino, block)) => format!(" (e.g. inode {ino} at block {block})"),
            None => String::new(),
        };
        writeln!(out, "Stopped at Lsn {lsn} ({reach} {shipped}): later states point at file data that never reached the bucket{example}; --allow-local-data restores up to {shipped}")?;
    }
    if r.external_ranges > 0 {
        writeln!(out, "Note: {} ranges of file data in the log were not restored (file data is not in the bucket)", r.external_ranges)?;
    }
    Ok(())
}

/// Write the restored image at `path`: header block, an empty log starting at `r.next`
/// (inside the image, or a new external log at `logdev` for an image made with one:
/// `restore_log`; `force` overwrites that log's old contents), the region, sparse data;
/// synced.
fn write_image(
    path: &Path,
    r: &Restored,
    logdev: Option<&Path>,
    force: bool,
) -> anyhow::Result<()> {
    let header = Header::decode(&r.header_block, r.image_len).context("the shipped header")?;
    let external = header.features.has_incompat(INCOMPAT_EXTERNAL_LOG);
    let binding = match (external, logdev) {
        (true, Some(dev)) => Some(restore_log::make(dev, force, path, &header, r.image_len, r.next)?),
        (true, None) => anyhow::bail!("the shipped image has an external log (mkfs -J device=): give --logdev PATH for its new log"),
        (false, Some(_)) => anyhow::bail!("the shipped image keeps its log inside; --logdev is for an image made with an external log"),
        (false, None) => None,
    };
    let seg = header.segment_area();
    if seg.offset != r.segment_offset || seg.len != r.region.len() as u64 {
        anyhow::bail!("the shipped header's metadata region disagrees with the snapshot's");
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .context("creating the image")?;
    file.set_len(r.image_len).context("sizing the image")?;
    let storage = FileStorage::new(file);
    let mut block = r.header_block.clone();
    if let Some(b) = binding {
        let at = BINDING_OFFSET as usize;
        block.resize(block.len().max(at + b.len()), 0);
        block[at..at + b.len()].copy_from_slice(&b);
    } else {
        Rvm::create_log_at(&storage, header.log_area(), r.next).context("formatting the log")?;
    }
    storage.write_at(&block, 0).context("writing the header")?;
    storage
        .write_at(&r.region, seg.offset)
        .context("writing the metadata region")?;
    storage.sync().context("syncing the image")?;
    Ok(())
}
