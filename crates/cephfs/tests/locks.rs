//! POSIX record locks held in the MDS (`ceph_ll_setlk`/`ceph_ll_getlk`) against a real
//! single-host cluster: two mounts stand for two rnfsd heads (two CephFS clients).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use rnfs_cephfs::test_cluster::TestCluster;
use rnfs_cephfs::{Mount, MountConfig, Perm};

fn mount(cluster: &TestCluster) -> Mount {
    Mount::new(&MountConfig {
        conf: cluster.conf().to_owned(),
        client_id: "admin".into(),
        fs_name: Some("cephfs".into()),
        root: "/".into(),
        uuid: None,
    })
    .expect("mount")
}

#[test]
fn record_locks_conflict_across_clients() {
    let Some(cluster) = TestCluster::start().unwrap() else {
        return;
    };
    let (m1, m2) = (mount(&cluster), mount(&cluster));
    let root = Perm::new(0, 0, &[]).unwrap();
    let (_, f1, _) = m1
        .create(&m1.root().unwrap(), b"locked", 0o644, libc::O_RDWR, &root)
        .unwrap();
    let (ino2, _) = m2.lookup(&m2.root().unwrap(), b"locked", &root).unwrap();
    let f2 = m2.open(&ino2, libc::O_RDWR, &root).unwrap();
    let f2_ro = m2.open(&ino2, libc::O_RDONLY, &root).unwrap();

    // Head 1, owner 1: exclusive over [100, 200).
    let t = Instant::now();
    assert!(f1.try_lock(1, true, 100, 100).unwrap());
    eprintln!("setlk round trip: {:?}", t.elapsed());
    // Head 2 cannot take it, shared or exclusive, and getlk names it.
    assert!(!f2.try_lock(7, true, 150, 10).unwrap());
    assert!(!f2_ro.try_lock(8, false, 0, 0).unwrap());
    assert_eq!(
        f2.lock_conflict(7, false, 0, 0).unwrap(),
        Some((true, 100, 100))
    );
    // A range beside it is free.
    assert!(f2.try_lock(7, true, 200, 50).unwrap());
    assert_eq!(
        f2.lock_conflict(7, true, 100, 100).unwrap(),
        Some((true, 100, 100))
    );
    // Another owner on the same client conflicts too; the same owner does not.
    assert!(!f1.try_lock(2, false, 120, 1).unwrap());
    assert!(
        f1.try_lock(1, false, 100, 100).unwrap(),
        "downgrade in place"
    );
    assert_eq!(
        f1.lock_conflict(1, true, 0, 0).unwrap(),
        Some((true, 200, 50))
    );
    // Shared locks coexist across clients.
    assert!(f2_ro.try_lock(8, false, 100, 10).unwrap());
    // Unlock frees it for the other client.
    f1.unlock(1, 0, 0).unwrap();
    f2_ro.unlock(8, 0, 0).unwrap();
    assert_eq!(f2.lock_conflict(7, true, 0, 0).unwrap(), None);
    assert!(f2.try_lock(7, true, 0, 0).unwrap());
    assert!(!f1.try_lock(1, false, 5, 1).unwrap());
    // Closing a file drops its locks in the MDS.
    drop(f2);
    assert!(f1.try_lock(1, true, 0, 0).unwrap());
}
