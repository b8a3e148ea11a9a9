//! The conditional-write probe against a real server (SeaweedFS, or Ceph RGW in the long mode:
//! both enforce If-None-Match and If-Match, the probe passes), against the same server behind
//! a store that drops the preconditions, as servers that ignore the headers do (the probe must
//! refuse it), and behind one that matches If-Match against the bare ETag only, as RGW 16.2
//! does (passes through the client's unquoted retry, which still refuses a stale ETag).

#[macro_use]
mod common;

use common::faulty::Fault;
use objstore::{probe_conditional_writes, Error};

#[test]
fn the_server_enforces_conditional_writes() {
    let s = require_s3!("probe");
    let dir = tempfile::tempdir().unwrap();
    let b = common::bucket(&s, dir.path(), "img");
    let t = std::time::Instant::now();
    probe_conditional_writes(&b)
        .unwrap_or_else(|e| panic!("{} enforces If-None-Match and If-Match: {e}", s.name()));
    eprintln!(
        "probe on {} (4 conditional puts and a delete) took {:?}",
        s.name(),
        t.elapsed()
    );
    assert!(
        b.list("probe").unwrap().is_empty(),
        "the probe removes its scratch object"
    );
}

#[test]
fn a_server_ignoring_preconditions_is_refused() {
    let s = require_s3!("probe-refuse");
    let dir = tempfile::tempdir().unwrap();
    let (real, fake) = common::with_fault(&s, dir.path(), "img", Fault::IgnorePreconditions);
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

#[test]
fn a_server_matching_only_bare_etags_passes_and_still_refuses_stale_ones() {
    let s = require_s3!("probe-bare");
    let dir = tempfile::tempdir().unwrap();
    let (real, rgw_like) = common::with_fault(&s, dir.path(), "img", Fault::BareEtagIfMatch);
    probe_conditional_writes(&rgw_like)
        .expect("If-Match retried with the bare ETag: current accepted, stale refused");
    let v1 = rgw_like
        .put("k", bytes::Bytes::from_static(b"1"), objstore::Put::Create)
        .unwrap();
    let v2 = rgw_like
        .put(
            "k",
            bytes::Bytes::from_static(b"2"),
            objstore::Put::Update(v1.clone()),
        )
        .unwrap();
    assert!(matches!(
        rgw_like.put(
            "k",
            bytes::Bytes::from_static(b"3"),
            objstore::Put::Update(v1)
        ),
        Err(Error::Precondition { .. })
    ));
    assert_eq!(
        real.get("k").unwrap(),
        (bytes::Bytes::from_static(b"2"), v2)
    );
}
