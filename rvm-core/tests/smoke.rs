use std::sync::Arc;

use rvm_core::*;

const LOG: Area = Area {
    offset: 0,
    len: 64 * 1024,
};
const SEG: Area = Area {
    offset: 64 * 1024,
    len: 64 * 1024,
};

#[test]
fn file_storage_commit_recover() {
    let f = tempfile::tempfile().unwrap();
    f.set_len(128 * 1024).unwrap();
    let st: Arc<dyn Storage> = Arc::new(FileStorage::new(f));
    Rvm::create_log(&*st, LOG).unwrap();
    let opts = || RvmOptions {
        log: LOG,
        ..Default::default()
    };
    {
        let rvm = Rvm::initialize(st.clone(), opts()).unwrap();
        let mut r = rvm.map(SEG).unwrap();
        let mut t = r.begin_transaction(RestoreMode::Restore);
        t.write(10, b"hello").unwrap();
        t.end(CommitMode::Flush).unwrap();
        let mut t = r.begin_transaction(RestoreMode::NoRestore);
        t.write(4000, b"world!!").unwrap();
        t.end(CommitMode::NoFlush).unwrap();
        rvm.flush().unwrap();
    }
    let rvm = Rvm::initialize(st.clone(), opts()).unwrap();
    let r = rvm.map(SEG).unwrap();
    assert_eq!(&r.bytes()[10..15], b"hello");
    assert_eq!(&r.bytes()[4000..4007], b"world!!");
    assert_eq!(rvm.stats().records_recovered, 2);
}
