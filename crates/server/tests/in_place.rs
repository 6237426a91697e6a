//! Lone calls run where they were read, and the thread that ran one lingers for its connection's
//! next call (transport::InPlace, transport::tcp "Lingering"): what that thread reads itself is
//! served exactly as the reader would serve it, other connections are served meanwhile, and the
//! connection's limits and timers still hold.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use rnfs_client::nfs3::nfs_fh3;
use rnfs_client::rpc::{self, Auth};
use rnfs_client::Client;
use rnfs_server::config::Limits;
use rnfs_server::Embedded;
use rnfs_xdr::XdrEncode;

const NFS_PROGRAM: u32 = 100_003;
const NFSPROC3_GETATTR: u32 = 1;
const UID: u32 = 1000;

struct Server {
    _dir: tempfile::TempDir,
    server: Embedded,
}

impl Server {
    fn start(limits: Limits) -> Server {
        let (_dir, server) = common::embedded_export(limits);
        Server { _dir, server }
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    fn client(&self) -> Client {
        let mut c = Client::connect_tcp(self.addr())
            .unwrap()
            .with_auth_sys(UID, UID, &[]);
        c.set_timeout(Duration::from_secs(20)).unwrap();
        c
    }

    fn in_place(&self) -> u64 {
        load(&self.server.running.service.counters.requests_in_place)
    }

    fn pooled(&self) -> u64 {
        load(&self.server.running.service.counters.requests_pooled)
    }

    fn lingering(&self) -> u64 {
        load(
            &self
                .server
                .running
                .service
                .counters
                .requests_in_place_lingering,
        )
    }

    fn closed_slow_record(&self) -> u64 {
        load(
            &self
                .server
                .running
                .service
                .counters
                .connections_closed_slow_record,
        )
    }

    /// Waits until no connection lingers: the slot is free within `LINGER_MS_MAX` (50 ms).
    fn let_lingering_end(&self) {
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// One GETATTR call of `root` as a whole record (marker included), AUTH_SYS as `UID`.
fn getattr_record(xid: u32, root: &nfs_fh3) -> Vec<u8> {
    let mut args = BytesMut::new();
    root.encode(&mut args);
    let auth = Auth::Sys {
        stamp: 0,
        machinename: bytes::Bytes::from_static(b"t"),
        uid: UID,
        gid: UID,
        gids: vec![],
    };
    let msg = rpc::encode_call(xid, NFS_PROGRAM, 3, NFSPROC3_GETATTR, &auth, &args);
    let mut out = BytesMut::new();
    out.put_u32(0x8000_0000 | msg.len() as u32);
    out.put_slice(&msg);
    out.to_vec()
}

/// Reads one reply record and returns its XID.
fn reply_xid(s: &mut TcpStream) -> u32 {
    let msg = rpc::read_record(s, 1 << 20).unwrap();
    u32::from_be_bytes([msg[0], msg[1], msg[2], msg[3]])
}

#[test]
fn one_call_in_flight_is_read_and_run_by_the_lingering_thread() {
    let srv = Server::start(Limits::default());
    let mut c = srv.client();
    let root = c.mount(b"/export").unwrap();
    let (in_place, pooled, lingering) = (srv.in_place(), srv.pooled(), srv.lingering());
    const CALLS: u64 = 300;
    for _ in 0..CALLS {
        c.getattr(&root).unwrap();
    }
    assert_eq!(
        srv.in_place() - in_place,
        CALLS,
        "every lone call ran in place"
    );
    assert_eq!(srv.pooled(), pooled, "none went to the pool");
    let lingered = srv.lingering() - lingering;
    // Each call that came within 0.5 ms of the previous reply was read by the lingering thread;
    // on a loaded machine some come later and are read by the reader (and run in place anyway).
    assert!(
        (1..CALLS).contains(&lingered),
        "{lingered} of {CALLS} calls read while lingering (the first never is)"
    );
}

#[test]
fn other_connections_are_served_while_one_lingers() {
    let srv = Arc::new(Server::start(Limits::default()));
    let mut c = srv.client();
    let root = c.mount(b"/export").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let busy = {
        let (stop, root) = (stop.clone(), root.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                c.getattr(&root).unwrap();
                n += 1;
            }
            n
        })
    };
    // The busy connection holds the in-place slot most of the time; another client's calls go
    // to the pool meanwhile, and are answered as promptly.
    let pooled = srv.pooled();
    let mut other = srv.client();
    let mut slowest = Duration::ZERO;
    for _ in 0..200 {
        let t = Instant::now();
        other.getattr(&root).unwrap();
        slowest = slowest.max(t.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    let busy_calls = busy.join().unwrap();
    assert!(busy_calls > 0);
    assert!(
        srv.pooled() > pooled,
        "some of the other client's calls ran on the pool"
    );
    assert!(
        slowest < Duration::from_secs(1),
        "the other client waited {slowest:?} for one GETATTR"
    );
}

#[test]
fn a_partial_record_read_while_lingering_still_times_out() {
    let limits = Limits {
        record_receive_ms_max: 300,
        ..Limits::default()
    };
    let srv = Server::start(limits);
    let root = srv.client().mount(b"/export").unwrap();
    srv.let_lingering_end();
    let mut s = TcpStream::connect(srv.addr()).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let slow_before = srv.closed_slow_record();
    // A lone call (in place), then at once the start of a record whose rest never comes: read
    // by the lingering thread or by the reader, it is timed all the same.
    let in_place = srv.in_place();
    s.write_all(&getattr_record(1, &root)).unwrap();
    assert_eq!(reply_xid(&mut s), 1);
    assert_eq!(srv.in_place() - in_place, 1);
    let record = getattr_record(2, &root);
    s.write_all(&record[..record.len() / 2]).unwrap();
    let started = Instant::now();
    let mut rest = [0u8; 16];
    assert_eq!(s.read(&mut rest).unwrap(), 0, "closed, no reply");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(10),
        "closed after {waited:?}; the bound is 300 ms"
    );
    assert_eq!(srv.closed_slow_record() - slow_before, 1);
}

#[test]
fn records_that_come_together_are_all_answered() {
    let srv = Server::start(Limits::default());
    let root = srv.client().mount(b"/export").unwrap();
    srv.let_lingering_end();
    let mut s = TcpStream::connect(srv.addr()).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let pooled = srv.pooled();
    let mut xid = 0;
    // Each round: a lone call, then right after its reply (while its thread lingers) three
    // records in one write. The lingering thread hands what it cannot run alone to the reader.
    for _ in 0..50 {
        xid += 1;
        s.write_all(&getattr_record(xid, &root)).unwrap();
        assert_eq!(reply_xid(&mut s), xid);
        let mut three = Vec::new();
        for _ in 0..3 {
            xid += 1;
            three.extend_from_slice(&getattr_record(xid, &root));
        }
        s.write_all(&three).unwrap();
        let mut got: Vec<u32> = (0..3).map(|_| reply_xid(&mut s)).collect();
        got.sort_unstable();
        assert_eq!(got, vec![xid - 2, xid - 1, xid]);
    }
    assert!(
        srv.pooled() > pooled,
        "calls that came together ran on the pool"
    );
}

#[test]
fn the_server_stops_promptly_while_a_connection_lingers() {
    let srv = Server::start(Limits::default());
    let mut c = srv.client();
    let root = c.mount(b"/export").unwrap();
    c.getattr(&root).unwrap();
    let started = Instant::now();
    let Server { _dir, server } = srv;
    server.stop().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped in {:?}",
        started.elapsed()
    );
}

#[test]
fn nfsv4_compounds_run_in_place_unless_they_create_or_wait_for_the_disk() {
    use rnfs_client::v4::Session;
    use rnfs_nfs4::{stable_how4, Bitmap, OPEN4_SHARE_ACCESS_BOTH};
    let srv = Server::start(Limits::default());
    let pooled = srv.pooled();
    // EXCHANGE_ID, CREATE_SESSION and RECLAIM_COMPLETE change the client records kept on
    // stable storage: the pool.
    let mut s = Session::establish(srv.client(), b"in-place").unwrap();
    assert!(srv.pooled() - pooled >= 3);
    let dir = s.lookup_path(&["export"]).unwrap();
    let (in_place, pooled) = (srv.in_place(), srv.pooled());
    let size = Bitmap::from_bits(&[rnfs_nfs4::attr::num::SIZE]);
    for _ in 0..50 {
        s.getattr(&dir, &size).unwrap();
    }
    let (fh, stateid) = s.open(&dir, "f", false, OPEN4_SHARE_ACCESS_BOTH).unwrap();
    s.write(&fh, &stateid, 0, b"unstable", stable_how4::UNSTABLE4)
        .unwrap();
    assert_eq!(
        srv.in_place() - in_place,
        52,
        "GETATTRs, OPEN, UNSTABLE WRITE"
    );
    assert_eq!(srv.pooled(), pooled);
    // A creating OPEN, a FILE_SYNC WRITE and a COMMIT run on the pool.
    s.open(&dir, "new", true, OPEN4_SHARE_ACCESS_BOTH).unwrap();
    s.write(&fh, &stateid, 0, b"stable", stable_how4::FILE_SYNC4)
        .unwrap();
    s.commit(&fh, 0, 0).unwrap();
    assert_eq!(srv.in_place() - in_place, 52);
    assert_eq!(srv.pooled() - pooled, 3);
}
