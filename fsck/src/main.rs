//! `fsck.rvmfs`: check and repair an rvmfs image, with e2fsck's options and exit codes.

use clap::Parser;
use fsck::check::{self, Fix, Report};
use fsck::repair;
use rvmfs::image::{self, ImageError, OpenMode};
use rvmfs::ops::Fs;
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
///
/// Exit status (as e2fsck): 0 no errors, 1 errors corrected, 4 errors left uncorrected,
/// 8 operational error, 16 usage error.
#[derive(Parser, Debug)]
#[command(name = "fsck.rvmfs", version, verbatim_doc_comment)]
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
    /// Verbose: print every check pass and totals.
    #[arg(short = 'v')]
    verbose: bool,
    /// The image file or block device.
    image: PathBuf,
}

fn main() -> ExitCode {
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
    let img = match image::open(
        &args.image,
        OpenMode {
            read_only: args.no,
            commit_interval: None,
        },
    ) {
        Ok(img) => img,
        Err(e @ ImageError::Busy { .. }) => {
            eprintln!("fsck.rvmfs: {e}\nfsck.rvmfs: unmount it first; checking a mounted image is not safe.");
            return EXIT_OPERATIONAL;
        }
        Err(e @ ImageError::Region { .. }) => {
            eprintln!("fsck.rvmfs: {e}");
            return EXIT_UNCORRECTED;
        }
        Err(e) => {
            eprintln!("fsck.rvmfs: {e}");
            return EXIT_OPERATIONAL;
        }
    };
    let recovered = img.rvm.stats().records_recovered;
    if recovered > 0 {
        println!(
            "{}: recovering the log: {recovered} committed transactions replayed",
            name(args)
        );
    }
    let mut fs = match Fs::new(img.region, img.rvm, img.header, img.storage) {
        Ok(fs) => fs,
        Err(e) => {
            eprintln!("fsck.rvmfs: {}: {e}", name(args));
            return EXIT_UNCORRECTED;
        }
    };
    let bar = progress_bar(args);
    let progress = |stage: &str, done: u64, total: u64| {
        if let Some(bar) = &bar {
            bar.set_message(stage.to_string());
            bar.set_length(total.max(1));
            bar.set_position(done);
        }
    };
    let mut corrected = 0usize;
    let mut report;
    let mut round = 0;
    let mut after_rebuild = false;
    loop {
        report = match check::check(fs.bytes(), &progress) {
            Ok(r) => r,
            Err(e) => {
                eprintln!(
                    "fsck.rvmfs: {}: the metadata cannot be read: {e}",
                    name(args)
                );
                return EXIT_UNCORRECTED;
            }
        };
        if round == 0 || after_rebuild {
            print_problems(args, &report);
        }
        round += 1;
        let fixable: Vec<Fix> = report
            .problems
            .iter()
            .map(|p| p.fix.clone())
            .filter(|f| *f != Fix::None && (args.yes || f.is_safe()))
            .collect();
        if args.no || fixable.is_empty() || round > 4 {
            break;
        }
        // A rebuilt index changes what every other pass sees: rebuild first, then check again.
        let rebuilds: Vec<Fix> = fixable
            .iter()
            .filter(|f| matches!(f, Fix::RebuildTree(_)))
            .cloned()
            .collect();
        after_rebuild = !rebuilds.is_empty();
        let fixable = if rebuilds.is_empty() {
            fixable
        } else {
            rebuilds
        };
        for fix in &fixable {
            match repair::apply(&mut fs, fix) {
                Ok(()) => corrected += 1,
                Err(e) => eprintln!("fsck.rvmfs: repair {fix:?} failed: {e}"),
            }
        }
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if !args.no && (corrected > 0 || recovered > 0) {
        let now = rvmfs::layout::inode::now().0;
        let stamp = fs.transact(|op| {
            rvmfs::layout::pod::put(
                &mut op.tx,
                rvmfs::layout::superblock::field::LAST_CHECK,
                &now,
            )
        });
        let durable = stamp
            .and_then(|_| fs.rvm.flush().map_err(Into::into))
            .and_then(|_| fs.rvm.truncate().map_err(Into::into));
        if let Err(e) = durable {
            eprintln!(
                "fsck.rvmfs: {}: writing the repairs failed: {e}",
                name(args)
            );
            return EXIT_OPERATIONAL;
        }
    }
    let remaining: Vec<_> = report
        .problems
        .iter()
        .filter(|p| !(args.no && matches!(p.fix, Fix::ReclaimOrphan(_))))
        .collect();
    summary(args, &fs, &report, started);
    if !remaining.is_empty() {
        if args.preen {
            println!(
                "{}: UNEXPECTED INCONSISTENCY; RUN fsck.rvmfs MANUALLY (with -y).",
                name(args)
            );
        }
        println!(
            "{}: {} problems left uncorrected.",
            name(args),
            remaining.len()
        );
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

fn progress_bar(args: &Args) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(1);
    let style =
        indicatif::ProgressStyle::with_template("{msg:28} [{bar:40}] {percent:>3}%").ok()?;
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
    let Ok(sb) = rvmfs::store::superblock(fs.bytes()) else {
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
