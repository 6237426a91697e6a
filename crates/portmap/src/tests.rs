use super::*;
use proptest::prelude::*;
use rnfs_xdr::{from_bytes, to_bytes};

fn opaque<const N: usize>(max_len: usize) -> impl Strategy<Value = Opaque<N>> {
    proptest::collection::vec(any::<u8>(), 0..=max_len.min(N)).prop_map(|v| Opaque(v.into()))
}

fn mapping_s() -> impl Strategy<Value = mapping> {
    any::<[u32; 4]>().prop_map(|[prog, vers, prot, port]| mapping {
        prog,
        vers,
        prot,
        port,
    })
}

fn args_s() -> impl Strategy<Value = Args> {
    prop_oneof![
        Just(Args::Null),
        mapping_s().prop_map(Args::Set),
        mapping_s().prop_map(Args::Unset),
        mapping_s().prop_map(Args::Getport),
        Just(Args::Dump),
        (any::<[u32; 3]>(), opaque(64)).prop_map(|([prog, vers, proc], args)| Args::Callit(
            call_args {
                prog,
                vers,
                proc,
                args
            }
        )),
    ]
}

fn res_s() -> impl Strategy<Value = Res> {
    prop_oneof![
        Just(Res::Null),
        any::<bool>().prop_map(Res::Set),
        any::<bool>().prop_map(Res::Unset),
        any::<u32>().prop_map(Res::Getport),
        proptest::collection::vec(mapping_s(), 0..20).prop_map(|v| Res::Dump(List(v))),
        (any::<u32>(), opaque(64)).prop_map(|(port, res)| Res::Callit(call_result { port, res })),
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
    fn decode_never_panics(procedure in 0u32..8, data in proptest::collection::vec(any::<u8>(), 0..96)) {
        let data = Bytes::from(data);
        let _ = Args::decode(procedure, data.clone());
        let _ = Res::decode(procedure, data);
    }
}

#[test]
fn unknown_procedure_is_not_garbage() {
    assert_eq!(
        Args::decode(6, Bytes::new()),
        Err(ArgsError::ProcUnavail(6))
    );
    assert!(matches!(
        Args::decode(PMAPPROC_GETPORT, Bytes::from_static(&[0; 12])),
        Err(ArgsError::GarbageArgs(_))
    ));
}

#[test]
fn trailing_bytes_rejected() {
    assert!(matches!(
        Args::decode(PMAPPROC_NULL, Bytes::from_static(&[0; 4])),
        Err(ArgsError::GarbageArgs(rnfs_xdr::Error::TrailingBytes(4)))
    ));
}

#[test]
fn getport_wire_form() {
    // GETPORT(NFS v3 over TCP): four big-endian words, RFC 1833 §3.1.
    let m = mapping {
        prog: 100_003,
        vers: 3,
        prot: IPPROTO_TCP,
        port: 0,
    };
    let enc = to_bytes(&m);
    assert_eq!(
        &enc[..],
        &[0, 1, 0x86, 0xa3, 0, 0, 0, 3, 0, 0, 0, 6, 0, 0, 0, 0]
    );
    assert_eq!(from_bytes::<mapping>(enc).unwrap(), m);
}

#[test]
fn callit_args_bounded() {
    let mut msg = vec![0u8; 12];
    msg.extend_from_slice(&((CALLIT_MAX_BYTES as u32) + 1).to_be_bytes());
    assert!(matches!(
        Args::decode(PMAPPROC_CALLIT, Bytes::from(msg)),
        Err(ArgsError::GarbageArgs(
            rnfs_xdr::Error::LengthTooLarge { .. }
        ))
    ));
}

#[test]
fn dump_list_bounded() {
    let l: pmaplist = List(vec![mapping::default(); PMAPLIST_MAX_ENTRIES + 1]);
    assert!(matches!(
        Res::decode(PMAPPROC_DUMP, to_bytes(&l)),
        Err(ArgsError::GarbageArgs(rnfs_xdr::Error::TooManyElements(_)))
    ));
    let ok: pmaplist = List(vec![mapping::default(); PMAPLIST_MAX_ENTRIES]);
    assert!(Res::decode(PMAPPROC_DUMP, to_bytes(&ok)).is_ok());
}
