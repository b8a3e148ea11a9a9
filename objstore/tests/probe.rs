//! The conditional-write probe against a real SeaweedFS (which enforces If-None-Match and
//! If-Match: the probe passes) and against the same server behind a store that drops the
//! preconditions, as servers that ignore the headers do (the probe must refuse it).

#[macro_use]
mod common;

use common::faulty::{Fault, Faulty};
use objstore::{probe_conditional_writes, Bucket, Error};
use std::sync::Arc;

#[test]
fn seaweedfs_enforces_conditional_writes() {
    let s = require_s3!("probe");
    let dir = tempfile::tempdir().unwrap();
    let b = common::bucket(&s, dir.path(), "img");
    let t = std::time::Instant::now();
    probe_conditional_writes(&b).expect("SeaweedFS enforces If-None-Match and If-Match");
    eprintln!(
        "probe (4 conditional puts and a delete) took {:?}",
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
    let c = common::config(&s, dir.path(), "img");
    let real = Bucket::open(&c).unwrap();
    let fake = Bucket::with_store(
        &c,
        Arc::new(Faulty {
            inner: real.store(),
            fault: Fault::IgnorePreconditions,
        }),
    )
    .unwrap();
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
