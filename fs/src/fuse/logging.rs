//! The daemon's log: env_logger (`RUST_LOG`), every line naming the image, and the request
//! being served when a request fails, so an error line says which image, which operation
//! and which inode ("IMAGE: write (inode 12): ...").
//!
//! fuser logs at error level every reply the kernel refuses; "Failed to send FUSE reply: No
//! such file or directory" (ENOENT) is the kernel saying the request was interrupted and
//! needs no reply any more (a signal reached the caller: `fuse_dev_do_write` finds no
//! request with that id), which is normal, not an error: such lines go out at debug level.
//! Every other failed reply (ENODEV after an unmount, EINVAL from a malformed reply) stays
//! an error.

use log::{Level, Log, Metadata, Record};
use std::cell::Cell;
use std::io::Write;

thread_local! {
    /// The request this worker thread serves: (operation, inode), ("", 0) between requests.
    static CURRENT: Cell<(&'static str, u64)> = const { Cell::new(("", 0)) };
}

/// While alive, the current thread serves request `op` on inode `ino` (for messages).
pub struct RequestContext(());

impl RequestContext {
    pub fn enter(op: &'static str, ino: u64) -> RequestContext {
        CURRENT.with(|c| c.set((op, ino)));
        RequestContext(())
    }
}

impl Drop for RequestContext {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(("", 0)));
    }
}

/// The request this thread serves, as "op (inode N)", or "request" outside one.
pub fn current_request() -> String {
    match CURRENT.with(Cell::get) {
        ("", _) => "request".into(),
        (op, ino) => format!("{op} (inode {ino})"),
    }
}

/// What fuser logs when the kernel refuses a reply (fuser 0.18 `reply.rs`).
const REPLY_FAILED: &str = "Failed to send FUSE reply: ";

/// A refused reply to an interrupted request: the kernel's ENOENT.
fn interrupted_reply(record: &Record<'_>) -> bool {
    record.target().starts_with("fuser::reply")
        && record.args().to_string().starts_with(&format!(
            "{REPLY_FAILED}{}",
            std::io::Error::from_raw_os_error(libc::ENOENT)
        ))
}

struct Logger {
    inner: env_logger::Logger,
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }
    fn log(&self, record: &Record<'_>) {
        if record.level() <= Level::Warn && interrupted_reply(record) {
            let demoted = Record::builder()
                .args(*record.args())
                .level(Level::Debug)
                .target(record.target())
                .module_path(record.module_path())
                .file(record.file())
                .line(record.line())
                .build();
            self.inner.log(&demoted);
        } else {
            self.inner.log(record);
        }
    }
    fn flush(&self) {
        self.inner.flush();
    }
}

/// Start logging for the daemon of `image`: `RUST_LOG`, else `default_filter`; each line
/// "[time LEVEL target] IMAGE: message" (a message naming the image first is not prefixed
/// again).
pub fn init(image: &std::path::Path, default_filter: &str) {
    let image = image.display().to_string();
    let inner =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_filter))
            .format(move |buf, r| {
                let message = r.args().to_string();
                let prefix = if message.starts_with(&image) {
                    String::new()
                } else {
                    format!("{image}: ")
                };
                writeln!(
                    buf,
                    "[{} {} {}] {prefix}{message}",
                    buf.timestamp(),
                    r.level(),
                    r.target()
                )
            })
            .build();
    let max = inner.filter();
    if log::set_boxed_logger(Box::new(Logger { inner })).is_ok() {
        log::set_max_level(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_interrupted(err: i32) -> bool {
        let e = std::io::Error::from_raw_os_error(err);
        interrupted_reply(
            &Record::builder()
                .args(format_args!("Failed to send FUSE reply: {e}"))
                .target("fuser::reply")
                .level(Level::Error)
                .build(),
        )
    }

    #[test]
    fn only_the_kernels_enoent_is_an_interrupted_reply() {
        assert!(is_interrupted(libc::ENOENT));
        assert!(!is_interrupted(libc::ENODEV));
        assert!(!is_interrupted(libc::EINVAL));
        let other = Record::builder()
            .args(format_args!(
                "Failed to send FUSE reply: No such file or directory"
            ))
            .target("rvmfs::fuse")
            .build();
        assert!(!interrupted_reply(&other), "only fuser's reply module");
    }

    #[test]
    fn the_request_context_names_op_and_inode() {
        assert_eq!(current_request(), "request");
        {
            let _r = RequestContext::enter("write", 12);
            assert_eq!(current_request(), "write (inode 12)");
        }
        assert_eq!(current_request(), "request");
    }
}
