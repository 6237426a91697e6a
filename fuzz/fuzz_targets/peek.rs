//! Fuzz target for `rnfs_oncrpc::peek`: the in-place call and reply header peeks the server uses
//! before decoding (request tracking, statistics, reply reservations).
//!
//! Input: one RPC message (no record marker).
//!
//! Checks, besides "no panic":
//! * a call peek reads exactly the layout of RFC 5531 §9: its fields are the message's words, its
//!   bodies are slices of the message at their places (at most 400 bytes, §8.2), and the
//!   arguments are the message's tail;
//! * whatever `decode_call` accepts, the peek reads the same xid, numbers, credential, verifier
//!   and arguments; an error reply `decode_call` chooses names the xid the peek read;
//! * whatever `decode_reply` accepts, the reply peek reads the same xid, status and rest.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use rnfs_oncrpc::peek::{call_header_words, CallPeek, Cursor, ReplyPeek, ReplyStat};
use rnfs_oncrpc::{decode_call, decode_reply, AuthSys, CallError, Credential};

fuzz_target!(|data: &[u8]| {
    let words = call_header_words(data);
    if let Ok(p) = CallPeek::parse(data) {
        check_layout(data, &p, words);
        // What the server reads from NFS arguments next (a file handle) never panics either.
        let _ = Cursor::new(p.args).opaque(64);
    }
    check_call(data);
    check_reply(data);
});

/// Where each part of a peeked call must sit in the message.
fn check_layout(data: &[u8], p: &CallPeek, words: [u32; 6]) {
    assert_eq!(words, [p.xid, 0, p.rpcvers, p.prog, p.vers, p.proc_num]);
    assert!(p.cred_body.len() <= 400 && p.verf_body.len() <= 400);
    let padded = |n: usize| n.div_ceil(4) * 4;
    let at = |s: &[u8]| s.as_ptr() as usize - data.as_ptr() as usize;
    let verf = 32 + padded(p.cred_body.len());
    let args = verf + 8 + padded(p.verf_body.len());
    assert_eq!(&data[24..28], &p.cred_flavor.to_be_bytes());
    assert_eq!(&data[28..32], &(p.cred_body.len() as u32).to_be_bytes());
    assert_eq!(&data[verf..verf + 4], &p.verf_flavor.to_be_bytes());
    assert_eq!(
        &data[verf + 4..verf + 8],
        &(p.verf_body.len() as u32).to_be_bytes()
    );
    if !p.cred_body.is_empty() {
        assert_eq!(at(p.cred_body), 32);
    }
    if !p.verf_body.is_empty() {
        assert_eq!(at(p.verf_body), verf + 8);
    }
    assert_eq!(
        data.len() - p.args.len(),
        args,
        "arguments are not the tail"
    );
}

fn check_call(data: &[u8]) {
    let peek = CallPeek::parse(data);
    match decode_call(Bytes::copy_from_slice(data)) {
        Ok((h, args)) => {
            let p = peek.expect("decode_call accepts what the peek refuses");
            assert_eq!(
                (p.xid, p.rpcvers, p.prog, p.vers, p.proc_num),
                (h.xid, 2, h.prog, h.vers, h.proc_num)
            );
            assert_eq!(p.cred_flavor, h.credential.flavor());
            if let Credential::Sys(sys) = &h.credential {
                assert_eq!(p.cred_body, &sys.to_opaque().body[..]);
                assert_eq!(p.auth_sys_uid(), Some(sys.uid));
            }
            assert_eq!(
                (p.verf_flavor, p.verf_body),
                (h.verifier.flavor, &h.verifier.body[..])
            );
            assert_eq!(p.args, &args[..]);
        }
        Err(e) => {
            let Ok(p) = peek else {
                return;
            };
            if let Some((xid, _)) = e.reply() {
                assert_eq!(p.xid, xid, "the rejection names another xid");
            }
            if let CallError::RpcMismatch { version, .. } = e {
                assert_eq!(p.rpcvers, version);
            }
            // A credential decode_call refused may still show a uid, but never another one.
            let sys = AuthSys::from_body(Bytes::copy_from_slice(p.cred_body));
            if let (Some(uid), Ok(sys)) = (p.auth_sys_uid(), sys) {
                assert_eq!(uid, sys.uid);
            }
        }
    }
}

fn check_reply(data: &[u8]) {
    let peek = ReplyPeek::parse(data);
    let Ok((xid, h, results)) = decode_reply(Bytes::copy_from_slice(data)) else {
        return;
    };
    let p = peek.expect("decode_reply accepts what the peek refuses");
    assert_eq!(p.xid, xid);
    let (accepted, stat, rest) = match p.stat {
        ReplyStat::Accepted {
            accept_stat, rest, ..
        } => (true, accept_stat, rest),
        ReplyStat::Denied { reject_stat, rest } => (false, reject_stat, rest),
    };
    // The oracle is our own encoding of the header decode_reply read (with an empty verifier):
    // reply_stat at byte 8, the accept or reject status at 20 or 12, then the header's own words
    // (supported versions, auth_stat) and the results.
    let mut ours = BytesMut::new();
    h.encode(xid, &mut ours);
    let at = if accepted { 20 } else { 12 };
    assert_eq!(&ours[8..12], &u32::from(!accepted).to_be_bytes());
    assert_eq!(&ours[at..at + 4], &stat.to_be_bytes());
    let words = &ours[at + 4..];
    assert_eq!(&rest[..words.len()], words);
    assert_eq!(&rest[words.len()..], &results[..]);
}
