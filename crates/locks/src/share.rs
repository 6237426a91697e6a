//! Share reservations: NLM SHARE/UNSHARE (DOS share modes), later NFSv4 OPEN's
//! share_access/share_deny (RFC 8881 §9.7). They are independent of byte-range locks.

use crate::{ClientId, Limit, LockManager, OwnerId, Target};

/// Access or deny bit: read.
pub const SHARE_READ: u8 = 1;
/// Access or deny bit: write.
pub const SHARE_WRITE: u8 = 2;
const SHARE_BITS: u8 = SHARE_READ | SHARE_WRITE;

/// A SHARE request. `access` and `deny` are masks of [`SHARE_READ`] and [`SHARE_WRITE`] (the
/// encodings of NLM's fsh_access/fsh_mode and of NFSv4's share_access/share_deny low bits); other
/// bits are ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareRequest {
    /// Who and what.
    pub target: Target,
    /// What the owner will do.
    pub access: u8,
    /// What the owner forbids others.
    pub deny: u8,
    /// A reclaim after a server restart (allowed during the grace period).
    pub reclaim: bool,
}

/// The answer to [`LockManager::share`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShareOutcome {
    /// The reservation is held (replacing the owner's previous one on the file).
    Granted,
    /// Another owner's reservation conflicts.
    Denied {
        /// That owner.
        owner: OwnerId,
        /// Its client.
        client: ClientId,
    },
    /// Grace period and not a reclaim.
    GracePeriod,
    /// A limit was reached; nothing changed.
    NoLocks(Limit),
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Share {
    pub client: ClientId,
    pub access: u8,
    pub deny: u8,
    pub since_ms: u64,
}

impl LockManager {
    /// SHARE (NLM4_SHARE): takes a share reservation for `req.target`'s owner, replacing the one
    /// it had on the file. It conflicts with another owner's reservation when its access meets
    /// the other's deny, or its deny meets the other's access.
    pub fn share(&mut self, now_ms: u64, req: &ShareRequest) -> ShareOutcome {
        let outcome = self.share_interning(now_ms, req);
        let c = &mut self.counters;
        match outcome {
            ShareOutcome::Granted => c.share_grants += 1,
            ShareOutcome::Denied { .. } => c.share_denials += 1,
            ShareOutcome::GracePeriod => c.grace_refusals += 1,
            ShareOutcome::NoLocks(_) => c.nolocks_refusals += 1,
        }
        outcome
    }

    fn share_interning(&mut self, now_ms: u64, req: &ShareRequest) -> ShareOutcome {
        if !req.reclaim && self.in_grace(now_ms) {
            return ShareOutcome::GracePeriod;
        }
        let ids = match self.intern(&req.target) {
            Ok(ids) => ids,
            Err(limit) => return ShareOutcome::NoLocks(limit),
        };
        let share = Share {
            client: ids.client,
            access: req.access & SHARE_BITS,
            deny: req.deny & SHARE_BITS,
            since_ms: now_ms,
        };
        let outcome = self.place_share(ids.owner, ids.file, share);
        self.collect_owner(ids.owner);
        self.collect_file(ids.file);
        outcome
    }

    fn place_share(&mut self, owner: OwnerId, file: crate::FileId, share: Share) -> ShareOutcome {
        let shares_max = self.limits.shares_total_max;
        let Some(state) = self.files.get_mut(file.0) else {
            return ShareOutcome::NoLocks(Limit::Files);
        };
        let conflict = state.shares.iter().find(|(&other, s)| {
            other != owner && (share.access & s.deny != 0 || share.deny & s.access != 0)
        });
        if let Some((&other, s)) = conflict {
            return ShareOutcome::Denied {
                owner: other,
                client: s.client,
            };
        }
        let replacing = state.shares.contains_key(&owner);
        if !replacing && self.shares_total >= shares_max {
            return ShareOutcome::NoLocks(Limit::SharesTotal);
        }
        state.shares.insert(owner, share);
        if !replacing {
            self.shares_total += 1;
        }
        if let Some(o) = self.owners.get_mut(owner.0) {
            o.share_files.insert(file);
        }
        ShareOutcome::Granted
    }

    /// UNSHARE (NLM4_UNSHARE): drops `target`'s owner's reservation on the file. Returns whether
    /// there was one.
    pub fn unshare(&mut self, target: &Target) -> bool {
        let Some(ids) = self.lookup(target) else {
            return false;
        };
        let removed = self.remove_share(ids.owner, ids.file);
        self.collect_owner(ids.owner);
        self.collect_file(ids.file);
        removed
    }

    pub(crate) fn remove_share(&mut self, owner: OwnerId, file: crate::FileId) -> bool {
        let removed = self
            .files
            .get_mut(file.0)
            .is_some_and(|f| f.shares.remove(&owner).is_some());
        if removed {
            self.shares_total = self.shares_total.saturating_sub(1);
        }
        if let Some(o) = self.owners.get_mut(owner.0) {
            o.share_files.remove(&file);
        }
        removed
    }
}

/// What clients other than one make of a file ([`LockManager::used_by_others`]): what an
/// NFSv4 server checks before it delegates the file (RFC 8881 §10.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OthersUse {
    /// The union of their share reservations' access bits ([`SHARE_READ`], [`SHARE_WRITE`]).
    pub access: u8,
    /// The union of their share reservations' deny bits.
    pub deny: u8,
    /// They hold byte-range locks on it.
    pub locks: bool,
}

impl LockManager {
    /// The shares and locks on the file with key `file` of every client but the one with key
    /// `client`.
    pub fn used_by_others(&self, file: &[u8], client: &[u8]) -> OthersUse {
        let mut out = OthersUse::default();
        let Some(state) = self.file_id(file).and_then(|f| self.files.get(f.0)) else {
            return out;
        };
        let me = self.client_id(client);
        for s in state.shares.values().filter(|s| Some(s.client) != me) {
            out.access |= s.access;
            out.deny |= s.deny;
        }
        out.locks = state.locks.values().any(|h| Some(h.client) != me);
        out
    }
}
