//! What the daemon runs for an `object_data` image: a read-write mount starts a [`Session`]
//! (probe, lease, keeper), the [`Uploader`] and the log shipper (`objstore::ship`, docs/
//! format.md 11.7: every durable redo record to `log/`, snapshots to `snap/`); a read-only
//! one only reads the bucket (no lease: it writes nothing). [`Remote::finish`] at a clean
//! unmount uploads what is dirty, stops the uploader; [`Remote::stop_shipper`] ships the last
//! records before truncation; [`Remote::close`] then releases the lease. A read-write mount
//! also keeps clean blocks in free local blocks (`remote::cache`), and writes that find every
//! local block dirty fail or wait as `-o cache_full=` says (`remote::full`).

use super::blocks::Blocks;
use super::cache::LocalCache;
use super::full::{self, CacheFull};
use super::lock;
use super::session::{Access, Session, SessionError};
use super::uploader::{scan_dirty, Uploader};
use crate::error::FsResult;
use crate::layout::features::INCOMPAT_OBJECT_DATA;
use crate::ops::Fs;
use objstore::ship::{ImageInfo, ShipConfig, ShipError, Shipper};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// How long an fsync under `-o upload=sync` waits for the log shipper (an object-store
/// operation's limit, retries included, plus a shipping interval).
pub const SHIP_SYNC_TIMEOUT: Duration = Duration::from_secs(31);

/// How often the log shipper puts the records made durable since its last pass: with
/// `options::OBJECT_COMMIT`, the window a machine loss can lose (issue 14: about 1 s).
pub const SHIP_INTERVAL: Duration = Duration::from_millis(250);

/// An `object_data` mount's remote parts.
pub struct Remote {
    session: Option<Arc<Session>>,
    blocks: Arc<Blocks>,
    uploader: Mutex<Option<Uploader>>,
    shipper: Mutex<Option<Shipper>>,
    /// `-o upload=sync`: fsync waits for the file's upload.
    pub upload_sync: bool,
    /// `-o inject_crash=after_upload` (tests only).
    pub crash_after_upload: bool,
    /// `-o cache_full=`: writes when every local block is dirty.
    pub cache_full: CacheFull,
    /// `-o snapshot_interval=` and `-o keep_snapshots=`: the log shipper's snapshot pace and
    /// retention (None: `ShipConfig`'s defaults, 10 min and 2).
    pub snapshots: (Option<Duration>, Option<usize>),
    /// `-o takeover`: the lease was taken by force; the shipper supersedes older epochs'
    /// records past this image.
    takeover: bool,
}

impl Remote {
    /// For an `object_data` image (else None): connect to its bucket (with the credentials
    /// file `credentials`, else the AWS environment); read-write, also probe it and take the
    /// lease (by force with `takeover`). Sets `fs.geo.remote`, and notes every inode with
    /// local blocks as dirty. `cache_size`: bytes of free local blocks the clean cache may
    /// use (None: all of them; a read-only mount caches nothing locally).
    /// Errors: the probe's refusal, "the bucket is in use ...", a bad URL or credentials.
    pub fn attach(
        fs: &mut Fs,
        credentials: Option<std::path::PathBuf>,
        read_only: bool,
        cache_size: Option<u64>,
        takeover: bool,
    ) -> Result<Option<Remote>, SessionError> {
        let sb = crate::store::superblock(fs.bytes()).map_err(|e| SessionError::BadImage {
            url: String::new(),
            why: e.to_string(),
        })?;
        if !sb.features.has_incompat(INCOMPAT_OBJECT_DATA) {
            return Ok(None);
        }
        let access = Access {
            url: sb.data_url(),
            credentials_file: credentials,
        };
        let (session, bucket) = if read_only {
            (None, access.open()?)
        } else {
            let s = Session::start(&access, fs.rvm.clone(), takeover)?;
            let b = s.bucket().clone();
            (Some(s), b)
        };
        let cap = cache_size.map_or(sb.data_blocks, |b| b / crate::layout::BLOCK_SIZE);
        let image = (!read_only).then(|| fs.geo.image.clone());
        let local = LocalCache::new(image, fs.geo.data_offset, cap, sb.data_blocks / 2);
        let blocks = Arc::new(Blocks::new(bucket, sb.object_shift, local));
        scan_dirty(fs.bytes(), &blocks).map_err(|e| SessionError::BadImage {
            url: access.url.clone(),
            why: e.to_string(),
        })?;
        fs.geo.remote = Some(blocks.clone());
        Ok(Some(Remote {
            session,
            blocks,
            uploader: Mutex::default(),
            shipper: Mutex::default(),
            upload_sync: false,
            crash_after_upload: false,
            cache_full: CacheFull::default(),
            snapshots: (None, None),
            takeover,
        }))
    }

    /// The session (None on a read-only mount): the bucket and the epoch, for a log shipper.
    pub fn session(&self) -> Option<&Arc<Session>> {
        self.session.as_ref()
    }

    /// Start uploading dirty blocks of `fs` every `interval` (read-write mounts only).
    /// Errors: the packer's.
    pub fn start_uploader(
        &self,
        fs: Arc<RwLock<Fs>>,
        interval: Duration,
    ) -> Result<(), objstore::Error> {
        if let Some(s) = &self.session {
            let timing = (interval, self.crash_after_upload);
            let u = Uploader::start(fs, s.clone(), self.blocks.clone(), timing)?;
            *lock(&self.uploader) = Some(u);
        }
        Ok(())
    }

    /// Start shipping the redo log of `fs` (the image file `image`) to the bucket, under
    /// this mount's epoch and lease (read-write mounts of images opened with
    /// `OpenMode::ship`, the log inside the image or on an external device). The header block shipped is the one
    /// the daemon decoded at open (`Header::encode_block`, with its error record). Errors: the
    /// image's length cannot be read, or the shipper cannot start (its listing of the bucket
    /// failed).
    pub fn start_shipper(&self, fs: &Fs, image: &std::path::Path) -> Result<(), ShipError> {
        let Some(s) = &self.session else {
            return Ok(());
        };
        if !fs.rvm.options().ship {
            return Ok(());
        }
        let header_block = fs.header.encode_block(fs.errors.record.as_ref());
        let image_len = std::fs::metadata(image)?.len();
        let info = ImageInfo {
            header_block,
            image_len,
            segment: fs.header.segment_area(),
        };
        let session = s.clone();
        let may_write = Arc::new(move || session.may_ship());
        let shipper = Shipper::start(
            s.bucket().clone(),
            fs.rvm.clone(),
            info,
            u64::from(s.epoch()),
            may_write,
            self.ship_config(),
        )?;
        *lock(&self.shipper) = Some(shipper);
        Ok(())
    }

    /// The log shipper's settings for this mount: every snapshot carries its object list and
    /// dead objects are collected after each retention (`objstore::ship::gc`).
    fn ship_config(&self) -> ShipConfig {
        let d = ShipConfig::default();
        ShipConfig {
            take_over: self.takeover,
            interval: SHIP_INTERVAL,
            snapshot_interval: self.snapshots.0.unwrap_or(d.snapshot_interval),
            keep_snapshots: self.snapshots.1.unwrap_or(d.keep_snapshots),
            live_objects: Some(super::live::reader(self.blocks.shift())),
            ..d
        }
    }

    /// fsync under `-o upload=sync`, after the file's data is in the bucket and the log is
    /// durable: wait until the log shipper has put every durable record (at most
    /// [`SHIP_SYNC_TIMEOUT`]), so the loss of the machine loses nothing fsync answered.
    /// Errors: EIO when the shipper has stopped or does not get there in time (the
    /// operation stays durable locally).
    pub fn sync_shipped(&self) -> FsResult<()> {
        if !self.upload_sync {
            return Ok(());
        }
        match lock(&self.shipper).as_ref() {
            Some(sh) => sh.sync(SHIP_SYNC_TIMEOUT).map(drop).map_err(super::eio),
            None => Ok(()),
        }
    }

    /// Clean unmount, once every record is durable: ship them and stop the shipper.
    pub fn stop_shipper(&self) {
        if let Some(sh) = lock(&self.shipper).take() {
            let st = sh.stop();
            log::info!("log shipper stopped: {st:?}");
        }
    }

    /// fsync of `ino` under `-o upload=sync`: upload its dirty blocks now.
    /// Errors: EIO when the upload or its commit fails (the data stays local and durable).
    pub fn sync_inode(&self, ino: u64) -> FsResult<()> {
        match (self.upload_sync, lock(&self.uploader).as_ref()) {
            (true, Some(u)) => u.upload_inode(ino),
            _ => Ok(()),
        }
    }

    /// Run write request `f` as `-o cache_full=` says when it finds every local block dirty
    /// (`remote::full`): ENOSPC at once, or retried while the uploader frees blocks.
    pub fn when_full<T>(&self, f: impl FnMut() -> FsResult<T>) -> FsResult<T> {
        let dirty = || self.blocks.any_dirty();
        let nudge = || {
            if let Some(u) = lock(&self.uploader).as_ref() {
                u.wake();
            }
        };
        full::retry_while_full(self.cache_full, self.blocks.freed(), (&dirty, &nudge), f)
    }

    /// Clean unmount, before the image is marked clean: upload what is dirty (as far as the
    /// bucket takes it) and stop the uploader.
    pub fn finish(&self) {
        if let Some(u) = lock(&self.uploader).take() {
            u.finish();
        }
        log::info!("clean cache: {:?}", self.blocks.local().stats());
    }

    /// After the image is marked clean: release the lease.
    pub fn close(&self) {
        if let Some(s) = &self.session {
            s.close();
        }
    }
}
