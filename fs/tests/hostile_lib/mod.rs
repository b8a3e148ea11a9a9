//! Hostile images, at the library level: build a small populated image in memory, corrupt its
//! metadata region from a seed (or from fuzzer bytes), open it WITHOUT fsck and run a sequence
//! of file operations on it. What must hold: no panic, no hang, every write inside the image's
//! areas ([`storage::CheckedStorage`]), and every data write on a block the written file owns
//! ([`check_data_writes`]). Shared by `fs/tests/hostile.rs` and the cargo-fuzz target
//! `fuzz/fuzz_targets/hostile_ops.rs`.
#![allow(dead_code)] // the test and the fuzz target each use a part

pub mod storage;

use rvm_core::{Rvm, RvmOptions, Storage};
use rvmfs::format::format;
use rvmfs::layout::geometry::Plan;
use rvmfs::layout::header::Header;
use rvmfs::layout::pod;
use rvmfs::layout::superblock::Superblock;
use rvmfs::ops::attr::SetAttr;
use rvmfs::ops::inode::NewInode;
use rvmfs::ops::{attr, file, lookup, mount, namespace, open, space, statfs, xattr, Fs};
use rvmfs::store::extent_map::EXTENTS;
use rvmfs::{FsError, FsResult};
use std::sync::Arc;
use storage::{Areas, CheckedStorage};

/// A source of choices: a seeded generator, or the fuzzer's bytes.
pub trait Draw {
    fn next(&mut self) -> u64;
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// xorshift64*: a tiny seeded generator, so a failing seed replays exactly.
pub struct Rng(pub u64);
impl Rng {
    pub fn seeded(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
}
impl Draw for Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Fuzzer bytes, 4 at a time; zeros once they run out.
pub struct Bytes<'a>(pub &'a [u8]);
impl Draw for Bytes<'_> {
    fn next(&mut self) -> u64 {
        let n = self.0.len().min(4);
        let mut w = [0u8; 8];
        w[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        u64::from_le_bytes(w)
    }
}

/// The populated image before corruption, and what it holds.
pub struct Pristine {
    pub bytes: Vec<u8>,
    pub header: Header,
    pub sb: Superblock,
    /// Every inode number created, root first.
    pub inos: Vec<u64>,
    /// Every name created: (directory, name).
    pub names: Vec<(u64, Vec<u8>)>,
}

/// A new inode of `mode` owned by root.
pub fn new_inode(mode: u32) -> NewInode {
    NewInode {
        mode,
        uid: 0,
        gid: 0,
        rdev: 0,
    }
}

/// Image size: small, so a corrupted copy per seed is cheap.
const IMAGE: u64 = 8 << 20;

/// Build the pristine image: 4 directories (one nested), files with data (holes, several
/// extents), hard links, symlinks, xattrs, an empty directory; the log applied to the
/// segment, then a few transactions left in the log.
pub fn pristine() -> Pristine {
    let storage = Arc::new(rvm_core::MemStorage::new(IMAGE as usize));
    let plan = Plan {
        size: IMAGE,
        inodes: Some(512),
        log: Some(1 << 20),
    };
    let header = format(storage.clone(), plan, [9; 16], (0, 0)).expect("format");
    let mut fs = open_fs(storage.clone(), &header).expect("open the pristine image");
    let mut built = Built {
        inos: vec![1u64],
        names: Vec::new(),
    };
    let mk =
        |fs: &mut Fs, b: &mut Built, parent: u64, name: &str, mode: u32, target: Option<&[u8]>| {
            let (ino, _) = fs
                .transact(|op| {
                    namespace::create(op, parent, name.as_bytes(), new_inode(mode), target)
                })
                .expect("populating");
            b.inos.push(ino);
            b.names.push((parent, name.as_bytes().to_vec()));
            ino
        };
    let mut dirs = vec![1u64];
    for d in 0..4u64 {
        let parent = if d == 3 { dirs[1] } else { 1 };
        dirs.push(mk(
            &mut fs,
            &mut built,
            parent,
            &format!("d{d}"),
            libc::S_IFDIR | 0o755,
            None,
        ));
    }
    mk(&mut fs, &mut built, 1, "empty", libc::S_IFDIR | 0o755, None);
    for (i, &dir) in dirs.iter().enumerate() {
        for f in 0..6u64 {
            let ino = mk(
                &mut fs,
                &mut built,
                dir,
                &format!("f{f}"),
                libc::S_IFREG | 0o644,
                None,
            );
            let len = (f * 2900 + i as u64 * 700) as usize;
            let data: Vec<u8> = (0..len).map(|j| (j as u64 * 7 + f) as u8).collect();
            fs.transact(|op| file::write(op, ino, 0, &data, false))
                .expect("write");
            if f == 2 {
                // A hole, then a second extent.
                fs.transact(|op| file::write(op, ino, 40_000, b"after the hole", false))
                    .expect("write");
            }
            if f % 3 == 0 {
                let v = format!("value{f}");
                fs.transact(|op| xattr::set(op, ino, b"user.k", v.as_bytes(), 0))
                    .expect("xattr");
                let link = format!("l{i}-{f}");
                fs.transact(|op| namespace::link(op, ino, 1, link.as_bytes()))
                    .expect("link");
                built.names.push((1, link.into_bytes()));
            }
        }
        let target = format!("f{i}");
        mk(
            &mut fs,
            &mut built,
            dir,
            "s",
            libc::S_IFLNK | 0o777,
            Some(target.as_bytes()),
        );
    }
    fs.rvm.flush().expect("flush");
    fs.rvm.truncate().expect("truncate");
    for i in 0..5 {
        mk(
            &mut fs,
            &mut built,
            dirs[2],
            &format!("late{i}"),
            libc::S_IFREG | 0o600,
            None,
        );
    }
    fs.rvm.flush().expect("flush");
    let sb = rvmfs::store::superblock(fs.bytes()).expect("superblock");
    drop(fs);
    Pristine {
        bytes: storage.snapshot(),
        header,
        sb,
        inos: built.inos,
        names: built.names,
    }
}

/// Inodes and names made while populating.
struct Built {
    inos: Vec<u64>,
    names: Vec<(u64, Vec<u8>)>,
}

/// Open the filesystem on `storage` (recovering its log) and check the superblock's layout, as
/// the daemon's mount does, without fsck.
pub fn open_fs(storage: Arc<dyn Storage>, header: &Header) -> FsResult<Fs> {
    let options = RvmOptions {
        log: header.log_area(),
        ordered: true,
        ..RvmOptions::default()
    };
    let rvm = Rvm::initialize(storage.clone(), options)?;
    let region = rvm.map(header.segment_area())?;
    let fs = Fs::new(region, Arc::new(rvm), *header, storage)?;
    // As the daemon's mount does (fs/src/main.rs).
    let sb = rvmfs::store::superblock(fs.bytes())?;
    rvmfs::store::check_layout(fs.bytes(), &sb, header.data_blocks)?;
    Ok(fs)
}

/// Corrupt a copy of the pristine image; returns it and the name of the damaged structure.
/// One to four hits, each a few bit flips, a zeroed block or a block of random bytes, in the
/// superblock, the bitmaps, the inode table, the heap (B+tree nodes, names) or the log.
pub fn corrupt(p: &Pristine, d: &mut impl Draw) -> (Vec<u8>, &'static str) {
    let mut bytes = p.bytes.clone();
    let seg = p.header.segment_offset;
    let sb = &p.sb;
    let inode_table_len = sb.data_bitmap.saturating_sub(sb.inode_table);
    let targets: [(&'static str, u64, u64); 7] = [
        ("superblock", seg, 256),
        ("inode bitmap", seg + sb.inode_bitmap, 64),
        (
            "inode table",
            seg + sb.inode_table,
            inode_table_len.min(64 * 128),
        ),
        ("data bitmap", seg + sb.data_bitmap, 512),
        ("heap", seg + sb.heap_start, sb.heap_top - sb.heap_start),
        ("heap", seg + sb.heap_start, sb.heap_top - sb.heap_start),
        ("log", p.header.log_offset, 64 << 10),
    ];
    let mut what = "";
    for _ in 0..1 + d.below(4) {
        let (name, start, len) = targets[d.below(targets.len() as u64) as usize];
        what = name;
        match d.below(8) {
            0 => {
                let at = (start + d.below(len)) / 4096 * 4096;
                bytes[at as usize..at as usize + 4096].fill(0);
            }
            1 => {
                let at = start + d.below(len);
                let n = (len - (at - start)).min(64) as usize;
                for b in &mut bytes[at as usize..at as usize + n] {
                    *b = d.next() as u8;
                }
            }
            2 => {
                // An 8-byte word replaced: pointers, counts and lengths are words.
                let at = (start + d.below(len)) & !7;
                let v = match d.below(4) {
                    0 => d.next(),
                    1 => d.below(1 << 24),
                    2 => u64::MAX - d.below(16),
                    _ => seg.wrapping_add(sb.heap_start + d.below(sb.heap_top - sb.heap_start)),
                };
                let v = v.wrapping_sub(if d.below(2) == 0 { seg } else { 0 });
                bytes[at as usize..at as usize + 8].copy_from_slice(&v.to_le_bytes());
            }
            _ => {
                for _ in 0..1 + d.below(8) {
                    let at = start + d.below(len);
                    bytes[at as usize] ^= 1 << d.below(8);
                }
            }
        }
    }
    (bytes, what)
}

/// What one run did.
#[derive(Debug, Default)]
pub struct Report {
    /// The image was refused at open (recovery or superblock check failed).
    pub refused: bool,
    pub ops: u64,
    /// Operations answered with EIO (corruption detected).
    pub eio: u64,
    /// Data writes to a block another inode's extent maps too, which the written file owns or
    /// the bitmap called free (a corrupt bitmap handed out a block in use: fsck's cross link).
    pub cross_links: u64,
    /// Broken promises (a write outside the areas or on another file's block).
    pub violations: Vec<String>,
}

/// Who owns which data block, as an operation sees the region.
struct Ownership {
    /// (owner, first block, block count) of every extent reachable in the extent tree.
    extents: Vec<(u64, u64, u64)>,
    /// The data-block bitmap's bytes (empty when the superblock cannot be read).
    bitmap: Vec<u8>,
    /// Data blocks with logged overwrites not yet written in place (`Fs::pending`).
    pending: std::collections::HashSet<u64>,
}

impl Ownership {
    fn of(bytes: &[u8]) -> Ownership {
        let entries = EXTENTS.salvage(bytes).unwrap_or_default();
        let extents = entries
            .into_iter()
            .filter(|(k, v)| v[0] <= k.1)
            .map(|(k, v)| (k.0, v[1], k.1 - v[0] + 1))
            .collect();
        let bitmap = rvmfs::store::superblock(bytes)
            .ok()
            .and_then(|sb| pod::slice(bytes, sb.data_bitmap, sb.data_blocks.div_ceil(8)).ok())
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        Ownership {
            extents,
            bitmap,
            pending: Default::default(),
        }
    }
    /// Is block `b` marked free in the bitmap?
    fn free(&self, b: u64) -> bool {
        self.bitmap
            .get((b / 8) as usize)
            .is_some_and(|byte| byte & (1 << (b % 8)) == 0)
    }
}

/// Check the data blocks written during one operation on file `ino` (0: no file): each must
/// belong to `ino` before or after the operation, or to no file at all (blocks an aborted
/// operation had allocated), or be pending before it (a logged overwrite of an earlier
/// operation, which the truncation this one ran wrote in place: `ops::pending`), or be
/// marked free in the bitmap the operation started from
/// (the allocator trusts the bitmap: when a corrupt one calls another file's block free, the
/// write lands there, as on ext4; counted, not failed). Returns that count, or the violation.
fn check_data_writes(
    written: &[(u64, u64)],
    ino: u64,
    before: &Ownership,
    after: &Ownership,
) -> Result<u64, String> {
    let mut cross = 0;
    for &(first, last) in written {
        for b in (first..=last).filter(|b| !before.pending.contains(b)) {
            let owners = before
                .extents
                .iter()
                .chain(&after.extents)
                .filter(|&&(_, phys, n)| b >= phys && b - phys < n)
                .map(|&(o, _, _)| o);
            let (mut mine, mut other) = (false, None);
            for o in owners {
                if o == ino {
                    mine = true;
                } else {
                    other = Some(o);
                }
            }
            match (mine, other) {
                (false, Some(_)) if before.free(b) => cross += 1,
                (false, Some(o)) => {
                    return Err(format!(
                        "a write on inode {ino} went to data block {b}, owned by inode {o}"
                    ))
                }
                (true, Some(_)) => cross += 1,
                _ => {}
            }
        }
    }
    Ok(cross)
}

/// Open `image` (a corrupted copy of `p`) without fsck and run `count` operations chosen by
/// `d` on it. Panics propagate (the caller catches them).
pub fn run(p: &Pristine, image: Vec<u8>, d: &mut impl Draw, count: usize) -> Report {
    let h = &p.header;
    let areas = Areas {
        log: (h.log_offset, h.log_len),
        segment: (h.segment_offset, h.segment_len),
        data_offset: h.data_offset,
        data_blocks: h.data_blocks,
    };
    let storage = Arc::new(CheckedStorage::new(image, areas));
    let mut report = Report::default();
    let Ok(mut fs) = open_fs(storage.clone(), h) else {
        report.refused = true;
        return report;
    };
    let mut state = State {
        inos: p.inos.clone(),
        names: p.names.clone(),
        handles: Vec::new(),
    };
    // The daemon's mount housekeeping (frees orphans); a failure is an answer like any other.
    let _ = mount::on_mount(&mut fs);
    let _ = storage.take_data_writes();
    for _ in 0..count {
        let mut before = Ownership::of(fs.bytes());
        let data = |at: u64| (at - h.data_offset) / 4096;
        before.pending = fs.pending.offsets().into_iter().map(data).collect();
        let (ino, result) = one_op(&mut fs, &mut state, d);
        report.ops += 1;
        if let Err(e) = &result {
            if e.errno() == libc::EIO {
                report.eio += 1;
            }
        }
        let written = storage.take_data_writes();
        if !written.is_empty() {
            let after = Ownership::of(fs.bytes());
            match check_data_writes(&written, ino, &before, &after) {
                Ok(n) => report.cross_links += n,
                Err(v) => report.violations.push(v),
            }
        }
    }
    for (at, len) in storage.stray_writes() {
        report.violations.push(format!(
            "a write of {len} bytes at image offset {at}, outside every area"
        ));
    }
    report
}

/// What the operation sequence can name.
struct State {
    inos: Vec<u64>,
    names: Vec<(u64, Vec<u8>)>,
    handles: Vec<u64>,
}

impl State {
    fn ino(&self, fs: &Fs, d: &mut impl Draw) -> u64 {
        if d.below(8) == 0 {
            return d.below(fs.geo.inode_count + 4); // any number, also out of range
        }
        self.inos[d.below(self.inos.len() as u64) as usize]
    }
    fn name(&self, d: &mut impl Draw) -> (u64, Vec<u8>) {
        self.names[d.below(self.names.len() as u64) as usize].clone()
    }
    fn fresh(&mut self, fs: &Fs, d: &mut impl Draw) -> (u64, Vec<u8>) {
        let dir = self.ino(fs, d);
        let name = format!("n{}", d.below(1000)).into_bytes();
        self.names.push((dir, name.clone()));
        (dir, name)
    }
}

/// One operation chosen by `d`; returns the inode whose data it may write, and its result.
fn one_op(fs: &mut Fs, s: &mut State, d: &mut impl Draw) -> (u64, FsResult<()>) {
    let ino = s.ino(fs, d);
    let ok = |r: FsResult<()>| (0, r);
    match d.below(22) {
        0..=2 => {
            let (dir, name) = s.name(d);
            let r = lookup::lookup(&fs.geo, fs.bytes(), dir, &name);
            if let Ok((child, _)) = &r {
                s.inos.push(*child);
            }
            ok(r.map(drop))
        }
        3 | 4 => {
            let mut found = Vec::new();
            let r = lookup::readdir(&fs.geo, fs.bytes(), ino, 0, |child, _, _, name| {
                found.push((child, name.to_vec()));
                found.len() < 100_000
            });
            for (child, name) in found.into_iter().take(64) {
                s.inos.push(child);
                s.names.push((ino, name));
            }
            ok(r)
        }
        5 => ok(fs.inode(ino).map(drop)),
        6 | 7 => {
            let (off, len) = (d.below(60_000), d.below(70_000));
            ok(file::read(&fs.geo, fs.bytes(), ino, off, len).map(drop))
        }
        8 => ok(lookup::readlink(&fs.geo, fs.bytes(), ino).map(drop)),
        9 => ok(xattr::list(fs.bytes(), ino)
            .and_then(|_| xattr::get(fs.bytes(), ino, b"user.k"))
            .map(drop)),
        10 | 11 => {
            let (off, len) = (d.below(50_000), 1 + d.below(20_000) as usize);
            let data = vec![d.next() as u8; len];
            (
                ino,
                fs.transact(|op| file::write(op, ino, off, &data, false))
                    .map(drop),
            )
        }
        12 => {
            let (dir, name) = s.fresh(fs, d);
            let mode = [libc::S_IFREG | 0o644, libc::S_IFDIR | 0o755][d.below(2) as usize];
            let r = fs.transact(|op| namespace::create(op, dir, &name, new_inode(mode), None));
            if let Ok((child, _)) = &r {
                s.inos.push(*child);
            }
            ok(r.map(drop))
        }
        13 => {
            let (dir, name) = s.name(d);
            ok(fs.transact(|op| namespace::unlink(op, dir, &name)))
        }
        14 => {
            let (dir, name) = s.name(d);
            ok(fs.transact(|op| namespace::rmdir(op, dir, &name)))
        }
        15 => {
            let (dir, name) = s.name(d);
            let (to_dir, to_name) = if d.below(2) == 0 {
                s.name(d)
            } else {
                s.fresh(fs, d)
            };
            let flags = d.below(3) as u32;
            ok(fs.transact(|op| namespace::rename(op, dir, &name, to_dir, &to_name, flags)))
        }
        16 => {
            let value = vec![b'v'; d.below(300) as usize];
            ok(fs.transact(|op| xattr::set(op, ino, b"user.k", &value, 0)))
        }
        17 => {
            let set = SetAttr {
                size: Some(d.below(60_000)),
                ..SetAttr::default()
            };
            (
                ino,
                fs.transact(|op| attr::setattr(op, ino, &set)).map(drop),
            )
        }
        18 => {
            let (dir, name) = s.fresh(fs, d);
            ok(fs
                .transact(|op| namespace::link(op, ino, dir, &name))
                .map(drop))
        }
        19 => {
            // Open (files unlinked while open become orphans), or close one (frees them).
            if d.below(2) == 0 || s.handles.is_empty() {
                let r = open::open(fs, ino, false, false);
                if r.is_ok() {
                    s.handles.push(ino);
                }
                ok(r)
            } else {
                let h = s
                    .handles
                    .swap_remove(d.below(s.handles.len() as u64) as usize);
                ok(open::release(fs, h))
            }
        }
        20 => {
            let (off, len) = (d.below(60_000), 1 + d.below(30_000));
            let r = space::seek(&fs.geo, fs.bytes(), ino, off, d.below(2) == 0).map(drop);
            let r2 = fs
                .transact(|op| space::fallocate(op, ino, off, len, 0))
                .map(drop);
            (ino, r.and(r2))
        }
        _ => {
            // Push the log into the segment (truncation writes there), and statfs.
            let r = statfs::statfs(fs.bytes()).map(drop);
            let flushed = fs.rvm.flush().and_then(|_| fs.rvm.truncate());
            ok(r.and(flushed.map_err(FsError::from)))
        }
    }
}

/// The superblock of `bytes` (for tests that look at the corrupted geometry).
pub fn superblock_of(bytes: &[u8], p: &Pristine) -> Option<Superblock> {
    pod::get(bytes, p.header.segment_offset).ok()
}
