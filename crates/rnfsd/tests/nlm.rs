//! NLM v4 file locking against the real server, driven by an independent client: `nlmtool`
//! (tests/nlm/nlmtool.c), built here on libnfs's raw NLM and NSM API (Debian's libnfs-dev), one
//! process per NFS client host (`caller_name`). Local processes' locks are taken with Python's
//! `fcntl.lockf` (classic POSIX record locks, what SQLite and most programs use).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::nlm::{nlmtool, NlmHost as Host, REPLY_TIMEOUT};
use common::TestServer;

/// Where the NLM test helpers live.
fn nlm_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nlm")
}

/// Host `caller_name` locking `file` of the server's one export.
fn host(server: &TestServer, file: &str, caller_name: &str) -> Host {
    Host::new(
        server,
        &server.export().display().to_string(),
        file,
        caller_name,
    )
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
    let mut a = host(&server, "f", "host-a");
    let mut b = host(&server, "f", "host-b");
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
    let mut a = host(&server, "db", "host-a");
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
    let mut a = host(&server, "f", "host-a");
    let mut b = host(&server, "f", "host-b");
    let mut c = host(&server, "f", "host-c");
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
    // Two owners each waiting for the other: the second wait is refused, not queued.
    assert_eq!(a.ask("lock 3 1 100 1"), "GRANTED");
    assert_eq!(b.ask("lock 3 1 200 1"), "GRANTED");
    assert_eq!(a.ask("lock 3 1 200 1 1"), "BLOCKED");
    assert_eq!(b.ask("lock 3 1 100 1 1"), "DEADLCK");
}

#[test]
fn a_rebooted_client_loses_its_locks_by_sm_notify() {
    let server = server_with_file("f");
    let mut a = host(&server, "f", "host-a");
    let mut b = host(&server, "f", "host-b");
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

/// `nlmraw.py` with `args`, from `from` (a loopback address); its one-line answer.
fn nlmraw(server: &TestServer, fh: &str, from: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg(nlm_dir().join("nlmraw.py"))
        .args(["--from", from, &server.port().to_string(), fh])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn clients_at_different_addresses_are_different_hosts_whatever_name_they_give() {
    let server = server_with_file("f");
    let fh = host(&server, "f", "host-a").ask("fh");
    let (one, two) = ("127.0.0.1", "127.0.0.2");
    assert_eq!(
        nlmraw(&server, &fh, one, &["host-a", "lock", "1", "1", "0", "10"]),
        "GRANTED"
    );
    // Same name, same owner, another address: another host, refused.
    assert_eq!(
        nlmraw(&server, &fh, two, &["host-a", "lock", "1", "1", "0", "10"]),
        "DENIED"
    );
    assert_eq!(
        nlmraw(&server, &fh, two, &["host-a", "lock", "1", "1", "10", "10"]),
        "GRANTED"
    );
    // FREE_ALL from the second address frees only what that host holds.
    assert_eq!(nlmraw(&server, &fh, two, &["host-a", "free_all"]), "done");
    assert_eq!(
        nlmraw(&server, &fh, two, &["host-b", "test", "1", "1", "0", "1"]),
        "DENIED"
    );
    assert_eq!(
        nlmraw(&server, &fh, two, &["host-b", "test", "1", "1", "10", "1"]),
        "GRANTED"
    );
    assert_eq!(nlmraw(&server, &fh, one, &["host-a", "free_all"]), "done");
    assert_eq!(
        nlmraw(&server, &fh, two, &["host-a", "lock", "1", "1", "0", "10"]),
        "GRANTED"
    );
}

#[test]
fn share_reservations_deny_what_they_say_to_other_clients() {
    let server = server_with_file("doc");
    let mut a = host(&server, "doc", "host-a");
    let fh = a.ask("fh");
    let port = server.port().to_string();
    let raw = |args: &[&str]| {
        let out = Command::new("python3")
            .arg(nlm_dir().join("nlmraw.py"))
            .args([port.as_str(), fh.as_str()])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    // host-a opens read-write, denying writers (mode DW = 2, access RW = 3).
    assert_eq!(raw(&["host-a", "share", "w1", "2", "3"]), "GRANTED");
    assert_eq!(
        raw(&["host-b", "share", "x", "0", "2"]),
        "DENIED",
        "a writer"
    );
    assert_eq!(
        raw(&["host-b", "share", "x", "0", "1"]),
        "GRANTED",
        "a reader"
    );
    assert_eq!(
        raw(&["host-c", "share", "y", "1", "1"]),
        "DENIED",
        "denies readers: a reads"
    );
    assert_eq!(raw(&["host-a", "unshare", "w1"]), "GRANTED");
    assert_eq!(raw(&["host-c", "share", "y", "0", "2"]), "GRANTED");
    // Byte-range locks are independent of shares.
    assert_eq!(a.ask("lock 1 1 0 0"), "GRANTED");
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
    let mut flood = host(&server, "f", "flooder");
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
    let mut other = host(&server, "f", "other");
    assert_eq!(other.ask("lock 1 1 1 1"), "GRANTED");
    assert!(other.ask("test 1 1 0 0").starts_with("DENIED 1 7 "));
}

/// Runs `script` with bash in a new network and mount namespace (loopback up, private `/run`),
/// where 127.0.0.1:111 is free for `fakeclient.py`, the client host's portmapper: the server's
/// calls to its clients (GRANTED, SM_NOTIFY) go there. Variables: `$RNFSD`, `$NLMTOOL`, `$FAKE`,
/// `$EXPORT`, `$STATE`, `$SCRATCH`, and `$CONFIG` (a configuration exporting `$EXPORT`).
fn in_namespace(server: &TestServer, limits: &str, script: &str) -> common::ToolOutput {
    common::require_root("network namespaces and port 111");
    let config = server.scratch().join("ns.toml");
    std::fs::write(
        &config,
        format!(
            "[[export]]\npath = {:?}\n[[export.client]]\nmatch = \"127.0.0.0/8\"\n[limits]\n{limits}\n",
            server.export()
        ),
    )
    .unwrap();
    let prelude = r#"
set -u
# Everything started here goes with the script (and the namespace).
trap 'kill -KILL $(jobs -p) 2>/dev/null; wait 2>/dev/null' EXIT
ip link set lo up
mount -t tmpfs -o size=8m tmpfs /run
# tool HOST COMMAND...: nlmtool as client HOST, its answers on one line.
tool() { local who=$1; shift; printf '%s\n' "$@" | "$NLMTOOL" 127.0.0.1 "$PORT" "$PORT" "$PORT" "$EXPORT" f "$who" | paste -sd' '; }
start_rnfsd() {
    rm -f "$SCRATCH/ready-ns"
    "$RNFSD" serve --config "$CONFIG" --listen "127.0.0.1:${PORT:-0}" --portmap "${PORTMAP_MODE:-off}" --state-dir "$STATE" --ready-file "$SCRATCH/ready-ns" >>"$SCRATCH/rnfsd-ns.log" 2>&1 &
    RNFSD_PID=$!
    for _ in $(seq 200); do [ -s "$SCRATCH/ready-ns" ] && break; sleep 0.05; done
    PORT=$(awk '/^tcp/{n=split($2,a,":"); print a[n]; exit}' "$SCRATCH/ready-ns")
}
# wait_for PATTERN FILE: up to 10 s for a line matching PATTERN.
wait_for() { for _ in $(seq 200); do grep -q "$1" "$2" && return 0; sleep 0.05; done; echo "never saw $1 in $2"; cat "$2"; return 1; }
"#;
    let mut cmd = Command::new("unshare");
    cmd.args(["--net", "--mount", "--propagation", "private", "bash", "-c"])
        .arg(format!("{prelude}\n{script}"))
        .env("RNFSD", env!("CARGO_BIN_EXE_rnfsd"))
        .env("NLMTOOL", nlmtool())
        .env("FAKE", nlm_dir().join("fakeclient.py"))
        .env("RAW", nlm_dir().join("nlmraw.py"))
        .env("EXPORT", server.export())
        .env("STATE", server.state_dir())
        .env("SCRATCH", server.scratch())
        .env("CONFIG", &config);
    let out = common::run_bounded(&mut cmd, Duration::from_secs(90));
    let log = std::fs::read_to_string(server.scratch().join("rnfsd-ns.log")).unwrap_or_default();
    assert!(out.success(), "{}\n--- rnfsd log:\n{log}", out.describe());
    out
}

#[test]
fn a_blocked_client_is_called_back_with_granted_when_the_lock_is_free() {
    let server = TestServer::new();
    std::fs::write(server.export().join("f"), b"x").unwrap();
    let out = in_namespace(
        &server,
        "",
        r#"
python3 "$FAKE" 127.0.0.1 > "$SCRATCH/fake.log" 2>&1 & wait_for READY "$SCRATCH/fake.log"
start_rnfsd
echo "a: $(tool host-a 'lock 1 1 0 10')"
echo "b: $(tool host-b 'lock 2 1 5 10 1')"
echo "a: $(tool host-a 'unlock 1 0 10')"
wait_for '^GRANTED' "$SCRATCH/fake.log"
echo "fake: $(grep '^GRANTED' "$SCRATCH/fake.log" | head -1)"
echo "c: $(tool host-c 'test 1 1 5 1')"
# Blocked by a local process's lock: tried again by the server's timer once it goes, then called.
python3 -c 'import fcntl,sys,time
f=open(sys.argv[1],"r+"); fcntl.lockf(f,fcntl.LOCK_EX,10,200); print("held",flush=True); time.sleep(60)' "$EXPORT/f" > "$SCRATCH/local.log" &
LOCAL=$!
wait_for held "$SCRATCH/local.log"
echo "e: $(tool host-e 'lock 5 1 205 1 1')"
kill "$LOCAL"; wait "$LOCAL" 2>/dev/null
wait_for '^GRANTED host-e' "$SCRATCH/fake.log"
echo "fake: $(grep '^GRANTED host-e' "$SCRATCH/fake.log" | head -1)"
# The asynchronous form: LOCK_MSG, answered by a LOCK_RES call to the client's NLM service.
python3 "$RAW" "$PORT" "$(tool host-d fh)" host-d lock_msg 4 100 1 >/dev/null
wait_for '^RES' "$SCRATCH/fake.log"
echo "fake: $(grep '^RES' "$SCRATCH/fake.log")"
"#,
    );
    assert_eq!(
        out.stdout_str(),
        "a: GRANTED\nb: BLOCKED\na: GRANTED\nfake: GRANTED host-b 2 1 5 10\nc: DENIED 1 2 5 10\n\
         e: BLOCKED\nfake: GRANTED host-e 5 1 205 1\nfake: RES 12 0\n"
    );
}

#[test]
fn a_client_whose_callback_port_is_dead_stalls_nothing() {
    let server = TestServer::new();
    std::fs::write(server.export().join("f"), b"x").unwrap();
    let out = in_namespace(
        &server,
        "lock_callback_attempts_max = 3\nlock_callback_timeout_ms = 200",
        r#"
python3 "$FAKE" 127.0.0.1 --silent-nlm > "$SCRATCH/fake.log" 2>&1 & wait_for READY "$SCRATCH/fake.log"
start_rnfsd
tool host-a 'lock 1 1 0 10' >/dev/null
tool host-b 'lock 2 1 0 10 1' >/dev/null
tool host-a 'unlock 1 0 10' >/dev/null
# While the server calls a dead port, other clients are served at once.
start=$(date +%s%N)
echo "c: $(tool host-c 'lock 1 1 100 1' 'unlock 1 100 1' 'test 1 1 0 1')"
echo "fast: $(( ($(date +%s%N) - start) / 1000000 < 500 ))"
sleep 1.5
echo "attempts: $(grep -c '^GRANTED host-b' "$SCRATCH/fake.log")"
grep -q 'call to a lock client failed' "$SCRATCH/rnfsd-ns.log" && echo "failure logged"
# The lock stays its owner's: the client learns of it when it asks again.
echo "b: $(tool host-b 'lock 2 1 0 10 1')"
"#,
    );
    assert_eq!(
        out.stdout_str(),
        "c: GRANTED GRANTED DENIED 1 2 0 10\nfast: 1\nattempts: 3\nfailure logged\nb: GRANTED\n"
    );
}

#[test]
fn after_sigkill_clients_are_notified_and_reclaim_in_the_grace_period() {
    let server = TestServer::new();
    std::fs::write(server.export().join("f"), b"x").unwrap();
    let out = in_namespace(
        &server,
        "lock_grace_ms = 3000",
        r#"
python3 "$FAKE" 127.0.0.1 > "$SCRATCH/fake.log" 2>&1 & wait_for READY "$SCRATCH/fake.log"
start_rnfsd
echo "a: $(tool host-a 'lock 1 1 0 10')"
# A host holding only a share reservation is told too.
echo "c: $(python3 "$RAW" "$PORT" "$(tool host-c fh)" host-c share w 0 1)"
kill -KILL "$RNFSD_PID"; wait "$RNFSD_PID" 2>/dev/null
start_rnfsd
wait_for '^NOTIFY' "$SCRATCH/fake.log"
for _ in $(seq 100); do [ "$(grep -c '^NOTIFY' "$SCRATCH/fake.log")" -ge 2 ] && break; sleep 0.05; done
echo "fake: $(grep '^NOTIFY' "$SCRATCH/fake.log" | awk '{print $1, $3}' | sort | uniq -c | awk '{print $1, $2, $3}')"
echo "grace: $(tool host-b 'lock 1 1 0 10' 'test 1 1 0 10')"
echo "reclaim: $(tool host-a 'lock 1 1 0 10 0 1')"
sleep 3.2
echo "after: $(tool host-b 'lock 1 1 0 10' 'test 1 1 0 10')"
echo "a rebooted: $(tool host-a 'notify host-a 5')"
echo "b: $(tool host-b 'lock 1 1 0 10')"
"#,
    );
    assert_eq!(
        out.stdout_str(),
        "a: GRANTED\nc: GRANTED\nfake: 2 NOTIFY 3\ngrace: DENIED_GRACE_PERIOD DENIED_GRACE_PERIOD\n\
         reclaim: GRANTED\nafter: DENIED DENIED 1 1 0 10\na rebooted: OK\nb: GRANTED\n"
    );
}

#[test]
fn with_the_hosts_rpc_statd_client_reboots_are_learned_from_it() {
    let server = TestServer::new();
    std::fs::write(server.export().join("f"), b"x").unwrap();
    let out = in_namespace(
        &server,
        "",
        r#"
ip link add v0 type veth peer name v1 && ip addr add 10.99.0.1/24 dev v0 && ip link set v0 up && ip link set v1 up
rpcbind -f -w & sleep 0.3
mkdir -p "$SCRATCH/statd/sm" "$SCRATCH/statd/sm.bak"
rpc.statd -F --no-notify -P "$SCRATCH/statd" >"$SCRATCH/statd.log" 2>&1 &
for _ in $(seq 100); do rpcinfo -p 127.0.0.1 2>/dev/null | grep -q ' 100024 ' && break; sleep 0.05; done
PORTMAP_MODE=auto start_rnfsd
rpcinfo -p 127.0.0.1 > "$SCRATCH/rpcinfo.txt"
echo "nlm registered: $(awk -v p="$PORT" '$1==100021 && $4==p' "$SCRATCH/rpcinfo.txt" | wc -l)"
echo "nsm left to statd: $(awk -v p="$PORT" '$1==100024 && $4==p' "$SCRATCH/rpcinfo.txt" | wc -l)"
echo "a: $(tool host-a 'lock 1 1 0 10')"
# rnfsd asked statd to monitor the client's address.
# (statd names its record after the canonical name of the address: localhost.)
for _ in $(seq 100); do [ -n "$(ls "$SCRATCH/statd/sm")" ] && break; sleep 0.05; done
echo "monitored: $(ls "$SCRATCH/statd/sm" | wc -l)"
# The client host restarts: its SM_NOTIFY goes to this host's statd, which calls rnfsd back.
STATD_PORT=$(awk '$1==100024 && $3=="tcp" {print $4; exit}' "$SCRATCH/rpcinfo.txt")
echo "notify: $(printf 'notify 127.0.0.1 9\n' | "$NLMTOOL" 127.0.0.1 "$PORT" "$PORT" "$STATD_PORT" "$EXPORT" f host-a)"
for _ in $(seq 100); do r=$(tool host-b 'test 1 1 0 1'); [ "$r" = GRANTED ] && break; sleep 0.05; done
echo "b: $r"
# Locks again, then lets go of everything: within a housekeeping tick rnfsd asks statd to stop
# watching the address (SM_UNMON), and statd drops its record.
tool host-a 'lock 1 1 0 10' >/dev/null
for _ in $(seq 100); do [ -n "$(ls "$SCRATCH/statd/sm")" ] && break; sleep 0.05; done
tool host-a 'unlock 1 0 10' >/dev/null
for _ in $(seq 200); do [ -z "$(ls "$SCRATCH/statd/sm")" ] && break; sleep 0.05; done
echo "unmonitored: $(ls "$SCRATCH/statd/sm" | wc -l)"
"#,
    );
    assert_eq!(
        out.stdout_str(),
        "nlm registered: 2\nnsm left to statd: 0\na: GRANTED\nmonitored: 1\nnotify: OK\nb: GRANTED\nunmonitored: 0\n"
    );
}

#[test]
fn rnfsd_ctl_filelocks_and_metrics_show_locks_waiters_and_counts() {
    let mut server = TestServer::new().args(["--metrics", "127.0.0.1:0"]);
    std::fs::write(server.export().join("f"), b"x").unwrap();
    server.start();
    let mut a = host(&server, "f", "host-a");
    let mut b = host(&server, "f", "host-b");
    assert_eq!(a.ask("lock 1 1 0 10"), "GRANTED");
    assert_eq!(a.ask("lock 2 0 100 0"), "GRANTED");
    assert_eq!(b.ask("lock 1 1 5 1 1"), "BLOCKED");
    assert_eq!(b.ask("lock 2 1 5 1"), "DENIED");
    let ctl = |json: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rnfsd"));
        cmd.arg("ctl").arg("--state-dir").arg(server.state_dir());
        if json {
            cmd.arg("--json");
        }
        let out = common::run_bounded(cmd.arg("filelocks"), REPLY_TIMEOUT);
        assert!(out.success(), "{}", out.describe());
        out.stdout_str()
    };
    let text = ctl(false);
    assert!(
        text.starts_with("2 locks, 0 shares, 1 blocked requests; 2 clients, 1 files"),
        "{text}"
    );
    let rows: Vec<&str> = text.lines().skip(2).collect();
    assert_eq!(rows.len(), 3, "{text}");
    assert!(
        rows.iter().any(|r| r.starts_with("lock")
            && r.contains("127.0.0.1 host-a")
            && r.contains("exclusive")
            && r.contains("0+10")),
        "{text}"
    );
    assert!(
        rows.iter()
            .any(|r| r.contains("shared") && r.contains("100-EOF")),
        "{text}"
    );
    assert!(
        rows.iter()
            .any(|r| r.starts_with("waiter") && r.contains("host-b") && r.contains("5+1")),
        "{text}"
    );
    let json = ctl(true);
    for counter in ["\"grants\":2", "\"blocks\":1", "\"denials\":1"] {
        assert!(json.contains(counter), "{counter} in {json}");
    }
    // Prometheus: the same counts.
    let status = common::run_bounded(
        Command::new(env!("CARGO_BIN_EXE_rnfsd"))
            .args(["ctl", "--json", "--state-dir"])
            .arg(server.state_dir())
            .arg("status"),
        REPLY_TIMEOUT,
    )
    .stdout_str();
    let addr = status
        .split("\"metrics\":\"http://")
        .nth(1)
        .and_then(|r| r.split("/metrics").next())
        .unwrap_or_else(|| panic!("no metrics URL in {status}"))
        .to_owned();
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    write!(conn, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut conn, &mut text).unwrap();
    for series in [
        "rnfsd_file_lock_requests_total{outcome=\"granted\"} 2",
        "rnfsd_file_lock_requests_total{outcome=\"blocked\"} 1",
        "rnfsd_file_lock_requests_total{outcome=\"denied\"} 1",
        "rnfsd_file_locks 2",
        "rnfsd_file_lock_waiters 1",
    ] {
        assert!(text.lines().any(|l| l == series), "{series} in:\n{text}");
    }
}

/// Each lock owner's description (a file descriptor) lives exactly as long as the owner holds or
/// waits for something on the file. Counted in /proc: the server's descriptors of the file
/// opened as lock descriptions are (O_NONBLOCK, not O_PATH); the descriptor cache's own
/// descriptors of it, which its housekeeping closes at any time, are not counted.
#[test]
fn lock_owners_descriptions_close_when_they_hold_and_wait_for_nothing() {
    let server = server_with_file("f");
    let pid = server.pid().unwrap();
    let file = std::fs::canonicalize(server.export().join("f")).unwrap();
    let fds = || lock_descriptions(pid, &file);
    let mut a = host(&server, "f", "host-a");
    let mut b = host(&server, "f", "host-b");
    assert_eq!(a.ask("null"), "OK");
    assert_eq!(b.ask("null"), "OK");
    assert_eq!(fds(), 0);
    assert_eq!(a.ask("lock 1 1 0 10"), "GRANTED");
    assert_eq!(a.ask("lock 1 1 20 10"), "GRANTED");
    assert_eq!(fds(), 1, "one description per (file, owner)");
    assert_eq!(b.ask("lock 1 1 0 1 1"), "BLOCKED");
    assert_eq!(fds(), 2, "the waiter's, kept for its grant");
    assert_eq!(b.ask("cancel 1 1 0 1"), "GRANTED");
    assert_eq!(fds(), 1);
    assert_eq!(a.ask("unlock 1 0 0"), "GRANTED");
    assert_eq!(fds(), 0);
    assert_eq!(a.ask("test 1 1 0 1"), "GRANTED");
    assert_eq!(fds(), 0, "a TEST's probe leaves nothing open");
}

/// Descriptors of process `pid` open on `file` as lock descriptions: not O_PATH, O_NONBLOCK.
fn lock_descriptions(pid: u32, file: &Path) -> usize {
    let flags_of = |fd: &std::ffi::OsStr| -> Option<u32> {
        let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", fd.to_str()?)).ok()?;
        let flags = info.lines().find_map(|l| l.strip_prefix("flags:"))?;
        u32::from_str_radix(flags.trim(), 8).ok()
    };
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == file))
        .filter_map(|e| flags_of(&e.file_name()))
        .filter(|f| f & libc::O_PATH as u32 == 0 && f & libc::O_NONBLOCK as u32 != 0)
        .count()
}
