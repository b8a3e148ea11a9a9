//! Man pages and shell completions of the rvmfs tools, generated from their clap definitions
//! (clap_mangen, clap_complete), so that `--help`, the man page and the completions never
//! disagree. The idea is ripgrep's `rg --generate man`: every tool answers a hidden
//! `--generate KIND` by writing what packaging needs, and `scripts/install.sh` installs it.
//!
//! A tool opts in with one call, first thing in `main`:
//!
//! ```ignore
//! fn main() {
//!     cli_docs::generate_if_asked::<Args>();
//!     let args = Args::parse();
//!     ...
//! }
//! ```
//!
//! KIND is one of:
//! - `man`: the tool's man page (section 8, roff) on stdout; `man -l -` reads it.
//! - `man-pages=DIR`: the tool's page and one page per subcommand (`rvmfs-admin-dump.8`, as
//!   git and btrfs-progs do) written into DIR; their paths printed one a line.
//! - `complete-bash`, `complete-zsh`, `complete-fish`: the completion script on stdout.
//!
//! `--generate` is exclusive: required arguments and subcommands are not needed with it. It is
//! hidden from `--help`, the man pages and the completions.

mod man;
mod wrap;

use clap::{Arg, ArgMatches, Command, CommandFactory};
use clap_complete::Shell;
use std::io::Write;
use std::path::PathBuf;

pub use man::{render_page, write_pages, SECTION};

/// The option's name (`--generate`) and clap id.
const GENERATE: &str = "generate";

/// What `--generate` writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The command's man page, on stdout.
    Man,
    /// The command's page and its subcommands' pages, as files in this directory.
    ManPages(PathBuf),
    /// A completion script for this shell, on stdout.
    Complete(Shell),
}

impl Kind {
    /// Parse `man`, `man-pages=DIR`, `complete-bash`, `complete-zsh` or `complete-fish`.
    ///
    /// # Errors
    /// A message naming the accepted kinds for anything else.
    pub fn parse(s: &str) -> Result<Kind, String> {
        match s {
            "man" => Ok(Kind::Man),
            "complete-bash" => Ok(Kind::Complete(Shell::Bash)),
            "complete-zsh" => Ok(Kind::Complete(Shell::Zsh)),
            "complete-fish" => Ok(Kind::Complete(Shell::Fish)),
            _ => match s.strip_prefix("man-pages=") {
                Some(dir) if !dir.is_empty() => Ok(Kind::ManPages(PathBuf::from(dir))),
                _ => Err(format!(
                    "'{s}' is not one of man, man-pages=DIR, complete-bash, complete-zsh, complete-fish"
                )),
            },
        }
    }
}

/// `cmd` with the hidden, exclusive `--generate KIND` option, and nothing else required.
pub fn with_generate(cmd: Command) -> Command {
    cmd.mut_args(|a| a.required(false))
        .subcommand_required(false)
        .arg_required_else_help(false)
        // A subcommand with --generate is refused too (it would be ignored).
        .args_conflicts_with_subcommands(true)
        .arg(
            Arg::new(GENERATE)
                .long(GENERATE)
                .value_name("KIND")
                .value_parser(Kind::parse)
                .exclusive(true)
                .hide(true)
                .help("Write the man page or a shell completion script (for packaging)"),
        )
}

/// If the command line asks `--generate KIND`, write it (see the crate docs) and exit: 0 when
/// written, 1 when writing failed, 2 on a bad KIND (clap's usage error). Otherwise return at
/// once, without parsing anything, and the tool parses its arguments as usual.
pub fn generate_if_asked<T: CommandFactory>() {
    let asked = std::env::args_os()
        .skip(1)
        .any(|a| a.as_encoded_bytes().starts_with(b"--generate"));
    if !asked {
        return;
    }
    let cmd = T::command();
    let name = cmd.get_name().to_owned();
    let matches: ArgMatches = match with_generate(cmd.clone()).try_get_matches() {
        Ok(m) => m,
        Err(e) => e.exit(),
    };
    let Some(kind) = matches.get_one::<Kind>(GENERATE) else {
        return;
    };
    let mut out = std::io::stdout().lock();
    match generate(cmd, kind, &mut out).and_then(|()| out.flush()) {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("{name}: --generate: {e}");
            std::process::exit(1);
        }
    }
}

/// Write `kind` for `cmd` to `out` (for [`Kind::ManPages`]: the paths of the pages written).
///
/// # Errors
/// Writing to `out` or creating a page in the directory failed.
pub fn generate(mut cmd: Command, kind: &Kind, out: &mut dyn Write) -> std::io::Result<()> {
    match kind {
        Kind::Man => render_page(cmd, out),
        Kind::ManPages(dir) => {
            for path in write_pages(cmd, dir)? {
                writeln!(out, "{}", path.display())?;
            }
            Ok(())
        }
        Kind::Complete(shell) => {
            let name = cmd.get_name().to_owned();
            clap_complete::generate(*shell, &mut cmd, name, out);
            Ok(())
        }
    }
}
