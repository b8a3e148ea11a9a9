//! Formatting: lay out a new image (mkfs.rvmfs's work, as a library call).

use crate::error::FsError;
use crate::layout::features::INCOMPAT_KEYED_HASH;
use crate::layout::geometry::{plan, Plan, PlanError};
use crate::layout::header::Header;
use crate::layout::inode::{now, Inode};
use crate::layout::pod;
use crate::layout::superblock::{Superblock, LABEL_LEN, ROOT_INO};
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
    format_with(storage, p, uuid, root_owner, Settings::default())
}

/// As [`format`], with a label and a root reserve (`Settings`).
pub fn format_with(
    storage: Arc<dyn Storage>,
    p: Plan,
    uuid: [u8; 16],
    root_owner: (u32, u32),
    settings: Settings,
) -> Result<Header, FormatError> {
    let sec = now().0;
    let (header, mut sb) = plan(p, uuid, sec)?;
    sb.label = settings.label;
    sb.reserved_blocks = sb.data_blocks * settings.reserved_permille / 1000;
    if sb.features.has_incompat(INCOMPAT_KEYED_HASH) {
        sb.hash_key = random_key()?;
    }
    // Overwrite any old header first: until the new one is written, this is no image.
    storage.write_at(&[0u8; 4096], 0)?;
    Rvm::create_log(&*storage, header.log_area())?;
    let rvm = Rvm::initialize(
        storage.clone(),
        RvmOptions {
            log: header.log_area(),
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
    storage.write_at(&header.encode(), 0)?;
    storage.sync()?;
    Ok(header)
}
