//! Fuzz rvm-core's log record decoder: any bytes must decode to a record or an error, never a
//! panic or an out-of-bounds read. When the first input byte is odd, the magic, kind, length
//! and CRC are patched to be valid, so the fuzzer reaches the range parsing behind the CRC;
//! a record that decodes must re-encode (without external ranges) to one that decodes to the
//! same ranges.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvm_core::record;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut buf = rest.to_vec();
    if mode & 1 == 1 && buf.len() >= record::HEADER_LEN {
        buf.truncate(buf.len() & !7);
        buf[0..4].copy_from_slice(b"RVMR");
        buf[4..6].copy_from_slice(&1u16.to_le_bytes());
        let total = buf.len() as u32;
        buf[8..12].copy_from_slice(&total.to_le_bytes());
        // Keep nranges plausible half of the time.
        if mode & 2 == 2 {
            let n = u32::from_le_bytes(buf[12..16].try_into().unwrap()) % 8;
            buf[12..16].copy_from_slice(&n.to_le_bytes());
        }
        let crc = crc32c::crc32c_append(crc32c::crc32c(&buf[..32]), &buf[36..]);
        buf[32..36].copy_from_slice(&crc.to_le_bytes());
    }
    let Ok(r) = record::decode(&buf) else {
        return;
    };
    assert!(r.external_from <= r.ranges.len());
    assert!(r.header.total_len as usize <= buf.len());
    let lens: Vec<usize> = r.ranges.iter().map(|(_, d)| d.len()).collect();
    assert_eq!(record::encoded_len(lens) as u32, r.header.total_len);
    if r.external_from == r.ranges.len() {
        let again =
            record::encode_merged(r.header.seq, r.header.merged, r.header.log_id, &r.ranges);
        let r2 = record::decode(&again).expect("a re-encoded record decodes");
        assert_eq!(r2.ranges, r.ranges);
        assert_eq!(r2.header, r.header);
    }
});
