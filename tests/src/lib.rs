//! Shared helpers for the end-to-end tests in `tests/tests/*.rs`.
//!
//! Every test mounts rvmfs for real through FUSE (`rvmfs -f IMAGE MNT` as a child process) and
//! uses it with ordinary programs (cp, tar, sha256sum, cargo) or through `std::fs`. The tests
//! import everything with `use rvmfs_tests::*;`; the modules, one concern each:
//!
//! * [`binaries`]: finding `rvmfs`, `mkfs-rvmfs`, `fsck-rvmfs` ([`bin`]: `$RVMFS_BIN_DIR` if
//!   set, else whichever of `<target>/release` and `<target>/debug` holds all three binaries
//!   and was built last), running [`mkfs`] and [`fsck`], and [`require_fuse!`], which skips a
//!   test with a message when `/dev/fuse` or `fusermount3` is absent.
//! * [`admin_tree`]: the small tree the `rvmfs-admin` tests write ([`small_tree`]: files, a
//!   directory, a symlink, a hard link, a FIFO, xattrs, owners, old mtimes) and the checks a
//!   copy of it must pass beyond a manifest (xattrs, which paths share an inode).
//! * [`processes`]: running a command with a deadline ([`run_timeout`] → [`Outcome`]),
//!   signals by PID ([`signal_pid`]), [`ChildGuard`] for background children.
//! * [`mounts`]: `/proc/mounts`, `fusermount3 -u [-z]`, [`try_mount`] (attempts meant to fail).
//! * [`mounted`]: the [`Mounted`] guard: a temporary directory holding `image` and `mnt`;
//!   `mkfs-rvmfs`; the daemon started in the foreground; [`Mounted::kill9`],
//!   [`Mounted::remount`], [`Mounted::fsck`]; on drop a clean `fusermount3 -u`, a wait for the
//!   daemon, and `SIGKILL` by PID only if it is still alive.
//! * [`manifests`]: [`manifest`] of a tree and [`assert_same_tree`] (checksums through
//!   `sha256sum`).
//! * [`corpus`]: real trees to copy (the Python standard library), `cp -a`, `tar | tar`.
//! * [`content`]: deterministic file contents ([`pattern`]) and byte-level comparison.
//! * [`progress`]: how far a background writer got (statvfs) and MiB/s.
//! * [`seaweed`]: a real S3 server for the object-store tests ([`Seaweed`]: `weed mini` on
//!   free loopback ports with a bucket, killed by PID on drop; [`require_seaweed!`]).
//! * [`buckets`]: the object-store tests' plumbing: `mkfs --data`, fsck, restore and daemons
//!   run with the server's environment, [`mounted_data`], a client of the bucket
//!   ([`open_bucket`]) to look at the lease and the shipped `log/EPOCH/LSN` keys.
//! * [`s3_proxy`]: a fault-injecting S3 proxy in front of it ([`S3Proxy`]: scripted 5xx,
//!   throttling, delays, dropped connections, lost answers, listings cut after a page).
//!
//! Nothing here kills a process it did not start, and nothing kills by name.

pub mod admin_tree;
pub mod binaries;
pub mod buckets;
pub mod content;
pub mod corpus;
pub mod manifests;
pub mod mounted;
pub mod mounts;
pub mod processes;
pub mod progress;
pub mod s3_proxy;
pub mod seaweed;

pub use tempfile;

pub use admin_tree::{assert_same_links_and_xattrs, small_tree, xattrs_of};
pub use binaries::{
    admin, admin_on, bin, bin_dir, fsck, fuse_available, in_ci, mkfs, target_dir, which,
    workspace_root, ADMIN, FSCK, MKFS, RVMFS,
};
pub use buckets::{
    drop_local_data, fsck_data, mkfs_data, mount_daemon, mounted_data, open_bucket, restore_data,
    segments_of_epoch, with_env,
};
pub use content::{assert_file, bytes_diff, pattern};
pub use corpus::{cp_a, python_stdlib, python_stdlib_entries, tar_pipe};
pub use manifests::{
    assert_manifests_equal, assert_same_tree, compare_manifests, manifest, manifest_of_entries,
    sha256_file, sha256_files, totals, Compare, Entry, Kind,
};
pub use mounted::{Mounted, EXIT_TIMEOUT, MOUNT_TIMEOUT};
pub use mounts::{fusermount_u, is_fuse_mounted, mount_type, try_mount};
pub use processes::{cmd, run, run_timeout, signal_pid, wait_timeout, ChildGuard, Outcome};
pub use progress::{fs_used_bytes, mib_per_s, wait_for_progress};
pub use s3_proxy::S3Proxy;
pub use seaweed::Seaweed;
