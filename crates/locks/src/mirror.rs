//! The hook through which locks are mirrored into the local file system.

use bytes::Bytes;

use crate::{FileId, LockKind, OwnerId, Range};

/// A lock held outside the manager (by a local process) that stands in the way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct External {
    /// The kind of the external lock; [`LockKind::Exclusive`] when unknown.
    pub kind: LockKind,
    /// Its range; the requested range when unknown.
    pub range: Range,
}

/// Mirrors the manager's locks into the local file system (OFD locks in the server), so local
/// processes and NFS clients exclude each other.
///
/// The manager calls [`acquire`](Mirror::acquire) after it has decided that a lock is possible
/// among NFS owners and before it commits the lock: an `Err` makes it commit nothing. It calls
/// [`release`](Mirror::release) for exactly the byte ranges an owner stops holding (unlock, free,
/// a failed grant is never released since it was never acquired).
///
/// Rules for implementations:
/// * **Never sleep**: use `F_OFD_SETLK`, never `F_OFD_SETLKW`. The manager is a state machine
///   called from request handlers; a conflict is reported, and the manager retries blocked
///   requests itself ([`LockManager::retry_external`](crate::LockManager::retry_external)).
/// * Keep one open file description per (file, owner): the kernel merges and splits the ranges of
///   one description just as the manager does for one owner (an acquire over held ranges replaces
///   them: upgrade/downgrade in place), so the two stay identical. One description shared by
///   several owners would let one owner's unlock drop another's lock in the kernel.
pub trait Mirror {
    /// Takes `kind` over `range` for `owner` on the local file. Must be atomic: on `Err` the
    /// owner's local locks are unchanged.
    fn acquire(
        &mut self,
        file: FileId,
        file_key: &Bytes,
        owner: OwnerId,
        kind: LockKind,
        range: Range,
    ) -> Result<(), External>;

    /// Drops `owner`'s local lock over `range` (the owner holds nothing there any more).
    fn release(&mut self, file: FileId, file_key: &Bytes, owner: OwnerId, range: Range);
}

/// A [`Mirror`] that mirrors nothing: for tests and servers that do not share their files with
/// local processes.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoMirror;

impl Mirror for NoMirror {
    fn acquire(
        &mut self,
        _: FileId,
        _: &Bytes,
        _: OwnerId,
        _: LockKind,
        _: Range,
    ) -> Result<(), External> {
        Ok(())
    }

    fn release(&mut self, _: FileId, _: &Bytes, _: OwnerId, _: Range) {}
}
