//! A tool with subcommands (the shape of rvmfs-admin): one page for the tool and one per
//! subcommand, named `tool-sub.8`, no page for clap's `help`; `--generate` needs neither the
//! subcommand nor the required arguments.

use clap::{Arg, Command};
use cli_docs::{with_generate, Kind};

fn admin() -> Command {
    Command::new("rvmfs-admin")
        .version("1.0")
        .about("Administer rvmfs images")
        .subcommand_required(true)
        .after_long_help("Exit status:\n  0  success\n\nSee also:\n  rvmfs(8)\n")
        .subcommand(
            Command::new("dump")
                .about("Print an image's header and counters")
                .arg(Arg::new("image").required(true)),
        )
        .subcommand(Command::new("tune").about("Change an image's label"))
}

#[test]
fn a_page_per_subcommand_and_none_for_help() {
    let dir = tempfile::tempdir().unwrap();
    let written = cli_docs::write_pages(admin(), dir.path()).unwrap();
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["rvmfs-admin.8", "rvmfs-admin-dump.8", "rvmfs-admin-tune.8"]
    );
    let top = std::fs::read_to_string(&written[0]).unwrap();
    assert!(top.contains(".SH SUBCOMMANDS"), "{top}");
    assert!(top.contains(".SH \"EXIT STATUS\""), "{top}");
    let dump = std::fs::read_to_string(&written[1]).unwrap();
    assert!(dump.contains(".TH rvmfs-admin-dump 8 "), "{dump}");
    assert!(
        dump.contains("rvmfs\\-admin dump"),
        "synopsis names the command: {dump}"
    );
}

#[test]
fn generate_needs_no_subcommand_and_takes_nothing_else() {
    let m = with_generate(admin())
        .try_get_matches_from(["rvmfs-admin", "--generate", "complete-bash"])
        .unwrap();
    assert!(matches!(
        m.get_one::<Kind>("generate"),
        Some(Kind::Complete(_))
    ));
    let both = with_generate(admin()).try_get_matches_from([
        "rvmfs-admin",
        "--generate",
        "man",
        "dump",
        "x",
    ]);
    assert!(
        both.is_err(),
        "--generate with a subcommand is a usage error"
    );
    assert!(Kind::parse("man-pages=").is_err());
}
