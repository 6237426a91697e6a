//! Wire types of the Network Lock Manager, version 4 (program 100021), and, in [`nsm`], of the
//! Network Status Monitor, version 1 (program 100024), which NLM relies on to learn of reboots.
//!
//! NLM carries byte-range locks (and DOS-style shares) for NFSv3, which has no locking of its own.
//! Version 4 is the one that goes with NFSv3: 64-bit offsets and lengths, NFSv3 file handles, and
//! the extra status codes `NLM4_ROFS` to `NLM4_FAILED`. The definitions are transcribed from The
//! Open Group's "Protocols for Interworking: XNFS" (Issue 4 / Version 3W: chapter 10, "Network Lock
//! Manager Protocol", for the semantics and the types shared with version 3; chapter 14, the
//! version 4 differences) and RFC 1813 Appendix II (the same version 4 definitions and procedure
//! list), cross-checked against the BSDs' `nlm_prot.x` and the Linux kernel's `nlm4.x`. Type,
//! field and variant names follow the `.x` definitions, hence the lower-case type names.
//!
//! # Procedures
//! The synchronous calls (TEST, LOCK, CANCEL, UNLOCK, GRANTED, SHARE, UNSHARE, NM_LOCK) return
//! their result in the reply. The `_MSG` forms take the same arguments and return nothing: the
//! answer travels later as a *call* of the matching `_RES` procedure back to the caller, whose
//! argument is the result type ([`nlm4_testres`] or [`nlm4_res`]). GRANTED (and GRANTED_MSG) goes
//! the other way, from the server to the client's lock manager, when a blocked lock is granted, so
//! every type here both encodes and decodes. Procedures 16 to 19 are not part of version 4
//! ([`NLMPROC_NSM_NOTIFY`] is Linux's private use of 16); [`Args::decode`] reports them, like any
//! unknown number, as [`ArgsError::ProcUnavail`].
//!
//! # Bounds
//! Every string and opaque is bounded by its specification maximum ([`LM_MAXSTRLEN`],
//! [`LM_MAXNAMELEN`], [`MAXNETOBJ_SZ`]); a longer length word is refused before anything is read.
//! [`Args::decode`] is the entry point a server dispatcher and the fuzz targets call.
#![forbid(unsafe_code)]
#![allow(non_camel_case_types)]

use rnfs_xdr::{xdr_enum, xdr_struct};
pub use rnfs_xdr::{BufMut, Bytes, Decoder, Opaque, XdrDecode, XdrEncode};

/// Why a call's arguments could not be decoded (shared by every program's `Args::decode`).
pub use rnfs_xdr::ArgsError;

/// Declares a program's `Args` or `Res` enum (one variant per procedure, carrying that procedure's
/// argument or result type, or nothing for `void`) with `decode(procedure, bytes)`, `procedure()`
/// and [`XdrEncode`]. `$what` names the direction in the generated docs.
macro_rules! procedure_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident $( ($ty:ty) )? = $proc:ident ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum $name {
            $( $(#[$vmeta])* $variant $( ($ty) )? ),*
        }

        impl $name {
            #[doc = concat!(
                "Decodes the ", $what, " of procedure `procedure`; the whole of `bytes` ",
                "must be consumed. An unknown procedure is [`ArgsError::ProcUnavail`], ",
                "anything malformed, over a bound or followed by extra bytes ",
                "[`ArgsError::GarbageArgs`]."
            )]
            pub fn decode(procedure: u32, bytes: Bytes) -> Result<$name, ArgsError> {
                let mut d = Decoder::new(bytes);
                let v = match procedure {
                    $( $proc => procedure_enum!(@decode d, $name, $variant $( ($ty) )?), )*
                    p => return Err(ArgsError::ProcUnavail(p)),
                };
                d.finish()?;
                Ok(v)
            }

            #[doc = concat!("The procedure number these ", $what, " belong to.")]
            pub fn procedure(&self) -> u32 {
                match self {
                    $( $name::$variant { .. } => $proc, )*
                }
            }
        }

        impl XdrEncode for $name {
            fn encode<B: BufMut>(&self, b: &mut B) {
                match self {
                    $( procedure_enum!(@bind $name, $variant, v $( ($ty) )?) => {
                        procedure_enum!(@encode v, b $( ($ty) )?)
                    } )*
                }
            }
            fn encoded_len(&self) -> usize {
                match self {
                    $( procedure_enum!(@bind $name, $variant, v $( ($ty) )?) => {
                        procedure_enum!(@len v $( ($ty) )?)
                    } )*
                }
            }
        }
    };
    (@decode $d:ident, $name:ident, $variant:ident ($ty:ty)) => {
        $name::$variant($d.decode::<$ty>()?)
    };
    (@decode $d:ident, $name:ident, $variant:ident) => { $name::$variant };
    (@bind $name:ident, $variant:ident, $v:ident ($ty:ty)) => { $name::$variant($v) };
    (@bind $name:ident, $variant:ident, $v:ident) => { $name::$variant };
    (@encode $v:ident, $b:ident ($ty:ty)) => { XdrEncode::encode($v, $b) };
    (@encode $v:ident, $b:ident) => { () };
    (@len $v:ident ($ty:ty)) => { XdrEncode::encoded_len($v) };
    (@len $v:ident) => { 0 };
}

pub mod nsm;

/// Program number of the Network Lock Manager.
pub const NLM_PROG: u32 = 100_021;
/// NLM version 4, the one that goes with NFSv3 (the only version described here).
pub const NLM4_VERS: u32 = 4;

/// Longest `caller_name` of a lock or share request (bytes).
pub const LM_MAXSTRLEN: usize = 1024;
/// Longest host name in [`nlm4_notify`] (FREE_ALL's argument): `LM_MAXSTRLEN + 1` bytes.
pub const LM_MAXNAMELEN: usize = LM_MAXSTRLEN + 1;
/// Largest [`netobj`] (bytes): cookies, lock owners and, in version 4, file handles.
pub const MAXNETOBJ_SZ: usize = 1024;

pub const NLMPROC4_NULL: u32 = 0;
pub const NLMPROC4_TEST: u32 = 1;
pub const NLMPROC4_LOCK: u32 = 2;
pub const NLMPROC4_CANCEL: u32 = 3;
pub const NLMPROC4_UNLOCK: u32 = 4;
pub const NLMPROC4_GRANTED: u32 = 5;
pub const NLMPROC4_TEST_MSG: u32 = 6;
pub const NLMPROC4_LOCK_MSG: u32 = 7;
pub const NLMPROC4_CANCEL_MSG: u32 = 8;
pub const NLMPROC4_UNLOCK_MSG: u32 = 9;
pub const NLMPROC4_GRANTED_MSG: u32 = 10;
pub const NLMPROC4_TEST_RES: u32 = 11;
pub const NLMPROC4_LOCK_RES: u32 = 12;
pub const NLMPROC4_CANCEL_RES: u32 = 13;
pub const NLMPROC4_UNLOCK_RES: u32 = 14;
pub const NLMPROC4_GRANTED_RES: u32 = 15;
pub const NLMPROC4_SHARE: u32 = 20;
pub const NLMPROC4_UNSHARE: u32 = 21;
pub const NLMPROC4_NM_LOCK: u32 = 22;
pub const NLMPROC4_FREE_ALL: u32 = 23;

/// Not an NLM v4 procedure: the number Linux's lockd registers (in NLM versions 1, 3 and 4) for
/// the status monitor's reboot callback, and passes to `rpc.statd` in SM_MON's [`nsm::my_id`]
/// (`my_prog` 100021, `my_vers` 3, `my_proc` 16). Its argument is [`nsm::status`]. FreeBSD's
/// lock manager uses NLM version 0 (`NLM_SM`), procedure 1, instead. [`Args::decode`] reports it
/// as unavailable; a server that wants the callback decodes [`nsm::status`] itself.
pub const NLMPROC_NSM_NOTIFY: u32 = 16;

/// An opaque object of at most [`MAXNETOBJ_SZ`] bytes: a cookie, a lock owner handle (`oh`), or a
/// file handle.
///
/// For version 4, the file handle `fh` is an NFSv3 handle (at most 64 bytes, RFC 1813), but the
/// `.x` types it as `netobj`, so it is bounded here at [`MAXNETOBJ_SZ`] like any netobj; a server
/// checks the real handle size when it turns `fh` into a file.
pub type netobj = Opaque<MAXNETOBJ_SZ>;

xdr_enum! {
    /// Status of an NLM v4 call.
    pub enum nlm4_stats {
        /// The call succeeded (the lock was granted, released or cancelled).
        NLM4_GRANTED = 0,
        /// A conflicting lock is held.
        NLM4_DENIED = 1,
        /// The server is out of lock resources.
        NLM4_DENIED_NOLOCKS = 2,
        /// A blocking lock could not be granted yet; GRANTED will follow.
        NLM4_BLOCKED = 3,
        /// The server is in its grace period after a reboot; only reclaims are accepted.
        NLM4_DENIED_GRACE_PERIOD = 4,
        /// Granting the lock would deadlock.
        NLM4_DEADLCK = 5,
        /// The file system is read-only.
        NLM4_ROFS = 6,
        /// The file handle is stale.
        NLM4_STALE_FH = 7,
        /// Offset or length is too large.
        NLM4_FBIG = 8,
        /// Any other failure.
        NLM4_FAILED = 9,
    }
}

xdr_struct! {
    /// Who holds the lock that conflicts with a TEST (the `NLM4_DENIED` arm of [`nlm4_testrply`]).
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct nlm4_holder {
        pub exclusive: bool,
        pub svid: i32,
        pub oh: netobj,
        pub l_offset: u64,
        pub l_len: u64,
    }
}

/// TEST's answer: a union on [`nlm4_stats`] whose `NLM4_DENIED` arm carries the conflicting
/// holder; every other status carries nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum nlm4_testrply {
    /// `NLM4_DENIED`: the lock that conflicts.
    Denied(nlm4_holder),
    /// Any status but `NLM4_DENIED` (usually `NLM4_GRANTED`: no conflict). Encoding
    /// `Status(NLM4_DENIED)` would produce an undecodable reply.
    Status(nlm4_stats),
}

impl nlm4_testrply {
    /// The discriminant.
    pub fn stat(&self) -> nlm4_stats {
        match self {
            nlm4_testrply::Denied(_) => nlm4_stats::NLM4_DENIED,
            nlm4_testrply::Status(s) => *s,
        }
    }
}

impl XdrDecode for nlm4_testrply {
    fn decode(d: &mut Decoder) -> rnfs_xdr::Result<Self> {
        match nlm4_stats::decode(d)? {
            nlm4_stats::NLM4_DENIED => Ok(nlm4_testrply::Denied(d.decode()?)),
            s => Ok(nlm4_testrply::Status(s)),
        }
    }
}
impl XdrEncode for nlm4_testrply {
    fn encode<B: BufMut>(&self, b: &mut B) {
        self.stat().encode(b);
        if let nlm4_testrply::Denied(h) = self {
            h.encode(b);
        }
    }
    fn encoded_len(&self) -> usize {
        4 + match self {
            nlm4_testrply::Denied(h) => h.encoded_len(),
            nlm4_testrply::Status(_) => 0,
        }
    }
}

xdr_struct! {
    /// A bare status (the `stat` of [`nlm4_res`]).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct nlm4_stat {
        pub stat: nlm4_stats,
    }
}

xdr_struct! {
    /// The result of LOCK, CANCEL, UNLOCK, GRANTED and NM_LOCK (and the argument of their `_RES`
    /// procedures): the caller's cookie, echoed, and a status.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct nlm4_res {
        pub cookie: netobj,
        pub stat: nlm4_stat,
    }
}

xdr_struct! {
    /// The result of TEST (and the argument of TEST_RES).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct nlm4_testres {
        pub cookie: netobj,
        pub test_stat: nlm4_testrply,
    }
}

xdr_struct! {
    /// A byte range of a file, and who locks it: the client host (`caller_name`), the lock owner
    /// (`oh`, opaque to the server) and the process (`svid`). A length of 0 means "to the end of
    /// the file, however large it grows".
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct nlm4_lock {
        pub caller_name: Opaque<LM_MAXSTRLEN>,
        pub fh: netobj,
        pub oh: netobj,
        pub svid: i32,
        pub l_offset: u64,
        pub l_len: u64,
    }
}

xdr_struct! {
    /// Arguments of LOCK, LOCK_MSG and NM_LOCK. `state` is the caller's NSM state number.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct nlm4_lockargs {
        pub cookie: netobj,
        pub block: bool,
        pub exclusive: bool,
        pub alock: nlm4_lock,
        pub reclaim: bool,
        pub state: i32,
    }
}

xdr_struct! {
    /// Arguments of CANCEL and CANCEL_MSG: the blocked LOCK to give up.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct nlm4_cancargs {
        pub cookie: netobj,
        pub block: bool,
        pub exclusive: bool,
        pub alock: nlm4_lock,
    }
}

xdr_struct! {
    /// Arguments of TEST and TEST_MSG, and of GRANTED and GRANTED_MSG (server to client).
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct nlm4_testargs {
        pub cookie: netobj,
        pub exclusive: bool,
        pub alock: nlm4_lock,
    }
}

xdr_struct! {
    /// Arguments of UNLOCK and UNLOCK_MSG.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct nlm4_unlockargs {
        pub cookie: netobj,
        pub alock: nlm4_lock,
    }
}

xdr_enum! {
    /// What a share reservation denies to others (bit-encoded: read = 1, write = 2).
    pub enum fsh4_mode {
        /// Deny none.
        fsm_DN = 0,
        /// Deny read.
        fsm_DR = 1,
        /// Deny write.
        fsm_DW = 2,
        /// Deny read and write.
        fsm_DRW = 3,
    }
}

xdr_enum! {
    /// The access a share reservation asks for (bit-encoded: read = 1, write = 2).
    pub enum fsh4_access {
        /// No access (for completeness).
        fsa_NONE = 0,
        /// Read only.
        fsa_R = 1,
        /// Write only.
        fsa_W = 2,
        /// Read and write.
        fsa_RW = 3,
    }
}

xdr_struct! {
    /// A DOS-style share reservation on a whole file.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct nlm4_share {
        pub caller_name: Opaque<LM_MAXSTRLEN>,
        pub fh: netobj,
        pub oh: netobj,
        pub mode: fsh4_mode,
        pub access: fsh4_access,
    }
}

xdr_struct! {
    /// Arguments of SHARE and UNSHARE.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct nlm4_shareargs {
        pub cookie: netobj,
        pub share: nlm4_share,
        pub reclaim: bool,
    }
}

xdr_struct! {
    /// The result of SHARE and UNSHARE.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct nlm4_shareres {
        pub cookie: netobj,
        pub stat: nlm4_stats,
        pub sequence: i32,
    }
}

xdr_struct! {
    /// FREE_ALL's argument: host `name` rebooted (its new NSM `state`); drop all its locks and
    /// shares.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct nlm4_notify {
        pub name: Opaque<LM_MAXNAMELEN>,
        pub state: i32,
    }
}

procedure_enum! {
    /// The arguments of any NLM v4 procedure.
    pub enum Args ("arguments") {
        Null = NLMPROC4_NULL,
        Test(nlm4_testargs) = NLMPROC4_TEST,
        Lock(nlm4_lockargs) = NLMPROC4_LOCK,
        Cancel(nlm4_cancargs) = NLMPROC4_CANCEL,
        Unlock(nlm4_unlockargs) = NLMPROC4_UNLOCK,
        /// Server to client: the blocked lock described is now granted.
        Granted(nlm4_testargs) = NLMPROC4_GRANTED,
        TestMsg(nlm4_testargs) = NLMPROC4_TEST_MSG,
        LockMsg(nlm4_lockargs) = NLMPROC4_LOCK_MSG,
        CancelMsg(nlm4_cancargs) = NLMPROC4_CANCEL_MSG,
        UnlockMsg(nlm4_unlockargs) = NLMPROC4_UNLOCK_MSG,
        GrantedMsg(nlm4_testargs) = NLMPROC4_GRANTED_MSG,
        /// The answer to a TEST_MSG, sent as a call.
        TestRes(nlm4_testres) = NLMPROC4_TEST_RES,
        LockRes(nlm4_res) = NLMPROC4_LOCK_RES,
        CancelRes(nlm4_res) = NLMPROC4_CANCEL_RES,
        UnlockRes(nlm4_res) = NLMPROC4_UNLOCK_RES,
        GrantedRes(nlm4_res) = NLMPROC4_GRANTED_RES,
        Share(nlm4_shareargs) = NLMPROC4_SHARE,
        Unshare(nlm4_shareargs) = NLMPROC4_UNSHARE,
        /// LOCK without status monitoring (for clients that do not run NSM); never blocks.
        NmLock(nlm4_lockargs) = NLMPROC4_NM_LOCK,
        FreeAll(nlm4_notify) = NLMPROC4_FREE_ALL,
    }
}

procedure_enum! {
    /// The results of any NLM v4 procedure (`void` for NULL, the `_MSG` and `_RES` procedures and
    /// FREE_ALL).
    pub enum Res ("results") {
        Null = NLMPROC4_NULL,
        Test(nlm4_testres) = NLMPROC4_TEST,
        Lock(nlm4_res) = NLMPROC4_LOCK,
        Cancel(nlm4_res) = NLMPROC4_CANCEL,
        Unlock(nlm4_res) = NLMPROC4_UNLOCK,
        /// The client's answer to a GRANTED call (decoded by the server, which made the call).
        Granted(nlm4_res) = NLMPROC4_GRANTED,
        TestMsg = NLMPROC4_TEST_MSG,
        LockMsg = NLMPROC4_LOCK_MSG,
        CancelMsg = NLMPROC4_CANCEL_MSG,
        UnlockMsg = NLMPROC4_UNLOCK_MSG,
        GrantedMsg = NLMPROC4_GRANTED_MSG,
        TestRes = NLMPROC4_TEST_RES,
        LockRes = NLMPROC4_LOCK_RES,
        CancelRes = NLMPROC4_CANCEL_RES,
        UnlockRes = NLMPROC4_UNLOCK_RES,
        GrantedRes = NLMPROC4_GRANTED_RES,
        Share(nlm4_shareres) = NLMPROC4_SHARE,
        Unshare(nlm4_shareres) = NLMPROC4_UNSHARE,
        NmLock(nlm4_res) = NLMPROC4_NM_LOCK,
        FreeAll = NLMPROC4_FREE_ALL,
    }
}

#[cfg(test)]
mod tests;
