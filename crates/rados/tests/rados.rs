//! librados against a throw-away cluster (scripts/ceph-cluster): whole-object compare-and-replace
//! and the grace database shared by two "heads" (two connections). Skipped without Ceph
//! installed; fails then under `CI=true`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rnfs_cephfs::test_cluster::TestCluster;
use rnfs_rados::{GraceStore, Rados, Replaced};

#[test]
fn compare_and_replace_and_a_shared_grace_database() {
    let Some(cluster) = TestCluster::start().unwrap() else {
        return;
    };
    let a = Rados::connect(cluster.conf(), "admin", 10).unwrap();
    a.create_pool("rnfsd").unwrap();
    a.create_pool("rnfsd").unwrap(); // again: fine
    let mut io = a.ioctx("rnfsd", "test").unwrap();
    assert_eq!(io.read_versioned("o", 16).unwrap(), None);
    assert_eq!(io.replace("o", None, b"one").unwrap(), Replaced::Done);
    assert_eq!(io.replace("o", None, b"two").unwrap(), Replaced::Raced);
    let (data, v1) = io.read_versioned("o", 16).unwrap().unwrap();
    assert_eq!(data, b"one");
    assert_eq!(io.replace("o", Some(v1), b"two").unwrap(), Replaced::Done);
    assert_eq!(
        io.replace("o", Some(v1), b"three").unwrap(),
        Replaced::Raced
    );
    let (data, v2) = io.read_versioned("o", 16).unwrap().unwrap();
    assert_eq!((data.as_slice(), v2 > v1), (&b"two"[..], true));
    assert!(io.read_versioned("o", 2).is_err(), "larger than allowed");
    io.remove("o").unwrap();
    io.remove("o").unwrap();

    // Two heads, two connections, one database.
    let b = Rados::connect(cluster.conf(), "admin", 10).unwrap();
    let mut ga = GraceStore::new(a.ioctx("rnfsd", "grace").unwrap(), "grace");
    let mut gb = GraceStore::new(b.ioctx("rnfsd", "grace").unwrap(), "grace");
    gb.poll("b", 0, 10_000, 0, &mut |_| {}).unwrap();
    let db = ga.poll("a", 1_000, 11_000, 90_000, &mut |_| {}).unwrap();
    assert!(db.in_grace(1_000));
    assert_eq!(db.unacked("a", 1_000), ["b"]);
    let mut enforced = false;
    let db = gb
        .poll("b", 2_000, 12_000, 0, &mut |db| {
            enforced = db.in_grace(2_000)
        })
        .unwrap();
    assert!(
        db.in_grace(2_000) && enforced,
        "b sees a's grace before it acknowledges it"
    );
    assert!(ga.read().unwrap().unacked("a", 2_000).is_empty());
    let db = ga.poll("a", 3_000, 13_000, 0, &mut |_| {}).unwrap();
    assert!(!db.in_grace(3_000));
    assert_eq!(db.epoch, 1);
}
