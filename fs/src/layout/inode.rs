//! The inode: 128 bytes in the inode table; inode number N lives in slot N - 1.

use bytemuck::{Pod, Zeroable};

/// Size of one inode in the table, bytes.
pub const INODE_SIZE: u64 = 128;

/// The file types (`S_IFMT` bits of `mode`) an inode may have; any other is damage.
pub const KNOWN_TYPES: [u32; 7] = [
    libc::S_IFREG,
    libc::S_IFDIR,
    libc::S_IFLNK,
    libc::S_IFCHR,
    libc::S_IFBLK,
    libc::S_IFIFO,
    libc::S_IFSOCK,
];

/// A file's metadata. Contents are reached through the extent tree (key = inode number),
/// names through the dentry tree, extended attributes through the xattr tree.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq, Eq)]
pub struct Inode {
    /// File type and permission bits (`S_IFMT | 07777`); 0 = free slot.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Number of directory entries naming this inode (directories: 2 + subdirectories).
    pub nlink: u32,
    /// File size, bytes (symlinks: target length).
    pub size: u64,
    /// Data blocks allocated to the file (4 KiB each).
    pub blocks: u64,
    pub atime: i64,
    pub mtime: i64,
    pub ctime: i64,
    pub crtime: i64,
    pub atime_ns: u32,
    pub mtime_ns: u32,
    pub ctime_ns: u32,
    pub crtime_ns: u32,
    /// Device number of character and block special files.
    pub rdev: u32,
    pub flags: u32,
    pub generation: u64,
    /// Directories: inode number of the parent. Symlinks: heap offset of the target.
    pub parent_or_target: u64,
    pub _reserved: [u8; 24],
}

const _: () = assert!(std::mem::size_of::<Inode>() == INODE_SIZE as usize);

impl Inode {
    /// A new inode: link count 1 (2 for a directory), every time set to now.
    pub fn new(mode: u32, uid: u32, gid: u32, rdev: u32, generation: u64) -> Inode {
        let (sec, ns) = now();
        let nlink = if mode & libc::S_IFMT == libc::S_IFDIR {
            2
        } else {
            1
        };
        Inode {
            mode,
            uid,
            gid,
            nlink,
            rdev,
            generation,
            atime: sec,
            mtime: sec,
            ctime: sec,
            crtime: sec,
            atime_ns: ns,
            mtime_ns: ns,
            ctime_ns: ns,
            crtime_ns: ns,
            ..Inode::default()
        }
    }

    pub fn kind(&self) -> u32 {
        self.mode & libc::S_IFMT
    }
    pub fn is_dir(&self) -> bool {
        self.kind() == libc::S_IFDIR
    }
    pub fn is_reg(&self) -> bool {
        self.kind() == libc::S_IFREG
    }
    pub fn is_symlink(&self) -> bool {
        self.kind() == libc::S_IFLNK
    }
    pub fn is_free(&self) -> bool {
        self.mode == 0
    }
    /// Whether the file type is one of [`KNOWN_TYPES`].
    pub fn has_known_type(&self) -> bool {
        KNOWN_TYPES.contains(&self.kind())
    }
}

/// Seconds and nanoseconds since the epoch, now.
pub fn now() -> (i64, u32) {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() as i64, d.subsec_nanos())
}
