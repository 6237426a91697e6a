use super::*;
use proptest::prelude::*;
use rnfs_xdr::{to_bytes, Error};

fn opaque<const N: usize>(max_len: usize) -> impl Strategy<Value = Opaque<N>> {
    proptest::collection::vec(any::<u8>(), 0..=max_len.min(N)).prop_map(|v| Opaque(v.into()))
}

/// Mostly short, sometimes at the bound.
fn bounded<const N: usize>() -> impl Strategy<Value = Opaque<N>> {
    prop_oneof![
        4 => opaque::<N>(40),
        1 => Just(Opaque(vec![b'x'; N].into())),
    ]
}

fn stats_s() -> impl Strategy<Value = nlm4_stats> {
    proptest::sample::select(nlm4_stats::ALL)
}

fn lock_s() -> impl Strategy<Value = nlm4_lock> {
    (
        bounded::<LM_MAXSTRLEN>(),
        opaque::<MAXNETOBJ_SZ>(64),
        bounded::<MAXNETOBJ_SZ>(),
        any::<i32>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(|(caller_name, fh, oh, svid, l_offset, l_len)| nlm4_lock {
            caller_name,
            fh,
            oh,
            svid,
            l_offset,
            l_len,
        })
}

fn cookie_s() -> impl Strategy<Value = netobj> {
    opaque(32)
}

fn lockargs_s() -> impl Strategy<Value = nlm4_lockargs> {
    (cookie_s(), any::<[bool; 3]>(), lock_s(), any::<i32>()).prop_map(
        |(cookie, [block, exclusive, reclaim], alock, state)| nlm4_lockargs {
            cookie,
            block,
            exclusive,
            alock,
            reclaim,
            state,
        },
    )
}

fn cancargs_s() -> impl Strategy<Value = nlm4_cancargs> {
    (cookie_s(), any::<[bool; 2]>(), lock_s()).prop_map(|(cookie, [block, exclusive], alock)| {
        nlm4_cancargs {
            cookie,
            block,
            exclusive,
            alock,
        }
    })
}

fn testargs_s() -> impl Strategy<Value = nlm4_testargs> {
    (cookie_s(), any::<bool>(), lock_s()).prop_map(|(cookie, exclusive, alock)| nlm4_testargs {
        cookie,
        exclusive,
        alock,
    })
}

fn unlockargs_s() -> impl Strategy<Value = nlm4_unlockargs> {
    (cookie_s(), lock_s()).prop_map(|(cookie, alock)| nlm4_unlockargs { cookie, alock })
}

fn holder_s() -> impl Strategy<Value = nlm4_holder> {
    (
        any::<bool>(),
        any::<i32>(),
        bounded::<MAXNETOBJ_SZ>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(|(exclusive, svid, oh, l_offset, l_len)| nlm4_holder {
            exclusive,
            svid,
            oh,
            l_offset,
            l_len,
        })
}

fn testres_s() -> impl Strategy<Value = nlm4_testres> {
    let rply = prop_oneof![
        holder_s().prop_map(nlm4_testrply::Denied),
        stats_s()
            .prop_filter("not DENIED", |s| *s != nlm4_stats::NLM4_DENIED)
            .prop_map(nlm4_testrply::Status),
    ];
    (cookie_s(), rply).prop_map(|(cookie, test_stat)| nlm4_testres { cookie, test_stat })
}

fn res_body_s() -> impl Strategy<Value = nlm4_res> {
    (cookie_s(), stats_s()).prop_map(|(cookie, stat)| nlm4_res {
        cookie,
        stat: nlm4_stat { stat },
    })
}

fn shareargs_s() -> impl Strategy<Value = nlm4_shareargs> {
    (
        cookie_s(),
        bounded::<LM_MAXSTRLEN>(),
        opaque::<MAXNETOBJ_SZ>(64),
        opaque::<MAXNETOBJ_SZ>(40),
        proptest::sample::select(fsh4_mode::ALL),
        proptest::sample::select(fsh4_access::ALL),
        any::<bool>(),
    )
        .prop_map(
            |(cookie, caller_name, fh, oh, mode, access, reclaim)| nlm4_shareargs {
                cookie,
                share: nlm4_share {
                    caller_name,
                    fh,
                    oh,
                    mode,
                    access,
                },
                reclaim,
            },
        )
}

fn shareres_s() -> impl Strategy<Value = nlm4_shareres> {
    (cookie_s(), stats_s(), any::<i32>()).prop_map(|(cookie, stat, sequence)| nlm4_shareres {
        cookie,
        stat,
        sequence,
    })
}

fn notify_s() -> impl Strategy<Value = nlm4_notify> {
    (bounded::<LM_MAXNAMELEN>(), any::<i32>()).prop_map(|(name, state)| nlm4_notify { name, state })
}

fn args_s() -> impl Strategy<Value = Args> {
    prop_oneof![
        Just(Args::Null),
        testargs_s().prop_map(Args::Test),
        lockargs_s().prop_map(Args::Lock),
        cancargs_s().prop_map(Args::Cancel),
        unlockargs_s().prop_map(Args::Unlock),
        testargs_s().prop_map(Args::Granted),
        testargs_s().prop_map(Args::TestMsg),
        lockargs_s().prop_map(Args::LockMsg),
        cancargs_s().prop_map(Args::CancelMsg),
        unlockargs_s().prop_map(Args::UnlockMsg),
        testargs_s().prop_map(Args::GrantedMsg),
        testres_s().prop_map(Args::TestRes),
        res_body_s().prop_map(Args::LockRes),
        res_body_s().prop_map(Args::CancelRes),
        res_body_s().prop_map(Args::UnlockRes),
        res_body_s().prop_map(Args::GrantedRes),
        shareargs_s().prop_map(Args::Share),
        shareargs_s().prop_map(Args::Unshare),
        lockargs_s().prop_map(Args::NmLock),
        notify_s().prop_map(Args::FreeAll),
    ]
}

fn res_s() -> impl Strategy<Value = Res> {
    prop_oneof![
        Just(Res::Null),
        testres_s().prop_map(Res::Test),
        res_body_s().prop_map(Res::Lock),
        res_body_s().prop_map(Res::Cancel),
        res_body_s().prop_map(Res::Unlock),
        res_body_s().prop_map(Res::Granted),
        Just(Res::TestMsg),
        Just(Res::LockMsg),
        Just(Res::CancelMsg),
        Just(Res::UnlockMsg),
        Just(Res::GrantedMsg),
        Just(Res::TestRes),
        Just(Res::LockRes),
        Just(Res::CancelRes),
        Just(Res::UnlockRes),
        Just(Res::GrantedRes),
        shareres_s().prop_map(Res::Share),
        shareres_s().prop_map(Res::Unshare),
        res_body_s().prop_map(Res::NmLock),
        Just(Res::FreeAll),
    ]
}

/// Procedure numbers of NLM v4.
const NLM4_PROCEDURES: [u32; 20] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 20, 21, 22, 23,
];

proptest! {
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
        prop_assert_eq!(Res::decode(r.procedure(), enc).unwrap(), r);
    }

    #[test]
    fn decode_never_panics(
        procedure in 0u32..26,
        data in proptest::collection::vec(any::<u8>(), 0..160),
    ) {
        let data = Bytes::from(data);
        let known = NLM4_PROCEDURES.contains(&procedure);
        for r in [
            Args::decode(procedure, data.clone()).map(|_| ()),
            Res::decode(procedure, data).map(|_| ()),
        ] {
            prop_assert_eq!(matches!(r, Err(ArgsError::ProcUnavail(_))), !known);
        }
    }

    /// Any accepted message re-encodes to exactly its bytes (one encoding per value).
    #[test]
    fn decode_encode_is_identity(procedure in proptest::sample::select(&NLM4_PROCEDURES[..]),
                                 data in proptest::collection::vec(any::<u8>(), 0..96)) {
        let data = Bytes::from(data);
        if let Ok(a) = Args::decode(procedure, data.clone()) {
            prop_assert_eq!(to_bytes(&a), data.clone());
        }
        if let Ok(r) = Res::decode(procedure, data.clone()) {
            prop_assert_eq!(to_bytes(&r), data);
        }
    }
}

/// A tiny XDR writer for hand-written messages.
#[derive(Default)]
struct W(Vec<u8>);

impl W {
    fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn opaque(mut self, data: &[u8]) -> Self {
        self = self.u32(data.len() as u32);
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len() + (4 - data.len() % 4) % 4, 0);
        self
    }
    fn bytes(self) -> Bytes {
        Bytes::from(self.0)
    }
}

/// LOCK arguments, written word by word from the `.x`: cookie, block, exclusive, the lock
/// (caller_name, fh, oh, svid, l_offset, l_len), reclaim, state.
fn lock_args_wire(block: u32, caller_len: usize) -> W {
    W::default()
        .opaque(&[0, 0, 0, 7])
        .u32(block)
        .u32(1)
        .opaque(&vec![b'c'; caller_len])
        .opaque(&[0xfe; 32])
        .opaque(b"1234@client")
        .u32(1234)
        .u64(4096)
        .u64(0)
        .u32(0)
        .u32(3)
}

#[test]
fn lock_args_wire_form() {
    let msg = lock_args_wire(1, 6).bytes();
    // cookie 8, block/exclusive 8, caller 12, fh 36, oh 16, svid 4, offset/len 16, reclaim/state 8.
    assert_eq!(msg.len(), 108);
    let want = nlm4_lockargs {
        cookie: Opaque(Bytes::from_static(&[0, 0, 0, 7])),
        block: true,
        exclusive: true,
        alock: nlm4_lock {
            caller_name: Opaque(Bytes::from_static(b"cccccc")),
            fh: Opaque(Bytes::from_static(&[0xfe; 32])),
            oh: Opaque(Bytes::from_static(b"1234@client")),
            svid: 1234,
            l_offset: 4096,
            l_len: 0,
        },
        reclaim: false,
        state: 3,
    };
    assert_eq!(
        Args::decode(NLMPROC4_LOCK, msg.clone()),
        Ok(Args::Lock(want.clone()))
    );
    assert_eq!(
        Args::decode(NLMPROC4_NM_LOCK, msg.clone()),
        Ok(Args::NmLock(want.clone()))
    );
    assert_eq!(to_bytes(&Args::LockMsg(want)), msg);
}

#[test]
fn test_res_with_holder_wire_form() {
    // cookie, NLM4_DENIED, holder { exclusive, svid, oh, l_offset, l_len }.
    let msg = W::default()
        .opaque(b"ck")
        .u32(1)
        .u32(1)
        .u32(99)
        .opaque(b"owner")
        .u64(10)
        .u64(u64::MAX)
        .bytes();
    let want = nlm4_testres {
        cookie: Opaque(Bytes::from_static(b"ck")),
        test_stat: nlm4_testrply::Denied(nlm4_holder {
            exclusive: true,
            svid: 99,
            oh: Opaque(Bytes::from_static(b"owner")),
            l_offset: 10,
            l_len: u64::MAX,
        }),
    };
    assert_eq!(want.test_stat.stat(), nlm4_stats::NLM4_DENIED);
    assert_eq!(
        Res::decode(NLMPROC4_TEST, msg.clone()),
        Ok(Res::Test(want.clone()))
    );
    // The same body is TEST_RES's argument.
    assert_eq!(
        Args::decode(NLMPROC4_TEST_RES, msg.clone()),
        Ok(Args::TestRes(want.clone()))
    );
    assert_eq!(to_bytes(&want), msg);

    // Any other status has no holder.
    let granted = W::default().opaque(b"ck").u32(0).bytes();
    assert_eq!(
        Res::decode(NLMPROC4_TEST, granted),
        Ok(Res::Test(nlm4_testres {
            cookie: Opaque(Bytes::from_static(b"ck")),
            test_stat: nlm4_testrply::Status(nlm4_stats::NLM4_GRANTED),
        }))
    );
}

#[test]
fn void_results_are_empty() {
    for p in [6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 23, 0] {
        let r = Res::decode(p, Bytes::new()).unwrap();
        assert_eq!(r.procedure(), p);
        assert_eq!(r.encoded_len(), 0);
        assert!(matches!(
            Res::decode(p, Bytes::from_static(&[0; 4])),
            Err(ArgsError::GarbageArgs(Error::TrailingBytes(4)))
        ));
    }
}

#[test]
fn unknown_procedures_are_unavailable() {
    for p in [16, 17, 18, 19, 24, 25, 1000, u32::MAX] {
        assert_eq!(
            Args::decode(p, Bytes::new()),
            Err(ArgsError::ProcUnavail(p))
        );
        assert_eq!(Res::decode(p, Bytes::new()), Err(ArgsError::ProcUnavail(p)));
    }
    assert_eq!(
        Args::decode(NLMPROC_NSM_NOTIFY, Bytes::new()),
        Err(ArgsError::ProcUnavail(16))
    );
}

fn garbage<T: std::fmt::Debug>(r: Result<T, ArgsError>) -> Error {
    match r {
        Err(ArgsError::GarbageArgs(e)) => e,
        other => panic!("expected GARBAGE_ARGS, got {other:?}"),
    }
}

#[test]
fn bad_bool_is_garbage() {
    assert_eq!(
        garbage(Args::decode(NLMPROC4_LOCK, lock_args_wire(2, 6).bytes())),
        Error::InvalidBool(2)
    );
}

#[test]
fn bad_enum_is_garbage() {
    // nlm4_stats 10 in a TEST reply.
    let msg = W::default().opaque(b"ck").u32(10).bytes();
    assert!(matches!(
        garbage(Res::decode(NLMPROC4_TEST, msg)),
        Error::InvalidEnum {
            type_name: "nlm4_stats",
            value: 10
        }
    ));
    // fsh4_mode 4 in SHARE arguments.
    let msg = W::default()
        .opaque(b"ck")
        .opaque(b"host")
        .opaque(&[1; 8])
        .opaque(b"oh")
        .u32(4)
        .u32(0)
        .u32(0)
        .bytes();
    assert!(matches!(
        garbage(Args::decode(NLMPROC4_SHARE, msg)),
        Error::InvalidEnum {
            type_name: "fsh4_mode",
            value: 4
        }
    ));
    // fsh4_access 4.
    let msg = W::default()
        .opaque(b"ck")
        .opaque(b"host")
        .opaque(&[1; 8])
        .opaque(b"oh")
        .u32(3)
        .u32(4)
        .u32(0)
        .bytes();
    assert!(matches!(
        garbage(Args::decode(NLMPROC4_UNSHARE, msg)),
        Error::InvalidEnum {
            type_name: "fsh4_access",
            value: 4
        }
    ));
}

#[test]
fn strings_and_netobjs_bounded() {
    // caller_name at LM_MAXSTRLEN is fine, one byte more is refused on the length word.
    assert!(Args::decode(NLMPROC4_LOCK, lock_args_wire(0, LM_MAXSTRLEN).bytes()).is_ok());
    assert!(matches!(
        garbage(Args::decode(
            NLMPROC4_LOCK,
            lock_args_wire(0, LM_MAXSTRLEN + 1).bytes()
        )),
        Error::LengthTooLarge {
            len: 1025,
            max: 1024
        }
    ));
    // A cookie over MAXNETOBJ_SZ.
    let mut msg = W::default().u32(MAXNETOBJ_SZ as u32 + 1).0;
    msg.resize(4 + 1028 + 8, 0);
    assert!(matches!(
        garbage(Res::decode(NLMPROC4_LOCK, Bytes::from(msg))),
        Error::LengthTooLarge { .. }
    ));
    // A hostile length word is refused without reading (or reserving) anything.
    let msg = W::default().u32(u32::MAX).bytes();
    assert!(matches!(
        garbage(Args::decode(NLMPROC4_UNLOCK, msg)),
        Error::LengthTooLarge { .. }
    ));
    // FREE_ALL's name may be LM_MAXNAMELEN (1025) bytes, not 1026.
    let ok = W::default().opaque(&[b'h'; LM_MAXNAMELEN]).u32(5).bytes();
    assert!(Args::decode(NLMPROC4_FREE_ALL, ok).is_ok());
    let over = W::default()
        .opaque(&[b'h'; LM_MAXNAMELEN + 1])
        .u32(5)
        .bytes();
    assert!(matches!(
        garbage(Args::decode(NLMPROC4_FREE_ALL, over)),
        Error::LengthTooLarge {
            len: 1026,
            max: 1025
        }
    ));
}

#[test]
fn trailing_and_truncated_are_garbage() {
    let mut msg = lock_args_wire(1, 6).0;
    msg.extend_from_slice(&[0; 4]);
    assert_eq!(
        garbage(Args::decode(NLMPROC4_LOCK, Bytes::from(msg.clone()))),
        Error::TrailingBytes(4)
    );
    msg.truncate(msg.len() - 8);
    assert!(matches!(
        garbage(Args::decode(NLMPROC4_LOCK, Bytes::from(msg))),
        Error::Truncated { .. }
    ));
    assert_eq!(
        garbage(Args::decode(NLMPROC4_NULL, Bytes::from_static(&[0; 4]))),
        Error::TrailingBytes(4)
    );
}

#[test]
fn procedure_numbers_match_the_spec() {
    let lock = nlm4_lockargs::default();
    let test = nlm4_testargs::default();
    let res = nlm4_res {
        cookie: Opaque::default(),
        stat: nlm4_stat {
            stat: nlm4_stats::NLM4_GRANTED,
        },
    };
    let pairs = [
        (Args::Null, 0),
        (Args::Test(test.clone()), 1),
        (Args::Lock(lock.clone()), 2),
        (Args::Granted(test.clone()), 5),
        (Args::GrantedMsg(test), 10),
        (Args::GrantedRes(res), 15),
        (Args::NmLock(lock), 22),
        (Args::FreeAll(nlm4_notify::default()), 23),
    ];
    for (a, p) in pairs {
        assert_eq!(a.procedure(), p, "{a:?}");
    }
    assert_eq!(Res::FreeAll.procedure(), NLMPROC4_FREE_ALL);
}

mod nsm_wire {
    use super::{garbage, opaque, W};
    use crate::nsm::*;
    use proptest::prelude::*;
    use rnfs_xdr::{from_bytes, to_bytes, Error};

    fn name_s() -> impl Strategy<Value = sm_string> {
        prop_oneof![
            4 => opaque::<SM_MAXSTRLEN>(40),
            1 => Just(Opaque(vec![b'n'; SM_MAXSTRLEN].into())),
        ]
    }

    fn my_id_s() -> impl Strategy<Value = my_id> {
        (name_s(), any::<[i32; 3]>()).prop_map(|(my_name, [my_prog, my_vers, my_proc])| my_id {
            my_name,
            my_prog,
            my_vers,
            my_proc,
        })
    }

    fn mon_id_s() -> impl Strategy<Value = mon_id> {
        (name_s(), my_id_s()).prop_map(|(mon_name, my_id)| mon_id { mon_name, my_id })
    }

    fn stat_res_s() -> impl Strategy<Value = sm_stat_res> {
        (proptest::sample::select(res::ALL), any::<i32>())
            .prop_map(|(res_stat, state)| sm_stat_res { res_stat, state })
    }

    fn args_s() -> impl Strategy<Value = Args> {
        prop_oneof![
            Just(Args::Null),
            name_s().prop_map(|mon_name| Args::Stat(sm_name { mon_name })),
            (mon_id_s(), any::<[u8; 16]>())
                .prop_map(|(mon_id, p)| Args::Mon(mon { mon_id, r#priv: p })),
            mon_id_s().prop_map(Args::Unmon),
            my_id_s().prop_map(Args::UnmonAll),
            Just(Args::SimuCrash),
            (name_s(), any::<i32>())
                .prop_map(|(mon_name, state)| Args::Notify(stat_chge { mon_name, state })),
        ]
    }

    fn res_s() -> impl Strategy<Value = Res> {
        prop_oneof![
            Just(Res::Null),
            stat_res_s().prop_map(Res::Stat),
            stat_res_s().prop_map(Res::Mon),
            any::<i32>().prop_map(|state| Res::Unmon(sm_stat { state })),
            any::<i32>().prop_map(|state| Res::UnmonAll(sm_stat { state })),
            Just(Res::SimuCrash),
            Just(Res::Notify),
        ]
    }

    proptest! {
        #[test]
        fn args_round_trip(a in args_s()) {
            let enc = to_bytes(&a);
            prop_assert_eq!(enc.len(), a.encoded_len());
            prop_assert_eq!(Args::decode(a.procedure(), enc).unwrap(), a);
        }

        #[test]
        fn res_round_trip(r in res_s()) {
            let enc = to_bytes(&r);
            prop_assert_eq!(enc.len(), r.encoded_len());
            prop_assert_eq!(Res::decode(r.procedure(), enc).unwrap(), r);
        }

        #[test]
        fn status_round_trip(mon_name in name_s(), state in any::<i32>(), p in any::<[u8; 16]>()) {
            let s = status { mon_name, state, r#priv: p };
            let enc = to_bytes(&s);
            prop_assert_eq!(enc.len(), s.encoded_len());
            prop_assert_eq!(from_bytes::<status>(enc).unwrap(), s);
        }

        #[test]
        fn decode_never_panics(
            procedure in 0u32..9,
            data in proptest::collection::vec(any::<u8>(), 0..128),
        ) {
            let data = Bytes::from(data);
            for r in [
                Args::decode(procedure, data.clone()).map(|_| ()),
                Res::decode(procedure, data.clone()).map(|_| ()),
            ] {
                prop_assert_eq!(matches!(r, Err(ArgsError::ProcUnavail(_))), procedure > 6);
            }
            let _ = from_bytes::<status>(data);
        }
    }

    #[test]
    fn mon_wire_form() {
        // SM_MON as Linux lockd sends it: mon_name, my_id (my_name, 100021, 3, 16), priv[16].
        let msg = W::default()
            .opaque(b"client")
            .opaque(b"server")
            .u32(100_021)
            .u32(3)
            .u32(16)
            .bytes();
        let mut full = msg.to_vec();
        full.extend_from_slice(&[9; 16]);
        let a = Args::decode(SM_MON, Bytes::from(full.clone())).unwrap();
        let Args::Mon(m) = &a else { panic!("{a:?}") };
        assert_eq!(m.mon_id.mon_name.as_bytes(), b"client");
        assert_eq!(m.mon_id.my_id.my_name.as_bytes(), b"server");
        assert_eq!(
            (
                m.mon_id.my_id.my_prog,
                m.mon_id.my_id.my_vers,
                m.mon_id.my_id.my_proc
            ),
            (100_021, 3, 16)
        );
        assert_eq!(m.r#priv, [9; 16]);
        assert_eq!(&to_bytes(&a)[..], &full[..]);
        // Short private data is truncation, not a shorter priv.
        assert!(matches!(
            garbage(Args::decode(
                SM_MON,
                Bytes::from(full[..full.len() - 4].to_vec())
            )),
            Error::Truncated { .. }
        ));
    }

    #[test]
    fn stat_res_wire_form() {
        let r = Res::decode(SM_STAT, W::default().u32(1).u32(7).bytes()).unwrap();
        assert_eq!(
            r,
            Res::Stat(sm_stat_res {
                res_stat: res::STAT_FAIL,
                state: 7
            })
        );
        assert!(matches!(
            garbage(Res::decode(SM_MON, W::default().u32(2).u32(7).bytes())),
            Error::InvalidEnum {
                type_name: "res",
                ..
            }
        ));
    }

    #[test]
    fn names_bounded_and_unknown_procedures() {
        let over = W::default()
            .opaque(&[b'h'; SM_MAXSTRLEN + 1])
            .u32(3)
            .bytes();
        assert!(matches!(
            garbage(Args::decode(SM_NOTIFY, over)),
            Error::LengthTooLarge { .. }
        ));
        let ok = W::default().opaque(&[b'h'; SM_MAXSTRLEN]).u32(3).bytes();
        assert!(Args::decode(SM_NOTIFY, ok).is_ok());
        for p in [7, 16, u32::MAX] {
            assert_eq!(
                Args::decode(p, Bytes::new()),
                Err(ArgsError::ProcUnavail(p))
            );
            assert_eq!(Res::decode(p, Bytes::new()), Err(ArgsError::ProcUnavail(p)));
        }
        assert_eq!(
            garbage(Args::decode(SM_SIMU_CRASH, Bytes::from_static(&[0; 4]))),
            Error::TrailingBytes(4)
        );
    }
}
