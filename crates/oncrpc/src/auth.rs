//! RPC authentication: `opaque_auth` (RFC 5531 §8.2), AUTH_NONE and AUTH_SYS (appendix A).
//!
//! rnfsd accepts AUTH_NONE and AUTH_SYS credentials with AUTH_NONE verifiers. Anything else is
//! refused with AUTH_BADCRED, the status Linux clients expect for a flavour the server lacks.

use bytes::{BufMut, Bytes};
use rnfs_xdr::{Decoder, XdrDecode, XdrEncode};

pub const AUTH_NONE: u32 = 0;
pub const AUTH_SYS: u32 = 1;

/// Largest credential or verifier body (RFC 5531 §8.2).
pub const AUTH_BODY_MAX_BYTES: usize = 400;
/// Largest AUTH_SYS machine name (appendix A).
pub const MACHINE_NAME_MAX_BYTES: usize = 255;
/// Most supplementary groups in AUTH_SYS (appendix A).
pub const AUTH_SYS_GROUPS_MAX: usize = 16;

/// `auth_stat` (RFC 5531 §9), the reason in an AUTH_ERROR rejection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum AuthStat {
    Ok = 0,
    BadCred = 1,
    RejectedCred = 2,
    BadVerf = 3,
    RejectedVerf = 4,
    TooWeak = 5,
    InvalidResp = 6,
    Failed = 7,
}

impl AuthStat {
    pub const ALL: &'static [AuthStat] = &[
        AuthStat::Ok,
        AuthStat::BadCred,
        AuthStat::RejectedCred,
        AuthStat::BadVerf,
        AuthStat::RejectedVerf,
        AuthStat::TooWeak,
        AuthStat::InvalidResp,
        AuthStat::Failed,
    ];

    pub fn from_u32(v: u32) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| *s as u32 == v)
    }
}

/// `opaque_auth`: a flavour and an uninterpreted body of at most 400 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpaqueAuth {
    pub flavor: u32,
    pub body: Bytes,
}

impl OpaqueAuth {
    pub fn none() -> Self {
        OpaqueAuth {
            flavor: AUTH_NONE,
            body: Bytes::new(),
        }
    }
}

impl XdrDecode for OpaqueAuth {
    fn decode(d: &mut Decoder) -> rnfs_xdr::Result<Self> {
        let flavor = d.u32()?;
        let body = d.opaque_var(AUTH_BODY_MAX_BYTES)?;
        Ok(OpaqueAuth { flavor, body })
    }
}

impl XdrEncode for OpaqueAuth {
    fn encode<B: BufMut>(&self, b: &mut B) {
        b.put_u32(self.flavor);
        rnfs_xdr::put_opaque_var(b, &self.body);
    }
    fn encoded_len(&self) -> usize {
        4 + rnfs_xdr::opaque_var_len(self.body.len())
    }
}

/// The AUTH_SYS credential body (`authsys_parms`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSys {
    pub stamp: u32,
    pub machine_name: Bytes,
    pub uid: u32,
    pub gid: u32,
    pub gids: Vec<u32>,
}

impl AuthSys {
    /// Parses a credential body; the body must be exactly one `authsys_parms`.
    pub fn from_body(body: Bytes) -> rnfs_xdr::Result<Self> {
        let mut d = Decoder::new(body);
        let stamp = d.u32()?;
        let machine_name = d.string(MACHINE_NAME_MAX_BYTES)?;
        let uid = d.u32()?;
        let gid = d.u32()?;
        let count = d.array_len(AUTH_SYS_GROUPS_MAX, 4)?;
        let mut gids = Vec::with_capacity(count);
        for _ in 0..count {
            gids.push(d.u32()?);
        }
        d.finish()?;
        Ok(AuthSys {
            stamp,
            machine_name,
            uid,
            gid,
            gids,
        })
    }

    /// Builds the `opaque_auth` carrying this credential.
    pub fn to_opaque(&self) -> OpaqueAuth {
        let mut body = bytes::BytesMut::with_capacity(
            20 + rnfs_xdr::padded_len(self.machine_name.len()) + 4 * self.gids.len(),
        );
        body.put_u32(self.stamp);
        rnfs_xdr::put_opaque_var(&mut body, &self.machine_name);
        body.put_u32(self.uid);
        body.put_u32(self.gid);
        body.put_u32(self.gids.len() as u32);
        for g in &self.gids {
            body.put_u32(*g);
        }
        OpaqueAuth {
            flavor: AUTH_SYS,
            body: body.freeze(),
        }
    }
}

/// A parsed credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    None,
    Sys(AuthSys),
}

impl Credential {
    /// Interprets an `opaque_auth` credential, refusing flavours we cannot verify.
    pub fn from_opaque(cred: &OpaqueAuth) -> Result<Self, AuthStat> {
        match cred.flavor {
            AUTH_NONE => Ok(Credential::None),
            AUTH_SYS => AuthSys::from_body(cred.body.clone())
                .map(Credential::Sys)
                .map_err(|_| AuthStat::BadCred),
            _ => Err(AuthStat::BadCred),
        }
    }

    /// The RPC flavour number.
    pub fn flavor(&self) -> u32 {
        match self {
            Credential::None => AUTH_NONE,
            Credential::Sys(_) => AUTH_SYS,
        }
    }
}
