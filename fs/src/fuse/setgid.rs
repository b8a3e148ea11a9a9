//! Set-group-ID of a new file in a set-group-ID directory, as Linux decides it.
//!
//! A new inode in a directory with S_ISGID takes the directory's group (`ops::namespace::
//! create`); a new directory keeps S_ISGID too. A new non-directory asking for S_ISGID with
//! S_IXGRP loses S_ISGID when its creator is neither in that group nor holds CAP_FSETID
//! (Linux `mode_strip_sgid`, fs/inode.c, before 5.19 in `inode_init_owner`): otherwise a
//! non-member could make a set-group-ID program of a group it does not belong to. Linux
//! 5.19+ strips it in the VFS before FUSE sees the request; this covers older kernels.
//! The creator's groups and capabilities are not in a FUSE request: they are read from
//! `/proc/PID/status`, as libfuse's `fuse_req_getgroups` does.

use super::RvmFs;
use crate::ops::inode::NewInode;
use fuser::Request;

/// Bit of CAP_FSETID in a capability mask (linux/capability.h).
const CAP_FSETID: u32 = 4;

/// `new` (mode from the request) as Linux would create it in directory `parent`.
pub(super) fn strip_on_create(
    fs: &RvmFs,
    req: &Request,
    parent: u64,
    mut new: NewInode,
) -> NewInode {
    let both = libc::S_ISGID | libc::S_IXGRP;
    if new.mode & libc::S_IFMT == libc::S_IFDIR || new.mode & both != both {
        return new;
    }
    let parent = fs.read().inode(parent);
    let dir_gid = match parent {
        Ok(p) if p.mode & libc::S_ISGID != 0 => p.gid,
        _ => return new,
    };
    if !in_group_or_fsetid(req.pid(), req.uid(), req.gid(), dir_gid) {
        new.mode &= !libc::S_ISGID;
    }
    new
}

/// Whether process `pid` (fsuid `uid`, fsgid `fsgid`) is in group `gid` or holds
/// CAP_FSETID. Unknown (the process is gone, no /proc) counts as neither, except for root.
fn in_group_or_fsetid(pid: u32, uid: u32, fsgid: u32, gid: u32) -> bool {
    if fsgid == gid {
        return true;
    }
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return uid == 0;
    };
    status_allows(&status, gid)
}

/// Whether a `/proc/PID/status` text lists `gid` among the supplementary groups or
/// CAP_FSETID among the effective capabilities.
fn status_allows(status: &str, gid: u32) -> bool {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
    };
    let in_group = field("Groups:").is_some_and(|g| {
        g.split_whitespace()
            .any(|x| x.parse::<u32>().is_ok_and(|x| x == gid))
    });
    let fsetid = field("CapEff:")
        .and_then(|c| u64::from_str_radix(c, 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_FSETID) != 0);
    in_group || fsetid
}

#[cfg(test)]
mod tests {
    use super::status_allows;

    #[test]
    fn groups_and_cap_fsetid_are_read_from_proc_status() {
        let nobody = "Name:\tsh\nGroups:\t65534 100 \nCapEff:\t0000000000000000\n";
        assert!(status_allows(nobody, 100));
        assert!(!status_allows(nobody, 1234));
        let root = "Groups:\t0\nCapEff:\t000001ffffffffff\n";
        assert!(status_allows(root, 1234));
        assert!(!status_allows(
            "Groups:\t\nCapEff:\t0000000000000000\n",
            1234
        ));
    }
}
