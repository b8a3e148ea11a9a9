//! chart.png: rvmfs's ratio to each peer per workload with the issues' targets, and the
//! scaling curves (moved out of report.rs, unchanged but for the targets' lanes).

use crate::report::{fmt_num, ratio_cell, targets};
use crate::{Metric, Results};
use anyhow::{Context, Result};
use plotters::prelude::*;
use std::path::Path;

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

/// Axis label only at powers of ten (log axes list many key points).
fn pow10_label(x: f64) -> String {
    let l = x.log10();
    if (l - l.round()).abs() < 1e-6 {
        fmt_num(x)
    } else {
        String::new()
    }
}

type DynErr = Box<dyn std::error::Error + Send + Sync>;

/// Draw the chart of `r` into the PNG file `path`.
pub fn chart(r: &Results, path: &Path) -> Result<()> {
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
                let tick = targets(m)
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
        // Targets for this workload against the two peers drawn: small black ticks.
        for (peer, min) in targets(m) {
            let k = match peer {
                "juicefs" => 0,
                "ext4" => 1,
                _ => continue,
            };
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
