//! Client tests against a tiny scripted server on the loopback interface.

use super::*;
use bytes::{BufMut, BytesMut};
use std::net::TcpListener;
use std::sync::mpsc;
use std::thread;

/// A parsed call as the fake server sees it.
struct Call {
    xid: u32,
    prog: u32,
    vers: u32,
    proc: u32,
    cred_flavor: u32,
    cred: Bytes,
    args: Bytes,
}

fn parse_call(msg: Bytes) -> Call {
    let mut d = Decoder::new(msg);
    let xid = d.u32().unwrap();
    assert_eq!(d.u32().unwrap(), 0, "CALL");
    assert_eq!(d.u32().unwrap(), 2, "RPC version");
    let (prog, vers, proc) = (d.u32().unwrap(), d.u32().unwrap(), d.u32().unwrap());
    let cred_flavor = d.u32().unwrap();
    let cred = d.opaque_var(400).unwrap();
    assert_eq!(d.u32().unwrap(), 0, "verifier flavor");
    assert_eq!(d.opaque_var(400).unwrap().len(), 0);
    Call {
        xid,
        prog,
        vers,
        proc,
        cred_flavor,
        cred,
        args: d.into_rest(),
    }
}

fn accepted(xid: u32, stat: u32, body: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    for w in [xid, 1, 0, 0, 0, stat] {
        b.put_u32(w);
    }
    b.put_slice(body);
    b.to_vec()
}

fn attrs(fileid: u64) -> fattr3 {
    fattr3 {
        r#type: ftype3::NF3REG,
        mode: 0o644,
        nlink: 1,
        uid: 1,
        gid: 2,
        size: 3,
        used: 4,
        rdev: specdata3::default(),
        fsid: 5,
        fileid,
        atime: nfstime3::default(),
        mtime: nfstime3::default(),
        ctime: nfstime3::default(),
    }
}

/// The scripted server: answers a call, or returns `None` to drop it.
fn answer(c: &Call) -> Option<Vec<u8>> {
    let ok = |body: Bytes| Some(accepted(c.xid, 0, &body));
    match (c.prog, c.vers, c.proc) {
        (NFS_PROGRAM, 3, NFSPROC3_NULL) => ok(Bytes::new()),
        (NFS_PROGRAM, 3, NFSPROC3_GETATTR) => {
            let a: GETATTR3args = rnfs_xdr::from_bytes(c.args.clone()).ok()?;
            if a.object.as_bytes() == b"stale" {
                return ok(to_bytes(&GETATTR3res::Fail(nfsstat3::NFS3ERR_STALE, ())));
            }
            // Report the caller's uid as the fileid so tests can check the credential.
            let uid = if c.cred_flavor == 1 {
                u32::from_be_bytes(c.cred[12..16].try_into().ok()?)
            } else {
                0
            };
            ok(to_bytes(&GETATTR3res::Ok(GETATTR3resok {
                obj_attributes: attrs(uid.into()),
            })))
        }
        (NFS_PROGRAM, 3, NFSPROC3_READDIR) => {
            // Three entries over two pages, with the verifier checked on the second.
            let a: READDIR3args = rnfs_xdr::from_bytes(c.args.clone()).ok()?;
            let e = |i: u64| entry3 {
                fileid: i,
                name: Opaque(Bytes::from(format!("f{i}"))),
                cookie: i,
            };
            let (entries, eof) = match (a.cookie, a.cookieverf) {
                (0, _) => (vec![e(1), e(2)], false),
                (2, v) if v == [7; 8] => (vec![e(3)], true),
                _ => {
                    return ok(to_bytes(&READDIR3res::Fail(
                        nfsstat3::NFS3ERR_BAD_COOKIE,
                        READDIR3resfail::default(),
                    )))
                }
            };
            ok(to_bytes(&READDIR3res::Ok(READDIR3resok {
                dir_attributes: None,
                cookieverf: [7; 8],
                reply: dirlist3 {
                    entries: List(entries),
                    eof,
                },
            })))
        }
        (NFS_PROGRAM, 3, NFSPROC3_READ) => {
            let a: READ3args = rnfs_xdr::from_bytes(c.args.clone()).ok()?;
            let data = vec![b'x'; a.count as usize];
            // Built with the split header helper, as a server would.
            let mut body = Vec::new();
            encode_read3resok_header(&None, a.count, true, data.len(), &mut body);
            body.extend_from_slice(&data);
            body.resize(body.len() + pad_len(data.len()), 0);
            ok(Bytes::from(body))
        }
        (NFS_PROGRAM, 3, NFSPROC3_WRITE) => {
            let a: WRITE3args = rnfs_xdr::from_bytes(c.args.clone()).ok()?;
            ok(to_bytes(&WRITE3res::Ok(WRITE3resok {
                file_wcc: wcc_data::default(),
                count: a.data.len() as u32,
                committed: stable_how::FILE_SYNC,
                verf: [1; 8],
            })))
        }
        (NFS_PROGRAM, 3, 99) => Some(accepted(c.xid, 3, &[])),
        (NFS_PROGRAM, 3, NFSPROC3_LOOKUP) => Some(accepted(c.xid, 4, &[])),
        (NFS_PROGRAM, v, _) if v != 3 => Some(accepted(c.xid, 2, &[0, 0, 0, 3, 0, 0, 0, 3])),
        (mount::MOUNT_PROG, 3, mount::MOUNTPROC3_MNT) => {
            let p: mount::dirpath = rnfs_xdr::from_bytes(c.args.clone()).ok()?;
            let r = if p.as_bytes() == b"/export" {
                mount::mountres3::Ok(mount::mountres3_ok {
                    fhandle: Opaque(Bytes::from_static(b"root-handle")),
                    auth_flavors: rnfs_xdr::Array(vec![1]),
                })
            } else {
                mount::mountres3::Fail(mount::mountstat3::MNT3ERR_NOENT)
            };
            ok(to_bytes(&r))
        }
        (portmap::PMAP_PROG, 2, portmap::PMAPPROC_GETPORT) => {
            let m: portmap::mapping = rnfs_xdr::from_bytes(c.args.clone()).ok()?;
            ok(to_bytes(&(if m.prog == NFS_PROGRAM { 2049u32 } else { 0 })))
        }
        (12345, _, _) => {
            // AUTH_ERROR(AUTH_TOOWEAK): a denied reply.
            let mut b = BytesMut::new();
            for w in [c.xid, 1, 1, 1, 5] {
                b.put_u32(w);
            }
            Some(b.to_vec())
        }
        _ => Some(accepted(c.xid, 1, &[])),
    }
}

/// Serves one TCP connection; before each real reply, sends a stale one with another XID, and
/// splits replies into 5-byte fragments to exercise reassembly.
fn tcp_server() -> (SocketAddr, thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        while let Ok(msg) = rpc::read_record(&mut s, 8 << 20) {
            let c = parse_call(msg);
            if let Some(r) = answer(&c) {
                let stale = accepted(c.xid.wrapping_sub(1000), 0, &[]);
                rpc::write_record(&mut s, &stale, 1 << 20).unwrap();
                rpc::write_record(&mut s, &r, 5).unwrap();
            }
        }
    });
    (addr, h)
}

/// Serves UDP; drops the first transmission of every XID so the client must retransmit.
fn udp_server(calls: usize) -> (SocketAddr, thread::JoinHandle<()>) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap();
    let h = thread::spawn(move || {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut seen = std::collections::HashSet::new();
        let mut answered = std::collections::HashSet::new();
        let mut buf = vec![0u8; 65_536];
        while answered.len() < calls {
            let Ok((n, from)) = s.recv_from(&mut buf) else {
                return;
            };
            let c = parse_call(Bytes::copy_from_slice(&buf[..n]));
            if seen.insert(c.xid) {
                continue; // dropped
            }
            if let Some(r) = answer(&c) {
                s.send_to(b"junk", from).unwrap();
                s.send_to(&r, from).unwrap();
                answered.insert(c.xid);
            }
        }
    });
    (addr, h)
}

fn exercise(c: &mut Client) {
    c.null().unwrap();
    let root = c.mount(b"/export").unwrap();
    assert_eq!(root.as_bytes(), b"root-handle");
    assert!(matches!(
        c.mount(b"/nope"),
        Err(Error::Mount(mount::mountstat3::MNT3ERR_NOENT))
    ));
    assert_eq!(c.getattr(&root).unwrap().fileid, 0);
    assert!(matches!(
        c.getattr(&nfs_fh3::new(&b"stale"[..]).unwrap()),
        Err(Error::Nfs(nfsstat3::NFS3ERR_STALE))
    ));
    let names: Vec<_> = c
        .readdir(&root)
        .unwrap()
        .into_iter()
        .map(|e| e.name.0)
        .collect();
    assert_eq!(names, vec!["f1", "f2", "f3"]);
    let r = c.read(&root, 0, 13).unwrap();
    assert_eq!(&r.data.0[..], &[b'x'; 13]);
    assert!(r.eof);
    let w = c
        .write(&root, 0, Bytes::from_static(b"hello"), stable_how::UNSTABLE)
        .unwrap();
    assert_eq!(w.count, 5);
    assert_eq!(
        c.portmap_getport(NFS_PROGRAM, 3, portmap::IPPROTO_TCP)
            .unwrap(),
        2049
    );
    // Every rejection is visible.
    let raw = c.call_raw(None, NFS_PROGRAM, 3, 99, &[]).unwrap();
    assert_eq!(raw.status, ReplyStatus::ProcUnavail);
    let raw = c.call_raw(None, NFS_PROGRAM, 4, 0, &[]).unwrap();
    assert_eq!(raw.status, ReplyStatus::ProgMismatch { low: 3, high: 3 });
    assert!(matches!(
        c.lookup(&root, b"x"),
        Err(Error::Rpc(ReplyStatus::GarbageArgs))
    ));
    assert!(matches!(
        c.null_of(4242, 1),
        Err(Error::Rpc(ReplyStatus::ProgUnavail))
    ));
    let raw = c.call_raw(Some(77), 12345, 1, 0, &[]).unwrap();
    assert_eq!(raw.xid, 77);
    assert_eq!(raw.verf, None);
    assert_eq!(
        raw.status,
        ReplyStatus::AuthError(rpc::auth_stat::AUTH_TOOWEAK)
    );
    // AUTH_SYS reaches the server.
    c.set_auth(Auth::Sys {
        stamp: 1,
        machinename: Bytes::from_static(b"h"),
        uid: 4321,
        gid: 1,
        gids: vec![],
    });
    assert_eq!(c.getattr(&root).unwrap().fileid, 4321);
}

/// Calls `exercise` makes that get an answer (UDP server counts them).
const EXERCISE_CALLS: usize = 16;

#[test]
fn tcp_client_against_scripted_server() {
    let (addr, server) = tcp_server();
    let mut c = Client::connect_tcp(addr).unwrap();
    c.set_max_fragment_size(7); // calls go out in 7-byte fragments
    exercise(&mut c);
    drop(c);
    server.join().unwrap();
}

#[test]
fn udp_client_retransmits_and_skips_junk() {
    let (addr, server) = udp_server(EXERCISE_CALLS);
    let mut c = Client::connect_udp(addr).unwrap();
    c.set_udp_retransmit(Duration::from_millis(50));
    exercise(&mut c);
    server.join().unwrap();
}

#[test]
fn tcp_timeout_is_reported() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::channel::<()>();
    let h = thread::spawn(move || {
        let (_s, _) = l.accept().unwrap();
        let _ = rx.recv_timeout(Duration::from_secs(20)); // hold the connection, never answer
    });
    let mut c = Client::connect_tcp(addr).unwrap();
    c.set_timeout(Duration::from_millis(100)).unwrap();
    assert!(matches!(c.null(), Err(Error::Timeout(_))));
    tx.send(()).unwrap();
    h.join().unwrap();
}

#[test]
fn oversized_reply_record_refused() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let msg = rpc::read_record(&mut s, 1 << 16).unwrap();
        let c = parse_call(msg);
        let _ = rpc::write_record(&mut s, &accepted(c.xid, 0, &[0; 4096]), 1 << 20);
    });
    let mut c = Client::connect_tcp(addr).unwrap();
    c.set_max_record_size(1024);
    match c.null() {
        Err(Error::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::InvalidData),
        other => panic!("expected an InvalidData error, got {other:?}"),
    }
    h.join().unwrap();
}

#[test]
fn xids_advance() {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let c = Client::connect_udp(s.local_addr().unwrap()).unwrap();
    let mut c = c.with_auth_sys(1, 2, &[3]);
    let x = c.next_xid();
    assert_eq!(c.take_xid(), x);
    assert_eq!(c.next_xid(), x.wrapping_add(1));
    assert!(matches!(c.auth(), Auth::Sys { uid: 1, gid: 2, .. }));
}
