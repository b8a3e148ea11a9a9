//! The checker behind `fsck.rvmfs`, as a library so tests (power-loss simulation, corrupt
//! images) can check a region without running the binary.
//!
//! `check` runs the passes (`pass/`, one file each, sharing a `State`) and returns a `Report`
//! of `Problem`s; `repair` applies their `Fix`es, whose code sits beside the check that finds
//! them.

pub mod check;
pub mod pass;
pub mod problem;
pub mod repair;
mod state;
