//! What `dump` shows, gathered from an image opened read-only: plain data, printed as text
//! (`text.rs`) or serialized as JSON.

use rvmfs::image::{self, Image, ImageError};
use rvmfs::layout::error_record::ErrorRecord;
use rvmfs::layout::features::{describe, Word};
use rvmfs::layout::superblock::Superblock;
use rvmfs::store::{self, bitmap};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Why nothing could be shown.
pub enum Failed {
    /// The image could not be opened (not an image, unreadable, corrupt log).
    Open(ImageError),
    /// It opened but its metadata could not be read (what went wrong).
    Read(String),
}

/// Everything `dump` prints. Sizes in bytes unless the name says blocks (4 KiB); times in
/// seconds since the Unix epoch (0 = never).
#[derive(Serialize)]
pub struct Info {
    pub image: String,
    /// Another process (a mount, an fsck) holds the image's lock.
    pub in_use: bool,
    pub header: HeaderInfo,
    pub superblock: SuperblockInfo,
    pub error: ErrorInfo,
    /// Absent with `-h`.
    pub log: Option<LogInfo>,
    /// Absent with `-h`.
    pub free_space: Option<FreeSpace>,
}

#[derive(Serialize)]
pub struct HeaderInfo {
    pub version: u32,
    pub uuid: String,
    pub block_size: u32,
    pub created: i64,
    pub compat: Vec<String>,
    pub ro_compat: Vec<String>,
    pub incompat: Vec<String>,
    pub log_offset: u64,
    pub log_len: u64,
    pub segment_offset: u64,
    pub segment_len: u64,
    pub data_offset: u64,
    pub data_blocks: u64,
    /// The external log (`mkfs -J device=`), if the image has one.
    pub external_log: Option<ExternalLogInfo>,
}

/// An external log device as opened (the recorded path, or `--logdev`).
#[derive(Serialize)]
pub struct ExternalLogInfo {
    pub path: String,
    pub log_uuid: String,
    /// The RVM log area inside the device.
    pub log_offset: u64,
    pub log_len: u64,
}

#[derive(Serialize)]
pub struct SuperblockInfo {
    /// Volume label ("" if none).
    pub label: String,
    /// Data blocks only root may allocate.
    pub reserved_blocks: u64,
    /// Stored default mount options ("" if none), commit interval (seconds, 0 = the
    /// daemon's default) and error policy (None = the daemon's default).
    pub mount_opts: String,
    pub commit_interval: u32,
    pub errors: Option<&'static str>,
    /// "clean" after a clean unmount, "not clean" while mounted read-write or after a crash.
    pub state: &'static str,
    pub inode_count: u64,
    pub inodes_used: u64,
    pub data_blocks: u64,
    pub blocks_used: u64,
    pub mount_count: u64,
    pub last_mount: i64,
    pub last_check: i64,
    pub next_generation: u64,
    pub heap_start: u64,
    pub heap_end: u64,
    pub heap_top: u64,
    /// Object-store mode (`object_data`): the bucket's URL and log2 of the blocks per data
    /// object; None otherwise.
    pub data_url: Option<String>,
    pub object_shift: Option<u32>,
}

/// The error record (header bytes 0x100..0x200).
#[derive(Serialize)]
pub struct ErrorInfo {
    /// "none", "recorded" or "damaged".
    pub state: &'static str,
    /// The record, when one is recorded.
    pub record: Option<ErrorRecord>,
    /// Why the record's bytes are not a valid record (state "damaged").
    pub damage: Option<String>,
}

/// The redo log as recovery found it (positions are logical log positions, bytes).
#[derive(Serialize)]
pub struct LogInfo {
    pub generation: u64,
    pub log_id: String,
    pub capacity: u64,
    pub head: u64,
    pub tail: u64,
    pub live_bytes: u64,
    pub live_records: u64,
    pub next_lsn: u64,
}

/// The data bitmap summarized.
#[derive(Serialize)]
pub struct FreeSpace {
    pub free_blocks: u64,
    pub free_inodes: u64,
    /// Runs of free data blocks, and the longest one (blocks).
    pub free_extents: u64,
    pub largest_free_extent: u64,
}

impl Info {
    /// Open `path` read-only (even if mounted) and gather what to show; `header_only` skips
    /// the log and free-space details.
    /// `logdev`: the external log's place, instead of the recorded path.
    pub fn gather(path: &Path, header_only: bool, logdev: Option<PathBuf>) -> Result<Info, Failed> {
        let (img, in_use) = image::open_inspect_with(path, logdev).map_err(Failed::Open)?;
        let bytes = img.region.bytes();
        let sb = store::superblock(bytes).map_err(|e| Failed::Read(e.to_string()))?;
        let (log, free_space) = if header_only {
            (None, None)
        } else {
            let free = free_space(bytes, &sb).map_err(|e| Failed::Read(e.to_string()))?;
            (Some(log_info(&img)?), Some(free))
        };
        Ok(Info {
            image: path.display().to_string(),
            in_use,
            header: header_info(&img),
            superblock: superblock_info(&sb),
            error: error_info(&img),
            log,
            free_space,
        })
    }
}

fn names(word: Word, bits: u32) -> Vec<String> {
    let text = describe(word, bits);
    text.split(", ")
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn header_info(img: &Image) -> HeaderInfo {
    let h = &img.header;
    HeaderInfo {
        version: h.version,
        uuid: h.uuid_string(),
        block_size: h.block_size,
        created: h.created,
        compat: names(Word::Compat, h.features.compat),
        ro_compat: names(Word::RoCompat, h.features.ro_compat),
        incompat: names(Word::Incompat, h.features.incompat),
        log_offset: h.log_offset,
        log_len: h.log_len,
        segment_offset: h.segment_offset,
        segment_len: h.segment_len,
        data_offset: h.data_offset,
        data_blocks: h.data_blocks,
        external_log: img.log_device.as_ref().map(|(path, lh)| ExternalLogInfo {
            path: path.display().to_string(),
            log_uuid: uuid::Uuid::from_bytes(lh.log_uuid).hyphenated().to_string(),
            log_offset: lh.log.offset,
            log_len: lh.log.len,
        }),
    }
}

fn superblock_info(sb: &Superblock) -> SuperblockInfo {
    let remote = sb
        .features
        .has_incompat(rvmfs::layout::features::INCOMPAT_OBJECT_DATA);
    SuperblockInfo {
        label: sb.label(),
        reserved_blocks: sb.reserved_blocks,
        mount_opts: sb.mount_opts(),
        commit_interval: sb.commit_interval,
        errors: sb.errors_name(),
        state: if sb.mounted == 0 {
            "clean"
        } else {
            "not clean"
        },
        inode_count: sb.inode_count,
        inodes_used: sb.inodes_used,
        data_blocks: sb.data_blocks,
        blocks_used: sb.blocks_used,
        mount_count: sb.mount_count,
        last_mount: sb.last_mount,
        last_check: sb.last_check,
        next_generation: sb.next_generation,
        heap_start: sb.heap_start,
        heap_end: sb.heap_end,
        heap_top: sb.heap_top,
        data_url: remote.then(|| sb.data_url()),
        object_shift: remote.then_some(sb.object_shift),
    }
}

fn error_info(img: &Image) -> ErrorInfo {
    let (state, record, damage) = match ErrorRecord::read(&*img.storage) {
        Ok(None) => ("none", None, None),
        Ok(Some(r)) => ("recorded", Some(r), None),
        Err(e) => ("damaged", None, Some(e.to_string())),
    };
    ErrorInfo {
        state,
        record,
        damage,
    }
}

fn log_info(img: &Image) -> Result<LogInfo, Failed> {
    let area = img
        .log_device
        .as_ref()
        .map_or(img.header.log_area(), |(_, lh)| lh.log);
    let status = rvm_core::status::read_status(&**img.rvm.log_storage(), area)
        .map_err(|e| Failed::Read(format!("reading the log's status block: {e}")))?;
    let s = img.rvm.stats();
    Ok(LogInfo {
        generation: status.generation,
        log_id: format!("{:016x}", status.log_id),
        capacity: s.log_capacity,
        head: s.log_head,
        tail: s.log_tail,
        live_bytes: s.log_tail - s.log_head,
        live_records: s.records_recovered,
        next_lsn: s.next_lsn,
    })
}

/// Count the free runs of the data bitmap, word by word.
fn free_space(bytes: &[u8], sb: &Superblock) -> rvmfs::FsResult<FreeSpace> {
    let (mut extents, mut largest, mut run) = (0u64, 0u64, 0u64);
    for b in 0..sb.data_blocks {
        if bitmap::test(bytes, sb.data_bitmap, b)? {
            run = 0;
            continue;
        }
        if run == 0 {
            extents += 1;
        }
        run += 1;
        largest = largest.max(run);
    }
    Ok(FreeSpace {
        free_blocks: sb.data_blocks.saturating_sub(sb.blocks_used),
        free_inodes: sb.inode_count.saturating_sub(sb.inodes_used),
        free_extents: extents,
        largest_free_extent: largest,
    })
}
