//! The modifying procedures (RFC 1813 §3.3.2, 3.3.7–3.3.15, 3.3.21).
//!
//! This release serves the read side only: every modifying procedure is authorized like any other
//! (so a stranger still gets NFS3ERR_ACCES and a bad handle NFS3ERR_BADHANDLE) and then answers
//! NFS3ERR_ROFS with the weak-cache-consistency data the RFC asks for, so clients keep their caches
//! right. The write path replaces these handlers.

use rnfs_nfs3::*;
use rnfs_oncrpc::AuthStat;

use super::{authorize, post_op};
use crate::service::{Call, Service};

const ROFS: nfsstat3 = nfsstat3::NFS3ERR_ROFS;

/// wcc_data after a refused change: nothing happened, so only the current attributes.
fn unchanged(auth: &crate::service::Authorized, fh: &nfs_fh3) -> wcc_data {
    wcc_data {
        before: None,
        after: post_op(auth, fh),
    }
}

pub fn setattr(svc: &Service, call: &Call, a: SETATTR3args) -> Result<SETATTR3res, AuthStat> {
    let auth = authorize!(svc, call, a.object, SETATTR3res);
    Ok(SETATTR3res::Fail(
        ROFS,
        SETATTR3resfail {
            obj_wcc: unchanged(&auth, &a.object),
        },
    ))
}

pub fn write(svc: &Service, call: &Call, a: WRITE3args) -> Result<WRITE3res, AuthStat> {
    let auth = authorize!(svc, call, a.file, WRITE3res);
    Ok(WRITE3res::Fail(
        ROFS,
        WRITE3resfail {
            file_wcc: unchanged(&auth, &a.file),
        },
    ))
}

pub fn create(svc: &Service, call: &Call, a: CREATE3args) -> Result<CREATE3res, AuthStat> {
    let auth = authorize!(svc, call, a.r#where.dir, CREATE3res);
    Ok(CREATE3res::Fail(
        ROFS,
        CREATE3resfail {
            dir_wcc: unchanged(&auth, &a.r#where.dir),
        },
    ))
}

pub fn mkdir(svc: &Service, call: &Call, a: MKDIR3args) -> Result<MKDIR3res, AuthStat> {
    let auth = authorize!(svc, call, a.r#where.dir, MKDIR3res);
    Ok(MKDIR3res::Fail(
        ROFS,
        MKDIR3resfail {
            dir_wcc: unchanged(&auth, &a.r#where.dir),
        },
    ))
}

pub fn symlink(svc: &Service, call: &Call, a: SYMLINK3args) -> Result<SYMLINK3res, AuthStat> {
    let auth = authorize!(svc, call, a.r#where.dir, SYMLINK3res);
    Ok(SYMLINK3res::Fail(
        ROFS,
        SYMLINK3resfail {
            dir_wcc: unchanged(&auth, &a.r#where.dir),
        },
    ))
}

pub fn mknod(svc: &Service, call: &Call, a: MKNOD3args) -> Result<MKNOD3res, AuthStat> {
    let auth = authorize!(svc, call, a.r#where.dir, MKNOD3res);
    Ok(MKNOD3res::Fail(
        ROFS,
        MKNOD3resfail {
            dir_wcc: unchanged(&auth, &a.r#where.dir),
        },
    ))
}

pub fn remove(svc: &Service, call: &Call, a: REMOVE3args) -> Result<REMOVE3res, AuthStat> {
    let auth = authorize!(svc, call, a.object.dir, REMOVE3res);
    Ok(REMOVE3res::Fail(
        ROFS,
        REMOVE3resfail {
            dir_wcc: unchanged(&auth, &a.object.dir),
        },
    ))
}

pub fn rmdir(svc: &Service, call: &Call, a: RMDIR3args) -> Result<RMDIR3res, AuthStat> {
    let auth = authorize!(svc, call, a.object.dir, RMDIR3res);
    Ok(RMDIR3res::Fail(
        ROFS,
        RMDIR3resfail {
            dir_wcc: unchanged(&auth, &a.object.dir),
        },
    ))
}

pub fn rename(svc: &Service, call: &Call, a: RENAME3args) -> Result<RENAME3res, AuthStat> {
    let auth = authorize!(svc, call, a.from.dir, RENAME3res);
    // The target directory must be authorized too: it may be on another export.
    let _ = authorize!(svc, call, a.to.dir, RENAME3res);
    Ok(RENAME3res::Fail(
        ROFS,
        RENAME3resfail {
            fromdir_wcc: unchanged(&auth, &a.from.dir),
            todir_wcc: unchanged(&auth, &a.to.dir),
        },
    ))
}

pub fn link(svc: &Service, call: &Call, a: LINK3args) -> Result<LINK3res, AuthStat> {
    let auth = authorize!(svc, call, a.file, LINK3res);
    let _ = authorize!(svc, call, a.link.dir, LINK3res);
    Ok(LINK3res::Fail(
        ROFS,
        LINK3resfail {
            file_attributes: post_op(&auth, &a.file),
            linkdir_wcc: unchanged(&auth, &a.link.dir),
        },
    ))
}

pub fn commit(svc: &Service, call: &Call, a: COMMIT3args) -> Result<COMMIT3res, AuthStat> {
    let auth = authorize!(svc, call, a.file, COMMIT3res);
    Ok(COMMIT3res::Fail(
        ROFS,
        COMMIT3resfail {
            file_wcc: unchanged(&auth, &a.file),
        },
    ))
}
