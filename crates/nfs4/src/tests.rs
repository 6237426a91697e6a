//! Round trips of every modelled operation and result, and decoders fed garbage.

use proptest::prelude::*;
use rnfs_xdr::{Array, List};

use crate::attr::{self, SetAttrs4, SetTime4};
use crate::op::*;
use crate::*;

fn opaque<const N: usize>(max: usize) -> impl Strategy<Value = Opaque<N>> {
    proptest::collection::vec(any::<u8>(), 0..=max.min(N)).prop_map(|v| Opaque(v.into()))
}

fn stateid() -> impl Strategy<Value = stateid4> {
    (any::<u32>(), any::<[u8; 12]>()).prop_map(|(seqid, other)| stateid4 { seqid, other })
}

fn bitmap() -> impl Strategy<Value = Bitmap> {
    proptest::collection::vec(any::<u32>(), 0..=3).prop_map(Bitmap)
}

fn fattr() -> impl Strategy<Value = fattr4> {
    (bitmap(), opaque::<ATTRLIST_BYTES_MAX>(40)).prop_map(|(attrmask, attr_vals)| fattr4 {
        attrmask,
        attr_vals,
    })
}

fn owner() -> impl Strategy<Value = state_owner4> {
    (any::<u64>(), opaque::<NFS4_OPAQUE_LIMIT>(20))
        .prop_map(|(clientid, owner)| state_owner4 { clientid, owner })
}

fn lock_type() -> impl Strategy<Value = nfs_lock_type4> {
    prop::sample::select(nfs_lock_type4::ALL.to_vec())
}

fn name() -> impl Strategy<Value = component4> {
    opaque::<COMPONENT_BYTES_MAX>(30)
}

fn simple_op() -> impl Strategy<Value = ArgOp> {
    prop_oneof![
        any::<u32>().prop_map(ArgOp::Access),
        (any::<u32>(), stateid()).prop_map(|(seqid, open_stateid)| ArgOp::Close(CLOSE4args {
            seqid,
            open_stateid
        })),
        (any::<u64>(), any::<u32>())
            .prop_map(|(offset, count)| ArgOp::Commit(COMMIT4args { offset, count })),
        bitmap().prop_map(ArgOp::GetAttr),
        Just(ArgOp::GetFh),
        name().prop_map(ArgOp::Link),
        name().prop_map(ArgOp::Lookup),
        Just(ArgOp::LookupP),
        fattr().prop_map(ArgOp::NVerify),
        fattr().prop_map(ArgOp::Verify),
        opaque::<NFS4_FHSIZE>(128).prop_map(ArgOp::PutFh),
        Just(ArgOp::PutRootFh),
        Just(ArgOp::PutPubFh),
        (stateid(), any::<u64>(), any::<u32>()).prop_map(|(stateid, offset, count)| {
            ArgOp::Read(READ4args {
                stateid,
                offset,
                count,
            })
        }),
        (
            any::<u64>(),
            any::<[u8; 8]>(),
            any::<u32>(),
            any::<u32>(),
            bitmap()
        )
            .prop_map(|(cookie, cookieverf, dircount, maxcount, attr_request)| {
                ArgOp::ReadDir(READDIR4args {
                    cookie,
                    cookieverf,
                    dircount,
                    maxcount,
                    attr_request,
                })
            }),
        Just(ArgOp::ReadLink),
        name().prop_map(ArgOp::Remove),
        (name(), name())
            .prop_map(|(oldname, newname)| ArgOp::Rename(RENAME4args { oldname, newname })),
        Just(ArgOp::SaveFh),
        Just(ArgOp::RestoreFh),
        name().prop_map(ArgOp::SecInfo),
        (stateid(), fattr()).prop_map(|(stateid, obj_attributes)| ArgOp::SetAttr(SETATTR4args {
            stateid,
            obj_attributes
        })),
        (stateid(), any::<u64>(), opaque::<WRITE_BYTES_MAX>(64)).prop_map(
            |(stateid, offset, data)| ArgOp::Write(WRITE4args {
                stateid,
                offset,
                stable: stable_how4::FILE_SYNC4,
                data
            })
        ),
    ]
}

fn session_op() -> impl Strategy<Value = ArgOp> {
    prop_oneof![
        (
            any::<[u8; 8]>(),
            opaque::<NFS4_OPAQUE_LIMIT>(40),
            any::<u32>()
        )
            .prop_map(|(co_verifier, co_ownerid, eia_flags)| ArgOp::ExchangeId(
                EXCHANGE_ID4args {
                    eia_clientowner: client_owner4 {
                        co_verifier,
                        co_ownerid
                    },
                    eia_flags,
                    eia_state_protect: state_protect4_a::None,
                    eia_client_impl_id: Array(vec![]),
                }
            )),
        (any::<u64>(), any::<u32>(), any::<u32>()).prop_map(|(clientid, seq, ops)| {
            let attrs = channel_attrs4 {
                ca_maxoperations: ops,
                ..Default::default()
            };
            ArgOp::CreateSession(CREATE_SESSION4args {
                csa_clientid: clientid,
                csa_sequence: seq,
                csa_flags: 0,
                csa_fore_chan_attrs: attrs.clone(),
                csa_back_chan_attrs: attrs,
                csa_cb_program: 0x4000_0000,
                csa_sec_parms: Array(vec![
                    callback_sec_parms4::None,
                    callback_sec_parms4::Sys(authsys_parms::default()),
                ]),
            })
        }),
        (any::<[u8; 16]>(), any::<u32>(), any::<u32>(), any::<bool>()).prop_map(
            |(sid, seq, slot, cache)| ArgOp::Sequence(SEQUENCE4args {
                sa_sessionid: sid,
                sa_sequenceid: seq,
                sa_slotid: slot,
                sa_highest_slotid: slot,
                sa_cachethis: cache,
            })
        ),
        any::<[u8; 16]>().prop_map(ArgOp::DestroySession),
        any::<u64>().prop_map(ArgOp::DestroyClientid),
        any::<bool>().prop_map(ArgOp::ReclaimComplete),
        stateid().prop_map(ArgOp::FreeStateid),
        proptest::collection::vec(stateid(), 0..4).prop_map(|v| ArgOp::TestStateid(Array(v))),
        (0u32..2).prop_map(ArgOp::SecInfoNoName),
    ]
}

fn state_op() -> impl Strategy<Value = ArgOp> {
    let claim = prop_oneof![
        name().prop_map(open_claim4::Null),
        Just(open_claim4::Fh),
        Just(open_claim4::Previous(
            open_delegation_type4::OPEN_DELEGATE_NONE
        )),
        (stateid(), name()).prop_map(|(s, n)| open_claim4::DelegateCur(s, n)),
    ];
    let how = prop_oneof![
        Just(OpenHow(None)),
        fattr().prop_map(|a| OpenHow(Some(createhow4::Unchecked(a)))),
        fattr().prop_map(|a| OpenHow(Some(createhow4::Guarded(a)))),
        any::<[u8; 8]>().prop_map(|v| OpenHow(Some(createhow4::Exclusive(v)))),
        (any::<[u8; 8]>(), fattr()).prop_map(|(v, a)| OpenHow(Some(createhow4::Exclusive41(v, a)))),
    ];
    let locker = prop_oneof![
        (any::<u32>(), stateid(), any::<u32>(), owner()).prop_map(|(a, s, b, o)| locker4::New(
            open_to_lock_owner4 {
                open_seqid: a,
                open_stateid: s,
                lock_seqid: b,
                lock_owner: o
            }
        )),
        (stateid(), any::<u32>()).prop_map(|(s, q)| locker4::Existing(exist_lock_owner4 {
            lock_stateid: s,
            lock_seqid: q
        })),
    ];
    prop_oneof![
        (any::<u32>(), 0u32..4, 0u32..4, owner(), how, claim).prop_map(
            |(seqid, share_access, share_deny, owner, openhow, claim)| ArgOp::Open(OPEN4args {
                seqid,
                share_access,
                share_deny,
                owner,
                openhow,
                claim
            })
        ),
        (
            lock_type(),
            any::<bool>(),
            any::<u64>(),
            any::<u64>(),
            locker
        )
            .prop_map(|(locktype, reclaim, offset, length, locker)| ArgOp::Lock(
                LOCK4args {
                    locktype,
                    reclaim,
                    offset,
                    length,
                    locker
                }
            )),
        (lock_type(), any::<u64>(), any::<u64>(), owner()).prop_map(
            |(locktype, offset, length, owner)| ArgOp::LockT(LOCKT4args {
                locktype,
                offset,
                length,
                owner
            })
        ),
        (
            lock_type(),
            any::<u32>(),
            stateid(),
            any::<u64>(),
            any::<u64>()
        )
            .prop_map(
                |(locktype, seqid, lock_stateid, offset, length)| ArgOp::LockU(LOCKU4args {
                    locktype,
                    seqid,
                    lock_stateid,
                    offset,
                    length
                })
            ),
        (stateid(), any::<u32>(), 0u32..4, 0u32..4).prop_map(|(s, q, a, d)| {
            ArgOp::OpenDowngrade(OPEN_DOWNGRADE4args {
                open_stateid: s,
                seqid: q,
                share_access: a,
                share_deny: d,
            })
        }),
        (name(), fattr(), opaque::<LINKTEXT_BYTES_MAX>(20)).prop_map(|(n, a, l)| {
            ArgOp::Create(CREATE4args {
                objtype: createtype4::Link(l),
                objname: n,
                createattrs: a,
            })
        }),
        (name(), fattr()).prop_map(|(n, a)| ArgOp::Create(CREATE4args {
            objtype: createtype4::Dir,
            objname: n,
            createattrs: a
        })),
    ]
}

/// NFSv4.2's sparse-file and xattr operations (RFC 7862, RFC 8276).
fn v42_op() -> impl Strategy<Value = ArgOp> {
    let range = || {
        (stateid(), any::<u64>(), any::<u64>()).prop_map(|(stateid, offset, length)| {
            ALLOCATE4args {
                stateid,
                offset,
                length,
            }
        })
    };
    let what = prop::sample::select(data_content4::ALL.to_vec());
    let option = prop::sample::select(setxattr_option4::ALL.to_vec());
    prop_oneof![
        range().prop_map(ArgOp::Allocate),
        range().prop_map(ArgOp::Deallocate),
        (stateid(), any::<u64>(), any::<u32>()).prop_map(|(stateid, offset, count)| {
            ArgOp::ReadPlus(READ_PLUS4args {
                stateid,
                offset,
                count,
            })
        }),
        (stateid(), any::<u64>(), what).prop_map(|(stateid, offset, what)| ArgOp::Seek(
            SEEK4args {
                stateid,
                offset,
                what
            }
        )),
        name().prop_map(ArgOp::GetXattr),
        name().prop_map(ArgOp::RemoveXattr),
        (option, name(), opaque::<XATTR_VALUE_BYTES_MAX>(300)).prop_map(|(option, key, value)| {
            ArgOp::SetXattr(SETXATTR4args { option, key, value })
        }),
        (any::<u64>(), any::<u32>())
            .prop_map(|(cookie, maxcount)| ArgOp::ListXattrs(LISTXATTRS4args { cookie, maxcount })),
    ]
}

fn any_op() -> impl Strategy<Value = ArgOp> {
    prop_oneof![simple_op(), session_op(), state_op(), v42_op()]
}

fn segment() -> impl Strategy<Value = read_plus_content> {
    prop_oneof![
        (any::<u64>(), opaque::<WRITE_BYTES_MAX>(40))
            .prop_map(|(offset, data)| read_plus_content::Data(data4 { offset, data })),
        (any::<u64>(), any::<u64>())
            .prop_map(|(offset, length)| read_plus_content::Hole(data_info4 { offset, length })),
    ]
}

fn v42_res() -> impl Strategy<Value = ResOp> {
    prop_oneof![
        (any::<bool>(), any::<u64>())
            .prop_map(|(eof, offset)| ResOp::ok(OP_SEEK, ResBody::Seek(seek_res4 { eof, offset }))),
        (any::<bool>(), proptest::collection::vec(segment(), 0..4)).prop_map(|(eof, c)| ResOp::ok(
            OP_READ_PLUS,
            ResBody::ReadPlus(read_plus_res4 {
                eof,
                contents: Array(c)
            })
        )),
        opaque::<XATTR_VALUE_BYTES_MAX>(100)
            .prop_map(|v| ResOp::ok(OP_GETXATTR, ResBody::GetXattr(v))),
        (
            any::<u64>(),
            proptest::collection::vec(name(), 0..4),
            any::<bool>()
        )
            .prop_map(|(cookie, names, eof)| ResOp::ok(
                OP_LISTXATTRS,
                ResBody::ListXattrs(LISTXATTRS4resok {
                    cookie,
                    names: Array(names),
                    eof
                })
            )),
        (any::<bool>(), any::<u64>(), any::<u64>()).prop_map(|(atomic, before, after)| ResOp::ok(
            OP_SETXATTR,
            ResBody::Cinfo(change_info4 {
                atomic,
                before,
                after
            })
        )),
        Just(ResOp::status(OP_ALLOCATE, nfsstat4::NFS4_OK)),
        Just(ResOp::status(OP_DEALLOCATE, nfsstat4::NFS4ERR_NOSPC)),
        Just(ResOp::status(OP_GETXATTR, nfsstat4::NFS4ERR_NOXATTR)),
        Just(ResOp::status(OP_SETXATTR, nfsstat4::NFS4ERR_XATTR2BIG)),
        Just(ResOp::status(OP_SEEK, nfsstat4::NFS4ERR_NXIO)),
    ]
}

fn any_res() -> impl Strategy<Value = ResOp> {
    prop_oneof![
        v42_res(),
        (any::<u32>(), any::<u32>()).prop_map(|(s, a)| ResOp::ok(
            OP_ACCESS,
            ResBody::Access(ACCESS4resok {
                supported: s,
                access: a
            })
        )),
        stateid().prop_map(|s| ResOp::ok(OP_CLOSE, ResBody::Stateid(s))),
        fattr().prop_map(|f| ResOp::ok(OP_GETATTR, ResBody::GetAttr(f))),
        opaque::<NFS4_FHSIZE>(64).prop_map(|f| ResOp::ok(OP_GETFH, ResBody::GetFh(f))),
        owner().prop_map(|o| ResOp {
            op: OP_LOCK,
            status: nfsstat4::NFS4ERR_DENIED,
            body: Some(ResBody::Denied(LOCK4denied {
                offset: 1,
                length: 2,
                locktype: nfs_lock_type4::WRITE_LT,
                owner: o
            }))
        }),
        bitmap().prop_map(|b| ResOp {
            op: OP_SETATTR,
            status: nfsstat4::NFS4ERR_PERM,
            body: Some(ResBody::SetAttr(b))
        }),
        (
            proptest::collection::vec((any::<u64>(), name(), fattr()), 0..4),
            any::<bool>()
        )
            .prop_map(|(es, eof)| ResOp::ok(
                OP_READDIR,
                ResBody::ReadDir(READDIR4resok {
                    cookieverf: [1; 8],
                    entries: List(
                        es.into_iter()
                            .map(|(cookie, name, attrs)| entry4 {
                                cookie,
                                name,
                                attrs
                            })
                            .collect()
                    ),
                    eof
                })
            )),
        (any::<bool>(), opaque::<WRITE_BYTES_MAX>(40))
            .prop_map(|(eof, data)| ResOp::ok(OP_READ, ResBody::Read(READ4resok { eof, data }))),
        (stateid(), stateid(), 0..6u32, any::<bool>(), any::<u64>()).prop_map(
            |(s, d, kind, recall, filesize)| ResOp::ok(
                OP_OPEN,
                ResBody::Open(OPEN4resok {
                    stateid: s,
                    cinfo: change_info4::default(),
                    rflags: OPEN4_RESULT_LOCKTYPE_POSIX,
                    attrset: Bitmap::default(),
                    delegation: match kind {
                        0 => open_delegation4::None,
                        1 => open_delegation4::Read { stateid: d, recall },
                        2 => open_delegation4::Write {
                            stateid: d,
                            recall,
                            filesize
                        },
                        k => open_delegation4::NoneExt(k - 3),
                    },
                })
            )
        ),
        Just(ResOp::status(OP_PUTFH, nfsstat4::NFS4_OK)),
        Just(ResOp::status(OP_ILLEGAL, nfsstat4::NFS4ERR_OP_ILLEGAL)),
        Just(ResOp::ok(
            OP_SECINFO_NO_NAME,
            ResBody::SecInfo(Array(vec![
                secinfo4::Flavor(AUTH_SYS),
                secinfo4::Flavor(AUTH_NONE)
            ]))
        )),
        Just(ResOp::ok(
            OP_TEST_STATEID,
            ResBody::TestStateid(Array(vec![
                nfsstat4::NFS4_OK,
                nfsstat4::NFS4ERR_BAD_STATEID
            ]))
        )),
    ]
}

proptest! {
    #[test]
    fn compound_round_trip(ops in proptest::collection::vec(any_op(), 0..6)) {
        let c = Compound { tag: Opaque(Bytes::from_static(b"t")), minorversion: 1, ops };
        let bytes = rnfs_xdr::to_bytes(&c);
        prop_assert_eq!(bytes.len(), c.encoded_len());
        let mut d = Decoder::new(bytes);
        let h = CompoundHeader::decode(&mut d).unwrap();
        prop_assert_eq!(h.op_count as usize, c.ops.len());
        for op in &c.ops {
            prop_assert_eq!(&ArgOp::decode(&mut d).unwrap(), op);
        }
        prop_assert_eq!(d.remaining(), 0);
    }

    #[test]
    fn results_round_trip(results in proptest::collection::vec(any_res(), 0..6)) {
        let r = CompoundRes { status: nfsstat4::NFS4_OK, tag: Opaque(Bytes::new()), results };
        let bytes = rnfs_xdr::to_bytes(&r);
        prop_assert_eq!(bytes.len(), r.encoded_len());
        prop_assert_eq!(rnfs_xdr::from_bytes::<CompoundRes>(bytes).unwrap(), r);
    }

    #[test]
    fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut d = Decoder::new(Bytes::from(data.clone()));
        if CompoundHeader::decode(&mut d).is_ok() {
            for _ in 0..8 {
                if ArgOp::decode(&mut d).is_err() { break; }
            }
        }
        let _ = rnfs_xdr::from_bytes::<CompoundRes>(Bytes::from(data));
    }

    #[test]
    fn settable_round_trip(size in any::<Option<u64>>(), mode in any::<Option<u32>>(),
                           t in any::<Option<(i64, u32)>>(), server in any::<bool>()) {
        let s = SetAttrs4 {
            size,
            mode,
            owner: Some(Bytes::from_static(b"1000")),
            owner_group: None,
            atime: if server { Some(SetTime4::ServerTime) } else { None },
            mtime: t.map(|(seconds, nseconds)| SetTime4::ClientTime(nfstime4 { seconds, nseconds })),
            mask: Bitmap::default(),
        };
        let f = attr::encode_settable(&s);
        let back = attr::decode_settable(&f).unwrap();
        prop_assert_eq!(back.mask.clone(), f.attrmask.clone());
        prop_assert_eq!(SetAttrs4 { mask: Bitmap::default(), ..back }, s);
    }
}

#[test]
fn unknown_and_unsupported_ops() {
    let mut d = Decoder::new(Bytes::from_static(&[0, 0, 0, 50, 0xff, 0xff]));
    assert_eq!(ArgOp::decode(&mut d).unwrap(), ArgOp::Unsupported(50));
    // COPY_NOTIFY (4.2, not modelled: inter-server copy).
    let mut d = Decoder::new(Bytes::from_static(&[0, 0, 0, 61, 0xff, 0xff]));
    assert_eq!(ArgOp::decode(&mut d).unwrap(), ArgOp::Unsupported(61));
    let mut d = Decoder::new(Bytes::from_static(&[0, 0, 0, 2]));
    assert_eq!(ArgOp::decode(&mut d).unwrap(), ArgOp::Illegal(2));
    assert_eq!(ArgOp::Illegal(2).num(), OP_ILLEGAL);
    assert_eq!(op_name(OP_SEQUENCE), "SEQUENCE");
    assert_eq!(op_name(9999), "ILLEGAL");
}

#[test]
fn v42_ops_decode_as_rfc_7863_lays_them_out() {
    // SEEK: stateid (16), offset 5, NFS4_CONTENT_HOLE.
    let mut wire = vec![0, 0, 0, 69];
    wire.extend_from_slice(&[0; 16]);
    wire.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 1]);
    let op = ArgOp::decode(&mut Decoder::new(Bytes::from(wire))).unwrap();
    assert_eq!(
        op,
        ArgOp::Seek(SEEK4args {
            stateid: stateid4::ANONYMOUS,
            offset: 5,
            what: data_content4::NFS4_CONTENT_HOLE
        })
    );
    // SETXATTR with an unknown option is malformed.
    let wire = [
        0, 0, 0, 73, 0, 0, 0, 3, 0, 0, 0, 1, b'a', 0, 0, 0, 0, 0, 0, 0,
    ];
    assert!(ArgOp::decode(&mut Decoder::new(Bytes::copy_from_slice(&wire))).is_err());
    // A READ_PLUS segment of an unknown content type is malformed.
    let wire = [0, 0, 0, 68, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2];
    assert!(ResOp::decode(&mut Decoder::new(Bytes::copy_from_slice(&wire))).is_err());
    assert_eq!(op_name(OP_LISTXATTRS), "LISTXATTRS");
    assert_eq!(op_name(OP_READ_PLUS), "READ_PLUS");
    assert_eq!(LISTXATTRS4resok::name_bytes(b"abcde"), 12);
}

#[test]
fn huge_counts_refused_before_reading() {
    // SETXATTR's value claiming 2^31 bytes, and a name over 255 bytes.
    let mut d = Decoder::new(Bytes::from_static(&[
        0, 0, 0, 73, 0, 0, 0, 0, 0, 0, 0, 1, b'a', 0, 0, 0, 0x80, 0, 0, 0,
    ]));
    assert!(ArgOp::decode(&mut d).is_err());
    let mut d = Decoder::new(Bytes::from_static(&[0, 0, 0, 72, 0, 0, 1, 0]));
    assert!(ArgOp::decode(&mut d).is_err());
    // A LISTXATTRS reply claiming 2^30 names.
    let mut d = Decoder::new(Bytes::from_static(&[
        0, 0, 0, 74, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0,
    ]));
    assert!(ResOp::decode(&mut d).is_err());
    // A bitmap claiming 2^30 words.
    let mut d = Decoder::new(Bytes::from_static(&[0, 0, 0, 9, 0x40, 0, 0, 0]));
    assert!(ArgOp::decode(&mut d).is_err());
    // TEST_STATEID with 2^31 stateids.
    let mut d = Decoder::new(Bytes::from_static(&[0, 0, 0, 55, 0x80, 0, 0, 0]));
    assert!(ArgOp::decode(&mut d).is_err());
}

#[test]
fn settable_refuses_read_only_and_unknown() {
    use attr::num::*;
    let f = fattr4 {
        attrmask: Bitmap::from_bits(&[TYPE]),
        attr_vals: Opaque(Bytes::from_static(&[0, 0, 0, 1])),
    };
    assert_eq!(attr::decode_settable(&f), Err(nfsstat4::NFS4ERR_INVAL));
    let f = fattr4 {
        attrmask: Bitmap::from_bits(&[ACL]),
        attr_vals: Opaque(Bytes::new()),
    };
    assert_eq!(
        attr::decode_settable(&f),
        Err(nfsstat4::NFS4ERR_ATTRNOTSUPP)
    );
    // Trailing bytes after the values.
    let f = fattr4 {
        attrmask: Bitmap::from_bits(&[MODE]),
        attr_vals: Opaque(Bytes::from_static(&[0, 0, 1, 0xa4, 0, 0, 0, 0])),
    };
    assert_eq!(attr::decode_settable(&f), Err(nfsstat4::NFS4ERR_BADXDR));
}

#[test]
fn attributes_encode_in_order_and_verify() {
    use attr::num::*;
    let v = attr::AttrValues {
        file_type: nfs_ftype4::NF4REG,
        change: 7,
        size: 42,
        fsid: (1, 2),
        lease_time_s: 90,
        rdattr_error: nfsstat4::NFS4_OK,
        filehandle: b"fh",
        fileid: 99,
        fs: None,
        maxfilesize: u64::MAX,
        maxlink: 1000,
        maxname: 255,
        maxread: 1 << 20,
        maxwrite: 1 << 20,
        mode: 0o100644,
        numlinks: 1,
        owner: b"1000",
        owner_group: b"1000",
        rawdev: specdata4::default(),
        space_used: 4096,
        time_access: nfstime4::default(),
        time_metadata: nfstime4::default(),
        time_modify: nfstime4::default(),
        mounted_on_fileid: 99,
        xattr_support: true,
    };
    let req = Bitmap::from_bits(&[SIZE, TYPE, SPACE_FREE, MODE, TIME_ACCESS_SET]);
    let f = attr::encode(&v, &req);
    // The totals were not read and set-only attributes are never reported.
    assert_eq!(f.attrmask, Bitmap::from_bits(&[TYPE, SIZE, MODE]));
    assert_eq!(
        &f.attr_vals.0[..],
        &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 42, 0, 0, 1, 0xa4]
    );
    assert_eq!(attr::same(&v, &f), Ok(true));
    let other = attr::encode(
        &attr::AttrValues {
            size: 43,
            ..v.clone()
        },
        &f.attrmask,
    );
    assert_eq!(attr::same(&v, &other), Ok(false));
    let set_only = fattr4 {
        attrmask: Bitmap::from_bits(&[TIME_ACCESS_SET]),
        attr_vals: Opaque(Bytes::new()),
    };
    assert_eq!(attr::same(&v, &set_only), Err(nfsstat4::NFS4ERR_INVAL));
}

#[test]
fn change_and_size_read_from_a_callback_answer() {
    use crate::attr::{change_and_size, num};
    let f = |bits: &[u32], vals: &[u8]| fattr4 {
        attrmask: Bitmap::from_bits(bits),
        attr_vals: Opaque(bytes::Bytes::copy_from_slice(vals)),
    };
    let both = [0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 1, 0];
    assert_eq!(
        change_and_size(&f(&[num::CHANGE, num::SIZE], &both)),
        Some((Some(9), Some(256)))
    );
    assert_eq!(
        change_and_size(&f(&[num::SIZE], &both[8..])),
        Some((None, Some(256)))
    );
    assert_eq!(change_and_size(&f(&[], &[])), Some((None, None)));
    // Attributes after SIZE are left alone; unknown ones before, or short values, are refused.
    assert_eq!(
        change_and_size(&f(&[num::CHANGE, num::TIME_MODIFY], &both)),
        Some((Some(9), None))
    );
    assert_eq!(change_and_size(&f(&[num::TYPE, num::SIZE], &both)), None);
    assert_eq!(
        change_and_size(&f(&[num::CHANGE, num::SIZE], &both[..12])),
        None
    );
}

#[test]
fn open_arguments_is_reported_and_supported() {
    use crate::attr::{num, open_arguments, supported};
    assert!(supported().contains(num::OPEN_ARGUMENTS));
    let args = open_arguments();
    assert!(args[0].contains(3) && args[2].contains(3) && args[3].contains(4));
    assert!(
        !args[2].contains(20),
        "delegated timestamps are not offered"
    );
    let back: Bitmap = rnfs_xdr::from_bytes(rnfs_xdr::to_bytes(&args[0])).unwrap();
    assert_eq!(back, args[0]);
}

#[test]
fn copy_decodes_as_rfc_7863_lays_it_out() {
    // COPY: two stateids, offsets 1 and 2, count 3, consecutive, synchronous, one NL4_NAME "h".
    let mut wire = vec![0, 0, 0, 60];
    wire.extend_from_slice(&[0; 32]);
    for v in [1u64, 2, 3] {
        wire.extend_from_slice(&v.to_be_bytes());
    }
    wire.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1]);
    wire.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, b'h', 0, 0, 0]);
    let op = ArgOp::decode(&mut Decoder::new(Bytes::from(wire.clone()))).unwrap();
    let ArgOp::Copy(a) = &op else {
        panic!("not COPY: {op:?}")
    };
    assert_eq!((a.ca_src_offset, a.ca_dst_offset, a.ca_count), (1, 2, 3));
    assert!(a.ca_consecutive && a.ca_synchronous);
    assert_eq!(a.ca_source_server.0.len(), 1);
    assert_eq!(rnfs_xdr::to_bytes(&op).to_vec(), wire);
    // A result with a callback id decodes back.
    let res = ResOp::ok(
        OP_COPY,
        ResBody::Copy(COPY4resok {
            cr_response: write_response4 {
                wr_callback_id: rnfs_xdr::Array(vec![stateid4::INVALID]),
                wr_count: 7,
                wr_committed: stable_how4::UNSTABLE4,
                wr_writeverf: [9; 8],
            },
            cr_requirements: copy_requirements4::default(),
        }),
    );
    let bytes = rnfs_xdr::to_bytes(&res);
    assert_eq!(ResOp::decode(&mut Decoder::new(bytes)).unwrap(), res);
}

#[test]
fn cb_offload_round_trips() {
    use crate::cb::*;
    for info in [
        offload_info4::Done(write_response4 {
            wr_callback_id: rnfs_xdr::Array(Vec::new()),
            wr_count: 1 << 30,
            wr_committed: stable_how4::FILE_SYNC4,
            wr_writeverf: [1; 8],
        }),
        offload_info4::Failed(nfsstat4::NFS4ERR_NOSPC, 4096),
    ] {
        let op = CbArgOp::Offload(CB_OFFLOAD4args {
            coa_fh: Opaque(Bytes::from_static(b"fh")),
            coa_stateid: stateid4::INVALID,
            coa_offload_info: info,
        });
        let bytes = rnfs_xdr::to_bytes(&op);
        assert_eq!(bytes.len(), op.encoded_len());
        assert_eq!(rnfs_xdr::from_bytes::<CbArgOp>(bytes).unwrap(), op);
    }
}
