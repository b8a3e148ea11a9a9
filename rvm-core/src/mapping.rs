//! Mapping and unmapping regions (LRVM §4.1 `map`, `unmap`): a private mapping of a
//! segment area with the live log records overlaid, so it shows every committed
//! transaction before truncation has applied them (lazy recovery).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crate::error::{Result, RvmError};
use crate::region::{self, Region};
use crate::shared::{lock, Shared};
use crate::stats::inc;
use crate::storage::Area;
use crate::types::{Lsn, PAGE_SIZE};

impl Shared {
    /// [`Rvm::map`](crate::Rvm::map): check `segment` (page-aligned, non-empty, outside the
    /// log and every mapped region), claim it, and map it overlaid.
    pub(crate) fn map_region(self: &Arc<Self>, segment: Area) -> Result<Region> {
        let page = PAGE_SIZE as u64;
        if !segment.offset.is_multiple_of(page)
            || segment.len == 0
            || !segment.len.is_multiple_of(page)
        {
            return Err(RvmError::InvalidArgument(format!(
                "segment {segment:?} must be non-empty and 4096-aligned"
            )));
        }
        if self.overlaps_log(&segment) {
            return Err(RvmError::InvalidArgument(format!(
                "segment {segment:?} overlaps the log {:?}",
                self.opts.log
            )));
        }
        {
            let mut g = lock(&self.inner);
            if let Some(a) = g.mapped.iter().find(|a| a.overlaps(&segment)) {
                return Err(RvmError::InvalidArgument(format!(
                    "segment {segment:?} overlaps mapped region {a:?}"
                )));
            }
            g.mapped.push(segment);
        }
        let unmap = |e: RvmError| {
            self.forget_mapped(segment);
            e
        };
        let region = self.map_overlaid(segment).map_err(unmap)?;
        inc(&self.counters.maps, 1);
        Ok(region)
    }

    /// `unmap`: flush up to the region's last Lsn, then drop it.
    #[allow(clippy::result_large_err)] // the region comes back on error
    pub(crate) fn unmap_region(
        &self,
        region: Region,
    ) -> std::result::Result<(), (RvmError, Region)> {
        if let Some(lsn) = region.last_lsn() {
            if !self.opts.read_only {
                if let Err(e) = self.flush_upto(lsn + 1) {
                    return Err((e, region));
                }
            }
        }
        inc(&self.counters.unmaps, 1);
        drop(region);
        Ok(())
    }

    /// A private mapping of `segment` showing the committed state: the segment file plus
    /// the live log records overlaid in order (or, read_only, the recovered ranges). The log
    /// is read without a lock: if a truncation finishes meanwhile and its freed log space
    /// is reused, the walk stops short; the mapping (whose copied pages may predate that
    /// truncation's segment writes) is then discarded and made again.
    pub(crate) fn map_overlaid(self: &Arc<Self>, segment: Area) -> Result<Region> {
        if !self.opts.read_only {
            // Pending no-flush records may touch this area (a region dropped without
            // `unmap`): make them log records first. Nothing pending: no I/O.
            self.flush_all()?;
        }
        let started = Instant::now();
        let mut tries = 0u32;
        // Pages the overlay copied (private now) -> Lsn of the last record that wrote them:
        // they count as changed, so only truncation lets them go.
        let mut overlaid = std::collections::HashMap::new();
        let map = loop {
            let p = *lock(&self.pos);
            let mut map = self.storage.map_private(segment)?;
            overlaid.clear();
            if self.opts.read_only {
                for (off, data) in &self.recovered {
                    region::overlay(&mut map, segment, *off, data);
                    region::note_pages(&mut overlaid, segment, *off, data.len(), Lsn::MAX);
                }
                break map;
            }
            let reached = self.log.walk(&p, |rec| {
                let lsn = rec.header.seq + rec.header.seq_count() - 1;
                for (off, data) in rec.region_ranges() {
                    region::overlay(&mut map, segment, *off, data);
                    region::note_pages(&mut overlaid, segment, *off, data.len(), lsn);
                }
            })?;
            if reached == p.tail_pos {
                break map;
            }
            let head_now = lock(&self.pos).head_pos;
            if head_now <= reached || tries >= 1000 {
                return Err(RvmError::CorruptLog(format!(
                    "live record at position {reached} is unreadable"
                )));
            }
            tries += 1;
        };
        inc(
            &self.counters.map_overlay_ns,
            started.elapsed().as_nanos() as u64,
        );
        let mut region = Region::new(self.clone(), segment, map, overlaid);
        if self.checked.load(Ordering::Relaxed) {
            region.enable_shadow();
        }
        Ok(region)
    }
}
