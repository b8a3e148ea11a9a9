//! Opening an image: the file, its exclusive lock, the header, RVM recovery, the region.
//! `rvmfs` (mount) and `fsck.rvmfs` both start here; `mkfs.rvmfs` writes what this reads.

pub mod host_file;
pub mod log_device;
pub mod read_only;
pub mod stall;

use crate::error::FsError;
use crate::layout::external_log::{ExternalLogError, LogHeader};
use crate::layout::features::{
    describe, Features, Word, INCOMPAT_EXTERNAL_LOG, INCOMPAT_OBJECT_DATA,
};
use crate::layout::header::{Header, HeaderError, HEADER_SIZE};
use crate::store::superblock;
use rvm_core::{FileStorage, Region, Rvm, RvmError, RvmOptions, Storage};
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Why an image could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot open {path} for writing: {source} (mount it read-only with -o ro, or check it \
         with fsck -n)"
    )]
    NotWritable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is in use (mounted, or being checked): another process holds its lock")]
    Busy { path: PathBuf },
    #[error("{path}: {source}")]
    Header { path: PathBuf, source: HeaderError },
    #[error(
        "{path}: the image uses features this program can only read (ro-compat: {}): \
         open it read-only (mount -o ro, fsck -n) or use a newer rvmfs",
        describe(Word::RoCompat, *.bits)
    )]
    ReadOnlyFeatures { path: PathBuf, bits: u32 },
    #[error("{path}: {source}")]
    Features { path: PathBuf, source: HeaderError },
    #[error("{path}: recovering the log failed: {source}")]
    Recovery { path: PathBuf, source: RvmError },
    #[error("{path}: the metadata region is corrupt: {what} (run fsck.rvmfs)")]
    Region { path: PathBuf, what: FsError },
    #[error("{path}: the host file system has no room for the image's log and metadata region ({need_mib} MiB must be allocated; free space on the host)")]
    NoRoom {
        path: PathBuf,
        need_mib: u64,
        source: std::io::Error,
    },
    #[error(
        "{path}: its external log {} does not exist (give where it is now with -o logdev=PATH \
         to mount, -l PATH to fsck.rvmfs)", log.display()
    )]
    LogMissing { path: PathBuf, log: PathBuf },
    #[error(
        "{path}: {} is not this image's external log: it belongs to image/log {found}, the \
         image wants {want} (give the right one with -o logdev=PATH, fsck.rvmfs -l PATH)",
        log.display()
    )]
    LogMismatch {
        path: PathBuf,
        log: PathBuf,
        want: String,
        found: String,
    },
    #[error("{path}: external log {}: {source}", log.display())]
    LogHeader {
        path: PathBuf,
        log: PathBuf,
        source: ExternalLogError,
    },
    #[error("{path}: the image's log is on another device (external_log): open it by its path")]
    ExternalLog { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How to open.
#[derive(Clone, Debug, Default)]
pub struct OpenMode {
    /// Write nothing: recovery replays into memory only (`fsck -n`).
    pub read_only: bool,
    /// Background flush of spooled commits, like ext4's `commit=` (None = only on fsync).
    pub commit_interval: Option<Duration>,
    /// Where the external log is, instead of the path the image records (`-o logdev=`,
    /// `fsck.rvmfs -l`); ignored for an image whose log is inside it.
    pub logdev: Option<PathBuf>,
    /// On an `object_data` image with its log inside: keep every record in the log until a
    /// log shipper reports it shipped (rvm-core's `RvmOptions::ship`, docs/format.md 11.7).
    /// Only the daemon asks for it, and starts the shipper (`remote::Remote::start_shipper`);
    /// [`open_on`] takes it on any image with its log inside (the shipping tests).
    pub ship: bool,
}

/// An opened, recovered image.
pub struct Image {
    /// The image file, as the storage under the log, the segment and the data area.
    pub storage: Arc<dyn Storage>,
    pub header: Header,
    pub rvm: Arc<Rvm>,
    pub region: Region,
    /// The external log (path opened, its header), if the image has one.
    pub log_device: Option<(PathBuf, LogHeader)>,
}

/// Where an image's spool lives: shared memory, so spooled commits survive the daemon's death
/// (not a reboot), as Rio Vista's persistent memory did.
pub fn spool_path(header: &Header) -> Option<PathBuf> {
    let shm = Path::new("/dev/shm");
    shm.is_dir()
        .then(|| shm.join(format!("rvmfs-{}.spool", header.uuid_string())))
}

/// Take the image's exclusive lock (a second mount or an fsck of a mounted image fails).
pub fn lock(file: &File, path: &Path) -> Result<(), ImageError> {
    // SAFETY: flock on a valid open descriptor; no memory is passed.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => Err(ImageError::Busy { path: path.into() }),
            _ => Err(ImageError::Io {
                path: path.into(),
                source: e,
            }),
        };
    }
    Ok(())
}

/// Read and check the header of the image in `file`.
pub fn read_header(file: &File, path: &Path) -> Result<Header, ImageError> {
    let io = |source| ImageError::Io {
        path: path.into(),
        source,
    };
    let len = (&*file).seek(SeekFrom::End(0)).map_err(io)?;
    if len < HEADER_SIZE {
        return Err(ImageError::Header {
            path: path.into(),
            source: HeaderError::NotRvmfs,
        });
    }
    let mut block = vec![0u8; HEADER_SIZE as usize];
    file.read_exact_at(&mut block, 0).map_err(io)?;
    Header::decode(&block, len).map_err(|source| ImageError::Header {
        path: path.into(),
        source,
    })
}

/// Rewrite the header of an opened image (its first 0x90 bytes, CRCs recomputed; the error
/// record after them is left alone) and sync: `rvmfs-admin tune -U`, whose UUID lives in the
/// header, outside the region and its log. The header fits in one sector, so the write is
/// all or nothing on any device that writes sectors atomically.
///
/// Errors: the write's or the sync's I/O error.
pub fn write_header(storage: &dyn Storage, header: &Header) -> std::io::Result<()> {
    let block = header.encode();
    storage.write_at(&block[..std::mem::size_of::<Header>()], 0)?;
    storage.sync()
}

/// Refuse `features` with an unknown incompat bit, and a writable open of an unknown ro-compat
/// bit (docs/format.md section 9).
pub fn check_features(features: &Features, mode: &OpenMode, path: &Path) -> Result<(), ImageError> {
    if features.unknown_incompat() != 0 {
        return Err(ImageError::Features {
            path: path.into(),
            source: HeaderError::Incompat(features.unknown_incompat()),
        });
    }
    if features.unknown_ro_compat() != 0 && !mode.read_only {
        return Err(ImageError::ReadOnlyFeatures {
            path: path.into(),
            bits: features.unknown_ro_compat(),
        });
    }
    Ok(())
}

/// Make sure the header, log and metadata region of an image file have host blocks (mkfs
/// allocates them; an image made by an older mkfs may have holes there): the region is
/// mapped, and a page fault on a hole of a full host (tmpfs) would kill the daemon with
/// SIGBUS, a truncation or clean unmount would fail with ENOSPC. `fallocate` of allocated
/// blocks changes nothing and costs little; hosts without fallocate and devices are skipped.
fn allocate_metadata(file: &File, header: &Header, path: &Path) -> Result<(), ImageError> {
    let len = header.data_offset;
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Ok(());
    }
    // SAFETY: fallocate on a valid descriptor with plain integer arguments.
    let r = unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, 0, len as i64) };
    if r == 0 {
        return Ok(());
    }
    let source = std::io::Error::last_os_error();
    match source.raw_os_error() {
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => Ok(()),
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => Err(ImageError::NoRoom {
            path: path.into(),
            need_mib: len.div_ceil(1 << 20),
            source,
        }),
        _ => Err(ImageError::Io {
            path: path.into(),
            source,
        }),
    }
}

/// Bytes of the spool in /dev/shm (records committed no-flush wait there for the log). The
/// commit timer starts writing them out at half of it; it grows if one record needs more.
const SPOOL_SIZE: u64 = 8 << 20;

/// Open the image file: read-write, or read-only (`O_RDONLY`, so an image the user may not
/// write, or one on a read-only filesystem, can still be mounted `-o ro` and checked `-n`).
/// Read-write refuses a file without any write permission bit even for root (who could
/// write it anyway): its owner marked it read-only.
fn open_file(path: &Path, read_only: bool) -> Result<File, ImageError> {
    use std::os::unix::fs::PermissionsExt;
    let opened = OpenOptions::new().read(true).write(!read_only).open(path);
    let file = match opened {
        Err(source) if !read_only && is_not_writable(&source) => {
            return Err(ImageError::NotWritable {
                path: path.into(),
                source,
            })
        }
        other => other.map_err(|source| ImageError::Open {
            path: path.into(),
            source,
        })?,
    };
    let mode = file
        .metadata()
        .map_err(|source| ImageError::Io {
            path: path.into(),
            source,
        })?
        .permissions()
        .mode();
    if !read_only && mode & 0o222 == 0 {
        return Err(ImageError::NotWritable {
            path: path.into(),
            source: std::io::Error::from_raw_os_error(libc::EACCES),
        });
    }
    Ok(file)
}

fn is_not_writable(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EACCES | libc::EPERM | libc::EROFS | libc::ETXTBSY)
    )
}

/// Open, lock, recover and map the image at `path`. Read-only (`mode.read_only`) writes
/// nothing at all: the file is opened `O_RDONLY`, the log (and the spool a crashed daemon
/// left) is replayed into memory only, the spool is left where it is for the next
/// read-write open, and the returned storage shows the replayed file data on reads
/// ([`read_only::ReadOnlyStorage`]).
pub fn open(path: &Path, mode: OpenMode) -> Result<Image, ImageError> {
    open_with(path, mode, |storage| storage)
}

/// As [`open`], with the image's storage wrapped by `wrap` before recovery (the daemon's
/// debug option `-o inject_fault=` wraps it in `rvm_core::FaultStorage`).
pub fn open_with(
    path: &Path,
    mode: OpenMode,
    wrap: impl FnOnce(Arc<dyn Storage>) -> Arc<dyn Storage>,
) -> Result<Image, ImageError> {
    open_locked(path, mode, true, wrap)
}

/// Open the image at `path` for inspection, as [`open`] read-only but without taking its
/// lock, so an image a daemon has mounted can be looked at (`rvmfs-admin`, like debugfs on a
/// mounted ext4): nothing is written, the log and the spool are replayed in memory. What it
/// shows of a mounted image is its state on disk, which may lag the daemon by the commits
/// still in the spool or in flight.
///
/// Errors: as [`open`], except `ImageError::Busy`.
pub fn open_shared(path: &Path) -> Result<Image, ImageError> {
    let mode = OpenMode {
        read_only: true,
        commit_interval: None,
        logdev: None,
        ship: false,
    };
    open_locked(path, mode, false, |storage| storage)
}

/// Open the image at `path` read-only to look at it (`rvmfs-admin dump`, like dumpe2fs): as
/// [`open`] with `read_only`, and if another process holds the image's lock (a mount, an
/// fsck), as [`open_shared`]. Returns the image and whether it is in use.
///
/// Errors: as [`open`], never `ImageError::Busy`.
pub fn open_inspect(path: &Path) -> Result<(Image, bool), ImageError> {
    open_inspect_with(path, None)
}

/// As [`open_inspect`], with the external log at `logdev` instead of its recorded path.
///
/// Errors: as [`open`], never `ImageError::Busy`.
pub fn open_inspect_with(
    path: &Path,
    logdev: Option<PathBuf>,
) -> Result<(Image, bool), ImageError> {
    let mode = OpenMode {
        read_only: true,
        commit_interval: None,
        logdev,
        ship: false,
    };
    match open_locked(path, mode.clone(), true, |storage| storage) {
        Err(ImageError::Busy { .. }) => {
            Ok((open_locked(path, mode, false, |storage| storage)?, true))
        }
        other => other.map(|img| (img, false)),
    }
}

/// [`open_with`], taking the image's lock if `take_lock`.
fn open_locked(
    path: &Path,
    mode: OpenMode,
    take_lock: bool,
    wrap: impl FnOnce(Arc<dyn Storage>) -> Arc<dyn Storage>,
) -> Result<Image, ImageError> {
    let file = open_file(path, mode.read_only)?;
    if take_lock {
        lock(&file, path)?;
    }
    let header = read_header(&file, path)?;
    check_features(&header.features, &mode, path)?;
    let io = |source| ImageError::Io {
        path: path.into(),
        source,
    };
    if !mode.read_only {
        allocate_metadata(&file, &header, path)?;
    }
    let storage: Arc<dyn Storage> = Arc::new(FileStorage::new(file.try_clone().map_err(io)?));
    let storage = wrap(storage);
    let device = match header.features.has_incompat(INCOMPAT_EXTERNAL_LOG) {
        true => {
            let binding = log_device::read_binding(&file, path)?;
            Some(log_device::open(path, &header, &binding, &mode, take_lock)?)
        }
        false => None,
    };
    let log = LogPlan {
        ship: mode.ship && header.features.has_incompat(INCOMPAT_OBJECT_DATA),
        device,
        spool: spool_path(&header),
        spool_size: SPOOL_SIZE,
    };
    let image = recover(storage, header, log, &mode, path);
    drop(file); // the lock stays: flock belongs to the open file description the storage shares
    image
}

/// Open the image on `storage` (an image of `len` bytes that the caller opened: rvm-core's
/// `MemStorage` in the library tests, a file's storage), recovering its log and mapping its
/// region as [`open`] does, without a file: no lock, no spool (a no-flush commit waits in
/// memory only), and the log inside the image. `mode.ship` keeps every record in the log until
/// a shipper reports it shipped on any image (not only an `object_data` one, as [`open`]:
/// the shipping tests ship local-data images); `mode.logdev` is unused.
///
/// Errors: `Io` if the header cannot be read, `Header` if it is not a valid one, `Features`
/// for unknown features, `ExternalLog` for an `external_log` image, `Recovery`, `Region` as
/// [`open`]. Their messages name the image "image storage".
pub fn open_on(storage: Arc<dyn Storage>, len: u64, mode: OpenMode) -> Result<Image, ImageError> {
    let path = Path::new("image storage");
    let mut block = vec![0u8; HEADER_SIZE as usize];
    storage
        .read_at(&mut block, 0)
        .map_err(|source| ImageError::Io {
            path: path.into(),
            source,
        })?;
    let header = Header::decode(&block, len).map_err(|source| ImageError::Header {
        path: path.into(),
        source,
    })?;
    check_features(&header.features, &mode, path)?;
    if header.features.has_incompat(INCOMPAT_EXTERNAL_LOG) {
        return Err(ImageError::ExternalLog { path: path.into() });
    }
    let log = LogPlan {
        device: None,
        spool: None,
        spool_size: RvmOptions::default().spool_size,
        ship: mode.ship,
    };
    recover(storage, header, log, &mode, path)
}

/// Where an open's redo log is and how it is kept, decided before recovery.
struct LogPlan {
    /// The external log, if the image has one (else the log is inside the image).
    device: Option<log_device::LogDevice>,
    /// rvm-core's spool and its size, bytes (`RvmOptions::spool`, `spool_size`).
    spool: Option<PathBuf>,
    spool_size: u64,
    /// Keep every record until a shipper reports it shipped (`RvmOptions::ship`; never on a
    /// read-only open).
    ship: bool,
}

/// Recover the log of the image on `storage` (header `header`, its log as `log` says), map
/// its region and check its superblock: the steps every open shares once the storage is at
/// hand. Read-only (`mode.read_only`) replays into memory and returns the storage that shows
/// the replayed file data ([`read_only::ReadOnlyStorage`]).
fn recover(
    storage: Arc<dyn Storage>,
    header: Header,
    log: LogPlan,
    mode: &OpenMode,
    path: &Path,
) -> Result<Image, ImageError> {
    let (log_storage, log_area) = match &log.device {
        Some(d) => (d.storage.clone(), d.area()),
        None => (storage.clone(), header.log_area()),
    };
    let options = RvmOptions {
        log: log_area,
        spool: log.spool,
        commit_interval: mode.commit_interval,
        ordered: true,
        read_only: mode.read_only,
        spool_size: log.spool_size,
        ship: log.ship && !mode.read_only,
        ..RvmOptions::default()
    };
    let recovery = |source| ImageError::Recovery {
        path: path.into(),
        source,
    };
    let rvm = Rvm::initialize_with_log(storage.clone(), log_storage, options).map_err(recovery)?;
    let region = rvm.map(header.segment_area()).map_err(recovery)?;
    // A damaged primary with a sound backup (`backup_sb`) opens, for fsck to restore; the
    // daemon refuses it before use (`superblock_backup::primary_fault`).
    let sb = superblock(region.bytes())
        .or_else(|e| crate::layout::superblock_backup::read(region.bytes(), &header).ok_or(e));
    match sb {
        Err(e) => {
            return Err(ImageError::Region {
                path: path.into(),
                what: e,
            })
        }
        // The superblock mirrors the header's words; refuse what either says we cannot do.
        Ok(sb) => check_features(&sb.features, mode, path)?,
    }
    let storage: Arc<dyn Storage> = if mode.read_only {
        let ro =
            read_only::ReadOnlyStorage::new(storage, rvm.recovered_ranges(), header.segment_area());
        log::info!(
            "read-only: log replayed in memory ({} records, {} ranges of file data overlaid)",
            rvm.stats().records_recovered,
            ro.overlaid_ranges()
        );
        Arc::new(ro)
    } else {
        storage
    };
    Ok(Image {
        storage,
        header,
        rvm: Arc::new(rvm),
        region,
        log_device: log.device.map(|d| (d.path, d.header)),
    })
}
