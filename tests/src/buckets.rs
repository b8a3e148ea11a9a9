//! The object-store tests' plumbing around a running [`Seaweed`]: the programs run with the
//! server's environment (`mkfs-rvmfs --data`, `fsck-rvmfs`, `rvmfs-admin restore`, a daemon
//! in daemon mode), a [`Mounted`] whose daemons get it, and a client of the bucket
//! ([`open_bucket`]) for looking at what the daemons wrote (lease, `log/EPOCH/LSN` keys).

use crate::binaries::{bin, ADMIN, FSCK, MKFS, RVMFS};
use crate::mounted::Mounted;
use crate::processes::{cmd, run_timeout, Outcome};
use crate::seaweed::{Seaweed, ACCESS_KEY, SECRET_KEY};
use std::path::Path;
use std::time::Duration;

/// How long one of these programs may run.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// `mkfs-rvmfs -s SIZE --data URL [extra] IMAGE` with the server's environment.
pub fn mkfs_data(s: &Seaweed, image: &Path, (size, url): (&str, &str), extra: &[&str]) -> Outcome {
    let mut args = vec!["-s", size, "--data", url];
    args.extend_from_slice(extra);
    let mut c = cmd(bin(MKFS), &args);
    c.arg(image).envs(s.env());
    run_timeout(&mut c, RUN_TIMEOUT)
}

/// `fsck-rvmfs ARGS IMAGE` with the server's environment.
pub fn fsck_data(s: &Seaweed, image: &Path, args: &[&str]) -> Outcome {
    let mut c = cmd(bin(FSCK), args);
    c.arg(image).envs(s.env());
    run_timeout(&mut c, RUN_TIMEOUT)
}

/// `rvmfs-admin restore -f URL IMAGE` with the server's environment.
pub fn restore_data(s: &Seaweed, url: &str, image: &Path) -> Outcome {
    let mut c = cmd(bin(ADMIN), &["restore", "-f", url]);
    c.arg(image).envs(s.env());
    run_timeout(&mut c, RUN_TIMEOUT)
}

/// `rvmfs [-o OPTS] IMAGE MNT` in daemon mode (returns once mounted or refused) with the
/// server's environment.
pub fn mount_daemon(s: &Seaweed, image: &Path, mnt: &Path, opts: &[&str]) -> Outcome {
    let mut c = cmd(bin(RVMFS), &[] as &[&str]);
    if !opts.is_empty() {
        c.arg("-o").arg(opts.join(","));
    }
    c.arg(image).arg(mnt).envs(s.env());
    run_timeout(&mut c, RUN_TIMEOUT)
}

/// Later daemons of `m` get the server's environment (endpoint, credentials).
pub fn with_env(s: &Seaweed, m: &mut Mounted) {
    for (k, v) in s.env() {
        m.set_daemon_env(k, &v);
    }
}

/// A fresh object-store image of `size` (`256M`) on `prefix` of the server's bucket, mounted
/// with `opts`; the daemon reaches the bucket at `endpoint` (None: the server itself, else
/// e.g. an [`S3Proxy`](crate::S3Proxy) in front of it).
pub fn mounted_data(
    s: &Seaweed,
    (size, prefix): (&str, &str),
    endpoint: Option<&str>,
    opts: &[&str],
) -> Mounted {
    let mut m = Mounted::empty();
    mkfs_data(s, m.image(), (size, &s.url(prefix)), &[]).ok("mkfs-rvmfs --data");
    with_env(s, &mut m);
    if let Some(e) = endpoint {
        m.set_daemon_env("AWS_ENDPOINT_URL", e);
    }
    m.set_mount_options(opts);
    m.mount();
    m
}

/// A client of `s3://BUCKET/PREFIX` on the server (its keys given through a shared-credentials
/// file, which the client reads when opened).
pub fn open_bucket(s: &Seaweed, prefix: &str) -> objstore::Bucket {
    let creds = tempfile::NamedTempFile::new().expect("a temporary credentials file");
    let text = format!(
        "[default]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
    );
    std::fs::write(creds.path(), text).expect("writing the credentials file");
    let mut config = objstore::Config::from_env(&s.url(prefix)).expect("the bucket's URL");
    config.endpoint = Some(s.endpoint.clone());
    config.region = "us-east-1".into();
    config.credentials_file = Some(creds.path().to_path_buf());
    config.profile = "default".into();
    objstore::Bucket::open(&config).expect("a client of the bucket")
}

/// The shipped log segments of writer `epoch` under `log/` (their first Lsns, in order).
pub fn segments_of_epoch(bucket: &objstore::Bucket, epoch: u32) -> Vec<u64> {
    objstore::ship::listing::segments(bucket)
        .expect("listing log/")
        .into_iter()
        .filter(|s| s.epoch == epoch)
        .map(|s| s.first)
        .collect()
}

/// Punch the whole data area of `image` out (its header's `data_offset`, 0x40, to the end)
/// with `fallocate -p`: what is left of the files can only come from the bucket.
pub fn drop_local_data(image: &Path) {
    use std::io::Read;
    let mut head = [0u8; 0x48];
    std::fs::File::open(image)
        .and_then(|mut f| f.read_exact(&mut head))
        .expect("reading the image's header");
    let data_offset = u64::from_le_bytes(head[0x40..0x48].try_into().unwrap_or([0; 8]));
    let len = std::fs::metadata(image).expect("the image").len() - data_offset;
    let (at, len) = (data_offset.to_string(), len.to_string());
    let mut c = cmd("fallocate", &["-p", "-o", &at, "-l", &len]);
    crate::processes::run(c.arg(image)).ok("fallocate -p over the data area");
}
