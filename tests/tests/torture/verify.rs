//! After the kill: fsck, remount, and the whole tree compared with the model.

use crate::driver::*;
use crate::ops::*;
use crate::scan::*;
use std::collections::BTreeMap;
use std::fs;

impl Driver {
    /// The mount's root holds only `w` (and lost+found if mkfs made one).
    pub fn check_mount_root(&self) {
        for e in fs::read_dir(self.m.mnt()).unwrap() {
            let n = e.unwrap().file_name();
            if n != "w" && n != "lost+found" {
                self.fail(&format!("unexpected {n:?} at the root of the mount"));
            }
        }
    }

    /// Close everything, unmount cleanly, fsck must be clean, mount again, compare.
    pub fn clean_remount(&mut self) {
        while !self.model.handles.is_empty() {
            self.step(Op::Close { handle: 0 });
        }
        self.m.unmount_ok();
        let (code, out) = self.m.fsck(&["-n"]);
        if code != 0 || out.contains("orphan inode") {
            self.fail(&format!(
                "fsck.rvmfs -n after a clean unmount exited {code}:\n{out}"
            ));
        }
        self.m.mount();
        let mut seen = BTreeMap::new();
        scan(&self.root, "", &mut seen);
        let d = differences(&self.model, &seen);
        if !d.is_empty() {
            self.fail(&format!(
                "after a clean unmount and mount: {} differences:\n  {}",
                d.len(),
                d.join("\n  ")
            ));
        }
        self.stats.clean_remounts += 1;
        self.note("clean unmount, fsck, mount: verified".into());
    }
}
