//! Replay: recover the image's redo log before any check, as mounting would (e2fsck replays
//! the journal first). With -n the image opens read-only and the log is replayed in memory
//! only: the check sees the recovered metadata, the image is left as it was.

use rvmfs::image::{self, ImageError, OpenMode};
use rvmfs::ops::Fs;
use rvmfs::FsResult;
use std::path::Path;

/// An image whose log was replayed.
pub struct Replayed {
    /// How many committed transactions the log replayed.
    pub recovered: u64,
    /// The filesystem on the recovered region, or why its metadata is unusable.
    pub fs: FsResult<Fs>,
}

/// Open the image at `path` (read-only if `read_only`; its external log at `logdev` instead
/// of the recorded path if given) and replay its log.
///
/// Errors: `ImageError::Busy` if a daemon has it open, `ImageError::Region` if the log or the
/// region cannot be recovered, other `ImageError`s if the image cannot be opened at all.
pub fn replay(path: &Path, read_only: bool, logdev: Option<&Path>) -> Result<Replayed, ImageError> {
    let img = image::open(
        path,
        OpenMode {
            read_only,
            commit_interval: None,
            logdev: logdev.map(Path::to_path_buf),
        },
    )?;
    let recovered = img.rvm.stats().records_recovered;
    let fs = Fs::new(img.region, img.rvm, img.header, img.storage);
    Ok(Replayed { recovered, fs })
}
