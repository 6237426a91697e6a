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

use rnfs_nfs3::*;
use rnfs_oncrpc::{AuthStat, ReplyHeader};

use super::{authorize, fattr, post_op, status};
use crate::call::{reply_success, Call, Outcome, PipeResource, Reply, Tail, Transport};
use crate::read_loan::{self, Spliced};
use crate::service::{Authorized, Service};

/// READ with its data as the reply's tail (the path every READ over the network takes).
pub fn read(
    svc: &Service,
    call: &Call,
    a: READ3args,
    reply: &mut Reply,
) -> Result<Outcome, AuthStat> {
    let auth = authorize!(svc, call, a.file, READ3res, reply);
    if let Err(e) = svc.delegations_allow(call.now_ms, auth.handle.as_bytes(), false) {
        return Ok(fail(call, &auth, &e, reply));
    }
    let count = a.count.min(call.transport.payload_bytes_max(svc.limits()));
    let min = svc.limits().zero_copy_min_bytes;
    // No free slot: serve from a buffer without one (the loan table counts it as exhausted).
    let mut claim = svc.loans().claim(call.conn_id, call.now_ms);
    if call.transport == Transport::Tcp && min > 0 && count >= min {
        match read_loan::splice(svc, call, &auth, a.offset, count, &mut claim) {
            Spliced::Lent { loan, read: r } => {
                ReplyHeader::Success.encode(call.header.xid, &mut reply.head);
                let len = r.bytes as usize;
                encode_read3resok_header(
                    &Some(fattr(&r.attr)),
                    r.bytes,
                    r.eof,
                    len,
                    &mut reply.head,
                );
                reply.tail = Tail::Spliced { loan, len };
                return Ok(Outcome::Reply);
            }
            Spliced::Failed(e) => return Ok(fail(call, &auth, &e, reply)),
            Spliced::Declined => {}
            // Back through the reaper, which empties the pipe; this READ goes without a loan.
            Spliced::DeclinedPipeDirty => claim = None,
        }
    }
    Ok(buffered(svc, call, &auth, &a, count, reply, claim))
}

fn fail(call: &Call, auth: &Authorized, e: &rnfs_storage::Error, reply: &mut Reply) -> Outcome {
    let fail = READ3res::Fail(
        status(e),
        READ3resfail {
            file_attributes: post_op(auth),
        },
    );
    reply_success(&mut reply.head, call.header.xid, &fail)
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
            reply.loan =
                read_loan::lend_buffered(svc, call, claim, r.attr.fileid, a.offset, n as u64);
            reply.tail = Tail::Bytes(r.data);
            Outcome::Reply
        }
        // More than asked: a backend bug, not the client's fault.
        Ok(_) => reply_success(
            &mut reply.head,
            xid,
            &READ3res::Fail(nfsstat3::NFS3ERR_SERVERFAULT, Default::default()),
        ),
        Err(e) => fail(call, auth, &e, reply),
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
