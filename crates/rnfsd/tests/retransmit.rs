//! Retransmissions and the duplicate request cache (issue 6), through the real `rnfsd` binary and
//! a raw RPC client that chooses its transaction ids:
//!
//! * the same CREATE (GUARDED) / WRITE / RENAME / REMOVE call — same xid, same arguments — sent
//!   twice on the same connection, on a new connection (a reconnecting client has a new source
//!   port), over UDP, and first over TCP then over UDP, is executed once: the second reply is
//!   byte-identical to the first, and the file system shows one execution (a second REMOVE would
//!   say NOENT, a second guarded CREATE EXIST, a second RENAME NOENT, a second WRITE would undo the
//!   write made after it);
//! * the same xid with different arguments, a different credential, or from another client
//!   address is a different call, and is executed;
//! * in process (a fault-injecting backend delays REMOVE): a retransmission that arrives while the
//!   call is still running is dropped — on the same connection, a new one and UDP — and the call
//!   runs once; once it completes, retransmissions get its reply replayed.
//!
//! Every test here needs root (rnfsd uses `open_by_handle_at`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod nfsutil;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use nfsutil::dirop;
use rnfs_client::nfs3::*;
use rnfs_client::{Auth, Client, ReplyStatus};
use rnfs_xdr::{to_bytes, Opaque};

const UID: u32 = USER;

/// A server whose export belongs to [`UID`].
fn server() -> TestServer {
    require_root("rnfsd needs CAP_DAC_READ_SEARCH");
    let mut srv = TestServer::new();
    chown(srv.export(), UID, UID);
    srv.start();
    srv
}

fn tcp(srv: &TestServer) -> Client {
    tcp_from(srv, 1)
}

fn tcp_from(srv: &TestServer, last: u8) -> Client {
    let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)), 0);
    Client::connect_tcp_from(local, srv.tcp_addr())
        .unwrap()
        .with_auth_sys(UID, UID, &[UID])
}

fn udp(srv: &TestServer) -> Client {
    let mut c = Client::connect_udp(srv.udp_addr())
        .unwrap()
        .with_auth_sys(UID, UID, &[UID]);
    // The test sends each copy itself: no automatic retransmission inside one call.
    c.set_udp_retransmit(Duration::from_secs(10));
    c
}

/// Transaction ids no other test process uses (the cache is keyed on the client address, and all
/// tests share 127.0.0.1).
fn xid_base() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    (t.subsec_nanos() ^ std::process::id().rotate_left(20)) & 0xfff0_0000
}

fn create_args(dir: &nfs_fh3, n: &str) -> Bytes {
    to_bytes(&CREATE3args {
        r#where: dirop(dir, n),
        how: createhow3::Guarded(sattr3 {
            mode: Some(0o644),
            ..Default::default()
        }),
    })
}

fn write_args(file: &nfs_fh3, offset: u64, data: &[u8]) -> Bytes {
    to_bytes(&WRITE3args {
        file: file.clone(),
        offset,
        count: data.len() as u32,
        stable: stable_how::FILE_SYNC,
        data: Opaque(Bytes::copy_from_slice(data)),
    })
}

fn rename_args(dir: &nfs_fh3, from: &str, to: &str) -> Bytes {
    to_bytes(&RENAME3args {
        from: dirop(dir, from),
        to: dirop(dir, to),
    })
}

fn remove_args(dir: &nfs_fh3, n: &str) -> Bytes {
    to_bytes(&REMOVE3args {
        object: dirop(dir, n),
    })
}

/// The nfsstat3 at the head of a successful RPC reply's results.
#[track_caller]
fn nfs_status(raw: &Bytes) -> u32 {
    let reply = rnfs_client::rpc::decode_reply(raw.clone()).unwrap();
    match reply.status {
        ReplyStatus::Success(res) => u32::from_be_bytes(res[..4].try_into().unwrap()),
        other => panic!("RPC reply {other}, expected SUCCESS"),
    }
}

const OK: u32 = 0;
const NOENT: u32 = nfsstat3::NFS3ERR_NOENT as u32;
const EXIST: u32 = nfsstat3::NFS3ERR_EXIST as u32;

/// How the retransmission travels.
#[derive(Debug, Clone, Copy)]
enum Path {
    /// Both copies on one TCP connection.
    SameConnection,
    /// The copy on a new TCP connection (new source port), as after a reconnect.
    NewConnection,
    /// Both copies over UDP.
    Udp,
    /// The original over TCP, the copy over UDP.
    TcpThenUdp,
}

/// Sends `args` as `proc_num` with `xid` twice along `path`; returns both raw replies.
fn twice(srv: &TestServer, path: Path, xid: u32, proc_num: u32, args: &[u8]) -> (Bytes, Bytes) {
    let call = |c: &mut Client| {
        c.call_raw_bytes(xid, NFS_PROGRAM, NFS_V3, proc_num, args)
            .unwrap_or_else(|e| panic!("{path:?}: proc {proc_num} xid {xid:#x}: {e}"))
    };
    match path {
        Path::SameConnection => {
            let mut c = tcp(srv);
            let a = call(&mut c);
            (a, call(&mut c))
        }
        Path::NewConnection => {
            let a = call(&mut tcp(srv));
            (a, call(&mut tcp(srv)))
        }
        Path::Udp => {
            let mut c = udp(srv);
            let a = call(&mut c);
            (a, call(&mut c))
        }
        Path::TcpThenUdp => {
            let a = call(&mut tcp(srv));
            (a, call(&mut udp(srv)))
        }
    }
}

#[track_caller]
fn assert_identical(what: &str, a: &Bytes, b: &Bytes) {
    assert!(
        a == b,
        "{what}: the retransmission's reply differs from the original's\n original: {a:02x?}\n     copy: {b:02x?}"
    );
}

/// Names in `dir` on disk, sorted.
fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// CREATE, WRITE, RENAME and REMOVE, each sent twice along `path`, in directory `sub`.
fn executed_once(srv: &TestServer, path: Path, sub: &str, xid: u32) {
    let local = srv.export().join(sub);
    std::fs::create_dir(&local).unwrap();
    chown(&local, UID, UID);
    let mut c = tcp(srv);
    let root = c.mount(srv.mount_path().as_bytes()).unwrap();
    let dir = c.lookup(&root, sub.as_bytes()).unwrap().object;

    // CREATE GUARDED: a second execution would fail with EXIST.
    let (a, b) = twice(srv, path, xid, NFSPROC3_CREATE, &create_args(&dir, "f"));
    assert_eq!(nfs_status(&a), OK, "{path:?}: CREATE");
    assert_identical(&format!("{path:?}: CREATE GUARDED"), &a, &b);
    assert_eq!(listing(&local), ["f"], "{path:?}: one file created");

    // WRITE "A" at 0, then (another call) "B" at 0; the retransmitted first WRITE must not be
    // executed again, which would put the "A"s back.
    let file = c.lookup(&dir, b"f").unwrap().object;
    let (a, b) = {
        let first = vec![b'A'; 8192];
        let mut t = tcp(srv);
        let a = t
            .call_raw_bytes(
                xid + 1,
                NFS_PROGRAM,
                NFS_V3,
                NFSPROC3_WRITE,
                &write_args(&file, 0, &first),
            )
            .unwrap();
        assert_eq!(nfs_status(&a), OK, "{path:?}: WRITE");
        c.write(
            &file,
            0,
            Bytes::from(vec![b'B'; 8192]),
            stable_how::FILE_SYNC,
        )
        .unwrap();
        // The copy, along the path under test.
        let b = match path {
            Path::SameConnection => t.call_raw_bytes(
                xid + 1,
                NFS_PROGRAM,
                NFS_V3,
                NFSPROC3_WRITE,
                &write_args(&file, 0, &first),
            ),
            Path::NewConnection => tcp(srv).call_raw_bytes(
                xid + 1,
                NFS_PROGRAM,
                NFS_V3,
                NFSPROC3_WRITE,
                &write_args(&file, 0, &first),
            ),
            Path::Udp | Path::TcpThenUdp => udp(srv).call_raw_bytes(
                xid + 1,
                NFS_PROGRAM,
                NFS_V3,
                NFSPROC3_WRITE,
                &write_args(&file, 0, &first),
            ),
        }
        .unwrap();
        (a, b)
    };
    assert_identical(&format!("{path:?}: WRITE"), &a, &b);
    assert_eq!(
        std::fs::read(local.join("f")).unwrap(),
        vec![b'B'; 8192],
        "{path:?}: the retransmitted WRITE was executed again (it undid a later write)"
    );

    // RENAME f -> g: a second execution would fail with NOENT.
    let (a, b) = twice(
        srv,
        path,
        xid + 2,
        NFSPROC3_RENAME,
        &rename_args(&dir, "f", "g"),
    );
    assert_eq!(nfs_status(&a), OK, "{path:?}: RENAME");
    assert_identical(&format!("{path:?}: RENAME"), &a, &b);
    assert_eq!(listing(&local), ["g"], "{path:?}: renamed once");

    // REMOVE g: a second execution would fail with NOENT.
    let (a, b) = twice(srv, path, xid + 3, NFSPROC3_REMOVE, &remove_args(&dir, "g"));
    assert_eq!(nfs_status(&a), OK, "{path:?}: REMOVE");
    assert_identical(&format!("{path:?}: REMOVE"), &a, &b);
    assert!(listing(&local).is_empty(), "{path:?}: removed");
}

#[test]
fn retransmission_on_the_same_connection_is_executed_once() {
    let srv = server();
    executed_once(&srv, Path::SameConnection, "same", xid_base());
}

#[test]
fn retransmission_on_a_new_connection_is_executed_once() {
    let srv = server();
    executed_once(&srv, Path::NewConnection, "new", xid_base());
}

#[test]
fn retransmission_over_udp_is_executed_once() {
    let srv = server();
    executed_once(&srv, Path::Udp, "udp", xid_base());
}

#[test]
fn retransmission_from_tcp_to_udp_is_executed_once() {
    let srv = server();
    executed_once(&srv, Path::TcpThenUdp, "mixed", xid_base());
}

/// The cache key holds a checksum of the arguments and the credential, and the client's address:
/// a call that differs in any of them is a new call, even with the same xid.
#[test]
fn same_xid_with_different_arguments_credential_or_client_is_executed() {
    let srv = server();
    let xid = xid_base() | 0x8_0000;
    let mut c = tcp(&srv);
    let root = c.mount(srv.mount_path().as_bytes()).unwrap();
    let nfs = |c: &mut Client, x: u32, p: u32, args: &Bytes| {
        c.call_raw_bytes(x, NFS_PROGRAM, NFS_V3, p, args).unwrap()
    };

    // Different arguments: both CREATEs run.
    let a = nfs(&mut c, xid, NFSPROC3_CREATE, &create_args(&root, "a"));
    let b = nfs(&mut c, xid, NFSPROC3_CREATE, &create_args(&root, "b"));
    assert_eq!((nfs_status(&a), nfs_status(&b)), (OK, OK));
    assert_ne!(a, b);
    assert_eq!(listing(srv.export()), ["a", "b"]);
    // ... and both REMOVEs (on a new connection, over UDP).
    let a = nfs(
        &mut tcp(&srv),
        xid + 1,
        NFSPROC3_REMOVE,
        &remove_args(&root, "a"),
    );
    let b = nfs(
        &mut udp(&srv),
        xid + 1,
        NFSPROC3_REMOVE,
        &remove_args(&root, "b"),
    );
    assert_eq!((nfs_status(&a), nfs_status(&b)), (OK, OK));
    assert!(listing(srv.export()).is_empty());

    // The same arguments with another credential: executed (and now finds nothing to remove).
    nfs(&mut c, xid + 2, NFSPROC3_CREATE, &create_args(&root, "c"));
    let args = remove_args(&root, "c");
    let a = nfs(&mut c, xid + 3, NFSPROC3_REMOVE, &args);
    let mut other = tcp(&srv).with_auth(Auth::Sys {
        stamp: 0,
        machinename: Bytes::from_static(b"rnfs-client"),
        uid: UID,
        gid: UID,
        gids: vec![UID, 4],
    });
    let b = nfs(&mut other, xid + 3, NFSPROC3_REMOVE, &args);
    assert_eq!(
        (nfs_status(&a), nfs_status(&b)),
        (OK, NOENT),
        "a call with another credential is not a retransmission"
    );

    // The same call from another client address: executed.
    nfs(&mut c, xid + 4, NFSPROC3_CREATE, &create_args(&root, "d"));
    let args = create_args(&root, "e");
    let a = nfs(&mut c, xid + 5, NFSPROC3_CREATE, &args);
    let b = nfs(&mut tcp_from(&srv, 2), xid + 5, NFSPROC3_CREATE, &args);
    assert_eq!(
        (nfs_status(&a), nfs_status(&b)),
        (OK, EXIST),
        "another client's call with the same xid is not a retransmission"
    );
    // While 127.0.0.1's retransmission is still replayed.
    let again = nfs(&mut tcp(&srv), xid + 5, NFSPROC3_CREATE, &args);
    assert_identical("CREATE replayed after another client's", &a, &again);
}

// ---- in process: a retransmission of a call still running is dropped ---------------------------

mod in_process {
    use super::*;
    use rnfs_server::config::Limits;
    use rnfs_server::Embedded;
    use rnfs_storage::fault::{Action, FaultBackend, Op, Rule};
    use rnfs_storage::handle::HandleKey;
    use rnfs_storage::local::LocalFs;

    pub struct Server {
        pub server: Embedded,
        pub faults: Arc<FaultBackend>,
        pub export_dir: std::path::PathBuf,
        _dir: tempfile::TempDir,
    }

    impl Server {
        pub fn start() -> Server {
            require_root("rnfsd needs CAP_DAC_READ_SEARCH");
            let dir = tempfile::tempdir().unwrap();
            let export_dir = dir.path().join("export");
            std::fs::create_dir(&export_dir).unwrap();
            chown(&export_dir, UID, UID);
            let key = HandleKey::random().unwrap();
            let local = Arc::new(LocalFs::new(9, &export_dir, key).unwrap());
            let faults = Arc::new(FaultBackend::new(local));
            let server = Embedded::start(
                faults.clone(),
                9,
                "/export",
                export_dir.clone(),
                Limits::default(),
                dir.path().join("state"),
            )
            .unwrap();
            Server {
                server,
                faults,
                export_dir,
                _dir: dir,
            }
        }

        pub fn addr(&self) -> SocketAddr {
            self.server.addr()
        }
    }

    const DELAY: Duration = Duration::from_millis(1500);

    #[test]
    fn retransmission_of_a_call_in_progress_is_dropped_then_replayed() {
        let srv = Server::start();
        let addr = srv.addr();
        let client = |c: Client| c.with_auth_sys(UID, UID, &[UID]);
        let mut a = client(Client::connect_tcp(addr).unwrap());
        let root = a.mount(b"/export").unwrap();
        a.create(&root, b"victim", createhow3::Unchecked(sattr3::default()))
            .unwrap();
        srv.faults.add_rule(Rule {
            op: Op::Remove,
            action: Action::Delay(DELAY),
            times: None,
        });
        let xid = xid_base() | 0x4_0000;
        let args = remove_args(&root, "victim");
        let msg = rnfs_client::rpc::encode_call(
            xid,
            NFS_PROGRAM,
            NFS_V3,
            NFSPROC3_REMOVE,
            a.auth(),
            &args,
        );
        // Sent with a NULL call in one write, so it does not come alone and runs on the pool
        // (a lone call runs on the thread that read it, and its connection's next record is
        // read only after it: that copy would be a completed call's retransmission).
        let null = rnfs_client::rpc::encode_call(xid + 1, NFS_PROGRAM, NFS_V3, 0, a.auth(), &[]);
        let started = Instant::now();
        a.send_messages(&[&msg, &null]).unwrap();
        a.set_timeout(Duration::from_secs(10)).unwrap();
        let null_reply = a.recv_reply().unwrap();
        assert_eq!(
            null_reply.xid,
            xid + 1,
            "NULL is answered while REMOVE runs"
        );
        std::thread::sleep(Duration::from_millis(300));
        // Three copies while the original runs: same connection, new connection, UDP.
        a.send_message(&msg).unwrap();
        let mut b = client(Client::connect_tcp(addr).unwrap());
        b.send_message(&msg).unwrap();
        let mut u = client(Client::connect_udp(addr).unwrap());
        u.send_message(&msg).unwrap();

        // Exactly one reply on the original connection, after the delay.
        let original = a.recv_raw().unwrap();
        assert!(started.elapsed() >= DELAY);
        assert_eq!(nfs_status(&original), OK);
        a.set_timeout(Duration::from_millis(700)).unwrap();
        assert!(
            matches!(a.recv_raw(), Err(rnfs_client::Error::Timeout(_))),
            "the copy on the same connection got a reply of its own"
        );
        // None for the copies sent elsewhere while it ran.
        b.set_timeout(Duration::from_millis(300)).unwrap();
        assert!(matches!(b.recv_raw(), Err(rnfs_client::Error::Timeout(_))));
        u.set_timeout(Duration::from_millis(300)).unwrap();
        assert!(matches!(u.recv_raw(), Err(rnfs_client::Error::Timeout(_))));

        let stats = &srv.server.running.service.drc.stats;
        assert_eq!(stats.in_progress_drops.load(Ordering::Relaxed), 3);
        assert_eq!(
            srv.faults.fired(),
            1,
            "the backend's REMOVE ran once for four copies"
        );

        // Retransmitted after it completed: the same reply, byte for byte, on every path, without
        // running the backend again.
        for (what, c) in [("same", &mut a), ("new", &mut b), ("udp", &mut u)] {
            c.set_timeout(Duration::from_secs(5)).unwrap();
            let again = c
                .call_raw_bytes(xid, NFS_PROGRAM, NFS_V3, NFSPROC3_REMOVE, &args)
                .unwrap();
            assert_identical(what, &original, &again);
        }
        assert_eq!(stats.hits.load(Ordering::Relaxed), 3);
        assert_eq!(srv.faults.fired(), 1);
        assert!(!srv.export_dir.join("victim").exists());
        println!(
            "drc: hits {}, in-progress drops {}, inserts {}, evictions {}",
            stats.hits.load(Ordering::Relaxed),
            stats.in_progress_drops.load(Ordering::Relaxed),
            stats.inserts.load(Ordering::Relaxed),
            stats.evictions.load(Ordering::Relaxed)
        );
    }
}
