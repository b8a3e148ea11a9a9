//! Scrub (`fsck.rvmfs -c`, after the checks): read every written data block of every
//! checksummed file and verify it against its CRC32C in the checksum table (`store::csum`),
//! as `btrfs scrub` and `zpool scrub` do. Names the files whose blocks fail. Reads only: the
//! data cannot be repaired (there is no second copy), the file keeps answering EIO on those
//! blocks until it is rewritten or deleted.

use rvmfs::layout::BLOCK_SIZE;
use rvmfs::ops::Fs;
use rvmfs::store::csum::{block_sum, valid_len, Table, NODATASUM};
use rvmfs::store::extent_map::{self, Extent, UNWRITTEN};
use rvmfs::store::names::Names;
use rvmfs::FsResult;

/// Blocks read and verified at a time (1 MiB).
const CHUNK: u64 = 256;

/// A data block whose contents do not match its checksum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    pub ino: u64,
    /// A path naming the file (one of its names), or `<inode N, no name>`.
    pub path: String,
    /// Byte offset of the block in the file.
    pub offset: u64,
    /// Physical data block.
    pub block: u64,
}

/// What a scrub found.
#[derive(Debug, Default)]
pub struct Scrubbed {
    /// Data blocks verified.
    pub blocks: u64,
    /// Checksummed files with data.
    pub files: u64,
    /// Files with data written under `-o nodatasum` (not verified).
    pub unsummed: u64,
    /// Every damaged block, in inode and file order.
    pub damaged: Vec<Damage>,
}

impl Scrubbed {
    /// The damaged files: (inode, path, damaged blocks, first damaged block), in inode order.
    pub fn files(&self) -> Vec<(u64, &str, usize, &Damage)> {
        let mut out: Vec<(u64, &str, usize, &Damage)> = Vec::new();
        for d in &self.damaged {
            match out.last_mut() {
                Some(last) if last.0 == d.ino => last.2 += 1,
                _ => out.push((d.ino, &d.path, 1, d)),
            }
        }
        out
    }
}

/// Scrub the data of `fs`; `progress(done, total)` in blocks. None when the image keeps no
/// data checksums.
///
/// Errors: the metadata cannot be read (run the checks first) or reading the image fails.
pub fn scrub(fs: &Fs, progress: &dyn Fn(u64, u64)) -> FsResult<Option<Scrubbed>> {
    let Some(table) = fs.geo.csums else {
        return Ok(None);
    };
    let bytes = fs.bytes();
    let mut out = Scrubbed::default();
    let mut work: Vec<(u64, u64, Extent)> = Vec::new(); // (inode, size, extent)
    for ino in 1..=fs.geo.inode_count {
        let Ok(node) = fs.geo.inode(bytes, ino) else {
            continue;
        };
        if !node.is_reg() || node.blocks == 0 {
            continue;
        }
        if node.flags & NODATASUM != 0 {
            out.unsummed += 1;
            continue;
        }
        out.files += 1;
        for e in extent_map::all(bytes, ino)? {
            // `REMOTE` blocks are checked by their object's CRCs when read, not here.
            if e.flags & UNWRITTEN == 0 && !e.is_remote() {
                work.push((ino, node.size, e));
            }
        }
    }
    let total: u64 = work.iter().map(|w| w.2.len()).sum();
    let names = Names::read(bytes)?;
    for (ino, size, e) in work {
        let mut b = e.first;
        while b <= e.last {
            let n = CHUNK.min(e.last - b + 1);
            for i in verify_run(fs, &table, &e, b, n, size)? {
                out.damaged.push(Damage {
                    ino,
                    path: names
                        .path(ino)
                        .unwrap_or_else(|| format!("<inode {ino}, no name>")),
                    offset: (b + i) * BLOCK_SIZE,
                    block: e.phys_of(b + i),
                });
            }
            out.blocks += n;
            progress(out.blocks, total);
            b += n;
        }
    }
    Ok(Some(out))
}

/// Verify `n` blocks of extent `e` from logical block `b` (file of `size` bytes); returns the
/// indexes (from `b`) of the blocks that fail.
fn verify_run(fs: &Fs, t: &Table, e: &Extent, b: u64, n: u64, size: u64) -> FsResult<Vec<u64>> {
    let mut data = vec![0u8; (n * BLOCK_SIZE) as usize];
    let at = fs.geo.data_offset + e.phys_of(b) * BLOCK_SIZE;
    fs.geo.image.read_at(&mut data, at)?;
    let want = t.get(fs.bytes(), e.phys_of(b), n)?;
    Ok(data
        .chunks(BLOCK_SIZE as usize)
        .zip(want)
        .enumerate()
        .filter(|(i, (blk, w))| block_sum(blk, valid_len(size, b + *i as u64)) != *w)
        .map(|(i, _)| i as u64)
        .collect())
}
