//! The daemon's mount options (`rvmfs -o`, also stored in the superblock by
//! `rvmfs-admin tune -o`, which checks them with the same parser): parsed from
//! comma-separated lists, later options winning, as mount(8) reads them.

use crate::ops::ErrorPolicy;
use crate::remote::full::{self, CacheFull};
use rvm_core::FaultOp;
use std::time::Duration;

/// What the mount options ask for.
pub struct MountOptions {
    pub sync: bool,
    pub commit: Option<Duration>,
    /// `commit=` was given (stored in the image or on the command line): an object-store
    /// image then keeps it instead of [`OBJECT_COMMIT`].
    pub commit_given: bool,
    pub threads: usize,
    pub clone_fd: bool,
    pub allow_other: bool,
    pub read_only: bool,
    pub errors: ErrorPolicy,
    /// `inject_fault=`: (call kind, calls that succeed first, errno).
    pub fault: Option<(FaultOp, u64, i32)>,
    /// `inject_stall=`: the gate file (`image::stall`).
    pub stall: Option<std::path::PathBuf>,
    pub discard: bool,
    pub checked: bool,
    pub nodatasum: bool,
    /// `logdev=PATH`: the external log is here, not where the image records it.
    pub logdev: Option<std::path::PathBuf>,
    /// `writeback`: the kernel's writeback cache (FUSE_WRITEBACK_CACHE): write() returns once
    /// the data is in the kernel's page cache; the daemon gets merged WRITEs at close, fsync
    /// or the kernel's writeback. Weakens the daemon-crash promise to close-to-open (README,
    /// "The promises").
    pub writeback: bool,
    /// Object-store images (`object_data`): how often the uploader looks for dirty blocks
    /// (`upload_interval=SECONDS`, default 0.5; fractions allowed).
    pub upload_interval: Duration,
    /// `upload=sync`: fsync also waits until the file's dirty blocks are in the bucket;
    /// `upload=async` (default) leaves them to the uploader.
    pub upload_sync: bool,
    /// `credentials=PATH`: an AWS shared-credentials file for the bucket (else the AWS
    /// environment variables).
    pub credentials: Option<std::path::PathBuf>,
    /// `inject_crash=after_upload` (tests only): the daemon dies (`_exit`) right after its
    /// first data object is uploaded, before the commit that would point at it.
    pub crash_after_upload: bool,
    /// Object-store images: `cache_size=SIZE` (bytes; `K`, `M`, `G`, `T` suffixes, binary;
    /// a plain number is MiB): the most free local blocks the clean cache keeps; None (the
    /// default): every free local block.
    pub cache_size: Option<u64>,
    /// Object-store images: `cache_full=enospc|block` and `cache_wait=SECONDS` (default 60):
    /// a write that finds every local block dirty answers ENOSPC at once, or waits up to
    /// `cache_wait` for the uploader to free some (`remote::full`).
    pub cache_full: CacheFull,
    /// `cache_wait=SECONDS`: the wait of `cache_full=block` (whichever of the two comes first).
    pub cache_wait: Duration,
    /// Object-store images: `snapshot_interval=SECONDS` (default 600), how often the log
    /// shipper snapshots the metadata region, and `keep_snapshots=N` (default 2, at least 1),
    /// how many complete snapshots retention keeps (restore reaches back to the oldest).
    pub snapshot_interval: Option<Duration>,
    pub keep_snapshots: Option<usize>,
    /// `takeover` (object-store images): take the bucket's lease even while another writer
    /// holds it (a forced takeover, docs/format.md 11.3), and continue the log from this
    /// image's state though the bucket holds later records of the old writer's epoch.
    pub takeover: bool,
}

/// Parse a `cache_size=` value: bytes, with a binary `K`, `M`, `G` or `T` suffix; a plain
/// number is MiB.
fn parse_size(v: &str) -> Result<u64, String> {
    let bad = || format!("cache_size={v}: a size such as 512M or 4G (a plain number is MiB)");
    let (digits, unit) = match v.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&v[..i], c.to_ascii_uppercase()),
        _ => (v, 'M'),
    };
    let shift = match unit {
        'K' => 10,
        'M' => 20,
        'G' => 30,
        'T' => 40,
        _ => return Err(bad()),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(1 << shift).ok_or_else(bad)
}

/// Parse a number of seconds above 0 (fractions allowed, at most a day) for option `key`.
fn parse_seconds(key: &str, v: Option<&str>) -> Result<Duration, String> {
    let v = v.ok_or_else(|| format!("mount option {key} needs seconds"))?;
    v.parse::<f64>()
        .ok()
        .filter(|s| *s > 0.0 && *s <= 86400.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{key}={v}: seconds, above 0"))
}

/// Parse `inject_fault=OP:N[:enospc|eio]`.
fn parse_fault(v: &str) -> Result<(FaultOp, u64, i32), String> {
    let mut parts = v.split(':');
    let op = match parts.next() {
        Some("write") => FaultOp::Write,
        Some("durable_write") => FaultOp::DurableWrite,
        Some("sync") => FaultOp::Sync,
        Some("any") => FaultOp::Any,
        _ => {
            return Err(format!(
                "inject_fault={v}: OP is write, durable_write, sync or any"
            ))
        }
    };
    let n = parts
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("inject_fault={v}: N is a number"))?;
    let errno = match parts.next() {
        None | Some("eio") => libc::EIO,
        Some("enospc") => libc::ENOSPC,
        Some(e) => {
            return Err(format!(
                "inject_fault={v}: unknown errno {e} (eio or enospc)"
            ))
        }
    };
    Ok((op, n, errno))
}

/// Parse comma-separated option lists, in order (a later option overrides an earlier one).
///
/// Errors: the first unknown option or bad value, as a message.
pub fn parse_options(list: &[String]) -> Result<MountOptions, String> {
    let mut o = defaults();
    for opt in list
        .iter()
        .flat_map(|s| s.split(','))
        .filter(|s| !s.is_empty())
    {
        apply(&mut o, opt)?;
    }
    if let CacheFull::Block(_) = o.cache_full {
        o.cache_full = CacheFull::Block(o.cache_wait); // whichever of the two came first
    }
    if o.sync && o.writeback {
        // sync promises every write durable when it returns; under the writeback cache a
        // write returns before the daemon has seen it.
        return Err("mount options sync and writeback conflict (choose one)".into());
    }
    Ok(o)
}

/// FUSE worker threads when `threads=` is not given.
pub const DEFAULT_THREADS: usize = 8;

/// The options of a mount that gives none: `allow_other` when root mounts, `clone_fd` when
/// the daemon can open /dev/fuse itself.
fn defaults() -> MountOptions {
    // SAFETY: getuid has no preconditions.
    let root = unsafe { libc::getuid() } == 0;
    MountOptions {
        sync: false,
        commit: Some(Duration::from_secs(5)),
        commit_given: false,
        // 8, not 2: with more threads waiting, a serial client's requests wake the daemon on
        // another CPU less often (README "Performance", "How many FUSE threads").
        threads: DEFAULT_THREADS,
        // Needs a /dev/fuse we can open ourselves (fusermount3 passes us only its descriptor).
        clone_fd: std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
            .is_ok(),
        allow_other: root,
        read_only: false,
        errors: ErrorPolicy::default(),
        fault: None,
        stall: None,
        discard: true,
        checked: false,
        nodatasum: false,
        logdev: None,
        writeback: false,
        upload_interval: Duration::from_millis(500),
        upload_sync: false,
        credentials: None,
        crash_after_upload: false,
        cache_size: None,
        cache_full: CacheFull::default(),
        cache_wait: full::DEFAULT_WAIT,
        snapshot_interval: None,
        keep_snapshots: None,
        takeover: false,
    }
}

/// Apply one option `opt` (`KEY` or `KEY=VALUE`) to `o`.
///
/// Errors: an unknown option or a bad value, as a message.
fn apply(o: &mut MountOptions, opt: &str) -> Result<(), String> {
    let (key, value) = opt
        .split_once('=')
        .map_or((opt, None), |(k, v)| (k, Some(v)));
    let number = |v: Option<&str>| -> Result<u64, String> {
        v.ok_or_else(|| format!("mount option {key} needs a value"))?
            .parse()
            .map_err(|_| format!("mount option {key}: not a number"))
    };
    match key {
        "sync" => o.sync = true,
        "async" => o.sync = false,
        "commit" => {
            o.commit = Some(number(value)?)
                .filter(|&s| s > 0)
                .map(Duration::from_secs);
            o.commit_given = true;
        }
        "threads" => o.threads = number(value)?.clamp(1, 64) as usize,
        "noclone_fd" => o.clone_fd = false,
        "allow_other" => o.allow_other = true,
        "noallow_other" => o.allow_other = false,
        "ro" => o.read_only = true,
        "errors" => {
            let v = value.ok_or("mount option errors needs a value")?;
            o.errors = v.parse()?;
        }
        "inject_fault" => {
            o.fault = Some(parse_fault(value.unwrap_or_default())?);
        }
        "inject_stall" => {
            let v = value.ok_or("mount option inject_stall needs a path")?;
            o.stall = Some(v.into());
        }
        "discard" => o.discard = true,
        "nodiscard" => o.discard = false,
        "checked" => o.checked = true,
        "nodatasum" => o.nodatasum = true,
        "logdev" => match value {
            Some(v) if !v.is_empty() => o.logdev = Some(v.into()),
            _ => return Err("mount option logdev needs a path (logdev=PATH)".into()),
        },
        "datasum" => o.nodatasum = false,
        "writeback" => o.writeback = true,
        "nowriteback" => o.writeback = false,
        "rw" => o.read_only = false,
        "upload_interval" => o.upload_interval = parse_seconds(key, value)?,
        "cache_size" => {
            let v = value.ok_or("mount option cache_size needs a size (cache_size=4G)")?;
            o.cache_size = Some(parse_size(v)?);
        }
        "cache_full" => match value {
            Some("enospc") => o.cache_full = CacheFull::Enospc,
            Some("block") => o.cache_full = CacheFull::Block(o.cache_wait),
            _ => return Err("mount option cache_full is enospc or block".into()),
        },
        "cache_wait" => o.cache_wait = parse_seconds(key, value)?,
        "snapshot_interval" => o.snapshot_interval = Some(parse_seconds(key, value)?),
        "keep_snapshots" => match number(value)? {
            0 => return Err("mount option keep_snapshots is at least 1".into()),
            n => o.keep_snapshots = Some(n as usize),
        },
        "upload" => match value {
            Some("sync") => o.upload_sync = true,
            Some("async") => o.upload_sync = false,
            _ => return Err("mount option upload is sync or async".into()),
        },
        "inject_crash" => match value {
            Some("after_upload") => o.crash_after_upload = true,
            _ => return Err("mount option inject_crash is after_upload".into()),
        },
        "takeover" => o.takeover = true,
        "credentials" => match value {
            Some(v) if !v.is_empty() => o.credentials = Some(v.into()),
            _ => return Err("mount option credentials needs a path".into()),
        },
        "default_permissions" | "defaults" | "dev" | "suid" | "exec" | "atime" | "noatime" => {}
        _ => return Err(format!("unknown mount option '{opt}' (see rvmfs --help)")),
    }
    Ok(())
}

/// Options that only the mount command line may give, never the superblock's defaults
/// (`tune -o` refuses them): they decide how the image is opened, before its superblock is
/// read, or are for tests.
pub const COMMAND_LINE_ONLY: [&str; 7] = [
    "ro",
    "rw",
    "inject_fault",
    "inject_stall",
    "logdev",
    "inject_crash",
    "takeover",
];

/// The superblock's stored defaults as an option list (default mount options, then
/// `commit=` and `errors=` if stored), to be parsed before the command line's.
pub fn stored(sb: &crate::layout::superblock::Superblock) -> Vec<String> {
    let mut list = vec![sb.mount_opts()];
    if sb.commit_interval > 0 {
        list.push(format!("commit={}", sb.commit_interval));
    }
    if let Some(name) = sb.errors_name() {
        list.push(format!("errors={name}"));
    }
    list.retain(|o| !o.is_empty());
    list
}

/// The commit interval `o` asks for (None: commit only on fsync; `sync` never spools).
pub fn commit_interval(o: &MountOptions) -> Option<Duration> {
    if o.sync {
        None
    } else {
        o.commit
    }
}

/// The commit interval of an object-store (`object_data`) image's mount when `commit=` is
/// not given: short, so that the loss of the machine loses at most about a second of
/// answered operations (issue 14): records are shipped once durable in the log, by the
/// shipper every `remote::mount::SHIP_INTERVAL` (the window is the two plus one put).
pub const OBJECT_COMMIT: Duration = Duration::from_millis(500);

/// [`commit_interval`] on an image whose file data is (`object_data`) or is not in an
/// object store: [`OBJECT_COMMIT`] there unless `commit=` was given.
pub fn commit_interval_on(o: &MountOptions, object_data: bool) -> Option<Duration> {
    match commit_interval(o) {
        Some(_) if object_data && !o.commit_given => Some(OBJECT_COMMIT),
        c => c,
    }
}

/// Check a default mount option list for the superblock (`tune -o`): each option known to
/// the daemon, none of [`COMMAND_LINE_ONLY`].
///
/// Errors: the first bad option, as a message.
pub fn check_stored(list: &str) -> Result<(), String> {
    for opt in list.split(',').filter(|s| !s.is_empty()) {
        let key = opt.split_once('=').map_or(opt, |(k, _)| k);
        if COMMAND_LINE_ONLY.contains(&key) {
            return Err(format!(
                "'{opt}' can only be given on the mount command line, not stored as a default"
            ));
        }
    }
    parse_options(&[list.to_string()]).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(list: &str) -> Result<MountOptions, String> {
        parse_options(&[list.to_string()])
    }

    #[test]
    fn object_store_images_commit_often_unless_commit_is_given() {
        let on = |v: &str, object_data| opts(v).map(|o| commit_interval_on(&o, object_data));
        assert_eq!(on("", false), Ok(Some(Duration::from_secs(5))));
        assert_eq!(on("", true), Ok(Some(OBJECT_COMMIT)));
        assert_eq!(on("commit=5", true), Ok(Some(Duration::from_secs(5))));
        assert_eq!(on("commit=0", true), Ok(None));
        assert_eq!(on("sync", true), Ok(None));
    }

    #[test]
    fn cache_size_takes_binary_suffixes_and_plain_mib() {
        let size = |v: &str| opts(&format!("cache_size={v}")).map(|o| o.cache_size);
        assert_eq!(size("512"), Ok(Some(512 << 20)));
        assert_eq!(size("4G"), Ok(Some(4 << 30)));
        assert_eq!(size("64k"), Ok(Some(64 << 10)));
        assert_eq!(size("0"), Ok(Some(0)));
        assert!(size("4X").is_err() && size("G").is_err() && size("99999999999T").is_err());
        assert_eq!(opts("").map(|o| o.cache_size), Ok(None));
    }

    #[test]
    fn cache_full_waits_cache_wait_whichever_comes_first() {
        let policy = |v: &str| opts(v).map(|o| o.cache_full);
        assert_eq!(policy(""), Ok(CacheFull::Enospc));
        assert_eq!(
            policy("cache_full=block"),
            Ok(CacheFull::Block(full::DEFAULT_WAIT))
        );
        let two = CacheFull::Block(Duration::from_secs(2));
        assert_eq!(policy("cache_wait=2,cache_full=block"), Ok(two));
        assert_eq!(policy("cache_full=block,cache_wait=2"), Ok(two));
        assert_eq!(
            policy("cache_full=block,cache_full=enospc"),
            Ok(CacheFull::Enospc)
        );
        assert!(policy("cache_full=wait").is_err() && policy("cache_wait=0").is_err());
    }
}
