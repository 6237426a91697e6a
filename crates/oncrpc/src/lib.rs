//! ONC RPC version 2 (RFC 5531) for rnfsd: message headers, authentication, record marking.
//!
//! # Design
//! * No I/O and no clocks: [`record::RecordReader`] is a state machine the server feeds with bytes
//!   it read; [`decode_call`] turns one record into a parsed header plus the procedure arguments
//!   (a zero-copy slice of the record); [`ReplyHeader`] encodes every reply the RFC defines.
//! * Every failure to parse a call is typed ([`CallError`]) and says what the caller must do: drop
//!   the message (it is not a call we can answer) or send a specific rejection (RPC_MISMATCH,
//!   AUTH_ERROR). Program-level errors (PROG_UNAVAIL, PROG_MISMATCH, PROC_UNAVAIL, GARBAGE_ARGS,
//!   SYSTEM_ERR) are chosen by the dispatcher, which knows the programs.
//! * Limits: the credential and verifier bodies are at most 400 bytes (RFC 5531 §8.2), AUTH_SYS
//!   machine names at most 255 bytes and 16 groups (appendix A); records are bounded in size and
//!   fragment count (see [`record`]).
//! * [`peek`] reads a call's numbers, credential and arguments (or a reply's status) in place,
//!   for the transport's bookkeeping before [`decode_call`] runs.
#![forbid(unsafe_code)]

pub mod auth;
pub mod peek;
pub mod record;

use bytes::{BufMut, Bytes};
use rnfs_xdr::{Decoder, XdrDecode, XdrEncode};

pub use auth::{AuthStat, AuthSys, Credential, OpaqueAuth};

/// The RPC protocol version this crate speaks (RFC 5531 §9).
pub const RPC_VERSION: u32 = 2;

const MSG_CALL: u32 = 0;
const MSG_REPLY: u32 = 1;
const MSG_ACCEPTED: u32 = 0;
const MSG_DENIED: u32 = 1;

/// `accept_stat` values (RFC 5531 §9).
pub mod accept_stat {
    pub const SUCCESS: u32 = 0;
    pub const PROG_UNAVAIL: u32 = 1;
    pub const PROG_MISMATCH: u32 = 2;
    pub const PROC_UNAVAIL: u32 = 3;
    pub const GARBAGE_ARGS: u32 = 4;
    pub const SYSTEM_ERR: u32 = 5;
}

/// `reject_stat` values (RFC 5531 §9).
pub mod reject_stat {
    pub const RPC_MISMATCH: u32 = 0;
    pub const AUTH_ERROR: u32 = 1;
}

/// The header of an RPC call (`rpc_msg` with a `call_body`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallHeader {
    pub xid: u32,
    pub prog: u32,
    pub vers: u32,
    pub proc_num: u32,
    pub credential: Credential,
    pub verifier: OpaqueAuth,
}

/// Why a record could not be taken as a call, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// Too short to hold a transaction id, or not a CALL: nothing can be answered (RFC 5531 §9
    /// gives no reply for a malformed message). The transport logs and drops it.
    #[error("not an RPC call: {0}")]
    NotACall(&'static str),
    /// The RPC version is not 2: answer MSG_DENIED / RPC_MISMATCH.
    #[error("RPC version {version} is not supported")]
    RpcMismatch { xid: u32, version: u32 },
    /// The credential or verifier is malformed or of a flavour we do not accept: answer
    /// MSG_DENIED / AUTH_ERROR with `stat`.
    #[error("authentication error {stat:?}")]
    Auth { xid: u32, stat: AuthStat },
}

impl CallError {
    /// The reply this error calls for, if any.
    pub fn reply(&self) -> Option<(u32, ReplyHeader)> {
        match *self {
            CallError::NotACall(_) => None,
            CallError::RpcMismatch { xid, .. } => Some((
                xid,
                ReplyHeader::RpcMismatch {
                    low: RPC_VERSION,
                    high: RPC_VERSION,
                },
            )),
            CallError::Auth { xid, stat } => Some((xid, ReplyHeader::AuthError(stat))),
        }
    }
}

/// Parses the header of a call record and returns it with the procedure's arguments, which are a
/// slice of `record` (no copy).
pub fn decode_call(record: Bytes) -> Result<(CallHeader, Bytes), CallError> {
    let mut d = Decoder::new(record);
    let xid = d
        .u32()
        .map_err(|_| CallError::NotACall("shorter than a transaction id"))?;
    match d.u32() {
        Ok(MSG_CALL) => {}
        Ok(_) => return Err(CallError::NotACall("message type is not CALL")),
        Err(_) => return Err(CallError::NotACall("truncated message type")),
    }
    let version = d
        .u32()
        .map_err(|_| CallError::NotACall("truncated RPC version"))?;
    if version != RPC_VERSION {
        return Err(CallError::RpcMismatch { xid, version });
    }
    let badcred = CallError::Auth {
        xid,
        stat: AuthStat::BadCred,
    };
    let (prog, vers, proc_num) = match (d.u32(), d.u32(), d.u32()) {
        (Ok(p), Ok(v), Ok(n)) => (p, v, n),
        _ => return Err(CallError::NotACall("truncated call header")),
    };
    let cred = OpaqueAuth::decode(&mut d).map_err(|_| badcred.clone())?;
    let verifier = OpaqueAuth::decode(&mut d).map_err(|_| CallError::Auth {
        xid,
        stat: AuthStat::BadVerf,
    })?;
    let credential =
        Credential::from_opaque(&cred).map_err(|stat| CallError::Auth { xid, stat })?;
    // We only accept verifiers we can check: AUTH_NONE (AUTH_SYS has none of its own).
    if verifier.flavor != auth::AUTH_NONE {
        return Err(CallError::Auth {
            xid,
            stat: AuthStat::BadVerf,
        });
    }
    Ok((
        CallHeader {
            xid,
            prog,
            vers,
            proc_num,
            credential,
            verifier,
        },
        d.into_rest(),
    ))
}

/// Encodes a call header (used by clients and tests).
pub fn encode_call<B: BufMut>(
    b: &mut B,
    xid: u32,
    prog: u32,
    vers: u32,
    proc_num: u32,
    cred: &OpaqueAuth,
) {
    b.put_u32(xid);
    b.put_u32(MSG_CALL);
    b.put_u32(RPC_VERSION);
    b.put_u32(prog);
    b.put_u32(vers);
    b.put_u32(proc_num);
    cred.encode(b);
    OpaqueAuth::none().encode(b);
}

/// Every reply header RFC 5531 §9 defines. A successful reply's results follow its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyHeader {
    Success,
    ProgUnavail,
    /// The program exists but not at this version; `low..=high` are the versions we serve.
    ProgMismatch {
        low: u32,
        high: u32,
    },
    ProcUnavail,
    GarbageArgs,
    SystemErr,
    /// MSG_DENIED: the RPC version is not supported; `low..=high` are the ones we speak.
    RpcMismatch {
        low: u32,
        high: u32,
    },
    /// MSG_DENIED: authentication failed.
    AuthError(AuthStat),
}

impl ReplyHeader {
    /// Encoded size, including the transaction id.
    pub fn encoded_len(&self) -> usize {
        match self {
            // xid, mtype, reply_stat, verf(flavor, len), accept_stat [, low, high]
            ReplyHeader::ProgMismatch { .. } => 32,
            ReplyHeader::Success
            | ReplyHeader::ProgUnavail
            | ReplyHeader::ProcUnavail
            | ReplyHeader::GarbageArgs
            | ReplyHeader::SystemErr => 24,
            // xid, mtype, reply_stat, reject_stat, low, high
            ReplyHeader::RpcMismatch { .. } => 24,
            // xid, mtype, reply_stat, reject_stat, auth_stat
            ReplyHeader::AuthError(_) => 20,
        }
    }

    /// Writes the reply header for transaction `xid`.
    pub fn encode<B: BufMut>(&self, xid: u32, b: &mut B) {
        b.put_u32(xid);
        b.put_u32(MSG_REPLY);
        let accepted = |b: &mut B, stat: u32| {
            b.put_u32(MSG_ACCEPTED);
            OpaqueAuth::none().encode(b);
            b.put_u32(stat);
        };
        match *self {
            ReplyHeader::Success => accepted(b, accept_stat::SUCCESS),
            ReplyHeader::ProgUnavail => accepted(b, accept_stat::PROG_UNAVAIL),
            ReplyHeader::ProgMismatch { low, high } => {
                accepted(b, accept_stat::PROG_MISMATCH);
                b.put_u32(low);
                b.put_u32(high);
            }
            ReplyHeader::ProcUnavail => accepted(b, accept_stat::PROC_UNAVAIL),
            ReplyHeader::GarbageArgs => accepted(b, accept_stat::GARBAGE_ARGS),
            ReplyHeader::SystemErr => accepted(b, accept_stat::SYSTEM_ERR),
            ReplyHeader::RpcMismatch { low, high } => {
                b.put_u32(MSG_DENIED);
                b.put_u32(reject_stat::RPC_MISMATCH);
                b.put_u32(low);
                b.put_u32(high);
            }
            ReplyHeader::AuthError(stat) => {
                b.put_u32(MSG_DENIED);
                b.put_u32(reject_stat::AUTH_ERROR);
                b.put_u32(stat as u32);
            }
        }
    }
}

/// Why a reply could not be parsed (client side).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    #[error("malformed reply: {0}")]
    Xdr(#[from] rnfs_xdr::Error),
    #[error("message is not a reply")]
    NotAReply,
    #[error("unknown reply status {0}")]
    UnknownStatus(u32),
}

/// Parses a reply: its transaction id, header, and (for `Success`) the results that follow.
pub fn decode_reply(record: Bytes) -> Result<(u32, ReplyHeader, Bytes), ReplyError> {
    let mut d = Decoder::new(record);
    let xid = d.u32()?;
    if d.u32()? != MSG_REPLY {
        return Err(ReplyError::NotAReply);
    }
    let header = match d.u32()? {
        MSG_ACCEPTED => {
            let _verifier = OpaqueAuth::decode(&mut d)?;
            match d.u32()? {
                accept_stat::SUCCESS => ReplyHeader::Success,
                accept_stat::PROG_UNAVAIL => ReplyHeader::ProgUnavail,
                accept_stat::PROG_MISMATCH => ReplyHeader::ProgMismatch {
                    low: d.u32()?,
                    high: d.u32()?,
                },
                accept_stat::PROC_UNAVAIL => ReplyHeader::ProcUnavail,
                accept_stat::GARBAGE_ARGS => ReplyHeader::GarbageArgs,
                accept_stat::SYSTEM_ERR => ReplyHeader::SystemErr,
                other => return Err(ReplyError::UnknownStatus(other)),
            }
        }
        MSG_DENIED => match d.u32()? {
            reject_stat::RPC_MISMATCH => ReplyHeader::RpcMismatch {
                low: d.u32()?,
                high: d.u32()?,
            },
            reject_stat::AUTH_ERROR => {
                let v = d.u32()?;
                ReplyHeader::AuthError(AuthStat::from_u32(v).ok_or(ReplyError::UnknownStatus(v))?)
            }
            other => return Err(ReplyError::UnknownStatus(other)),
        },
        other => return Err(ReplyError::UnknownStatus(other)),
    };
    Ok((xid, header, d.into_rest()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use proptest::prelude::*;

    fn call_bytes(rpcvers: u32, cred: &OpaqueAuth, args: &[u8]) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u32(0x1234);
        b.put_u32(MSG_CALL);
        b.put_u32(rpcvers);
        b.put_u32(100003);
        b.put_u32(3);
        b.put_u32(1);
        cred.encode(&mut b);
        OpaqueAuth::none().encode(&mut b);
        b.put_slice(args);
        b.freeze()
    }

    #[test]
    fn decodes_auth_sys_call_and_args_are_zero_copy() {
        let sys = AuthSys {
            stamp: 7,
            machine_name: Bytes::from_static(b"client"),
            uid: 1000,
            gid: 100,
            gids: vec![10, 20],
        };
        let msg = call_bytes(2, &sys.to_opaque(), &[0, 0, 0, 4]);
        let end = msg.as_ptr() as usize + msg.len();
        let (h, args) = decode_call(msg).unwrap();
        assert_eq!(h.xid, 0x1234);
        assert_eq!((h.prog, h.vers, h.proc_num), (100003, 3, 1));
        assert_eq!(h.credential, Credential::Sys(sys));
        assert_eq!(&args[..], &[0, 0, 0, 4]);
        assert_eq!(args.as_ptr() as usize, end - 4);
    }

    #[test]
    fn wrong_rpc_version_is_rpc_mismatch() {
        let err = decode_call(call_bytes(3, &OpaqueAuth::none(), &[])).unwrap_err();
        assert_eq!(
            err,
            CallError::RpcMismatch {
                xid: 0x1234,
                version: 3
            }
        );
        assert_eq!(
            err.reply(),
            Some((0x1234, ReplyHeader::RpcMismatch { low: 2, high: 2 }))
        );
    }

    #[test]
    fn malformed_auth_sys_is_badcred() {
        let bad = OpaqueAuth {
            flavor: auth::AUTH_SYS,
            body: Bytes::from_static(&[0, 0, 0, 1]),
        };
        let err = decode_call(call_bytes(2, &bad, &[])).unwrap_err();
        assert_eq!(
            err,
            CallError::Auth {
                xid: 0x1234,
                stat: AuthStat::BadCred
            }
        );
    }

    #[test]
    fn unknown_flavor_is_badcred() {
        let gss = OpaqueAuth {
            flavor: 6,
            body: Bytes::new(),
        };
        let err = decode_call(call_bytes(2, &gss, &[])).unwrap_err();
        assert_eq!(
            err,
            CallError::Auth {
                xid: 0x1234,
                stat: AuthStat::BadCred
            }
        );
    }

    #[test]
    fn replies_and_calls_are_not_confused() {
        let mut b = BytesMut::new();
        ReplyHeader::Success.encode(9, &mut b);
        assert!(matches!(
            decode_call(b.freeze()),
            Err(CallError::NotACall(_))
        ));
        assert!(matches!(
            decode_call(Bytes::from_static(&[1, 2])),
            Err(CallError::NotACall(_))
        ));
    }

    pub(crate) fn any_reply_header() -> impl Strategy<Value = ReplyHeader> {
        prop_oneof![
            Just(ReplyHeader::Success),
            Just(ReplyHeader::ProgUnavail),
            (any::<u32>(), any::<u32>())
                .prop_map(|(low, high)| ReplyHeader::ProgMismatch { low, high }),
            Just(ReplyHeader::ProcUnavail),
            Just(ReplyHeader::GarbageArgs),
            Just(ReplyHeader::SystemErr),
            (any::<u32>(), any::<u32>())
                .prop_map(|(low, high)| ReplyHeader::RpcMismatch { low, high }),
            proptest::sample::select(AuthStat::ALL).prop_map(ReplyHeader::AuthError),
        ]
    }

    proptest! {
        #[test]
        fn reply_header_round_trip(xid in any::<u32>(), h in any_reply_header(), tail in proptest::collection::vec(any::<u8>(), 0..16)) {
            let mut b = BytesMut::new();
            h.encode(xid, &mut b);
            prop_assert_eq!(b.len(), h.encoded_len());
            b.put_slice(&tail);
            let (x, back, rest) = decode_reply(b.freeze()).unwrap();
            prop_assert_eq!((x, back), (xid, h));
            prop_assert_eq!(&rest[..], &tail[..]);
        }

        #[test]
        fn call_round_trip(xid in any::<u32>(), prog in any::<u32>(), vers in any::<u32>(), p in any::<u32>(),
                           uid in any::<u32>(), gid in any::<u32>(), gids in proptest::collection::vec(any::<u32>(), 0..=16),
                           name in proptest::collection::vec(any::<u8>(), 0..=255)) {
            let sys = AuthSys { stamp: 1, machine_name: name.into(), uid, gid, gids };
            let mut b = BytesMut::new();
            encode_call(&mut b, xid, prog, vers, p, &sys.to_opaque());
            let (h, args) = decode_call(b.freeze()).unwrap();
            prop_assert!(args.is_empty());
            prop_assert_eq!(h, CallHeader { xid, prog, vers, proc_num: p, credential: Credential::Sys(sys), verifier: OpaqueAuth::none() });
        }

        #[test]
        fn decode_call_never_panics(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_call(Bytes::from(data));
        }
    }
}
