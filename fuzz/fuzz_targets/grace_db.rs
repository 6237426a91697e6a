//! Fuzz target for the cluster grace database decoder (`rnfs_rados::grace::GraceDb::decode`):
//! the object comes from RADOS, written by other heads, so anything may be in it. Whatever
//! decodes must encode back to a database that decodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rnfs_rados::grace::{GraceDb, DB_BYTES_MAX};

fuzz_target!(|data: &[u8]| {
    if let Ok(db) = GraceDb::decode(data) {
        let again = db.encode();
        assert!(again.len() <= DB_BYTES_MAX);
        assert_eq!(GraceDb::decode(&again).as_ref(), Ok(&db));
    }
});
