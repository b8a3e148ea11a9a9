//! The test S3 server itself: `weed mini` comes up on loopback ports with its bucket, answers
//! S3 on its endpoint, and is gone (by its PID) once the guard is dropped.

use rvmfs_tests::*;
use std::path::Path;

#[test]
fn weed_mini_starts_with_its_bucket_and_dies_with_the_guard() {
    let t = std::time::Instant::now();
    let s = require_seaweed!("guard-test");
    eprintln!(
        "weed mini answered S3 with its bucket after {:?}",
        t.elapsed()
    );
    assert!(
        s.endpoint.starts_with("http://127.0.0.1:"),
        "{}",
        s.endpoint
    );
    assert_eq!(s.url("p"), "s3://guard-test/p");
    let env: Vec<_> = s.env().into_iter().map(|(k, _)| k).collect();
    assert!(env.contains(&"AWS_ENDPOINT_URL") && env.contains(&"AWS_SECRET_ACCESS_KEY"));
    // An unsigned request reaches the S3 server and is refused: credentials are on.
    let port = s.endpoint.rsplit(':').next().unwrap().to_string();
    let out = run(&mut cmd(
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://127.0.0.1:{port}/guard-test/"),
        ],
    ));
    if out.success() {
        assert_eq!(
            out.stdout.trim(),
            "403",
            "anonymous listing must be refused"
        );
    }
    let pid = s.pid();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    drop(s);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "weed {pid} outlived its guard"
    );
}
