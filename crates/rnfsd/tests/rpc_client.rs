//! Protocol-level tests of the `rnfsd` binary with the in-repo client (`rnfs-client`): things the
//! libnfs tools cannot show — UDP, file-handle validation and persistence, `..` at the root, and
//! every RPC accept/reject status.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use rnfs_client::nfs3::{nfs_fh3, nfsstat3, GETATTR3args, NFSPROC3_GETATTR, NFS_PROGRAM, NFS_V3};
use rnfs_client::{mount, portmap, Auth, Client, Error, ReplyStatus};
use rnfs_xdr::to_bytes;

/// A TCP client claiming uid/gid [`USER`].
fn tcp(srv: &TestServer) -> Client {
    Client::connect_tcp(srv.tcp_addr())
        .unwrap()
        .with_auth_sys(USER, USER, &[USER])
}

/// A UDP client claiming uid/gid [`USER`].
fn udp(srv: &TestServer) -> Client {
    Client::connect_udp(srv.udp_addr())
        .unwrap()
        .with_auth_sys(USER, USER, &[USER])
}

fn root(c: &mut Client, srv: &TestServer) -> nfs_fh3 {
    c.mount(srv.mount_path().as_bytes())
        .unwrap_or_else(|e| panic!("MNT {} failed: {e}", srv.mount_path()))
}

/// The NFS status of a failed typed call; panics on success or on a non-NFS error.
fn nfs_err<T: std::fmt::Debug>(r: Result<T, Error>) -> nfsstat3 {
    match r {
        Err(Error::Nfs(s)) => s,
        other => panic!("expected an NFS error status, got {other:?}"),
    }
}

fn reply_status(c: &mut Client, prog: u32, vers: u32, proc_num: u32, args: &[u8]) -> ReplyStatus {
    c.call_raw(None, prog, vers, proc_num, args)
        .unwrap_or_else(|e| panic!("no reply to {prog}/{vers}/{proc_num}: {e}"))
        .status
}

fn fh_of(c: &mut Client, dir: &nfs_fh3, name: &str) -> nfs_fh3 {
    c.lookup(dir, name.as_bytes())
        .unwrap_or_else(|e| panic!("LOOKUP {name}: {e}"))
        .object
}

#[test]
fn udp_read_path_matches_the_local_file() {
    let mut srv = TestServer::new();
    let path = srv.export().join("data.bin");
    let len: u64 = (1 << 20) + 123;
    write_random_file(&path, len, 9);
    std::fs::write(srv.export().join("small"), b"hello over udp").unwrap();
    srv.start();
    let local = std::fs::read(&path).unwrap();

    let mut c = udp(&srv);
    assert!(c.is_udp());
    let root = root(&mut c, &srv);
    let fh = fh_of(&mut c, &root, "data.bin");
    let attr = c.getattr(&fh).unwrap();
    assert_eq!(attr.size, len);

    // 32 KiB per READ keeps every reply inside one datagram.
    let t = Instant::now();
    let mut got = Vec::with_capacity(local.len());
    let mut offset = 0u64;
    loop {
        let r = c.read(&fh, offset, 32 << 10).unwrap();
        assert_eq!(r.count as usize, r.data.len(), "count disagrees with data");
        got.extend_from_slice(r.data.as_bytes());
        offset += u64::from(r.count);
        if r.eof {
            break;
        }
        assert!(r.count > 0, "empty READ without eof at {offset}");
        assert!(offset <= len, "read past the end without eof");
    }
    eprintln!("UDP: read {} bytes in {:.2?}", got.len(), t.elapsed());
    assert_eq!(got.len(), local.len());
    assert!(got == local, "UDP READ content differs");

    let small = fh_of(&mut c, &root, "small");
    let r = c.read(&small, 0, 4096).unwrap();
    assert!(r.eof);
    assert_eq!(r.data.as_bytes(), b"hello over udp");

    let names: Vec<String> = c
        .readdirplus(&root)
        .unwrap()
        .into_iter()
        .map(|e| String::from_utf8_lossy(e.name.as_bytes()).into_owned())
        .filter(|n| n != "." && n != "..")
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(names, ["data.bin", "small"]);
}

#[test]
fn tcp_calls_split_into_many_fragments_are_reassembled() {
    let mut srv = TestServer::new();
    std::fs::write(srv.export().join("f"), b"fragmented").unwrap();
    srv.start();
    let mut c = tcp(&srv);
    c.set_max_fragment_size(5);
    let root = root(&mut c, &srv);
    let fh = fh_of(&mut c, &root, "f");
    assert_eq!(c.read(&fh, 0, 100).unwrap().data.as_bytes(), b"fragmented");
}

#[test]
fn forged_handles_are_badhandle() {
    let mut srv = TestServer::new();
    std::fs::write(srv.export().join("f"), b"x").unwrap();
    srv.start();
    let mut c = tcp(&srv);
    let root = root(&mut c, &srv);
    let real = fh_of(&mut c, &root, "f");

    let mut rng = XorShift::new(0xbadf00d);
    let mut random = vec![0u8; real.as_bytes().len().max(1)];
    rng.fill(&mut random);
    for (what, bytes) in [
        ("random bytes of a real handle's length", random),
        ("empty", Vec::new()),
        ("64 bytes of 0xff", vec![0xff; 64]),
        ("one byte", vec![1]),
    ] {
        let fh = nfs_fh3::new(bytes).unwrap();
        assert_eq!(
            nfs_err(c.getattr(&fh)),
            nfsstat3::NFS3ERR_BADHANDLE,
            "GETATTR with a forged handle ({what})"
        );
    }

    // A real handle with any single byte changed is never accepted: it is either refused as
    // malformed/unauthentic (BADHANDLE) or as no longer valid (STALE).
    let b = real.as_bytes().to_vec();
    for i in 0..b.len() {
        let mut t = b.clone();
        t[i] ^= 0x40;
        let fh = nfs_fh3::new(t).unwrap();
        let s = nfs_err(c.getattr(&fh));
        assert!(
            matches!(s, nfsstat3::NFS3ERR_BADHANDLE | nfsstat3::NFS3ERR_STALE),
            "handle with byte {i} flipped: {s:?}"
        );
    }
    // And the real one still works.
    assert_eq!(c.getattr(&real).unwrap().size, 1);
}

#[test]
fn handles_survive_a_restart_with_the_same_state_dir() {
    let mut srv = TestServer::new();
    std::fs::create_dir(srv.export().join("dir")).unwrap();
    set_mode(&srv.export().join("dir"), 0o755);
    std::fs::write(srv.export().join("dir/file"), b"persistent").unwrap();
    srv.start();
    let mut c = tcp(&srv);
    let root = root(&mut c, &srv);
    let dir = fh_of(&mut c, &root, "dir");
    let file = fh_of(&mut c, &dir, "file");
    let file_id = c.getattr(&file).unwrap().fileid;
    let root_id = c.getattr(&root).unwrap().fileid;
    drop(c);

    srv.restart();
    let mut c = tcp(&srv);
    // No MNT, no LOOKUP: the old handles must simply work.
    assert_eq!(c.getattr(&root).unwrap().fileid, root_id);
    assert_eq!(c.getattr(&file).unwrap().fileid, file_id);
    assert_eq!(
        c.read(&file, 0, 100).unwrap().data.as_bytes(),
        b"persistent"
    );
    assert_eq!(
        fh_of(&mut c, &dir, "file"),
        file,
        "handles should be stable"
    );
    drop(c);

    // With a new state dir (a new key) the old handles are refused, not misread.
    srv.stop();
    srv.use_fresh_state_dir();
    srv.start();
    let mut c = tcp(&srv);
    for (what, fh) in [("root", &root), ("file", &file)] {
        let s = nfs_err(c.getattr(fh));
        assert!(
            matches!(s, nfsstat3::NFS3ERR_BADHANDLE | nfsstat3::NFS3ERR_STALE),
            "old {what} handle under a new key: {s:?}"
        );
    }
}

#[test]
fn handles_of_removed_objects_are_stale() {
    let mut srv = TestServer::new();
    let ex = srv.export().to_owned();
    std::fs::write(ex.join("doomed"), b"soon gone").unwrap();
    std::fs::write(ex.join("replaced"), b"old content").unwrap();
    std::fs::create_dir(ex.join("doomed-dir")).unwrap();
    srv.start();
    let mut c = tcp(&srv);
    let root = root(&mut c, &srv);
    let doomed = fh_of(&mut c, &root, "doomed");
    let replaced = fh_of(&mut c, &root, "replaced");
    let dir = fh_of(&mut c, &root, "doomed-dir");
    c.getattr(&doomed).unwrap();

    std::fs::remove_file(ex.join("doomed")).unwrap();
    std::fs::remove_dir(ex.join("doomed-dir")).unwrap();
    // Remove and recreate: the file system may well reuse the inode number.
    std::fs::remove_file(ex.join("replaced")).unwrap();
    std::fs::write(ex.join("replaced"), b"NEW content").unwrap();

    assert_eq!(nfs_err(c.getattr(&doomed)), nfsstat3::NFS3ERR_STALE);
    assert_eq!(nfs_err(c.read(&doomed, 0, 10)), nfsstat3::NFS3ERR_STALE);
    assert_eq!(nfs_err(c.getattr(&dir)), nfsstat3::NFS3ERR_STALE);
    assert_eq!(
        nfs_err(c.lookup(&dir, b"anything")),
        nfsstat3::NFS3ERR_STALE
    );
    assert_eq!(
        nfs_err(c.read(&replaced, 0, 100)),
        nfsstat3::NFS3ERR_STALE,
        "the handle of a removed file must not reach the new file of the same name"
    );
    // The new file has a new handle that works.
    let fresh = fh_of(&mut c, &root, "replaced");
    assert_ne!(fresh, replaced);
    assert_eq!(
        c.read(&fresh, 0, 100).unwrap().data.as_bytes(),
        b"NEW content"
    );
}

#[test]
fn lookup_dotdot_at_the_root_stays_at_the_root() {
    let mut srv = TestServer::new();
    let ex = srv.export().to_owned();
    const SENTINEL: &str = "SENTINEL-OUTSIDE";
    std::fs::write(ex.parent().unwrap().join(SENTINEL), b"outside").unwrap();
    std::fs::create_dir(ex.join("sub")).unwrap();
    set_mode(&ex.join("sub"), 0o755);
    srv.start();
    let mut c = tcp(&srv);
    let root = root(&mut c, &srv);
    let root_id = c.getattr(&root).unwrap().fileid;

    let up = c.lookup(&root, b"..").unwrap();
    assert_eq!(
        c.getattr(&up.object).unwrap().fileid,
        root_id,
        "LOOKUP(root, \"..\") must return the root itself"
    );
    if let Some(a) = &up.obj_attributes {
        assert_eq!(a.fileid, root_id);
    }
    // Twice up is still the root, and nothing of the parent is visible from there.
    let up2 = c.lookup(&up.object, b"..").unwrap();
    assert_eq!(c.getattr(&up2.object).unwrap().fileid, root_id);
    assert!(c.lookup(&up2.object, SENTINEL.as_bytes()).is_err());
    assert!(c.lookup(&root, SENTINEL.as_bytes()).is_err());
    // `..` of a subdirectory is the root; `.` is the directory itself.
    let sub = fh_of(&mut c, &root, "sub");
    let sub_id = c.getattr(&sub).unwrap().fileid;
    let sub_up = fh_of(&mut c, &sub, "..");
    assert_eq!(c.getattr(&sub_up).unwrap().fileid, root_id);
    let dot = fh_of(&mut c, &sub, ".");
    assert_eq!(c.getattr(&dot).unwrap().fileid, sub_id);
    // Names with a slash are single components, never paths.
    for name in [format!("../{SENTINEL}"), format!("sub/../../{SENTINEL}")] {
        assert!(
            c.lookup(&root, name.as_bytes()).is_err(),
            "LOOKUP of {name:?} succeeded"
        );
    }
    // READDIRPLUS of the root: if it lists "..", that entry is the root too.
    for e in c.readdirplus(&root).unwrap() {
        assert_ne!(e.name.as_bytes(), SENTINEL.as_bytes());
        if e.name.as_bytes() == b".." {
            if let Some(a) = &e.name_attributes {
                assert_eq!(a.fileid, root_id, "\"..\" entry of the root");
            }
        }
    }
}

#[test]
fn reading_is_refused_without_permission() {
    let mut srv = TestServer::new();
    let ex = srv.export().to_owned();
    std::fs::write(ex.join("secret"), b"secret").unwrap();
    set_mode(&ex.join("secret"), 0o600);
    std::fs::create_dir(ex.join("adir")).unwrap();
    set_mode(&ex.join("adir"), 0o755);
    srv.start();
    // SAFETY: geteuid cannot fail.
    let owner = unsafe { libc::geteuid() };
    let other = if owner == USER { USER + 1 } else { USER };
    let mut c = Client::connect_tcp(srv.tcp_addr())
        .unwrap()
        .with_auth_sys(other, other, &[other]);
    let root = root(&mut c, &srv);
    let secret = fh_of(&mut c, &root, "secret");
    assert_eq!(nfs_err(c.read(&secret, 0, 10)), nfsstat3::NFS3ERR_ACCES);
    let acc = c.access(&secret, rnfs_client::nfs3::ACCESS3_READ).unwrap();
    assert_eq!(acc.access & rnfs_client::nfs3::ACCESS3_READ, 0);
    // Root is squashed: no better.
    c.set_auth(Auth::Sys {
        stamp: 0,
        machinename: Bytes::from_static(b"test"),
        uid: 0,
        gid: 0,
        gids: vec![0],
    });
    assert_eq!(nfs_err(c.read(&secret, 0, 10)), nfsstat3::NFS3ERR_ACCES);
    // Reading a directory is an error, not data.
    let dir = fh_of(&mut c, &root, "adir");
    let s = nfs_err(c.read(&dir, 0, 10));
    assert!(
        matches!(s, nfsstat3::NFS3ERR_ISDIR | nfsstat3::NFS3ERR_INVAL),
        "READ of a directory: {s:?}"
    );
    assert_eq!(
        nfs_err(c.lookup(&root, b"no-such-name")),
        nfsstat3::NFS3ERR_NOENT
    );
}

#[test]
fn unknown_program_is_prog_unavail() {
    let srv = TestServer::start_default();
    for mut c in [tcp(&srv), udp(&srv)] {
        assert_eq!(
            reply_status(&mut c, 200_123, 1, 0, &[]),
            ReplyStatus::ProgUnavail
        );
        // NLM v4 and NSM v1 are served on the same port; NLM's older versions are not.
        assert_eq!(
            reply_status(&mut c, 100_021, 4, 0, &[]),
            ReplyStatus::Success(Bytes::new())
        );
        assert_eq!(
            reply_status(&mut c, 100_021, 3, 0, &[]),
            ReplyStatus::ProgMismatch { low: 4, high: 4 }
        );
        assert_eq!(
            reply_status(&mut c, 100_024, 1, 0, &[]),
            ReplyStatus::Success(Bytes::new())
        );
    }
}

#[test]
fn nfs_versions_other_than_3_and_4_are_prog_mismatch_and_v4_is_tcp_only() {
    let srv = TestServer::start_default();
    for mut c in [tcp(&srv), udp(&srv)] {
        let udp = c.is_udp();
        let over = if udp { "UDP" } else { "TCP" };
        // NFSv4 is served over TCP only (RFC 8881 §2.9.1): UDP offers version 3 alone.
        let range = if udp {
            ReplyStatus::ProgMismatch { low: 3, high: 3 }
        } else {
            ReplyStatus::ProgMismatch { low: 3, high: 4 }
        };
        for vers in [2, 5] {
            assert_eq!(
                reply_status(&mut c, NFS_PROGRAM, vers, 0, &[]),
                range,
                "NFS version {vers} over {over}"
            );
        }
        let v4 = reply_status(&mut c, NFS_PROGRAM, 4, 0, &[]);
        if udp {
            assert_eq!(v4, range, "NFS version 4 over UDP");
        } else {
            assert_eq!(
                v4,
                ReplyStatus::Success(Bytes::new()),
                "NFS version 4 NULL over TCP"
            );
        }
    }
}

#[test]
fn unknown_procedures_are_proc_unavail() {
    let srv = TestServer::start_default();
    let mut c = tcp(&srv);
    assert_eq!(
        reply_status(&mut c, NFS_PROGRAM, NFS_V3, 99, &[]),
        ReplyStatus::ProcUnavail
    );
    assert_eq!(
        reply_status(&mut c, NFS_PROGRAM, NFS_V3, 22, &[]),
        ReplyStatus::ProcUnavail
    );
    assert_eq!(
        reply_status(&mut c, mount::MOUNT_PROG, mount::MOUNT_V3, 99, &[]),
        ReplyStatus::ProcUnavail
    );
    assert_eq!(
        reply_status(&mut c, portmap::PMAP_PROG, portmap::PMAP_VERS, 99, &[]),
        ReplyStatus::ProcUnavail
    );
}

#[test]
fn malformed_arguments_are_garbage_args() {
    let mut srv = TestServer::new();
    std::fs::write(srv.export().join("f"), b"x").unwrap();
    srv.start();
    let mut c = tcp(&srv);
    let root = root(&mut c, &srv);
    let good = to_bytes(&GETATTR3args {
        object: root.clone(),
    });
    // A handle length of 32 with only 2 bytes behind it.
    let truncated = [0u8, 0, 0, 32, 1, 2];
    // Cut anywhere inside the real arguments.
    let cut = &good[..good.len() - 2];
    // A handle longer than NFS3_FHSIZE (64).
    let mut too_long = vec![0u8, 0, 0, 65];
    too_long.extend_from_slice(&[0u8; 68]);
    // Valid arguments followed by junk.
    let mut trailing = good.to_vec();
    trailing.extend_from_slice(&[0, 0, 0, 7]);
    for (what, args) in [
        ("truncated handle", &truncated[..]),
        ("cut arguments", cut),
        ("empty arguments", &[][..]),
        ("handle over 64 bytes", &too_long[..]),
        ("trailing bytes", &trailing[..]),
    ] {
        for mut cl in [tcp(&srv), udp(&srv)] {
            assert_eq!(
                reply_status(&mut cl, NFS_PROGRAM, NFS_V3, NFSPROC3_GETATTR, args),
                ReplyStatus::GarbageArgs,
                "GETATTR with {what} over {}",
                if cl.is_udp() { "UDP" } else { "TCP" }
            );
        }
    }
    // The connection is still usable after GARBAGE_ARGS.
    match reply_status(&mut c, NFS_PROGRAM, NFS_V3, NFSPROC3_GETATTR, &good) {
        ReplyStatus::Success(_) => {}
        other => panic!("good GETATTR after garbage: {other}"),
    }
}

/// A call message built by hand, for what the client will not produce (a wrong RPC version).
fn raw_call(xid: u32, rpcvers: u32, prog: u32, vers: u32, proc_num: u32) -> Vec<u8> {
    [xid, 0, rpcvers, prog, vers, proc_num, 0, 0, 0, 0]
        .iter()
        .flat_map(|w| w.to_be_bytes())
        .collect()
}

#[test]
fn rpc_version_3_is_rpc_mismatch() {
    let srv = TestServer::start_default();
    for mut c in [tcp(&srv), udp(&srv)] {
        let xid = 0x0bad_0003;
        c.send_message(&raw_call(xid, 3, NFS_PROGRAM, NFS_V3, 0))
            .unwrap();
        let r = c.recv_reply().unwrap();
        assert_eq!(r.xid, xid);
        assert_eq!(r.status, ReplyStatus::RpcMismatch { low: 2, high: 2 });
        // Still serving on the same connection.
        c.null().unwrap();
    }
}

#[test]
fn malformed_auth_sys_is_auth_error() {
    let srv = TestServer::start_default();
    // AUTH_SYS bodies that do not parse: truncated after the stamp; a machine name longer than
    // the body; 17 groups (the limit is 16); trailing bytes.
    let mut seventeen = vec![0u8; 4];
    seventeen.extend_from_slice(&[0, 0, 0, 0]); // empty machine name
    seventeen.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]); // uid, gid
    seventeen.extend_from_slice(&17u32.to_be_bytes());
    seventeen.extend_from_slice(&[0u8; 17 * 4]);
    let mut trailing = vec![0u8; 4];
    trailing.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0]);
    trailing.extend_from_slice(&[9, 9, 9, 9]);
    for (what, body) in [
        ("truncated", vec![0u8, 0, 0, 1]),
        (
            "name longer than body",
            vec![0, 0, 0, 1, 0, 0, 0, 200, b'a', b'b', 0, 0],
        ),
        ("17 groups", seventeen),
        ("trailing bytes", trailing),
    ] {
        for c in [tcp(&srv), udp(&srv)] {
            let mut c = c.with_auth(Auth::Raw {
                flavor: 1,
                body: Bytes::from(body.clone()),
            });
            assert_eq!(
                reply_status(&mut c, NFS_PROGRAM, NFS_V3, 0, &[]),
                ReplyStatus::AuthError(rnfs_client::rpc::auth_stat::AUTH_BADCRED),
                "AUTH_SYS body {what} over {}",
                if c.is_udp() { "UDP" } else { "TCP" }
            );
        }
    }
    // An unknown flavour is refused with some AUTH_ERROR too.
    let mut c = tcp(&srv).with_auth(Auth::Raw {
        flavor: 390_004,
        body: Bytes::from_static(&[0, 0, 0, 0]),
    });
    assert!(matches!(
        reply_status(&mut c, NFS_PROGRAM, NFS_V3, 0, &[]),
        ReplyStatus::AuthError(_)
    ));
}

#[test]
fn mount_export_lists_the_export() {
    let srv = TestServer::start_default();
    for mut c in [tcp(&srv), udp(&srv)] {
        let ex = c.exports().unwrap();
        let dirs: Vec<String> =
            ex.0.iter()
                .map(|e| String::from_utf8_lossy(e.ex_dir.as_bytes()).into_owned())
                .collect();
        assert_eq!(dirs, vec![srv.mount_path()]);
    }
}

#[test]
fn mount_and_nfs_share_one_port_and_connection() {
    let srv = TestServer::start_default();
    let mut c = tcp(&srv);
    let mnt = c.mnt(srv.mount_path().as_bytes()).unwrap();
    let ok = match mnt {
        mount::mountres3::Ok(ok) => ok,
        mount::mountres3::Fail(s) => panic!("MNT failed: {s:?}"),
    };
    assert!(
        ok.auth_flavors.0.contains(&1),
        "AUTH_SYS not among the flavours: {:?}",
        ok.auth_flavors
    );
    // Same connection, NFS program.
    let root = nfs_fh3 { data: ok.fhandle };
    let a = c.getattr(&root).unwrap();
    assert_eq!(a.r#type, rnfs_client::nfs3::ftype3::NF3DIR);
    let fsinfo = c.fsinfo(&root).unwrap();
    assert!(fsinfo.rtmax >= 4096 && fsinfo.wtmax >= 4096, "{fsinfo:?}");
    // MOUNT v1 NULL answers too.
    assert!(matches!(
        reply_status(&mut c, mount::MOUNT_PROG, mount::MOUNT_V1, 0, &[]),
        ReplyStatus::Success(_)
    ));
    // A path that is not exported is refused.
    let parent = srv.export().parent().unwrap().to_str().unwrap().to_owned();
    match c.mnt(parent.as_bytes()).unwrap() {
        mount::mountres3::Ok(_) => panic!("MNT of the export's parent succeeded"),
        mount::mountres3::Fail(s) => {
            assert!(
                matches!(
                    s,
                    mount::mountstat3::MNT3ERR_ACCES
                        | mount::mountstat3::MNT3ERR_NOENT
                        | mount::mountstat3::MNT3ERR_PERM
                ),
                "{s:?}"
            )
        }
    }
}

#[test]
fn portmap_getport_reports_the_shared_port() {
    let srv = TestServer::start_default();
    let port = u32::from(srv.port());
    for mut c in [tcp(&srv), udp(&srv)] {
        assert_eq!(
            c.portmap_getport(NFS_PROGRAM, NFS_V3, portmap::IPPROTO_TCP)
                .unwrap(),
            port
        );
        assert_eq!(
            c.portmap_getport(NFS_PROGRAM, NFS_V3, portmap::IPPROTO_UDP)
                .unwrap(),
            port
        );
        assert_eq!(
            c.portmap_getport(mount::MOUNT_PROG, mount::MOUNT_V3, portmap::IPPROTO_TCP)
                .unwrap(),
            port
        );
        // Not served: 0.
        assert_eq!(
            c.portmap_getport(NFS_PROGRAM, 4, portmap::IPPROTO_TCP)
                .unwrap(),
            0
        );
        assert_eq!(
            c.portmap_getport(200_123, 1, portmap::IPPROTO_TCP).unwrap(),
            0
        );
        let dump = c.portmap_dump().unwrap();
        assert!(
            dump.iter().any(|m| m.prog == NFS_PROGRAM
                && m.vers == NFS_V3
                && m.prot == portmap::IPPROTO_TCP
                && m.port == port),
            "{dump:?}"
        );
    }
}

#[test]
fn many_sequential_calls_on_one_udp_socket_and_one_tcp_connection() {
    // A light smoke test of request/reply matching: 2,000 GETATTRs each way, bounded in time.
    let srv = TestServer::start_default();
    for mut c in [tcp(&srv), udp(&srv)] {
        c.set_timeout(Duration::from_secs(5)).unwrap();
        let root = root(&mut c, &srv);
        let t = Instant::now();
        for _ in 0..2000 {
            c.getattr(&root).unwrap();
        }
        eprintln!(
            "{}: 2,000 GETATTRs in {:.2?}",
            if c.is_udp() { "UDP" } else { "TCP" },
            t.elapsed()
        );
    }
}
