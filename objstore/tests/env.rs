//! Credentials and endpoint from the usual AWS environment variables alone (no credentials
//! file): `AWS_ENDPOINT_URL` (plain http is allowed because the user named it, without
//! `AWS_ALLOW_HTTP`), `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`. The only
//! test of this binary, since it sets the process's environment.

#[macro_use]
mod common;

use bytes::Bytes;
use objstore::{Bucket, Config, Put};

#[test]
fn the_aws_environment_variables_are_enough() {
    let s = require_s3!("env");
    for (k, v) in s.env() {
        if k != "AWS_ALLOW_HTTP" {
            std::env::set_var(k, v);
        }
    }
    std::env::remove_var("AWS_ALLOW_HTTP");
    let c = Config::from_env(&s.url("from/env")).unwrap();
    assert_eq!(c.endpoint.as_deref(), Some(s.endpoint.as_str()));
    assert!(c.credentials_file.is_none());
    let b = Bucket::open(&c).unwrap();
    b.put("k", Bytes::from_static(b"v"), Put::Create).unwrap();
    assert_eq!(b.get("k").unwrap().0.as_ref(), b"v");
    assert_eq!(b.list("").unwrap()[0].name, "k");
    // The image would record only the URL: nothing of the credentials is in the config's
    // target or in what messages print.
    assert!(!format!("{}", c.target).contains(s.secret_key.as_str()));
}
