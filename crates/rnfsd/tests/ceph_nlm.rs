//! NLM locks on a CephFS export held as CephFS locks, so they conflict across rnfsd heads (issue
//! 19): two heads (127.0.0.1 and 127.0.0.2, one handle key) serve one file system from a
//! throw-away cluster (scripts/ceph-cluster), and independent NLM clients (`nlmtool`, on
//! libnfs's NLM API) lock through one head or the other.
//!
//! Without Ceph installed the test is skipped with the reason; in CI (`CI=true`) it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::*;
use rnfs_cephfs::test_cluster::TestCluster;
use rnfs_cephfs::{Mount, MountConfig, Perm};

/// The directory inside CephFS that is exported (and its mount path).
const CEPH_DIR: &str = "/nfs";
/// How long one nlmtool command may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
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
    })
    .unwrap();
    let root = Perm::new(0, 0, &[]).unwrap();
    let (dir, _) = m.mkdir(&m.root().unwrap(), b"nfs", 0o777, &root).unwrap();
    m.create(&dir, b"f", 0o666, libc::O_RDWR | libc::O_EXCL, &root)
        .unwrap();
}

/// A head serving `CEPH_DIR` of the cluster on `listen`.
fn head(cluster: &TestCluster, listen: &str) -> TestServer {
    let mut srv = TestServer::new().listen(&[listen]);
    srv.set_config(&format!(
        "[[export]]\nbackend = \"ceph\"\npath = \"{CEPH_DIR}\"\nceph_conf = {:?}\n\
         ceph_client_id = \"admin\"\n\n[[export.client]]\nmatch = \"127.0.0.0/8\"\naccess = \"rw\"\n",
        cluster.conf()
    ));
    srv
}

/// Builds nlmtool (tests/nlm/nlmtool.c; gcc and libnfs-dev).
fn nlmtool() -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nlm/nlmtool.c");
    let out = std::env::temp_dir().join(format!("rnfs-nlmtool-ceph-{}", std::process::id()));
    let status = Command::new("cc")
        .args(["-O2", "-Wall", "-Werror", "-o"])
        .arg(&out)
        .arg(&src)
        .arg("-lnfs")
        .status()
        .expect("cc (install gcc and libnfs-dev: scripts/test does)");
    assert!(status.success(), "building nlmtool failed");
    out
}

/// One NFS client host: an nlmtool process speaking NLM for `caller_name` to one head.
struct Host {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Host {
    fn new(tool: &Path, head: &TestServer, caller_name: &str) -> Host {
        let addr = head.tcp_addr();
        let port = addr.port().to_string();
        let mut child = Command::new(tool)
            .arg(addr.ip().to_string())
            .args([&port, &port, &port, CEPH_DIR, "f", caller_name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Host {
            child,
            stdin,
            lines,
        }
    }

    /// Sends one command, returns its one-line answer.
    fn ask(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
        self.lines
            .recv_timeout(REPLY_TIMEOUT)
            .unwrap_or_else(|e| panic!("nlmtool gave no answer to {command:?}: {e}"))
    }

    /// Repeats a blocking LOCK, as an NLM client does while it waits for GRANTED, until it is
    /// granted; how long that took.
    fn lock_until_granted(&mut self, command: &str) -> Duration {
        let t0 = Instant::now();
        loop {
            match self.ask(command).as_str() {
                "GRANTED" => return t0.elapsed(),
                "BLOCKED" if t0.elapsed() < GRANT_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                other => panic!("{command:?} still {other} after {:?}", t0.elapsed()),
            }
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

    let tool = nlmtool();
    let mut a = Host::new(&tool, &head_a, "host-a");
    let mut b = Host::new(&tool, &head_b, "host-b");
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
    let waited = b.lock_until_granted("lock 3 1 105 1 1");
    eprintln!("blocked LOCK through B granted {waited:?} after A's unlock");
    assert_eq!(
        a.ask("test 7 1 100 10"),
        "DENIED 1 0 105 1",
        "held in the MDS"
    );

    // A client rebooting (SM_NOTIFY through A) frees what B waits for.
    assert_eq!(a.ask("lock 5 1 200 10"), "GRANTED");
    assert_eq!(b.ask("lock 4 1 200 1 1"), "BLOCKED");
    assert_eq!(a.ask("notify host-a 3"), "OK");
    let waited = b.lock_until_granted("lock 4 1 200 1 1");
    eprintln!("blocked LOCK through B granted {waited:?} after host-a's SM_NOTIFY");
    // Everything host-a held is gone from the MDS too: a new host through A may take host-a's
    // old shared range, but not what host-b holds (its shared 55..65, its granted waiter).
    let mut c = Host::new(&tool, &head_a, "host-c");
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
