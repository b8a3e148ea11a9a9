//! Man pages: clap_mangen renders NAME, SYNOPSIS, DESCRIPTION, OPTIONS and SUBCOMMANDS from
//! the clap definition; the sections a man page has beyond those (EXIT STATUS, EXAMPLES, SEE
//! ALSO, ...) come from the command's `after_long_help`, the text `--help` ends with, where
//! each starts with an unindented `Heading:` line.

use clap::Command;
use clap_mangen::Man;
use roff::{roman, Roff};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The manual section of every rvmfs page: system administration, as e2fsprogs' mke2fs(8),
/// e2fsck(8) and debugfs(8).
pub const SECTION: &str = "8";

/// Render the man page of `cmd` (the top command, or a subcommand of a built one) to `out`.
///
/// # Errors
/// Writing to `out` failed.
pub fn render_page(cmd: Command, out: &mut dyn Write) -> std::io::Result<()> {
    let mut page = Vec::new();
    render_sections(cmd, &mut page)?;
    // Each part clap_mangen renders starts with the same preamble (the `Aq` string): keep one.
    let mut seen = Vec::new();
    for line in String::from_utf8_lossy(&page).lines() {
        let preamble = line.starts_with(".ie \\n(.g .ds Aq") || line.starts_with(".el .ds Aq");
        if preamble && seen.contains(&line) {
            continue;
        }
        if preamble {
            seen.push(line);
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// The sections of the page of `cmd`, each part as clap_mangen renders it.
fn render_sections(cmd: Command, out: &mut dyn Write) -> std::io::Result<()> {
    let cmd = crate::wrap::narrow(cmd.disable_help_subcommand(true));
    let extra = cmd
        .get_after_long_help()
        .or_else(|| cmd.get_after_help())
        .map(|s| s.to_string());
    let has_subcommands = cmd.get_subcommands().any(|s| !s.is_hide_set());
    let man = Man::new(cmd).section(SECTION);
    man.render_title(out)?;
    // Option names are never hyphenated across lines, and text is not stretched to the margin.
    let mut plain = Roff::new();
    plain.control("nh", []).control("ad", ["l"]);
    plain.to_writer(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    if has_subcommands {
        man.render_subcommands_section(out)?;
    }
    if let Some(text) = extra {
        extra_sections(&text).to_writer(out)?;
    }
    Ok(())
}

/// Write the page of `cmd` and of each of its subcommands, recursively, into `dir` as
/// `NAME.8` (a subcommand's NAME is `tool-sub`); returns their paths, the command's first.
///
/// # Errors
/// Creating or writing a file in `dir` failed.
pub fn write_pages(cmd: Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    write_tree(&cmd, dir, &mut written)?;
    Ok(written)
}

fn write_tree(cmd: &Command, dir: &Path, written: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let name = cmd.get_display_name().unwrap_or_else(|| cmd.get_name());
    let path = dir.join(format!("{name}.{SECTION}"));
    let mut file = BufWriter::new(std::fs::File::create(&path)?);
    render_page(cmd.clone(), &mut file)?;
    file.flush()?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_tree(sub, dir, written)?;
    }
    Ok(())
}

/// The `Heading:` sections of an after-help text as man sections (`.SH EXIT STATUS`), each
/// body kept as laid out (no-fill), less the two spaces of indentation `--help` shows.
fn extra_sections(text: &str) -> Roff {
    let mut roff = Roff::new();
    for (heading, body) in sections(text) {
        roff.control("SH", [heading.to_uppercase().as_str()]);
        roff.control("nf", []);
        for line in body {
            roff.text([roman(line.strip_prefix("  ").unwrap_or(line))]);
        }
        roff.control("fi", []);
    }
    roff
}

/// Split `text` at unindented lines ending in ':' into (heading, body lines); text before the
/// first heading goes under NOTES. Blank lines at the end of a body are dropped.
fn sections(text: &str) -> Vec<(&str, Vec<&str>)> {
    let mut out: Vec<(&str, Vec<&str>)> = Vec::new();
    for line in text.lines() {
        let heading = line
            .strip_suffix(':')
            .filter(|h| !h.is_empty() && !line.starts_with(char::is_whitespace));
        match (heading, out.last_mut()) {
            (Some(h), _) => out.push((h, Vec::new())),
            (None, Some((_, body))) => body.push(line),
            (None, None) if line.trim().is_empty() => {}
            (None, None) => out.push(("Notes", vec![line])),
        }
    }
    for (_, body) in &mut out {
        while body.last().is_some_and(|l| l.trim().is_empty()) {
            body.pop();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::sections;

    #[test]
    fn after_help_splits_at_headings() {
        let text = "Exit status:\n  0  success\n  1  error\n\nExamples:\n  mkfs.rvmfs -s 1G img\n";
        let got = sections(text);
        assert_eq!(
            got,
            vec![
                ("Exit status", vec!["  0  success", "  1  error"]),
                ("Examples", vec!["  mkfs.rvmfs -s 1G img"]),
            ]
        );
    }
}
