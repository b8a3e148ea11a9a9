//! What the shipper's thread does: where to resume (from the bucket's listing), one
//! shipping pass (gather whole records from the cursor, put a segment, move the shipped
//! floor), one snapshot (the applied region read under rvm-core's truncation hold, put in
//! parts, then its manifest), retention and the collection of dead data objects after it.

use super::gc::{self, ObjectsAt};
use super::listing;
use super::segment::{self, segment_key, SegmentHeader};
use super::shipper::{ImageInfo, MayWrite, Shared, ShipConfig};
use super::snapshot::{
    encode_block, encode_part, snapshot_dir, Manifest, ObjectsInfo, PageTracker, PartInfo, PAGE,
    PART_PAGES,
};
use super::{now_unix_ms, retention, ShipError};
use crate::bucket::{Bucket, Put};
use crate::error::Error;
use bytes::Bytes;
use rvm_core::{Lsn, Rvm};
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A transient put failure is retried after this, doubling up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Once asked to stop, a put that keeps failing is given up after this.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Incremental snapshots in a row before the next full one.
const MAX_CHAIN: usize = 8;

/// What a worker is given: where to ship, what, as whom, how.
pub(crate) struct Setup {
    pub bucket: Arc<Bucket>,
    pub rvm: Arc<Rvm>,
    pub image: ImageInfo,
    pub epoch: u32,
    pub may_write: MayWrite,
    pub cfg: ShipConfig,
    pub shared: Arc<Shared>,
}

pub(crate) struct Worker {
    s: Setup,
    /// The next Lsn to ship.
    cursor: Lsn,
    /// Where this run started shipping: records below it were not seen by the tracker.
    run_start: Lsn,
    tracker: PageTracker,
    /// This run's last snapshot (Lsn, directory) and the incremental ones on it so far.
    last_snap: Option<(Lsn, String)>,
    chain: usize,
    need_base: bool,
    since_snap: (Instant, u64),
}

impl Worker {
    /// Where to resume: see [`super::Shipper::start`].
    pub(crate) fn new(s: Setup) -> Result<Worker, ShipError> {
        let Setup {
            bucket,
            rvm,
            image,
            epoch,
            shared,
            ..
        } = &s;
        let segs = listing::segments(&bucket)?;
        let complete = listing::snapshots(&bucket)?.iter().any(|s| s.complete);
        let next = listing::shipped_next(&bucket, &segs)?;
        let (head, durable) = (rvm.applied_lsn(), rvm.durable_lsn());
        // A forced takeover from an older epoch's writer that shipped on after this image's
        // state (its Lsns past the head are not this image's records): those are superseded
        // by this epoch's, starting with a full snapshot at the head.
        let older = listing::last_live(&segs).is_some_and(|l| l.epoch < *epoch);
        let (cursor, need_base) = match next {
            Some(n) if n != head && older && s.cfg.take_over => {
                log::warn!(
                    "taking over: the bucket's Lsns {head}..{n} of older epochs are superseded"
                );
                (head, true)
            }
            Some(n) if n > durable => return Err(ShipError::Ahead { bucket: n, durable }),
            Some(n) if n >= head => (n, !complete),
            // Nothing shipped, or records this log no longer holds: a new base.
            _ => (head, true),
        };
        rvm.set_shipped_lsn(cursor)?;
        shared.lock().status.shipped = cursor;
        log::info!("shipping from Lsn {cursor} (head {head}, durable {durable}, epoch {epoch})");
        let tracker = PageTracker::new(image.segment.offset, image.segment.len);
        Ok(Worker {
            s,
            cursor,
            run_start: cursor,
            tracker,
            last_snap: None,
            chain: 0,
            need_base,
            since_snap: (Instant::now(), 0),
        })
    }

    /// The thread: wait for work, ship, snapshot when due, until stopped or failed.
    pub(crate) fn run(mut self) {
        loop {
            let (stop, sync, snap) = self.wait();
            let result = self.pass().and_then(|()| match self.snapshot_due(snap) {
                true => self.snapshot(),
                false => Ok(()),
            });
            let mut g = self.s.shared.lock();
            g.sync_done = g.sync_done.max(sync);
            g.snapshot_done = g.snapshot_done.max(snap);
            if let Err(e) = result {
                log::error!("log shipping stopped: {e}");
                g.status.failed = Some(e.to_string());
            }
            let failed = g.status.failed.is_some();
            drop(g);
            self.s.shared.done.notify_all();
            if stop || failed {
                return;
            }
        }
    }

    /// Wait for the interval, a full segment, a request or the stop; the stop flag and the
    /// requests this pass answers.
    fn wait(&self) -> (bool, u64, u64) {
        let g = self.s.shared.lock();
        let seal = self.s.cfg.segment_bytes;
        let (g, _) = self
            .s
            .shared
            .wake
            .wait_timeout_while(g, self.s.cfg.interval, |s| {
                !s.stop
                    && s.sync_asked == s.sync_done
                    && s.snapshot_asked == s.snapshot_done
                    && s.queued_bytes < seal
            })
            .unwrap_or_else(|e| e.into_inner());
        (g.stop, g.sync_asked, g.snapshot_asked)
    }

    fn snapshot_due(&self, asked: u64) -> bool {
        let asked = asked > self.s.shared.lock().snapshot_done;
        let (at, bytes) = self.since_snap;
        asked
            || self.need_base
            || at.elapsed() >= self.s.cfg.snapshot_interval
            || bytes >= self.s.cfg.snapshot_bytes
    }

    /// Ship every durable record from the cursor, in segments of about `segment_bytes`.
    fn pass(&mut self) -> Result<(), ShipError> {
        loop {
            let (records, next, count) = self.gather()?;
            if records.is_empty() {
                return Ok(());
            }
            let h = SegmentHeader {
                epoch: self.s.epoch,
                first: self.cursor,
                next,
                created_unix_ms: now_unix_ms(),
                records: count,
            };
            let body = segment::encode(&h, &records);
            let len = body.len() as u64;
            self.put_create(&segment_key(self.s.epoch, self.cursor), Bytes::from(body))?;
            self.s.rvm.set_shipped_lsn(next)?;
            let tracker = &mut self.tracker;
            segment::each_record(&records, |seq, _, rec| tracker.note_record(seq, rec));
            self.cursor = next;
            self.since_snap.1 += len;
            let mut g = self.s.shared.lock();
            g.status.shipped = next;
            g.status.segments += 1;
            g.status.segment_bytes += len;
            g.status.records += count as u64;
        }
    }

    /// Whole records from the cursor, about `segment_bytes` of them: from the tap's queue
    /// while it continues the cursor, else from the log. Returns the bytes, the Lsn after
    /// them, and how many records.
    fn gather(&mut self) -> Result<(Vec<u8>, Lsn, u32), ShipError> {
        let (mut out, mut next) = (Vec::new(), self.cursor);
        while out.len() < self.s.cfg.segment_bytes {
            let queued = self.pop_queued(next);
            let (bytes, to) = match queued {
                Some(q) => q,
                None if next < self.s.rvm.durable_lsn() => {
                    let chunk = self
                        .s
                        .rvm
                        .read_log(next, self.s.cfg.segment_bytes - out.len())?;
                    (chunk.records, chunk.next)
                }
                None => break,
            };
            if to == next {
                break;
            }
            out.extend_from_slice(&bytes);
            next = to;
        }
        let mut count = 0u32;
        segment::each_record(&out, |_, _, _| count += 1);
        Ok((out, next, count))
    }

    /// The queued records that start at `at` (dropping what is before it); `None` if the
    /// queue is empty or has a gap at `at` (the log has those records).
    fn pop_queued(&self, at: Lsn) -> Option<(Vec<u8>, Lsn)> {
        let mut g = self.s.shared.lock();
        while let Some(q) = g.queue.pop_front() {
            g.queued_bytes -= q.records.len();
            if q.next <= at {
                continue;
            }
            if q.first > at {
                g.queued_bytes += q.records.len();
                g.queue.push_front(q);
                return None;
            }
            // It straddles `at`: its records from `at` on.
            let mut from = None;
            segment::each_record(&q.records, |seq, _, rec| {
                if seq == at {
                    from = Some(rec.as_ptr() as usize - q.records.as_ptr() as usize);
                }
            });
            return from.map(|f| (q.records[f..].to_vec(), q.next));
        }
        None
    }

    /// Put `data` at `name` create-only, retrying transient failures with backoff (never
    /// dropping the data); asks `may_write` before every try.
    pub(crate) fn put_create(&self, name: &str, data: Bytes) -> Result<(), ShipError> {
        put_create(
            &self.s.bucket,
            name,
            data,
            self.s.epoch,
            &self.s.may_write,
            &|| self.s.shared.lock().stop,
        )
    }

    /// Take a snapshot of the applied region: full for the first of this run, when the
    /// chain is long or most pages changed; incremental on this run's last one otherwise.
    fn snapshot(&mut self) -> Result<(), ShipError> {
        let base = self
            .last_snap
            .clone()
            .filter(|(lsn, _)| *lsn >= self.run_start && self.chain < MAX_CHAIN);
        let storage = self.s.rvm.storage().clone();
        let seg = self.s.image.segment;
        let tracker = &self.tracker;
        let last = self.last_snap.as_ref().map(|s| s.0);
        let live = self.s.cfg.live_objects.clone();
        let taken = self.s.rvm.hold_applied(|head| -> Result<_, ShipError> {
            if last == Some(head) {
                return Ok(None);
            }
            let incremental = base
                .as_ref()
                .map(|(lsn, _)| tracker.pages_since(*lsn))
                .filter(|p| p.len() <= tracker.page_count() / 2);
            // The object list needs the whole region: read it once, for the pages too.
            let region = live.is_some().then(|| read_region(&*storage, seg)).transpose()?;
            let pages = match (&incremental, &region) {
                (Some(list), Some((r, _))) => pages_of(r, list),
                (Some(list), None) => read_pages(&*storage, seg.offset, list)?,
                (None, Some((r, runs))) => runs
                    .iter()
                    .flat_map(|run| nonzero_pages(&r[run.clone()], (run.start / PAGE) as u32))
                    .collect(),
                (None, None) => read_nonzero(&*storage, seg)?,
            };
            // A region whose objects cannot be read (a damaged extent tree) still gets its
            // snapshot, without an object list: collection then stops (`gc::History::Unknown`).
            let objects = live.as_ref().zip(region.as_ref()).and_then(|(f, (r, _))| {
                (f.0)(r)
                    .inspect_err(|e| {
                        log::error!("snapshot at Lsn {head}: the region's data objects: {e}; no object list")
                    })
                    .ok()
            });
            Ok(Some((head, incremental.is_some(), pages, objects)))
        })??;
        let Some((lsn, incremental, pages, objects)) = taken else {
            return Ok(());
        };
        let base_dir = base.filter(|_| incremental).map(|b| b.1);
        self.chain = if base_dir.is_some() {
            self.chain + 1
        } else {
            0
        };
        let dir = self.put_snapshot(lsn, base_dir, &pages, objects.as_ref())?;
        self.last_snap = Some((lsn, dir));
        self.need_base = false;
        self.since_snap = (Instant::now(), 0);
        retention::retain(
            &self.s.bucket,
            self.s.cfg.keep_snapshots,
            &*self.s.may_write,
        )?;
        if live.is_some() {
            let n = gc::collect(&self.s.bucket, &*self.s.may_write)?;
            if n > 0 {
                log::info!("collected {n} dead data objects");
            }
            self.s.shared.lock().status.objects_collected += n as u64;
        }
        Ok(())
    }

    /// Put the parts, then the manifest; the snapshot's directory.
    fn put_snapshot(
        &self,
        lsn: Lsn,
        base: Option<String>,
        pages: &[(u32, Vec<u8>)],
        objects: Option<&ObjectsAt>,
    ) -> Result<String, ShipError> {
        let dir = snapshot_dir(lsn, self.s.epoch);
        let mut parts = Vec::new();
        let mut bytes = 0u64;
        let objects = match objects {
            Some(at) => {
                let body = gc::encode(at);
                bytes += body.len() as u64;
                let info = ObjectsInfo {
                    name: gc::OBJECTS_NAME.into(),
                    count: at.live.len() as u64,
                    watermark: at.watermark,
                    crc: crc32c::crc32c(&body),
                };
                self.put_create(&format!("{dir}/{}", info.name), Bytes::from(body))?;
                Some(info)
            }
            None => None,
        };
        for (i, chunk) in pages.chunks(PART_PAGES).enumerate() {
            let refs: Vec<(u32, &[u8])> = chunk.iter().map(|(n, p)| (*n, p.as_slice())).collect();
            let body = encode_part(&refs);
            let name = format!("part-{i:08x}");
            parts.push(PartInfo {
                name: name.clone(),
                pages: chunk.len() as u32,
                crc: crc32c::crc32c(&body),
            });
            bytes += body.len() as u64;
            self.put_create(&format!("{dir}/{name}"), Bytes::from(body))?;
        }
        let m = Manifest {
            version: 1,
            lsn,
            epoch: self.s.epoch,
            base,
            created_unix_ms: now_unix_ms(),
            image_len: self.s.image.image_len,
            segment_offset: self.s.image.segment.offset,
            segment_len: self.s.image.segment.len,
            header_block: encode_block(&self.s.image.header_block),
            parts,
            objects,
        };
        let body = serde_json::to_vec_pretty(&m).map_err(|e| ShipError::Corrupt(e.to_string()))?;
        bytes += body.len() as u64;
        self.put_create(&format!("{dir}/manifest"), Bytes::from(body))?;
        let mut g = self.s.shared.lock();
        g.status.snapshots += 1;
        g.status.snapshot_bytes += bytes;
        g.status.last_snapshot = Some(lsn);
        log::info!("snapshot {dir}: {} pages, {bytes} bytes", pages.len());
        Ok(dir)
    }
}

/// Create-only put with retries (see [`Worker::put_create`]); `stopping` says whether the
/// shipper was asked to stop (then a failing put is given up after [`STOP_GRACE`]).
pub(crate) fn put_create(
    bucket: &Bucket,
    name: &str,
    data: Bytes,
    epoch: u32,
    may_write: &MayWrite,
    stopping: &dyn Fn() -> bool,
) -> Result<(), ShipError> {
    let mut backoff = FIRST_BACKOFF;
    let mut stop_seen: Option<Instant> = None;
    loop {
        if !may_write() {
            return Err(ShipError::LeaseLost(epoch));
        }
        let e = match bucket.put(name, data.clone(), Put::Create) {
            Ok(_) => return Ok(()),
            // A retried put whose first answer was lost finds its own object: done.
            Err(Error::AlreadyExists { key }) => match bucket.get(name) {
                Ok((b, _)) if b == data => return Ok(()),
                Ok(_) => return Err(ShipError::Collision { key, epoch }),
                Err(e) => e,
            },
            Err(
                e @ (Error::Denied { .. }
                | Error::Config(_)
                | Error::BadUrl { .. }
                | Error::InsideRuntime),
            ) => return Err(e.into()),
            Err(e) => e,
        };
        if stopping() && stop_seen.get_or_insert_with(Instant::now).elapsed() > STOP_GRACE {
            return Err(e.into());
        }
        log::warn!("put {name} failed, retrying in {backoff:?}: {e}");
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// The region pages `list` (page numbers) read from `storage` at image offset `base`.
fn read_pages(
    storage: &dyn rvm_core::Storage,
    base: u64,
    list: &[u32],
) -> Result<Vec<(u32, Vec<u8>)>, ShipError> {
    let mut out = Vec::with_capacity(list.len());
    for &p in list {
        let mut page = vec![0u8; PAGE];
        storage.read_at(&mut page, base + p as u64 * PAGE as u64)?;
        out.push((p, page));
    }
    Ok(out)
}

/// The region pages `list` (page numbers) copied from `region` (the whole region, as
/// [`read_region`] read it), each padded to a whole page: an incremental snapshot of an
/// image with an object list reads the region once, not its changed pages a second time.
fn pages_of(region: &[u8], list: &[u32]) -> Vec<(u32, Vec<u8>)> {
    list.iter()
        .map(|&p| {
            let src = region.get(p as usize * PAGE..).unwrap_or(&[]);
            let mut page = src[..src.len().min(PAGE)].to_vec();
            page.resize(PAGE, 0);
            (p, page)
        })
        .collect()
}

/// The whole region in `storage` at `seg`, read only where the storage may hold data (the
/// rest left zero: a new image's region is mostly unwritten extents, which would otherwise
/// be read, zero page by zero page, into the page cache), and those runs ([`page_runs`]).
fn read_region(
    storage: &dyn rvm_core::Storage,
    seg: rvm_core::Area,
) -> Result<(Vec<u8>, Vec<Range<usize>>), ShipError> {
    let mut region = vec![0u8; seg.len as usize];
    let runs = page_runs(storage, seg)?;
    for r in &runs {
        storage.read_at(&mut region[r.clone()], seg.offset + r.start as u64)?;
    }
    Ok((region, runs))
}

/// The runs of the region at `seg` that may hold data (`Storage::data_ranges`), as byte
/// ranges of the region widened to whole pages, in order, overlapping ones merged.
fn page_runs(
    storage: &dyn rvm_core::Storage,
    seg: rvm_core::Area,
) -> Result<Vec<Range<usize>>, ShipError> {
    let page = PAGE as u64;
    let mut runs: Vec<Range<usize>> = Vec::new();
    for (at, len) in storage.data_ranges(seg.offset, seg.len)? {
        let rel = at.saturating_sub(seg.offset);
        let start = (rel / page * page) as usize;
        let end = ((rel + len).div_ceil(page) * page).min(seg.len) as usize;
        match runs.last_mut() {
            Some(last) if start <= last.end => last.end = last.end.max(end),
            _ => runs.push(start..end),
        }
    }
    Ok(runs)
}

/// The pages of `bytes` (region pages from number `first` on) that are not all zeros, each
/// padded to a whole page.
fn nonzero_pages(bytes: &[u8], first: u32) -> Vec<(u32, Vec<u8>)> {
    let mut out = Vec::new();
    for (i, page) in bytes.chunks(PAGE).enumerate() {
        if page.iter().any(|&b| b != 0) {
            let mut p = page.to_vec();
            p.resize(PAGE, 0);
            out.push((first + i as u32, p));
        }
    }
    out
}

/// Every page of the region at `seg` that is not all zeros, read in 1 MiB pieces where
/// the storage may hold data ([`page_runs`]).
fn read_nonzero(
    storage: &dyn rvm_core::Storage,
    seg: rvm_core::Area,
) -> Result<Vec<(u32, Vec<u8>)>, ShipError> {
    const CHUNK: usize = 1 << 20;
    let mut out = Vec::new();
    let mut buf = vec![0u8; CHUNK];
    for run in page_runs(storage, seg)? {
        let mut at = run.start;
        while at < run.end {
            let n = (run.end - at).min(CHUNK);
            storage.read_at(&mut buf[..n], seg.offset + at as u64)?;
            out.extend(nonzero_pages(&buf[..n], (at / PAGE) as u32));
            at += n;
        }
    }
    Ok(out)
}
