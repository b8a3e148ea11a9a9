//! Option help laid out as a table (`  sync            every operation ...`, as `rvmfs -o`
//! lists its mount options) re-wrapped for a man page: `.TP` indents an option's help 14
//! columns, so in 80 columns the rows must fit [`HELP_WIDTH`], each row keeping its term and
//! its continuation lines hanging under the text.

use clap::Command;

/// Columns an option's help has in an 80-column man page.
pub const HELP_WIDTH: usize = 64;

/// `cmd` with the (long) help of every option that has an indented line wider than
/// [`HELP_WIDTH`] re-wrapped by [`rewrap`].
pub fn narrow(cmd: Command) -> Command {
    cmd.mut_args(|a| {
        let Some(help) = a.get_long_help().or(a.get_help()).map(|h| h.to_string()) else {
            return a;
        };
        let wide = help
            .lines()
            .any(|l| l.len() > HELP_WIDTH && l.starts_with(' '));
        if wide {
            a.long_help(rewrap(&help, HELP_WIDTH))
        } else {
            a
        }
    })
}

/// One row of a table: the text up to its description (`  sync            `), the column
/// its continuation lines start at, and its words.
struct Row {
    head: String,
    hang: Option<usize>,
    words: Vec<String>,
    indent: usize,
}

/// Re-wrap the indented rows of `text` to `width` columns; unindented lines stay as they are.
/// A row starts at an indented line; lines indented deeper continue it.
pub fn rewrap(text: &str, width: usize) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut row: Option<Row> = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        match &mut row {
            Some(r) if indent > r.indent => {
                r.hang.get_or_insert(indent);
                r.words.extend(line.split_whitespace().map(str::to_owned));
                continue;
            }
            _ => {}
        }
        if let Some(r) = row.take() {
            fill(&r, width, &mut out);
        }
        if indent == 0 || line.trim().is_empty() {
            out.push(line.to_owned());
            continue;
        }
        // The description starts after the first gap of two spaces past the term.
        let body = &line[indent..];
        let start = body
            .find("  ")
            .map(|gap| indent + gap + (body[gap..].len() - body[gap..].trim_start().len()))
            .unwrap_or(indent);
        row = Some(Row {
            head: line[..start].to_owned(),
            hang: None,
            words: line[start..]
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            indent,
        });
    }
    if let Some(r) = row.take() {
        fill(&r, width, &mut out);
    }
    out.join("\n")
}

/// Lay out a row: its head, then its words filled to `width`, later lines under its hang.
fn fill(r: &Row, width: usize, out: &mut Vec<String>) {
    let hang = " ".repeat(r.hang.unwrap_or(r.head.len()));
    let mut line = r.head.clone();
    let mut empty = true;
    for w in &r.words {
        if !empty && line.len() + 1 + w.len() > width {
            out.push(std::mem::replace(&mut line, hang.clone()));
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(w);
        empty = false;
    }
    out.push(line);
}

#[cfg(test)]
mod tests {
    use super::rewrap;

    #[test]
    fn rows_are_wrapped_under_their_text() {
        let text = "Options:\n  sync    every operation durable\n  ro      read-only: refuse\n          changes and write nothing";
        let got = rewrap(text, 30);
        let want = "Options:\n  sync    every operation\n          durable\n  ro      read-only: refuse\n          changes and write\n          nothing";
        assert_eq!(got, want);
    }
}
