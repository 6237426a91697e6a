//! NLM v4 and NSM v1 against the real server with rnfsd's own client (`rnfs-client`): typed
//! calls on the NFS port, and its `GrantedService` as the client host's lock manager, called
//! back with GRANTED when a blocked lock is granted.
//!
//! The server finds a client's lock manager through the portmapper on port 111 of the client's
//! address, so each test runs its body in a private network namespace: the test re-executes its
//! own binary (just that test) under `unshare --net --mount`, marked by [`IN_NETNS`]; there the
//! child brings `lo` up, starts rnfsd and binds the `GrantedService` (port 111 included).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use common::{Proto, TestServer};
use rnfs_client::nfs3::nfs_fh3;
use rnfs_client::nlm::nsm;
use rnfs_client::nlm::*;
use rnfs_client::{Client, GrantedService, LockOwner};

/// Set in the re-executed test binary running inside the namespace.
const IN_NETNS: &str = "RNFS_IN_NETNS";
/// How long the whole child (server start, scenario, server stop) may take.
const CHILD_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a GRANTED callback may take to arrive.
const GRANTED_WAIT: Duration = Duration::from_secs(5);

/// Runs `body` in a new network and mount namespace: in the parent, re-executes this test there
/// and asserts it passed; in that child, brings `lo` up and runs `body`.
fn in_netns(test_name: &str, body: fn()) {
    if std::env::var_os(IN_NETNS).is_some() {
        let up = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .expect("ip");
        assert!(up.success(), "ip link set lo up: {up}");
        body();
        return;
    }
    common::require_root("network namespaces and port 111");
    let mut cmd = Command::new("unshare");
    cmd.args(["--net", "--mount", "--propagation", "private"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(IN_NETNS, "1");
    let out = common::run_bounded(&mut cmd, CHILD_TIMEOUT);
    assert!(out.success(), "{}", out.describe());
    // `--exact` with a wrong name runs nothing and succeeds: make sure the test ran.
    assert!(
        out.stdout_str().contains("test result: ok. 1 passed"),
        "the child did not run {test_name}:\n{}",
        out.describe()
    );
    print!("{}", out.stdout_str());
}

/// A server exporting a writable file `f`, listening on `listen`.
fn server_with_file(listen: &[&str]) -> TestServer {
    let mut server = TestServer::new().listen(listen);
    let path = server.export().join("f");
    std::fs::write(&path, b"locked data").unwrap();
    common::set_mode(&path, 0o666);
    server.start();
    server
}

/// The server's listener for `proto` on IPv6 or IPv4 loopback.
fn listener(server: &TestServer, proto: Proto, v6: bool) -> SocketAddr {
    server
        .listeners()
        .iter()
        .find(|l| l.proto == proto && l.addr.is_ipv6() == v6)
        .unwrap_or_else(|| {
            panic!(
                "no {proto:?} listener (IPv6: {v6}) in {:?}",
                server.listeners()
            )
        })
        .addr
}

/// A client of the server's TCP or UDP listener on IPv6 or IPv4 loopback.
fn connect(server: &TestServer, proto: Proto, v6: bool) -> Client {
    let addr = listener(server, proto, v6);
    let c = match proto {
        Proto::Tcp => Client::connect_tcp(addr),
        Proto::Udp => Client::connect_udp(addr),
    };
    c.unwrap()
        .with_auth_sys(common::USER, common::USER, &[common::USER])
}

fn file_handle(c: &mut Client, server: &TestServer) -> nfs_fh3 {
    let root = c.mount(server.mount_path().as_bytes()).unwrap();
    c.lookup(&root, b"f").unwrap().object
}

fn stat(r: &nlm4_res) -> nlm4_stats {
    r.stat.stat
}

/// Host A holds a lock, host B waits for it (LOCK with block), A unlocks, and B's lock manager
/// (`svc`) is called back with GRANTED describing B's request. A calls over TCP, B over UDP, both
/// on IPv6 loopback if `v6`, else on IPv4.
fn blocked_lock_is_called_back(server: &TestServer, v6: bool, svc: &GrantedService) {
    let mut a = connect(server, Proto::Tcp, v6);
    let mut b = connect(server, Proto::Udp, v6);
    let fh = file_handle(&mut a, server);
    let (owner_a, owner_b) = (LockOwner::new("host-a", 1), LockOwner::new("host-b", 2));

    let args = owner_a.lock_args(&fh, true, 0, 10);
    let r = a.nlm_lock(&args).unwrap();
    assert_eq!(stat(&r), nlm4_stats::NLM4_GRANTED);
    assert_eq!(r.cookie, args.cookie, "the cookie is echoed");

    let mut wait = owner_b.lock_args(&fh, true, 0, 10);
    wait.block = true;
    assert_eq!(stat(&b.nlm_lock(&wait).unwrap()), nlm4_stats::NLM4_BLOCKED);
    assert_eq!(svc.recv_granted(Duration::from_millis(200)), None);

    assert_eq!(
        stat(&a.nlm_unlock(&owner_a.unlock_args(&fh, 0, 10)).unwrap()),
        nlm4_stats::NLM4_GRANTED
    );
    let granted = svc
        .recv_granted(GRANTED_WAIT)
        .expect("no GRANTED callback within 5 s");
    assert!(granted.exclusive);
    assert_eq!(granted.alock.caller_name.as_bytes(), b"host-b");
    assert_eq!(granted.alock.oh.as_bytes(), &owner_b.oh[..]);
    assert_eq!(granted.alock.fh.as_bytes(), fh.data.as_bytes());
    assert_eq!(
        (
            granted.alock.svid,
            granted.alock.l_offset,
            granted.alock.l_len
        ),
        (2, 0, 10)
    );

    // B holds it now: another owner's TEST names B.
    let test = b
        .nlm_test(&LockOwner::new("host-b", 3).test_args(&fh, false, 5, 1))
        .unwrap();
    assert_eq!(
        test.test_stat,
        nlm4_testrply::Denied(nlm4_holder {
            exclusive: true,
            svid: 2,
            oh: Opaque(owner_b.oh.clone()),
            l_offset: 0,
            l_len: 10,
        })
    );
    // Asking again (as a client that missed the callback would) is granted at once.
    assert_eq!(stat(&b.nlm_lock(&wait).unwrap()), nlm4_stats::NLM4_GRANTED);
}

fn scenario_ipv4() {
    let server = server_with_file(&["127.0.0.1:0"]);
    let svc = GrantedService::bind(Ipv4Addr::LOCALHOST.into()).expect("bind 127.0.0.1:111");
    blocked_lock_is_called_back(&server, false, &svc);

    let mut a = connect(&server, Proto::Tcp, false);
    let mut b = connect(&server, Proto::Udp, false);
    let fh = file_handle(&mut a, &server);
    let (owner_a, owner_b, owner_c) = (
        LockOwner::new("host-a", 1),
        LockOwner::new("host-b", 2),
        LockOwner::new("host-c", 9),
    );

    // A blocked request cancelled: nothing left to cancel afterwards, and no callback.
    let mut wait = owner_c.lock_args(&fh, true, 5, 1);
    wait.block = true;
    assert_eq!(stat(&a.nlm_lock(&wait).unwrap()), nlm4_stats::NLM4_BLOCKED);
    let cancel = owner_c.cancel_args(&fh, true, 5, 1);
    assert_eq!(
        stat(&a.nlm_cancel(&cancel).unwrap()),
        nlm4_stats::NLM4_GRANTED
    );
    assert_eq!(
        stat(&a.nlm_cancel(&cancel).unwrap()),
        nlm4_stats::NLM4_DENIED
    );

    // Share reservations: A opens read-write denying writers; B may read, not write.
    let share_a = owner_a.share_args(&fh, fsh4_mode::fsm_DW, fsh4_access::fsa_RW);
    let r = a.nlm_share(&share_a).unwrap();
    assert_eq!(
        (r.stat, &r.cookie),
        (nlm4_stats::NLM4_GRANTED, &share_a.cookie)
    );
    let writer = owner_b.share_args(&fh, fsh4_mode::fsm_DN, fsh4_access::fsa_W);
    assert_eq!(b.nlm_share(&writer).unwrap().stat, nlm4_stats::NLM4_DENIED);
    let reader = owner_b.share_args(&fh, fsh4_mode::fsm_DN, fsh4_access::fsa_R);
    assert_eq!(b.nlm_share(&reader).unwrap().stat, nlm4_stats::NLM4_GRANTED);
    assert_eq!(
        b.nlm_unshare(&reader).unwrap().stat,
        nlm4_stats::NLM4_GRANTED
    );
    assert_eq!(
        a.nlm_unshare(&share_a).unwrap().stat,
        nlm4_stats::NLM4_GRANTED
    );
    assert_eq!(b.nlm_share(&writer).unwrap().stat, nlm4_stats::NLM4_GRANTED);
    assert_eq!(
        b.nlm_unshare(&writer).unwrap().stat,
        nlm4_stats::NLM4_GRANTED
    );

    // SM_NOTIFY for host-a frees all of host-a's locks (both owners), not host-b's.
    for (svid, off) in [(1, 100), (4, 200)] {
        let r = a
            .nlm_lock(&LockOwner::new("host-a", svid).lock_args(&fh, true, off, 10))
            .unwrap();
        assert_eq!(stat(&r), nlm4_stats::NLM4_GRANTED);
    }
    let probe = |c: &mut Client, off: u64| {
        c.nlm_test(&owner_c.test_args(&fh, true, off, 1))
            .unwrap()
            .test_stat
            .stat()
    };
    assert_eq!(probe(&mut b, 100), nlm4_stats::NLM4_DENIED);
    let st = b.sm_stat(b"host-a").unwrap();
    assert_eq!(st.res_stat, nsm::res::STAT_FAIL, "rnfsd monitors no one");
    b.sm_notify(b"host-z", 3).unwrap();
    assert_eq!(probe(&mut b, 100), nlm4_stats::NLM4_DENIED, "another name");
    b.sm_notify(b"host-a", 3).unwrap();
    assert_eq!(probe(&mut b, 100), nlm4_stats::NLM4_GRANTED);
    assert_eq!(probe(&mut b, 200), nlm4_stats::NLM4_GRANTED);
    assert_eq!(
        probe(&mut a, 0),
        nlm4_stats::NLM4_DENIED,
        "host-b's lock stays"
    );
    // FREE_ALL: host-b goes too.
    b.nlm_free_all(b"host-b", 5).unwrap();
    assert_eq!(probe(&mut a, 0), nlm4_stats::NLM4_GRANTED);
    assert_eq!(svc.recv_granted(Duration::from_millis(200)), None);
    assert_eq!(svc.dropped(), 0);
}

#[test]
fn own_client_locks_blocks_is_called_back_shares_and_notifies_over_ipv4() {
    in_netns(
        "own_client_locks_blocks_is_called_back_shares_and_notifies_over_ipv4",
        scenario_ipv4,
    );
}

fn scenario_ipv6() {
    if let Err(e) = std::net::UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)) {
        println!("skipped: no IPv6 loopback in the namespace ({e})");
        return;
    }
    let server = server_with_file(&["127.0.0.1:0", "[::1]:0"]);
    let svc = GrantedService::bind(IpAddr::V6(Ipv6Addr::LOCALHOST)).expect("bind [::1]:111");
    blocked_lock_is_called_back(&server, true, &svc);
}

#[test]
fn own_client_is_called_back_with_granted_over_ipv6() {
    in_netns(
        "own_client_is_called_back_with_granted_over_ipv6",
        scenario_ipv6,
    );
}
