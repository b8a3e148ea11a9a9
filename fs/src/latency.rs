//! Log2 latency histograms, shared by the daemon that records them (`fuse/opcodes.rs`) and
//! `rvmfs-admin stats`, which reads their deltas: bucket `i` holds durations in
//! `[2^i, 2^(i+1))` ns (the cheap record of HdrHistogram and of BPF's `hist()` maps).

/// Log2 buckets per histogram: the last one also holds everything of 2^39 ns (~9 min) or more.
pub const BUCKETS: usize = 40;

/// The log2 bucket of a duration of `ns` nanoseconds.
pub fn bucket(ns: u64) -> usize {
    (63 - ns.max(1).leading_zeros() as usize).min(BUCKETS - 1)
}

/// The upper bound (ns) of the bucket holding the `q` quantile (0.0..=1.0) of the `n`
/// durations recorded in `hist`; `u64::MAX` if `hist` holds fewer than the rank.
pub fn quantile(hist: &[u64], n: u64, q: f64) -> u64 {
    let rank = ((n as f64 * q).ceil() as u64).max(1);
    let mut seen = 0;
    for (i, &b) in hist.iter().enumerate() {
        seen += b;
        if seen >= rank {
            return (1u64 << (i + 1)) - 1;
        }
    }
    u64::MAX
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_log2() {
        assert_eq!((bucket(0), bucket(1), bucket(2), bucket(3)), (0, 0, 1, 1));
        assert_eq!(bucket(1 << 20), 20);
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_are_bucket_upper_bounds() {
        let mut hist = [0u64; BUCKETS];
        hist[10] = 99;
        hist[20] = 1;
        assert_eq!(quantile(&hist, 100, 0.5), (1 << 11) - 1);
        assert_eq!(quantile(&hist, 100, 0.99), (1 << 11) - 1);
        assert_eq!(quantile(&hist, 100, 1.0), (1 << 21) - 1);
    }
}
