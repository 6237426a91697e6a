//! The operation table: one arm per operation
//! number, in number order (RFC 8881 §16.2.1, §18), each naming its handler.
//!
//! Not offered (answered NFS4ERR_NOTSUPP, and the compound stops there): the 4.0-only operations
//! (OPEN_CONFIRM, RENEW, SETCLIENTID, SETCLIENTID_CONFIRM, RELEASE_LOCKOWNER, which 4.1 forbids),
//! named attributes (OPENATTR), delegations (DELEGPURGE, GET_DIR_DELEGATION, WANT_DELEGATION:
//! NFSv4.2's issue), pNFS layouts and devices, SET_SSV, and of 4.2's operations COPY_NOTIFY
//! (inter-server copy), IO_ADVISE, WRITE_SAME and the layout statistics. 4.2's SEEK, ALLOCATE,
//! DEALLOCATE, READ_PLUS, COPY, OFFLOAD_CANCEL, OFFLOAD_STATUS, CLONE and the xattr operations
//! are served.

use rnfs_nfs4::{nfsstat4, op::*, ArgOp, ResOp};

use super::ctx::Ctx;
use super::{attrs, copy, deleg, dir, fh, io, open, session, sparse, xattr};
use crate::call::Reply;

/// Executes one operation; `None` when the handler wrote its result into `reply` itself (READ).
pub fn exec(ctx: &mut Ctx<'_>, op: ArgOp, reply: &mut Reply) -> Option<ResOp> {
    let notsupp = |n| Some(ResOp::status(n, nfsstat4::NFS4ERR_NOTSUPP));
    match op {
        ArgOp::Access(a) => Some(attrs::access(ctx, a)),
        ArgOp::Close(a) => Some(open::close(ctx, a)),
        ArgOp::Commit(a) => Some(io::commit(ctx, a)),
        ArgOp::Create(a) => Some(dir::create(ctx, a)),
        ArgOp::DelegPurge(_) => notsupp(OP_DELEGPURGE),
        ArgOp::DelegReturn(s) => Some(deleg::delegreturn(ctx, s)),
        ArgOp::GetAttr(a) => Some(attrs::getattr(ctx, a)),
        ArgOp::GetFh => Some(fh::getfh(ctx)),
        ArgOp::Link(a) => Some(dir::link(ctx, a)),
        ArgOp::Lock(a) => Some(open::lock(ctx, a)),
        ArgOp::LockT(a) => Some(open::lockt(ctx, a)),
        ArgOp::LockU(a) => Some(open::locku(ctx, a)),
        ArgOp::Lookup(a) => Some(fh::lookup(ctx, a)),
        ArgOp::LookupP => Some(fh::lookupp(ctx)),
        ArgOp::NVerify(a) => Some(attrs::verify(ctx, a, false)),
        ArgOp::Open(a) => Some(open::open(ctx, a)),
        ArgOp::OpenAttr(_) => notsupp(OP_OPENATTR),
        ArgOp::OpenDowngrade(a) => Some(open::open_downgrade(ctx, a)),
        ArgOp::PutFh(a) => Some(fh::putfh(ctx, a)),
        ArgOp::PutPubFh => Some(fh::putrootfh(ctx, OP_PUTPUBFH)),
        ArgOp::PutRootFh => Some(fh::putrootfh(ctx, OP_PUTROOTFH)),
        ArgOp::Read(a) => io::read(ctx, a, reply),
        ArgOp::ReadDir(a) => Some(dir::readdir(ctx, a)),
        ArgOp::ReadLink => Some(dir::readlink(ctx)),
        ArgOp::Remove(a) => Some(dir::remove(ctx, a)),
        ArgOp::Rename(a) => Some(dir::rename(ctx, a)),
        ArgOp::RestoreFh => Some(fh::restorefh(ctx)),
        ArgOp::SaveFh => Some(fh::savefh(ctx)),
        ArgOp::SecInfo(a) => Some(fh::secinfo(ctx, a)),
        ArgOp::SetAttr(a) => Some(attrs::setattr(ctx, a)),
        ArgOp::Verify(a) => Some(attrs::verify(ctx, a, true)),
        ArgOp::Write(a) => Some(io::write(ctx, a)),
        ArgOp::BackchannelCtl(a) => Some(session::backchannel_ctl(ctx, a)),
        ArgOp::BindConnToSession(a) => Some(session::bind_conn(ctx, a)),
        ArgOp::ExchangeId(a) => Some(session::exchange_id(ctx, a)),
        ArgOp::CreateSession(a) => Some(session::create_session(ctx, a)),
        ArgOp::DestroySession(a) => Some(session::destroy_session(ctx, a)),
        ArgOp::FreeStateid(a) => Some(open::free_stateid(ctx, a)),
        ArgOp::SecInfoNoName(a) => Some(fh::secinfo_no_name(ctx, a)),
        // SEQUENCE is handled by the compound loop, first; here it is out of place.
        ArgOp::Sequence(_) => Some(ResOp::status(OP_SEQUENCE, nfsstat4::NFS4ERR_SEQUENCE_POS)),
        ArgOp::TestStateid(a) => Some(open::test_stateid(ctx, a)),
        ArgOp::DestroyClientid(a) => Some(session::destroy_clientid(ctx, a)),
        ArgOp::ReclaimComplete(a) => Some(session::reclaim_complete(ctx, a)),
        ArgOp::Allocate(a) => Some(sparse::fallocate(ctx, a, false)),
        ArgOp::Copy(a) => Some(copy::copy(ctx, a)),
        ArgOp::Deallocate(a) => Some(sparse::fallocate(ctx, a, true)),
        ArgOp::OffloadCancel(a) => Some(copy::offload_cancel(ctx, a)),
        ArgOp::OffloadStatus(a) => Some(copy::offload_status(ctx, a)),
        ArgOp::ReadPlus(a) => Some(sparse::read_plus(ctx, a)),
        ArgOp::Seek(a) => Some(sparse::seek(ctx, a)),
        ArgOp::Clone(a) => Some(copy::clone(ctx, a)),
        ArgOp::GetXattr(a) => Some(xattr::getxattr(ctx, a)),
        ArgOp::SetXattr(a) => Some(xattr::setxattr(ctx, a)),
        ArgOp::ListXattrs(a) => Some(xattr::listxattrs(ctx, a)),
        ArgOp::RemoveXattr(a) => Some(xattr::removexattr(ctx, a)),
        ArgOp::Unsupported(n) => notsupp(n),
        ArgOp::Illegal(_) => Some(ResOp::status(OP_ILLEGAL, nfsstat4::NFS4ERR_OP_ILLEGAL)),
    }
}

/// Whether `op` may run in place (see `transport::InPlace` and
/// `peek::compound_may_run_in_place`): it creates no object, does not wait for the disk and does
/// not change what is kept on stable storage. Beside [`exec`] so that a new operation's row and
/// its answer here are written together; anything not named runs on the pool.
pub fn may_run_in_place(op: &ArgOp) -> bool {
    use ArgOp as A;
    match op {
        A::Open(a) => a.openhow.0.is_none(),
        A::Write(a) => a.stable == rnfs_nfs4::stable_how4::UNSTABLE4,
        A::Sequence(_)
        | A::PutFh(_)
        | A::PutRootFh
        | A::PutPubFh
        | A::GetFh
        | A::SaveFh
        | A::RestoreFh
        | A::GetAttr(_)
        | A::Verify(_)
        | A::NVerify(_)
        | A::Access(_)
        | A::Lookup(_)
        | A::LookupP
        | A::SecInfo(_)
        | A::SecInfoNoName(_)
        | A::Read(_)
        | A::ReadPlus(_)
        | A::Seek(_)
        | A::ReadLink
        | A::ReadDir(_)
        | A::GetXattr(_)
        | A::ListXattrs(_)
        | A::SetAttr(_)
        | A::Remove(_)
        | A::Rename(_)
        | A::Link(_)
        | A::Close(_)
        | A::OpenDowngrade(_)
        | A::DelegReturn(_)
        | A::Lock(_)
        | A::LockT(_)
        | A::LockU(_)
        | A::TestStateid(_)
        | A::FreeStateid(_) => true,
        _ => false,
    }
}
