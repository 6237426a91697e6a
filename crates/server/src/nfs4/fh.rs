//! The current and saved file handles (RFC 8881 §16.2.3), and the operations that set or read
//! them: PUTFH, PUTROOTFH, PUTPUBFH, GETFH, SAVEFH, RESTOREFH, LOOKUP, LOOKUPP, SECINFO,
//! SECINFO_NO_NAME (§18.19–18.27, §18.29, §18.45).
//!
//! A handle is either a pseudo directory ([`super::pseudo`]) or an object of an export, which
//! passed [`crate::service::Service::authorize`] when it became current: the export's rules,
//! squashing and the handle's MAC are checked once, exactly as for NFSv3, and crossing from the
//! pseudo file system into an export (LOOKUP) authorizes the export's root the same way.

use rnfs_nfs4::{nfs_fh4, nfsstat4, op::*, secinfo4, Opaque, ResBody, ResOp, AUTH_NONE, AUTH_SYS};
use rnfs_storage as storage;

use super::ctx::{attr_of, check_name, dir_check, require_dir, Ctx, Fh};
use super::pseudo::{self, Target};
use super::status;

pub fn putfh(ctx: &mut Ctx<'_>, fh: nfs_fh4) -> ResOp {
    let raw = fh.0;
    let new = if pseudo::is_pseudo_handle(&raw) {
        pseudo::by_handle(&ctx.table, ctx.call.peer.ip(), &raw)
            .map(Fh::Pseudo)
            .ok_or(nfsstat4::NFS4ERR_STALE)
    } else {
        ctx.authorize(raw)
    };
    set_current(ctx, OP_PUTFH, new)
}

pub fn putrootfh(ctx: &mut Ctx<'_>, op: u32) -> ResOp {
    let root = ctx.root();
    set_current(ctx, op, root)
}

fn set_current(ctx: &mut Ctx<'_>, op: u32, fh: Result<Fh, nfsstat4>) -> ResOp {
    match fh {
        Ok(fh) => {
            ctx.cur = Some(fh);
            ctx.cur_stateid = None;
            ResOp::status(op, nfsstat4::NFS4_OK)
        }
        Err(s) => ResOp::status(op, s),
    }
}

pub fn getfh(ctx: &mut Ctx<'_>) -> ResOp {
    match ctx.current() {
        Ok(fh) => ResOp::ok(OP_GETFH, ResBody::GetFh(Opaque(fh.wire()))),
        Err(s) => ResOp::status(OP_GETFH, s),
    }
}

pub fn savefh(ctx: &mut Ctx<'_>) -> ResOp {
    match ctx.current() {
        Ok(fh) => {
            ctx.saved = Some(fh.clone());
            ctx.saved_stateid = ctx.cur_stateid;
            ResOp::status(OP_SAVEFH, nfsstat4::NFS4_OK)
        }
        Err(s) => ResOp::status(OP_SAVEFH, s),
    }
}

pub fn restorefh(ctx: &mut Ctx<'_>) -> ResOp {
    match &ctx.saved {
        Some(fh) => {
            ctx.cur = Some(fh.clone());
            ctx.cur_stateid = ctx.saved_stateid;
            ResOp::status(OP_RESTOREFH, nfsstat4::NFS4_OK)
        }
        None => ResOp::status(OP_RESTOREFH, nfsstat4::NFS4ERR_RESTOREFH),
    }
}

/// Where `name` in the current directory leads (for LOOKUP and SECINFO).
fn resolve(ctx: &Ctx<'_>, name: &[u8]) -> Result<Fh, nfsstat4> {
    let cur = ctx.current()?;
    let name = check_name(name)?;
    match cur {
        Fh::Pseudo(dir) => {
            let ip = ctx.call.peer.ip();
            match pseudo::child(&ctx.table, ip, dir, name) {
                Some(Target::Dir(p)) => Ok(Fh::Pseudo(p)),
                Some(Target::Export(e)) => ctx.authorize(e.backend.root().to_bytes()),
                None => Err(nfsstat4::NFS4ERR_NOENT),
            }
        }
        Fh::Real(a) => {
            // One backend call for the common case; the directory's type only when the lookup
            // says it is none (a symbolic link has its own status).
            let found = a.export.backend.lookup(&a.who, &a.handle, name.as_bytes());
            match found {
                Ok((fh, _)) => ctx.authorize(fh.to_bytes()),
                Err(storage::Error::NotDir) => Err(dir_check(attr_of(a)?.file_type)
                    .err()
                    .unwrap_or(nfsstat4::NFS4ERR_NOTDIR)),
                Err(e) => Err(status(&e)),
            }
        }
    }
}

pub fn lookup(ctx: &mut Ctx<'_>, name: rnfs_nfs4::component4) -> ResOp {
    let found = resolve(ctx, name.as_bytes());
    set_current(ctx, OP_LOOKUP, found)
}

pub fn lookupp(ctx: &mut Ctx<'_>) -> ResOp {
    let parent = parent_of(ctx);
    set_current(ctx, OP_LOOKUPP, parent)
}

fn parent_of(ctx: &Ctx<'_>) -> Result<Fh, nfsstat4> {
    match ctx.current()? {
        Fh::Pseudo(p) => pseudo::parent(p)
            .map(Fh::Pseudo)
            .ok_or(nfsstat4::NFS4ERR_NOENT),
        Fh::Real(a) => {
            require_dir(a)?;
            if a.handle.as_bytes() == a.export.backend.root().as_bytes() {
                // Out of the export, into the pseudo directory it is mounted on.
                return pseudo::parent(&a.export.mount_path)
                    .map(Fh::Pseudo)
                    .ok_or(nfsstat4::NFS4ERR_NOENT);
            }
            let (fh, _) = a
                .export
                .backend
                .lookup(&a.who, &a.handle, b"..")
                .map_err(|e| status(&e))?;
            ctx.authorize(fh.to_bytes())
        }
    }
}

/// The flavors every export accepts: AUTH_SYS, and AUTH_NONE (served as the anonymous user).
fn flavors() -> ResBody {
    ResBody::SecInfo(rnfs_xdr::Array(vec![
        secinfo4::Flavor(AUTH_SYS),
        secinfo4::Flavor(AUTH_NONE),
    ]))
}

/// SECINFO: the flavors for `name`; on success the current handle is consumed (§2.6.3.1.1.8).
pub fn secinfo(ctx: &mut Ctx<'_>, name: rnfs_nfs4::component4) -> ResOp {
    match resolve(ctx, name.as_bytes()) {
        Ok(_) => {
            ctx.cur = None;
            ResOp::ok(OP_SECINFO, flavors())
        }
        Err(s) => ResOp::status(OP_SECINFO, s),
    }
}

/// SECINFO_NO_NAME: the flavors of the current handle (style 0) or its parent (style 1).
pub fn secinfo_no_name(ctx: &mut Ctx<'_>, style: u32) -> ResOp {
    let found = match style {
        0 => ctx.current().map(|_| ()),
        1 => parent_of(ctx).map(|_| ()),
        _ => Err(nfsstat4::NFS4ERR_INVAL),
    };
    match found {
        Ok(()) => {
            ctx.cur = None;
            ResOp::ok(OP_SECINFO_NO_NAME, flavors())
        }
        Err(s) => ResOp::status(OP_SECINFO_NO_NAME, s),
    }
}
