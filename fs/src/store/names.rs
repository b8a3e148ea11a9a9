//! Every name of the dentry tree at once, to name inodes by path (fsck's scrub messages,
//! `rvmfs-admin debug ncheck`): inode -> the (directory, name) entries naming it, and paths
//! from the root through each directory's first name (bounded: a cycle in damaged metadata
//! cannot hang it).

use super::btree::{Key, Value};
use super::dentry::{Dentry, DENTRIES};
use crate::error::FsResult;
use crate::layout::superblock::ROOT_INO;
use std::collections::HashMap;

/// Deepest path followed (deeper means a cycle).
const MAX_DEPTH: usize = 4096;

/// The names of a region's inodes: inode -> (directory, name) in key order.
pub struct Names(HashMap<u64, Vec<(u64, String)>>);

impl Names {
    /// Every entry of the dentry tree, by a scan. Errors: a node of the tree cannot be read.
    pub fn read(bytes: &[u8]) -> FsResult<Names> {
        let mut entries = Vec::new();
        DENTRIES.scan(bytes, (0, 0), (u64::MAX, u64::MAX), |k, v| {
            entries.push((k, v));
            Ok(true)
        })?;
        Ok(Self::of(bytes, entries))
    }

    /// Every entry the tree's leaves hold, node by node (`Tree::salvage`): a damaged node loses
    /// only its own entries. Errors: the tree's root pointer cannot be read.
    pub fn salvage(bytes: &[u8]) -> FsResult<Names> {
        Ok(Self::of(bytes, DENTRIES.salvage(bytes)?))
    }

    fn of(bytes: &[u8], entries: Vec<(Key, Value)>) -> Names {
        let mut map: HashMap<u64, Vec<(u64, String)>> = HashMap::new();
        for (k, v) in entries {
            let d = Dentry::decode(k, v);
            if let Ok(name) = d.name(bytes) {
                let name = String::from_utf8_lossy(name).into_owned();
                map.entry(d.ino).or_default().push((k.0, name));
            }
        }
        Names(map)
    }

    /// The path of directory `dir` from the root through first names ("" for the root), if
    /// its names lead there.
    pub fn dir_path(&self, dir: u64) -> Option<String> {
        let mut parts = Vec::new();
        let mut at = dir;
        for _ in 0..MAX_DEPTH {
            if at == ROOT_INO {
                parts.reverse();
                return Some(parts.iter().map(|p| format!("/{p}")).collect());
            }
            let (parent, name) = self.0.get(&at)?.first()?;
            parts.push(name.as_str());
            at = *parent;
        }
        None
    }

    /// One path of `ino` (through first names; the root is "/"), if its names lead to the root.
    pub fn path(&self, ino: u64) -> Option<String> {
        match ino {
            ROOT_INO => Some("/".into()),
            _ => self.dir_path(ino),
        }
    }

    /// Every path naming `ino`, one per entry (the root: "/"); an entry whose directory does
    /// not lead to the root is `<DIR>/name`.
    pub fn paths(&self, ino: u64) -> Vec<String> {
        if ino == ROOT_INO {
            return vec!["/".into()];
        }
        let Some(names) = self.0.get(&ino) else {
            return Vec::new();
        };
        names
            .iter()
            .map(|(dir, name)| match self.dir_path(*dir) {
                Some(p) => format!("{p}/{name}"),
                None => format!("<{dir}>/{name}"),
            })
            .collect()
    }
}
