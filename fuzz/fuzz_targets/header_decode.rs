//! Fuzz the image header decoder: any bytes and any claimed image length must give Ok or a
//! HeaderError, never a panic; a header it accepts must lie inside the image and re-encode to
//! the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvmfs::layout::header::Header;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let image_len = u64::from_le_bytes(data[..8].try_into().unwrap());
    let block = &data[8..];
    if let Ok(h) = Header::decode(block, image_len) {
        let again = h.encode();
        let n = std::mem::size_of::<Header>();
        assert_eq!(
            &again[..n],
            &block[..n],
            "accepted header does not re-encode"
        );
        assert!(
            h.data_offset <= image_len,
            "data area starts past the image"
        );
    }
});
