//! GETATTR, SETATTR, VERIFY, NVERIFY and ACCESS (RFC 8881 §18.7, §18.30, §18.31, §18.15,
//! §18.1), and the attribute values of an object ([`with_values`]).
//!
//! `owner` and `owner_group` are mapped by `crate::idmap` (decimal ids by default, what Linux
//! clients expect from AUTH_SYS servers; `name@domain` with `nfs4_domain`). `change` is the
//! ctime in nanoseconds.

use rnfs_nfs4::attr::{self, AttrValues, FsTotals, SetTime4};
use rnfs_nfs4::{fattr4, nfs_ftype4, nfsstat4, nfstime4, op::*, specdata4, Bitmap, ResBody, ResOp};
use rnfs_nfs4::{ACCESS4resok, ACCESS4_DELETE, ACCESS4_EXTEND, ACCESS4_MODIFY};
use rnfs_storage as storage;

use super::ctx::{attr_of, check_io_stateid, Ctx, Fh};
use super::pseudo;
use super::status;
use crate::config::Access;
use crate::idmap::Kind;
use crate::service::Authorized;

/// Longest name the exports accept (NAME_MAX of Linux file systems).
const NAME_BYTES_MAX: u32 = 255;
/// Most hard links reported (ext4's limit; the kernel refuses past the real one).
const LINKS_MAX: u32 = 65_000;

pub fn time4(t: storage::Timestamp) -> nfstime4 {
    nfstime4 {
        seconds: i64::from(t.seconds),
        nseconds: t.nanoseconds,
    }
}

/// The change attribute of an object with these attributes: its ctime in nanoseconds.
pub fn change(a: &storage::Attr) -> u64 {
    u64::from(a.ctime.seconds) * 1_000_000_000 + u64::from(a.ctime.nanoseconds)
}

pub fn ftype4(t: storage::FileType) -> nfs_ftype4 {
    use storage::FileType as T;
    match t {
        T::Regular => nfs_ftype4::NF4REG,
        T::Directory => nfs_ftype4::NF4DIR,
        T::BlockDevice => nfs_ftype4::NF4BLK,
        T::CharDevice => nfs_ftype4::NF4CHR,
        T::Symlink => nfs_ftype4::NF4LNK,
        T::Socket => nfs_ftype4::NF4SOCK,
        T::Fifo => nfs_ftype4::NF4FIFO,
    }
}

/// Calls `f` with the attribute values of `fh` (file system totals read only if `request` asks).
pub fn with_values<R>(
    ctx: &Ctx<'_>,
    fh: &Fh,
    request: &Bitmap,
    f: impl FnOnce(&AttrValues<'_>) -> R,
) -> Result<R, nfsstat4> {
    match fh {
        Fh::Pseudo(path) => Ok(f(&pseudo_values(ctx, path, &pseudo::handle(path)))),
        Fh::Real(a) => real_values(ctx, a, &attr_of(a)?, request, f),
    }
}

/// [`with_values`] for an export object whose attributes are at hand (READDIR's entries).
pub fn real_values<R>(
    ctx: &Ctx<'_>,
    a: &Authorized,
    attr: &storage::Attr,
    request: &Bitmap,
    f: impl FnOnce(&AttrValues<'_>) -> R,
) -> Result<R, nfsstat4> {
    let fs = if attr::wants_fs_totals(request) {
        let (s, _) = a
            .export
            .backend
            .fsstat(&a.who, &a.handle)
            .map_err(|e| status(&e))?;
        Some(FsTotals {
            files_avail: s.avail_files,
            files_free: s.free_files,
            files_total: s.total_files,
            space_avail: s.avail_bytes,
            space_free: s.free_bytes,
            space_total: s.total_bytes,
        })
    } else {
        None
    };
    let is_root = a.handle.as_bytes() == a.export.backend.root().as_bytes();
    let mounted_on_fileid = if is_root && a.export.mount_path != "/" {
        pseudo::fileid(&a.export.mount_path)
    } else {
        attr.fileid
    };
    let idmap = ctx.svc.idmap();
    let owner = idmap.name_of(ctx.call.now_ms, Kind::User, attr.uid);
    let group = idmap.name_of(ctx.call.now_ms, Kind::Group, attr.gid);
    let fh = a.handle.as_bytes();
    let v = object_values(ctx, a, attr, fh, &owner, &group, fs, mounted_on_fileid);
    Ok(f(&v))
}

#[allow(clippy::too_many_arguments)]
fn object_values<'a>(
    ctx: &Ctx<'_>,
    a: &Authorized,
    attr: &storage::Attr,
    fh: &'a [u8],
    owner: &'a str,
    group: &'a str,
    fs: Option<FsTotals>,
    mounted_on_fileid: u64,
) -> AttrValues<'a> {
    let transfer = u64::from(ctx.svc.limits().transfer_bytes_max);
    AttrValues {
        file_type: ftype4(attr.file_type),
        change: change(attr),
        size: attr.size_bytes,
        fsid: (u64::from(a.export.id) + 1, attr.fsid),
        lease_time_s: ctx.svc.v4().lease_s(),
        rdattr_error: nfsstat4::NFS4_OK,
        filehandle: fh,
        fileid: attr.fileid,
        fs,
        maxfilesize: i64::MAX as u64,
        maxlink: LINKS_MAX,
        maxname: NAME_BYTES_MAX,
        maxread: transfer,
        maxwrite: transfer,
        mode: attr.mode,
        numlinks: attr.nlink,
        owner: owner.as_bytes(),
        owner_group: group.as_bytes(),
        rawdev: specdata4 {
            specdata1: attr.rdev.0,
            specdata2: attr.rdev.1,
        },
        space_used: attr.used_bytes,
        time_access: time4(attr.atime),
        time_metadata: time4(attr.ctime),
        time_modify: time4(attr.mtime),
        mounted_on_fileid,
        xattr_support: a.export.backend.xattr_support(),
    }
}

/// A pseudo directory's values: read-only, root-owned, in file system (0, 0).
pub fn pseudo_values<'a>(ctx: &Ctx<'_>, path: &str, fh: &'a [u8]) -> AttrValues<'a> {
    let fileid = pseudo::fileid(path);
    // Changes when the set of exports under it does.
    let names: Vec<String> = pseudo::children(&ctx.table, ctx.call.peer.ip(), path)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let change = pseudo::fileid(&names.join("/")) & !(1 << 63);
    let transfer = u64::from(ctx.svc.limits().transfer_bytes_max);
    AttrValues {
        file_type: nfs_ftype4::NF4DIR,
        change,
        size: 0,
        fsid: (0, 0),
        lease_time_s: ctx.svc.v4().lease_s(),
        rdattr_error: nfsstat4::NFS4_OK,
        filehandle: fh,
        fileid,
        fs: Some(FsTotals::default()),
        maxfilesize: i64::MAX as u64,
        maxlink: LINKS_MAX,
        maxname: NAME_BYTES_MAX,
        maxread: transfer,
        maxwrite: transfer,
        mode: 0o555,
        numlinks: 2,
        owner: b"0",
        owner_group: b"0",
        rawdev: specdata4::default(),
        space_used: 0,
        time_access: nfstime4::default(),
        time_metadata: nfstime4::default(),
        time_modify: nfstime4::default(),
        mounted_on_fileid: fileid,
        xattr_support: false,
    }
}

pub fn getattr(ctx: &mut Ctx<'_>, request: Bitmap) -> ResOp {
    if attr::WRITE_ONLY.iter().any(|&a| request.contains(a)) {
        return ResOp::status(OP_GETATTR, nfsstat4::NFS4ERR_INVAL);
    }
    let res = ctx.current().and_then(|fh| {
        let holder = written_elsewhere(ctx, fh, &request)?;
        with_values(ctx, fh, &request, |v| match holder {
            Some((change, size)) => {
                let mut v = v.clone();
                v.change = change.unwrap_or(v.change);
                v.size = size.unwrap_or(v.size);
                attr::encode(&v, &request)
            }
            None => attr::encode(v, &request),
        })
    });
    match res {
        Ok(f) => ResOp::ok(OP_GETATTR, ResBody::GetAttr(f)),
        Err(s) => ResOp::status(OP_GETATTR, s),
    }
}

/// A file another client holds a write delegation of has its size and change attribute there
/// (in that client's cache, RFC 8881 §10.4.3): asking for them asks the holder (CB_GETATTR), and
/// the reply carries the holder's values; when the holder does not answer in time, the
/// delegation is recalled (NFS4ERR_DELAY until it is back), as asking for the data does.
fn written_elsewhere(
    ctx: &Ctx<'_>,
    fh: &Fh,
    request: &Bitmap,
) -> Result<Option<attr::ChangeSize>, nfsstat4> {
    let Fh::Real(a) = fh else {
        return Ok(None);
    };
    let v4 = ctx.svc.v4();
    if !v4.any_delegations()
        || !(request.contains(attr::num::SIZE) || request.contains(attr::num::CHANGE))
    {
        return Ok(None);
    }
    let file = a.handle.as_bytes();
    let by = ctx.clientid().map(rnfs_nfs4state::ClientId);
    let holder = v4.with(|s| s.write_delegate(file));
    if let Some((holder, deleg_fh)) = holder.filter(|(h, _)| Some(*h) != by) {
        let answered = v4.ask_holder(ctx.svc.callbacks(), holder, deleg_fh, timeout_ms(ctx));
        if answered.is_some() {
            return Ok(answered);
        }
    }
    if v4.break_for(ctx.svc.callbacks(), ctx.call.now_ms, file, by, false) {
        Ok(None)
    } else {
        Err(nfsstat4::NFS4ERR_DELAY)
    }
}

fn timeout_ms(ctx: &Ctx<'_>) -> u64 {
    ctx.svc.limits().lock_callback_timeout_ms
}

/// VERIFY (`want_same`) and NVERIFY.
pub fn verify(ctx: &mut Ctx<'_>, f: fattr4, want_same: bool) -> ResOp {
    let op = if want_same { OP_VERIFY } else { OP_NVERIFY };
    let same = ctx
        .current()
        .and_then(|fh| with_values(ctx, fh, &f.attrmask, |v| attr::same(v, &f)))
        .and_then(|r| r);
    let status = match same {
        Ok(s) if s == want_same => nfsstat4::NFS4_OK,
        Ok(_) if want_same => nfsstat4::NFS4ERR_NOT_SAME,
        Ok(_) => nfsstat4::NFS4ERR_SAME,
        Err(s) => s,
    };
    ResOp::status(op, status)
}

pub fn access(ctx: &mut Ctx<'_>, requested: u32) -> ResOp {
    let requested = requested & storage::access::ALL;
    let granted = match ctx.current() {
        Err(s) => return ResOp::status(OP_ACCESS, s),
        // A pseudo directory can be listed and searched, nothing else.
        Ok(Fh::Pseudo(_)) => Ok(requested & (storage::access::READ | storage::access::LOOKUP)),
        Ok(Fh::Real(a)) => match a.export.backend.access(&a.who, &a.handle, requested) {
            Ok((mut g, _)) => {
                if a.rule.access == Access::Ro {
                    g &= !(ACCESS4_MODIFY | ACCESS4_EXTEND | ACCESS4_DELETE);
                }
                Ok(g & requested)
            }
            Err(e) => Err(status(&e)),
        },
    };
    match granted {
        Ok(access) => ResOp::ok(
            OP_ACCESS,
            ResBody::Access(ACCESS4resok {
                supported: requested,
                access,
            }),
        ),
        Err(s) => ResOp::status(OP_ACCESS, s),
    }
}

/// The storage form of settable attributes; owners must be ids the server can name
/// (NFS4ERR_BADOWNER otherwise: see `crate::idmap`), times must fit the file system's
/// (NFS4ERR_INVAL otherwise).
pub fn storage_attrs(ctx: &Ctx<'_>, s: &attr::SetAttrs4) -> Result<storage::SetAttrs, nfsstat4> {
    let idmap = ctx.svc.idmap();
    let now = ctx.call.now_ms;
    let id = |kind| {
        move |b: &bytes::Bytes| -> Result<u32, nfsstat4> {
            idmap.id_of(now, kind, b).ok_or(nfsstat4::NFS4ERR_BADOWNER)
        }
    };
    let time = |t: Option<SetTime4>| -> Result<storage::SetTime, nfsstat4> {
        Ok(match t {
            None => storage::SetTime::DontChange,
            Some(SetTime4::ServerTime) => storage::SetTime::ServerTime,
            Some(SetTime4::ClientTime(t)) => {
                let seconds = u32::try_from(t.seconds).map_err(|_| nfsstat4::NFS4ERR_INVAL)?;
                if t.nseconds >= 1_000_000_000 {
                    return Err(nfsstat4::NFS4ERR_INVAL);
                }
                storage::SetTime::ClientTime(storage::Timestamp {
                    seconds,
                    nanoseconds: t.nseconds,
                })
            }
        })
    };
    if s.mode.is_some_and(|m| m & !0o7777 != 0) {
        return Err(nfsstat4::NFS4ERR_INVAL);
    }
    Ok(storage::SetAttrs {
        mode: s.mode,
        uid: s.owner.as_ref().map(id(Kind::User)).transpose()?,
        gid: s.owner_group.as_ref().map(id(Kind::Group)).transpose()?,
        size_bytes: s.size,
        atime: time(s.atime)?,
        mtime: time(s.mtime)?,
    })
}

/// The object SETATTR and the writing operations may change, or why not.
pub fn writable<'c>(ctx: &'c Ctx<'_>) -> Result<&'c Authorized, nfsstat4> {
    let a = ctx.real(nfsstat4::NFS4ERR_ROFS)?;
    if a.rule.access == Access::Ro {
        return Err(nfsstat4::NFS4ERR_ROFS);
    }
    Ok(a)
}

pub fn setattr(ctx: &mut Ctx<'_>, args: rnfs_nfs4::SETATTR4args) -> ResOp {
    let done = setattr_inner(ctx, &args);
    let (status, set) = match done {
        Ok(mask) => (nfsstat4::NFS4_OK, mask),
        Err(s) => (s, Bitmap::default()),
    };
    ResOp {
        op: OP_SETATTR,
        status,
        body: Some(ResBody::SetAttr(set)),
    }
}

fn setattr_inner(ctx: &mut Ctx<'_>, args: &rnfs_nfs4::SETATTR4args) -> Result<Bitmap, nfsstat4> {
    ctx.current()?;
    let a = writable(ctx)?;
    let set = attr::decode_settable(&args.obj_attributes)?;
    let attrs = storage_attrs(ctx, &set)?;
    if set.size.is_some() {
        // A size change is a write: the stateid must allow it (§18.30.3).
        check_io_stateid(ctx, &args.stateid, true)?;
    } else {
        super::deleg::allow_change(ctx, a.handle.as_bytes())?;
    }
    a.export
        .backend
        .setattr(&a.who, &a.handle, &attrs, None)
        .map_err(|e| status(&e))?;
    Ok(set.mask)
}

/// A directory's change information around a change (§3.3.6): its ctime before and after.
pub fn cinfo(wcc: &storage::Wcc) -> rnfs_nfs4::change_info4 {
    let before = wcc
        .before
        .map(|b| u64::from(b.ctime.seconds) * 1_000_000_000 + u64::from(b.ctime.nanoseconds));
    let after = wcc.after.as_ref().map(change);
    rnfs_nfs4::change_info4 {
        atomic: before.is_some() && after.is_some(),
        before: before.unwrap_or(0),
        after: after.unwrap_or(0),
    }
}
