//! Man pages and shell completions, as `scripts/install.sh` generates them with each tool's
//! hidden `--generate KIND` (crate cli-docs): every page is named and titled for the
//! installed name in section 8, formats without a warning (`groff -ww -z`), reads as a man
//! page through `man -l` (NAME, SYNOPSIS, DESCRIPTION, OPTIONS, EXIT STATUS, EXAMPLES, SEE
//! ALSO) and names every option `--help` lists; bash completion of each tool offers its
//! options (`mkfs.rvmfs --si<TAB>` gives `--size`); zsh and fish scripts are written.

use rvmfs_tests::*;
use std::collections::BTreeSet;
use std::path::Path;

/// One line a tool: the name cargo builds, the name it is installed as (scripts/install.sh).
#[rustfmt::skip]
const TOOLS: &[(&str, &str)] = &[
    (RVMFS, "rvmfs"),
    (MKFS, "mkfs.rvmfs"),
    (FSCK, "fsck.rvmfs"),
    (ADMIN, "rvmfs-admin"),
];

const SECTIONS: &[&str] = &[
    "NAME",
    "SYNOPSIS",
    "DESCRIPTION",
    "OPTIONS",
    "EXIT STATUS",
    "EXAMPLES",
    "SEE ALSO",
];

fn generate(built: &str, kind: &str) -> String {
    run(&mut cmd(bin(built), &["--generate", kind]))
        .ok(&format!("{built} --generate {kind}"))
        .stdout
}

/// The options `TOOL --help` lists.
fn help_options(built: &str) -> BTreeSet<String> {
    listed_options(&run(&mut cmd(bin(built), &["--help"])).ok("--help").stdout)
}

/// The options a help text or a rendered page lists: `-x` and `--long` in the head of a line
/// that starts with an option (up to its description, after two spaces).
fn listed_options(text: &str) -> BTreeSet<String> {
    let mut options = BTreeSet::new();
    for line in text.lines().map(str::trim_start) {
        if !line.starts_with('-') {
            continue;
        }
        let head = line.split("  ").next().unwrap_or_default();
        for word in head.split([',', ' ']) {
            if word.starts_with('-') && word.len() > 1 {
                options.insert(
                    word.split(['=', '[', '<'])
                        .next()
                        .unwrap_or(word)
                        .to_string(),
                );
            }
        }
    }
    options
}

/// The page as `man -l` shows it, plain text in 80 columns.
fn render(page: &Path) -> String {
    let out = run(cmd("man", &["-l"])
        .arg(page)
        .env("LC_ALL", "C")
        .env("MANWIDTH", "80")
        .env("MAN_KEEP_FORMATTING", ""))
    .ok("man -l");
    out.stdout
}

#[test]
fn every_tool_has_a_man_page_in_section_8_naming_all_its_options() {
    let has_man = which("man").is_some() && which("groff").is_some();
    if !has_man {
        assert!(!in_ci(), "CI=true but man or groff is not installed");
        eprintln!("SKIPPED rendering: man or groff is not installed (apt-get install man-db)");
    }
    let dir = tempfile::tempdir().unwrap();
    for &(built, name) in TOOLS {
        let arg = format!("man-pages={}", dir.path().display());
        let listed = generate(built, &arg);
        let page = dir.path().join(format!("{name}.8"));
        assert_eq!(
            listed.lines().next(),
            Some(page.to_str().unwrap()),
            "{built}"
        );
        let source = std::fs::read_to_string(&page).unwrap();
        let title = source.lines().find(|l| l.starts_with(".TH "));
        assert!(
            title.is_some_and(|t| t.starts_with(&format!(".TH {name} 8 "))),
            "{name}: {title:?}"
        );
        assert_eq!(generate(built, "man"), source, "{name}: --generate man");
        if !has_man {
            continue;
        }
        for listed in listed.lines() {
            let groff = run(cmd("groff", &["-man", "-Tutf8", "-ww", "-z"]).arg(listed));
            let groff = groff.ok("groff");
            assert!(
                groff.stderr.is_empty(),
                "{listed}: groff warns: {}",
                groff.stderr
            );
        }
        let text = render(&page);
        for section in SECTIONS {
            assert!(
                text.lines().any(|l| l == *section),
                "{name}(8) has no {section} section:\n{text}"
            );
        }
        let options = help_options(built);
        assert!(
            options.contains("--help") && options.len() > 3,
            "{name}: {options:?}"
        );
        let on_page = listed_options(&text);
        for option in options {
            assert!(
                on_page.contains(&option),
                "{name}(8) does not name {option} of --help:\n{text}"
            );
        }
    }
}

/// What bash completion offers for `WORDS...` (the last word being completed), with the
/// tool's script loaded as bash-completion would load it.
fn bash_complete(built: &str, name: &str, words: &[&str]) -> Vec<String> {
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(script.path(), generate(built, "complete-bash")).unwrap();
    let line = words.join(" ");
    let program = format!(
        "source '{}'\n\
         func=$(complete -p {name} | sed -n 's/.*-F \\([^ ]*\\).*/\\1/p')\n\
         COMP_WORDS=({name} {line}); COMP_CWORD={}; COMP_LINE='{name} {line}'\n\
         \"$func\" {name} '{}' '{}'\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.path().display(),
        words.len(),
        words.last().unwrap(),
        words.len().checked_sub(2).map_or(name, |i| words[i]),
    );
    let out = run(&mut cmd("bash", &["-c", &program])).ok("bash completion");
    out.stdout.lines().map(str::to_string).collect()
}

#[test]
fn bash_completion_offers_each_tools_options() {
    assert_eq!(bash_complete(MKFS, "mkfs.rvmfs", &["--si"]), ["--size"]);
    for &(built, name) in TOOLS {
        let offered: BTreeSet<String> = bash_complete(built, name, &["-"]).into_iter().collect();
        for option in help_options(built) {
            assert!(
                offered.contains(&option),
                "{name} -<TAB> lacks {option}: {offered:?}"
            );
        }
        assert!(
            !offered.contains("--generate"),
            "{name}: --generate is hidden"
        );
    }
}

#[test]
fn zsh_and_fish_completions_name_the_tool_and_its_options() {
    for &(built, name) in TOOLS {
        let zsh = generate(built, "complete-zsh");
        assert!(
            zsh.starts_with(&format!("#compdef {name}")),
            "{name}: {zsh:.60}"
        );
        let fish = generate(built, "complete-fish");
        assert!(
            fish.contains(&format!("complete -c {name} ")),
            "{name}: {fish:.60}"
        );
        for option in help_options(built).iter().filter(|o| o.starts_with("--")) {
            assert!(zsh.contains(option.as_str()), "{name} zsh lacks {option}");
            assert!(
                fish.contains(&format!("-l {}", &option[2..])),
                "{name} fish lacks {option}"
            );
        }
    }
}

#[test]
fn a_bad_kind_is_a_usage_error_naming_the_kinds() {
    let out = run(&mut cmd(bin(MKFS), &["--generate", "pdf"]));
    assert_eq!(out.code(), 2, "{}", out.output());
    assert!(out.stderr.contains("complete-bash"), "{}", out.stderr);
    // --generate takes nothing else (and needs none of the tool's required arguments).
    let out = run(&mut cmd(bin(FSCK), &["--generate", "man", "-n"]));
    assert_eq!(out.code(), 2, "{}", out.output());
}
