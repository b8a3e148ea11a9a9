//! What a range of a redo record touches, named from the image's geometry (the header's
//! areas, `fs/src/layout`) and its region layout (docs/format.md section 5): a header or log
//! byte, a superblock field, inode N (and which of its fields), an inode or block bitmap
//! word, the data checksums of blocks, a B+tree node of which tree, a heap chunk (a name of
//! which directory entry), a data block of which file.

use rvmfs::layout::features::COMPAT_BACKUP_SB;
use rvmfs::layout::header::Header;
use rvmfs::layout::inode::{Inode, INODE_SIZE};
use rvmfs::layout::superblock::{Superblock, SB_SIZE};
use rvmfs::store::{self, csum, dentry, extent_map, xattr};
use std::collections::{BTreeMap, HashMap};
use std::mem::{offset_of, size_of_val};
use std::ops::Range;

/// Data block size, bytes.
const BLOCK: u64 = 4096;

/// What one range touches.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Touch {
    /// In words: "inode 12 (size, blocks)", "superblock inodes_used", ...
    pub what: String,
    /// The inodes it belongs to (first, last), when it belongs to some (for `--inode`).
    pub inodes: Option<(u64, u64)>,
}

/// Names ranges of one image (built once from its replayed region).
pub struct Namer<'a> {
    header: Header,
    bytes: &'a [u8],
    sb: Option<Superblock>,
    /// Region offset of every B+tree node -> its tree's name.
    nodes: HashMap<u64, &'static str>,
    /// Heap chunks whose owner is known: region offset -> (length, owner, inode).
    chunks: BTreeMap<u64, (u64, String, u64)>,
    /// Data blocks of files: first physical block -> (blocks, inode, first logical block).
    extents: BTreeMap<u64, (u64, u64, u64)>,
}

/// Fields of `T` as (offset, size, name), in offset order.
macro_rules! fields {
    ($t:ty, $v:expr, [$($f:ident),*]) => {
        vec![$((offset_of!($t, $f) as u64, size_of_val(&$v.$f) as u64, stringify!($f))),*]
    };
}

fn superblock_fields(sb: &Superblock) -> Vec<(u64, u64, &'static str)> {
    fields!(
        Superblock,
        sb,
        [
            magic,
            version,
            mounted,
            inode_count,
            inodes_used,
            data_blocks,
            blocks_used,
            inode_bitmap,
            inode_table,
            data_bitmap,
            heap_start,
            heap_end,
            heap_top,
            heap_free,
            dentry_root,
            extent_root,
            xattr_root,
            orphan_root,
            next_generation,
            mount_count,
            last_mount,
            last_check,
            features,
            _pad,
            hash_key,
            csum_table
        ]
    )
}

fn inode_fields(i: &Inode) -> Vec<(u64, u64, &'static str)> {
    fields!(
        Inode,
        i,
        [
            mode,
            uid,
            gid,
            nlink,
            size,
            blocks,
            atime,
            mtime,
            ctime,
            crtime,
            atime_ns,
            mtime_ns,
            ctime_ns,
            crtime_ns,
            rdev,
            flags,
            generation,
            parent_or_target,
            _reserved
        ]
    )
}

/// A name read from the heap as text ("" if it cannot be read).
fn lossy(name: rvmfs::FsResult<&[u8]>) -> String {
    name.map(|n| String::from_utf8_lossy(n).into_owned())
        .unwrap_or_default()
}

/// The names of the fields of `table` that `[from, to)` (offsets in the structure) overlaps.
fn overlapped(table: &[(u64, u64, &'static str)], r: Range<u64>) -> String {
    let names: Vec<&str> = table
        .iter()
        .filter(|(at, len, _)| *at < r.end && r.start < at + len)
        .map(|(_, _, n)| *n)
        .collect();
    names.join(", ")
}

impl<'a> Namer<'a> {
    /// A namer for the image with `header` whose replayed region is `bytes`. Walks the four
    /// trees (nodes, entry names, xattrs, extents) once; what cannot be read stays unnamed.
    pub fn new(header: Header, bytes: &'a [u8]) -> Namer<'a> {
        let sb = store::superblock(bytes).ok();
        let mut n = Namer {
            header,
            bytes,
            sb,
            nodes: HashMap::new(),
            chunks: BTreeMap::new(),
            extents: BTreeMap::new(),
        };
        n.walk_trees();
        n
    }

    fn walk_trees(&mut self) {
        let bytes = self.bytes;
        let trees = [
            ("dentry", dentry::DENTRIES),
            ("extent", extent_map::EXTENTS),
            ("xattr", xattr::XATTRS),
            ("orphan", store::orphan::ORPHANS),
        ];
        for (name, tree) in trees {
            for node in tree.reachable_nodes(bytes).unwrap_or_default() {
                self.nodes.insert(node, name);
            }
        }
        for (k, v) in dentry::DENTRIES.salvage(bytes).unwrap_or_default() {
            let d = dentry::Dentry::decode(k, v);
            let name = lossy(d.name(bytes));
            let owner = format!("name \"{name}\" of an entry of directory {}", k.0);
            self.chunks
                .insert(d.name_at, (d.name_len.max(1), owner, d.ino));
        }
        for (k, v) in xattr::XATTRS.salvage(bytes).unwrap_or_default() {
            let e = xattr::Entry::decode(k, v);
            let name = lossy(e.name(bytes));
            let ino = k.0;
            let owner = format!("xattr \"{name}\" of inode {ino}");
            self.chunks.insert(
                e.name_at,
                (e.name_len.max(1), format!("{owner} (name)"), ino),
            );
            self.chunks.insert(
                e.value_at,
                (e.value_len.max(1), format!("{owner} (value)"), ino),
            );
        }
        self.symlinks();
        for (k, v) in extent_map::EXTENTS.salvage(bytes).unwrap_or_default() {
            let e = extent_map::Extent::decode(k, v);
            self.extents.insert(e.phys, (e.len(), k.0, e.first));
        }
    }

    /// The heap chunks holding symlink targets (from the inode table).
    fn symlinks(&mut self) {
        let Some(sb) = self.sb else { return };
        for ino in 1..=sb.inode_count {
            let at = sb.inode_table + (ino - 1) * INODE_SIZE;
            let Ok(node) = rvmfs::layout::pod::get::<Inode>(self.bytes, at) else {
                break;
            };
            if node.is_symlink() {
                let owner = format!("symlink target of inode {ino}");
                self.chunks
                    .insert(node.parent_or_target, (node.size.max(1), owner, ino));
            }
        }
    }

    /// What the `len` bytes at image offset `offset` touch.
    pub fn name(&self, offset: u64, len: u64) -> Touch {
        let h = &self.header;
        let plain = |what: String| Touch { what, inodes: None };
        let seg = h.segment_offset..h.segment_offset + h.segment_len;
        if offset < rvmfs::layout::header::HEADER_SIZE {
            return plain(format!(
                "image header (bytes {offset:#x}..{:#x})",
                offset + len
            ));
        }
        if (h.log_offset..h.log_offset + h.log_len).contains(&offset) {
            return plain("the log area".into());
        }
        if seg.contains(&offset) {
            return self.region(offset - seg.start, len);
        }
        let data_end = h.data_offset + h.data_blocks * BLOCK;
        if (h.data_offset..data_end).contains(&offset) {
            return self.data((offset - h.data_offset) / BLOCK, len);
        }
        plain(format!(
            "outside every area of the image (offset {offset:#x})"
        ))
    }

    /// A data range starting in physical block `b`.
    fn data(&self, b: u64, len: u64) -> Touch {
        let last = b + len.saturating_sub(1) / BLOCK;
        let owner = self.extents.range(..=b).next_back();
        match owner {
            Some((&phys, &(n, ino, first))) if b < phys + n => Touch {
                what: format!(
                    "data blocks {b}..={last} of inode {ino} (file block {})",
                    first + (b - phys)
                ),
                inodes: Some((ino, ino)),
            },
            _ => Touch {
                what: format!("data blocks {b}..={last} (owned by no extent now)"),
                inodes: None,
            },
        }
    }

    /// A range at region offset `r`.
    fn region(&self, r: u64, len: u64) -> Touch {
        let plain = |what: String| Touch { what, inodes: None };
        let Some(sb) = self.sb else {
            return plain(format!(
                "metadata region offset {r:#x} (no superblock to name it)"
            ));
        };
        let end = r + len;
        if r < SB_SIZE {
            return plain(format!(
                "superblock {}",
                overlapped(&superblock_fields(&sb), r..end)
            ));
        }
        let bitmap_words = |at: u64, unit: &str, base: u64| {
            let (first, last) = ((r - at) / 8, (end - 1 - at) / 8);
            format!(
                "{unit} bitmap word {first}..={last} ({unit}s {}..={})",
                first * 64 + base,
                last * 64 + 63 + base
            )
        };
        if (sb.inode_bitmap..sb.inode_bitmap + sb.inode_count.div_ceil(8)).contains(&r) {
            return plain(bitmap_words(sb.inode_bitmap, "inode", 1));
        }
        if (sb.inode_table..sb.inode_table + sb.inode_count * INODE_SIZE).contains(&r) {
            let ino = (r - sb.inode_table) / INODE_SIZE + 1;
            let at = (r - sb.inode_table) % INODE_SIZE;
            let fields = overlapped(&inode_fields(&Inode::default()), at..at + len);
            let more = (end - 1 - sb.inode_table) / INODE_SIZE + 1;
            let what = match (more > ino, at == 0 && len == INODE_SIZE) {
                (true, _) => format!("inodes {ino}..={more}"),
                (false, true) => format!("inode {ino} (all of it)"),
                (false, false) => format!("inode {ino} ({fields})"),
            };
            return Touch {
                what,
                inodes: Some((ino, more)),
            };
        }
        if (sb.data_bitmap..sb.data_bitmap + sb.data_blocks.div_ceil(8)).contains(&r) {
            return plain(bitmap_words(sb.data_bitmap, "block", 0));
        }
        let sums = sb.csum_table..sb.csum_table + csum::table_len(sb.data_blocks);
        if sb.csum_table != 0 && sums.contains(&r) {
            let (first, last) = ((r - sums.start) / 4, (end - 1 - sums.start) / 4);
            return plain(format!("data checksums of blocks {first}..={last}"));
        }
        if (sb.heap_start..sb.heap_end).contains(&r) {
            return self.heap(r);
        }
        let backup = sb.features.compat & COMPAT_BACKUP_SB != 0;
        if backup && (sb.heap_end..sb.heap_end + SB_SIZE).contains(&r) {
            let at = r - sb.heap_end;
            return plain(format!(
                "backup superblock {}",
                overlapped(&superblock_fields(&sb), at..at + len)
            ));
        }
        plain(format!(
            "metadata region offset {r:#x} (between structures)"
        ))
    }

    /// A range at region offset `r` inside the heap.
    fn heap(&self, r: u64) -> Touch {
        let node = r - r % BLOCK;
        if let Some(tree) = self.nodes.get(&node) {
            let at = r - node;
            let part = if at < 16 { "header" } else { "entries" };
            return Touch {
                what: format!("B+tree node {node:#x} of the {tree} tree ({part}, +{at})"),
                inodes: None,
            };
        }
        if let Some((&at, (n, owner, ino))) = self.chunks.range(..=r).next_back() {
            if r < at + n {
                return Touch {
                    what: format!("heap chunk {at:#x}: {owner}"),
                    inodes: Some((*ino, *ino)),
                };
            }
        }
        Touch {
            what: format!("heap chunk at {r:#x} (free-list link, or a chunk no tree names now)"),
            inodes: None,
        }
    }
}
