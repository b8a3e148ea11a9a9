//! Small types shared by regions, transactions and the RVM instance: the log sequence
//! number, the two transaction modes of LRVM §4.1 (`begin_transaction`'s restore mode,
//! `end_transaction`'s commit mode), and the page size of the mappings.
//!
//! They live here, apart from [`Rvm`](crate::Rvm), so that `region` and `transaction`
//! need nothing from the instance's module.

/// Sequence number of a redo record; `Transaction::end` returns the one of its record.
/// Lsns grow by one per committed transaction, but may jump after a recovery.
pub type Lsn = u64;

/// `begin_transaction` mode (LRVM §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestoreMode {
    /// `set_range` saves the old bytes in memory so `abort` can restore them.
    Restore,
    /// The caller promises not to abort; `set_range` skips the copy.
    NoRestore,
}

/// `end_transaction` mode (LRVM §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitMode {
    /// The record (and every earlier no-flush record) is durable when `end` returns.
    Flush,
    /// The record goes to the spool (or memory); a later `flush` makes it durable.
    NoFlush,
}

/// Page size of the mappings, bytes: regions, the log area and the spool file are aligned
/// to it, and a region tracks its changed pages in units of it.
pub(crate) const PAGE_SIZE: usize = 4096;
