//! The image's error record (`rvmfs::layout::error_record`, header bytes 0x100..0x200): the
//! daemon writes there the first storage error that put the filesystem in its error state.
//! fsck reports it, checks fully (rvmfs always does, as e2fsck does when `ERROR_FS` is set),
//! and with `-y`/`-p` clears it after a clean check, as e2fsck clears `ERROR_FS`.

use rvm_core::Storage;
use rvmfs::layout::error_record::ErrorRecord;

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

/// `secs` since the Unix epoch as "YYYY-MM-DD hh:mm:ss UTC" (the civil-from-days algorithm
/// of H. Hinnant, "chrono-Compatible Low-Level Date Algorithms").
pub fn utc(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(super::utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(super::utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }
}
