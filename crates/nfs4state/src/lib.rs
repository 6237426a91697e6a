//! A sans-I/O NFSv4.1 state machine: client records, sessions and their slot reply cache,
//! leases with courtesy clients, open and lock stateids, and the grace period (RFC 8881).
//!
//! It does no I/O, reads no clock (every call that needs the time takes `now_ms`), starts no
//! thread and has no async, like quinn-proto and the sibling crate `rnfs-locks`. It knows no XDR:
//! the server decodes the wire, calls in with plain Rust values and encodes what comes back. The
//! server keeps one [`Nfs4State`] behind one mutex. Every table is bounded by [`Limits`].
//!
//! # What it decides and what it leaves to the server
//! * **Clients** (§2.4, EXCHANGE_ID §18.35, DESTROY_CLIENTID §18.50): the case analysis of
//!   §18.35.4 over (owner, verifier, principal, update flag); a record is confirmed by its first
//!   CREATE_SESSION. Clientids carry the boot epoch in their high 32 bits, so an earlier
//!   instance's are recognised (NFS4ERR_STALE_CLIENTID).
//! * **Sessions** (§2.10, CREATE_SESSION §18.36 with its own one-slot replay cache §18.36.4,
//!   DESTROY_SESSION §18.37, BIND_CONN_TO_SESSION §18.34, BACKCHANNEL_CTL §18.33): channel
//!   attributes negotiated down to the limits, connections bound per direction (a SEQUENCE on an
//!   unbound connection binds it, §2.10.3.1, as only SP4_NONE state protection is offered), the
//!   back channel remembered for callbacks.
//! * **SEQUENCE and the reply cache** (§2.10.6, §18.46): new request, replay of the cached
//!   reply, NFS4ERR_RETRY_UNCACHED_REP, SEQ_MISORDERED, BADSLOT, DELAY; the server stores the
//!   encoded COMPOUND reply with [`Nfs4State::complete`].
//! * **Leases** (§8.3) with courtesy clients (as Linux nfsd's courteous server): a client whose
//!   lease expired keeps its state until [`Limits::courtesy_ms`] passes or the server expires it
//!   (a conflict, an admin); its next SEQUENCE gives its lease back. Purged state is handed back
//!   ([`Released`]) so the server frees it in `rnfs-locks`.
//! * **Stateids** (§8.2, §9.1.4, the seqid-zero rule §8.2.2): open and lock stateids in a
//!   bounded slab; `other` holds the boot epoch, slot index and generation, so lookups are O(1)
//!   and a reused slot is recognised. A client never reaches another client's stateids.
//! * **Grace** (§8.4.2, RECLAIM_COMPLETE §18.51).
//!
//! Byte ranges and share-reservation conflicts are `rnfs-locks`' business: this crate only
//! records who holds which open and lock stateid.
//!
//! # Example
//! ```
//! use rnfs_nfs4state::*;
//!
//! let mut state = Nfs4State::new(0, Config::new(Limits::default(), 7, [9; 16], vec![]))?;
//! let ok = state.exchange_id(0, ExchangeId {
//!     owner: Bytes::from_static(b"linux host-a"),
//!     verifier: [1; 8],
//!     principal: Bytes::from_static(b"sys:0"),
//!     update: false,
//! })?;
//! let session = state.create_session(0, CreateSession {
//!     clientid: ok.clientid,
//!     sequence: ok.sequenceid,
//!     principal: Bytes::from_static(b"sys:0"),
//!     flags: 0,
//!     fore: ChannelAttrs::new(1 << 20, 1 << 20, 4096, 16, 8),
//!     back: ChannelAttrs::new(4096, 4096, 0, 4, 1),
//!     cb_program: 0x4000_0000,
//!     cb_sec: Bytes::new(),
//!     conn: 1,
//!     minor: 1,
//! })?;
//! let seq = |id| Sequence {
//!     sessionid: session.sessionid,
//!     sequenceid: id,
//!     slotid: 0,
//!     highest_slotid: 0,
//!     cachethis: true,
//!     conn: 1,
//!     digest: None,
//! };
//! let SequenceOutcome::Execute(ticket) = state.sequence(5, seq(1))? else { panic!() };
//! state.complete(ticket.sessionid, ticket.slotid, Bytes::from_static(b"reply"), true)?;
//! // A retransmission gets the cached reply.
//! assert_eq!(state.sequence(6, seq(1))?, SequenceOutcome::Replay(Bytes::from_static(b"reply")));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod deleg;
mod error;
mod grace;
mod limits;
mod observe;
mod session;
mod slab;
mod state;
mod stateid;
#[cfg(test)]
mod tests;

pub use bytes::Bytes;
pub use client::{ExchangeId, ExchangeIdOk};
pub use deleg::{Breaks, DelegInfo, NoDeleg, Recall};
pub use error::Error;
pub use limits::{Limits, LimitsError};
pub use observe::{ClientInfo, Counters, Usage};
pub use session::{
    Backchannel, BindDir, CbUnavailable, ChannelAttrs, ConnDir, CreateSession, CreateSessionOk,
    Sequence, SequenceOutcome, Ticket, CHANNEL_BYTES_MIN, CHANNEL_OPS_MIN,
};
pub use state::{Config, Expiry, Nfs4State, PurgeReason, Released};
pub use stateid::{Closed, OpenResult, StateInfo, StateKind, StateRef};

/// A client record: the clientid4 on the wire. The high 32 bits are the server instance's boot
/// epoch, the low 32 bits a counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(pub u64);

impl ClientId {
    /// The boot epoch of the instance that handed it out.
    pub fn epoch(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

/// A sessionid4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub [u8; 16]);

/// A stateid4 (RFC 8881 §8.2): `seqid` counts changes, `other` names the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Stateid {
    /// Incremented on each change of the state; 0 in a request means "the current one".
    pub seqid: u32,
    /// The boot epoch, the slab index and the slot's generation, 4 bytes each, big-endian.
    pub other: [u8; 12],
}

/// EXCHGID4_FLAG_UPD_CONFREC_A (RFC 8881 §18.35.1).
pub const EXCHGID4_FLAG_UPD_CONFREC_A: u32 = 0x4000_0000;
/// EXCHGID4_FLAG_CONFIRMED_R (RFC 8881 §18.35.1).
pub const EXCHGID4_FLAG_CONFIRMED_R: u32 = 0x8000_0000;
/// CREATE_SESSION4_FLAG_PERSIST (§18.36.1): never granted, the reply cache is in memory.
pub const CREATE_SESSION4_FLAG_PERSIST: u32 = 0x1;
/// CREATE_SESSION4_FLAG_CONN_BACK_CHAN (§18.36.1): the connection carries the back channel too.
pub const CREATE_SESSION4_FLAG_CONN_BACK_CHAN: u32 = 0x2;
/// CREATE_SESSION4_FLAG_CONN_RDMA (§18.36.1): never granted.
pub const CREATE_SESSION4_FLAG_CONN_RDMA: u32 = 0x4;
/// SEQ4_STATUS_CB_PATH_DOWN (§18.46.3): the client asked for a back channel and none of its
/// sessions has a back connection bound.
pub const SEQ4_STATUS_CB_PATH_DOWN: u32 = 0x1;
/// SEQ4_STATUS_ADMIN_STATE_REVOKED (§18.46.3): some of the client's stateids were revoked by
/// [`Nfs4State::revoke`] and not yet freed by FREE_STATEID.
pub const SEQ4_STATUS_ADMIN_STATE_REVOKED: u32 = 0x20;
/// SEQ4_STATUS_RECALLABLE_STATE_REVOKED (§18.46.3): some of the client's delegations were
/// revoked (not returned in time); cleared when it frees them.
pub const SEQ4_STATUS_RECALLABLE_STATE_REVOKED: u32 = 0x40;
/// SEQ4_STATUS_CB_PATH_DOWN_SESSION (§18.46.3): this session wants a back channel and has no
/// back connection bound.
pub const SEQ4_STATUS_CB_PATH_DOWN_SESSION: u32 = 0x200;
/// OPEN4_SHARE_ACCESS_BOTH: the share access bits this crate accepts (READ 1, WRITE 2).
pub const OPEN4_SHARE_ACCESS_BOTH: u32 = 3;
/// OPEN4_SHARE_DENY_BOTH: the share deny bits this crate accepts (READ 1, WRITE 2).
pub const OPEN4_SHARE_DENY_BOTH: u32 = 3;
