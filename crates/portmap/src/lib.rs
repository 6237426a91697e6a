//! Wire types of the portmapper, version 2 (RFC 1833 §3), program 100000.
//!
//! NFSv3 clients ask the portmapper where MOUNT and NFS listen (GETPORT) before they mount; rnfsd
//! answers those questions itself. Only version 2 is described here: versions 3 and 4 (rpcbind,
//! RFC 1833 §2) use universal addresses and are not needed by NFSv3 clients.
//!
//! Type and field names follow the `.x` definitions of RFC 1833 §3.1 (hence lower-case type names).
//! [`Args::decode`] is the entry point a server dispatcher and the fuzz targets call.
#![forbid(unsafe_code)]
#![allow(non_camel_case_types)]

use rnfs_xdr::xdr_struct;
pub use rnfs_xdr::{BufMut, Bytes, Decoder, List, Opaque, XdrDecode, XdrEncode};

/// Program number of the portmapper.
pub const PMAP_PROG: u32 = 100_000;
/// The only version described here.
pub const PMAP_VERS: u32 = 2;
/// Well-known port of the portmapper.
pub const PMAP_PORT: u16 = 111;

pub const PMAPPROC_NULL: u32 = 0;
pub const PMAPPROC_SET: u32 = 1;
pub const PMAPPROC_UNSET: u32 = 2;
pub const PMAPPROC_GETPORT: u32 = 3;
pub const PMAPPROC_DUMP: u32 = 4;
pub const PMAPPROC_CALLIT: u32 = 5;

/// `mapping.prot` for TCP.
pub const IPPROTO_TCP: u32 = 6;
/// `mapping.prot` for UDP.
pub const IPPROTO_UDP: u32 = 17;

/// Most mappings accepted when decoding a DUMP reply; a real portmapper holds a few dozen.
pub const PMAPLIST_MAX_ENTRIES: usize = 1024;
/// Largest argument or result body carried by CALLIT. The RFC sets no limit; CALLIT travels over
/// UDP, so a datagram's size is a natural ceiling.
pub const CALLIT_MAX_BYTES: usize = 65_536;

xdr_struct! {
    /// One registration: program `prog`, version `vers`, over protocol `prot`, at `port`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct mapping {
        pub prog: u32,
        pub vers: u32,
        pub prot: u32,
        pub port: u32,
    }
}

/// The DUMP reply: an XDR linked list of mappings (`pmaplist *`), flattened to a vector.
pub type pmaplist = List<mapping, PMAPLIST_MAX_ENTRIES>;

xdr_struct! {
    /// CALLIT arguments: call procedure `proc` of `prog`/`vers` with already-encoded `args`.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct call_args {
        pub prog: u32,
        pub vers: u32,
        pub proc: u32,
        pub args: Opaque<CALLIT_MAX_BYTES>,
    }
}

xdr_struct! {
    /// CALLIT result: the port of the program called and its encoded results.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct call_result {
        pub port: u32,
        pub res: Opaque<CALLIT_MAX_BYTES>,
    }
}

/// Why a call's arguments could not be decoded (shared by every program's `Args::decode`).
pub use rnfs_xdr::ArgsError;

/// The arguments of any portmapper v2 procedure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Args {
    Null,
    Set(mapping),
    Unset(mapping),
    Getport(mapping),
    Dump,
    Callit(call_args),
}

impl Args {
    /// Decodes the arguments of procedure `procedure`; the whole of `args` must be consumed.
    pub fn decode(procedure: u32, args: Bytes) -> Result<Args, ArgsError> {
        let mut d = Decoder::new(args);
        let a = match procedure {
            PMAPPROC_NULL => Args::Null,
            PMAPPROC_SET => Args::Set(d.decode()?),
            PMAPPROC_UNSET => Args::Unset(d.decode()?),
            PMAPPROC_GETPORT => Args::Getport(d.decode()?),
            PMAPPROC_DUMP => Args::Dump,
            PMAPPROC_CALLIT => Args::Callit(d.decode()?),
            p => return Err(ArgsError::ProcUnavail(p)),
        };
        d.finish()?;
        Ok(a)
    }

    /// The procedure number these arguments belong to.
    pub fn procedure(&self) -> u32 {
        match self {
            Args::Null => PMAPPROC_NULL,
            Args::Set(_) => PMAPPROC_SET,
            Args::Unset(_) => PMAPPROC_UNSET,
            Args::Getport(_) => PMAPPROC_GETPORT,
            Args::Dump => PMAPPROC_DUMP,
            Args::Callit(_) => PMAPPROC_CALLIT,
        }
    }
}

impl XdrEncode for Args {
    fn encode<B: BufMut>(&self, b: &mut B) {
        match self {
            Args::Null | Args::Dump => {}
            Args::Set(m) | Args::Unset(m) | Args::Getport(m) => m.encode(b),
            Args::Callit(c) => c.encode(b),
        }
    }
    fn encoded_len(&self) -> usize {
        match self {
            Args::Null | Args::Dump => 0,
            Args::Set(m) | Args::Unset(m) | Args::Getport(m) => m.encoded_len(),
            Args::Callit(c) => c.encoded_len(),
        }
    }
}

/// The results of any portmapper v2 procedure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Res {
    Null,
    /// SET: whether the mapping was registered.
    Set(bool),
    /// UNSET: whether a mapping was removed.
    Unset(bool),
    /// GETPORT: the port, or 0 if the program is not registered.
    Getport(u32),
    Dump(pmaplist),
    Callit(call_result),
}

impl Res {
    /// Decodes the results of procedure `procedure` (client side); trailing bytes are an error.
    /// An unknown procedure is reported as [`ArgsError::ProcUnavail`].
    pub fn decode(procedure: u32, res: Bytes) -> Result<Res, ArgsError> {
        let mut d = Decoder::new(res);
        let r = match procedure {
            PMAPPROC_NULL => Res::Null,
            PMAPPROC_SET => Res::Set(d.decode()?),
            PMAPPROC_UNSET => Res::Unset(d.decode()?),
            PMAPPROC_GETPORT => Res::Getport(d.decode()?),
            PMAPPROC_DUMP => Res::Dump(d.decode()?),
            PMAPPROC_CALLIT => Res::Callit(d.decode()?),
            p => return Err(ArgsError::ProcUnavail(p)),
        };
        d.finish()?;
        Ok(r)
    }

    /// The procedure number these results belong to.
    pub fn procedure(&self) -> u32 {
        match self {
            Res::Null => PMAPPROC_NULL,
            Res::Set(_) => PMAPPROC_SET,
            Res::Unset(_) => PMAPPROC_UNSET,
            Res::Getport(_) => PMAPPROC_GETPORT,
            Res::Dump(_) => PMAPPROC_DUMP,
            Res::Callit(_) => PMAPPROC_CALLIT,
        }
    }
}

impl XdrEncode for Res {
    fn encode<B: BufMut>(&self, b: &mut B) {
        match self {
            Res::Null => {}
            Res::Set(v) | Res::Unset(v) => v.encode(b),
            Res::Getport(p) => p.encode(b),
            Res::Dump(l) => l.encode(b),
            Res::Callit(c) => c.encode(b),
        }
    }
    fn encoded_len(&self) -> usize {
        match self {
            Res::Null => 0,
            Res::Set(v) | Res::Unset(v) => v.encoded_len(),
            Res::Getport(p) => p.encoded_len(),
            Res::Dump(l) => l.encoded_len(),
            Res::Callit(c) => c.encoded_len(),
        }
    }
}

#[cfg(test)]
mod tests;
