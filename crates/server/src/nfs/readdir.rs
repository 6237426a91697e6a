//! READDIR and READDIRPLUS (RFC 1813 §3.3.16, §3.3.17).
//!
//! The backend streams entries into a sink; the sink takes an entry only if its exact encoded size
//! still fits the client's budget (`count` for READDIR; `maxcount` for the whole READDIRPLUS reply
//! and `dircount` for its names, cookies and file ids). So a reply never exceeds what was asked,
//! `eof` is true only when the last entry of the directory is in this reply, and nothing is read
//! past the last entry sent. A budget too small for even one entry is NFS3ERR_TOOSMALL.
//!
//! Both procedures are served fully: Windows clients list with READDIR, not READDIRPLUS.

use rnfs_nfs3::*;
use rnfs_oncrpc::AuthStat;
use rnfs_storage::DirEntry;

use super::{authorize, fattr, handle, nfs_fh, post_op, status};
use crate::service::{Authorized, Call, Service};

/// The status word plus the largest fixed part of a READDIR(PLUS) reply.
const REPLY_OVERHEAD_BYTES: usize = 4 + READDIR3RESOK_MAX_OVERHEAD;

pub fn readdir(svc: &Service, call: &Call, a: READDIR3args) -> Result<READDIR3res, AuthStat> {
    let auth = authorize!(svc, call, a.dir, READDIR3res);
    let count = a.count.min(call.transport.payload_bytes_max(svc.limits())) as usize;
    let mut budget = count.saturating_sub(REPLY_OVERHEAD_BYTES);
    let mut entries = Vec::new();
    let mut sink = |e: DirEntry| {
        let Some(name) = Opaque::new(e.name) else {
            return true;
        };
        let entry = entry3 {
            fileid: e.fileid,
            name,
            cookie: e.cookie,
        };
        let len = entry.list_len();
        if len > budget {
            return false;
        }
        budget -= len;
        entries.push(entry);
        true
    };
    let listing = auth.export.backend.readdir(
        &auth.who,
        &handle(&a.dir),
        a.cookie,
        a.cookieverf,
        false,
        &mut sink,
    );
    Ok(match listing {
        Ok(l) if entries.is_empty() && !l.eof => READDIR3res::Fail(
            nfsstat3::NFS3ERR_TOOSMALL,
            READDIR3resfail {
                dir_attributes: Some(fattr(&l.dir_attr)),
            },
        ),
        Ok(l) => READDIR3res::Ok(READDIR3resok {
            dir_attributes: Some(fattr(&l.dir_attr)),
            cookieverf: l.verifier,
            reply: dirlist3 {
                entries,
                eof: l.eof,
            },
        }),
        Err(e) => READDIR3res::Fail(
            status(&e),
            READDIR3resfail {
                dir_attributes: dir_attr(&auth, &a.dir),
            },
        ),
    })
}

pub fn readdirplus(
    svc: &Service,
    call: &Call,
    a: READDIRPLUS3args,
) -> Result<READDIRPLUS3res, AuthStat> {
    let auth = authorize!(svc, call, a.dir, READDIRPLUS3res);
    let maxcount = a
        .maxcount
        .min(call.transport.payload_bytes_max(svc.limits())) as usize;
    let mut budget = maxcount.saturating_sub(REPLY_OVERHEAD_BYTES);
    // dircount bounds only names, cookies and file ids; 0 would mean "no room", which no client
    // means: treat it as unbounded (the reply stays within maxcount either way).
    let mut dir_budget = if a.dircount == 0 {
        usize::MAX
    } else {
        a.dircount as usize
    };
    let mut entries = Vec::new();
    let mut sink = |e: DirEntry| {
        let Some(name) = Opaque::new(e.name) else {
            return true;
        };
        let entry = entryplus3 {
            fileid: e.fileid,
            name,
            cookie: e.cookie,
            name_attributes: e.attr.as_ref().map(fattr),
            name_handle: e.handle.as_ref().and_then(nfs_fh),
        };
        let (len, dir_len) = (entry.list_len(), entry.dircount_len());
        if len > budget || dir_len > dir_budget {
            return false;
        }
        budget -= len;
        dir_budget -= dir_len;
        entries.push(entry);
        true
    };
    let listing = auth.export.backend.readdir(
        &auth.who,
        &handle(&a.dir),
        a.cookie,
        a.cookieverf,
        true,
        &mut sink,
    );
    Ok(match listing {
        Ok(l) if entries.is_empty() && !l.eof => READDIRPLUS3res::Fail(
            nfsstat3::NFS3ERR_TOOSMALL,
            READDIRPLUS3resfail {
                dir_attributes: Some(fattr(&l.dir_attr)),
            },
        ),
        Ok(l) => READDIRPLUS3res::Ok(READDIRPLUS3resok {
            dir_attributes: Some(fattr(&l.dir_attr)),
            cookieverf: l.verifier,
            reply: dirlistplus3 {
                entries,
                eof: l.eof,
            },
        }),
        Err(e) => READDIRPLUS3res::Fail(
            status(&e),
            READDIRPLUS3resfail {
                dir_attributes: dir_attr(&auth, &a.dir),
            },
        ),
    })
}

fn dir_attr(auth: &Authorized, dir: &nfs_fh3) -> post_op_attr {
    post_op(auth, dir)
}
