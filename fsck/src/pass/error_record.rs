//! The image's error record (`rvmfs::layout::error_record`, header bytes 0x100..0x200): the
//! daemon writes there the first storage error that put the filesystem in its error state.
//! fsck reports it, checks fully (rvmfs always does, as e2fsck does when `ERROR_FS` is set),
//! and with `-y`/`-p` clears it after a clean check, as e2fsck clears `ERROR_FS`.

use rvm_core::Storage;
use rvmfs::layout::error_record::{utc, ErrorRecord};

/// What the error record says.
pub enum Recorded {
    /// No error recorded.
    None,
    /// An error record (one line describing it).
    Error(String),
    /// The record's bytes are damaged (a line saying how).
    Damaged(String),
}

/// Read and describe the error record of the image in `storage`.
pub fn read(storage: &dyn Storage) -> Recorded {
    match ErrorRecord::read(storage) {
        Ok(None) => Recorded::None,
        Ok(Some(r)) => {
            let last = if r.count > 1 {
                format!(" (the last at {})", utc(r.last_time))
            } else {
                String::new()
            };
            Recorded::Error(format!(
                "filesystem had errors: {} error(s), the first: {} (inode {}, errno {}): {} at \
                 {}{last}",
                r.count,
                r.op,
                r.inode,
                r.errno,
                r.message,
                utc(r.first_time),
            ))
        }
        Err(e) => Recorded::Damaged(format!("{e}")),
    }
}

/// Clear the record (after a clean check), with a write durable for those bytes.
///
/// Errors: the write's I/O error.
pub fn clear(storage: &dyn Storage) -> std::io::Result<()> {
    ErrorRecord::write(storage, None)
}
