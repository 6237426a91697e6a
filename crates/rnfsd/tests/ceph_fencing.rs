//! A head that dies and stays down is fenced by the others (`[cluster] evict_gone_heads`, on by
//! default): once it has not renewed its entry in the grace database for
//! `cluster::evict_after_ms`, head B evicts its CephFS session, so the record lock a client
//! held through it stops blocking B's clients (the MDS alone would keep it until its session
//! autoclose, 300 s). An outage of RADOS longer than that bound (the OSD stopped) makes no head
//! count another dead. A head that was only frozen (SIGSTOP) past that bound is evicted the same
//! way; when it runs again, its Ceph calls are refused and it stops with an error, so that its
//! supervisor restarts it, rather than serve as if it still held its caps and locks.
//!
//! The lock clients are nlmtool (tests/nlm/nlmtool.c, on libnfs's NLM API); nfs-ls (libnfs)
//! makes the calls that find the frozen head fenced. Without Ceph installed the test is skipped
//! with the reason; in CI (`CI=true`) it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::ceph::{head_config, Admin};
use common::nlm::NlmHost;
use common::*;
use rnfs_cephfs::test_cluster::TestCluster;

const CEPH_DIR: &str = "/fenced";
const POLL_MS: u64 = 200;
/// From a head's last renewal to its eviction, for `POLL_MS`: its entry's 5 polls, then
/// `cluster::evict_after_ms` (3 polls + the 10 s RADOS call bound) watched past its end.
const EVICT_AFTER_MS: u64 = 5 * POLL_MS + 3 * POLL_MS + 10_000;

fn host(head: &TestServer, caller_name: &str) -> NlmHost {
    NlmHost::new(head, CEPH_DIR, "f", caller_name)
}

fn head(cluster: &TestCluster, listen: &str, node: &str) -> TestServer {
    let mut srv = TestServer::new()
        .listen(&[listen])
        .args(["--metrics", "127.0.0.1:0"]);
    let extra = format!(
        "[cluster]\nnode_id = \"{node}\"\nceph_conf = {:?}\npoll_ms = {POLL_MS}\n\n\
         [limits]\nlock_grace_ms = 3000\n",
        cluster.conf()
    );
    srv.set_config(&head_config(cluster, CEPH_DIR, "admin", &extra));
    srv
}

/// Asks `command` until it is answered `want`, at most `within`; returns how long that took.
fn until(h: &mut NlmHost, command: &str, want: &str, within: Duration) -> Duration {
    let t = Instant::now();
    loop {
        let got = h.ask(command);
        if got == want {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < within,
            "{command:?} still answered {got:?} after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn evictions(b: &TestServer) -> u64 {
    let status = ctl(b.state_dir(), &["cluster"]);
    status["sessions_evicted"].as_u64().unwrap()
}

#[test]
fn a_dead_or_frozen_head_is_fenced_by_the_others() {
    let Some(cluster) = TestCluster::start().unwrap() else {
        return;
    };
    let admin = Admin::new(&cluster);
    let dir = admin.mkdir(&admin.root(), &CEPH_DIR[1..], 0o777);
    admin.create(&dir, "f", 0o666);
    let mut b = head(&cluster, "127.0.0.2:0", "head-b");
    b.start();
    let mut a = head(&cluster, "127.0.0.1:0", "head-a");
    a.start();
    let mut y = host(&b, "host-y");
    until(&mut y, "test 1 1 0 10", "GRANTED", Duration::from_secs(15));
    let mut x = host(&a, "host-x");
    until(&mut x, "lock 1 1 0 10", "GRANTED", Duration::from_secs(15));
    assert_eq!(y.ask("lock 1 1 0 10"), "DENIED", "x holds it through A");

    // RADOS stops answering for longer than the bound (the OSD is stopped): no head can renew
    // its entry, and none may count another dead for it afterwards.
    cluster.signal("osd.0", "STOP").unwrap();
    std::thread::sleep(Duration::from_millis(EVICT_AFTER_MS + 3000));
    cluster.signal("osd.0", "CONT").unwrap();
    let t = Instant::now();
    while ctl(b.state_dir(), &["cluster"])["last_read_ms_ago"]
        .as_u64()
        .unwrap()
        > POLL_MS * 2
        || ctl(a.state_dir(), &["cluster"])["last_read_ms_ago"]
            .as_u64()
            .unwrap()
            > POLL_MS * 2
    {
        assert!(t.elapsed() < Duration::from_secs(60), "polls never resumed");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Long enough for an eviction to have been decided and made.
    std::thread::sleep(Duration::from_secs(3));
    assert!(a.is_running() && b.is_running());
    assert_eq!((evictions(&a), evictions(&b)), (0, 0), "{}", b.log_tail());
    for head in [&a, &b] {
        let log = head.log();
        assert!(
            !log.contains("dead head") && !log.contains("came back"),
            "an eviction was started after the outage:\n{}",
            head.log_tail()
        );
    }
    assert_eq!(y.ask("lock 1 1 0 10"), "DENIED", "x still holds it");

    // A dies and stays down: B evicts its session once A's entry has run out for
    // EVICT_AFTER_MS, and the MDS then drops x's lock.
    a.kill_hard();
    drop(x);
    let waited = until(&mut y, "lock 1 1 0 10", "GRANTED", Duration::from_secs(60));
    eprintln!("B granted A's dead client's lock {waited:?} after A died");
    // A's last renewal may have been up to a poll before the kill.
    assert!(
        waited >= Duration::from_millis(EVICT_AFTER_MS - POLL_MS),
        "granted before A could be evicted: {waited:?}"
    );
    let status = ctl(b.state_dir(), &["cluster"]);
    assert_eq!(status["sessions_evicted"], 1, "{status}");
    assert_eq!(status["evictions"][0]["node"], "head-a", "{status}");
    assert_eq!(status["evictions"][0]["ok"], true, "{status}");
    let metrics = scrape_metrics(b.state_dir());
    assert_eq!(metric(&metrics, "rnfsd_cluster_sessions_evicted_total"), 1);
    assert!(b.log().contains("dead head: 1 CephFS session(s) evicted"));
    let text = run_bounded(
        std::process::Command::new(env!("CARGO_BIN_EXE_rnfsd")).args([
            "ctl",
            "--state-dir",
            b.state_dir().to_str().unwrap(),
            "cluster",
        ]),
        Duration::from_secs(30),
    )
    .stdout_str();
    assert!(
        text.contains("evicted 10.6s after their entry ends (1 so far)")
            && text.contains("head-a (dead for"),
        "{text}"
    );
    assert_eq!(y.ask("unlock 1 0 10"), "GRANTED");

    // A comes back (a new session under the same name), then freezes past the bound.
    a.start();
    let mut x = host(&a, "host-x");
    until(&mut x, "lock 1 1 0 10", "GRANTED", Duration::from_secs(20));
    drop(x);
    let pid = a.pid().unwrap() as libc::pid_t;
    // SAFETY: kill(2) on our own child, not yet reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let t = Instant::now();
    while evictions(&b) < 2 {
        assert!(t.elapsed() < Duration::from_secs(60), "A never evicted");
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("frozen head A evicted {:?} after it stopped", t.elapsed());
    assert!(t.elapsed() >= Duration::from_millis(EVICT_AFTER_MS - POLL_MS));
    until(&mut y, "lock 1 1 0 10", "GRANTED", Duration::from_secs(10));
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    // A runs again: the first call that reaches Ceph finds the session evicted; A answers
    // "try again later" and stops with an error naming the eviction.
    let url = format!(
        "nfs://127.0.0.1{CEPH_DIR}/?version=3&nfsport={p}&mountport={p}&uid=0&gid=0",
        p = a.tcp_addr().port()
    );
    let t = Instant::now();
    while a.is_running() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "A serves on, fenced\n{}",
            a.log_tail()
        );
        let out = nfs_ls(&url, false, Duration::from_secs(5));
        eprintln!(
            "nfs-ls through A {:?} after SIGCONT: {}",
            t.elapsed(),
            out.describe()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("A stopped {:?} after it ran again", t.elapsed());
    let status = a.stop().expect("exited by itself");
    assert!(!status.success(), "{status:?}");
    let log = a.log();
    assert!(
        log.contains("evicted (fenced) by its cluster")
            && log.contains("was evicted by the cluster"),
        "{}",
        a.log_tail()
    );
    // Restarted (as its supervisor would), A serves again, and gets x's lock once y lets go.
    a.start();
    assert!(nfs_ls(&url, false, Duration::from_secs(30)).success());
    assert_eq!(y.ask("unlock 1 0 10"), "GRANTED");
    let mut x = host(&a, "host-x");
    until(&mut x, "lock 1 1 0 10", "GRANTED", Duration::from_secs(20));
    // Once per death of A: no eviction was repeated, none made while A was alive.
    assert_eq!(b.log().matches("dead head:").count(), 2, "{}", b.log_tail());
    drop((x, y));
    drop((a, b));
}
