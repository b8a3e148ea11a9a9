//! Power loss during fsck repairs (issue 5, item 3): on rvm-core's `SimStorage`, a populated
//! image is damaged in ways fsck repairs (wrong link counts, leaked blocks, an orphan, a file
//! with no name, a wrong block count, a wrong `..`, a cleared inode-bitmap bit, wrong superblock
//! counters). The repair loop of `fsck.rvmfs -y` (check, apply every fix, check again, then
//! stamp, flush and truncate, as fsck/src/main.rs does) runs with the power cut after n I/O
//! operations, for every n up to the total, once with the repairs flushed at the end (as
//! fsck.rvmfs does) and once with a flush after every fix (more intermediate states). After each
//! cut (unsynced writes all lost, all kept, or a seeded random prefix/subset, torn or garbage):
//! recover; the check must read the image and find only problems the damaged image or a later
//! round of the uninterrupted repair had (never worse), and running the repairs again to the end
//! must leave 0 problems and the same tree as the uninterrupted repair.

mod common;

use common::{new_inode, open_sim, snapshot};
use fsck::check::{check, Fix};
use rvm_core::sim::SimStorage;
use rvmfs::format::format;
use rvmfs::layout::geometry::Plan;
use rvmfs::layout::pod;
use rvmfs::layout::superblock::{field, ROOT_INO};
use rvmfs::ops::{file, namespace, orphan, xattr, Fs};
use rvmfs::store::bitmap;
use rvmfs::store::dentry;
use std::collections::BTreeSet;
use std::sync::Arc;

const IMAGE: u64 = 8 << 20;

fn open(storage: Arc<SimStorage>) -> Option<Fs> {
    open_sim(storage, IMAGE)
}

fn create(fs: &mut Fs, parent: u64, name: &str, mode: u32, data: &[u8]) -> u64 {
    let (ino, _) = fs
        .transact(|op| namespace::create(op, parent, name.as_bytes(), new_inode(mode), None))
        .unwrap();
    if !data.is_empty() {
        fs.transact(|op| file::write(op, ino, 0, data, false))
            .unwrap();
    }
    ino
}

fn data(seed: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| (i.wrapping_mul(31) ^ seed) as u8)
        .collect()
}

/// A populated image, then damaged in one committed transaction; both made durable.
fn damaged_image() -> Vec<u8> {
    let disk = Arc::new(SimStorage::new(IMAGE as usize));
    let plan = Plan {
        size: IMAGE,
        inodes: Some(256),
        log: Some(1 << 20),
    };
    format(disk.clone(), plan, [5; 16], (0, 0)).unwrap();
    let mut fs = open(disk.clone()).unwrap();
    let reg = libc::S_IFREG | 0o644;
    let dirmode = libc::S_IFDIR | 0o755;
    let mut dirs = Vec::new();
    for d in 0..4u64 {
        let di = create(&mut fs, ROOT_INO, &format!("d{d}"), dirmode, &[]);
        dirs.push(di);
        for f in 0..8u64 {
            let len = ((d * 8 + f) * 1777 % 20000) as usize;
            let ino = create(&mut fs, di, &format!("f{f}"), reg, &data(d * 8 + f, len));
            if f % 3 == 0 {
                fs.transact(|op| xattr::set(op, ino, b"user.a", b"value", 0))
                    .unwrap();
            }
        }
    }
    let sub = create(&mut fs, dirs[0], "sub", dirmode, &[]);
    let linked = dentry::lookup(fs.bytes(), dirs[1], b"f1")
        .unwrap()
        .unwrap()
        .ino;
    fs.transact(|op| namespace::link(op, linked, dirs[2], b"hard"))
        .unwrap();
    fs.transact(|op| {
        namespace::create(
            op,
            dirs[3],
            b"sym",
            new_inode(libc::S_IFLNK | 0o777),
            Some(b"../d1/f1"),
        )
    })
    .unwrap();
    let orphan_ino = create(&mut fs, dirs[3], "doomed", reg, &data(99, 9000));
    let lost_ino = create(&mut fs, dirs[2], "lost", reg, &data(98, 5000));
    fs.rvm.flush().unwrap();
    fs.rvm.truncate().unwrap();

    // The damage, as bit rot or a bug could leave it.
    let f0 = dentry::lookup(fs.bytes(), dirs[0], b"f2")
        .unwrap()
        .unwrap()
        .ino;
    let f3 = dentry::lookup(fs.bytes(), dirs[3], b"f4")
        .unwrap()
        .unwrap()
        .ino;
    let f5 = dentry::lookup(fs.bytes(), dirs[1], b"f5")
        .unwrap()
        .unwrap()
        .ino;
    fs.transact(|op| {
        // Wrong link counts: a file and a directory.
        let mut n = op.inode(linked)?;
        n.nlink = 7;
        op.put_inode(linked, &n)?;
        let mut n = op.inode(dirs[1])?;
        n.nlink = 1;
        op.put_inode(dirs[1], &n)?;
        // Wrong block count.
        let mut n = op.inode(f0)?;
        n.blocks += 3;
        op.put_inode(f0, &n)?;
        // Wrong "..".
        let mut n = op.inode(sub)?;
        n.parent_or_target = dirs[2];
        op.put_inode(sub, &n)?;
        // Leaked blocks near the end of the data area, and a used block marked free.
        let data_blocks = op.superblock()?.data_blocks;
        let at = op.geo.data_bitmap;
        bitmap::set_run(&mut op.tx, at, data_blocks - 50, 20, true)?;
        // A live inode with its bitmap bit cleared.
        let at = op.geo.inode_bitmap;
        bitmap::set_run(&mut op.tx, at, f3 - 1, 1, false)?;
        // An orphan: no name, link count 0, on the orphan list (as after a crash with the file
        // open).
        let d = dentry::lookup(op.bytes(), dirs[3], b"doomed")?.unwrap();
        dentry::remove(&mut op.tx, &d)?;
        let mut n = op.inode(orphan_ino)?;
        n.nlink = 0;
        op.put_inode(orphan_ino, &n)?;
        orphan::add(op, orphan_ino)?;
        // A file with no name and a link count of 1: to /lost+found.
        let d = dentry::lookup(op.bytes(), dirs[2], b"lost")?.unwrap();
        dentry::remove(&mut op.tx, &d)?;
        // Wrong superblock counters.
        let sb = op.superblock()?;
        pod::put(&mut op.tx, field::INODES_USED, &(sb.inodes_used + 5))?;
        pod::put(&mut op.tx, field::BLOCKS_USED, &(sb.blocks_used - 7))?;
        Ok(())
    })
    .unwrap();
    // One more: a used block of f5 marked free (after the counters were read above).
    let phys = {
        let mut first = None;
        rvmfs::store::extent_map::EXTENTS
            .scan(fs.bytes(), (f5, 0), (f5, u64::MAX), |_, v| {
                first = Some(v[1]);
                Ok(false)
            })
            .unwrap();
        first.expect("f5 has data")
    };
    fs.transact(|op| {
        let at = op.geo.data_bitmap;
        bitmap::set_run(&mut op.tx, at, phys, 1, false)
    })
    .unwrap();
    let _ = lost_ino;
    fs.rvm.flush().unwrap();
    fs.rvm.truncate().unwrap();
    drop(fs);
    disk.durable_image()
}

/// The problems check() reports, by description; wrong superblock counters count as one
/// problem whatever the numbers (a partial repair changes what they should be).
fn problems(fs: &Fs) -> Vec<String> {
    let report = check(fs.bytes(), &|_, _, _| {}).expect("check must read the image");
    describe(&report.problems)
}

fn describe(problems: &[fsck::check::Problem]) -> Vec<String> {
    problems
        .iter()
        .map(|p| match p.fix {
            Fix::Counters { .. } => "wrong superblock counters".to_string(),
            _ => p.what.clone(),
        })
        .collect()
}

/// fsck.rvmfs -y's loop (fsck/src/main.rs): check; rebuild damaged trees first, else apply
/// every fix; at most 5 rounds; then stamp the check time, flush and truncate. With
/// `flush_each`, every fix is flushed on its own. Returns the problem lists of every round, or
/// None when the power failed.
fn repair(fs: &mut Fs, disk: &SimStorage, flush_each: bool) -> Option<Vec<Vec<String>>> {
    let mut rounds = Vec::new();
    for _ in 0..5 {
        let report = check(fs.bytes(), &|_, _, _| {}).ok()?;
        rounds.push(describe(&report.problems));
        let fixable: Vec<Fix> = report
            .problems
            .iter()
            .map(|p| p.fix.clone())
            .filter(|f| *f != Fix::None)
            .collect();
        if fixable.is_empty() {
            break;
        }
        let rebuilds: Vec<Fix> = fixable
            .iter()
            .filter(|f| matches!(f, Fix::RebuildTree(_)))
            .cloned()
            .collect();
        let fixable = if rebuilds.is_empty() {
            fixable
        } else {
            rebuilds
        };
        for fix in &fixable {
            let _ = fsck::repair::apply(fs, fix);
            if flush_each && fs.rvm.flush().is_err() {
                return None;
            }
            if disk.is_crashed() {
                return None;
            }
        }
    }
    fs.transact(|op| pod::put(&mut op.tx, field::LAST_CHECK, &12345i64))
        .ok()?;
    fs.rvm.flush().ok()?;
    fs.rvm.truncate().ok()?;
    (!disk.is_crashed()).then_some(rounds)
}

fn run(flush_each: bool) {
    let damaged = damaged_image();
    // The uninterrupted repair: its rounds' problems, its I/O count and the tree it leaves.
    let disk = Arc::new(SimStorage::from_bytes(damaged.clone()));
    let mut fs = open(disk.clone()).unwrap();
    let original = problems(&fs);
    assert!(
        original.len() >= 9,
        "the damage should give at least 9 problems: {original:#?}"
    );
    let before = disk.op_counts();
    let rounds = repair(&mut fs, &disk, flush_each).expect("no power cut");
    let after = disk.op_counts();
    assert!(problems(&fs).is_empty(), "repairs leave problems");
    let repaired = snapshot(&fs).unwrap();
    assert!(
        repaired.keys().any(|p| p.starts_with("/lost+found/#")),
        "the nameless file went to /lost+found: {:?}",
        repaired.keys().collect::<Vec<_>>()
    );
    drop(fs);
    let known: BTreeSet<String> = rounds.iter().flatten().cloned().collect();
    let total = (after.0 - before.0) + (after.1 - before.1);
    eprintln!(
        "damaged image: {} problems ({} rounds to repair); repair does {total} I/Os (flush after every fix: {flush_each})",
        original.len(),
        rounds.len()
    );

    let (mut states, mut untouched, mut clean, mut partly) = (0, 0, 0, 0);
    for n in 0..=total {
        let disk = Arc::new(SimStorage::from_bytes(damaged.clone()));
        let mut fs = open(disk.clone()).unwrap();
        disk.crash_after(Some(n));
        let finished = repair(&mut fs, &disk, flush_each).is_some();
        drop(fs);
        let mut images = vec![
            ("unsynced writes lost".to_string(), disk.durable_image()),
            ("all writes kept".to_string(), disk.image()),
        ];
        for s in 0..2 {
            let (crash, image) = disk.random_crash(n * 2 + s + flush_each as u64 * 100_000);
            images.push((format!("{crash:?}"), image));
        }
        for (how, image) in images {
            let what = format!("cut after {n} of {total} I/Os (finished: {finished}), {how}");
            states += 1;
            let disk = Arc::new(SimStorage::from_bytes(image));
            let mut fs = open(disk.clone())
                .unwrap_or_else(|| panic!("{what}: recovery after the cut failed"));
            let found = problems(&fs);
            let worse: Vec<_> = found.iter().filter(|p| !known.contains(*p)).collect();
            assert!(
                worse.is_empty(),
                "{what}: problems neither the damaged image nor the repair rounds had: {worse:#?}"
            );
            if found == original {
                untouched += 1;
            }
            if found.is_empty() {
                clean += 1;
            } else if found != original {
                partly += 1;
            }
            repair(&mut fs, &disk, flush_each)
                .unwrap_or_else(|| panic!("{what}: repairing again failed"));
            let left = problems(&fs);
            assert!(
                left.is_empty(),
                "{what}: problems left after repairing again: {left:#?}"
            );
            let tree = snapshot(&fs).unwrap();
            if tree != repaired {
                let a: BTreeSet<_> = tree.keys().collect();
                let b: BTreeSet<_> = repaired.keys().collect();
                panic!(
                    "{what}: the tree after repairing again differs from the uninterrupted repair's\nonly here: {:?}\nonly there: {:?}",
                    a.difference(&b).collect::<Vec<_>>(),
                    b.difference(&a).collect::<Vec<_>>()
                );
            }
        }
    }
    eprintln!(
        "{states} crash states: {untouched} still the damaged image, {partly} partly repaired, {clean} fully repaired; all repair to the same clean tree"
    );
}

#[test]
fn power_cut_during_repairs_flushed_at_the_end() {
    run(false);
}

#[test]
fn power_cut_during_repairs_flushed_after_every_fix() {
    run(true);
}
