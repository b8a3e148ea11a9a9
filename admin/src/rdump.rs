//! `rvmfs-admin rdump IMAGE PATH DEST` (debugfs `rdump`): copy a subtree out of an image with
//! modes, owners, times, xattrs, symlinks, special files and hard links, skipping and
//! reporting what is damaged and going on; `--lost` also copies the inodes no path from the
//! root reaches to `DEST/lost+found/#INO` (e2fsck's lost+found). Read-only on the image.
//!
//! `copy` writes one file's data and metadata; `lost` finds the unreachable inodes.

mod copy;
mod lost;

use crate::exit;
use crate::image::{open_fs, resolve};
use indicatif::{ProgressBar, ProgressStyle};
use rvmfs::layout::inode::Inode;
use rvmfs::ops::{lookup, Fs};
use rvmfs::store::dentry;
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Copy a subtree out of an rvmfs image, also one that does not mount.
///
/// PATH (a path from the image's root, or `<INO>` for an inode number as in debugfs) is
/// copied into DEST, which is created if missing: `/` copies the root's contents into DEST
/// itself, `/a/b` makes DEST/b, `<INO>` makes DEST/#INO. Modes, owners (when run as root),
/// times (atime, mtime), extended attributes, symlinks, device files and FIFOs are kept;
/// an inode met twice becomes a hard link in DEST.
///
/// Damage is skipped and reported, and the copy goes on: a data block that fails its
/// checksum or an extent outside the data area (left as a hole), an inode that fails
/// validation, a directory whose entries cannot be read (a B+tree node with a bad header).
/// With --lost, the inode table is walked afterwards for inodes in use that no path from the
/// root reaches (their directory entries lost): each is copied to DEST/lost+found/#INO, so
/// files are still recoverable when the root directory is damaged.
///
/// Read-only: the image is opened O_RDONLY with its log replayed in memory; it may be mounted
/// (what is copied is then its state on disk, which may lag the daemon).
///
/// Exit status: 0 everything was copied, 1 something damaged was skipped, 8 operational
/// error (the image cannot be opened, DEST cannot be written), 16 usage error.
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Also copy the inodes not reachable from the root to DEST/lost+found/#INO.
    #[arg(long)]
    lost: bool,
    /// The image file.
    image: PathBuf,
    /// What to copy: a path in the image, or `<INO>`.
    path: String,
    /// The directory to copy into (created if missing).
    dest: PathBuf,
}

/// One rdump run: where copies went and what was skipped.
pub struct Dumper<'a> {
    fs: &'a Fs,
    image: &'a Path,
    /// Inode -> where it was first copied (a second name becomes a hard link).
    seen: HashMap<u64, PathBuf>,
    /// Directories whose times are set once their contents are in place.
    dir_times: Vec<(PathBuf, Inode)>,
    /// Damaged things skipped.
    skipped: u64,
    files: u64,
    bytes: u64,
    bar: Option<ProgressBar>,
}

impl<'a> Dumper<'a> {
    fn new(fs: &'a Fs, image: &'a Path) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let total = rvmfs::store::superblock(fs.bytes()).map_or(0, |sb| sb.inodes_used);
            let bar = ProgressBar::new(total.max(1));
            if let Ok(style) =
                ProgressStyle::with_template("{msg:30} [{bar:40}] {pos}/{len} inodes")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        Dumper {
            fs,
            image,
            seen: HashMap::new(),
            dir_times: Vec::new(),
            skipped: 0,
            files: 0,
            bytes: 0,
            bar,
        }
    }

    /// Report damage at `what` (an image path or `<INO>`) and count it skipped.
    fn skip(&mut self, what: &str, why: impl std::fmt::Display) {
        self.skipped += 1;
        let line = format!("rvmfs-admin rdump: {}: {what}: {why}", self.image.display());
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// Copy inode `ino` (named `what` in messages) to `dest`, recursively for a directory.
    /// Errors: only failures to write DEST (operational); damage is skipped.
    pub fn dump(&mut self, ino: u64, dest: &Path, what: &str) -> anyhow::Result<()> {
        let node = match self
            .fs
            .inode(ino)
            .map_err(|e| e.to_string())
            .and_then(|n| valid(&n).map(|()| n))
        {
            Ok(node) => node,
            Err(why) => {
                self.skip(what, format!("inode {ino} skipped: {why}"));
                return Ok(());
            }
        };
        if let Some(first) = self.seen.get(&ino).filter(|_| !node.is_dir()) {
            std::fs::hard_link(first, dest)?;
            return Ok(());
        }
        if node.is_dir() && self.seen.contains_key(&ino) {
            self.skip(
                what,
                format!("directory {ino} is named twice (a loop?); copied once"),
            );
            return Ok(());
        }
        self.seen.insert(ino, dest.to_path_buf());
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(format!("{} files, {} MiB", self.files, self.bytes >> 20));
        }
        match node.kind() {
            libc::S_IFDIR => self.dir(ino, &node, dest, what)?,
            libc::S_IFREG => self.regular(ino, &node, dest, what)?,
            libc::S_IFLNK => match lookup::readlink(&self.fs.geo, self.fs.bytes(), ino) {
                Ok(target) => {
                    use std::os::unix::ffi::OsStrExt;
                    std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target), dest)?;
                }
                Err(e) => {
                    self.skip(
                        what,
                        format!("symlink {ino}: its target cannot be read: {e}"),
                    );
                    return Ok(());
                }
            },
            _ => copy::special(&node, dest)?,
        }
        self.files += 1;
        self.metadata(ino, &node, dest, what)
    }

    /// A directory: create it (or use an existing one), then copy its entries.
    fn dir(&mut self, ino: u64, node: &Inode, dest: &Path, what: &str) -> anyhow::Result<()> {
        match std::fs::create_dir(dest) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dest.is_dir() => {}
            other => other?,
        }
        let mut entries = Vec::new();
        let bytes = self.fs.bytes();
        let listed = dentry::list(bytes, ino, 0, |d| {
            entries.push((d.ino, d.name(bytes).map(<[u8]>::to_vec)));
            Ok(true)
        });
        if let Err(e) = listed {
            let n = entries.len();
            self.skip(what, format!("directory {ino}: its entries cannot be read ({e}); {n} read before the damage are copied"));
        }
        for (child, name) in entries {
            let name = match name {
                Ok(name) if usable(&name) => name,
                Ok(name) => {
                    self.skip(
                        what,
                        format!(
                            "an entry with the unusable name {:?} (inode {child}) skipped",
                            String::from_utf8_lossy(&name)
                        ),
                    );
                    continue;
                }
                Err(e) => {
                    self.skip(
                        what,
                        format!("the name of an entry (inode {child}) cannot be read: {e}"),
                    );
                    continue;
                }
            };
            use std::os::unix::ffi::OsStrExt;
            let name = std::ffi::OsStr::from_bytes(&name);
            let child_what = format!("{}/{}", what.trim_end_matches('/'), name.to_string_lossy());
            self.dump(child, &dest.join(name), &child_what)?;
        }
        self.dir_times.push((dest.to_path_buf(), *node));
        Ok(())
    }

    /// A regular file: its data (damaged blocks left as holes, reported).
    fn regular(&mut self, ino: u64, node: &Inode, dest: &Path, what: &str) -> anyhow::Result<()> {
        let out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dest)?;
        let bad = copy::data(self.fs, ino, node.size, &out)?;
        self.bytes += node.size;
        for (from, to, why) in bad {
            self.skip(
                what,
                format!("inode {ino}: bytes {from}..{to} cannot be read ({why}); left as a hole"),
            );
        }
        Ok(())
    }

    /// Owner, mode, xattrs and times of a copied inode (a directory's times come last).
    fn metadata(&mut self, ino: u64, node: &Inode, dest: &Path, what: &str) -> anyhow::Result<()> {
        let problems = copy::metadata(self.fs, ino, node, dest)?;
        for p in problems {
            self.skip(what, p);
        }
        if !node.is_dir() {
            copy::times(node, dest)?;
        }
        Ok(())
    }

    /// Set the times of the directories copied, deepest first.
    fn finish(&mut self) -> anyhow::Result<()> {
        while let Some((dir, node)) = self.dir_times.pop() {
            copy::times(&node, &dir)?;
        }
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        Ok(())
    }
}

/// Whether an inode is sound enough to copy: a known file type, a symlink target of sane length.
fn valid(n: &Inode) -> Result<(), String> {
    if !n.has_known_type() {
        return Err(format!("unknown file type in mode {:o}", n.mode));
    }
    if n.is_symlink() && n.size > 4096 {
        return Err(format!("a symlink with a {}-byte target", n.size));
    }
    Ok(())
}

/// Whether `name` may be created in a directory (not empty, ".", ".." or holding '/' or NUL).
fn usable(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

/// Where PATH goes in DEST: DEST itself for the root, DEST/#INO for `<INO>`, else DEST/NAME.
fn target(spec: &str, ino: u64, dest: &Path) -> PathBuf {
    if ino == rvmfs::layout::superblock::ROOT_INO {
        return dest.to_path_buf();
    }
    match spec.trim_end_matches('/').rsplit('/').next() {
        Some(name) if !name.is_empty() && !spec.starts_with('<') && name != ".." => dest.join(name),
        _ => dest.join(format!("#{ino}")),
    }
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let fs = match open_fs("rdump", &args.image) {
        Ok(fs) => fs,
        Err(code) => return Ok(code),
    };
    let ino = match resolve(&fs, &args.path) {
        Ok(ino) => ino,
        Err(e) => {
            exit::say("rdump", &args.image, format!("{}: {e}", args.path));
            return Ok(exit::ERROR);
        }
    };
    let mut d = Dumper::new(&fs, &args.image);
    let copied = std::fs::create_dir_all(&args.dest)
        .map_err(anyhow::Error::from)
        .and_then(|()| d.dump(ino, &target(&args.path, ino, &args.dest), &args.path))
        .and_then(|()| match args.lost {
            true => lost::dump_lost(&mut d, &args.dest),
            false => Ok(()),
        })
        .and_then(|()| d.finish());
    if let Err(e) = copied {
        exit::say(
            "rdump",
            &args.image,
            format!("{}: writing failed: {e:#}", args.dest.display()),
        );
        return Ok(exit::OPERATIONAL);
    }
    println!(
        "{}: {} inodes ({} bytes of file data) copied to {}; {} damaged items skipped",
        args.image.display(),
        d.files,
        d.bytes,
        args.dest.display(),
        d.skipped
    );
    Ok(if d.skipped > 0 { exit::ERROR } else { exit::OK })
}
