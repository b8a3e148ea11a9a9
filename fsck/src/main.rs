//! `fsck.rvmfs`: check and repair an rvmfs image, with e2fsck's options and exit codes.

use clap::Parser;
use fsck::check::{self, Fix, Report};
use fsck::pass::error_record::{self, Recorded};
use fsck::pass::{backup_sb, replay};
use fsck::repair;
use indicatif::{ProgressBar, ProgressStyle};
use rvmfs::image::ImageError;
use rvmfs::layout::superblock::field;
use rvmfs::layout::{inode, pod};
use rvmfs::ops::Fs;
use rvmfs::store;
use rvmfs::FsResult;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Exit codes (e2fsck's).
const EXIT_CLEAN: u8 = 0;
const EXIT_CORRECTED: u8 = 1;
const EXIT_UNCORRECTED: u8 = 4;
const EXIT_OPERATIONAL: u8 = 8;
const EXIT_USAGE: u8 = 16;

/// Check an rvmfs image and optionally repair it.
///
/// First replays the image's redo log (as mounting would), then checks the superblock, every
/// inode, the extent maps (blocks inside the data area, none owned twice, the free-space map
/// equal to the union of extents), every directory entry, connectivity from the root, link
/// counts, the recoverable heap and the orphan list. Each repair is an RVM transaction, so a
/// crash during fsck leaves a recoverable image. The image must not be mounted.
///
/// Without -n, -y or -p, fsck.rvmfs repairs what is safe, as with -p.
#[derive(Parser, Debug)]
#[command(name = "fsck.rvmfs", version, verbatim_doc_comment)]
#[command(after_long_help = include_str!("after_help.txt"))]
#[command(group(clap::ArgGroup::new("mode").args(["no", "yes", "preen"])))]
struct Args {
    /// Open read-only and answer "no" to every repair: report only, write nothing.
    #[arg(short = 'n')]
    no: bool,
    /// Answer "yes" to every repair (unreachable inodes go to /lost+found).
    #[arg(short = 'y')]
    yes: bool,
    /// Preen: repair what is safe without asking; stop with exit 4 on anything else.
    #[arg(short = 'p', short_alias = 'a')]
    preen: bool,
    /// Force checking even if the image seems clean (rvmfs always checks fully).
    #[arg(short = 'f')]
    force: bool,
    /// Scrub: after the checks, read every data block and verify its checksum; name the
    /// files whose data is damaged (exit 4). Images without data checksums are said so.
    #[arg(short = 'c')]
    scrub: bool,
    /// Verbose: print every check pass and totals.
    #[arg(short = 'v')]
    verbose: bool,
    /// Use the backup superblock (the region's last 4 KiB) instead of the primary, and
    /// write it over the primary (e2fsck's -b; there is one backup, so no block number).
    #[arg(short = 'b')]
    backup: bool,
    /// The image's external log device or file, if it is no longer where the image
    /// records it (xfs_repair -l; e2fsck's -j is accepted too).
    #[arg(
        short = 'l',
        long = "logdev",
        visible_short_alias = 'j',
        value_name = "LOGDEV"
    )]
    logdev: Option<PathBuf>,
    /// Object-store images (mkfs.rvmfs --data): an AWS shared-credentials file for the
    /// bucket (else the AWS_* environment), to list its data objects and report leaked ones
    /// (deleted only with -y, and never after a failed or incomplete listing).
    #[arg(long = "credentials", value_name = "PATH")]
    credentials: Option<PathBuf>,
    /// The image file or block device.
    image: PathBuf,
}

fn main() -> ExitCode {
    cli_docs::generate_if_asked::<Args>();
    // Die quietly on a closed pipe (`fsck.rvmfs -n img | head`), as C tools do.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() {
                EXIT_USAGE
            } else {
                EXIT_CLEAN
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    ExitCode::from(run(&args))
}

fn name(args: &Args) -> String {
    args.image.display().to_string()
}

fn run(args: &Args) -> u8 {
    let started = Instant::now();
    let (mut fs, recovered, sb) = match open(args) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let recorded = error_record::read(&*fs.geo.image);
    match &recorded {
        Recorded::None => {}
        Recorded::Error(line) | Recorded::Damaged(line) => println!("{}: {line}", name(args)),
    }
    let bar = progress_bar(args);
    let (report, mut corrected) = match check_and_repair(args, &mut fs, bar.as_ref()) {
        Ok(done) => done,
        Err(code) => return code,
    };
    corrected += sb.fixed;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if !args.no && (corrected > 0 || recovered > 0) {
        if let Err(e) = write_back(&mut fs) {
            eprintln!(
                "fsck.rvmfs: {}: writing the repairs failed: {e}",
                name(args)
            );
            return EXIT_OPERATIONAL;
        }
    }
    let record_left = !matches!(recorded, Recorded::None)
        && !clear_error_record(args, &fs, &report, &mut corrected);
    summary(args, &fs, &report, started);
    let damaged = if args.scrub { scrub(args, &fs) } else { 0 };
    let (deleted, objects_left) = sweep_objects(args, &fs);
    corrected += deleted;
    let left = usize::from(record_left) + sb.left + objects_left;
    match verdict(args, &report, corrected, left) {
        _ if damaged > 0 => EXIT_UNCORRECTED,
        code => code,
    }
}

/// After a clean check (nothing left to fix) and not with -n, clear the image's error record
/// (e2fsck clears `ERROR_FS`); counts as a repair. Returns whether it was cleared.
fn clear_error_record(args: &Args, fs: &Fs, report: &Report, corrected: &mut usize) -> bool {
    if args.no || !report.problems.is_empty() {
        println!("{}: the error record is left as it is", name(args));
        return false;
    }
    match error_record::clear(&*fs.geo.image) {
        Ok(()) => {
            println!("{}: error record cleared", name(args));
            *corrected += 1;
            true
        }
        Err(e) => {
            eprintln!(
                "fsck.rvmfs: {}: clearing the error record failed: {e}",
                name(args)
            );
            false
        }
    }
}

/// An `object_data` image: list the bucket's data objects and report the leaked ones,
/// deleting them with -y (`pass::objects`). Returns (objects deleted, problems left: leaked
/// objects not deleted, live objects missing). A bucket that cannot be reached or listed
/// is said so and changes nothing.
fn sweep_objects(args: &Args, fs: &Fs) -> (usize, usize) {
    use fsck::pass::objects;
    let Ok(sb) = rvmfs::store::superblock(fs.bytes()) else {
        return (0, 0);
    };
    if !sb
        .features
        .has_incompat(rvmfs::layout::features::INCOMPAT_OBJECT_DATA)
    {
        return (0, 0);
    }
    let access = rvmfs::remote::Access {
        url: sb.data_url(),
        credentials_file: args.credentials.clone(),
    };
    let swept = rvmfs::remote::live::objects_at(fs.bytes(), sb.object_shift)
        .map_err(|e| e.to_string())
        .and_then(|at| objects::sweep(&name(args), &access, &at.live, args.yes));
    match swept {
        Ok(o) => (o.deleted, o.leaked_left + o.missing),
        Err(e) => {
            println!(
                "{}: object store {}: {e}; leaked objects not checked",
                name(args),
                access.url
            );
            (0, 0)
        }
    }
}

/// Run the scrub (-c) with a progress bar; print what it found. Returns how many files have
/// damaged data.
fn scrub(args: &Args, fs: &Fs) -> usize {
    let bar = progress_bar(args);
    if let Some(bar) = &bar {
        bar.set_message("Scrub: data checksums");
    }
    let progress = |done: u64, total: u64| {
        if let Some(bar) = &bar {
            bar.set_length(total.max(1));
            bar.set_position(done);
        }
    };
    let found = fsck::pass::scrub::scrub(fs, &progress);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let s = match found {
        Ok(Some(s)) => s,
        Ok(None) => {
            println!(
                "{}: no data checksums on this image: nothing to scrub",
                name(args)
            );
            return 0;
        }
        Err(e) => {
            eprintln!("fsck.rvmfs: {}: scrub failed: {e}", name(args));
            return 1;
        }
    };
    let files = s.files();
    for (ino, path, n, first) in &files {
        println!(
            "{}: inode {ino} ({path}): {n} data blocks fail their checksum, first at file \
             offset {} (data block {})",
            name(args),
            first.offset,
            first.block
        );
    }
    println!(
        "{}: scrub: {} blocks of {} files verified, {} damaged files, {} files not checksummed \
         (written with -o nodatasum)",
        name(args),
        s.blocks,
        s.files,
        files.len(),
        s.unsummed
    );
    files.len()
}

/// Open the image and replay its log (see `fsck::pass::replay`); returns the filesystem and
/// how many transactions were replayed and what the superblock check against the backup did
/// (its findings printed), or the exit code after saying why it cannot be opened.
fn open(args: &Args) -> Result<(Fs, u64, backup_sb::Outcome), u8> {
    let replayed = match replay::replay(&args.image, args.no, args.logdev.as_deref(), args.backup) {
        Ok(replayed) => replayed,
        Err(e @ ImageError::Busy { .. }) => {
            eprintln!("fsck.rvmfs: {e}\nfsck.rvmfs: unmount it first; checking a mounted image is not safe.");
            return Err(EXIT_OPERATIONAL);
        }
        Err(e @ ImageError::Region { .. }) => {
            eprintln!("fsck.rvmfs: {e}");
            return Err(EXIT_UNCORRECTED);
        }
        Err(e) => {
            eprintln!("fsck.rvmfs: {e}");
            return Err(EXIT_OPERATIONAL);
        }
    };
    let recovered = replayed.recovered;
    if let Ok(fs) = &replayed.fs {
        let discarded = fs.rvm.stats().spool_records_discarded;
        if discarded > 0 {
            println!(
                "{}: the spool of a daemon that met a storage error held {discarded} \
                 transactions never made durable: not replayed (their data may be lost)",
                name(args)
            );
        }
    }
    if recovered > 0 {
        println!(
            "{}: recovering the log: {recovered} committed transactions replayed",
            name(args)
        );
    }
    for line in &replayed.superblock.messages {
        println!("{}: {line}", name(args));
    }
    match replayed.fs {
        Ok(fs) => Ok((fs, recovered, replayed.superblock)),
        Err(e) => {
            eprintln!("fsck.rvmfs: {}: {e}", name(args));
            Err(EXIT_UNCORRECTED)
        }
    }
}

/// Check, repair what the mode allows and check again, for at most 4 rounds of repairs.
/// Problems are printed from the first check, and again after a tree rebuild. Returns the last
/// report and how many repairs were made, or the exit code if the metadata cannot be read.
fn check_and_repair(
    args: &Args,
    fs: &mut Fs,
    bar: Option<&ProgressBar>,
) -> Result<(Report, usize), u8> {
    let progress = |stage: &str, done: u64, total: u64| {
        if let Some(bar) = bar {
            bar.set_message(stage.to_string());
            bar.set_length(total.max(1));
            bar.set_position(done);
        }
    };
    let mut corrected = 0usize;
    let mut round = 0;
    let mut after_rebuild = false;
    loop {
        let report = match check::check(fs.bytes(), &progress) {
            Ok(r) => r,
            Err(e) => {
                eprintln!(
                    "fsck.rvmfs: {}: the metadata cannot be read: {e}",
                    name(args)
                );
                return Err(EXIT_UNCORRECTED);
            }
        };
        if round == 0 || after_rebuild {
            print_problems(args, &report);
        }
        round += 1;
        let fixable = fixable(args, &report);
        if args.no || fixable.is_empty() || round > 4 {
            return Ok((report, corrected));
        }
        let (fixable, rebuilds) = rebuilds_first(fixable);
        after_rebuild = rebuilds;
        for fix in &fixable {
            match repair::apply(fs, fix) {
                Ok(()) => corrected += 1,
                Err(e) => eprintln!("fsck.rvmfs: repair {fix:?} failed: {e}"),
            }
        }
    }
}

/// The fixes of `report` this mode may apply (all with -y, the safe ones otherwise).
fn fixable(args: &Args, report: &Report) -> Vec<Fix> {
    report
        .problems
        .iter()
        .map(|p| p.fix.clone())
        .filter(|f| *f != Fix::None && (args.yes || f.is_safe()))
        .collect()
}

/// A rebuilt index or a new root directory changes what every other pass sees (entries in
/// inode 1 stand again): if any is to be made, only those are applied this round, then
/// everything is checked again. Returns the fixes to apply and whether they are rebuilds.
fn rebuilds_first(fixable: Vec<Fix>) -> (Vec<Fix>, bool) {
    let rebuilds: Vec<Fix> = fixable
        .iter()
        .filter(|f| matches!(f, Fix::RebuildTree(_) | Fix::RecreateRoot))
        .cloned()
        .collect();
    if rebuilds.is_empty() {
        (fixable, false)
    } else {
        (rebuilds, true)
    }
}

/// Stamp the superblock's last-check time and make the repairs durable: flush the log and
/// truncate it into the image.
fn write_back(fs: &mut Fs) -> FsResult<()> {
    let now = inode::now().0;
    fs.transact(|op| pod::put(&mut op.tx, field::LAST_CHECK, &now))?;
    fs.rvm.flush()?;
    fs.rvm.truncate()?;
    Ok(())
}

/// Print what is left and return the exit code: 4 if problems remain (with -n an orphan is
/// not counted: mounting frees it; `extra`: problems outside the report, an error record
/// left), 1 if repairs were made, 0 if the image was clean.
fn verdict(args: &Args, report: &Report, corrected: usize, extra: usize) -> u8 {
    let remaining = extra
        + report
            .problems
            .iter()
            .filter(|p| !(args.no && matches!(p.fix, Fix::ReclaimOrphan(_))))
            .count();
    if remaining > 0 {
        if args.preen {
            println!(
                "{}: UNEXPECTED INCONSISTENCY; RUN fsck.rvmfs MANUALLY (with -y).",
                name(args)
            );
        }
        println!("{}: {remaining} problems left uncorrected.", name(args));
        return EXIT_UNCORRECTED;
    }
    if corrected > 0 {
        println!(
            "{}: ***** FILE SYSTEM WAS MODIFIED ***** ({corrected} repairs)",
            name(args)
        );
        return EXIT_CORRECTED;
    }
    EXIT_CLEAN
}

fn progress_bar(args: &Args) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(1);
    let style = ProgressStyle::with_template("{msg:28} [{bar:40}] {percent:>3}%").ok()?;
    bar.set_style(style.progress_chars("=> "));
    let _ = args;
    Some(bar)
}

fn print_problems(args: &Args, report: &Report) {
    const SHOWN: usize = 200;
    for p in report.problems.iter().take(SHOWN) {
        let action = match (&p.fix, args.no) {
            (Fix::ReclaimOrphan(_), true) => "will be freed at mount or by fsck -p",
            (_, true) => "not fixed (-n)",
            (Fix::None, false) => "cannot be fixed automatically",
            (f, false) if !args.yes && !f.is_safe() => "not fixed (needs -y)",
            _ => "fixed",
        };
        println!("{}: {}: {action}", name(args), p.what);
    }
    if report.problems.len() > SHOWN {
        println!(
            "{}: ... and {} more problems",
            name(args),
            report.problems.len() - SHOWN
        );
    }
}

fn summary(args: &Args, fs: &Fs, r: &Report, started: Instant) {
    let Ok(sb) = store::superblock(fs.bytes()) else {
        return;
    };
    let files = r.files + r.dirs;
    let pct = if files > 0 {
        100.0 * r.fragmented as f64 / files as f64
    } else {
        0.0
    };
    println!(
        "{}: {files}/{} files ({pct:.1}% non-contiguous), {}/{} blocks",
        name(args),
        sb.inode_count,
        r.blocks_used,
        sb.data_blocks
    );
    if args.verbose {
        println!(
            "{:>10} regular and special files\n{:>10} directories\n{:>10} extents\n{:>10} orphans\n checked in {:.3} s",
            r.files,
            r.dirs,
            r.extents,
            r.orphans,
            started.elapsed().as_secs_f64()
        );
    }
}
