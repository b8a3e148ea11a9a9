//! Property tests: decoding never panics; random workloads recover to a committed prefix.
mod common;

use std::sync::Arc;

use common::*;
use proptest::prelude::*;
use rvm_core::*;

proptest! {
    #[test]
    fn decode_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = record::decode(&bytes);
        let _ = record::parse_header(&bytes);
    }

    #[test]
    fn encode_decode_roundtrip(ranges in proptest::collection::vec((0u64..1 << 40, proptest::collection::vec(any::<u8>(), 0..40)), 0..6), seq: u64, id: u64) {
        let rs: Vec<(u64, &[u8])> = ranges.iter().map(|(o, d)| (*o, &d[..])).collect();
        let enc = record::encode(seq, id, &rs);
        prop_assert_eq!(enc.len() as u64, record::encoded_len(rs.iter().map(|r| r.1.len())));
        let dec = record::decode(&enc).unwrap();
        prop_assert_eq!(dec.header.seq, seq);
        prop_assert_eq!(dec.ranges, rs);
    }

    /// Random transactions (random modes, aborts, flushes); then a crash that keeps only the
    /// log bytes written before a random point: recovery gives the image after some commit.
    #[test]
    fn random_workload_recovers_a_committed_prefix(seed in 1u64..u64::MAX, ops in 1usize..60) {
        let st = fresh(SIZE, LOG);
        let rvm = open(&st, LOG);
        rvm.set_truncate_threshold(None);
        let mut r = rvm.map(SEG).unwrap();
        let mut rng = Rng(seed);
        let mut durable_images = vec![r.bytes().to_vec()];
        let mut snapshots = vec![st.snapshot()];
        for _ in 0..ops {
            let mut t = r.begin_transaction(RestoreMode::Restore);
            for _ in 0..1 + rng.below(4) {
                let len = 1 + rng.below(300) as usize;
                let off = rng.below(SEG.len - len as u64) as usize;
                t.set_range(off, len).unwrap().fill(rng.next() as u8);
            }
            match rng.below(4) {
                0 => t.abort().unwrap(),
                1 => { t.end(CommitMode::NoFlush).unwrap(); }
                _ => {
                    t.end(CommitMode::Flush).unwrap();
                    durable_images.push(r.bytes().to_vec());
                    snapshots.push(st.snapshot());
                }
            }
        }
        drop(r);
        drop(rvm);
        // crash images: each durable snapshot must recover exactly its image
        for (img, want) in snapshots.into_iter().zip(&durable_images) {
            let st2 = Arc::new(MemStorage::from_bytes(img));
            let rvm = open(&st2, LOG);
            let got = rvm.map(SEG).unwrap().bytes().to_vec();
            prop_assert_eq!(&got[..], &want[..]);
        }
    }
}
