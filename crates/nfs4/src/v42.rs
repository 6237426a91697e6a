//! The NFSv4.2 operations rnfsd serves: sparse files (RFC 7862 §15: ALLOCATE §15.1, DEALLOCATE
//! §15.4, READ_PLUS §15.10, SEEK §15.11; XDR of RFC 7863), server-side copy and clone (COPY
//! §15.2, OFFLOAD_CANCEL §15.8, OFFLOAD_STATUS §15.9, CLONE §15.13; CB_OFFLOAD §16.1 is in
//! [`crate::cb`]) and extended attributes (RFC 8276 §8: GETXATTR, SETXATTR, LISTXATTRS,
//! REMOVEXATTR).
//!
//! # Bounds
//! An xattr name is a `component4` (at most [`COMPONENT_BYTES_MAX`] bytes). A value decodes up to
//! [`XATTR_VALUE_BYTES_MAX`], the decoder's ceiling; the server's own, configurable limit is lower
//! and checked after decoding (NFS4ERR_XATTR2BIG), so a value just over it is answered, not a
//! malformed request. Lists a client decodes are bounded too ([`XATTR_NAMES_MAX`],
//! [`READ_PLUS_SEGMENTS_MAX`]). COPY's source servers are at most [`NETLOCS_MAX`] (an
//! intra-server copy names none).

use rnfs_xdr::{xdr_enum, xdr_struct, MinEncodedLen};

use crate::*;

/// Largest xattr value decoded (bytes). The server's limit (at most Linux's 64 KiB) is checked
/// on top, so this only has to exceed it.
pub const XATTR_VALUE_BYTES_MAX: usize = 1 << 20;
/// Most names a client decodes from one LISTXATTRS reply.
pub const XATTR_NAMES_MAX: usize = 65_536;
/// Most segments a client decodes from one READ_PLUS reply.
pub const READ_PLUS_SEGMENTS_MAX: usize = 65_536;

/// An xattr's name (`xattrkey4`), without the namespace prefix: the user namespace is implied
/// (RFC 8276 §5.2).
pub type xattrkey4 = component4;
/// An xattr's value (`xattrvalue4`).
pub type xattrvalue4 = Opaque<XATTR_VALUE_BYTES_MAX>;

xdr_struct! {
    /// ALLOCATE and DEALLOCATE: the byte range (RFC 7862 §15.1.1, §15.4.1).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ALLOCATE4args { pub stateid: stateid4, pub offset: u64, pub length: u64 }
}
/// DEALLOCATE's arguments have ALLOCATE's shape.
pub type DEALLOCATE4args = ALLOCATE4args;

xdr_enum! {
    /// What SEEK looks for and what a READ_PLUS segment holds (`data_content4`).
    pub enum data_content4 { NFS4_CONTENT_DATA = 0, NFS4_CONTENT_HOLE = 1 }
}

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct SEEK4args { pub stateid: stateid4, pub offset: u64, pub what: data_content4 }
}
xdr_struct! {
    /// SEEK's answer: where the data or hole starts, and whether that is the end of the file.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct seek_res4 { pub eof: bool, pub offset: u64 }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct READ_PLUS4args { pub stateid: stateid4, pub offset: u64, pub count: u32 }
}
xdr_struct! {
    /// Bytes of the file at `offset` (`data4`).
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct data4 { pub offset: u64, pub data: Opaque<WRITE_BYTES_MAX> }
}
xdr_struct! {
    /// A hole: `length` bytes of zeros at `offset` (`data_info4`).
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct data_info4 { pub offset: u64, pub length: u64 }
}

/// One segment of a READ_PLUS reply (`read_plus_content`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum read_plus_content {
    Data(data4),
    Hole(data_info4),
}

impl XdrDecode for read_plus_content {
    fn decode(d: &mut Decoder) -> rnfs_xdr::Result<Self> {
        Ok(match d.decode::<data_content4>()? {
            data_content4::NFS4_CONTENT_DATA => read_plus_content::Data(d.decode()?),
            data_content4::NFS4_CONTENT_HOLE => read_plus_content::Hole(d.decode()?),
        })
    }
}
impl XdrEncode for read_plus_content {
    fn encode<B: BufMut>(&self, b: &mut B) {
        match self {
            read_plus_content::Data(x) => {
                data_content4::NFS4_CONTENT_DATA.encode(b);
                x.encode(b)
            }
            read_plus_content::Hole(x) => {
                data_content4::NFS4_CONTENT_HOLE.encode(b);
                x.encode(b)
            }
        }
    }
    fn encoded_len(&self) -> usize {
        4 + match self {
            read_plus_content::Data(x) => x.encoded_len(),
            read_plus_content::Hole(x) => x.encoded_len(),
        }
    }
}
impl MinEncodedLen for read_plus_content {
    const MIN_ENCODED_LEN: usize = 16;
}

xdr_struct! {
    /// READ_PLUS's answer (`read_plus_res4`): segments in file order.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct read_plus_res4 {
        pub eof: bool,
        pub contents: rnfs_xdr::Array<read_plus_content, READ_PLUS_SEGMENTS_MAX>,
    }
}

xdr_enum! {
    /// How SETXATTR treats an existing name (`setxattr_option4`).
    pub enum setxattr_option4 { SETXATTR4_EITHER = 0, SETXATTR4_CREATE = 1, SETXATTR4_REPLACE = 2 }
}

xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct SETXATTR4args {
        pub option: setxattr_option4,
        pub key: xattrkey4,
        pub value: xattrvalue4,
    }
}
xdr_struct! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct LISTXATTRS4args { pub cookie: u64, pub maxcount: u32 }
}
xdr_struct! {
    /// LISTXATTRS's answer: names from the cookie on, the cookie to go on from, and whether
    /// that was the last.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct LISTXATTRS4resok {
        pub cookie: u64,
        pub names: rnfs_xdr::Array<xattrkey4, XATTR_NAMES_MAX>,
        pub eof: bool,
    }
}

impl LISTXATTRS4resok {
    /// Bytes of the result besides its names: cookie, array length, eof.
    pub const FIXED_BYTES: usize = 16;

    /// Bytes one name adds to the result.
    pub fn name_bytes(name: &[u8]) -> usize {
        4 + name.len() + rnfs_xdr::pad_len(name.len())
    }
}

/// Most source servers a COPY names (`ca_source_server<>`): an intra-server copy names none, and
/// the server refuses any, so this only bounds decoding.
pub const NETLOCS_MAX: usize = 16;

xdr_struct! {
    /// A network address (`netaddr4`, RFC 8881 §3.3.9).
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct netaddr4 { pub na_r_netid: Opaque<NFS4_OPAQUE_LIMIT>, pub na_r_addr: Opaque<NFS4_OPAQUE_LIMIT> }
}

/// Where a copy's source is (`netloc4`, RFC 7862 §12.2.1): a name, a URL or an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum netloc4 {
    Name(opaque_limit),
    Url(opaque_limit),
    Addr(netaddr4),
}

impl XdrDecode for netloc4 {
    fn decode(d: &mut Decoder) -> rnfs_xdr::Result<Self> {
        Ok(match d.u32()? {
            1 => netloc4::Name(d.decode()?),
            2 => netloc4::Url(d.decode()?),
            3 => netloc4::Addr(d.decode()?),
            v => {
                return Err(XdrError::InvalidEnum {
                    type_name: "netloc_type4",
                    value: v.into(),
                })
            }
        })
    }
}
impl XdrEncode for netloc4 {
    fn encode<B: BufMut>(&self, b: &mut B) {
        match self {
            netloc4::Name(n) => {
                b.put_u32(1);
                n.encode(b)
            }
            netloc4::Url(u) => {
                b.put_u32(2);
                u.encode(b)
            }
            netloc4::Addr(a) => {
                b.put_u32(3);
                a.encode(b)
            }
        }
    }
    fn encoded_len(&self) -> usize {
        4 + match self {
            netloc4::Name(n) | netloc4::Url(n) => n.encoded_len(),
            netloc4::Addr(a) => a.encoded_len(),
        }
    }
}
impl MinEncodedLen for netloc4 {
    const MIN_ENCODED_LEN: usize = 8;
}

xdr_struct! {
    /// COPY (RFC 7862 §15.2.1): the saved handle is the source, the current one the destination.
    /// `ca_count` 0 copies to the end of the source.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct COPY4args {
        pub ca_src_stateid: stateid4,
        pub ca_dst_stateid: stateid4,
        pub ca_src_offset: u64,
        pub ca_dst_offset: u64,
        pub ca_count: u64,
        pub ca_consecutive: bool,
        pub ca_synchronous: bool,
        pub ca_source_server: rnfs_xdr::Array<netloc4, NETLOCS_MAX>,
    }
}
xdr_struct! {
    /// How a copy went (`write_response4`, §15.2.2): the callback stateid of an asynchronous
    /// copy (none for a synchronous one), bytes copied, how durable, the write verifier.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct write_response4 {
        pub wr_callback_id: rnfs_xdr::Array<stateid4, 1>,
        pub wr_count: u64,
        pub wr_committed: stable_how4,
        pub wr_writeverf: verifier4,
    }
}
xdr_struct! {
    /// Whether the copy was done consecutively and synchronously (`copy_requirements4`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct copy_requirements4 { pub cr_consecutive: bool, pub cr_synchronous: bool }
}
xdr_struct! {
    /// COPY's answer (`COPY4resok`).
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct COPY4resok { pub cr_response: write_response4, pub cr_requirements: copy_requirements4 }
}
xdr_struct! {
    /// OFFLOAD_STATUS's answer (§15.9.2): bytes copied so far and, once the copy is over, its
    /// status.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct OFFLOAD_STATUS4resok {
        pub osr_count: u64,
        pub osr_complete: rnfs_xdr::Array<nfsstat4, 1>,
    }
}
xdr_struct! {
    /// CLONE (§15.13.1): `cl_count` 0 clones to the end of the source.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CLONE4args {
        pub cl_src_stateid: stateid4,
        pub cl_dst_stateid: stateid4,
        pub cl_src_offset: u64,
        pub cl_dst_offset: u64,
        pub cl_count: u64,
    }
}
