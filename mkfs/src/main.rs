//! `mkfs.rvmfs`: create an rvmfs image in a regular file or on a block device.

use anyhow::{bail, Context, Result};
use clap::Parser;
mod logdev;
mod options;

use options::Args;
use rvmfs::format::{format_external, Settings};
use rvmfs::image::host_file::{has_contents, write_zeros, zero_range};
use rvmfs::image::{read_header, ImageError};
use rvmfs::layout::geometry::Plan;
use rvmfs::layout::header::{Header, HeaderError};
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

fn main() {
    cli_docs::generate_if_asked::<Args>();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("mkfs.rvmfs: {e:#}");
        std::process::exit(1);
    }
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

/// The image size to make, bytes (a multiple of 4096): `-s`, else the file's or device's
/// `current` size.
fn image_size(args: &Args, current: u64, is_block: bool) -> Result<u64> {
    let path = &args.image;
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
    };
    Ok(size / 4096 * 4096)
}

/// The image's geometry: with an external log, the image keeps only the smallest log area
/// (1 MiB, unused: docs/format.md section 2.2).
fn plan_of(args: &Args, size: u64) -> Plan {
    let log = match args.log_device() {
        Some(_) => Some(1 << 20),
        None => args.log(),
    };
    Plan {
        size,
        inodes: args.inodes,
        log,
    }
}

fn settings(args: &Args) -> Settings {
    let label = args.label.as_deref().unwrap_or("");
    let url = args
        .data
        .as_deref()
        .and_then(rvmfs::layout::superblock::to_text_field);
    Settings {
        label: rvmfs::layout::superblock::to_text_field(label).unwrap_or_default(),
        reserved_permille: args.reserved_permille.unwrap_or(0),
        object_data: url.map(|u| (u, objstore::object_id::DEFAULT_SHIFT)),
    }
}

/// `--data`: refuse a bucket that cannot be reached or does not enforce conditional writes
/// (the probe of docs/format.md 11.2), before anything is written to the image.
fn probe_data(args: &Args) -> Result<()> {
    let Some(url) = &args.data else {
        return Ok(());
    };
    let access = rvmfs::remote::Access {
        url: url.clone(),
        credentials_file: args.credentials.clone(),
    };
    let bucket = access
        .open()
        .with_context(|| format!("cannot use the object store {url}"))?;
    objstore::probe_conditional_writes(&bucket)
        .with_context(|| format!("cannot use the object store {url}"))?;
    match objstore::read_lease(&bucket) {
        Ok(Some((lease, _))) if !args.force => bail!(
            "{url} already holds an rvmfs image's data (its lease: holder {}, epoch {}); use \
             another prefix, or -f to reuse this one (its old objects are then leaked)",
            lease.holder,
            lease.epoch
        ),
        Ok(_) => Ok(()),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot use the object store {url}"))),
    }
}

/// Print the layout as mke2fs does (blocks and inodes, UUID, label, log, reserve).
fn report(args: &Args, header: &Header, inodes: u64, uuid: &uuid::Uuid) {
    let reserved = header.data_blocks * settings(args).reserved_permille / 1000;
    println!(
        "Creating filesystem with {} 4k blocks and {inodes} inodes",
        header.data_blocks
    );
    println!("Filesystem UUID: {}", uuid.hyphenated());
    println!(
        "Filesystem volume name: {}",
        args.label
            .as_deref()
            .filter(|l| !l.is_empty())
            .unwrap_or("<none>")
    );
    println!(
        "{reserved} blocks ({:.1}%) reserved for the super user",
        settings(args).reserved_permille as f64 / 10.0
    );
    // "N MiB log" and "N MiB metadata region" are read by scripts (bench, tests/host_full).
    println!(
        "Layout: {} MiB metadata region, {} MiB log, data area at image offset {}",
        header.segment_len >> 20,
        header.log_len >> 20,
        header.data_offset
    );
}

/// -n: plan the image and print its layout; create, open for writing or change nothing.
fn dry_run(args: &Args, exists: bool) -> Result<()> {
    let path = &args.image;
    let (current, is_block) = if exists {
        let meta =
            std::fs::metadata(path).with_context(|| format!("cannot stat {}", path.display()))?;
        let mut file =
            File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        (
            file.seek(SeekFrom::End(0))?,
            meta.file_type().is_block_device(),
        )
    } else {
        (0, false)
    };
    let size = image_size(args, current, is_block)?;
    let uuid = args.uuid.unwrap_or_else(uuid::Uuid::new_v4);
    let (layout, sb) = rvmfs::layout::geometry::plan(plan_of(args, size), *uuid.as_bytes(), 0)?;
    report(args, &layout, sb.inode_count, &uuid);
    if let Some(dev) = args.log_device() {
        println!(
            "External log: {} (its own log area; the image's 1 MiB one stays unused)",
            dev.display()
        );
    }
    println!("(-n: nothing was written to {})", path.display());
    Ok(())
}

/// Refuse to overwrite an rvmfs image or a non-empty file without -f.
fn refuse_overwrite(args: &Args, file: &File, current: u64) -> Result<()> {
    let path = &args.image;
    match read_header(file, path) {
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
    if current > 0 && has_contents(file)? {
        bail!("{} is not empty; use -f to overwrite it", path.display());
    }
    Ok(())
}

fn run(args: &Args) -> Result<()> {
    let path = &args.image;
    let exists = check_path(args)?;
    if args.dry_run {
        return dry_run(args, exists);
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    rvmfs::image::lock(&file, path)?;
    let is_block = file.metadata()?.file_type().is_block_device();
    let current = (&file).seek(SeekFrom::End(0))?;
    if exists && !args.force {
        refuse_overwrite(args, &file, current)?;
    }
    let size = image_size(args, current, is_block)?;
    let plan = plan_of(args, size);
    let (layout, sb) = rvmfs::layout::geometry::plan(plan, [0; 16], 0)?;
    probe_data(args)?;
    prepare(&file, is_block, &layout, size, path)?;
    let uuid = args.uuid.unwrap_or_else(uuid::Uuid::new_v4);
    // SAFETY: getuid/getgid have no preconditions.
    let owner = unsafe { (libc::getuid(), libc::getgid()) };
    let external = logdev::prepare(args, size, &file)?;
    let log_line = external.as_ref().map(|x| {
        let u = uuid::Uuid::from_bytes(x.log_uuid).hyphenated();
        format!(
            "External log: {} ({} MiB), log UUID {u}",
            x.path,
            x.device_len >> 20
        )
    });
    let storage = std::sync::Arc::new(rvm_core::FileStorage::new(file.try_clone()?));
    let header = format_external(
        storage,
        plan,
        *uuid.as_bytes(),
        owner,
        settings(args),
        external,
    )
    .with_context(|| format!("cannot format {}", path.display()))?;
    if !args.quiet {
        report(args, &header, sb.inode_count, &uuid);
        if let Some(line) = log_line {
            println!("{line}");
        }
        if let Some(url) = &args.data {
            println!("File data in the object store: {url} (4 MiB objects)");
        }
    }
    Ok(())
}
