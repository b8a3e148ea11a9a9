//! The errors of the object-store client, one variant per thing a caller decides on: a
//! conditional write that lost ([`Error::AlreadyExists`], [`Error::Precondition`]), a missing
//! object, a refused credential, a timeout, a server that ignores conditional writes, the
//! lease held or lost by another writer.

use std::time::Duration;

/// What went wrong talking to the bucket. `key` is always the full object key (prefix
/// included), as the server sees it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `s3://bucket/prefix` target does not parse.
    #[error("bad object-store URL {url:?}: {why} (expected s3://BUCKET[/PREFIX])")]
    BadUrl { url: String, why: &'static str },
    /// The endpoint, region or credentials are unusable.
    #[error("object-store configuration: {0}")]
    Config(String),
    /// A create-only put (`If-None-Match: *`) found the key taken.
    #[error("object {key} already exists")]
    AlreadyExists { key: String },
    /// An `If-Match` put found another version: someone else wrote the object since.
    #[error("object {key} changed since it was read (precondition failed)")]
    Precondition { key: String },
    /// No object at that key.
    #[error("object {key} not found")]
    NotFound { key: String },
    /// The server refused the credentials (401/403).
    #[error("{op} {key}: access denied (check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the credentials file): {source}")]
    Denied {
        op: &'static str,
        key: String,
        source: object_store::Error,
    },
    /// The operation, retries included, did not finish in time.
    #[error("{op} {key}: no answer from the object store within {after:?}")]
    Timeout {
        op: &'static str,
        key: String,
        after: Duration,
    },
    /// Any other failure of the store (5xx after the retries, connection refused, bad reply).
    #[error("{op} {key}: {source}")]
    Store {
        op: &'static str,
        key: String,
        source: object_store::Error,
    },
    /// The server accepted a write that its precondition should have refused.
    #[error("the object store at {endpoint} does not enforce conditional writes: {what}; rvmfs needs If-None-Match/If-Match puts for its single-writer lease, refusing this store")]
    NoConditionalWrites { endpoint: String, what: String },
    /// Another writer holds the lease.
    #[error(
        "the bucket is in use: lease {key} held by {holder} (epoch {epoch}) for {left:?} more"
    )]
    LeaseHeld {
        key: String,
        holder: String,
        epoch: u64,
        left: Duration,
    },
    /// The lease was taken over by another writer; this one must commit nothing more.
    #[error("lease {key} lost: taken over by {holder} (epoch {epoch})")]
    LeaseLost {
        key: String,
        holder: String,
        epoch: u64,
    },
    /// A data object's bytes are not what rvmfs wrote (CRC, trailer, identity).
    #[error("data object {key} is corrupt: {source}")]
    CorruptObject {
        key: String,
        source: crate::object::ObjectError,
    },
    /// The lease object does not hold a lease (not JSON of the expected shape).
    #[error("lease {key} is corrupt: {why}")]
    LeaseCorrupt { key: String, why: String },
    /// The async runtime could not start (threads).
    #[error("cannot start the object-store runtime: {0}")]
    Runtime(std::io::Error),
    /// A blocking call was made from a thread of the runtime itself (it would deadlock).
    #[error("blocking object-store call from inside its async runtime")]
    InsideRuntime,
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Map an `object_store` error for operation `op` on `key` onto our variants.
    pub(crate) fn from_store(op: &'static str, key: &str, e: object_store::Error) -> Error {
        let key = key.to_string();
        match e {
            object_store::Error::AlreadyExists { .. } => Error::AlreadyExists { key },
            object_store::Error::Precondition { .. } => Error::Precondition { key },
            object_store::Error::NotFound { .. } => Error::NotFound { key },
            e @ (object_store::Error::Unauthenticated { .. }
            | object_store::Error::PermissionDenied { .. }) => Error::Denied { op, key, source: e },
            e => Error::Store { op, key, source: e },
        }
    }
}
