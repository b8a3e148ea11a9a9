//! Mapped regions (LRVM §4.1 `map`).

use std::sync::Arc;

use memmap2::MmapMut;

use crate::rvm::{lock, RestoreMode, Shared};
use crate::storage::Area;
use crate::transaction::Transaction;

/// A mapped segment area: a private (copy-on-write) mapping that shows every committed
/// transaction. Changed only through [`Transaction::set_range`]. Not shared between threads
/// by reference: the owner serializes access (isolation is the caller's, LRVM §3).
pub struct Region {
    pub(crate) shared: Arc<Shared>,
    pub(crate) area: Area,
    pub(crate) map: MmapMut,
    /// Checked mode: the committed image, to find bytes changed outside a set_range.
    pub(crate) shadow: Option<Vec<u8>>,
    /// The range list of the last transaction, kept to spare an allocation per transaction.
    pub(crate) scratch: Vec<(usize, usize)>,
    /// Lsn of the last transaction committed through this region.
    pub(crate) last_lsn: Option<crate::rvm::Lsn>,
    /// Pages changed in memory (copied on write): page index -> Lsn of the last commit that
    /// changed it. See [`Region::release_applied_pages`].
    pub(crate) dirty_pages: std::collections::HashMap<usize, crate::rvm::Lsn>,
}

/// Page size of the mapping, bytes.
const PAGE: usize = 4096;

/// Copy the part of a range (absolute storage offset) that falls in `area` into its mapping.
pub(crate) fn overlay(map: &mut MmapMut, area: Area, off: u64, data: &[u8]) {
    let start = off.max(area.offset);
    let end = (off + data.len() as u64).min(area.end());
    if start < end {
        let src = &data[(start - off) as usize..(end - off) as usize];
        let dst = (start - area.offset) as usize;
        map[dst..dst + src.len()].copy_from_slice(src);
    }
}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region").field("area", &self.area).finish()
    }
}

impl Region {
    pub(crate) fn new(shared: Arc<Shared>, area: Area, map: MmapMut) -> Region {
        Region {
            shared,
            area,
            map,
            shadow: None,
            scratch: Vec::new(),
            last_lsn: None,
            dirty_pages: std::collections::HashMap::new(),
        }
    }

    pub(crate) fn enable_shadow(&mut self) {
        self.shadow = Some(self.map.to_vec());
    }

    /// Give back the memory of pages whose every committed change truncation has applied to
    /// the segment: their private copies are dropped (`madvise(MADV_DONTNEED)`), and the next
    /// access maps the segment's page again, which now holds the same bytes. Keeps the
    /// resident set near the pages changed since the last truncation, whatever the segment's
    /// size. Returns the number of pages released. Must not be called inside a transaction
    /// (the `&mut self` borrow ensures it).
    pub fn release_applied_pages(&mut self) -> usize {
        if self.shadow.is_some() || self.dirty_pages.is_empty() {
            return 0;
        }
        let applied = self.shared.applied_seq();
        let mut pages: Vec<usize> = self
            .dirty_pages
            .iter()
            .filter(|(_, &lsn)| lsn < applied)
            .map(|(&p, _)| p)
            .collect();
        pages.sort_unstable();
        let base = self.map.as_mut_ptr();
        let mut i = 0;
        while i < pages.len() {
            let mut j = i + 1;
            while j < pages.len() && pages[j] == pages[j - 1] + 1 {
                j += 1;
            }
            let len = ((j - i) * PAGE).min(self.map.len() - pages[i] * PAGE);
            // SAFETY: the range lies inside this private mapping, and no reference into it
            // outlives this call (`&mut self`); MADV_DONTNEED on a private file mapping only
            // drops our copies, the file's committed bytes show through again.
            let r = unsafe {
                libc::madvise(base.add(pages[i] * PAGE).cast(), len, libc::MADV_DONTNEED)
            };
            if r != 0 {
                return 0; // keep the pages; memory is all that is lost
            }
            i = j;
        }
        for p in &pages {
            self.dirty_pages.remove(p);
        }
        pages.len()
    }

    /// Lsn of the last transaction this region committed.
    pub fn last_lsn(&self) -> Option<crate::rvm::Lsn> {
        self.last_lsn
    }

    /// Unmap (LRVM §4.1): see [`Rvm::unmap`](crate::Rvm::unmap).
    #[allow(clippy::result_large_err)] // the region comes back on error
    pub fn unmap(self) -> std::result::Result<(), (crate::RvmError, Region)> {
        let rvm_shared = self.shared.clone();
        crate::rvm::unmap_region(&rvm_shared, self)
    }

    /// Length of the region in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the region is empty (never: `map` refuses empty areas).
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The storage area this region maps.
    pub fn area(&self) -> Area {
        self.area
    }

    /// Read view of the whole region.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Begin a transaction (LRVM §4.1 `begin_transaction`); it borrows the region mutably
    /// until `end`, `abort` or drop.
    pub fn begin_transaction(&mut self, mode: RestoreMode) -> Transaction<'_> {
        // Checked mode turned on or off by `Rvm::set_options`: between transactions the
        // region holds exactly its committed bytes, so a new shadow copy starts here.
        let checked = self
            .shared
            .checked
            .load(std::sync::atomic::Ordering::Relaxed);
        if checked != self.shadow.is_some() {
            if checked {
                self.enable_shadow();
            } else {
                self.shadow = None;
            }
        }
        Transaction::new(self, mode)
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        let area = self.area;
        lock(&self.shared.inner).mapped.retain(|a| *a != area);
    }
}
