//! Exit codes (e2fsprogs') and the shape of error messages every subcommand prints:
//! `rvmfs-admin SUBCOMMAND: IMAGE: what went wrong`.

use rvmfs::image::ImageError;
use std::path::Path;

/// Success.
pub const OK: i32 = 0;
/// The operation failed.
pub const ERROR: i32 = 1;
/// Operational error: the image cannot be opened, or is in use and the operation refuses it.
pub const OPERATIONAL: i32 = 8;
/// Usage error (bad options; clap's errors).
pub const USAGE: i32 = 16;

/// Print `rvmfs-admin SUB: IMAGE: what` to stderr.
pub fn say(sub: &str, image: &Path, what: impl std::fmt::Display) {
    eprintln!("rvmfs-admin {sub}: {}: {what}", image.display());
}

/// Say why `image` could not be opened (the `ImageError` text without the path it names) and
/// return the exit code: 8, operational.
pub fn open_failed(sub: &str, image: &Path, e: &ImageError) -> i32 {
    let text = e.to_string();
    let path = image.display().to_string();
    let what = match text.strip_prefix(&path) {
        Some(rest) => rest.trim_start_matches(':').trim_start().to_string(),
        None => text.replacen(&format!(" {path}"), "", 1),
    };
    say(sub, image, what);
    OPERATIONAL
}
