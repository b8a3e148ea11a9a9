//! Formatting: lay out a new image (mkfs.rvmfs's work, as a library call).

use crate::error::FsError;
use crate::layout::external_log::{
    ExternalLogError, LogBinding, LogHeader, BINDING_OFFSET, BINDING_SIZE, LOG_HEADER_SIZE,
};
use crate::layout::features::{INCOMPAT_EXTERNAL_LOG, INCOMPAT_KEYED_HASH, INCOMPAT_OBJECT_DATA};
use crate::layout::geometry::{plan, Plan, PlanError};
use crate::layout::header::Header;
use crate::layout::inode::{now, Inode};
use crate::layout::pod;
use crate::layout::superblock::{Superblock, DATA_URL_LEN, LABEL_LEN, ROOT_INO};
use crate::store::bitmap;
use rvm_core::{CommitMode, RestoreMode, Rvm, RvmOptions, Storage};
use std::sync::Arc;

/// Why formatting failed.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error(transparent)]
    Geometry(#[from] PlanError),
    #[error("writing the image: {0}")]
    Io(#[from] std::io::Error),
    #[error("initializing the metadata region: {0}")]
    Rvm(#[from] rvm_core::RvmError),
    #[error("initializing the metadata region: {0}")]
    Fs(#[from] FsError),
    #[error("the external log: {0}")]
    ExternalLog(#[from] ExternalLogError),
    #[error("the external log must be at least 1 MiB (it is {0} bytes)")]
    LogTooSmall(u64),
}

/// An external log to format with the image (`mkfs.rvmfs -J device=`): a file or device of
/// `device_len` bytes whose first 4 KiB and log area the format overwrites.
pub struct ExternalLog {
    pub storage: Arc<dyn Storage>,
    /// Bytes of the log file or device (a 4 KiB header, then the RVM log).
    pub device_len: u64,
    /// The path recorded in the image (absolute).
    pub path: String,
    /// The log's own UUID.
    pub log_uuid: [u8; 16],
}

/// A secret key for the keyed name hash: 16 bytes from the kernel's CSPRNG (getrandom(2)).
fn random_key() -> std::io::Result<[u8; 16]> {
    let mut key = [0u8; 16];
    let mut got = 0;
    while got < key.len() {
        // SAFETY: writes at most the remaining length into `key`.
        let r = unsafe { libc::getrandom(key[got..].as_mut_ptr().cast(), key.len() - got, 0) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        } else {
            got += r as usize;
        }
    }
    Ok(key)
}

/// What mkfs sets in a new superblock besides the geometry (`mkfs -L`, `-m`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Settings {
    /// Volume label, NUL-padded (`Superblock::label`).
    pub label: [u8; LABEL_LEN],
    /// Per mille of the data blocks reserved for root (`mkfs -m 5` = 50; 0 = none).
    pub reserved_permille: u64,
    /// `mkfs --data`: the file data lives in this bucket (`s3://BUCKET/PREFIX`, NUL-padded),
    /// in objects of `1 << object_shift` blocks: incompat `object_data` (docs/format.md 11).
    pub object_data: Option<([u8; DATA_URL_LEN], u32)>,
}

/// Format `storage` (a file or device of `p.size` bytes whose log and segment areas read as
/// zeros; `rvm_core::FileStorage` for a real image) as an rvmfs image. The header is written
/// last, so a format cut short leaves no valid image.
pub fn format(
    storage: Arc<dyn Storage>,
    p: Plan,
    uuid: [u8; 16],
    root_owner: (u32, u32),
) -> Result<Header, FormatError> {
    format_external(storage, p, uuid, root_owner, Settings::default(), None)
}

/// As [`format`], with a label and a root reserve (`settings`), and the redo log on
/// `external` if given: the log device gets its header (bound to `uuid`) and an empty log,
/// the image the `external_log` feature and the log binding (docs/format.md sections 2.2,
/// 3.5); the image's own log area stays unused.
///
/// Errors: as [`format`]; `LogTooSmall` under 1 MiB; `ExternalLog` for a path too long.
pub fn format_external(
    storage: Arc<dyn Storage>,
    p: Plan,
    uuid: [u8; 16],
    root_owner: (u32, u32),
    settings: Settings,
    external: Option<ExternalLog>,
) -> Result<Header, FormatError> {
    let sec = now().0;
    let (mut header, mut sb) = plan(p, uuid, sec)?;
    let binding = match &external {
        Some(x) => Some(bind_external_log(x, &mut header, &mut sb)?),
        None => None,
    };
    apply_settings(&mut header, &mut sb, &settings)?;
    // Overwrite any old header first: until the new one is written, this is no image.
    storage.write_at(&[0u8; 4096], 0)?;
    let (log_storage, log_area) = match &external {
        Some(x) => {
            let lh = LogHeader::new(uuid, x.log_uuid, x.device_len, sec);
            x.storage.write_at(&lh.encode(), 0)?;
            (x.storage.clone(), lh.log)
        }
        None => (storage.clone(), header.log_area()),
    };
    Rvm::create_log(&*log_storage, log_area)?;
    write_region(
        storage.clone(),
        log_storage,
        log_area,
        &header,
        sb,
        root_owner,
    )?;
    // One write of the header block, with the log binding in it (a sector-atomic write).
    let mut block = header.encode();
    if let Some(b) = binding {
        let at = BINDING_OFFSET as usize;
        block[at..at + b.len()].copy_from_slice(&b);
    }
    storage.write_at(&block, 0)?;
    storage.sync()?;
    Ok(header)
}

/// Give the new image's header and superblock the `external_log` feature for the log `x`;
/// its log binding's bytes (docs/format.md 2.2).
///
/// Errors: `LogTooSmall` under 1 MiB of log; `ExternalLog` for a path too long.
fn bind_external_log(
    x: &ExternalLog,
    header: &mut Header,
    sb: &mut Superblock,
) -> Result<[u8; BINDING_SIZE], FormatError> {
    if x.device_len < LOG_HEADER_SIZE + (1 << 20) {
        return Err(FormatError::LogTooSmall(x.device_len));
    }
    header.features.incompat |= INCOMPAT_EXTERNAL_LOG;
    sb.features.incompat |= INCOMPAT_EXTERNAL_LOG;
    let b = LogBinding {
        log_uuid: x.log_uuid,
        path: x.path.clone(),
    };
    Ok(b.encode()?)
}

/// Put `settings` (label, object-store data, root reserve) in the new image's header and
/// superblock, and a random name-hash key if its features key the hash.
///
/// Errors: `Io` if no random key can be read.
fn apply_settings(
    header: &mut Header,
    sb: &mut Superblock,
    settings: &Settings,
) -> Result<(), FormatError> {
    sb.label = settings.label;
    if let Some((url, shift)) = settings.object_data {
        header.features.incompat |= INCOMPAT_OBJECT_DATA;
        sb.features.incompat |= INCOMPAT_OBJECT_DATA;
        sb.data_url = url;
        sb.object_shift = shift;
    }
    sb.reserved_blocks = sb.data_blocks * settings.reserved_permille / 1000;
    if sb.features.has_incompat(INCOMPAT_KEYED_HASH) {
        sb.hash_key = random_key()?;
    }
    Ok(())
}

/// Write the new metadata region through RVM, its log (`log_area` of `log_storage`) freshly
/// created: the superblock `sb` (and its backup), the root directory's inode and its bit in
/// the inode bitmap, in one transaction, then truncated so the log is empty.
///
/// Errors: `Rvm` or `Fs` from the transaction, its commit or the truncation.
fn write_region(
    storage: Arc<dyn Storage>,
    log_storage: Arc<dyn Storage>,
    log_area: rvm_core::Area,
    header: &Header,
    sb: Superblock,
    root_owner: (u32, u32),
) -> Result<(), FormatError> {
    let rvm = Rvm::initialize_with_log(
        storage,
        log_storage,
        RvmOptions {
            log: log_area,
            ..RvmOptions::default()
        },
    )?;
    let mut region = rvm.map(header.segment_area())?;
    {
        let mut tx = region.begin_transaction(RestoreMode::NoRestore);
        let sb = Superblock {
            inodes_used: 1,
            next_generation: 2,
            ..sb
        };
        pod::put(&mut tx, 0, &sb)?;
        if let Some(at) = crate::layout::superblock_backup::offset(header) {
            pod::put(&mut tx, at, &sb)?;
        }
        bitmap::set_run(&mut tx, sb.inode_bitmap, ROOT_INO - 1, 1, true)?;
        let root = Inode {
            parent_or_target: ROOT_INO,
            ..Inode::new(libc::S_IFDIR | 0o755, root_owner.0, root_owner.1, 0, 1)
        };
        pod::put(&mut tx, sb.inode_table + (ROOT_INO - 1) * 128, &root)?;
        tx.end(CommitMode::Flush)?;
    }
    rvm.truncate()?;
    drop(region);
    drop(rvm);
    Ok(())
}
