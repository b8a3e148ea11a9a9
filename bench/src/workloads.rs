//! The workloads, run the same way on every system: real syscalls through std::fs and libc,
//! and real programs (tar, find, du, rm) for the source-tree workload.

use crate::mounts::run;
use crate::requests::Phase;
use anyhow::{bail, Context, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

pub const MIB: f64 = 1024.0 * 1024.0;

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// Flush everything and drop the kernel's page, dentry and inode caches (needs root).
pub fn drop_caches() -> Result<()> {
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
    fs::write("/proc/sys/vm/drop_caches", "3").context("echo 3 > /proc/sys/vm/drop_caches")
}

/// Create `n` empty files in one directory, stat them all, unlink them all: ops/s each.
pub fn files_create_stat_unlink(dir: &Path, n: usize) -> Result<[f64; 3]> {
    fs::create_dir_all(dir)?;
    let names: Vec<_> = (0..n).map(|i| dir.join(format!("f{i:06}"))).collect();
    let t = Phase::start();
    for p in &names {
        OpenOptions::new().write(true).create_new(true).open(p)?;
    }
    let create = rate(n, t.end("create", n));
    let t = Phase::start();
    for p in &names {
        let m = fs::metadata(p)?;
        if m.len() != 0 {
            bail!("{} is not empty", p.display());
        }
    }
    let stat = rate(n, t.end("stat", n));
    let t = Phase::start();
    for p in &names {
        fs::remove_file(p)?;
    }
    let unlink = rate(n, t.end("unlink", n));
    fs::remove_dir(dir)?;
    Ok([create, stat, unlink])
}

/// mkdir of a 10 x 10 x 10 tree (1,110 directories, 1,000 leaves), then `rm -rf` of it.
/// Returns (mkdir ops/s, rm -rf seconds).
pub fn dir_tree(dir: &Path) -> Result<(f64, f64)> {
    let t = Phase::start();
    fs::create_dir(dir)?;
    let mut count = 0;
    for a in 0..10 {
        let pa = dir.join(format!("d{a}"));
        fs::create_dir(&pa)?;
        count += 1;
        for b in 0..10 {
            let pb = pa.join(format!("d{b}"));
            fs::create_dir(&pb)?;
            count += 1;
            for c in 0..10 {
                fs::create_dir(pb.join(format!("d{c}")))?;
                count += 1;
            }
        }
    }
    let mkdir = rate(count, t.end("mkdir", count));
    let t = Phase::start();
    run(Command::new("rm").arg("-rf").arg(dir))?;
    Ok((mkdir, t.end("rmdir", count + 1).as_secs_f64()))
}

/// `n` files of 4 KiB, each written and fsynced before the next: files/s.
pub fn small_fsync(dir: &Path, n: usize) -> Result<f64> {
    fs::create_dir_all(dir)?;
    let buf = vec![0x5au8; 4096];
    let t = Phase::start();
    for i in 0..n {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dir.join(format!("s{i:05}")))?;
        f.write_all(&buf)?;
        f.sync_all()?;
    }
    let r = rate(n, t.end("small", n));
    fs::remove_dir_all(dir)?;
    Ok(r)
}

/// Sequential write of `bytes` in 1 MiB writes + fsync, then a cold read back: MiB/s each.
pub fn sequential(dir: &Path, bytes: usize) -> Result<(f64, f64)> {
    fs::create_dir_all(dir)?;
    let path = dir.join("seq");
    let chunk = 1 << 20;
    let mut buf = vec![0u8; chunk];
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (i * 7 + 13) as u8;
    }
    let t = Phase::start();
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    for _ in 0..bytes / chunk {
        f.write_all(&buf)?;
    }
    f.sync_all()?;
    drop(f);
    let mib = bytes / chunk;
    let write = bytes as f64 / MIB / t.end("seqw", mib).as_secs_f64();
    drop_caches()?;
    let t = Phase::start();
    let mut f = File::open(&path)?;
    let mut total = 0;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n;
    }
    let read = total as f64 / MIB / t.end("seqr", mib).as_secs_f64();
    if total != bytes {
        bail!("read back {total} bytes of {bytes}");
    }
    drop(f);
    fs::remove_dir_all(dir)?;
    Ok((write, read))
}

/// A xorshift64 generator: the same offsets on every system.
pub struct XorShift(pub u64);
impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `n` random 4 KiB-aligned overwrites in a `file_bytes` file (written and synced first,
/// untimed), then fsync: ops/s including the fsync.
pub fn random_overwrite(dir: &Path, file_bytes: usize, n: usize) -> Result<f64> {
    fs::create_dir_all(dir)?;
    let path = dir.join("rand");
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    let chunk = vec![0x11u8; 1 << 20];
    for _ in 0..file_bytes / chunk.len() {
        f.write_all(&chunk)?;
    }
    f.sync_all()?;
    let blocks = (file_bytes / 4096) as u64;
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut buf = [0u8; 4096];
    let t = Phase::start();
    for i in 0..n {
        buf[..8].copy_from_slice(&(i as u64).to_le_bytes());
        f.write_all_at(&buf, (rng.next() % blocks) * 4096)?;
    }
    f.sync_all()?;
    let r = rate(n, t.end("randw", n));
    drop(f);
    fs::remove_dir_all(dir)?;
    Ok(r)
}

/// The raw disk: 4 KiB pwrite + fdatasync in a preallocated (written, synced) file: ops/s.
pub fn raw_fdatasync(dir: &Path, n: usize) -> Result<f64> {
    fs::create_dir_all(dir)?;
    let path = dir.join("raw");
    let _ = fs::remove_file(&path);
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    let size = 64usize << 20;
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..size / chunk.len() {
        f.write_all(&chunk)?;
    }
    f.sync_all()?;
    let buf = [0x77u8; 4096];
    let t = Instant::now();
    for i in 0..n {
        f.write_all_at(&buf, ((i * 4096) % size) as u64)?;
        // SAFETY: fdatasync on an open descriptor.
        if unsafe { libc::fdatasync(f.as_raw_fd()) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
    }
    let r = rate(n, t.elapsed());
    drop(f);
    fs::remove_file(&path)?;
    Ok(r)
}

pub struct TreeTimes {
    pub untar: f64,
    pub find: f64,
    pub du: f64,
    pub rm: f64,
    pub entries: usize,
}

/// Untar `tarball` into `dir`, then `find | wc -l`, `du -s`, `rm -rf`: seconds each.
pub fn real_tree(dir: &Path, tarball: &Path) -> Result<TreeTimes> {
    fs::create_dir_all(dir)?;
    let t = Phase::start();
    run(Command::new("tar")
        .arg("-xf")
        .arg(tarball)
        .arg("-C")
        .arg(dir))?;
    let untar = t.end("untar", 0).as_secs_f64();
    let t = Phase::start();
    let out = run(Command::new("sh")
        .arg("-c")
        .arg("find \"$1\" | wc -l")
        .arg("sh")
        .arg(dir))?;
    let find = t.end("find", 0).as_secs_f64();
    let entries = out.trim().parse().unwrap_or(0);
    let t = Phase::start();
    run(Command::new("du").arg("-s").arg(dir))?;
    let du = t.end("du", 0).as_secs_f64();
    let t = Phase::start();
    run(Command::new("rm").arg("-rf").arg(dir))?;
    let rm = t.end("rmrf", 0).as_secs_f64();
    Ok(TreeTimes {
        untar,
        find,
        du,
        rm,
        entries,
    })
}

/// Metadata churn to fill the redo log before a crash: `ops` setxattr calls of `value_len`
/// bytes on `files` existing files (round robin, so a flush batch never rewrites the same
/// bytes), with an fsync every `fsync_every` calls so the records go to the log itself.
pub fn xattr_churn(
    dir: &Path,
    files: usize,
    ops: usize,
    value_len: usize,
    fsync_every: usize,
) -> Result<Duration> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let paths: Vec<CString> = (0..files)
        .map(|i| CString::new(dir.join(format!("g{i:07}")).as_os_str().as_bytes()).unwrap())
        .collect();
    let name = CString::new("user.bench").unwrap();
    let mut value = vec![0u8; value_len];
    let syncer = File::open(dir.join("g0000000"))?;
    let t = Instant::now();
    for k in 0..ops {
        value[..8].copy_from_slice(&(k as u64).to_le_bytes());
        let p = &paths[k % files];
        // SAFETY: valid C strings and a buffer of value_len bytes.
        let rc = unsafe {
            libc::setxattr(
                p.as_ptr(),
                name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error()).context("setxattr");
        }
        if (k + 1) % fsync_every == 0 {
            syncer.sync_all()?;
        }
    }
    Ok(t.elapsed())
}
