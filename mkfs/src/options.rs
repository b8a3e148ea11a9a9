//! mkfs.rvmfs's command line, with mke2fs's option letters: `-L` label, `-U` UUID,
//! `-J size=` log size, `-m` reserved percentage, `-n` dry run, `-N` inodes, `-q`, `-f`.

use clap::Parser;
use std::path::PathBuf;

/// Create an rvmfs filesystem image.
///
/// IMAGE is a regular file (created, or extended to SIZE) or a block device. The image holds
/// a header, the RVM redo log, the metadata region (superblock, inode table, bitmaps,
/// recoverable heap) and the data area. An existing rvmfs image or a non-empty file is never
/// overwritten without -f. Unless -q, prints the layout, the label and the UUID as mke2fs
/// does; -n prints them and writes nothing.
#[derive(Parser, Debug)]
#[command(name = "mkfs.rvmfs", version, verbatim_doc_comment)]
#[command(after_long_help = include_str!("after_help.txt"))]
pub struct Args {
    /// Image size, with an optional K, M, G or T suffix (powers of 1024). Required for a new
    /// file; defaults to the size of an existing file or device.
    #[arg(short = 's', long = "size", value_name = "SIZE", value_parser = parse_size)]
    pub size: Option<u64>,
    /// Number of inodes (default: one per 16 KiB of image).
    #[arg(short = 'N', long = "inodes", value_name = "INODES")]
    pub inodes: Option<u64>,
    /// Volume label, at most 32 bytes (shown by rvmfs-admin dump, changed by rvmfs-admin tune -L).
    #[arg(short = 'L', long = "label", value_name = "LABEL", value_parser = parse_label)]
    pub label: Option<String>,
    /// The filesystem UUID: a UUID, or `random` (the default, version 4), `time` (version 7)
    /// or `clear` (the nil UUID), as mke2fs -U.
    #[arg(short = 'U', long = "uuid", value_name = "UUID", value_parser = rvmfs::layout::header::parse_uuid)]
    pub uuid: Option<uuid::Uuid>,
    /// Redo log options, comma-separated, as mke2fs -J: `size=SIZE`, in MiB unless SIZE has
    /// a K, M, G or T suffix (default: image size / 32, 4 MiB to 256 MiB; at least 1 MiB);
    /// `device=PATH`, the log on another file or block device (mke2fs -J device=, mkfs.xfs
    /// -l logdev=), formatted here and bound to the image by UUID; its size is SIZE, else
    /// the device's or existing file's, else the default. The image records PATH (made
    /// absolute); mount -o logdev= and fsck.rvmfs -l find it elsewhere.
    #[arg(short = 'J', value_name = "size=SIZE,device=PATH", value_parser = parse_log_option)]
    pub log_option: Option<LogOptions>,
    /// Size of the redo log in bytes, with an optional suffix (the same as -J size=SIZE,
    /// kept for older scripts).
    #[arg(long = "log-size", value_name = "LOG_SIZE", value_parser = parse_size, conflicts_with = "log_option")]
    pub log_size: Option<u64>,
    /// Percentage of the data blocks reserved for root (0 to 50, fractions allowed, as
    /// mke2fs -m; default 0: an image is mostly mounted by its owner, whom a reserve would
    /// only keep away from their own space). Unprivileged writes get ENOSPC when only the
    /// reserve is left; statfs reports it as the difference of free and available blocks.
    #[arg(short = 'm', value_name = "PERCENT", value_parser = parse_percent)]
    pub reserved_permille: Option<u64>,
    /// Keep the file data in an S3-compatible bucket (object-store mode, incompat feature
    /// object_data): URL is s3://BUCKET/PREFIX. The endpoint, region and credentials come
    /// from the AWS environment (AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) or --credentials; only the URL is stored in
    /// the image. mkfs first checks that the server enforces conditional writes (the
    /// single-writer lease needs them) and refuses a store that does not.
    #[arg(long = "data", value_name = "URL", value_parser = parse_data_url)]
    pub data: Option<String>,
    /// With --data: an AWS shared-credentials file (profile AWS_PROFILE, else default) whose
    /// keys replace the environment's; never stored in the image.
    #[arg(long = "credentials", value_name = "PATH", requires = "data")]
    pub credentials: Option<PathBuf>,
    /// Print what would be made (the layout), and write nothing.
    #[arg(short = 'n', long = "dry-run")]
    pub dry_run: bool,
    /// Overwrite an existing image or a non-empty file.
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Print nothing but errors.
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// The file or block device to format.
    pub image: PathBuf,
}

impl Args {
    /// The log size asked for (-J size= or --log-size), bytes.
    pub fn log(&self) -> Option<u64> {
        self.log_option
            .as_ref()
            .and_then(|o| o.size)
            .or(self.log_size)
    }

    /// The external log device asked for (-J device=).
    pub fn log_device(&self) -> Option<&std::path::Path> {
        self.log_option.as_ref().and_then(|o| o.device.as_deref())
    }
}

/// What -J asks for.
#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    /// `size=`, bytes.
    pub size: Option<u64>,
    /// `device=`.
    pub device: Option<PathBuf>,
}

/// Check `--data s3://BUCKET/PREFIX`: a valid bucket and prefix, at most 255 bytes.
fn parse_data_url(s: &str) -> Result<String, String> {
    objstore::Target::parse(s).map_err(|e| e.to_string())?;
    if s.len() >= rvmfs::layout::superblock::DATA_URL_LEN {
        return Err(format!("the URL is {} bytes; at most 255", s.len()));
    }
    Ok(s.trim_end_matches('/').to_string())
}

/// Parse "64M", "1G", "4096": bytes, suffixes K/M/G/T in powers of 1024.
pub fn parse_size(s: &str) -> Result<u64, String> {
    parse_size_unit(s, 0)
}

/// As [`parse_size`], a bare number counting units of `1 << shift` bytes.
fn parse_size_unit(s: &str, bare_shift: u32) -> Result<u64, String> {
    let s = s.trim();
    let (digits, shift) = match s.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&s[..s.len() - 1], 10),
        Some('M') => (&s[..s.len() - 1], 20),
        Some('G') => (&s[..s.len() - 1], 30),
        Some('T') => (&s[..s.len() - 1], 40),
        _ => (s, bare_shift),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{s}' is not a size (examples: 4096, 64M, 2G)"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("size '{s}' is too large"))
}

/// Parse `-J size=SIZE,device=PATH` (SIZE in MiB unless suffixed, as mke2fs).
fn parse_log_option(s: &str) -> Result<LogOptions, String> {
    let mut o = LogOptions::default();
    for opt in s.split(',').filter(|o| !o.is_empty()) {
        match opt.split_once('=') {
            Some(("size", v)) => o.size = Some(parse_size_unit(v, 20)?),
            Some(("device", v)) if !v.is_empty() => o.device = Some(PathBuf::from(v)),
            _ => {
                return Err(format!(
                    "unknown log option '{opt}' (they are size=SIZE and device=PATH, e.g. -J \
                     size=16M or -J device=/dev/sdb1)"
                ))
            }
        }
    }
    Ok(o)
}

fn parse_label(s: &str) -> Result<String, String> {
    rvmfs::layout::superblock::parse_label(s).map(|_| s.to_string())
}

/// Parse `-m PERCENT` (0..=50, fractions allowed) into per mille.
fn parse_percent(s: &str) -> Result<u64, String> {
    let p: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a percentage"))?;
    if !(0.0..=50.0).contains(&p) {
        return Err(format!(
            "reserved blocks percent {s} is not between 0 and 50"
        ));
    }
    Ok((p * 10.0).round() as u64)
}
