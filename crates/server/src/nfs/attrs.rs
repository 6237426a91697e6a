//! GETATTR, LOOKUP, ACCESS, FSSTAT, FSINFO, PATHCONF (RFC 1813 §3.3.1, 3.3.3, 3.3.4,
//! 3.3.18–3.3.20).

use rnfs_nfs3::*;
use rnfs_oncrpc::AuthStat;
use rnfs_storage as storage;

use super::{authorize, fattr, nfs_fh, post_op, status};
use crate::call::Call;
use crate::config::Access;
use crate::service::Service;

pub fn getattr(svc: &Service, call: &Call, a: GETATTR3args) -> Result<GETATTR3res, AuthStat> {
    let auth = authorize!(svc, call, a.object, GETATTR3res);
    // Size and times of a file delegated for writing are the holder's: recalled first.
    let got = svc
        .delegations_allow(call.now_ms, auth.handle.as_bytes(), false)
        .and_then(|()| auth.export.backend.getattr(&auth.who, &auth.handle));
    Ok(match got {
        Ok(attr) => GETATTR3res::Ok(GETATTR3resok {
            obj_attributes: fattr(&attr),
        }),
        Err(e) => GETATTR3res::Fail(status(&e), ()),
    })
}

pub fn lookup(svc: &Service, call: &Call, a: LOOKUP3args) -> Result<LOOKUP3res, AuthStat> {
    let dir = &a.what.dir;
    let auth = authorize!(svc, call, dir, LOOKUP3res);
    if a.what.name.len() > NAME_MAX {
        let fail = LOOKUP3resfail {
            dir_attributes: post_op(&auth),
        };
        return Ok(LOOKUP3res::Fail(nfsstat3::NFS3ERR_NAMETOOLONG, fail));
    }
    let (result, dir_attr) =
        auth.export
            .backend
            .lookup_with_dir(&auth.who, &auth.handle, a.what.name.as_bytes());
    let dir_attributes = dir_attr.as_ref().map(fattr);
    Ok(match result {
        Ok((fh, attr)) => match nfs_fh(&fh) {
            Some(object) => LOOKUP3res::Ok(LOOKUP3resok {
                object,
                obj_attributes: Some(fattr(&attr)),
                dir_attributes,
            }),
            None => LOOKUP3res::Fail(nfsstat3::NFS3ERR_SERVERFAULT, Default::default()),
        },
        Err(e) => LOOKUP3res::Fail(status(&e), LOOKUP3resfail { dir_attributes }),
    })
}

pub fn access(svc: &Service, call: &Call, a: ACCESS3args) -> Result<ACCESS3res, AuthStat> {
    let auth = authorize!(svc, call, a.object, ACCESS3res);
    let requested = a.access & storage::access::ALL;
    Ok(
        match auth
            .export
            .backend
            .access(&auth.who, &auth.handle, requested)
        {
            Ok((mut granted, attr)) => {
                if auth.rule.access == Access::Ro {
                    // A read-only export grants no change, whatever the file's mode says.
                    granted &= !(ACCESS3_MODIFY | ACCESS3_EXTEND | ACCESS3_DELETE);
                }
                ACCESS3res::Ok(ACCESS3resok {
                    obj_attributes: Some(fattr(&attr)),
                    access: granted & requested,
                })
            }
            Err(e) => ACCESS3res::Fail(
                status(&e),
                ACCESS3resfail {
                    obj_attributes: post_op(&auth),
                },
            ),
        },
    )
}

pub fn fsstat(svc: &Service, call: &Call, a: FSSTAT3args) -> Result<FSSTAT3res, AuthStat> {
    let auth = authorize!(svc, call, a.fsroot, FSSTAT3res);
    Ok(match auth.export.backend.fsstat(&auth.who, &auth.handle) {
        Ok((st, attr)) => FSSTAT3res::Ok(FSSTAT3resok {
            obj_attributes: Some(fattr(&attr)),
            tbytes: st.total_bytes,
            fbytes: st.free_bytes,
            abytes: st.avail_bytes,
            tfiles: st.total_files,
            ffiles: st.free_files,
            afiles: st.avail_files,
            // The totals change at any time: clients should not cache them.
            invarsec: 0,
        }),
        Err(e) => FSSTAT3res::Fail(
            status(&e),
            FSSTAT3resfail {
                obj_attributes: post_op(&auth),
            },
        ),
    })
}

/// Block size clients should align transfers to.
const TRANSFER_MULTIPLE_BYTES: u32 = 4096;
/// Preferred READDIR reply size.
const READDIR_PREFERRED_BYTES: u32 = 64 << 10;

pub fn fsinfo(svc: &Service, call: &Call, a: FSINFO3args) -> Result<FSINFO3res, AuthStat> {
    let auth = authorize!(svc, call, a.fsroot, FSINFO3res);
    let max = svc.limits().transfer_bytes_max;
    Ok(match auth.export.backend.getattr(&auth.who, &auth.handle) {
        Ok(attr) => FSINFO3res::Ok(FSINFO3resok {
            obj_attributes: Some(fattr(&attr)),
            rtmax: max,
            rtpref: max,
            rtmult: TRANSFER_MULTIPLE_BYTES,
            wtmax: max,
            wtpref: max,
            wtmult: TRANSFER_MULTIPLE_BYTES,
            dtpref: READDIR_PREFERRED_BYTES,
            maxfilesize: i64::MAX as u64,
            // Local file systems keep nanoseconds.
            time_delta: nfstime3 {
                seconds: 0,
                nseconds: 1,
            },
            properties: FSF3_LINK | FSF3_SYMLINK | FSF3_HOMOGENEOUS | FSF3_CANSETTIME,
        }),
        Err(e) => FSINFO3res::Fail(
            status(&e),
            FSINFO3resfail {
                obj_attributes: None,
            },
        ),
    })
}

pub fn pathconf(svc: &Service, call: &Call, a: PATHCONF3args) -> Result<PATHCONF3res, AuthStat> {
    let auth = authorize!(svc, call, a.object, PATHCONF3res);
    Ok(
        match auth.export.backend.pathconf(&auth.who, &auth.handle) {
            Ok((pc, attr)) => PATHCONF3res::Ok(PATHCONF3resok {
                obj_attributes: Some(fattr(&attr)),
                linkmax: pc.link_max,
                name_max: pc.name_max,
                no_trunc: pc.no_trunc,
                chown_restricted: pc.chown_restricted,
                case_insensitive: pc.case_insensitive,
                case_preserving: pc.case_preserving,
            }),
            Err(e) => PATHCONF3res::Fail(
                status(&e),
                PATHCONF3resfail {
                    obj_attributes: post_op(&auth),
                },
            ),
        },
    )
}
