//! What the object-store tests share: a [`Config`] pointing at the test SeaweedFS with its
//! keys in a shared-credentials file (so that path is exercised too, and no test needs to set
//! process-wide environment variables), and [`faulty`], a store that injects faults.

pub mod faulty;

use objstore::{Bucket, Config};
use rvmfs_tests::seaweed::{ACCESS_KEY, SECRET_KEY};
use rvmfs_tests::Seaweed;
use std::time::Duration;

/// A config for `s3://BUCKET/prefix` on `s`, credentials from a file in `dir`.
pub fn config(s: &Seaweed, dir: &std::path::Path, prefix: &str) -> Config {
    let creds = dir.join("credentials");
    std::fs::write(
        &creds,
        format!("[rvmfs-test]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"),
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
pub fn bucket(s: &Seaweed, dir: &std::path::Path, prefix: &str) -> Bucket {
    Bucket::open(&config(s, dir, prefix)).expect("open the bucket")
}
