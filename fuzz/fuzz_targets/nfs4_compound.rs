//! Fuzz target for the NFSv4.1 COMPOUND decoders of `rnfs-nfs4`, both sides.
//!
//! Input layout: byte 0 selects the side.
//! * even: the rest is COMPOUND arguments, read as the server reads them: the header
//!   ([`CompoundHeader::decode`]), then one [`ArgOp`] at a time until the count is reached, an
//!   operation fails to decode, or one is `Unsupported`/`Illegal` (whose arguments are never
//!   read). Each operation decoded must re-encode to what decodes back to itself, with
//!   `encoded_len` agreeing.
//! * odd: the rest is a COMPOUND4res, decoded as a client does ([`CompoundRes`]); a reply that
//!   decodes must re-encode to one that decodes back to the same value.
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
    if mode % 2 == 0 {
        args(msg);
    } else {
        results(msg);
    }
});

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
