//! The report of a full run: one JSON object (`--json`, and the last line of the table
//! output) and the markdown table with each target and whether it is met.

use crate::recovery::Recovery;
use crate::stall::Stall;

/// Every figure of a full run.
pub struct Results {
    /// (a) raw 4 KiB pwrite + fdatasync per second.
    pub raw: f64,
    /// (b), (c) flush transactions per second and syncs per second, 1, 2, 4, 8 threads.
    pub flush: [f64; 4],
    pub syncs: [f64; 4],
    /// (d) no-flush transactions per second.
    pub noflush: f64,
    /// (e) log bytes per transaction, optimized and not, and the bytes each optimization saved.
    pub opt: f64,
    pub unopt: f64,
    pub saved_intra: u64,
    pub saved_inter: u64,
    /// (f) recovery and truncation.
    pub rec: Recovery,
    /// (f') commit stalls.
    pub stall: Stall,
    /// (g) resident set, MiB.
    pub rss: f64,
}

impl Results {
    pub fn json(&self) -> serde_json::Value {
        let (flush, rec, stall_m) = (&self.flush, &self.rec, &self.stall);
        serde_json::json!({
            "raw_fdatasync_per_s": self.raw.round(),
            "flush_tx_per_s": flush[0].round(),
            "flush_tx_per_s_2t": flush[1].round(),
            "flush_tx_per_s_4t": flush[2].round(),
            "flush_tx_per_s_8t": flush[3].round(),
            "noflush_tx_per_s": self.noflush.round(),
            "log_bytes_per_tx": (self.opt * 10.0).round() / 10.0,
            "log_bytes_per_tx_unoptimized": (self.unopt * 10.0).round() / 10.0,
            "recovery_64mib_s": (rec.total * 1000.0).round() / 1000.0,
            "truncate_mib_per_s": rec.truncate_mib_s.round(),
            "max_commit_stall_ms": (stall_m.max_truncating_ms * 100.0).round() / 100.0,
            "max_commit_latency_ms": (stall_m.max_ms * 100.0).round() / 100.0,
            "recovery_initialize_s": (rec.init * 1000.0).round() / 1000.0,
            "recovery_map_s": (rec.map * 1000.0).round() / 1000.0,
            "rss_4gib_touch1pct_mib": (self.rss * 10.0).round() / 10.0,
        })
    }

    pub fn print_table(&self) {
        let Results {
            raw,
            flush,
            syncs,
            noflush,
            opt,
            unopt,
            saved_intra,
            saved_inter,
            ref rec,
            ref stall,
            rss,
        } = *self;
        let (recovery, truncate, nrec) = (rec.total, rec.truncate_mib_s, rec.records);
        let stall_m = stall;
        let (stall, flush_stall, truncs) =
            (stall_m.max_ms, stall_m.max_flush_ms, stall_m.truncations);
        let pct = |x: f64, of: f64| 100.0 * x / of;
        let ok = |b: bool| if b { "met" } else { "NOT met" };
        println!("| measurement | value | target | |");
        println!("|---|---:|---|---|");
        println!("| (a) raw 4 KiB pwrite+fdatasync | {raw:.0}/s | | |");
        println!(
            "| (b) flush tx, 1 thread | {:.0}/s ({:.0}% of raw; {:.0} syncs/s) | >= 85% of raw | {} |",
            flush[0],
            pct(flush[0], raw),
            syncs[0],
            ok(flush[0] >= 0.85 * raw)
        );
        for (i, th) in [2, 4, 8].into_iter().enumerate() {
            let v = flush[i + 1];
            let target = if th == 8 { ">= 4x (b)" } else { "" };
            let verdict = if th == 8 { ok(v >= 4.0 * flush[0]) } else { "" };
            println!(
                "| (c) flush tx, {th} threads | {v:.0}/s ({:.1}x; {:.0} syncs/s) | {target} | {verdict} |",
                v / flush[0],
                syncs[i + 1]
            );
        }
        println!(
            "| (d) no-flush tx (64 B, no_restore) | {noflush:.0}/s | >= 1,000,000/s | {} |",
            ok(noflush >= 1e6)
        );
        println!(
            "| (e) log bytes/tx, optimized vs not | {opt:.1} vs {unopt:.1} (-{:.0}%; intra saved {saved_intra} B, inter {saved_inter} B) | >= 20% less | {} |",
            100.0 - pct(opt, unopt),
            ok(opt <= 0.8 * unopt)
        );
        println!(
            "| (f) recovery of a full 64 MiB log ({nrec} records): initialize + map | {recovery:.3} s (initialize {:.3} s, map {:.3} s) | < 1 s | {} |",
            rec.init,
            rec.map,
            ok(recovery < 1.0)
        );
        println!("| (f) truncation throughput (the recovered log, applied afterwards) | {truncate:.0} MiB/s | | |");
        println!(
            "| (f) max no-flush commit latency, {} commits, {truncs} background truncations, {} log-full waits | {stall:.2} ms (while truncating: {:.2} ms over {} commits, histogram <10us/<100us/<1ms/<10ms/>=10ms {:?}; with no truncation running: {:.2} ms; max flush() {flush_stall:.1} ms) | <= 10 ms | {} |",
            stall_m.commits,
            stall_m.log_full_waits,
            stall_m.max_truncating_ms,
            stall_m.commits_truncating,
            stall_m.hist,
            stall_m.max_idle_ms,
            ok(stall_m.max_truncating_ms <= 10.0)
        );
        println!(
            "| (g) RSS, 4 GiB segment, 1% touched | {rss:.1} MiB | < 100 MiB | {} |",
            ok(rss < 100.0)
        );
        println!();
        println!("{}", self.json());
    }
}
