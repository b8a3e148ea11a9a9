//! The one async runtime of the object-store client: a small multi-threaded tokio runtime the
//! daemon owns, and [`Runtime::block_on`] for the synchronous callers (FUSE handlers, mkfs,
//! fsck), which run on threads of their own, never on the runtime's.

use crate::error::{Error, Result};
use std::future::Future;
use std::time::Duration;

/// Worker threads of the runtime: HTTP requests wait on the network, not the CPU.
pub const WORKER_THREADS: usize = 2;

/// The tokio runtime the client's futures run on.
pub struct Runtime {
    rt: tokio::runtime::Runtime,
}

impl Runtime {
    /// Start the runtime ([`WORKER_THREADS`] threads named `rvmfs-objstore`).
    /// Errors: [`Error::Runtime`] when the threads cannot be made.
    pub fn new() -> Result<Runtime> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKER_THREADS)
            .thread_name("rvmfs-objstore")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        Ok(Runtime { rt })
    }

    /// Run `fut` to completion from a thread outside the runtime, giving up after `limit`
    /// (`on_timeout` makes the error). Errors: [`Error::InsideRuntime`] when called from a
    /// runtime thread (blocking there would stall the very workers the future needs).
    pub fn block_on<T>(
        &self,
        limit: Duration,
        on_timeout: impl FnOnce() -> Error,
        fut: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::InsideRuntime);
        }
        match self
            .rt
            .block_on(async { tokio::time::timeout(limit, fut).await })
        {
            Ok(r) => r,
            Err(_) => Err(on_timeout()),
        }
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("objstore::Runtime")
    }
}
