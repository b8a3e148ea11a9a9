//! `mkfs.rvmfs`: create an rvmfs image in a regular file or on a block device.

use anyhow::{bail, Context, Result};
use clap::Parser;
use rvmfs::format::format;
use rvmfs::image::{read_header, ImageError};
use rvmfs::layout::geometry::Plan;
use rvmfs::layout::header::{Header, HeaderError};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// Create an rvmfs filesystem image.
///
/// IMAGE is a regular file (created, or extended to SIZE) or a block device. The image holds
/// a header, the RVM redo log, the metadata region (superblock, inode table, bitmaps,
/// recoverable heap) and the data area. An existing rvmfs image or a non-empty file is never
/// overwritten without -f.
#[derive(Parser, Debug)]
#[command(name = "mkfs.rvmfs", version, verbatim_doc_comment)]
#[command(after_long_help = include_str!("after_help.txt"))]
struct Args {
    /// Image size, with an optional K, M, G or T suffix (powers of 1024). Required for a new
    /// file; defaults to the size of an existing file or device.
    #[arg(short = 's', long = "size", value_name = "SIZE", value_parser = parse_size)]
    size: Option<u64>,
    /// Number of inodes (default: one per 16 KiB of image).
    #[arg(short = 'N', long = "inodes", value_name = "INODES")]
    inodes: Option<u64>,
    /// Size of the redo log, with an optional suffix (default: SIZE/32, 4 MiB to 256 MiB).
    #[arg(short = 'L', long = "log-size", value_name = "LOG_SIZE", value_parser = parse_size)]
    log_size: Option<u64>,
    /// Overwrite an existing image or a non-empty file.
    #[arg(short = 'f', long = "force")]
    force: bool,
    /// Print nothing but errors.
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
    /// The file or block device to format.
    image: PathBuf,
}

/// Parse "64M", "1G", "4096": bytes, suffixes K/M/G/T in powers of 1024.
fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, shift) = match s.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&s[..s.len() - 1], 10),
        Some('M') => (&s[..s.len() - 1], 20),
        Some('G') => (&s[..s.len() - 1], 30),
        Some('T') => (&s[..s.len() - 1], 40),
        _ => (s, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{s}' is not a size (examples: 4096, 64M, 2G)"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("size '{s}' is too large"))
}

fn main() {
    cli_docs::generate_if_asked::<Args>();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("mkfs.rvmfs: {e:#}");
        std::process::exit(1);
    }
}

/// Is there anything in `file` (a non-zero byte in its first 64 KiB)?
fn has_contents(mut file: &File) -> Result<bool> {
    let mut buf = vec![0u8; 64 << 10];
    file.seek(SeekFrom::Start(0))?;
    let n = file.read(&mut buf)?;
    Ok(buf[..n].iter().any(|&b| b != 0))
}

/// Make [offset, offset+len) of a block device read as zeros: FALLOC_FL_ZERO_RANGE (the
/// device zeroes it, often without writing), else plain writes of zeros.
fn zero_range(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: fallocate on a valid descriptor with plain integer arguments.
    let r = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
            offset as libc::off_t,
            len as libc::off_t,
        )
    };
    if r != 0 {
        write_zeros(file, offset, len)?;
    }
    file.sync_all()
}

/// Write zeros over [offset, offset+len) (bytes) in 1 MiB writes.
fn write_zeros(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let zeros = vec![0u8; 1 << 20];
    let mut at = offset;
    while at < offset + len {
        let n = (offset + len - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// Does the image exist already? A new one needs an existing directory and a size.
fn check_path(args: &Args) -> Result<bool> {
    let path = &args.image;
    let exists = path.exists();
    if !exists {
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !parent.is_dir() {
            bail!(
                "cannot create {}: directory {} does not exist",
                path.display(),
                parent.display()
            );
        }
        if args.size.is_none() {
            bail!(
                "{} does not exist: give its size with -s SIZE (e.g. -s 1G)",
                path.display()
            );
        }
    }
    Ok(exists)
}

/// Make the areas before the data area read as zeros, as formatting needs: a file is cut to
/// `size` (sparse) with its log and metadata region allocated, a device has them zeroed.
fn prepare(file: &File, is_block: bool, layout: &Header, size: u64, path: &Path) -> Result<()> {
    if !is_block {
        // Start from a sparse, all-zero file of the right size (drops old contents under -f).
        file.set_len(0)
            .and_then(|_| file.set_len(size))
            .with_context(|| format!("cannot size {}", path.display()))?;
        allocate_metadata(file, layout, path)?;
    } else {
        // A device keeps old bytes: zero everything before the data area (header, log and
        // metadata region), which must read as zeros before formatting.
        zero_range(file, 0, layout.data_offset)
            .with_context(|| format!("cannot zero the metadata area of {}", path.display()))?;
    }
    Ok(())
}

/// Give the header, the log and the metadata region of a new image file host blocks, so that
/// no commit, truncation, page fault on the mapped region or clean unmount ever needs new
/// space from the host (a full host must cost file data writes only, answered ENOSPC):
/// `fallocate` of [0, data_offset) where the host supports it (ext4, xfs, tmpfs: instant),
/// zeros written otherwise. Then the log's blocks are written with zeros (as `mke2fs` zeroes
/// its journal): a commit into an unwritten extent would make the host file system convert
/// it, and sync its own journal, on every log write until the log had wrapped once.
fn allocate_metadata(file: &File, layout: &Header, path: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let len = layout.data_offset;
    // SAFETY: fallocate on a valid descriptor with plain integer arguments.
    let r = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len as libc::off_t) };
    let no_room = |e: std::io::Error| {
        anyhow::Error::new(e).context(format!(
            "cannot allocate the log and metadata region ({} MiB) of {}: the host file system needs that much free space",
            len.div_ceil(1 << 20),
            path.display()
        ))
    };
    if r != 0 {
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => {
                // No fallocate on this host: write the whole metadata area instead.
                write_zeros(file, 0, len).map_err(no_room)?;
                return Ok(());
            }
            _ => return Err(no_room(err)),
        }
    }
    write_zeros(file, layout.log_offset, layout.log_len).map_err(no_room)
}

fn run(args: &Args) -> Result<()> {
    let path = &args.image;
    let exists = check_path(args)?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    rvmfs::image::lock(&file, path)?;
    let meta = file.metadata()?;
    let is_block = meta.file_type().is_block_device();
    let current = (&file).seek(SeekFrom::End(0))?;
    if exists && !args.force {
        match read_header(&file, path) {
            Ok(_) => bail!(
                "{} already holds an rvmfs image; use -f to overwrite it",
                path.display()
            ),
            // An image of a newer format is still an image: say so, not "not empty".
            Err(ImageError::Header {
                source: e @ (HeaderError::Incompat(_) | HeaderError::Version(_)),
                ..
            }) => bail!(
                "{} already holds an rvmfs image ({e}); use -f to overwrite it",
                path.display()
            ),
            Err(_) => {}
        }
        if current > 0 && has_contents(&file)? {
            bail!("{} is not empty; use -f to overwrite it", path.display());
        }
    }
    let size = match (args.size, is_block) {
        (Some(s), true) if s > current => bail!(
            "{} is only {current} bytes; cannot make a {s}-byte image",
            path.display()
        ),
        (Some(s), _) => s,
        (None, _) if current > 0 => current,
        (None, _) => bail!(
            "{} is empty: give the image size with -s SIZE",
            path.display()
        ),
    } / 4096
        * 4096;
    let plan = Plan {
        size,
        inodes: args.inodes,
        log: args.log_size,
    };
    let (layout, _) = rvmfs::layout::geometry::plan(plan, [0; 16], 0)?;
    prepare(&file, is_block, &layout, size, path)?;
    let uuid = *uuid::Uuid::new_v4().as_bytes();
    // SAFETY: getuid/getgid have no preconditions.
    let owner = unsafe { (libc::getuid(), libc::getgid()) };
    let storage = std::sync::Arc::new(rvm_core::FileStorage::new(file.try_clone()?));
    let header = format(storage, plan, uuid, owner)
        .with_context(|| format!("cannot format {}", path.display()))?;
    if !args.quiet {
        println!(
            "Created rvmfs image {}: {} MiB, {} data blocks of 4 KiB, {} MiB log, {} MiB metadata region\nUUID: {}",
            path.display(),
            size >> 20,
            header.data_blocks,
            header.log_len >> 20,
            header.segment_len >> 20,
            header.uuid_string()
        );
    }
    Ok(())
}
