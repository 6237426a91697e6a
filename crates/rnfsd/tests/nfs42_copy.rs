//! NFSv4.2 server-side copy and clone (RFC 7862 §4, §15.2, §15.8, §15.9, §15.13, §16.1) against
//! the real server, with rnfsd's own v4 client: synchronous copies byte-exact and their argument
//! checks, an asynchronous copy of a large file reported by CB_OFFLOAD (timed and counted on
//! the wire against the client reading and writing the file itself), OFFLOAD_CANCEL mid-copy, a
//! COPY storm past the job limit, clients gone mid-copy, and CLONE where the file system cannot
//! share extents.
//!
//! pynfs's COPY5 is the independent client's view (tests/pynfs.rs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{ctl, proc_status_kib, require_root, TestServer};
use rnfs_client::nfs4::{self, nfsstat4, ArgOp, ResBody};
use rnfs_client::v4::{callback_answerer, CallbacksSeen, Session};
use rnfs_client::Client;

const MIB: u64 = 1 << 20;

fn server(limits: &str, more_exports: &[&Path]) -> TestServer {
    let mut srv = TestServer::new();
    let mut toml = format!("[limits]\n{limits}\n");
    for p in std::iter::once(srv.export()).chain(more_exports.iter().copied()) {
        toml.push_str(&format!(
            "\n[[export]]\npath = {p:?}\n\n[[export.client]]\nmatch = \"127.0.0.1\"\naccess = \"rw\"\nroot_squash = false\n"
        ));
    }
    srv.set_config(&toml);
    srv.start();
    srv
}

type Seen = Arc<Mutex<CallbacksSeen>>;

fn connect(srv: &TestServer) -> Client {
    Client::connect_tcp(srv.tcp_addr())
        .unwrap()
        .with_auth_sys(0, 0, &[0])
}

/// A session whose back channel answers (CB_NULL, CB_OFFLOAD), probed before it returns.
fn with_back_channel(srv: &TestServer, name: &str) -> (Session, Seen) {
    let seen = Seen::default();
    let owner = format!("{name}-{}", std::process::id());
    let mut s = Session::establish_with_back_channel(
        connect(srv),
        owner.as_bytes(),
        callback_answerer(seen.clone(), true),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().nulls == 0 {
        assert!(Instant::now() < deadline, "no CB_NULL probe");
        s.ping().unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    s.ping().unwrap();
    (s, seen)
}

fn plain(srv: &TestServer, name: &str) -> Session {
    Session::establish(
        connect(srv),
        format!("{name}-{}", std::process::id()).as_bytes(),
    )
    .unwrap()
}

fn dir_fh(s: &mut Session, dir: &Path) -> nfs4::nfs_fh4 {
    let comps: Vec<String> = dir
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(s) => Some(s.to_str().unwrap().to_owned()),
            _ => None,
        })
        .collect();
    let refs: Vec<&str> = comps.iter().map(String::as_str).collect();
    s.lookup_path(&refs).unwrap()
}

/// `len` bytes of a pattern no two 8-byte words of which are equal (`seed` tells files apart).
fn pattern(len: u64, seed: u64) -> impl Iterator<Item = Vec<u8>> {
    let chunk = 4 * MIB;
    (0..len.div_ceil(chunk)).map(move |i| {
        let start = i * chunk;
        let n = chunk.min(len - start);
        let mut v = Vec::with_capacity(n as usize);
        let mut w = start / 8;
        while (v.len() as u64) < n {
            let word = (w ^ seed.rotate_left(17)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            v.extend_from_slice(&word.to_le_bytes());
            w += 1;
        }
        v.truncate(n as usize);
        v
    })
}

fn write_file(path: &Path, len: u64, seed: u64) {
    let mut f = std::fs::File::create(path).unwrap();
    for chunk in pattern(len, seed) {
        f.write_all(&chunk).unwrap();
    }
}

/// Compares `path` with the first `len` bytes of the pattern, chunk by chunk.
fn same_as_pattern(path: &Path, len: u64, seed: u64) -> bool {
    use std::io::Read;
    let mut f = std::fs::File::open(path).unwrap();
    if f.metadata().unwrap().len() != len {
        return false;
    }
    let mut buf = Vec::new();
    pattern(len, seed).all(|want| {
        buf.resize(want.len(), 0);
        f.read_exact(&mut buf).unwrap();
        buf == want
    })
}

fn lookup(s: &mut Session, dir: &nfs4::nfs_fh4, name: &str) -> nfs4::nfs_fh4 {
    s.lookup(dir, name).unwrap()
}

fn copy_args(src_off: u64, dst_off: u64, count: u64, sync: bool) -> nfs4::COPY4args {
    nfs4::COPY4args {
        ca_src_stateid: nfs4::stateid4::ANONYMOUS,
        ca_dst_stateid: nfs4::stateid4::ANONYMOUS,
        ca_src_offset: src_off,
        ca_dst_offset: dst_off,
        ca_count: count,
        ca_consecutive: true,
        ca_synchronous: sync,
        ca_source_server: rnfs_xdr::Array(Vec::new()),
    }
}

/// PUTFH src, SAVEFH, PUTFH dst, COPY: the status and, on success, the result.
fn copy(
    s: &mut Session,
    src: &nfs4::nfs_fh4,
    dst: &nfs4::nfs_fh4,
    a: nfs4::COPY4args,
) -> Result<nfs4::COPY4resok, nfsstat4> {
    let r = s
        .compound(vec![
            ArgOp::PutFh(src.clone()),
            ArgOp::SaveFh,
            ArgOp::PutFh(dst.clone()),
            ArgOp::Copy(a),
        ])
        .unwrap();
    let last = r.results.last().unwrap();
    match (&last.body, last.status) {
        (Some(ResBody::Copy(ok)), nfsstat4::NFS4_OK) => Ok(ok.clone()),
        (_, st) => Err(st),
    }
}

fn offload_status(
    s: &mut Session,
    id: &nfs4::stateid4,
) -> Result<nfs4::OFFLOAD_STATUS4resok, nfsstat4> {
    let r = s.compound(vec![ArgOp::OffloadStatus(*id)]).unwrap();
    let last = r.results.last().unwrap();
    match (&last.body, last.status) {
        (Some(ResBody::OffloadStatus(ok)), nfsstat4::NFS4_OK) => Ok(ok.clone()),
        (_, st) => Err(st),
    }
}

fn last_status(s: &mut Session, ops: Vec<ArgOp>) -> nfsstat4 {
    s.compound(ops).unwrap().results.last().unwrap().status
}

fn copies(srv: &TestServer) -> serde_json::Value {
    ctl(srv.state_dir(), &["nfs4", "copies"])
}

/// Waits until `rnfsd ctl nfs4 copies` says no job runs and `rows` records are left.
fn wait_for_copies(srv: &TestServer, rows: usize) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d = copies(srv);
        if d["running"] == 0 && d["copies"].as_array().unwrap().len() == rows {
            return d;
        }
        assert!(Instant::now() < deadline, "copies left behind: {d:#}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Bytes in and out of every open connection, together.
fn wire_bytes(srv: &TestServer) -> u64 {
    ctl(srv.state_dir(), &["connections"])
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["bytes_in"].as_u64().unwrap() + c["bytes_out"].as_u64().unwrap())
        .sum()
}

#[test]
fn synchronous_copies_are_byte_exact_and_check_their_arguments() {
    require_root("the server needs CAP_DAC_READ_SEARCH");
    let other = tempfile::tempdir().unwrap();
    let srv = server("copy_sync_bytes_max = 1048576", &[other.path()]);
    let src_len = 3 * MIB + 123;
    write_file(&srv.export().join("src"), src_len, 1);
    std::fs::write(srv.export().join("dst"), b"").unwrap();
    std::fs::write(other.path().join("elsewhere"), b"").unwrap();
    let mut s = plain(&srv, "sync");
    let dir = dir_fh(&mut s, srv.export());
    let (src, dst) = (lookup(&mut s, &dir, "src"), lookup(&mut s, &dir, "dst"));

    // A range within the synchronous limit, asked asynchronously: done at once all the same.
    let r = copy(&mut s, &src, &dst, copy_args(0, 0, MIB, false)).unwrap();
    assert!(r.cr_response.wr_callback_id.0.is_empty());
    assert_eq!(r.cr_response.wr_count, MIB);
    assert!(r.cr_requirements.cr_synchronous && r.cr_requirements.cr_consecutive);
    // count 0 is "to the end"; synchronous copies stop at copy_sync_bytes_max: a short count,
    // and the client goes on from there.
    let mut at = 0;
    while at < src_len {
        let r = copy(&mut s, &src, &dst, copy_args(at, at, 0, true)).unwrap();
        assert_eq!(r.cr_response.wr_count, (src_len - at).min(MIB));
        assert_eq!(r.cr_response.wr_committed, nfs4::stable_how4::UNSTABLE4);
        at += r.cr_response.wr_count;
    }
    assert!(same_as_pattern(&srv.export().join("dst"), src_len, 1));
    // Offsets: 3000 bytes from 1000 to 5000 of a new file (a hole before them).
    let dst2 = {
        std::fs::write(srv.export().join("dst2"), b"").unwrap();
        lookup(&mut s, &dir, "dst2")
    };
    let r = copy(&mut s, &src, &dst2, copy_args(1000, 5000, 3000, true)).unwrap();
    assert_eq!(r.cr_response.wr_count, 3000);
    let got = std::fs::read(srv.export().join("dst2")).unwrap();
    let want: Vec<u8> = pattern(4000, 1).flatten().collect();
    assert_eq!(got.len(), 8000);
    assert_eq!(&got[..5000], &[0u8; 5000][..]);
    assert_eq!(&got[5000..], &want[1000..4000]);

    use nfsstat4::*;
    // The source's range must lie within it (RFC 7862 §15.2.3).
    assert_eq!(
        copy(&mut s, &src, &dst, copy_args(src_len + 1, 0, 0, true)),
        Err(NFS4ERR_INVAL)
    );
    assert_eq!(
        copy(&mut s, &src, &dst, copy_args(10, 0, src_len, true)),
        Err(NFS4ERR_INVAL)
    );
    // Overlapping ranges of one file.
    assert_eq!(
        copy(&mut s, &src, &src, copy_args(0, 100, 200, true)),
        Err(NFS4ERR_INVAL)
    );
    // Inter-server copies are not offered.
    let mut a = copy_args(0, 0, 10, true);
    a.ca_source_server = rnfs_xdr::Array(vec![nfs4::netloc4::Name(nfs4::Opaque(
        Bytes::from_static(b"elsewhere"),
    ))]);
    assert_eq!(copy(&mut s, &src, &dst, a), Err(NFS4ERR_NOTSUPP));
    // A directory, no saved handle, another export.
    assert_eq!(
        copy(&mut s, &dir, &dst, copy_args(0, 0, 1, true)),
        Err(NFS4ERR_ISDIR)
    );
    let no_saved = vec![
        ArgOp::PutFh(dst.clone()),
        ArgOp::Copy(copy_args(0, 0, 1, true)),
    ];
    assert_eq!(last_status(&mut s, no_saved), NFS4ERR_NOFILEHANDLE);
    let other_dir = dir_fh(&mut s, other.path());
    let elsewhere = lookup(&mut s, &other_dir, "elsewhere");
    assert_eq!(
        copy(&mut s, &src, &elsewhere, copy_args(0, 0, 1, true)),
        Err(NFS4ERR_XDEV)
    );
    // A stateid of nothing this client holds.
    let mut a = copy_args(0, 0, 1, true);
    a.ca_dst_stateid = nfs4::stateid4 {
        seqid: 1,
        other: [7; 12],
    };
    let st = copy(&mut s, &src, &dst, a).unwrap_err();
    assert!(
        matches!(st, NFS4ERR_BAD_STATEID | NFS4ERR_STALE_STATEID),
        "{st:?}"
    );
    // OFFLOAD_* of an unknown callback stateid.
    let unknown = nfs4::stateid4 {
        seqid: 1,
        other: [9; 12],
    };
    assert_eq!(offload_status(&mut s, &unknown), Err(NFS4ERR_BAD_STATEID));
    let cancel = vec![ArgOp::OffloadCancel(unknown)];
    assert_eq!(last_status(&mut s, cancel), NFS4ERR_BAD_STATEID);
    let d = copies(&srv);
    assert_eq!(d["counters"]["async_started"], 0, "{d:#}");
    assert!(d["counters"]["bytes"].as_u64().unwrap() >= src_len + MIB + 3000);
}

#[test]
fn an_asynchronous_copy_is_reported_by_cb_offload_and_beats_read_write() {
    require_root("the server needs CAP_DAC_READ_SEARCH");
    let srv = server("", &[]);
    let len = 256 * MIB;
    write_file(&srv.export().join("big"), len, 2);
    std::fs::write(srv.export().join("copied"), b"").unwrap();
    std::fs::write(srv.export().join("by-hand"), b"").unwrap();
    let (mut s, seen) = with_back_channel(&srv, "async");
    let dir = dir_fh(&mut s, srv.export());
    let (src, dst) = (lookup(&mut s, &dir, "big"), lookup(&mut s, &dir, "copied"));

    let wire0 = wire_bytes(&srv);
    let t0 = Instant::now();
    let r = copy(&mut s, &src, &dst, copy_args(0, 0, 0, false)).unwrap();
    let [id] = r.cr_response.wr_callback_id.0[..] else {
        panic!("no callback stateid: {r:?}")
    };
    assert!(!r.cr_requirements.cr_synchronous);
    let deadline = Instant::now() + Duration::from_secs(120);
    let offload = loop {
        if let Some(o) = seen.lock().unwrap().offloads.pop() {
            break o;
        }
        assert!(Instant::now() < deadline, "no CB_OFFLOAD");
        std::thread::sleep(Duration::from_millis(5));
        s.ping().unwrap();
    };
    let copy_time = t0.elapsed();
    let copy_wire = wire_bytes(&srv) - wire0;
    assert_eq!(offload.coa_stateid, id);
    assert_eq!(offload.coa_fh, dst);
    match offload.coa_offload_info {
        nfs4::cb::offload_info4::Done(w) => assert_eq!(w.wr_count, len),
        other => panic!("copy failed: {other:?}"),
    }
    assert!(same_as_pattern(&srv.export().join("copied"), len, 2));
    // The CB_OFFLOAD was answered: the job is forgotten; the counters and metrics saw it.
    let d = wait_for_copies(&srv, 0);
    assert_eq!(d["counters"]["async_started"], 1);
    assert_eq!(d["counters"]["offloads_sent"], 1);
    assert!(d["counters"]["bytes"].as_u64().unwrap() >= len);
    assert_eq!(
        offload_status(&mut s, &id),
        Err(nfsstat4::NFS4ERR_BAD_STATEID)
    );

    // The same file read and written by the client itself, on a session of its own.
    let mut h = plain(&srv, "by-hand");
    let by_hand = lookup(&mut h, &dir, "by-hand");
    let anon = nfs4::stateid4::ANONYMOUS;
    let wire0 = wire_bytes(&srv);
    let t0 = Instant::now();
    let (rchunk, mut at) = (h.read_chunk(), 0u64);
    loop {
        let r = h.read(&src, &anon, at, rchunk).unwrap();
        let data = r.data.as_bytes();
        let mut done = 0;
        while done < data.len() {
            let w = h
                .write(
                    &by_hand,
                    &anon,
                    at + done as u64,
                    &data[done..],
                    nfs4::stable_how4::UNSTABLE4,
                )
                .unwrap();
            done += w.count as usize;
        }
        at += data.len() as u64;
        if r.eof || data.is_empty() {
            break;
        }
    }
    let rw_time = t0.elapsed();
    let rw_wire = wire_bytes(&srv) - wire0;
    assert_eq!(at, len);
    assert!(same_as_pattern(&srv.export().join("by-hand"), len, 2));
    println!(
        "FIGURES 256 MiB: COPY {:.3} s, {} wire bytes; READ+WRITE {:.3} s, {} wire bytes",
        copy_time.as_secs_f64(),
        copy_wire,
        rw_time.as_secs_f64(),
        rw_wire
    );
    // What goes over the wire is the calls, never the data.
    assert!(
        copy_wire < 64 << 10,
        "COPY took {copy_wire} bytes on the wire"
    );
    assert!(rw_wire > 2 * len, "READ+WRITE took {rw_wire} bytes");
}

#[test]
fn offload_cancel_mid_copy_leaves_a_prefix_and_no_job() {
    require_root("the server needs CAP_DAC_READ_SEARCH");
    let srv = server("", &[]);
    let len = 1024 * MIB;
    write_file(&srv.export().join("big"), len, 3);
    std::fs::write(srv.export().join("partial"), b"").unwrap();
    let (mut s, seen) = with_back_channel(&srv, "cancel");
    let dir = dir_fh(&mut s, srv.export());
    let (src, dst) = (lookup(&mut s, &dir, "big"), lookup(&mut s, &dir, "partial"));
    let r = copy(&mut s, &src, &dst, copy_args(0, 0, len, false)).unwrap();
    let id = r.cr_response.wr_callback_id.0[0];
    // Running: some bytes copied (maybe none yet), no status.
    let st = offload_status(&mut s, &id).unwrap();
    assert!(
        st.osr_complete.0.is_empty(),
        "copy over before the cancel: {st:?}"
    );
    assert!(st.osr_count < len);
    // Another client may neither see nor cancel it.
    let mut other = plain(&srv, "intruder");
    assert_eq!(
        offload_status(&mut other, &id),
        Err(nfsstat4::NFS4ERR_BAD_STATEID)
    );
    let cancel = vec![ArgOp::OffloadCancel(id)];
    assert_eq!(
        last_status(&mut other, cancel.clone()),
        nfsstat4::NFS4ERR_BAD_STATEID
    );
    assert_eq!(last_status(&mut s, cancel), nfsstat4::NFS4_OK);
    wait_for_copies(&srv, 0);
    let d = copies(&srv);
    assert_eq!(d["counters"]["cancelled"], 1, "{d:#}");
    // What was copied is the source's prefix (slices are copied in order).
    let copied = std::fs::metadata(srv.export().join("partial"))
        .unwrap()
        .len();
    assert!(copied < len, "cancel came too late: {copied}");
    assert!(same_as_pattern(&srv.export().join("partial"), copied, 3));
    // Cancelled: no CB_OFFLOAD, and the stateid is gone.
    for _ in 0..20 {
        s.ping().unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(seen.lock().unwrap().offloads.is_empty());
    assert_eq!(
        offload_status(&mut s, &id),
        Err(nfsstat4::NFS4ERR_BAD_STATEID)
    );
}

#[test]
fn a_copy_storm_past_the_job_limit_gets_delay_with_bounded_memory() {
    require_root("the server needs CAP_DAC_READ_SEARCH");
    let srv = server(
        "copy_jobs_max = 2\ncopy_jobs_per_client_max = 2\ncopy_sync_bytes_max = 65536",
        &[],
    );
    let len = 256 * MIB;
    write_file(&srv.export().join("big"), len, 4);
    let (mut s, _seen) = with_back_channel(&srv, "storm");
    let dir = dir_fh(&mut s, srv.export());
    let src = lookup(&mut s, &dir, "big");
    let dsts: Vec<nfs4::nfs_fh4> = (0..4)
        .map(|i| {
            std::fs::write(srv.export().join(format!("d{i}")), b"").unwrap();
            lookup(&mut s, &dir, &format!("d{i}"))
        })
        .collect();
    let (mut started, mut delayed) = (Vec::new(), 0);
    for round in 0..20 {
        // Four COPYs in one compound, within microseconds: at most two can run.
        let mut ops = vec![ArgOp::PutFh(src.clone()), ArgOp::SaveFh];
        for d in &dsts {
            ops.push(ArgOp::PutFh(d.clone()));
            ops.push(ArgOp::Copy(copy_args(0, 0, 0, false)));
        }
        let r = s.compound(ops).unwrap();
        let last = r.results.last().unwrap();
        assert_eq!(last.status, nfsstat4::NFS4ERR_DELAY, "round {round}: {r:?}");
        delayed += 1;
        for res in &r.results {
            if let Some(ResBody::Copy(ok)) = &res.body {
                started.push(ok.cr_response.wr_callback_id.0[0]);
            }
        }
        let d = copies(&srv);
        assert!(d["running"].as_u64().unwrap() <= 2, "{d:#}");
    }
    assert_eq!(delayed, 20);
    assert!(!started.is_empty());
    for id in &started {
        let st = last_status(&mut s, vec![ArgOp::OffloadCancel(*id)]);
        // Finished and reported ones are gone already.
        assert!(
            matches!(st, nfsstat4::NFS4_OK | nfsstat4::NFS4ERR_BAD_STATEID),
            "{st:?}"
        );
    }
    wait_for_copies(&srv, 0);
    let d = copies(&srv);
    assert!(
        d["counters"]["async_refused"].as_u64().unwrap() >= 20,
        "{d:#}"
    );
    // Copies never pass through the server's memory.
    let hwm = proc_status_kib(srv.pid().unwrap(), "VmHWM");
    assert!(hwm < 256 << 10, "peak RSS {hwm} KiB");
}

#[test]
fn copies_outlive_their_connection_and_end_with_their_client() {
    require_root("the server needs CAP_DAC_READ_SEARCH");
    let srv = server("", &[]);
    let len = 1024 * MIB;
    write_file(&srv.export().join("big"), len, 5);
    for n in ["kept", "purged"] {
        std::fs::write(srv.export().join(n), b"").unwrap();
    }
    // The connection closes mid-copy: the job goes on to the end (its CB_OFFLOAD cannot be
    // delivered, so its record stays for OFFLOAD_STATUS a while).
    let (mut s, _seen) = with_back_channel(&srv, "leaver");
    let dir = dir_fh(&mut s, srv.export());
    let (src, kept) = (lookup(&mut s, &dir, "big"), lookup(&mut s, &dir, "kept"));
    copy(&mut s, &src, &kept, copy_args(0, 0, 0, false)).unwrap();
    drop(s);
    let d = wait_for_copies(&srv, 1);
    assert_eq!(d["copies"][0]["copied"], len, "{d:#}");
    assert!(same_as_pattern(&srv.export().join("kept"), len, 5));

    // The client is purged mid-copy: the job stops and leaves nothing behind.
    let (mut s, _seen) = with_back_channel(&srv, "purged");
    let purged = lookup(&mut s, &dir, "purged");
    copy(&mut s, &src, &purged, copy_args(0, 0, 0, false)).unwrap();
    let id = format!("{:016x}", s.clientid());
    let out = ctl(srv.state_dir(), &["nfs4", "expire", &id]);
    assert_eq!(out["expired"], id.as_str(), "{out:#}");
    let d = wait_for_copies(&srv, 1);
    assert_eq!(
        d["copies"][0]["copied"], len,
        "only the first job's record is left: {d:#}"
    );
    let copied = std::fs::metadata(srv.export().join("purged"))
        .unwrap()
        .len();
    assert!(copied < len, "purge came too late: {copied}");
    assert!(same_as_pattern(&srv.export().join("purged"), copied, 5));
    assert_eq!(copies(&srv)["counters"]["cancelled"], 1);
}

#[test]
fn clone_is_not_supported_without_shared_extents() {
    require_root("the server needs CAP_DAC_READ_SEARCH");
    // ext4 (the scratch directory) and, when there is one, tmpfs.
    let shm = Path::new("/dev/shm");
    let tmpfs = shm.is_dir().then(|| tempfile::tempdir_in(shm).unwrap());
    let extra: Vec<&Path> = tmpfs.iter().map(|t| t.path()).collect();
    let srv = server("", &extra);
    let mut s = plain(&srv, "clone");
    for root in std::iter::once(srv.export()).chain(extra.iter().copied()) {
        write_file(&root.join("a"), 64 << 10, 6);
        std::fs::write(root.join("b"), b"").unwrap();
        let dir = dir_fh(&mut s, root);
        let (a, b) = (lookup(&mut s, &dir, "a"), lookup(&mut s, &dir, "b"));
        let clone = |src: &nfs4::nfs_fh4, off: u64, count: u64| {
            vec![
                ArgOp::PutFh(src.clone()),
                ArgOp::SaveFh,
                ArgOp::PutFh(b.clone()),
                ArgOp::Clone(nfs4::CLONE4args {
                    cl_src_stateid: nfs4::stateid4::ANONYMOUS,
                    cl_dst_stateid: nfs4::stateid4::ANONYMOUS,
                    cl_src_offset: off,
                    cl_dst_offset: 0,
                    cl_count: count,
                }),
            ]
        };
        assert_eq!(
            last_status(&mut s, clone(&a, 0, 0)),
            nfsstat4::NFS4ERR_NOTSUPP,
            "{root:?}"
        );
        assert_eq!(
            last_status(&mut s, clone(&a, 4096, 1 << 20)),
            nfsstat4::NFS4ERR_INVAL
        );
        assert_eq!(
            last_status(&mut s, clone(&dir, 0, 0)),
            nfsstat4::NFS4ERR_ISDIR
        );
        assert_eq!(std::fs::metadata(root.join("b")).unwrap().len(), 0);
    }
}
