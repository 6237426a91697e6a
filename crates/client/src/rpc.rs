//! The client's side of ONC RPC v2 (RFC 5531): call headers (§9), reply parsing (§9), AUTH_NONE
//! and AUTH_SYS credentials (§8.2, appendix A) and TCP record marking (§11).
//!
//! This is deliberately a small, self-contained copy of what the client needs, so the client does
//! not depend on the server-side RPC crate it is used to test.

use std::io::{self, Read, Write};

use bytes::{BufMut, Bytes, BytesMut};
use rnfs_xdr::{put_opaque_var, Decoder};

/// The RPC protocol version (RFC 5531 §9).
pub const RPC_VERSION: u32 = 2;
const MSG_CALL: u32 = 0;
const MSG_REPLY: u32 = 1;
const MSG_ACCEPTED: u32 = 0;
const MSG_DENIED: u32 = 1;

/// Authentication flavor numbers (RFC 5531 §8.2).
pub const AUTH_NONE: u32 = 0;
pub const AUTH_SYS: u32 = 1;

/// Largest credential or verifier body (RFC 5531 §8.2).
pub const MAX_AUTH_BYTES: usize = 400;
/// AUTH_SYS limits (RFC 5531 appendix A).
pub const AUTH_SYS_MAX_MACHINENAME: usize = 255;
pub const AUTH_SYS_MAX_GIDS: usize = 16;

/// Bit of a record-marking word that flags the last fragment of a record (RFC 5531 §11).
pub const LAST_FRAGMENT: u32 = 0x8000_0000;
/// Most fragments accepted in one record; guards against endless empty fragments.
pub const MAX_FRAGMENTS: usize = 4096;

/// `auth_stat` values of an AUTH_ERROR rejection (RFC 5531 §9).
pub mod auth_stat {
    pub const AUTH_OK: u32 = 0;
    pub const AUTH_BADCRED: u32 = 1;
    pub const AUTH_REJECTEDCRED: u32 = 2;
    pub const AUTH_BADVERF: u32 = 3;
    pub const AUTH_REJECTEDVERF: u32 = 4;
    pub const AUTH_TOOWEAK: u32 = 5;
    pub const AUTH_INVALIDRESP: u32 = 6;
    pub const AUTH_FAILED: u32 = 7;
}

/// The credential sent with each call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Auth {
    /// AUTH_NONE.
    #[default]
    None,
    /// AUTH_SYS (historically AUTH_UNIX).
    Sys {
        stamp: u32,
        machinename: Bytes,
        uid: u32,
        gid: u32,
        gids: Vec<u32>,
    },
    /// Any flavor and body, sent as given: lets tests present bad or unknown credentials.
    Raw { flavor: u32, body: Bytes },
}

impl Auth {
    fn flavor(&self) -> u32 {
        match self {
            Auth::None => AUTH_NONE,
            Auth::Sys { .. } => AUTH_SYS,
            Auth::Raw { flavor, .. } => *flavor,
        }
    }

    fn encode_body(&self, b: &mut BytesMut) {
        match self {
            Auth::None => b.put_u32(0),
            Auth::Sys {
                stamp,
                machinename,
                uid,
                gid,
                gids,
            } => {
                let mut body = BytesMut::new();
                body.put_u32(*stamp);
                put_opaque_var(&mut body, machinename);
                body.put_u32(*uid);
                body.put_u32(*gid);
                body.put_u32(gids.len() as u32);
                for g in gids {
                    body.put_u32(*g);
                }
                put_opaque_var(b, &body);
            }
            Auth::Raw { body, .. } => put_opaque_var(b, body),
        }
    }
}

/// Encodes a complete call message (without record marking): header, AUTH_NONE verifier, `args`.
pub fn encode_call(xid: u32, prog: u32, vers: u32, proc: u32, auth: &Auth, args: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(64 + args.len());
    b.put_u32(xid);
    b.put_u32(MSG_CALL);
    b.put_u32(RPC_VERSION);
    b.put_u32(prog);
    b.put_u32(vers);
    b.put_u32(proc);
    b.put_u32(auth.flavor());
    auth.encode_body(&mut b);
    b.put_u32(AUTH_NONE); // verifier
    b.put_u32(0);
    b.put_slice(args);
    b.freeze()
}

/// What the server said about a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyStatus {
    /// Accepted and executed; the procedure's encoded results.
    Success(Bytes),
    ProgUnavail,
    ProgMismatch {
        low: u32,
        high: u32,
    },
    ProcUnavail,
    GarbageArgs,
    SystemErr,
    /// Denied: the server does not speak this RPC version.
    RpcMismatch {
        low: u32,
        high: u32,
    },
    /// Denied: authentication failed with this `auth_stat` (see [`auth_stat`]).
    AuthError(u32),
}

impl std::fmt::Display for ReplyStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplyStatus::Success(r) => write!(f, "SUCCESS ({} bytes)", r.len()),
            ReplyStatus::ProgUnavail => write!(f, "PROG_UNAVAIL"),
            ReplyStatus::ProgMismatch { low, high } => write!(f, "PROG_MISMATCH {low}..={high}"),
            ReplyStatus::ProcUnavail => write!(f, "PROC_UNAVAIL"),
            ReplyStatus::GarbageArgs => write!(f, "GARBAGE_ARGS"),
            ReplyStatus::SystemErr => write!(f, "SYSTEM_ERR"),
            ReplyStatus::RpcMismatch { low, high } => write!(f, "RPC_MISMATCH {low}..={high}"),
            ReplyStatus::AuthError(s) => write!(f, "AUTH_ERROR {s}"),
        }
    }
}

/// A parsed reply message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcReply {
    pub xid: u32,
    /// The server's verifier (flavor, body); `None` for a denied call, which carries none.
    pub verf: Option<(u32, Bytes)>,
    pub status: ReplyStatus,
}

/// Parses one reply message (one record, or one UDP datagram).
pub fn decode_reply(msg: Bytes) -> rnfs_xdr::Result<RpcReply> {
    let mut d = Decoder::new(msg);
    let xid = d.u32()?;
    let mtype = d.u32()?;
    if mtype != MSG_REPLY {
        return Err(rnfs_xdr::Error::InvalidEnum {
            type_name: "msg_type",
            value: mtype.into(),
        });
    }
    match d.u32()? {
        MSG_ACCEPTED => {
            let flavor = d.u32()?;
            let body = d.opaque_var(MAX_AUTH_BYTES)?;
            let status = match d.u32()? {
                0 => ReplyStatus::Success(d.into_rest()),
                1 => ReplyStatus::ProgUnavail,
                2 => ReplyStatus::ProgMismatch {
                    low: d.u32()?,
                    high: d.u32()?,
                },
                3 => ReplyStatus::ProcUnavail,
                4 => ReplyStatus::GarbageArgs,
                5 => ReplyStatus::SystemErr,
                v => {
                    return Err(rnfs_xdr::Error::InvalidEnum {
                        type_name: "accept_stat",
                        value: v.into(),
                    })
                }
            };
            Ok(RpcReply {
                xid,
                verf: Some((flavor, body)),
                status,
            })
        }
        MSG_DENIED => {
            let status = match d.u32()? {
                0 => ReplyStatus::RpcMismatch {
                    low: d.u32()?,
                    high: d.u32()?,
                },
                1 => ReplyStatus::AuthError(d.u32()?),
                v => {
                    return Err(rnfs_xdr::Error::InvalidEnum {
                        type_name: "reject_stat",
                        value: v.into(),
                    })
                }
            };
            Ok(RpcReply {
                xid,
                verf: None,
                status,
            })
        }
        v => Err(rnfs_xdr::Error::InvalidEnum {
            type_name: "reply_stat",
            value: v.into(),
        }),
    }
}

/// A parsed call message, for the small services a client runs itself (an NLM GRANTED callback
/// service and its portmapper). The credential and verifier are skipped, not checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcCall {
    pub xid: u32,
    pub rpcvers: u32,
    pub prog: u32,
    pub vers: u32,
    pub proc: u32,
    /// The procedure's encoded arguments.
    pub args: Bytes,
}

/// Parses one call message (one UDP datagram, or one record).
pub fn decode_call(msg: Bytes) -> rnfs_xdr::Result<RpcCall> {
    let mut d = Decoder::new(msg);
    let xid = d.u32()?;
    let mtype = d.u32()?;
    if mtype != MSG_CALL {
        return Err(rnfs_xdr::Error::InvalidEnum {
            type_name: "msg_type",
            value: mtype.into(),
        });
    }
    let rpcvers = d.u32()?;
    let prog = d.u32()?;
    let vers = d.u32()?;
    let proc = d.u32()?;
    for _ in 0..2 {
        // Credential, then verifier: flavor and body.
        d.u32()?;
        d.opaque_var(MAX_AUTH_BYTES)?;
    }
    Ok(RpcCall {
        xid,
        rpcvers,
        prog,
        vers,
        proc,
        args: d.into_rest(),
    })
}

/// Encodes a complete reply message (without record marking) with an AUTH_NONE verifier for an
/// accepted call: the inverse of [`decode_reply`].
pub fn encode_reply(xid: u32, status: &ReplyStatus) -> Bytes {
    let mut b = BytesMut::with_capacity(64);
    b.put_u32(xid);
    b.put_u32(MSG_REPLY);
    let accepted = |b: &mut BytesMut, stat: u32| {
        b.put_u32(MSG_ACCEPTED);
        b.put_u32(AUTH_NONE);
        b.put_u32(0);
        b.put_u32(stat);
    };
    match status {
        ReplyStatus::Success(res) => {
            accepted(&mut b, 0);
            b.put_slice(res);
        }
        ReplyStatus::ProgUnavail => accepted(&mut b, 1),
        ReplyStatus::ProgMismatch { low, high } => {
            accepted(&mut b, 2);
            b.put_u32(*low);
            b.put_u32(*high);
        }
        ReplyStatus::ProcUnavail => accepted(&mut b, 3),
        ReplyStatus::GarbageArgs => accepted(&mut b, 4),
        ReplyStatus::SystemErr => accepted(&mut b, 5),
        ReplyStatus::RpcMismatch { low, high } => {
            b.put_u32(MSG_DENIED);
            b.put_u32(0);
            b.put_u32(*low);
            b.put_u32(*high);
        }
        ReplyStatus::AuthError(stat) => {
            b.put_u32(MSG_DENIED);
            b.put_u32(1);
            b.put_u32(*stat);
        }
    }
    b.freeze()
}

/// Writes `msg` as one record, split into fragments of at most `max_fragment` bytes (at least 1).
/// Servers must reassemble fragments, so tests can choose small ones on purpose.
pub fn write_record<W: Write>(w: &mut W, msg: &[u8], max_fragment: usize) -> io::Result<()> {
    let max_fragment = max_fragment.clamp(1, (LAST_FRAGMENT - 1) as usize);
    let mut out = Vec::with_capacity(msg.len() + 4 * (1 + msg.len() / max_fragment));
    let mut chunks = msg.chunks(max_fragment).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&LAST_FRAGMENT.to_be_bytes());
    }
    while let Some(chunk) = chunks.next() {
        let last = if chunks.peek().is_none() {
            LAST_FRAGMENT
        } else {
            0
        };
        out.extend_from_slice(&(last | chunk.len() as u32).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    w.write_all(&out)?;
    w.flush()
}

/// Reads one record, reassembling its fragments. A record longer than `max_len` bytes, or of more
/// than [`MAX_FRAGMENTS`] fragments, is refused before its data is read.
pub fn read_record<R: Read>(r: &mut R, max_len: usize) -> io::Result<Bytes> {
    let mut out = BytesMut::new();
    for _ in 0..MAX_FRAGMENTS {
        let mut mark = [0u8; 4];
        r.read_exact(&mut mark)?;
        let mark = u32::from_be_bytes(mark);
        let len = (mark & !LAST_FRAGMENT) as usize;
        if out.len().saturating_add(len) > max_len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "record of more than {max_len} bytes ({} + {len})",
                    out.len()
                ),
            ));
        }
        let start = out.len();
        out.resize(start + len, 0);
        r.read_exact(&mut out[start..])?;
        if mark & LAST_FRAGMENT != 0 {
            return Ok(out.freeze());
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        format!("record of more than {MAX_FRAGMENTS} fragments"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn words(b: &[u8]) -> Vec<u32> {
        b.chunks(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    #[test]
    fn call_header_auth_none() {
        let m = encode_call(0x1234, 100_003, 3, 1, &Auth::None, &[0, 0, 0, 0]);
        assert_eq!(words(&m), vec![0x1234, 0, 2, 100_003, 3, 1, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn call_header_auth_sys() {
        let auth = Auth::Sys {
            stamp: 7,
            machinename: Bytes::from_static(b"host1"),
            uid: 1000,
            gid: 100,
            gids: vec![100, 4],
        };
        let m = encode_call(1, 100_005, 3, 1, &auth, &[]);
        // body: stamp, len 5, "host1"+3 pad (2 words), uid, gid, 2, 100, 4 = 9 words = 36 bytes.
        assert_eq!(
            words(&m),
            vec![
                1,
                0,
                2,
                100_005,
                3,
                1,
                AUTH_SYS,
                36,
                7,
                5,
                u32::from_be_bytes(*b"host"),
                u32::from_be_bytes([b'1', 0, 0, 0]),
                1000,
                100,
                2,
                100,
                4,
                0,
                0
            ]
        );
    }

    fn reply(words: &[u32], rest: &[u8]) -> Bytes {
        let mut v: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
        v.extend_from_slice(rest);
        Bytes::from(v)
    }

    #[test]
    fn parses_every_reply_kind() {
        let ok = decode_reply(reply(&[9, 1, 0, 0, 0, 0], &[1, 2, 3, 4])).unwrap();
        assert_eq!(ok.xid, 9);
        assert_eq!(ok.verf, Some((0, Bytes::new())));
        assert_eq!(
            ok.status,
            ReplyStatus::Success(Bytes::from_static(&[1, 2, 3, 4]))
        );
        let cases: &[(&[u32], ReplyStatus)] = &[
            (&[1, 1, 0, 0, 0, 1], ReplyStatus::ProgUnavail),
            (
                &[1, 1, 0, 0, 0, 2, 3, 3],
                ReplyStatus::ProgMismatch { low: 3, high: 3 },
            ),
            (&[1, 1, 0, 0, 0, 3], ReplyStatus::ProcUnavail),
            (&[1, 1, 0, 0, 0, 4], ReplyStatus::GarbageArgs),
            (&[1, 1, 0, 0, 0, 5], ReplyStatus::SystemErr),
            (
                &[1, 1, 1, 0, 2, 2],
                ReplyStatus::RpcMismatch { low: 2, high: 2 },
            ),
            (
                &[1, 1, 1, 1, auth_stat::AUTH_TOOWEAK],
                ReplyStatus::AuthError(auth_stat::AUTH_TOOWEAK),
            ),
        ];
        for (w, want) in cases {
            assert_eq!(&decode_reply(reply(w, &[])).unwrap().status, want);
        }
        // A verifier with a body.
        let r = decode_reply(reply(&[1, 1, 0, 1, 4, 0xabcd, 0], &[])).unwrap();
        assert_eq!(r.verf, Some((1, Bytes::from_static(&[0, 0, 0xab, 0xcd]))));
    }

    #[test]
    fn rejects_malformed_replies() {
        assert!(decode_reply(reply(&[1, 0, 0], &[])).is_err()); // a CALL, not a reply
        assert!(decode_reply(reply(&[1, 1, 2], &[])).is_err()); // bad reply_stat
        assert!(decode_reply(reply(&[1, 1, 0, 0, 0, 6], &[])).is_err()); // bad accept_stat
        assert!(decode_reply(reply(&[1, 1, 1, 2], &[])).is_err()); // bad reject_stat
        assert!(decode_reply(reply(&[1, 1, 0, 0, 401], &[])).is_err()); // verifier too long
        assert!(decode_reply(reply(&[1, 1, 0, 0, 0, 2, 3], &[])).is_err()); // truncated
    }

    #[test]
    fn call_and_reply_round_trip() {
        let auth = Auth::Sys {
            stamp: 1,
            machinename: Bytes::from_static(b"h"),
            uid: 0,
            gid: 0,
            gids: vec![],
        };
        let m = encode_call(7, 100_021, 4, 5, &auth, &[9, 9, 9, 9]);
        let c = decode_call(m).unwrap();
        assert_eq!(
            (c.xid, c.rpcvers, c.prog, c.vers, c.proc),
            (7, 2, 100_021, 4, 5)
        );
        assert_eq!(&c.args[..], &[9, 9, 9, 9]);
        assert!(
            decode_call(reply(&[1, 1, 0], &[])).is_err(),
            "a reply, not a call"
        );
        for status in [
            ReplyStatus::Success(Bytes::from_static(&[0, 0, 0, 1])),
            ReplyStatus::ProgUnavail,
            ReplyStatus::ProgMismatch { low: 4, high: 4 },
            ReplyStatus::ProcUnavail,
            ReplyStatus::GarbageArgs,
            ReplyStatus::SystemErr,
            ReplyStatus::RpcMismatch { low: 2, high: 2 },
            ReplyStatus::AuthError(auth_stat::AUTH_TOOWEAK),
        ] {
            let r = decode_reply(encode_reply(3, &status)).unwrap();
            assert_eq!((r.xid, &r.status), (3, &status));
        }
    }

    #[test]
    fn record_reassembles_fragments() {
        // Three fragments: 2 + 0 + 3 bytes.
        let wire = [
            0, 0, 0, 2, b'a', b'b', 0, 0, 0, 0, 0x80, 0, 0, 3, b'c', b'd', b'e',
        ];
        let rec = read_record(&mut &wire[..], 100).unwrap();
        assert_eq!(&rec[..], b"abcde");
    }

    #[test]
    fn record_size_is_bounded() {
        let wire = [0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0x80, 0, 0, 8];
        let err = read_record(&mut &wire[..], 12).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // A huge length is refused without reading (or allocating) its data.
        let wire = [0xff, 0xff, 0xff, 0xff];
        let err = read_record(&mut &wire[..], 1 << 20).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn endless_empty_fragments_refused() {
        let wire = vec![0u8; 4 * (MAX_FRAGMENTS + 1)];
        let err = read_record(&mut &wire[..], 100).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn empty_record() {
        let mut out = Vec::new();
        write_record(&mut out, &[], 4).unwrap();
        assert_eq!(out, vec![0x80, 0, 0, 0]);
        assert_eq!(read_record(&mut &out[..], 0).unwrap().len(), 0);
    }

    proptest! {
        #[test]
        fn record_round_trip(msg in proptest::collection::vec(any::<u8>(), 0..300), frag in 1usize..64) {
            let mut out = Vec::new();
            write_record(&mut out, &msg, frag).unwrap();
            prop_assert_eq!(out.len(), msg.len() + 4 * msg.len().div_ceil(frag).max(1));
            let mut r = &out[..];
            let back = read_record(&mut r, msg.len()).unwrap();
            prop_assert_eq!(&back[..], &msg[..]);
            prop_assert!(r.is_empty());
        }

        #[test]
        fn decode_reply_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_reply(Bytes::from(data));
        }

        #[test]
        fn read_record_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = read_record(&mut &data[..], 32);
        }
    }
}
