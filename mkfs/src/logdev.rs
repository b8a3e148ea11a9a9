//! `-J device=PATH`: prepare the external log file or block device (mke2fs -J device=,
//! mkfs.xfs -l logdev=). The file is created or cut to its size and written with zeros (as
//! mke2fs zeroes a journal: no commit then meets an unwritten host extent); a device has its
//! log zeroed. The format itself (log header, empty log) is `rvmfs::format::format_external`.

use crate::options::Args;
use anyhow::{bail, Context, Result};
use rvmfs::format::ExternalLog;
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;

/// Refuse the image itself, and (without -f) a log path that holds anything.
fn refuse(args: &Args, dev: &Path, file: &File, image: &File) -> Result<()> {
    let (a, b) = (file.metadata()?, image.metadata()?);
    if a.dev() == b.dev() && a.ino() == b.ino() {
        bail!(
            "{} is the image itself: the external log must be another file or device",
            dev.display()
        );
    }
    if !args.force && rvmfs::image::host_file::has_contents(file)? {
        bail!(
            "{} is not empty (an external log of another image?); use -f to overwrite it",
            dev.display()
        );
    }
    Ok(())
}

/// Open, size and zero the external log of `args` (None without -J device=), for an image
/// of `image_size` bytes opened as `image`. Nothing is written under `-n`.
///
/// Errors: the path's directory missing, the image itself, a non-empty file without -f, a
/// device smaller than -J size=, I/O.
pub fn prepare(args: &Args, image_size: u64, image: &File) -> Result<Option<ExternalLog>> {
    let Some(dev) = args.log_device() else {
        return Ok(None);
    };
    let path =
        std::path::absolute(dev).with_context(|| format!("bad log path {}", dev.display()))?;
    let file = rvmfs::image::host_file::open_or_create(&path)
        .with_context(|| format!("cannot open the external log {}", path.display()))?;
    refuse(args, &path, &file, image)?; // before the lock: the image's own is taken
    rvmfs::image::lock(&file, &path)?;
    let is_block = file.metadata()?.file_type().is_block_device();
    let current = (&file).seek(SeekFrom::End(0))?;
    let len = match (args.log(), is_block) {
        (Some(s), true) if s > current => {
            bail!(
                "{} is only {current} bytes; cannot make a {s}-byte log",
                path.display()
            )
        }
        (Some(s), _) => s,
        (None, _) if current > 0 => current,
        (None, _) => rvmfs::layout::external_log::default_log_len(image_size),
    } / 4096
        * 4096;
    rvmfs::image::host_file::prepare_log(&file, len, is_block)
        .with_context(|| format!("cannot size and zero the external log {}", path.display()))?;
    Ok(Some(ExternalLog {
        storage: Arc::new(rvm_core::FileStorage::new(file)),
        device_len: len,
        path: path.to_string_lossy().into_owned(),
        log_uuid: *uuid::Uuid::new_v4().as_bytes(),
    }))
}
