//! NLM locks on a CephFS export held as CephFS locks, so they conflict across rnfsd heads (issue
//! 19): two heads (127.0.0.1 and 127.0.0.2, one handle key) serve one file system from a
//! throw-away cluster (scripts/ceph-cluster), and independent NLM clients (`nlmtool`, on
//! libnfs's NLM API) lock through one head or the other.
//!
//! Without Ceph installed the test is skipped with the reason; in CI (`CI=true`) it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::nlm::NlmHost as Host;
use common::*;
use rnfs_cephfs::test_cluster::TestCluster;
use rnfs_cephfs::{Mount, MountConfig, Perm};

/// The directory inside CephFS that is exported (and its mount path).
const CEPH_DIR: &str = "/nfs";
/// The heads' watchdog bound, short so an MDS stall of a few seconds is reported.
const STALL_BOUND_MS: u64 = 500;
/// How long one nlmtool command may take.
/// How long a blocked lock may take to be granted once free (the server retries waiters
/// blocked by another head every housekeeping tick, 2 s).
const GRANT_TIMEOUT: Duration = Duration::from_secs(15);

/// Creates `CEPH_DIR` (mode 0777) and the file `f` in it (0666) through libcephfs.
fn make_export(cluster: &TestCluster) {
    let m = Mount::new(&MountConfig {
        conf: cluster.conf().to_owned(),
        client_id: "admin".into(),
        fs_name: None,
        root: "/".into(),
        uuid: None,
    })
    .unwrap();
    let root = Perm::new(0, 0, &[]).unwrap();
    let (dir, _) = m.mkdir(&m.root().unwrap(), b"nfs", 0o777, &root).unwrap();
    m.create(&dir, b"f", 0o666, libc::O_RDWR | libc::O_EXCL, &root)
        .unwrap();
}

/// A head serving `CEPH_DIR` of the cluster on `listen`, and its own local directory (with a
/// file `f`) beside it.
fn head(cluster: &TestCluster, listen: &str) -> TestServer {
    let mut srv = TestServer::new().listen(&[listen]);
    let local = srv.export().join("f");
    std::fs::write(&local, b"local").unwrap();
    set_mode(&local, 0o666);
    srv.set_config(&format!(
        "[[export]]\nbackend = \"ceph\"\npath = \"{CEPH_DIR}\"\nceph_conf = {:?}\n\
         ceph_client_id = \"admin\"\n\n[[export.client]]\nmatch = \"127.0.0.0/8\"\naccess = \"rw\"\n\n\
         [[export]]\npath = {:?}\n\n[[export.client]]\nmatch = \"127.0.0.0/8\"\naccess = \"rw\"\n\n\
         [limits]\nstall_bound_ms = {STALL_BOUND_MS}\n",
        cluster.conf(),
        srv.export()
    ));
    srv
}

/// A host locking `f` of `CEPH_DIR` through `head`.
fn host(head: &TestServer, caller_name: &str) -> Host {
    Host::new(head, CEPH_DIR, "f", caller_name)
}

/// Repeats a blocking LOCK, as an NLM client does while it waits for GRANTED, until it is
/// granted; how long that took.
fn lock_until_granted(h: &mut Host, command: &str) -> Duration {
    let t0 = Instant::now();
    loop {
        match h.ask(command).as_str() {
            "GRANTED" => return t0.elapsed(),
            "BLOCKED" if t0.elapsed() < GRANT_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(200))
            }
            other => panic!("{command:?} still {other} after {:?}", t0.elapsed()),
        }
    }
}

/// Sends SIGSTOP or SIGCONT to a Ceph daemon.
fn signal(pid: &str, sig: &str) {
    let status = Command::new("kill")
        .args([&format!("-{sig}"), pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{sig} {pid}");
}

#[test]
fn nlm_locks_conflict_across_two_ceph_heads() {
    let Some(cluster) = TestCluster::start().unwrap() else {
        return;
    };
    eprintln!("cluster up in {:?}", cluster.started_in);
    make_export(&cluster);
    let mut head_a = head(&cluster, "127.0.0.1:0");
    head_a.start();
    let mut head_b = head(&cluster, "127.0.0.2:0");
    let key = std::fs::read(head_a.state_dir().join("handle.key")).unwrap();
    let b_key = head_b.state_dir().join("handle.key");
    std::fs::write(&b_key, key).unwrap();
    set_mode(&b_key, 0o600);
    head_b.start();

    let mut a = host(&head_a, "host-a");
    let mut b = host(&head_b, "host-b");
    assert_eq!(
        a.ask("fh"),
        b.ask("fh"),
        "one handle for the file on both heads"
    );

    // An exclusive lock through A: B's clients are refused, and TEST names the range (held
    // outside B's lock manager: svid 0).
    let t = Instant::now();
    assert_eq!(a.ask("lock 1 1 0 10"), "GRANTED");
    eprintln!(
        "LOCK through head A (MDS round trip included): {:?}",
        t.elapsed()
    );
    assert_eq!(b.ask("lock 1 1 5 1"), "DENIED");
    assert_eq!(b.ask("lock 1 0 9 1"), "DENIED", "shared over exclusive");
    assert_eq!(b.ask("test 1 0 0 10"), "DENIED 1 0 0 10");
    // A range beside it is granted, and A sees it the same way.
    assert_eq!(b.ask("lock 1 1 10 5"), "GRANTED");
    assert_eq!(a.ask("test 7 1 12 1"), "DENIED 1 0 10 5");
    assert_eq!(a.ask("lock 7 0 14 1"), "DENIED");
    // Shared locks share across heads.
    assert_eq!(a.ask("lock 2 0 50 10"), "GRANTED");
    assert_eq!(b.ask("lock 2 0 55 10"), "GRANTED");
    assert_eq!(a.ask("test 7 1 64 1"), "DENIED 0 0 55 10");

    // Two owners through one head conflict (in the manager, and in the MDS: each owner has its
    // own CephFS lock owner, so B sees A's two owners' ranges apart).
    assert_eq!(a.ask("lock 3 1 5 1"), "DENIED");
    assert_eq!(a.ask("lock 3 1 30 5"), "GRANTED");
    assert_eq!(a.ask("unlock 3 0 0"), "GRANTED");
    assert_eq!(
        b.ask("test 1 1 30 1"),
        "GRANTED",
        "owner 3's unlock freed it in the MDS"
    );
    assert_eq!(
        b.ask("test 1 1 9 1"),
        "DENIED 1 0 0 10",
        "owner 1's lock stays"
    );

    // Unlock through A frees the range for B.
    assert_eq!(a.ask("unlock 1 0 10"), "GRANTED");
    assert_eq!(b.ask("lock 1 1 0 1"), "GRANTED");

    // A blocking LOCK through B waits for A's lock, and is granted once A unlocks.
    assert_eq!(a.ask("lock 4 1 100 10"), "GRANTED");
    assert_eq!(b.ask("lock 3 1 105 1 1"), "BLOCKED");
    assert_eq!(
        b.ask("lock 3 1 105 1 1"),
        "BLOCKED",
        "a retransmission, still blocked"
    );
    assert_eq!(a.ask("unlock 4 100 10"), "GRANTED");
    let waited = lock_until_granted(&mut b, "lock 3 1 105 1 1");
    eprintln!("blocked LOCK through B granted {waited:?} after A's unlock");
    assert_eq!(
        a.ask("test 7 1 100 10"),
        "DENIED 1 0 105 1",
        "held in the MDS"
    );

    // Without a retransmission, B's server grants the waiter itself (it retries waiters blocked
    // by another head from its timer, taking their CephFS locks): A then sees it held.
    assert_eq!(a.ask("lock 6 1 300 10"), "GRANTED");
    assert_eq!(b.ask("lock 5 1 300 10 1"), "BLOCKED");
    assert_eq!(a.ask("unlock 6 300 10"), "GRANTED");
    let t0 = Instant::now();
    loop {
        match a.ask("test 7 1 300 1").as_str() {
            "DENIED 1 0 300 10" => break,
            "GRANTED" if t0.elapsed() < GRANT_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(100))
            }
            other => panic!("B's waiter not granted after {:?}: {other}", t0.elapsed()),
        }
    }
    eprintln!(
        "B's server granted its waiter {:?} after A's unlock",
        t0.elapsed()
    );
    assert_eq!(
        b.ask("lock 5 1 300 10 1"),
        "GRANTED",
        "the client asks again: held"
    );

    // A client rebooting (SM_NOTIFY through A) frees what B waits for.
    assert_eq!(a.ask("lock 5 1 200 10"), "GRANTED");
    assert_eq!(b.ask("lock 4 1 200 1 1"), "BLOCKED");
    assert_eq!(a.ask("notify host-a 3"), "OK");
    let waited = lock_until_granted(&mut b, "lock 4 1 200 1 1");
    eprintln!("blocked LOCK through B granted {waited:?} after host-a's SM_NOTIFY");
    // Everything host-a held is gone from the MDS too: a new host through A may take host-a's
    // old shared range, but not what host-b holds (its shared 55..65, its granted waiter).
    let mut c = host(&head_a, "host-c");
    assert_eq!(
        c.ask("lock 1 1 50 5"),
        "GRANTED",
        "host-a's shared lock at 50..60 is gone"
    );
    assert_eq!(
        c.ask("lock 1 1 55 1"),
        "DENIED",
        "host-b's shared lock at 55..65 stays"
    );
    assert_eq!(c.ask("test 2 1 200 10"), "DENIED 1 0 200 1");

    // The MDS stalls (SIGSTOP) while host-b's owner 1 asks for a lock through B: the request
    // waits in a CephFS lock call, shown as such, and nothing else waits for it: B's lock
    // manager answers `rnfsd ctl`, and NLM on B's local export goes on.
    let mds_pid = std::fs::read_to_string(cluster.conf().parent().unwrap().join("pids/mds.z.pid"))
        .unwrap()
        .trim()
        .to_owned();
    let mut stalled = host(&head_b, "host-b");
    let mut local = Host::new(&head_b, &head_b.mount_path(), "f", "host-l");
    stalled.ask("fh"); // its MOUNT and LOOKUP done before the stall
                       // And a waiter of B blocked by A: B's timer will retry it while the MDS is stopped.
    assert_eq!(a.ask("lock 8 1 600 10"), "GRANTED");
    assert_eq!(b.ask("lock 6 1 600 1 1"), "BLOCKED");
    assert_eq!(local.ask("lock 1 1 0 1"), "GRANTED", "before the stall");
    signal(&mds_pid, "STOP");
    let stall_start = Instant::now();
    let in_flight = std::thread::spawn(move || {
        let answer = stalled.ask("lock 1 1 500 1");
        (answer, stall_start.elapsed())
    });
    let t0 = Instant::now();
    // Once the LOCK is in flight (and has had time to reach the MDS)...
    let in_flight_lock = || {
        let reqs = ctl(head_b.state_dir(), &["requests"]);
        reqs.as_array()
            .unwrap()
            .iter()
            .find(|r| r["procedure"] == "NLM LOCK")
            .cloned()
    };
    while in_flight_lock().is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the LOCK never arrived"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    // ...the lock manager answers `ctl` and the local export's NLM calls at once (were the MDS
    // called under nlm.state, these would wait for the MDS)...
    let t = Instant::now();
    let locks = ctl(head_b.state_dir(), &["filelocks"]);
    assert!(locks["rows"].as_array().unwrap().len() >= 4, "{locks}");
    let t_ctl = t.elapsed();
    let t = Instant::now();
    assert_eq!(
        local.ask("lock 2 1 0 1"),
        "DENIED",
        "the local export's manager answers"
    );
    assert_eq!(local.ask("lock 2 1 1 1"), "GRANTED");
    assert_eq!(local.ask("unlock 1 0 1"), "GRANTED");
    let t_local = t.elapsed();
    eprintln!("during the stall: ctl filelocks in {t_ctl:?}, 3 NLM calls on the local export in {t_local:?}");
    assert!(t_ctl < Duration::from_secs(3) && t_local < Duration::from_secs(3));
    // ...while the LOCK still waits, shown as waiting on the MDS.
    assert!(
        !in_flight.is_finished(),
        "the LOCK did not wait for the MDS"
    );
    let shown = in_flight_lock().expect("the LOCK is still in flight");
    eprintln!("during the MDS stall, ctl requests shows: {shown}");
    assert_eq!(shown["stage"], "lock_call");
    assert_eq!(shown["waiting_on"], "CephFS lock call (MDS round trip)");
    // The watchdog names both waits: the request's and the timer's retry (which waits on a
    // thread of its own).
    let t0 = Instant::now();
    let summaries = loop {
        let stalls = ctl(head_b.state_dir(), &["stalls"]);
        let summaries: Vec<String> = stalls["reports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["summary"].as_str().unwrap().to_owned())
            .collect();
        let all = summaries.join("\n");
        if all.contains("NLM LOCK") && all.contains("retry of lock waiters blocked by another head")
        {
            break all;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(8),
            "the watchdog did not report both waits: {all}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!("watchdog of head B during the stall:\n{summaries}");
    assert!(summaries.contains("CephFS lock call (MDS round trip)"));
    assert_eq!(
        local.ask("test 3 1 0 10"),
        "DENIED 1 2 1 1",
        "NLM still answers"
    );
    signal(&mds_pid, "CONT");
    let (answer, waited) = in_flight.join().unwrap();
    eprintln!("the stalled LOCK answered {answer} after {waited:?}");
    assert_eq!(answer, "GRANTED");
    assert_eq!(
        a.ask("test 7 1 500 1"),
        "DENIED 1 0 500 1",
        "held in the MDS"
    );
    assert_eq!(a.ask("unlock 8 600 10"), "GRANTED");
    let waited = lock_until_granted(&mut b, "lock 6 1 600 1 1");
    eprintln!("B's waiter granted {waited:?} after the stall and A's unlock");

    // The heads say what they did: each sent its lock calls to the MDS.
    for (name, srv) in [("A", &head_a), ("B", &head_b)] {
        let locks = ctl(srv.state_dir(), &["filelocks"]);
        let calls = locks["remote_calls"].as_u64().unwrap();
        eprintln!(
            "head {name}: {calls} CephFS lock calls, {} failed; counters {}",
            locks["remote_errors"], locks["counters"]
        );
        assert!(calls > 0, "head {name} made no CephFS lock call");
    }
    drop((a, b, c));
    drop((head_a, head_b));
}
