//! NFSv4.1 against the real server with rnfsd's own client (`rnfs_client::v4`) over loopback: the
//! pseudo file system, byte-exact I/O (WRITE, READ, the zero-copy READ), permissions and squashing,
//! read-only exports, escapes out of an export, locks and share reservations between clients (and
//! with NLM), and hostile input: huge operation counts and bitmaps, other clients' stateids, slot
//! abuse and retransmissions.
//!
//! Clients bind to 127.0.0.x to match the exports' rules. Most tests need root (files owned by
//! others, squashing).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::{BufMut, Bytes};
use common::{chown, proc_status_kib, require_root, set_mode, TestServer, XorShift, USER};
use rnfs_client::nfs4::{
    self, attr::num, nfsstat4, nfsstat4::*, op::*, ArgOp, Bitmap, Opaque, ResBody,
};
use rnfs_client::v4::{self, compound_raw, Session};
use rnfs_client::{Client, ReplyStatus};

const ANON: u32 = 4321;
const RW: u32 = nfs4::OPEN4_SHARE_ACCESS_BOTH;
const RD: u32 = nfs4::OPEN4_SHARE_ACCESS_READ;
const WR: u32 = nfs4::OPEN4_SHARE_ACCESS_WRITE;

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// The test's exports: `export/` (127.0.0.1 rw, root squashed to 4321), `ro/` (127.0.0.1 read
/// only) and `hid/den/` (127.0.0.2 only: 127.0.0.1 must not even see `hid`).
struct Setup {
    srv: TestServer,
    ro: PathBuf,
    hidden: PathBuf,
}

fn setup() -> Setup {
    let mut srv = TestServer::new();
    let scratch = srv.scratch().to_path_buf();
    let ro = scratch.join("ro");
    let hidden = scratch.join("hid").join("den");
    std::fs::create_dir(&ro).unwrap();
    std::fs::create_dir_all(&hidden).unwrap();
    for d in [&ro, &hidden, &scratch.join("hid")] {
        set_mode(d, 0o755);
    }
    // Anybody may create files in the writable export (as in a shared directory).
    set_mode(srv.export(), 0o777);
    let ro = ro.canonicalize().unwrap();
    let hidden = hidden.canonicalize().unwrap();
    std::fs::write(ro.join("readme"), b"read only").unwrap();
    set_mode(&ro.join("readme"), 0o666);
    srv.set_config(&format!(
        "[[export]]\npath = \"{}\"\nid = 1\n\n[[export.client]]\nmatch = \"127.0.0.1\"\naccess = \"rw\"\nanonuid = {ANON}\nanongid = {ANON}\n\n\
         [[export]]\npath = \"{}\"\nid = 2\n\n[[export.client]]\nmatch = \"127.0.0.1\"\naccess = \"ro\"\n\n\
         [[export]]\npath = \"{}\"\nid = 3\n\n[[export.client]]\nmatch = \"127.0.0.2\"\naccess = \"rw\"\n",
        srv.export().display(),
        ro.display(),
        hidden.display()
    ));
    srv.start();
    Setup { srv, ro, hidden }
}

fn comps(p: &Path) -> Vec<String> {
    p.components()
        .filter_map(|c| match c {
            std::path::Component::Normal(s) => Some(s.to_str().unwrap().to_owned()),
            _ => None,
        })
        .collect()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A session from 127.0.0.`last` as `uid`.
fn session(srv: &TestServer, last: u8, uid: u32, name: &str) -> Session {
    let c = Client::connect_tcp_from(SocketAddr::new(ip(last), 0), srv.tcp_addr())
        .unwrap()
        .with_auth_sys(uid, uid, &[uid]);
    Session::establish(c, format!("{name}-{}", std::process::id()).as_bytes())
        .unwrap_or_else(|e| panic!("session {name}: {e}"))
}

fn root_of(s: &mut Session, dir: &Path) -> nfs4::nfs_fh4 {
    let c = comps(dir);
    s.lookup_path(&refs(&c))
        .unwrap_or_else(|e| panic!("walk to {}: {e}", dir.display()))
}

#[track_caller]
fn status_of<T: std::fmt::Debug>(r: v4::Result<T>) -> nfsstat4 {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.status().unwrap_or_else(|| panic!("not a status: {e}")),
    }
}

/// The status of the last result of `ops` after SEQUENCE.
fn last_status(s: &mut Session, ops: Vec<ArgOp>) -> nfsstat4 {
    let r = s.compound(ops).unwrap();
    r.results.last().unwrap().status
}

fn owner_of(s: &mut Session, fh: &nfs4::nfs_fh4) -> String {
    let f = s.getattr(fh, &Bitmap::from_bits(&[num::OWNER])).unwrap();
    v4::single_string_attr(&f).unwrap()
}

fn name(n: &str) -> nfs4::component4 {
    Opaque(Bytes::copy_from_slice(n.as_bytes()))
}

// ---- the pseudo file system ---------------------------------------------------------------------

#[test]
fn pseudo_fs_walk_lists_only_the_callers_exports() {
    require_root("export rules by source address");
    let Setup { srv, hidden, .. } = setup();
    std::fs::write(srv.export().join("hello"), b"hi").unwrap();
    let scratch = srv.scratch().canonicalize().unwrap();

    let mut s = session(&srv, 1, USER, "walker");
    let dir = root_of(&mut s, &scratch);
    assert_eq!(s.readdir_all(&dir).unwrap(), vec!["export", "ro"]);
    // Every pseudo directory on the way shows just the next step.
    let c = comps(&scratch);
    let top = s.lookup_path(&[c[0].as_str()]).unwrap();
    let _ = top;
    let parent = s.lookup_path(&refs(&c[..c.len() - 1])).unwrap();
    assert_eq!(
        s.readdir_all(&parent).unwrap(),
        vec![c[c.len() - 1].clone()]
    );
    // The export's own listing is the real directory.
    let ex = root_of(&mut s, srv.export());
    assert_eq!(s.readdir_all(&ex).unwrap(), vec!["hello"]);
    // The hidden export cannot be walked to.
    assert_eq!(
        status_of(s.lookup(&dir, "hid")),
        NFS4ERR_NOENT,
        "127.0.0.1 found a pseudo directory of 127.0.0.2's export"
    );

    // 127.0.0.2 sees only its own.
    let mut s2 = session(&srv, 2, USER, "other-walker");
    let dir = root_of(&mut s2, &scratch);
    assert_eq!(s2.readdir_all(&dir).unwrap(), vec!["hid"]);
    let h = root_of(&mut s2, &hidden);
    assert!(s2.readdir_all(&h).unwrap().is_empty());
}

// ---- data ---------------------------------------------------------------------------------------

#[test]
fn large_files_are_copied_byte_exact_both_ways() {
    let Setup { srv, .. } = setup();
    let len = 8 << 20;
    let mut data = vec![0u8; len];
    XorShift::new(41).fill(&mut data);
    let mut s = session(&srv, 1, USER, "copier");
    let root = root_of(&mut s, srv.export());

    // Written through NFSv4...
    let (fh, sid) = s.open(&root, "big", true, RW).unwrap();
    s.write_all(&fh, &sid, &data).unwrap();
    s.commit(&fh, 0, 0).unwrap();
    let on_disk = std::fs::read(srv.export().join("big")).unwrap();
    assert!(
        on_disk == data,
        "the file on disk differs from what was written"
    );
    // ... and read back through it (READ last in its compound: the zero-copy path).
    let back = s.read_all(&fh, &sid, len + 1).unwrap();
    assert!(back == data, "READ returned other bytes than WRITE wrote");
    let size = s.getattr(&fh, &Bitmap::from_bits(&[num::SIZE])).unwrap();
    assert_eq!(v4::single_u64_attr(&size).unwrap(), len as u64);
    s.close(&fh, &sid).unwrap();

    // A file written locally, of an odd size, read with an open stateid and with the anonymous
    // one, and a READ followed by another operation (not the zero-copy path).
    let local = srv.export().join("local");
    common::write_random_file(&local, (5 << 20) + 12_345, 7);
    let want = std::fs::read(&local).unwrap();
    let (fh, sid) = s.open(&root, "local", false, RD).unwrap();
    assert!(s.read_all(&fh, &sid, want.len() + 1).unwrap() == want);
    assert!(
        s.read_all(&fh, &nfs4::stateid4::ANONYMOUS, want.len() + 1)
            .unwrap()
            == want
    );
    let r = s
        .run(vec![
            ArgOp::PutFh(fh.clone()),
            ArgOp::Read(nfs4::READ4args {
                stateid: sid,
                offset: 1000,
                count: 70_000,
            }),
            ArgOp::GetFh,
        ])
        .unwrap();
    match &r[1].body {
        Some(ResBody::Read(ok)) => assert_eq!(ok.data.as_bytes(), &want[1000..71_000]),
        other => panic!("READ: {other:?}"),
    }
    s.close(&fh, &sid).unwrap();
    s.destroy().unwrap();
}

// ---- permissions --------------------------------------------------------------------------------

#[test]
fn permissions_are_decided_as_the_caller() {
    require_root("files owned by others");
    let Setup { srv, .. } = setup();
    let secret = srv.export().join("secret");
    std::fs::write(&secret, b"root only").unwrap();
    set_mode(&secret, 0o600);
    let mine = srv.export().join("mine");
    std::fs::write(&mine, b"user's").unwrap();
    set_mode(&mine, 0o600);
    chown(&mine, USER, USER);

    let mut s = session(&srv, 1, USER, "user");
    let root = root_of(&mut s, srv.export());
    assert_eq!(
        status_of(s.open(&root, "secret", false, RD)),
        NFS4ERR_ACCESS
    );
    assert_eq!(
        status_of(s.open(&root, "secret", false, WR)),
        NFS4ERR_ACCESS
    );
    let (fh, sid) = s.open(&root, "mine", false, RD).unwrap();
    assert_eq!(s.read_all(&fh, &sid, 100).unwrap(), b"user's");
    // Squashed root is no better than anybody.
    let mut r = session(&srv, 1, 0, "root");
    let root = root_of(&mut r, srv.export());
    assert_eq!(
        status_of(r.open(&root, "secret", false, RD)),
        NFS4ERR_ACCESS
    );
    assert_eq!(status_of(r.open(&root, "mine", false, RD)), NFS4ERR_ACCESS);
}

#[test]
fn root_is_squashed_to_the_anonymous_user() {
    require_root("chown to the anonymous uid");
    let Setup { srv, .. } = setup();
    let mut r = session(&srv, 1, 0, "root");
    let root = root_of(&mut r, srv.export());
    let (fh, sid) = r.open(&root, "by-root", true, RW).unwrap();
    r.close(&fh, &sid).unwrap();
    assert_eq!(owner_of(&mut r, &fh), ANON.to_string());
    let m = std::fs::metadata(srv.export().join("by-root")).unwrap();
    assert_eq!((m.uid(), m.gid()), (ANON, ANON));
    // An ordinary user stays itself.
    let mut u = session(&srv, 1, USER, "user");
    let root = root_of(&mut u, srv.export());
    let (fh, sid) = u.open(&root, "by-user", true, RW).unwrap();
    u.close(&fh, &sid).unwrap();
    assert_eq!(owner_of(&mut u, &fh), USER.to_string());
}

#[test]
fn read_only_export_refuses_writes() {
    let Setup { srv, ro, .. } = setup();
    let mut s = session(&srv, 1, USER, "ro-user");
    let root = root_of(&mut s, &ro);
    assert_eq!(status_of(s.open(&root, "new", true, RW)), NFS4ERR_ROFS);
    assert_eq!(status_of(s.open(&root, "readme", false, WR)), NFS4ERR_ROFS);
    let put = ArgOp::PutFh(root.clone());
    assert_eq!(
        last_status(&mut s, vec![put.clone(), ArgOp::Remove(name("readme"))]),
        NFS4ERR_ROFS
    );
    let mkdir = ArgOp::Create(nfs4::CREATE4args {
        objtype: nfs4::createtype4::Dir,
        objname: name("d"),
        createattrs: nfs4::fattr4::default(),
    });
    assert_eq!(last_status(&mut s, vec![put.clone(), mkdir]), NFS4ERR_ROFS);
    // Reading works, and WRITE with the read open is refused too.
    let (fh, sid) = s.open(&root, "readme", false, RD).unwrap();
    assert_eq!(s.read_all(&fh, &sid, 100).unwrap(), b"read only");
    let w = s.write(&fh, &sid, 0, b"x", nfs4::stable_how4::FILE_SYNC4);
    assert!(
        matches!(status_of(w), NFS4ERR_ROFS | NFS4ERR_OPENMODE),
        "WRITE on a read-only export"
    );
    assert_eq!(std::fs::read(ro.join("readme")).unwrap(), b"read only");
}

// ---- escapes ------------------------------------------------------------------------------------

#[test]
fn export_escapes_through_the_pseudo_fs_are_refused() {
    require_root("export rules by source address");
    let Setup { srv, hidden, .. } = setup();
    let scratch = srv.scratch().canonicalize().unwrap();
    let mut s = session(&srv, 1, USER, "escaper");
    let ex = root_of(&mut s, srv.export());
    let pseudo_parent = root_of(&mut s, &scratch);

    // LOOKUPP from the export's root is the pseudo directory, never the real parent (which
    // holds `state/`, the server's keys).
    let r = s
        .run(vec![ArgOp::PutFh(ex.clone()), ArgOp::LookupP, ArgOp::GetFh])
        .unwrap();
    match &r[2].body {
        Some(ResBody::GetFh(fh)) => assert_eq!(fh, &pseudo_parent),
        other => panic!("GETFH: {other:?}"),
    }
    let names = s.readdir_all(&pseudo_parent).unwrap();
    assert!(!names.iter().any(|n| n == "state"), "{names:?}");
    // LOOKUP ".." and "." are not names.
    for n in ["..", "."] {
        assert_eq!(status_of(s.lookup(&ex, n)), NFS4ERR_BADNAME, "{n}");
    }
    assert_eq!(status_of(s.lookup(&ex, "a/../..")), NFS4ERR_BADCHAR);

    // A forged or modified handle.
    let mut forged = ex.0.to_vec();
    let last = forged.len() - 1;
    forged[last] ^= 0x40;
    let st = last_status(&mut s, vec![ArgOp::PutFh(Opaque(Bytes::from(forged)))]);
    assert!(matches!(st, NFS4ERR_BADHANDLE | NFS4ERR_STALE), "{st:?}");
    for junk in [vec![0u8; 16], vec![0xffu8; 128], vec![1u8]] {
        let st = last_status(&mut s, vec![ArgOp::PutFh(Opaque(Bytes::from(junk)))]);
        assert!(matches!(st, NFS4ERR_BADHANDLE | NFS4ERR_STALE), "{st:?}");
    }
    // A pseudo handle of a path that is not (or not for this client) in the pseudo fs.
    let mut fake = vec![0xF4u8];
    fake.extend_from_slice(&[0x5a; 16]);
    assert_eq!(
        last_status(&mut s, vec![ArgOp::PutFh(Opaque(Bytes::from(fake)))]),
        NFS4ERR_STALE
    );
    let mut other = session(&srv, 2, USER, "hidden-owner");
    let hid = root_of(&mut other, hidden.parent().unwrap());
    let hidden_root = root_of(&mut other, &hidden);
    assert_eq!(
        last_status(&mut s, vec![ArgOp::PutFh(hid)]),
        NFS4ERR_STALE,
        "127.0.0.1 used the pseudo handle of 127.0.0.2's path"
    );
    let st = last_status(&mut s, vec![ArgOp::PutFh(hidden_root)]);
    assert!(
        matches!(
            st,
            NFS4ERR_ACCESS | NFS4ERR_STALE | NFS4ERR_WRONGSEC | NFS4ERR_PERM
        ),
        "127.0.0.1 used the root handle of 127.0.0.2's export: {st:?}"
    );
}

// ---- locks and shares ---------------------------------------------------------------------------

#[test]
fn locks_conflict_between_v4_clients_and_with_nlm() {
    use rnfs_client::nlm::nlm4_stats;
    let Setup { srv, .. } = setup();
    std::fs::write(srv.export().join("locked"), vec![0u8; 4096]).unwrap();
    set_mode(&srv.export().join("locked"), 0o666);
    let mut a = session(&srv, 1, USER, "locker-a");
    let mut b = session(&srv, 1, USER, "locker-b");
    let root_a = root_of(&mut a, srv.export());
    let root_b = root_of(&mut b, srv.export());
    let (fh, open_a) = a.open(&root_a, "locked", false, RW).unwrap();
    let (_, open_b) = b.open(&root_b, "locked", false, RW).unwrap();

    let lock_a = a
        .lock(&fh, &open_a, nfs4::nfs_lock_type4::WRITE_LT, 0, 100)
        .unwrap();
    match b.lock(&fh, &open_b, nfs4::nfs_lock_type4::READ_LT, 50, 10) {
        Err(v4::Error::Denied(d)) => {
            assert_eq!(d.owner.clientid, a.clientid(), "{d:?}");
            assert_eq!(d.owner.owner, a.lock_owner().owner, "{d:?}");
            assert_eq!((d.offset, d.length), (0, 100));
            assert_eq!(d.locktype, nfs4::nfs_lock_type4::WRITE_LT);
        }
        other => panic!("B's conflicting LOCK: {other:?}"),
    }
    // Outside A's range B locks.
    let lock_b = b
        .lock(&fh, &open_b, nfs4::nfs_lock_type4::WRITE_LT, 200, 10)
        .unwrap();

    // An NLM client (NFSv3's locks) sees A's lock, and A sees its lock.
    let fh3 = rnfs_client::nfs3::nfs_fh3 {
        data: Opaque(fh.0.clone()),
    };
    let mut n = Client::connect_tcp(srv.tcp_addr())
        .unwrap()
        .with_auth_sys(USER, USER, &[USER]);
    let owner = rnfs_client::LockOwner::new("nlm-host", 77);
    let r = n.nlm_lock(&owner.lock_args(&fh3, true, 10, 5)).unwrap();
    assert_eq!(r.stat.stat, nlm4_stats::NLM4_DENIED);
    let r = n.nlm_lock(&owner.lock_args(&fh3, true, 1000, 5)).unwrap();
    assert_eq!(r.stat.stat, nlm4_stats::NLM4_GRANTED);
    match a.lock_existing(&fh, &lock_a, nfs4::nfs_lock_type4::WRITE_LT, 1002, 1) {
        Err(v4::Error::Denied(d)) => assert_eq!((d.offset, d.length), (1000, 5), "{d:?}"),
        other => panic!("A's LOCK over the NLM lock: {other:?}"),
    }
    // Unlocked, the range is free for the others.
    a.locku(&fh, &lock_a, nfs4::nfs_lock_type4::WRITE_LT, 0, 100)
        .unwrap();
    b.lock_existing(&fh, &lock_b, nfs4::nfs_lock_type4::READ_LT, 50, 10)
        .unwrap();
    let r = n.nlm_lock(&owner.lock_args(&fh3, true, 0, 10)).unwrap();
    assert_eq!(r.stat.stat, nlm4_stats::NLM4_GRANTED);
}

#[test]
fn share_reservations_deny_other_clients() {
    let Setup { srv, .. } = setup();
    std::fs::write(srv.export().join("shared"), b"x").unwrap();
    set_mode(&srv.export().join("shared"), 0o666);
    let mut a = session(&srv, 1, USER, "share-a");
    let mut b = session(&srv, 1, USER, "share-b");
    let root_a = root_of(&mut a, srv.export());
    let root_b = root_of(&mut b, srv.export());
    let o = a
        .open_deny(&root_a, "shared", false, RW, nfs4::OPEN4_SHARE_DENY_WRITE)
        .unwrap();
    for acc in [WR, RW] {
        assert_eq!(
            status_of(b.open(&root_b, "shared", false, acc)),
            NFS4ERR_SHARE_DENIED
        );
    }
    // Reading is not denied; and B's read-open denying READ conflicts with A's access.
    let (fh, sid) = b.open(&root_b, "shared", false, RD).unwrap();
    assert_eq!(
        status_of(b.open_deny(&root_b, "shared", false, RD, nfs4::OPEN4_SHARE_DENY_READ)),
        NFS4ERR_SHARE_DENIED
    );
    b.close(&fh, &sid).unwrap();
    // Closed, the reservation is gone.
    a.close(&o.fh, &o.stateid).unwrap();
    let (fh, sid) = b.open(&root_b, "shared", false, RW).unwrap();
    b.close(&fh, &sid).unwrap();
}

// ---- hostile input ------------------------------------------------------------------------------

fn rss_mib(srv: &TestServer) -> f64 {
    proc_status_kib(srv.pid().unwrap(), "VmRSS") as f64 / 1024.0
}

#[test]
fn compounds_claiming_huge_operation_counts_get_bounded_answers() {
    let Setup { srv, .. } = setup();
    let mut s = session(&srv, 1, USER, "many-ops");
    let before = rss_mib(&srv);
    let start = Instant::now();
    for _ in 0..10 {
        // 100,000 real PUTROOTFH without a session (400 KB, inside the record limit).
        let mut c = Client::connect_tcp(srv.tcp_addr()).unwrap();
        let r = compound_raw(&mut c, 1, vec![ArgOp::PutRootFh; 100_000]).unwrap();
        assert_eq!(r.status, NFS4ERR_TOO_MANY_OPS);
        assert_eq!(r.results.len(), 1);

        // The same inside the session: SEQUENCE refuses it.
        let mut ops = vec![ArgOp::PutRootFh; 99_999];
        ops.push(ArgOp::GetFh);
        let e = s.compound(ops).unwrap_err();
        assert_eq!(e.status(), Some(NFS4ERR_TOO_MANY_OPS), "{e}");

        // A header claiming 100,000 operations with only two present.
        // Refused for its size, the SEQUENCE leaves the slot as it was (RFC 8881 §18.46.3):
        // the same sequence id serves the next request.
        let seq = s.slots().next_seqid(0).unwrap();
        let mut args =
            v4::encode_compound(1, vec![s.sequence_op(0, seq, false), ArgOp::PutRootFh]).to_vec();
        args[8..12].copy_from_slice(&100_000u32.to_be_bytes());
        let res = raw_compound(s.client_mut(), &args);
        assert_eq!(res.results.len(), 1, "{res:?}");
        assert_eq!(res.status, NFS4ERR_TOO_MANY_OPS);
    }
    println!("30 hostile compounds in {:?}", start.elapsed());
    // Others are still served, and the server did not grow.
    let mut other = session(&srv, 1, USER, "bystander");
    root_of(&mut other, srv.export());
    let root = root_of(&mut s, srv.export());
    assert!(s.readdir_all(&root).unwrap().is_empty());
    let after = rss_mib(&srv);
    println!("server RSS {before:.1} MiB before, {after:.1} MiB after");
    assert!(
        after - before < 64.0,
        "RSS grew from {before:.1} to {after:.1} MiB"
    );
}

/// Sends encoded COMPOUND arguments and decodes the reply (which must be accepted).
fn raw_compound(c: &mut Client, args: &[u8]) -> nfs4::CompoundRes {
    let r = c
        .call_raw(None, nfs4::NFS4_PROGRAM, 4, nfs4::NFSPROC4_COMPOUND, args)
        .unwrap();
    match r.status {
        ReplyStatus::Success(body) => v4::decode_compound_res(body).unwrap(),
        other => panic!("COMPOUND not accepted: {other}"),
    }
}

#[test]
fn oversized_lengths_are_refused_without_allocating() {
    let Setup { srv, .. } = setup();
    let mut s = session(&srv, 1, USER, "bitmaps");
    let before = rss_mib(&srv);
    let seq = s.slots().next_seqid(0).unwrap();
    // SEQUENCE, PUTROOTFH, then GETATTR with a bitmap claiming 2^30 words (and none present).
    let mut args =
        v4::encode_compound(1, vec![s.sequence_op(0, seq, false), ArgOp::PutRootFh]).to_vec();
    args[8..12].copy_from_slice(&3u32.to_be_bytes());
    args.put_u32(OP_GETATTR);
    args.put_u32(1 << 30);
    let res = raw_compound(s.client_mut(), &args);
    s.mark_used(0, seq);
    let st: Vec<_> = res.results.iter().map(|r| (r.op, r.status)).collect();
    assert_eq!(
        st,
        vec![
            (OP_SEQUENCE, NFS4_OK),
            (OP_PUTROOTFH, NFS4_OK),
            (OP_GETATTR, NFS4ERR_BADXDR)
        ]
    );
    assert_eq!(res.status, NFS4ERR_BADXDR);
    // A tag claiming 2^30 bytes: the header does not decode, GARBAGE_ARGS.
    let mut bad = Vec::new();
    bad.put_u32(1 << 30);
    bad.put_u32(1);
    let r = s
        .client_mut()
        .call_raw(None, nfs4::NFS4_PROGRAM, 4, nfs4::NFSPROC4_COMPOUND, &bad)
        .unwrap();
    assert_eq!(r.status, ReplyStatus::GarbageArgs);
    // The session goes on.
    let root = root_of(&mut s, srv.export());
    s.getattr(&root, &Bitmap::from_bits(&[num::TYPE])).unwrap();
    let after = rss_mib(&srv);
    assert!(
        after - before < 32.0,
        "RSS grew from {before:.1} to {after:.1} MiB"
    );
}

#[test]
fn stateids_of_another_client_are_refused_and_left_alone() {
    let Setup { srv, .. } = setup();
    let mut a = session(&srv, 1, USER, "owner");
    let mut b = session(&srv, 1, USER, "thief");
    let root_a = root_of(&mut a, srv.export());
    let (fh, sid) = a.open(&root_a, "private", true, RW).unwrap();
    a.write(&fh, &sid, 0, b"a's data", nfs4::stable_how4::FILE_SYNC4)
        .unwrap();
    let lock = a
        .lock(&fh, &sid, nfs4::nfs_lock_type4::WRITE_LT, 0, 1)
        .unwrap();

    assert_eq!(status_of(b.read(&fh, &sid, 0, 10)), NFS4ERR_BAD_STATEID);
    let w = b.write(&fh, &sid, 0, b"stolen", nfs4::stable_how4::FILE_SYNC4);
    assert_eq!(status_of(w), NFS4ERR_BAD_STATEID);
    assert_eq!(status_of(b.read(&fh, &lock, 0, 10)), NFS4ERR_BAD_STATEID);
    let lu = b.locku(&fh, &lock, nfs4::nfs_lock_type4::WRITE_LT, 0, 1);
    assert_eq!(status_of(lu), NFS4ERR_BAD_STATEID);
    assert_eq!(status_of(b.close(&fh, &sid)), NFS4ERR_BAD_STATEID);
    let put = ArgOp::PutFh(fh.clone());
    assert_eq!(
        last_status(&mut b, vec![put.clone(), ArgOp::FreeStateid(lock)]),
        NFS4ERR_BAD_STATEID
    );
    let r = b
        .run(vec![ArgOp::TestStateid(rnfs_xdr::Array(vec![sid, lock]))])
        .unwrap();
    match &r[0].body {
        Some(ResBody::TestStateid(st)) => {
            assert_eq!(st.0, vec![NFS4ERR_BAD_STATEID, NFS4ERR_BAD_STATEID])
        }
        other => panic!("TEST_STATEID: {other:?}"),
    }

    // A's state is untouched: its READ, its lock, its CLOSE.
    let r = a.read(&fh, &sid, 0, 100).unwrap();
    assert_eq!(r.data.as_bytes(), b"a's data");
    assert!(matches!(
        b.lock_existing(&fh, &lock, nfs4::nfs_lock_type4::WRITE_LT, 0, 1),
        Err(e) if e.status() == Some(NFS4ERR_BAD_STATEID)
    ));
    a.locku(&fh, &lock, nfs4::nfs_lock_type4::WRITE_LT, 0, 1)
        .unwrap();
    a.close(&fh, &sid).unwrap();
    assert_eq!(
        std::fs::read(srv.export().join("private")).unwrap(),
        b"a's data"
    );
}

#[test]
fn session_slots_are_checked_and_retransmissions_replayed() {
    let Setup { srv, .. } = setup();
    let mut s = session(&srv, 1, USER, "slots");
    let root = root_of(&mut s, srv.export());
    let slots = s.fore_channel().ca_maxrequests;
    let next = s.slots().next_seqid(0).unwrap();
    let seq_status = |s: &mut Session, slot, seqid| {
        let r = s
            .compound_on(slot, seqid, false, vec![ArgOp::PutRootFh])
            .unwrap();
        r.results[0].status
    };
    // Slot ids beyond the table.
    for slot in [slots, slots + 1, u32::MAX] {
        assert_eq!(seq_status(&mut s, slot, 1), NFS4ERR_BADSLOT, "slot {slot}");
    }
    // Sequence ids out of order: ahead, and far behind.
    assert_eq!(seq_status(&mut s, 0, next + 1), NFS4ERR_SEQ_MISORDERED);
    assert_eq!(
        seq_status(&mut s, 0, next.wrapping_sub(5)),
        NFS4ERR_SEQ_MISORDERED
    );
    assert_eq!(
        seq_status(&mut s, 0, next.wrapping_add(1000)),
        NFS4ERR_SEQ_MISORDERED
    );

    // A non-idempotent CREATE, cached, then retransmitted: the same reply, executed once.
    let mkdir = |n: &str| {
        vec![
            ArgOp::PutFh(root.clone()),
            ArgOp::Create(nfs4::CREATE4args {
                objtype: nfs4::createtype4::Dir,
                objname: name(n),
                createattrs: nfs4::fattr4::default(),
            }),
            ArgOp::GetFh,
        ]
    };
    let xid = s.client_mut().next_xid().wrapping_add(1_000_000);
    let first = s.compound_bytes(xid, 0, next, true, mkdir("once")).unwrap();
    s.mark_used(0, next);
    let res = |b: &Bytes| match rnfs_client::rpc::decode_reply(b.clone()).unwrap().status {
        ReplyStatus::Success(body) => v4::decode_compound_res(body).unwrap(),
        other => panic!("{other}"),
    };
    assert_eq!(res(&first).status, NFS4_OK, "{:?}", res(&first));
    let again = s.compound_bytes(xid, 0, next, true, mkdir("once")).unwrap();
    assert_eq!(again, first, "the retransmission's reply differs");
    // Under a new XID (a retransmission on another connection would have one): the same
    // COMPOUND4res.
    let third = s
        .compound_bytes(xid.wrapping_add(1), 0, next, true, mkdir("once"))
        .unwrap();
    assert_eq!(
        third[4..],
        first[4..],
        "the replayed reply differs past the XID"
    );
    assert!(srv.export().join("once").is_dir());
    // The same slot and id with other operations is a false retry, not an execution.
    let other = s
        .compound_bytes(xid.wrapping_add(2), 0, next, true, mkdir("twice"))
        .unwrap();
    let st = res(&other).results[0].status;
    assert!(
        matches!(st, NFS4ERR_SEQ_FALSE_RETRY),
        "a different compound on a used slot and id: {st:?}"
    );
    assert!(!srv.export().join("twice").exists());

    // Uncached: a retransmission cannot be answered, and is not executed again.
    let next = s.slots().next_seqid(0).unwrap();
    let r = s.compound_on(0, next, false, mkdir("uncached")).unwrap();
    assert_eq!(r.status, NFS4_OK);
    s.mark_used(0, next);
    let r = s.compound_on(0, next, false, mkdir("uncached")).unwrap();
    assert_eq!(r.results[0].status, NFS4ERR_RETRY_UNCACHED_REP, "{r:?}");

    // The session goes on with the next id; the directories exist once.
    let e = s.run(mkdir("once")).unwrap_err();
    assert_eq!(e.status(), Some(NFS4ERR_EXIST));
    let mut names = s.readdir_all(&root).unwrap();
    names.sort();
    assert_eq!(names, vec!["once", "uncached"]);
    s.destroy().unwrap();
}

#[test]
fn destroying_a_client_with_state_is_refused_and_keeps_it() {
    let Setup { srv, .. } = setup();
    std::fs::write(srv.export().join("f"), b"x").unwrap();
    set_mode(&srv.export().join("f"), 0o666);
    let mut a = session(&srv, 1, USER, "leaver");
    let root = root_of(&mut a, srv.export());
    let o = a
        .open_deny(&root, "f", false, RW, nfs4::OPEN4_SHARE_DENY_BOTH)
        .unwrap();
    a.lock(
        &o.fh,
        &o.stateid,
        nfs4::nfs_lock_type4::WRITE_LT,
        0,
        u64::MAX,
    )
    .unwrap();
    let sessionid = a.sessionid();
    let (mut c, clientid) = a.destroy_session().unwrap();
    // The session is gone.
    let r = compound_raw(
        &mut c,
        1,
        vec![ArgOp::Sequence(nfs4::SEQUENCE4args {
            sa_sessionid: sessionid,
            sa_sequenceid: 1,
            sa_slotid: 0,
            sa_highest_slotid: 0,
            sa_cachethis: false,
        })],
    )
    .unwrap();
    assert_eq!(r.status, NFS4ERR_BADSESSION);
    // The client still holds an open and a lock: DESTROY_CLIENTID is refused (§18.50.3), and
    // the share reservation still holds against others.
    let e = v4::destroy_clientid(&mut c, clientid).unwrap_err();
    assert_eq!(e.status(), Some(NFS4ERR_CLIENTID_BUSY), "{e}");
    let mut b = session(&srv, 1, USER, "next");
    let root = root_of(&mut b, srv.export());
    assert_eq!(
        status_of(b.open(&root, "f", false, RD)),
        NFS4ERR_SHARE_DENIED
    );
    // A client id nobody has is refused too.
    let e = v4::destroy_clientid(&mut c, clientid ^ 0xdead_beef).unwrap_err();
    assert_eq!(e.status(), Some(NFS4ERR_STALE_CLIENTID), "{e}");
    // Without state a client is destroyed whole.
    let (c, id) = b.destroy_session().unwrap();
    let mut c = c;
    v4::destroy_clientid(&mut c, id).unwrap();
}

/// With `nfs4_domain`, owners travel as `name@domain` (from /etc/passwd and /etc/group; ids
/// nobody names stay numeric); a SETATTR naming an unknown user or another domain is refused
/// with NFS4ERR_BADOWNER and changes nothing, and numeric strings are still taken.
#[test]
fn owners_are_names_at_the_configured_domain() {
    require_root("chown through SETATTR");
    let mut srv = TestServer::new();
    srv.set_config(&format!(
        "nfs4_domain = \"Example.com\"\n\n[[export]]\npath = {:?}\n\n[[export.client]]\nmatch = \"127.0.0.1\"\naccess = \"rw\"\nroot_squash = false\n",
        srv.export()
    ));
    srv.start();
    let mut s = session(&srv, 1, 0, "idmap");
    let root = root_of(&mut s, srv.export());
    let (fh, sid) = s.open(&root, "owned", true, RW).unwrap();
    s.close(&fh, &sid).unwrap();
    assert_eq!(owner_of(&mut s, &fh), "root@example.com");
    let setattr = |owner: &str| {
        ArgOp::SetAttr(nfs4::SETATTR4args {
            stateid: nfs4::stateid4::ANONYMOUS,
            obj_attributes: nfs4::attr::encode_settable(&nfs4::attr::SetAttrs4 {
                owner: Some(Bytes::copy_from_slice(owner.as_bytes())),
                ..Default::default()
            }),
        })
    };
    let put = ArgOp::PutFh(fh.clone());
    for bad in [
        "no-such-user-here@example.com",
        "root@elsewhere.org",
        "root",
    ] {
        assert_eq!(
            last_status(&mut s, vec![put.clone(), setattr(bad)]),
            NFS4ERR_BADOWNER,
            "{bad}"
        );
    }
    let path = srv.export().join("owned");
    assert_eq!(std::fs::metadata(&path).unwrap().uid(), 0);
    // A numeric id nobody names: taken, and shown numeric.
    assert_eq!(
        last_status(&mut s, vec![put.clone(), setattr("4242")]),
        NFS4_OK
    );
    assert_eq!(std::fs::metadata(&path).unwrap().uid(), 4242);
    assert_eq!(owner_of(&mut s, &fh), "4242");
    // A name at the domain (any case): taken.
    assert_eq!(
        last_status(&mut s, vec![put, setattr("root@EXAMPLE.com")]),
        NFS4_OK
    );
    assert_eq!(std::fs::metadata(&path).unwrap().uid(), 0);
}

/// SIGKILL with an open and a lock held: after the restart the old session is gone, the client
/// reclaims its open (CLAIM_PREVIOUS) and lock (reclaim) in the grace period while another
/// client's new OPEN gets NFS4ERR_GRACE, the committed data is intact, and grace ends early
/// (well before `lock_grace_ms`) once the only recorded client has sent RECLAIM_COMPLETE.
#[test]
fn sigkill_restart_keeps_committed_data_and_state_is_reclaimed() {
    let mut srv = TestServer::new();
    srv.set_config(&format!(
        "[[export]]\npath = {:?}\n\n[[export.client]]\nmatch = \"127.0.0.1\"\naccess = \"rw\"\nroot_squash = false\n\n\
         [limits]\nlock_grace_ms = 120000\nnfs4_lease_ms = 2000\n",
        srv.export()
    ));
    srv.start();
    let owner = format!("reboot-{}", std::process::id());
    let mut s = session(&srv, 1, 0, &owner);
    let root = root_of(&mut s, srv.export());
    let (fh, sid) = s.open(&root, "kept", true, RW).unwrap();
    let data: Vec<u8> = (0..(1 << 20)).map(|i| (i * 7 % 251) as u8).collect();
    for (i, chunk) in data.chunks(256 << 10).enumerate() {
        let at = (i * (256 << 10)) as u64;
        s.write(&fh, &sid, at, chunk, nfs4::stable_how4::UNSTABLE4)
            .unwrap();
    }
    s.commit(&fh, 0, 0).unwrap();
    s.lock(&fh, &sid, nfs4::nfs_lock_type4::WRITE_LT, 0, 10)
        .unwrap();

    assert!(srv.kill_hard().is_some());
    srv.start();
    let started = Instant::now();
    // The client reconnects; its session did not survive.
    *s.client_mut() = Client::connect_tcp_from(SocketAddr::new(ip(1), 0), srv.tcp_addr())
        .unwrap()
        .with_auth_sys(0, 0, &[0]);
    assert_eq!(status_of(s.compound(vec![])), NFS4ERR_BADSESSION);

    // Another client, new since the restart: no new opens until grace ends.
    let mut other = session(&srv, 1, 0, "newcomer");
    let oroot = root_of(&mut other, srv.export());
    assert_eq!(
        status_of(other.open(&oroot, "kept", false, RD)),
        NFS4ERR_GRACE
    );

    // The client comes back under its own name and reclaims.
    let mut c = Client::connect_tcp_from(SocketAddr::new(ip(1), 0), srv.tcp_addr())
        .unwrap()
        .with_auth_sys(0, 0, &[0]);
    let owner_id = format!("{owner}-{}", std::process::id());
    let ex = v4::exchange_id(&mut c, owner_id.as_bytes(), [9; 8]).unwrap();
    let mut r =
        Session::create(c, ex.eir_clientid, ex.eir_sequenceid, owner_id.as_bytes()).unwrap();
    let open = nfs4::OPEN4args {
        seqid: 0,
        share_access: RW,
        share_deny: nfs4::OPEN4_SHARE_DENY_NONE,
        owner: r.open_owner(),
        openhow: nfs4::OpenHow(None),
        claim: nfs4::open_claim4::Previous(nfs4::open_delegation_type4::OPEN_DELEGATE_NONE),
    };
    let res = r
        .run(vec![ArgOp::PutFh(fh.clone()), ArgOp::Open(open.clone())])
        .unwrap();
    let Some(ResBody::Open(ok)) = &res[1].body else {
        panic!("OPEN reclaim: {res:?}")
    };
    let rsid = ok.stateid;
    let lock = nfs4::LOCK4args {
        locktype: nfs4::nfs_lock_type4::WRITE_LT,
        reclaim: true,
        offset: 0,
        length: 10,
        locker: nfs4::locker4::New(nfs4::open_to_lock_owner4 {
            open_seqid: 0,
            open_stateid: rsid,
            lock_seqid: 0,
            lock_owner: r.lock_owner(),
        }),
    };
    r.run(vec![ArgOp::PutFh(fh.clone()), ArgOp::Lock(lock)])
        .unwrap_or_else(|e| panic!("LOCK reclaim: {e}"));
    r.reclaim_complete().unwrap();
    // A reclaim after RECLAIM_COMPLETE is refused.
    assert_eq!(
        last_status(&mut r, vec![ArgOp::PutFh(fh.clone()), ArgOp::Open(open)]),
        NFS4ERR_NO_GRACE
    );
    assert_eq!(
        r.read_all(&fh, &rsid, 2 << 20).unwrap(),
        data,
        "committed data lost"
    );

    // Grace ends early: the newcomer may open within seconds, not 120.
    loop {
        match other.open(&oroot, "kept", false, RD) {
            Ok(_) => break,
            Err(e) if e.status() == Some(NFS4ERR_GRACE) => {}
            Err(e) => panic!("newcomer's OPEN: {e}"),
        }
        assert!(started.elapsed().as_secs() < 30, "grace did not end early");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // The reclaimed lock holds against the newcomer.
    let (ofh, osid) = other.open(&oroot, "kept", false, RW).unwrap();
    let e = other.lock(&ofh, &osid, nfs4::nfs_lock_type4::WRITE_LT, 0, 1);
    assert_eq!(status_of(e), NFS4ERR_DENIED);
}
