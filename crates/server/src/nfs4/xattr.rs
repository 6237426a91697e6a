//! Extended attributes (RFC 8276 §8.4): GETXATTR, SETXATTR, LISTXATTRS and REMOVEXATTR, on the
//! export's backend as the caller.
//!
//! Names are the user namespace's (§5.2): the backend stores `foo` as `user.foo` and lists only
//! `user.` names. The kernel decides permissions (read to get, write to set and remove); a
//! read-only export or the pseudo file system refuses changes with NFS4ERR_ROFS, and an export
//! whose file system has no xattrs answers NFS4ERR_NOTSUPP.
//!
//! Limits: a value longer than `xattr_value_bytes_max` is NFS4ERR_XATTR2BIG both ways (SETXATTR
//! refuses it before the backend sees it; GETXATTR of a longer one set locally too). LISTXATTRS
//! fills at most its `maxcount` and `xattr_list_bytes_max` bytes; its cookie is the index of the
//! next name in the file system's order (stable while no name is added or removed): a cookie past
//! the last name is NFS4ERR_BAD_COOKIE, a `maxcount` too small for the first name
//! NFS4ERR_TOOSMALL (§8.4.3.2).

use bytes::Bytes;
use rnfs_nfs4::{nfsstat4, op::*, ResBody, ResOp};
use rnfs_nfs4::{
    setxattr_option4, xattrkey4, LISTXATTRS4args, LISTXATTRS4resok, Opaque, SETXATTR4args,
};
use rnfs_storage::{self as storage, XattrSet};

use super::attrs::{cinfo, writable};
use super::ctx::Ctx;
use super::status;
use crate::service::Authorized;

/// A name the backend can take: not empty, no NUL (NFS4ERR_INVAL), short enough with its
/// `user.` prefix (NFS4ERR_NAMETOOLONG).
fn check_xattr_name(name: &[u8]) -> Result<&[u8], nfsstat4> {
    if name.is_empty() || name.contains(&0) {
        return Err(nfsstat4::NFS4ERR_INVAL);
    }
    if name.len() > storage::XATTR_NAME_BYTES_MAX {
        return Err(nfsstat4::NFS4ERR_NAMETOOLONG);
    }
    Ok(name)
}

/// The current object, if its export has xattrs.
fn with_xattrs<'c>(ctx: &'c Ctx<'_>) -> Result<&'c Authorized, nfsstat4> {
    let a = ctx.real(nfsstat4::NFS4ERR_NOTSUPP)?;
    if !a.export.backend.xattr_support() {
        return Err(nfsstat4::NFS4ERR_NOTSUPP);
    }
    Ok(a)
}

fn xattr_status(e: &storage::Error) -> nfsstat4 {
    match e {
        // The file's attributes together would outgrow what the file system keeps per file
        // (ext4 without ea_inode: one block), which §8.4.2.4 calls NFS4ERR_XATTR2BIG.
        storage::Error::NoSpc => nfsstat4::NFS4ERR_XATTR2BIG,
        e => status(e),
    }
}

pub fn getxattr(ctx: &Ctx<'_>, name: xattrkey4) -> ResOp {
    let res = (|| {
        let a = with_xattrs(ctx)?;
        let name = check_xattr_name(name.as_bytes())?;
        let max = ctx.svc.limits().xattr_value_bytes_max as usize;
        a.export
            .backend
            .getxattr(&a.who, &a.handle, name, max)
            .map_err(|e| status(&e))
    })();
    match res {
        Ok(v) => ResOp::ok(OP_GETXATTR, ResBody::GetXattr(Opaque(v))),
        Err(s) => ResOp::status(OP_GETXATTR, s),
    }
}

pub fn setxattr(ctx: &Ctx<'_>, args: SETXATTR4args) -> ResOp {
    let res = (|| {
        let a = writable(ctx)?;
        with_xattrs(ctx)?;
        let name = check_xattr_name(args.key.as_bytes())?;
        super::deleg::allow_change(ctx, a.handle.as_bytes())?;
        if args.value.len() > ctx.svc.limits().xattr_value_bytes_max as usize {
            return Err(nfsstat4::NFS4ERR_XATTR2BIG);
        }
        let how = match args.option {
            setxattr_option4::SETXATTR4_EITHER => XattrSet::Either,
            setxattr_option4::SETXATTR4_CREATE => XattrSet::Create,
            setxattr_option4::SETXATTR4_REPLACE => XattrSet::Replace,
        };
        a.export
            .backend
            .setxattr(&a.who, &a.handle, name, args.value.as_bytes(), how)
            .map_err(|e| xattr_status(&e))
    })();
    match res {
        Ok(wcc) => ResOp::ok(OP_SETXATTR, ResBody::Cinfo(cinfo(&wcc))),
        Err(s) => ResOp::status(OP_SETXATTR, s),
    }
}

pub fn removexattr(ctx: &Ctx<'_>, name: xattrkey4) -> ResOp {
    let res = (|| {
        let a = writable(ctx)?;
        with_xattrs(ctx)?;
        let name = check_xattr_name(name.as_bytes())?;
        super::deleg::allow_change(ctx, a.handle.as_bytes())?;
        a.export
            .backend
            .removexattr(&a.who, &a.handle, name)
            .map_err(|e| status(&e))
    })();
    match res {
        Ok(wcc) => ResOp::ok(OP_REMOVEXATTR, ResBody::Cinfo(cinfo(&wcc))),
        Err(s) => ResOp::status(OP_REMOVEXATTR, s),
    }
}

pub fn listxattrs(ctx: &Ctx<'_>, args: LISTXATTRS4args) -> ResOp {
    let res = (|| {
        let a = with_xattrs(ctx)?;
        let names = a
            .export
            .backend
            .listxattrs(&a.who, &a.handle)
            .map_err(|e| status(&e))?;
        let budget = (args.maxcount as usize).min(ctx.svc.limits().xattr_list_bytes_max as usize);
        page(&names, args.cookie, budget)
    })();
    match res {
        Ok(r) => ResOp::ok(OP_LISTXATTRS, ResBody::ListXattrs(r)),
        Err(s) => ResOp::status(OP_LISTXATTRS, s),
    }
}

/// The names from index `cookie` on that fit `budget` bytes of result.
fn page(names: &[Bytes], cookie: u64, budget: usize) -> Result<LISTXATTRS4resok, nfsstat4> {
    let start = usize::try_from(cookie)
        .ok()
        .filter(|&i| i <= names.len())
        .ok_or(nfsstat4::NFS4ERR_BAD_COOKIE)?;
    let mut used = LISTXATTRS4resok::FIXED_BYTES;
    if used > budget {
        return Err(nfsstat4::NFS4ERR_TOOSMALL);
    }
    let mut out = Vec::new();
    for name in &names[start..] {
        let more = LISTXATTRS4resok::name_bytes(name);
        if used + more > budget {
            break;
        }
        // Names come from the file system (at most 250 bytes after the prefix); one that could
        // not be encoded is left out rather than failing the listing.
        if let Some(n) = Opaque::new(name.clone()) {
            out.push(n);
        }
        used += more;
    }
    let next = start + out.len();
    if out.is_empty() && next < names.len() {
        return Err(nfsstat4::NFS4ERR_TOOSMALL);
    }
    Ok(LISTXATTRS4resok {
        cookie: next as u64,
        eof: next == names.len(),
        names: rnfs_xdr::Array(out),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<Bytes> {
        n.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    #[test]
    fn listing_pages_by_cookie_and_budget() {
        let all = names(&["a", "bbbbb", "cc"]);
        // Everything fits: 16 + 8 + 12 + 8.
        let r = page(&all, 0, 44).unwrap();
        assert_eq!((r.names.0.len(), r.cookie, r.eof), (3, 3, true));
        // One byte less: the last name waits for the next call.
        let r = page(&all, 0, 43).unwrap();
        assert_eq!((r.names.0.len(), r.cookie, r.eof), (2, 2, false));
        let r = page(&all, r.cookie, 43).unwrap();
        let got: Vec<&[u8]> = r.names.0.iter().map(|n| n.as_bytes()).collect();
        assert_eq!((got, r.cookie, r.eof), (vec![&b"cc"[..]], 3, true));
        // At the end: nothing, eof. Past it: a bad cookie.
        let r = page(&all, 3, 16).unwrap();
        assert!(r.names.0.is_empty() && r.eof);
        assert_eq!(
            page(&all, 4, 100).unwrap_err(),
            nfsstat4::NFS4ERR_BAD_COOKIE
        );
        assert_eq!(
            page(&all, u64::MAX, 100).unwrap_err(),
            nfsstat4::NFS4ERR_BAD_COOKIE
        );
        // Not even one name fits.
        assert_eq!(page(&all, 0, 23).unwrap_err(), nfsstat4::NFS4ERR_TOOSMALL);
        assert_eq!(page(&[], 0, 15).unwrap_err(), nfsstat4::NFS4ERR_TOOSMALL);
        assert!(page(&[], 0, 16).unwrap().eof);
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(check_xattr_name(b""), Err(nfsstat4::NFS4ERR_INVAL));
        assert_eq!(check_xattr_name(b"a\0"), Err(nfsstat4::NFS4ERR_INVAL));
        assert_eq!(
            check_xattr_name(&[b'x'; 251]),
            Err(nfsstat4::NFS4ERR_NAMETOOLONG)
        );
        assert!(check_xattr_name(b"user.with/slash").is_ok());
    }
}
