//! A big write request in three steps (`ops::write_plan`): plan under the exclusive lock,
//! write the file data with no lock held (readers run meanwhile), commit under the exclusive
//! lock. Small writes stay one step: their data is mostly logged in the record, which only
//! the commit can do.

use super::RvmFs;
use crate::error::FsResult;
use crate::ops::Op;

impl RvmFs {
    /// Run write request `f` (on inode `ino`, named `op` in the error log), which writes
    /// `data`, planned: its data written outside the lock; `unprivileged`: the caller is not
    /// root (kept away from the blocks reserved for root). When there is nothing to write
    /// outside the lock, one ordinary transaction (`Fs::transact_data`).
    pub(super) fn write_planned<T>(
        &self,
        op: &str,
        ino: u64,
        unprivileged: bool,
        data: &[u8],
        f: impl Fn(&mut Op<'_>) -> FsResult<T>,
    ) -> FsResult<T> {
        let planned = {
            let mut fs = self.write();
            let plan = fs.as_caller(unprivileged, |fs| fs.plan_write(data, &f));
            plan.map(|p| (p, fs.geo.image.clone()))
        };
        let Some((mut plan, image)) = planned else {
            return self.change(op, ino, |fs| {
                fs.as_caller(unprivileged, |fs| fs.transact_data(op, ino, &f))
            });
        };
        plan.write(&*image);
        self.change(op, ino, |fs| {
            fs.as_caller(unprivileged, |fs| fs.transact_planned(op, ino, plan, &f))
        })
    }
}
