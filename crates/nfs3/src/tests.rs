use super::*;
use proptest::prelude::*;
use rnfs_xdr::{from_bytes, to_bytes, Error};

// ---- strategies ----------------------------------------------------------------------------

fn opaque<const N: usize>(max_len: usize) -> impl Strategy<Value = Opaque<N>> {
    proptest::collection::vec(any::<u8>(), 0..=max_len.min(N)).prop_map(|v| Opaque(v.into()))
}

fn fh() -> impl Strategy<Value = nfs_fh3> {
    opaque(NFS3_FHSIZE).prop_map(|data| nfs_fh3 { data })
}

fn name() -> impl Strategy<Value = filename3> {
    opaque(20)
}

fn time() -> impl Strategy<Value = nfstime3> {
    any::<(u32, u32)>().prop_map(|(seconds, nseconds)| nfstime3 { seconds, nseconds })
}

fn ftype() -> impl Strategy<Value = ftype3> {
    proptest::sample::select(ftype3::ALL)
}

fn err() -> impl Strategy<Value = nfsstat3> {
    proptest::sample::select(nfsstat3::ALL).prop_filter("failure", |s| *s != nfsstat3::NFS3_OK)
}

fn stable() -> impl Strategy<Value = stable_how> {
    proptest::sample::select(stable_how::ALL)
}

fn spec() -> impl Strategy<Value = specdata3> {
    any::<(u32, u32)>().prop_map(|(specdata1, specdata2)| specdata3 {
        specdata1,
        specdata2,
    })
}

fn fattr() -> impl Strategy<Value = fattr3> {
    (
        (ftype(), any::<[u32; 4]>(), any::<[u64; 4]>(), spec()),
        (time(), time(), time()),
    )
        .prop_map(
            |(
                (r#type, [mode, nlink, uid, gid], [size, used, fsid, fileid], rdev),
                (atime, mtime, ctime),
            )| {
                fattr3 {
                    r#type,
                    mode,
                    nlink,
                    uid,
                    gid,
                    size,
                    used,
                    rdev,
                    fsid,
                    fileid,
                    atime,
                    mtime,
                    ctime,
                }
            },
        )
}

fn post_attr() -> impl Strategy<Value = post_op_attr> {
    proptest::option::of(fattr())
}

fn wcc() -> impl Strategy<Value = wcc_data> {
    let wa = (any::<u64>(), time(), time()).prop_map(|(size, mtime, ctime)| wcc_attr {
        size,
        mtime,
        ctime,
    });
    (proptest::option::of(wa), post_attr()).prop_map(|(before, after)| wcc_data { before, after })
}

fn set_time_s() -> impl Strategy<Value = (u8, nfstime3)> {
    (0u8..3, time())
}

fn sattr() -> impl Strategy<Value = sattr3> {
    (
        any::<Option<u32>>(),
        any::<Option<u32>>(),
        any::<Option<u32>>(),
        any::<Option<u64>>(),
        set_time_s(),
        set_time_s(),
    )
        .prop_map(|(mode, uid, gid, size, (a, at), (m, mt))| sattr3 {
            mode,
            uid,
            gid,
            size,
            atime: match a {
                0 => set_atime::DontChange,
                1 => set_atime::SetToServerTime,
                _ => set_atime::SetToClientTime(at),
            },
            mtime: match m {
                0 => set_mtime::DontChange,
                1 => set_mtime::SetToServerTime,
                _ => set_mtime::SetToClientTime(mt),
            },
        })
}

fn dirop() -> impl Strategy<Value = diropargs3> {
    (fh(), name()).prop_map(|(dir, name)| diropargs3 { dir, name })
}

fn createhow() -> impl Strategy<Value = createhow3> {
    prop_oneof![
        sattr().prop_map(createhow3::Unchecked),
        sattr().prop_map(createhow3::Guarded),
        any::<[u8; 8]>().prop_map(createhow3::Exclusive),
    ]
}

fn mknoddata() -> impl Strategy<Value = mknoddata3> {
    fn dev() -> impl Strategy<Value = devicedata3> {
        (sattr(), spec()).prop_map(|(dev_attributes, spec)| devicedata3 {
            dev_attributes,
            spec,
        })
    }
    prop_oneof![
        dev().prop_map(mknoddata3::Chr),
        dev().prop_map(mknoddata3::Blk),
        sattr().prop_map(mknoddata3::Sock),
        sattr().prop_map(mknoddata3::Fifo),
        Just(mknoddata3::Reg),
        Just(mknoddata3::Dir),
        Just(mknoddata3::Lnk),
    ]
}

fn diropres() -> impl Strategy<Value = (post_op_fh3, post_op_attr, wcc_data)> {
    (proptest::option::of(fh()), post_attr(), wcc())
}

/// `Ok` or `Fail` of result enum `$res` from strategies for its two bodies.
macro_rules! res {
    ($res:ident, $ok:expr, $fail:expr) => {
        prop_oneof![
            $ok.prop_map($res::Ok),
            (err(), $fail).prop_map(|(s, f)| $res::Fail(s, f)),
        ]
    };
}

fn entry() -> impl Strategy<Value = entry3> {
    (any::<u64>(), name(), any::<u64>()).prop_map(|(fileid, name, cookie)| entry3 {
        fileid,
        name,
        cookie,
    })
}

fn entryplus() -> impl Strategy<Value = entryplus3> {
    (entry(), post_attr(), proptest::option::of(fh())).prop_map(
        |(e, name_attributes, name_handle)| entryplus3 {
            fileid: e.fileid,
            name: e.name,
            cookie: e.cookie,
            name_attributes,
            name_handle,
        },
    )
}

fn args_s() -> impl Strategy<Value = Args> {
    prop_oneof![
        Just(Args::Null),
        fh().prop_map(|object| Args::Getattr(GETATTR3args { object })),
        (fh(), sattr(), proptest::option::of(time())).prop_map(
            |(object, new_attributes, guard)| {
                Args::Setattr(SETATTR3args {
                    object,
                    new_attributes,
                    guard,
                })
            }
        ),
        dirop().prop_map(|what| Args::Lookup(LOOKUP3args { what })),
        (fh(), any::<u32>())
            .prop_map(|(object, access)| Args::Access(ACCESS3args { object, access })),
        fh().prop_map(|symlink| Args::Readlink(READLINK3args { symlink })),
        (fh(), any::<u64>(), any::<u32>()).prop_map(|(file, offset, count)| Args::Read(
            READ3args {
                file,
                offset,
                count
            }
        )),
        (fh(), any::<u64>(), any::<u32>(), stable(), opaque(300)).prop_map(
            |(file, offset, count, stable, data)| Args::Write(WRITE3args {
                file,
                offset,
                count,
                stable,
                data
            })
        ),
        (dirop(), createhow())
            .prop_map(|(r#where, how)| Args::Create(CREATE3args { r#where, how })),
        (dirop(), sattr()).prop_map(|(r#where, attributes)| Args::Mkdir(MKDIR3args {
            r#where,
            attributes
        })),
        (dirop(), sattr(), opaque(100)).prop_map(|(r#where, symlink_attributes, symlink_data)| {
            Args::Symlink(SYMLINK3args {
                r#where,
                symlink: symlinkdata3 {
                    symlink_attributes,
                    symlink_data,
                },
            })
        }),
        (dirop(), mknoddata())
            .prop_map(|(r#where, what)| Args::Mknod(MKNOD3args { r#where, what })),
        dirop().prop_map(|object| Args::Remove(REMOVE3args { object })),
        dirop().prop_map(|object| Args::Rmdir(RMDIR3args { object })),
        (dirop(), dirop()).prop_map(|(from, to)| Args::Rename(RENAME3args { from, to })),
        (fh(), dirop()).prop_map(|(file, link)| Args::Link(LINK3args { file, link })),
        (fh(), any::<u64>(), any::<[u8; 8]>(), any::<u32>()).prop_map(
            |(dir, cookie, cookieverf, count)| Args::Readdir(READDIR3args {
                dir,
                cookie,
                cookieverf,
                count
            })
        ),
        (
            fh(),
            any::<u64>(),
            any::<[u8; 8]>(),
            any::<u32>(),
            any::<u32>()
        )
            .prop_map(
                |(dir, cookie, cookieverf, dircount, maxcount)| Args::Readdirplus(
                    READDIRPLUS3args {
                        dir,
                        cookie,
                        cookieverf,
                        dircount,
                        maxcount
                    }
                )
            ),
        fh().prop_map(|fsroot| Args::Fsstat(FSSTAT3args { fsroot })),
        fh().prop_map(|fsroot| Args::Fsinfo(FSINFO3args { fsroot })),
        fh().prop_map(|object| Args::Pathconf(PATHCONF3args { object })),
        (fh(), any::<u64>(), any::<u32>()).prop_map(|(file, offset, count)| Args::Commit(
            COMMIT3args {
                file,
                offset,
                count
            }
        )),
    ]
}

fn res_s() -> impl Strategy<Value = Res> {
    prop_oneof![
        Just(Res::Null),
        res!(
            GETATTR3res,
            fattr().prop_map(|obj_attributes| GETATTR3resok { obj_attributes }),
            Just(())
        )
        .prop_map(Res::Getattr),
        res!(
            SETATTR3res,
            wcc().prop_map(|obj_wcc| SETATTR3resok { obj_wcc }),
            wcc().prop_map(|obj_wcc| SETATTR3resfail { obj_wcc })
        )
        .prop_map(Res::Setattr),
        res!(
            LOOKUP3res,
            (fh(), post_attr(), post_attr()).prop_map(
                |(object, obj_attributes, dir_attributes)| {
                    LOOKUP3resok {
                        object,
                        obj_attributes,
                        dir_attributes,
                    }
                }
            ),
            post_attr().prop_map(|dir_attributes| LOOKUP3resfail { dir_attributes })
        )
        .prop_map(Res::Lookup),
        res!(
            ACCESS3res,
            (post_attr(), any::<u32>()).prop_map(|(obj_attributes, access)| ACCESS3resok {
                obj_attributes,
                access
            }),
            post_attr().prop_map(|obj_attributes| ACCESS3resfail { obj_attributes })
        )
        .prop_map(Res::Access),
        res!(
            READLINK3res,
            (post_attr(), opaque(200)).prop_map(|(symlink_attributes, data)| READLINK3resok {
                symlink_attributes,
                data
            }),
            post_attr().prop_map(|symlink_attributes| READLINK3resfail { symlink_attributes })
        )
        .prop_map(Res::Readlink),
        res!(
            READ3res,
            (post_attr(), any::<u32>(), any::<bool>(), opaque(300)).prop_map(
                |(file_attributes, count, eof, data)| READ3resok {
                    file_attributes,
                    count,
                    eof,
                    data
                }
            ),
            post_attr().prop_map(|file_attributes| READ3resfail { file_attributes })
        )
        .prop_map(Res::Read),
        res!(
            WRITE3res,
            (wcc(), any::<u32>(), stable(), any::<[u8; 8]>()).prop_map(
                |(file_wcc, count, committed, verf)| WRITE3resok {
                    file_wcc,
                    count,
                    committed,
                    verf
                }
            ),
            wcc().prop_map(|file_wcc| WRITE3resfail { file_wcc })
        )
        .prop_map(Res::Write),
        res!(
            CREATE3res,
            diropres().prop_map(|(obj, obj_attributes, dir_wcc)| CREATE3resok {
                obj,
                obj_attributes,
                dir_wcc
            }),
            wcc().prop_map(|dir_wcc| CREATE3resfail { dir_wcc })
        )
        .prop_map(Res::Create),
        res!(
            MKDIR3res,
            diropres().prop_map(|(obj, obj_attributes, dir_wcc)| MKDIR3resok {
                obj,
                obj_attributes,
                dir_wcc
            }),
            wcc().prop_map(|dir_wcc| MKDIR3resfail { dir_wcc })
        )
        .prop_map(Res::Mkdir),
        res!(
            SYMLINK3res,
            diropres().prop_map(|(obj, obj_attributes, dir_wcc)| SYMLINK3resok {
                obj,
                obj_attributes,
                dir_wcc
            }),
            wcc().prop_map(|dir_wcc| SYMLINK3resfail { dir_wcc })
        )
        .prop_map(Res::Symlink),
        res!(
            MKNOD3res,
            diropres().prop_map(|(obj, obj_attributes, dir_wcc)| MKNOD3resok {
                obj,
                obj_attributes,
                dir_wcc
            }),
            wcc().prop_map(|dir_wcc| MKNOD3resfail { dir_wcc })
        )
        .prop_map(Res::Mknod),
        res!(
            REMOVE3res,
            wcc().prop_map(|dir_wcc| REMOVE3resok { dir_wcc }),
            wcc().prop_map(|dir_wcc| REMOVE3resfail { dir_wcc })
        )
        .prop_map(Res::Remove),
        res!(
            RMDIR3res,
            wcc().prop_map(|dir_wcc| RMDIR3resok { dir_wcc }),
            wcc().prop_map(|dir_wcc| RMDIR3resfail { dir_wcc })
        )
        .prop_map(Res::Rmdir),
        res!(
            RENAME3res,
            (wcc(), wcc()).prop_map(|(fromdir_wcc, todir_wcc)| RENAME3resok {
                fromdir_wcc,
                todir_wcc
            }),
            (wcc(), wcc()).prop_map(|(fromdir_wcc, todir_wcc)| RENAME3resfail {
                fromdir_wcc,
                todir_wcc
            })
        )
        .prop_map(Res::Rename),
        res!(
            LINK3res,
            (post_attr(), wcc()).prop_map(|(file_attributes, linkdir_wcc)| LINK3resok {
                file_attributes,
                linkdir_wcc
            }),
            (post_attr(), wcc()).prop_map(|(file_attributes, linkdir_wcc)| LINK3resfail {
                file_attributes,
                linkdir_wcc
            })
        )
        .prop_map(Res::Link),
        res!(
            READDIR3res,
            (
                post_attr(),
                any::<[u8; 8]>(),
                proptest::collection::vec(entry(), 0..8),
                any::<bool>()
            )
                .prop_map(|(dir_attributes, cookieverf, entries, eof)| READDIR3resok {
                    dir_attributes,
                    cookieverf,
                    reply: dirlist3 {
                        entries: List(entries),
                        eof
                    }
                }),
            post_attr().prop_map(|dir_attributes| READDIR3resfail { dir_attributes })
        )
        .prop_map(Res::Readdir),
        res!(
            READDIRPLUS3res,
            (
                post_attr(),
                any::<[u8; 8]>(),
                proptest::collection::vec(entryplus(), 0..8),
                any::<bool>()
            )
                .prop_map(|(dir_attributes, cookieverf, entries, eof)| {
                    READDIRPLUS3resok {
                        dir_attributes,
                        cookieverf,
                        reply: dirlistplus3 {
                            entries: List(entries),
                            eof,
                        },
                    }
                }),
            post_attr().prop_map(|dir_attributes| READDIRPLUS3resfail { dir_attributes })
        )
        .prop_map(Res::Readdirplus),
        res!(
            FSSTAT3res,
            (post_attr(), any::<[u64; 6]>(), any::<u32>()).prop_map(
                |(obj_attributes, [tbytes, fbytes, abytes, tfiles, ffiles, afiles], invarsec)| {
                    FSSTAT3resok {
                        obj_attributes,
                        tbytes,
                        fbytes,
                        abytes,
                        tfiles,
                        ffiles,
                        afiles,
                        invarsec,
                    }
                }
            ),
            post_attr().prop_map(|obj_attributes| FSSTAT3resfail { obj_attributes })
        )
        .prop_map(Res::Fsstat),
        res!(
            FSINFO3res,
            (post_attr(), any::<[u32; 8]>(), any::<u64>(), time()).prop_map(
                |(
                    obj_attributes,
                    [rtmax, rtpref, rtmult, wtmax, wtpref, wtmult, dtpref, properties],
                    maxfilesize,
                    time_delta,
                )| FSINFO3resok {
                    obj_attributes,
                    rtmax,
                    rtpref,
                    rtmult,
                    wtmax,
                    wtpref,
                    wtmult,
                    dtpref,
                    maxfilesize,
                    time_delta,
                    properties,
                }
            ),
            post_attr().prop_map(|obj_attributes| FSINFO3resfail { obj_attributes })
        )
        .prop_map(Res::Fsinfo),
        res!(
            PATHCONF3res,
            (post_attr(), any::<(u32, u32)>(), any::<[bool; 4]>()).prop_map(
                |(
                    obj_attributes,
                    (linkmax, name_max),
                    [no_trunc, chown_restricted, case_insensitive, case_preserving],
                )| PATHCONF3resok {
                    obj_attributes,
                    linkmax,
                    name_max,
                    no_trunc,
                    chown_restricted,
                    case_insensitive,
                    case_preserving,
                }
            ),
            post_attr().prop_map(|obj_attributes| PATHCONF3resfail { obj_attributes })
        )
        .prop_map(Res::Pathconf),
        res!(
            COMMIT3res,
            (wcc(), any::<[u8; 8]>()).prop_map(|(file_wcc, verf)| COMMIT3resok { file_wcc, verf }),
            wcc().prop_map(|file_wcc| COMMIT3resfail { file_wcc })
        )
        .prop_map(Res::Commit),
    ]
}

// ---- properties ----------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn args_round_trip(a in args_s()) {
        let enc = to_bytes(&a);
        prop_assert_eq!(enc.len(), a.encoded_len());
        prop_assert_eq!(enc.len() % 4, 0);
        prop_assert_eq!(Args::decode(a.procedure(), enc).unwrap(), a);
    }

    #[test]
    fn res_round_trip(r in res_s()) {
        let enc = to_bytes(&r);
        prop_assert_eq!(enc.len(), r.encoded_len());
        prop_assert_eq!(enc.len() % 4, 0);
        let back = Res::decode(r.procedure(), enc).unwrap();
        prop_assert_eq!(back.status(), r.status());
        prop_assert_eq!(back, r);
    }

    /// Random bytes, and mutated valid encodings (which get past the first few fields), never
    /// make a decoder panic.
    #[test]
    fn decode_never_panics(procedure in 0u32..24, data in proptest::collection::vec(any::<u8>(), 0..256)) {
        let data = Bytes::from(data);
        let _ = Args::decode(procedure, data.clone());
        let _ = Res::decode(procedure, data);
    }

    #[test]
    fn decode_mutated_never_panics(a in args_s(), at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let mut enc = to_bytes(&a).to_vec();
        if !enc.is_empty() {
            let i = at.index(enc.len());
            enc[i] = byte;
            enc.truncate(cut.index(enc.len() + 1));
        }
        let _ = Args::decode(a.procedure(), Bytes::from(enc));
    }

    #[test]
    fn read_header_plus_data_equals_full_encoding(
        file_attributes in post_attr(),
        count in any::<u32>(),
        eof in any::<bool>(),
        data in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let full = to_bytes(&READ3res::Ok(READ3resok {
            file_attributes: file_attributes.clone(),
            count,
            eof,
            data: Opaque(Bytes::from(data.clone())),
        }));
        let mut pieces = Vec::new();
        encode_read3resok_header(&file_attributes, count, eof, data.len(), &mut pieces);
        prop_assert_eq!(pieces.len(), read3resok_header_len(&file_attributes));
        pieces.extend_from_slice(&data);
        pieces.resize(pieces.len() + pad_len(data.len()), 0);
        prop_assert_eq!(&pieces[..], &full[..]);
    }

    #[test]
    fn readdir_sizes_are_exact(
        dir_attributes in post_attr(),
        entries in proptest::collection::vec(entry(), 0..10),
        plus in proptest::collection::vec(entryplus(), 0..10),
    ) {
        let ok = READDIR3resok {
            dir_attributes: dir_attributes.clone(),
            cookieverf: [1; 8],
            reply: dirlist3 { entries: List(entries.clone()), eof: true },
        };
        let predicted = READDIR3resok::encoded_len_without_entries(&dir_attributes)
            + entries.iter().map(entry3::list_len).sum::<usize>();
        prop_assert_eq!(to_bytes(&ok).len(), predicted);
        prop_assert!(READDIR3resok::encoded_len_without_entries(&dir_attributes) <= READDIR3RESOK_MAX_OVERHEAD);
        prop_assert_eq!(to_bytes(&READDIR3res::Ok(ok)).len(), predicted + 4);

        let okp = READDIRPLUS3resok {
            dir_attributes: dir_attributes.clone(),
            cookieverf: [1; 8],
            reply: dirlistplus3 { entries: List(plus.clone()), eof: false },
        };
        let predicted = READDIRPLUS3resok::encoded_len_without_entries(&dir_attributes)
            + plus.iter().map(entryplus3::list_len).sum::<usize>();
        prop_assert_eq!(to_bytes(&okp).len(), predicted);
        for e in &plus {
            prop_assert!(e.dircount_len() <= e.list_len());
            prop_assert_eq!(e.dircount_len(), entry3 { fileid: e.fileid, name: e.name.clone(), cookie: e.cookie }.list_len());
        }
    }

    #[test]
    fn fattr3_has_fixed_size(a in fattr()) {
        prop_assert_eq!(a.encoded_len(), FATTR3_ENCODED_LEN);
        prop_assert_eq!(to_bytes(&Some(a)).len(), POST_OP_ATTR_MAX_LEN);
    }
}

// ---- unit tests ----------------------------------------------------------------------------

/// WRITE3args for handle `h` with a payload of `len` bytes (length word claiming `claimed`).
fn write_args_bytes(h: &[u8], claimed: u32, len: usize) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(h.len() as u32).to_be_bytes());
    v.extend_from_slice(h);
    v.resize(v.len() + pad_len(h.len()), 0);
    v.extend_from_slice(&7u64.to_be_bytes()); // offset
    v.extend_from_slice(&(len as u32).to_be_bytes()); // count
    v.extend_from_slice(&2u32.to_be_bytes()); // FILE_SYNC
    v.extend_from_slice(&claimed.to_be_bytes());
    v.extend(std::iter::repeat_n(0xab, len));
    v.resize(v.len() + pad_len(len), 0);
    v
}

#[test]
fn write_payload_is_zero_copy() {
    let msg = Bytes::from(write_args_bytes(&[1, 2, 3, 4, 5], 10, 10));
    let base = msg.as_ptr() as usize;
    let Ok(Args::Write(w)) = Args::decode(NFSPROC3_WRITE, msg) else {
        panic!("WRITE did not decode");
    };
    assert_eq!(w.data.len(), 10);
    assert_eq!(w.stable, stable_how::FILE_SYNC);
    // handle: 4 + 8 (5 bytes padded), offset 8, count 4, stable 4, length 4.
    assert_eq!(
        w.data.0.as_ptr() as usize,
        base + 12 + 8 + 4 + 4 + 4,
        "WRITE data must be a slice of the received buffer"
    );
}

#[test]
fn write_payload_bounded() {
    // A length word over the limit is refused before any payload is looked at.
    let msg = write_args_bytes(&[1], (WRITE_DATA_MAX_BYTES + 1) as u32, 0);
    assert!(matches!(
        Args::decode(NFSPROC3_WRITE, Bytes::from(msg)),
        Err(ArgsError::GarbageArgs(Error::LengthTooLarge { .. }))
    ));
    // Exactly the limit is fine.
    let msg = write_args_bytes(&[1], WRITE_DATA_MAX_BYTES as u32, WRITE_DATA_MAX_BYTES);
    assert!(matches!(
        Args::decode(NFSPROC3_WRITE, Bytes::from(msg)),
        Ok(Args::Write(w)) if w.data.len() == WRITE_DATA_MAX_BYTES
    ));
    // A length the message cannot hold is truncation, not an allocation.
    let msg = write_args_bytes(&[1], 1000, 10);
    assert!(matches!(
        Args::decode(NFSPROC3_WRITE, Bytes::from(msg)),
        Err(ArgsError::GarbageArgs(Error::Truncated { .. }))
    ));
}

#[test]
fn handle_bounded() {
    let ok = vec![9u8; NFS3_FHSIZE];
    let msg = to_bytes(&Opaque::<128>(ok.clone().into()));
    assert!(Args::decode(NFSPROC3_GETATTR, msg).is_ok());
    let long = to_bytes(&Opaque::<128>(vec![9u8; NFS3_FHSIZE + 1].into()));
    assert!(matches!(
        Args::decode(NFSPROC3_GETATTR, long),
        Err(ArgsError::GarbageArgs(Error::LengthTooLarge {
            len: 65,
            max: 64
        }))
    ));
    assert!(nfs_fh3::new(vec![0u8; 65]).is_none());
    assert!(nfs_fh3::new(ok).is_some());
}

fn lookup_bytes(name_len: usize) -> Bytes {
    let mut v = to_bytes(&nfs_fh3::new(vec![1u8; 8]).unwrap()).to_vec();
    v.extend_from_slice(&(name_len as u32).to_be_bytes());
    v.extend(std::iter::repeat_n(b'n', name_len));
    v.resize(v.len() + pad_len(name_len), 0);
    Bytes::from(v)
}

#[test]
fn filename_bound_is_generous_but_finite() {
    // Over NAME_MAX still decodes, so the server can answer NFS3ERR_NAMETOOLONG itself.
    let Ok(Args::Lookup(l)) = Args::decode(NFSPROC3_LOOKUP, lookup_bytes(NAME_MAX + 1)) else {
        panic!("256-byte name must decode");
    };
    assert_eq!(l.what.name.len(), NAME_MAX + 1);
    assert!(Args::decode(NFSPROC3_LOOKUP, lookup_bytes(FILENAME3_MAX_BYTES)).is_ok());
    assert!(matches!(
        Args::decode(NFSPROC3_LOOKUP, lookup_bytes(FILENAME3_MAX_BYTES + 1)),
        Err(ArgsError::GarbageArgs(Error::LengthTooLarge { .. }))
    ));
}

#[test]
fn symlink_path_bounded() {
    let mut v = to_bytes(&diropargs3::default()).to_vec();
    v.extend_from_slice(&to_bytes(&sattr3::default()));
    v.extend_from_slice(&((NFSPATH3_MAX_BYTES + 1) as u32).to_be_bytes());
    v.resize(v.len() + NFSPATH3_MAX_BYTES + 4, b'p');
    assert!(matches!(
        Args::decode(NFSPROC3_SYMLINK, Bytes::from(v)),
        Err(ArgsError::GarbageArgs(Error::LengthTooLarge { .. }))
    ));
}

#[test]
fn dirlist_bounded() {
    // DIRLIST_MAX_ENTRIES + 1 minimal entries: refused with TooManyElements.
    let e = entry3::default();
    let l = dirlist3 {
        entries: List(vec![e; DIRLIST_MAX_ENTRIES + 1]),
        eof: true,
    };
    let mut d = Decoder::new(to_bytes(&l));
    assert_eq!(
        dirlist3::decode(&mut d),
        Err(Error::TooManyElements(DIRLIST_MAX_ENTRIES))
    );
}

#[test]
fn unknown_procedure_is_not_garbage() {
    assert_eq!(
        Args::decode(22, Bytes::new()),
        Err(ArgsError::ProcUnavail(22))
    );
    assert_eq!(
        Args::decode(u32::MAX, Bytes::from_static(&[1, 2, 3])),
        Err(ArgsError::ProcUnavail(u32::MAX))
    );
    assert!(matches!(
        Args::decode(NFSPROC3_GETATTR, Bytes::new()),
        Err(ArgsError::GarbageArgs(Error::Truncated { .. }))
    ));
    assert!(matches!(
        Args::decode(NFSPROC3_NULL, Bytes::from_static(&[0, 0, 0, 0])),
        Err(ArgsError::GarbageArgs(Error::TrailingBytes(4)))
    ));
}

#[test]
fn bad_union_discriminants_rejected() {
    // CREATE with createmode3 = 3; MKNOD with ftype3 = 0; SETATTR with time_how = 3.
    let mut create = to_bytes(&diropargs3::default()).to_vec();
    create.extend_from_slice(&3u32.to_be_bytes());
    assert!(matches!(
        Args::decode(NFSPROC3_CREATE, Bytes::from(create)),
        Err(ArgsError::GarbageArgs(Error::InvalidEnum { .. }))
    ));
    let mut mknod = to_bytes(&diropargs3::default()).to_vec();
    mknod.extend_from_slice(&0u32.to_be_bytes());
    assert!(matches!(
        Args::decode(NFSPROC3_MKNOD, Bytes::from(mknod)),
        Err(ArgsError::GarbageArgs(Error::InvalidEnum { .. }))
    ));
    let mut setattr = to_bytes(&nfs_fh3::default()).to_vec();
    setattr.extend_from_slice(&[0; 16]); // mode, uid, gid, size: not set
    setattr.extend_from_slice(&3u32.to_be_bytes()); // atime: invalid time_how
    assert!(matches!(
        Args::decode(NFSPROC3_SETATTR, Bytes::from(setattr)),
        Err(ArgsError::GarbageArgs(Error::InvalidEnum { .. }))
    ));
}

#[test]
fn getattr_reply_wire_form() {
    let a = fattr3 {
        r#type: ftype3::NF3DIR,
        mode: 0o755,
        nlink: 2,
        uid: 0,
        gid: 0,
        size: 4096,
        used: 4096,
        rdev: specdata3::default(),
        fsid: 1,
        fileid: 2,
        atime: nfstime3::default(),
        mtime: nfstime3::default(),
        ctime: nfstime3 {
            seconds: 1,
            nseconds: 2,
        },
    };
    let enc = to_bytes(&GETATTR3res::Ok(GETATTR3resok { obj_attributes: a }));
    assert_eq!(enc.len(), 4 + 84);
    assert_eq!(&enc[..12], &[0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0x01, 0xed]);
    assert_eq!(&enc[enc.len() - 8..], &[0, 0, 0, 1, 0, 0, 0, 2]);
    // A failure carries only the status.
    let fail = to_bytes(&GETATTR3res::Fail(nfsstat3::NFS3ERR_STALE, ()));
    assert_eq!(&fail[..], &[0, 0, 0, 70]);
    assert_eq!(
        from_bytes::<GETATTR3res>(fail).unwrap().status(),
        nfsstat3::NFS3ERR_STALE
    );
}

#[test]
fn entry_sizes() {
    // fileid 8 + name (4 + 4 for "a") + cookie 8, plus the value-follows word.
    assert_eq!(entry3_list_len(1), 4 + 8 + 8 + 8);
    assert_eq!(entry3_list_len(4), 4 + 8 + 8 + 8);
    assert_eq!(entry3_list_len(5), 4 + 8 + 12 + 8);
    assert_eq!(READDIR3RESOK_MAX_OVERHEAD, 88 + 8 + 4 + 4);
}

#[test]
fn procedure_names() {
    assert_eq!(procedure_name(NFSPROC3_NULL), Some("NULL"));
    assert_eq!(procedure_name(NFSPROC3_READDIRPLUS), Some("READDIRPLUS"));
    assert_eq!(procedure_name(NFSPROC3_COMMIT), Some("COMMIT"));
    assert_eq!(procedure_name(22), None);
    assert_eq!(nfsstat3::ALL.len(), 29);
    assert_eq!(nfsstat3::NFS3ERR_JUKEBOX as i32, 10008);
}
