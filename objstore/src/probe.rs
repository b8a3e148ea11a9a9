//! The conditional-write probe, run at mkfs and mount: some S3-compatible servers accept the
//! `If-None-Match: *` and `If-Match` headers and ignore them, which would let two writers
//! both "win" the lease. The probe writes one scratch object (`PREFIX/probe/UUID`) four
//! times and refuses the store unless each conditional put behaves as S3 documents:
//!
//! 1. create-only put of a new key: accepted;
//! 2. create-only put of the same key: refused (412);
//! 3. `If-Match` put with the current ETag: accepted;
//! 4. `If-Match` put with the ETag of step 1, now stale: refused (412).
//!
//! The scratch object is deleted afterwards, whatever the outcome.

use crate::bucket::{Bucket, Put, Version};
use crate::error::{Error, Result};
use bytes::Bytes;

/// Check that `bucket`'s server enforces create-only and compare-and-swap puts.
/// Errors: [`Error::NoConditionalWrites`] naming the step the server got wrong; any error of
/// the requests themselves (denied, timeout, …) as it came.
pub fn probe_conditional_writes(bucket: &Bucket) -> Result<()> {
    let name = format!("probe/{}", uuid::Uuid::new_v4());
    let r = probe_steps(bucket, &name);
    let cleanup = bucket.delete(&name);
    r.and(cleanup)
}

fn probe_steps(bucket: &Bucket, name: &str) -> Result<()> {
    let key = bucket.target().key(name);
    let refuse = |what: String| Error::NoConditionalWrites {
        endpoint: bucket.endpoint().to_string(),
        what,
    };
    let body = |n: u32| Bytes::from(format!("rvmfs conditional-write probe, step {n}\n"));
    let v1 = bucket.put(name, body(1), Put::Create)?;
    if v1.etag.is_none() && v1.version.is_none() {
        return Err(refuse(format!("a put of {key} returned no ETag")));
    }
    match bucket.put(name, body(2), Put::Create) {
        Err(Error::AlreadyExists { .. } | Error::Precondition { .. }) => {}
        Ok(_) => {
            return Err(refuse(format!(
                "a second create-only put (If-None-Match: *) of {key} was accepted"
            )))
        }
        Err(e) => return Err(e),
    }
    match bucket.put(name, body(3), Put::Update(v1.clone())) {
        Ok(_) => {}
        Err(Error::Precondition { .. }) => {
            return Err(refuse(format!(
                "an If-Match put of {key} with its current ETag was refused"
            )))
        }
        Err(e) => return Err(e),
    }
    let stale: Version = v1;
    match bucket.put(name, body(4), Put::Update(stale)) {
        Err(Error::Precondition { .. } | Error::AlreadyExists { .. }) => Ok(()),
        Ok(_) => Err(refuse(format!(
            "an If-Match put of {key} with a stale ETag was accepted"
        ))),
        Err(e) => Err(e),
    }
}
