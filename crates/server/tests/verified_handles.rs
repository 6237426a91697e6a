//! Client handles are verified by the server, once, before any backend call: a handle with a
//! bad server tag, of another export, of an earlier root or in the retired layout never reaches
//! a backend, and the client gets the answer it always got (BADHANDLE or STALE; XDEV for a
//! second handle of another export). A backend that verifies nothing itself shows it: it counts
//! its calls and panics on any handle it did not issue.

// Test code: panicking on an unexpected error is the point.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use rnfs_nfs3::{self as nfs3, nfsstat3, XdrEncode};
use rnfs_oncrpc::{encode_call, OpaqueAuth};
use rnfs_server::config::{Access, ClientRule, ClientRuleConfig, Limits};
use rnfs_server::{Denied, Origin, Reply, Service, Transport};
use rnfs_server::{Export, ExportTable};
use rnfs_storage::handle::{self, ExportKey, HandleKey, RETIRED_LAYOUT_VERSION, TAG_LEN};
use rnfs_storage::{
    Attr, Backend, DirEntry, DirListing, Error, FileHandle, FileType, FsStat, Identity, PathConf,
    ReadData, Result, Timestamp, VerifiedHandle, Wcc,
};

/// A backend that checks no handle and counts every call given one; a handle it did not seal
/// (byte for byte) makes it panic, which fails the test.
struct Counting {
    id: u32,
    key: ExportKey,
    calls: AtomicU64,
}

impl Counting {
    fn new(server: &HandleKey, id: u32, root: &[u8]) -> Arc<Counting> {
        Arc::new(Counting {
            id,
            key: server.for_export(id, root, b"/fake"),
            calls: AtomicU64::new(0),
        })
    }

    fn seal(&self, body: &[u8]) -> FileHandle {
        handle::seal(&self.key, self.id, body)
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn called(&self, fh: &VerifiedHandle) -> Result<Attr> {
        assert_eq!(
            fh.export_id(),
            self.id,
            "a handle of another export got here"
        );
        let issued = [self.root(), self.seal(b"child")];
        assert!(issued.contains(fh.handle()), "{fh:?} is not one of ours");
        self.calls.fetch_add(1, Ordering::Relaxed);
        Ok(attr())
    }
}

fn attr() -> Attr {
    Attr {
        file_type: FileType::Directory,
        mode: 0o755,
        nlink: 2,
        uid: 0,
        gid: 0,
        size_bytes: 0,
        used_bytes: 0,
        rdev: (0, 0),
        fsid: 1,
        fileid: 1,
        atime: Timestamp::default(),
        mtime: Timestamp::default(),
        ctime: Timestamp::default(),
    }
}

impl Backend for Counting {
    fn root(&self) -> FileHandle {
        self.seal(b"root")
    }
    fn handle_key(&self) -> &ExportKey {
        &self.key
    }
    fn describe(&self) -> String {
        format!("counting:{}", self.id)
    }
    fn getattr(&self, _: &Identity, fh: &VerifiedHandle) -> Result<Attr> {
        self.called(fh)
    }
    fn lookup(&self, _: &Identity, dir: &VerifiedHandle, _: &[u8]) -> Result<(FileHandle, Attr)> {
        Ok((self.seal(b"child"), self.called(dir)?))
    }
    fn access(&self, _: &Identity, fh: &VerifiedHandle, r: u32) -> Result<(u32, Attr)> {
        Ok((r, self.called(fh)?))
    }
    fn readlink(&self, _: &Identity, fh: &VerifiedHandle) -> Result<(Bytes, Attr)> {
        self.called(fh)?;
        Err(Error::Inval)
    }
    fn read(&self, _: &Identity, fh: &VerifiedHandle, _: u64, _: u32) -> Result<ReadData> {
        self.called(fh)?;
        Err(Error::IsDir)
    }
    fn readdir(
        &self,
        _: &Identity,
        dir: &VerifiedHandle,
        _: u64,
        _: [u8; 8],
        _: bool,
        _: &mut dyn FnMut(DirEntry) -> bool,
    ) -> Result<DirListing> {
        Ok(DirListing {
            eof: true,
            verifier: [0; 8],
            dir_attr: self.called(dir)?,
        })
    }
    fn fsstat(&self, _: &Identity, fh: &VerifiedHandle) -> Result<(FsStat, Attr)> {
        self.called(fh)?;
        Err(Error::Io)
    }
    fn pathconf(&self, _: &Identity, fh: &VerifiedHandle) -> Result<(PathConf, Attr)> {
        self.called(fh)?;
        Err(Error::Io)
    }
    fn rename(
        &self,
        _: &Identity,
        from: &VerifiedHandle,
        _: &[u8],
        to: &VerifiedHandle,
        _: &[u8],
    ) -> Result<(Wcc, Wcc)> {
        self.called(from)?;
        self.called(to)?;
        Ok((Wcc::default(), Wcc::default()))
    }
    fn link(
        &self,
        _: &Identity,
        fh: &VerifiedHandle,
        dir: &VerifiedHandle,
        _: &[u8],
    ) -> Result<(Option<Attr>, Wcc)> {
        self.called(fh)?;
        self.called(dir)?;
        Ok((None, Wcc::default()))
    }
}

fn export(backend: Arc<Counting>) -> Arc<Export> {
    let rule = ClientRule::from_config(&ClientRuleConfig {
        matches: "*".into(),
        access: Access::Rw,
        root_squash: true,
        all_squash: false,
        anonuid: 65534,
        anongid: 65534,
        secure: false,
    })
    .unwrap();
    Arc::new(Export {
        id: backend.id,
        mount_path: format!("/e{}", backend.id),
        backend,
        rules: vec![rule],
    })
}

const PEER: &str = "127.0.0.1:700";

/// Sends one NFS call and returns the reply's nfsstat3.
fn call(svc: &Service, proc_num: u32, args: &impl XdrEncode) -> u32 {
    let mut b = BytesMut::new();
    encode_call(
        &mut b,
        7,
        nfs3::NFS_PROGRAM,
        nfs3::NFS_V3,
        proc_num,
        &OpaqueAuth::none(),
    );
    args.encode(&mut b);
    let origin = Origin {
        peer: PEER.parse::<SocketAddr>().unwrap(),
        transport: Transport::Tcp,
        conn_id: 1,
    };
    let mut reply = Reply::new();
    svc.handle_record(b.freeze(), origin, 0, &mut reply);
    // Marker, xid, REPLY, MSG_ACCEPTED, verifier (flavor, length), SUCCESS: then the status.
    let head = &reply.head[Reply::MARKER_BYTES..];
    assert_eq!(&head[8..24], &[0; 16], "an accepted, successful RPC reply");
    u32::from_be_bytes(head[24..28].try_into().unwrap())
}

fn fh3(fh: &FileHandle) -> nfs3::nfs_fh3 {
    nfs3::nfs_fh3::new(fh.to_bytes()).unwrap()
}

fn getattr(svc: &Service, fh: &FileHandle) -> u32 {
    call(
        svc,
        nfs3::NFSPROC3_GETATTR,
        &nfs3::GETATTR3args { object: fh3(fh) },
    )
}

fn dirop(fh: &FileHandle, name: &str) -> nfs3::diropargs3 {
    nfs3::diropargs3 {
        dir: fh3(fh),
        name: nfs3::filename3::new(Bytes::copy_from_slice(name.as_bytes())).unwrap(),
    }
}

fn rename(svc: &Service, from: &FileHandle, to: &FileHandle) -> u32 {
    call(
        svc,
        nfs3::NFSPROC3_RENAME,
        &nfs3::RENAME3args {
            from: dirop(from, "a"),
            to: dirop(to, "b"),
        },
    )
}

fn status(s: nfsstat3) -> u32 {
    s as u32
}

fn with_bytes(fh: &FileHandle, edit: impl FnOnce(&mut Vec<u8>)) -> FileHandle {
    let mut raw = fh.as_bytes().to_vec();
    edit(&mut raw);
    FileHandle::from_wire(raw.into())
}

#[test]
fn unverified_handles_never_reach_the_backend() {
    let server = HandleKey::random().unwrap();
    let (one, two) = (
        Counting::new(&server, 1, b"root-1"),
        Counting::new(&server, 2, b"root-2"),
    );
    let svc = Service::new(
        ExportTable::from_exports(vec![export(one.clone()), export(two.clone())]),
        Limits::default(),
        [0; 8],
    );
    let good = one.root();
    assert_eq!(getattr(&svc, &good), status(nfsstat3::NFS3_OK));
    assert_eq!(one.calls(), 1);

    let bad_server_tag = with_bytes(&good, |r| {
        let n = r.len();
        r[n - 1] ^= 1;
    });
    // Export 1's handle relabelled as export 2's: routed to 2, whose check refuses it.
    let relabelled = with_bytes(&good, |r| r[1..5].copy_from_slice(&2u32.to_be_bytes()));
    // Issued by this server for an earlier root of export 1 (another export key).
    let earlier_root = handle::seal(&server.for_export(1, b"old-root", b"/fake"), 1, b"root");
    let retired = with_bytes(&good, |r| r[0] = RETIRED_LAYOUT_VERSION);
    let unknown_export = handle::seal(&server.for_export(3, b"root-3", b"/fake"), 3, b"root");
    let short = FileHandle::from_wire(good.to_bytes().slice(..TAG_LEN));
    let cases = [
        (
            &bad_server_tag,
            nfsstat3::NFS3ERR_BADHANDLE,
            Denied::BadHandle,
        ),
        (&relabelled, nfsstat3::NFS3ERR_BADHANDLE, Denied::BadHandle),
        (&earlier_root, nfsstat3::NFS3ERR_STALE, Denied::Stale),
        (&retired, nfsstat3::NFS3ERR_STALE, Denied::Stale),
        (&unknown_export, nfsstat3::NFS3ERR_STALE, Denied::Stale),
        (&short, nfsstat3::NFS3ERR_BADHANDLE, Denied::BadHandle),
    ];
    for (i, (fh, want, denied)) in cases.into_iter().enumerate() {
        let before = one.calls();
        assert_eq!(getattr(&svc, fh), status(want), "case {i}: {fh:?}");
        assert_eq!(
            (one.calls(), two.calls()),
            (before, 0),
            "case {i}: not called"
        );
        let call = rnfs_server::Call {
            header: rnfs_oncrpc::CallHeader {
                xid: 1,
                prog: nfs3::NFS_PROGRAM,
                vers: nfs3::NFS_V3,
                proc_num: nfs3::NFSPROC3_GETATTR,
                credential: rnfs_oncrpc::Credential::None,
                verifier: OpaqueAuth::none(),
            },
            args: Bytes::new(),
            peer: PEER.parse().unwrap(),
            transport: Transport::Tcp,
            conn_id: 1,
            now_ms: 0,
        };
        assert_eq!(
            svc.authorize(&call, fh.clone()).err(),
            Some(denied),
            "case {i}"
        );
        // RENAME: as the first handle or (same export) as the second.
        assert_eq!(rename(&svc, fh, &good), status(want), "case {i}, from");
        if handle::export_id(fh.as_bytes()) == Some(1) {
            assert_eq!(rename(&svc, &good, fh), status(want), "case {i}, to");
        }
    }
    // (Failed RENAMEs asked export 1 for the attributes of `good`, a verified handle.)
    assert_eq!(two.calls(), 0, "no bad handle got through");

    // A second handle of another export is XDEV whatever its tags; export 2 is asked for the
    // attributes of its genuine handle only (the forged one does not verify).
    let forged_two = with_bytes(&two.root(), |r| r[6] ^= 1);
    for (to, asked) in [(two.root(), 1), (forged_two, 0)] {
        let before = two.calls();
        assert_eq!(rename(&svc, &good, &to), status(nfsstat3::NFS3ERR_XDEV));
        assert_eq!(two.calls() - before, asked);
    }
    // Both verified: the backend gets the call (both handles).
    let before = one.calls();
    assert_eq!(rename(&svc, &good, &good), status(nfsstat3::NFS3_OK));
    assert_eq!(one.calls() - before, 2);
}

/// NLM TEST of `fh` from [`PEER`]; returns the nlm4_stats of the reply.
fn nlm_test(svc: &Service, fh: &FileHandle) -> u32 {
    use rnfs_nlm::{netobj, nlm4_lock, nlm4_testargs};
    let netobj = |b: &[u8]| netobj::new(Bytes::copy_from_slice(b)).unwrap();
    let args = nlm4_testargs {
        cookie: netobj(b"ck"),
        exclusive: true,
        alock: nlm4_lock {
            caller_name: rnfs_xdr::Opaque::new(Bytes::from_static(b"host")).unwrap(),
            fh: netobj(fh.as_bytes()),
            oh: netobj(b"oh"),
            svid: 1,
            l_offset: 0,
            l_len: 0,
        },
    };
    let mut b = BytesMut::new();
    encode_call(
        &mut b,
        8,
        rnfs_nlm::NLM_PROG,
        rnfs_nlm::NLM4_VERS,
        rnfs_nlm::NLMPROC4_TEST,
        &OpaqueAuth::none(),
    );
    rnfs_xdr::XdrEncode::encode(&args, &mut b);
    let origin = Origin {
        peer: PEER.parse::<SocketAddr>().unwrap(),
        transport: Transport::Tcp,
        conn_id: 1,
    };
    let mut reply = Reply::new();
    svc.handle_record(b.freeze(), origin, 0, &mut reply);
    let head = &reply.head[Reply::MARKER_BYTES..];
    assert_eq!(&head[8..24], &[0; 16], "an accepted, successful RPC reply");
    // The cookie echoed ("ck": length 2, padded to 4), then the status.
    assert_eq!(&head[24..32], &[0, 0, 0, 2, b'c', b'k', 0, 0]);
    u32::from_be_bytes(head[32..36].try_into().unwrap())
}

/// NLM handles are NFS handles: verified the same way, and the export's client rules apply.
#[test]
fn nlm_calls_verify_handles_and_apply_export_rules() {
    use rnfs_nlm::nlm4_stats::*;
    let server = HandleKey::random().unwrap();
    let (open, closed) = (
        Counting::new(&server, 1, b"root-1"),
        Counting::new(&server, 2, b"root-2"),
    );
    let closed_export = Export {
        id: 2,
        mount_path: "/e2".into(),
        backend: closed.clone(),
        rules: vec![ClientRule::from_config(&ClientRuleConfig {
            matches: "10.0.0.0/8".into(),
            access: Access::Rw,
            root_squash: true,
            all_squash: false,
            anonuid: 65534,
            anongid: 65534,
            secure: false,
        })
        .unwrap()],
    };
    let svc = Service::new(
        ExportTable::from_exports(vec![export(open.clone()), Arc::new(closed_export)]),
        Limits::default(),
        [0; 8],
    );
    let good = open.root();
    assert_eq!(nlm_test(&svc, &good), NLM4_GRANTED as u32);
    let forged = with_bytes(&good, |r| {
        let n = r.len();
        r[n - 1] ^= 1;
    });
    assert_eq!(nlm_test(&svc, &forged), NLM4_STALE_FH as u32);
    let unknown = handle::seal(&server.for_export(3, b"root-3", b"/fake"), 3, b"root");
    assert_eq!(nlm_test(&svc, &unknown), NLM4_STALE_FH as u32);
    assert_eq!(nlm_test(&svc, &closed.root()), NLM4_FAILED as u32);
    assert_eq!(
        nlm_test(&svc, &FileHandle::from_wire(Bytes::new())),
        NLM4_STALE_FH as u32
    );
}
