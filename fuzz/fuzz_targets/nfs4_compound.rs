//! Fuzz target for the NFSv4.1 COMPOUND decoders of `rnfs-nfs4`, both sides.
//!
//! Input layout: byte 0 selects the side (its value modulo 4).
//! * 0: the rest is COMPOUND arguments, read as the server reads them: the header
//!   ([`CompoundHeader::decode`]), then one [`ArgOp`] at a time until the count is reached, an
//!   operation fails to decode, or one is `Unsupported`/`Illegal` (whose arguments are never
//!   read). Each operation decoded must re-encode to what decodes back to itself, with
//!   `encoded_len` agreeing.
//! * 1: the rest is a COMPOUND4res, decoded as a client does ([`CompoundRes`]); a reply that
//!   decodes must re-encode to one that decodes back to the same value.
//! * 2: the rest is a client's reply to a callback, CB_COMPOUND4res, as the server's back channel
//!   decodes it; same round trip.
//! * 3: the rest is CB_COMPOUND4args, as a client (rnfsd's own, in tests) decodes it; same round
//!   trip.
//!
//! Checks, besides "no panic, no overflow, no huge allocation": the round trips above, and that
//! no decoder reads past its input (the decoder's position never exceeds the length).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rnfs_nfs4::{ArgOp, CompoundHeader, CompoundRes, Decoder, XdrDecode, XdrEncode};
use rnfs_xdr::to_bytes;

/// Most operations read from one input (the server stops far earlier, at its session limit).
const OPS_MAX: u32 = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let msg = Bytes::copy_from_slice(rest);
    match mode % 4 {
        0 => args(msg),
        1 => results(msg),
        2 => round_trip::<rnfs_nfs4::cb::CB_COMPOUND4res>(msg),
        _ => round_trip::<rnfs_nfs4::cb::CB_COMPOUND4args>(msg),
    }
});

/// A value that decodes re-encodes (with `encoded_len` agreeing) to what decodes back to it.
fn round_trip<T: XdrDecode + XdrEncode + PartialEq + std::fmt::Debug>(msg: Bytes) {
    let Ok(v) = rnfs_xdr::from_bytes::<T>(msg) else {
        return;
    };
    let enc = to_bytes(&v);
    assert_eq!(enc.len(), v.encoded_len(), "encoded_len of {v:?}");
    let back: T = rnfs_xdr::from_bytes(enc).expect("an encoded value decodes");
    assert_eq!(back, v);
}

fn args(msg: Bytes) {
    let len = msg.len();
    let mut d = Decoder::new(msg);
    let Ok(header) = CompoundHeader::decode(&mut d) else {
        return;
    };
    let mut h = Vec::new();
    header.encode(&mut h);
    let back = CompoundHeader::decode(&mut Decoder::new(Bytes::from(h))).expect("header re-decodes");
    assert_eq!(back, header);
    for _ in 0..header.op_count.min(OPS_MAX) {
        let before = d.remaining();
        let Ok(op) = ArgOp::decode(&mut d) else {
            return;
        };
        assert!(d.remaining() <= before && before <= len);
        let enc = to_bytes(&op);
        assert_eq!(enc.len(), op.encoded_len(), "encoded_len of {op:?}");
        let mut e = Decoder::new(enc);
        let again = ArgOp::decode(&mut e).expect("an encoded operation decodes");
        assert_eq!(again, op);
        assert_eq!(e.remaining(), 0, "re-decoding {op:?} left bytes");
        if matches!(op, ArgOp::Unsupported(_) | ArgOp::Illegal(_)) {
            return;
        }
    }
}

fn results(msg: Bytes) {
    let mut d = Decoder::new(msg);
    let Ok(res) = CompoundRes::decode(&mut d) else {
        return;
    };
    let enc = to_bytes(&res);
    assert_eq!(enc.len(), res.encoded_len());
    let mut e = Decoder::new(enc);
    let again = CompoundRes::decode(&mut e).expect("an encoded reply decodes");
    assert_eq!(again, res);
    assert_eq!(e.remaining(), 0);
}
