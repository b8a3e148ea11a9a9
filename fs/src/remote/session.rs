//! The daemon's session with the bucket of an `object_data` image (docs/format.md 11.2,
//! 11.3): connect (one tokio runtime, owned by the [`Bucket`]), probe that the server enforces
//! conditional writes, take the single-writer lease and keep it renewed (`objstore::Keeper`).
//! When the lease is lost or can no longer be trusted, a watcher thread puts the filesystem
//! in its error state (`Rvm::fail`: every later commit is refused, reads go on: as
//! `errors=remount-ro`). A clean unmount releases the lease ([`Session::close`]).
//!
//! Other parts that write to the bucket (the uploader; a log shipper) take the bucket and the
//! epoch from here: every key they write carries the epoch.

use super::lock;
use objstore::{probe_conditional_writes, Bucket, Config, Keeper, Lease, Status};
use rvm_core::Rvm;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a lease runs without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(30);
/// How often the keeper renews it (a third of its time).
pub const RENEW_EVERY: Duration = Duration::from_secs(10);
/// How often the watcher looks at the keeper's status.
const WATCH_EVERY: Duration = Duration::from_millis(200);
/// The watcher stops the writer this long before the lease's trusted time ends (a commit
/// under way when it looks must not outlive it).
const MARGIN: Duration = Duration::from_secs(2);

/// Why the session could not start.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("{0}")]
    Store(#[from] objstore::Error),
    #[error("the image's data URL {url:?}: {why}")]
    BadImage { url: String, why: String },
}

/// How to reach the bucket: the image's URL, and optionally an AWS shared-credentials file
/// (else the AWS environment variables).
#[derive(Clone, Debug, Default)]
pub struct Access {
    pub url: String,
    pub credentials_file: Option<PathBuf>,
}

impl Access {
    /// The bucket this names, connected (no request yet).
    /// Errors: a bad URL, an unreadable credentials file.
    pub fn open(&self) -> Result<Arc<Bucket>, objstore::Error> {
        let mut config = Config::from_env(&self.url)?;
        config.credentials_file = self.credentials_file.clone();
        Ok(Arc::new(Bucket::open(&config)?))
    }
}

/// A mount's hold on the bucket: the lease and its epoch.
pub struct Session {
    bucket: Arc<Bucket>,
    epoch: u32,
    /// This mount's holder id in the lease.
    holder: String,
    /// Set when a read of the lease found another holder (holder, epoch): never ours again.
    superseded: Mutex<Option<(String, u64)>>,
    keeper: Mutex<Option<Keeper>>,
    stop: Arc<AtomicBool>,
    watcher: Mutex<Option<JoinHandle<()>>>,
}

/// Who this mount is, for the lease: `host:pid:uuid`.
pub fn holder_id() -> String {
    format!(
        "{}:{}:{}",
        hostname(),
        std::process::id(),
        uuid::Uuid::new_v4()
    )
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    match r {
        0 => crate::layout::superblock::text_field(&buf),
        _ => "unknown-host".into(),
    }
}

/// Is `holder` (`host:pid:uuid`) a process of this machine that no longer runs? Its lease
/// is then stale (it was killed, e.g. `kill -9`) and may be taken over at once instead of
/// waiting for it to expire.
fn holder_is_dead_here(holder: &str) -> bool {
    let mut parts = holder.split(':');
    let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
        return false;
    };
    let Ok(pid) = pid.parse::<i32>() else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks that the process exists.
    let gone = unsafe { libc::kill(pid, 0) } != 0
        && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
    host == hostname() && pid != std::process::id() as i32 && gone
}

/// Take the lease on `bucket` for a new holder: a free or expired one, or one whose holder
/// was a process of this machine that is gone. Errors: `LeaseHeld` ("the bucket is in use
/// ...") when a live writer holds it; the requests' errors.
pub fn take_lease(bucket: &Bucket) -> Result<Lease, objstore::Error> {
    let me = holder_id();
    match Lease::acquire(bucket, &me, LEASE_TTL) {
        Err(objstore::Error::LeaseHeld { holder, .. }) if holder_is_dead_here(&holder) => {
            log::warn!(
                "lease held by {holder}, a process of this machine that is gone: taking it over"
            );
            Lease::take_over(bucket, &me, LEASE_TTL)
        }
        r => r,
    }
}

/// Take the lease on `bucket` even if a live writer holds it (`-o takeover`, an
/// administrator's forced takeover, docs/format.md 11.3): epoch plus one; the old holder's
/// next renewal or lease check fails and it commits nothing more.
/// Errors: another taker won the race (`LeaseHeld`); the requests' errors.
pub fn take_lease_forced(bucket: &Bucket) -> Result<Lease, objstore::Error> {
    if let Some((held, _)) = objstore::read_lease(bucket)? {
        log::warn!(
            "takeover: taking the lease from {} (epoch {})",
            held.holder,
            held.epoch
        );
    }
    Lease::take_over(bucket, &holder_id(), LEASE_TTL)
}

impl Session {
    /// Connect to the bucket `access` names, probe it and take the lease (by force with
    /// `takeover`); watch it from now on, failing `rvm` (no more commits) if it is lost.
    /// Errors: the probe's refusal, "the bucket is in use", the requests' errors.
    pub fn start(
        access: &Access,
        rvm: Arc<Rvm>,
        takeover: bool,
    ) -> Result<Arc<Session>, SessionError> {
        let bucket = access.open()?;
        probe_conditional_writes(&bucket)?;
        let lease = match takeover {
            true => take_lease_forced(&bucket)?,
            false => take_lease(&bucket)?,
        };
        let epoch = u32::try_from(lease.epoch())
            .ok()
            .filter(|&e| e <= objstore::object_id::MAX_EPOCH)
            .ok_or_else(|| SessionError::BadImage {
                url: access.url.clone(),
                why: format!("lease epoch {} is past the largest one", lease.epoch()),
            })?;
        log::info!("{}: lease taken, epoch {epoch}", bucket.target());
        let holder = lease.state().holder.clone();
        let keeper = Keeper::start(bucket.clone(), lease, RENEW_EVERY);
        let session = Arc::new(Session {
            bucket,
            epoch,
            holder,
            superseded: Mutex::default(),
            keeper: Mutex::new(Some(keeper)),
            stop: Arc::default(),
            watcher: Mutex::default(),
        });
        let s = session.clone();
        let watcher = std::thread::Builder::new()
            .name("rvmfs-lease-watch".into())
            .spawn(move || s.watch(&rvm))
            .map_err(|e| SessionError::BadImage {
                url: access.url.clone(),
                why: format!("cannot start the lease watcher: {e}"),
            })?;
        *lock(&session.watcher) = Some(watcher);
        Ok(session)
    }

    /// The bucket (for the uploader and a log shipper).
    pub fn bucket(&self) -> &Arc<Bucket> {
        &self.bucket
    }

    /// This writer's epoch: every key written under it carries it.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// May the writer commit now (the lease held and trusted)?
    pub fn may_commit(&self) -> bool {
        if lock(&self.superseded).is_some() {
            return false;
        }
        match lock(&self.keeper).as_ref().map(Keeper::status) {
            Some(Status::Held { valid_until, .. }) => Instant::now() + MARGIN < valid_until,
            _ => false,
        }
    }

    /// May the log shipper put now? As [`Session::may_commit`], and the lease object read
    /// back still names this holder and epoch: a forced takeover (`-o takeover` elsewhere)
    /// stops this writer's segments at once, not only at its next renewal (docs/format.md
    /// 11.7 "Epochs"). A failed read leaves the answer to the keeper's trust.
    pub fn may_ship(&self) -> bool {
        if !self.may_commit() {
            return false;
        }
        match objstore::read_lease(&self.bucket) {
            Ok(Some((st, _))) if st.holder == self.holder && st.epoch == u64::from(self.epoch) => {
                true
            }
            Ok(found) => {
                let (holder, epoch) =
                    found.map_or(("nobody".into(), 0), |(st, _)| (st.holder, st.epoch));
                log::error!(
                    "{}: the lease is now {holder}'s (epoch {epoch})",
                    self.bucket.target()
                );
                *lock(&self.superseded) = Some((holder, epoch));
                false
            }
            Err(e) => {
                log::warn!("{}: reading the lease back: {e}", self.bucket.target());
                true
            }
        }
    }

    fn watch(&self, rvm: &Rvm) {
        while !self.stop.load(Ordering::Relaxed) {
            std::thread::sleep(WATCH_EVERY);
            if self.stop.load(Ordering::Relaxed) || self.may_commit() {
                continue;
            }
            let seen = lock(&self.superseded).clone();
            let status = match seen {
                Some((holder, epoch)) => Some(Status::Lost { holder, epoch }),
                None => lock(&self.keeper).as_ref().map(Keeper::status),
            };
            let why = match status {
                Some(Status::Lost { holder, epoch }) => {
                    format!("the lease was taken over by {holder} (epoch {epoch})")
                }
                _ => "the lease could not be renewed in time".into(),
            };
            log::error!(
                "{}: {why}: committing nothing more (read-only)",
                self.bucket.target()
            );
            let _ = rvm.fail(std::io::Error::other(format!(
                "object store {}: {why}",
                self.bucket.target()
            )));
            return;
        }
    }

    /// Clean unmount: stop watching and renewing, release the lease (best effort: logged).
    pub fn close(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(w) = lock(&self.watcher).take() {
            let _ = w.join();
        }
        let Some(keeper) = lock(&self.keeper).take() else {
            return;
        };
        match keeper.stop() {
            Some(lease) => match lease.release(&self.bucket) {
                Ok(()) => log::info!("{}: lease released", self.bucket.target()),
                Err(e) => log::warn!("{}: releasing the lease: {e}", self.bucket.target()),
            },
            None => log::warn!(
                "{}: the lease was lost, nothing to release",
                self.bucket.target()
            ),
        }
    }
}
