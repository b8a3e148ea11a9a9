//! The checker behind `fsck.rvmfs`, as a library so tests (power-loss simulation, corrupt
//! images) can check a region without running the binary.

pub mod check;
pub mod repair;
