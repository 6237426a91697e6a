use super::*;
use proptest::prelude::*;
use rnfs_xdr::{from_bytes, to_bytes, Error};

fn opaque<const N: usize>(max_len: usize) -> impl Strategy<Value = Opaque<N>> {
    proptest::collection::vec(any::<u8>(), 0..=max_len.min(N)).prop_map(|v| Opaque(v.into()))
}

fn mountstat3_s() -> impl Strategy<Value = mountstat3> {
    proptest::sample::select(mountstat3::ALL)
}

fn mountres3_s() -> impl Strategy<Value = mountres3> {
    prop_oneof![
        (
            opaque::<FHSIZE3>(FHSIZE3),
            proptest::collection::vec(any::<i32>(), 0..=AUTH_FLAVORS_MAX)
        )
            .prop_map(|(fhandle, fl)| mountres3::Ok(mountres3_ok {
                fhandle,
                auth_flavors: Array(fl)
            })),
        mountstat3_s()
            .prop_filter("not OK", |s| *s != mountstat3::MNT3_OK)
            .prop_map(mountres3::Fail),
    ]
}

fn args_s() -> impl Strategy<Value = Args> {
    prop_oneof![
        Just(Args::Null),
        opaque(64).prop_map(Args::Mnt),
        Just(Args::Dump),
        opaque(64).prop_map(Args::Umnt),
        Just(Args::Umntall),
        Just(Args::Export),
    ]
}

fn res_s() -> impl Strategy<Value = Res> {
    let body = (opaque(32), opaque(64)).prop_map(|(ml_hostname, ml_directory)| mountbody {
        ml_hostname,
        ml_directory,
    });
    let export =
        (opaque(64), proptest::collection::vec(opaque(16), 0..4)).prop_map(|(ex_dir, g)| {
            exportnode {
                ex_dir,
                ex_groups: List(g),
            }
        });
    prop_oneof![
        Just(Res::Null),
        mountres3_s().prop_map(Res::Mnt),
        proptest::collection::vec(body, 0..8).prop_map(|v| Res::Dump(List(v))),
        Just(Res::Umnt),
        Just(Res::Umntall),
        proptest::collection::vec(export, 0..8).prop_map(|v| Res::Export(List(v))),
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
    fn fhstatus_round_trip(ok in any::<bool>(), fh in any::<[u8; FHSIZE]>(), e in 1u32..) {
        let v = if ok { fhstatus::Ok(fh) } else { fhstatus::Fail(e) };
        let enc = to_bytes(&v);
        prop_assert_eq!(enc.len(), v.encoded_len());
        prop_assert_eq!(from_bytes::<fhstatus>(enc).unwrap(), v);
    }

    #[test]
    fn decode_never_panics(procedure in 0u32..8, data in proptest::collection::vec(any::<u8>(), 0..128)) {
        let data = Bytes::from(data);
        let _ = Args::decode(procedure, data.clone());
        let _ = Res::decode(procedure, data.clone());
        let _ = from_bytes::<fhstatus>(data);
    }
}

#[test]
fn unknown_procedure_is_not_garbage() {
    assert_eq!(
        Args::decode(6, Bytes::new()),
        Err(ArgsError::ProcUnavail(6))
    );
    assert!(matches!(
        Args::decode(MOUNTPROC3_MNT, Bytes::from_static(&[0, 0, 0, 8, b'/'])),
        Err(ArgsError::GarbageArgs(_))
    ));
}

#[test]
fn dirpath_bounded() {
    // A path one byte over MNTPATHLEN is refused on its length word alone.
    let mut msg = ((MNTPATHLEN + 1) as u32).to_be_bytes().to_vec();
    msg.resize(4 + MNTPATHLEN + 4, b'a');
    assert!(matches!(
        Args::decode(MOUNTPROC3_MNT, Bytes::from(msg)),
        Err(ArgsError::GarbageArgs(Error::LengthTooLarge { .. }))
    ));
    let ok = Opaque::<MNTPATHLEN>(vec![b'a'; MNTPATHLEN].into());
    assert_eq!(
        Args::decode(MOUNTPROC3_MNT, to_bytes(&ok)),
        Ok(Args::Mnt(ok))
    );
}

#[test]
fn fhandle_and_flavors_bounded() {
    // fhandle3 of 65 bytes.
    let mut msg = vec![0, 0, 0, 0, 0, 0, 0, 65];
    msg.resize(8 + 68 + 4, 0);
    assert!(matches!(
        Res::decode(MOUNTPROC3_MNT, Bytes::from(msg)),
        Err(ArgsError::GarbageArgs(Error::LengthTooLarge { .. }))
    ));
    // 17 auth flavors.
    let mut msg = vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 17];
    msg.resize(12 + 17 * 4, 0);
    assert!(matches!(
        Res::decode(MOUNTPROC3_MNT, Bytes::from(msg)),
        Err(ArgsError::GarbageArgs(Error::LengthTooLarge { .. }))
    ));
}

#[test]
fn mnt_failure_has_no_body() {
    let r = mountres3::Fail(mountstat3::MNT3ERR_ACCES);
    assert_eq!(&to_bytes(&r)[..], &[0, 0, 0, 13]);
    assert_eq!(r.status(), mountstat3::MNT3ERR_ACCES);
}

#[test]
fn fhstatus_wire_form() {
    let enc = to_bytes(&fhstatus::Ok([7; FHSIZE]));
    assert_eq!(enc.len(), 36);
    assert_eq!(&enc[..4], &[0, 0, 0, 0]);
    assert_eq!(&to_bytes(&fhstatus::Fail(13))[..], &[0, 0, 0, 13]);
}

#[test]
fn export_wire_form() {
    // One export "/x" open to group "g": true, "/x", (true, "g", false), false.
    let e: exports = List(vec![exportnode {
        ex_dir: Opaque(Bytes::from_static(b"/x")),
        ex_groups: List(vec![Opaque(Bytes::from_static(b"g"))]),
    }]);
    let enc = to_bytes(&e);
    assert_eq!(
        &enc[..],
        &[
            0, 0, 0, 1, 0, 0, 0, 2, b'/', b'x', 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, b'g', 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0
        ]
    );
}
