//! A `backend = "ceph"` export served by the real `rnfsd` binary from a throw-away Ceph cluster
//! (scripts/ceph-cluster), used with libnfs's tools: a file of a few MiB copied in with `nfs-cp`
//! comes back byte-exact through `nfs-cat` and is listed by `nfs-ls` (also a directory of many
//! pages). Then two heads (127.0.0.1 and 127.0.0.2) with the same handle key serve the same file
//! system: what one writes the other reads, and a handle from one resolves on the other.
//!
//! Without Ceph installed the test is skipped with the reason; in CI (`CI=true`) it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::ceph::{head_config, Admin};
use common::*;
use rnfs_cephfs::test_cluster::TestCluster;
use rnfs_client::Client;

/// The directory inside CephFS that is exported (and its mount path).
const CEPH_DIR: &str = "/nfs";

/// Creates `CEPH_DIR` (mode 0777, so libnfs's uid 1000 may write) directly through libcephfs.
fn make_export_dir(cluster: &TestCluster) {
    let admin = Admin::new(cluster);
    let dir = admin.mkdir(&admin.root(), &CEPH_DIR[1..], 0o777);
    let many = admin.mkdir(&dir, "many", 0o755);
    for i in 0..MANY_FILES {
        admin.create(&many, &format!("file-{i:04}"), 0o644);
    }
}

/// Files in `CEPH_DIR/many`: more than one READDIRPLUS page of libnfs.
const MANY_FILES: usize = 600;

/// A head serving `CEPH_DIR` of the cluster on `listen`.
fn head(cluster: &TestCluster, listen: &str) -> TestServer {
    let mut srv = TestServer::new().listen(&[listen]);
    srv.set_config(&config(cluster, "admin"));
    srv
}

/// The config of a head: `CEPH_DIR` of the cluster as Ceph client `client_id`.
fn config(cluster: &TestCluster, client_id: &str) -> String {
    head_config(cluster, CEPH_DIR, client_id, "")
}

fn url(srv: &TestServer, file: &str) -> String {
    let a = srv.tcp_addr();
    format!(
        "nfs://{}{CEPH_DIR}{file}?version=3&nfsport={p}&mountport={p}&uid={USER}&gid={USER}",
        a.ip(),
        p = a.port()
    )
}

fn client(srv: &TestServer) -> Client {
    Client::connect_tcp(srv.tcp_addr())
        .unwrap()
        .with_auth_sys(USER, USER, &[])
}

#[test]
fn ceph_export_over_libnfs_and_two_heads() {
    let Some(cluster) = TestCluster::start().unwrap() else {
        return;
    };
    eprintln!("cluster up in {:?}", cluster.started_in);
    make_export_dir(&cluster);

    let mut a = head(&cluster, "127.0.0.1:0");
    a.start();
    let len = 5 << 20;
    let src = a.scratch().join("src.bin");
    write_random_file(&src, len, 19);
    nfs_cp(src.to_str().unwrap(), &url(&a, "/big.bin"), TOOL_TIMEOUT).assert_success();
    let cat = nfs_cat(&url(&a, "/big.bin"), TOOL_TIMEOUT);
    cat.assert_success();
    let want = std::fs::read(&src).unwrap();
    assert!(cat.stdout == want, "nfs-cat via head A differs");
    let ls = nfs_ls(&url(&a, ""), false, TOOL_TIMEOUT);
    ls.assert_success();
    let entries = parse_ls(&ls.stdout_str()).unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e.path.ends_with("big.bin") && e.size == len && e.mode.starts_with('-')),
        "{entries:?}"
    );
    // A directory listed in several pages, each continuing the Ceph stream of the one before
    // (storage's ceph_listing): every name once, also the second time (from the Ceph client's
    // cache, which the first listing completed).
    for pass in 0..2 {
        let ls = nfs_ls(&url(&a, "/many"), false, TOOL_TIMEOUT);
        ls.assert_success();
        let mut names: Vec<String> = parse_ls(&ls.stdout_str())
            .unwrap()
            .into_iter()
            .filter_map(|e| e.path.rsplit('/').next().map(str::to_owned))
            .filter(|n| n.starts_with("file-"))
            .collect();
        names.sort();
        let want: Vec<String> = (0..MANY_FILES).map(|i| format!("file-{i:04}")).collect();
        assert_eq!(names, want, "listing {pass}");
    }

    // Head B on another address, with A's handle key: the same file system, the same handles.
    let mut b = head(&cluster, "127.0.0.2:0");
    let key = std::fs::read(a.state_dir().join("handle.key")).unwrap();
    let b_key = b.state_dir().join("handle.key");
    std::fs::write(&b_key, key).unwrap();
    set_mode(&b_key, 0o600);
    b.start();
    let cat = nfs_cat(&url(&b, "/big.bin"), TOOL_TIMEOUT);
    cat.assert_success();
    assert!(cat.stdout == want, "nfs-cat via head B differs");
    // And the other way: written through B, read through A.
    let src2 = b.scratch().join("src2.bin");
    write_random_file(&src2, 3 << 20, 20);
    nfs_cp(
        src2.to_str().unwrap(),
        &url(&b, "/from-b.bin"),
        TOOL_TIMEOUT,
    )
    .assert_success();
    let cat = nfs_cat(&url(&a, "/from-b.bin"), TOOL_TIMEOUT);
    cat.assert_success();
    assert!(
        cat.stdout == std::fs::read(&src2).unwrap(),
        "nfs-cat via head A of B's file differs"
    );

    // A handle from head A's LOOKUP is served by head B.
    let (mut ca, mut cb) = (client(&a), client(&b));
    let (ra, rb) = (
        ca.mount(CEPH_DIR.as_bytes()).unwrap(),
        cb.mount(CEPH_DIR.as_bytes()).unwrap(),
    );
    assert_eq!(ra, rb, "both heads give the same root handle");
    let fh = ca.lookup(&ra, b"big.bin").unwrap().object;
    let rd = cb.read(&fh, 0, 4096).unwrap();
    assert_eq!(rd.data.as_bytes(), &want[..4096]);
    assert_eq!(cb.getattr(&fh).unwrap().size, len);
    // A reload that changes only the client id gives the export a new Ceph connection (it
    // used to keep the old one, so a changed `ceph_conf` needed a restart); an unchanged
    // reload keeps it.
    let same = ctl(a.state_dir(), &["exports", "reload"]);
    assert_eq!(same["unchanged"], serde_json::json!([CEPH_DIR]), "{same}");
    a.set_config(&config(&cluster, "other"));
    let moved = ctl(a.state_dir(), &["exports", "reload"]);
    assert_eq!(moved["added"], serde_json::json!([CEPH_DIR]), "{moved}");
    assert_eq!(moved["removed"], serde_json::json!([CEPH_DIR]), "{moved}");
    let cat = nfs_cat(&url(&a, "/from-b.bin"), TOOL_TIMEOUT);
    cat.assert_success();
    assert!(cat.stdout == std::fs::read(&src2).unwrap());
    eprintln!("two heads agree; stopping");
    // Heads stop (TestServer's Drop) before the cluster does.
    drop((a, b));
}
