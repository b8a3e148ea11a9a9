//! The operations of the workload, as the generator draws them and the model predicts them.

use std::fmt;

/// The file a write, truncate or fsync goes to: by path (relative to `w`), or through a
/// handle the driver holds open.
#[derive(Clone, Debug)]
pub enum Target {
    Path(String),
    /// Index into the driver's open handles.
    Handle(usize),
}

/// One system call (or a short sequence, like open + write) of the workload; paths are
/// relative to `w`.
#[derive(Clone, Debug)]
pub enum Op {
    Create {
        path: String,
        perm: u32,
        keep: bool,
    },
    Mkdir {
        path: String,
        perm: u32,
        keep: bool,
    },
    Symlink {
        target: String,
        path: String,
    },
    Link {
        from: String,
        to: String,
    },
    Unlink {
        path: String,
    },
    Rmdir {
        path: String,
    },
    Rename {
        from: String,
        to: String,
    },
    Write {
        target: Target,
        off: u64,
        len: u64,
        seed: u64,
    },
    Truncate {
        target: Target,
        size: u64,
    },
    SetXattr {
        path: String,
        name: String,
        value: Vec<u8>,
        flags: i32,
    },
    RemoveXattr {
        path: String,
        name: String,
    },
    Chmod {
        path: String,
        perm: u32,
    },
    Fsync {
        target: Target,
        data_only: bool,
    },
    FsyncDir {
        path: String,
    },
    OpenHold {
        path: String,
    },
    Close {
        handle: usize,
    },
    /// Read a file back and compare it with the model (no change).
    Check {
        path: String,
    },
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::SetXattr {
                path,
                name,
                value,
                flags,
            } => {
                write!(f, "SetXattr {{ path: {path:?}, name: {name:?}, value: {} bytes, flags: {flags} }}", value.len())
            }
            other => write!(f, "{other:?}"),
        }
    }
}
