//! The systems of `rvmfs-bench --objstore` (objmode.rs): an rvmfs image with its data in
//! the bucket or on the local disk, or a JuiceFS volume in the bucket; mounting them, and a
//! cold remount that empties each one's own cache so reads come from the bucket.

use crate::mounts::{run, JuiceFs, Rvmfs};
use anyhow::{anyhow, Result};
use rvmfs_tests::seaweed::{self, Seaweed};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A system under test: how to mount it, and its mount while mounted.
pub(crate) struct System {
    pub(crate) name: &'static str,
    /// The bucket prefix of an object-store rvmfs (its shipped log is measured).
    pub(crate) url: Option<String>,
    kind: Kind,
    mnt: PathBuf,
    rvmfs: Option<Rvmfs>,
    juicefs: Option<JuiceFs>,
}

pub(crate) enum Kind {
    /// An rvmfs image with its data in the bucket, mounted with these extra options.
    Rvmfs {
        bin: PathBuf,
        image: PathBuf,
        opts: Option<&'static str>,
        /// Its file data is in the bucket (`--data`): a cold remount punches the local copy.
        remote: bool,
    },
    /// A JuiceFS volume whose metadata and cache are in `dir`.
    JuiceFs { bin: PathBuf, dir: PathBuf },
}

impl System {
    pub(crate) fn mount(&mut self) -> Result<()> {
        match &self.kind {
            Kind::Rvmfs {
                bin, image, opts, ..
            } => {
                let log = image.with_extension("log");
                self.rvmfs = Some(Rvmfs::mount(bin, image, &self.mnt, &log, *opts)?.0);
            }
            Kind::JuiceFs { bin, dir } => {
                self.juicefs = Some(JuiceFs::mount(bin, dir, &self.mnt)?.0);
            }
        }
        Ok(())
    }

    pub(crate) fn unmount(&mut self) -> Result<()> {
        if let Some(m) = self.rvmfs.take() {
            m.unmount()?;
        }
        if let Some(j) = self.juicefs.take() {
            j.unmount()?;
        }
        Ok(())
    }

    /// The mounted directory (canonical).
    pub(crate) fn root(&self) -> Result<PathBuf> {
        let m = self.rvmfs.as_ref().map(|m| m.mnt.clone());
        m.or_else(|| self.juicefs.as_ref().map(|j| j.mnt.clone()))
            .ok_or_else(|| anyhow!("{} is not mounted", self.name))
    }

    /// Unmount (rvmfs uploads what is dirty), empty the system's own cache (rvmfs: the
    /// image's data area punched out; JuiceFS: its cache directory removed), mount again and
    /// drop the kernel's caches: what is read next comes from the bucket.
    pub(crate) fn remount_cold(&mut self) -> Result<()> {
        self.unmount()?;
        match &self.kind {
            Kind::Rvmfs {
                image,
                remote: true,
                ..
            } => punch_data_area(image)?,
            Kind::Rvmfs { .. } => {}
            Kind::JuiceFs { dir, .. } => {
                let _ = std::fs::remove_dir_all(dir.join("cache"));
            }
        }
        self.mount()?;
        crate::workloads::drop_caches()
    }
}

/// Punch the data area of an rvmfs image (from its header's `data_offset`, byte 0x40, to the
/// end) out with `fallocate -p`: what the image still holds of file data is gone, so reads
/// can only come from the bucket (a block never uploaded would read as zeros, and the read
/// workload checks every byte).
fn punch_data_area(image: &Path) -> Result<()> {
    let mut head = [0u8; 0x48];
    std::fs::File::open(image)?.read_exact(&mut head)?;
    let data_offset = u64::from_le_bytes(head[0x40..0x48].try_into()?);
    let len = std::fs::metadata(image)?.len().saturating_sub(data_offset);
    run(Command::new("fallocate")
        .args(["-p", "-o", &data_offset.to_string(), "-l", &len.to_string()])
        .arg(image))?;
    Ok(())
}

/// The AWS environment of the server, set in this process so that mkfs, the daemons and
/// the bucket client of [`objwindow`] inherit it (no other thread runs yet).
pub(crate) fn export_env(s: &Seaweed) {
    for (k, v) in s.env() {
        std::env::set_var(k, v);
    }
}

/// A fresh `object_data` image `work/NAME.img` on prefix NAME of the bucket (a local-data
/// one when `s` is None); `opts` go to every mount.
pub(crate) fn rvmfs_system(
    bin: &Path,
    work: &Path,
    s: Option<&Seaweed>,
    name: &'static str,
    opts: Option<&'static str>,
) -> Result<System> {
    let image = work.join(format!("{name}.img"));
    let mut mkfs = Command::new(bin.join("mkfs-rvmfs"));
    mkfs.args(["-q", "-f", "-s", "4G"]);
    if let Some(s) = s {
        mkfs.arg("--data").arg(s.url(name));
    }
    run(mkfs.arg(&image))?;
    Ok(System {
        name,
        url: s.map(|s| s.url(name)),
        kind: Kind::Rvmfs {
            bin: bin.to_path_buf(),
            image,
            opts,
            remote: s.is_some(),
        },
        mnt: work.join(format!("mnt-{name}")),
        rvmfs: None,
        juicefs: None,
    })
}

/// A fresh JuiceFS volume `juicefs-s3` in the bucket (its objects under that prefix), its
/// SQLite metadata in `work/juicefs-s3/meta.db`.
pub(crate) fn juicefs_system(jbin: &Path, work: &Path, s: &Seaweed) -> Result<System> {
    let name = "juicefs-s3";
    let dir = work.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    run(Command::new(jbin)
        .args(["format", "--storage", "s3", "--bucket"])
        .arg(format!("{}/{}", s.endpoint, s.bucket))
        .args(["--access-key", seaweed::ACCESS_KEY])
        .args(["--secret-key", seaweed::SECRET_KEY])
        .args(["--trash-days", "0"])
        .arg(format!("sqlite3://{}", dir.join("meta.db").display()))
        .arg(name))?;
    Ok(System {
        name,
        url: None,
        kind: Kind::JuiceFs {
            bin: jbin.to_path_buf(),
            dir,
        },
        mnt: work.join(format!("mnt-{name}")),
        rvmfs: None,
        juicefs: None,
    })
}
