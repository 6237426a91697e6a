//! Results of COMPOUND operations (RFC 8881 §18): `nfs_resop4` as [`ResOp`], the union arms that
//! carry data as [`ResBody`].

use rnfs_xdr::{xdr_struct, Array, List, MinEncodedLen};

use crate::op::*;
use crate::*;

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct ACCESS4resok { pub supported: u32, pub access: u32 }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct CREATE4resok { pub cinfo: change_info4, pub attrset: Bitmap }
}
xdr_struct! {
    /// The lock that conflicts with a LOCK or LOCKT.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct LOCK4denied {
        pub offset: u64,
        pub length: u64,
        pub locktype: nfs_lock_type4,
        pub owner: lock_owner4,
    }
}

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct OPEN4resok {
        pub stateid: stateid4,
        pub cinfo: change_info4,
        pub rflags: u32,
        pub attrset: Bitmap,
        pub delegation: open_delegation4,
    }
}

/// The delegation OPEN grants (`open_delegation4`, RFC 8881 §18.16.2). The `permissions` ACE
/// of a granted delegation is sent empty (the client must ask ACCESS), as Linux's nfsd does, and
/// ignored when decoded; a write delegation's space limit is a file size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum open_delegation4 {
    /// OPEN_DELEGATE_NONE.
    None,
    /// OPEN_DELEGATE_READ.
    Read { stateid: stateid4, recall: bool },
    /// OPEN_DELEGATE_WRITE, with NFS_LIMIT_SIZE.
    Write {
        stateid: stateid4,
        recall: bool,
        filesize: u64,
    },
    /// OPEN_DELEGATE_NONE_EXT with `why_no_delegation4` (WND4_CONTENTION and WND4_RESOURCE
    /// carry a "will signal when available" bool, always false here).
    NoneExt(u32),
}

const NFS_LIMIT_SIZE: u32 = 1;
const NFS_LIMIT_BLOCKS: u32 = 2;
/// The empty ACE: ACE4_ACCESS_ALLOWED_ACE_TYPE, no flags, no access, no one.
const EMPTY_ACE_WORDS: [u32; 4] = [0, 0, 0, 0];

fn skip_ace(d: &mut Decoder) -> rnfs_xdr::Result<()> {
    d.u32()?;
    d.u32()?;
    d.u32()?;
    let _who: Opaque<NFS4_OPAQUE_LIMIT> = d.decode()?;
    Ok(())
}

impl XdrDecode for open_delegation4 {
    fn decode(d: &mut Decoder) -> rnfs_xdr::Result<Self> {
        match d.u32()? {
            0 => Ok(open_delegation4::None),
            1 => {
                let stateid = d.decode()?;
                let recall = d.bool()?;
                skip_ace(d)?;
                Ok(open_delegation4::Read { stateid, recall })
            }
            2 => {
                let stateid = d.decode()?;
                let recall = d.bool()?;
                let filesize = match d.u32()? {
                    NFS_LIMIT_SIZE => d.u64()?,
                    NFS_LIMIT_BLOCKS => {
                        let blocks = d.u32()?;
                        let bytes_per_block = d.u32()?;
                        u64::from(blocks).saturating_mul(u64::from(bytes_per_block))
                    }
                    v => {
                        return Err(XdrError::InvalidEnum {
                            type_name: "limit_by4",
                            value: v.into(),
                        })
                    }
                };
                skip_ace(d)?;
                Ok(open_delegation4::Write {
                    stateid,
                    recall,
                    filesize,
                })
            }
            3 => {
                let why = d.u32()?;
                if why == 1 || why == 2 {
                    // WND4_CONTENTION / WND4_RESOURCE carry a bool.
                    d.bool()?;
                }
                Ok(open_delegation4::NoneExt(why))
            }
            v => Err(XdrError::InvalidEnum {
                type_name: "open_delegation_type4",
                value: v.into(),
            }),
        }
    }
}
impl XdrEncode for open_delegation4 {
    fn encode<B: BufMut>(&self, b: &mut B) {
        match self {
            open_delegation4::None => b.put_u32(0),
            open_delegation4::Read { stateid, recall } => {
                b.put_u32(1);
                stateid.encode(b);
                recall.encode(b);
                EMPTY_ACE_WORDS.iter().for_each(|w| b.put_u32(*w));
            }
            open_delegation4::Write {
                stateid,
                recall,
                filesize,
            } => {
                b.put_u32(2);
                stateid.encode(b);
                recall.encode(b);
                b.put_u32(NFS_LIMIT_SIZE);
                b.put_u64(*filesize);
                EMPTY_ACE_WORDS.iter().for_each(|w| b.put_u32(*w));
            }
            open_delegation4::NoneExt(why) => {
                b.put_u32(3);
                b.put_u32(*why);
                if *why == 1 || *why == 2 {
                    false.encode(b);
                }
            }
        }
    }
    fn encoded_len(&self) -> usize {
        match self {
            open_delegation4::None => 4,
            open_delegation4::Read { .. } => 4 + 16 + 4 + 16,
            open_delegation4::Write { .. } => 4 + 16 + 4 + 12 + 16,
            open_delegation4::NoneExt(why) => 8 + if *why == 1 || *why == 2 { 4 } else { 0 },
        }
    }
}

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct READ4resok { pub eof: bool, pub data: Opaque<WRITE_BYTES_MAX> }
}
xdr_struct! {
    /// One READDIR entry.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct entry4 { pub cookie: u64, pub name: component4, pub attrs: fattr4 }
}

/// Most READDIR entries a client decodes from one reply.
pub const READDIR_ENTRIES_MAX: usize = 65_536;

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct READDIR4resok {
        pub cookieverf: verifier4,
        pub entries: List<entry4, READDIR_ENTRIES_MAX>,
        pub eof: bool,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct RENAME4resok { pub source_cinfo: change_info4, pub target_cinfo: change_info4 }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct WRITE4resok { pub count: u32, pub committed: stable_how4, pub writeverf: verifier4 }
}

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct BIND_CONN_TO_SESSION4resok {
        pub bctsr_sessid: sessionid4,
        /// `channel_dir_from_server4`: 1 fore, 2 back, 3 both.
        pub bctsr_dir: u32,
        pub bctsr_use_conn_in_rdma_mode: bool,
    }
}

/// How the server protects the client's state (`state_protect4_r`): only SP4_NONE and
/// SP4_MACH_CRED are answered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum state_protect4_r {
    #[default]
    None,
    MachCred(state_protect_ops4),
}

impl XdrDecode for state_protect4_r {
    fn decode(d: &mut Decoder) -> rnfs_xdr::Result<Self> {
        match d.u32()? {
            0 => Ok(state_protect4_r::None),
            1 => Ok(state_protect4_r::MachCred(d.decode()?)),
            v => Err(XdrError::InvalidEnum {
                type_name: "state_protect_how4",
                value: v.into(),
            }),
        }
    }
}
impl XdrEncode for state_protect4_r {
    fn encode<B: BufMut>(&self, b: &mut B) {
        match self {
            state_protect4_r::None => b.put_u32(0),
            state_protect4_r::MachCred(o) => {
                b.put_u32(1);
                o.encode(b)
            }
        }
    }
    fn encoded_len(&self) -> usize {
        4 + match self {
            state_protect4_r::None => 0,
            state_protect4_r::MachCred(o) => o.encoded_len(),
        }
    }
}

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct EXCHANGE_ID4resok {
        pub eir_clientid: u64,
        pub eir_sequenceid: u32,
        pub eir_flags: u32,
        pub eir_state_protect: state_protect4_r,
        pub eir_server_owner: server_owner4,
        pub eir_server_scope: opaque_limit,
        pub eir_server_impl_id: Array<nfs_impl_id4, 1>,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct CREATE_SESSION4resok {
        pub csr_sessionid: sessionid4,
        pub csr_sequence: u32,
        pub csr_flags: u32,
        pub csr_fore_chan_attrs: channel_attrs4,
        pub csr_back_chan_attrs: channel_attrs4,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct SEQUENCE4resok {
        pub sr_sessionid: sessionid4,
        pub sr_sequenceid: u32,
        pub sr_slotid: u32,
        pub sr_highest_slotid: u32,
        pub sr_target_highest_slotid: u32,
        pub sr_status_flags: u32,
    }
}

/// One entry of SECINFO's answer (`secinfo4`): a flavor, with GSS details for RPCSEC_GSS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum secinfo4 {
    /// AUTH_NONE, AUTH_SYS or another flavor without details.
    Flavor(u32),
    /// RPCSEC_GSS: mechanism OID, quality of protection, service.
    Gss {
        oid: sec_oid4,
        qop: u32,
        service: u32,
    },
}

impl MinEncodedLen for secinfo4 {
    const MIN_ENCODED_LEN: usize = 4;
}

impl XdrDecode for secinfo4 {
    fn decode(d: &mut Decoder) -> rnfs_xdr::Result<Self> {
        Ok(match d.u32()? {
            RPCSEC_GSS => secinfo4::Gss {
                oid: d.decode()?,
                qop: d.u32()?,
                service: d.u32()?,
            },
            f => secinfo4::Flavor(f),
        })
    }
}
impl XdrEncode for secinfo4 {
    fn encode<B: BufMut>(&self, b: &mut B) {
        match self {
            secinfo4::Flavor(f) => b.put_u32(*f),
            secinfo4::Gss { oid, qop, service } => {
                b.put_u32(RPCSEC_GSS);
                oid.encode(b);
                b.put_u32(*qop);
                b.put_u32(*service);
            }
        }
    }
    fn encoded_len(&self) -> usize {
        match self {
            secinfo4::Flavor(_) => 4,
            secinfo4::Gss { oid, .. } => 12 + oid.encoded_len(),
        }
    }
}

impl MinEncodedLen for nfsstat4 {
    const MIN_ENCODED_LEN: usize = 4;
}

/// The data a result carries beyond its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResBody {
    Access(ACCESS4resok),
    /// CLOSE, LOCK, LOCKU, OPEN_DOWNGRADE: the new stateid.
    Stateid(stateid4),
    /// COMMIT's write verifier.
    Commit(verifier4),
    Create(CREATE4resok),
    GetAttr(fattr4),
    GetFh(nfs_fh4),
    /// LINK and REMOVE: the directory's change; SETXATTR and REMOVEXATTR: the object's.
    Cinfo(change_info4),
    /// LOCK and LOCKT with NFS4ERR_DENIED.
    Denied(LOCK4denied),
    Open(OPEN4resok),
    Read(READ4resok),
    ReadDir(READDIR4resok),
    ReadLink(linktext4),
    Rename(RENAME4resok),
    /// SECINFO and SECINFO_NO_NAME.
    SecInfo(Array<secinfo4, SEC_PARMS_MAX>),
    /// SETATTR's `attrsset`, present whatever the status.
    SetAttr(Bitmap),
    Write(WRITE4resok),
    BindConn(BIND_CONN_TO_SESSION4resok),
    ExchangeId(EXCHANGE_ID4resok),
    CreateSession(CREATE_SESSION4resok),
    Sequence(SEQUENCE4resok),
    TestStateid(Array<nfsstat4, TEST_STATEIDS_MAX>),
    Seek(seek_res4),
    ReadPlus(read_plus_res4),
    GetXattr(xattrvalue4),
    ListXattrs(LISTXATTRS4resok),
    Copy(COPY4resok),
    /// COPY with NFS4ERR_OFFLOAD_NO_REQS: the requirements the server could meet.
    CopyRequirements(copy_requirements4),
    OffloadStatus(OFFLOAD_STATUS4resok),
}

impl XdrEncode for ResBody {
    fn encode<B: BufMut>(&self, b: &mut B) {
        match self {
            ResBody::Access(x) => x.encode(b),
            ResBody::Stateid(x) => x.encode(b),
            ResBody::Commit(x) => x.encode(b),
            ResBody::Create(x) => x.encode(b),
            ResBody::GetAttr(x) => x.encode(b),
            ResBody::GetFh(x) => x.encode(b),
            ResBody::Cinfo(x) => x.encode(b),
            ResBody::Denied(x) => x.encode(b),
            ResBody::Open(x) => x.encode(b),
            ResBody::Read(x) => x.encode(b),
            ResBody::ReadDir(x) => x.encode(b),
            ResBody::ReadLink(x) => x.encode(b),
            ResBody::Rename(x) => x.encode(b),
            ResBody::SecInfo(x) => x.encode(b),
            ResBody::SetAttr(x) => x.encode(b),
            ResBody::Write(x) => x.encode(b),
            ResBody::BindConn(x) => x.encode(b),
            ResBody::ExchangeId(x) => x.encode(b),
            ResBody::CreateSession(x) => x.encode(b),
            ResBody::Sequence(x) => x.encode(b),
            ResBody::TestStateid(x) => x.encode(b),
            ResBody::Seek(x) => x.encode(b),
            ResBody::ReadPlus(x) => x.encode(b),
            ResBody::GetXattr(x) => x.encode(b),
            ResBody::ListXattrs(x) => x.encode(b),
            ResBody::Copy(x) => x.encode(b),
            ResBody::CopyRequirements(x) => x.encode(b),
            ResBody::OffloadStatus(x) => x.encode(b),
        }
    }
    fn encoded_len(&self) -> usize {
        match self {
            ResBody::Access(x) => x.encoded_len(),
            ResBody::Stateid(x) => x.encoded_len(),
            ResBody::Commit(x) => x.encoded_len(),
            ResBody::Create(x) => x.encoded_len(),
            ResBody::GetAttr(x) => x.encoded_len(),
            ResBody::GetFh(x) => x.encoded_len(),
            ResBody::Cinfo(x) => x.encoded_len(),
            ResBody::Denied(x) => x.encoded_len(),
            ResBody::Open(x) => x.encoded_len(),
            ResBody::Read(x) => x.encoded_len(),
            ResBody::ReadDir(x) => x.encoded_len(),
            ResBody::ReadLink(x) => x.encoded_len(),
            ResBody::Rename(x) => x.encoded_len(),
            ResBody::SecInfo(x) => x.encoded_len(),
            ResBody::SetAttr(x) => x.encoded_len(),
            ResBody::Write(x) => x.encoded_len(),
            ResBody::BindConn(x) => x.encoded_len(),
            ResBody::ExchangeId(x) => x.encoded_len(),
            ResBody::CreateSession(x) => x.encoded_len(),
            ResBody::Sequence(x) => x.encoded_len(),
            ResBody::TestStateid(x) => x.encoded_len(),
            ResBody::Seek(x) => x.encoded_len(),
            ResBody::ReadPlus(x) => x.encoded_len(),
            ResBody::GetXattr(x) => x.encoded_len(),
            ResBody::ListXattrs(x) => x.encoded_len(),
            ResBody::Copy(x) => x.encoded_len(),
            ResBody::CopyRequirements(x) => x.encoded_len(),
            ResBody::OffloadStatus(x) => x.encoded_len(),
        }
    }
}

/// One operation's result: its number, status and the data its union arm carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResOp {
    pub op: u32,
    pub status: nfsstat4,
    pub body: Option<ResBody>,
}

impl ResOp {
    /// A result with a status only.
    pub fn status(op: u32, status: nfsstat4) -> ResOp {
        ResOp {
            op,
            status,
            body: None,
        }
    }

    /// A successful result carrying `body`.
    pub fn ok(op: u32, body: ResBody) -> ResOp {
        ResOp {
            op,
            status: nfsstat4::NFS4_OK,
            body: Some(body),
        }
    }

    /// Reads one result (for a client): which arm follows depends on the operation and status.
    pub fn decode(d: &mut Decoder) -> rnfs_xdr::Result<ResOp> {
        let op = d.u32()?;
        let status: nfsstat4 = d.decode()?;
        let body = Self::decode_body(op, status, d)?;
        Ok(ResOp { op, status, body })
    }

    fn decode_body(
        op: u32,
        status: nfsstat4,
        d: &mut Decoder,
    ) -> rnfs_xdr::Result<Option<ResBody>> {
        use nfsstat4::*;
        if op == OP_SETATTR {
            return Ok(Some(ResBody::SetAttr(d.decode()?)));
        }
        if status == NFS4ERR_DENIED && (op == OP_LOCK || op == OP_LOCKT) {
            return Ok(Some(ResBody::Denied(d.decode()?)));
        }
        if status == NFS4ERR_OFFLOAD_NO_REQS && op == OP_COPY {
            return Ok(Some(ResBody::CopyRequirements(d.decode()?)));
        }
        if status != NFS4_OK {
            return Ok(None);
        }
        Ok(Some(match op {
            OP_ACCESS => ResBody::Access(d.decode()?),
            OP_CLOSE | OP_LOCK | OP_LOCKU | OP_OPEN_DOWNGRADE => ResBody::Stateid(d.decode()?),
            OP_COMMIT => ResBody::Commit(d.decode()?),
            OP_CREATE => ResBody::Create(d.decode()?),
            OP_GETATTR => ResBody::GetAttr(d.decode()?),
            OP_GETFH => ResBody::GetFh(d.decode()?),
            OP_LINK | OP_REMOVE | OP_SETXATTR | OP_REMOVEXATTR => ResBody::Cinfo(d.decode()?),
            OP_OPEN => ResBody::Open(d.decode()?),
            OP_READ => ResBody::Read(d.decode()?),
            OP_READDIR => ResBody::ReadDir(d.decode()?),
            OP_READLINK => ResBody::ReadLink(d.decode()?),
            OP_RENAME => ResBody::Rename(d.decode()?),
            OP_SECINFO | OP_SECINFO_NO_NAME => ResBody::SecInfo(d.decode()?),
            OP_WRITE => ResBody::Write(d.decode()?),
            OP_BIND_CONN_TO_SESSION => ResBody::BindConn(d.decode()?),
            OP_EXCHANGE_ID => ResBody::ExchangeId(d.decode()?),
            OP_CREATE_SESSION => ResBody::CreateSession(d.decode()?),
            OP_SEQUENCE => ResBody::Sequence(d.decode()?),
            OP_TEST_STATEID => ResBody::TestStateid(d.decode()?),
            OP_SEEK => ResBody::Seek(d.decode()?),
            OP_READ_PLUS => ResBody::ReadPlus(d.decode()?),
            OP_GETXATTR => ResBody::GetXattr(d.decode()?),
            OP_LISTXATTRS => ResBody::ListXattrs(d.decode()?),
            OP_COPY => ResBody::Copy(d.decode()?),
            OP_OFFLOAD_STATUS => ResBody::OffloadStatus(d.decode()?),
            _ => return Ok(None),
        }))
    }
}

impl XdrEncode for ResOp {
    fn encode<B: BufMut>(&self, b: &mut B) {
        b.put_u32(self.op);
        self.status.encode(b);
        if let Some(body) = &self.body {
            body.encode(b);
        }
    }
    fn encoded_len(&self) -> usize {
        8 + self.body.as_ref().map_or(0, |b| b.encoded_len())
    }
}

impl MinEncodedLen for entry4 {
    const MIN_ENCODED_LEN: usize = 20;
}
