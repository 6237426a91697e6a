//! NLM v4 file locking against the real server, driven by an independent client: `nlmtool`
//! (tests/nlm/nlmtool.c), built here on libnfs's raw NLM and NSM API (Debian's libnfs-dev), one
//! process per NFS client host (`caller_name`). Local processes' locks are taken with Python's
//! `fcntl.lockf` (classic POSIX record locks, what SQLite and most programs use).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::OnceLock;
use std::time::Duration;

use common::TestServer;

/// How long one nlmtool command may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds nlmtool once per test binary (gcc and libnfs-dev: scripts/test installs them).
fn nlmtool() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nlm/nlmtool.c");
        let out = std::env::temp_dir().join(format!("rnfs-nlmtool-{}", std::process::id()));
        let status = Command::new("cc")
            .args(["-O2", "-Wall", "-Werror", "-o"])
            .arg(&out)
            .arg(&src)
            .arg("-lnfs")
            .status()
            .expect("cc (install gcc and libnfs-dev: scripts/test does)");
        assert!(status.success(), "building nlmtool failed");
        out
    })
}

/// One NFS client host: an nlmtool process speaking NLM for `caller_name` on one file.
struct Host {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Host {
    fn new(server: &TestServer, file: &str, caller_name: &str) -> Host {
        let port = server.port().to_string();
        let mut child = Command::new(nlmtool())
            .args(["127.0.0.1", &port, &port, &port])
            .arg(server.export())
            .args([file, caller_name])
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
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A local process holding a classic POSIX lock on `path` until dropped.
struct LocalLock(Child);

impl LocalLock {
    /// Tries `lockf(LOCK_NB)` of (start, len) in a Python child; `None` if it was refused.
    fn take(path: &Path, exclusive: bool, start: u64, len: u64) -> Option<LocalLock> {
        let op = if exclusive { "LOCK_EX" } else { "LOCK_SH" };
        let script = format!(
            "import fcntl,sys\nf=open(sys.argv[1],'r+')\ntry:\n fcntl.lockf(f,fcntl.{op}|fcntl.LOCK_NB,{len},{start})\nexcept OSError:\n print('refused',flush=True);sys.exit(0)\nprint('held',flush=True)\nsys.stdin.read()\n"
        );
        let mut child = Command::new("python3")
            .args(["-c", &script])
            .arg(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        match line.trim() {
            "held" => Some(LocalLock(child)),
            "refused" => {
                child.wait().unwrap();
                None
            }
            other => panic!("python lock helper said {other:?}"),
        }
    }
}

impl Drop for LocalLock {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

fn server_with_file(name: &str) -> TestServer {
    let server = TestServer::new();
    let path = server.export().join(name);
    std::fs::write(&path, b"locked data").unwrap();
    common::set_mode(&path, 0o666);
    let mut server = server;
    server.start();
    server
}

#[test]
fn locks_of_two_clients_conflict_as_posix_record_locks() {
    let server = server_with_file("f");
    let mut a = Host::new(&server, "f", "host-a");
    let mut b = Host::new(&server, "f", "host-b");
    assert_eq!(a.ask("null"), "OK");
    assert_eq!(a.ask("lock 1 1 0 10"), "GRANTED");
    // Exclusive against anything overlapping; the holder is named.
    assert_eq!(b.ask("lock 1 0 9 1"), "DENIED");
    assert_eq!(b.ask("test 1 0 5 10"), "DENIED 1 1 0 10");
    // Adjacent ranges do not conflict; shared locks share.
    assert_eq!(b.ask("lock 1 0 10 5"), "GRANTED");
    assert_eq!(a.ask("lock 2 0 12 1"), "GRANTED");
    // Same caller_name, another svid: another owner.
    assert_eq!(a.ask("lock 3 1 14 1"), "DENIED");
    // Downgrade in place, then b may share it.
    assert_eq!(a.ask("lock 1 0 0 10"), "GRANTED");
    assert_eq!(b.ask("lock 1 0 0 5"), "GRANTED");
    // An upgrade that conflicts changes nothing.
    assert_eq!(a.ask("lock 1 1 0 10"), "DENIED");
    assert_eq!(b.ask("test 2 0 0 10"), "GRANTED");
    // To end of file (length 0), and partial unlock.
    assert_eq!(b.ask("unlock 1 0 0"), "GRANTED");
    assert_eq!(b.ask("lock 1 1 100 0"), "GRANTED");
    assert_eq!(a.ask("test 9 0 1000000 1"), "DENIED 1 1 100 0");
    assert_eq!(b.ask("unlock 1 200 50"), "GRANTED");
    assert_eq!(a.ask("test 9 1 210 1"), "GRANTED");
    assert_eq!(a.ask("test 9 1 199 1"), "DENIED 1 1 100 100");
    assert_eq!(a.ask("test 9 1 250 1"), "DENIED 1 1 250 0");
    // An offset past 2^64 - 1 is too big.
    assert_eq!(a.ask("lock 1 1 18446744073709551615 2"), "FBIG");
}

#[test]
fn local_fcntl_locks_and_nfs_locks_see_each_other() {
    let server = server_with_file("db");
    let path = server.export().join("db");
    let mut a = Host::new(&server, "db", "host-a");
    // NFS lock first: the local process is refused, then gets it once NFS lets go.
    assert_eq!(a.ask("lock 1 1 0 100"), "GRANTED");
    assert!(
        LocalLock::take(&path, false, 50, 1).is_none(),
        "local lock over an NFS lock"
    );
    let beside = LocalLock::take(&path, true, 100, 10).expect("a local lock beside it");
    assert_eq!(a.ask("unlock 1 0 100"), "GRANTED");
    let local = LocalLock::take(&path, false, 0, 10).expect("the local lock after the unlock");
    // Local lock first: NFS is refused (TEST names no NFS owner), then granted once it goes.
    assert_eq!(a.ask("lock 1 1 5 1"), "DENIED");
    assert_eq!(a.ask("test 1 1 5 1"), "DENIED 0 0 0 10");
    assert_eq!(a.ask("lock 1 0 5 1"), "GRANTED", "shared locks share");
    assert_eq!(a.ask("lock 2 1 105 1"), "DENIED");
    drop(local);
    drop(beside);
    assert_eq!(
        a.ask("lock 2 1 0 0"),
        "DENIED",
        "owner 1 still shares byte 5"
    );
    assert_eq!(a.ask("unlock 1 0 0"), "GRANTED");
    assert_eq!(a.ask("lock 2 1 0 0"), "GRANTED");
}

#[test]
fn a_blocked_lock_is_granted_when_the_holder_unlocks_and_cancel_removes_it() {
    let server = server_with_file("f");
    let mut a = Host::new(&server, "f", "host-a");
    let mut b = Host::new(&server, "f", "host-b");
    let mut c = Host::new(&server, "f", "host-c");
    assert_eq!(a.ask("lock 1 1 0 10"), "GRANTED");
    assert_eq!(b.ask("lock 1 1 0 10 1"), "BLOCKED");
    assert_eq!(
        b.ask("lock 1 1 0 10 1"),
        "BLOCKED",
        "a retransmission queues nothing new"
    );
    assert_eq!(c.ask("lock 1 1 5 1 1"), "BLOCKED");
    assert_eq!(c.ask("cancel 1 1 5 1"), "GRANTED");
    assert_eq!(c.ask("cancel 1 1 5 1"), "DENIED", "nothing left to cancel");
    assert_eq!(a.ask("unlock 1 0 10"), "GRANTED");
    // The waiter holds the lock now (its client learns it by GRANTED or by asking again).
    assert_eq!(a.ask("test 1 0 0 1"), "DENIED 1 1 0 10");
    assert_eq!(b.ask("lock 1 1 0 10 1"), "GRANTED");
    assert_eq!(
        c.ask("test 1 1 5 1"),
        "DENIED 1 1 0 10",
        "the cancelled waiter got nothing"
    );
}

#[test]
fn a_rebooted_client_loses_its_locks_by_sm_notify_or_free_all() {
    let server = server_with_file("f");
    let mut a = Host::new(&server, "f", "host-a");
    let mut b = Host::new(&server, "f", "host-b");
    assert_eq!(a.ask("lock 1 1 0 10"), "GRANTED");
    assert_eq!(a.ask("lock 2 1 20 10"), "GRANTED");
    assert_eq!(b.ask("lock 1 1 40 10"), "GRANTED");
    // Another host's name frees nothing of host-a's... (the name is bound to the address too,
    // and here both hosts share 127.0.0.1, so only the name tells them apart).
    assert_eq!(b.ask("notify host-z 3"), "OK");
    assert_eq!(b.ask("test 5 1 0 1"), "DENIED 1 1 0 10");
    // host-a's status monitor says it rebooted: all its owners' locks go, b's stay.
    assert_eq!(a.ask("notify host-a 3"), "OK");
    assert_eq!(b.ask("test 5 1 0 100"), "DENIED 1 1 40 10");
    assert_eq!(b.ask("lock 2 1 0 30"), "GRANTED");
}

#[test]
fn one_client_flooding_distinct_ranges_is_refused_at_its_limit_with_bounded_memory() {
    let mut server = TestServer::new();
    std::fs::write(server.export().join("f"), b"x").unwrap();
    server.set_config(&format!(
        "[[export]]\npath = {:?}\n[[export.client]]\nmatch = \"127.0.0.0/8\"\n[limits]\nlocks_per_client_max = 20000\nlocks_per_file_max = 30000\n",
        server.export()
    ));
    server.start();
    let pid = server.pid().unwrap();
    let rss_before_kib = common::proc_status_kib(pid, "VmRSS");
    let mut flood = Host::new(&server, "f", "flooder");
    assert_eq!(
        flood.ask("flood 100000 64 7"),
        "GRANTED 20000 DENIED_NOLOCKS 80000 OTHER 0"
    );
    let rss_after_kib = common::proc_status_kib(pid, "VmRSS");
    // 20,000 ranges cost a few MiB at most; the 80,000 refusals cost nothing.
    assert!(
        rss_after_kib < rss_before_kib + 64 * 1024,
        "RSS grew from {rss_before_kib} KiB to {rss_after_kib} KiB"
    );
    // Others still get locks (the file's limit is above one client's), between the flooder's.
    // (Which 20,000 of the pipelined LOCKs won is up to the worker threads.)
    let mut other = Host::new(&server, "f", "other");
    assert_eq!(other.ask("lock 1 1 1 1"), "GRANTED");
    assert!(other.ask("test 1 1 0 0").starts_with("DENIED 1 7 "));
}
