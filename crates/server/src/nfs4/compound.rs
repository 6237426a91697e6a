//! COMPOUND (RFC 8881 §16.2, §2.10.6): one operation at a time, under the session's limits.
//!
//! The header is read, then each operation is decoded only when its turn comes and executed
//! before the next is read: a compound stops at its first failing operation (whose result is the
//! last one returned, and whose status is the compound's), so nothing after it is ever decoded.
//! An operation whose arguments do not decode gets NFS4ERR_BADXDR in its place.
//!
//! # Sessions
//! A compound must begin with SEQUENCE unless it is one of the operations that create or
//! destroy sessions and clients (§2.10.6.1 and §18.35–18.50: EXCHANGE_ID, CREATE_SESSION,
//! DESTROY_SESSION, BIND_CONN_TO_SESSION, DESTROY_CLIENTID alone); anything else first is
//! NFS4ERR_OP_NOT_IN_SESSION, and SEQUENCE anywhere but first is NFS4ERR_SEQUENCE_POS. The
//! session's channel attributes bound the compound: more operations than `ca_maxoperations` is
//! NFS4ERR_TOO_MANY_OPS, a request over `ca_maxrequestsize` NFS4ERR_REQ_TOO_BIG, a reply over
//! `ca_maxresponsesize` NFS4ERR_REP_TOO_BIG. The finished reply goes into the slot's cache (see
//! [`super::session`]) so a retransmission is answered without executing anything again.

use bytes::BufMut;
use rnfs_nfs4::nfsstat4;
use rnfs_nfs4::{op::*, ArgOp, CompoundHeader, Decoder, ResOp, XdrEncode};
use rnfs_oncrpc::ReplyHeader;

use super::ctx::Ctx;
use super::session;
use crate::call::{refuse_args, Call, Outcome, Reply, Tail};
use crate::program::{handler, null, InPlaceRule, Procedure, Program};
use crate::service::Service;

/// NFS version 4 (RFC 8881 §16): NULL, and COMPOUND, whose exactly-once execution is the
/// session's slot table, not the duplicate request cache.
pub const NFS4: Program = Program {
    prog: rnfs_nfs4::NFS4_PROGRAM,
    name: "NFS4",
    low: rnfs_nfs4::NFS_V4,
    high: rnfs_nfs4::NFS_V4,
    procedures: &[
        Procedure::new(rnfs_nfs4::NFSPROC4_NULL, "NULL", handler!(null))
            .in_place(InPlaceRule::Always),
        Procedure::new(rnfs_nfs4::NFSPROC4_COMPOUND, "COMPOUND", compound)
            .status()
            .in_place(InPlaceRule::IfEveryOperationMay),
    ],
    stats_any_version: false,
    tcp_only: true,
};

/// Most operations of a compound outside a session (before SEQUENCE has told us the session's
/// own limit), and the hard ceiling of any session's `ca_maxoperations`.
pub const OPS_PER_COMPOUND_MAX: u32 = 128;

/// Operations that may come first without SEQUENCE (§2.10.6.1, and the operations' sections).
fn allowed_without_sequence(op: &ArgOp) -> bool {
    matches!(
        op,
        ArgOp::ExchangeId(_)
            | ArgOp::CreateSession(_)
            | ArgOp::DestroySession(_)
            | ArgOp::BindConnToSession(_)
            | ArgOp::DestroyClientid(_)
    )
}

/// Serves COMPOUND: writes the whole reply into `reply`.
pub fn compound(svc: &Service, call: &Call, reply: &mut Reply) -> Outcome {
    let mut d = Decoder::new(call.args.clone());
    let header = match CompoundHeader::decode(&mut d) {
        Ok(h) => h,
        Err(e) => return refuse_args(&mut reply.head, call, &rnfs_xdr::ArgsError::GarbageArgs(e)),
    };
    ReplyHeader::Success.encode(call.header.xid, &mut reply.head);
    let body_at = reply.head.len();
    reply.head.put_u32(0); // the compound's status, patched at the end
    header.tag.encode(&mut reply.head);
    let count_at = reply.head.len();
    reply.head.put_u32(0); // how many results, patched at the end
    if !(1..=2).contains(&header.minorversion) {
        patch(
            reply,
            body_at,
            count_at,
            nfsstat4::NFS4ERR_MINOR_VERS_MISMATCH,
            0,
        );
        return Outcome::Reply;
    }
    let mut ctx = Ctx::new(svc, call, header.minorversion);
    let (status, results) = run(&mut ctx, &header, &mut d, reply);
    if let Some(replayed) = results.replayed {
        // A retransmission: the cached reply, whole, after a fresh RPC header.
        reply.head.truncate(body_at);
        reply.head.extend_from_slice(&replayed);
        reply.tail = Tail::None;
        return Outcome::Reply;
    }
    patch(reply, body_at, count_at, status, results.count);
    if let Some(slot) = ctx.slot.take() {
        session::complete(svc, slot, reply, body_at);
    }
    Outcome::Reply
}

fn patch(reply: &mut Reply, body_at: usize, count_at: usize, status: nfsstat4, count: u32) {
    reply.head[body_at..body_at + 4].copy_from_slice(&(status as u32).to_be_bytes());
    reply.head[count_at..count_at + 4].copy_from_slice(&count.to_be_bytes());
}

/// How the operations went.
struct Results {
    count: u32,
    /// A retransmission answered from the slot's cache: the whole COMPOUND4res.
    replayed: Option<bytes::Bytes>,
}

/// Executes the operations; returns the compound's status and what was written.
fn run(
    ctx: &mut Ctx<'_>,
    header: &CompoundHeader,
    d: &mut Decoder,
    reply: &mut Reply,
) -> (nfsstat4, Results) {
    let mut results = Results {
        count: 0,
        replayed: None,
    };
    for i in 0..header.op_count {
        ctx.index = i;
        ctx.last = i + 1 == header.op_count;
        let op_at = reply.head.len();
        let res = match next_op(ctx, header, d, i) {
            Next::Op(op) => {
                if let ArgOp::Sequence(args) = &op {
                    match session::sequence(ctx, args, header.op_count, d.remaining()) {
                        session::Begun::Replay(bytes) => {
                            results.replayed = Some(bytes);
                            return (nfsstat4::NFS4_OK, results);
                        }
                        session::Begun::Res(r) => Some(r),
                    }
                } else {
                    super::table::exec(ctx, op, reply)
                }
            }
            Next::Fail(r) => Some(r),
        };
        let status = match res {
            Some(r) => {
                r.encode(&mut reply.head);
                r.status
            }
            // The handler wrote its own result (READ): its status is its first word after the
            // operation number.
            None => written_status(reply, op_at),
        };
        results.count += 1;
        let status = check_reply_size(ctx, reply, op_at, status);
        let op = u32::from_be_bytes([
            reply.head[op_at],
            reply.head[op_at + 1],
            reply.head[op_at + 2],
            reply.head[op_at + 3],
        ]);
        ctx.svc.v4().ops.count(op, status == nfsstat4::NFS4_OK);
        if status != nfsstat4::NFS4_OK {
            return (status, results);
        }
    }
    (nfsstat4::NFS4_OK, results)
}

fn written_status(reply: &Reply, op_at: usize) -> nfsstat4 {
    let b = &reply.head[op_at + 4..op_at + 8];
    nfsstat4::from_u32(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// What the next operation is, or the result that ends the compound before it runs.
enum Next {
    Op(ArgOp),
    Fail(ResOp),
}

fn next_op(ctx: &Ctx<'_>, header: &CompoundHeader, d: &mut Decoder, i: u32) -> Next {
    let Ok(num) = d.u32() else {
        // Fewer operations than the count said: the array is malformed.
        return Next::Fail(ResOp::status(OP_ILLEGAL, nfsstat4::NFS4ERR_BADXDR));
    };
    let op = match ArgOp::decode_op(num, d) {
        Ok(op) => op,
        Err(_) => return Next::Fail(ResOp::status(num, nfsstat4::NFS4ERR_BADXDR)),
    };
    let fail = |s| Next::Fail(ResOp::status(op.num(), s));
    if i == 0 {
        if header.op_count > OPS_PER_COMPOUND_MAX && !matches!(op, ArgOp::Sequence(_)) {
            return fail(nfsstat4::NFS4ERR_TOO_MANY_OPS);
        }
        if !matches!(op, ArgOp::Sequence(_) | ArgOp::Illegal(_)) && !allowed_without_sequence(&op) {
            return fail(nfsstat4::NFS4ERR_OP_NOT_IN_SESSION);
        }
        if allowed_without_sequence(&op) && header.op_count > 1 && must_be_only(&op) {
            return fail(nfsstat4::NFS4ERR_NOT_ONLY_OP);
        }
    } else if matches!(op, ArgOp::Sequence(_)) {
        return fail(nfsstat4::NFS4ERR_SEQUENCE_POS);
    } else if ctx.slot.is_none() {
        // A compound without SEQUENCE holds one operation (EXCHANGE_ID's may not be followed
        // either, §18.35.3): the second is refused.
        return fail(nfsstat4::NFS4ERR_NOT_ONLY_OP);
    }
    Next::Op(op)
}

/// Operations that, sent without SEQUENCE, are refused outright when others follow (§18.36.3,
/// §18.34.3, §18.37.3, §18.50.3); EXCHANGE_ID runs and the operation after it is refused.
fn must_be_only(op: &ArgOp) -> bool {
    matches!(
        op,
        ArgOp::CreateSession(_)
            | ArgOp::BindConnToSession(_)
            | ArgOp::DestroySession(_)
            | ArgOp::DestroyClientid(_)
    )
}

/// Replaces the result just written by NFS4ERR_REP_TOO_BIG(_TO_CACHE) when the reply outgrew
/// the session's limits.
fn check_reply_size(ctx: &Ctx<'_>, reply: &mut Reply, op_at: usize, status: nfsstat4) -> nfsstat4 {
    let Some(slot) = &ctx.slot else {
        return status;
    };
    // The session's rule (rnfs-nfs4state): over ca_maxresponsesize, or over
    // ca_maxresponsesize_cached when the reply is to be cached.
    let Err(e) = slot.ticket.check_reply(reply.message_len()) else {
        return status;
    };
    let too_big = nfsstat4::from_u32(e.nfsstat4());
    let op = u32::from_be_bytes([
        reply.head[op_at],
        reply.head[op_at + 1],
        reply.head[op_at + 2],
        reply.head[op_at + 3],
    ]);
    reply.head.truncate(op_at);
    reply.tail = Tail::None;
    reply.loan = None;
    ResOp::status(op, too_big).encode(&mut reply.head);
    too_big
}
