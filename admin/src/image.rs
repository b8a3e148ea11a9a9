//! Opening an image for the read-only tools (`logdump`, `debug`, `rdump`): O_RDONLY, no lock,
//! the log and spool replayed in memory (`rvmfs::image::open_shared`, as `fsck -n` but also
//! on a mounted image), and naming files: a path resolved through the image's directories
//! from the root, or `<INO>` (debugfs's inode number syntax).

use crate::exit;
use rvmfs::image::{self, Image};
use rvmfs::layout::inode::Inode;
use rvmfs::layout::superblock::ROOT_INO;
use rvmfs::ops::{lookup, Fs};
use rvmfs::{store, FsError};
use std::path::Path;

/// Open `path` for reading, or say why not (`rvmfs-admin SUB: IMAGE: ...`) and return the
/// exit code (8). Warns when the image is mounted (what it shows may lag the daemon).
pub fn open_image(sub: &str, path: &Path) -> Result<Image, i32> {
    let img = image::open_shared(path).map_err(|e| exit::open_failed(sub, path, &e))?;
    if store::superblock(img.region.bytes()).is_ok_and(|sb| sb.mounted != 0) {
        exit::say(
            sub,
            path,
            "warning: the image is mounted (or was not unmounted cleanly): this shows its \
             state on disk, which may lag the daemon",
        );
    }
    Ok(img)
}

/// [`open_image`], as a filesystem to read through `rvmfs::ops` (nothing is written).
pub fn open_fs(sub: &str, path: &Path) -> Result<Fs, i32> {
    let img = open_image(sub, path)?;
    Fs::new(img.region, img.rvm, img.header, img.storage).map_err(|e| {
        exit::say(sub, path, format!("the metadata region is unusable: {e}"));
        exit::OPERATIONAL
    })
}

/// The inode number named by `spec`: `<INO>`, or a path from the root (`/a/b`, `a/b`).
///
/// Errors: a component is absent (ENOENT), not a directory, or unreadable (`FsError`).
pub fn resolve(fs: &Fs, spec: &str) -> Result<u64, FsError> {
    if let Some(n) = spec.strip_prefix('<').and_then(|s| s.strip_suffix('>')) {
        return n.trim().parse().map_err(|_| FsError::Errno(libc::EINVAL));
    }
    let mut ino = ROOT_INO;
    for name in spec.split('/').filter(|c| !c.is_empty() && *c != ".") {
        ino = match name {
            ".." => fs.inode(ino)?.parent_or_target,
            _ => lookup::lookup(&fs.geo, fs.bytes(), ino, name.as_bytes())?.0,
        };
    }
    Ok(ino)
}

/// The inode named by `spec` ([`resolve`]) and its contents.
pub fn resolve_inode(fs: &Fs, spec: &str) -> Result<(u64, Inode), FsError> {
    let ino = resolve(fs, spec)?;
    Ok((ino, fs.inode(ino)?))
}

/// `sec.ns` as `YYYY-MM-DD HH:MM:SS` (UTC), or the raw number if out of range.
pub fn time(sec: i64, ns: u32) -> String {
    match jiff::Timestamp::new(sec, ns as i32) {
        Ok(t) => t.strftime("%Y-%m-%d %H:%M:%S").to_string(),
        Err(_) => format!("{sec}.{ns:09}"),
    }
}
