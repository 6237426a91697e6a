//! The NFSv4.2 operations rnfsd serves: sparse files (RFC 7862 §15: ALLOCATE §15.1, DEALLOCATE
//! §15.4, READ_PLUS §15.10, SEEK §15.11; XDR of RFC 7863) and extended attributes (RFC 8276 §8:
//! GETXATTR, SETXATTR, LISTXATTRS, REMOVEXATTR).
//!
//! # Bounds
//! An xattr name is a `component4` (at most [`COMPONENT_BYTES_MAX`] bytes). A value decodes up to
//! [`XATTR_VALUE_BYTES_MAX`], the decoder's ceiling; the server's own, configurable limit is lower
//! and checked after decoding (NFS4ERR_XATTR2BIG), so a value just over it is answered, not a
//! malformed request. Lists a client decodes are bounded too ([`XATTR_NAMES_MAX`],
//! [`READ_PLUS_SEGMENTS_MAX`]).

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
