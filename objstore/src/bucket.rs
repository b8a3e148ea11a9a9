//! [`Bucket`]: synchronous object operations under one `s3://BUCKET/PREFIX`, on the runtime
//! it owns. Names passed in are relative to the prefix; errors carry the full key.
//!
//! Conditional puts ([`Put::Create`] = `If-None-Match: *`, [`Put::Update`] = `If-Match:
//! ETAG`) are what the lease and the immutable data objects rest on; [`Bucket::list`] returns
//! a complete listing or an error, never a partial one (a garbage collector that deletes what
//! a listing lacks must not see half of it: juicefs #6479).

use crate::config::Config;
use crate::error::{Error, Result};
use crate::runtime::Runtime;
use crate::target::Target;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    UpdateVersion,
};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The version of an object a put or get saw: what an [`Put::Update`] must match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    pub etag: Option<String>,
    pub version: Option<String>,
}

/// How a put treats an existing object.
#[derive(Clone, Debug)]
pub enum Put {
    /// Write whatever is there.
    Overwrite,
    /// Only if no object has the key (`If-None-Match: *`), else [`Error::AlreadyExists`].
    Create,
    /// Only if the object is still at this version (`If-Match`), else [`Error::Precondition`].
    Update(Version),
}

/// One listed object: its name relative to the prefix, its size in bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub size: u64,
}

/// A bucket and prefix, with the runtime its requests run on.
pub struct Bucket {
    target: Target,
    endpoint: String,
    op_timeout: Duration,
    store: Arc<dyn ObjectStore>,
    runtime: Runtime,
    /// The server matched an `If-Match` with the bare ETag after refusing the quoted one:
    /// send bare ETags first from then on.
    bare_etags: AtomicBool,
}

impl Bucket {
    /// Connect to the bucket `config` names (no request is made yet).
    /// Errors: [`Error::Config`] (credentials file, endpoint), [`Error::Runtime`].
    pub fn open(config: &Config) -> Result<Bucket> {
        let store = config
            .builder()?
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        Self::with_store(config, Arc::new(store))
    }

    /// A bucket over any `object_store` implementation: the seam where tests put a store that
    /// injects faults (or ignores preconditions) between rvmfs and a real server.
    pub fn with_store(config: &Config, store: Arc<dyn ObjectStore>) -> Result<Bucket> {
        Ok(Bucket {
            target: config.target.clone(),
            endpoint: config.endpoint_name(),
            op_timeout: config.op_timeout,
            store,
            runtime: Runtime::new()?,
            bare_etags: AtomicBool::new(false),
        })
    }

    /// The `s3://BUCKET/PREFIX` this bucket writes under.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The endpoint, as messages name it.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The underlying store (to wrap it in a fault-injecting one in tests).
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    fn run<T>(
        &self,
        op: &'static str,
        key: &str,
        fut: impl std::future::Future<Output = object_store::Result<T>>,
    ) -> Result<T> {
        let after = self.op_timeout;
        let timeout = || Error::Timeout {
            op,
            key: key.to_string(),
            after,
        };
        let fut = async { fut.await.map_err(|e| Error::from_store(op, key, e)) };
        self.runtime.block_on(after, timeout, fut)
    }

    /// Put `data` at `name` under the rule `mode`; the new object's version.
    /// Errors: [`Error::AlreadyExists`], [`Error::Precondition`], [`Error::Timeout`], ….
    ///
    /// An [`Put::Update`] refused with a quoted ETag (`"…"`, as servers return it and RFC 9110
    /// writes it) is sent once more with the bare ETag: Ceph RGW 16.2 compares `If-Match` with
    /// the unquoted ETag only, so a quoted one never matches there (docs/format.md 11.2); once
    /// that worked, this client sends bare ETags first. A server that matches quoted ETags
    /// refuses a stale unquoted one just the same; the probe checks that both a current and a
    /// stale ETag behave through this path.
    pub fn put(&self, name: &str, data: Bytes, mode: Put) -> Result<Version> {
        match mode {
            Put::Overwrite => self.put_once(name, data, PutMode::Overwrite),
            Put::Create => self.put_once(name, data, PutMode::Create),
            Put::Update(v) => {
                let mode = |e_tag: Option<&str>| {
                    PutMode::Update(UpdateVersion {
                        e_tag: e_tag.map(String::from),
                        version: v.version.clone(),
                    })
                };
                let quoted = v.etag.as_deref();
                let bare = quoted.and_then(|e| e.strip_prefix('"')?.strip_suffix('"'));
                if bare.is_some() && self.bare_etags.load(Ordering::Relaxed) {
                    return self.put_once(name, data, mode(bare));
                }
                match (self.put_once(name, data.clone(), mode(quoted)), bare) {
                    (Err(Error::Precondition { .. }), Some(bare)) => {
                        let r = self.put_once(name, data, mode(Some(bare)));
                        if r.is_ok() {
                            self.bare_etags.store(true, Ordering::Relaxed);
                        }
                        r
                    }
                    (r, _) => r,
                }
            }
        }
    }

    fn put_once(&self, name: &str, data: Bytes, mode: PutMode) -> Result<Version> {
        let key = self.target.key(name);
        let opts = PutOptions::from(mode);
        let path = Path::from(key.as_str());
        let r = self.run(
            "put",
            &key,
            self.store.put_opts(&path, PutPayload::from(data), opts),
        )?;
        Ok(Version {
            etag: r.e_tag,
            version: r.version,
        })
    }

    /// The whole object at `name` and its version. Errors: [`Error::NotFound`], ….
    pub fn get(&self, name: &str) -> Result<(Bytes, Version)> {
        let key = self.target.key(name);
        let path = Path::from(key.as_str());
        self.run("get", &key, async {
            let r = self.store.get(&path).await?;
            let v = Version {
                etag: r.meta.e_tag.clone(),
                version: r.meta.version.clone(),
            };
            Ok((r.bytes().await?, v))
        })
    }

    /// Bytes `range` (offsets in bytes) of the object at `name`.
    pub fn get_range(&self, name: &str, range: Range<u64>) -> Result<Bytes> {
        let key = self.target.key(name);
        let path = Path::from(key.as_str());
        self.run("get", &key, self.store.get_range(&path, range))
    }

    /// The last `n` bytes of the object at `name`, and the object's whole size in bytes.
    pub fn get_tail(&self, name: &str, n: u64) -> Result<(Bytes, u64)> {
        let key = self.target.key(name);
        let path = Path::from(key.as_str());
        let opts = GetOptions {
            range: Some(GetRange::Suffix(n)),
            ..GetOptions::default()
        };
        self.run("get", &key, async {
            let r = self.store.get_opts(&path, opts).await?;
            let size = r.meta.size;
            Ok((r.bytes().await?, size))
        })
    }

    /// Delete the object at `name` (no error if it is already gone, as S3 does).
    pub fn delete(&self, name: &str) -> Result<()> {
        let key = self.target.key(name);
        let path = Path::from(key.as_str());
        match self.run("delete", &key, self.store.delete(&path)) {
            Err(Error::NotFound { .. }) => Ok(()),
            r => r,
        }
    }

    /// Every object under `PREFIX/dir`, names relative to the prefix, in key order. The
    /// listing is complete or an error: one failed page fails the whole call.
    pub fn list(&self, dir: &str) -> Result<Vec<Listed>> {
        let key = self.target.key(dir);
        let path = Path::from(key.as_str());
        let strip = match self.target.prefix.as_str() {
            "" => 0,
            p => p.len() + 1,
        };
        let mut all: Vec<Listed> = self.run("list", &key, async {
            let metas: Vec<_> = self.store.list(Some(&path)).try_collect().await?;
            Ok(metas
                .into_iter()
                .map(|m| Listed {
                    name: m.location.as_ref()[strip.min(m.location.as_ref().len())..].to_string(),
                    size: m.size,
                })
                .collect())
        })?;
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }
}
