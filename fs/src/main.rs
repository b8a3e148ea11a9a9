//! `rvmfs`: mount an rvmfs image through FUSE.

use anyhow::{bail, Context, Result};
use clap::Parser;
use rvm_core::FaultStorage;
use rvmfs::fuse::{lock, RvmFs};
use rvmfs::image::{self, OpenMode};
use rvmfs::layout::features::INCOMPAT_OBJECT_DATA;
use rvmfs::layout::{superblock::Superblock, superblock_backup};
use rvmfs::ops::mount::{on_mount, on_unmount_with};
use rvmfs::ops::{Discard, Durability, Fs};
use rvmfs::options::{self, parse_options, MountOptions};
use rvmfs::remote::Remote;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Mount an rvmfs image (a filesystem whose metadata lives in recoverable virtual memory).
///
/// The daemon replays the image's redo log, takes an exclusive lock on the image, and serves
/// it at MOUNTPOINT until `fusermount3 -u MOUNTPOINT`, SIGINT or SIGTERM, then unmounts
/// cleanly. Every answered request survives `kill -9` of the daemon; fsync/fdatasync/syncfs
/// (or `-o sync`) make changes survive a power loss too.
///
/// Default mount options, commit interval and error policy stored in the image
/// (`rvmfs-admin tune -o`, `-c`, `-e`) apply first; the command line's options win. The mount
/// shows as type fuse.rvmfs with the image as its source; `mount -t rvmfs` works through the
/// mount.rvmfs helper.
#[derive(Parser, Debug)]
#[command(name = "rvmfs", version, verbatim_doc_comment)]
#[command(after_long_help = include_str!("after_help.txt"))]
struct Args {
    /// Stay in the foreground (default: return once the filesystem is mounted)
    #[arg(short = 'f', long)]
    foreground: bool,
    /// Mount options, comma-separated:
    ///   sync            every operation durable on disk before it returns
    ///   commit=SECONDS  flush committed operations to disk at this interval (default 5, 0.5 on
    ///                   object-store images; 0 = only on fsync)
    ///   threads=N       FUSE worker threads (default 8)
    ///   noclone_fd      all worker threads share one /dev/fuse descriptor (default: each
    ///                   thread reads its own clone, which halves the round-trip cost of
    ///                   concurrent requests: cold sequential read 900 -> 1,240 MiB/s)
    ///   allow_other     let other users use the mount (default on when root mounts)
    ///   checked         rvm-core's checked mode: every commit compares the metadata region
    ///                   with a shadow copy and fails (EIO, logged) if a byte changed outside
    ///                   the ranges it declared (for testing; costs a compare per commit)
    ///   ro              read-only: refuse changes and write nothing to the image (the log is
    ///                   replayed into memory only; the image file may be read-only)
    ///   errors=POLICY   after a storage error (ext4's names): remount-ro (default: every
    ///                   change answers EIO, reads go on), continue (go on after a failed
    ///                   file data write; log and metadata errors always act as remount-ro),
    ///                   panic (log, record and abort the daemon at once)
    ///   logdev=PATH     the image's external log (mkfs.rvmfs -J device=) is at PATH, not
    ///                   where the image records it; its UUIDs must match the image's
    ///   inject_fault=OP:N[:enospc]  debugging and tests only: once mounted, the Nth (from 0)
    ///                   later call of OP (write, durable_write, sync, any) on the image
    ///                   fails with EIO (or ENOSPC), once
    ///   inject_stall=PATH  debugging and tests only: every log flush (sync, durable
    ///                   write) waits while the file PATH exists; PATH.held exists meanwhile;
    ///                   every plain write (file data, truncation) waits while PATH.data
    ///                   exists; PATH.data.held exists meanwhile
    ///   discard         give freed data blocks back to the host: punch holes in the image
    ///                   file once the frees are durable (default for an image file; a
    ///                   block device is never discarded)
    ///   nodiscard       keep freed blocks' host space (the image file only grows)
    ///   nodatasum       neither verify nor compute data checksums (files written become
    ///                   unchecksummed); datasum (default) keeps them
    ///   writeback       the kernel's writeback cache: write(2) returns once the data is in
    ///                   the kernel's page cache, which sends it merged at close, fsync or
    ///                   its own writeback (faster small writes). Promise after kill -9 of
    ///                   the daemon: every answered metadata request and every file closed
    ///                   or fsynced before the kill is intact (close-to-open); data written
    ///                   to a file not yet closed or fsynced may be lost. Not with sync;
    ///                   nowriteback (default) answers every write(2) itself
    ///   upload_interval=SECONDS  object-store images (mkfs.rvmfs --data): how often dirty
    ///                   blocks are packed and uploaded (default 0.5)
    ///   upload=sync     object-store images: fsync also waits until the file's data is in
    ///                   the bucket; upload=async (default) leaves it to the uploader
    ///   cache_size=SIZE  object-store images: the most free local blocks the clean cache
    ///                   of blocks read from the bucket keeps (512M, 4G; a plain number is
    ///                   MiB; 0: none). Default: every free local block (the allocator
    ///                   takes them back at once)
    ///   cache_full=enospc|block  object-store images: a write that finds every local block
    ///                   dirty (the bucket down or slow) answers ENOSPC at once (enospc,
    ///                   default) or waits for the uploader to free some (block), at most
    ///                   cache_wait=SECONDS (default 60), then answers ENOSPC
    ///   snapshot_interval=SECONDS  object-store images: how often the log shipper puts
    ///                   a snapshot of the metadata region in the bucket (default 600)
    ///   keep_snapshots=N  object-store images: complete snapshots kept (default 2):
    ///                   restore reaches back to the oldest; data objects only they need
    ///                   are deleted once they go
    ///   credentials=PATH  object-store images: an AWS shared-credentials file (profile
    ///                   AWS_PROFILE, else default) instead of the AWS_* environment
    ///   takeover        object-store images: take the bucket's lease even while another
    ///                   writer holds it (after rvmfs-admin restore on another machine);
    ///                   the old writer commits nothing more once it sees the new lease
    ///   inject_crash=after_upload  tests only: die right after the first data object is
    ///                   uploaded, before the commit that points at it (a leaked object)
    #[arg(short = 'o', value_name = "OPTION[,OPTION...]", verbatim_doc_comment)]
    options: Vec<String>,
    /// The image file or block device (made by mkfs.rvmfs)
    image: PathBuf,
    /// Where to mount it (an existing directory)
    mountpoint: PathBuf,
}

/// Keep the daemon's heap from holding on to the memory of its bursts (a truncation gathers
/// 4 MiB of ranges): glibc raises its mmap threshold after such a block is freed, and later
/// ones then come from the thread's arena, which keeps them resident. A fixed mmap threshold
/// makes every block of 2 MiB or more its own mapping, returned at free; the 1 MiB buffers
/// of reads and writes stay in the arenas, and a 4 MiB trim threshold keeps the arenas from
/// returning (and then faulting in again) their memory after every request. Measured: a
/// 128 KiB mmap threshold cost 25% of sequential write speed, the default trim threshold
/// that comes with a fixed mmap threshold 20% of cold reads.
fn bound_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 2 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 4 << 20);
    }
}

fn main() {
    cli_docs::generate_if_asked::<Args>();
    bound_heap();
    let args = Args::parse();
    rvmfs::fuse::logging::init(&args.image, "warn,fuser::session=error");
    if let Err(e) = run(args) {
        eprintln!("rvmfs: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    let opts = parse_options(&args.options).map_err(anyhow::Error::msg)?;
    if !args.mountpoint.is_dir() {
        bail!(
            "mount point {} is not a directory",
            args.mountpoint.display()
        );
    }
    if !args.image.exists() {
        bail!("image {} does not exist", args.image.display());
    }
    if args.foreground {
        return serve(&args, &opts, None);
    }
    // Daemonize before any thread exists: the child mounts and serves; the parent waits until
    // the child reports the mount ready (or its error) over a pipe, then exits with that status.
    let mut fds = [0; 2];
    // SAFETY: pipe writes two descriptors into the array.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        bail!("pipe: {}", std::io::Error::last_os_error());
    }
    // SAFETY: the descriptors were just created and are owned here only.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: single-threaded here; the child continues with its own copy of the process.
    match unsafe { libc::fork() } {
        -1 => bail!("fork: {}", std::io::Error::last_os_error()),
        0 => {
            drop(read_end);
            // SAFETY: setsid detaches from the terminal's session; no memory involved.
            unsafe { libc::setsid() };
            let mut ready = std::fs::File::from(write_end);
            let result = serve(&args, &opts, Some(&mut ready));
            if let Err(e) = &result {
                let _ = write!(ready, "{e:#}");
            }
            std::process::exit(i32::from(result.is_err()));
        }
        _child => {
            drop(write_end);
            let mut message = String::new();
            std::fs::File::from(read_end).read_to_string(&mut message)?;
            match message.strip_prefix("ready") {
                Some(_) => Ok(()),
                None if message.is_empty() => bail!("the daemon died before the mount was ready"),
                None => bail!("{message}"),
            }
        }
    }
}

/// Open the image, mount, and serve until unmounted. `ready` (daemon mode) gets "ready" once
/// the mount is up, and is then closed so the parent exits.
fn serve(args: &Args, opts: &MountOptions, ready: Option<&mut std::fs::File>) -> Result<()> {
    // Block SIGINT/SIGTERM in every thread; one thread waits for them and unmounts.
    // SAFETY: plain signal-mask calls on a local sigset_t.
    let mut signals: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigemptyset(&mut signals);
        libc::sigaddset(&mut signals, libc::SIGINT);
        libc::sigaddset(&mut signals, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &signals, std::ptr::null_mut());
    }
    let (fs, read_only, opts, remote) = open_fs(args, opts)?;
    let opts = &opts;
    let state = Arc::new(RwLock::new(fs));
    let config = fuse_config(args, opts, read_only)?;
    let fsname = std::fs::canonicalize(&args.image)?.display().to_string();
    let mounted = rvmfs::fuse::mount::mount(
        RvmFs::new(state.clone())
            .with_writeback(opts.writeback && !read_only)
            .with_remote(remote.clone()),
        &args.mountpoint,
        &config,
        &fsname,
        read_only,
    )
    .map_err(rvmfs::fuse::rootless::explain_mount_error)
    .with_context(|| format!("mounting on {}", args.mountpoint.display()));
    let (session, mut unmounter) = match mounted {
        Ok(m) => m,
        Err(e) => {
            if let Some(r) = &remote {
                r.close();
            }
            return Err(e);
        }
    };
    if let Some(r) = &remote {
        r.start_uploader(state.clone(), opts.upload_interval)?;
        r.start_shipper(&lock(&state), &args.image)
            .context("starting the log shipper")?;
    }
    std::thread::spawn(move || {
        let mut sig = 0;
        // SAFETY: sigwait on the blocked set; writes the signal number into `sig`.
        if unsafe { libc::sigwait(&signals, &mut sig) } == 0 {
            log::info!("signal {sig}: unmounting");
            unmount_retrying_busy(sig, || unmounter.unmount());
        }
    });
    if !read_only {
        raise_readahead(args.mountpoint.clone());
    }
    if let Some(ready) = ready {
        notify_ready(ready)?;
    }
    let served = session.run().context("serving FUSE requests");
    // The one place the clean-unmount housekeeping runs (not in the session's `destroy` too),
    // whether or not serving ended with an error; never on a read-only mount.
    if !read_only {
        if let Some(r) = &remote {
            r.finish(); // upload what is dirty, stop the uploader
        }
        let mut fs = lock(&state);
        // The clean cache's blocks give their host space back (`-o discard`).
        let punched = rvmfs::ops::cache_space::give_back(&mut fs);
        if punched > 0 {
            log::info!("clean cache: {punched} blocks given back to the host");
        }
        // The log shipper ships the last records, then truncation applies them.
        let unmounted = on_unmount_with(&mut fs, || remote.iter().for_each(|r| r.stop_shipper()))
            .context("clean unmount failed (the log will be replayed at next mount)");
        drop(fs);
        if let Some(r) = &remote {
            r.close(); // release the lease
        }
        unmounted?;
        log::info!("clean unmount: image marked clean, log applied");
    }
    served
}

/// An `object_data` image's remote parts (else None): probe, lease, reads (`rvmfs::remote`).
fn attach_remote(
    args: &Args,
    fs: &mut Fs,
    opts: &MountOptions,
    read_only: bool,
) -> Result<Option<Arc<Remote>>> {
    let remote = Remote::attach(
        fs,
        opts.credentials.clone(),
        read_only,
        opts.cache_size,
        opts.takeover,
    )
    .with_context(|| format!("{}: its object store", args.image.display()))?;
    Ok(remote.map(|mut r| {
        r.upload_sync = opts.upload_sync;
        r.crash_after_upload = opts.crash_after_upload;
        r.cache_full = opts.cache_full;
        r.snapshots = (opts.snapshot_interval, opts.keep_snapshots);
        Arc::new(r)
    }))
}

/// Open, recover and set up the filesystem for `serve` (mount options, error policy, discard,
/// the orphans a crash left); returns it and whether it is mounted read-only.
/// Returns also the options in force: the superblock's stored defaults (`rvmfs-admin tune`),
/// overridden by the command line's.
fn open_fs(args: &Args, cli: &MountOptions) -> Result<Opened> {
    let started = std::time::Instant::now();
    // A read-only mount writes nothing (ext4's `-o ro,norecovery`, but the log's effects stay
    // visible): the image is opened O_RDONLY and its log replayed into memory only.
    let (img, read_only, fault) = open_image(args, cli, options::commit_interval(cli))?;
    // A hostile image: refuse a superblock that fails its checks (layout, magic; fsck opens it
    // anyway and takes the backup superblock if it has one).
    let primary: Superblock = rvmfs::layout::pod::get(img.region.bytes(), 0)?;
    if let Some(e) = superblock_backup::primary_fault(img.region.bytes(), &img.header, &primary) {
        bail!("{}: {e} (run fsck.rvmfs)", args.image.display());
    }
    let opts = with_stored_defaults(args, &img)?;
    let object_data = img.header.features.has_incompat(INCOMPAT_OBJECT_DATA);
    let interval = options::commit_interval_on(&opts, object_data);
    if interval != options::commit_interval(cli) {
        let tunables = img.rvm.query_options();
        img.rvm.set_options(rvm_core::Tunables {
            commit_interval: interval,
            ..tunables
        })?;
    }
    if opts.checked {
        let tunables = img.rvm.query_options();
        img.rvm.set_options(rvm_core::Tunables {
            checked: true,
            ..tunables
        })?;
        log::info!("checked mode on");
    }
    let mut fs = Fs::new(img.region, img.rvm, img.header, img.storage)?;
    // A big heap's faults map one page each, not a large folio (`ops::heap_advice`).
    fs.advise_heap();
    if opts.sync {
        fs.durability = Durability::Sync;
    }
    fs.geo.nodatasum = opts.nodatasum;
    if fs.geo.csums.is_none() {
        log::info!("the image has no data checksums");
    }
    fs.errors.policy = opts.errors;
    fs.errors.source = args.image.display().to_string();
    if !read_only {
        // A hostile image: a data bitmap that calls owned blocks free must not hand them out.
        fs.guard_data_bitmap();
    }
    if let Some(r) = &fs.errors.record {
        log::warn!(
            "{}: the filesystem had errors ({} since {}, the first: {} on inode {}: {}); \
             running fsck.rvmfs is recommended",
            fs.errors.source,
            r.count,
            rvmfs::layout::error_record::utc(r.first_time),
            r.op,
            r.inode,
            r.message
        );
    }
    let is_file = std::fs::metadata(&args.image).is_ok_and(|m| m.is_file());
    if opts.discard && is_file && !read_only {
        let floor = fs.rvm.durable_lsn();
        fs.discard = Discard::open(&args.image, fs.header.data_offset, floor)
            .with_context(|| format!("opening {} for discard", args.image.display()))?;
    }
    let remote = attach_remote(args, &mut fs, &opts, read_only)?;
    if !read_only {
        let reclaimed = on_mount(&mut fs)?;
        if reclaimed > 0 {
            log::warn!("freed {reclaimed} orphaned inodes left by a crash");
        }
    }
    if let (Some(f), Some((op, n, errno))) = (&fault, opts.fault) {
        log::warn!("inject_fault: call {n} of {op:?} from now on fails with errno {errno}");
        f.fail_after(op, n, errno, false);
    }
    log::info!("image opened and recovered in {:?}", started.elapsed());
    Ok((fs, read_only, opts, remote))
}

/// What `open_fs` returns: the filesystem, whether read-only, the options in force, an
/// `object_data` image's remote parts.
type Opened = (Fs, bool, MountOptions, Option<Arc<Remote>>);

/// The options in force: the image's stored defaults (superblock), then the command line's.
/// Stored defaults this build does not understand are ignored with a warning.
fn with_stored_defaults(args: &Args, img: &image::Image) -> Result<MountOptions> {
    let sb = rvmfs::store::superblock(img.region.bytes())?;
    let mut list = options::stored(&sb);
    if !list.is_empty() {
        log::info!(
            "{}: stored default mount options: {}",
            args.image.display(),
            list.join(",")
        );
    }
    list.extend(args.options.iter().cloned());
    options::parse_options(&list).or_else(|e| {
        log::warn!(
            "{}: ignoring the stored default mount options ({e})",
            args.image.display()
        );
        parse_options(&args.options).map_err(anyhow::Error::msg)
    })
}

/// The FUSE session's configuration: mount options (source, subtype, permissions, ro),
/// worker threads, cloned descriptors, who may use the mount.
fn fuse_config(args: &Args, opts: &MountOptions, read_only: bool) -> Result<fuser::Config> {
    let mut mount_options = vec![
        fuser::MountOption::FSName(std::fs::canonicalize(&args.image)?.display().to_string()),
        fuser::MountOption::Subtype(rvmfs::fuse::mount::SUBTYPE.into()),
        fuser::MountOption::DefaultPermissions,
    ];
    if read_only {
        mount_options.push(fuser::MountOption::RO);
    }
    let mut config = fuser::Config::default();
    config.mount_options = mount_options;
    config.n_threads = Some(opts.threads);
    config.clone_fd = opts.clone_fd;
    if opts.allow_other {
        config.acl = fuser::SessionACL::All;
    }
    Ok(config)
}

/// Daemon mode: tell the waiting parent the mount is up, then close our copies of the pipe
/// and of stdin/stdout (the parent reads until end of file).
fn notify_ready(ready: &mut std::fs::File) -> Result<()> {
    ready.write_all(b"ready")?;
    // The parent reads until end of file: close our copy by redirecting to /dev/null.
    let null = std::fs::File::open("/dev/null")?;
    // SAFETY: dup2 over descriptors we own.
    unsafe {
        use std::os::fd::AsRawFd;
        libc::dup2(null.as_raw_fd(), ready.as_raw_fd());
        libc::dup2(null.as_raw_fd(), 0);
        libc::dup2(null.as_raw_fd(), 1);
    }
    Ok(())
}

/// Open (and recover) the image for `serve`: with `-o inject_fault=`, its storage wrapped in a
/// [`FaultStorage`] (returned, so the fault is armed once mounting is done). An unknown
/// ro-compat feature makes a writable open fail: the image is then opened read-only (returned
/// flag), as ext4 does.
fn open_image(
    args: &Args,
    opts: &MountOptions,
    commit: Option<Duration>,
) -> Result<(
    image::Image,
    bool,
    Option<Arc<FaultStorage<dyn rvm_core::Storage>>>,
)> {
    let mut fault = None;
    let mut open = |read_only| {
        let mode = OpenMode {
            read_only,
            commit_interval: commit,
            logdev: opts.logdev.clone(),
            ship: true,
        };
        image::open_with(&args.image, mode, |storage| {
            let storage: Arc<dyn rvm_core::Storage> = match &opts.stall {
                Some(gate) => Arc::new(image::stall::StallStorage::new(storage, gate.clone())),
                None => storage,
            };
            match opts.fault {
                Some(_) => {
                    let f = Arc::new(FaultStorage::new(storage));
                    fault = Some(f.clone());
                    f
                }
                None => storage,
            }
        })
    };
    // An unknown ro-compat feature: this build may read the image but not change it.
    let (img, read_only) = match open(opts.read_only) {
        Err(e @ image::ImageError::ReadOnlyFeatures { .. }) if !opts.read_only => {
            log::warn!("{e}; mounting read-only");
            (open(true)?, true)
        }
        opened => (opened?, opts.read_only),
    };
    Ok((img, read_only, fault))
}

/// Unmount after a signal. The kernel answers EBUSY while a request or an open path of the
/// mount is still in flight (seen right after a test's last file operation), so try again for
/// up to 5 s, as `umount` users would by hand, before giving up with the error logged.
fn unmount_retrying_busy(sig: i32, mut unmount: impl FnMut() -> std::io::Result<()>) {
    let mut delay = Duration::from_millis(10);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match unmount() {
            Ok(()) => return,
            Err(e)
                if e.raw_os_error() == Some(libc::EBUSY)
                    && std::time::Instant::now() < deadline =>
            {
                log::debug!("unmount after signal {sig}: busy, retrying in {delay:?}");
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(500));
            }
            Err(e) => {
                log::error!("unmount after signal {sig} failed: {e}");
                return;
            }
        }
    }
}

/// Readahead of the mount in KiB. FUSE takes its readahead from the kernel's default for a
/// new backing device (128 KiB); reads then reach the daemon in 128 KiB requests. With 1 MiB
/// (and max_write 1 MiB, so the kernel allows 1 MiB requests) a sequential read costs an
/// eighth of the round trips.
const READAHEAD_KB: u32 = 1024;

/// Raise the mount's readahead through sysfs (`/sys/class/bdi/MAJ:MIN/read_ahead_kb`), as an
/// administrator would; needs root, best effort. Runs in a thread: the stat of the mount
/// point is answered by the session, which starts serving after this returns.
fn raise_readahead(mountpoint: PathBuf) {
    std::thread::spawn(move || {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = std::fs::metadata(&mountpoint) else {
            return;
        };
        let dev = meta.dev();
        let (major, minor) = (libc::major(dev), libc::minor(dev));
        let path = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
        if let Err(e) = std::fs::write(&path, READAHEAD_KB.to_string()) {
            log::debug!("cannot raise readahead ({path}): {e}");
        }
    });
}
