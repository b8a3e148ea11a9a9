//! The object-store section of results.md (`rvmfs-bench --objstore`, objmode.rs).

use crate::datasum::Summary;
use crate::objmode::{ObjStore, SYSTEMS};
use crate::report::{fmt_num, fmt_spread, ratio_cell};
use crate::{objwindow, table};
use std::fmt::Write as _;

/// The section of results.md: the table, then the window figures.
pub fn markdown(s: &mut String, o: &ObjStore) {
    let _ = writeln!(
        s,
        "\n## Object-store mode: rvmfs vs JuiceFS on the same bucket\n\n\
         {}; JuiceFS {} (SQLite metadata in a local file, objects in the same bucket). \
         Medians of {} interleaved repetitions (min–max). `rvmfs-s3`: the default mount \
         (uploads every 0.5 s, commits every 0.5 s, fsync durable locally); `upload=sync`: fsync also waits for the \
         bucket; JuiceFS uploads at close and fsync; `rvmfs local`: a local-data image on the same disk. Cold read: each system remounted with \
         its own cache emptied (rvmfs: the image's data area punched out), kernel caches \
         dropped, every byte checked. Command: `{}`.\n",
        o.server, o.juicefs, o.repetitions, o.command
    );
    let cols = [
        ("workload", false),
        ("unit", false),
        ("rvmfs-s3", false),
        ("rvmfs-s3 upload=sync", false),
        ("JuiceFS-s3", false),
        ("rvmfs local", false),
        ("rvmfs/JuiceFS", true),
        ("upload=sync/JuiceFS", true),
        ("rvmfs-s3/local", true),
    ];
    let rows = o.metrics.iter().map(|m| {
        let sum = |sys: &str| m.samples.get(sys).and_then(|v| Summary::of(v));
        let ratio = |sys: &str, to: &str| {
            let (a, b) = (m.med(sys)?, m.med(to)?);
            let r = if m.higher_better { a / b } else { b / a };
            r.is_finite().then_some(r)
        };
        vec![
            m.label.clone(),
            m.unit.to_string(),
            fmt_spread(sum(SYSTEMS[0])),
            fmt_spread(sum(SYSTEMS[1])),
            fmt_spread(sum(SYSTEMS[2])),
            fmt_spread(sum(SYSTEMS[3])),
            ratio_cell(ratio(SYSTEMS[0], SYSTEMS[2])),
            ratio_cell(ratio(SYSTEMS[1], SYSTEMS[2])),
            ratio_cell(ratio(SYSTEMS[0], SYSTEMS[3])),
        ]
    });
    table::write(s, &cols, rows);
    let _ = writeln!(
        s,
        "\nEvery fsync of the latency workload, all repetitions (ms):\n"
    );
    let rows = SYSTEMS.iter().filter_map(|sys| {
        let v = o.fsync_ms.get(*sys)?;
        let p99 = objwindow::percentile(v, 0.99);
        let sum = Summary::of(v)?;
        Some(vec![
            sys.to_string(),
            v.len().to_string(),
            fmt_spread(Some(sum)),
            fmt_num(p99),
        ])
    });
    let cols = [
        ("system", false),
        ("fsyncs", true),
        ("median (min–max)", false),
        ("p99", true),
    ];
    table::write(s, &cols, rows);
    if let Some((took, report)) = &o.restore {
        let _ = writeln!(
            s,
            "\n**Restore** of `rvmfs-s3` after the workloads, from the bucket alone \
             (`rvmfs-admin restore`, wall): {took:.2} s. Its report: `{report}`"
        );
    }
    if let Some(w) = &o.window {
        objwindow::markdown(s, w);
    }
    for n in &o.notes {
        let _ = writeln!(s, "\n- {n}");
    }
}
