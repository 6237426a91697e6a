//! What one COMPOUND carries from operation to operation (RFC 8881 §16.2.3): the current and
//! saved file handles and stateids, the slot its SEQUENCE holds, and the checks every operation
//! shares (the current handle's kind, component names, the stateid of I/O).
//!
//! A handle is either a pseudo directory ([`super::pseudo`]) or an object of an export, which
//! passed [`crate::service::Service::authorize`] when it became current: the export's rules,
//! squashing and the handle's MAC are checked once, exactly as for NFSv3.

use std::sync::Arc;

use bytes::Bytes;
use rnfs_nfs4::{self as w, nfsstat4, stateid4};
use rnfs_nfs4state::{self as st, ClientId, StateInfo, StateKind};
use rnfs_storage::{self as storage, FileHandle};

use super::pseudo;
use super::{denied_status, status};
use crate::call::Call;
use crate::exports::ExportTable;
use crate::service::{Authorized, Service};

/// What SEQUENCE leaves with the compound: the slot it holds and the session's limits.
pub struct SlotTicket {
    pub ticket: st::Ticket,
    pub clientid: u64,
    pub cachethis: bool,
    pub response_bytes_max: usize,
}

/// The state one compound carries from operation to operation.
pub struct Ctx<'a> {
    pub svc: &'a Service,
    pub call: &'a Call,
    /// The export table the compound started with (an `exports reload` does not change it
    /// mid-compound).
    pub table: Arc<ExportTable>,
    pub cur: Option<Fh>,
    pub saved: Option<Fh>,
    /// The current stateid (§16.2.3.1.2): what the last operation that made one returned.
    pub cur_stateid: Option<stateid4>,
    pub saved_stateid: Option<stateid4>,
    /// The SEQUENCE that opened this compound, once it succeeded.
    pub slot: Option<SlotTicket>,
    /// This operation is the compound's last (READ may then send its data zero-copy).
    pub last: bool,
    /// Index of the operation being executed.
    pub index: u32,
    /// The COMPOUND's minor version (1 or 2).
    pub minor: u32,
}

impl<'a> Ctx<'a> {
    pub fn new(svc: &'a Service, call: &'a Call, minor: u32) -> Ctx<'a> {
        Ctx {
            svc,
            call,
            table: svc.exports(),
            cur: None,
            saved: None,
            cur_stateid: None,
            saved_stateid: None,
            slot: None,
            last: false,
            index: 0,
            minor,
        }
    }

    /// The client id of this compound's session.
    pub fn clientid(&self) -> Option<u64> {
        self.slot.as_ref().map(|s| s.clientid)
    }
}

/// A current or saved file handle.
#[derive(Clone)]
pub enum Fh {
    /// A pseudo directory, by path.
    Pseudo(String),
    /// An export's object, authorized for this caller.
    Real(Box<Authorized>),
}

impl Fh {
    /// The wire handle.
    pub fn wire(&self) -> Bytes {
        match self {
            Fh::Pseudo(p) => Bytes::from(pseudo::handle(p)),
            Fh::Real(a) => a.handle.handle().to_bytes(),
        }
    }
}

impl Ctx<'_> {
    /// The current handle, or NFS4ERR_NOFILEHANDLE.
    pub fn current(&self) -> Result<&Fh, nfsstat4> {
        self.cur.as_ref().ok_or(nfsstat4::NFS4ERR_NOFILEHANDLE)
    }

    /// The current handle as an export object; a pseudo directory is `pseudo_status` (what the
    /// operation answers for the pseudo file system: NFS4ERR_ROFS for changes, NFS4ERR_ISDIR for
    /// I/O...).
    pub fn real(&self, pseudo_status: nfsstat4) -> Result<&Authorized, nfsstat4> {
        match self.current()? {
            Fh::Real(a) => Ok(a),
            Fh::Pseudo(_) => Err(pseudo_status),
        }
    }

    /// Authorizes `raw` for this caller as an export's handle.
    pub fn authorize(&self, raw: Bytes) -> Result<Fh, nfsstat4> {
        self.svc
            .authorize(self.call, FileHandle::from_wire(raw))
            .map(|a| Fh::Real(Box::new(a)))
            .map_err(denied_status)
    }

    /// The handle of the root of the pseudo file system (or of the export mounted at `/`).
    pub fn root(&self) -> Result<Fh, nfsstat4> {
        let ip = self.call.peer.ip();
        match self
            .table
            .iter()
            .find(|e| e.mount_path == "/" && e.rule_for(ip).is_some())
        {
            Some(e) => self.authorize(e.backend.root().to_bytes()),
            None => Ok(Fh::Pseudo("/".to_owned())),
        }
    }
}

/// Checks a component name (§18.15.3): empty is NFS4ERR_INVAL, too long NFS4ERR_NAMETOOLONG,
/// not UTF-8 NFS4ERR_INVAL, "." and ".." NFS4ERR_BADNAME, a '/' NFS4ERR_BADCHAR.
pub fn check_name(name: &[u8]) -> Result<&str, nfsstat4> {
    if name.is_empty() {
        return Err(nfsstat4::NFS4ERR_INVAL);
    }
    if name.len() > rnfs_nfs4::COMPONENT_BYTES_MAX {
        return Err(nfsstat4::NFS4ERR_NAMETOOLONG);
    }
    let s = std::str::from_utf8(name).map_err(|_| nfsstat4::NFS4ERR_INVAL)?;
    if s == "." || s == ".." {
        return Err(nfsstat4::NFS4ERR_BADNAME);
    }
    if s.contains('/') || s.contains('\0') {
        return Err(nfsstat4::NFS4ERR_BADCHAR);
    }
    Ok(s)
}

pub fn wire(s: st::Stateid) -> stateid4 {
    stateid4 {
        seqid: s.seqid,
        other: s.other,
    }
}

pub fn ours(s: &stateid4) -> st::Stateid {
    st::Stateid {
        seqid: s.seqid,
        other: s.other,
    }
}

pub fn st_err(e: st::Error) -> nfsstat4 {
    nfsstat4::from_u32(e.nfsstat4())
}

impl Ctx<'_> {
    /// The session's client, or NFS4ERR_OP_NOT_IN_SESSION (state needs a session).
    pub fn client(&self) -> Result<ClientId, nfsstat4> {
        self.clientid()
            .map(ClientId)
            .ok_or(nfsstat4::NFS4ERR_OP_NOT_IN_SESSION)
    }

    /// The stateid a request means: the current stateid for the special "current" one
    /// (§16.2.3.1.2), NFS4ERR_BAD_STATEID when there is none.
    pub fn resolve(&self, s: &stateid4) -> Result<stateid4, nfsstat4> {
        if *s == stateid4::CURRENT {
            return self.cur_stateid.ok_or(nfsstat4::NFS4ERR_BAD_STATEID);
        }
        Ok(*s)
    }

    /// The current handle as a regular file of an export.
    pub fn regular(&self) -> Result<(&Authorized, storage::Attr), nfsstat4> {
        let a = self.real(nfsstat4::NFS4ERR_ISDIR)?;
        let attr = attr_of(a)?;
        type_check(attr.file_type)?;
        Ok((a, attr))
    }
}

/// The attributes of an authorized object, or the status of the backend's error.
pub fn attr_of(a: &Authorized) -> Result<storage::Attr, nfsstat4> {
    a.export
        .backend
        .getattr(&a.who, &a.handle)
        .map_err(|e| status(&e))
}

/// Operations on a directory (LOOKUP, READDIR, CREATE...): a symbolic link is
/// NFS4ERR_SYMLINK, anything else NFS4ERR_NOTDIR.
pub fn dir_check(t: storage::FileType) -> Result<(), nfsstat4> {
    match t {
        storage::FileType::Directory => Ok(()),
        storage::FileType::Symlink => Err(nfsstat4::NFS4ERR_SYMLINK),
        _ => Err(nfsstat4::NFS4ERR_NOTDIR),
    }
}

/// The attributes of `a`, which must be a directory.
pub fn require_dir(a: &Authorized) -> Result<storage::Attr, nfsstat4> {
    let attr = attr_of(a)?;
    dir_check(attr.file_type)?;
    Ok(attr)
}

/// OPEN, LOCK and I/O apply to regular files (§18.16.3).
pub fn type_check(t: storage::FileType) -> Result<(), nfsstat4> {
    match t {
        storage::FileType::Regular => Ok(()),
        storage::FileType::Directory => Err(nfsstat4::NFS4ERR_ISDIR),
        storage::FileType::Symlink => Err(nfsstat4::NFS4ERR_SYMLINK),
        _ => Err(nfsstat4::NFS4ERR_WRONG_TYPE),
    }
}

/// The file key of an export object: its handle.
pub fn file_key(a: &Authorized) -> Bytes {
    a.handle.handle().to_bytes()
}

/// Checks the stateid of READ (`write` false), WRITE or SETATTR of the size (§8.2.3, §9.1.4).
/// The anonymous and READ-bypass stateids are accepted; another is checked against this
/// client's state and the current file, and a WRITE needs an open for writing.
pub fn check_io_stateid(ctx: &Ctx<'_>, s: &stateid4, write: bool) -> Result<(), nfsstat4> {
    let a = ctx.real(nfsstat4::NFS4ERR_ISDIR)?;
    check_io_stateid_of(ctx, a, s, write)
}

/// [`check_io_stateid`] for file `a`, which need not be the current one (COPY's and CLONE's
/// source is the saved handle, RFC 7862 §15.2.3).
pub fn check_io_stateid_of(
    ctx: &Ctx<'_>,
    a: &Authorized,
    s: &stateid4,
    write: bool,
) -> Result<(), nfsstat4> {
    let s = ctx.resolve(s)?;
    check_stateid(ctx, a, &s, write)?;
    // Another client's delegation this access conflicts with is recalled first (§10.4.4).
    let file = a.handle.as_bytes();
    let by = ctx.clientid().map(ClientId);
    let v4 = ctx.svc.v4();
    if !v4.break_for(ctx.svc.callbacks(), ctx.call.now_ms, file, by, write) {
        return Err(nfsstat4::NFS4ERR_DELAY);
    }
    Ok(())
}

fn check_stateid(ctx: &Ctx<'_>, a: &Authorized, s: &stateid4, write: bool) -> Result<(), nfsstat4> {
    if *s == stateid4::ANONYMOUS || (*s == stateid4::BYPASS && !write) {
        return Ok(());
    }
    if *s == stateid4::BYPASS || *s == stateid4::INVALID {
        return Err(nfsstat4::NFS4ERR_BAD_STATEID);
    }
    let client = ctx.client()?;
    let r = ctx
        .svc
        .v4()
        .with(|st| st.check(client, &ours(s), StateKind::Any))
        .map_err(st_err)?;
    let (file, write_ok) = match &r.info {
        StateInfo::Open { file, access, .. } => (file, *access & w::OPEN4_SHARE_ACCESS_WRITE != 0),
        StateInfo::Lock { file, .. } => (file, true),
        StateInfo::Deleg { file, write, .. } => (file, *write),
    };
    if *file != a.handle.as_bytes()[..] {
        return Err(nfsstat4::NFS4ERR_BAD_STATEID);
    }
    if write && !write_ok {
        return Err(nfsstat4::NFS4ERR_OPENMODE);
    }
    Ok(())
}
