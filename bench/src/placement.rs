//! Where the FUSE round trip's time goes on this machine: the same requests with the client and
//! the daemon on one CPU, on two CPUs, and where the scheduler puts them (workload
//! `placement`, issue 12's "the floor that explains" a missed target).
//!
//! A FUSE request wakes a daemon thread and its reply wakes the client. When the two run on
//! different CPUs, each wake-up is an inter-processor interrupt to a CPU that is usually idle;
//! in a virtual machine whose idle vCPUs halt at once (the guest's
//! `haltpoll.guest_halt_poll_ns` = 0, as here), each one is a vCPU the host must schedule
//! back in. On one CPU a wake-up is a local context switch. The scheduler puts a woken task on
//! an idle CPU when there is one, so a single-threaded client and the daemon take turns across
//! CPUs. Measured on a fresh rvmfs mount (default options), the rows interleaved pass by pass:
//! - the floor (requests.rs: a getxattr of the virtual `rvmfs.counters`, median of 2,000):
//!   unpinned, both on CPU 0, daemon on CPU 0 and client on CPU 1;
//! - the untar of the stdlib tree, unpinned and with tar and the daemon on CPU 0, against
//!   ext4 (a directory of the disk) unpinned and with tar on CPU 0.
//!
//! Pinning is a diagnostic only: no other row pins anything.

use crate::datasum::Summary;
use crate::mounts::Rvmfs;
use crate::report::fmt_spread;
use crate::requests;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Round trips per floor sample.
const FLOOR_TRIPS: usize = 2000;

/// Where the client and the daemon may run.
#[derive(Serialize, Clone, Copy, PartialEq, Debug)]
pub enum Place {
    /// No affinity set: where the scheduler puts them.
    Free,
    /// Both on the first CPU.
    OneCpu,
    /// The daemon on the first CPU, the client on the second.
    TwoCpus,
}

impl Place {
    fn label(self) -> &'static str {
        match self {
            Place::Free => "unpinned (the scheduler's choice)",
            Place::OneCpu => "client and daemon on one CPU",
            Place::TwoCpus => "client and daemon on two CPUs",
        }
    }
    /// (daemon's CPU, client's CPU) among `cpus`; None for no affinity.
    fn cpus(self, cpus: &[usize]) -> (Option<usize>, Option<usize>) {
        match self {
            Place::Free => (None, None),
            Place::OneCpu => (Some(cpus[0]), Some(cpus[0])),
            Place::TwoCpus => (Some(cpus[0]), Some(cpus[1])),
        }
    }
}

/// The samples: floor in µs and untar in s, per placement.
#[derive(Serialize, Default)]
pub struct Placement {
    pub floor_us: Vec<(Place, Vec<f64>)>,
    pub untar_rvmfs_s: Vec<(Place, Vec<f64>)>,
    pub untar_ext4_s: Vec<(Place, Vec<f64>)>,
    /// `/sys/module/haltpoll/parameters/guest_halt_poll_ns`, if the guest has it.
    pub guest_halt_poll_ns: Option<String>,
}

fn push(v: &mut Vec<(Place, Vec<f64>)>, p: Place, x: f64) {
    match v.iter_mut().find(|(q, _)| *q == p) {
        Some((_, s)) => s.push(x),
        None => v.push((p, vec![x])),
    }
}

/// The CPUs this process may run on, in order.
fn allowed_cpus() -> Result<Vec<usize>> {
    // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity fills it for this thread.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) } != 0 {
        bail!("sched_getaffinity: {}", std::io::Error::last_os_error());
    }
    // SAFETY: CPU_ISSET reads the set filled above.
    Ok((0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// Let thread `tid` (0: the calling thread) run on `cpus` only.
fn set_affinity(tid: libc::pid_t, cpus: &[usize]) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET writes within it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: sched_setaffinity with a set of the right size.
    if unsafe { libc::sched_setaffinity(tid, std::mem::size_of_val(&set), &set) } != 0 {
        bail!(
            "sched_setaffinity({tid}): {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Every thread of process `pid` to `cpus`.
fn pin_process(pid: u32, cpus: &[usize]) -> Result<()> {
    for t in fs::read_dir(format!("/proc/{pid}/task"))? {
        let name = t?.file_name();
        let tid: libc::pid_t = name.to_string_lossy().parse().context("a task id")?;
        set_affinity(tid, cpus)?;
    }
    Ok(())
}

/// Run `f` on a new thread that may run on `cpu` only (any CPU of `all` if None); child
/// processes it starts inherit that affinity.
fn on_cpu<T: Send>(
    cpu: Option<usize>,
    all: &[usize],
    f: impl FnOnce() -> Result<T> + Send,
) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            set_affinity(0, &cpu.map_or(all.to_vec(), |c| vec![c]))?;
            f()
        })
        .join()
        .unwrap_or_else(|_| bail!("the pinned thread panicked"))
    })
}

/// `tar -xf tarball -C dir` into a fresh `dir`, seconds; `dir` removed afterwards. The page
/// cache is written back first, so no system's untar waits for the last one's dirty pages.
fn untar(dir: &Path, tarball: &Path) -> Result<f64> {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir)?;
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
    let t = Instant::now();
    let st = Command::new("tar")
        .arg("-xf")
        .arg(tarball)
        .arg("-C")
        .arg(dir)
        .status()?;
    let took = t.elapsed().as_secs_f64();
    if !st.success() {
        bail!("tar -xf into {} failed: {st}", dir.display());
    }
    fs::remove_dir_all(dir)?;
    Ok(took)
}

/// `reps` interleaved passes (the placements' order rotating) on a fresh image in `work`.
/// None (with the reason on stderr) on a machine with one CPU.
pub fn measure(bin: &Path, work: &Path, tarball: &Path, reps: usize) -> Result<Option<Placement>> {
    let cpus = allowed_cpus()?;
    if cpus.len() < 2 {
        eprintln!("  placement skipped: this process may run on one CPU only");
        return Ok(None);
    }
    let image = work.join("rvmfs-placement.img");
    let (mnt, log) = (
        work.join("mnt-rvmfs-placement"),
        work.join("rvmfs-placement.log"),
    );
    Rvmfs::mkfs(bin, &image, "4G", None)?;
    let (m, _) = Rvmfs::mount(bin, &image, &mnt, &log, None)?;
    let ext4: PathBuf = work.join("ext4-placement");
    let mut p = Placement {
        guest_halt_poll_ns: fs::read_to_string(
            "/sys/module/haltpoll/parameters/guest_halt_poll_ns",
        )
        .ok()
        .map(|s| s.trim().to_string()),
        ..Placement::default()
    };
    let places = [Place::Free, Place::OneCpu, Place::TwoCpus];
    let result = (|| -> Result<()> {
        for rep in 0..reps.max(1) {
            for k in 0..places.len() {
                let place = places[(k + rep) % places.len()];
                let (daemon, client) = place.cpus(&cpus);
                pin_process(m.pid(), &daemon.map_or(cpus.clone(), |c| vec![c]))?;
                let floor = on_cpu(client, &cpus, || requests::floor_us(&m.mnt, FLOOR_TRIPS))?;
                push(&mut p.floor_us, place, floor);
                eprintln!("  floor, {}: {floor:.1} µs", place.label());
                if place == Place::TwoCpus || !tarball.exists() {
                    continue;
                }
                let s = on_cpu(client, &cpus, || untar(&m.mnt.join("t"), tarball))?;
                push(&mut p.untar_rvmfs_s, place, s);
                let e = on_cpu(client, &cpus, || untar(&ext4, tarball))?;
                push(&mut p.untar_ext4_s, place, e);
                eprintln!("  untar, {}: rvmfs {s:.2} s, ext4 {e:.2} s", place.label());
            }
        }
        Ok(())
    })();
    let unmounted = m.unmount();
    result?;
    unmounted?;
    fs::remove_file(&image)?;
    Ok(Some(p))
}

fn median_of(v: &[(Place, Vec<f64>)], p: Place) -> Option<f64> {
    Summary::of(&v.iter().find(|(q, _)| *q == p)?.1).map(|s| s.median)
}

/// The markdown section.
pub fn markdown(s: &mut String, p: &Placement) {
    let _ = writeln!(s, "\n## FUSE round trips by CPU placement (rvmfs)\n");
    let _ = writeln!(
        s,
        "One fresh rvmfs mount (default options), the placements interleaved pass by pass; median \
         (min–max). Pinning is a diagnostic only: no other row of this run pins anything. The \
         guest's halt polling (`haltpoll.guest_halt_poll_ns`): {}.\n",
        p.guest_halt_poll_ns.as_deref().unwrap_or("not present")
    );
    let spread = |v: &[(Place, Vec<f64>)], q: Place| {
        fmt_spread(
            v.iter()
                .find(|(x, _)| *x == q)
                .and_then(|(_, s)| Summary::of(s)),
        )
    };
    let cols = [
        ("placement", false),
        ("round trip (µs)", true),
        ("untar rvmfs (s)", true),
        ("untar ext4 (s)", true),
        ("rvmfs/ext4 untar", true),
    ];
    let rows = [Place::Free, Place::OneCpu, Place::TwoCpus].map(|q| {
        let ratio = median_of(&p.untar_ext4_s, q)
            .zip(median_of(&p.untar_rvmfs_s, q))
            .map_or("–".into(), |(e, r)| format!("{:.2}x", e / r));
        vec![
            q.label().to_string(),
            spread(&p.floor_us, q),
            spread(&p.untar_rvmfs_s, q),
            spread(&p.untar_ext4_s, q),
            ratio,
        ]
    });
    crate::table::write(s, &cols, rows);
    let _ = writeln!(
        s,
        "\nA round trip wakes the daemon and then the client. On two CPUs each wake-up is an \
         interrupt to an idle CPU (in a VM whose idle vCPUs halt, one the host must schedule \
         back in); on one CPU it is a local context switch. The scheduler puts a woken task on \
         an idle CPU when there is one, so a single-threaded client such as tar and the daemon \
         mostly take turns across CPUs: the gap between the first two rows is the part of the \
         FUSE floor that placement, not the daemon, costs."
    );
}
