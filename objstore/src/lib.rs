//! rvmfs's object-store client: an S3-compatible bucket reached through Apache Arrow's
//! `object_store` crate, for the object-store data tier (issue 14, docs/format.md "The
//! object-store data tier").
//!
//! One concept a module:
//! * [`target`]: `s3://BUCKET/PREFIX` ([`Target`]).
//! * [`config`]: endpoint, region, credentials from the AWS environment variables or a
//!   shared-credentials file ([`credentials`]), timeouts and retries ([`Config`]).
//! * [`runtime`]: the one tokio runtime, and `block_on` for synchronous callers.
//! * [`bucket`]: synchronous put (overwrite, create-only, if-match), get, ranged get, delete
//!   and complete listings under the prefix ([`Bucket`]).
//! * [`probe`]: refuse a server that ignores conditional writes
//!   ([`probe_conditional_writes`]).
//! * [`lease`]: the single-writer lease with its epoch ([`Lease`]).
//! * [`keeper`]: renewing the lease in a thread; may the writer commit ([`Keeper`]).
//! * [`object_id`]: data objects' names and virtual block numbers ([`ObjectId`]).
//! * [`object`]: a data object's bytes: blocks, CRC32Cs, trailer ([`object::pack`]).
//! * [`packer`]: dirty blocks packed into objects, each given its vblock ([`Packer`]).
//! * [`data`]: uploading a data object, reading one block back checked.
//! * [`leaks`]: leaked objects from a complete listing only ([`find_leaked`]).
//! * [`ship`]: the redo log streamed to the bucket: segments, snapshots, retention, restore
//!   ([`ship::Shipper`], [`ship::restore`]).
//! * [`error`]: the typed errors ([`Error`]).
//! * `le`: little-endian fields read out of objects' bytes.

pub mod bucket;
pub mod config;
pub mod credentials;
pub mod data;
pub mod error;
pub mod keeper;
mod le;
pub mod leaks;
pub mod lease;
pub mod object;
pub mod object_id;
pub mod packer;
pub mod probe;
pub mod runtime;
pub mod ship;
pub mod target;

pub use bucket::{Bucket, Listed, Put, Version};
pub use config::Config;
pub use error::{Error, Result};
pub use keeper::{Keeper, Status};
pub use leaks::{delete_leaked, find_leaked, Sweep};
pub use lease::{read_lease, Lease, LeaseState, LEASE_NAME};
pub use object_id::ObjectId;
pub use packer::{BlockRef, Packer, Sealed};
pub use probe::probe_conditional_writes;
pub use runtime::Runtime;
pub use target::Target;
