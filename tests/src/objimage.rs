//! Object-store images for the end-to-end tests (issue 14): `mkfs.rvmfs --data` against a
//! [`Seaweed`], fsck with its environment, a fresh image mounted against it (or against an
//! [`S3Proxy`](crate::S3Proxy) in front of it), and the local data area punched out so what
//! is read can only come from the bucket.

use crate::{bin, cmd, run, run_timeout, Mounted, Outcome, Seaweed, FSCK, MKFS};
use std::io::Read;
use std::path::Path;
use std::time::Duration;

/// `mkfs-rvmfs -s SIZE --data URL [extra] IMAGE` with the server's environment.
pub fn mkfs_data(s: &Seaweed, image: &Path, (size, url): (&str, &str), extra: &[&str]) -> Outcome {
    let mut args = vec!["-s", size, "--data", url];
    args.extend_from_slice(extra);
    let mut c = cmd(bin(MKFS), &args);
    c.arg(image).envs(s.env());
    run_timeout(&mut c, Duration::from_secs(60))
}

/// `fsck-rvmfs ARGS IMAGE` with the server's environment: (exit code, output).
pub fn fsck_data(s: &Seaweed, image: &Path, args: &[&str]) -> (i32, String) {
    let mut c = cmd(bin(FSCK), args);
    c.arg(image).envs(s.env());
    let o = run_timeout(&mut c, Duration::from_secs(120));
    (o.code(), o.output())
}

/// A fresh object-store image of `size` (`256M`) on `prefix` of the server's bucket, mounted
/// with `opts`; the daemon reaches the bucket at `endpoint` (None: the server itself).
pub fn mounted_data(
    s: &Seaweed,
    (size, prefix): (&str, &str),
    endpoint: Option<&str>,
    opts: &[&str],
) -> Mounted {
    let mut m = Mounted::empty();
    mkfs_data(s, m.image(), (size, &s.url(prefix)), &[]).ok("mkfs-rvmfs --data");
    for (k, v) in s.env() {
        m.set_daemon_env(k, &v);
    }
    if let Some(e) = endpoint {
        m.set_daemon_env("AWS_ENDPOINT_URL", e);
    }
    m.set_mount_options(opts);
    m.mount();
    m
}

/// Punch the whole data area of `image` out (its header's `data_offset`, 0x40, to the end)
/// with `fallocate -p`: what is left can only come from the bucket.
pub fn drop_local_data(image: &Path) {
    let mut head = [0u8; 0x48];
    std::fs::File::open(image)
        .and_then(|mut f| f.read_exact(&mut head))
        .expect("read the image's header");
    let data_offset = u64::from_le_bytes(head[0x40..0x48].try_into().unwrap_or_default());
    let len = std::fs::metadata(image).expect("stat the image").len() - data_offset;
    let (at, len) = (data_offset.to_string(), len.to_string());
    let mut c = cmd("fallocate", &["-p", "-o", &at, "-l", &len]);
    run(c.arg(image)).ok("fallocate -p over the data area");
}
