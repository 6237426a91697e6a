//! Blocked requests: the FIFO queue per file, granting when locks go away, CANCEL, deadlock
//! detection, and retrying requests blocked by a local (external) lock.

use std::collections::BTreeSet;

use crate::manager::Ids;
use crate::{
    FileId, Granted, Limit, LockKind, LockManager, LockOutcome, Mirror, OwnerId, Range, Target,
    WaiterId,
};

/// A queued blocking request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Waiter {
    pub ids: Ids,
    pub kind: LockKind,
    pub range: Range,
    pub since_ms: u64,
    /// The last attempt failed only because of a lock outside the manager: nothing the manager
    /// sees will wake it, so [`LockManager::retry_external`] polls it.
    pub external: bool,
}

impl LockManager {
    /// CANCEL (NLM4_CANCEL): removes `target`'s queued request for `kind` over `range`. Returns
    /// whether there was one. Waiters do not block each other, so this grants nothing.
    pub fn cancel(&mut self, target: &Target, kind: LockKind, range: Range) -> bool {
        let Some(ids) = self.lookup(target) else {
            return false;
        };
        let Some(waiter) = self.find_waiter(ids, kind, range) else {
            return false;
        };
        self.remove_waiter(waiter);
        self.counters.cancels += 1;
        self.collect_owner(ids.owner);
        self.collect_file(ids.file);
        true
    }

    /// Re-tries the requests blocked only by locks outside the manager (the [`Mirror`] refused
    /// them). Nothing inside the manager signals when a local process unlocks, so the server calls
    /// this from a timer. Returns the waiters granted.
    pub fn retry_external(&mut self, now_ms: u64, mirror: &mut dyn Mirror) -> Vec<Granted> {
        let files: BTreeSet<FileId> = self
            .waiters
            .values()
            .filter(|w| w.external)
            .map(|w| w.ids.file)
            .collect();
        let granted: Vec<Granted> = files
            .into_iter()
            .flat_map(|file| self.regrant(now_ms, file, mirror))
            .collect();
        self.counters.waiter_grants += granted.len() as u64;
        granted
    }

    /// Tries to grant one queued request now (the server does this for requests blocked by a
    /// lock it can only ask about outside its own lock, such as another server's lock in a
    /// shared file system: it takes that lock first, then calls this with a mirror that reports
    /// the answer). `None`: the waiter is gone, something else is in the way, or the mirror
    /// refused; the waiter stays queued in the latter cases.
    pub fn grant_waiter(
        &mut self,
        now_ms: u64,
        waiter: WaiterId,
        mirror: &mut dyn Mirror,
    ) -> Option<Granted> {
        let granted = self.try_grant(now_ms, waiter, mirror)?;
        self.counters.waiter_grants += 1;
        Some(granted)
    }

    /// The queued request of `ids.owner` on `ids.file` for exactly `kind` over `range`.
    pub(crate) fn find_waiter(&self, ids: Ids, kind: LockKind, range: Range) -> Option<WaiterId> {
        let file = self.files.get(ids.file.0)?;
        file.waiters.iter().copied().find(|id| {
            self.waiters
                .get(id)
                .is_some_and(|w| w.ids.owner == ids.owner && w.kind == kind && w.range == range)
        })
    }

    /// Queues a blocked request at the back of its file's queue.
    pub(crate) fn enqueue(
        &mut self,
        now_ms: u64,
        ids: Ids,
        kind: LockKind,
        range: Range,
        external: bool,
    ) -> LockOutcome {
        if self.waiters.len() >= self.limits.waiters_total_max {
            return LockOutcome::NoLocks(Limit::WaitersTotal);
        }
        let Some(file) = self.files.get_mut(ids.file.0) else {
            return LockOutcome::NoLocks(Limit::Files);
        };
        if file.waiters.len() >= self.limits.waiters_per_file_max {
            return LockOutcome::NoLocks(Limit::WaitersPerFile);
        }
        let id = WaiterId(self.next_waiter);
        self.next_waiter += 1;
        file.waiters.push_back(id);
        if let Some(owner) = self.owners.get_mut(ids.owner.0) {
            owner.waiters.insert(id);
        }
        self.waiters.insert(
            id,
            Waiter {
                ids,
                kind,
                range,
                since_ms: now_ms,
                external,
            },
        );
        LockOutcome::Blocked(id)
    }

    pub(crate) fn remove_waiter(&mut self, id: WaiterId) -> Option<Waiter> {
        let waiter = self.waiters.remove(&id)?;
        if let Some(file) = self.files.get_mut(waiter.ids.file.0) {
            file.waiters.retain(|&w| w != id);
        }
        if let Some(owner) = self.owners.get_mut(waiter.ids.owner.0) {
            owner.waiters.remove(&id);
        }
        Some(waiter)
    }

    /// Grants, in FIFO order, every waiter on `file` that has become possible. A grant can itself
    /// let others through (a waiter's shared lock replacing its own exclusive one), so passes
    /// repeat until one grants nothing; each pass that continues removes a waiter, so this ends.
    pub(crate) fn regrant(
        &mut self,
        now_ms: u64,
        file: FileId,
        mirror: &mut dyn Mirror,
    ) -> Vec<Granted> {
        let mut granted = Vec::new();
        while let Some(state) = self.files.get(file.0) {
            let queue: Vec<WaiterId> = state.waiters.iter().copied().collect();
            let before = granted.len();
            granted.extend(
                queue
                    .into_iter()
                    .filter_map(|id| self.try_grant(now_ms, id, mirror)),
            );
            if granted.len() == before {
                break;
            }
        }
        granted
    }

    fn try_grant(&mut self, now_ms: u64, id: WaiterId, mirror: &mut dyn Mirror) -> Option<Granted> {
        let w = *self.waiters.get(&id)?;
        let set_external = |this: &mut Self, external: bool| {
            if let Some(waiter) = this.waiters.get_mut(&id) {
                waiter.external = external;
            }
        };
        if self
            .find_conflict(w.ids.file, Some(w.ids.owner), w.kind, w.range)
            .is_some()
        {
            set_external(self, false);
            return None;
        }
        let plan = self.plan_lock(w.ids, w.kind, w.range, now_ms);
        // Over a limit the waiter stays queued: a later release may make room.
        self.check_lock_limits(w.ids, plan.delta()).ok()?;
        if self.mirror_acquire(mirror, w.ids, w.kind, w.range).is_err() {
            set_external(self, true);
            return None;
        }
        self.remove_waiter(id);
        self.apply_plan(w.ids, &plan);
        let ids = w.ids;
        Some(Granted {
            waiter: id,
            owner: ids.owner,
            client: ids.client,
            file: ids.file,
            kind: w.kind,
            range: w.range,
        })
    }

    /// The owners whose locks on `file` stand in the way of `me` taking `kind` over `range`.
    fn blockers(&self, file: FileId, me: OwnerId, kind: LockKind, range: Range) -> Vec<OwnerId> {
        let Some(state) = self.files.get(file.0) else {
            return Vec::new();
        };
        let conflicting = |held: &crate::manager::Held| {
            held.segs
                .overlapping(range)
                .any(|(_, seg)| kind.conflicts_with(seg.kind))
        };
        state
            .locks
            .iter()
            .filter(|(&owner, held)| owner != me && conflicting(held))
            .map(|(&o, _)| o)
            .collect()
    }

    /// Whether `me` waiting for `kind` over `range` on `file` would close a cycle in the waits-for
    /// graph (an owner waits for the holders of the locks in its way). The search follows at most
    /// [`Limits::deadlock_depth_max`](crate::Limits::deadlock_depth_max) edges from `me` and
    /// visits each owner once, so its cost is bounded by the waiters in the manager; a longer
    /// cycle goes undetected (the clients' own timeouts break it).
    pub(crate) fn would_deadlock(
        &self,
        me: OwnerId,
        file: FileId,
        kind: LockKind,
        range: Range,
    ) -> bool {
        let mut stack: Vec<(OwnerId, usize)> = self
            .blockers(file, me, kind, range)
            .into_iter()
            .map(|o| (o, 1))
            .collect();
        let mut visited = BTreeSet::new();
        while let Some((owner, depth)) = stack.pop() {
            if owner == me {
                return true;
            }
            if depth >= self.limits.deadlock_depth_max || !visited.insert(owner) {
                continue;
            }
            let Some(state) = self.owners.get(owner.0) else {
                continue;
            };
            for w in state.waiters.iter().filter_map(|id| self.waiters.get(id)) {
                let next = self.blockers(w.ids.file, owner, w.kind, w.range);
                stack.extend(next.into_iter().map(|o| (o, depth + 1)));
            }
        }
        false
    }
}
