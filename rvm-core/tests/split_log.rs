//! The log on its own storage (`Rvm::initialize_with_log`, an external log device): commits
//! reach the log storage only, truncation applies them to the segment storage, recovery
//! reads the log storage, and a failing log device fails the instance.

use std::sync::Arc;

use rvm_core::*;

/// The log area of the log storage (after a 4 KiB header of its owner).
const LOG: Area = Area {
    offset: 4096,
    len: 64 * 1024,
};
/// The segment, at the same offset as the log area, so a mix-up of the two would show.
const SEG: Area = Area {
    offset: 4096,
    len: 64 * 1024,
};

fn opts() -> RvmOptions {
    RvmOptions {
        log: LOG,
        truncate_threshold: None,
        ..Default::default()
    }
}

fn commit(rvm: &Rvm, at: usize, bytes: &[u8]) -> Result<Lsn> {
    let mut r = rvm.map(SEG)?;
    let mut t = r.begin_transaction(RestoreMode::NoRestore);
    t.write(at, bytes)?;
    t.end(CommitMode::Flush)
}

#[test]
fn commits_go_to_the_log_storage_and_truncation_to_the_segment() {
    let seg = Arc::new(MemStorage::new(128 * 1024));
    let log = Arc::new(MemStorage::new(LOG.end() as usize));
    Rvm::create_log(&*log, LOG).unwrap();
    {
        let rvm = Rvm::initialize_with_log(seg.clone(), log.clone(), opts()).unwrap();
        commit(&rvm, 100, b"external log").unwrap();
        let s = seg.snapshot();
        assert!(
            s.iter().all(|&b| b == 0),
            "a commit wrote the segment storage"
        );
        assert!(log.snapshot()[(LOG.offset + 8192) as usize..]
            .windows(12)
            .any(|w| w == b"external log"));
        // dropped without close: a crash after a durable commit
    }
    let rvm = Rvm::initialize_with_log(seg.clone(), log.clone(), opts()).unwrap();
    assert_eq!(rvm.stats().records_recovered, 1);
    let r = rvm.map(SEG).unwrap();
    assert_eq!(&r.bytes()[100..112], b"external log");
    drop(r);
    rvm.truncate().unwrap();
    let s = seg.snapshot();
    let at = (SEG.offset + 100) as usize;
    assert_eq!(&s[at..at + 12], b"external log");
    assert_eq!(rvm.stats().truncations, 1);
}

#[test]
fn a_failing_log_device_fails_the_instance_and_loses_nothing_committed() {
    let seg = Arc::new(MemStorage::new(128 * 1024));
    let mem = Arc::new(MemStorage::new(LOG.end() as usize));
    Rvm::create_log(&*mem, LOG).unwrap();
    let log = Arc::new(FaultStorage::new(mem.clone()));
    let rvm = Rvm::initialize_with_log(seg.clone(), log.clone(), opts()).unwrap();
    commit(&rvm, 0, b"first").unwrap();
    log.fail_after(FaultOp::Any, 0, libc_eio(), true);
    assert!(commit(&rvm, 8, b"second").is_err());
    assert!(rvm.failure().is_some());
    drop(rvm);
    let rvm = Rvm::initialize_with_log(seg, mem, opts()).unwrap();
    let r = rvm.map(SEG).unwrap();
    assert_eq!(&r.bytes()[0..5], b"first"); // "second" may or may not be there: its write failed
}

fn libc_eio() -> i32 {
    5
}
