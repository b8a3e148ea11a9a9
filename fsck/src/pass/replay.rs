//! Replay: recover the image's redo log before any check, as mounting would (e2fsck replays
//! the journal first). With -n the image opens read-only and the log is replayed in memory
//! only: the check sees the recovered metadata, the image is left as it was. Then, before the
//! filesystem is opened on it, the superblock against its backup (`backup_sb`).

use rvmfs::image::{self, ImageError, OpenMode};
use rvmfs::ops::Fs;
use rvmfs::FsResult;
use std::path::Path;

/// An image whose log was replayed.
pub struct Replayed {
    /// How many committed transactions the log replayed.
    pub recovered: u64,
    /// What the superblock check against the backup found and did (`backup_sb`).
    pub superblock: super::backup_sb::Outcome,
    /// The filesystem on the recovered region, or why its metadata is unusable.
    pub fs: FsResult<Fs>,
}

/// Open the image at `path` (read-only if `read_only`; its external log at `logdev` instead
/// of the recorded path if given), replay its log and check the superblock against its
/// backup (taking the backup if `force_backup`, fsck's `-b`).
///
/// Errors: `ImageError::Busy` if a daemon has it open, `ImageError::Region` if the log or the
/// region cannot be recovered, other `ImageError`s if the image cannot be opened at all.
pub fn replay(
    path: &Path,
    read_only: bool,
    logdev: Option<&Path>,
    force_backup: bool,
) -> Result<Replayed, ImageError> {
    let mut img = image::open(
        path,
        OpenMode {
            read_only,
            commit_interval: None,
            logdev: logdev.map(Path::to_path_buf),
            ship: false,
        },
    )?;
    let recovered = img.rvm.stats().records_recovered;
    let superblock = super::backup_sb::check(&mut img.region, &img.header, force_backup, read_only);
    let fs = Fs::new(img.region, img.rvm, img.header, img.storage);
    Ok(Replayed {
        recovered,
        superblock,
        fs,
    })
}
