//! The callback program (RFC 8881 §20): the CB_COMPOUND the server sends on a session's back
//! channel. CB_SEQUENCE opens every one; CB_RECALL and CB_GETATTR (delegations), CB_OFFLOAD (an
//! asynchronous COPY is over, RFC 7862 §16.1) and CB_NULL (procedure 0, a probe of the path) are
//! the others used so far.

use rnfs_xdr::{xdr_struct, Array, MinEncodedLen};

use crate::*;

pub const OP_CB_GETATTR: u32 = 3;
pub const OP_CB_RECALL: u32 = 4;
pub const OP_CB_SEQUENCE: u32 = 11;
pub const OP_CB_OFFLOAD: u32 = 15;
pub const OP_CB_ILLEGAL: u32 = 10044;

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct referring_call4 { pub rc_sequenceid: u32, pub rc_slotid: u32 }
}
impl MinEncodedLen for referring_call4 {
    const MIN_ENCODED_LEN: usize = 8;
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct referring_call_list4 {
        pub rcl_sessionid: sessionid4,
        pub rcl_referring_calls: Array<referring_call4, 64>,
    }
}
impl MinEncodedLen for referring_call_list4 {
    const MIN_ENCODED_LEN: usize = 20;
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct CB_SEQUENCE4args {
        pub csa_sessionid: sessionid4,
        pub csa_sequenceid: u32,
        pub csa_slotid: u32,
        pub csa_highest_slotid: u32,
        pub csa_cachethis: bool,
        pub csa_referring_call_lists: Array<referring_call_list4, 16>,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct CB_SEQUENCE4resok {
        pub csr_sessionid: sessionid4,
        pub csr_sequenceid: u32,
        pub csr_slotid: u32,
        pub csr_highest_slotid: u32,
        pub csr_target_highest_slotid: u32,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct CB_RECALL4args { pub stateid: stateid4, pub truncate: bool, pub fh: nfs_fh4 }
}
xdr_struct! {
    /// CB_GETATTR (RFC 8881 §20.1): the attributes a write delegation's holder may have changed.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct CB_GETATTR4args { pub fh: nfs_fh4, pub attr_request: Bitmap }
}

/// How an asynchronous copy ended (`offload_info4`, RFC 7862 §16.1.1): its write response, or
/// its error and the bytes copied before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum offload_info4 {
    Done(write_response4),
    Failed(nfsstat4, u64),
}

impl XdrDecode for offload_info4 {
    fn decode(d: &mut Decoder) -> rnfs_xdr::Result<Self> {
        Ok(match d.decode::<nfsstat4>()? {
            nfsstat4::NFS4_OK => offload_info4::Done(d.decode()?),
            s => offload_info4::Failed(s, d.u64()?),
        })
    }
}
impl XdrEncode for offload_info4 {
    fn encode<B: BufMut>(&self, b: &mut B) {
        match self {
            offload_info4::Done(w) => {
                nfsstat4::NFS4_OK.encode(b);
                w.encode(b)
            }
            offload_info4::Failed(s, n) => {
                s.encode(b);
                b.put_u64(*n)
            }
        }
    }
    fn encoded_len(&self) -> usize {
        4 + match self {
            offload_info4::Done(w) => w.encoded_len(),
            offload_info4::Failed(..) => 8,
        }
    }
}

xdr_struct! {
    /// CB_OFFLOAD (RFC 7862 §16.1): the destination file, the copy's callback stateid, the
    /// outcome.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CB_OFFLOAD4args {
        pub coa_fh: nfs_fh4,
        pub coa_stateid: stateid4,
        pub coa_offload_info: offload_info4,
    }
}

/// One callback operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CbArgOp {
    Sequence(CB_SEQUENCE4args),
    Getattr(CB_GETATTR4args),
    Recall(CB_RECALL4args),
    Offload(CB_OFFLOAD4args),
}

impl XdrEncode for CbArgOp {
    fn encode<B: BufMut>(&self, b: &mut B) {
        match self {
            CbArgOp::Sequence(a) => {
                b.put_u32(OP_CB_SEQUENCE);
                a.encode(b)
            }
            CbArgOp::Getattr(a) => {
                b.put_u32(OP_CB_GETATTR);
                a.encode(b)
            }
            CbArgOp::Recall(a) => {
                b.put_u32(OP_CB_RECALL);
                a.encode(b)
            }
            CbArgOp::Offload(a) => {
                b.put_u32(OP_CB_OFFLOAD);
                a.encode(b)
            }
        }
    }
    fn encoded_len(&self) -> usize {
        4 + match self {
            CbArgOp::Sequence(a) => a.encoded_len(),
            CbArgOp::Getattr(a) => a.encoded_len(),
            CbArgOp::Recall(a) => a.encoded_len(),
            CbArgOp::Offload(a) => a.encoded_len(),
        }
    }
}

impl XdrDecode for CbArgOp {
    fn decode(d: &mut Decoder) -> rnfs_xdr::Result<Self> {
        match d.u32()? {
            OP_CB_SEQUENCE => Ok(CbArgOp::Sequence(d.decode()?)),
            OP_CB_GETATTR => Ok(CbArgOp::Getattr(d.decode()?)),
            OP_CB_RECALL => Ok(CbArgOp::Recall(d.decode()?)),
            OP_CB_OFFLOAD => Ok(CbArgOp::Offload(d.decode()?)),
            v => Err(XdrError::InvalidEnum {
                type_name: "nfs_cb_opnum4",
                value: v.into(),
            }),
        }
    }
}
impl MinEncodedLen for CbArgOp {
    const MIN_ENCODED_LEN: usize = 8;
}

xdr_struct! {
    /// CB_COMPOUND's arguments.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CB_COMPOUND4args {
        pub tag: Opaque<TAG_BYTES_MAX>,
        pub minorversion: u32,
        pub callback_ident: u32,
        pub argarray: Array<CbArgOp, 16>,
    }
}

/// One callback result: the operation, its status and, for a successful CB_SEQUENCE or
/// CB_GETATTR, its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CbResOp {
    pub op: u32,
    pub status: nfsstat4,
    pub sequence: Option<CB_SEQUENCE4resok>,
    pub attrs: Option<fattr4>,
}

impl MinEncodedLen for CbResOp {
    const MIN_ENCODED_LEN: usize = 8;
}

impl XdrDecode for CbResOp {
    fn decode(d: &mut Decoder) -> rnfs_xdr::Result<Self> {
        let op = d.u32()?;
        let status: nfsstat4 = d.decode()?;
        let ok = status == nfsstat4::NFS4_OK;
        let sequence = if op == OP_CB_SEQUENCE && ok {
            Some(d.decode()?)
        } else {
            None
        };
        let attrs = if op == OP_CB_GETATTR && ok {
            Some(d.decode()?)
        } else {
            None
        };
        Ok(CbResOp {
            op,
            status,
            sequence,
            attrs,
        })
    }
}
impl XdrEncode for CbResOp {
    fn encode<B: BufMut>(&self, b: &mut B) {
        b.put_u32(self.op);
        self.status.encode(b);
        if let Some(s) = &self.sequence {
            s.encode(b)
        }
        if let Some(a) = &self.attrs {
            a.encode(b)
        }
    }
    fn encoded_len(&self) -> usize {
        8 + self.sequence.as_ref().map_or(0, |s| s.encoded_len())
            + self.attrs.as_ref().map_or(0, |a| a.encoded_len())
    }
}

xdr_struct! {
    /// CB_COMPOUND's results.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CB_COMPOUND4res {
        pub status: nfsstat4,
        pub tag: Opaque<TAG_BYTES_MAX>,
        pub resarray: Array<CbResOp, 16>,
    }
}
