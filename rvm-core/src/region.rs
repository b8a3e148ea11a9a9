//! Mapped regions (LRVM §4.1 `map`).

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::Arc;

use memmap2::MmapMut;

use crate::error::{Result, RvmError};
use crate::shared::Shared;
use crate::storage::Area;
use crate::transaction::Transaction;
use crate::types::{Lsn, RestoreMode, PAGE_SIZE as PAGE};

/// A mapped segment area: a private (copy-on-write) mapping that shows every committed
/// transaction. Changed only through [`Transaction::set_range`]. Not shared between threads
/// by reference: the owner serializes access (isolation is the caller's, LRVM §3).
pub struct Region {
    shared: Arc<Shared>,
    area: Area,
    map: MmapMut,
    /// Checked mode: the committed image, to find bytes changed outside a set_range.
    shadow: Option<Vec<u8>>,
    /// The range list of the last transaction, kept to spare an allocation per transaction.
    scratch: Vec<(usize, usize)>,
    /// Lsn of the last transaction committed through this region.
    last_lsn: Option<Lsn>,
    /// Pages changed in memory (copied on write): page index -> Lsn of the last commit that
    /// changed it. See [`Region::release_applied_pages`].
    dirty_pages: HashMap<usize, Lsn>,
}

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

/// Record in `pages` (page index -> Lsn) the pages of `area` that the range
/// `[off, off+len)` (absolute storage offset, bytes) touches, as last changed by `lsn`.
pub(crate) fn note_pages(
    pages: &mut HashMap<usize, Lsn>,
    area: Area,
    off: u64,
    len: usize,
    lsn: Lsn,
) {
    let start = off.max(area.offset);
    let end = (off + len as u64).min(area.end());
    if start < end {
        let first = ((start - area.offset) / PAGE as u64) as usize;
        let last = ((end - 1 - area.offset) / PAGE as u64) as usize;
        for p in first..=last {
            pages.insert(p, lsn);
        }
    }
}

/// `madvise(MADV_DONTNEED)` on pages `[first, end)` of `map`; false if the kernel refused.
fn drop_pages(map: &mut MmapMut, first: usize, end: usize) -> bool {
    let len = ((end - first) * PAGE).min(map.len() - first * PAGE);
    // SAFETY: the range lies inside this private mapping, and no reference into it outlives
    // the call (the caller holds `&mut`); MADV_DONTNEED on a private file mapping only drops
    // our copies and mappings, the file's bytes show through again at the next access.
    unsafe {
        libc::madvise(
            map.as_mut_ptr().add(first * PAGE).cast(),
            len,
            libc::MADV_DONTNEED,
        ) == 0
    }
}

/// Most ranges one `process_madvise(2)` call takes (the kernel's `UIO_MAXIOV`).
const MADVISE_BATCH: usize = 1024;

/// [`drop_pages`] on every run `[first, end)` of `runs` (page indexes, ascending, disjoint);
/// false if the kernel refused one. Batches of up to 1024 runs go to one
/// `process_madvise(2)` call on our own process (Linux >= 6.13 takes MADV_DONTNEED there,
/// and since 6.16 flushes the TLB once per batch instead of once per run: a release with
/// thousands of scattered runs, as a big directory's random leaves make, costs a few calls
/// instead of thousands of IPIs). Older kernels refuse it (EINVAL, ENOSYS): one `madvise`
/// per run then, as before.
fn drop_runs(map: &mut MmapMut, runs: &[(usize, usize)]) -> bool {
    // SAFETY: pidfd_open(2) on our own pid; the descriptor is owned below.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
    let pidfd = (pidfd >= 0).then(|| {
        // SAFETY: a fresh descriptor that nothing else owns.
        unsafe { std::os::fd::OwnedFd::from_raw_fd(pidfd as i32) }
    });
    let base = map.as_mut_ptr();
    let len = map.len();
    for batch in runs.chunks(MADVISE_BATCH) {
        let iov: Vec<libc::iovec> = batch
            .iter()
            .map(|&(first, end)| libc::iovec {
                // SAFETY: `first` is a page of the mapping (the caller's runs lie inside it).
                iov_base: unsafe { base.add(first * PAGE) }.cast(),
                iov_len: ((end - first) * PAGE).min(len - first * PAGE),
            })
            .collect();
        let want: usize = iov.iter().map(|v| v.iov_len).sum();
        let done = pidfd.as_ref().is_some_and(|fd| {
            // SAFETY: every range lies inside this private mapping (see `drop_pages`), the
            // iovec array outlives the call.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_process_madvise,
                    fd.as_raw_fd(),
                    iov.as_ptr(),
                    iov.len(),
                    libc::MADV_DONTNEED,
                    0,
                )
            };
            n >= 0 && n as usize == want
        });
        // Refused or partly done: dropping a clean page twice is harmless, so redo the batch.
        if !done
            && !batch
                .iter()
                .all(|&(first, end)| drop_pages(map, first, end))
        {
            return false;
        }
    }
    true
}

/// The runs of consecutive pages in `pages` (sorted, distinct) as `[first, end)` pairs.
fn runs_of(pages: &[usize]) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &p in pages {
        match runs.last_mut() {
            Some(last) if last.1 == p => last.1 = p + 1,
            _ => runs.push((p, p + 1)),
        }
    }
    runs
}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region").field("area", &self.area).finish()
    }
}

impl Region {
    /// A region over `map` (the mapping of `area`) whose pages `dirty_pages` (page index ->
    /// Lsn of their last change) are private copies already.
    pub(crate) fn new(
        shared: Arc<Shared>,
        area: Area,
        map: MmapMut,
        dirty_pages: HashMap<usize, Lsn>,
    ) -> Region {
        Region {
            shared,
            area,
            map,
            shadow: None,
            scratch: Vec::new(),
            last_lsn: None,
            dirty_pages,
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
    /// (the `&mut self` borrow ensures it). A no-op in checked mode and on storages whose
    /// mapping is an anonymous copy (`Storage::maps_file`).
    pub fn release_applied_pages(&mut self) -> usize {
        if self.shadow.is_some() || self.dirty_pages.is_empty() || !self.shared.storage.maps_file()
        {
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
        if !drop_runs(&mut self.map, &runs_of(&pages)) {
            return 0; // keep the pages; memory is all that is lost
        }
        for p in &pages {
            self.dirty_pages.remove(p);
        }
        pages.len()
    }

    /// Unmap every page of the region that holds no private copy (pages only read, or
    /// released by [`Region::release_applied_pages`]): the page cache keeps them and the next
    /// access maps them again (a minor fault). Bounds the resident set by what changed
    /// since the last truncation, not by what was ever read. Returns false if the kernel
    /// refused (nothing is lost but memory). Must not be called inside a transaction. A
    /// no-op in checked mode and on storages whose mapping is an anonymous copy.
    pub fn release_clean_pages(&mut self) -> bool {
        if self.shadow.is_some() || !self.shared.storage.maps_file() {
            return true;
        }
        let mut dirty: Vec<usize> = self.dirty_pages.keys().copied().collect();
        dirty.sort_unstable();
        let total = self.map.len().div_ceil(PAGE);
        let mut clean = Vec::new();
        let mut from = 0;
        for p in dirty.into_iter().chain(std::iter::once(total)) {
            if p > from {
                clean.push((from, p));
            }
            from = p + 1;
        }
        drop_runs(&mut self.map, &clean)
    }

    /// Declare that region bytes `[offset, offset + len)` (rounded out to pages, clamped to
    /// the region) are read in no particular order: `madvise(MADV_RANDOM)`, so a page fault
    /// there reads its own page without readahead around it. On kernels whose page cache uses
    /// large folios (Linux 6.18 maps a whole folio, up to 512 pages, per read fault), a random
    /// fault then maps one page where it would map up to 2 MiB, and what
    /// [`Region::release_clean_pages`] must give back between its calls stays small. For
    /// structures reached by hash (B+tree nodes), not ones scanned in order. Returns false if
    /// the kernel refused (only memory is lost); a no-op on storages whose mapping is an
    /// anonymous copy.
    pub fn advise_random(&self, offset: usize, len: usize) -> bool {
        if !self.shared.storage.maps_file() {
            return true;
        }
        let start = (offset / PAGE * PAGE).min(self.map.len());
        let end = offset
            .saturating_add(len)
            .div_ceil(PAGE)
            .saturating_mul(PAGE)
            .min(self.map.len());
        end <= start
            || self
                .map
                .advise_range(memmap2::Advice::Random, start, end - start)
                .is_ok()
    }

    /// Bytes of pages holding private copies (changed since mapped and not yet released by
    /// [`Region::release_applied_pages`]): the region's share of the process's memory
    /// beyond the page cache.
    pub fn dirty_bytes(&self) -> u64 {
        (self.dirty_pages.len() * PAGE) as u64
    }

    /// Lsn of the last transaction this region committed.
    pub fn last_lsn(&self) -> Option<Lsn> {
        self.last_lsn
    }

    /// Unmap (LRVM §4.1): see [`Rvm::unmap`](crate::Rvm::unmap).
    #[allow(clippy::result_large_err)] // the region comes back on error
    pub fn unmap(self) -> std::result::Result<(), (crate::RvmError, Region)> {
        let rvm_shared = self.shared.clone();
        rvm_shared.unmap_region(self)
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

/// What the instance and a [`Transaction`] on this region use; a transaction changes the
/// region only through these.
impl Region {
    /// The instance this region belongs to.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Whether this region was mapped by the instance of `shared`.
    pub(crate) fn belongs_to(&self, shared: &Arc<Shared>) -> bool {
        Arc::ptr_eq(&self.shared, shared)
    }

    /// Whether checked mode keeps a shadow copy of this region.
    pub(crate) fn is_checked(&self) -> bool {
        self.shadow.is_some()
    }

    /// The range list kept from the last transaction (empty), for the next one.
    pub(crate) fn take_scratch(&mut self) -> Vec<(usize, usize)> {
        std::mem::take(&mut self.scratch)
    }

    /// Give a transaction's range list back for the next transaction (no allocation).
    pub(crate) fn return_scratch(&mut self, mut ranges: Vec<(usize, usize)>) {
        ranges.clear();
        self.scratch = ranges;
    }

    /// Region bytes `[offset, end)` to change; the caller checked the bounds.
    pub(crate) fn bytes_mut(&mut self, offset: usize, end: usize) -> &mut [u8] {
        &mut self.map[offset..end]
    }

    /// Put `old` back at `offset` (an abort's undo); the caller checked the bounds.
    pub(crate) fn put_back(&mut self, offset: usize, old: &[u8]) {
        self.map[offset..offset + old.len()].copy_from_slice(old);
    }

    /// Checked mode: every byte outside `ranges` (sorted, region-relative (offset, len))
    /// must equal the shadow. Errors: [`RvmError::Unrecorded`] naming the first such byte.
    pub(crate) fn check_unrecorded(&self, ranges: &[(usize, usize)]) -> Result<()> {
        let Some(shadow) = &self.shadow else {
            return Ok(());
        };
        let map = &self.map[..];
        let mut at = 0;
        for &(o, l) in ranges.iter().chain(std::iter::once(&(map.len(), 0))) {
            if let Some(i) = map[at..o]
                .iter()
                .zip(&shadow[at..o])
                .position(|(a, b)| a != b)
            {
                log::error!(
                    "rvm checked mode: region byte {} changed outside set_range",
                    at + i
                );
                return Err(RvmError::Unrecorded { offset: at + i });
            }
            at = o + l;
        }
        Ok(())
    }

    /// `ranges` were committed with `lsn`: remember it, mark their pages changed by it,
    /// and copy them into the shadow.
    pub(crate) fn note_committed(&mut self, lsn: Lsn, ranges: &[(usize, usize)]) {
        self.last_lsn = Some(lsn);
        for &(o, l) in ranges {
            for page in o / PAGE..(o + l).div_ceil(PAGE) {
                self.dirty_pages.insert(page, lsn);
            }
        }
        self.update_shadow(ranges);
    }

    /// A commit queued its record as `lsn` but failed to flush it: the record stays
    /// queued (a later flush retries it), so the ranges count as committed in the shadow.
    pub(crate) fn note_queued(&mut self, lsn: Option<Lsn>, ranges: &[(usize, usize)]) {
        if let Some(lsn) = lsn {
            self.last_lsn = Some(lsn);
        }
        self.update_shadow(ranges);
    }

    /// Checked mode: copy the committed `ranges` into the shadow.
    fn update_shadow(&mut self, ranges: &[(usize, usize)]) {
        if let Some(shadow) = &mut self.shadow {
            for &(o, l) in ranges {
                shadow[o..o + l].copy_from_slice(&self.map[o..o + l]);
            }
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        self.shared.forget_mapped(self.area);
    }
}
