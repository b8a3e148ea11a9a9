//! The model's prediction of each operation: success or errno (what the kernel's VFS and the
//! daemon must answer), and on success its effect on the model.

use crate::model::{Body, Errno, Model};
use crate::ops::{Op, Target};
use rvmfs_tests::*;
use std::collections::BTreeMap;

impl Model {
    /// What the kernel/daemon must do: predict the outcome and, on success, apply it.
    pub fn apply(&mut self, op: &Op) -> Result<(), Errno> {
        match op {
            Op::Create { path, perm, keep } | Op::Mkdir { path, perm, keep } => {
                self.apply_create(path, *perm, *keep, matches!(op, Op::Mkdir { .. }))
            }
            Op::Symlink { target, path } => {
                let (pino, name) = self.parent(path)?;
                if self.children(pino).contains_key(name) {
                    return Err(libc::EEXIST);
                }
                let ino = self.new_node(Body::Symlink(target.clone()), 0o777);
                self.children_mut(pino).insert(name.to_string(), ino);
                Ok(())
            }
            Op::Link { from, to } => self.apply_link(from, to),
            Op::Unlink { path } => self.apply_unlink(path),
            Op::Rmdir { path } => self.apply_rmdir(path),
            Op::Rename { from, to } => self.apply_rename(from, to),
            Op::Write {
                target,
                off,
                len,
                seed,
            } => self.apply_write(target, *off, *len, *seed),
            Op::Truncate { target, size } => {
                let ino = self.target_ino(target)?;
                self.file_data(ino).resize(*size as usize, 0);
                Ok(())
            }
            Op::SetXattr {
                path,
                name,
                value,
                flags,
            } => self.apply_setxattr(path, name, value, *flags),
            Op::RemoveXattr { path, name } => {
                let ino = self.resolve(path)?;
                match self.nodes.get_mut(&ino).unwrap().xattrs.remove(name) {
                    Some(_) => Ok(()),
                    None => Err(libc::ENODATA),
                }
            }
            Op::Chmod { path, perm } => {
                let ino = self.resolve(path)?;
                self.nodes.get_mut(&ino).unwrap().perm = *perm;
                Ok(())
            }
            Op::Fsync { target, .. } => self.target_ino(target).map(|_| ()),
            Op::FsyncDir { path } => self.resolve(path).map(|_| ()),
            Op::OpenHold { path } => {
                let ino = self.resolve(path)?;
                self.handles.push(ino);
                Ok(())
            }
            Op::Close { handle } => {
                let ino = self.handles.remove(*handle);
                if self.nodes[&ino].nlink == 0 && !self.handles.contains(&ino) {
                    self.nodes.remove(&ino);
                }
                Ok(())
            }
            Op::Check { path } => self.resolve(path).map(|_| ()),
        }
    }

    /// `open(O_CREAT|O_EXCL)` (the handle kept when `keep`) or `mkdir`.
    fn apply_create(
        &mut self,
        path: &str,
        perm: u32,
        keep: bool,
        is_dir: bool,
    ) -> Result<(), Errno> {
        let (pino, name) = self.parent(path)?;
        if self.children(pino).contains_key(name) {
            return Err(libc::EEXIST);
        }
        let body = if is_dir {
            Body::Dir(BTreeMap::new())
        } else {
            Body::File(Vec::new())
        };
        let ino = self.new_node(body, perm);
        self.children_mut(pino).insert(name.to_string(), ino);
        if keep && !is_dir {
            self.handles.push(ino);
        }
        Ok(())
    }

    fn apply_link(&mut self, from: &str, to: &str) -> Result<(), Errno> {
        let src = self.resolve(from)?;
        let (pino, name) = self.parent(to)?;
        if self.children(pino).contains_key(name) {
            return Err(libc::EEXIST);
        }
        if self.is_dir(src) {
            return Err(libc::EPERM);
        }
        self.nodes.get_mut(&src).unwrap().nlink += 1;
        self.children_mut(pino).insert(name.to_string(), src);
        Ok(())
    }

    fn apply_unlink(&mut self, path: &str) -> Result<(), Errno> {
        let ino = self.resolve(path)?;
        if self.is_dir(ino) {
            return Err(libc::EISDIR);
        }
        let (pino, name) = self.parent(path)?;
        self.children_mut(pino).remove(name);
        self.drop_link(ino);
        Ok(())
    }

    fn apply_rmdir(&mut self, path: &str) -> Result<(), Errno> {
        let ino = self.resolve(path)?;
        if !self.is_dir(ino) {
            return Err(libc::ENOTDIR);
        }
        if !self.children(ino).is_empty() {
            return Err(libc::ENOTEMPTY);
        }
        let (pino, name) = self.parent(path)?;
        self.children_mut(pino).remove(name);
        self.drop_link(ino);
        Ok(())
    }

    /// `rename(2)` without flags: replaces an existing target of a compatible type.
    fn apply_rename(&mut self, from: &str, to: &str) -> Result<(), Errno> {
        let src = self.resolve(from)?;
        let (npino, nname) = self.parent(to)?;
        let (opino, oname) = self.parent(from)?;
        // Source an ancestor of the target: EINVAL; target an ancestor of the source:
        // ENOTEMPTY (the VFS checks both before the types).
        if to.starts_with(&format!("{from}/")) {
            return Err(libc::EINVAL);
        }
        if from.starts_with(&format!("{to}/")) {
            return Err(libc::ENOTEMPTY);
        }
        let dst = self.children(npino).get(nname).copied();
        if dst == Some(src) {
            return Ok(()); // the same file (or the same hard-linked inode): a no-op
        }
        let src_dir = self.is_dir(src);
        if let Some(d) = dst {
            match (src_dir, self.is_dir(d)) {
                (true, false) => return Err(libc::ENOTDIR),
                (false, true) => return Err(libc::EISDIR),
                (true, true) if !self.children(d).is_empty() => return Err(libc::ENOTEMPTY),
                _ => {}
            }
        }
        self.children_mut(opino).remove(oname);
        if let Some(d) = self.children_mut(npino).insert(nname.to_string(), src) {
            self.drop_link(d);
        }
        Ok(())
    }

    /// `len` bytes of [`pattern`]`(seed)` at `off`, extending the file (with a hole) as needed.
    fn apply_write(&mut self, target: &Target, off: u64, len: u64, seed: u64) -> Result<(), Errno> {
        let ino = self.target_ino(target)?;
        let data = pattern(seed, len as usize);
        let d = self.file_data(ino);
        let end = (off + len) as usize;
        if d.len() < end {
            d.resize(end, 0);
        }
        d[off as usize..end].copy_from_slice(&data);
        Ok(())
    }

    /// `lsetxattr` with flags 0, `XATTR_CREATE` or `XATTR_REPLACE`.
    fn apply_setxattr(
        &mut self,
        path: &str,
        name: &str,
        value: &[u8],
        flags: i32,
    ) -> Result<(), Errno> {
        let ino = self.resolve(path)?;
        let n = self.nodes.get_mut(&ino).unwrap();
        let exists = n.xattrs.contains_key(name);
        if flags == libc::XATTR_CREATE && exists {
            return Err(libc::EEXIST);
        }
        if flags == libc::XATTR_REPLACE && !exists {
            return Err(libc::ENODATA);
        }
        n.xattrs.insert(name.to_string(), value.to_vec());
        Ok(())
    }
}
