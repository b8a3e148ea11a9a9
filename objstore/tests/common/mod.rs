//! What the object-store tests share: the S3 server a test runs against ([`Server`], through
//! [`require_s3!`]), a [`Config`] pointing at it with its keys in a shared-credentials file
//! (so that path is exercised too, and no test needs to set process-wide environment
//! variables), and [`faulty`], a store that injects faults.
//!
//! The server is the test's own SeaweedFS (`weed mini`, started and killed by the test), or,
//! in the long mode, the engine `scripts/ceph-rgw.sh test` started (Ceph's RADOS Gateway):
//! it names it in `RVMFS_S3_ENGINE`, `RVMFS_S3_ENDPOINT`, `RVMFS_S3_BUCKET`,
//! `RVMFS_S3_ACCESS_KEY`, `RVMFS_S3_SECRET_KEY`. Tests then share its one bucket, each under a
//! prefix of its own (`NAME-RANDOM/`).

// Each test binary uses part of it.
#![allow(dead_code)]

pub mod faulty;

use objstore::{Bucket, Config};
use rvmfs_tests::seaweed::{ACCESS_KEY, SECRET_KEY};
use rvmfs_tests::{S3Proxy, Seaweed};
use std::time::Duration;

/// Which S3 server a test talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    SeaweedFs,
    CephRgw,
}

/// An S3 server with a bucket to write in.
pub struct Server {
    pub engine: Engine,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    /// The test's own part of the bucket (empty for its own SeaweedFS).
    namespace: String,
    _seaweed: Option<Seaweed>,
}

impl Server {
    /// The engine the long mode started, if any (`RVMFS_S3_ENDPOINT` set), with `name` in
    /// the test's prefix. Panics when the variables are set but incomplete or the engine is
    /// unknown: a long run must not pass on the wrong server.
    pub fn external(name: &str) -> Option<Server> {
        let endpoint = std::env::var("RVMFS_S3_ENDPOINT").ok()?;
        let var = |k: &str| {
            std::env::var(k).unwrap_or_else(|_| panic!("{k} unset with RVMFS_S3_ENDPOINT"))
        };
        let engine = match var("RVMFS_S3_ENGINE").as_str() {
            "ceph" => Engine::CephRgw,
            "seaweedfs" => Engine::SeaweedFs,
            e => panic!("RVMFS_S3_ENGINE={e}: expected ceph or seaweedfs"),
        };
        let tag = uuid::Uuid::new_v4().simple().to_string();
        Some(Server {
            engine,
            endpoint,
            bucket: var("RVMFS_S3_BUCKET"),
            access_key: var("RVMFS_S3_ACCESS_KEY"),
            secret_key: var("RVMFS_S3_SECRET_KEY"),
            namespace: format!("{name}-{}", &tag[..8]),
            _seaweed: None,
        })
    }

    /// The test's own SeaweedFS.
    pub fn seaweed(s: Seaweed) -> Server {
        Server {
            engine: Engine::SeaweedFs,
            endpoint: s.endpoint.clone(),
            bucket: s.bucket.clone(),
            access_key: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.into(),
            namespace: String::new(),
            _seaweed: Some(s),
        }
    }

    /// The prefix `prefix` of this test under the bucket: what its keys start with.
    pub fn prefix(&self, prefix: &str) -> String {
        match (self.namespace.as_str(), prefix) {
            ("", p) => p.to_string(),
            (n, "") => n.to_string(),
            (n, p) => format!("{n}/{p}"),
        }
    }

    /// `s3://BUCKET/PREFIX` for `prefix` of this test.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix(prefix))
    }

    /// The environment a client needs: `AWS_ENDPOINT_URL`, `AWS_REGION`, the keys,
    /// `AWS_ALLOW_HTTP`.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_ACCESS_KEY_ID", self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.clone()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
        ]
    }

    /// The engine as messages name it.
    pub fn name(&self) -> &'static str {
        match self.engine {
            Engine::SeaweedFs => "SeaweedFS",
            Engine::CephRgw => "Ceph RGW",
        }
    }
}

/// The long mode's engine if one is named, else a SeaweedFS of the test's own (skipping the
/// test without `weed`, failing it under `CI=true`: see `rvmfs_tests::require_seaweed!`).
macro_rules! require_s3 {
    ($name:expr) => {
        match common::Server::external($name) {
            Some(s) => s,
            None => common::Server::seaweed(rvmfs_tests::require_seaweed!($name)),
        }
    };
}

/// A config for `s3://BUCKET/prefix` on `s`, credentials from a file in `dir`.
pub fn config(s: &Server, dir: &std::path::Path, prefix: &str) -> Config {
    let creds = dir.join("credentials");
    std::fs::write(
        &creds,
        format!(
            "[rvmfs-test]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            s.access_key, s.secret_key
        ),
    )
    .expect("write the credentials file");
    let mut c = Config::from_env(&s.url(prefix)).expect("the test URL parses");
    c.endpoint = Some(s.endpoint.clone());
    c.region = "us-east-1".into();
    c.credentials_file = Some(creds);
    c.profile = "rvmfs-test".into();
    c.op_timeout = Duration::from_secs(20);
    c
}

/// A fresh client (its own runtime and connections) for `s3://BUCKET/prefix` on `s`.
pub fn bucket(s: &Server, dir: &std::path::Path, prefix: &str) -> Bucket {
    Bucket::open(&config(s, dir, prefix)).expect("open the bucket")
}

/// Two clients for `prefix` on `s`: one straight to the server, and one whose store injects
/// `fault` between it and the server (`faulty::Faulty`).
pub fn with_fault(
    s: &Server,
    dir: &std::path::Path,
    prefix: &str,
    fault: faulty::Fault,
) -> (Bucket, Bucket) {
    let c = config(s, dir, prefix);
    let real = Bucket::open(&c).expect("open the bucket");
    let store = std::sync::Arc::new(faulty::Faulty {
        inner: real.store(),
        fault,
    });
    let faulty = Bucket::with_store(&c, store).expect("open the faulty bucket");
    (real, faulty)
}

/// What keeps a test's server and directory alive: bind it to a named variable (`_keep`).
pub type Keep = (Server, tempfile::TempDir);

/// A test through the fault-injecting proxy (`rvmfs_tests::s3_proxy`) in front of `s`:
/// `(proxy, config, client, direct, keep)`, the config for prefix `img` through the proxy
/// (changed by `tune`, timeouts, before the client is opened on it), the client through the
/// proxy, one straight to the server, and what keeps the server and the test's directory.
pub fn proxied(
    s: Server,
    tune: impl FnOnce(&mut Config),
) -> (S3Proxy, Config, Bucket, Bucket, Keep) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let proxy = S3Proxy::start(&s.endpoint).expect("start the S3 proxy");
    let mut c = config(&s, dir.path(), "img");
    c.endpoint = Some(proxy.endpoint.clone());
    tune(&mut c);
    let b = Bucket::open(&c).expect("open the bucket through the proxy");
    let direct = bucket(&s, dir.path(), "img");
    (proxy, c, b, direct, (s, dir))
}

/// [`require_s3!`], then [`proxied`] on its server (`tune` optional).
#[allow(unused_macros)] // outage.rs alone goes through the proxy
macro_rules! require_proxied {
    ($name:expr) => {
        common::proxied(require_s3!($name), |_| {})
    };
    ($name:expr, $tune:expr) => {
        common::proxied(require_s3!($name), $tune)
    };
}
