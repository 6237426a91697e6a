//! Peeking at RPC message headers without decoding them: the one place the server reads a call's
//! numbers, credential and arguments (or a reply's status) before [`crate::decode_call`] runs.
//!
//! The transport needs these early: to track a request in flight, attribute its statistics, name
//! its client in logs and size its reply reservation. A peek checks only the layout, never the
//! meaning: the RPC version, the flavours and the XDR padding bytes are reported, not judged
//! (that is [`crate::decode_call`]'s job, which answers with the right rejection).
//!
//! Layouts (RFC 5531 §9): a call is `xid, msg_type = CALL, rpcvers, prog, vers, proc, cred, verf`
//! followed by the procedure's arguments; a reply is `xid, msg_type = REPLY, reply_stat`, then for
//! MSG_ACCEPTED `verf, accept_stat` and for MSG_DENIED `reject_stat`, each followed by the rest.
//! `cred` and `verf` are `opaque_auth`: a flavour and a body of at most 400 bytes (§8.2).
//!
//! Nothing from the wire is trusted: every length is checked against the limit and the bytes
//! present before it is used, no arithmetic can overflow, nothing panics and nothing is copied or
//! allocated (every body is a slice of the message).

use crate::auth::{AUTH_BODY_MAX_BYTES, AUTH_SYS, MACHINE_NAME_MAX_BYTES};
use crate::{MSG_ACCEPTED, MSG_CALL, MSG_DENIED, MSG_REPLY};

/// Why a message could not be peeked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeekError {
    /// The message ends before a field does.
    #[error("truncated message")]
    Truncated,
    /// A variable-length field claims more than its limit.
    #[error("length {len} is over the limit of {max} bytes")]
    TooLong { len: u32, max: usize },
    /// `msg_type` is not CALL (for a call peek) or not REPLY (for a reply peek).
    #[error("message type {0} is not the one expected")]
    MessageType(u32),
    /// `reply_stat` is neither MSG_ACCEPTED nor MSG_DENIED.
    #[error("unknown reply status {0}")]
    ReplyStat(u32),
}

/// A bounds-checked reader of XDR words and opaques over a borrowed slice (RFC 4506 §4).
#[derive(Debug, Clone, Copy)]
pub struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Cursor { rest: bytes }
    }

    /// Takes `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], PeekError> {
        if n > self.rest.len() {
            return Err(PeekError::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// Reads one big-endian word.
    pub fn u32(&mut self) -> Result<u32, PeekError> {
        let w = self.take(4)?;
        Ok(u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
    }

    /// Reads a variable-length opaque of at most `max` bytes and skips its padding (whose bytes
    /// are not checked: a peek does not judge).
    pub fn opaque(&mut self, max: usize) -> Result<&'a [u8], PeekError> {
        let len = self.u32()?;
        let n = usize::try_from(len)
            .ok()
            .filter(|n| *n <= max)
            .ok_or(PeekError::TooLong { len, max })?;
        let body = self.take(n)?;
        self.take((4 - n % 4) % 4)?;
        Ok(body)
    }

    /// Reads an `opaque_auth` (RFC 5531 §8.2): its flavour and body of at most 400 bytes.
    fn opaque_auth(&mut self) -> Result<(u32, &'a [u8]), PeekError> {
        Ok((self.u32()?, self.opaque(AUTH_BODY_MAX_BYTES)?))
    }

    /// What has not been read.
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }
}

/// Reads the xid and checks the message type: the two words every message opens with.
fn open(msg: &[u8], msg_type: u32) -> Result<(u32, Cursor<'_>), PeekError> {
    let mut c = Cursor::new(msg);
    let xid = c.u32()?;
    match c.u32()? {
        t if t == msg_type => Ok((xid, c)),
        other => Err(PeekError::MessageType(other)),
    }
}

/// What a call record holds, as slices of it (see the module docs for what is checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallPeek<'a> {
    pub xid: u32,
    /// The RPC version (not checked here: [`crate::decode_call`] answers RPC_MISMATCH).
    pub rpcvers: u32,
    pub prog: u32,
    pub vers: u32,
    pub proc_num: u32,
    pub cred_flavor: u32,
    /// The credential body (at most 400 bytes).
    pub cred_body: &'a [u8],
    pub verf_flavor: u32,
    /// The verifier body (at most 400 bytes).
    pub verf_body: &'a [u8],
    /// The procedure's arguments: everything after the verifier.
    pub args: &'a [u8],
}

impl<'a> CallPeek<'a> {
    /// Peeks at a call record (without record marker).
    pub fn parse(record: &'a [u8]) -> Result<Self, PeekError> {
        let (xid, mut c) = open(record, MSG_CALL)?;
        let (rpcvers, prog, vers, proc_num) = (c.u32()?, c.u32()?, c.u32()?, c.u32()?);
        let (cred_flavor, cred_body) = c.opaque_auth()?;
        let (verf_flavor, verf_body) = c.opaque_auth()?;
        Ok(CallPeek {
            xid,
            rpcvers,
            prog,
            vers,
            proc_num,
            cred_flavor,
            cred_body,
            verf_flavor,
            verf_body,
            args: c.rest(),
        })
    }

    /// The uid of an AUTH_SYS credential (`authsys_parms`: stamp, machine name, uid, ...; RFC 5531
    /// appendix A). Only the fields up to the uid are read: the rest may still be malformed.
    pub fn auth_sys_uid(&self) -> Option<u32> {
        if self.cred_flavor != AUTH_SYS {
            return None;
        }
        let mut c = Cursor::new(self.cred_body);
        c.u32().ok()?;
        c.opaque(MACHINE_NAME_MAX_BYTES).ok()?;
        c.u32().ok()
    }
}

/// The six fixed words that open a call header (xid, msg_type, rpcvers, prog, vers, proc), each
/// 0 where `record` is too short: for reports about records that may not be calls at all.
pub fn call_header_words(record: &[u8]) -> [u32; 6] {
    let mut c = Cursor::new(record);
    std::array::from_fn(|_| c.u32().unwrap_or(0))
}

/// The status part of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyStat<'a> {
    /// MSG_ACCEPTED: `rest` is what follows `accept_stat` (the results after SUCCESS, the
    /// supported versions after PROG_MISMATCH).
    Accepted {
        verf_flavor: u32,
        /// The verifier body (at most 400 bytes).
        verf_body: &'a [u8],
        accept_stat: u32,
        rest: &'a [u8],
    },
    /// MSG_DENIED: `rest` is what follows `reject_stat` (the supported versions after
    /// RPC_MISMATCH, the `auth_stat` after AUTH_ERROR).
    Denied { reject_stat: u32, rest: &'a [u8] },
}

/// What a reply message holds, as slices of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyPeek<'a> {
    pub xid: u32,
    pub stat: ReplyStat<'a>,
}

impl<'a> ReplyPeek<'a> {
    /// Peeks at a reply message (without record marker).
    pub fn parse(msg: &'a [u8]) -> Result<Self, PeekError> {
        let (xid, mut c) = open(msg, MSG_REPLY)?;
        let stat = match c.u32()? {
            MSG_ACCEPTED => {
                let (verf_flavor, verf_body) = c.opaque_auth()?;
                let accept_stat = c.u32()?;
                ReplyStat::Accepted {
                    verf_flavor,
                    verf_body,
                    accept_stat,
                    rest: c.rest(),
                }
            }
            MSG_DENIED => ReplyStat::Denied {
                reject_stat: c.u32()?,
                rest: c.rest(),
            },
            other => return Err(PeekError::ReplyStat(other)),
        };
        Ok(ReplyPeek { xid, stat })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::any_reply_header;
    use crate::{
        decode_call, decode_reply, encode_call, AuthSys, CallError, Credential, OpaqueAuth,
        ReplyHeader,
    };
    use bytes::{BufMut, Bytes, BytesMut};
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;

    fn words(ws: &[u32]) -> Vec<u8> {
        ws.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    fn sys(uid: u32, name: &'static [u8]) -> AuthSys {
        AuthSys {
            stamp: 7,
            machine_name: Bytes::from_static(name),
            uid,
            gid: 100,
            gids: vec![10, 20],
        }
    }

    fn call(cred: &OpaqueAuth, args: &[u8]) -> Bytes {
        let mut b = BytesMut::new();
        encode_call(&mut b, 0x1234, 100_003, 3, 6, cred);
        b.put_slice(args);
        b.freeze()
    }

    #[test]
    fn peeks_an_auth_sys_call_without_copying() {
        let cred = sys(1000, b"client").to_opaque();
        let rec = call(&cred, &[0, 0, 0, 4]);
        let p = CallPeek::parse(&rec).unwrap();
        assert_eq!(
            (p.xid, p.rpcvers, p.prog, p.vers, p.proc_num),
            (0x1234, 2, 100_003, 3, 6)
        );
        assert_eq!((p.cred_flavor, p.cred_body), (AUTH_SYS, &cred.body[..]));
        assert_eq!((p.verf_flavor, p.verf_body), (0, &[][..]));
        assert_eq!(p.args, &[0, 0, 0, 4]);
        assert_eq!(p.args.as_ptr(), rec[rec.len() - 4..].as_ptr());
        assert_eq!(p.auth_sys_uid(), Some(1000));
    }

    #[test]
    fn every_truncation_of_a_call_is_refused() {
        let rec = call(&sys(1, b"abcde").to_opaque(), &[]);
        for n in 0..rec.len() {
            assert_eq!(CallPeek::parse(&rec[..n]), Err(PeekError::Truncated), "{n}");
        }
        assert!(CallPeek::parse(&rec).is_ok());
    }

    #[test]
    fn lengths_from_the_wire_are_bounded() {
        // A credential claiming 401 bytes, then one claiming 4 GiB: refused before any read.
        for len in [401, u32::MAX] {
            let mut rec = words(&[1, 0, 2, 100_003, 3, 0, 1, len]);
            rec.extend_from_slice(&[0; 512]);
            let err = CallPeek::parse(&rec).unwrap_err();
            assert_eq!(err, PeekError::TooLong { len, max: 400 });
        }
        // A 400-byte verifier is fine.
        let mut rec = words(&[1, 0, 2, 100_003, 3, 0, 0, 0, 6, 400]);
        rec.extend_from_slice(&[0; 400]);
        assert_eq!(CallPeek::parse(&rec).unwrap().verf_body.len(), 400);
    }

    #[test]
    fn calls_and_replies_are_not_confused() {
        let mut reply = BytesMut::new();
        ReplyHeader::Success.encode(9, &mut reply);
        assert_eq!(CallPeek::parse(&reply), Err(PeekError::MessageType(1)));
        let rec = call(&OpaqueAuth::none(), &[]);
        assert_eq!(ReplyPeek::parse(&rec), Err(PeekError::MessageType(0)));
        let odd = words(&[9, 1, 2]);
        assert_eq!(ReplyPeek::parse(&odd), Err(PeekError::ReplyStat(2)));
    }

    #[test]
    fn auth_sys_uid_reads_up_to_the_uid_only() {
        let none = call(&OpaqueAuth::none(), &[]);
        assert_eq!(CallPeek::parse(&none).unwrap().auth_sys_uid(), None);
        // stamp, machine name "ab", uid; no gid or groups (decode_call would refuse it).
        let body = Bytes::from(words(&[5, 2, 0x6162_0000, 77]));
        let short = OpaqueAuth {
            flavor: AUTH_SYS,
            body,
        };
        let rec = call(&short, &[]);
        assert_eq!(CallPeek::parse(&rec).unwrap().auth_sys_uid(), Some(77));
        let cut = OpaqueAuth {
            flavor: AUTH_SYS,
            body: short.body.slice(..12),
        };
        let rec = call(&cut, &[]);
        assert_eq!(CallPeek::parse(&rec).unwrap().auth_sys_uid(), None);
    }

    #[test]
    fn header_words_are_zero_past_the_end() {
        assert_eq!(call_header_words(&[]), [0; 6]);
        assert_eq!(call_header_words(&words(&[7, 0, 2])), [7, 0, 2, 0, 0, 0]);
        let rec = call(&OpaqueAuth::none(), &[]);
        assert_eq!(call_header_words(&rec), [0x1234, 0, 2, 100_003, 3, 6]);
    }

    #[test]
    fn cursor_takes_opaques_and_their_padding() {
        let b = words(&[3, 0x6162_6300, 9]);
        let mut c = Cursor::new(&b);
        assert_eq!(c.opaque(3), Ok(&b"abc"[..]));
        assert_eq!(c.u32(), Ok(9));
        assert_eq!(c.rest(), &[][..]);
        let mut c = Cursor::new(&b);
        assert_eq!(c.opaque(2), Err(PeekError::TooLong { len: 3, max: 2 }));
        assert_eq!(Cursor::new(&b[..7]).opaque(3), Err(PeekError::Truncated));
    }

    /// The peek agrees with `decode_call` on every field of a call it accepts, and on the xid
    /// (and version) of one it refuses with a reply.
    fn agrees_with_decode_call(rec: &Bytes) -> Result<(), TestCaseError> {
        let peek = CallPeek::parse(rec);
        match decode_call(rec.clone()) {
            Ok((h, args)) => {
                let p = peek.map_err(|e| TestCaseError::fail(format!("peek: {e}")))?;
                prop_assert_eq!(
                    (p.xid, p.rpcvers, p.prog, p.vers, p.proc_num),
                    (h.xid, crate::RPC_VERSION, h.prog, h.vers, h.proc_num)
                );
                prop_assert_eq!(p.cred_flavor, h.credential.flavor());
                if let Credential::Sys(s) = &h.credential {
                    prop_assert_eq!(p.cred_body, &s.to_opaque().body[..]);
                    prop_assert_eq!(p.auth_sys_uid(), Some(s.uid));
                }
                prop_assert_eq!(p.verf_flavor, h.verifier.flavor);
                prop_assert_eq!(p.verf_body, &h.verifier.body[..]);
                prop_assert_eq!(p.args, &args[..]);
                prop_assert_eq!(p.args.as_ptr(), args.as_ptr());
            }
            Err(CallError::RpcMismatch { xid, version }) => {
                if let Ok(p) = peek {
                    prop_assert_eq!((p.xid, p.rpcvers), (xid, version));
                }
            }
            Err(CallError::Auth { xid, .. }) => {
                if let Ok(p) = peek {
                    prop_assert_eq!(p.xid, xid);
                }
            }
            Err(_) => {}
        }
        Ok(())
    }

    /// What a reply header peeks as: accepted?, accept/reject status, and the words after it.
    fn expected_stat(h: ReplyHeader) -> (bool, u32, Vec<u8>) {
        use crate::{accept_stat as a, reject_stat as r};
        match h {
            ReplyHeader::Success => (true, a::SUCCESS, vec![]),
            ReplyHeader::ProgUnavail => (true, a::PROG_UNAVAIL, vec![]),
            ReplyHeader::ProgMismatch { low, high } => {
                (true, a::PROG_MISMATCH, words(&[low, high]))
            }
            ReplyHeader::ProcUnavail => (true, a::PROC_UNAVAIL, vec![]),
            ReplyHeader::GarbageArgs => (true, a::GARBAGE_ARGS, vec![]),
            ReplyHeader::SystemErr => (true, a::SYSTEM_ERR, vec![]),
            ReplyHeader::RpcMismatch { low, high } => (false, r::RPC_MISMATCH, words(&[low, high])),
            ReplyHeader::AuthError(s) => (false, r::AUTH_ERROR, words(&[s as u32])),
        }
    }

    /// The peek agrees with `decode_reply` on every reply it accepts.
    fn agrees_with_decode_reply(msg: &Bytes) -> Result<(), TestCaseError> {
        let peek = ReplyPeek::parse(msg);
        let Ok((xid, h, results)) = decode_reply(msg.clone()) else {
            return Ok(());
        };
        let p = peek.map_err(|e| TestCaseError::fail(format!("peek: {e}")))?;
        prop_assert_eq!(p.xid, xid);
        let (accepted, stat, head) = expected_stat(h);
        let (got_accepted, got_stat, rest) = match p.stat {
            ReplyStat::Accepted {
                accept_stat, rest, ..
            } => (true, accept_stat, rest),
            ReplyStat::Denied { reject_stat, rest } => (false, reject_stat, rest),
        };
        prop_assert_eq!((got_accepted, got_stat), (accepted, stat));
        prop_assert_eq!(&rest[..head.len()], &head[..]);
        prop_assert_eq!(&rest[head.len()..], &results[..]);
        Ok(())
    }

    fn any_cred() -> impl Strategy<Value = OpaqueAuth> {
        let sys = (
            any::<u32>(),
            proptest::collection::vec(any::<u8>(), 0..=255),
            any::<u32>(),
            any::<u32>(),
            proptest::collection::vec(any::<u32>(), 0..=16),
        )
            .prop_map(|(stamp, name, uid, gid, gids)| {
                AuthSys {
                    stamp,
                    machine_name: name.into(),
                    uid,
                    gid,
                    gids,
                }
                .to_opaque()
            });
        prop_oneof![Just(OpaqueAuth::none()), sys]
    }

    proptest! {
        #[test]
        fn peek_agrees_with_encode_and_decode_call(
            xid in any::<u32>(), prog in any::<u32>(), vers in any::<u32>(), p in any::<u32>(),
            cred in any_cred(), args in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut b = BytesMut::new();
            encode_call(&mut b, xid, prog, vers, p, &cred);
            b.put_slice(&args);
            let rec = b.freeze();
            let peek = CallPeek::parse(&rec).unwrap();
            prop_assert_eq!((peek.xid, peek.prog, peek.vers, peek.proc_num), (xid, prog, vers, p));
            prop_assert_eq!((peek.cred_flavor, peek.cred_body), (cred.flavor, &cred.body[..]));
            prop_assert_eq!(peek.args, &args[..]);
            prop_assert!(decode_call(rec.clone()).is_ok());
            agrees_with_decode_call(&rec)?;
        }

        /// Calls with a few bytes changed or cut off: whatever decode_call accepts, the peek
        /// reads the same.
        #[test]
        fn peek_agrees_with_decode_call_on_damaged_calls(
            cred in any_cred(), args in proptest::collection::vec(any::<u8>(), 0..16),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            cut in any::<prop::sample::Index>(), do_cut in any::<bool>(),
        ) {
            let mut rec = call(&cred, &args).to_vec();
            for (at, v) in edits {
                let i = at.index(rec.len());
                rec[i] = v;
            }
            if do_cut {
                rec.truncate(cut.index(rec.len() + 1));
            }
            agrees_with_decode_call(&Bytes::from(rec))?;
        }

        #[test]
        fn peek_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let b = Bytes::from(data);
            agrees_with_decode_call(&b)?;
            agrees_with_decode_reply(&b)?;
            let _ = call_header_words(&b);
        }

        #[test]
        fn reply_peek_agrees_with_decode_reply(
            xid in any::<u32>(), h in any_reply_header(),
            tail in proptest::collection::vec(any::<u8>(), 0..16),
        ) {
            let mut b = BytesMut::new();
            h.encode(xid, &mut b);
            b.put_slice(&tail);
            let msg = b.freeze();
            prop_assert!(ReplyPeek::parse(&msg).is_ok());
            agrees_with_decode_reply(&msg)?;
        }
    }
}
