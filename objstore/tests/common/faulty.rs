//! A store between the client and the real SeaweedFS that injects one kind of fault: puts
//! with their preconditions dropped (a server that ignores `If-None-Match`/`If-Match`), or a
//! listing that fails after some objects (a lost page, a timeout mid-listing), or `If-Match`
//! compared with the bare ETag only (Ceph RGW 16.2).
// Each test binary uses part of it.
#![allow(dead_code)]

use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use std::sync::Arc;

/// The fault to inject.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Every put becomes a plain overwrite.
    IgnorePreconditions,
    /// A listing yields this many objects, then an error.
    FailListAfter(usize),
    /// `If-Match` with a quoted ETag always fails (412), as on Ceph RGW 16.2, which compares
    /// the header with the bare ETag.
    BareEtagIfMatch,
}

/// The real store with one [`Fault`].
#[derive(Debug)]
pub struct Faulty {
    pub inner: Arc<dyn ObjectStore>,
    pub fault: Fault,
}

impl std::fmt::Display for Faulty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Faulty({:?}, {})", self.fault, self.inner)
    }
}

#[async_trait]
impl ObjectStore for Faulty {
    async fn put_opts(
        &self,
        p: &Path,
        payload: PutPayload,
        mut opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        match (&self.fault, &opts.mode) {
            (Fault::IgnorePreconditions, _) => opts.mode = PutMode::Overwrite,
            (Fault::BareEtagIfMatch, PutMode::Update(v))
                if v.e_tag.as_deref().is_some_and(|e| e.starts_with('"')) =>
            {
                return Err(object_store::Error::Precondition {
                    path: p.to_string(),
                    source: "injected: a quoted ETag never matches".into(),
                });
            }
            _ => {}
        }
        self.inner.put_opts(p, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        p: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(p, opts).await
    }
    async fn get_opts(&self, p: &Path, o: GetOptions) -> object_store::Result<GetResult> {
        self.inner.get_opts(p, o).await
    }
    fn delete_stream(
        &self,
        l: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(l)
    }
    fn list(&self, p: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let inner = self.inner.list(p);
        match self.fault {
            Fault::FailListAfter(n) => {
                let fail = futures::stream::once(async {
                    Err(object_store::Error::Generic {
                        store: "Faulty",
                        source: "injected: listing page lost".into(),
                    })
                });
                inner.take(n).chain(fail).boxed()
            }
            _ => inner,
        }
    }
    async fn list_with_delimiter(&self, p: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(p).await
    }
    async fn copy_opts(&self, a: &Path, b: &Path, o: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(a, b, o).await
    }
}
