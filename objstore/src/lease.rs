//! The single-writer lease: one object, `PREFIX/lease`, holding who writes (a holder id, new
//! for every mount), the writer's epoch and when the lease expires. The idea is Litestream's
//! lease on plain S3 with conditional writes; Gray and Cheriton's leases (SOSP 1989) for the
//! timing.
//!
//! * taken with a create-only put when there is none (epoch 1);
//! * renewed with `If-Match` on the version the holder last wrote: a holder whose lease was
//!   taken over gets [`Error::LeaseLost`] and must commit nothing more;
//! * taken over when expired, with `If-Match` on the expired version, epoch incremented, so
//!   of two machines racing for it exactly one wins ([`Error::LeaseHeld`] for the other);
//! * released at a clean unmount by writing it expired (same epoch), so the next writer need
//!   not wait.
//!
//! Every data object and log segment key carries the epoch, so a writer that lost the lease
//! cannot overwrite the new writer's objects even before it notices. Expiry is compared
//! against the taker's wall clock: machines' clocks must agree to well within the lease time.
//! The holder itself trusts its lease only until [`Lease::valid_until`], measured on its
//! monotonic clock from the moment it *sent* the write that set the expiry.
//!
//! A conditional put whose answer was lost can have been applied: retried by the client, it
//! comes back as a precondition failure; given up on (a timeout), it is an error. On either
//! the lease is read back, and if it holds exactly what this holder wrote, the write counts as
//! done. A renewal that finds a later write of its own holder and epoch there (one that timed
//! out and landed after the read-back) takes that version and writes again, instead of taking
//! its own write for a takeover.

use crate::bucket::{Bucket, Put, Version};
use crate::error::{Error, Result};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Attempts of a forced takeover that each lose to the holder's renewal before it gives up.
const FORCE_TRIES: u32 = 5;

/// The lease object's name under the prefix.
pub const LEASE_NAME: &str = "lease";

/// What the lease object holds (JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseState {
    /// Who holds it: unique per mount (e.g. `host:pid:uuid`).
    pub holder: String,
    /// The writer's epoch: 1 for the first writer, +1 at every takeover.
    pub epoch: u64,
    /// When the lease expires, in milliseconds since the Unix epoch (0: released).
    pub expires_unix_ms: u64,
    /// Writes of this epoch (take, renewals, release): makes every body, so every ETag, new.
    pub serial: u64,
}

/// A lease this process holds.
#[derive(Debug)]
pub struct Lease {
    state: LeaseState,
    version: Version,
    ttl: Duration,
    valid_until: Instant,
}

/// Milliseconds since the Unix epoch, now.
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Read the lease object: `None` when there is none. Errors: [`Error::LeaseCorrupt`], or
/// the request's.
pub fn read_lease(bucket: &Bucket) -> Result<Option<(LeaseState, Version)>> {
    match bucket.get(LEASE_NAME) {
        Ok((body, v)) => {
            let st = serde_json::from_slice(&body).map_err(|e| Error::LeaseCorrupt {
                key: bucket.target().key(LEASE_NAME),
                why: e.to_string(),
            })?;
            Ok(Some((st, v)))
        }
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn encode(st: &LeaseState) -> Bytes {
    // A struct of strings and integers always serializes.
    Bytes::from(serde_json::to_vec(st).unwrap_or_default())
}

impl Lease {
    /// Take the lease for `holder` for `ttl`: create it if there is none, take it over
    /// (epoch plus one) if it has expired. Errors: [`Error::LeaseHeld`] when another
    /// holder's lease is still running or another taker won the race; the requests' errors.
    pub fn acquire(bucket: &Bucket, holder: &str, ttl: Duration) -> Result<Lease> {
        Self::take(bucket, holder, ttl, false)
    }

    /// Take the lease even if another holder's has not expired (an administrator's forced
    /// takeover): epoch plus one, and the old holder's next renewal fails.
    pub fn take_over(bucket: &Bucket, holder: &str, ttl: Duration) -> Result<Lease> {
        Self::take(bucket, holder, ttl, true)
    }

    fn take(bucket: &Bucket, holder: &str, ttl: Duration, force: bool) -> Result<Lease> {
        let mut tries = 0;
        loop {
            tries += 1;
            let sent = Instant::now();
            let now = unix_ms();
            let (epoch, mode) = match read_lease(bucket)? {
                None => (1, Put::Create),
                Some((cur, v)) => {
                    if cur.expires_unix_ms > now && !force {
                        return Err(held(bucket, &cur, now));
                    }
                    (cur.epoch + 1, Put::Update(v))
                }
            };
            let state = LeaseState {
                holder: holder.to_string(),
                epoch,
                expires_unix_ms: now + ttl.as_millis() as u64,
                serial: 0,
            };
            match write_checked(bucket, &state, mode)? {
                Ok(version) => {
                    return Ok(Lease {
                        state,
                        version,
                        ttl,
                        valid_until: sent + ttl,
                    })
                }
                // A forced take met the holder's renewal between its read and its write
                // (same epoch): read again. A new epoch means another taker won.
                Err((winner, _)) if force && winner.epoch + 1 == epoch && tries < FORCE_TRIES => {}
                Err((winner, _)) => return Err(held(bucket, &winner, unix_ms())),
            }
        }
    }

    /// Extend the lease by its ttl from now. Errors: [`Error::LeaseLost`] when another holder
    /// took it over (this writer must stop committing); the requests' errors (the lease is
    /// then still valid until [`Lease::valid_until`]; retry before that).
    pub fn renew(&mut self, bucket: &Bucket) -> Result<()> {
        let sent = Instant::now();
        let next = LeaseState {
            expires_unix_ms: unix_ms() + self.ttl.as_millis() as u64,
            serial: self.state.serial + 1,
            ..self.state.clone()
        };
        self.replace(bucket, next)?;
        self.valid_until = sent + self.ttl;
        Ok(())
    }

    /// Give the lease up: write it expired (same epoch), so the next writer takes it at once.
    /// Errors: [`Error::LeaseLost`] if it was no longer ours.
    pub fn release(mut self, bucket: &Bucket) -> Result<()> {
        let next = LeaseState {
            expires_unix_ms: 0,
            serial: self.state.serial + 1,
            ..self.state.clone()
        };
        self.replace(bucket, next)
    }

    fn replace(&mut self, bucket: &Bucket, mut next: LeaseState) -> Result<()> {
        let mut adopted = false;
        loop {
            match write_checked(bucket, &next, Put::Update(self.version.clone()))? {
                Ok(v) => {
                    self.version = v;
                    self.state = next;
                    return Ok(());
                }
                // A write of ours that failed (its answer came too late) landed after all: the
                // lease is still ours, at that version. Write again on top of it, once.
                Err((winner, Some(v))) if !adopted && self.is_own_later(&winner) => {
                    adopted = true;
                    next.serial = winner.serial + 1;
                    self.state = winner;
                    self.version = v;
                }
                Err((winner, _)) => {
                    return Err(Error::LeaseLost {
                        key: bucket.target().key(LEASE_NAME),
                        holder: winner.holder,
                        epoch: winner.epoch,
                    })
                }
            }
        }
    }

    /// Is `st` a later write of this very holder in this epoch (one whose answer was lost)?
    fn is_own_later(&self, st: &LeaseState) -> bool {
        st.holder == self.state.holder
            && st.epoch == self.state.epoch
            && st.serial > self.state.serial
    }

    /// The writer's epoch this lease grants.
    pub fn epoch(&self) -> u64 {
        self.state.epoch
    }

    /// What the lease object holds as this holder last wrote it.
    pub fn state(&self) -> &LeaseState {
        &self.state
    }

    /// Until when (monotonic clock) this holder may trust its lease without renewing.
    pub fn valid_until(&self) -> Instant {
        self.valid_until
    }
}

/// What a conditional write of the lease found instead: the lease another write put there,
/// with its version (`None` when the lease was deleted).
type Other = (LeaseState, Option<Version>);

/// Write `st` with `mode`: `Ok(Ok(version))` if it is now the lease (directly, or a write
/// whose answer was lost but that was applied), `Ok(Err(other))` with the lease another write
/// put there.
///
/// The answer can be lost two ways: the client retried after a broken connection and the
/// retry got 412 (the first try was applied), or the client gave up on a slow answer (a
/// timeout: `object_store` does not retry a conditional put then). Either way the lease is
/// read back, and holding exactly `st` means done.
fn write_checked(
    bucket: &Bucket,
    st: &LeaseState,
    mode: Put,
) -> Result<std::result::Result<Version, Other>> {
    match bucket.put(LEASE_NAME, encode(st), mode) {
        Ok(v) => Ok(Ok(v)),
        Err(Error::AlreadyExists { .. } | Error::Precondition { .. }) => {
            match read_lease(bucket)? {
                Some((cur, v)) if &cur == st => Ok(Ok(v)),
                Some((cur, v)) => Ok(Err((cur, Some(v)))),
                // Deleted in between: nobody holds it, but we do not either.
                None => Ok(Err((
                    LeaseState {
                        holder: "nobody (lease deleted)".into(),
                        epoch: 0,
                        expires_unix_ms: 0,
                        serial: 0,
                    },
                    None,
                ))),
            }
        }
        Err(e @ (Error::Timeout { .. } | Error::Store { .. })) => match read_lease(bucket) {
            Ok(Some((cur, v))) if &cur == st => Ok(Ok(v)),
            _ => Err(e),
        },
        Err(e) => Err(e),
    }
}

fn held(bucket: &Bucket, cur: &LeaseState, now_ms: u64) -> Error {
    Error::LeaseHeld {
        key: bucket.target().key(LEASE_NAME),
        holder: cur.holder.clone(),
        epoch: cur.epoch,
        left: Duration::from_millis(cur.expires_unix_ms.saturating_sub(now_ms)),
    }
}
