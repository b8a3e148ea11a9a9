//! Object-store outages, through the fault-injecting S3 proxy (`rvmfs_tests::s3_proxy`) in
//! front of a real server: puts and gets retried with backoff through 5xx and throttling and
//! then succeeding (the proxy counts the attempts); a server that answers too slowly gives a
//! timeout error, never a hang; a listing that fails on its second page makes the
//! leaked-object sweep fail whole (juicefs #6479); a keeper whose renewals keep failing stops
//! trusting its lease before anyone else could take it; a conditional put whose answer is
//! lost is resolved by reading the lease back (docs/format.md 11.3), and one answered too late
//! is not taken for a takeover.

#[macro_use]
mod common;

use bytes::Bytes;
use objstore::data::upload;
use objstore::object::BLOCK;
use objstore::{find_leaked, read_lease, Bucket, Error, Keeper, Lease, ObjectId, Put, Status};
use rvmfs_tests::s3_proxy::{Action, Rule, CUT_TOKEN};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The gaps between the proxy's successive requests `method` on `path`.
fn gaps(proxy: &rvmfs_tests::S3Proxy, method: &str, path: &str) -> Vec<Duration> {
    let at: Vec<Instant> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == method && s.path.contains(path))
        .map(|s| s.at)
        .collect();
    at.windows(2).map(|w| w[1] - w[0]).collect()
}

#[test]
fn puts_and_gets_are_retried_with_backoff_through_5xx_and_throttling() {
    let (proxy, c, b, direct, _keep) = require_proxied!("retry");
    for a in [
        Action::internal_error(),
        Action::slow_down(),
        Action::too_many_requests(),
    ] {
        proxy.add(Rule::new(a).method("PUT").path("/k1").times(1));
    }
    let data = Bytes::from(vec![7u8; 10_000]);
    b.put("k1", data.clone(), Put::Overwrite)
        .expect("a put retried through 500, 503 SlowDown and 429 succeeds");
    assert_eq!(
        proxy.count("PUT", "/k1"),
        4,
        "three refused attempts, then one that landed"
    );
    // Backoff: every retry waited at least the initial 100 ms (decorrelated jitter above it).
    for g in gaps(&proxy, "PUT", "/k1") {
        assert!(g >= Duration::from_millis(90), "retried after only {g:?}");
    }
    // A create-only put refused by throttling was not applied: its retry creates the object.
    proxy.add(
        Rule::new(Action::slow_down())
            .method("PUT")
            .path("/k2")
            .times(2),
    );
    b.put("k2", data.clone(), Put::Create)
        .expect("create-only through throttling");
    assert_eq!(proxy.count("PUT", "/k2"), 3);
    // Gets through 503s and a dropped connection.
    proxy.add(
        Rule::new(Action::unavailable())
            .method("GET")
            .path("/k1")
            .times(2),
    );
    proxy.add(Rule::new(Action::Drop).method("GET").path("/k1").times(1));
    let (got, _) = b.get("k1").expect("a get retried through 503s and a drop");
    assert_eq!(got, data);
    assert_eq!(proxy.count("GET", "/k1"), 4);
    // What the server holds is what was put, once (read past the proxy).
    assert_eq!(direct.get("k2").unwrap().0, data);
    // A server that keeps failing: an error after the retries (1 + max_retries attempts).
    proxy.add(
        Rule::new(Action::internal_error())
            .method("PUT")
            .path("/k3"),
    );
    let e = b.put("k3", data, Put::Overwrite).unwrap_err();
    assert!(matches!(e, Error::Store { .. }), "{e}");
    assert!(
        e.to_string().contains("img/k3") && e.to_string().contains("500"),
        "{e}"
    );
    assert_eq!(proxy.count("PUT", "/k3"), 1 + c.max_retries);
    assert!(matches!(direct.get("k3"), Err(Error::NotFound { .. })));
}

#[test]
fn a_slow_server_is_waited_for_within_the_timeout_and_past_it_is_an_error() {
    let (proxy, c, b, _, _keep) = require_proxied!("slow", |c| {
        c.request_timeout = Duration::from_millis(800);
        c.op_timeout = Duration::from_secs(2);
    });
    b.put("k", Bytes::from_static(b"v"), Put::Overwrite)
        .unwrap();
    // Slow but within the request timeout: answered.
    proxy.add(
        Rule::new(Action::Delay(Duration::from_millis(300)))
            .method("GET")
            .times(1),
    );
    assert_eq!(b.get("k").unwrap().0.as_ref(), b"v");
    // Past it, every time: a timeout error soon after the operation's limit, never a hang.
    proxy.add(Rule::new(Action::Delay(Duration::from_secs(30))).method("GET"));
    let t = Instant::now();
    let e = b.get("k").unwrap_err();
    let took = t.elapsed();
    assert!(
        took < c.op_timeout + Duration::from_secs(2),
        "gave up after {took:?}"
    );
    assert!(
        matches!(e, Error::Timeout { .. } | Error::Store { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("img/k"), "{e}");
    eprintln!("a server slower than the timeout: {e} (after {took:?})");
    assert!(
        proxy.count("GET", "/k") >= 2,
        "the slow request was retried"
    );
    // The same for a listing and a put.
    proxy.add(Rule::new(Action::Delay(Duration::from_secs(30))).method("PUT"));
    let t = Instant::now();
    assert!(b
        .put("k", Bytes::from_static(b"w"), Put::Overwrite)
        .is_err());
    assert!(b.list("").is_err());
    assert!(t.elapsed() < 2 * (c.op_timeout + Duration::from_secs(2)));
}

/// Upload `n` one-block objects of epoch 1 under `b`; their ids.
fn some_objects(b: &Bucket, n: u32) -> Vec<ObjectId> {
    let block = [5u8; BLOCK];
    (0..n)
        .map(|seq| {
            let id = ObjectId { epoch: 1, seq };
            upload(b, id, &[&block]).unwrap();
            id
        })
        .collect()
}

#[test]
fn a_listing_that_fails_on_its_second_page_makes_the_sweep_delete_nothing() {
    let (proxy, _, b, direct, _keep) = require_proxied!("pages");
    let ids = some_objects(&b, 5);
    let live: BTreeSet<ObjectId> = [ids[0]].into();
    // Unhindered, through the proxy: 4 leaked.
    assert_eq!(find_leaked(&b, &live).unwrap().leaked.len(), 4);
    // First page of 2 objects, then the next page fails: 500s (retried), or a dropped
    // connection every time.
    for second_page in [None, Some(Action::Drop)] {
        proxy.clear();
        if let Some(a) = second_page.clone() {
            proxy.add(Rule::new(a).query(CUT_TOKEN));
        }
        proxy.add(
            Rule::new(Action::CutListing { keep: 2 })
                .query("list-type=2")
                .times(1),
        );
        let e = find_leaked(&b, &live).expect_err("a listing cut short must fail the sweep");
        let msg = e.to_string();
        assert!(
            msg.contains("list") && msg.contains("img/data"),
            "says why: {msg}"
        );
        eprintln!("second page {second_page:?}: {msg}");
        assert!(
            proxy.seen().iter().any(|r| r.query.contains(CUT_TOKEN)),
            "the client asked for the second page"
        );
        assert_eq!(direct.list("data").unwrap().len(), 5, "nothing deleted");
    }
}

#[test]
fn failing_renewals_stop_the_commits_before_another_can_take_the_lease() {
    let (proxy, _, a, other, _keep) = require_proxied!("renewfail", |c| {
        c.op_timeout = Duration::from_millis(700);
        c.request_timeout = Duration::from_millis(300);
    });
    let a = Arc::new(a);
    let ttl = Duration::from_secs(2);
    let lease = Lease::acquire(&a, "daemon-a", ttl).unwrap();
    let keeper = Keeper::start(a.clone(), lease, ttl / 5);
    std::thread::sleep(ttl / 2);
    assert!(keeper.may_commit());
    // From now on every renewal fails (the server throttles, or the network is gone).
    proxy.add(
        Rule::new(Action::unavailable())
            .method("PUT")
            .path("/lease"),
    );
    let outage = Instant::now();
    let deadline = outage + 4 * ttl;
    let mut untrusted_at = None;
    let taken = loop {
        if untrusted_at.is_none() && !keeper.may_commit() {
            untrusted_at = Some(Instant::now());
        }
        match Lease::acquire(&other, "machine-b", Duration::from_secs(30)) {
            Ok(l) => break l,
            Err(Error::LeaseHeld { .. }) => {}
            Err(e) => panic!("{e}"),
        }
        assert!(Instant::now() < deadline, "the lease never expired");
        std::thread::sleep(Duration::from_millis(20));
    };
    // The moment another writer could take the lease, the keeper had stopped trusting it
    // (it trusts until sent + ttl, the expiry being set after that instant).
    assert!(
        !keeper.may_commit(),
        "the lease was taken while the keeper still allowed commits: {:?}",
        keeper.status()
    );
    eprintln!(
        "keeper stopped trusting {:?} into the outage, lease taken after {:?}",
        untrusted_at.map(|t| t - outage),
        outage.elapsed()
    );
    eprintln!("taken over {:?} into the outage", outage.elapsed());
    assert!(outage.elapsed() < ttl + Duration::from_secs(1));
    assert!(proxy.count("PUT", "/lease") >= 2, "the keeper kept trying");
    // The outage ends: the keeper's next renewal finds the takeover.
    proxy.clear();
    let deadline = Instant::now() + 5 * ttl;
    while matches!(keeper.status(), Status::Held { .. }) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        keeper.status(),
        Status::Lost {
            holder: "machine-b".into(),
            epoch: taken.epoch()
        }
    );
    assert!(!keeper.may_commit());
}

#[test]
fn a_lost_answer_to_a_conditional_put_is_resolved_by_reading_the_lease_back() {
    let (proxy, _, a, direct, _keep) = require_proxied!("lostanswer");
    let lost = || {
        Rule::new(Action::ApplyThenDrop)
            .method("PUT")
            .path("/lease")
            .times(1)
    };
    // Take (create-only): applied, connection dropped; the client retries, gets 412.
    proxy.add(lost());
    let mut l = Lease::acquire(&a, "machine-a", Duration::from_secs(30))
        .expect("a take whose answer was lost but which was applied is taken");
    assert_eq!(l.epoch(), 1);
    assert_eq!(read_lease(&direct).unwrap().unwrap().0, *l.state());
    // Renew (If-Match): the same, and the version is the one read back, so the next works.
    proxy.add(lost());
    l.renew(&a).expect("a renewal whose answer was lost");
    assert_eq!(read_lease(&direct).unwrap().unwrap().0, *l.state());
    l.renew(&a)
        .expect("and the next renewal matches the version read back");
    // Release: the same; the next writer takes it at once.
    proxy.add(lost());
    l.release(&a).expect("a release whose answer was lost");
    let next = Lease::acquire(&direct, "machine-b", Duration::from_secs(30)).unwrap();
    assert_eq!(next.epoch(), 2);
    eprintln!(
        "lease puts sent for 5 writes, 3 answers lost: {}",
        proxy.count("PUT", "/lease")
    );
    // A put whose connection dropped before the server saw it: retried, and done once.
    proxy.add(
        Rule::new(Action::Drop)
            .method("PUT")
            .path("/lease")
            .times(1),
    );
    let l = Lease::take_over(&a, "machine-c", Duration::from_secs(30)).expect("retried");
    assert_eq!(read_lease(&direct).unwrap().unwrap().0, *l.state());
    assert_eq!(l.epoch(), 3);
}

#[test]
fn a_slow_answer_to_a_lease_write_is_not_taken_for_a_takeover() {
    let (proxy, _, a, direct, _keep) = require_proxied!("slowanswer", |c| {
        c.request_timeout = Duration::from_millis(400);
        c.op_timeout = Duration::from_secs(3);
    });
    let mut l = Lease::acquire(&a, "machine-a", Duration::from_secs(30)).unwrap();
    // One renewal answered at once (on RGW the client learns here to send bare ETags).
    l.renew(&a).unwrap();
    // Applied at once, answered after the client gave up (a conditional put is not retried
    // after a timeout): the read-back shows it done.
    proxy.add(
        Rule::new(Action::DelayAnswer(Duration::from_secs(2)))
            .method("PUT")
            .path("/lease")
            .times(1),
    );
    l.renew(&a)
        .expect("a renewal applied but answered too late");
    assert_eq!(read_lease(&direct).unwrap().unwrap().0, *l.state());
    // Applied only after the client gave up and read back: the renewal fails, and the next
    // one finds this holder's own later write there, not a takeover.
    proxy.add(
        Rule::new(Action::Delay(Duration::from_secs(1)))
            .method("PUT")
            .path("/lease")
            .times(1),
    );
    let e = l
        .renew(&a)
        .expect_err("the renewal's fate was unknown when it returned");
    assert!(!matches!(e, Error::LeaseLost { .. }), "{e}");
    std::thread::sleep(Duration::from_millis(1500));
    let (late, _) = read_lease(&direct).unwrap().unwrap();
    assert_eq!(
        (late.holder.as_str(), late.serial),
        ("machine-a", l.state().serial + 1),
        "it landed"
    );
    l.renew(&a).expect("our own late write is not a takeover");
    assert_eq!(read_lease(&direct).unwrap().unwrap().0, *l.state());
    assert_eq!(l.state().serial, late.serial + 1);
    // A real takeover is still one.
    let b = Lease::take_over(&direct, "machine-b", Duration::from_secs(30)).unwrap();
    assert!(matches!(l.renew(&a), Err(Error::LeaseLost { epoch, .. }) if epoch == b.epoch()));
}

#[test]
fn a_lost_answer_to_a_data_upload_is_retried_into_done() {
    let (proxy, _, b, direct, _keep) = require_proxied!("lostupload");
    let id = ObjectId { epoch: 3, seq: 1 };
    let block = [9u8; BLOCK];
    proxy.add(
        Rule::new(Action::ApplyThenDrop)
            .method("PUT")
            .path("/data/")
            .times(1),
    );
    // The client retries after the broken connection, gets 412, and the upload finds its
    // own bytes under the key: done. (Were the error reported instead, the uploader's next
    // try would find them the same way.)
    let first = upload(&b, id, &[&block]).expect("the retried upload finds its own bytes");
    assert_eq!(first, 4100 + 24);
    assert_eq!(
        proxy.count("PUT", "/data/"),
        2,
        "sent, answer lost, sent again"
    );
    let again = upload(&b, id, &[&block]).expect("and so does a later try");
    assert_eq!(again, first);
    assert_eq!(direct.list("data").unwrap().len(), 1);
}
