//! Markdown tables: the one writer behind every table of results.md (and logdev.md).

use std::fmt::Write as _;

/// One column: its header and whether its cells are right-aligned (numbers).
pub type Column<'a> = (&'a str, bool);

/// Write a markdown table into `s`: the header row of `cols`, the alignment row, then one
/// line per row of `rows` (one cell per column; a `|` inside a cell is escaped so it stays
/// one cell).
pub fn write(s: &mut String, cols: &[Column<'_>], rows: impl IntoIterator<Item = Vec<String>>) {
    let line = |cells: &mut dyn Iterator<Item = String>| {
        let cells: Vec<String> = cells.collect();
        format!("| {} |", cells.join(" | "))
    };
    let _ = writeln!(s, "{}", line(&mut cols.iter().map(|c| c.0.to_string())));
    let align = cols
        .iter()
        .map(|&(_, right)| if right { "--:" } else { "---" });
    let _ = writeln!(s, "|{}|", align.collect::<Vec<_>>().join("|"));
    for row in rows {
        let _ = writeln!(
            s,
            "{}",
            line(&mut row.into_iter().map(|c| c.replace('|', "\\|")))
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_alignment_and_escaped_cells() {
        let mut s = String::new();
        super::write(
            &mut s,
            &[("workload", false), ("MiB/s", true)],
            [vec!["a | b".to_string(), "1.5".to_string()]],
        );
        assert_eq!(s, "| workload | MiB/s |\n|---|--:|\n| a \\| b | 1.5 |\n");
    }
}
