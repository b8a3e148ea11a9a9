//! The new external log of a restored image (`rvmfs-admin restore --logdev PATH`). An image
//! made with its redo log on another file or device (`mkfs.rvmfs -J device=`) ships that log
//! like any other; restored elsewhere, it gets a fresh log at PATH, bound to the image by a
//! new log UUID as `mkfs.rvmfs -J device=` binds one (docs/format.md 2.2): the file created
//! (or cut) to the size mkfs would give it, a block device used whole, zeroed, its log header
//! written and an empty RVM log whose first Lsn continues the restored state, so the next
//! mount ships on from there.

use anyhow::{bail, Context, Result};
use rvm_core::{FileStorage, Lsn, Rvm, Storage};
use rvmfs::image::host_file::{has_contents, prepare_log};
use rvmfs::layout::external_log::{default_log_len, LogBinding, LogHeader, BINDING_SIZE};
use rvmfs::layout::header::Header;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

/// The smallest log area restore makes, bytes (as mkfs: 1 MiB).
const MIN_LOG: u64 = 1 << 20;

/// Make the external log at `path` (`force`: also over a file or device that holds
/// something) for the restored image `image` of header `header` and `image_len` bytes, its
/// log empty and starting at Lsn `first`; synced. Returns the log binding to write into the
/// image's header block at `external_log::BINDING_OFFSET`.
///
/// Errors: `path` is the image, holds data (without `force`), is in use (its lock), is too
/// small a device, or cannot be created, sized, zeroed or written.
pub fn make(
    path: &Path,
    force: bool,
    image: &Path,
    header: &Header,
    image_len: u64,
    first: Lsn,
) -> Result<[u8; BINDING_SIZE]> {
    let path =
        std::path::absolute(path).with_context(|| format!("bad log path {}", path.display()))?;
    if std::path::absolute(image).ok().as_deref() == Some(path.as_path()) {
        bail!(
            "the log {} is the image itself: it must be another file or device",
            path.display()
        );
    }
    let file = rvmfs::image::host_file::open_or_create(&path)
        .with_context(|| format!("cannot open the log {}", path.display()))?;
    if !force && has_contents(&file)? {
        bail!(
            "the log {} is not empty (use -f to overwrite it)",
            path.display()
        );
    }
    rvmfs::image::lock(&file, &path)?;
    let is_block = file.metadata()?.file_type().is_block_device();
    let len = match is_block {
        true => (&file).seek(SeekFrom::End(0))? / 4096 * 4096,
        false => default_log_len(image_len),
    };
    let now = jiff::Timestamp::now().as_second();
    let log_uuid = *uuid::Uuid::new_v4().as_bytes();
    let lh = LogHeader::new(header.uuid, log_uuid, len, now);
    if lh.log.len < MIN_LOG {
        bail!(
            "the log device {} is only {len} bytes (at least 1 MiB of log)",
            path.display()
        );
    }
    prepare_log(&file, len, is_block)
        .with_context(|| format!("cannot size and zero the log {}", path.display()))?;
    let storage = FileStorage::new(file);
    storage
        .write_at(&lh.encode(), 0)
        .context("writing the log header")?;
    Rvm::create_log_at(&storage, lh.log, first).context("formatting the log")?;
    storage.sync().context("syncing the log")?;
    let binding = LogBinding {
        log_uuid,
        path: path.to_string_lossy().into_owned(),
    };
    Ok(binding.encode()?)
}
