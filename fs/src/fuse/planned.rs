//! A big write request in three steps (`ops::write_plan`): plan under the exclusive lock,
//! write the file data with no lock held (readers run meanwhile), commit under the exclusive
//! lock. Small writes stay one step: their data is mostly logged in the record, which only
//! the commit can do.
//!
//! The request's data checksums (`WriteSums`) are computed by the checksum worker while this
//! thread plans and writes the data (`datasum::alongside`): only the commit needs them (the
//! plan is a dry run, aborted, and stores none), so the CRC pass leaves the request's
//! critical path, as btrfs computes a write's checksums in a worker beside the submission.

use super::RvmFs;
use crate::error::FsResult;
use crate::ops::datasum::{self, WriteSums};
use crate::ops::Op;

/// The bytes of a write request whose sums are wanted: checksums on, file offset, data.
pub(super) type ToSum<'a> = (bool, u64, &'a [u8]);

impl RvmFs {
    /// Run write request `f` (on inode `ino`, named `op` in the error log) planned, its data
    /// written outside the lock; `unprivileged`: the caller is not root (kept away from the
    /// blocks reserved for root). When there is nothing to write outside the lock, one
    /// ordinary transaction (`Fs::transact_data`). `f` gets the sums of `to_sum` (computed
    /// meanwhile, see the module docs; none in the dry run).
    pub(super) fn write_planned<T>(
        &self,
        op: &str,
        (ino, unprivileged): (u64, bool),
        to_sum: ToSum<'_>,
        f: impl Fn(&mut Op<'_>, &WriteSums) -> FsResult<T>,
    ) -> FsResult<T> {
        let (on, offset, data) = to_sum;
        let none = WriteSums::default();
        let summing = on.then_some(move || WriteSums::of(true, offset, data));
        let (sums, planned) = datasum::alongside(summing, || {
            let planned = {
                let mut fs = self.write();
                let plan = fs.as_caller(unprivileged, |fs| fs.plan_write(|o| f(o, &none)));
                plan.map(|p| (p, fs.geo.image.clone()))
            };
            planned.map(|(mut plan, image)| {
                plan.write(&*image);
                plan
            })
        });
        let sums = sums.unwrap_or_default();
        let request = |o: &mut Op<'_>| f(o, &sums);
        let Some(plan) = planned else {
            return self.change(op, ino, |fs| {
                fs.as_caller(unprivileged, |fs| fs.transact_data(op, ino, &request))
            });
        };
        self.change(op, ino, |fs| {
            fs.as_caller(unprivileged, |fs| {
                fs.transact_planned(op, ino, plan, &request)
            })
        })
    }
}
