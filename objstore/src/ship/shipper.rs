//! The shipper: a thread that copies the image's committed redo records to the bucket as
//! segments (every `interval`, or as soon as `segment_bytes` wait), takes snapshots of the
//! metadata region, and applies retention. It is fed by rvm-core's flush tap (a bounded
//! queue of the flushed records' bytes) and reads from the log itself what the queue lacks
//! (after a restart, or when the queue overflowed during an outage). It tells rvm-core what
//! is shipped (the shipped floor), so truncation never frees an unshipped record: during
//! an outage the log fills and writers wait, nothing is lost.

use super::gc::LiveObjects;
use super::worker::{Setup, Worker};
use super::ShipError;
use crate::bucket::Bucket;
use rvm_core::{Area, Flushed, Lsn, Rvm};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How the shipper paces itself.
#[derive(Clone, Debug)]
pub struct ShipConfig {
    /// Ship what waits at least this often (default 1 s).
    pub interval: Duration,
    /// Seal a segment at this many bytes of records, and ship at once when this many wait
    /// (default 1 MiB).
    pub segment_bytes: usize,
    /// Take a snapshot this often (default 10 min) ...
    pub snapshot_interval: Duration,
    /// ... or after this many bytes of segments since the last one (default 256 MiB).
    pub snapshot_bytes: u64,
    /// Complete snapshots retention keeps (default 2; at least 1): restore reaches back to
    /// the oldest of them.
    pub keep_snapshots: usize,
    /// Bytes the flush tap may queue; past it the shipper reads the log (default 64 MiB).
    pub tap_limit: usize,
    /// A forced takeover (`-o takeover`, docs/format.md 11.7 "Epochs"): this image's state is
    /// the one to continue even if the bucket holds later records of an older epoch (a
    /// writer still shipping after the restore); they are superseded from this image's
    /// head on. Off (default): such a bucket is refused ([`ShipError::Ahead`]).
    pub take_over: bool,
    /// `object_data` images: how to read a region's data objects. Set, every snapshot
    /// carries its object list, and the dead objects are collected after each retention
    /// (`super::gc`); None (default): neither.
    pub live_objects: Option<LiveObjects>,
}

impl Default for ShipConfig {
    fn default() -> ShipConfig {
        ShipConfig {
            interval: Duration::from_secs(1),
            segment_bytes: 1 << 20,
            snapshot_interval: Duration::from_secs(600),
            snapshot_bytes: 256 << 20,
            keep_snapshots: 2,
            tap_limit: 64 << 20,
            take_over: false,
            live_objects: None,
        }
    }
}

/// What the shipper needs of the image: its header block (image offset 0, 4096 bytes),
/// its length in bytes, and where its metadata region is (image offsets).
#[derive(Clone, Debug)]
pub struct ImageInfo {
    pub header_block: Vec<u8>,
    pub image_len: u64,
    pub segment: Area,
}

/// Asked before every put: may this writer still write (its lease held and trusted)?
/// `objstore::Keeper::may_commit`.
pub type MayWrite = Arc<dyn Fn() -> bool + Send + Sync>;

/// What the shipper has done.
#[derive(Clone, Debug, Default)]
pub struct ShipStatus {
    /// Every record below this Lsn is in the bucket.
    pub shipped: Lsn,
    pub segments: u64,
    /// Bytes of segment objects put.
    pub segment_bytes: u64,
    pub records: u64,
    pub snapshots: u64,
    /// Bytes of snapshot objects put (parts and manifests).
    pub snapshot_bytes: u64,
    /// The Lsn of the last snapshot this shipper completed.
    pub last_snapshot: Option<Lsn>,
    /// Dead data objects deleted (`super::gc::collect`).
    pub objects_collected: u64,
    /// Set when the shipper stopped for good (lease lost, a collision, a corrupt log).
    pub failed: Option<String>,
}

/// One flush the tap queued.
pub(crate) struct Queued {
    pub first: Lsn,
    pub next: Lsn,
    pub records: Vec<u8>,
}

pub(crate) struct State {
    pub queue: VecDeque<Queued>,
    pub queued_bytes: usize,
    pub stop: bool,
    /// Passes asked for (`sync`) and passes done: a pass started after the request covers it.
    pub sync_asked: u64,
    pub sync_done: u64,
    pub snapshot_asked: u64,
    pub snapshot_done: u64,
    pub status: ShipStatus,
}

pub(crate) struct Shared {
    pub state: Mutex<State>,
    /// Wakes the thread.
    pub wake: Condvar,
    /// Signalled after every pass.
    pub done: Condvar,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running shipper for one image.
pub struct Shipper {
    shared: Arc<Shared>,
    rvm: Arc<Rvm>,
    thread: Option<JoinHandle<()>>,
}

impl Shipper {
    /// Start shipping `rvm`'s log (opened with `RvmOptions::ship`) to `bucket` as writer
    /// `epoch`: find where the bucket's log ends, resume from there (reading the records
    /// since from the log), or, if the bucket has no complete snapshot or lacks records
    /// this log no longer holds, begin with a full snapshot.
    ///
    /// Errors: [`ShipError::Ahead`] (the bucket is past this image), `Epoch`, `Rvm`
    /// (shipping off, a tap installed already), the bucket's errors.
    pub fn start(
        bucket: Arc<Bucket>,
        rvm: Arc<Rvm>,
        image: ImageInfo,
        epoch: u64,
        may_write: MayWrite,
        config: ShipConfig,
    ) -> Result<Shipper, ShipError> {
        let epoch = u32::try_from(epoch).map_err(|_| ShipError::Epoch(epoch))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                queued_bytes: 0,
                stop: false,
                sync_asked: 0,
                sync_done: 0,
                snapshot_asked: 0,
                snapshot_done: 0,
                status: ShipStatus::default(),
            }),
            wake: Condvar::new(),
            done: Condvar::new(),
        });
        let worker = Worker::new(Setup {
            bucket,
            rvm: rvm.clone(),
            image,
            epoch,
            may_write,
            cfg: config.clone(),
            shared: shared.clone(),
        })?;
        install_tap(&rvm, &shared, &config)?;
        let thread = std::thread::Builder::new()
            .name("rvmfs-ship".into())
            .spawn(move || worker.run())?;
        Ok(Shipper {
            shared,
            rvm,
            thread: Some(thread),
        })
    }

    /// What it has done so far.
    pub fn status(&self) -> ShipStatus {
        self.shared.lock().status.clone()
    }

    /// Ship every record durable now and wait for it (at most `timeout`); the shipped Lsn.
    /// Errors: `Stopped` if the shipper failed or `timeout` passed first.
    pub fn sync(&self, timeout: Duration) -> Result<Lsn, ShipError> {
        let mut g = self.shared.lock();
        g.sync_asked += 1;
        let want = g.sync_asked;
        self.shared.wake.notify_all();
        self.wait(g, timeout, |s| s.sync_done >= want)
            .map(|s| s.shipped)
    }

    /// Take a snapshot now (after shipping what is durable) and wait for it (at most
    /// `timeout`); the Lsn of the newest snapshot.
    pub fn snapshot_now(&self, timeout: Duration) -> Result<Option<Lsn>, ShipError> {
        let mut g = self.shared.lock();
        g.snapshot_asked += 1;
        let want = g.snapshot_asked;
        self.shared.wake.notify_all();
        self.wait(g, timeout, |s| s.snapshot_done >= want)
            .map(|s| s.last_snapshot)
    }

    fn wait(
        &self,
        mut g: MutexGuard<'_, State>,
        timeout: Duration,
        done: impl Fn(&State) -> bool,
    ) -> Result<ShipStatus, ShipError> {
        let until = Instant::now() + timeout;
        loop {
            if let Some(why) = &g.status.failed {
                return Err(ShipError::Stopped(why.clone()));
            }
            if done(&g) {
                return Ok(g.status.clone());
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ShipError::Stopped(format!(
                    "not done within {timeout:?} (shipped up to Lsn {})",
                    g.status.shipped
                )));
            }
            g = self
                .shared
                .done
                .wait_timeout(g, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Ship what is durable, then stop the thread; the final status.
    pub fn stop(mut self) -> ShipStatus {
        self.shutdown();
        self.status()
    }

    fn shutdown(&mut self) {
        let _ = self.rvm.set_flush_tap(None);
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// The instance it ships.
    pub fn rvm(&self) -> &Arc<Rvm> {
        &self.rvm
    }
}

impl Drop for Shipper {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Install the flush tap: copy each flush's records into the queue, up to the limit (past
/// it the flush is dropped here and the worker reads it from the log); wake the worker
/// when a segment's worth waits.
fn install_tap(rvm: &Rvm, shared: &Arc<Shared>, config: &ShipConfig) -> Result<(), ShipError> {
    let s = shared.clone();
    let (limit, seal) = (config.tap_limit, config.segment_bytes);
    rvm.set_flush_tap(Some(Box::new(move |f: &Flushed<'_>| {
        let mut g = s.lock();
        if g.queued_bytes + f.records.len() > limit {
            return;
        }
        g.queued_bytes += f.records.len();
        g.queue.push_back(Queued {
            first: f.first,
            next: f.next,
            records: f.records.to_vec(),
        });
        if g.queued_bytes >= seal {
            s.wake.notify_all();
        }
    })))?;
    Ok(())
}
