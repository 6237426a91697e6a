//! Fuzz target for the XDR primitives of `rnfs-xdr`.
//!
//! Input layout: byte 0 selects the mode.
//! * even: the rest is decoded as [`rnfs_fuzz::xdr_sample::Sample`] with `from_bytes`; if that
//!   succeeds, re-encoding must give back exactly the same bytes (strict XDR has one encoding per
//!   value) and `encoded_len` must agree.
//! * odd: `byte0 / 2 % 32 + 1` following bytes are a script of decoder operations, the remaining
//!   bytes are the message they run on. Every successful operation must consume exactly the bytes it
//!   claims to and those bytes must re-encode to themselves; the first error ends the script.
#![no_main]

use bytes::{BufMut, Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use rnfs_fuzz::xdr_sample::{Color, Sample};
use rnfs_xdr::{
    decode_list, encode_list, from_bytes, padded_len, put_opaque_fixed, put_opaque_var, to_bytes,
    Array, Decoder, Opaque, XdrEncode,
};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        round_trip(rest);
    } else {
        let n_ops = usize::from(mode / 2 % 32) + 1;
        let split = n_ops.min(rest.len());
        let (ops, msg) = rest.split_at(split);
        script(ops, msg);
    }
});

fn round_trip(msg: &[u8]) {
    let bytes = Bytes::copy_from_slice(msg);
    if let Ok(v) = from_bytes::<Sample>(bytes.clone()) {
        let again = to_bytes(&v);
        assert_eq!(again.len(), v.encoded_len(), "encoded_len disagrees");
        assert_eq!(again, bytes, "decode/encode is not the identity");
    }
    // The enum alone: declared values only, and they round-trip.
    if let Ok(c) = from_bytes::<Color>(bytes.clone()) {
        assert!(Color::ALL.contains(&c));
        assert_eq!(to_bytes(&c), bytes);
    }
}

fn script(ops: &[u8], msg: &[u8]) {
    let whole = Bytes::copy_from_slice(msg);
    let mut d = Decoder::new(whole.clone());
    for &op in ops {
        let before = d.remaining();
        let start = whole.len() - before;
        // What the operation consumed, re-encoded by us; `None` = the operation failed.
        let mut enc = BytesMut::new();
        let ok = match op % 16 {
            0 => d.u32().map(|v| enc.put_u32(v)).is_ok(),
            1 => d.i32().map(|v| enc.put_i32(v)).is_ok(),
            2 => d.u64().map(|v| enc.put_u64(v)).is_ok(),
            3 => d.i64().map(|v| enc.put_i64(v)).is_ok(),
            4 => d.bool().map(|v| v.encode(&mut enc)).is_ok(),
            5 => {
                let len = usize::from(op >> 4);
                d.opaque_fixed(len)
                    .map(|v| {
                        assert_eq!(v.len(), len);
                        put_opaque_fixed(&mut enc, &v);
                    })
                    .is_ok()
            }
            6 => {
                let max = usize::from(op >> 4) * 4;
                d.opaque_var(max)
                    .map(|v| {
                        assert!(v.len() <= max);
                        put_opaque_var(&mut enc, &v);
                    })
                    .is_ok()
            }
            7 => d
                .string(1024)
                .map(|v| {
                    assert!(v.len() <= 1024);
                    put_opaque_var(&mut enc, &v);
                })
                .is_ok(),
            8 => {
                let max = usize::from(op >> 4) + 1;
                let min = usize::from(op >> 6) * 4 + 1;
                d.array_len(max, min)
                    .map(|n| {
                        assert!(n <= max);
                        assert!(
                            n * min <= d.remaining(),
                            "count not checked against remaining"
                        );
                        enc.put_u32(u32::try_from(n).unwrap_or(u32::MAX));
                    })
                    .is_ok()
            }
            9 => d
                .decode::<Option<u32>>()
                .map(|v| v.encode(&mut enc))
                .is_ok(),
            10 => d
                .decode::<Array<u32, 8>>()
                .map(|v| {
                    assert!(v.0.len() <= 8);
                    v.encode(&mut enc);
                })
                .is_ok(),
            11 => d
                .decode::<Opaque<12>>()
                .map(|v| {
                    assert!(v.len() <= 12);
                    v.encode(&mut enc);
                })
                .is_ok(),
            12 => {
                let max = usize::from(op >> 4);
                decode_list(&mut d, max, |d| d.u32())
                    .map(|v| {
                        assert!(v.len() <= max);
                        encode_list(&mut enc, &v);
                    })
                    .is_ok()
            }
            13 => d.array::<3>().map(|v| v.encode(&mut enc)).is_ok(),
            14 => d.decode::<Color>().map(|v| v.encode(&mut enc)).is_ok(),
            _ => d.decode::<Sample>().map(|v| v.encode(&mut enc)).is_ok(),
        };
        if !ok {
            return;
        }
        let used = before - d.remaining();
        assert_eq!(used % 4, 0, "XDR items are multiples of four bytes");
        assert_eq!(used, padded_len(used));
        assert_eq!(
            &whole[start..start + used],
            &enc[..],
            "op {op}: consumed bytes do not re-encode to themselves"
        );
    }
    let left = d.remaining();
    match d.finish() {
        Ok(()) => assert_eq!(left, 0),
        Err(_) => assert!(left > 0),
    }
}
