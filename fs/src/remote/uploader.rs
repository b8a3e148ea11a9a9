//! The uploader of an `object_data` image (docs/format.md 11.5): a thread that, every upload
//! interval, packs dirty local blocks (whichever files they belong to) into data objects
//! (`objstore::Packer`), uploads each create-only, and only once the bucket has acknowledged
//! the whole object commits one transaction repointing the extents to the object's vblocks
//! (`REMOTE`) and freeing the local blocks, and raising the object watermark past it
//! (`super::live`). An extent that changed meanwhile (overwritten, truncated, removed) is
//! skipped: that part of the object is dead on arrival (an object wholly so is deleted at
//! once), and a crash before the commit leaves the object leaked (collected once later
//! snapshots' watermarks pass it), never an extent pointing at an object the bucket lacks.
//!
//! Failures: a failed or timed-out upload is retried with backoff (0.5 s doubling to 30 s)
//! until it succeeds or the mount ends; the blocks stay local and dirty meanwhile, so no
//! answered request is lost. Uploads resume at the next mount (dirty inodes are found by one
//! scan of the extent tree, [`scan_dirty`]).

use super::blocks::Blocks;
use super::live;
use super::session::Session;
use super::{eio, lock};
use crate::error::FsResult;
use crate::layout::BLOCK_SIZE;
use crate::ops::{extent, Fs, Op};
use crate::store::csum;
use crate::store::extent_map::{self, Extent, EXTENTS, REMOTE, UNWRITTEN};
use objstore::object::BLOCK;
use objstore::{BlockRef, Packer, Sealed};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

/// At most this many extents are repointed by one transaction (bounds its record).
const MAX_RUNS: usize = 512;
/// First and longest wait between retries of a failed upload.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(30));

/// One dirty block read for upload: where it is mapped now, and its bytes.
struct Dirty {
    at: BlockRef,
    phys: u64,
    data: Box<[u8; BLOCK]>,
}

/// The state an upload round needs.
struct Shared {
    fs: Arc<RwLock<Fs>>,
    session: Arc<Session>,
    blocks: Arc<Blocks>,
    packer: Mutex<Packer>,
    /// `inject_crash=after_upload`: die after the first upload, before its commit.
    crash: std::sync::atomic::AtomicBool,
    /// (stop asked, wake now).
    flags: Mutex<(bool, bool)>,
    wake: Condvar,
}

/// The running uploader.
pub struct Uploader {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Note every inode of region `bytes` with a local written extent in `blocks`' dirty set
/// (at mount: every local block of an `object_data` image is dirty).
pub fn scan_dirty(bytes: &[u8], blocks: &Blocks) -> FsResult<()> {
    EXTENTS.scan(bytes, (0, 0), (u64::MAX, u64::MAX), |k, v| {
        if v[2] & (REMOTE | UNWRITTEN) == 0 {
            blocks.mark_dirty(k.0);
        }
        Ok(true)
    })
}

impl Uploader {
    /// Start uploading the dirty blocks of `fs` every `interval` into `session`'s bucket;
    /// `crash` (tests only, `-o inject_crash=after_upload`): end the process right after the
    /// first upload, before the commit that would point at the object.
    /// Errors: the packer's (an epoch past the largest one).
    pub fn start(
        fs: Arc<RwLock<Fs>>,
        session: Arc<Session>,
        blocks: Arc<Blocks>,
        (interval, crash): (Duration, bool),
    ) -> Result<Uploader, objstore::Error> {
        let packer = Packer::new(session.epoch(), blocks.shift())?;
        // Every older epoch's objects are decided now (their writers are gone): the
        // watermark starts this epoch (docs/format.md 11.6).
        let start = u64::from(session.epoch()) << 32;
        let raised = fs.write().unwrap_or_else(|p| p.into_inner()).transact_on(
            "upload watermark",
            0,
            |op| live::raise_watermark(op, start),
        );
        if let Err(e) = raised {
            log::warn!("the object watermark stays where it was: {e}");
        }
        let shared = Arc::new(Shared {
            fs,
            session,
            blocks,
            packer: Mutex::new(packer),
            crash: crash.into(),
            flags: Mutex::default(),
            wake: Condvar::new(),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("rvmfs-upload".into())
            .spawn(move || s.run(interval))
            .ok();
        Ok(Uploader { shared, thread })
    }

    /// Look for dirty blocks now, not at the next interval (a write is waiting for space).
    pub fn wake(&self) {
        lock(&self.shared.flags).1 = true;
        self.shared.wake.notify_all();
    }

    /// Upload the dirty blocks of inode `ino` now and wait (fsync under `-o upload=sync`).
    /// Errors: EIO when the bucket refuses or the commit fails (the blocks stay local).
    pub fn upload_inode(&self, ino: u64) -> FsResult<()> {
        while self.shared.round(Some(ino))? > 0 {}
        Ok(())
    }

    /// Stop the thread, after uploading what is dirty (clean unmount); an upload that fails
    /// leaves its blocks local for the next mount.
    pub fn finish(mut self) {
        lock(&self.shared.flags).0 = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        loop {
            match self.shared.round(None) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    log::warn!("upload at unmount: {e}; the rest stays local for the next mount");
                    break;
                }
            }
        }
    }
}

impl Shared {
    fn run(&self, interval: Duration) {
        let mut backoff = BACKOFF.0;
        loop {
            let mut wait = interval;
            loop {
                match self.round(None) {
                    Ok(0) => break,
                    Ok(_) => backoff = BACKOFF.0,
                    Err(e) => {
                        log::warn!("upload failed, retrying in {backoff:?}: {e}");
                        wait = backoff;
                        backoff = (backoff * 2).min(BACKOFF.1);
                        break;
                    }
                }
                if lock(&self.flags).0 {
                    return;
                }
            }
            let guard = lock(&self.flags);
            let (mut g, _) = self
                .wake
                .wait_timeout_while(guard, wait, |f| !f.0 && !f.1)
                .unwrap_or_else(|p| p.into_inner());
            if g.0 {
                return;
            }
            g.1 = false;
        }
    }

    /// One object's worth: gather, pack, upload, repoint. Returns the blocks repointed
    /// (0: nothing was dirty). Errors: the upload's (as EIO) or the commit's.
    fn round(&self, only: Option<u64>) -> FsResult<usize> {
        let mut packer = lock(&self.packer);
        let cap = 1usize << self.blocks.shift();
        let dirty = {
            let fs = self.fs.read().unwrap_or_else(|p| p.into_inner());
            gather(&fs, &self.blocks, cap, only)?
        };
        if dirty.is_empty() {
            return Ok(0);
        }
        let mut sealed = Vec::new();
        for d in &dirty {
            sealed.extend(packer.add(d.at, &d.data).map_err(eio)?);
        }
        sealed.extend(packer.seal().map_err(eio)?);
        let mut n = 0;
        for s in &sealed {
            objstore::data::upload_sealed(self.session.bucket(), s).map_err(eio)?;
            if self.crash.load(std::sync::atomic::Ordering::Relaxed) {
                log::error!(
                    "inject_crash=after_upload: dying after uploading {}",
                    s.id.name()
                );
                // SAFETY: _exit ends the process at once, as a crash would.
                unsafe { libc::_exit(99) };
            }
            n += self.repoint(s, &dirty)?;
        }
        Ok(n)
    }

    /// Commit the repointing of the blocks of `s` (uploaded) to its vblocks.
    fn repoint(&self, s: &Sealed, dirty: &[Dirty]) -> FsResult<usize> {
        let phys: std::collections::HashMap<(u64, u64), u64> = dirty
            .iter()
            .map(|d| ((d.at.ino, d.at.lblock), d.phys))
            .collect();
        let runs = runs_of(s, &phys);
        let mut fs = self.fs.write().unwrap_or_else(|p| p.into_inner());
        let done = fs.transact_on("upload", 0, |op| {
            let mut n = 0;
            for r in &runs {
                n += repoint_run(op, r)?;
            }
            live::raise_watermark(op, s.id.packed() + 1)?;
            Ok(n)
        })?;
        let rvm = fs.rvm.clone();
        drop(fs);
        if done == 0 {
            // Dead on arrival: no extent ever pointed into it, so it may go at once.
            if let Err(e) = self.session.bucket().delete(&s.id.name()) {
                log::warn!("{}: dead on arrival, not deleted: {e}", s.id.name());
            }
        } else {
            self.blocks.freed().note();
            // Flushed now, outside the lock, not at the next commit interval: the log
            // shipper can then put the repointing record at once, and a machine loss loses
            // about an upload interval of file data (issue 14).
            rvm.flush()?;
        }
        for (r, v) in &s.placed {
            let d = dirty.iter().find(|d| d.at == *r);
            if let Some(d) = d {
                self.blocks.keep(*v, &d.data[..]);
            }
        }
        log::debug!("{}: {done} blocks repointed", s.id.name());
        Ok(done as usize)
    }
}

/// A run to repoint: inode, first logical block, first local block, first vblock, blocks.
struct Run {
    ino: u64,
    lblock: u64,
    phys: u64,
    vblock: u64,
    n: u64,
}

/// The placed blocks of `s` as runs consecutive in file, local and virtual blocks alike.
fn runs_of(s: &Sealed, phys: &std::collections::HashMap<(u64, u64), u64>) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for (r, v) in &s.placed {
        let Some(&p) = phys.get(&(r.ino, r.lblock)) else {
            continue;
        };
        match runs.last_mut() {
            Some(l)
                if l.ino == r.ino
                    && l.lblock + l.n == r.lblock
                    && l.phys + l.n == p
                    && l.vblock + l.n == *v =>
            {
                l.n += 1
            }
            _ => runs.push(Run {
                ino: r.ino,
                lblock: r.lblock,
                phys: p,
                vblock: *v,
                n: 1,
            }),
        }
    }
    runs
}

/// Repoint one run if its extent still maps it to the same local blocks (block by block if
/// only part of it does); the blocks repointed.
fn repoint_run(op: &mut Op<'_>, r: &Run) -> FsResult<u64> {
    let last = r.lblock + r.n - 1;
    let found = extent_map::find(op.bytes(), r.ino, r.lblock)?;
    let whole = found.is_some_and(|e: Extent| {
        e.first <= r.lblock && last <= e.last && e.flags == 0 && e.phys_of(r.lblock) == r.phys
    });
    if whole {
        extent::punch_keep_blocks(op, r.ino, r.lblock, last)?;
        extent::insert(op, r.ino, r.lblock, r.n, r.vblock, REMOTE)?;
        extent::free_blocks(op, r.phys, r.n)?;
        return Ok(r.n);
    }
    if r.n == 1 {
        return Ok(0); // changed meanwhile: dead on arrival in its object
    }
    let mut n = 0;
    for i in 0..r.n {
        let one = Run {
            ino: r.ino,
            lblock: r.lblock + i,
            phys: r.phys + i,
            vblock: r.vblock + i,
            n: 1,
        };
        n += repoint_run(op, &one)?;
    }
    Ok(n)
}

/// Read up to `cap` dirty blocks (of inode `only`, or of any dirty inode) with their bytes,
/// in file order, at most [`MAX_RUNS`] extents; inodes found without local blocks are
/// dropped from the dirty set.
fn gather(fs: &Fs, blocks: &Blocks, cap: usize, only: Option<u64>) -> FsResult<Vec<Dirty>> {
    let inos = match only {
        Some(ino) => vec![ino],
        None => blocks.dirty(),
    };
    let mut out = Vec::new();
    let mut runs = 0;
    for ino in inos {
        let local: Vec<Extent> = extent_map::all(fs.bytes(), ino)?
            .into_iter()
            .filter(|e| e.flags & (REMOTE | UNWRITTEN) == 0)
            .collect();
        if local.is_empty() {
            blocks.clean(ino);
            continue;
        }
        let node = fs.inode(ino)?;
        let sums = fs.geo.sums_for(&node);
        let mut bad = 0;
        for e in &local {
            if out.len() >= cap || runs >= MAX_RUNS {
                return Ok(out);
            }
            runs += 1;
            let take = (e.len()).min((cap - out.len()) as u64);
            let mut buf = vec![0u8; (take * BLOCK_SIZE) as usize];
            let at = fs.geo.data_offset + e.phys * BLOCK_SIZE;
            fs.geo.image.read_at(&mut buf, at)?;
            if let Some(t) = &sums {
                let want = t.get(fs.bytes(), e.phys, take)?;
                if let Some((i, stored, got)) =
                    csum::first_mismatch(&buf, e.first, node.size, &want)
                {
                    // Never upload bytes the image's checksum disowns: a restored image's
                    // local blocks the old writer never uploaded, or a damaged cache block.
                    // The block stays local and its reads answer EIO.
                    log::error!(
                        "inode {ino}: local data block {} (file block {}) fails its checksum \
                         (stored {stored:08x}, computed {got:08x}): not uploaded",
                        e.phys + i as u64,
                        e.first + i as u64
                    );
                    bad += 1;
                    continue;
                }
            }
            for (i, chunk) in buf.chunks_exact(BLOCK).enumerate() {
                let mut data = Box::new([0u8; BLOCK]);
                data.copy_from_slice(chunk);
                out.push(Dirty {
                    at: BlockRef {
                        ino,
                        lblock: e.first + i as u64,
                    },
                    phys: e.phys + i as u64,
                    data,
                });
            }
        }
        if bad == local.len() {
            blocks.clean(ino); // nothing of it can be uploaded: not retried until remount
        }
    }
    Ok(out)
}
