//! The storage under a read-only open (`-o ro`, `fsck -n`): reads see the committed state,
//! writes are refused.
//!
//! A read-only open replays the redo log into memory only (`RvmOptions::read_only`), so
//! nothing reaches the image file, as ext4's `-o ro,norecovery` would not write either,
//! except that here the log's effects are still visible. The region's ranges are overlaid
//! on its private mapping by rvm-core; the other recovered ranges (file data logged with
//! its metadata, in the data area) are overlaid here, on every read of the image.

use rvm_core::{Area, Storage};
use std::io;
use std::sync::Arc;

/// An image storage that overlays the recovered ranges outside the region on reads and
/// answers EROFS to writes.
pub struct ReadOnlyStorage {
    base: Arc<dyn Storage>,
    /// (storage offset, bytes) in recovery order: a later range wins where two overlap.
    ranges: Vec<(u64, Vec<u8>)>,
}

impl ReadOnlyStorage {
    /// Wrap `base`, overlaying those of `recovered` (from `Rvm::recovered_ranges`) that lie
    /// outside `segment` (the region, whose ranges its mapping already shows).
    pub fn new(base: Arc<dyn Storage>, recovered: &[(u64, Vec<u8>)], segment: Area) -> Self {
        let ranges = recovered
            .iter()
            .filter(|(off, data)| {
                !segment.overlaps(&Area {
                    offset: *off,
                    len: data.len() as u64,
                })
            })
            .cloned()
            .collect();
        ReadOnlyStorage { base, ranges }
    }

    /// How many recovered ranges reads overlay.
    pub fn overlaid_ranges(&self) -> usize {
        self.ranges.len()
    }
}

fn read_only() -> io::Error {
    io::Error::from_raw_os_error(libc::EROFS)
}

impl Storage for ReadOnlyStorage {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.base.read_at(buf, offset)?;
        let end = offset + buf.len() as u64;
        for (off, data) in &self.ranges {
            let (from, to) = ((*off).max(offset), (off + data.len() as u64).min(end));
            if from < to {
                let (src, dst) = ((from - off) as usize, (from - offset) as usize);
                let n = (to - from) as usize;
                buf[dst..dst + n].copy_from_slice(&data[src..src + n]);
            }
        }
        Ok(())
    }
    fn write_at(&self, _buf: &[u8], _offset: u64) -> io::Result<()> {
        Err(read_only())
    }
    fn write_durable_at(&self, _buf: &[u8], _offset: u64) -> io::Result<()> {
        Err(read_only())
    }
    /// Nothing was written, so nothing is to be synced (an fsync on a read-only mount
    /// succeeds, as on ext4).
    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvm_core::MemStorage;

    #[test]
    fn reads_overlay_later_ranges_and_skip_the_segment() {
        let base: Arc<dyn Storage> = Arc::new(MemStorage::from_bytes(vec![1u8; 64]));
        let recovered = vec![
            (8, vec![2u8; 8]),
            (12, vec![3u8; 8]),
            (32, vec![9u8; 4]), // inside the segment: the mapping shows it, not reads
        ];
        let segment = Area {
            offset: 32,
            len: 16,
        };
        let ro = ReadOnlyStorage::new(base, &recovered, segment);
        assert_eq!(ro.overlaid_ranges(), 2);
        let mut buf = [0u8; 16];
        ro.read_at(&mut buf, 6).unwrap();
        assert_eq!(buf, [1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 1, 1]);
        let mut seg = [0u8; 4];
        ro.read_at(&mut seg, 32).unwrap();
        assert_eq!(seg, [1; 4]);
        let e = ro.write_at(&[0], 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EROFS));
    }
}
