//! Wire types of NFS version 4.1 (RFC 8881; the XDR of RFC 5662, with the 4.2 additions of
//! RFC 7863 where they share numbers): the COMPOUND procedure, its operations' arguments and
//! results, file attributes, and the callback COMPOUND the server sends on the back channel.
//! Of NFSv4.2's optional operations, the sparse-file ones (RFC 7862 §15) and extended
//! attributes (RFC 8276) are modelled (their types are re-exported from the `v42` module).
//!
//! # Shape
//! A COMPOUND (RFC 8881 §16.2) is a tag, a minor version and a list of operations. A server reads
//! the header with [`CompoundHeader::decode`] and then one operation at a time with
//! [`ArgOp::decode`], executing each before reading the next: a compound that stops at its first
//! error never has the rest of its operations decoded, and an operation whose arguments do not
//! decode is answered NFS4ERR_BADXDR in its own place (§15.1.1.3). Operations this crate does not
//! model (pNFS layouts, SSV, 4.0-only operations...) decode as [`ArgOp::Unsupported`] without
//! reading their arguments: the server answers them NFS4ERR_NOTSUPP and stops there. An unknown
//! number is [`ArgOp::Illegal`] (OP_ILLEGAL, §18.51... NFS4ERR_OP_ILLEGAL).
//!
//! Results are [`ResOp`]: the operation number, its status and, when the union's arm carries
//! data, a [`ResBody`]. They encode into the reply and decode back for a client.
//!
//! # Bounds
//! Every variable-length item has a maximum ([`NFS4_FHSIZE`], [`NFS4_OPAQUE_LIMIT`],
//! [`COMPONENT_BYTES_MAX`], [`BITMAP_WORDS_MAX`], ...); a larger length word is refused before
//! anything is read. WRITE data is a slice of the received record, never a copy.
#![forbid(unsafe_code)]
#![allow(non_camel_case_types)]

pub mod attr;
pub mod cb;
mod ops;
mod res;
#[cfg(test)]
mod tests;
mod v42;

pub use ops::*;
pub use res::*;
use rnfs_xdr::{xdr_enum, xdr_struct};
pub use rnfs_xdr::{BufMut, Bytes, Decoder, Error as XdrError, Opaque, XdrDecode, XdrEncode};
pub use v42::*;

/// NFS's program number; version 4 shares it with version 3.
pub const NFS4_PROGRAM: u32 = 100_003;
/// The program version of every NFSv4 minor version.
pub const NFS_V4: u32 = 4;
/// Procedure 0, NULL.
pub const NFSPROC4_NULL: u32 = 0;
/// Procedure 1, COMPOUND.
pub const NFSPROC4_COMPOUND: u32 = 1;
/// The callback program's only version (RFC 8881 §20).
pub const NFS4_CALLBACK_VERSION: u32 = 1;
/// Callback procedure 1, CB_COMPOUND.
pub const CB_COMPOUND: u32 = 1;

/// Largest file handle (bytes).
pub const NFS4_FHSIZE: usize = 128;
/// Largest client owner, state owner or server owner id (bytes).
pub const NFS4_OPAQUE_LIMIT: usize = 1024;
/// Bytes of a session id.
pub const NFS4_SESSIONID_SIZE: usize = 16;
/// Bytes of a verifier.
pub const NFS4_VERIFIER_SIZE: usize = 8;
/// Bytes of a stateid's `other` field.
pub const NFS4_OTHER_SIZE: usize = 12;
/// Longest file name component accepted (bytes): NAME_MAX of the file systems served.
pub const COMPONENT_BYTES_MAX: usize = 255;
/// Longest symbolic link text (bytes): PATH_MAX.
pub const LINKTEXT_BYTES_MAX: usize = 4096;
/// Longest COMPOUND tag (bytes); clients send short ones.
pub const TAG_BYTES_MAX: usize = 1024;
/// Most words in a bitmap. Attributes go up to 82 (three words); a few more are tolerated (they
/// must be zero words or unsupported bits), a huge one is refused before it is read.
pub const BITMAP_WORDS_MAX: usize = 8;
/// Largest attribute list of one fattr4 (bytes): owner and owner_group strings and an ACL fit.
pub const ATTRLIST_BYTES_MAX: usize = 64 * 1024;
/// Largest WRITE payload decoded (bytes); the server's own limit is lower and checked too.
pub const WRITE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Most stateids in one TEST_STATEID.
pub const TEST_STATEIDS_MAX: usize = 1024;
/// Most entries of a `callback_sec_parms4` list, a security OID, a GSS handle (bytes).
pub const SEC_PARMS_MAX: usize = 16;
/// Largest opaque of the security and implementation fields (bytes).
pub const SEC_OPAQUE_BYTES_MAX: usize = 1024;

/// OPEN share access and deny bits (RFC 8881 §18.16.3).
pub const OPEN4_SHARE_ACCESS_READ: u32 = 1;
pub const OPEN4_SHARE_ACCESS_WRITE: u32 = 2;
pub const OPEN4_SHARE_ACCESS_BOTH: u32 = 3;
pub const OPEN4_SHARE_DENY_NONE: u32 = 0;
pub const OPEN4_SHARE_DENY_READ: u32 = 1;
pub const OPEN4_SHARE_DENY_WRITE: u32 = 2;
pub const OPEN4_SHARE_DENY_BOTH: u32 = 3;
pub const OPEN4_SHARE_ACCESS_WANT_DELEG_MASK: u32 = 0xFF00;
pub const OPEN4_SHARE_ACCESS_WANT_NO_DELEG: u32 = 0x0400;
pub const OPEN4_SHARE_ACCESS_WANT_CANCEL: u32 = 0x0500;
/// OPEN result flags.
pub const OPEN4_RESULT_CONFIRM: u32 = 0x2;
pub const OPEN4_RESULT_LOCKTYPE_POSIX: u32 = 0x4;
pub const OPEN4_RESULT_PRESERVE_UNLINKED: u32 = 0x8;

/// ACCESS bits (RFC 8881 §18.1).
pub const ACCESS4_READ: u32 = 0x01;
pub const ACCESS4_LOOKUP: u32 = 0x02;
pub const ACCESS4_MODIFY: u32 = 0x04;
pub const ACCESS4_EXTEND: u32 = 0x08;
pub const ACCESS4_DELETE: u32 = 0x10;
pub const ACCESS4_EXECUTE: u32 = 0x20;

/// EXCHANGE_ID flags (RFC 8881 §18.35).
pub const EXCHGID4_FLAG_SUPP_MOVED_REFER: u32 = 0x1;
pub const EXCHGID4_FLAG_SUPP_MOVED_MIGR: u32 = 0x2;
pub const EXCHGID4_FLAG_BIND_PRINC_STATEID: u32 = 0x100;
pub const EXCHGID4_FLAG_USE_NON_PNFS: u32 = 0x1_0000;
pub const EXCHGID4_FLAG_USE_PNFS_MDS: u32 = 0x2_0000;
pub const EXCHGID4_FLAG_USE_PNFS_DS: u32 = 0x4_0000;
pub const EXCHGID4_FLAG_MASK_PNFS: u32 = 0x7_0000;
pub const EXCHGID4_FLAG_UPD_CONFIRMED_REC_A: u32 = 0x4000_0000;
pub const EXCHGID4_FLAG_CONFIRMED_R: u32 = 0x8000_0000;
/// Every flag a client may send in `eia_flags`.
pub const EXCHGID4_FLAG_MASK_A: u32 = 0x4007_0103;

/// CREATE_SESSION flags (RFC 8881 §18.36).
pub const CREATE_SESSION4_FLAG_PERSIST: u32 = 0x1;
pub const CREATE_SESSION4_FLAG_CONN_BACK_CHAN: u32 = 0x2;
pub const CREATE_SESSION4_FLAG_CONN_RDMA: u32 = 0x4;

/// SEQUENCE status flags (RFC 8881 §18.46.3).
pub const SEQ4_STATUS_CB_PATH_DOWN: u32 = 0x1;
pub const SEQ4_STATUS_EXPIRED_ALL_STATE_REVOKED: u32 = 0x8;
pub const SEQ4_STATUS_EXPIRED_SOME_STATE_REVOKED: u32 = 0x10;
pub const SEQ4_STATUS_ADMIN_STATE_REVOKED: u32 = 0x20;
pub const SEQ4_STATUS_RESTART_RECLAIM_NEEDED: u32 = 0x100;
pub const SEQ4_STATUS_CB_PATH_DOWN_SESSION: u32 = 0x200;

/// Security flavors as SECINFO lists them.
pub const AUTH_NONE: u32 = 0;
pub const AUTH_SYS: u32 = 1;
pub const RPCSEC_GSS: u32 = 6;

xdr_enum! {
    /// The status of an operation or of a whole COMPOUND (RFC 8881 §15).
    pub enum nfsstat4 {
        NFS4_OK = 0,
        NFS4ERR_PERM = 1,
        NFS4ERR_NOENT = 2,
        NFS4ERR_IO = 5,
        NFS4ERR_NXIO = 6,
        NFS4ERR_ACCESS = 13,
        NFS4ERR_EXIST = 17,
        NFS4ERR_XDEV = 18,
        NFS4ERR_NOTDIR = 20,
        NFS4ERR_ISDIR = 21,
        NFS4ERR_INVAL = 22,
        NFS4ERR_FBIG = 27,
        NFS4ERR_NOSPC = 28,
        NFS4ERR_ROFS = 30,
        NFS4ERR_MLINK = 31,
        NFS4ERR_NAMETOOLONG = 63,
        NFS4ERR_NOTEMPTY = 66,
        NFS4ERR_DQUOT = 69,
        NFS4ERR_STALE = 70,
        NFS4ERR_BADHANDLE = 10001,
        NFS4ERR_BAD_COOKIE = 10003,
        NFS4ERR_NOTSUPP = 10004,
        NFS4ERR_TOOSMALL = 10005,
        NFS4ERR_SERVERFAULT = 10006,
        NFS4ERR_BADTYPE = 10007,
        NFS4ERR_DELAY = 10008,
        NFS4ERR_SAME = 10009,
        NFS4ERR_DENIED = 10010,
        NFS4ERR_EXPIRED = 10011,
        NFS4ERR_LOCKED = 10012,
        NFS4ERR_GRACE = 10013,
        NFS4ERR_FHEXPIRED = 10014,
        NFS4ERR_SHARE_DENIED = 10015,
        NFS4ERR_WRONGSEC = 10016,
        NFS4ERR_CLID_INUSE = 10017,
        NFS4ERR_RESOURCE = 10018,
        NFS4ERR_MOVED = 10019,
        NFS4ERR_NOFILEHANDLE = 10020,
        NFS4ERR_MINOR_VERS_MISMATCH = 10021,
        NFS4ERR_STALE_CLIENTID = 10022,
        NFS4ERR_STALE_STATEID = 10023,
        NFS4ERR_OLD_STATEID = 10024,
        NFS4ERR_BAD_STATEID = 10025,
        NFS4ERR_BAD_SEQID = 10026,
        NFS4ERR_NOT_SAME = 10027,
        NFS4ERR_LOCK_RANGE = 10028,
        NFS4ERR_SYMLINK = 10029,
        NFS4ERR_RESTOREFH = 10030,
        NFS4ERR_LEASE_MOVED = 10031,
        NFS4ERR_ATTRNOTSUPP = 10032,
        NFS4ERR_NO_GRACE = 10033,
        NFS4ERR_RECLAIM_BAD = 10034,
        NFS4ERR_RECLAIM_CONFLICT = 10035,
        NFS4ERR_BADXDR = 10036,
        NFS4ERR_LOCKS_HELD = 10037,
        NFS4ERR_OPENMODE = 10038,
        NFS4ERR_BADOWNER = 10039,
        NFS4ERR_BADCHAR = 10040,
        NFS4ERR_BADNAME = 10041,
        NFS4ERR_BAD_RANGE = 10042,
        NFS4ERR_LOCK_NOTSUPP = 10043,
        NFS4ERR_OP_ILLEGAL = 10044,
        NFS4ERR_DEADLOCK = 10045,
        NFS4ERR_FILE_OPEN = 10046,
        NFS4ERR_ADMIN_REVOKED = 10047,
        NFS4ERR_CB_PATH_DOWN = 10048,
        NFS4ERR_BADIOMODE = 10049,
        NFS4ERR_BADLAYOUT = 10050,
        NFS4ERR_BAD_SESSION_DIGEST = 10051,
        NFS4ERR_BADSESSION = 10052,
        NFS4ERR_BADSLOT = 10053,
        NFS4ERR_COMPLETE_ALREADY = 10054,
        NFS4ERR_CONN_NOT_BOUND_TO_SESSION = 10055,
        NFS4ERR_DELEG_ALREADY_WANTED = 10056,
        NFS4ERR_BACK_CHAN_BUSY = 10057,
        NFS4ERR_LAYOUTTRYLATER = 10058,
        NFS4ERR_LAYOUTUNAVAILABLE = 10059,
        NFS4ERR_NOMATCHING_LAYOUT = 10060,
        NFS4ERR_RECALLCONFLICT = 10061,
        NFS4ERR_UNKNOWN_LAYOUTTYPE = 10062,
        NFS4ERR_SEQ_MISORDERED = 10063,
        NFS4ERR_SEQUENCE_POS = 10064,
        NFS4ERR_REQ_TOO_BIG = 10065,
        NFS4ERR_REP_TOO_BIG = 10066,
        NFS4ERR_REP_TOO_BIG_TO_CACHE = 10067,
        NFS4ERR_RETRY_UNCACHED_REP = 10068,
        NFS4ERR_UNSAFE_COMPOUND = 10069,
        NFS4ERR_TOO_MANY_OPS = 10070,
        NFS4ERR_OP_NOT_IN_SESSION = 10071,
        NFS4ERR_HASH_ALG_UNSUPP = 10072,
        NFS4ERR_CLIENTID_BUSY = 10074,
        NFS4ERR_PNFS_IO_HOLE = 10075,
        NFS4ERR_SEQ_FALSE_RETRY = 10076,
        NFS4ERR_BAD_HIGH_SLOT = 10077,
        NFS4ERR_DEADSESSION = 10078,
        NFS4ERR_ENCR_ALG_UNSUPP = 10079,
        NFS4ERR_PNFS_NO_LAYOUT = 10080,
        NFS4ERR_NOT_ONLY_OP = 10081,
        NFS4ERR_WRONG_CRED = 10082,
        NFS4ERR_WRONG_TYPE = 10083,
        NFS4ERR_DIRDELEG_UNAVAIL = 10084,
        NFS4ERR_REJECT_DELEG = 10085,
        NFS4ERR_RETURNCONFLICT = 10086,
        NFS4ERR_DELEG_REVOKED = 10087,
        NFS4ERR_PARTNER_NOTSUPP = 10088,
        NFS4ERR_PARTNER_NO_AUTH = 10089,
        NFS4ERR_UNION_NOTSUPP = 10090,
        NFS4ERR_OFFLOAD_DENIED = 10091,
        NFS4ERR_WRONG_LFS = 10092,
        NFS4ERR_BADLABEL = 10093,
        NFS4ERR_OFFLOAD_NO_REQS = 10094,
        NFS4ERR_NOXATTR = 10095,
        NFS4ERR_XATTR2BIG = 10096,
    }
}

impl nfsstat4 {
    /// The status with wire value `v`, NFS4ERR_SERVERFAULT for one not declared (a server only
    /// produces declared ones; this is for numbers from elsewhere, such as a state crate).
    pub fn from_u32(v: u32) -> nfsstat4 {
        i32::try_from(v)
            .ok()
            .and_then(nfsstat4::from_i32)
            .unwrap_or(nfsstat4::NFS4ERR_SERVERFAULT)
    }
}

xdr_enum! {
    /// The type of a file (RFC 8881 §3.3.8).
    pub enum nfs_ftype4 {
        NF4REG = 1,
        NF4DIR = 2,
        NF4BLK = 3,
        NF4CHR = 4,
        NF4LNK = 5,
        NF4SOCK = 6,
        NF4FIFO = 7,
        NF4ATTRDIR = 8,
        NF4NAMEDATTR = 9,
    }
}

xdr_enum! {
    /// How a WRITE is to be made durable, and how it was.
    #[derive(Default)]
    pub enum stable_how4 {
        #[default]
        UNSTABLE4 = 0,
        DATA_SYNC4 = 1,
        FILE_SYNC4 = 2,
    }
}

xdr_enum! {
    /// The kind of a byte-range lock; the `W` forms ask the server to queue the client fairly.
    pub enum nfs_lock_type4 {
        READ_LT = 1,
        WRITE_LT = 2,
        READW_LT = 3,
        WRITEW_LT = 4,
    }
}

impl nfs_lock_type4 {
    /// A write (exclusive) lock.
    pub fn is_write(self) -> bool {
        matches!(self, nfs_lock_type4::WRITE_LT | nfs_lock_type4::WRITEW_LT)
    }
}

/// A file handle: at most [`NFS4_FHSIZE`] bytes.
pub type nfs_fh4 = Opaque<NFS4_FHSIZE>;
/// One file name component.
pub type component4 = Opaque<COMPONENT_BYTES_MAX>;
/// Symbolic link text.
pub type linktext4 = Opaque<LINKTEXT_BYTES_MAX>;
/// A verifier.
pub type verifier4 = [u8; NFS4_VERIFIER_SIZE];
/// A session id.
pub type sessionid4 = [u8; NFS4_SESSIONID_SIZE];
/// A client id.
pub type clientid4 = u64;
/// An owner or id string of the protocol's general limit.
pub type opaque_limit = Opaque<NFS4_OPAQUE_LIMIT>;

xdr_struct! {
    /// Seconds and nanoseconds since the epoch.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct nfstime4 {
        pub seconds: i64,
        pub nseconds: u32,
    }
}

xdr_struct! {
    /// A stateid (RFC 8881 §8.2): a generation number and the server's reference.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct stateid4 {
        pub seqid: u32,
        pub other: [u8; NFS4_OTHER_SIZE],
    }
}

impl stateid4 {
    /// The anonymous stateid (all zeros, §8.2.3).
    pub const ANONYMOUS: stateid4 = stateid4 {
        seqid: 0,
        other: [0; NFS4_OTHER_SIZE],
    };
    /// The READ bypass stateid (all ones).
    pub const BYPASS: stateid4 = stateid4 {
        seqid: u32::MAX,
        other: [0xff; NFS4_OTHER_SIZE],
    };
    /// The current stateid (seqid 1, other all zeros): the one the previous operation produced.
    pub const CURRENT: stateid4 = stateid4 {
        seqid: 1,
        other: [0; NFS4_OTHER_SIZE],
    };
    /// The invalid stateid (seqid all ones, other all zeros).
    pub const INVALID: stateid4 = stateid4 {
        seqid: u32::MAX,
        other: [0; NFS4_OTHER_SIZE],
    };
}

xdr_struct! {
    /// Directory change information around a modifying operation.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct change_info4 {
        pub atomic: bool,
        pub before: u64,
        pub after: u64,
    }
}

xdr_struct! {
    /// Major and minor device numbers.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct specdata4 {
        pub specdata1: u32,
        pub specdata2: u32,
    }
}

xdr_struct! {
    /// An owner of open or lock state: the client and an opaque the client chooses.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct state_owner4 {
        pub clientid: u64,
        pub owner: opaque_limit,
    }
}

/// An open owner.
pub type open_owner4 = state_owner4;
/// A lock owner.
pub type lock_owner4 = state_owner4;

xdr_struct! {
    /// A client's name and its instance (RFC 8881 §2.4).
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct client_owner4 {
        pub co_verifier: verifier4,
        pub co_ownerid: opaque_limit,
    }
}

xdr_struct! {
    /// The server's name for trunking (RFC 8881 §2.5).
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct server_owner4 {
        pub so_minor_id: u64,
        pub so_major_id: opaque_limit,
    }
}

xdr_struct! {
    /// An implementation's name and date.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct nfs_impl_id4 {
        pub nii_domain: opaque_limit,
        pub nii_name: opaque_limit,
        pub nii_date: nfstime4,
    }
}

xdr_struct! {
    /// A session channel's negotiated sizes (RFC 8881 §18.36).
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct channel_attrs4 {
        pub ca_headerpadsize: u32,
        pub ca_maxrequestsize: u32,
        pub ca_maxresponsesize: u32,
        pub ca_maxresponsesize_cached: u32,
        pub ca_maxoperations: u32,
        pub ca_maxrequests: u32,
        pub ca_rdma_ird: rnfs_xdr::Array<u32, 1>,
    }
}

/// A bitmap (`bitmap4`): bit *n* is bit `n % 32` of word `n / 32`. At most [`BITMAP_WORDS_MAX`]
/// words are decoded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bitmap(pub Vec<u32>);

impl Bitmap {
    /// A bitmap with the given bits set.
    pub fn from_bits(bits: &[u32]) -> Bitmap {
        let mut b = Bitmap::default();
        for &bit in bits {
            b.set(bit);
        }
        b
    }

    /// Whether bit `n` is set.
    pub fn contains(&self, n: u32) -> bool {
        let word = (n / 32) as usize;
        self.0.get(word).is_some_and(|w| w & (1 << (n % 32)) != 0)
    }

    /// Sets bit `n` (growing the bitmap, up to [`BITMAP_WORDS_MAX`] words; higher bits are
    /// ignored).
    pub fn set(&mut self, n: u32) {
        let word = (n / 32) as usize;
        if word >= BITMAP_WORDS_MAX {
            return;
        }
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        self.0[word] |= 1 << (n % 32);
    }

    /// The set bits, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().enumerate().flat_map(|(i, &w)| {
            (0..32u32)
                .filter(move |b| w & (1 << b) != 0)
                .map(move |b| i as u32 * 32 + b)
        })
    }

    /// The bits set in both.
    pub fn intersect(&self, other: &Bitmap) -> Bitmap {
        let words = self.0.iter().zip(&other.0).map(|(a, b)| a & b).collect();
        let mut b = Bitmap(words);
        b.trim();
        b
    }

    /// Whether no bit is set.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }

    /// Drops trailing zero words.
    pub fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }
}

impl XdrDecode for Bitmap {
    fn decode(d: &mut Decoder) -> rnfs_xdr::Result<Self> {
        let n = d.array_len(BITMAP_WORDS_MAX, 4)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(d.u32()?);
        }
        Ok(Bitmap(v))
    }
}

impl XdrEncode for Bitmap {
    fn encode<B: BufMut>(&self, b: &mut B) {
        b.put_u32(self.0.len() as u32);
        for w in &self.0 {
            b.put_u32(*w);
        }
    }
    fn encoded_len(&self) -> usize {
        4 + 4 * self.0.len()
    }
}

xdr_struct! {
    /// Attributes: which ones (`attrmask`) and their values in ascending order (`attr_vals`).
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct fattr4 {
        pub attrmask: Bitmap,
        pub attr_vals: Opaque<ATTRLIST_BYTES_MAX>,
    }
}

/// The head of a COMPOUND's arguments; the operations follow, read one at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompoundHeader {
    pub tag: Opaque<TAG_BYTES_MAX>,
    pub minorversion: u32,
    /// How many operations the array says follow (not yet checked against any limit).
    pub op_count: u32,
}

impl CompoundHeader {
    /// Reads the tag, minor version and operation count.
    pub fn decode(d: &mut Decoder) -> rnfs_xdr::Result<CompoundHeader> {
        Ok(CompoundHeader {
            tag: d.decode()?,
            minorversion: d.u32()?,
            op_count: d.u32()?,
        })
    }

    /// Writes the header (for a client).
    pub fn encode<B: BufMut>(&self, b: &mut B) {
        self.tag.encode(b);
        b.put_u32(self.minorversion);
        b.put_u32(self.op_count);
    }
}

/// A whole COMPOUND's arguments (for a client, and for tests): header and operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compound {
    pub tag: Opaque<TAG_BYTES_MAX>,
    pub minorversion: u32,
    pub ops: Vec<ArgOp>,
}

impl XdrEncode for Compound {
    fn encode<B: BufMut>(&self, b: &mut B) {
        self.tag.encode(b);
        b.put_u32(self.minorversion);
        b.put_u32(self.ops.len() as u32);
        for op in &self.ops {
            op.encode(b);
        }
    }
    fn encoded_len(&self) -> usize {
        self.tag.encoded_len() + 8 + self.ops.iter().map(|o| o.encoded_len()).sum::<usize>()
    }
}

/// A COMPOUND's results: the status of the last operation executed, the tag, the results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompoundRes {
    pub status: nfsstat4,
    pub tag: Opaque<TAG_BYTES_MAX>,
    pub results: Vec<ResOp>,
}

/// Most results a client decodes from one reply.
pub const RESULTS_MAX: usize = 1024;

impl XdrEncode for CompoundRes {
    fn encode<B: BufMut>(&self, b: &mut B) {
        self.status.encode(b);
        self.tag.encode(b);
        b.put_u32(self.results.len() as u32);
        for r in &self.results {
            r.encode(b);
        }
    }
    fn encoded_len(&self) -> usize {
        4 + self.tag.encoded_len() + 4 + self.results.iter().map(|r| r.encoded_len()).sum::<usize>()
    }
}

impl XdrDecode for CompoundRes {
    fn decode(d: &mut Decoder) -> rnfs_xdr::Result<Self> {
        let status = d.decode()?;
        let tag = d.decode()?;
        let n = d.array_len(RESULTS_MAX, 8)?;
        let mut results = Vec::with_capacity(n);
        for _ in 0..n {
            results.push(ResOp::decode(d)?);
        }
        Ok(CompoundRes {
            status,
            tag,
            results,
        })
    }
}
