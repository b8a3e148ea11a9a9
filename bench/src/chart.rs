//! chart.png: rvmfs's speed relative to each peer (fuse2fs, JuiceFS, ext4) per workload, with
//! the targets, and below it the create rate as one directory grows, mount time and daemon
//! RSS by image size.

use crate::report::{fmt_num, pow10_label, ratio_cell, targets};
use crate::{Metric, MountPoint, Results};
use anyhow::{Context, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::{combinators::LogCoord, Shift};
use plotters::prelude::*;
use std::path::Path;

const RV: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const F2: RGBColor = RGBColor(0x94, 0x67, 0xbd);
const JF: RGBColor = RGBColor(0xff, 0x7f, 0x0e);
const EX: RGBColor = RGBColor(0x2c, 0xa0, 0x2c);

/// The peers of the ratio chart, top to bottom within a workload's row: (system, legend, colour).
const PEERS: [(&str, &str, RGBColor); 3] = [
    ("fuse2fs", "rvmfs / fuse2fs", F2),
    ("juicefs", "rvmfs / JuiceFS", JF),
    ("ext4", "rvmfs / ext4", EX),
];

type DynErr = Box<dyn std::error::Error + Send + Sync>;
type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
/// A chart with a log x axis and a linear y axis, both of f64.
type LogXChart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<LogCoord<f64>, RangedCoordf64>>;

/// Draw `path` (PNG, 1500 x 1350 pixels) from `r`. Errors: no TrueType font, or drawing failed.
pub fn chart(r: &Results, path: &Path) -> Result<()> {
    load_font()?;
    draw(r, path).map_err(|e| anyhow::anyhow!("{e}"))
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

fn draw(r: &Results, path: &Path) -> std::result::Result<(), DynErr> {
    let root = BitMapBackend::new(path, (1500, 1350)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(860);
    let title = format!(
        "rvmfs vs fuse2fs, JuiceFS (SQLite) and ext4 — {} — {}",
        r.date,
        match (r.quick, r.repetitions) {
            (true, _) => "quick run".to_string(),
            (false, 1) => "1 repetition".to_string(),
            (false, n) => format!("medians of {n}"),
        }
    );
    top.titled(&title, ("sans-serif", 26))?;
    draw_ratios(r, &top.margin(40, 10, 10, 30))?;
    let parts = bottom.margin(10, 10, 10, 10).split_evenly((1, 3));
    draw_scaling(r, &parts[0])?;
    if !r.mounts.is_empty() {
        draw_mount_time(r, &parts[1])?;
        draw_rss(r, &parts[2])?;
    }
    root.present()?;
    Ok(())
}

/// Horizontal bars, log scale, one row per workload, one bar per peer measured.
fn draw_ratios(r: &Results, area: &Area<'_>) -> std::result::Result<(), DynErr> {
    let metrics: Vec<&Metric> = r
        .metrics
        .iter()
        .filter(|m| PEERS.iter().any(|p| m.ratio(p.0).is_some()))
        .collect();
    let n = metrics.len().max(1) as f64;
    let mut ch = ChartBuilder::on(area)
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
        draw_row(&mut ch, m, n - i as f64 - 1.0)?;
    }
    ch.draw_series(std::iter::once(PathElement::new(
        vec![(1.0, 0.0), (1.0, n)],
        BLACK.stroke_width(1),
    )))?;
    ratio_legend(&mut ch)
}

/// Bottom of bar `k` (0 = the first peer) in the row whose bottom is `y`.
fn bar_y(y: f64, k: usize) -> f64 {
    y + 0.70 - 0.30 * k as f64
}

/// One workload's bars (each labelled with its ratio) and its targets as black ticks.
fn draw_row(ch: &mut LogXChart<'_, '_>, m: &Metric, y: f64) -> std::result::Result<(), DynErr> {
    let targets = targets(m);
    for (k, (peer, _, color)) in PEERS.iter().enumerate() {
        let y0 = bar_y(y, k);
        if let Some(v) = m.ratio(peer) {
            ch.draw_series(std::iter::once(Rectangle::new(
                [(0.01, y0), (v.max(0.011), y0 + 0.26)],
                color.filled(),
            )))?;
            // Label right of the bar, and right of the target tick if that is near.
            let tick = targets.iter().find(|t| t.0 == *peer).map_or(0.0, |t| t.1);
            let at = if tick > v && tick < v * 2.5 {
                tick
            } else {
                v.max(0.011)
            };
            ch.draw_series(std::iter::once(Text::new(
                ratio_cell(Some(v)),
                (at * 1.1, y0 + 0.22),
                ("sans-serif", 13),
            )))?;
        }
        if let Some(&(_, min)) = targets.iter().find(|t| t.0 == *peer) {
            ch.draw_series(std::iter::once(PathElement::new(
                vec![(min, y0 - 0.02), (min, y0 + 0.28)],
                BLACK.stroke_width(3),
            )))?;
        }
    }
    Ok(())
}

/// Legend entries: an invisible (empty) bar per peer, and the target tick.
fn ratio_legend<'a, 'b: 'a>(ch: &mut LogXChart<'a, 'b>) -> std::result::Result<(), DynErr> {
    for (_, label, color) in PEERS {
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
    .label("target (issues 6, 12)")
    .legend(|(x, y)| PathElement::new(vec![(x + 8, y - 8), (x + 8, y + 8)], BLACK.stroke_width(3)));
    ch.configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// A panel captioned `caption` with a log x axis over `x_span` (lowest, highest value; 0.7 of
/// the lowest to 1.4 times the highest shown, labelled as powers of ten) and a linear y axis
/// from 0 to `y_max`, its axes described by `x_desc` and `y_desc`, its y values written by
/// `y_label` (None: plotters' own numbers, in a narrower label area), no light mesh lines.
fn log_x_panel<'a, 'b>(
    area: &'a Area<'b>,
    caption: &str,
    x_desc: &str,
    y_desc: &str,
    x_span: (f64, f64),
    y_max: f64,
    y_label: Option<&dyn Fn(&f64) -> String>,
) -> std::result::Result<LogXChart<'a, 'b>, DynErr> {
    let (minn, maxn) = x_span;
    let mut c = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .x_label_area_size(45)
        .y_label_area_size(if y_label.is_some() { 70 } else { 60 })
        .margin(10)
        .build_cartesian_2d((minn * 0.7..maxn * 1.4).log_scale(), 0f64..y_max)?;
    let pow10 = |x: &f64| pow10_label(*x);
    let mut mesh = c.configure_mesh();
    mesh.x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&pow10)
        .light_line_style(TRANSPARENT)
        .label_style(("sans-serif", 14));
    if let Some(f) = y_label {
        mesh.y_label_formatter(f);
    }
    mesh.draw()?;
    Ok(c)
}

/// The create rate against the entries in the directory, one line per system.
fn draw_scaling(r: &Results, area: &Area<'_>) -> std::result::Result<(), DynErr> {
    let sizes = || r.scaling.values().flat_map(|v| v.iter().map(|p| p.0));
    let (Some(minn), Some(maxn)) = (sizes().min(), sizes().max()) else {
        return Ok(());
    };
    let (minn, maxn) = (minn as f64, maxn as f64);
    let maxr = r
        .scaling
        .values()
        .flat_map(|v| v.iter().map(|p| p.1))
        .fold(1.0, f64::max);
    let mut c = log_x_panel(
        area,
        "create rate as one directory grows",
        "entries in the directory",
        "creates/s",
        (minn, maxn),
        maxr * 1.15,
        Some(&|y| fmt_num(*y)),
    )?;
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
    Ok(())
}

/// The image sizes of the mount rows: (fewest files, most files).
fn mount_span(r: &Results) -> (f64, f64) {
    let files = r.mounts.iter().map(|p| p.files as f64);
    let lo = files.clone().fold(f64::INFINITY, f64::min);
    (lo, files.fold(lo, f64::max))
}

/// Mount time by image size, the 1 s target, and the mount after `kill -9`.
fn draw_mount_time(r: &Results, area: &Area<'_>) -> std::result::Result<(), DynErr> {
    let (minn, maxn) = mount_span(r);
    let maxt = r.mounts.iter().map(|p| p.mount_s).fold(1.2, f64::max);
    let mut c = log_x_panel(
        area,
        "rvmfs mount time (target < 1 s)",
        "files in the image",
        "seconds",
        (minn, maxn),
        maxt * 1.1,
        None,
    )?;
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
            (minn, rec.mount_s.min(maxt)),
            ("sans-serif", 14),
        )))?;
    }
    Ok(())
}

/// Daemon RSS after mount and after creating the files, by image size, and the 64 MiB target.
fn draw_rss(r: &Results, area: &Area<'_>) -> std::result::Result<(), DynErr> {
    let (minn, maxn) = mount_span(r);
    let maxm = r
        .mounts
        .iter()
        .map(|p| p.rss_hot_mib.max(p.rss_after_mount_mib))
        .fold(70.0, f64::max);
    let mut c = log_x_panel(
        area,
        "rvmfs daemon RSS (target < 64 MiB)",
        "files in the image",
        "MiB",
        (minn, maxn),
        maxm * 1.1,
        None,
    )?;
    let series: [(&str, RGBColor, fn(&MountPoint) -> f64); 2] = [
        ("after mount", RV, |p| p.rss_after_mount_mib),
        ("after creating", JF, |p| p.rss_hot_mib),
    ];
    for (name, color, f) in series {
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
    Ok(())
}
