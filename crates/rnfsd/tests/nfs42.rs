//! NFSv4.2's sparse-file operations (RFC 7862: SEEK, ALLOCATE, DEALLOCATE, READ_PLUS) and
//! extended attributes (RFC 8276) against the real server, with rnfsd's own client over
//! loopback: what the client sees, and what the file on disk shows (blocks, zeros, `user.`
//! attributes), limits, the user namespace, permissions as the caller, and the per-operation
//! metrics.
//!
//! Needs root (files owned by others, squashing, `trusted.` attributes) and an export file system
//! with holes and user xattrs (ext4, xfs, tmpfs since Linux 6.6).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use bytes::Bytes;
use common::{chown, metric, require_root, scrape_metrics, set_mode, TestServer, USER};
use rnfs_client::nfs4::{self, attr::num, nfsstat4::*, ArgOp, Bitmap, Opaque, ResBody, ResOp};
use rnfs_client::nfs4::{read_plus_content, setxattr_option4::*, XdrEncode};
use rnfs_client::v4::Session;
use rnfs_client::Client;

const ANON: u32 = 4321;
/// The export's `xattr_value_bytes_max` in these tests.
const VALUE_MAX: usize = 2000;
const RW: u32 = nfs4::OPEN4_SHARE_ACCESS_BOTH;
const RD: u32 = nfs4::OPEN4_SHARE_ACCESS_READ;
const MIB: u64 = 1 << 20;

/// A server exporting `export/` to 127.0.0.1 (rw, root squashed to ANON) with a small xattr
/// value limit and metrics on.
fn server() -> TestServer {
    let mut srv = TestServer::new().args(["--metrics", "127.0.0.1:0"]);
    set_mode(srv.export(), 0o777);
    srv.set_config(&format!(
        "[[export]]\npath = {:?}\nid = 1\n\n[[export.client]]\nmatch = \"127.0.0.1\"\naccess = \"rw\"\n\
         anonuid = {ANON}\nanongid = {ANON}\n\n[limits]\nxattr_value_bytes_max = {VALUE_MAX}\n",
        srv.export()
    ));
    srv.start();
    srv
}

fn session(srv: &TestServer, uid: u32, name: &str) -> Session {
    let c = Client::connect_tcp_from(
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        srv.tcp_addr(),
    )
    .unwrap()
    .with_auth_sys(uid, uid, &[uid]);
    Session::establish(c, format!("{name}-{}", std::process::id()).as_bytes()).unwrap()
}

fn export_root(s: &mut Session, dir: &Path) -> nfs4::nfs_fh4 {
    s.lookup_dir(dir).unwrap()
}

/// PUTFH `fh` and `op`: `op`'s result, or the status it failed with.
fn on(s: &mut Session, fh: &nfs4::nfs_fh4, op: ArgOp) -> Result<ResOp, nfs4::nfsstat4> {
    match s.run(vec![ArgOp::PutFh(fh.clone()), op]) {
        Ok(mut r) => Ok(r.pop().unwrap()),
        Err(e) => Err(e.status().unwrap_or_else(|| panic!("not a status: {e}"))),
    }
}

fn seek(
    s: &mut Session,
    fh: &nfs4::nfs_fh4,
    sid: nfs4::stateid4,
    offset: u64,
    hole: bool,
) -> Result<(bool, u64), nfs4::nfsstat4> {
    let what = if hole {
        nfs4::data_content4::NFS4_CONTENT_HOLE
    } else {
        nfs4::data_content4::NFS4_CONTENT_DATA
    };
    let args = nfs4::SEEK4args {
        stateid: sid,
        offset,
        what,
    };
    match on(s, fh, ArgOp::Seek(args))?.body {
        Some(ResBody::Seek(r)) => Ok((r.eof, r.offset)),
        other => panic!("SEEK: {other:?}"),
    }
}

fn range(sid: nfs4::stateid4, offset: u64, length: u64) -> nfs4::ALLOCATE4args {
    nfs4::ALLOCATE4args {
        stateid: sid,
        offset,
        length,
    }
}

fn read_plus(
    s: &mut Session,
    fh: &nfs4::nfs_fh4,
    sid: nfs4::stateid4,
    offset: u64,
    count: u32,
) -> nfs4::read_plus_res4 {
    let args = nfs4::READ_PLUS4args {
        stateid: sid,
        offset,
        count,
    };
    match on(s, fh, ArgOp::ReadPlus(args)).unwrap().body {
        Some(ResBody::ReadPlus(r)) => r,
        other => panic!("READ_PLUS: {other:?}"),
    }
}

/// The file's bytes as READ_PLUS describes them from `offset`: data copied, holes as zeros.
fn flatten(r: &nfs4::read_plus_res4, offset: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for seg in &r.contents.0 {
        let (at, bytes) = match seg {
            read_plus_content::Data(d) => (d.offset, d.data.as_bytes().to_vec()),
            read_plus_content::Hole(h) => (h.offset, vec![0; h.length as usize]),
        };
        assert_eq!(
            at,
            offset + out.len() as u64,
            "segments out of order: {r:?}"
        );
        out.extend_from_slice(&bytes);
    }
    out
}

#[test]
fn seek_deallocate_allocate_and_read_plus_on_a_sparse_file() {
    require_root("files owned by others");
    let srv = server();
    let path = srv.export().join("sparse");
    let data: Vec<u8> = (0..3 * MIB).map(|i| (i % 251 + 1) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    chown(&path, USER, USER);
    let blocks = std::fs::metadata(&path).unwrap().blocks();

    let mut s = session(&srv, USER, "sparse");
    let root = export_root(&mut s, srv.export());
    let (fh, sid) = s.open(&root, "sparse", false, RW).unwrap();

    // No hole yet: data at 0, the only hole is the end of the file.
    assert_eq!(seek(&mut s, &fh, sid, 0, false), Ok((false, 0)));
    assert_eq!(seek(&mut s, &fh, sid, 0, true), Ok((true, 3 * MIB)));

    // DEALLOCATE the middle MiB: blocks go back, the size stays, the range reads zeros.
    on(&mut s, &fh, ArgOp::Deallocate(range(sid, MIB, MIB))).unwrap();
    let m = std::fs::metadata(&path).unwrap();
    assert_eq!(m.len(), 3 * MIB);
    assert!(
        m.blocks() + 2000 <= blocks,
        "st_blocks {blocks} -> {}",
        m.blocks()
    );
    let on_disk = std::fs::read(&path).unwrap();
    assert!(on_disk[MIB as usize..2 * MIB as usize]
        .iter()
        .all(|&b| b == 0));
    assert_eq!(on_disk[..MIB as usize], data[..MIB as usize]);

    // SEEK finds it; past the end there is nothing (NFS4ERR_NXIO).
    assert_eq!(seek(&mut s, &fh, sid, 0, true), Ok((false, MIB)));
    assert_eq!(seek(&mut s, &fh, sid, MIB + 7, false), Ok((false, 2 * MIB)));
    assert_eq!(seek(&mut s, &fh, sid, 3 * MIB, false), Err(NFS4ERR_NXIO));
    assert_eq!(seek(&mut s, &fh, sid, u64::MAX, true), Err(NFS4ERR_NXIO));

    // READ_PLUS across holes: data, a hole, data, a hole, data: exactly the file's bytes. (A
    // second, smaller hole keeps the range within one READ's size.)
    on(
        &mut s,
        &fh,
        ArgOp::Deallocate(range(sid, 2 * MIB + 65536, 65536)),
    )
    .unwrap();
    let on_disk = std::fs::read(&path).unwrap();
    let at = MIB - 4096;
    let len = MIB + 256 * 1024;
    let mut got = Vec::new();
    let mut kinds = Vec::new();
    while (got.len() as u64) < len {
        let pos = at + got.len() as u64;
        let r = read_plus(&mut s, &fh, sid, pos, (len - got.len() as u64) as u32);
        assert!(!r.eof && !r.contents.0.is_empty());
        kinds.extend(
            r.contents
                .0
                .iter()
                .map(|c| matches!(c, read_plus_content::Hole(_))),
        );
        got.extend(flatten(&r, pos));
    }
    kinds.dedup();
    assert_eq!(kinds, vec![false, true, false, true, false]);
    assert!(
        got == on_disk[at as usize..(at + len) as usize],
        "READ_PLUS differs from the file"
    );
    let r = read_plus(&mut s, &fh, sid, MIB - 4096, 8192);
    assert_eq!(r.contents.0.len(), 2);
    match &r.contents.0[1] {
        read_plus_content::Hole(h) => assert_eq!((h.offset, h.length), (MIB, 4096)),
        other => panic!("{other:?}"),
    }
    // A whole MiB of hole costs a segment header, not a MiB of zeros on the wire.
    let hole = on(
        &mut s,
        &fh,
        ArgOp::ReadPlus(nfs4::READ_PLUS4args {
            stateid: sid,
            offset: MIB,
            count: MIB as u32,
        }),
    )
    .unwrap();
    let read = on(
        &mut s,
        &fh,
        ArgOp::Read(nfs4::READ4args {
            stateid: sid,
            offset: MIB,
            count: MIB as u32,
        }),
    )
    .unwrap();
    let (plus_bytes, read_bytes) = (hole.encoded_len(), read.encoded_len());
    eprintln!("1 MiB hole: READ_PLUS result {plus_bytes} bytes, READ result {read_bytes} bytes");
    assert!(plus_bytes < 64 && read_bytes > MIB as usize, "{hole:?}");
    // At the end: eof, and a read past it is empty with eof.
    let r = read_plus(&mut s, &fh, sid, 3 * MIB - 100, 4096);
    assert!(r.eof && flatten(&r, 3 * MIB - 100) == on_disk[(3 * MIB - 100) as usize..]);
    let r = read_plus(&mut s, &fh, sid, 5 * MIB, 4096);
    assert!(r.eof && r.contents.0.is_empty());

    // A trailing hole: SEEK for data finds none (eof, at the size); READ_PLUS reports the hole.
    on(&mut s, &fh, ArgOp::Deallocate(range(sid, 2 * MIB, 2 * MIB))).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 3 * MIB);
    assert_eq!(seek(&mut s, &fh, sid, MIB + 1, false), Ok((true, 3 * MIB)));
    let r = read_plus(&mut s, &fh, sid, 2 * MIB, 4096);
    assert_eq!(
        r.contents.0,
        vec![read_plus_content::Hole(nfs4::data_info4 {
            offset: 2 * MIB,
            length: 4096
        })]
    );

    // ALLOCATE past the end extends the file; an empty range is invalid.
    on(&mut s, &fh, ArgOp::Allocate(range(sid, 3 * MIB, 8192))).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 3 * MIB + 8192);
    assert_eq!(
        on(&mut s, &fh, ArgOp::Allocate(range(sid, 0, 0))).unwrap_err(),
        NFS4ERR_INVAL
    );
    s.close(&fh, &sid).unwrap();

    // A read-only open may seek but not deallocate.
    let (fh, rd) = s.open(&root, "sparse", false, RD).unwrap();
    assert_eq!(seek(&mut s, &fh, rd, 0, true), Ok((false, MIB)));
    assert_eq!(
        on(&mut s, &fh, ArgOp::Deallocate(range(rd, 0, 4096))).unwrap_err(),
        NFS4ERR_OPENMODE
    );
    // Squashed root may not write the user's 0644 file.
    set_mode(&path, 0o644);
    let mut r = session(&srv, 0, "squashed");
    let anon = nfs4::stateid4::ANONYMOUS;
    assert_eq!(
        on(&mut r, &fh, ArgOp::Deallocate(range(anon, 0, 4096))).unwrap_err(),
        NFS4ERR_ACCESS
    );
    // A directory is not a file.
    assert_eq!(
        on(
            &mut s,
            &root,
            ArgOp::Seek(nfs4::SEEK4args {
                stateid: anon,
                offset: 0,
                what: nfs4::data_content4::NFS4_CONTENT_DATA
            })
        )
        .unwrap_err(),
        NFS4ERR_ISDIR
    );
    s.close(&fh, &rd).unwrap();

    let metrics = scrape_metrics(srv.state_dir());
    for op in ["SEEK", "DEALLOCATE", "ALLOCATE", "READ_PLUS"] {
        let n = metric(
            &metrics,
            &format!("rnfsd_nfs4_operations_total{{op=\"{op}\"}}"),
        );
        assert!(n >= 2, "{op} counted {n} times");
    }
    assert!(metric(&metrics, "rnfsd_nfs4_operation_errors_total{op=\"SEEK\"}") >= 2);
}

fn xname(n: &str) -> Opaque<{ nfs4::COMPONENT_BYTES_MAX }> {
    Opaque(Bytes::copy_from_slice(n.as_bytes()))
}

fn setx(
    s: &mut Session,
    fh: &nfs4::nfs_fh4,
    how: nfs4::setxattr_option4,
    k: &str,
    v: &[u8],
) -> Result<nfs4::change_info4, nfs4::nfsstat4> {
    let args = nfs4::SETXATTR4args {
        option: how,
        key: xname(k),
        value: Opaque(Bytes::copy_from_slice(v)),
    };
    match on(s, fh, ArgOp::SetXattr(args))?.body {
        Some(ResBody::Cinfo(c)) => Ok(c),
        other => panic!("SETXATTR: {other:?}"),
    }
}

fn getx(s: &mut Session, fh: &nfs4::nfs_fh4, k: &str) -> Result<Vec<u8>, nfs4::nfsstat4> {
    match on(s, fh, ArgOp::GetXattr(xname(k)))?.body {
        Some(ResBody::GetXattr(v)) => Ok(v.as_bytes().to_vec()),
        other => panic!("GETXATTR: {other:?}"),
    }
}

fn listx(
    s: &mut Session,
    fh: &nfs4::nfs_fh4,
    cookie: u64,
    maxcount: u32,
) -> Result<nfs4::LISTXATTRS4resok, nfs4::nfsstat4> {
    let args = nfs4::LISTXATTRS4args { cookie, maxcount };
    match on(s, fh, ArgOp::ListXattrs(args))?.body {
        Some(ResBody::ListXattrs(l)) => Ok(l),
        other => panic!("LISTXATTRS: {other:?}"),
    }
}

fn names(l: &nfs4::LISTXATTRS4resok) -> Vec<String> {
    l.names
        .0
        .iter()
        .map(|n| String::from_utf8(n.as_bytes().to_vec()).unwrap())
        .collect()
}

/// An attribute of `path` set locally (as root), in any namespace.
fn local_set(path: &Path, name: &std::ffi::CStr, value: &[u8]) {
    let f = std::fs::File::open(path).unwrap();
    let fd = std::os::fd::AsFd::as_fd(&f);
    rnfs_sys::xattr::set(fd, name, value, rnfs_sys::xattr::SetMode::Either).unwrap();
}

fn local_get(path: &Path, name: &std::ffi::CStr) -> Option<Vec<u8>> {
    let f = std::fs::File::open(path).unwrap();
    let fd = std::os::fd::AsFd::as_fd(&f);
    let mut buf = vec![0u8; 4096];
    let n = rnfs_sys::xattr::get(fd, name, &mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

#[test]
fn xattrs_set_get_list_remove_within_limits_and_permissions() {
    require_root("files owned by others, trusted. attributes");
    let srv = server();
    let path = srv.export().join("tagged");
    std::fs::write(&path, b"content").unwrap();
    set_mode(&path, 0o644);
    chown(&path, USER, USER);

    let mut s = session(&srv, USER, "xattr-owner");
    let root = export_root(&mut s, srv.export());
    let fh = s.lookup(&root, "tagged").unwrap();

    // The attribute says so, on the export and on the pseudo root.
    let want = Bitmap::from_bits(&[num::XATTR_SUPPORT]);
    let f = s.getattr(&fh, &want).unwrap();
    assert_eq!(
        (f.attrmask, f.attr_vals.as_bytes()),
        (want.clone(), &[0, 0, 0, 1][..])
    );

    // Create, refuse to create twice, replace, read back; the object's change moves.
    assert_eq!(getx(&mut s, &fh, "color"), Err(NFS4ERR_NOXATTR));
    assert_eq!(
        setx(&mut s, &fh, SETXATTR4_REPLACE, "color", b"x"),
        Err(NFS4ERR_NOXATTR)
    );
    let c = setx(&mut s, &fh, SETXATTR4_CREATE, "color", b"blue").unwrap();
    assert!(c.atomic && c.after != c.before, "{c:?}");
    assert_eq!(
        setx(&mut s, &fh, SETXATTR4_CREATE, "color", b"red"),
        Err(NFS4ERR_EXIST)
    );
    setx(&mut s, &fh, SETXATTR4_REPLACE, "color", b"green").unwrap();
    assert_eq!(getx(&mut s, &fh, "color").unwrap(), b"green");
    // On disk it is a user. attribute.
    assert_eq!(local_get(&path, c"user.color").unwrap(), b"green");

    // The value limit: at it accepted, one byte over refused, nothing stored.
    let big = vec![b'v'; VALUE_MAX];
    match setx(&mut s, &fh, SETXATTR4_EITHER, "big", &big) {
        Err(NFS4ERR_XATTR2BIG) | Err(NFS4ERR_NOSPC) => panic!("a value at the limit was refused"),
        r => {
            r.unwrap();
        }
    }
    assert_eq!(getx(&mut s, &fh, "big").unwrap(), big);
    let over = vec![b'w'; VALUE_MAX + 1];
    assert_eq!(
        setx(&mut s, &fh, SETXATTR4_EITHER, "big", &over),
        Err(NFS4ERR_XATTR2BIG)
    );
    assert_eq!(getx(&mut s, &fh, "big").unwrap(), big);
    // One set locally over the limit cannot be read through NFS either.
    local_set(&path, c"user.huge", &over);
    assert_eq!(getx(&mut s, &fh, "huge"), Err(NFS4ERR_XATTR2BIG));
    // (ext4 without ea_inode keeps a file's attributes in one block: make room again.)
    on(&mut s, &fh, ArgOp::RemoveXattr(xname("huge"))).unwrap();

    // Only the user namespace: a client's "trusted.t" is user.trusted.t on disk, the real
    // trusted. attribute stays invisible and untouched.
    local_set(&path, c"trusted.secret", b"root's");
    assert_eq!(getx(&mut s, &fh, "trusted.secret"), Err(NFS4ERR_NOXATTR));
    setx(&mut s, &fh, SETXATTR4_CREATE, "trusted.secret", b"mine").unwrap();
    assert_eq!(local_get(&path, c"user.trusted.secret").unwrap(), b"mine");
    assert_eq!(local_get(&path, c"trusted.secret").unwrap(), b"root's");
    let l = listx(&mut s, &fh, 0, 8192).unwrap();
    let mut all = names(&l);
    all.sort();
    assert_eq!(all, vec!["big", "color", "trusted.secret"]);
    assert!(l.eof && l.cookie == 3);

    // Paging: room for the longest name ("trusted.secret", 20 bytes) or two short ones,
    // continued by cookie until eof; no page is empty.
    let mut seen = Vec::new();
    let mut cookie = 0;
    for _ in 0..4 {
        let l = listx(&mut s, &fh, cookie, 16 + 20).unwrap();
        assert!(!l.names.0.is_empty() && l.cookie > cookie, "{l:?}");
        seen.extend(names(&l));
        cookie = l.cookie;
        if l.eof {
            break;
        }
    }
    seen.sort();
    assert_eq!(seen, all);
    // Too small for even the shortest name (8 bytes).
    assert_eq!(listx(&mut s, &fh, 0, 16 + 7).unwrap_err(), NFS4ERR_TOOSMALL);
    assert_eq!(listx(&mut s, &fh, 0, 10).unwrap_err(), NFS4ERR_TOOSMALL);
    assert_eq!(
        listx(&mut s, &fh, 99, 8192).unwrap_err(),
        NFS4ERR_BAD_COOKIE
    );

    // Permissions are the kernel's, as the caller: the squashed root and another user may read
    // the 0644 file's attributes but not change them; with 0600 not even read them.
    for (uid, who) in [(0, "squashed-root"), (USER + 1, "other")] {
        let mut o = session(&srv, uid, who);
        assert_eq!(getx(&mut o, &fh, "color").unwrap(), b"green");
        assert_eq!(
            setx(&mut o, &fh, SETXATTR4_EITHER, "color", b"mine"),
            Err(NFS4ERR_ACCESS)
        );
        let st = on(&mut o, &fh, ArgOp::RemoveXattr(xname("color"))).unwrap_err();
        assert_eq!(st, NFS4ERR_ACCESS);
    }
    set_mode(&path, 0o600);
    let mut o = session(&srv, USER + 1, "other-again");
    assert_eq!(getx(&mut o, &fh, "color"), Err(NFS4ERR_ACCESS));
    assert_eq!(local_get(&path, c"user.color").unwrap(), b"green");

    // Round trips, for the record (a debug build on loopback: not asserted).
    let rounds = 500;
    let t = std::time::Instant::now();
    for _ in 0..rounds {
        getx(&mut s, &fh, "color").unwrap();
    }
    let get_us = t.elapsed().as_micros() / rounds;
    let t = std::time::Instant::now();
    for i in 0..rounds {
        setx(
            &mut s,
            &fh,
            SETXATTR4_EITHER,
            "counter",
            i.to_string().as_bytes(),
        )
        .unwrap();
    }
    let set_us = t.elapsed().as_micros() / rounds;
    eprintln!("GETXATTR {get_us} µs, SETXATTR {set_us} µs per compound (SEQUENCE, PUTFH, op)");

    // REMOVEXATTR, then it is gone; a second removal finds nothing.
    let c = match on(&mut s, &fh, ArgOp::RemoveXattr(xname("color")))
        .unwrap()
        .body
    {
        Some(ResBody::Cinfo(c)) => c,
        other => panic!("REMOVEXATTR: {other:?}"),
    };
    assert!(c.after != c.before);
    assert_eq!(local_get(&path, c"user.color"), None);
    assert_eq!(
        on(&mut s, &fh, ArgOp::RemoveXattr(xname("color"))).unwrap_err(),
        NFS4ERR_NOXATTR
    );
    // Names the file system cannot take.
    assert_eq!(getx(&mut s, &fh, ""), Err(NFS4ERR_INVAL));
    assert_eq!(
        getx(&mut s, &fh, &"n".repeat(251)),
        Err(NFS4ERR_NAMETOOLONG)
    );

    let metrics = scrape_metrics(srv.state_dir());
    for op in ["GETXATTR", "SETXATTR", "LISTXATTRS", "REMOVEXATTR"] {
        let n = metric(
            &metrics,
            &format!("rnfsd_nfs4_operations_total{{op=\"{op}\"}}"),
        );
        assert!(n >= 2, "{op} counted {n} times");
    }
}

#[test]
fn read_only_exports_refuse_xattr_changes_and_deallocate() {
    let mut srv = TestServer::new();
    std::fs::write(srv.export().join("f"), vec![1u8; 65536]).unwrap();
    srv.set_config(&format!(
        "[[export]]\npath = {:?}\n\n[[export.client]]\nmatch = \"127.0.0.1\"\naccess = \"ro\"\nroot_squash = false\n",
        srv.export()
    ));
    srv.start();
    let mut s = session(&srv, USER, "ro");
    let root = export_root(&mut s, srv.export());
    let fh = s.lookup(&root, "f").unwrap();
    let anon = nfs4::stateid4::ANONYMOUS;
    assert_eq!(
        setx(&mut s, &fh, SETXATTR4_EITHER, "k", b"v"),
        Err(NFS4ERR_ROFS)
    );
    assert_eq!(
        on(&mut s, &fh, ArgOp::RemoveXattr(xname("k"))).unwrap_err(),
        NFS4ERR_ROFS
    );
    assert_eq!(
        on(&mut s, &fh, ArgOp::Deallocate(range(anon, 0, 4096))).unwrap_err(),
        NFS4ERR_ROFS
    );
    assert_eq!(
        on(&mut s, &fh, ArgOp::Allocate(range(anon, 0, 4096))).unwrap_err(),
        NFS4ERR_ROFS
    );
    // Reading is fine.
    assert_eq!(seek(&mut s, &fh, anon, 0, true), Ok((true, 65536)));
    let r = read_plus(&mut s, &fh, anon, 0, 100_000);
    assert!(r.eof && flatten(&r, 0) == vec![1u8; 65536]);
    assert_eq!(listx(&mut s, &fh, 0, 4096).map(|l| l.eof), Ok(true));
}
