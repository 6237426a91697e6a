//! A change of metadata through a CephFS export is durable when it is answered (RFC 1813 §3.3):
//! the Ceph client may keep a SETATTR in its cache (it holds the caps), so a head killed right
//! after answering would lose it, and the other heads would wait for the dead client's session
//! to time out before they saw anything. Head A answers a SETATTR and is SIGKILLed at once; head
//! B, asked by libnfs's `nfs-ls`, must show the new mode and size within seconds.
//!
//! The SETATTR comes from rnfsd's own client (libnfs's tools cannot send one); the check is
//! libnfs's. Without Ceph installed the test is skipped with the reason; in CI it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::ceph::{head_config, Admin};
use common::*;
use rnfs_cephfs::test_cluster::TestCluster;
use rnfs_client::Client;
use rnfs_nfs3::sattr3;
use rnfs_storage::{Backend, CreateMode, Identity, SetAttrs};

const CEPH_DIR: &str = "/durable";

fn head(cluster: &TestCluster, listen: &str) -> TestServer {
    let mut srv = TestServer::new().listen(&[listen]);
    srv.set_config(&head_config(cluster, CEPH_DIR, "admin", ""));
    srv
}

#[test]
fn a_setattr_answered_by_a_head_survives_its_sigkill() {
    let Some(cluster) = TestCluster::start().unwrap() else {
        return;
    };
    // The export directory and a file of uid 1000, through libcephfs.
    let admin = Admin::new(&cluster);
    let dir = admin.mkdir(&admin.root(), &CEPH_DIR[1..], 0o777);
    let user = Identity {
        uid: USER,
        gid: USER,
        groups: vec![],
    };
    admin
        .fs
        .create(&user, &dir, b"f", &CreateMode::Guarded(SetAttrs::default()))
        .unwrap();
    drop(admin);

    let mut a = head(&cluster, "127.0.0.1:0");
    a.start();
    let mut b = head(&cluster, "127.0.0.2:0");
    let key = std::fs::read(a.state_dir().join("handle.key")).unwrap();
    std::fs::write(b.state_dir().join("handle.key"), key).unwrap();
    set_mode(&b.state_dir().join("handle.key"), 0o600);
    b.start();

    // Through head A: the file is read (so A's Ceph client holds its caps), then changed.
    let mut c = Client::connect_tcp(a.tcp_addr())
        .unwrap()
        .with_auth_sys(USER, USER, &[]);
    let r = c.mount(CEPH_DIR.as_bytes()).unwrap();
    let f = c.lookup(&r, b"f").unwrap().object;
    c.getattr(&f).unwrap();
    let change = sattr3 {
        mode: Some(0o640),
        size: Some(12_345),
        ..Default::default()
    };
    c.setattr(&f, change, None).unwrap();
    a.kill_hard();
    let killed = Instant::now();

    let url = {
        let addr = b.tcp_addr();
        format!(
            "nfs://{}{CEPH_DIR}?version=3&nfsport={p}&mountport={p}&uid={USER}&gid={USER}",
            addr.ip(),
            p = addr.port()
        )
    };
    let ls = nfs_ls(&url, false, Duration::from_secs(20));
    ls.assert_success();
    let entries = parse_ls(&ls.stdout_str()).unwrap();
    let e = entries
        .iter()
        .find(|e| e.path.ends_with('f'))
        .unwrap_or_else(|| panic!("{entries:?}"));
    eprintln!(
        "head B listed the file {:?} after head A's SIGKILL",
        killed.elapsed()
    );
    assert_eq!((e.size, e.mode.as_str()), (12_345, "-rw-r-----"), "{e:?}");
    assert!(
        killed.elapsed() < Duration::from_secs(15),
        "head B waited {:?} for the dead head's session",
        killed.elapsed()
    );
    drop(b);
}
