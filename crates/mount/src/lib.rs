//! Wire types of the MOUNT protocol, program 100005: version 3 as in RFC 1813 Appendix I, and the
//! one version 1 reply that differs (`fhstatus`, from RFC 1094 Appendix A) so an old client asking
//! for version 1 can be answered.
//!
//! Versions 1 and 3 share procedure numbers and argument types; only MNT's reply differs
//! ([`mountres3`] for v3, [`fhstatus`] for v1). Names follow the `.x` definitions of the RFCs, hence
//! the lower-case type names. [`Args::decode`] is the entry point for dispatch and fuzzing.
#![forbid(unsafe_code)]
#![allow(non_camel_case_types)]

use rnfs_xdr::{xdr_enum, xdr_struct, Array};
pub use rnfs_xdr::{BufMut, Bytes, Decoder, List, Opaque, XdrDecode, XdrEncode};

/// Program number of MOUNT.
pub const MOUNT_PROG: u32 = 100_005;
/// MOUNT version 1 (NFSv2 era; only MNT's reply differs from v3).
pub const MOUNT_V1: u32 = 1;
/// MOUNT version 3 (goes with NFSv3).
pub const MOUNT_V3: u32 = 3;

/// Longest path a client may name (bytes).
pub const MNTPATHLEN: usize = 1024;
/// Longest host or group name (bytes).
pub const MNTNAMLEN: usize = 255;
/// Largest v3 file handle (bytes).
pub const FHSIZE3: usize = 64;
/// Size of a v1 file handle (bytes, fixed).
pub const FHSIZE: usize = 32;

pub const MOUNTPROC3_NULL: u32 = 0;
pub const MOUNTPROC3_MNT: u32 = 1;
pub const MOUNTPROC3_DUMP: u32 = 2;
pub const MOUNTPROC3_UMNT: u32 = 3;
pub const MOUNTPROC3_UMNTALL: u32 = 4;
pub const MOUNTPROC3_EXPORT: u32 = 5;

/// Most security flavors decoded from a MNT reply; servers list one to three.
pub const AUTH_FLAVORS_MAX: usize = 16;
/// Most entries decoded from a DUMP reply (mountlist).
pub const MOUNTLIST_MAX_ENTRIES: usize = 65_536;
/// Most exports decoded from an EXPORT reply.
pub const EXPORTS_MAX_ENTRIES: usize = 4096;
/// Most group names decoded for one export.
pub const GROUPS_MAX_ENTRIES: usize = 1024;

/// A v3 file handle: opaque, at most [`FHSIZE3`] bytes.
pub type fhandle3 = Opaque<FHSIZE3>;
/// A server path, at most [`MNTPATHLEN`] bytes (bytes, not necessarily UTF-8).
pub type dirpath = Opaque<MNTPATHLEN>;
/// A host or group name, at most [`MNTNAMLEN`] bytes.
pub type name = Opaque<MNTNAMLEN>;

xdr_enum! {
    /// Status of a MNT call (RFC 1813 Appendix I, "mountstat3").
    pub enum mountstat3 {
        MNT3_OK = 0,
        MNT3ERR_PERM = 1,
        MNT3ERR_NOENT = 2,
        MNT3ERR_IO = 5,
        MNT3ERR_ACCES = 13,
        MNT3ERR_NOTDIR = 20,
        MNT3ERR_INVAL = 22,
        MNT3ERR_NAMETOOLONG = 63,
        MNT3ERR_NOTSUPP = 10004,
        MNT3ERR_SERVERFAULT = 10006,
    }
}

xdr_struct! {
    /// The success arm of [`mountres3`]: the root handle and the RPC auth flavors the server
    /// accepts for it, most preferred first.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct mountres3_ok {
        pub fhandle: fhandle3,
        pub auth_flavors: Array<i32, AUTH_FLAVORS_MAX>,
    }
}

/// MNT v3 reply: a union on [`mountstat3`]; only `MNT3_OK` carries a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum mountres3 {
    Ok(mountres3_ok),
    /// Any status but `MNT3_OK`. Encoding `Fail(MNT3_OK)` would produce an undecodable reply.
    Fail(mountstat3),
}

impl mountres3 {
    pub fn status(&self) -> mountstat3 {
        match self {
            mountres3::Ok(_) => mountstat3::MNT3_OK,
            mountres3::Fail(s) => *s,
        }
    }
}

impl XdrDecode for mountres3 {
    fn decode(d: &mut Decoder) -> rnfs_xdr::Result<Self> {
        match mountstat3::decode(d)? {
            mountstat3::MNT3_OK => Ok(mountres3::Ok(d.decode()?)),
            s => Ok(mountres3::Fail(s)),
        }
    }
}
impl XdrEncode for mountres3 {
    fn encode<B: BufMut>(&self, b: &mut B) {
        self.status().encode(b);
        if let mountres3::Ok(ok) = self {
            ok.encode(b);
        }
    }
    fn encoded_len(&self) -> usize {
        4 + match self {
            mountres3::Ok(ok) => ok.encoded_len(),
            mountres3::Fail(_) => 0,
        }
    }
}

/// MNT v1 reply (RFC 1094 Appendix A): status 0 and a fixed 32-byte handle, or a non-zero Unix
/// error number and nothing else. The v1 status is a plain `unsigned`, not an enum, so any
/// value decodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum fhstatus {
    Ok([u8; FHSIZE]),
    /// A non-zero error number (e.g. 2 for ENOENT, 13 for EACCES).
    Fail(u32),
}

impl XdrDecode for fhstatus {
    fn decode(d: &mut Decoder) -> rnfs_xdr::Result<Self> {
        match d.u32()? {
            0 => Ok(fhstatus::Ok(d.decode()?)),
            e => Ok(fhstatus::Fail(e)),
        }
    }
}
impl XdrEncode for fhstatus {
    fn encode<B: BufMut>(&self, b: &mut B) {
        match self {
            fhstatus::Ok(fh) => {
                b.put_u32(0);
                fh.encode(b);
            }
            fhstatus::Fail(e) => b.put_u32(*e),
        }
    }
    fn encoded_len(&self) -> usize {
        match self {
            fhstatus::Ok(_) => 4 + FHSIZE,
            fhstatus::Fail(_) => 4,
        }
    }
}

xdr_struct! {
    /// One entry of the DUMP reply: which host has mounted which directory.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct mountbody {
        pub ml_hostname: name,
        pub ml_directory: dirpath,
    }
}

/// The DUMP reply: an XDR linked list of [`mountbody`] (the `ml_next` links are implicit).
pub type mountlist = List<mountbody, MOUNTLIST_MAX_ENTRIES>;

/// The groups (or hosts) allowed to mount one export: a linked list of names.
pub type groups = List<name, GROUPS_MAX_ENTRIES>;

xdr_struct! {
    /// One exported directory and who may mount it (an empty list means everyone).
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct exportnode {
        pub ex_dir: dirpath,
        pub ex_groups: groups,
    }
}

/// The EXPORT reply: a linked list of [`exportnode`].
pub type exports = List<exportnode, EXPORTS_MAX_ENTRIES>;

/// Why a call's arguments could not be decoded (shared by every program's `Args::decode`).
pub use rnfs_xdr::ArgsError;

/// The arguments of any MOUNT v1 or v3 procedure (the two versions take the same arguments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Args {
    Null,
    Mnt(dirpath),
    Dump,
    Umnt(dirpath),
    Umntall,
    Export,
}

impl Args {
    /// Decodes the arguments of procedure `procedure`; the whole of `args` must be consumed.
    pub fn decode(procedure: u32, args: Bytes) -> Result<Args, ArgsError> {
        let mut d = Decoder::new(args);
        let a = match procedure {
            MOUNTPROC3_NULL => Args::Null,
            MOUNTPROC3_MNT => Args::Mnt(d.decode()?),
            MOUNTPROC3_DUMP => Args::Dump,
            MOUNTPROC3_UMNT => Args::Umnt(d.decode()?),
            MOUNTPROC3_UMNTALL => Args::Umntall,
            MOUNTPROC3_EXPORT => Args::Export,
            p => return Err(ArgsError::ProcUnavail(p)),
        };
        d.finish()?;
        Ok(a)
    }

    /// The procedure number these arguments belong to.
    pub fn procedure(&self) -> u32 {
        match self {
            Args::Null => MOUNTPROC3_NULL,
            Args::Mnt(_) => MOUNTPROC3_MNT,
            Args::Dump => MOUNTPROC3_DUMP,
            Args::Umnt(_) => MOUNTPROC3_UMNT,
            Args::Umntall => MOUNTPROC3_UMNTALL,
            Args::Export => MOUNTPROC3_EXPORT,
        }
    }
}

impl XdrEncode for Args {
    fn encode<B: BufMut>(&self, b: &mut B) {
        if let Args::Mnt(p) | Args::Umnt(p) = self {
            p.encode(b)
        }
    }
    fn encoded_len(&self) -> usize {
        match self {
            Args::Mnt(p) | Args::Umnt(p) => p.encoded_len(),
            _ => 0,
        }
    }
}

/// The results of any MOUNT v3 procedure (for v1's MNT use [`fhstatus`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Res {
    Null,
    Mnt(mountres3),
    Dump(mountlist),
    Umnt,
    Umntall,
    Export(exports),
}

impl Res {
    /// Decodes the v3 results of procedure `procedure` (client side); trailing bytes are an error.
    pub fn decode(procedure: u32, res: Bytes) -> Result<Res, ArgsError> {
        let mut d = Decoder::new(res);
        let r = match procedure {
            MOUNTPROC3_NULL => Res::Null,
            MOUNTPROC3_MNT => Res::Mnt(d.decode()?),
            MOUNTPROC3_DUMP => Res::Dump(d.decode()?),
            MOUNTPROC3_UMNT => Res::Umnt,
            MOUNTPROC3_UMNTALL => Res::Umntall,
            MOUNTPROC3_EXPORT => Res::Export(d.decode()?),
            p => return Err(ArgsError::ProcUnavail(p)),
        };
        d.finish()?;
        Ok(r)
    }

    /// The procedure number these results belong to.
    pub fn procedure(&self) -> u32 {
        match self {
            Res::Null => MOUNTPROC3_NULL,
            Res::Mnt(_) => MOUNTPROC3_MNT,
            Res::Dump(_) => MOUNTPROC3_DUMP,
            Res::Umnt => MOUNTPROC3_UMNT,
            Res::Umntall => MOUNTPROC3_UMNTALL,
            Res::Export(_) => MOUNTPROC3_EXPORT,
        }
    }
}

impl XdrEncode for Res {
    fn encode<B: BufMut>(&self, b: &mut B) {
        match self {
            Res::Mnt(r) => r.encode(b),
            Res::Dump(l) => l.encode(b),
            Res::Export(e) => e.encode(b),
            Res::Null | Res::Umnt | Res::Umntall => {}
        }
    }
    fn encoded_len(&self) -> usize {
        match self {
            Res::Mnt(r) => r.encoded_len(),
            Res::Dump(l) => l.encoded_len(),
            Res::Export(e) => e.encoded_len(),
            Res::Null | Res::Umnt | Res::Umntall => 0,
        }
    }
}

#[cfg(test)]
mod tests;
