//! Before the filesystem is opened: the primary superblock against its backup (compat feature
//! `backup_sb`, `rvmfs::layout::superblock_backup`), as e2fsck falls back on a backup
//! superblock when the primary fails its checks, and with `-b` (fsck.rvmfs's `-b` takes no
//! block number: the copy has one fixed place, the region's last 4 KiB).
//!
//! Which copy wins: a primary that fails `primary_fault` loses to a backup that passes it. Two
//! copies that both pass but differ: the backup is stale if the primary counts more mounts or
//! a later check (a build without the feature mounted or repaired the image; the copy is
//! rewritten from the primary);
//! otherwise one of them was damaged, and the one whose heap pointers lie inside the heap
//! wins, the backup first (it is the copy nothing but a transaction's mirror writes).
//! The repair is one transaction (with -n, in memory only: the region is private; a copy that
//! is off while the primary is sound is then only reported, as e2fsck does not count its
//! backups).

use rvm_core::{CommitMode, Region, RestoreMode};
use rvmfs::layout::header::Header;
use rvmfs::layout::pod;
use rvmfs::layout::superblock::Superblock;
use rvmfs::layout::superblock_backup::{self as backup, primary_fault, LEN};

/// What the pass found and did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// One line per finding, for the report.
    pub messages: Vec<String>,
    /// Copies rewritten (repairs).
    pub fixed: usize,
    /// Problems left (with -n, or no usable copy to take).
    pub left: usize,
}

/// Check region `region`'s two superblocks (image header `header`) and make them equal:
/// the primary from the backup when the primary is damaged or `force` (`-b`), the backup from
/// the primary when the backup is stale. With `read_only` a restored primary stays in memory
/// and counts as a problem left; a copy to rewrite is only reported.
pub fn check(region: &mut Region, header: &Header, force: bool, read_only: bool) -> Outcome {
    let mut out = Outcome::default();
    let Some(at) = backup::offset(header) else {
        if force {
            out.messages
                .push("-b: the image has no backup superblock (made before backup_sb)".into());
            out.left += 1;
        }
        return out;
    };
    let bytes = region.bytes();
    let Ok(primary) = pod::get::<Superblock>(bytes, 0) else {
        return out;
    };
    let copy = backup::read(bytes, header).filter(|b| primary_fault(bytes, header, b).is_none());
    let fault = primary_fault(bytes, header, &primary);
    let same = bytes.get(..LEN) == bytes.get(at as usize..at as usize + LEN);
    let (from, to, why) = match (fault, copy) {
        (_, None) if force => {
            out.messages
                .push("-b: the backup superblock is damaged too; it cannot be used".into());
            out.left += 1;
            return out;
        }
        (Some(f), Some(_)) => (at, 0, format!("{f}: restored from the backup superblock")),
        (Some(_), None) => {
            out.messages
                .push("the superblock is damaged and its backup is missing or damaged".into());
            return out;
        }
        (None, _) if same && !force => return out,
        (None, Some(_)) if force => (at, 0, "-b: the superblock taken from its backup".into()),
        (None, None) => (0, at, "the backup superblock is damaged: rewritten".into()),
        (None, Some(b)) if stale(&primary, &b) => {
            (0, at, "the backup superblock is stale: rewritten".into())
        }
        (None, Some(b)) if pointers_inside(&b) => (
            at,
            0,
            "the superblock differs from its backup: restored from the backup".into(),
        ),
        (None, Some(_)) => (0, at, "the backup superblock differs: rewritten".into()),
    };
    if read_only && to == at {
        // Only the copy is off (as e2fsck, which rewrites its backups after a run and does
        // not count them): -n says so and leaves it; -y/-p rewrite it.
        out.messages.push(format!("{why} (not with -n)"));
        return out;
    }
    let data = bytes[from as usize..from as usize + LEN].to_vec();
    out.messages.push(why);
    if let Err(e) = write(region, to, &data) {
        out.messages
            .push(format!("rewriting the superblock failed: {e}"));
        out.left += 1;
        return out;
    }
    match read_only {
        true => out.left += 1,
        false => out.fixed += 1,
    }
    out
}

/// The primary counts more mounts or a later check than the copy: a build without
/// `backup_sb` mounted or repaired the image.
fn stale(primary: &Superblock, copy: &Superblock) -> bool {
    primary.mount_count > copy.mount_count || primary.last_check > copy.last_check
}

/// Every tree root and free-list head of `sb` is 0 or inside its heap's used part.
fn pointers_inside(sb: &Superblock) -> bool {
    let roots = [
        sb.dentry_root,
        sb.extent_root,
        sb.xattr_root,
        sb.orphan_root,
    ];
    roots
        .iter()
        .chain(sb.heap_free.iter())
        .all(|&p| p == 0 || (sb.heap_start..sb.heap_top).contains(&p))
}

/// `data` at region offset `to`, in one transaction (durable unless the image is read-only).
fn write(region: &mut Region, to: u64, data: &[u8]) -> rvm_core::Result<()> {
    let mut tx = region.begin_transaction(RestoreMode::Restore);
    tx.write(to as usize, data)?;
    tx.end(CommitMode::Flush).map(|_| ())
}
