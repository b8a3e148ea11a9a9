//! `rvmfs-admin resize IMAGE|MOUNTPOINT [SIZE]` (resize2fs): grow an image offline or while
//! mounted, shrink it offline. The work is `rvmfs::resize`; this module finds out whether the
//! image is mounted (/proc/self/mounts names the image as the mount's source), extends or cuts
//! the file, and prints what resize2fs prints.

use crate::exit;
use rvmfs::image::{self, ImageError, OpenMode};
use rvmfs::layout::BLOCK_SIZE;
use rvmfs::ops::Fs;
use rvmfs::resize::{self, ResizeError, INODES_FIXED};
use std::path::{Path, PathBuf};

/// Grow or shrink an image's data area (resize2fs, xfs_growfs).
///
/// Grows an image file (extending it) or an image on a block device that was grown, offline or
/// while mounted (online: a control request to the daemon through the mount, the virtual
/// attribute rvmfs.resize on its root); shrinks an unmounted image when the blocks past the
/// new end are free, and cuts the file. Growth stops at what the data bitmap and checksum table
/// have room for: 8 times the size at mkfs (up to 16 TiB); images made before that reserve
/// only the room their layout left. The inode count does not change.
///
/// SIZE: bytes with a suffix K, M, G or T (powers of 1024), s for 512-byte sectors, or a bare
/// number of 4 KiB blocks (as resize2fs). Without SIZE: the size of the file or device.
///
/// Exit status: 0 success (or nothing to do), 1 refused or failed, 8 the image cannot be opened
/// (or is in use by another program), 16 usage error.
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The image file or block device, or the mountpoint of a mounted image.
    pub target: PathBuf,
    /// The new size of the image (see above).
    #[arg(value_parser = parse_size)]
    pub size: Option<u64>,
}

/// resize2fs's units: s (512-byte sectors), K, M, G, T; a bare number counts 4 KiB blocks.
fn parse_size(s: &str) -> Result<u64, String> {
    const UNITS: [(char, u64); 5] = [
        ('s', 512),
        ('K', 1 << 10),
        ('M', 1 << 20),
        ('G', 1 << 30),
        ('T', 1 << 40),
    ];
    let t = s.trim();
    let unit = UNITS
        .iter()
        .find(|(c, _)| t.ends_with(*c) || t.ends_with(c.to_ascii_lowercase()));
    let (number, scale) = match unit {
        Some((_, scale)) => (&t[..t.len() - 1], *scale),
        None => (t, BLOCK_SIZE),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("'{s}' is not a size (examples: 262144 blocks, 1G, 512M, 2097152s)"))
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    match mounted(&args.target)? {
        Some((image, mountpoint)) => online(&args, &image, &mountpoint),
        None => offline(&args),
    }
}

/// The (image, mountpoint) of a mounted rvmfs that `target` names (as its image or its
/// mountpoint), from /proc/self/mounts.
fn mounted(target: &Path) -> anyhow::Result<Option<(PathBuf, PathBuf)>> {
    let Ok(target) = std::fs::canonicalize(target) else {
        return Ok(None);
    };
    let mounts = std::fs::read_to_string("/proc/self/mounts")?;
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [source, point, kind, ..] = f[..] else {
            continue;
        };
        if !kind.starts_with("fuse") {
            continue;
        }
        // /proc/mounts escapes space, tab, newline and backslash as octal.
        let (source, point) = (
            PathBuf::from(unescape(source)),
            PathBuf::from(unescape(point)),
        );
        if source == target || point == target {
            return Ok(Some((source, point)));
        }
    }
    Ok(None)
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// The size asked for, else the file's or device's length.
fn wanted(args: &Args, image: &Path) -> anyhow::Result<u64> {
    use std::io::{Seek, SeekFrom};
    match args.size {
        Some(size) => Ok(size),
        None => Ok(std::fs::File::open(image)?.seek(SeekFrom::End(0))?),
    }
}

fn say_done(image: &Path, c: &resize::Change, online: bool) {
    if c.new_blocks == c.old_blocks {
        println!(
            "The filesystem is already {} (4k) blocks long.  Nothing to do!",
            c.new_blocks
        );
        return;
    }
    let first = match online {
        true => "Performing an on-line resize of",
        false => "Resizing the filesystem on",
    };
    println!(
        "{first} {} to {} (4k) blocks.\n\
         The filesystem on {} is now {} (4k) blocks long.\n\
         The image is {} bytes; its free-space map has room for {} blocks.\n\
         Note: {INODES_FIXED}.",
        image.display(),
        c.new_blocks,
        image.display(),
        c.new_blocks,
        c.new_size,
        c.capacity
    );
}

fn refused(image: &Path, e: &ResizeError) -> i32 {
    exit::say("resize", image, e);
    exit::ERROR
}

/// Resize an unmounted image: extend the file first when growing, cut it last when shrinking.
fn offline(args: &Args) -> anyhow::Result<i32> {
    let image = args.target.as_path();
    // An external log is found at its recorded path.
    let mode = OpenMode {
        read_only: false,
        commit_interval: None,
        logdev: None,
        ship: false,
    };
    let img = match image::open(image, mode) {
        Ok(img) => img,
        Err(e @ ImageError::Busy { .. }) => {
            exit::open_failed("resize", image, &e);
            exit::say(
                "resize",
                image,
                "in use, but not as a mount this process can see",
            );
            return Ok(exit::OPERATIONAL);
        }
        Err(e) => return Ok(exit::open_failed("resize", image, &e)),
    };
    let mut fs = Fs::new(img.region, img.rvm, img.header, img.storage)?;
    let size = wanted(args, image)?;
    let sb = rvmfs::store::superblock(fs.bytes())?;
    let blocks = match resize::blocks_for(&fs.header, &sb, size) {
        Ok(blocks) => blocks,
        Err(e) => return Ok(refused(image, &e)),
    };
    let new_size = resize::size_of(&fs.header, blocks);
    if blocks > sb.data_blocks {
        if let Err(e) = resize::set_image_len(image, new_size) {
            return Ok(refused(image, &e));
        }
    }
    let change = match resize::resize(&mut fs, new_size) {
        Ok(c) => c,
        Err(e) => return Ok(refused(image, &e)),
    };
    fs.rvm.truncate()?;
    drop(fs);
    if change.new_blocks < change.old_blocks {
        if let Err(e) = resize::set_image_len(image, change.new_size) {
            return Ok(refused(image, &e));
        }
    }
    say_done(image, &change, false);
    Ok(exit::OK)
}

/// Grow a mounted image: check the size against its superblock (read without the lock),
/// extend the file, then ask the daemon (setxattr rvmfs.resize on the mount's root).
fn online(args: &Args, image: &Path, mountpoint: &Path) -> anyhow::Result<i32> {
    let (img, _) = match image::open_inspect(image) {
        Ok(opened) => opened,
        Err(e) => return Ok(exit::open_failed("resize", image, &e)),
    };
    let sb = rvmfs::store::superblock(img.region.bytes())?;
    let header = img.header;
    drop(img);
    let size = wanted(args, image)?;
    let blocks = match resize::blocks_for(&header, &sb, size) {
        Ok(blocks) => blocks,
        Err(e) => return Ok(refused(image, &e)),
    };
    let change = resize::Change {
        old_blocks: sb.data_blocks,
        new_blocks: blocks,
        old_size: resize::size_of(&header, sb.data_blocks),
        new_size: resize::size_of(&header, blocks),
        capacity: resize::capacity(&sb),
    };
    if blocks < sb.data_blocks {
        exit::say(
            "resize",
            image,
            format!(
                "mounted on {}: on-line shrinking is not supported (unmount it first)",
                mountpoint.display()
            ),
        );
        return Ok(exit::ERROR);
    }
    // SAFETY: geteuid has no arguments and cannot fail.
    if blocks > sb.data_blocks && unsafe { libc::geteuid() } != 0 {
        exit::say(
            "resize",
            image,
            "on-line resizing needs root (the daemon accepts it from root only)",
        );
        return Ok(exit::ERROR);
    }
    if blocks > sb.data_blocks {
        if let Err(e) = resize::set_image_len(image, change.new_size) {
            return Ok(refused(image, &e));
        }
        if let Err(e) = xattr_resize(mountpoint, change.new_size) {
            exit::say(
                "resize",
                image,
                format!("on-line resize through {}: {e}", mountpoint.display()),
            );
            return Ok(exit::ERROR);
        }
    }
    println!(
        "Filesystem at {} is mounted on {}; on-line resizing required",
        image.display(),
        mountpoint.display()
    );
    say_done(image, &change, true);
    Ok(exit::OK)
}

/// setxattr(2) of `rvmfs.resize` = `size` (decimal bytes) on `mountpoint`.
fn xattr_resize(mountpoint: &Path, size: u64) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(mountpoint.as_os_str().as_bytes())?;
    let value = size.to_string();
    // SAFETY: NUL-terminated path and name, a value buffer with its length.
    let r = unsafe {
        libc::setxattr(
            path.as_ptr(),
            c"rvmfs.resize".as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    match r {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}
