//! READDIR, CREATE, REMOVE, RENAME, LINK and READLINK (RFC 8881 §18.23, §18.4, §18.25, §18.26,
//! §18.9, §18.24).
//!
//! READDIR reuses the backend's listing (and its remembered listings for big directories): the
//! backend streams entries into a sink that only collects, the reply is encoded afterwards within
//! the client's `maxcount`. "." and ".." are never listed (§18.23.3); cookies 1 and 2 are
//! reserved and refused as NFS4ERR_BAD_COOKIE.

use rnfs_nfs4::attr::{self, AttrValues};
use rnfs_nfs4::{component4, createtype4, entry4, fattr4, nfsstat4, op::*, Bitmap};
use rnfs_nfs4::{CREATE4args, CREATE4resok, Opaque, READDIR4args, READDIR4resok, ResBody, ResOp};
use rnfs_nfs4::{RENAME4args, RENAME4resok, XdrEncode};
use rnfs_storage as storage;

use super::attrs::{self, cinfo, pseudo_values, real_values, storage_attrs, writable};
use super::ctx::{attr_of, check_name, require_dir, Ctx, Fh};
use super::pseudo::{self, Target};
use super::status;
use crate::service::Authorized;

/// Bytes of READDIR4resok around its entries: the verifier, the list's end marker, eof.
const READDIR_OVERHEAD_BYTES: usize = 8 + 4 + 4;
/// Bytes of an entry besides its name and attributes: the "value follows" word and the cookie.
const ENTRY_OVERHEAD_BYTES: usize = 4 + 8;

pub fn readdir(ctx: &Ctx<'_>, a: READDIR4args) -> ResOp {
    let res = match ctx.current() {
        Err(s) => Err(s),
        _ if a.cookie == 1 || a.cookie == 2 => Err(nfsstat4::NFS4ERR_BAD_COOKIE),
        _ if attr::WRITE_ONLY.iter().any(|&b| a.attr_request.contains(b)) => {
            Err(nfsstat4::NFS4ERR_INVAL)
        }
        Ok(Fh::Pseudo(p)) => pseudo_readdir(ctx, p, &a),
        Ok(Fh::Real(auth)) => real_readdir(ctx, auth, &a),
    };
    match res {
        Ok(r) => ResOp::ok(OP_READDIR, ResBody::ReadDir(r)),
        Err(s) => ResOp::status(OP_READDIR, s),
    }
}

/// Adds entries while they fit `maxcount`; NFS4ERR_TOOSMALL when not even the first does.
struct Fitter {
    left: usize,
    entries: Vec<entry4>,
    full: bool,
}

impl Fitter {
    fn new(ctx: &Ctx<'_>, maxcount: u32) -> Fitter {
        let max = (maxcount as usize).min(ctx.svc.limits().transfer_bytes_max as usize);
        Fitter {
            left: max.saturating_sub(READDIR_OVERHEAD_BYTES),
            entries: Vec::new(),
            full: false,
        }
    }

    /// Takes the entry if it fits; false (and full) when it does not.
    fn push(&mut self, e: entry4) -> bool {
        let size = ENTRY_OVERHEAD_BYTES + e.name.encoded_len() + e.attrs.encoded_len();
        if self.full || size > self.left {
            self.full = true;
            return false;
        }
        self.left -= size;
        self.entries.push(e);
        true
    }

    fn finish(self, verifier: [u8; 8], dir_eof: bool) -> Result<READDIR4resok, nfsstat4> {
        if self.full && self.entries.is_empty() {
            return Err(nfsstat4::NFS4ERR_TOOSMALL);
        }
        Ok(READDIR4resok {
            cookieverf: verifier,
            eof: dir_eof && !self.full,
            entries: rnfs_xdr::List(self.entries),
        })
    }
}

fn pseudo_readdir(ctx: &Ctx<'_>, dir: &str, a: &READDIR4args) -> Result<READDIR4resok, nfsstat4> {
    let children = pseudo::children(&ctx.table, ctx.call.peer.ip(), dir);
    let mut fit = Fitter::new(ctx, a.maxcount);
    // Cookies of the pseudo directory: the entry's index plus 3 (0, 1, 2 are reserved).
    let start = if a.cookie == 0 { 0 } else { a.cookie - 2 } as usize;
    for (i, (name, target)) in children.iter().enumerate().skip(start) {
        let attrs = match target {
            Target::Dir(p) => {
                let fh = pseudo::handle(p);
                attr::encode(&pseudo_values(ctx, p, &fh), &a.attr_request)
            }
            Target::Export(e) => export_root_attrs(ctx, e, &a.attr_request),
        };
        let e = entry4 {
            cookie: i as u64 + 3,
            name: Opaque(bytes::Bytes::copy_from_slice(name.as_bytes())),
            attrs,
        };
        if !fit.push(e) {
            break;
        }
    }
    fit.finish([0; 8], true)
}

/// Attributes of an export's root as listed in its pseudo directory; an error reading them is
/// the entry's `rdattr_error`.
fn export_root_attrs(ctx: &Ctx<'_>, e: &crate::exports::Export, request: &Bitmap) -> fattr4 {
    let got = ctx
        .authorize(e.backend.root().to_bytes())
        .and_then(|fh| attrs::with_values(ctx, &fh, request, |v| attr::encode(v, request)));
    got.unwrap_or_else(|s| rdattr_error(s, request))
}

fn rdattr_error(s: nfsstat4, request: &Bitmap) -> fattr4 {
    if request.contains(attr::num::RDATTR_ERROR) {
        fattr4 {
            attrmask: Bitmap::from_bits(&[attr::num::RDATTR_ERROR]),
            attr_vals: Opaque(bytes::Bytes::copy_from_slice(&(s as u32).to_be_bytes())),
        }
    } else {
        fattr4::default()
    }
}

/// What the sink keeps of one entry.
struct Listed {
    name: bytes::Bytes,
    cookie: u64,
    attr: Option<storage::Attr>,
    handle: Option<storage::FileHandle>,
}

fn real_readdir(
    ctx: &Ctx<'_>,
    auth: &Authorized,
    a: &READDIR4args,
) -> Result<READDIR4resok, nfsstat4> {
    require_dir(auth)?;
    let plus = !a.attr_request.is_empty();
    // At least 16 bytes an entry: the sink never collects more than could be sent.
    let cap = (a.maxcount as usize / 16).clamp(1, 16_384);
    let mut listed: Vec<Listed> = Vec::new();
    let listing = auth
        .export
        .backend
        .readdir(
            &auth.who,
            &auth.handle,
            a.cookie,
            a.cookieverf,
            plus,
            &mut |e| {
                if listed.len() >= cap {
                    return false;
                }
                if &e.name[..] != b"." && &e.name[..] != b".." {
                    listed.push(Listed {
                        name: e.name,
                        cookie: e.cookie,
                        attr: e.attr,
                        handle: e.handle,
                    });
                }
                true
            },
        )
        .map_err(|e| status(&e))?;
    let dir_eof = listing.eof && listed.len() < cap;
    let mut fit = Fitter::new(ctx, a.maxcount);
    for l in listed {
        let attrs = entry_attrs(ctx, auth, &l, &a.attr_request);
        let e = entry4 {
            cookie: l.cookie,
            name: Opaque(l.name),
            attrs,
        };
        if !fit.push(e) {
            break;
        }
    }
    fit.finish(listing.verifier, dir_eof)
}

fn entry_attrs(ctx: &Ctx<'_>, dir: &Authorized, l: &Listed, request: &Bitmap) -> fattr4 {
    if request.is_empty() {
        return fattr4::default();
    }
    let (Some(attr), Some(handle)) = (&l.attr, &l.handle) else {
        return rdattr_error(nfsstat4::NFS4ERR_NOENT, request);
    };
    // The entry's own handle (minted by the backend for this export) in FILEHANDLE; the rest
    // comes from the directory's authorization (same export, same caller).
    let Ok(verified) = dir.export.verify(handle) else {
        return rdattr_error(nfsstat4::NFS4ERR_SERVERFAULT, request);
    };
    let child = Authorized {
        export: dir.export.clone(),
        rule: dir.rule.clone(),
        who: dir.who.clone(),
        handle: verified,
    };
    real_values(ctx, &child, attr, request, |v: &AttrValues<'_>| {
        attr::encode(v, request)
    })
    .unwrap_or_else(|s| rdattr_error(s, request))
}

pub fn create(ctx: &mut Ctx<'_>, a: CREATE4args) -> ResOp {
    match create_inner(ctx, &a) {
        Ok((fh, res)) => {
            ctx.cur = Some(fh);
            ResOp::ok(OP_CREATE, ResBody::Create(res))
        }
        Err(s) => ResOp::status(OP_CREATE, s),
    }
}

fn create_inner(ctx: &Ctx<'_>, a: &CREATE4args) -> Result<(Fh, CREATE4resok), nfsstat4> {
    ctx.current()?;
    let dir = writable(ctx)?;
    if let createtype4::Other(_) = a.objtype {
        return Err(nfsstat4::NFS4ERR_BADTYPE);
    }
    let name = check_name(a.objname.as_bytes())?;
    require_dir(dir)?;
    let set = attr::decode_settable(&a.createattrs)?;
    let attrs = storage_attrs(ctx, &set)?;
    let b = &dir.export.backend;
    let (who, h, n) = (&dir.who, &dir.handle, name.as_bytes());
    let node = |kind| b.mknod(who, h, n, kind, &attrs);
    let created = match &a.objtype {
        createtype4::Link(text) => {
            if text.is_empty() {
                return Err(nfsstat4::NFS4ERR_INVAL);
            }
            b.symlink(who, h, n, text.as_bytes(), &attrs)
        }
        createtype4::Dir => b.mkdir(who, h, n, &attrs),
        createtype4::Block(d) => node(storage::NodeKind::BlockDevice {
            major: d.specdata1,
            minor: d.specdata2,
        }),
        createtype4::Char(d) => node(storage::NodeKind::CharDevice {
            major: d.specdata1,
            minor: d.specdata2,
        }),
        createtype4::Socket => node(storage::NodeKind::Socket),
        createtype4::Fifo => node(storage::NodeKind::Fifo),
        createtype4::Other(_) => return Err(nfsstat4::NFS4ERR_BADTYPE),
    }
    .map_err(|e| status(&e))?;
    let fh = ctx.authorize(created.handle.to_bytes())?;
    Ok((
        fh,
        CREATE4resok {
            cinfo: cinfo(&created.dir),
            attrset: set.mask,
        },
    ))
}

pub fn remove(ctx: &mut Ctx<'_>, target: component4) -> ResOp {
    let res = (|| {
        ctx.current()?;
        let dir = writable(ctx)?;
        let name = check_name(target.as_bytes())?;
        require_dir(dir)?;
        let b = &dir.export.backend;
        let (fh, attr) = b
            .lookup(&dir.who, &dir.handle, name.as_bytes())
            .map_err(|e| status(&e))?;
        super::deleg::allow_change(ctx, &fh.to_bytes())?;
        let wcc = if attr.file_type == storage::FileType::Directory {
            b.rmdir(&dir.who, &dir.handle, name.as_bytes())
        } else {
            b.remove(&dir.who, &dir.handle, name.as_bytes())
        };
        wcc.map_err(|e| status(&e))
    })();
    match res {
        Ok(wcc) => ResOp::ok(OP_REMOVE, ResBody::Cinfo(cinfo(&wcc))),
        Err(s) => ResOp::status(OP_REMOVE, s),
    }
}

/// The saved handle as an export object, for RENAME's source directory and LINK's source.
fn saved_real<'c>(ctx: &'c Ctx<'_>) -> Result<&'c Authorized, nfsstat4> {
    match ctx.saved.as_ref().ok_or(nfsstat4::NFS4ERR_NOFILEHANDLE)? {
        Fh::Real(a) => Ok(a),
        Fh::Pseudo(_) => Err(nfsstat4::NFS4ERR_ROFS),
    }
}

pub fn rename(ctx: &mut Ctx<'_>, a: RENAME4args) -> ResOp {
    let res = (|| {
        ctx.current()?;
        let to = writable(ctx)?;
        let from = saved_real(ctx)?;
        if from.export.id != to.export.id {
            return Err(nfsstat4::NFS4ERR_XDEV);
        }
        let old = check_name(a.oldname.as_bytes())?;
        let new = check_name(a.newname.as_bytes())?;
        require_dir(from)?;
        require_dir(to)?;
        super::deleg::allow_change_name(ctx, from, old.as_bytes())?;
        super::deleg::allow_change_name(ctx, to, new.as_bytes())?;
        let (fw, tw) = to
            .export
            .backend
            .rename(
                &to.who,
                &from.handle,
                old.as_bytes(),
                &to.handle,
                new.as_bytes(),
            )
            .map_err(|e| status(&e))?;
        Ok(RENAME4resok {
            source_cinfo: cinfo(&fw),
            target_cinfo: cinfo(&tw),
        })
    })();
    match res {
        Ok(r) => ResOp::ok(OP_RENAME, ResBody::Rename(r)),
        Err(s) => ResOp::status(OP_RENAME, s),
    }
}

pub fn link(ctx: &mut Ctx<'_>, newname: component4) -> ResOp {
    let res = (|| {
        ctx.current()?;
        let dir = writable(ctx)?;
        let src = saved_real(ctx)?;
        if src.export.id != dir.export.id {
            return Err(nfsstat4::NFS4ERR_XDEV);
        }
        let name = check_name(newname.as_bytes())?;
        require_dir(dir)?;
        super::deleg::allow_change(ctx, src.handle.as_bytes())?;
        let (_, wcc) = dir
            .export
            .backend
            .link(&dir.who, &src.handle, &dir.handle, name.as_bytes())
            .map_err(|e| status(&e))?;
        Ok(cinfo(&wcc))
    })();
    match res {
        Ok(c) => ResOp::ok(OP_LINK, ResBody::Cinfo(c)),
        Err(s) => ResOp::status(OP_LINK, s),
    }
}

pub fn readlink(ctx: &mut Ctx<'_>) -> ResOp {
    let res = (|| {
        let a = ctx.real(nfsstat4::NFS4ERR_INVAL)?;
        if attr_of(a)?.file_type != storage::FileType::Symlink {
            return Err(nfsstat4::NFS4ERR_INVAL);
        }
        let (text, _) = a
            .export
            .backend
            .readlink(&a.who, &a.handle)
            .map_err(|e| status(&e))?;
        Ok(text)
    })();
    match res {
        Ok(t) => ResOp::ok(OP_READLINK, ResBody::ReadLink(Opaque(t))),
        Err(s) => ResOp::status(OP_READLINK, s),
    }
}
