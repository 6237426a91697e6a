//! The operations of a COMPOUND and their arguments (RFC 8881 §18; XDR of RFC 5662).

use rnfs_xdr::{xdr_enum, xdr_struct, Array, MinEncodedLen};

use crate::*;

/// Operation numbers (`nfs_opnum4`).
pub mod op {
    pub const OP_ACCESS: u32 = 3;
    pub const OP_CLOSE: u32 = 4;
    pub const OP_COMMIT: u32 = 5;
    pub const OP_CREATE: u32 = 6;
    pub const OP_DELEGPURGE: u32 = 7;
    pub const OP_DELEGRETURN: u32 = 8;
    pub const OP_GETATTR: u32 = 9;
    pub const OP_GETFH: u32 = 10;
    pub const OP_LINK: u32 = 11;
    pub const OP_LOCK: u32 = 12;
    pub const OP_LOCKT: u32 = 13;
    pub const OP_LOCKU: u32 = 14;
    pub const OP_LOOKUP: u32 = 15;
    pub const OP_LOOKUPP: u32 = 16;
    pub const OP_NVERIFY: u32 = 17;
    pub const OP_OPEN: u32 = 18;
    pub const OP_OPENATTR: u32 = 19;
    pub const OP_OPEN_CONFIRM: u32 = 20;
    pub const OP_OPEN_DOWNGRADE: u32 = 21;
    pub const OP_PUTFH: u32 = 22;
    pub const OP_PUTPUBFH: u32 = 23;
    pub const OP_PUTROOTFH: u32 = 24;
    pub const OP_READ: u32 = 25;
    pub const OP_READDIR: u32 = 26;
    pub const OP_READLINK: u32 = 27;
    pub const OP_REMOVE: u32 = 28;
    pub const OP_RENAME: u32 = 29;
    pub const OP_RENEW: u32 = 30;
    pub const OP_RESTOREFH: u32 = 31;
    pub const OP_SAVEFH: u32 = 32;
    pub const OP_SECINFO: u32 = 33;
    pub const OP_SETATTR: u32 = 34;
    pub const OP_SETCLIENTID: u32 = 35;
    pub const OP_SETCLIENTID_CONFIRM: u32 = 36;
    pub const OP_VERIFY: u32 = 37;
    pub const OP_WRITE: u32 = 38;
    pub const OP_RELEASE_LOCKOWNER: u32 = 39;
    pub const OP_BACKCHANNEL_CTL: u32 = 40;
    pub const OP_BIND_CONN_TO_SESSION: u32 = 41;
    pub const OP_EXCHANGE_ID: u32 = 42;
    pub const OP_CREATE_SESSION: u32 = 43;
    pub const OP_DESTROY_SESSION: u32 = 44;
    pub const OP_FREE_STATEID: u32 = 45;
    pub const OP_GET_DIR_DELEGATION: u32 = 46;
    pub const OP_SECINFO_NO_NAME: u32 = 52;
    pub const OP_SEQUENCE: u32 = 53;
    pub const OP_TEST_STATEID: u32 = 55;
    pub const OP_WANT_DELEGATION: u32 = 56;
    pub const OP_DESTROY_CLIENTID: u32 = 57;
    pub const OP_RECLAIM_COMPLETE: u32 = 58;
    pub const OP_ALLOCATE: u32 = 59;
    pub const OP_COPY: u32 = 60;
    pub const OP_DEALLOCATE: u32 = 62;
    pub const OP_OFFLOAD_CANCEL: u32 = 66;
    pub const OP_OFFLOAD_STATUS: u32 = 67;
    pub const OP_READ_PLUS: u32 = 68;
    pub const OP_SEEK: u32 = 69;
    pub const OP_CLONE: u32 = 71;
    pub const OP_GETXATTR: u32 = 72;
    pub const OP_SETXATTR: u32 = 73;
    pub const OP_LISTXATTRS: u32 = 74;
    pub const OP_REMOVEXATTR: u32 = 75;
    /// The highest operation number defined (NFSv4.2's REMOVEXATTR, RFC 8276).
    pub const OP_LAST: u32 = 75;
    pub const OP_ILLEGAL: u32 = 10044;
}
use op::*;

/// The name of operation `num` ("READ"), for statistics and logs.
pub fn op_name(num: u32) -> &'static str {
    const NAMES: [&str; 76] = [
        "0",
        "1",
        "2",
        "ACCESS",
        "CLOSE",
        "COMMIT",
        "CREATE",
        "DELEGPURGE",
        "DELEGRETURN",
        "GETATTR",
        "GETFH",
        "LINK",
        "LOCK",
        "LOCKT",
        "LOCKU",
        "LOOKUP",
        "LOOKUPP",
        "NVERIFY",
        "OPEN",
        "OPENATTR",
        "OPEN_CONFIRM",
        "OPEN_DOWNGRADE",
        "PUTFH",
        "PUTPUBFH",
        "PUTROOTFH",
        "READ",
        "READDIR",
        "READLINK",
        "REMOVE",
        "RENAME",
        "RENEW",
        "RESTOREFH",
        "SAVEFH",
        "SECINFO",
        "SETATTR",
        "SETCLIENTID",
        "SETCLIENTID_CONFIRM",
        "VERIFY",
        "WRITE",
        "RELEASE_LOCKOWNER",
        "BACKCHANNEL_CTL",
        "BIND_CONN_TO_SESSION",
        "EXCHANGE_ID",
        "CREATE_SESSION",
        "DESTROY_SESSION",
        "FREE_STATEID",
        "GET_DIR_DELEGATION",
        "GETDEVICEINFO",
        "GETDEVICELIST",
        "LAYOUTCOMMIT",
        "LAYOUTGET",
        "LAYOUTRETURN",
        "SECINFO_NO_NAME",
        "SEQUENCE",
        "SET_SSV",
        "TEST_STATEID",
        "WANT_DELEGATION",
        "DESTROY_CLIENTID",
        "RECLAIM_COMPLETE",
        "ALLOCATE",
        "COPY",
        "COPY_NOTIFY",
        "DEALLOCATE",
        "IO_ADVISE",
        "LAYOUTERROR",
        "LAYOUTSTATS",
        "OFFLOAD_CANCEL",
        "OFFLOAD_STATUS",
        "READ_PLUS",
        "SEEK",
        "WRITE_SAME",
        "CLONE",
        "GETXATTR",
        "SETXATTR",
        "LISTXATTRS",
        "REMOVEXATTR",
    ];
    match num {
        OP_ILLEGAL => "ILLEGAL",
        n => NAMES.get(n as usize).copied().unwrap_or("ILLEGAL"),
    }
}

impl MinEncodedLen for stateid4 {
    const MIN_ENCODED_LEN: usize = 16;
}

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CLOSE4args { pub seqid: u32, pub open_stateid: stateid4 }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct COMMIT4args { pub offset: u64, pub count: u32 }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CREATE4args { pub objtype: createtype4, pub objname: component4, pub createattrs: fattr4 }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct LOCK4args {
        pub locktype: nfs_lock_type4,
        pub reclaim: bool,
        pub offset: u64,
        pub length: u64,
        pub locker: locker4,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct LOCKT4args {
        pub locktype: nfs_lock_type4,
        pub offset: u64,
        pub length: u64,
        pub owner: lock_owner4,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct LOCKU4args {
        pub locktype: nfs_lock_type4,
        pub seqid: u32,
        pub lock_stateid: stateid4,
        pub offset: u64,
        pub length: u64,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct open_to_lock_owner4 {
        pub open_seqid: u32,
        pub open_stateid: stateid4,
        pub lock_seqid: u32,
        pub lock_owner: lock_owner4,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct exist_lock_owner4 { pub lock_stateid: stateid4, pub lock_seqid: u32 }
}

/// Whose lock a LOCK takes: a new lock owner (from an open) or an existing lock stateid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum locker4 {
    New(open_to_lock_owner4),
    Existing(exist_lock_owner4),
}

impl XdrDecode for locker4 {
    fn decode(d: &mut Decoder) -> rnfs_xdr::Result<Self> {
        Ok(if d.bool()? {
            locker4::New(d.decode()?)
        } else {
            locker4::Existing(d.decode()?)
        })
    }
}
impl XdrEncode for locker4 {
    fn encode<B: BufMut>(&self, b: &mut B) {
        match self {
            locker4::New(o) => {
                true.encode(b);
                o.encode(b)
            }
            locker4::Existing(e) => {
                false.encode(b);
                e.encode(b)
            }
        }
    }
    fn encoded_len(&self) -> usize {
        4 + match self {
            locker4::New(o) => o.encoded_len(),
            locker4::Existing(e) => e.encoded_len(),
        }
    }
}

/// What CREATE makes (`createtype4`): links carry their text, devices their numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum createtype4 {
    Link(linktext4),
    Block(specdata4),
    Char(specdata4),
    Socket,
    Fifo,
    Dir,
    /// Any other type (regular files are made by OPEN): NFS4ERR_BADTYPE.
    Other(nfs_ftype4),
}

impl XdrDecode for createtype4 {
    fn decode(d: &mut Decoder) -> rnfs_xdr::Result<Self> {
        use nfs_ftype4::*;
        Ok(match d.decode::<nfs_ftype4>()? {
            NF4LNK => createtype4::Link(d.decode()?),
            NF4BLK => createtype4::Block(d.decode()?),
            NF4CHR => createtype4::Char(d.decode()?),
            NF4SOCK => createtype4::Socket,
            NF4FIFO => createtype4::Fifo,
            NF4DIR => createtype4::Dir,
            t => createtype4::Other(t),
        })
    }
}
impl XdrEncode for createtype4 {
    fn encode<B: BufMut>(&self, b: &mut B) {
        use nfs_ftype4::*;
        match self {
            createtype4::Link(t) => {
                NF4LNK.encode(b);
                t.encode(b)
            }
            createtype4::Block(s) => {
                NF4BLK.encode(b);
                s.encode(b)
            }
            createtype4::Char(s) => {
                NF4CHR.encode(b);
                s.encode(b)
            }
            createtype4::Socket => NF4SOCK.encode(b),
            createtype4::Fifo => NF4FIFO.encode(b),
            createtype4::Dir => NF4DIR.encode(b),
            createtype4::Other(t) => t.encode(b),
        }
    }
    fn encoded_len(&self) -> usize {
        4 + match self {
            createtype4::Link(t) => t.encoded_len(),
            createtype4::Block(_) | createtype4::Char(_) => 8,
            _ => 0,
        }
    }
}

xdr_enum! {
    /// How OPEN creates (`createmode4`).
    pub enum createmode4 { UNCHECKED4 = 0, GUARDED4 = 1, EXCLUSIVE4 = 2, EXCLUSIVE4_1 = 3 }
}

/// How OPEN creates a file (`createhow4`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum createhow4 {
    Unchecked(fattr4),
    Guarded(fattr4),
    /// The NFSv4.0 form; NFSv4.1 servers must accept it too.
    Exclusive(verifier4),
    Exclusive41(verifier4, fattr4),
}

impl XdrDecode for createhow4 {
    fn decode(d: &mut Decoder) -> rnfs_xdr::Result<Self> {
        use createmode4::*;
        Ok(match d.decode::<createmode4>()? {
            UNCHECKED4 => createhow4::Unchecked(d.decode()?),
            GUARDED4 => createhow4::Guarded(d.decode()?),
            EXCLUSIVE4 => createhow4::Exclusive(d.decode()?),
            EXCLUSIVE4_1 => createhow4::Exclusive41(d.decode()?, d.decode()?),
        })
    }
}
impl XdrEncode for createhow4 {
    fn encode<B: BufMut>(&self, b: &mut B) {
        use createmode4::*;
        match self {
            createhow4::Unchecked(a) => {
                UNCHECKED4.encode(b);
                a.encode(b)
            }
            createhow4::Guarded(a) => {
                GUARDED4.encode(b);
                a.encode(b)
            }
            createhow4::Exclusive(v) => {
                EXCLUSIVE4.encode(b);
                v.encode(b)
            }
            createhow4::Exclusive41(v, a) => {
                EXCLUSIVE4_1.encode(b);
                v.encode(b);
                a.encode(b)
            }
        }
    }
    fn encoded_len(&self) -> usize {
        4 + match self {
            createhow4::Unchecked(a) | createhow4::Guarded(a) => a.encoded_len(),
            createhow4::Exclusive(_) => 8,
            createhow4::Exclusive41(_, a) => 8 + a.encoded_len(),
        }
    }
}

xdr_enum! {
    /// Delegation types (`open_delegation_type4`).
    pub enum open_delegation_type4 {
        OPEN_DELEGATE_NONE = 0,
        OPEN_DELEGATE_READ = 1,
        OPEN_DELEGATE_WRITE = 2,
        OPEN_DELEGATE_NONE_EXT = 3,
        OPEN_DELEGATE_READ_ATTRS_DELEG = 4,
        OPEN_DELEGATE_WRITE_ATTRS_DELEG = 5,
    }
}

/// Which file OPEN opens (`open_claim4`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum open_claim4 {
    /// A name in the current directory.
    Null(component4),
    /// A reclaim after a server restart: the current file handle is the file.
    Previous(open_delegation_type4),
    DelegateCur(stateid4, component4),
    DelegatePrev(component4),
    /// The current file handle is the file.
    Fh,
    DelegPrevFh,
    DelegCurFh(stateid4),
}

impl XdrDecode for open_claim4 {
    fn decode(d: &mut Decoder) -> rnfs_xdr::Result<Self> {
        Ok(match d.u32()? {
            0 => open_claim4::Null(d.decode()?),
            1 => open_claim4::Previous(d.decode()?),
            2 => open_claim4::DelegateCur(d.decode()?, d.decode()?),
            3 => open_claim4::DelegatePrev(d.decode()?),
            4 => open_claim4::Fh,
            5 => open_claim4::DelegCurFh(d.decode()?),
            6 => open_claim4::DelegPrevFh,
            v => {
                return Err(XdrError::InvalidEnum {
                    type_name: "open_claim_type4",
                    value: v.into(),
                })
            }
        })
    }
}
impl XdrEncode for open_claim4 {
    fn encode<B: BufMut>(&self, b: &mut B) {
        match self {
            open_claim4::Null(f) => {
                b.put_u32(0);
                f.encode(b)
            }
            open_claim4::Previous(t) => {
                b.put_u32(1);
                t.encode(b)
            }
            open_claim4::DelegateCur(s, f) => {
                b.put_u32(2);
                s.encode(b);
                f.encode(b)
            }
            open_claim4::DelegatePrev(f) => {
                b.put_u32(3);
                f.encode(b)
            }
            open_claim4::Fh => b.put_u32(4),
            open_claim4::DelegCurFh(s) => {
                b.put_u32(5);
                s.encode(b)
            }
            open_claim4::DelegPrevFh => b.put_u32(6),
        }
    }
    fn encoded_len(&self) -> usize {
        4 + match self {
            open_claim4::Null(f) | open_claim4::DelegatePrev(f) => f.encoded_len(),
            open_claim4::Previous(_) => 4,
            open_claim4::DelegateCur(_, f) => 16 + f.encoded_len(),
            open_claim4::DelegCurFh(_) => 16,
            open_claim4::Fh | open_claim4::DelegPrevFh => 0,
        }
    }
}

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct OPEN4args {
        pub seqid: u32,
        pub share_access: u32,
        pub share_deny: u32,
        pub owner: open_owner4,
        /// `openflag4`: `None` is OPEN4_NOCREATE.
        pub openhow: OpenHow,
        pub claim: open_claim4,
    }
}

/// `openflag4`: whether OPEN creates, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenHow(pub Option<createhow4>);

impl XdrDecode for OpenHow {
    fn decode(d: &mut Decoder) -> rnfs_xdr::Result<Self> {
        Ok(OpenHow(match d.u32()? {
            0 => None,
            1 => Some(d.decode()?),
            v => {
                return Err(XdrError::InvalidEnum {
                    type_name: "opentype4",
                    value: v.into(),
                })
            }
        }))
    }
}
impl XdrEncode for OpenHow {
    fn encode<B: BufMut>(&self, b: &mut B) {
        // Same wire form as an XDR optional: 0, or 1 and the body.
        self.0.encode(b)
    }
    fn encoded_len(&self) -> usize {
        self.0.encoded_len()
    }
}

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct OPEN_DOWNGRADE4args {
        pub open_stateid: stateid4,
        pub seqid: u32,
        pub share_access: u32,
        pub share_deny: u32,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct READ4args { pub stateid: stateid4, pub offset: u64, pub count: u32 }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct READDIR4args {
        pub cookie: u64,
        pub cookieverf: verifier4,
        pub dircount: u32,
        pub maxcount: u32,
        pub attr_request: Bitmap,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct RENAME4args { pub oldname: component4, pub newname: component4 }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct SETATTR4args { pub stateid: stateid4, pub obj_attributes: fattr4 }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct WRITE4args {
        pub stateid: stateid4,
        pub offset: u64,
        pub stable: stable_how4,
        pub data: Opaque<WRITE_BYTES_MAX>,
    }
}

xdr_struct! {
    /// AUTH_SYS parameters (RFC 5531 appendix A), as the back channel's security.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct authsys_parms {
        pub stamp: u32,
        pub machinename: Opaque<255>,
        pub uid: u32,
        pub gid: u32,
        pub gids: Array<u32, 16>,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct gss_cb_handles4 {
        pub gcbp_service: u32,
        pub gcbp_handle_from_server: Opaque<SEC_OPAQUE_BYTES_MAX>,
        pub gcbp_handle_from_client: Opaque<SEC_OPAQUE_BYTES_MAX>,
    }
}

/// The security the server uses for back-channel calls (`callback_sec_parms4`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum callback_sec_parms4 {
    None,
    Sys(authsys_parms),
    Gss(gss_cb_handles4),
}

impl MinEncodedLen for callback_sec_parms4 {
    const MIN_ENCODED_LEN: usize = 4;
}

impl XdrDecode for callback_sec_parms4 {
    fn decode(d: &mut Decoder) -> rnfs_xdr::Result<Self> {
        Ok(match d.u32()? {
            AUTH_NONE => callback_sec_parms4::None,
            AUTH_SYS => callback_sec_parms4::Sys(d.decode()?),
            RPCSEC_GSS => callback_sec_parms4::Gss(d.decode()?),
            v => {
                return Err(XdrError::InvalidEnum {
                    type_name: "callback_sec_parms4",
                    value: v.into(),
                })
            }
        })
    }
}
impl XdrEncode for callback_sec_parms4 {
    fn encode<B: BufMut>(&self, b: &mut B) {
        match self {
            callback_sec_parms4::None => b.put_u32(AUTH_NONE),
            callback_sec_parms4::Sys(p) => {
                b.put_u32(AUTH_SYS);
                p.encode(b)
            }
            callback_sec_parms4::Gss(g) => {
                b.put_u32(RPCSEC_GSS);
                g.encode(b)
            }
        }
    }
    fn encoded_len(&self) -> usize {
        4 + match self {
            callback_sec_parms4::None => 0,
            callback_sec_parms4::Sys(p) => p.encoded_len(),
            callback_sec_parms4::Gss(g) => g.encoded_len(),
        }
    }
}

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct BACKCHANNEL_CTL4args {
        pub bca_cb_program: u32,
        pub bca_sec_parms: Array<callback_sec_parms4, SEC_PARMS_MAX>,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct BIND_CONN_TO_SESSION4args {
        pub bctsa_sessid: sessionid4,
        /// `channel_dir_from_client4`: 1 fore, 2 back, 3 fore or both, 7 back or both.
        pub bctsa_dir: u32,
        pub bctsa_use_conn_in_rdma_mode: bool,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct state_protect_ops4 { pub spo_must_enforce: Bitmap, pub spo_must_allow: Bitmap }
}

/// One security OID of SSV's algorithm lists.
pub type sec_oid4 = Opaque<SEC_OPAQUE_BYTES_MAX>;

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ssv_sp_parms4 {
        pub ssp_ops: state_protect_ops4,
        pub ssp_hash_algs: Array<sec_oid4, SEC_PARMS_MAX>,
        pub ssp_encr_algs: Array<sec_oid4, SEC_PARMS_MAX>,
        pub ssp_window: u32,
        pub ssp_num_gss_handles: u32,
    }
}

/// How the client wants its state protected (`state_protect4_a`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum state_protect4_a {
    None,
    MachCred(state_protect_ops4),
    Ssv(ssv_sp_parms4),
}

impl XdrDecode for state_protect4_a {
    fn decode(d: &mut Decoder) -> rnfs_xdr::Result<Self> {
        Ok(match d.u32()? {
            0 => state_protect4_a::None,
            1 => state_protect4_a::MachCred(d.decode()?),
            2 => state_protect4_a::Ssv(d.decode()?),
            v => {
                return Err(XdrError::InvalidEnum {
                    type_name: "state_protect_how4",
                    value: v.into(),
                })
            }
        })
    }
}
impl XdrEncode for state_protect4_a {
    fn encode<B: BufMut>(&self, b: &mut B) {
        match self {
            state_protect4_a::None => b.put_u32(0),
            state_protect4_a::MachCred(o) => {
                b.put_u32(1);
                o.encode(b)
            }
            state_protect4_a::Ssv(s) => {
                b.put_u32(2);
                s.encode(b)
            }
        }
    }
    fn encoded_len(&self) -> usize {
        4 + match self {
            state_protect4_a::None => 0,
            state_protect4_a::MachCred(o) => o.encoded_len(),
            state_protect4_a::Ssv(s) => s.encoded_len(),
        }
    }
}

impl MinEncodedLen for nfs_impl_id4 {
    const MIN_ENCODED_LEN: usize = 20;
}

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct EXCHANGE_ID4args {
        pub eia_clientowner: client_owner4,
        pub eia_flags: u32,
        pub eia_state_protect: state_protect4_a,
        pub eia_client_impl_id: Array<nfs_impl_id4, 1>,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CREATE_SESSION4args {
        pub csa_clientid: u64,
        pub csa_sequence: u32,
        pub csa_flags: u32,
        pub csa_fore_chan_attrs: channel_attrs4,
        pub csa_back_chan_attrs: channel_attrs4,
        pub csa_cb_program: u32,
        pub csa_sec_parms: Array<callback_sec_parms4, SEC_PARMS_MAX>,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct SEQUENCE4args {
        pub sa_sessionid: sessionid4,
        pub sa_sequenceid: u32,
        pub sa_slotid: u32,
        pub sa_highest_slotid: u32,
        pub sa_cachethis: bool,
    }
}

/// One COMPOUND operation with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgOp {
    Access(u32),
    Close(CLOSE4args),
    Commit(COMMIT4args),
    Create(CREATE4args),
    DelegPurge(clientid4),
    DelegReturn(stateid4),
    GetAttr(Bitmap),
    GetFh,
    Link(component4),
    Lock(LOCK4args),
    LockT(LOCKT4args),
    LockU(LOCKU4args),
    Lookup(component4),
    LookupP,
    NVerify(fattr4),
    Open(OPEN4args),
    OpenAttr(bool),
    OpenDowngrade(OPEN_DOWNGRADE4args),
    PutFh(nfs_fh4),
    PutPubFh,
    PutRootFh,
    Read(READ4args),
    ReadDir(READDIR4args),
    ReadLink,
    Remove(component4),
    Rename(RENAME4args),
    RestoreFh,
    SaveFh,
    SecInfo(component4),
    SetAttr(SETATTR4args),
    Verify(fattr4),
    Write(WRITE4args),
    BackchannelCtl(BACKCHANNEL_CTL4args),
    BindConnToSession(BIND_CONN_TO_SESSION4args),
    ExchangeId(EXCHANGE_ID4args),
    CreateSession(CREATE_SESSION4args),
    DestroySession(sessionid4),
    FreeStateid(stateid4),
    /// SECINFO_NO_NAME: 0 the current file handle, 1 its parent.
    SecInfoNoName(u32),
    Sequence(SEQUENCE4args),
    TestStateid(Array<stateid4, TEST_STATEIDS_MAX>),
    DestroyClientid(clientid4),
    ReclaimComplete(bool),
    Allocate(ALLOCATE4args),
    Copy(COPY4args),
    Deallocate(DEALLOCATE4args),
    OffloadCancel(stateid4),
    OffloadStatus(stateid4),
    ReadPlus(READ_PLUS4args),
    Seek(SEEK4args),
    Clone(CLONE4args),
    GetXattr(xattrkey4),
    SetXattr(SETXATTR4args),
    ListXattrs(LISTXATTRS4args),
    RemoveXattr(xattrkey4),
    /// A defined operation this crate does not model (its arguments are not read): the server
    /// answers NFS4ERR_NOTSUPP. 4.0-only operations are here too.
    Unsupported(u32),
    /// An undefined operation number: OP_ILLEGAL, NFS4ERR_OP_ILLEGAL.
    Illegal(u32),
}

impl ArgOp {
    /// Reads one operation. `Unsupported` and `Illegal` leave their arguments unread (the
    /// compound stops there).
    pub fn decode(d: &mut Decoder) -> rnfs_xdr::Result<ArgOp> {
        let num = d.u32()?;
        Self::decode_op(num, d)
    }

    /// Reads the arguments of operation `num` (its number already read).
    pub fn decode_op(num: u32, d: &mut Decoder) -> rnfs_xdr::Result<ArgOp> {
        Ok(match num {
            OP_ACCESS => ArgOp::Access(d.u32()?),
            OP_CLOSE => ArgOp::Close(d.decode()?),
            OP_COMMIT => ArgOp::Commit(d.decode()?),
            OP_CREATE => ArgOp::Create(d.decode()?),
            OP_DELEGPURGE => ArgOp::DelegPurge(d.u64()?),
            OP_DELEGRETURN => ArgOp::DelegReturn(d.decode()?),
            OP_GETATTR => ArgOp::GetAttr(d.decode()?),
            OP_GETFH => ArgOp::GetFh,
            OP_LINK => ArgOp::Link(d.decode()?),
            OP_LOCK => ArgOp::Lock(d.decode()?),
            OP_LOCKT => ArgOp::LockT(d.decode()?),
            OP_LOCKU => ArgOp::LockU(d.decode()?),
            OP_LOOKUP => ArgOp::Lookup(d.decode()?),
            OP_LOOKUPP => ArgOp::LookupP,
            OP_NVERIFY => ArgOp::NVerify(d.decode()?),
            OP_OPEN => ArgOp::Open(d.decode()?),
            OP_OPENATTR => ArgOp::OpenAttr(d.bool()?),
            OP_OPEN_DOWNGRADE => ArgOp::OpenDowngrade(d.decode()?),
            OP_PUTFH => ArgOp::PutFh(d.decode()?),
            OP_PUTPUBFH => ArgOp::PutPubFh,
            OP_PUTROOTFH => ArgOp::PutRootFh,
            OP_READ => ArgOp::Read(d.decode()?),
            OP_READDIR => ArgOp::ReadDir(d.decode()?),
            OP_READLINK => ArgOp::ReadLink,
            OP_REMOVE => ArgOp::Remove(d.decode()?),
            OP_RENAME => ArgOp::Rename(d.decode()?),
            OP_RESTOREFH => ArgOp::RestoreFh,
            OP_SAVEFH => ArgOp::SaveFh,
            OP_SECINFO => ArgOp::SecInfo(d.decode()?),
            OP_SETATTR => ArgOp::SetAttr(d.decode()?),
            OP_VERIFY => ArgOp::Verify(d.decode()?),
            OP_WRITE => ArgOp::Write(d.decode()?),
            OP_BACKCHANNEL_CTL => ArgOp::BackchannelCtl(d.decode()?),
            OP_BIND_CONN_TO_SESSION => ArgOp::BindConnToSession(d.decode()?),
            OP_EXCHANGE_ID => ArgOp::ExchangeId(d.decode()?),
            OP_CREATE_SESSION => ArgOp::CreateSession(d.decode()?),
            OP_DESTROY_SESSION => ArgOp::DestroySession(d.decode()?),
            OP_FREE_STATEID => ArgOp::FreeStateid(d.decode()?),
            OP_SECINFO_NO_NAME => ArgOp::SecInfoNoName(d.u32()?),
            OP_SEQUENCE => ArgOp::Sequence(d.decode()?),
            OP_TEST_STATEID => ArgOp::TestStateid(d.decode()?),
            OP_DESTROY_CLIENTID => ArgOp::DestroyClientid(d.u64()?),
            OP_RECLAIM_COMPLETE => ArgOp::ReclaimComplete(d.bool()?),
            OP_ALLOCATE => ArgOp::Allocate(d.decode()?),
            OP_COPY => ArgOp::Copy(d.decode()?),
            OP_DEALLOCATE => ArgOp::Deallocate(d.decode()?),
            OP_OFFLOAD_CANCEL => ArgOp::OffloadCancel(d.decode()?),
            OP_OFFLOAD_STATUS => ArgOp::OffloadStatus(d.decode()?),
            OP_READ_PLUS => ArgOp::ReadPlus(d.decode()?),
            OP_SEEK => ArgOp::Seek(d.decode()?),
            OP_CLONE => ArgOp::Clone(d.decode()?),
            OP_GETXATTR => ArgOp::GetXattr(d.decode()?),
            OP_SETXATTR => ArgOp::SetXattr(d.decode()?),
            OP_LISTXATTRS => ArgOp::ListXattrs(d.decode()?),
            OP_REMOVEXATTR => ArgOp::RemoveXattr(d.decode()?),
            n if (OP_ACCESS..=OP_LAST).contains(&n) => ArgOp::Unsupported(n),
            n => ArgOp::Illegal(n),
        })
    }

    /// The operation's number (OP_ILLEGAL for an illegal one, as its result is numbered).
    pub fn num(&self) -> u32 {
        match self {
            ArgOp::Access(_) => OP_ACCESS,
            ArgOp::Close(_) => OP_CLOSE,
            ArgOp::Commit(_) => OP_COMMIT,
            ArgOp::Create(_) => OP_CREATE,
            ArgOp::DelegPurge(_) => OP_DELEGPURGE,
            ArgOp::DelegReturn(_) => OP_DELEGRETURN,
            ArgOp::GetAttr(_) => OP_GETATTR,
            ArgOp::GetFh => OP_GETFH,
            ArgOp::Link(_) => OP_LINK,
            ArgOp::Lock(_) => OP_LOCK,
            ArgOp::LockT(_) => OP_LOCKT,
            ArgOp::LockU(_) => OP_LOCKU,
            ArgOp::Lookup(_) => OP_LOOKUP,
            ArgOp::LookupP => OP_LOOKUPP,
            ArgOp::NVerify(_) => OP_NVERIFY,
            ArgOp::Open(_) => OP_OPEN,
            ArgOp::OpenAttr(_) => OP_OPENATTR,
            ArgOp::OpenDowngrade(_) => OP_OPEN_DOWNGRADE,
            ArgOp::PutFh(_) => OP_PUTFH,
            ArgOp::PutPubFh => OP_PUTPUBFH,
            ArgOp::PutRootFh => OP_PUTROOTFH,
            ArgOp::Read(_) => OP_READ,
            ArgOp::ReadDir(_) => OP_READDIR,
            ArgOp::ReadLink => OP_READLINK,
            ArgOp::Remove(_) => OP_REMOVE,
            ArgOp::Rename(_) => OP_RENAME,
            ArgOp::RestoreFh => OP_RESTOREFH,
            ArgOp::SaveFh => OP_SAVEFH,
            ArgOp::SecInfo(_) => OP_SECINFO,
            ArgOp::SetAttr(_) => OP_SETATTR,
            ArgOp::Verify(_) => OP_VERIFY,
            ArgOp::Write(_) => OP_WRITE,
            ArgOp::BackchannelCtl(_) => OP_BACKCHANNEL_CTL,
            ArgOp::BindConnToSession(_) => OP_BIND_CONN_TO_SESSION,
            ArgOp::ExchangeId(_) => OP_EXCHANGE_ID,
            ArgOp::CreateSession(_) => OP_CREATE_SESSION,
            ArgOp::DestroySession(_) => OP_DESTROY_SESSION,
            ArgOp::FreeStateid(_) => OP_FREE_STATEID,
            ArgOp::SecInfoNoName(_) => OP_SECINFO_NO_NAME,
            ArgOp::Sequence(_) => OP_SEQUENCE,
            ArgOp::TestStateid(_) => OP_TEST_STATEID,
            ArgOp::DestroyClientid(_) => OP_DESTROY_CLIENTID,
            ArgOp::ReclaimComplete(_) => OP_RECLAIM_COMPLETE,
            ArgOp::Allocate(_) => OP_ALLOCATE,
            ArgOp::Copy(_) => OP_COPY,
            ArgOp::Deallocate(_) => OP_DEALLOCATE,
            ArgOp::OffloadCancel(_) => OP_OFFLOAD_CANCEL,
            ArgOp::OffloadStatus(_) => OP_OFFLOAD_STATUS,
            ArgOp::ReadPlus(_) => OP_READ_PLUS,
            ArgOp::Seek(_) => OP_SEEK,
            ArgOp::Clone(_) => OP_CLONE,
            ArgOp::GetXattr(_) => OP_GETXATTR,
            ArgOp::SetXattr(_) => OP_SETXATTR,
            ArgOp::ListXattrs(_) => OP_LISTXATTRS,
            ArgOp::RemoveXattr(_) => OP_REMOVEXATTR,
            ArgOp::Unsupported(n) => *n,
            ArgOp::Illegal(_) => OP_ILLEGAL,
        }
    }

    /// Encodes the arguments after the number; `None` for the unit-like operations.
    fn body(&self) -> Option<&dyn ErasedEncode> {
        Some(match self {
            ArgOp::Access(a) => a,
            ArgOp::Close(a) => a,
            ArgOp::Commit(a) => a,
            ArgOp::Create(a) => a,
            ArgOp::DelegPurge(a) => a,
            ArgOp::DelegReturn(a) => a,
            ArgOp::GetAttr(a) => a,
            ArgOp::Link(a) => a,
            ArgOp::Lock(a) => a,
            ArgOp::LockT(a) => a,
            ArgOp::LockU(a) => a,
            ArgOp::Lookup(a) => a,
            ArgOp::NVerify(a) => a,
            ArgOp::Open(a) => a,
            ArgOp::OpenAttr(a) => a,
            ArgOp::OpenDowngrade(a) => a,
            ArgOp::PutFh(a) => a,
            ArgOp::Read(a) => a,
            ArgOp::ReadDir(a) => a,
            ArgOp::Remove(a) => a,
            ArgOp::Rename(a) => a,
            ArgOp::SecInfo(a) => a,
            ArgOp::SetAttr(a) => a,
            ArgOp::Verify(a) => a,
            ArgOp::Write(a) => a,
            ArgOp::BackchannelCtl(a) => a,
            ArgOp::BindConnToSession(a) => a,
            ArgOp::ExchangeId(a) => a,
            ArgOp::CreateSession(a) => a,
            ArgOp::DestroySession(a) => a,
            ArgOp::FreeStateid(a) => a,
            ArgOp::SecInfoNoName(a) => a,
            ArgOp::Sequence(a) => a,
            ArgOp::TestStateid(a) => a,
            ArgOp::DestroyClientid(a) => a,
            ArgOp::ReclaimComplete(a) => a,
            ArgOp::Allocate(a) | ArgOp::Deallocate(a) => a,
            ArgOp::Copy(a) => a,
            ArgOp::OffloadCancel(a) | ArgOp::OffloadStatus(a) => a,
            ArgOp::Clone(a) => a,
            ArgOp::ReadPlus(a) => a,
            ArgOp::Seek(a) => a,
            ArgOp::GetXattr(a) | ArgOp::RemoveXattr(a) => a,
            ArgOp::SetXattr(a) => a,
            ArgOp::ListXattrs(a) => a,
            ArgOp::GetFh
            | ArgOp::LookupP
            | ArgOp::PutPubFh
            | ArgOp::PutRootFh
            | ArgOp::ReadLink
            | ArgOp::RestoreFh
            | ArgOp::SaveFh
            | ArgOp::Unsupported(_)
            | ArgOp::Illegal(_) => return None,
        })
    }
}

impl XdrEncode for ArgOp {
    fn encode<B: BufMut>(&self, b: &mut B) {
        match self {
            ArgOp::Illegal(n) => b.put_u32(*n),
            _ => b.put_u32(self.num()),
        }
        if let Some(body) = self.body() {
            let mut v = Vec::with_capacity(body.len());
            body.put(&mut v);
            b.put_slice(&v);
        }
    }
    fn encoded_len(&self) -> usize {
        4 + self.body().map_or(0, |b| b.len())
    }
}

/// Object-safe encoding, so [`ArgOp::body`] and [`crate::ResBody`] can return any argument.
pub(crate) trait ErasedEncode {
    fn put(&self, out: &mut Vec<u8>);
    fn len(&self) -> usize;
}

impl<T: XdrEncode> ErasedEncode for T {
    fn put(&self, out: &mut Vec<u8>) {
        self.encode(out)
    }
    fn len(&self) -> usize {
        self.encoded_len()
    }
}
