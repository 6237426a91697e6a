//! The modifying procedures (RFC 1813 §3.3.2, 3.3.7–3.3.15, 3.3.21).
//!
//! Each is authorized like any other procedure (so a stranger gets NFS3ERR_ACCES, a bad handle
//! NFS3ERR_BADHANDLE), then refused with NFS3ERR_ROFS on a read-only rule, then run by the backend
//! as the squashed caller. Every reply carries the wcc data the backend measured around the change;
//! on failure, the current attributes (`before` unknown) so clients still refresh their caches.
//!
//! Durability (§3.3.7, §3.3.21): WRITE returns the stability the backend achieved (never less than
//! asked) and the server's write verifier; COMMIT makes unstable data durable. The verifier changes
//! whenever a backend reports a write-back error (see [`Service::write_verifier`]), which tells
//! clients to re-send everything they have not seen committed.

use rnfs_nfs3::*;
use rnfs_oncrpc::AuthStat;
use rnfs_storage as storage;

use super::{
    admit, authorize, denied_status, fattr, nfs_fh, post_op, post_op_admitted, status, time,
};
use crate::call::Call;
use crate::config::Access;
use crate::service::{Admitted, Authorized, Service};

fn wcc(w: &storage::Wcc) -> wcc_data {
    wcc_data {
        before: w.before.map(|b| wcc_attr {
            size: b.size_bytes,
            mtime: time(b.mtime),
            ctime: time(b.ctime),
        }),
        after: w.after.as_ref().map(fattr),
    }
}

/// wcc data after a refused change: nothing happened, so only the current attributes.
fn unchanged(auth: &Authorized) -> wcc_data {
    wcc_data {
        before: None,
        after: post_op(auth),
    }
}

/// [`unchanged`] for the second handle of RENAME or LINK before it is verified.
fn unchanged_admitted(adm: &Admitted) -> wcc_data {
    wcc_data {
        before: None,
        after: post_op_admitted(adm),
    }
}

fn set_time(t: SetTimeArg) -> storage::SetTime {
    match t {
        SetTimeArg::DontChange => storage::SetTime::DontChange,
        SetTimeArg::Server => storage::SetTime::ServerTime,
        SetTimeArg::Client(t) => storage::SetTime::ClientTime(storage::Timestamp {
            seconds: t.seconds,
            nanoseconds: t.nseconds,
        }),
    }
}

/// `set_atime` and `set_mtime` are two wire types with one meaning.
enum SetTimeArg {
    DontChange,
    Server,
    Client(nfstime3),
}

fn set_attrs(a: &sattr3) -> storage::SetAttrs {
    let atime = match a.atime {
        set_atime::DontChange => SetTimeArg::DontChange,
        set_atime::SetToServerTime => SetTimeArg::Server,
        set_atime::SetToClientTime(t) => SetTimeArg::Client(t),
    };
    let mtime = match a.mtime {
        set_mtime::DontChange => SetTimeArg::DontChange,
        set_mtime::SetToServerTime => SetTimeArg::Server,
        set_mtime::SetToClientTime(t) => SetTimeArg::Client(t),
    };
    storage::SetAttrs {
        mode: a.mode.map(|m| m & 0o7777),
        uid: a.uid,
        gid: a.gid,
        size_bytes: a.size,
        atime: set_time(atime),
        mtime: set_time(mtime),
    }
}

fn stability(s: stable_how) -> storage::Stability {
    match s {
        stable_how::UNSTABLE => storage::Stability::Unstable,
        stable_how::DATA_SYNC => storage::Stability::DataSync,
        stable_how::FILE_SYNC => storage::Stability::FileSync,
    }
}

fn stable(s: storage::Stability) -> stable_how {
    match s {
        storage::Stability::Unstable => stable_how::UNSTABLE,
        storage::Stability::DataSync => stable_how::DATA_SYNC,
        storage::Stability::FileSync => stable_how::FILE_SYNC,
    }
}

/// Whether the rule lets this caller change anything.
fn read_only(auth: &Authorized) -> bool {
    auth.rule.access == Access::Ro
}

pub fn setattr(svc: &Service, call: &Call, a: SETATTR3args) -> Result<SETATTR3res, AuthStat> {
    let auth = authorize!(svc, call, a.object, SETATTR3res);
    if read_only(&auth) {
        return Ok(SETATTR3res::Fail(
            nfsstat3::NFS3ERR_ROFS,
            SETATTR3resfail {
                obj_wcc: unchanged(&auth),
            },
        ));
    }
    let guard = a.guard.map(|t| storage::Timestamp {
        seconds: t.seconds,
        nanoseconds: t.nseconds,
    });
    let set = svc
        .delegations_allow(call.now_ms, auth.handle.as_bytes(), true)
        .and_then(|()| {
            auth.export.backend.setattr(
                &auth.who,
                &auth.handle,
                &set_attrs(&a.new_attributes),
                guard,
            )
        });
    Ok(match set {
        Ok(w) => SETATTR3res::Ok(SETATTR3resok { obj_wcc: wcc(&w) }),
        Err(e) => SETATTR3res::Fail(
            status(&e),
            SETATTR3resfail {
                obj_wcc: unchanged(&auth),
            },
        ),
    })
}

pub fn write(svc: &Service, call: &Call, a: WRITE3args) -> Result<WRITE3res, AuthStat> {
    let auth = authorize!(svc, call, a.file, WRITE3res);
    let fail = |s: nfsstat3| {
        WRITE3res::Fail(
            s,
            WRITE3resfail {
                file_wcc: unchanged(&auth),
            },
        )
    };
    if read_only(&auth) {
        return Ok(fail(nfsstat3::NFS3ERR_ROFS));
    }
    // `count` must describe the data sent (§3.3.7); a mismatch is a broken client.
    if a.count as usize != a.data.len() {
        return Ok(fail(nfsstat3::NFS3ERR_INVAL));
    }
    let result = svc
        .delegations_allow(call.now_ms, auth.handle.as_bytes(), true)
        .and_then(|()| {
            auth.export.backend.write(
                &auth.who,
                &auth.handle,
                a.offset,
                a.data.as_bytes(),
                stability(a.stable),
            )
        });
    Ok(match result {
        Ok(w) => WRITE3res::Ok(WRITE3resok {
            file_wcc: wcc(&w.file),
            count: w.count,
            committed: stable(w.committed),
            verf: svc.write_verifier(),
        }),
        Err(e) => fail(status(&e)),
    })
}

pub fn commit(svc: &Service, call: &Call, a: COMMIT3args) -> Result<COMMIT3res, AuthStat> {
    let auth = authorize!(svc, call, a.file, COMMIT3res);
    if read_only(&auth) {
        return Ok(COMMIT3res::Fail(
            nfsstat3::NFS3ERR_ROFS,
            COMMIT3resfail {
                file_wcc: unchanged(&auth),
            },
        ));
    }
    Ok(
        match auth
            .export
            .backend
            .commit(&auth.who, &auth.handle, a.offset, a.count)
        {
            // The verifier is read after the flush, so a write-back error it met is already in it.
            Ok(w) => COMMIT3res::Ok(COMMIT3resok {
                file_wcc: wcc(&w),
                verf: svc.write_verifier(),
            }),
            Err(e) => COMMIT3res::Fail(
                status(&e),
                COMMIT3resfail {
                    file_wcc: unchanged(&auth),
                },
            ),
        },
    )
}

/// The reply pieces shared by CREATE, MKDIR, SYMLINK and MKNOD.
struct Made {
    obj: post_op_fh3,
    obj_attributes: post_op_attr,
    dir_wcc: wcc_data,
}

fn made(r: storage::Result<storage::Created>) -> Result<Made, nfsstat3> {
    match r {
        Ok(c) => Ok(Made {
            obj: nfs_fh(&c.handle),
            obj_attributes: Some(fattr(&c.attr)),
            dir_wcc: wcc(&c.dir),
        }),
        Err(e) => Err(status(&e)),
    }
}

/// Checks a new name before the backend sees it.
fn new_name_status(name: &filename3) -> Option<nfsstat3> {
    (name.len() > NAME_MAX).then_some(nfsstat3::NFS3ERR_NAMETOOLONG)
}

pub fn create(svc: &Service, call: &Call, a: CREATE3args) -> Result<CREATE3res, AuthStat> {
    let dir = &a.r#where.dir;
    let auth = authorize!(svc, call, dir, CREATE3res);
    let refuse = |s| {
        Ok(CREATE3res::Fail(
            s,
            CREATE3resfail {
                dir_wcc: unchanged(&auth),
            },
        ))
    };
    if read_only(&auth) {
        return refuse(nfsstat3::NFS3ERR_ROFS);
    }
    if let Some(s) = new_name_status(&a.r#where.name) {
        return refuse(s);
    }
    let how = match &a.how {
        createhow3::Unchecked(s) => storage::CreateMode::Unchecked(set_attrs(s)),
        createhow3::Guarded(s) => storage::CreateMode::Guarded(set_attrs(s)),
        createhow3::Exclusive(v) => storage::CreateMode::Exclusive(*v),
    };
    let r = auth
        .export
        .backend
        .create(&auth.who, &auth.handle, a.r#where.name.as_bytes(), &how);
    Ok(match made(r) {
        Ok(m) => CREATE3res::Ok(CREATE3resok {
            obj: m.obj,
            obj_attributes: m.obj_attributes,
            dir_wcc: m.dir_wcc,
        }),
        Err(s) => CREATE3res::Fail(
            s,
            CREATE3resfail {
                dir_wcc: unchanged(&auth),
            },
        ),
    })
}

pub fn mkdir(svc: &Service, call: &Call, a: MKDIR3args) -> Result<MKDIR3res, AuthStat> {
    let dir = &a.r#where.dir;
    let auth = authorize!(svc, call, dir, MKDIR3res);
    let refuse = |s| {
        Ok(MKDIR3res::Fail(
            s,
            MKDIR3resfail {
                dir_wcc: unchanged(&auth),
            },
        ))
    };
    if read_only(&auth) {
        return refuse(nfsstat3::NFS3ERR_ROFS);
    }
    if let Some(s) = new_name_status(&a.r#where.name) {
        return refuse(s);
    }
    let r = auth.export.backend.mkdir(
        &auth.who,
        &auth.handle,
        a.r#where.name.as_bytes(),
        &set_attrs(&a.attributes),
    );
    Ok(match made(r) {
        Ok(m) => MKDIR3res::Ok(MKDIR3resok {
            obj: m.obj,
            obj_attributes: m.obj_attributes,
            dir_wcc: m.dir_wcc,
        }),
        Err(s) => MKDIR3res::Fail(
            s,
            MKDIR3resfail {
                dir_wcc: unchanged(&auth),
            },
        ),
    })
}

pub fn symlink(svc: &Service, call: &Call, a: SYMLINK3args) -> Result<SYMLINK3res, AuthStat> {
    let dir = &a.r#where.dir;
    let auth = authorize!(svc, call, dir, SYMLINK3res);
    let refuse = |s| {
        Ok(SYMLINK3res::Fail(
            s,
            SYMLINK3resfail {
                dir_wcc: unchanged(&auth),
            },
        ))
    };
    if read_only(&auth) {
        return refuse(nfsstat3::NFS3ERR_ROFS);
    }
    if let Some(s) = new_name_status(&a.r#where.name) {
        return refuse(s);
    }
    let r = auth.export.backend.symlink(
        &auth.who,
        &auth.handle,
        a.r#where.name.as_bytes(),
        a.symlink.symlink_data.as_bytes(),
        &set_attrs(&a.symlink.symlink_attributes),
    );
    Ok(match made(r) {
        Ok(m) => SYMLINK3res::Ok(SYMLINK3resok {
            obj: m.obj,
            obj_attributes: m.obj_attributes,
            dir_wcc: m.dir_wcc,
        }),
        Err(s) => SYMLINK3res::Fail(
            s,
            SYMLINK3resfail {
                dir_wcc: unchanged(&auth),
            },
        ),
    })
}

pub fn mknod(svc: &Service, call: &Call, a: MKNOD3args) -> Result<MKNOD3res, AuthStat> {
    let dir = &a.r#where.dir;
    let auth = authorize!(svc, call, dir, MKNOD3res);
    let refuse = |s| {
        Ok(MKNOD3res::Fail(
            s,
            MKNOD3resfail {
                dir_wcc: unchanged(&auth),
            },
        ))
    };
    if read_only(&auth) {
        return refuse(nfsstat3::NFS3ERR_ROFS);
    }
    if let Some(s) = new_name_status(&a.r#where.name) {
        return refuse(s);
    }
    let (kind, attrs) = match &a.what {
        mknoddata3::Chr(d) => (
            storage::NodeKind::CharDevice {
                major: d.spec.specdata1,
                minor: d.spec.specdata2,
            },
            &d.dev_attributes,
        ),
        mknoddata3::Blk(d) => (
            storage::NodeKind::BlockDevice {
                major: d.spec.specdata1,
                minor: d.spec.specdata2,
            },
            &d.dev_attributes,
        ),
        mknoddata3::Sock(s) => (storage::NodeKind::Socket, s),
        mknoddata3::Fifo(s) => (storage::NodeKind::Fifo, s),
        // Regular files, directories and links have their own procedures (§3.3.11).
        _ => return refuse(nfsstat3::NFS3ERR_BADTYPE),
    };
    let r = auth.export.backend.mknod(
        &auth.who,
        &auth.handle,
        a.r#where.name.as_bytes(),
        kind,
        &set_attrs(attrs),
    );
    Ok(match made(r) {
        Ok(m) => MKNOD3res::Ok(MKNOD3resok {
            obj: m.obj,
            obj_attributes: m.obj_attributes,
            dir_wcc: m.dir_wcc,
        }),
        Err(s) => MKNOD3res::Fail(
            s,
            MKNOD3resfail {
                dir_wcc: unchanged(&auth),
            },
        ),
    })
}

pub fn remove(svc: &Service, call: &Call, a: REMOVE3args) -> Result<REMOVE3res, AuthStat> {
    let dir = &a.object.dir;
    let auth = authorize!(svc, call, dir, REMOVE3res);
    if read_only(&auth) {
        return Ok(REMOVE3res::Fail(
            nfsstat3::NFS3ERR_ROFS,
            REMOVE3resfail {
                dir_wcc: unchanged(&auth),
            },
        ));
    }
    let name = a.object.name.as_bytes();
    let removed = svc
        .delegations_allow_name(call.now_ms, &auth, name)
        .and_then(|()| auth.export.backend.remove(&auth.who, &auth.handle, name));
    Ok(match removed {
        Ok(w) => REMOVE3res::Ok(REMOVE3resok { dir_wcc: wcc(&w) }),
        Err(e) => REMOVE3res::Fail(
            status(&e),
            REMOVE3resfail {
                dir_wcc: unchanged(&auth),
            },
        ),
    })
}

pub fn rmdir(svc: &Service, call: &Call, a: RMDIR3args) -> Result<RMDIR3res, AuthStat> {
    let dir = &a.object.dir;
    let auth = authorize!(svc, call, dir, RMDIR3res);
    if read_only(&auth) {
        return Ok(RMDIR3res::Fail(
            nfsstat3::NFS3ERR_ROFS,
            RMDIR3resfail {
                dir_wcc: unchanged(&auth),
            },
        ));
    }
    Ok(
        match auth
            .export
            .backend
            .rmdir(&auth.who, &auth.handle, a.object.name.as_bytes())
        {
            Ok(w) => RMDIR3res::Ok(RMDIR3resok { dir_wcc: wcc(&w) }),
            Err(e) => RMDIR3res::Fail(
                status(&e),
                RMDIR3resfail {
                    dir_wcc: unchanged(&auth),
                },
            ),
        },
    )
}

/// The second directory of RENAME and LINK, where `name` is to appear: refused (with its
/// attributes, when known) if either export is read-only for the caller, if it is in another
/// export (XDEV, whatever its tags), or if `name` cannot be created; only then is its handle
/// verified.
// The error is the failure reply's own payload, moved once into it: boxing it would only add an
// allocation to a failing call.
#[allow(clippy::result_large_err)]
fn second_dir(
    auth: &Authorized,
    dir: Admitted,
    name: &filename3,
) -> Result<Authorized, (nfsstat3, wcc_data)> {
    let refused = if read_only(auth) || dir.rule.access == Access::Ro {
        Some(nfsstat3::NFS3ERR_ROFS)
    } else if dir.export.id != auth.export.id {
        Some(nfsstat3::NFS3ERR_XDEV)
    } else {
        new_name_status(name)
    };
    if let Some(s) = refused {
        return Err((s, unchanged_admitted(&dir)));
    }
    dir.verify()
        .map_err(|d| (denied_status(d), wcc_data::default()))
}

pub fn rename(svc: &Service, call: &Call, a: RENAME3args) -> Result<RENAME3res, AuthStat> {
    let auth = authorize!(svc, call, a.from.dir, RENAME3res);
    // Verified below, once it is known to be of the same export: another export is XDEV
    // whatever its tags.
    let to = admit!(svc, call, a.to.dir, RENAME3res);
    let fail = |s, todir_wcc| {
        RENAME3res::Fail(
            s,
            RENAME3resfail {
                fromdir_wcc: unchanged(&auth),
                todir_wcc,
            },
        )
    };
    let to = match second_dir(&auth, to, &a.to.name) {
        Ok(to) => to,
        Err((s, todir_wcc)) => return Ok(fail(s, todir_wcc)),
    };
    let now = call.now_ms;
    let r = svc
        .delegations_allow_name(now, &auth, a.from.name.as_bytes())
        .and_then(|()| svc.delegations_allow_name(now, &to, a.to.name.as_bytes()))
        .and_then(|()| {
            auth.export.backend.rename(
                &auth.who,
                &auth.handle,
                a.from.name.as_bytes(),
                &to.handle,
                a.to.name.as_bytes(),
            )
        });
    Ok(match r {
        Ok((from, to)) => RENAME3res::Ok(RENAME3resok {
            fromdir_wcc: wcc(&from),
            todir_wcc: wcc(&to),
        }),
        Err(e) => fail(status(&e), unchanged(&to)),
    })
}

pub fn link(svc: &Service, call: &Call, a: LINK3args) -> Result<LINK3res, AuthStat> {
    let auth = authorize!(svc, call, a.file, LINK3res);
    // Verified below, once it is known to be of the same export (as RENAME's target).
    let dir = admit!(svc, call, a.link.dir, LINK3res);
    let fail = |s, linkdir_wcc| {
        LINK3res::Fail(
            s,
            LINK3resfail {
                file_attributes: post_op(&auth),
                linkdir_wcc,
            },
        )
    };
    let dir = match second_dir(&auth, dir, &a.link.name) {
        Ok(dir) => dir,
        Err((s, linkdir_wcc)) => return Ok(fail(s, linkdir_wcc)),
    };
    let linked = svc
        .delegations_allow(call.now_ms, auth.handle.as_bytes(), true)
        .and_then(|()| {
            auth.export
                .backend
                .link(&auth.who, &auth.handle, &dir.handle, a.link.name.as_bytes())
        });
    Ok(match linked {
        Ok((attr, w)) => LINK3res::Ok(LINK3resok {
            file_attributes: attr.as_ref().map(fattr),
            linkdir_wcc: wcc(&w),
        }),
        Err(e) => fail(status(&e), unchanged(&dir)),
    })
}
