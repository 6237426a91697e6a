//! File attributes (RFC 8881 §5): their numbers, the values a server reports ([`AttrValues`],
//! encoded for a requested bitmap by [`encode`]) and the settable ones a client sends
//! ([`decode_settable`], for SETATTR, CREATE and OPEN).
//!
//! An `fattr4` is a bitmap and the values of the set bits in ascending order (§3.3.7); a value's
//! encoding depends on its number, so a decoder stops at the first attribute it does not know
//! (NFS4ERR_ATTRNOTSUPP).

use crate::*;

/// Attribute numbers (`FATTR4_*`).
pub mod num {
    pub const SUPPORTED_ATTRS: u32 = 0;
    pub const TYPE: u32 = 1;
    pub const FH_EXPIRE_TYPE: u32 = 2;
    pub const CHANGE: u32 = 3;
    pub const SIZE: u32 = 4;
    pub const LINK_SUPPORT: u32 = 5;
    pub const SYMLINK_SUPPORT: u32 = 6;
    pub const NAMED_ATTR: u32 = 7;
    pub const FSID: u32 = 8;
    pub const UNIQUE_HANDLES: u32 = 9;
    pub const LEASE_TIME: u32 = 10;
    pub const RDATTR_ERROR: u32 = 11;
    pub const ACL: u32 = 12;
    pub const ACLSUPPORT: u32 = 13;
    pub const CANSETTIME: u32 = 15;
    pub const CASE_INSENSITIVE: u32 = 16;
    pub const CASE_PRESERVING: u32 = 17;
    pub const CHOWN_RESTRICTED: u32 = 18;
    pub const FILEHANDLE: u32 = 19;
    pub const FILEID: u32 = 20;
    pub const FILES_AVAIL: u32 = 21;
    pub const FILES_FREE: u32 = 22;
    pub const FILES_TOTAL: u32 = 23;
    pub const HOMOGENEOUS: u32 = 26;
    pub const MAXFILESIZE: u32 = 27;
    pub const MAXLINK: u32 = 28;
    pub const MAXNAME: u32 = 29;
    pub const MAXREAD: u32 = 30;
    pub const MAXWRITE: u32 = 31;
    pub const MODE: u32 = 33;
    pub const NO_TRUNC: u32 = 34;
    pub const NUMLINKS: u32 = 35;
    pub const OWNER: u32 = 36;
    pub const OWNER_GROUP: u32 = 37;
    pub const RAWDEV: u32 = 41;
    pub const SPACE_AVAIL: u32 = 42;
    pub const SPACE_FREE: u32 = 43;
    pub const SPACE_TOTAL: u32 = 44;
    pub const SPACE_USED: u32 = 45;
    pub const TIME_ACCESS: u32 = 47;
    pub const TIME_ACCESS_SET: u32 = 48;
    pub const TIME_DELTA: u32 = 51;
    pub const TIME_METADATA: u32 = 52;
    pub const TIME_MODIFY: u32 = 53;
    pub const TIME_MODIFY_SET: u32 = 54;
    pub const MOUNTED_ON_FILEID: u32 = 55;
    pub const SUPPATTR_EXCLCREAT: u32 = 75;
    /// Whether the object's file system has extended attributes (RFC 8276 §8.1).
    pub const XATTR_SUPPORT: u32 = 82;
    /// Which OPEN arguments the server supports (RFC 9754 §4).
    pub const OPEN_ARGUMENTS: u32 = 86;
}
use num::*;

/// Every attribute [`encode`] can report, or [`decode_settable`] can set.
pub const SUPPORTED: &[u32] = &[
    SUPPORTED_ATTRS,
    TYPE,
    FH_EXPIRE_TYPE,
    CHANGE,
    SIZE,
    LINK_SUPPORT,
    SYMLINK_SUPPORT,
    NAMED_ATTR,
    FSID,
    UNIQUE_HANDLES,
    LEASE_TIME,
    RDATTR_ERROR,
    ACLSUPPORT,
    CANSETTIME,
    CASE_INSENSITIVE,
    CASE_PRESERVING,
    CHOWN_RESTRICTED,
    FILEHANDLE,
    FILEID,
    FILES_AVAIL,
    FILES_FREE,
    FILES_TOTAL,
    HOMOGENEOUS,
    MAXFILESIZE,
    MAXLINK,
    MAXNAME,
    MAXREAD,
    MAXWRITE,
    MODE,
    NO_TRUNC,
    NUMLINKS,
    OWNER,
    OWNER_GROUP,
    RAWDEV,
    SPACE_AVAIL,
    SPACE_FREE,
    SPACE_TOTAL,
    SPACE_USED,
    TIME_ACCESS,
    TIME_ACCESS_SET,
    TIME_DELTA,
    TIME_METADATA,
    TIME_MODIFY,
    TIME_MODIFY_SET,
    MOUNTED_ON_FILEID,
    SUPPATTR_EXCLCREAT,
    XATTR_SUPPORT,
    OPEN_ARGUMENTS,
];

/// The attributes a client may set (SETATTR, CREATE, OPEN's createattrs).
pub const WRITABLE: &[u32] = &[
    SIZE,
    MODE,
    OWNER,
    OWNER_GROUP,
    TIME_ACCESS_SET,
    TIME_MODIFY_SET,
];

/// Attributes that are set only, never reported (VERIFY of them is NFS4ERR_INVAL).
pub const WRITE_ONLY: &[u32] = &[TIME_ACCESS_SET, TIME_MODIFY_SET];

/// The supported attributes as a bitmap.
pub fn supported() -> Bitmap {
    Bitmap::from_bits(SUPPORTED)
}

/// What an EXCLUSIVE4_1 create may set with its verifier (§18.16.3): the writable ones but the
/// access time, which is where servers commonly keep the verifier.
pub fn suppattr_exclcreat() -> Bitmap {
    Bitmap::from_bits(&[SIZE, MODE, OWNER, OWNER_GROUP, TIME_MODIFY_SET])
}

/// File system totals, read only when asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FsTotals {
    pub files_avail: u64,
    pub files_free: u64,
    pub files_total: u64,
    pub space_avail: u64,
    pub space_free: u64,
    pub space_total: u64,
}

/// Every reportable attribute of one object.
#[derive(Debug, Clone)]
pub struct AttrValues<'a> {
    pub file_type: nfs_ftype4,
    pub change: u64,
    pub size: u64,
    pub fsid: (u64, u64),
    pub lease_time_s: u32,
    /// READDIR reports a per-entry error here instead of failing.
    pub rdattr_error: nfsstat4,
    pub filehandle: &'a [u8],
    pub fileid: u64,
    /// `None` when not read (the request did not ask for any of them).
    pub fs: Option<FsTotals>,
    pub maxfilesize: u64,
    pub maxlink: u32,
    pub maxname: u32,
    pub maxread: u64,
    pub maxwrite: u64,
    pub mode: u32,
    pub numlinks: u32,
    pub owner: &'a [u8],
    pub owner_group: &'a [u8],
    pub rawdev: specdata4,
    pub space_used: u64,
    pub time_access: nfstime4,
    pub time_metadata: nfstime4,
    pub time_modify: nfstime4,
    pub mounted_on_fileid: u64,
    /// GETXATTR and its kin work on this object's file system.
    pub xattr_support: bool,
}

/// Whether any of the file system totals is in `request` (so the server knows to read them).
pub fn wants_fs_totals(request: &Bitmap) -> bool {
    [
        FILES_AVAIL,
        FILES_FREE,
        FILES_TOTAL,
        SPACE_AVAIL,
        SPACE_FREE,
        SPACE_TOTAL,
    ]
    .iter()
    .any(|&a| request.contains(a))
}

/// The `fattr4` answering `request`: the requested attributes that are supported (and readable;
/// set-only ones and unread totals are left out), in ascending order.
pub fn encode(v: &AttrValues<'_>, request: &Bitmap) -> fattr4 {
    let mut mask = Bitmap::default();
    let mut out: Vec<u8> = Vec::with_capacity(256);
    for a in request.iter() {
        if put_value(v, a, &mut out) {
            mask.set(a);
        }
    }
    fattr4 {
        attrmask: mask,
        attr_vals: Opaque(out.into()),
    }
}

fn put_time(out: &mut Vec<u8>, t: nfstime4) {
    t.encode(out)
}

/// Appends attribute `a`'s value; false when it is not reported.
fn put_value(v: &AttrValues<'_>, a: u32, out: &mut Vec<u8>) -> bool {
    let fs = v.fs.unwrap_or_default();
    match a {
        SUPPORTED_ATTRS => supported().encode(out),
        TYPE => v.file_type.encode(out),
        // Handles live as long as the object (FH4_PERSISTENT).
        FH_EXPIRE_TYPE => out.put_u32(0),
        CHANGE => out.put_u64(v.change),
        SIZE => out.put_u64(v.size),
        LINK_SUPPORT | SYMLINK_SUPPORT | UNIQUE_HANDLES | CANSETTIME | CASE_PRESERVING
        | CHOWN_RESTRICTED | HOMOGENEOUS | NO_TRUNC => true.encode(out),
        NAMED_ATTR | CASE_INSENSITIVE => false.encode(out),
        FSID => {
            out.put_u64(v.fsid.0);
            out.put_u64(v.fsid.1)
        }
        LEASE_TIME => out.put_u32(v.lease_time_s),
        RDATTR_ERROR => v.rdattr_error.encode(out),
        // No ACL support (mode bits only).
        ACLSUPPORT => out.put_u32(0),
        FILEHANDLE => rnfs_xdr::put_opaque_var(out, v.filehandle),
        FILEID => out.put_u64(v.fileid),
        FILES_AVAIL | FILES_FREE | FILES_TOTAL | SPACE_AVAIL | SPACE_FREE | SPACE_TOTAL
            if v.fs.is_none() =>
        {
            return false
        }
        FILES_AVAIL => out.put_u64(fs.files_avail),
        FILES_FREE => out.put_u64(fs.files_free),
        FILES_TOTAL => out.put_u64(fs.files_total),
        SPACE_AVAIL => out.put_u64(fs.space_avail),
        SPACE_FREE => out.put_u64(fs.space_free),
        SPACE_TOTAL => out.put_u64(fs.space_total),
        MAXFILESIZE => out.put_u64(v.maxfilesize),
        MAXLINK => out.put_u32(v.maxlink),
        MAXNAME => out.put_u32(v.maxname),
        MAXREAD => out.put_u64(v.maxread),
        MAXWRITE => out.put_u64(v.maxwrite),
        MODE => out.put_u32(v.mode & 0o7777),
        NUMLINKS => out.put_u32(v.numlinks),
        OWNER => rnfs_xdr::put_opaque_var(out, v.owner),
        OWNER_GROUP => rnfs_xdr::put_opaque_var(out, v.owner_group),
        RAWDEV => v.rawdev.encode(out),
        SPACE_USED => out.put_u64(v.space_used),
        TIME_ACCESS => put_time(out, v.time_access),
        // The server's clock granularity: nanoseconds on the file systems served.
        TIME_DELTA => put_time(
            out,
            nfstime4 {
                seconds: 0,
                nseconds: 1,
            },
        ),
        TIME_METADATA => put_time(out, v.time_metadata),
        TIME_MODIFY => put_time(out, v.time_modify),
        MOUNTED_ON_FILEID => out.put_u64(v.mounted_on_fileid),
        SUPPATTR_EXCLCREAT => suppattr_exclcreat().encode(out),
        XATTR_SUPPORT => v.xattr_support.encode(out),
        OPEN_ARGUMENTS => open_arguments().iter().for_each(|b| b.encode(out)),
        _ => return false,
    }
    true
}

/// The `open_arguments4` value (RFC 9754 §4): share access READ, WRITE, BOTH; every deny; the
/// delegation wishes ANY_DELEG, NO_DELEG and CANCEL; the claims NULL, PREVIOUS, DELEGATE_CUR, FH
/// and DELEG_CUR_FH; the four create modes.
pub fn open_arguments() -> [Bitmap; 5] {
    [
        Bitmap::from_bits(&[1, 2, 3]),
        Bitmap::from_bits(&[0, 1, 2, 3]),
        Bitmap::from_bits(&[3, 4, 5]),
        Bitmap::from_bits(&[0, 1, 2, 4, 5]),
        Bitmap::from_bits(&[0, 1, 2, 3]),
    ]
}

/// A file's change attribute and size as a client reports them (each may be absent).
pub type ChangeSize = (Option<u64>, Option<u64>);

/// The change and size a client reports in an `fattr4` (CB_GETATTR's answer, RFC 8881 §20.1):
/// each `None` when absent. `None` when the attributes cannot be read (a malformed value, or
/// an attribute before them this decoder does not know).
pub fn change_and_size(f: &fattr4) -> Option<ChangeSize> {
    let mut d = Decoder::new(f.attr_vals.0.clone());
    let (mut change, mut size) = (None, None);
    for a in f.attrmask.iter() {
        match a {
            CHANGE => change = Some(d.u64().ok()?),
            SIZE => size = Some(d.u64().ok()?),
            // Values come in ascending order: past SIZE, nothing more is needed.
            a if a > SIZE => break,
            _ => return None,
        }
    }
    Some((change, size))
}

/// How a time is set (`settime4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetTime4 {
    ServerTime,
    ClientTime(nfstime4),
}

/// Settable attributes a client sent; `None` leaves one alone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetAttrs4 {
    pub size: Option<u64>,
    pub mode: Option<u32>,
    pub owner: Option<Bytes>,
    pub owner_group: Option<Bytes>,
    pub atime: Option<SetTime4>,
    pub mtime: Option<SetTime4>,
    /// The bits decoded (SETATTR's `attrsset` on success).
    pub mask: Bitmap,
}

/// Longest owner or group string accepted (bytes).
pub const OWNER_BYTES_MAX: usize = 1024;

/// Decodes the settable attributes of `f`. A supported but read-only attribute is
/// NFS4ERR_INVAL, an unknown one NFS4ERR_ATTRNOTSUPP, a malformed list NFS4ERR_BADXDR (§18.30.3).
pub fn decode_settable(f: &fattr4) -> Result<SetAttrs4, nfsstat4> {
    let mut d = Decoder::new(f.attr_vals.0.clone());
    let mut s = SetAttrs4::default();
    let bad = |_| nfsstat4::NFS4ERR_BADXDR;
    for a in f.attrmask.iter() {
        match a {
            SIZE => s.size = Some(d.u64().map_err(bad)?),
            MODE => s.mode = Some(d.u32().map_err(bad)?),
            OWNER => s.owner = Some(d.opaque_var(OWNER_BYTES_MAX).map_err(bad)?),
            OWNER_GROUP => s.owner_group = Some(d.opaque_var(OWNER_BYTES_MAX).map_err(bad)?),
            TIME_ACCESS_SET => s.atime = Some(settime(&mut d).map_err(bad)?),
            TIME_MODIFY_SET => s.mtime = Some(settime(&mut d).map_err(bad)?),
            a if SUPPORTED.contains(&a) => return Err(nfsstat4::NFS4ERR_INVAL),
            _ => return Err(nfsstat4::NFS4ERR_ATTRNOTSUPP),
        }
        s.mask.set(a);
    }
    d.finish().map_err(bad)?;
    Ok(s)
}

fn settime(d: &mut Decoder) -> rnfs_xdr::Result<SetTime4> {
    Ok(match d.u32()? {
        0 => SetTime4::ServerTime,
        1 => SetTime4::ClientTime(d.decode()?),
        v => {
            return Err(XdrError::InvalidEnum {
                type_name: "time_how4",
                value: v.into(),
            })
        }
    })
}

/// Encodes settable attributes as a client sends them (for rnfsd's client and tests).
pub fn encode_settable(s: &SetAttrs4) -> fattr4 {
    let mut mask = Bitmap::default();
    let mut out: Vec<u8> = Vec::new();
    if let Some(v) = s.size {
        mask.set(SIZE);
        out.put_u64(v);
    }
    if let Some(v) = s.mode {
        mask.set(MODE);
        out.put_u32(v);
    }
    if let Some(v) = &s.owner {
        mask.set(OWNER);
        rnfs_xdr::put_opaque_var(&mut out, v);
    }
    if let Some(v) = &s.owner_group {
        mask.set(OWNER_GROUP);
        rnfs_xdr::put_opaque_var(&mut out, v);
    }
    for (bit, t) in [(TIME_ACCESS_SET, s.atime), (TIME_MODIFY_SET, s.mtime)] {
        match t {
            None => {}
            Some(SetTime4::ServerTime) => {
                mask.set(bit);
                out.put_u32(0)
            }
            Some(SetTime4::ClientTime(t)) => {
                mask.set(bit);
                out.put_u32(1);
                t.encode(&mut out)
            }
        }
    }
    fattr4 {
        attrmask: mask,
        attr_vals: Opaque(out.into()),
    }
}

/// VERIFY/NVERIFY's comparison (§18.31.3): `Ok(true)` when every attribute in `f` has the value
/// `v` reports. Set-only attributes and RDATTR_ERROR are NFS4ERR_INVAL, unsupported ones
/// NFS4ERR_ATTRNOTSUPP.
pub fn same(v: &AttrValues<'_>, f: &fattr4) -> Result<bool, nfsstat4> {
    for a in f.attrmask.iter() {
        if WRITE_ONLY.contains(&a) || a == RDATTR_ERROR {
            return Err(nfsstat4::NFS4ERR_INVAL);
        }
        if !SUPPORTED.contains(&a) {
            return Err(nfsstat4::NFS4ERR_ATTRNOTSUPP);
        }
    }
    let ours = encode(v, &f.attrmask);
    let mut want = f.attrmask.clone();
    want.trim();
    if ours.attrmask != want {
        // A file system total we could not read.
        return Err(nfsstat4::NFS4ERR_ATTRNOTSUPP);
    }
    Ok(ours.attr_vals.0 == f.attr_vals.0)
}
