//! The single-writer lease against a real S3 server (SeaweedFS; Ceph RGW in the long mode): two
//! clients racing for it (exactly one wins, for a new lease and for an expired one), a holder
//! that lost it cannot renew, a takeover after expiry bumps the epoch, a running lease is
//! refused to others, a released one is taken at once.

#[macro_use]
mod common;

use objstore::{read_lease, Bucket, Error, Keeper, Lease, Status};
use std::sync::{Arc, Barrier};
use std::time::Duration;

/// Two clients (each its own runtime and connections) take the lease at the same instant;
/// the results in order.
fn race(a: Arc<Bucket>, b: Arc<Bucket>, ttl: Duration) -> Vec<Result<Lease, Error>> {
    let gate = Arc::new(Barrier::new(2));
    let threads: Vec<_> = [(a, "racer-a"), (b, "racer-b")]
        .into_iter()
        .map(|(bucket, holder)| {
            let gate = gate.clone();
            std::thread::spawn(move || {
                gate.wait();
                Lease::acquire(&bucket, holder, ttl)
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("racer thread"))
        .collect()
}

fn one_winner(results: &[Result<Lease, Error>]) -> &Lease {
    let wins: Vec<&Lease> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(wins.len(), 1, "exactly one racer must win: {results:?}");
    for r in results {
        if let Err(e) = r {
            assert!(
                matches!(e, Error::LeaseHeld { .. }),
                "the loser is told who holds it: {e}"
            );
        }
    }
    wins[0]
}

#[test]
fn two_clients_racing_for_the_lease_exactly_one_wins() {
    let s = require_s3!("race");
    let dir = tempfile::tempdir().unwrap();
    for round in 0..4 {
        let prefix = format!("img{round}");
        let a = Arc::new(common::bucket(&s, dir.path(), &prefix));
        let b = Arc::new(common::bucket(&s, dir.path(), &prefix));
        // No lease yet: both create-only puts race.
        let ttl = Duration::from_millis(800);
        let first = race(a.clone(), b.clone(), ttl);
        let w = one_winner(&first);
        assert_eq!(w.epoch(), 1);
        let (st, _) = read_lease(&a).unwrap().expect("the lease object exists");
        assert_eq!(&st, w.state(), "the object holds the winner's lease");
        // Expired: both If-Match puts on the same expired version race.
        std::thread::sleep(ttl + Duration::from_millis(300));
        let second = race(a.clone(), b.clone(), Duration::from_secs(30));
        let w2 = one_winner(&second);
        assert_eq!(w2.epoch(), 2, "a takeover increments the epoch");
        assert_eq!(read_lease(&b).unwrap().unwrap().0, *w2.state());
    }
}

#[test]
fn a_holder_that_lost_the_lease_cannot_renew() {
    let s = require_s3!("lost");
    let dir = tempfile::tempdir().unwrap();
    let a = common::bucket(&s, dir.path(), "img");
    let b = common::bucket(&s, dir.path(), "img");
    // Long enough that b's first try surely falls inside it, even on a loaded machine.
    let ttl = Duration::from_secs(2);
    let t = std::time::Instant::now();
    let mut la = Lease::acquire(&a, "machine-a", ttl).unwrap();
    let took = t.elapsed();
    la.renew(&a).expect("the holder renews its own lease");
    eprintln!("lease: take {took:?}, renew {:?}", t.elapsed() - took);
    assert_eq!(la.state().serial, 1);
    match Lease::acquire(&b, "machine-b", ttl) {
        Err(Error::LeaseHeld {
            holder,
            epoch,
            left,
            ..
        }) => {
            assert_eq!((holder.as_str(), epoch), ("machine-a", 1));
            assert!(left <= ttl, "{left:?}");
        }
        other => panic!("a running lease must be refused: {other:?}"),
    }
    std::thread::sleep(ttl + Duration::from_millis(300));
    let lb = Lease::acquire(&b, "machine-b", Duration::from_secs(30)).expect("takeover");
    assert_eq!(lb.epoch(), 2, "takeover after expiry bumps the epoch");
    match la.renew(&a) {
        Err(Error::LeaseLost { holder, epoch, .. }) => {
            assert_eq!((holder.as_str(), epoch), ("machine-b", 2));
        }
        other => panic!("the old holder must not renew: {other:?}"),
    }
    assert!(
        matches!(la.release(&a), Err(Error::LeaseLost { .. })),
        "nor release it"
    );
    assert_eq!(
        read_lease(&a).unwrap().unwrap().0,
        *lb.state(),
        "b's lease is intact"
    );
}

#[test]
fn a_released_lease_is_taken_at_once_and_a_forced_takeover_wins() {
    let s = require_s3!("release");
    let dir = tempfile::tempdir().unwrap();
    let a = common::bucket(&s, dir.path(), "img");
    let b = common::bucket(&s, dir.path(), "img");
    let la = Lease::acquire(&a, "first", Duration::from_secs(60)).unwrap();
    la.release(&a).unwrap();
    let mut lb = Lease::acquire(&b, "second", Duration::from_secs(60)).expect("released: free");
    assert_eq!(lb.epoch(), 2);
    let lc = Lease::take_over(&a, "admin", Duration::from_secs(60)).expect("forced takeover");
    assert_eq!(lc.epoch(), 3);
    assert!(matches!(
        lb.renew(&b),
        Err(Error::LeaseLost { epoch: 3, .. })
    ));
}

#[test]
fn a_corrupt_lease_object_is_an_error_not_a_free_lease() {
    let s = require_s3!("corrupt");
    let dir = tempfile::tempdir().unwrap();
    let a = common::bucket(&s, dir.path(), "img");
    a.put(
        "lease",
        bytes::Bytes::from_static(b"not json"),
        objstore::Put::Overwrite,
    )
    .unwrap();
    let e = Lease::acquire(&a, "x", Duration::from_secs(5)).unwrap_err();
    assert!(matches!(e, Error::LeaseCorrupt { .. }), "{e}");
    assert!(e.to_string().contains("img/lease"), "{e}");
}

#[test]
fn a_kept_lease_outlives_its_ttl_and_the_keeper_sees_a_takeover() {
    let s = require_s3!("keeper");
    let dir = tempfile::tempdir().unwrap();
    let a = Arc::new(common::bucket(&s, dir.path(), "img"));
    let b = common::bucket(&s, dir.path(), "img");
    let ttl = Duration::from_secs(2);
    let lease = Lease::acquire(&a, "daemon-a", ttl).unwrap();
    let keeper = Keeper::start(a.clone(), lease, ttl / 4);
    // Past its ttl it is still held: the renewals ran, and nobody can take it.
    std::thread::sleep(ttl + ttl / 2);
    assert!(keeper.may_commit(), "{:?}", keeper.status());
    assert!(matches!(
        Lease::acquire(&b, "machine-b", ttl),
        Err(Error::LeaseHeld { .. })
    ));
    // A forced takeover: within a renewal or two the keeper knows, and says no to commits.
    let lb = Lease::take_over(&b, "machine-b", Duration::from_secs(30)).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while keeper.may_commit() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!keeper.may_commit(), "the old writer must stop committing");
    assert_eq!(
        keeper.status(),
        Status::Lost {
            holder: "machine-b".into(),
            epoch: lb.epoch()
        }
    );
    assert!(keeper.stop().is_none(), "a lost lease is not handed back");
    // A keeper stopped while holding hands the lease back for release.
    let lb_keeper = Keeper::start(Arc::new(b), lb, Duration::from_secs(5));
    let back = lb_keeper.stop().expect("still ours");
    assert_eq!(back.epoch(), 2);
}
