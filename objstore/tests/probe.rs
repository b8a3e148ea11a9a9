//! The conditional-write probe against a real SeaweedFS (which enforces If-None-Match and
//! If-Match: the probe passes) and against the same server behind a store that drops the
//! preconditions, as servers that ignore the headers do (the probe must refuse it).

mod common;

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use objstore::{probe_conditional_writes, Bucket, Error};
use rvmfs_tests::require_seaweed;
use std::sync::Arc;

#[test]
fn seaweedfs_enforces_conditional_writes() {
    let s = require_seaweed!("probe");
    let dir = tempfile::tempdir().unwrap();
    let b = common::bucket(&s, dir.path(), "img");
    probe_conditional_writes(&b).expect("SeaweedFS enforces If-None-Match and If-Match");
    assert!(
        b.list("probe").unwrap().is_empty(),
        "the probe removes its scratch object"
    );
}

/// The real store with every put turned into a plain overwrite: what a server that ignores
/// the conditional headers does.
#[derive(Debug)]
struct IgnoresPreconditions(Arc<dyn ObjectStore>);

impl std::fmt::Display for IgnoresPreconditions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IgnoresPreconditions({})", self.0)
    }
}

#[async_trait]
impl ObjectStore for IgnoresPreconditions {
    async fn put_opts(
        &self,
        p: &Path,
        payload: PutPayload,
        mut opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        opts.mode = PutMode::Overwrite;
        self.0.put_opts(p, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        p: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.0.put_multipart_opts(p, opts).await
    }
    async fn get_opts(&self, p: &Path, o: GetOptions) -> object_store::Result<GetResult> {
        self.0.get_opts(p, o).await
    }
    fn delete_stream(
        &self,
        l: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.0.delete_stream(l)
    }
    fn list(&self, p: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.0.list(p)
    }
    async fn list_with_delimiter(&self, p: Option<&Path>) -> object_store::Result<ListResult> {
        self.0.list_with_delimiter(p).await
    }
    async fn copy_opts(&self, a: &Path, b: &Path, o: CopyOptions) -> object_store::Result<()> {
        self.0.copy_opts(a, b, o).await
    }
}

#[test]
fn a_server_ignoring_preconditions_is_refused() {
    let s = require_seaweed!("probe-refuse");
    let dir = tempfile::tempdir().unwrap();
    let c = common::config(&s, dir.path(), "img");
    let real = Bucket::open(&c).unwrap();
    let fake = Bucket::with_store(&c, Arc::new(IgnoresPreconditions(real.store()))).unwrap();
    match probe_conditional_writes(&fake) {
        Err(e @ Error::NoConditionalWrites { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("If-None-Match") && msg.contains("refusing"),
                "{msg}"
            );
            assert!(
                msg.contains(&s.endpoint),
                "the message names the server: {msg}"
            );
        }
        other => panic!("the probe must refuse a store that ignores preconditions: {other:?}"),
    }
    assert!(
        real.list("probe").unwrap().is_empty(),
        "scratch object removed after a refusal too"
    );
}
