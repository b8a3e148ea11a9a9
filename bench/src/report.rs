//! The outputs: results.md (table + targets), results.json, chart.png.

use crate::datasum::{DatasumCost, Io, Summary, TARGET_PERCENT};
use crate::{Class, Metric, Results};
use anyhow::{Context, Result};
use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::Path;

pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

impl Metric {
    pub fn med(&self, sys: &str) -> Option<f64> {
        self.samples.get(sys).and_then(|v| median(v))
    }
    /// rvmfs's speed relative to `peer`: > 1 means rvmfs is faster (for times, peer/rvmfs).
    pub fn ratio(&self, peer: &str) -> Option<f64> {
        let (a, b) = (self.med("rvmfs")?, self.med(peer)?);
        let r = if self.higher_better { a / b } else { b / a };
        r.is_finite().then_some(r)
    }
}

pub(crate) fn fmt_num(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v >= 100.0 {
        let s = format!("{v:.0}");
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// Axis label only at powers of ten (log axes list many key points).
fn pow10_label(x: f64) -> String {
    let l = x.log10();
    if (l - l.round()).abs() < 1e-6 {
        fmt_num(x)
    } else {
        String::new()
    }
}

pub(crate) fn cell(v: Option<f64>) -> String {
    v.map_or("–".into(), fmt_num)
}

/// (max - min) / median of the samples, percent; "–" with fewer than two.
pub(crate) fn spread_cell(v: Option<&Vec<f64>>) -> String {
    let Some(v) = v.filter(|v| v.len() >= 2) else {
        return "–".into();
    };
    let (lo, hi) = v
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    median(v).map_or("–".into(), |m| format!("±{:.0}%", (hi - lo) / m * 50.0))
}

pub(crate) fn ratio_cell(v: Option<f64>) -> String {
    v.map_or("–".into(), |r| {
        if r >= 10.0 {
            format!("{r:.0}x")
        } else {
            format!("{r:.2}x")
        }
    })
}

/// The targets: (peer, minimum ratio) for each class.
fn class_targets(c: Class) -> Vec<(&'static str, f64)> {
    match c {
        Class::Meta | Class::Tree => vec![("fuse2fs", 1.5), ("juicefs", 10.0), ("ext4", 0.5)],
        Class::Small => vec![("fuse2fs", 1.5), ("juicefs", 1.5), ("ext4", 0.5)],
        Class::Seq => vec![("fuse2fs", 1.5), ("juicefs", 1.5), ("ext4", 0.7)],
        Class::Random => vec![("fuse2fs", 1.5), ("juicefs", 1.5)],
    }
}

pub struct Check {
    pub what: String,
    pub target: String,
    pub measured: String,
    pub met: Option<bool>,
}

pub fn checks(r: &Results) -> Vec<Check> {
    let mut out = Vec::new();
    for m in &r.metrics {
        for (peer, min) in class_targets(m.class) {
            let got = m.ratio(peer);
            if got.is_none() && m.med("rvmfs").is_none() {
                continue;
            }
            out.push(Check {
                what: format!("{} vs {peer}", m.label),
                target: format!(">= {min}x"),
                measured: ratio_cell(got),
                met: got.map(|g| g >= min),
            });
        }
    }
    if let (Some(small), Some(raw)) = (
        r.metrics
            .iter()
            .find(|m| m.key == "small")
            .and_then(|m| m.med("rvmfs")),
        median(&r.raw_fdatasync),
    ) {
        out.push(Check {
            what: "4 KiB+fsync files vs raw fdatasync rate".into(),
            target: ">= 0.33x".into(),
            measured: format!(
                "{:.2}x ({} vs {}/s)",
                small / raw,
                fmt_num(small),
                fmt_num(raw)
            ),
            met: Some(small / raw >= 1.0 / 3.0),
        });
    }
    if let Some(s) = r.scaling.get("rvmfs") {
        if let (Some(first), Some(last)) = (s.first(), s.last()) {
            out.push(Check {
                what: format!("create rate at {} vs at {} entries", last.0, first.0),
                target: ">= 0.5x".into(),
                measured: format!(
                    "{:.2}x ({} vs {}/s)",
                    last.1 / first.1,
                    fmt_num(last.1),
                    fmt_num(first.1)
                ),
                met: Some(last.1 / first.1 >= 0.5),
            });
        }
    }
    for p in &r.mounts {
        out.push(Check {
            what: format!("mount time, {} files", p.files),
            target: "< 1 s".into(),
            measured: format!("{:.3} s", p.mount_s),
            met: Some(p.mount_s < 1.0),
        });
        let rss = p.rss_after_mount_mib.max(p.rss_hot_mib);
        out.push(Check {
            what: format!(
                "daemon RSS, {} files (max of after mount / after creating)",
                p.files
            ),
            target: "< 64 MiB".into(),
            measured: format!(
                "{:.1} MiB (mount {:.1}, hot {:.1})",
                rss, p.rss_after_mount_mib, p.rss_hot_mib
            ),
            met: Some(rss < 64.0),
        });
    }
    if let Some(d) = &r.datasum {
        if let (Some(wr), Some(rd)) = (d.cost_percent(Io::Write), d.cost_percent(Io::Read)) {
            out.push(Check {
                what: "data checksums' cost on sequential write / cold read".into(),
                target: format!("<= {TARGET_PERCENT:.0}% each"),
                measured: format!("{wr:.1}% / {rd:.1}%"),
                met: Some(wr <= TARGET_PERCENT && rd <= TARGET_PERCENT),
            });
        }
    }
    if let Some(p) = &r.parallel {
        out.extend(
            crate::parallel::checks(p)
                .into_iter()
                .map(|(what, target, measured, met)| Check {
                    what,
                    target,
                    measured,
                    met,
                }),
        );
    }
    out.extend(crate::writeback::checks(r));
    if let Some(rec) = &r.recovery {
        out.push(Check {
            what: "recovery (mount after kill -9, full log)".into(),
            target: "< 2 s".into(),
            measured: format!("{:.3} s", rec.mount_s),
            met: Some(rec.mount_s < 2.0),
        });
    }
    out
}

pub fn markdown(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# rvmfs benchmark ({})\n",
        if r.quick { "quick" } else { "full" }
    );
    let _ = writeln!(s, "- date: {}", r.date);
    let _ = writeln!(s, "- machine: {}", r.machine);
    let _ = writeln!(s, "- rvmfs: commit {}", r.rvmfs_commit);
    let _ = writeln!(
        s,
        "- medians of {} repetition(s), the systems mounted at once and interleaved (each repetition runs them in turn, the order rotating); spread = half the range over the median; ratio = rvmfs's speed relative to the peer (> 1: rvmfs faster; for times, peer time / rvmfs time)",
        r.repetitions
    );
    if let Some(raw) = median(&r.raw_fdatasync) {
        let _ = writeln!(
            s,
            "- raw disk limit: {} x (4 KiB pwrite + fdatasync)/s in a preallocated file",
            fmt_num(raw)
        );
    }
    let measured: Vec<&Metric> = r.metrics.iter().filter(|m| !m.samples.is_empty()).collect();
    if !measured.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "| workload | unit | rvmfs | fuse2fs | JuiceFS | ext4 | rvmfs/fuse2fs | rvmfs/JuiceFS | rvmfs/ext4 | rvmfs spread |"
        );
        let _ = writeln!(s, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|");
    }
    for m in measured {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            m.label.replace('|', "\\|"),
            m.unit,
            cell(m.med("rvmfs")),
            cell(m.med("fuse2fs")),
            cell(m.med("juicefs")),
            cell(m.med("ext4")),
            ratio_cell(m.ratio("fuse2fs")),
            ratio_cell(m.ratio("juicefs")),
            ratio_cell(m.ratio("ext4")),
            spread_cell(m.samples.get("rvmfs"))
        );
    }
    if !r.scaling.is_empty() {
        let _ = writeln!(s, "\n## Scaling: create rate while one directory grows\n");
        let _ = writeln!(
            s,
            "| entries | rvmfs creates/s | ext4 creates/s | rvmfs/ext4 |"
        );
        let _ = writeln!(s, "|--:|--:|--:|--:|");
        let rv = r.scaling.get("rvmfs");
        let ex = r.scaling.get("ext4");
        let sizes: Vec<usize> = rv
            .or(ex)
            .map(|v| v.iter().map(|p| p.0).collect())
            .unwrap_or_default();
        for n in sizes {
            let a = rv.and_then(|v| v.iter().find(|p| p.0 == n)).map(|p| p.1);
            let b = ex.and_then(|v| v.iter().find(|p| p.0 == n)).map(|p| p.1);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                fmt_num(n as f64),
                cell(a),
                cell(b),
                ratio_cell(a.zip(b).map(|(a, b)| a / b))
            );
        }
    }
    if !r.mounts.is_empty() {
        let _ = writeln!(s, "\n## rvmfs mount time and daemon memory by image size\n");
        let _ = writeln!(
            s,
            "| files | mount (s) | RSS after mount (MiB) | RSS after creating them (MiB) | of which private (MiB) | unmount (s) |"
        );
        let _ = writeln!(s, "|--:|--:|--:|--:|--:|--:|");
        for p in &r.mounts {
            let _ = writeln!(
                s,
                "| {} | {:.3} | {:.1} | {:.1} | {:.1} | {:.2} |",
                fmt_num(p.files as f64),
                p.mount_s,
                p.rss_after_mount_mib,
                p.rss_hot_mib,
                p.private_hot_mib,
                p.unmount_s
            );
        }
    }
    if let Some(rec) = &r.recovery {
        let _ = writeln!(s, "\n## rvmfs recovery after kill -9\n");
        let _ = writeln!(
            s,
            "{} files, then {} setxattrs of 32 KiB (fsync every 256) in {:.1} s, then `kill -9`: the next mount took **{:.3} s**, replaying {} records ({} of a {:.0} MiB log). Daemon: `{}`. `fsck.rvmfs -n -f` afterwards: exit {:?} ({:.1} s).",
            fmt_num(rec.files as f64),
            fmt_num(rec.churn_ops as f64),
            rec.churn_s,
            rec.mount_s,
            rec.records_replayed.map_or("?".into(), |n| n.to_string()),
            rec.log_used_mib.map_or("? MiB".into(), |u| format!("{u:.0} MiB, {:.0}%", 100.0 * u / rec.log_capacity_mib)),
            rec.log_capacity_mib,
            rec.daemon_log_line,
            rec.fsck_exit,
            rec.fsck_s
        );
    }
    if let Some(d) = &r.datasum {
        datasum_table(&mut s, r, d);
    }
    if let Some(p) = &r.parallel {
        crate::parallel::table(&mut s, p);
    }
    crate::writeback::markdown(&mut s, r);
    s += &crate::requests::markdown(r);
    let cs = checks(r);
    if !cs.is_empty() {
        let met = cs.iter().filter(|c| c.met == Some(true)).count();
        let _ = writeln!(s, "\n## Targets (issue 6): {met} of {} met\n", cs.len());
        let _ = writeln!(s, "| target | wanted | measured | met |");
        let _ = writeln!(s, "|---|--:|--:|:-:|");
        for c in &cs {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                c.what.replace('|', "\\|"),
                c.target,
                c.measured,
                match c.met {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "–",
                }
            );
        }
    }
    if !r.notes.is_empty() {
        let _ = writeln!(s, "\n## Notes\n");
        for n in &r.notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    s
}

/// "median (min–max)", or "–" without samples.
pub(crate) fn fmt_spread(x: Option<Summary>) -> String {
    x.map_or("–".into(), |x| {
        format!(
            "{} ({}–{})",
            fmt_num(x.median),
            fmt_num(x.min),
            fmt_num(x.max)
        )
    })
}

/// The two sequential workloads with sums and with `-o nodatasum`: median (min–max), cost.
fn datasum_table(s: &mut String, r: &Results, d: &DatasumCost) {
    let label = |key: &str| {
        r.metrics
            .iter()
            .find(|m| m.key == key)
            .map_or(key.to_string(), |m| m.label.clone())
    };
    let spread = |sums, io| fmt_spread(d.summary(sums, io));
    let _ = writeln!(s, "\n## rvmfs data checksums: cost on sequential I/O\n");
    let _ = writeln!(
        s,
        "{} passes each, the two mounts interleaved (AB BA ...) on one image; median (min–max); cost = throughput lost, or daemon CPU time added, by the sums.\n",
        d.samples(true, Io::Write).len()
    );
    let _ = writeln!(s, "| workload | unit | with sums | `-o nodatasum` | cost |");
    let _ = writeln!(s, "|---|---|--:|--:|--:|");
    for (key, io) in [("seqw", Io::Write), ("seqr", Io::Read)] {
        let _ = writeln!(
            s,
            "| {} | MiB/s | {} | {} | {} |",
            label(key),
            spread(true, io),
            spread(false, io),
            d.cost_percent(io)
                .map_or("–".into(), |c| format!("{c:.1}%"))
        );
    }
    let _ = writeln!(
        s,
        "| daemon CPU time over a pass (1 GiB write + fsync, cold read) | s | {} | {} | {} |",
        spread(true, Io::Cpu),
        spread(false, Io::Cpu),
        d.cost_percent(Io::Cpu)
            .map_or("–".into(), |c| format!("{c:+.1}%"))
    );
}

pub fn write_all(r: &Results, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("results.md"), markdown(r))?;
    let mut json = serde_json::to_value(r)?;
    // Add medians and ratios so readers of the JSON need not recompute them.
    if let Some(ms) = json.get_mut("metrics").and_then(|m| m.as_array_mut()) {
        for (j, m) in ms.iter_mut().zip(&r.metrics) {
            let mut med = serde_json::Map::new();
            for sys in crate::SYSTEMS {
                if let Some(v) = m.med(sys) {
                    med.insert(sys.into(), v.into());
                }
            }
            j["median"] = med.into();
            j["ratio_vs_fuse2fs"] = m.ratio("fuse2fs").into();
            j["ratio_vs_juicefs"] = m.ratio("juicefs").into();
            j["ratio_vs_ext4"] = m.ratio("ext4").into();
        }
    }
    if let Some(d) = &r.datasum {
        for (key, io, unit) in [
            ("write", Io::Write, "MiB/s"),
            ("read", Io::Read, "MiB/s"),
            ("daemon_cpu", Io::Cpu, "s"),
        ] {
            json["datasum"][key] = serde_json::json!({
                "unit": unit,
                "median_sums": d.summary(true, io).map(|x| x.median),
                "median_nodatasum": d.summary(false, io).map(|x| x.median),
                "cost_percent": d.cost_percent(io),
            });
        }
    }
    json["targets"] = checks(r)
        .iter()
        .map(|c| {
            serde_json::json!({"what": c.what, "target": c.target, "measured": c.measured, "met": c.met})
        })
        .collect::<Vec<_>>()
        .into();
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    if let Err(e) = chart(r, &out.join("chart.png")) {
        eprintln!("chart not drawn: {e:#}");
    }
    Ok(())
}

fn load_font() -> Result<()> {
    let paths = [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    ];
    let bytes = paths
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .context("no TrueType font found (apt-get install fonts-dejavu-core)")?;
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow::anyhow!("bad font"))?;
    Ok(())
}

const RV: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const JF: RGBColor = RGBColor(0xff, 0x7f, 0x0e);
const EX: RGBColor = RGBColor(0x2c, 0xa0, 0x2c);

type DynErr = Box<dyn std::error::Error + Send + Sync>;

fn chart(r: &Results, path: &Path) -> Result<()> {
    load_font()?;
    draw(r, path).map_err(|e| anyhow::anyhow!("{e}"))
}

fn draw(r: &Results, path: &Path) -> std::result::Result<(), DynErr> {
    let root = BitMapBackend::new(path, (1500, 1250)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(760);
    let title = format!(
        "rvmfs vs JuiceFS (SQLite) and ext4 — {} — {}",
        r.date,
        match (r.quick, r.repetitions) {
            (true, _) => "quick run".to_string(),
            (false, 1) => "1 repetition".to_string(),
            (false, n) => format!("medians of {n}"),
        }
    );
    top.titled(&title, ("sans-serif", 26))?;

    // Ratios: horizontal bars, log scale, one row per workload, two bars per row.
    let metrics: Vec<&Metric> = r
        .metrics
        .iter()
        .filter(|m| m.ratio("juicefs").is_some() || m.ratio("ext4").is_some())
        .collect();
    let n = metrics.len().max(1) as f64;
    let (top_area, _) = top.split_vertically(760);
    let top_area = top_area.margin(40, 10, 10, 30);
    let mut ch = ChartBuilder::on(&top_area)
        .caption(
            "rvmfs speed relative to each peer (log scale; > 1 = rvmfs faster)",
            ("sans-serif", 20),
        )
        .x_label_area_size(40)
        .y_label_area_size(330)
        .build_cartesian_2d((0.01f64..1000f64).log_scale(), 0f64..n)?;
    let labels: Vec<String> = metrics.iter().map(|m| m.label.clone()).collect();
    ch.configure_mesh()
        .y_labels(metrics.len() * 2 + 1)
        .y_label_formatter(&|y| {
            let i = (n - y - 0.5).round();
            if (n - y - 0.5 - i).abs() < 0.01 && i >= 0.0 && (i as usize) < labels.len() {
                labels[i as usize].clone()
            } else {
                String::new()
            }
        })
        .x_label_formatter(&|x| {
            if *x >= 1.0 {
                format!("{x:.0}x")
            } else {
                format!("{x}x")
            }
        })
        .y_label_style(("sans-serif", 16))
        .x_label_style(("sans-serif", 16))
        .disable_y_mesh()
        .light_line_style(TRANSPARENT)
        .draw()?;
    for (i, m) in metrics.iter().enumerate() {
        let y = n - i as f64 - 1.0;
        for (k, (peer, color)) in [("juicefs", JF), ("ext4", EX)].iter().enumerate() {
            if let Some(v) = m.ratio(peer) {
                let y0 = y + 0.52 - 0.4 * k as f64;
                ch.draw_series(std::iter::once(Rectangle::new(
                    [(0.01, y0), (v.max(0.011), y0 + 0.36)],
                    color.filled(),
                )))?;
                // Label right of the bar, and right of the target tick if that is near.
                let tick = class_targets(m.class)
                    .iter()
                    .find(|t| t.0 == *peer)
                    .map_or(0.0, |t| t.1);
                let at = if tick > v && tick < v * 2.5 {
                    tick
                } else {
                    v.max(0.011)
                };
                ch.draw_series(std::iter::once(Text::new(
                    ratio_cell(Some(v)),
                    (at * 1.1, y0 + 0.28),
                    ("sans-serif", 14),
                )))?;
            }
        }
        // Targets for this workload: small black ticks.
        for (peer, min) in class_targets(m.class) {
            let k = if peer == "juicefs" { 0 } else { 1 };
            let y0 = y + 0.52 - 0.4 * k as f64;
            ch.draw_series(std::iter::once(PathElement::new(
                vec![(min, y0 - 0.02), (min, y0 + 0.38)],
                BLACK.stroke_width(3),
            )))?;
        }
    }
    ch.draw_series(std::iter::once(PathElement::new(
        vec![(1.0, 0.0), (1.0, n)],
        BLACK.stroke_width(1),
    )))?;
    // Legend entries: an invisible (empty) bar per series.
    for (label, color) in [("rvmfs / JuiceFS", JF), ("rvmfs / ext4", EX)] {
        ch.draw_series(std::iter::once(Rectangle::new(
            [(0.011, -1.0), (0.011, -1.0)],
            color.filled(),
        )))?
        .label(label)
        .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], color.filled()));
    }
    ch.draw_series(std::iter::once(PathElement::new(
        vec![(0.011, -1.0)],
        BLACK,
    )))?
    .label("target (issue 6)")
    .legend(|(x, y)| PathElement::new(vec![(x + 8, y - 8), (x + 8, y + 8)], BLACK.stroke_width(3)));
    ch.configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;

    // Bottom: scaling curve, mount time, RSS.
    let parts = bottom.margin(10, 10, 10, 10).split_evenly((1, 3));
    // (a) create rate vs entries.
    if !r.scaling.is_empty() {
        let maxn = r
            .scaling
            .values()
            .flat_map(|v| v.iter().map(|p| p.0))
            .max()
            .unwrap_or(10) as f64;
        let minn = r
            .scaling
            .values()
            .flat_map(|v| v.iter().map(|p| p.0))
            .min()
            .unwrap_or(1) as f64;
        let maxr = r
            .scaling
            .values()
            .flat_map(|v| v.iter().map(|p| p.1))
            .fold(1.0, f64::max);
        let mut c = ChartBuilder::on(&parts[0])
            .caption("create rate as one directory grows", ("sans-serif", 18))
            .x_label_area_size(45)
            .y_label_area_size(70)
            .margin(10)
            .build_cartesian_2d((minn * 0.7..maxn * 1.4).log_scale(), 0f64..maxr * 1.15)?;
        c.configure_mesh()
            .x_desc("entries in the directory")
            .y_desc("creates/s")
            .x_label_formatter(&|x| pow10_label(*x))
            .light_line_style(TRANSPARENT)
            .y_label_formatter(&|y| fmt_num(*y))
            .label_style(("sans-serif", 14))
            .draw()?;
        for (sys, color) in [("rvmfs", RV), ("ext4", EX)] {
            if let Some(v) = r.scaling.get(sys) {
                let pts: Vec<(f64, f64)> = v.iter().map(|p| (p.0 as f64, p.1)).collect();
                c.draw_series(LineSeries::new(pts.clone(), color.stroke_width(3)))?
                    .label(sys)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
                    });
                c.draw_series(pts.iter().map(|&p| Circle::new(p, 5, color.filled())))?;
            }
        }
        c.configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .label_font(("sans-serif", 15))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
    }
    // (b) mount time and (c) RSS vs files.
    if !r.mounts.is_empty() {
        let minn = r.mounts.first().unwrap().files as f64;
        let maxn = r.mounts.last().unwrap().files as f64;
        let maxt = r.mounts.iter().map(|p| p.mount_s).fold(1.2, f64::max);
        let mut c = ChartBuilder::on(&parts[1])
            .caption("rvmfs mount time (target < 1 s)", ("sans-serif", 18))
            .x_label_area_size(45)
            .y_label_area_size(60)
            .margin(10)
            .build_cartesian_2d((minn * 0.7..maxn * 1.4).log_scale(), 0f64..maxt * 1.1)?;
        c.configure_mesh()
            .x_desc("files in the image")
            .y_desc("seconds")
            .x_label_formatter(&|x| pow10_label(*x))
            .light_line_style(TRANSPARENT)
            .label_style(("sans-serif", 14))
            .draw()?;
        let pts: Vec<(f64, f64)> = r
            .mounts
            .iter()
            .map(|p| (p.files as f64, p.mount_s))
            .collect();
        c.draw_series(LineSeries::new(pts.clone(), RV.stroke_width(3)))?;
        c.draw_series(pts.iter().map(|&p| Circle::new(p, 5, RV.filled())))?;
        c.draw_series(std::iter::once(PathElement::new(
            vec![(minn * 0.7, 1.0), (maxn * 1.4, 1.0)],
            RED.stroke_width(2),
        )))?;
        if let Some(rec) = &r.recovery {
            c.draw_series(std::iter::once(TriangleMarker::new(
                (rec.files as f64, rec.mount_s.min(maxt * 1.05)),
                8,
                RED.filled(),
            )))?;
            c.draw_series(std::iter::once(Text::new(
                format!("after kill -9: {:.2} s", rec.mount_s),
                (minn, rec.mount_s.min(maxt * 1.0)),
                ("sans-serif", 14),
            )))?;
        }
        let maxm = r
            .mounts
            .iter()
            .map(|p| p.rss_hot_mib.max(p.rss_after_mount_mib))
            .fold(70.0, f64::max);
        let mut c = ChartBuilder::on(&parts[2])
            .caption("rvmfs daemon RSS (target < 64 MiB)", ("sans-serif", 18))
            .x_label_area_size(45)
            .y_label_area_size(60)
            .margin(10)
            .build_cartesian_2d((minn * 0.7..maxn * 1.4).log_scale(), 0f64..maxm * 1.1)?;
        c.configure_mesh()
            .x_desc("files in the image")
            .y_desc("MiB")
            .x_label_formatter(&|x| pow10_label(*x))
            .light_line_style(TRANSPARENT)
            .label_style(("sans-serif", 14))
            .draw()?;
        for (name, color, f) in [
            (
                "after mount",
                RV,
                (|p: &crate::MountPoint| p.rss_after_mount_mib) as fn(&crate::MountPoint) -> f64,
            ),
            ("after creating", JF, |p: &crate::MountPoint| p.rss_hot_mib),
        ] {
            let pts: Vec<(f64, f64)> = r.mounts.iter().map(|p| (p.files as f64, f(p))).collect();
            c.draw_series(LineSeries::new(pts.clone(), color.stroke_width(3)))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
                });
            c.draw_series(pts.iter().map(|&p| Circle::new(p, 5, color.filled())))?;
        }
        c.draw_series(std::iter::once(PathElement::new(
            vec![(minn * 0.7, 64.0), (maxn * 1.4, 64.0)],
            RED.stroke_width(2),
        )))?;
        c.configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", 15))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
