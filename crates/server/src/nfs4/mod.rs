//! NFS version 4.1 (RFC 8881) on the NFS program's port: program 100003 version 4, procedures
//! NULL and COMPOUND ([`NFS4`]).
//!
//! # Layout
//! * [`compound`]: the program table ([`NFS4`]) and the COMPOUND loop (§16.2): header, minor version, one operation decoded and
//!   executed at a time, the session's limits, the reply and the slot's reply cache.
//! * [`ctx`]: what a compound carries between operations (current and saved handles and
//!   stateids, its slot) and the checks operations share.
//! * [`table`]: one arm per operation number, naming its handler.
//! * [`fh`] and [`pseudo`]: the operations on the current and saved handles, and the pseudo file system that
//!   joins the exports' mount paths under one root (§7).
//! * [`attrs`], [`dir`], [`io`]: the file operations, each on the export's backend as the caller
//!   (the same [`crate::service::Service::authorize`] as NFSv3: export rules, squashing, verified
//!   handles).
//! * [`session`]: EXCHANGE_ID, CREATE_SESSION, SEQUENCE and their kin, on `rnfs-nfs4state`.
//! * [`deleg`]: delegations: granted by OPEN, recalled over the back channel
//!   ([`crate::backchannel`]), DELEGRETURN.
//! * [`sparse`] and [`xattr`]: NFSv4.2's sparse-file operations (SEEK, ALLOCATE, DEALLOCATE,
//!   READ_PLUS; RFC 7862) and extended attributes (RFC 8276).
//! * [`copy`]: NFSv4.2's server-side copy and clone (COPY, OFFLOAD_STATUS, OFFLOAD_CANCEL,
//!   CLONE; RFC 7862 §4), the asynchronous copies' CB_OFFLOAD ([`supervise_copies`]).
//! * [`open`]: OPEN, CLOSE, OPEN_DOWNGRADE, LOCK, LOCKT, LOCKU, TEST_STATEID, FREE_STATEID: the
//!   stateids of `rnfs-nfs4state`, share reservations and byte-range locks in the one lock
//!   manager NLM uses ([`crate::locking`]).
//!
//! Minor versions 1 and 2 are served (4.2's operations are all optional: those not built answer
//! NFS4ERR_NOTSUPP; those built are answered in either minor version, as the ones 4.1 lacks are
//! optional extensions a 4.1 client never sends); minor version 0 gets
//! NFS4ERR_MINOR_VERS_MISMATCH.

mod attrs;
mod compound;
mod copy;
mod ctx;
mod deleg;

mod dir;
mod fh;
mod io;
mod open;
mod pseudo;
mod session;
mod sparse;
mod table;
mod xattr;

pub use compound::NFS4;
pub(crate) use copy::supervise_copies;
pub(crate) use table::may_run_in_place;

use rnfs_nfs4::nfsstat4;
use rnfs_storage as storage;

use crate::service::Denied;

/// The NFSv4 status for a refusal of [`crate::service::Service::authorize`].
pub(crate) fn denied_status(d: Denied) -> nfsstat4 {
    match d {
        Denied::BadHandle => nfsstat4::NFS4ERR_BADHANDLE,
        Denied::Stale => nfsstat4::NFS4ERR_STALE,
        Denied::Access => nfsstat4::NFS4ERR_ACCESS,
        // An insecure port on a `secure` export: v4 has a status for the wrong security.
        Denied::Auth(_) => nfsstat4::NFS4ERR_WRONGSEC,
    }
}

/// Maps a storage error to its NFSv4 status (RFC 8881 §15.1).
pub(crate) fn status(e: &storage::Error) -> nfsstat4 {
    use nfsstat4::*;
    use storage::Error as E;
    match e {
        E::Perm => NFS4ERR_PERM,
        E::NoEnt => NFS4ERR_NOENT,
        E::Io => NFS4ERR_IO,
        E::NxIo => NFS4ERR_NXIO,
        E::Access => NFS4ERR_ACCESS,
        E::Exist => NFS4ERR_EXIST,
        E::XDev => NFS4ERR_XDEV,
        E::NotDir => NFS4ERR_NOTDIR,
        E::IsDir => NFS4ERR_ISDIR,
        E::Inval => NFS4ERR_INVAL,
        E::FBig => NFS4ERR_FBIG,
        E::NoSpc => NFS4ERR_NOSPC,
        E::RoFs => NFS4ERR_ROFS,
        E::MLink => NFS4ERR_MLINK,
        E::NameTooLong => NFS4ERR_NAMETOOLONG,
        E::NotEmpty => NFS4ERR_NOTEMPTY,
        E::DQuot => NFS4ERR_DQUOT,
        E::Stale => NFS4ERR_STALE,
        E::BadHandle => NFS4ERR_BADHANDLE,
        E::BadCookie => NFS4ERR_BAD_COOKIE,
        E::NotSupp | E::NoDev => NFS4ERR_NOTSUPP,
        E::BadType => NFS4ERR_BADTYPE,
        // A fenced head restarts: the client's retry reaches its next instance.
        E::Delay | E::Fenced => NFS4ERR_DELAY,
        E::NotSync => NFS4ERR_DELAY,
        E::NoXattr => NFS4ERR_NOXATTR,
        E::XattrTooBig => NFS4ERR_XATTR2BIG,
        _ => NFS4ERR_SERVERFAULT,
    }
}
