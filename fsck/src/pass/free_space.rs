//! Pass 5: the free-space map and the superblock's counters. The data bitmap must equal the
//! union of the extents pass 1b saw; disagreeing blocks are reported in runs. The used-inode
//! and used-block counters must equal what passes 1 and 1b counted.

use crate::problem::{Fix, Report};
use crate::state::State;
use rvmfs::layout::pod;
use rvmfs::layout::superblock::field;
use rvmfs::ops::Op;
use rvmfs::store::bitmap;
use rvmfs::FsResult;

/// A run of data blocks whose bit is wrong: (first block, length, whether they are in use).
type Run = (u64, u64, bool);

/// Run pass 5; sets `s.report.blocks_used`.
pub(crate) fn check(s: &mut State, progress: &dyn Fn(&str, u64, u64)) -> FsResult<()> {
    progress("Pass 5: free-space map", 0, 1);
    let used_blocks = check_data_bitmap(s)?;
    s.report.blocks_used = used_blocks;
    let sb = &s.sb;
    let inodes_used = s.inodes.len() as u64;
    if sb.inodes_used != inodes_used || sb.blocks_used != used_blocks {
        s.report.add(
            format!(
                "superblock counters: {} inodes and {} blocks used, should be {inodes_used} and {used_blocks}",
                sb.inodes_used, sb.blocks_used
            ),
            Fix::Counters { inodes_used, blocks_used: used_blocks },
        );
    }
    Ok(())
}

/// Compare every data block's bit with its owner; returns how many blocks are owned.
fn check_data_bitmap(s: &mut State) -> FsResult<u64> {
    let mut used_blocks = 0u64;
    let mut run: Option<Run> = None;
    for b in 0..s.sb.data_blocks {
        let is_owned = s.owns(b);
        used_blocks += is_owned as u64;
        let marked = bitmap::test(s.bytes, s.sb.data_bitmap, b)?;
        if is_owned != marked {
            match &mut run {
                Some((start, len, used)) if *start + *len == b && *used == is_owned => *len += 1,
                _ => {
                    flush_run(run.take(), &mut s.report);
                    run = Some((b, 1, is_owned));
                }
            }
        }
    }
    flush_run(run, &mut s.report);
    Ok(used_blocks)
}

/// Report a finished run of wrong bits, if any.
fn flush_run(run: Option<Run>, r: &mut Report) {
    if let Some((start, len, used)) = run {
        let what = if used {
            format!(
                "data blocks {start}..{} are in use but marked free",
                start + len
            )
        } else {
            format!(
                "data blocks {start}..{} are marked in use but owned by no file (leaked)",
                start + len
            )
        };
        r.add(what, Fix::DataBits { start, len, used });
    }
}

/// Repair [`Fix::DataBits`]: set or clear `len` data-bitmap bits from block `start`.
pub(crate) fn set_data_bits(op: &mut Op<'_>, start: u64, len: u64, used: bool) -> FsResult<()> {
    let at = op.geo.data_bitmap;
    bitmap::set_run(&mut op.tx, at, start, len, used)
}

/// Repair [`Fix::Counters`]: set the superblock's used-inode and used-block counters.
pub(crate) fn set_counters(op: &mut Op<'_>, inodes_used: u64, blocks_used: u64) -> FsResult<()> {
    pod::put(&mut op.tx, field::INODES_USED, &inodes_used)?;
    pod::put(&mut op.tx, field::BLOCKS_USED, &blocks_used)
}
