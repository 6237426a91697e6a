//! NFS version 3 (RFC 1813 §3.3): the procedures, and their table ([`NFS3`]).
//!
//! Every procedure that names a file handle first passes [`crate::service::Service::authorize`]:
//! the handle's export must exist (else NFS3ERR_STALE; a handle too short to name one is
//! NFS3ERR_BADHANDLE), the client must be covered by one of its rules (else NFS3ERR_ACCES; an
//! insecure source port on a `secure` export is an RPC AUTH_TOOWEAK), the caller's credential is
//! squashed by that rule, and the handle's MAC is verified with the export's key (else NFS3ERR_BADHANDLE, or
//! NFS3ERR_STALE for a handle of an earlier root of the export). Backends are given only the
//! verified handle ([`storage::VerifiedHandle`]). The second handle of RENAME and LINK is admitted
//! the same way but verified only once it is known to be of the same export (another export is
//! NFS3ERR_XDEV, whatever its tags), as before.
//!
//! Handlers return `Err(AuthStat)` only for an RPC-level rejection; NFS errors are `XXX3res::Fail`
//! values with the post-operation attributes the RFC asks for.

mod attrs;
mod read;
mod readdir;
mod table;
mod write;

use rnfs_nfs3::{self as nfs3, nfsstat3};
use rnfs_storage as storage;

use crate::service::{Admitted, Authorized, Denied};

pub use table::NFS3;

pub const NFS_PROGRAM: u32 = nfs3::NFS_PROGRAM;
pub const NFS_VERSION: u32 = nfs3::NFS_V3;

/// Authorizes `fh` for `call`, or returns from the enclosing handler: with `Err(AuthStat)` for an
/// RPC-level rejection, else with `$res::Fail(status, Default::default())`.
macro_rules! authorize {
    ($svc:expr, $call:expr, $fh:expr, $res:ident) => {
        match $svc.authorize($call, crate::nfs::handle(&$fh)) {
            Ok(a) => a,
            Err(crate::service::Denied::Auth(stat)) => return Err(stat),
            Err(d) => return Ok($res::Fail(crate::nfs::denied_status(d), Default::default())),
        }
    };
    // For handlers that encode into a `Reply` themselves: the failure is written there.
    ($svc:expr, $call:expr, $fh:expr, $res:ident, $reply:expr) => {
        match $svc.authorize($call, crate::nfs::handle(&$fh)) {
            Ok(a) => a,
            Err(crate::service::Denied::Auth(stat)) => return Err(stat),
            Err(d) => {
                let fail = $res::Fail(crate::nfs::denied_status(d), Default::default());
                return Ok(crate::call::reply_success(
                    &mut $reply.head,
                    $call.header.xid,
                    &fail,
                ));
            }
        }
    };
}
pub(crate) use authorize;

/// [`authorize!`] without verifying the handle yet ([`crate::service::Service::admit`]): for the second handle of
/// RENAME and LINK.
macro_rules! admit {
    ($svc:expr, $call:expr, $fh:expr, $res:ident) => {
        match $svc.admit($call, crate::nfs::handle(&$fh)) {
            Ok(a) => a,
            Err(crate::service::Denied::Auth(stat)) => return Err(stat),
            Err(d) => return Ok($res::Fail(crate::nfs::denied_status(d), Default::default())),
        }
    };
}
pub(crate) use admit;

/// The NFS status for a refusal that is not an RPC-level one.
pub(crate) fn denied_status(d: Denied) -> nfsstat3 {
    match d {
        Denied::BadHandle => nfsstat3::NFS3ERR_BADHANDLE,
        Denied::Stale => nfsstat3::NFS3ERR_STALE,
        Denied::Access | Denied::Auth(_) => nfsstat3::NFS3ERR_ACCES,
    }
}

/// Maps a storage error to its NFS status (RFC 1813 §2.6).
pub(crate) fn status(e: &storage::Error) -> nfsstat3 {
    use storage::Error as E;
    match e {
        E::Perm => nfsstat3::NFS3ERR_PERM,
        E::NoEnt => nfsstat3::NFS3ERR_NOENT,
        E::Io => nfsstat3::NFS3ERR_IO,
        E::NxIo => nfsstat3::NFS3ERR_NXIO,
        E::Access => nfsstat3::NFS3ERR_ACCES,
        E::Exist => nfsstat3::NFS3ERR_EXIST,
        E::XDev => nfsstat3::NFS3ERR_XDEV,
        E::NoDev => nfsstat3::NFS3ERR_NODEV,
        E::NotDir => nfsstat3::NFS3ERR_NOTDIR,
        E::IsDir => nfsstat3::NFS3ERR_ISDIR,
        E::Inval => nfsstat3::NFS3ERR_INVAL,
        E::FBig => nfsstat3::NFS3ERR_FBIG,
        E::NoSpc => nfsstat3::NFS3ERR_NOSPC,
        E::RoFs => nfsstat3::NFS3ERR_ROFS,
        E::MLink => nfsstat3::NFS3ERR_MLINK,
        E::NameTooLong => nfsstat3::NFS3ERR_NAMETOOLONG,
        E::NotEmpty => nfsstat3::NFS3ERR_NOTEMPTY,
        E::DQuot => nfsstat3::NFS3ERR_DQUOT,
        E::Stale => nfsstat3::NFS3ERR_STALE,
        E::BadHandle => nfsstat3::NFS3ERR_BADHANDLE,
        E::BadCookie => nfsstat3::NFS3ERR_BAD_COOKIE,
        E::NotSync => nfsstat3::NFS3ERR_NOT_SYNC,
        E::NotSupp => nfsstat3::NFS3ERR_NOTSUPP,
        E::BadType => nfsstat3::NFS3ERR_BADTYPE,
        // A fenced head restarts: the client's retry reaches its next instance.
        E::Delay | E::Fenced => nfsstat3::NFS3ERR_JUKEBOX,
        E::ServerFault(_) => nfsstat3::NFS3ERR_SERVERFAULT,
        _ => nfsstat3::NFS3ERR_SERVERFAULT,
    }
}

pub(crate) fn time(t: storage::Timestamp) -> nfs3::nfstime3 {
    nfs3::nfstime3 {
        seconds: t.seconds,
        nseconds: t.nanoseconds,
    }
}

/// `fattr3` from backend attributes.
pub(crate) fn fattr(a: &storage::Attr) -> nfs3::fattr3 {
    use storage::FileType as T;
    nfs3::fattr3 {
        r#type: match a.file_type {
            T::Regular => nfs3::ftype3::NF3REG,
            T::Directory => nfs3::ftype3::NF3DIR,
            T::BlockDevice => nfs3::ftype3::NF3BLK,
            T::CharDevice => nfs3::ftype3::NF3CHR,
            T::Symlink => nfs3::ftype3::NF3LNK,
            T::Socket => nfs3::ftype3::NF3SOCK,
            T::Fifo => nfs3::ftype3::NF3FIFO,
        },
        mode: a.mode & 0o7777,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        size: a.size_bytes,
        used: a.used_bytes,
        rdev: nfs3::specdata3 {
            specdata1: a.rdev.0,
            specdata2: a.rdev.1,
        },
        fsid: a.fsid,
        fileid: a.fileid,
        atime: time(a.atime),
        mtime: time(a.mtime),
        ctime: time(a.ctime),
    }
}

/// The storage handle inside an NFS handle (unverified; a `Bytes` clone, no copy).
pub(crate) fn handle(fh: &nfs3::nfs_fh3) -> storage::FileHandle {
    storage::FileHandle::from_wire(fh.data.0.clone())
}

/// The NFS handle for a storage handle (`None` only if a backend broke the 64-byte rule).
pub(crate) fn nfs_fh(h: &storage::FileHandle) -> Option<nfs3::nfs_fh3> {
    nfs3::nfs_fh3::new(h.to_bytes())
}

/// Post-operation attributes of the authorized handle, best effort: used on error paths where
/// the RFC asks for them.
pub(crate) fn post_op(auth: &Authorized) -> nfs3::post_op_attr {
    auth.export
        .backend
        .getattr(&auth.who, &auth.handle)
        .ok()
        .map(|a| fattr(&a))
}

/// [`post_op`] for a handle admitted but not verified yet: its attributes if it verifies (a
/// handle that does not gets none, as when the backend checked it).
pub(crate) fn post_op_admitted(adm: &Admitted) -> nfs3::post_op_attr {
    let fh = adm.export.verify(adm.handle()).ok()?;
    adm.export
        .backend
        .getattr(&adm.who, &fh)
        .ok()
        .map(|a| fattr(&a))
}
