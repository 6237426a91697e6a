//! NFSv4.1 delegations and the back channel against the real server, with rnfsd's own client
//! (`rnfs_client::v4`, answering the server's calls on its connection) beside local processes
//! and an NFSv3 client: a local writer waits for the recall and sees no stale data, an
//! unanswered recall is revoked at its deadline, NFSv3 writes wait for the recall, and no
//! delegation is granted without a back channel that answers.
//!
//! pynfs's delegation tests (DELEG*) are the independent client's view (tests/pynfs.rs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{ctl, require_root, TestServer};
use rnfs_client::nfs4::{self, nfsstat4, open_delegation4, ArgOp, ResBody};
use rnfs_client::nlm::nlm4_stats;
use rnfs_client::v4::{callback_answerer, CallbacksSeen, Session};
use rnfs_client::Client;

const RD: u32 = nfs4::OPEN4_SHARE_ACCESS_READ;
const WR: u32 = nfs4::OPEN4_SHARE_ACCESS_WRITE;
const WANT_READ_DELEG: u32 = 0x0100;
const WANT_WRITE_DELEG: u32 = 0x0200;
const SEQ4_STATUS_CB_PATH_DOWN_SESSION: u32 = 0x200;
const SEQ4_STATUS_RECALLABLE_STATE_REVOKED: u32 = 0x40;

fn server(limits: &str, extra: &str) -> TestServer {
    server_with_args(limits, extra, &[])
}

/// [`server`] with more command-line arguments.
fn server_with_args(limits: &str, extra: &str, args: &[&str]) -> TestServer {
    let mut srv = TestServer::new().args(args);
    srv.set_config(&format!(
        "{extra}\n[limits]\n{limits}\n\n[[export]]\npath = {:?}\n\n[[export.client]]\nmatch = \"127.0.0.1\"\naccess = \"rw\"\nroot_squash = false\n",
        srv.export()
    ));
    srv.start();
    srv
}

type Seen = Arc<Mutex<CallbacksSeen>>;

/// An NFSv3 client (as root) of `srv`, and `fh` as an NFSv3 handle (the same bytes).
fn nfsv3_of(srv: &TestServer, fh: &nfs4::nfs_fh4) -> (Client, rnfs_client::nfs3::nfs_fh3) {
    let v3 = Client::connect_tcp(srv.tcp_addr())
        .unwrap()
        .with_auth_sys(0, 0, &[0]);
    let fh3 = rnfs_client::nfs3::nfs_fh3 {
        data: rnfs_client::nfs3::Opaque(fh.0.clone()),
    };
    (v3, fh3)
}

/// A session whose connection carries its back channel, answered (or not) by the test.
fn with_back_channel(srv: &TestServer, name: &str, answer: bool) -> (Session, Seen) {
    let seen = Seen::default();
    let c = Client::connect_tcp(srv.tcp_addr())
        .unwrap()
        .with_auth_sys(0, 0, &[0]);
    let owner = format!("{name}-{}", std::process::id());
    let s = Session::establish_with_back_channel(
        c,
        owner.as_bytes(),
        callback_answerer(seen.clone(), answer),
    )
    .unwrap();
    (s, seen)
}

fn plain(srv: &TestServer, name: &str) -> Session {
    let c = Client::connect_tcp(srv.tcp_addr())
        .unwrap()
        .with_auth_sys(0, 0, &[0]);
    Session::establish(c, format!("{name}-{}", std::process::id()).as_bytes()).unwrap()
}

fn export_fh(s: &mut Session, srv: &TestServer) -> nfs4::nfs_fh4 {
    s.lookup_dir(srv.export()).unwrap()
}

/// OPEN `name` (existing) for `access`: the status, and on success the handle, the open
/// stateid and the delegation.
fn open(
    s: &mut Session,
    dir: &nfs4::nfs_fh4,
    name: &str,
    access: u32,
) -> Result<(nfs4::nfs_fh4, nfs4::stateid4, open_delegation4), nfsstat4> {
    let args = nfs4::OPEN4args {
        seqid: 0,
        share_access: access,
        share_deny: nfs4::OPEN4_SHARE_DENY_NONE,
        owner: s.open_owner(),
        openhow: nfs4::OpenHow(None),
        claim: nfs4::open_claim4::Null(nfs4::Opaque(Bytes::copy_from_slice(name.as_bytes()))),
    };
    let r = s
        .compound(vec![
            ArgOp::PutFh(dir.clone()),
            ArgOp::Open(args),
            ArgOp::GetFh,
        ])
        .unwrap();
    let status = r.results.last().unwrap().status;
    if status != nfsstat4::NFS4_OK {
        return Err(status);
    }
    let (Some(ResBody::Open(ok)), Some(ResBody::GetFh(fh))) =
        (&r.results[2].body, &r.results[3].body)
    else {
        panic!("OPEN results: {r:?}");
    };
    Ok((fh.clone(), ok.stateid, ok.delegation.clone()))
}

fn read_delegation(d: &open_delegation4) -> nfs4::stateid4 {
    match d {
        open_delegation4::Read { stateid, .. } => *stateid,
        other => panic!("expected a read delegation, got {other:?}"),
    }
}

fn last_status(s: &mut Session, ops: Vec<ArgOp>) -> nfsstat4 {
    s.compound(ops).unwrap().results.last().unwrap().status
}

/// Pings until `cond` holds on what the back channel saw, or `within` passes.
fn ping_until(
    s: &mut Session,
    seen: &Seen,
    within: Duration,
    cond: impl Fn(&CallbacksSeen) -> bool,
) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        s.ping().unwrap();
        if cond(&seen.lock().unwrap()) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Opens `path` for writing in another thread, writes `data` at 0, and reports how long the
/// open took.
fn local_writer(path: &Path, data: &'static [u8]) -> mpsc::Receiver<Duration> {
    let (tx, rx) = mpsc::channel();
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let t0 = Instant::now();
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let waited = t0.elapsed();
        f.write_all(data).unwrap();
        let _ = tx.send(waited);
    });
    rx
}

#[test]
fn a_local_writer_waits_for_the_recall_and_then_no_stale_data_is_served() {
    require_root("file leases on files of any owner");
    let srv = server("lock_callback_timeout_ms = 1000", "");
    let path = srv.export().join("data");
    std::fs::write(&path, b"one").unwrap();
    let (mut a, seen) = with_back_channel(&srv, "local-writer-a", true);
    assert!(
        ping_until(&mut a, &seen, Duration::from_secs(5), |s| s.nulls > 0),
        "the server probed the back channel (CB_NULL)"
    );
    let dir = export_fh(&mut a, &srv);
    let (fh, open_sid, deleg) = open(&mut a, &dir, "data", RD | WANT_READ_DELEG).unwrap();
    let deleg = read_delegation(&deleg);

    let done = local_writer(&path, b"two");
    assert!(
        ping_until(&mut a, &seen, Duration::from_secs(5), |s| !s
            .recalls
            .is_empty()),
        "CB_RECALL reached the client"
    );
    assert_eq!(seen.lock().unwrap().recalls[0].other, deleg.other);
    // The local process waits while the delegation is out; an admin sees why.
    std::thread::sleep(Duration::from_millis(300));
    a.ping().unwrap();
    assert!(
        done.try_recv().is_err(),
        "the local open waited for the delegation"
    );
    let listed = ctl(srv.state_dir(), &["nfs4", "delegations"]);
    assert_eq!(listed["total"], 1, "{listed}");
    assert_eq!(listed["delegations"][0]["kind"], "read", "{listed}");
    assert!(
        listed["delegations"][0]["recall_due_in_ms"]
            .as_u64()
            .is_some(),
        "{listed}"
    );
    assert!(
        listed["callbacks"]["answered"].as_u64().unwrap() >= 2,
        "{listed}"
    );
    let clients = ctl(srv.state_dir(), &["nfs4", "clients"]);
    assert_eq!(clients["clients"][0]["delegations"], 1, "{clients}");
    assert_eq!(clients["clients"][0]["callbacks"], true, "{clients}");
    let returned = Instant::now();
    assert_eq!(
        last_status(
            &mut a,
            vec![ArgOp::PutFh(fh.clone()), ArgOp::DelegReturn(deleg)]
        ),
        nfsstat4::NFS4_OK
    );
    let waited = done
        .recv_timeout(Duration::from_secs(5))
        .expect("the local open went on once the delegation was returned");
    let after_return = returned.elapsed();
    eprintln!("local writer waited {waited:?} in open; went on {after_return:?} after DELEGRETURN");
    assert!(after_return < Duration::from_secs(3), "{waited:?}");
    assert_eq!(ctl(srv.state_dir(), &["nfs4", "delegations"])["total"], 0);
    // What the client reads now is the local process's data.
    let r = a.read(&fh, &open_sid, 0, 16).unwrap();
    assert_eq!(&r.data.0[..], b"two");
    // A returned delegation is gone; a second return is refused.
    assert_eq!(
        last_status(&mut a, vec![ArgOp::PutFh(fh), ArgOp::DelegReturn(deleg)]),
        nfsstat4::NFS4ERR_BAD_STATEID
    );
}

#[test]
fn a_recall_never_answered_is_revoked_at_the_deadline() {
    require_root("file leases on files of any owner");
    let srv = server("nfs4_lease_ms = 2000\nlock_callback_timeout_ms = 500", "");
    std::fs::write(srv.export().join("f"), b"x").unwrap();
    let (mut a, seen) = with_back_channel(&srv, "silent-a", true);
    assert!(ping_until(&mut a, &seen, Duration::from_secs(5), |s| s
        .nulls
        > 0));
    let dir = export_fh(&mut a, &srv);
    let (fh, _, deleg) = open(&mut a, &dir, "f", RD | WANT_READ_DELEG).unwrap();
    let deleg = read_delegation(&deleg);
    // a now stays silent: it reads nothing, so the recall goes unanswered.
    let mut b = plain(&srv, "silent-b");
    let dir_b = export_fh(&mut b, &srv);
    let t0 = Instant::now();
    let mut delays = 0;
    let opened = loop {
        match open(&mut b, &dir_b, "f", WR) {
            Err(nfsstat4::NFS4ERR_DELAY) if t0.elapsed() < Duration::from_secs(10) => {
                delays += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            other => break other,
        }
    };
    assert!(opened.is_ok(), "{opened:?}");
    assert!(delays > 0, "the writer waited for the recall");
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(8),
        "revoked after about a lease (2 s): {waited:?}"
    );
    // The holder learns of it: SEQUENCE's flag, NFS4ERR_DELEG_REVOKED, then FREE_STATEID.
    let flags = a.ping().unwrap();
    assert_ne!(
        flags & SEQ4_STATUS_RECALLABLE_STATE_REVOKED,
        0,
        "{flags:#x}"
    );
    assert_eq!(
        last_status(
            &mut a,
            vec![ArgOp::PutFh(fh.clone()), ArgOp::DelegReturn(deleg)]
        ),
        nfsstat4::NFS4ERR_DELEG_REVOKED
    );
    assert_eq!(
        last_status(&mut a, vec![ArgOp::FreeStateid(deleg)]),
        nfsstat4::NFS4_OK
    );
    let flags = a.ping().unwrap();
    assert_eq!(
        flags & SEQ4_STATUS_RECALLABLE_STATE_REVOKED,
        0,
        "{flags:#x}"
    );
}

#[test]
fn nfsv3_writes_and_nlm_locks_wait_for_the_recall_and_reads_do_not() {
    require_root("file leases on files of any owner");
    let srv = server("lock_callback_timeout_ms = 1000", "");
    std::fs::write(srv.export().join("v3"), b"old").unwrap();
    let (mut a, seen) = with_back_channel(&srv, "v3-a", true);
    assert!(ping_until(&mut a, &seen, Duration::from_secs(5), |s| s
        .nulls
        > 0));
    let dir = export_fh(&mut a, &srv);
    let (fh, _, deleg) = open(&mut a, &dir, "v3", RD | WANT_READ_DELEG).unwrap();
    let deleg = read_delegation(&deleg);
    let (mut v3, fh3) = nfsv3_of(&srv, &fh);
    // Reading conflicts with no read delegation.
    assert_eq!(&v3.read(&fh3, 0, 16).unwrap().data.0[..], b"old");
    let write = |v3: &mut Client| {
        v3.write(
            &fh3,
            0,
            Bytes::from_static(b"new"),
            rnfs_client::nfs3::stable_how::FILE_SYNC,
        )
    };
    match write(&mut v3) {
        Err(rnfs_client::Error::Nfs(s)) => {
            assert_eq!(s, rnfs_client::nfs3::nfsstat3::NFS3ERR_JUKEBOX)
        }
        other => panic!("expected JUKEBOX, got {other:?}"),
    }
    // An NLM client's exclusive lock waits too (DENIED_GRACE_PERIOD: "try again shortly").
    let owner = rnfs_client::LockOwner::new("nlm-host", 7);
    let nlm = |v3: &mut Client| {
        let args = owner.lock_args(&fh3, true, 0, 10);
        v3.nlm_lock(&args).unwrap().stat.stat
    };
    assert_eq!(nlm(&mut v3), nlm4_stats::NLM4_DENIED_GRACE_PERIOD);
    let recalled = |s: &CallbacksSeen| !s.recalls.is_empty();
    assert!(ping_until(&mut a, &seen, Duration::from_secs(5), recalled));
    assert_eq!(
        last_status(&mut a, vec![ArgOp::PutFh(fh), ArgOp::DelegReturn(deleg)]),
        nfsstat4::NFS4_OK
    );
    assert_eq!(nlm(&mut v3), nlm4_stats::NLM4_GRANTED);
    write(&mut v3).unwrap();
    assert_eq!(std::fs::read(srv.export().join("v3")).unwrap(), b"new");
}

#[test]
fn no_delegation_without_a_back_channel_that_answers_or_when_switched_off() {
    require_root("file leases on files of any owner");
    let srv = server("lock_callback_timeout_ms = 300", "");
    std::fs::write(srv.export().join("g"), b"x").unwrap();
    // The probe goes unanswered: the path is down, and no delegation is offered.
    let (mut dead, _) = with_back_channel(&srv, "dead", false);
    let end = Instant::now() + Duration::from_secs(5);
    let mut flags = 0;
    while Instant::now() < end && flags & SEQ4_STATUS_CB_PATH_DOWN_SESSION == 0 {
        std::thread::sleep(Duration::from_millis(50));
        flags = dead.ping().unwrap();
    }
    assert_ne!(flags & SEQ4_STATUS_CB_PATH_DOWN_SESSION, 0, "{flags:#x}");
    let dir = export_fh(&mut dead, &srv);
    let (_, _, d) = open(&mut dead, &dir, "g", RD | WANT_READ_DELEG).unwrap();
    assert_eq!(d, open_delegation4::NoneExt(1), "WND4_CONTENTION");
    // No back channel asked for: none either.
    let mut none = plain(&srv, "none");
    let (_, _, d) = open(&mut none, &dir, "g", RD | WANT_READ_DELEG).unwrap();
    assert!(matches!(d, open_delegation4::NoneExt(_)), "{d:?}");
    // A write delegation is not offered while other clients have the file open.
    let (mut live, seen) = with_back_channel(&srv, "live", true);
    assert!(ping_until(&mut live, &seen, Duration::from_secs(5), |s| s
        .nulls
        > 0));
    let (_, _, d) = open(&mut live, &dir, "g", RD | WR | WANT_WRITE_DELEG).unwrap();
    assert_eq!(d, open_delegation4::NoneExt(1), "WND4_CONTENTION");
    drop(srv);

    let srv = server("", "nfs4_delegations = false");
    std::fs::write(srv.export().join("g"), b"x").unwrap();
    let (mut s, seen) = with_back_channel(&srv, "off", true);
    assert!(ping_until(&mut s, &seen, Duration::from_secs(5), |s| s
        .nulls
        > 0));
    let dir = export_fh(&mut s, &srv);
    let (_, _, d) = open(&mut s, &dir, "g", RD | WANT_READ_DELEG).unwrap();
    assert_eq!(d, open_delegation4::NoneExt(2), "WND4_RESOURCE");
    let (_, _, d) = open(&mut s, &dir, "g", RD).unwrap();
    assert_eq!(d, open_delegation4::None);
}

#[test]
fn a_local_writer_waits_no_longer_than_the_deadline_when_the_holder_is_silent() {
    require_root("file leases on files of any owner");
    let srv = server("nfs4_lease_ms = 2000\nlock_callback_timeout_ms = 500", "");
    let path = srv.export().join("h");
    std::fs::write(&path, b"one").unwrap();
    let (mut a, seen) = with_back_channel(&srv, "silent-holder", true);
    assert!(ping_until(&mut a, &seen, Duration::from_secs(5), |s| s
        .nulls
        > 0));
    let dir = export_fh(&mut a, &srv);
    let (_, _, deleg) = open(&mut a, &dir, "h", RD | WANT_READ_DELEG).unwrap();
    read_delegation(&deleg);
    // a never reads its connection again: the recall goes unanswered.
    let done = local_writer(&path, b"two");
    let waited = done
        .recv_timeout(Duration::from_secs(10))
        .expect("the local open went on at the recall's deadline");
    eprintln!("with a silent holder, the local writer waited {waited:?} (lease 2 s)");
    assert!(
        waited >= Duration::from_millis(1000) && waited < Duration::from_secs(6),
        "waited about a lease (2 s), not the kernel's lease-break-time: {waited:?}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"two");
    let flags = a.ping().unwrap();
    assert_ne!(
        flags & SEQ4_STATUS_RECALLABLE_STATE_REVOKED,
        0,
        "{flags:#x}"
    );
}

#[test]
fn stray_replies_on_a_connection_are_dropped_and_counted_and_calls_still_answered() {
    use std::io::Read;
    let srv = server("", "");
    let mut conn = std::net::TcpStream::connect(srv.tcp_addr()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let record = |words: &[u32]| {
        let body: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
        let mut r = (0x8000_0000u32 | body.len() as u32).to_be_bytes().to_vec();
        r.extend(body);
        r
    };
    // 10,000 accepted SUCCESS replies to calls the server never made, in one burst.
    const STRAY: u32 = 10_000;
    let mut burst = Vec::new();
    for xid in 0..STRAY {
        burst.extend(record(&[xid.wrapping_mul(2_654_435_761), 1, 0, 0, 0, 0]));
    }
    conn.write_all(&burst).unwrap();
    // Then an NFSv4 NULL call on the same connection: answered as usual.
    conn.write_all(&record(&[0xfeed, 0, 2, 100_003, 4, 0, 0, 0, 0, 0]))
        .unwrap();
    let mut marker = [0u8; 4];
    conn.read_exact(&mut marker).unwrap();
    let len = (u32::from_be_bytes(marker) & 0x7fff_ffff) as usize;
    let mut reply = vec![0u8; len];
    conn.read_exact(&mut reply).unwrap();
    assert_eq!(
        &reply[..8],
        &[0, 0, 0xfe, 0xed, 0, 0, 0, 1],
        "the NULL call's reply"
    );
    let counts = ctl(srv.state_dir(), &["nfs4", "delegations"]);
    assert!(
        counts["callbacks"]["stray_replies"].as_u64().unwrap() >= u64::from(STRAY),
        "{counts}"
    );
}

/// Reads `path` in another thread and reports how long the open took, and what it read.
fn local_reader(path: &Path) -> mpsc::Receiver<(Duration, Vec<u8>)> {
    let (tx, rx) = mpsc::channel();
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let t0 = Instant::now();
        let mut f = std::fs::File::open(&path).unwrap();
        let waited = t0.elapsed();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut data).unwrap();
        let _ = tx.send((waited, data));
    });
    rx
}

#[test]
fn a_write_delegation_serves_its_holder_and_a_local_reader_waits_for_its_data() {
    require_root("file leases on files of any owner");
    let srv = server("lock_callback_timeout_ms = 1000", "");
    let path = srv.export().join("w");
    std::fs::write(&path, b"").unwrap();
    let (mut a, seen) = with_back_channel(&srv, "writer-a", true);
    assert!(ping_until(&mut a, &seen, Duration::from_secs(5), |s| s
        .nulls
        > 0));
    let dir = export_fh(&mut a, &srv);
    let (fh, open_sid, d) = open(&mut a, &dir, "w", RD | WR | WANT_WRITE_DELEG).unwrap();
    let deleg = match d {
        open_delegation4::Write { stateid, .. } => stateid,
        other => panic!("expected a write delegation, got {other:?}"),
    };
    // The holder writes and reads through the server without breaking its own lease.
    a.write(&fh, &deleg, 0, b"hello ", nfs4::stable_how4::UNSTABLE4)
        .unwrap();
    a.write(&fh, &open_sid, 6, b"world", nfs4::stable_how4::UNSTABLE4)
        .unwrap();
    assert_eq!(
        &a.read(&fh, &deleg, 0, 64).unwrap().data.0[..],
        b"hello world"
    );
    assert!(seen.lock().unwrap().recalls.is_empty(), "no self-recall");
    // Another client's GETATTR of the size and change gets the holder's (CB_GETATTR).
    seen.lock().unwrap().getattr_answer = Some((4242, 11));
    let mut b = plain(&srv, "writer-b");
    let wanted = nfs4::Bitmap::from_bits(&[nfs4::attr::num::CHANGE, nfs4::attr::num::SIZE]);
    let got = std::thread::scope(|scope| {
        // The holder's connection must be read for the callback to be answered.
        let pinger =
            scope.spawn(|| ping_until(&mut a, &seen, Duration::from_secs(5), |s| s.getattrs > 0));
        let got = b.getattr(&fh, &wanted).unwrap();
        assert!(pinger.join().unwrap(), "CB_GETATTR reached the holder");
        got
    });
    let vals = &got.attr_vals.0;
    assert_eq!(got.attrmask, wanted);
    assert_eq!(
        u64::from_be_bytes(vals[..8].try_into().unwrap()),
        4242,
        "the holder's change"
    );
    assert_eq!(
        u64::from_be_bytes(vals[8..16].try_into().unwrap()),
        11,
        "the holder's size"
    );
    // A local reader waits until the holder gives the delegation back, then sees its data.
    let done = local_reader(&path);
    assert!(
        ping_until(&mut a, &seen, Duration::from_secs(5), |s| !s
            .recalls
            .is_empty()),
        "CB_RECALL reached the holder"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        done.try_recv().is_err(),
        "the local open waited for the delegation"
    );
    a.commit(&fh, 0, 0).unwrap();
    assert_eq!(
        last_status(&mut a, vec![ArgOp::PutFh(fh), ArgOp::DelegReturn(deleg)]),
        nfsstat4::NFS4_OK
    );
    let (_, data) = done
        .recv_timeout(Duration::from_secs(5))
        .expect("the local open went on once the delegation was returned");
    assert_eq!(data, b"hello world");
}

/// While some client holds a delegation, no call runs in place (see rnfs-server's
/// `transport::InPlace`): a call may then wait for a recall, or for the holder's CB_GETATTR
/// reply, which could come on the waiting thread's own connection.
#[test]
fn no_call_runs_in_place_while_a_delegation_is_held() {
    require_root("file leases on files of any owner");
    let srv = server_with_args("", "", &["--metrics", "127.0.0.1:0"]);
    std::fs::write(srv.export().join("held"), b"data").unwrap();
    let in_place = || {
        let text = common::scrape_metrics(srv.state_dir());
        common::metric(&text, r#"rnfsd_requests_run_total{on="in_place"}"#)
    };
    let (mut a, seen) = with_back_channel(&srv, "in-place-a", true);
    assert!(ping_until(&mut a, &seen, Duration::from_secs(5), |s| s
        .nulls
        > 0));
    let dir = export_fh(&mut a, &srv);
    let (fh, _, deleg) = open(&mut a, &dir, "held", RD | WANT_READ_DELEG).unwrap();
    let deleg = read_delegation(&deleg);
    let (mut v3, fh3) = nfsv3_of(&srv, &fh);
    let before = in_place();
    for _ in 0..10 {
        v3.getattr(&fh3).unwrap();
    }
    assert_eq!(
        in_place(),
        before,
        "all pooled while the delegation is held"
    );
    assert_eq!(
        last_status(&mut a, vec![ArgOp::PutFh(fh), ArgOp::DelegReturn(deleg)]),
        nfsstat4::NFS4_OK
    );
    let before = in_place();
    for _ in 0..10 {
        v3.getattr(&fh3).unwrap();
    }
    assert!(in_place() > before, "in place again once it is returned");
}
