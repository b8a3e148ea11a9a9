//! The workloads of `--objstore` (objstore.rs), the same on every system: real syscalls
//! through std::fs, `tar` for the real tree. The sequential file is written in one call and
//! read back in another (the system is remounted cold in between); every byte read is
//! checked, so a block the bucket lacks cannot pass as a fast read.

use crate::workloads::MIB;
use anyhow::{bail, Context, Result};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

/// Bytes per write and read call of the sequential workload.
const CHUNK: usize = 1 << 20;

/// Chunk `k` of the sequential file: a byte pattern, its first 8 bytes `k` (so a chunk read
/// from the wrong place does not match).
fn chunk(k: usize, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (i * 7 + 13) as u8;
    }
    buf[..8].copy_from_slice(&(k as u64).to_le_bytes());
}

/// `n` files of 4 KiB in a new directory `dir`, each created, written and closed (no
/// fsync): files/s.
pub fn small_files(dir: &Path, n: usize) -> Result<f64> {
    fs::create_dir_all(dir)?;
    let buf = vec![0x5au8; 4096];
    let t = Instant::now();
    for i in 0..n {
        let mut f = File::create_new(dir.join(format!("s{i:05}")))?;
        f.write_all(&buf)?;
    }
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

/// Write `dir/seq`, `bytes` long, in 1 MiB writes, then fsync: MiB/s (the fsync included).
pub fn seq_write(dir: &Path, bytes: usize) -> Result<f64> {
    fs::create_dir_all(dir)?;
    let mut buf = vec![0u8; CHUNK];
    let t = Instant::now();
    let mut f = File::create_new(dir.join("seq"))?;
    for k in 0..bytes / CHUNK {
        chunk(k, &mut buf);
        f.write_all(&buf)?;
    }
    f.sync_all()?;
    Ok(bytes as f64 / MIB / t.elapsed().as_secs_f64())
}

/// Read `dir/seq` (written by [`seq_write`] with the same `bytes`) in 1 MiB reads, checking
/// every byte: MiB/s. Errors: a short file or a byte that differs.
pub fn seq_read(dir: &Path, bytes: usize) -> Result<f64> {
    let (mut buf, mut want) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    chunk(0, &mut want);
    let t = Instant::now();
    let mut f = File::open(dir.join("seq"))?;
    let mut bad = None;
    for k in 0..bytes / CHUNK {
        f.read_exact(&mut buf)?;
        let same = buf[..8] == (k as u64).to_le_bytes() && buf[8..] == want[8..];
        if !same && bad.is_none() {
            bad = Some(k);
        }
    }
    let took = t.elapsed();
    if let Some(k) = bad {
        bail!(
            "{}: MiB {k} read back differs from what was written",
            dir.display()
        );
    }
    if f.read(&mut buf)? != 0 {
        bail!("{}: longer than the {bytes} bytes written", dir.display());
    }
    drop(f);
    fs::remove_dir_all(dir)?;
    Ok(bytes as f64 / MIB / took.as_secs_f64())
}

/// `n` new files, each 4 KiB written then fsynced: the latency of each fsync, ms.
pub fn fsync_latencies(dir: &Path, n: usize) -> Result<Vec<f64>> {
    fs::create_dir_all(dir)?;
    let buf = vec![0xa5u8; 4096];
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut f = File::create_new(dir.join(format!("f{i:04}")))?;
        f.write_all(&buf)?;
        let t = Instant::now();
        f.sync_all()?;
        out.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(out)
}

/// `n` random 4 KiB reads of the file `path` of `file_bytes` (written by
/// `random_read::write_file` before the cold remount), each checked: ops/s.
pub fn random_reads(path: &Path, file_bytes: usize, n: usize) -> Result<f64> {
    let f = File::open(path)?;
    let t = Instant::now();
    crate::random_read::read_checked(&f, file_bytes, n)
        .with_context(|| format!("random reads of {}", path.display()))?;
    let r = n as f64 / t.elapsed().as_secs_f64();
    drop(f);
    fs::remove_file(path)?;
    Ok(r)
}

/// Bytes of the redo-log segments under `log/` of the bucket prefix `url`, by name.
pub fn log_segments(url: &str) -> Result<std::collections::BTreeMap<String, u64>> {
    let bucket = objstore::Bucket::open(&objstore::Config::from_env(url)?)?;
    Ok(bucket
        .list("log")?
        .into_iter()
        .map(|l| (l.name, l.size))
        .collect())
}
