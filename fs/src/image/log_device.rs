//! Opening an image's external log device (`layout::external_log`): the path the image
//! records, or the one the user gives (`mount -o logdev=`, `fsck.rvmfs -l`), checked against
//! the image by UUID before anything is read from it as a log, as e2fsck checks an external
//! journal's UUID against the superblock's `s_journal_uuid`.

use super::{lock, open_file, ImageError, OpenMode};
use crate::layout::external_log::{LogBinding, LogHeader, BINDING_OFFSET, BINDING_SIZE};
use crate::layout::header::Header;
use rvm_core::{Area, FileStorage, Storage};
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An opened external log: its storage, where the RVM log lies in it, and what it is.
pub struct LogDevice {
    pub storage: Arc<dyn Storage>,
    pub path: PathBuf,
    pub header: LogHeader,
}

fn uuid_text(u: &[u8; 16]) -> String {
    uuid::Uuid::from_bytes(*u).hyphenated().to_string()
}

/// Read the image's log binding (the header block's bytes 0x200..0x400).
///
/// Errors: `ImageError::Io`; `ImageError::LogBinding` if it is damaged.
pub fn read_binding(file: &File, path: &Path) -> Result<LogBinding, ImageError> {
    let mut b = [0u8; BINDING_SIZE];
    file.read_exact_at(&mut b, BINDING_OFFSET)
        .map_err(|source| ImageError::Io {
            path: path.into(),
            source,
        })?;
    LogBinding::decode(&b).map_err(|source| ImageError::LogHeader {
        path: path.into(),
        log: PathBuf::new(),
        source,
    })
}

/// Open, lock and check the external log of the image at `path` (header `header`, binding
/// `binding`): `mode.logdev` if given, else the recorded path. Read-only opens it `O_RDONLY`.
///
/// Errors: `LogMissing` if it does not exist; `LogMismatch` if its UUIDs do not name this
/// image and the log it records; `LogHeader` if it is not an rvmfs log; `Busy`, `Open`, `Io`.
pub fn open(
    path: &Path,
    header: &Header,
    binding: &LogBinding,
    mode: &OpenMode,
    take_lock: bool,
) -> Result<LogDevice, ImageError> {
    let log_path = mode
        .logdev
        .clone()
        .unwrap_or_else(|| PathBuf::from(&binding.path));
    if !log_path.exists() {
        return Err(ImageError::LogMissing {
            path: path.into(),
            log: log_path,
        });
    }
    let file = open_file(&log_path, mode.read_only)?;
    if take_lock {
        lock(&file, &log_path)?;
    }
    let io = |source| ImageError::Io {
        path: log_path.clone(),
        source,
    };
    let len = (&file).seek(SeekFrom::End(0)).map_err(io)?;
    let mut block = vec![0u8; 0x50];
    if len >= 0x50 {
        file.read_exact_at(&mut block, 0).map_err(io)?;
    }
    let log_header = LogHeader::decode(&block, len).map_err(|source| ImageError::LogHeader {
        path: path.into(),
        log: log_path.clone(),
        source,
    })?;
    if log_header.image_uuid != header.uuid || log_header.log_uuid != binding.log_uuid {
        return Err(ImageError::LogMismatch {
            path: path.into(),
            log: log_path,
            want: format!("{}/{}", header.uuid_string(), uuid_text(&binding.log_uuid)),
            found: format!(
                "{}/{}",
                uuid_text(&log_header.image_uuid),
                uuid_text(&log_header.log_uuid)
            ),
        });
    }
    Ok(LogDevice {
        storage: Arc::new(FileStorage::new(file)),
        path: log_path,
        header: log_header,
    })
}

impl LogDevice {
    /// The RVM log area inside the device.
    pub fn area(&self) -> Area {
        self.header.log
    }
}
