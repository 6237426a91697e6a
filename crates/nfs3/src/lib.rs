//! Wire types of NFS version 3 (RFC 1813), program 100003 version 3: every data type of §2.5–§2.6
//! and the arguments and results of all 22 procedures of §3.3.
//!
//! # Conventions
//! * Type and field names are those of the RFC's `.x` definitions, so the types are lower-case and
//!   the fields named `type` and `where` are written `r#type` and `r#where`.
//! * The RFC's `bool + value` unions (`post_op_attr`, `pre_op_attr`, `post_op_fh3`, `set_mode3`,
//!   `set_uid3`, `set_gid3`, `set_size3`, `sattrguard3`) have the wire form of XDR optional data, so
//!   they are aliases of `Option<T>`.
//! * Each `XXX3res` is `enum { Ok(XXX3resok), Fail(nfsstat3, XXX3resfail) }`. `Fail` must never
//!   carry `NFS3_OK`: encoding cannot fail, and such a value would not decode back.
//! * Linked lists (`entry3 *nextentry`) are [`List`]s, flattened to vectors; the `nextentry` links
//!   are implicit.
//!
//! # Bounds applied on decode
//! | item | bound | why |
//! |---|---|---|
//! | `nfs_fh3` | [`NFS3_FHSIZE`] = 64 bytes | RFC 1813 §2.5 |
//! | `filename3` | [`FILENAME3_MAX_BYTES`] = 1024 bytes | generous on purpose: a name of 256..=1024 bytes must reach the server, which answers `NFS3ERR_NAMETOOLONG` (limit [`NAME_MAX`] = 255), instead of the RPC failing with GARBAGE_ARGS |
//! | `nfspath3` | [`NFSPATH3_MAX_BYTES`] = 4096 bytes | PATH_MAX |
//! | WRITE data | [`WRITE_DATA_MAX_BYTES`] = 1 MiB | the server's `wtmax` must not exceed it |
//! | READ data (client side) | [`READ_DATA_MAX_BYTES`] = 1 MiB | the server's `rtmax` must not exceed it |
//! | directory entries per reply | [`DIRLIST_MAX_ENTRIES`] = 65536 | |
//!
//! [`Args::decode`] is the entry point for server dispatch and the fuzz targets; it tells an unknown
//! procedure ([`ArgsError::ProcUnavail`]) from malformed arguments ([`ArgsError::GarbageArgs`]).
//! For the READ hot path see [`encode_read3resok_header`]; for sizing READDIR replies see
//! [`entry3::list_len`], [`entryplus3::list_len`] and [`READDIR3resok::encoded_len_without_entries`].
#![forbid(unsafe_code)]
#![allow(non_camel_case_types)]

use rnfs_xdr::{opaque_var_len, xdr_enum, xdr_struct};
pub use rnfs_xdr::{pad_len, BufMut, Bytes, Decoder, List, Opaque, XdrDecode, XdrEncode};

// ---------------------------------------------------------------------------------------------
// Program, procedures, constants (§2.4, §3.3)

/// Program number of NFS.
pub const NFS_PROGRAM: u32 = 100_003;
/// The version described here.
pub const NFS_V3: u32 = 3;

pub const NFS3_FHSIZE: usize = 64;
pub const NFS3_COOKIEVERFSIZE: usize = 8;
pub const NFS3_CREATEVERFSIZE: usize = 8;
pub const NFS3_WRITEVERFSIZE: usize = 8;

/// Longest file name the server accepts (POSIX NAME_MAX); longer names get `NFS3ERR_NAMETOOLONG`.
pub const NAME_MAX: usize = 255;
/// Decode bound of `filename3`; deliberately above [`NAME_MAX`] (see the module docs).
pub const FILENAME3_MAX_BYTES: usize = 1024;
/// Decode bound of `nfspath3` (symbolic link contents).
pub const NFSPATH3_MAX_BYTES: usize = 4096;
/// Largest WRITE payload accepted on decode.
pub const WRITE_DATA_MAX_BYTES: usize = 1 << 20;
/// Largest READ payload accepted on decode (client side).
pub const READ_DATA_MAX_BYTES: usize = 1 << 20;
/// Most entries decoded from one READDIR or READDIRPLUS reply.
pub const DIRLIST_MAX_ENTRIES: usize = 65_536;

pub const NFSPROC3_NULL: u32 = 0;
pub const NFSPROC3_GETATTR: u32 = 1;
pub const NFSPROC3_SETATTR: u32 = 2;
pub const NFSPROC3_LOOKUP: u32 = 3;
pub const NFSPROC3_ACCESS: u32 = 4;
pub const NFSPROC3_READLINK: u32 = 5;
pub const NFSPROC3_READ: u32 = 6;
pub const NFSPROC3_WRITE: u32 = 7;
pub const NFSPROC3_CREATE: u32 = 8;
pub const NFSPROC3_MKDIR: u32 = 9;
pub const NFSPROC3_SYMLINK: u32 = 10;
pub const NFSPROC3_MKNOD: u32 = 11;
pub const NFSPROC3_REMOVE: u32 = 12;
pub const NFSPROC3_RMDIR: u32 = 13;
pub const NFSPROC3_RENAME: u32 = 14;
pub const NFSPROC3_LINK: u32 = 15;
pub const NFSPROC3_READDIR: u32 = 16;
pub const NFSPROC3_READDIRPLUS: u32 = 17;
pub const NFSPROC3_FSSTAT: u32 = 18;
pub const NFSPROC3_FSINFO: u32 = 19;
pub const NFSPROC3_PATHCONF: u32 = 20;
pub const NFSPROC3_COMMIT: u32 = 21;

// ACCESS3args.access / ACCESS3resok.access bits (§3.3.4).
pub const ACCESS3_READ: u32 = 0x0001;
pub const ACCESS3_LOOKUP: u32 = 0x0002;
pub const ACCESS3_MODIFY: u32 = 0x0004;
pub const ACCESS3_EXTEND: u32 = 0x0008;
pub const ACCESS3_DELETE: u32 = 0x0010;
pub const ACCESS3_EXECUTE: u32 = 0x0020;

// FSINFO3resok.properties bits (§3.3.19).
pub const FSF3_LINK: u32 = 0x0001;
pub const FSF3_SYMLINK: u32 = 0x0002;
pub const FSF3_HOMOGENEOUS: u32 = 0x0008;
pub const FSF3_CANSETTIME: u32 = 0x0010;

// ---------------------------------------------------------------------------------------------
// Basic data types (§2.5)

pub type uint64 = u64;
pub type int64 = i64;
pub type uint32 = u32;
pub type int32 = i32;
/// A file name: bytes, not necessarily UTF-8.
pub type filename3 = Opaque<FILENAME3_MAX_BYTES>;
/// A symbolic link's contents.
pub type nfspath3 = Opaque<NFSPATH3_MAX_BYTES>;
pub type fileid3 = u64;
pub type cookie3 = u64;
pub type cookieverf3 = [u8; NFS3_COOKIEVERFSIZE];
pub type createverf3 = [u8; NFS3_CREATEVERFSIZE];
pub type writeverf3 = [u8; NFS3_WRITEVERFSIZE];
pub type uid3 = u32;
pub type gid3 = u32;
pub type size3 = u64;
pub type offset3 = u64;
pub type mode3 = u32;
pub type count3 = u32;

xdr_enum! {
    /// Status of every procedure but NULL (§2.6).
    pub enum nfsstat3 {
        NFS3_OK = 0,
        NFS3ERR_PERM = 1,
        NFS3ERR_NOENT = 2,
        NFS3ERR_IO = 5,
        NFS3ERR_NXIO = 6,
        NFS3ERR_ACCES = 13,
        NFS3ERR_EXIST = 17,
        NFS3ERR_XDEV = 18,
        NFS3ERR_NODEV = 19,
        NFS3ERR_NOTDIR = 20,
        NFS3ERR_ISDIR = 21,
        NFS3ERR_INVAL = 22,
        NFS3ERR_FBIG = 27,
        NFS3ERR_NOSPC = 28,
        NFS3ERR_ROFS = 30,
        NFS3ERR_MLINK = 31,
        NFS3ERR_NAMETOOLONG = 63,
        NFS3ERR_NOTEMPTY = 66,
        NFS3ERR_DQUOT = 69,
        NFS3ERR_STALE = 70,
        NFS3ERR_REMOTE = 71,
        NFS3ERR_BADHANDLE = 10001,
        NFS3ERR_NOT_SYNC = 10002,
        NFS3ERR_BAD_COOKIE = 10003,
        NFS3ERR_NOTSUPP = 10004,
        NFS3ERR_TOOSMALL = 10005,
        NFS3ERR_SERVERFAULT = 10006,
        NFS3ERR_BADTYPE = 10007,
        NFS3ERR_JUKEBOX = 10008,
    }
}

impl std::fmt::Display for nfsstat3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} ({})", self, *self as i32)
    }
}

xdr_enum! {
    /// File type (§2.5).
    pub enum ftype3 {
        NF3REG = 1,
        NF3DIR = 2,
        NF3BLK = 3,
        NF3CHR = 4,
        NF3LNK = 5,
        NF3SOCK = 6,
        NF3FIFO = 7,
    }
}

xdr_struct! {
    /// Device numbers (major, minor) of a block or character special file.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct specdata3 {
        pub specdata1: u32,
        pub specdata2: u32,
    }
}

xdr_struct! {
    /// A file handle: opaque to the client, at most 64 bytes.
    #[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
    pub struct nfs_fh3 {
        pub data: Opaque<NFS3_FHSIZE>,
    }
}

impl nfs_fh3 {
    /// Wraps `data`, or `None` if it is longer than [`NFS3_FHSIZE`].
    pub fn new(data: impl Into<Bytes>) -> Option<Self> {
        Opaque::new(data).map(|data| nfs_fh3 { data })
    }
    pub fn as_bytes(&self) -> &[u8] {
        self.data.as_bytes()
    }
}

xdr_struct! {
    /// Seconds and nanoseconds since the Unix epoch.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
    pub struct nfstime3 {
        pub seconds: u32,
        pub nseconds: u32,
    }
}

xdr_struct! {
    /// File attributes (§2.5 "fattr3").
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    pub struct fattr3 {
        pub r#type: ftype3,
        pub mode: mode3,
        pub nlink: u32,
        pub uid: uid3,
        pub gid: gid3,
        pub size: size3,
        pub used: size3,
        pub rdev: specdata3,
        pub fsid: u64,
        pub fileid: fileid3,
        pub atime: nfstime3,
        pub mtime: nfstime3,
        pub ctime: nfstime3,
    }
}

/// Encoded size of [`fattr3`] (it has no variable part).
pub const FATTR3_ENCODED_LEN: usize = 84;
/// Encoded size of a [`post_op_attr`] that carries attributes.
pub const POST_OP_ATTR_MAX_LEN: usize = 4 + FATTR3_ENCODED_LEN;

/// Attributes returned when the server can (`Some`) — RFC 1813's `post_op_attr` union.
pub type post_op_attr = Option<fattr3>;

xdr_struct! {
    /// The subset of attributes used for weak cache consistency.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct wcc_attr {
        pub size: size3,
        pub mtime: nfstime3,
        pub ctime: nfstime3,
    }
}

/// Attributes before an operation, when available.
pub type pre_op_attr = Option<wcc_attr>;

xdr_struct! {
    /// Weak cache consistency data: attributes before and after a modifying operation.
    #[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
    pub struct wcc_data {
        pub before: pre_op_attr,
        pub after: post_op_attr,
    }
}

/// A file handle returned when the server can.
pub type post_op_fh3 = Option<nfs_fh3>;

xdr_enum! {
    /// How SETATTR/CREATE set a time (§2.5 "time_how").
    pub enum time_how {
        DONT_CHANGE = 0,
        SET_TO_SERVER_TIME = 1,
        SET_TO_CLIENT_TIME = 2,
    }
}

pub type set_mode3 = Option<mode3>;
pub type set_uid3 = Option<uid3>;
pub type set_gid3 = Option<gid3>;
pub type set_size3 = Option<size3>;

macro_rules! set_time {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub enum $name {
            #[default]
            DontChange,
            SetToServerTime,
            SetToClientTime(nfstime3),
        }

        impl $name {
            pub fn how(&self) -> time_how {
                match self {
                    $name::DontChange => time_how::DONT_CHANGE,
                    $name::SetToServerTime => time_how::SET_TO_SERVER_TIME,
                    $name::SetToClientTime(_) => time_how::SET_TO_CLIENT_TIME,
                }
            }
        }
        impl XdrDecode for $name {
            fn decode(d: &mut Decoder) -> rnfs_xdr::Result<Self> {
                Ok(match time_how::decode(d)? {
                    time_how::DONT_CHANGE => $name::DontChange,
                    time_how::SET_TO_SERVER_TIME => $name::SetToServerTime,
                    time_how::SET_TO_CLIENT_TIME => $name::SetToClientTime(d.decode()?),
                })
            }
        }
        impl XdrEncode for $name {
            fn encode<B: BufMut>(&self, b: &mut B) {
                self.how().encode(b);
                if let $name::SetToClientTime(t) = self {
                    t.encode(b);
                }
            }
            fn encoded_len(&self) -> usize {
                match self {
                    $name::SetToClientTime(_) => 12,
                    _ => 4,
                }
            }
        }
    };
}

set_time! {
    /// How SETATTR sets the access time.
    set_atime
}
set_time! {
    /// How SETATTR sets the modification time.
    set_mtime
}

xdr_struct! {
    /// Attributes to set; each field is left alone when not given.
    #[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
    pub struct sattr3 {
        pub mode: set_mode3,
        pub uid: set_uid3,
        pub gid: set_gid3,
        pub size: set_size3,
        pub atime: set_atime,
        pub mtime: set_mtime,
    }
}

xdr_struct! {
    /// A name within a directory.
    #[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
    pub struct diropargs3 {
        pub dir: nfs_fh3,
        pub name: filename3,
    }
}

// ---------------------------------------------------------------------------------------------
// Results: every XXX3res has the same shape (§3.3).

/// Why a call's arguments could not be decoded (shared by every program's `Args::decode`).
pub use rnfs_xdr::ArgsError;

macro_rules! nfs_res {
    ($(#[$m:meta])* $res:ident, $ok:ty, $fail:ty) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum $res {
            Ok($ok),
            /// A status other than `NFS3_OK`, and the data sent with it.
            Fail(nfsstat3, $fail),
        }

        impl $res {
            /// The status word of this result.
            pub fn status(&self) -> nfsstat3 {
                match self {
                    $res::Ok(_) => nfsstat3::NFS3_OK,
                    $res::Fail(s, _) => *s,
                }
            }

            /// The success body, or the failing status.
            pub fn into_result(self) -> Result<$ok, nfsstat3> {
                match self {
                    $res::Ok(ok) => Ok(ok),
                    $res::Fail(s, _) => Err(s),
                }
            }
        }

        impl XdrDecode for $res {
            fn decode(d: &mut Decoder) -> rnfs_xdr::Result<Self> {
                match nfsstat3::decode(d)? {
                    nfsstat3::NFS3_OK => Ok($res::Ok(d.decode()?)),
                    s => Ok($res::Fail(s, d.decode()?)),
                }
            }
        }
        impl XdrEncode for $res {
            fn encode<B: BufMut>(&self, b: &mut B) {
                match self {
                    $res::Ok(ok) => {
                        nfsstat3::NFS3_OK.encode(b);
                        ok.encode(b);
                    }
                    $res::Fail(s, fail) => {
                        s.encode(b);
                        fail.encode(b);
                    }
                }
            }
            fn encoded_len(&self) -> usize {
                4 + match self {
                    $res::Ok(ok) => ok.encoded_len(),
                    $res::Fail(_, fail) => fail.encoded_len(),
                }
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// GETATTR (§3.3.1)

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
    pub struct GETATTR3args { pub object: nfs_fh3 }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct GETATTR3resok { pub obj_attributes: fattr3 }
}
/// GETATTR sends nothing with a failure status.
pub type GETATTR3resfail = ();
nfs_res!(GETATTR3res, GETATTR3resok, GETATTR3resfail);

// SETATTR (§3.3.2)

/// SETATTR's guard: when `Some`, the server applies the change only if the object's ctime equals it.
pub type sattrguard3 = Option<nfstime3>;

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct SETATTR3args {
        pub object: nfs_fh3,
        pub new_attributes: sattr3,
        pub guard: sattrguard3,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct SETATTR3resok { pub obj_wcc: wcc_data }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct SETATTR3resfail { pub obj_wcc: wcc_data }
}
nfs_res!(SETATTR3res, SETATTR3resok, SETATTR3resfail);

// LOOKUP (§3.3.3)

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct LOOKUP3args { pub what: diropargs3 }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct LOOKUP3resok {
        pub object: nfs_fh3,
        pub obj_attributes: post_op_attr,
        pub dir_attributes: post_op_attr,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct LOOKUP3resfail { pub dir_attributes: post_op_attr }
}
nfs_res!(LOOKUP3res, LOOKUP3resok, LOOKUP3resfail);

// ACCESS (§3.3.4)

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct ACCESS3args {
        pub object: nfs_fh3,
        /// A mask of `ACCESS3_*` bits.
        pub access: u32,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct ACCESS3resok {
        pub obj_attributes: post_op_attr,
        pub access: u32,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct ACCESS3resfail { pub obj_attributes: post_op_attr }
}
nfs_res!(ACCESS3res, ACCESS3resok, ACCESS3resfail);

// READLINK (§3.3.5)

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct READLINK3args { pub symlink: nfs_fh3 }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct READLINK3resok {
        pub symlink_attributes: post_op_attr,
        pub data: nfspath3,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct READLINK3resfail { pub symlink_attributes: post_op_attr }
}
nfs_res!(READLINK3res, READLINK3resok, READLINK3resfail);

// READ (§3.3.6)

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct READ3args {
        pub file: nfs_fh3,
        pub offset: offset3,
        pub count: count3,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct READ3resok {
        pub file_attributes: post_op_attr,
        pub count: count3,
        pub eof: bool,
        /// The bytes read; `data.len()` should equal `count`.
        pub data: Opaque<READ_DATA_MAX_BYTES>,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct READ3resfail { pub file_attributes: post_op_attr }
}
nfs_res!(READ3res, READ3resok, READ3resfail);

/// Encoded size of what [`encode_read3resok_header`] writes.
pub fn read3resok_header_len(file_attributes: &post_op_attr) -> usize {
    4 + file_attributes.encoded_len() + 4 + 4 + 4
}

/// Writes a successful READ3res up to and including the data's length word: the `NFS3_OK` status,
/// `file_attributes`, `count`, `eof`, then `data_len`.
///
/// This lets the server send file bytes it holds elsewhere (a page cache, a `sendfile`) without
/// copying them into the reply: send this header, then the `data_len` bytes, then
/// `pad_len(data_len)` zero bytes. The result is byte for byte `READ3res::Ok(..)` encoded whole.
pub fn encode_read3resok_header<B: BufMut>(
    file_attributes: &post_op_attr,
    count: count3,
    eof: bool,
    data_len: usize,
    b: &mut B,
) {
    nfsstat3::NFS3_OK.encode(b);
    file_attributes.encode(b);
    count.encode(b);
    eof.encode(b);
    b.put_u32(data_len as u32);
}

// WRITE (§3.3.7)

xdr_enum! {
    /// How durable a WRITE must be before the reply (and how durable it was, in the reply).
    pub enum stable_how {
        UNSTABLE = 0,
        DATA_SYNC = 1,
        FILE_SYNC = 2,
    }
}

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct WRITE3args {
        pub file: nfs_fh3,
        pub offset: offset3,
        /// Bytes to write; the RFC has it equal `data.len()`. The server must check, not assume.
        pub count: count3,
        pub stable: stable_how,
        /// The payload: a zero-copy slice of the received record.
        pub data: Opaque<WRITE_DATA_MAX_BYTES>,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct WRITE3resok {
        pub file_wcc: wcc_data,
        pub count: count3,
        pub committed: stable_how,
        pub verf: writeverf3,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct WRITE3resfail { pub file_wcc: wcc_data }
}
nfs_res!(WRITE3res, WRITE3resok, WRITE3resfail);

// CREATE (§3.3.8)

xdr_enum! {
    /// CREATE's mode.
    pub enum createmode3 {
        UNCHECKED = 0,
        GUARDED = 1,
        EXCLUSIVE = 2,
    }
}

/// How to create a regular file: a union on [`createmode3`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum createhow3 {
    /// Create, or truncate/update an existing file, with these attributes.
    Unchecked(sattr3),
    /// Create with these attributes; fail with `NFS3ERR_EXIST` if the name exists.
    Guarded(sattr3),
    /// Exclusive create keyed by this verifier (a retransmission finds the same verifier).
    Exclusive(createverf3),
}

impl createhow3 {
    pub fn mode(&self) -> createmode3 {
        match self {
            createhow3::Unchecked(_) => createmode3::UNCHECKED,
            createhow3::Guarded(_) => createmode3::GUARDED,
            createhow3::Exclusive(_) => createmode3::EXCLUSIVE,
        }
    }
}

impl XdrDecode for createhow3 {
    fn decode(d: &mut Decoder) -> rnfs_xdr::Result<Self> {
        Ok(match createmode3::decode(d)? {
            createmode3::UNCHECKED => createhow3::Unchecked(d.decode()?),
            createmode3::GUARDED => createhow3::Guarded(d.decode()?),
            createmode3::EXCLUSIVE => createhow3::Exclusive(d.decode()?),
        })
    }
}
impl XdrEncode for createhow3 {
    fn encode<B: BufMut>(&self, b: &mut B) {
        self.mode().encode(b);
        match self {
            createhow3::Unchecked(a) | createhow3::Guarded(a) => a.encode(b),
            createhow3::Exclusive(v) => v.encode(b),
        }
    }
    fn encoded_len(&self) -> usize {
        4 + match self {
            createhow3::Unchecked(a) | createhow3::Guarded(a) => a.encoded_len(),
            createhow3::Exclusive(v) => v.encoded_len(),
        }
    }
}

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CREATE3args {
        pub r#where: diropargs3,
        pub how: createhow3,
    }
}
xdr_struct! {
    /// Success body shared in shape by CREATE, MKDIR, SYMLINK and MKNOD.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct CREATE3resok {
        pub obj: post_op_fh3,
        pub obj_attributes: post_op_attr,
        pub dir_wcc: wcc_data,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct CREATE3resfail { pub dir_wcc: wcc_data }
}
nfs_res!(CREATE3res, CREATE3resok, CREATE3resfail);

// MKDIR (§3.3.9)

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct MKDIR3args {
        pub r#where: diropargs3,
        pub attributes: sattr3,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct MKDIR3resok {
        pub obj: post_op_fh3,
        pub obj_attributes: post_op_attr,
        pub dir_wcc: wcc_data,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct MKDIR3resfail { pub dir_wcc: wcc_data }
}
nfs_res!(MKDIR3res, MKDIR3resok, MKDIR3resfail);

// SYMLINK (§3.3.10)

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct symlinkdata3 {
        pub symlink_attributes: sattr3,
        pub symlink_data: nfspath3,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct SYMLINK3args {
        pub r#where: diropargs3,
        pub symlink: symlinkdata3,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct SYMLINK3resok {
        pub obj: post_op_fh3,
        pub obj_attributes: post_op_attr,
        pub dir_wcc: wcc_data,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct SYMLINK3resfail { pub dir_wcc: wcc_data }
}
nfs_res!(SYMLINK3res, SYMLINK3resok, SYMLINK3resfail);

// MKNOD (§3.3.11)

xdr_struct! {
    /// Attributes and device numbers of a new device file.
    #[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
    pub struct devicedata3 {
        pub dev_attributes: sattr3,
        pub spec: specdata3,
    }
}

/// What MKNOD creates: a union on [`ftype3`]. Regular files, directories and symbolic links carry
/// nothing (the server answers `NFS3ERR_BADTYPE` for them).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum mknoddata3 {
    Chr(devicedata3),
    Blk(devicedata3),
    Sock(sattr3),
    Fifo(sattr3),
    Reg,
    Dir,
    Lnk,
}

impl mknoddata3 {
    /// The union's discriminant (the RFC's `type`).
    pub fn ftype(&self) -> ftype3 {
        match self {
            mknoddata3::Chr(_) => ftype3::NF3CHR,
            mknoddata3::Blk(_) => ftype3::NF3BLK,
            mknoddata3::Sock(_) => ftype3::NF3SOCK,
            mknoddata3::Fifo(_) => ftype3::NF3FIFO,
            mknoddata3::Reg => ftype3::NF3REG,
            mknoddata3::Dir => ftype3::NF3DIR,
            mknoddata3::Lnk => ftype3::NF3LNK,
        }
    }
}

impl XdrDecode for mknoddata3 {
    fn decode(d: &mut Decoder) -> rnfs_xdr::Result<Self> {
        Ok(match ftype3::decode(d)? {
            ftype3::NF3CHR => mknoddata3::Chr(d.decode()?),
            ftype3::NF3BLK => mknoddata3::Blk(d.decode()?),
            ftype3::NF3SOCK => mknoddata3::Sock(d.decode()?),
            ftype3::NF3FIFO => mknoddata3::Fifo(d.decode()?),
            ftype3::NF3REG => mknoddata3::Reg,
            ftype3::NF3DIR => mknoddata3::Dir,
            ftype3::NF3LNK => mknoddata3::Lnk,
        })
    }
}
impl XdrEncode for mknoddata3 {
    fn encode<B: BufMut>(&self, b: &mut B) {
        self.ftype().encode(b);
        match self {
            mknoddata3::Chr(dev) | mknoddata3::Blk(dev) => dev.encode(b),
            mknoddata3::Sock(a) | mknoddata3::Fifo(a) => a.encode(b),
            mknoddata3::Reg | mknoddata3::Dir | mknoddata3::Lnk => {}
        }
    }
    fn encoded_len(&self) -> usize {
        4 + match self {
            mknoddata3::Chr(dev) | mknoddata3::Blk(dev) => dev.encoded_len(),
            mknoddata3::Sock(a) | mknoddata3::Fifo(a) => a.encoded_len(),
            mknoddata3::Reg | mknoddata3::Dir | mknoddata3::Lnk => 0,
        }
    }
}

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct MKNOD3args {
        pub r#where: diropargs3,
        pub what: mknoddata3,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct MKNOD3resok {
        pub obj: post_op_fh3,
        pub obj_attributes: post_op_attr,
        pub dir_wcc: wcc_data,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct MKNOD3resfail { pub dir_wcc: wcc_data }
}
nfs_res!(MKNOD3res, MKNOD3resok, MKNOD3resfail);

// REMOVE (§3.3.12)

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct REMOVE3args { pub object: diropargs3 }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct REMOVE3resok { pub dir_wcc: wcc_data }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct REMOVE3resfail { pub dir_wcc: wcc_data }
}
nfs_res!(REMOVE3res, REMOVE3resok, REMOVE3resfail);

// RMDIR (§3.3.13)

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct RMDIR3args { pub object: diropargs3 }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct RMDIR3resok { pub dir_wcc: wcc_data }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct RMDIR3resfail { pub dir_wcc: wcc_data }
}
nfs_res!(RMDIR3res, RMDIR3resok, RMDIR3resfail);

// RENAME (§3.3.14)

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct RENAME3args {
        pub from: diropargs3,
        pub to: diropargs3,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct RENAME3resok {
        pub fromdir_wcc: wcc_data,
        pub todir_wcc: wcc_data,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct RENAME3resfail {
        pub fromdir_wcc: wcc_data,
        pub todir_wcc: wcc_data,
    }
}
nfs_res!(RENAME3res, RENAME3resok, RENAME3resfail);

// LINK (§3.3.15)

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct LINK3args {
        pub file: nfs_fh3,
        pub link: diropargs3,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct LINK3resok {
        pub file_attributes: post_op_attr,
        pub linkdir_wcc: wcc_data,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct LINK3resfail {
        pub file_attributes: post_op_attr,
        pub linkdir_wcc: wcc_data,
    }
}
nfs_res!(LINK3res, LINK3resok, LINK3resfail);

// READDIR (§3.3.16)

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct READDIR3args {
        pub dir: nfs_fh3,
        pub cookie: cookie3,
        pub cookieverf: cookieverf3,
        pub count: count3,
    }
}

xdr_struct! {
    /// One READDIR entry. Its `nextentry` link is implicit in [`dirlist3::entries`];
    /// `encoded_len()` covers the three fields only, [`entry3::list_len`] adds the link word.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct entry3 {
        pub fileid: fileid3,
        pub name: filename3,
        pub cookie: cookie3,
    }
}

/// Bytes an entry whose name is `name_len` bytes long adds to a READDIR reply, including the
/// 4-byte "another entry follows" word.
pub const fn entry3_list_len(name_len: usize) -> usize {
    4 + 8 + opaque_var_len(name_len) + 8
}

impl entry3 {
    /// Bytes this entry adds to a READDIR reply (see [`entry3_list_len`]).
    pub fn list_len(&self) -> usize {
        entry3_list_len(self.name.len())
    }
}

xdr_struct! {
    /// READDIR's list of entries and its end-of-directory flag.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct dirlist3 {
        pub entries: List<entry3, DIRLIST_MAX_ENTRIES>,
        pub eof: bool,
    }
}

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct READDIR3resok {
        pub dir_attributes: post_op_attr,
        pub cookieverf: cookieverf3,
        pub reply: dirlist3,
    }
}

/// The largest [`READDIR3resok::encoded_len_without_entries`] (with directory attributes).
pub const READDIR3RESOK_MAX_OVERHEAD: usize = POST_OP_ATTR_MAX_LEN + 8 + 4 + 4;

impl READDIR3resok {
    /// Encoded size of a READDIR3resok with no entries: attributes, verifier, list terminator and
    /// `eof`. Add [`entry3::list_len`] per entry for the exact size; the READDIR3res status word
    /// is 4 bytes more.
    pub fn encoded_len_without_entries(dir_attributes: &post_op_attr) -> usize {
        dir_attributes.encoded_len() + 8 + 4 + 4
    }
}

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct READDIR3resfail { pub dir_attributes: post_op_attr }
}
nfs_res!(READDIR3res, READDIR3resok, READDIR3resfail);

// READDIRPLUS (§3.3.17)

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct READDIRPLUS3args {
        pub dir: nfs_fh3,
        pub cookie: cookie3,
        pub cookieverf: cookieverf3,
        /// Limit on the directory part of the reply (see [`entryplus3::dircount_len`]).
        pub dircount: count3,
        /// Limit on the whole READDIRPLUS3resok.
        pub maxcount: count3,
    }
}

xdr_struct! {
    /// One READDIRPLUS entry; as for [`entry3`], the `nextentry` link is implicit.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct entryplus3 {
        pub fileid: fileid3,
        pub name: filename3,
        pub cookie: cookie3,
        pub name_attributes: post_op_attr,
        pub name_handle: post_op_fh3,
    }
}

impl entryplus3 {
    /// Bytes this entry adds to a READDIRPLUS reply, including the "another entry follows" word;
    /// this is what counts against `maxcount`.
    pub fn list_len(&self) -> usize {
        4 + self.encoded_len()
    }

    /// The part of [`entryplus3::list_len`] that counts against `dircount`: the entry without its
    /// attributes and handle, i.e. what it would cost in a READDIR reply. (The RFC says only that
    /// attributes and handles are excluded; this is the usual reading.)
    pub fn dircount_len(&self) -> usize {
        entry3_list_len(self.name.len())
    }
}

xdr_struct! {
    /// READDIRPLUS's list of entries and its end-of-directory flag.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct dirlistplus3 {
        pub entries: List<entryplus3, DIRLIST_MAX_ENTRIES>,
        pub eof: bool,
    }
}

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct READDIRPLUS3resok {
        pub dir_attributes: post_op_attr,
        pub cookieverf: cookieverf3,
        pub reply: dirlistplus3,
    }
}

/// The largest [`READDIRPLUS3resok::encoded_len_without_entries`].
pub const READDIRPLUS3RESOK_MAX_OVERHEAD: usize = READDIR3RESOK_MAX_OVERHEAD;

impl READDIRPLUS3resok {
    /// Encoded size of a READDIRPLUS3resok with no entries; add [`entryplus3::list_len`] per
    /// entry for the exact size. The READDIRPLUS3res status word is 4 bytes more.
    pub fn encoded_len_without_entries(dir_attributes: &post_op_attr) -> usize {
        dir_attributes.encoded_len() + 8 + 4 + 4
    }
}

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct READDIRPLUS3resfail { pub dir_attributes: post_op_attr }
}
nfs_res!(READDIRPLUS3res, READDIRPLUS3resok, READDIRPLUS3resfail);

// FSSTAT (§3.3.18)

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct FSSTAT3args { pub fsroot: nfs_fh3 }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct FSSTAT3resok {
        pub obj_attributes: post_op_attr,
        pub tbytes: size3,
        pub fbytes: size3,
        pub abytes: size3,
        pub tfiles: size3,
        pub ffiles: size3,
        pub afiles: size3,
        pub invarsec: u32,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct FSSTAT3resfail { pub obj_attributes: post_op_attr }
}
nfs_res!(FSSTAT3res, FSSTAT3resok, FSSTAT3resfail);

// FSINFO (§3.3.19)

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct FSINFO3args { pub fsroot: nfs_fh3 }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct FSINFO3resok {
        pub obj_attributes: post_op_attr,
        pub rtmax: u32,
        pub rtpref: u32,
        pub rtmult: u32,
        pub wtmax: u32,
        pub wtpref: u32,
        pub wtmult: u32,
        pub dtpref: u32,
        pub maxfilesize: size3,
        pub time_delta: nfstime3,
        /// A mask of `FSF3_*` bits.
        pub properties: u32,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct FSINFO3resfail { pub obj_attributes: post_op_attr }
}
nfs_res!(FSINFO3res, FSINFO3resok, FSINFO3resfail);

// PATHCONF (§3.3.20)

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct PATHCONF3args { pub object: nfs_fh3 }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct PATHCONF3resok {
        pub obj_attributes: post_op_attr,
        pub linkmax: u32,
        pub name_max: u32,
        pub no_trunc: bool,
        pub chown_restricted: bool,
        pub case_insensitive: bool,
        pub case_preserving: bool,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct PATHCONF3resfail { pub obj_attributes: post_op_attr }
}
nfs_res!(PATHCONF3res, PATHCONF3resok, PATHCONF3resfail);

// COMMIT (§3.3.21)

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct COMMIT3args {
        pub file: nfs_fh3,
        pub offset: offset3,
        pub count: count3,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct COMMIT3resok {
        pub file_wcc: wcc_data,
        pub verf: writeverf3,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct COMMIT3resfail { pub file_wcc: wcc_data }
}
nfs_res!(COMMIT3res, COMMIT3resok, COMMIT3resfail);

// ---------------------------------------------------------------------------------------------
// Dispatch: all procedures' arguments and results as two enums.

macro_rules! procedures {
    ($( $variant:ident = $num:ident, $name:literal, $args:ty, $res:ty; )*) => {
        /// The arguments of any NFSv3 procedure.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Args {
            Null,
            $( $variant($args), )*
        }

        impl Args {
            /// Decodes the arguments of procedure `procedure`. The whole of `args` must be
            /// consumed; payloads (WRITE data, names) are slices of `args`, not copies.
            pub fn decode(procedure: u32, args: Bytes) -> Result<Args, ArgsError> {
                let mut d = Decoder::new(args);
                let a = match procedure {
                    NFSPROC3_NULL => Args::Null,
                    $( $num => Args::$variant(d.decode()?), )*
                    p => return Err(ArgsError::ProcUnavail(p)),
                };
                d.finish()?;
                Ok(a)
            }

            /// The procedure number these arguments belong to.
            pub fn procedure(&self) -> u32 {
                match self {
                    Args::Null => NFSPROC3_NULL,
                    $( Args::$variant(_) => $num, )*
                }
            }
        }

        impl XdrEncode for Args {
            fn encode<B: BufMut>(&self, b: &mut B) {
                match self {
                    Args::Null => {}
                    $( Args::$variant(a) => a.encode(b), )*
                }
            }
            fn encoded_len(&self) -> usize {
                match self {
                    Args::Null => 0,
                    $( Args::$variant(a) => a.encoded_len(), )*
                }
            }
        }

        /// The results of any NFSv3 procedure.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Res {
            Null,
            $( $variant($res), )*
        }

        impl Res {
            /// Decodes the results of procedure `procedure` (client side); trailing bytes are an
            /// error.
            pub fn decode(procedure: u32, res: Bytes) -> Result<Res, ArgsError> {
                let mut d = Decoder::new(res);
                let r = match procedure {
                    NFSPROC3_NULL => Res::Null,
                    $( $num => Res::$variant(d.decode()?), )*
                    p => return Err(ArgsError::ProcUnavail(p)),
                };
                d.finish()?;
                Ok(r)
            }

            /// The procedure number these results belong to.
            pub fn procedure(&self) -> u32 {
                match self {
                    Res::Null => NFSPROC3_NULL,
                    $( Res::$variant(_) => $num, )*
                }
            }

            /// The status word (`NFS3_OK` for NULL, which has none).
            pub fn status(&self) -> nfsstat3 {
                match self {
                    Res::Null => nfsstat3::NFS3_OK,
                    $( Res::$variant(r) => r.status(), )*
                }
            }
        }

        impl XdrEncode for Res {
            fn encode<B: BufMut>(&self, b: &mut B) {
                match self {
                    Res::Null => {}
                    $( Res::$variant(r) => r.encode(b), )*
                }
            }
            fn encoded_len(&self) -> usize {
                match self {
                    Res::Null => 0,
                    $( Res::$variant(r) => r.encoded_len(), )*
                }
            }
        }

        /// The RFC name of procedure `procedure` ("GETATTR"), for logs and statistics.
        pub fn procedure_name(procedure: u32) -> Option<&'static str> {
            match procedure {
                NFSPROC3_NULL => Some("NULL"),
                $( $num => Some($name), )*
                _ => None,
            }
        }
    };
}

procedures! {
    Getattr = NFSPROC3_GETATTR, "GETATTR", GETATTR3args, GETATTR3res;
    Setattr = NFSPROC3_SETATTR, "SETATTR", SETATTR3args, SETATTR3res;
    Lookup = NFSPROC3_LOOKUP, "LOOKUP", LOOKUP3args, LOOKUP3res;
    Access = NFSPROC3_ACCESS, "ACCESS", ACCESS3args, ACCESS3res;
    Readlink = NFSPROC3_READLINK, "READLINK", READLINK3args, READLINK3res;
    Read = NFSPROC3_READ, "READ", READ3args, READ3res;
    Write = NFSPROC3_WRITE, "WRITE", WRITE3args, WRITE3res;
    Create = NFSPROC3_CREATE, "CREATE", CREATE3args, CREATE3res;
    Mkdir = NFSPROC3_MKDIR, "MKDIR", MKDIR3args, MKDIR3res;
    Symlink = NFSPROC3_SYMLINK, "SYMLINK", SYMLINK3args, SYMLINK3res;
    Mknod = NFSPROC3_MKNOD, "MKNOD", MKNOD3args, MKNOD3res;
    Remove = NFSPROC3_REMOVE, "REMOVE", REMOVE3args, REMOVE3res;
    Rmdir = NFSPROC3_RMDIR, "RMDIR", RMDIR3args, RMDIR3res;
    Rename = NFSPROC3_RENAME, "RENAME", RENAME3args, RENAME3res;
    Link = NFSPROC3_LINK, "LINK", LINK3args, LINK3res;
    Readdir = NFSPROC3_READDIR, "READDIR", READDIR3args, READDIR3res;
    Readdirplus = NFSPROC3_READDIRPLUS, "READDIRPLUS", READDIRPLUS3args, READDIRPLUS3res;
    Fsstat = NFSPROC3_FSSTAT, "FSSTAT", FSSTAT3args, FSSTAT3res;
    Fsinfo = NFSPROC3_FSINFO, "FSINFO", FSINFO3args, FSINFO3res;
    Pathconf = NFSPROC3_PATHCONF, "PATHCONF", PATHCONF3args, PATHCONF3res;
    Commit = NFSPROC3_COMMIT, "COMMIT", COMMIT3args, COMMIT3res;
}

#[cfg(test)]
mod tests;
