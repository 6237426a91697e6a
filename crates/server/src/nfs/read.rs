//! READ and READLINK (RFC 1813 §3.3.6, §3.3.5).
//!
//! READ returns at most the transport's payload limit (1 MiB over TCP, 32 KiB over UDP) whatever
//! the client asks, and reports `eof` exactly: true when the data returned reaches the end of the
//! file as it was when read. This is the buffered path; the zero-copy path builds on it.

use rnfs_nfs3::*;
use rnfs_oncrpc::AuthStat;

use super::{authorize, fattr, handle, post_op, status};
use crate::service::{Call, Service};

pub fn read(svc: &Service, call: &Call, a: READ3args) -> Result<READ3res, AuthStat> {
    let auth = authorize!(svc, call, a.file, READ3res);
    let count = a.count.min(call.transport.payload_bytes_max(svc.limits()));
    Ok(
        match auth
            .export
            .backend
            .read(&auth.who, &handle(&a.file), a.offset, count)
        {
            Ok(r) => match Opaque::new(r.data) {
                Some(data) => READ3res::Ok(READ3resok {
                    file_attributes: Some(fattr(&r.attr)),
                    count: data.len() as u32,
                    eof: r.eof,
                    data,
                }),
                // The backend returned more than asked: a bug, not the client's fault.
                None => READ3res::Fail(nfsstat3::NFS3ERR_SERVERFAULT, Default::default()),
            },
            Err(e) => READ3res::Fail(
                status(&e),
                READ3resfail {
                    file_attributes: post_op(&auth, &a.file),
                },
            ),
        },
    )
}

pub fn readlink(svc: &Service, call: &Call, a: READLINK3args) -> Result<READLINK3res, AuthStat> {
    let auth = authorize!(svc, call, a.symlink, READLINK3res);
    Ok(
        match auth.export.backend.readlink(&auth.who, &handle(&a.symlink)) {
            Ok((target, attr)) => match Opaque::new(target) {
                Some(data) => READLINK3res::Ok(READLINK3resok {
                    symlink_attributes: Some(fattr(&attr)),
                    data,
                }),
                None => READLINK3res::Fail(
                    nfsstat3::NFS3ERR_NAMETOOLONG,
                    READLINK3resfail {
                        symlink_attributes: Some(fattr(&attr)),
                    },
                ),
            },
            Err(e) => READLINK3res::Fail(
                status(&e),
                READLINK3resfail {
                    symlink_attributes: post_op(&auth, &a.symlink),
                },
            ),
        },
    )
}
