//! `dump`'s text output: one "Name:  value" line per field, in dumpe2fs's manner.

use super::info::Info;
use rvmfs::layout::error_record::utc;

fn line(name: &str, value: impl std::fmt::Display) {
    println!("{:<28}{value}", format!("{name}:"));
}

fn time(secs: i64) -> String {
    if secs == 0 {
        "n/a".into()
    } else {
        utc(secs)
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".into()
    } else {
        names.join(" ")
    }
}

fn or_none(text: &str) -> &str {
    if text.is_empty() {
        "<none>"
    } else {
        text
    }
}

fn mib(bytes: u64) -> String {
    format!("{bytes} ({:.1} MiB)", bytes as f64 / f64::from(1 << 20))
}

/// Print `info` as text.
pub fn print(info: &Info) {
    let (h, sb) = (&info.header, &info.superblock);
    if info.in_use {
        println!("(the image is in use: a mount or fsck holds it; this is its state on disk)");
    }
    line("Filesystem volume name", or_none(&sb.label));
    line("Format version", h.version);
    line("Filesystem UUID", &h.uuid);
    line("Filesystem features", {
        let mut all = h.compat.clone();
        all.extend(h.ro_compat.iter().cloned());
        all.extend(h.incompat.iter().cloned());
        list(&all)
    });
    line("Filesystem state", sb.state);
    line("Block size", h.block_size);
    line("Inode count", sb.inode_count);
    line("Inodes used", sb.inodes_used);
    line("Block count", h.data_blocks);
    line("Blocks used", sb.blocks_used);
    line("Reserved block count", sb.reserved_blocks);
    line("Default mount options", or_none(&sb.mount_opts));
    if let (Some(url), Some(shift)) = (&sb.data_url, sb.object_shift) {
        line("Object store", url);
        line("Object size", format!("{} blocks", 1u64 << shift.min(63)));
    }
    line(
        "Commit interval",
        match sb.commit_interval {
            0 => "(default)".to_string(),
            s => format!("{s} s"),
        },
    );
    line(
        "Errors behavior",
        sb.errors.unwrap_or("(default: remount-ro)"),
    );
    line("Filesystem created", time(h.created));
    line("Last mount time", time(sb.last_mount));
    line("Last checked", time(sb.last_check));
    line("Mount count", sb.mount_count);
    line("Next inode generation", sb.next_generation);
    match &h.external_log {
        None => line(
            "Log area",
            format!("offset {}, length {}", h.log_offset, mib(h.log_len)),
        ),
        Some(x) => {
            let unused = format!("offset {}, length {}", h.log_offset, mib(h.log_len));
            line(
                "Log area",
                format!("external (unused in the image: {unused})"),
            );
            line("External log", &x.path);
            line("External log UUID", &x.log_uuid);
            let area = format!("offset {}, length {}", x.log_offset, mib(x.log_len));
            line("External log area", area);
        }
    }
    line(
        "Metadata region",
        format!("offset {}, length {}", h.segment_offset, mib(h.segment_len)),
    );
    line(
        "Data area",
        format!("offset {}, {} blocks", h.data_offset, h.data_blocks),
    );
    line(
        "Heap",
        format!(
            "{}..{} (bump pointer {})",
            sb.heap_start, sb.heap_end, sb.heap_top
        ),
    );
    print_error(info);
    print_log(info);
    print_free(info);
}

fn print_error(info: &Info) {
    let e = &info.error;
    match (&e.record, &e.damage) {
        (Some(r), _) => {
            line("Error state", format!("{} error(s) recorded", r.count));
            line("First error time", time(r.first_time));
            line("Last error time", time(r.last_time));
            line(
                "First error",
                format!(
                    "{} on inode {} (errno {}): {}",
                    r.op, r.inode, r.errno, r.message
                ),
            );
        }
        (None, Some(damage)) => line("Error state", format!("error record damaged: {damage}")),
        (None, None) => line("Error state", "no errors recorded"),
    }
}

fn print_log(info: &Info) {
    let Some(l) = &info.log else { return };
    println!();
    line("Log generation", l.generation);
    line("Log id", &l.log_id);
    line("Log capacity", mib(l.capacity));
    line("Log head", l.head);
    line("Log tail", l.tail);
    line("Log live bytes", l.live_bytes);
    line("Log live records", l.live_records);
    line("Next LSN", l.next_lsn);
}

fn print_free(info: &Info) {
    let Some(f) = &info.free_space else { return };
    println!();
    line("Free blocks", f.free_blocks);
    line("Free inodes", f.free_inodes);
    line("Free extents", f.free_extents);
    line(
        "Largest free extent",
        format!("{} blocks", f.largest_free_extent),
    );
}
