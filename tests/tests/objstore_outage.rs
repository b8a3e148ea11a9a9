//! An object-store outage during a copy, at the daemon level (issue 14 item 4; README
//! "Object-store mode", "Outages"): the daemon reaches SeaweedFS through the fault-injecting
//! proxy (`tests/src/s3_proxy.rs`), which answers 5xx, throttles, answers slowly and drops
//! connections mid-copy, then fails every upload and shipment and hangs every read of a data
//! object. `cp -a` of a real tree completes meanwhile (writes go to the local blocks); an
//! uncached read answers EIO after the client's timeout instead of hanging; once the proxy
//! heals everything uploads, the clean unmount leaves fsck clean with nothing leaked, and
//! every file reads back byte-exact from the bucket alone.

use rvmfs_tests::s3_proxy::{Action, Rule};
use rvmfs_tests::*;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// An uncached read during the outage must have answered by then (the client gives a whole
/// operation 30 s, retries included).
const READ_LIMIT: Duration = Duration::from_secs(90);

/// The faults of the outage, first matching rule first: every read of a data object hangs;
/// the lease is throttled once; uploads and segments meet each kind of fault a few times,
/// then fail until the proxy is cleared.
fn outage_rules() -> Vec<Rule> {
    let mut rules = vec![
        Rule::new(Action::Delay(Duration::from_secs(3600)))
            .method("GET")
            .path("/data/"),
        Rule::new(Action::slow_down())
            .method("PUT")
            .path("/lease")
            .times(1),
    ];
    for dir in ["/data/", "/log/"] {
        let faults = [
            (Action::slow_down(), 2),
            (Action::internal_error(), 2),
            (Action::too_many_requests(), 2),
            (Action::Drop, 2),
            (Action::DelayAnswer(Duration::from_secs(3)), 1),
        ];
        for (a, n) in faults {
            rules.push(Rule::new(a).method("PUT").path(dir).times(n));
        }
    }
    rules.push(
        Rule::new(Action::unavailable())
            .method("PUT")
            .path("/data/"),
    );
    rules.push(Rule::new(Action::unavailable()).method("PUT").path("/log/"));
    rules
}

/// The daemon's environment: the server's, with the proxy as the endpoint.
fn through(s: &Seaweed, proxy: &S3Proxy, m: &mut Mounted) {
    for (k, v) in s.env() {
        let v = if k == "AWS_ENDPOINT_URL" {
            proxy.endpoint.clone()
        } else {
            v
        };
        m.set_daemon_env(k, &v);
    }
}

#[test]
fn a_copy_completes_through_an_outage_and_everything_uploads_after_it() {
    require_fuse!();
    let src = PathBuf::from("/usr/include/linux");
    if !src.is_dir() {
        eprintln!("SKIPPED: no /usr/include/linux");
        return;
    }
    let s = require_seaweed!("outage");
    let proxy = S3Proxy::start(&s.endpoint).expect("the proxy");
    let mut m = Mounted::empty();
    mkfs_data(&s, m.image(), ("256M", &s.url("img")), &[]).ok("mkfs-rvmfs --data");
    through(&s, &proxy, &mut m);
    m.set_mount_options(&["upload_interval=0.2"]);
    m.mount();
    let old = pattern(7, 300_000);
    std::fs::write(m.path("old"), &old).expect("write");
    m.unmount_ok(); // uploaded: its blocks live in the bucket only
    m.mount(); // nothing cached

    let (dst, from) = (m.mnt().to_path_buf(), src.clone());
    let copy = std::thread::spawn(move || {
        let o = cp_a(&[from], &dst);
        (o, Instant::now())
    });
    std::thread::sleep(Duration::from_millis(30));
    for r in outage_rules() {
        proxy.add(r);
    }
    let outage_began = Instant::now();
    let (o, copied_at) = copy.join().expect("cp");
    assert!(o.success(), "cp -a during the outage:\n{}", o.output());
    eprintln!(
        "cp -a done {:.2} s into the outage",
        copied_at
            .saturating_duration_since(outage_began)
            .as_secs_f64()
    );

    // An uncached read: EIO once the client gives up, never a hang.
    let (tx, rx) = mpsc::channel();
    let path = m.path("old");
    let read_began = Instant::now();
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::read(path));
    });
    let r = rx
        .recv_timeout(READ_LIMIT)
        .unwrap_or_else(|_| panic!("an uncached read still hangs after {READ_LIMIT:?}"));
    let e = r.expect_err("an uncached read while every GET hangs");
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    eprintln!(
        "uncached read answered EIO after {:.1} s ({} failed object-store reads logged)",
        read_began.elapsed().as_secs_f64(),
        m.daemon_log().matches("object store: ").count()
    );
    let faults = proxy.seen().iter().filter(|r| r.action.is_some()).count();
    let failed_puts = proxy
        .seen()
        .iter()
        .filter(|r| {
            r.method == "PUT" && matches!(r.action, Some(Action::Status { status: 503, .. }))
        })
        .count();
    assert!(
        failed_puts > 0,
        "no upload met the outage ({faults} faults)"
    );
    assert!(
        m.daemon_log().contains("upload failed"),
        "{}",
        m.daemon_log()
    );

    // Healed: a clean unmount uploads what is dirty and ships the rest.
    proxy.clear();
    m.unmount_ok();
    let fsck = fsck_data(&s, m.image(), &["-n", "-f"]);
    assert_eq!(
        fsck.code(),
        0,
        "fsck -n after the outage:\n{}",
        fsck.output()
    );
    assert!(fsck.stdout.contains(" 0 leaked"), "{}", fsck.stdout);
    drop_local_data(m.image());
    m.mount();
    assert_same_tree(&src, &m.path("linux"), Compare::CONTENT);
    assert_file(m.path("old"), &old);
    m.unmount_ok();
    eprintln!("{faults} requests met a fault");
}
