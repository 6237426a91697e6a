//! Fuzz target for `rnfs-oncrpc`: the TCP record-marking reader, the call-header decoder and the
//! reply header codec.
//!
//! Input: byte 0 = fragment limit (`% 16 + 1`), byte 1 = record-size limit (`16 << (b % 12)`),
//! byte 2 = feed chunk size (`+ 1`), rest = the byte stream of a TCP connection.
//!
//! Checks:
//! * the reader, fed the whole stream at once and fed it in chunks, gives exactly the records and
//!   the error that a straightforward model of RFC 5531 §11 gives (same limits);
//! * every record's call header either decodes, and then re-encodes to the record's bytes (the
//!   arguments being the record's tail), or fails with an error whose reply (if any) carries the
//!   record's xid and survives an encode/decode round trip;
//! * every record that decodes as a reply survives an encode/decode round trip.
#![no_main]

use bytes::{BufMut, Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use rnfs_oncrpc::auth::AUTH_NONE;
use rnfs_oncrpc::record::{RecordError, RecordReader};
use rnfs_oncrpc::{decode_call, decode_reply, CallError, Credential, RPC_VERSION};
use rnfs_xdr::XdrEncode;

#[derive(Debug, PartialEq)]
struct Outcome {
    records: Vec<Bytes>,
    error: Option<RecordError>,
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let max_frags = usize::from(data[0] % 16) + 1;
    let max_bytes = 16usize << (data[1] % 12);
    let chunk = usize::from(data[2]) + 1;
    let stream = &data[3..];

    let expected = model(stream, max_bytes, max_frags);
    let whole = feed(stream, stream.len().max(1), max_bytes, max_frags);
    assert_eq!(
        whole, expected,
        "reader (whole stream) disagrees with the model"
    );
    let chunked = feed(stream, chunk, max_bytes, max_frags);
    assert_eq!(
        chunked, expected,
        "reader (chunks of {chunk}) disagrees with the model"
    );

    for rec in expected.records {
        assert!(rec.len() <= max_bytes);
        check_call(&rec);
        check_reply(&rec);
    }
});

/// RFC 5531 §11, written out plainly: a record is fragments up to one with the top bit set; the
/// limits are checked as soon as a fragment header is seen.
fn model(s: &[u8], max_bytes: usize, max_frags: usize) -> Outcome {
    let mut records = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut frags = 0usize;
    let mut pos = 0usize;
    while s.len() - pos >= 4 {
        let marker = u32::from_be_bytes([s[pos], s[pos + 1], s[pos + 2], s[pos + 3]]);
        let last = marker >> 31 == 1;
        let len = (marker & 0x7fff_ffff) as usize;
        let total = current.len() as u64 + len as u64;
        if total > max_bytes as u64 {
            let error = RecordError::TooLarge {
                claimed_bytes: total,
                max_bytes,
            };
            return Outcome {
                records,
                error: Some(error),
            };
        }
        frags += 1;
        if frags > max_frags {
            let error = RecordError::TooManyFragments { max: max_frags };
            return Outcome {
                records,
                error: Some(error),
            };
        }
        if s.len() - pos - 4 < len {
            break;
        }
        current.extend_from_slice(&s[pos + 4..pos + 4 + len]);
        pos += 4 + len;
        if last {
            records.push(Bytes::from(std::mem::take(&mut current)));
            frags = 0;
        }
    }
    Outcome {
        records,
        error: None,
    }
}

fn feed(s: &[u8], chunk: usize, max_bytes: usize, max_frags: usize) -> Outcome {
    let mut reader = RecordReader::new(max_bytes, max_frags);
    let mut input = BytesMut::new();
    let mut records = Vec::new();
    for piece in s.chunks(chunk) {
        input.extend_from_slice(piece);
        loop {
            match reader.next_record(&mut input) {
                Ok(Some(r)) => records.push(r),
                Ok(None) => break,
                Err(e) => {
                    return Outcome {
                        records,
                        error: Some(e),
                    }
                }
            }
        }
        assert!(reader.partial_bytes() <= max_bytes);
    }
    Outcome {
        records,
        error: None,
    }
}

fn check_call(rec: &Bytes) {
    match decode_call(rec.clone()) {
        Ok((h, args)) => {
            assert!(rec.ends_with(&args), "arguments are not the record's tail");
            assert_eq!(h.verifier.flavor, AUTH_NONE);
            let mut head = BytesMut::new();
            head.put_u32(h.xid);
            head.put_u32(0);
            head.put_u32(RPC_VERSION);
            head.put_u32(h.prog);
            head.put_u32(h.vers);
            head.put_u32(h.proc_num);
            let mut tail = BytesMut::new();
            h.verifier.encode(&mut tail);
            tail.put_slice(&args);
            match &h.credential {
                Credential::Sys(sys) => {
                    assert!(sys.machine_name.len() <= 255);
                    assert!(sys.gids.len() <= 16);
                    let cred = sys.to_opaque();
                    assert!(cred.body.len() <= 400);
                    cred.encode(&mut head);
                    head.put_slice(&tail);
                    assert_eq!(&head[..], &rec[..], "AUTH_SYS call does not re-encode");
                }
                Credential::None => {
                    // The AUTH_NONE body is not kept; the rest must still line up.
                    assert!(rec.starts_with(&head), "call header does not re-encode");
                    assert_eq!(&rec[24..28], &AUTH_NONE.to_be_bytes());
                    assert!(rec.ends_with(&tail), "verifier/arguments do not re-encode");
                }
            }
        }
        Err(e) => {
            if let CallError::RpcMismatch { version, .. } = e {
                assert_ne!(version, RPC_VERSION);
            }
            if let Some((xid, header)) = e.reply() {
                assert_eq!(&rec[..4], &xid.to_be_bytes(), "reply to the wrong xid");
                let mut b = BytesMut::new();
                header.encode(xid, &mut b);
                assert_eq!(b.len(), header.encoded_len());
                let (x2, h2, rest) = decode_reply(b.freeze()).expect("our own reply must parse");
                assert_eq!((x2, h2), (xid, header));
                assert!(rest.is_empty());
            }
        }
    }
}

fn check_reply(rec: &Bytes) {
    if let Ok((xid, header, rest)) = decode_reply(rec.clone()) {
        assert!(rec.ends_with(&rest));
        let mut b = BytesMut::new();
        header.encode(xid, &mut b);
        assert_eq!(b.len(), header.encoded_len());
        b.put_slice(&rest);
        let again = decode_reply(b.freeze()).expect("re-encoded reply must parse");
        assert_eq!(again, (xid, header, rest));
    }
}
