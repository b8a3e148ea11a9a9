//! Data objects against a real S3 server (SeaweedFS; Ceph RGW in the long mode): uploaded
//! create-only (never rewritten), blocks read back with ranged GETs and checked against their
//! CRC32C (a damaged object is an error, never wrong bytes), and the leaked-object sweep: found
//! from a complete listing, deleted only on request, and nothing at all when the listing fails
//! partway.

#[macro_use]
mod common;

use common::faulty::Fault;
use objstore::data::{read_block, read_trailer, upload, upload_sealed};
use objstore::object::BLOCK;
use objstore::{delete_leaked, find_leaked, BlockRef, Bucket, Error, ObjectId, Packer, Put};
use std::collections::BTreeSet;

fn blocks(seed: u8, n: usize) -> Vec<[u8; BLOCK]> {
    (0..n)
        .map(|i| {
            let mut b = [0u8; BLOCK];
            for (j, x) in b.iter_mut().enumerate() {
                *x = (j as u8).wrapping_mul(seed).wrapping_add(i as u8);
            }
            b
        })
        .collect()
}

#[test]
fn objects_are_written_once_and_read_back_block_by_block() {
    let s = require_s3!("objects");
    let dir = tempfile::tempdir().unwrap();
    let b = common::bucket(&s, dir.path(), "img");
    let id = ObjectId { epoch: 1, seq: 0 };
    let bs = blocks(3, 9);
    let refs: Vec<&[u8; BLOCK]> = bs.iter().collect();
    assert_eq!(upload(&b, id, &refs).unwrap(), 9 * 4100 + 24);
    let again = upload(&b, id, &refs[..1]);
    assert!(
        matches!(again, Err(Error::AlreadyExists { .. })),
        "never rewritten: {again:?}"
    );
    // The same bytes again (a retried upload whose first answer was lost): done, not an error.
    assert_eq!(upload(&b, id, &refs).unwrap(), 9 * 4100 + 24);
    let t = read_trailer(&b, id).unwrap();
    assert_eq!(t.count, 9);
    for i in [0u32, 4, 8] {
        assert_eq!(
            read_block(&b, &t, i).unwrap().as_ref(),
            &bs[i as usize][..],
            "block {i}"
        );
    }
    assert!(matches!(
        read_block(&b, &t, 9),
        Err(Error::CorruptObject { .. })
    ));
    let missing = ObjectId { epoch: 1, seq: 1 };
    assert!(matches!(
        read_trailer(&b, missing),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn a_damaged_object_is_an_error_never_wrong_bytes() {
    let s = require_s3!("damaged");
    let dir = tempfile::tempdir().unwrap();
    let b = common::bucket(&s, dir.path(), "img");
    let id = ObjectId { epoch: 2, seq: 5 };
    let bs = blocks(5, 3);
    let refs: Vec<&[u8; BLOCK]> = bs.iter().collect();
    let mut bytes = objstore::object::pack(id, &refs).to_vec();
    bytes[BLOCK + 10] ^= 0x40; // block 1
    b.put(&id.name(), bytes.into(), Put::Create).unwrap();
    let t = read_trailer(&b, id).unwrap();
    assert_eq!(read_block(&b, &t, 0).unwrap().as_ref(), &bs[0][..]);
    let e = read_block(&b, &t, 1).unwrap_err();
    assert!(matches!(e, Error::CorruptObject { .. }), "{e}");
    assert!(e.to_string().contains("img/data/00000002/00000005"), "{e}");
    // An object under another object's key is caught by its trailer.
    let other = ObjectId { epoch: 2, seq: 6 };
    let moved = objstore::object::pack(id, &refs);
    b.put(&other.name(), moved, Put::Create).unwrap();
    assert!(matches!(
        read_trailer(&b, other),
        Err(Error::CorruptObject { .. })
    ));
}

/// Upload `n` small objects of epoch 1; their ids.
fn some_objects(b: &Bucket, n: u32) -> Vec<ObjectId> {
    let bs = blocks(7, 1);
    let refs: Vec<&[u8; BLOCK]> = bs.iter().collect();
    (0..n)
        .map(|seq| {
            let id = ObjectId { epoch: 1, seq };
            upload(b, id, &refs).unwrap();
            id
        })
        .collect()
}

#[test]
fn leaked_objects_are_found_and_deleted_only_when_asked() {
    let s = require_s3!("leaks");
    let dir = tempfile::tempdir().unwrap();
    let b = common::bucket(&s, dir.path(), "img");
    let ids = some_objects(&b, 5);
    b.put("data/README", "not an object".into(), Put::Create)
        .unwrap();
    let live: BTreeSet<ObjectId> = [ids[0], ids[3], ObjectId { epoch: 9, seq: 9 }].into();
    let sweep = find_leaked(&b, &live).unwrap();
    let leaked: Vec<ObjectId> = sweep.leaked.iter().map(|(id, _)| *id).collect();
    assert_eq!(leaked, vec![ids[1], ids[2], ids[4]]);
    assert!(sweep.leaked.iter().all(|(_, size)| *size == 4100 + 24));
    assert_eq!(
        sweep.strays.len(),
        1,
        "a stray name is reported, not taken for an object"
    );
    assert_eq!(sweep.missing, vec![ObjectId { epoch: 9, seq: 9 }]);
    assert_eq!(sweep.listed, 6);
    // Finding deleted nothing.
    assert_eq!(b.list("data").unwrap().len(), 6);
    assert_eq!(delete_leaked(&b, &sweep).unwrap(), 3);
    let left: Vec<String> = b
        .list("data")
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(
        left,
        vec![ids[0].name(), ids[3].name(), "data/README".to_string()]
    );
}

#[test]
fn a_listing_that_fails_partway_deletes_nothing() {
    let s = require_s3!("listfail");
    let dir = tempfile::tempdir().unwrap();
    let (real, faulty) = common::with_fault(&s, dir.path(), "img", Fault::FailListAfter(2));
    let ids = some_objects(&real, 4);
    // Only ids[0] is live: a sweep trusting the first page would call the rest leaked.
    let live: BTreeSet<ObjectId> = [ids[0]].into();
    let r = find_leaked(&faulty, &live);
    assert!(
        r.is_err(),
        "an incomplete listing must fail the sweep: {r:?}"
    );
    assert_eq!(real.list("data").unwrap().len(), 4, "nothing deleted");
}

#[test]
fn packed_blocks_are_read_back_from_the_bucket_by_vblock() {
    let s = require_s3!("packed");
    let dir = tempfile::tempdir().unwrap();
    let b = common::bucket(&s, dir.path(), "img");
    let shift = 3; // 8 blocks an object
    let mut p = Packer::new(4, shift).unwrap();
    let data = blocks(11, 21);
    let mut placed = Vec::new();
    for (i, d) in data.iter().enumerate() {
        let r = BlockRef {
            ino: 2 + i as u64 % 3,
            lblock: i as u64,
        };
        if let Some(sealed) = p.add(r, d).unwrap() {
            upload_sealed(&b, &sealed).unwrap();
            placed.extend(sealed.placed);
        }
    }
    let last = p.seal().unwrap().expect("5 blocks left");
    upload_sealed(&b, &last).unwrap();
    placed.extend(last.placed);
    assert_eq!(placed.len(), 21);
    assert_eq!(
        b.list("data").unwrap().len(),
        3,
        "21 blocks in objects of 8: 3 objects"
    );
    // Each block back from its vblock alone, as a read of an uncached block will.
    for (r, vblock) in placed {
        let (id, index) = ObjectId::of_vblock(vblock, shift);
        let t = read_trailer(&b, id).unwrap();
        let got = read_block(&b, &t, index).unwrap();
        assert_eq!(
            got.as_ref(),
            &data[r.lblock as usize][..],
            "lblock {}",
            r.lblock
        );
    }
}
