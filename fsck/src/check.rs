//! The checks, in e2fsck's order: superblock; pass 1 inodes and extents (blocks owned once, the
//! free-space map equal to the union of extents); pass 2 directory entries; pass 3
//! connectivity (every directory reachable from the root, ".." right, no cycles); pass 4 link
//! counts; pass 5 bitmaps and counters; the heap (no chunk overlaps another) and the orphan list.
//!
//! Each finding is a `Problem` with the repair that fixes it; `repair.rs` applies them.

use rvmfs::layout::inode::{Inode, INODE_SIZE};
use rvmfs::layout::pod;
use rvmfs::layout::superblock::{Superblock, ROOT_INO};
use rvmfs::store::dentry::{self as dir, DENTRIES};
use rvmfs::store::extent_map::{self as extent, EXTENTS};
use rvmfs::store::orphan;
use rvmfs::store::xattr::{self, XATTRS};
use rvmfs::store::{bitmap, btree::Tree, heap};
use rvmfs::FsResult;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The four B+trees and their names in messages.
pub const TREES: [(Tree, &str); 4] = [
    (DENTRIES, "directory"),
    (EXTENTS, "extent"),
    (XATTRS, "extended attribute"),
    (orphan::ORPHANS, "orphan"),
];

/// How a problem is repaired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fix {
    /// Free an orphan (an inode unlinked while open when the daemon died).
    ReclaimOrphan(u64),
    /// Set inode's link count.
    SetLinks { ino: u64, nlink: u32 },
    /// Set a file's block count.
    SetBlocks { ino: u64, blocks: u64 },
    /// Set or clear one bit of the inode bitmap.
    InodeBit { ino: u64, used: bool },
    /// Set or clear a run of the data bitmap.
    DataBits { start: u64, len: u64, used: bool },
    /// Set the superblock's used-inode and used-block counters.
    Counters { inodes_used: u64, blocks_used: u64 },
    /// Remove a directory entry (dir, key).
    RemoveEntry { dir: u64, key: (u64, u64) },
    /// Remove an extent (ino, last block) whose blocks are bad or owned twice.
    RemoveExtent { ino: u64, last: u64 },
    /// Put an unreachable inode into /lost+found.
    LostFound { ino: u64 },
    /// Set a directory's parent pointer.
    SetParent { ino: u64, parent: u64 },
    /// Clear an inode whose fields make no sense (e2fsck's "clear inode"); its entries,
    /// extents and blocks are cleaned up by the next round.
    ClearInode(u64),
    /// Remove an extended attribute entry (ino, key).
    RemoveXattr { ino: u64, key: (u64, u64) },
    /// Empty a heap free list whose chunks overlap live data (the chunks are leaked).
    ResetFreeList(usize),
    /// Rebuild a damaged B+tree (named by its root's superblock field) from its leaves.
    RebuildTree(u64),
    /// No automatic repair.
    None,
}

impl Fix {
    /// Safe without asking (fsck -p): changes no user-visible name or data.
    pub fn is_safe(&self) -> bool {
        matches!(
            self,
            Fix::ReclaimOrphan(_)
                | Fix::SetBlocks { .. }
                | Fix::InodeBit { .. }
                | Fix::DataBits { .. }
                | Fix::Counters { .. }
                | Fix::SetParent { .. }
                | Fix::RebuildTree(_)
                | Fix::ResetFreeList(_)
        )
    }
}

/// One finding.
#[derive(Clone, Debug)]
pub struct Problem {
    pub what: String,
    pub fix: Fix,
}

/// What the check found, and totals for the summary line.
#[derive(Default)]
pub struct Report {
    pub problems: Vec<Problem>,
    pub files: u64,
    pub dirs: u64,
    pub extents: u64,
    pub fragmented: u64,
    pub blocks_used: u64,
    pub orphans: u64,
}

impl Report {
    fn add(&mut self, what: String, fix: Fix) {
        self.problems.push(Problem { what, fix });
    }
}

/// Run every check over the region `bytes`.
pub fn check(bytes: &[u8], progress: &dyn Fn(&str, u64, u64)) -> FsResult<Report> {
    let mut r = Report::default();
    let sb: Superblock = rvmfs::store::superblock(bytes)?;
    check_superblock(bytes, &sb)?;

    // Pass 0: the B+trees themselves. A damaged index makes every later pass see ghosts, so a
    // damaged tree is rebuilt first and the check starts over.
    for (tree, name) in TREES {
        let damage = tree.verify(bytes)?;
        if let Some(first) = damage.first() {
            r.add(
                format!(
                    "the {name} index is damaged ({first}; {} problems)",
                    damage.len()
                ),
                Fix::RebuildTree(tree.0),
            );
        }
    }
    if !r.problems.is_empty() {
        return Ok(r);
    }

    // Pass 1: inodes.
    let mut inodes: BTreeMap<u64, Inode> = BTreeMap::new();
    for ino in 1..=sb.inode_count {
        if ino % 65536 == 0 {
            progress("Pass 1: inodes", ino, sb.inode_count);
        }
        let used = bitmap::test(bytes, sb.inode_bitmap, ino - 1)?;
        let node: Inode = pod::get(bytes, sb.inode_table + (ino - 1) * INODE_SIZE)?;
        match (used, node.is_free()) {
            (true, true) => r.add(
                format!("inode {ino} is marked in use but is free"),
                Fix::InodeBit { ino, used: false },
            ),
            (false, false) => {
                r.add(
                    format!("inode {ino} is in use but not marked in the inode bitmap"),
                    Fix::InodeBit { ino, used: true },
                );
                inodes.insert(ino, node);
            }
            (true, false) => {
                inodes.insert(ino, node);
            }
            (false, true) => {}
        }
    }
    match inodes.get(&ROOT_INO) {
        Some(root) if root.is_dir() => {}
        _ => r.add(
            "the root directory is missing or not a directory".into(),
            Fix::None,
        ),
    }
    // An inode of no known type is cleared (e2fsck does the same); the later passes treat it as
    // free, so its entries and extents go too.
    const KNOWN: [u32; 7] = [
        libc::S_IFREG,
        libc::S_IFDIR,
        libc::S_IFLNK,
        libc::S_IFCHR,
        libc::S_IFBLK,
        libc::S_IFIFO,
        libc::S_IFSOCK,
    ];
    let unknown: Vec<u64> = inodes
        .iter()
        .filter(|(_, n)| !KNOWN.contains(&n.kind()))
        .map(|(&i, _)| i)
        .collect();
    for ino in unknown {
        if let Some(node) = inodes.remove(&ino) {
            r.add(
                format!("inode {ino} has an unknown file type {:o}", node.mode),
                Fix::ClearInode(ino),
            );
        }
    }
    for node in inodes.values() {
        if node.is_dir() {
            r.dirs += 1;
        } else {
            r.files += 1;
        }
    }

    // Pass 1b: extents: inside the data area, owned once, counted per inode.
    progress("Pass 1b: extents", 0, 1);
    let mut owned = vec![0u64; sb.data_blocks.div_ceil(64) as usize];
    let mut blocks_of: HashMap<u64, u64> = HashMap::new();
    let mut last_of: HashMap<u64, (u64, u64)> = HashMap::new();
    let mut extent_problems = Vec::new();
    EXTENTS.scan(bytes, (0, 0), (u64::MAX, u64::MAX), |k, v| {
        let (ino, last) = k;
        let e = extent::Extent {
            first: v[0],
            last,
            phys: v[1],
            flags: v[2],
        };
        r.extents += 1;
        let bad = match inodes.get(&ino) {
            None => Some(format!(
                "extent of blocks {}..={} belongs to free inode {ino}",
                e.first, e.last
            )),
            Some(n) if !n.is_reg() => Some(format!(
                "inode {ino} is not a regular file but has an extent"
            )),
            _ if e.first > e.last
                || e.phys
                    .checked_add(e.len())
                    .is_none_or(|end| end > sb.data_blocks) =>
            {
                Some(format!(
                    "inode {ino}: extent {}..={} at block {} lies outside the data area",
                    e.first, e.last, e.phys
                ))
            }
            _ => None,
        };
        if let Some(what) = bad {
            extent_problems.push((what, Fix::RemoveExtent { ino, last }));
            return Ok(true);
        }
        let twice =
            (e.phys..e.phys + e.len()).find(|&b| owned[(b / 64) as usize] & (1 << (b % 64)) != 0);
        if let Some(b) = twice {
            extent_problems.push((
                format!(
                    "inode {ino}: block {b} (file block {}) is owned twice",
                    e.first + (b - e.phys)
                ),
                Fix::RemoveExtent { ino, last },
            ));
            return Ok(true);
        }
        for b in e.phys..e.phys + e.len() {
            owned[(b / 64) as usize] |= 1 << (b % 64);
        }
        *blocks_of.entry(ino).or_default() += e.len();
        if let Some(&(prev_last, prev_end)) = last_of.get(&ino) {
            if prev_last + 1 != e.first || prev_end != e.phys {
                r.fragmented += 1;
            }
        }
        last_of.insert(ino, (e.last, e.phys + e.len()));
        Ok(true)
    })?;
    for (what, fix) in extent_problems {
        r.add(what, fix);
    }
    for (&ino, node) in &inodes {
        let counted = blocks_of.get(&ino).copied().unwrap_or(0);
        if node.is_reg() && node.blocks != counted {
            r.add(
                format!(
                    "inode {ino}: block count {} should be {counted}",
                    node.blocks
                ),
                Fix::SetBlocks {
                    ino,
                    blocks: counted,
                },
            );
        }
    }

    // Pass 2: directory entries.
    progress("Pass 2: directory entries", 0, 1);
    let mut links: HashMap<u64, u32> = HashMap::new();
    let mut subdirs: HashMap<u64, u32> = HashMap::new();
    let mut named_in: HashMap<u64, Vec<u64>> = HashMap::new(); // dir inode -> dirs naming it
                                                               // (offset, length, what, the fix if this chunk is to blame, blame priority)
    let mut heap_chunks: Vec<(u64, u64, String, Fix, u8)> = Vec::new();
    let mut entry_problems = Vec::new();
    DENTRIES.scan(bytes, (0, 0), (u64::MAX, u64::MAX), |k, v| {
        let (parent, key) = k;
        let d_ino = v[0];
        let name_at = v[1];
        let name_len = v[2] & 0xffff_ffff;
        let kind = (v[2] >> 32) as u32;
        let name =
            heap::load(bytes, name_at, name_len).map(|n| String::from_utf8_lossy(n).into_owned());
        let Ok(name) = name else {
            entry_problems.push((
                format!("directory {parent}: an entry's name lies outside the region"),
                Fix::RemoveEntry {
                    dir: parent,
                    key: k,
                },
            ));
            return Ok(true);
        };
        let bad = match (inodes.get(&parent), inodes.get(&d_ino)) {
            (None, _) => Some(format!("entry '{name}' is in free inode {parent}")),
            (Some(p), _) if !p.is_dir() => Some(format!(
                "entry '{name}' is in inode {parent}, which is not a directory"
            )),
            (_, None) => Some(format!(
                "entry '{name}' in directory {parent} names free inode {d_ino}"
            )),
            (_, Some(c)) if c.kind() != kind => Some(format!(
                "entry '{name}' in directory {parent}: type does not match inode {d_ino}"
            )),
            _ if name_len == 0 || name_len > dir::NAME_MAX as u64 || name.contains('/') => Some(
                format!("directory {parent}: entry with an invalid name '{name}'"),
            ),
            _ if key < dir::FIRST_KEY => {
                Some(format!("directory {parent}: entry '{name}' has a bad key"))
            }
            _ => None,
        };
        if let Some(what) = bad {
            entry_problems.push((
                what,
                Fix::RemoveEntry {
                    dir: parent,
                    key: k,
                },
            ));
            return Ok(true);
        }
        heap_chunks.push((
            name_at,
            name_len,
            format!("name of entry '{name}' in directory {parent}"),
            Fix::RemoveEntry {
                dir: parent,
                key: k,
            },
            1,
        ));
        *links.entry(d_ino).or_default() += 1;
        if kind == libc::S_IFDIR {
            *subdirs.entry(parent).or_default() += 1;
            named_in.entry(d_ino).or_default().push(parent);
        }
        Ok(true)
    })?;
    for (what, fix) in entry_problems {
        r.add(what, fix);
    }

    // Pass 3: connectivity.
    progress("Pass 3: connectivity", 0, 1);
    let orphans: HashSet<u64> = orphan::list(bytes)?.into_iter().collect();
    for (&ino, node) in &inodes {
        if !node.is_dir() || ino == ROOT_INO {
            continue;
        }
        match named_in.get(&ino).map(Vec::as_slice) {
            None | Some([]) if orphans.contains(&ino) => {}
            None | Some([]) => r.add(
                format!("directory {ino} is not reachable from the root"),
                Fix::LostFound { ino },
            ),
            Some([p]) if *p != node.parent_or_target => r.add(
                format!(
                    "directory {ino}: '..' is {} but it is in directory {p}",
                    node.parent_or_target
                ),
                Fix::SetParent { ino, parent: *p },
            ),
            Some([_]) => {}
            Some(many) => r.add(
                format!(
                    "directory {ino} has {} names (hard-linked directory)",
                    many.len()
                ),
                Fix::None,
            ),
        }
    }
    // Cycles: walk up from every directory; the root must be reached.
    for (&ino, node) in &inodes {
        if !node.is_dir() || orphans.contains(&ino) {
            continue;
        }
        let mut at = ino;
        let mut steps = 0u64;
        while at != ROOT_INO && steps <= inodes.len() as u64 {
            match named_in.get(&at).and_then(|v| v.first()) {
                Some(&p) => at = p,
                None => break,
            }
            steps += 1;
        }
        if steps > inodes.len() as u64 {
            r.add(
                format!("directory {ino} is part of a directory cycle"),
                Fix::None,
            );
        }
    }

    // Pass 4: link counts.
    progress("Pass 4: link counts", 0, 1);
    for (&ino, node) in &inodes {
        let expected = if node.is_dir() {
            if named_in.get(&ino).is_none_or(|v| v.is_empty()) && ino != ROOT_INO {
                0
            } else {
                2 + subdirs.get(&ino).copied().unwrap_or(0)
            }
        } else {
            links.get(&ino).copied().unwrap_or(0)
        };
        if expected == 0 && ino != ROOT_INO {
            if orphans.contains(&ino) {
                continue; // reclaimed below
            }
            if !node.is_dir() {
                r.add(
                    format!("inode {ino} has no name (unreachable)"),
                    Fix::LostFound { ino },
                );
            }
            continue;
        }
        if node.nlink != expected {
            r.add(
                format!(
                    "inode {ino}: link count {} should be {expected}",
                    node.nlink
                ),
                Fix::SetLinks {
                    ino,
                    nlink: expected,
                },
            );
        }
        if node.is_symlink() {
            heap_chunks.push((
                node.parent_or_target,
                node.size,
                format!("target of symlink {ino}"),
                Fix::ClearInode(ino),
                1,
            ));
        }
        for (at, len, key) in xattr::chunks(bytes, ino)? {
            heap_chunks.push((
                at,
                len,
                format!("extended attribute of inode {ino}"),
                Fix::RemoveXattr { ino, key },
                1,
            ));
        }
    }
    for &ino in &orphans {
        match inodes.get(&ino) {
            Some(n) if n.nlink == 0 => {
                r.orphans += 1;
                r.add(
                    format!("orphan inode {ino} (unlinked while open) to free"),
                    Fix::ReclaimOrphan(ino),
                );
            }
            _ => r.add(
                format!("orphan list names inode {ino}, which is not an orphan"),
                Fix::None,
            ),
        }
    }

    // Pass 5: bitmaps and counters.
    progress("Pass 5: free-space map", 0, 1);
    let mut used_blocks = 0u64;
    let mut run: Option<(u64, u64, bool)> = None;
    let flush_run = |run: Option<(u64, u64, bool)>, r: &mut Report| {
        if let Some((start, len, used)) = run {
            let what = if used {
                format!(
                    "data blocks {start}..{} are in use but marked free",
                    start + len
                )
            } else {
                format!(
                    "data blocks {start}..{} are marked in use but owned by no file (leaked)",
                    start + len
                )
            };
            r.add(what, Fix::DataBits { start, len, used });
        }
    };
    for b in 0..sb.data_blocks {
        let is_owned = owned[(b / 64) as usize] & (1 << (b % 64)) != 0;
        used_blocks += is_owned as u64;
        let marked = bitmap::test(bytes, sb.data_bitmap, b)?;
        if is_owned != marked {
            match &mut run {
                Some((start, len, used)) if *start + *len == b && *used == is_owned => *len += 1,
                _ => {
                    flush_run(run.take(), &mut r);
                    run = Some((b, 1, is_owned));
                }
            }
        }
    }
    flush_run(run, &mut r);
    r.blocks_used = used_blocks;
    let inodes_used = inodes.len() as u64;
    if sb.inodes_used != inodes_used || sb.blocks_used != used_blocks {
        r.add(
            format!(
                "superblock counters: {} inodes and {} blocks used, should be {inodes_used} and {used_blocks}",
                sb.inodes_used, sb.blocks_used
            ),
            Fix::Counters { inodes_used, blocks_used: used_blocks },
        );
    }

    // The heap: every chunk inside [heap_start, heap_top), none overlapping another.
    progress("Heap", 0, 1);
    for (tree, name) in [
        (DENTRIES, "dentry"),
        (EXTENTS, "extent"),
        (XATTRS, "xattr"),
        (orphan::ORPHANS, "orphan"),
    ] {
        for node in Tree::nodes(&tree, bytes)? {
            heap_chunks.push((
                node,
                4096,
                format!("{name} tree node"),
                Fix::RebuildTree(tree.0),
                0,
            ));
        }
    }
    for (class, &head) in sb.heap_free.iter().enumerate() {
        let size = heap::MIN_CHUNK << class;
        let mut at = head;
        let mut n = 0u64;
        while at != 0 && n <= sb.heap_end / size {
            heap_chunks.push((
                at,
                size,
                format!("free {size}-byte heap chunk"),
                Fix::ResetFreeList(class),
                2,
            ));
            at = pod::get(bytes, at).unwrap_or(0);
            n += 1;
        }
    }
    let mut spans: Vec<_> = heap_chunks
        .into_iter()
        .map(|(at, len, what, fix, blame)| {
            (
                at,
                heap::class_of(len).map_or(len, |(_, c)| c),
                what,
                fix,
                blame,
            )
        })
        .collect();
    spans.sort_by_key(|s| (s.0, s.1));
    let mut prev: Option<(u64, String, Fix, u8)> = None; // (end, what, fix, blame) of the furthest-reaching chunk
    for (at, len, what, fix, blame) in spans {
        if at < sb.heap_start || at + len > sb.heap_top {
            r.add(
                format!("heap: {what} at {at} lies outside the heap"),
                fix.clone(),
            );
            continue;
        }
        if let Some((end, pwhat, pfix, pblame)) = &prev {
            if at < *end {
                let culprit = if blame >= *pblame {
                    fix.clone()
                } else {
                    pfix.clone()
                };
                r.add(format!("heap: {what} at {at} overlaps {pwhat}"), culprit);
            }
        }
        if prev.as_ref().is_none_or(|p| at + len > p.0) {
            prev = Some((at + len, what, fix, blame));
        }
    }
    Ok(r)
}

fn check_superblock(bytes: &[u8], sb: &Superblock) -> FsResult<()> {
    let region = bytes.len() as u64;
    let ordered = sb.inode_bitmap < sb.inode_table
        && sb.inode_table + sb.inode_count * INODE_SIZE <= sb.data_bitmap
        && sb.data_bitmap + sb.data_blocks.div_ceil(8) <= sb.heap_start
        && sb.heap_start <= sb.heap_top
        && sb.heap_top <= sb.heap_end
        && sb.heap_end <= region;
    if !ordered {
        return Err(rvmfs::FsError::Corrupt(
            "the superblock's layout is inconsistent".into(),
        ));
    }
    Ok(())
}
