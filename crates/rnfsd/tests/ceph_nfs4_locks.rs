//! NFSv4 byte-range locks on a CephFS export are CephFS record locks too, so they conflict with
//! locks taken through another head, NLM's included: head A (127.0.0.1) holds an NLM lock of
//! nlmtool (libnfs's NLM API); an NFSv4.1 client of head B (127.0.0.2, rnfsd's own v4 client)
//! is denied it (LOCK and LOCKT), gets the range beside it, and that range is then refused to
//! the NLM client through head A until the NFSv4 client unlocks it.
//!
//! Without Ceph installed the test is skipped with the reason; in CI (`CI=true`) it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use common::ceph::{head_config, Admin};
use common::nlm::NlmHost;
use common::*;
use rnfs_cephfs::test_cluster::TestCluster;
use rnfs_client::nfs4::{self, nfsstat4, ArgOp};
use rnfs_client::v4::{self, Session};
use rnfs_client::Client;

const CEPH_DIR: &str = "/v4locks";
const WRITE: nfs4::nfs_lock_type4 = nfs4::nfs_lock_type4::WRITE_LT;

/// `CEPH_DIR` with a file `f` anyone may lock, made through libcephfs.
fn make_export(cluster: &TestCluster) {
    let admin = Admin::new(cluster);
    let dir = admin.mkdir(&admin.root(), &CEPH_DIR[1..], 0o777);
    admin.create(&dir, "f", 0o666);
}

fn head(cluster: &TestCluster, listen: &str) -> TestServer {
    let mut srv = TestServer::new().listen(&[listen]);
    srv.set_config(&head_config(cluster, CEPH_DIR, "admin", ""));
    srv
}

#[test]
fn nfs4_locks_conflict_with_nlm_locks_of_another_head() {
    let Some(cluster) = TestCluster::start().unwrap() else {
        return;
    };
    make_export(&cluster);
    let mut a = head(&cluster, "127.0.0.1:0");
    a.start();
    let mut b = head(&cluster, "127.0.0.2:0");
    b.start();

    let mut x = NlmHost::new(&a, CEPH_DIR, "f", "host-x");
    assert_eq!(x.ask("lock 1 1 0 10"), "GRANTED");

    let c = Client::connect_tcp_from(
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), 0),
        b.tcp_addr(),
    )
    .unwrap()
    .with_auth_sys(USER, USER, &[USER]);
    let mut s = Session::establish(c, format!("v4-{}", std::process::id()).as_bytes()).unwrap();
    let root = s.lookup_path(&[&CEPH_DIR[1..]]).unwrap();
    let (fh, open) = s
        .open(&root, "f", false, nfs4::OPEN4_SHARE_ACCESS_BOTH)
        .unwrap();
    match s.lock(&fh, &open, WRITE, 0, 10) {
        Err(v4::Error::Denied(d)) => assert_eq!((d.offset, d.length), (0, 10), "{d:?}"),
        other => panic!("LOCK over head A's NLM lock: {other:?}"),
    }
    let lockt = nfs4::LOCKT4args {
        locktype: WRITE,
        offset: 5,
        length: 1,
        owner: s.lock_owner(),
    };
    let r = s
        .compound(vec![ArgOp::PutFh(fh.clone()), ArgOp::LockT(lockt)])
        .unwrap();
    assert_eq!(
        r.results.last().unwrap().status,
        nfsstat4::NFS4ERR_DENIED,
        "LOCKT"
    );

    let held = s.lock(&fh, &open, WRITE, 20, 10).unwrap();
    assert!(
        x.ask("test 2 1 20 10").starts_with("DENIED"),
        "head A sees it"
    );
    assert_eq!(x.ask("lock 2 1 25 1"), "DENIED");
    s.locku(&fh, &held, WRITE, 20, 10).unwrap();
    assert_eq!(x.ask("test 2 1 20 10"), "GRANTED");
    assert_eq!(x.ask("unlock 1 0 10"), "GRANTED");
    s.lock(&fh, &open, WRITE, 0, 10).unwrap();
    drop((x, s));
    drop((a, b));
}
