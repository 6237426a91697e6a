//! READ and READLINK (RFC 1813 §3.3.6, §3.3.5).
//!
//! READ returns at most the transport's payload limit (1 MiB over TCP, 32 KiB over UDP) whatever
//! the client asks, and reports `eof` exactly: true when the data returned reaches the end of the
//! file as it was when read.
//!
//! # Two paths, one loan
//! * **Zero-copy** (TCP, `count >= zero_copy_min_bytes`): the file's pages are spliced into the
//!   pipe of a loan slot *before* the header is written, so the byte count in the header (and in
//!   the record marker) is what the pipe holds: a file truncated meanwhile cannot make the record
//!   shorter than announced (pages cut by the truncate may read as zeros, never go missing). The
//!   writer task then splices the pipe into the socket. No byte passes through user space.
//! * **Buffered** (small reads, UDP, or no pipe available): one `pread` into a buffer that is sent
//!   as the reply's tail, not copied again into the head.
//!
//! Either way the reply holds a loan slot while in flight, so `rnfsd ctl loans` and the watchdog
//! see every READ being sent, with its owner, file, range and age.

use rnfs_loan::LoanKind;
use rnfs_nfs3::*;
use rnfs_oncrpc::{AuthStat, ReplyHeader};
use std::sync::atomic::Ordering;

use super::{authorize, fattr, post_op, status};
use crate::call::{reply_success, Call, Outcome, PipeResource, Reply, Tail, Transport};
use crate::service::{Authorized, Service};

/// READ with its data as the reply's tail (the path every READ over the network takes).
pub fn read(
    svc: &Service,
    call: &Call,
    a: READ3args,
    reply: &mut Reply,
) -> Result<Outcome, AuthStat> {
    let auth = authorize!(svc, call, a.file, READ3res, reply);
    let count = a.count.min(call.transport.payload_bytes_max(svc.limits()));
    let min = svc.limits().zero_copy_min_bytes;
    // No free slot: serve from a buffer without one (the loan table counts it as exhausted).
    let mut claim = svc.loans().claim(call.conn_id, call.now_ms);
    if call.transport == Transport::Tcp && min > 0 && count >= min {
        match spliced(svc, call, &auth, &a, count, &mut claim, reply) {
            Spliced::Answered(outcome) => return Ok(outcome),
            Spliced::Declined => {}
            // Back through the reaper, which empties the pipe; this READ goes without a loan.
            Spliced::DeclinedPipeDirty => claim = None,
        }
    }
    Ok(buffered(svc, call, &auth, &a, count, reply, claim))
}

/// How the zero-copy path went.
enum Spliced {
    /// The reply is written (the data, or the backend's error).
    Answered(Outcome),
    /// No pipe, or the backend cannot splice: serve it buffered.
    Declined,
    /// The backend declined but left bytes in the pipe: buffered, without this claim.
    DeclinedPipeDirty,
}

/// The zero-copy path: the file's pages spliced into the claim's pipe, the reply's tail.
fn spliced(
    svc: &Service,
    call: &Call,
    auth: &Authorized,
    a: &READ3args,
    count: u32,
    claim: &mut Option<rnfs_loan::Claim<PipeResource>>,
    reply: &mut Reply,
) -> Spliced {
    let Some(c) = claim.as_mut() else {
        return Spliced::Declined;
    };
    let pipe_bytes = svc.limits().transfer_bytes_max as usize;
    let Ok(pipe) =
        c.resource_or_try_init(|| rnfs_sys::pipe::Pipe::new(pipe_bytes).map(PipeResource))
    else {
        return Spliced::Declined;
    };
    let read = auth
        .export
        .backend
        .read_spliced(&auth.who, &auth.handle, a.offset, count, &pipe.0);
    match read {
        Ok(Some(r)) => {
            let Some(c) = claim.take() else {
                return Spliced::Answered(Outcome::Drop);
            };
            let bytes = u64::from(r.bytes);
            let loan = c.lend(
                LoanKind::Spliced,
                call.conn_id,
                r.attr.fileid,
                a.offset,
                bytes,
                call.now_ms,
            );
            ReplyHeader::Success.encode(call.header.xid, &mut reply.head);
            let len = r.bytes as usize;
            encode_read3resok_header(&Some(fattr(&r.attr)), r.bytes, r.eof, len, &mut reply.head);
            reply.tail = Tail::Spliced { loan, len };
            svc.counters
                .read_bytes_spliced
                .fetch_add(bytes, Ordering::Relaxed);
            Spliced::Answered(Outcome::Reply)
        }
        Ok(None) if matches!(pipe.0.len_bytes(), Ok(0)) => Spliced::Declined,
        Ok(None) => Spliced::DeclinedPipeDirty,
        Err(e) => {
            // The claim goes back through the reaper, which empties its pipe.
            *claim = None;
            let fail = READ3res::Fail(
                status(&e),
                READ3resfail {
                    file_attributes: post_op(auth),
                },
            );
            Spliced::Answered(reply_success(&mut reply.head, call.header.xid, &fail))
        }
    }
}

/// The buffered path: one copy, into the buffer sent as the tail.
fn buffered(
    svc: &Service,
    call: &Call,
    auth: &Authorized,
    a: &READ3args,
    count: u32,
    reply: &mut Reply,
    claim: Option<rnfs_loan::Claim<PipeResource>>,
) -> Outcome {
    let xid = call.header.xid;
    match auth
        .export
        .backend
        .read(&auth.who, &auth.handle, a.offset, count)
    {
        Ok(r) if r.data.len() <= count as usize => {
            let n = r.data.len();
            ReplyHeader::Success.encode(xid, &mut reply.head);
            encode_read3resok_header(&Some(fattr(&r.attr)), n as u32, r.eof, n, &mut reply.head);
            svc.counters
                .read_bytes_buffered
                .fetch_add(n as u64, Ordering::Relaxed);
            reply.loan = claim.map(|c| {
                let mut loan = c.lend(
                    LoanKind::Buffered,
                    call.conn_id,
                    r.attr.fileid,
                    a.offset,
                    n as u64,
                    call.now_ms,
                );
                // The slot's pipe (if it has one) holds nothing: the reaper has nothing to do.
                loan.mark_clean();
                loan
            });
            reply.tail = Tail::Bytes(r.data);
            Outcome::Reply
        }
        // More than asked: a backend bug, not the client's fault.
        Ok(_) => reply_success(
            &mut reply.head,
            xid,
            &READ3res::Fail(nfsstat3::NFS3ERR_SERVERFAULT, Default::default()),
        ),
        Err(e) => {
            let fail = READ3res::Fail(
                status(&e),
                READ3resfail {
                    file_attributes: post_op(auth),
                },
            );
            reply_success(&mut reply.head, xid, &fail)
        }
    }
}

pub fn readlink(svc: &Service, call: &Call, a: READLINK3args) -> Result<READLINK3res, AuthStat> {
    let auth = authorize!(svc, call, a.symlink, READLINK3res);
    Ok(
        match auth.export.backend.readlink(&auth.who, &auth.handle) {
            Ok((target, attr)) => match Opaque::new(target) {
                Some(data) => READLINK3res::Ok(READLINK3resok {
                    symlink_attributes: Some(fattr(&attr)),
                    data,
                }),
                None => READLINK3res::Fail(
                    nfsstat3::NFS3ERR_NAMETOOLONG,
                    READLINK3resfail {
                        symlink_attributes: Some(fattr(&attr)),
                    },
                ),
            },
            Err(e) => READLINK3res::Fail(
                status(&e),
                READLINK3resfail {
                    symlink_attributes: post_op(&auth),
                },
            ),
        },
    )
}
