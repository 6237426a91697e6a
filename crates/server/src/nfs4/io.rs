//! READ, WRITE and COMMIT (RFC 8881 §18.22, §18.32, §18.3).
//!
//! READ sends its data the way NFSv3's does (see `crate::nfs::read`): when READ is the
//! compound's last operation and its reply is not to be cached, the file's pages are spliced into
//! a loaned pipe and the writer splices them into the socket (zero-copy); otherwise the data is
//! read into a buffer once. Either way the reply holds a loan slot while in flight. WRITE and
//! COMMIT use NFSv3's verifier: random per start, changed by any write-back error.

use bytes::BufMut;
use rnfs_nfs4::{nfsstat4, op::*, stable_how4, ResBody, ResOp, XdrEncode};
use rnfs_nfs4::{COMMIT4args, READ4args, WRITE4args, WRITE4resok};
use rnfs_storage as storage;

use super::attrs::writable;
use super::ctx::{attr_of, check_io_stateid, Ctx};
use super::status;
use crate::call::{PipeResource, Reply, Tail, Transport};
use crate::read_loan::{self, Spliced};
use crate::service::Authorized;

/// Bytes of READ's result before its data: op number, status, eof, data length.
const READ_HEAD_BYTES: u32 = 16;

/// READ: writes its own result into `reply` (its data may be the reply's tail).
pub fn read(ctx: &Ctx<'_>, a: READ4args, reply: &mut Reply) -> Option<ResOp> {
    let auth = match ctx.real(nfsstat4::NFS4ERR_ISDIR) {
        Ok(auth) => auth,
        Err(s) => return Some(ResOp::status(OP_READ, s)),
    };
    if let Err(s) = check_io_stateid(ctx, &a.stateid, false) {
        return Some(ResOp::status(OP_READ, s));
    }
    let count = read_count(ctx, a.count);
    let zero_copy = ctx.last
        && ctx.call.transport == Transport::Tcp
        && !ctx.slot.as_ref().is_some_and(|s| s.cachethis)
        && ctx.svc.limits().zero_copy_min_bytes > 0
        && count >= ctx.svc.limits().zero_copy_min_bytes;
    let mut claim = ctx.svc.loans().claim(ctx.call.conn_id, ctx.call.now_ms);
    if zero_copy {
        match read_loan::splice(ctx.svc, ctx.call, auth, a.offset, count, &mut claim) {
            Spliced::Lent { loan, read: r } => {
                put_read_head(reply, r.eof, r.bytes);
                reply.tail = Tail::Spliced {
                    loan,
                    len: r.bytes as usize,
                };
                return None;
            }
            Spliced::Failed(e) => return Some(ResOp::status(OP_READ, read_status(&e))),
            Spliced::Declined => {}
            Spliced::DeclinedPipeDirty => claim = None,
        }
    }
    buffered(ctx, auth, &a, count, reply, claim)
}

/// The largest READ this reply can carry: the client's count, the transfer limit and what the
/// session's response size leaves.
fn read_count(ctx: &Ctx<'_>, asked: u32) -> u32 {
    let mut count = asked.min(ctx.svc.limits().transfer_bytes_max);
    if let Some(slot) = &ctx.slot {
        let room = slot
            .response_bytes_max
            .saturating_sub(slot_overhead_bytes(ctx));
        count = count.min(room as u32);
    }
    count
}

/// What a reply holds besides READ's data (headers, SEQUENCE, PUTFH...), generously.
fn slot_overhead_bytes(_ctx: &Ctx<'_>) -> usize {
    1024
}

fn put_read_head(reply: &mut Reply, eof: bool, len: u32) {
    reply.head.reserve(READ_HEAD_BYTES as usize);
    reply.head.put_u32(OP_READ);
    reply.head.put_u32(nfsstat4::NFS4_OK as u32);
    eof.encode(&mut reply.head);
    reply.head.put_u32(len);
}

fn read_status(e: &storage::Error) -> nfsstat4 {
    match e {
        // A symbolic link or special file opened for reading.
        storage::Error::Inval | storage::Error::NxIo => nfsstat4::NFS4ERR_INVAL,
        e => status(e),
    }
}

fn buffered(
    ctx: &Ctx<'_>,
    auth: &Authorized,
    a: &READ4args,
    count: u32,
    reply: &mut Reply,
    claim: Option<rnfs_loan::Claim<PipeResource>>,
) -> Option<ResOp> {
    let r = match auth
        .export
        .backend
        .read(&auth.who, &auth.handle, a.offset, count)
    {
        Ok(r) if r.data.len() <= count as usize => r,
        Ok(_) => return Some(ResOp::status(OP_READ, nfsstat4::NFS4ERR_SERVERFAULT)),
        Err(e) => return Some(ResOp::status(OP_READ, read_status(&e))),
    };
    let n = r.data.len();
    put_read_head(reply, r.eof, n as u32);
    let call = ctx.call;
    let loan = read_loan::lend_buffered(ctx.svc, call, claim, r.attr.fileid, a.offset, n as u64);
    if ctx.last {
        reply.loan = loan;
        reply.tail = Tail::Bytes(r.data);
    } else {
        // More results follow: the data goes into the head, padded.
        reply.head.extend_from_slice(&r.data);
        reply.head.put_bytes(0, rnfs_xdr::pad_len(n));
    }
    None
}

fn stability(s: stable_how4) -> storage::Stability {
    match s {
        stable_how4::UNSTABLE4 => storage::Stability::Unstable,
        stable_how4::DATA_SYNC4 => storage::Stability::DataSync,
        stable_how4::FILE_SYNC4 => storage::Stability::FileSync,
    }
}

fn stable4(s: storage::Stability) -> stable_how4 {
    match s {
        storage::Stability::Unstable => stable_how4::UNSTABLE4,
        storage::Stability::DataSync => stable_how4::DATA_SYNC4,
        storage::Stability::FileSync => stable_how4::FILE_SYNC4,
    }
}

pub fn write(ctx: &mut Ctx<'_>, a: WRITE4args) -> ResOp {
    let res = (|| {
        ctx.real(nfsstat4::NFS4ERR_ISDIR)?;
        let auth = writable(ctx)?;
        check_io_stateid(ctx, &a.stateid, true)?;
        let max = ctx.svc.limits().transfer_bytes_max as usize;
        let data = &a.data.as_bytes()[..a.data.len().min(max)];
        let w = auth
            .export
            .backend
            .write(&auth.who, &auth.handle, a.offset, data, stability(a.stable))
            .map_err(|e| read_status(&e))?;
        Ok(WRITE4resok {
            count: w.count,
            committed: stable4(w.committed),
            writeverf: ctx.svc.write_verifier(),
        })
    })();
    match res {
        Ok(w) => ResOp::ok(OP_WRITE, ResBody::Write(w)),
        Err(s) => ResOp::status(OP_WRITE, s),
    }
}

pub fn commit(ctx: &mut Ctx<'_>, a: COMMIT4args) -> ResOp {
    let res = (|| {
        let auth = ctx.real(nfsstat4::NFS4ERR_ISDIR)?;
        match attr_of(auth)?.file_type {
            storage::FileType::Regular => {}
            storage::FileType::Directory => return Err(nfsstat4::NFS4ERR_ISDIR),
            storage::FileType::Symlink => return Err(nfsstat4::NFS4ERR_SYMLINK),
            _ => return Err(nfsstat4::NFS4ERR_INVAL),
        }
        if a.offset.checked_add(u64::from(a.count)).is_none() {
            return Err(nfsstat4::NFS4ERR_INVAL);
        }
        auth.export
            .backend
            .commit(&auth.who, &auth.handle, a.offset, a.count)
            .map_err(|e| status(&e))?;
        Ok(ctx.svc.write_verifier())
    })();
    match res {
        Ok(v) => ResOp::ok(OP_COMMIT, ResBody::Commit(v)),
        Err(s) => ResOp::status(OP_COMMIT, s),
    }
}
