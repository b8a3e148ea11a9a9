//! The systems of the short workloads, mounted at once for the whole run so their
//! repetitions can be interleaved: rvmfs (fresh image, and the FUSE floor measured on it while
//! idle), rvmfs -o writeback (writeback.rs), fuse2fs, JuiceFS, and a plain directory of the disk (ext4). Unmounted in
//! [`Peers::unmount`], or by their guards on an error.

use crate::fuse2fs::{self, Fuse2fs};
use crate::mounts::{self, JuiceFs, Rvmfs};
use crate::{requests, Results};
use anyhow::Result;
use std::path::{Path, PathBuf};

pub struct Peers {
    /// (system, directory the workloads run in), in the order of `SYSTEMS`.
    pub systems: Vec<(&'static str, PathBuf)>,
    rvmfs: Option<(Rvmfs, PathBuf)>,
    writeback: Option<(Rvmfs, PathBuf)>,
    fuse2fs: Option<(Fuse2fs, PathBuf)>,
    juicefs: Option<(JuiceFs, PathBuf)>,
    ext4: Option<PathBuf>,
}

impl Peers {
    /// Mount each system of `on` (names from `SYSTEMS`) under `work`; a peer whose program
    /// cannot be had is skipped with a note in `r`.
    pub fn mount(r: &mut Results, bin: &Path, work: &Path, on: &[&str]) -> Result<Peers> {
        let mut p = Peers {
            systems: Vec::new(),
            rvmfs: None,
            writeback: None,
            fuse2fs: None,
            juicefs: None,
            ext4: None,
        };
        if on.contains(&"rvmfs") {
            let image = work.join("rvmfs.img");
            Rvmfs::mkfs(bin, &image, "8G", None)?;
            let (mnt, log) = (work.join("mnt-rvmfs"), work.join("rvmfs.log"));
            let (m, took) = Rvmfs::mount(bin, &image, &mnt, &log, None)?;
            let s = took.as_secs_f64();
            eprintln!("rvmfs mounted in {s:.3} s (daemon pid {})", m.pid());
            r.fuse_floor_us = requests::floor_us(&m.mnt, 2000).ok();
            eprintln!(
                "  FUSE floor: {:.1} µs",
                r.fuse_floor_us.unwrap_or(f64::NAN)
            );
            p.systems.push(("rvmfs", m.mnt.clone()));
            p.rvmfs = Some((m, image));
        }
        if on.contains(&crate::writeback::SYSTEM) {
            let (m, image) = crate::writeback::mount(bin, work, "8G")?;
            p.systems.push((crate::writeback::SYSTEM, m.mnt.clone()));
            p.writeback = Some((m, image));
        }
        if on.contains(&"fuse2fs") {
            if let Some(fbin) = fuse2fs::binary(&mut r.notes) {
                let image = work.join("fuse2fs.img");
                let (mnt, log) = (work.join("mnt-fuse2fs"), work.join("fuse2fs.log"));
                let (f, took) = Fuse2fs::mkfs_and_mount(&fbin, &image, "8G", &mnt, &log)?;
                eprintln!("fuse2fs mounted in {:.3} s", took.as_secs_f64());
                p.systems.push(("fuse2fs", f.mnt.clone()));
                p.fuse2fs = Some((f, image));
            }
        }
        if on.contains(&"juicefs") {
            match mounts::juicefs_binary(&mut r.notes) {
                Some(jbin) => {
                    let jdir = work.join("juicefs");
                    let (j, took) =
                        JuiceFs::format_and_mount(&jbin, &jdir, &work.join("mnt-juicefs"))?;
                    eprintln!("juicefs mounted in {:.3} s", took.as_secs_f64());
                    p.systems.push(("juicefs", j.mnt.clone()));
                    p.juicefs = Some((j, jdir));
                }
                None => eprintln!("JuiceFS skipped: {}", r.notes.join("; ")),
            }
        }
        if on.contains(&"ext4") {
            let d = work.join("ext4");
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d)?;
            p.systems.push(("ext4", d.clone()));
            p.ext4 = Some(d);
        }
        Ok(p)
    }

    /// Unmount everything and remove the images and directories.
    pub fn unmount(self) -> Result<()> {
        if let Some((m, image)) = self.rvmfs {
            let rss = m.rss_mib();
            eprintln!("  rvmfs daemon RSS after the short workloads: {rss:.1} MiB");
            m.unmount()?;
            std::fs::remove_file(&image)?;
        }
        if let Some((m, image)) = self.writeback {
            m.unmount()?;
            std::fs::remove_file(&image)?;
        }
        if let Some((f, image)) = self.fuse2fs {
            f.unmount()?;
            std::fs::remove_file(&image)?;
        }
        if let Some((j, jdir)) = self.juicefs {
            j.unmount()?;
            let _ = std::fs::remove_dir_all(&jdir);
        }
        if let Some(d) = self.ext4 {
            let _ = std::fs::remove_dir_all(&d);
        }
        Ok(())
    }
}
