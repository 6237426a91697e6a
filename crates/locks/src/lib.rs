//! A sans-I/O byte-range lock manager for NLM v4 (NFSv3 file locking) and NFSv4.1 byte-range
//! locks.
//!
//! It does no I/O, reads no clock (callers pass `now` in milliseconds), starts no thread and has
//! no async: it is a state machine that the server drives from its RPC handlers and a timer, like
//! quinn-proto. Every table it keeps is bounded by [`Limits`].
//!
//! # Semantics implemented
//! * **POSIX `fcntl` record locks** (IEEE Std 1003.1, `fcntl()` F_SETLK/F_GETLK): locks belong to
//!   an owner; an owner's own locks never conflict with each other; a new lock replaces whatever
//!   the owner held in its range (an upgrade or a downgrade, done atomically: an upgrade that
//!   conflicts changes nothing); same-kind ranges that overlap or touch merge; unlocking part of a
//!   range splits it. Two owners conflict when their ranges overlap and one of them is exclusive.
//! * **NLM** (The Open Group, *Protocols for Interworking: XNFS*, chapter 10, and its NLM4
//!   revision): the owner is the caller's (caller_name, svid, oh); blocking requests are queued
//!   and granted later through [`Granted`] events (the server sends NLM_GRANTED); CANCEL,
//!   FREE_ALL/SM_NOTIFY ([`LockManager::free_client`]), SHARE/UNSHARE (DOS share reservations),
//!   the grace period after a restart (NLM4_DENIED_GRACE_PERIOD for non-reclaims and TEST), and
//!   NLM4_DENIED_NOLOCKS when a limit is reached, NLM4_DEADLCK when a wait would close a cycle.
//! * **NFSv4.1 byte-range locking** (RFC 8881 §9 and §18.10–18.12, LOCK/LOCKT/LOCKU): the owner
//!   is the lock-owner (clientid, opaque), the same model; share reservations (§9.7, OPEN's
//!   share_access/share_deny) use [`LockManager::share`]. Lease and stateid handling stay with
//!   the NFSv4 layer, which calls [`LockManager::free_owner`]/[`LockManager::free_client`] when
//!   state expires.
//!
//! # Model
//! Clients, owners and files are named by opaque keys ([`Bytes`]) chosen by the caller, interned
//! into [`ClientId`], [`OwnerId`], [`FileId`]. An id is valid while its entity holds a lock or a
//! share or has a waiter; after that it is forgotten and its number may be reused, so the tables
//! never grow with the number of owners ever seen.
//!
//! Locks are also mirrored into the local file system through the [`Mirror`] hook (OFD locks in
//! the server), so that local processes and NFS clients see each other's locks: the manager asks
//! the mirror after deciding a lock is possible among NFS owners and before committing it.
//!
//! # Example
//! ```
//! use rnfs_locks::{Bytes, Limits, LockKind, LockManager, LockOutcome, LockRequest, NoMirror};
//! use rnfs_locks::{Range, Target};
//!
//! let mut locks = LockManager::new(Limits::default())?;
//! let target = |owner: &'static [u8]| Target {
//!     client: Bytes::from_static(b"host-a"),
//!     owner: Bytes::from_static(owner),
//!     file: Bytes::from_static(b"fh-1"),
//! };
//! let range = Range::from_offset_len(0, 0)?; // the whole file
//! let req = |owner, block| LockRequest {
//!     target: target(owner),
//!     kind: LockKind::Exclusive,
//!     range,
//!     block,
//!     reclaim: false,
//! };
//! let now_ms = 0;
//! let first = locks.lock(now_ms, &req(b"pid 1", false), &mut NoMirror);
//! assert_eq!(first.outcome, LockOutcome::Granted);
//! let second = locks.lock(now_ms, &req(b"pid 2", true), &mut NoMirror);
//! let LockOutcome::Blocked(waiter) = second.outcome else { panic!("pid 1 holds the file") };
//! let granted = locks.unlock(now_ms, &target(b"pid 1"), range, &mut NoMirror)?;
//! assert_eq!(granted[0].waiter, waiter); // the server now sends NLM_GRANTED
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod free;
mod limits;
mod manager;
mod mirror;
mod observe;
mod range;
mod share;
mod table;
mod waiters;

pub use bytes::Bytes;
pub use limits::{Limit, Limits, LimitsError};
pub use manager::LockManager;
pub use mirror::{External, Mirror, NoMirror};
pub use observe::{Counters, LockInfo, ShareInfo, Usage, WaiterInfo};
pub use range::{LockKind, Range, RangeError};
pub use share::{OthersUse, ShareOutcome, ShareRequest, SHARE_READ, SHARE_WRITE};

/// A client (NLM caller_name, NFSv4 clientid), interned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(pub u32);

/// A lock owner under a client (NLM svid + oh, NFSv4 lock-owner), interned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OwnerId(pub u32);

/// A file (its file handle), interned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId(pub u32);

/// A queued blocking request. Never reused within one manager, so the server can map it to the
/// pending request (cookie, callback address) without confusion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WaiterId(pub u64);

/// Who a request acts for and on what: the caller's keys, interned by the manager on first use.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// Client key: NLM caller_name; NFSv4 clientid.
    pub client: Bytes,
    /// Owner key under the client: NLM svid and oh, encoded by the caller; NFSv4 lock-owner.
    pub owner: Bytes,
    /// File key: the file handle.
    pub file: Bytes,
}

/// A LOCK request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockRequest {
    /// Who and what.
    pub target: Target,
    /// Shared or exclusive.
    pub kind: LockKind,
    /// The bytes.
    pub range: Range,
    /// Queue the request if it conflicts (NLM `block`; NFSv4 READW_LT/WRITEW_LT).
    pub block: bool,
    /// A reclaim after a server restart: the only requests allowed during the grace period.
    pub reclaim: bool,
}

/// Who holds a conflicting lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    /// An NFS lock owner known to the manager.
    Owner {
        /// The owner.
        owner: OwnerId,
        /// Its client.
        client: ClientId,
    },
    /// A lock outside the manager (a local process), reported by the [`Mirror`].
    External,
}

/// One lock that stands in the way of a request (NLM4_DENIED's holder, NFS4ERR_DENIED's
/// LOCK4denied).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// Who holds it.
    pub holder: Holder,
    /// Its kind.
    pub kind: LockKind,
    /// Its range.
    pub range: Range,
}

/// The answer to [`LockManager::lock`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockOutcome {
    /// The lock is held (NLM4_GRANTED).
    Granted,
    /// A conflicting lock is held and the request did not block (NLM4_DENIED).
    Denied(Conflict),
    /// The request is queued; a [`Granted`] event with this id will say when it is held
    /// (NLM4_BLOCKED).
    Blocked(WaiterId),
    /// Waiting would close a cycle of owners waiting for each other (NLM4_DEADLCK).
    Deadlock,
    /// The server is in its grace period and the request is not a reclaim
    /// (NLM4_DENIED_GRACE_PERIOD).
    GracePeriod,
    /// A limit was reached (NLM4_DENIED_NOLOCKS); nothing changed.
    NoLocks(Limit),
}

/// The answer to [`LockManager::lock`]: the outcome, and the waiters that a downgrade in place
/// let through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockReply {
    /// What happened to the request.
    pub outcome: LockOutcome,
    /// Waiters granted as a consequence (only after a downgrade).
    pub granted: Vec<Granted>,
}

/// The answer to [`LockManager::test`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestOutcome {
    /// The lock could be granted now.
    Free,
    /// It could not: one of the holders in the way.
    Conflict(Conflict),
    /// The server is in its grace period (NLM4 answers TEST with NLM4_DENIED_GRACE_PERIOD).
    GracePeriod,
}

/// A queued request that has been granted: the lock is already held on its behalf. The server
/// sends the GRANTED callback; if that ultimately fails it calls [`LockManager::unlock`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Granted {
    /// The id returned in [`LockOutcome::Blocked`].
    pub waiter: WaiterId,
    /// The owner now holding the lock.
    pub owner: OwnerId,
    /// Its client.
    pub client: ClientId,
    /// The file.
    pub file: FileId,
    /// The kind granted.
    pub kind: LockKind,
    /// The range granted.
    pub range: Range,
}
