//! The client's object operations against a real S3 server (SeaweedFS; Ceph RGW in the long
//! mode): puts under each rule, whole and ranged gets, complete listings, deletes; refused
//! credentials, a server that does not answer, and a port where nothing listens, each as its
//! own typed error.

#[macro_use]
mod common;

use bytes::Bytes;
use objstore::{Bucket, Error, Put};
use std::time::{Duration, Instant};

#[test]
fn put_get_range_list_delete_under_the_prefix() {
    let s = require_s3!("ops");
    let dir = tempfile::tempdir().unwrap();
    let b = common::bucket(&s, dir.path(), "img/one");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let v = b
        .put("data/1-0", Bytes::from(data.clone()), Put::Create)
        .unwrap();
    assert!(v.etag.is_some(), "{} returns an ETag", s.name());
    let (got, v2) = b.get("data/1-0").unwrap();
    assert_eq!(got.as_ref(), &data[..]);
    assert_eq!(v2.etag, v.etag);
    let r = b.get_range("data/1-0", 4096..8192 + 17).unwrap();
    assert_eq!(r.as_ref(), &data[4096..8192 + 17]);
    b.put("data/1-1", Bytes::from_static(b"x"), Put::Overwrite)
        .unwrap();
    b.put("other", Bytes::from_static(b"y"), Put::Overwrite)
        .unwrap();
    let names: Vec<_> = b
        .list("data")
        .unwrap()
        .into_iter()
        .map(|l| (l.name, l.size))
        .collect();
    assert_eq!(
        names,
        vec![
            ("data/1-0".to_string(), 200_000),
            ("data/1-1".to_string(), 1)
        ]
    );
    // Another prefix of the same bucket sees none of it.
    let other = common::bucket(&s, dir.path(), "img/two");
    assert!(other.list("").unwrap().is_empty());
    b.delete("data/1-0").unwrap();
    b.delete("data/1-0").unwrap(); // already gone: fine, as S3 does
    assert!(matches!(b.get("data/1-0"), Err(Error::NotFound { .. })));
    assert_eq!(b.list("data").unwrap().len(), 1);
}

#[test]
fn wrong_credentials_are_denied_not_retried_forever() {
    let s = require_s3!("denied");
    let dir = tempfile::tempdir().unwrap();
    let mut c = common::config(&s, dir.path(), "p");
    std::fs::write(
        c.credentials_file.as_ref().unwrap(),
        format!(
            "[rvmfs-test]\naws_access_key_id = {}\naws_secret_access_key = wrong\n",
            s.access_key
        ),
    )
    .unwrap();
    c.profile = "rvmfs-test".into();
    let b = Bucket::open(&c).unwrap();
    let e = b
        .put("k", Bytes::from_static(b"x"), Put::Overwrite)
        .unwrap_err();
    assert!(
        matches!(e, Error::Denied { .. } | Error::Store { .. }),
        "a bad secret must fail the put: {e}"
    );
    assert!(b.list("").is_err(), "nor may a listing pass");
}

#[test]
fn a_silent_server_times_out_and_a_closed_port_fails() {
    let s = require_s3!("silent");
    let dir = tempfile::tempdir().unwrap();
    // Accepts connections, never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut c = common::config(&s, dir.path(), "p");
    c.endpoint = Some(format!("http://{}", silent.local_addr().unwrap()));
    c.op_timeout = Duration::from_secs(1);
    c.request_timeout = Duration::from_millis(300);
    let b = Bucket::open(&c).unwrap();
    let t = Instant::now();
    let e = b.get("k").unwrap_err();
    assert!(
        matches!(e, Error::Timeout { .. } | Error::Store { .. }),
        "{e}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "gave up after {:?}",
        t.elapsed()
    );
    assert!(
        e.to_string().contains("p/k"),
        "the error names the key: {e}"
    );
    drop(silent);
    // Nothing listens there any more: connection refused, retried, then an error.
    let e = b.list("").unwrap_err();
    assert!(
        matches!(e, Error::Timeout { .. } | Error::Store { .. }),
        "{e}"
    );
}
