//! The storm over NFSv4.1: clients with many 1 MiB READs outstanding reset their connections
//! mid-reply and walk away from their sessions (their leases expire: courtesy clients), while
//! others write and truncate, let their own leases lapse and carry on, and a checker reads a
//! file end to end and compares every byte. Afterwards: nothing stalled, every loan is returned,
//! the readers' abandoned state is released when they are expired, and the writers' files hold
//! exactly what was acknowledged.
//!
//! Lease 2 s (`nfs4_lease_ms`), 16 loan slots, so leases expire and loans run out many times
//! over during the run (`RNFS_STORM_SECONDS`, default 12).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rnfs_client::nfs4::{self, ArgOp, Bitmap};
use rnfs_client::v4::{self, Session};
use rnfs_client::Client;
use serde_json::Value;

use common::{ctl, scrape_metrics, TestServer};

const LEASE_MS: u64 = 2000;
const BIG_BYTES: usize = 6 << 20;
const READ_BYTES: u32 = 1 << 20;
/// 1 MiB READs each resetter leaves outstanding per connection.
const PIPELINED: u32 = 6;

fn storm_duration() -> Duration {
    let s = std::env::var("RNFS_STORM_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    Duration::from_secs(s)
}

fn comps(p: &Path) -> Vec<String> {
    p.components()
        .filter_map(|c| match c {
            std::path::Component::Normal(s) => Some(s.to_str().unwrap().to_owned()),
            _ => None,
        })
        .collect()
}

fn session(addr: SocketAddr, owner: &str) -> Session {
    let c = Client::connect_tcp(addr).unwrap().with_auth_sys(0, 0, &[0]);
    Session::establish(c, owner.as_bytes()).unwrap_or_else(|e| panic!("session {owner}: {e}"))
}

fn file_fh(s: &mut Session, export: &Path, name: &str) -> nfs4::nfs_fh4 {
    let c = comps(export);
    let refs: Vec<&str> = c.iter().map(String::as_str).collect();
    let dir = s.lookup_path(&refs).unwrap();
    s.lookup(&dir, name).unwrap()
}

/// Makes the next close of `s` a reset (RST), as a client that crashes mid-reply.
fn reset_on_close(s: &TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on an open socket we own, with a correctly sized `linger`.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
}

/// One resetter round: a new client; PIPELINED 1 MiB READs on a second connection (its first
/// SEQUENCE binds it to the session), part of the replies read, then a reset. The session is
/// never destroyed: its lease runs out.
fn resetter_round(addr: SocketAddr, export: &Path, owner: &str, round: u64) {
    let mut s = session(addr, owner);
    let fh = file_fh(&mut s, export, "big.bin");
    let mut raw = TcpStream::connect(addr).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = rnfs_client::Auth::Sys {
        stamp: 0,
        machinename: bytes::Bytes::from_static(b"storm"),
        uid: 0,
        gid: 0,
        gids: vec![0],
    };
    let slots = s.slots().len().min(PIPELINED + 1);
    let mut out = Vec::new();
    for slot in 1..slots {
        let seqid = s.slots().next_seqid(slot).unwrap();
        let offset =
            (round * 7 + u64::from(slot)) * 4096 % (BIG_BYTES as u64 - u64::from(READ_BYTES));
        let ops = vec![
            s.sequence_op(slot, seqid, false),
            ArgOp::PutFh(fh.clone()),
            ArgOp::Read(nfs4::READ4args {
                stateid: nfs4::stateid4::ANONYMOUS,
                offset,
                count: READ_BYTES,
            }),
        ];
        let args = v4::encode_compound(1, ops);
        let msg = rnfs_client::rpc::encode_call(
            (round as u32) << 8 | slot,
            nfs4::NFS4_PROGRAM,
            nfs4::NFS_V4,
            nfs4::NFSPROC4_COMPOUND,
            &auth,
            &args,
        );
        out.extend_from_slice(&(0x8000_0000u32 | msg.len() as u32).to_be_bytes());
        out.extend_from_slice(&msg);
    }
    raw.write_all(&out).unwrap();
    // Part of the first reply, then gone.
    let mut buf = vec![0u8; 64 << 10];
    let _ = raw.read(&mut buf);
    reset_on_close(&raw);
    drop(raw);
}

/// A writer: its own file, written (acknowledged FILE_SYNC) and truncated at random; every few
/// rounds it is silent for longer than the lease, then carries on with the same stateid (a
/// courtesy client gets its lease back). Returns the file's expected contents.
fn writer(
    addr: SocketAddr,
    export: &Path,
    id: usize,
    until: Instant,
    silences: &AtomicU64,
) -> Vec<u8> {
    let mut s = session(addr, &format!("storm-writer-{id}-{}", std::process::id()));
    let c = comps(export);
    let refs: Vec<&str> = c.iter().map(String::as_str).collect();
    let dir = s.lookup_path(&refs).unwrap();
    let name = format!("w{id}.bin");
    let (fh, sid) = s
        .open(&dir, &name, true, nfs4::OPEN4_SHARE_ACCESS_BOTH)
        .unwrap();
    let mut model: Vec<u8> = Vec::new();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ id as u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut round = 0u64;
    while Instant::now() < until {
        round += 1;
        match next() % 8 {
            0 => {
                let size = (next() % (2 << 20)) as usize;
                let attrs = nfs4::attr::encode_settable(&nfs4::attr::SetAttrs4 {
                    size: Some(size as u64),
                    ..Default::default()
                });
                let r = s
                    .run(vec![
                        ArgOp::PutFh(fh.clone()),
                        ArgOp::SetAttr(nfs4::SETATTR4args {
                            stateid: sid,
                            obj_attributes: attrs,
                        }),
                    ])
                    .unwrap_or_else(|e| panic!("writer {id} truncate: {e}"));
                assert_eq!(r.len(), 2);
                model.resize(size, 0);
            }
            1 if round % 5 == 1 => {
                std::thread::sleep(Duration::from_millis(LEASE_MS + 1200));
                silences.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                let offset = (next() % (2 << 20)) as usize;
                let len = 1 + (next() % (256 << 10)) as usize;
                let byte = (next() % 251) as u8;
                let data = vec![byte; len];
                let w = s
                    .write(
                        &fh,
                        &sid,
                        offset as u64,
                        &data,
                        nfs4::stable_how4::FILE_SYNC4,
                    )
                    .unwrap_or_else(|e| panic!("writer {id} write: {e}"));
                assert_eq!(w.count as usize, len);
                if model.len() < offset + len {
                    model.resize(offset + len, 0);
                }
                model[offset..offset + len].copy_from_slice(&data);
            }
        }
    }
    let back = s.read_all(&fh, &sid, 4 << 20).unwrap();
    assert!(
        back == model,
        "writer {id}: the file differs from what was acknowledged"
    );
    s.close(&fh, &sid).unwrap();
    model
}

#[test]
fn nfs4_storm_of_resets_expiries_and_truncates_loses_nothing_and_leaks_nothing() {
    let mut srv = TestServer::new().args(["--metrics", "127.0.0.1:0"]);
    srv.set_config(&format!(
        "[[export]]\npath = {:?}\n\n[[export.client]]\nmatch = \"127.0.0.1\"\naccess = \"rw\"\nroot_squash = false\n\n\
         [limits]\nnfs4_lease_ms = {LEASE_MS}\nloans_max = 16\n",
        srv.export()
    ));
    let big: Vec<u8> = (0..BIG_BYTES).map(|i| (i * 31 % 253) as u8).collect();
    std::fs::write(srv.export().join("big.bin"), &big).unwrap();
    srv.start();
    let addr = srv.tcp_addr();
    let export = srv.export().to_owned();
    let state_dir = srv.state_dir().to_owned();
    let until = Instant::now() + storm_duration();
    let rounds = Arc::new(AtomicU64::new(0));
    let silences = Arc::new(AtomicU64::new(0));
    let checks = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for t in 0..4 {
        let (export, rounds) = (export.clone(), rounds.clone());
        threads.push(std::thread::spawn(move || {
            let mut n = 0;
            while Instant::now() < until {
                n += 1;
                resetter_round(
                    addr,
                    &export,
                    &format!("storm-reset-{t}-{n}-{}", std::process::id()),
                    n,
                );
                rounds.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let writers: Vec<_> = (0..2)
        .map(|id| {
            let (export, silences) = (export.clone(), silences.clone());
            std::thread::spawn(move || writer(addr, &export, id, until, &silences))
        })
        .collect();
    {
        let (export, checks, big) = (export.clone(), checks.clone(), big.clone());
        threads.push(std::thread::spawn(move || {
            let mut s = session(addr, &format!("storm-checker-{}", std::process::id()));
            let fh = file_fh(&mut s, &export, "big.bin");
            while Instant::now() < until {
                let back = s
                    .read_all(&fh, &nfs4::stateid4::ANONYMOUS, BIG_BYTES + 1)
                    .unwrap();
                assert!(back == big, "big.bin read back differs");
                checks.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Nothing stalls: every client finishes within the storm plus a bound.
    let deadline = until + Duration::from_secs(60);
    for t in threads {
        while !t.is_finished() {
            assert!(
                Instant::now() < deadline,
                "a storm client is stuck\n{}",
                srv.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        t.join().unwrap();
    }
    for (id, w) in writers.into_iter().enumerate() {
        let model = w.join().unwrap();
        let on_disk = std::fs::read(export.join(format!("w{id}.bin"))).unwrap();
        assert!(
            on_disk == model,
            "writer {id}: file on disk differs from what was acknowledged"
        );
    }
    let (rounds, silences, checks) = (
        rounds.load(Ordering::Relaxed),
        silences.load(Ordering::Relaxed),
        checks.load(Ordering::Relaxed),
    );
    println!("storm: {rounds} reset rounds ({PIPELINED} x 1 MiB READs each), {silences} writer lease lapses, {checks} full checks");
    assert!(
        rounds >= 8 && checks >= 1,
        "too little happened: {rounds} rounds, {checks} checks"
    );
    assert!(silences >= 1, "no writer let its lease lapse");

    // Every loan comes back.
    let start = Instant::now();
    loop {
        let d = ctl(&state_dir, &["loans"]);
        let lent = d["loans"]
            .as_array()
            .map_or(0, |a| a.iter().filter(|l| l["state"] != "returned").count());
        if lent == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "loans not returned: {d:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The abandoned clients are courtesy clients by now; expiring them releases everything.
    std::thread::sleep(Duration::from_millis(LEASE_MS + 2500));
    let clients = ctl(&state_dir, &["nfs4", "clients"]);
    let list = clients["clients"].as_array().unwrap().clone();
    assert!(
        list.iter().any(|c| c["courtesy"] == Value::Bool(true)),
        "no courtesy client: {clients:#}"
    );
    for c in &list {
        let id = c["clientid"].as_str().unwrap();
        ctl(&state_dir, &["nfs4", "expire", id]);
    }
    let after = ctl(&state_dir, &["nfs4", "clients"]);
    assert_eq!(after["clients"].as_array().unwrap().len(), 0, "{after:#}");
    let locks = ctl(&state_dir, &["filelocks"]);
    let u = &locks["usage"];
    assert_eq!(
        (u["locks"].as_u64(), u["shares"].as_u64()),
        (Some(0), Some(0)),
        "state left in the lock manager: {locks:#}"
    );
    // The same story in /metrics.
    let metrics = scrape_metrics(&state_dir);
    let value = |series: &str| common::metric(&metrics, series);
    assert!(value("rnfsd_nfs4_operations_total{op=\"READ\"}") > rounds);
    assert!(value("rnfsd_nfs4_operations_total{op=\"SEQUENCE\"}") > rounds);
    assert!(value("rnfsd_nfs4_events_total{event=\"lease_expired\"}") >= rounds);
    assert_eq!(value("rnfsd_nfs4_clients"), 0);
    assert_eq!(value("rnfsd_nfs4_stateids"), 0);
    assert_eq!(value("rnfsd_nfs4_grace"), 0);
    // And the server still serves.
    let mut s = session(addr, &format!("storm-after-{}", std::process::id()));
    let fh = file_fh(&mut s, &export, "big.bin");
    let attrs = s
        .getattr(&fh, &Bitmap::from_bits(&[nfs4::attr::num::SIZE]))
        .unwrap();
    assert_eq!(v4::single_u64_attr(&attrs).unwrap(), BIG_BYTES as u64);
}
