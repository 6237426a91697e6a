//! The CephFS backend against a cluster this test starts (scripts/ceph-cluster) and stops:
//! two backends on one file system act as two rnfsd heads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use rnfs_cephfs::test_cluster::TestCluster;
use rnfs_storage::ceph::{CephConfig, CephFs};
use rnfs_storage::handle::HandleKey;
use rnfs_storage::{Backend, CreateMode, Error, Identity, NodeKind, SetAttrs, Stability};

fn head(cluster: &TestCluster, key: &HandleKey, path: &str) -> CephFs {
    let cfg = CephConfig {
        conf: cluster.conf().to_owned(),
        client_id: "admin".into(),
        fs_name: Some("cephfs".into()),
        path: path.into(),
    };
    CephFs::new(7, &cfg, key).unwrap()
}

#[test]
fn two_heads_serve_one_file_system() {
    let Some(cluster) = TestCluster::start().unwrap() else {
        return;
    };
    eprintln!("cluster up in {:?}", cluster.started_in);
    let key = HandleKey::random().unwrap();
    let t0 = Instant::now();
    let a = head(&cluster, &key, "/");
    let root = Identity::root();
    let r = a.handle_key().verify(7, &a.root()).unwrap();
    let exp = a
        .mkdir(
            &root,
            &r,
            b"export",
            &SetAttrs {
                mode: Some(0o777),
                ..Default::default()
            },
        )
        .unwrap();
    drop(exp);
    let a = head(&cluster, &key, "/export");
    let b = head(&cluster, &key, "/export");
    assert_eq!(a.root(), b.root(), "both heads give the same root handle");
    let ra = a.handle_key().verify(7, &a.root()).unwrap();
    let user = Identity {
        uid: 1000,
        gid: 1000,
        groups: vec![],
    };

    // Head A: create and write UNSTABLE, then COMMIT.
    let c = a
        .create(&user, &ra, b"f", &CreateMode::Guarded(SetAttrs::default()))
        .unwrap();
    let fa = a.handle_key().verify(7, &c.handle).unwrap();
    let data = vec![0x5au8; 100_000];
    let w = a.write(&user, &fa, 0, &data, Stability::Unstable).unwrap();
    assert_eq!((w.count, w.committed), (100_000, Stability::Unstable));
    a.commit(&user, &fa, 0, 0).unwrap();
    let w = a
        .write(&user, &fa, 100_000, b"tail", Stability::FileSync)
        .unwrap();
    assert_eq!(w.committed, Stability::FileSync);

    // Head B: the same handle resolves, and reads what A wrote.
    let fb = b.handle_key().verify(7, &c.handle).unwrap();
    let rd = b.read(&user, &fb, 99_998, 100).unwrap();
    assert_eq!(&rd.data[..], b"\x5a\x5atail");
    assert!(rd.eof);
    let (h, attr) = b.lookup(&user, &ra, b"f").unwrap();
    assert_eq!(
        (h, attr.uid, attr.size_bytes),
        (c.handle.clone(), 1000, 100_004)
    );

    // Listing, permissions, and what is not supported yet.
    let mut names = Vec::new();
    b.readdir(&user, &ra, 0, [0; 8], true, &mut |e| {
        names.push(e.name.to_vec());
        true
    })
    .unwrap();
    assert!(names.contains(&b"f".to_vec()), "{names:?}");
    let other = Identity {
        uid: 2000,
        gid: 2000,
        groups: vec![],
    };
    let w = b.write(&other, &fb, 0, b"x", Stability::FileSync);
    assert_eq!(w.err(), Some(Error::Access));
    assert_eq!(
        b.mknod(&user, &ra, b"p", NodeKind::Fifo, &SetAttrs::default())
            .err(),
        Some(Error::NotSupp)
    );
    b.remove(&user, &ra, b"f").unwrap();
    assert_eq!(a.getattr(&user, &fa).err(), Some(Error::Stale));
    eprintln!("all checks in {:?}", t0.elapsed());
}
