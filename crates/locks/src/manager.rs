//! The manager: interning, LOCK, UNLOCK, TEST, the grace period, frees.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use bytes::Bytes;

use crate::observe::Counters;
use crate::range::{Plan, Segs};
use crate::share::Share;
use crate::table::Table;
use crate::waiters::Waiter;
use crate::{
    ClientId, Conflict, FileId, Granted, Holder, Limit, Limits, LimitsError, LockKind, LockOutcome,
    LockReply, LockRequest, Mirror, OwnerId, Range, Target, TestOutcome, WaiterId,
};

/// The lock manager. See the [crate documentation](crate) for the semantics.
#[derive(Debug)]
pub struct LockManager {
    pub(crate) limits: Limits,
    pub(crate) client_ids: HashMap<Bytes, ClientId>,
    pub(crate) clients: Table<ClientState>,
    pub(crate) owners: Table<OwnerState>,
    pub(crate) file_ids: HashMap<Bytes, FileId>,
    pub(crate) files: Table<FileState>,
    pub(crate) waiters: BTreeMap<WaiterId, Waiter>,
    pub(crate) next_waiter: u64,
    pub(crate) locks_total: usize,
    pub(crate) shares_total: usize,
    /// The grace period lasts while `now < grace_end_ms`; 0 means no grace period.
    grace_end_ms: u64,
    /// A grace period another server started (the heads of a cluster share theirs): only
    /// reclaims are granted here too while it lasts.
    cluster_grace: bool,
    pub(crate) counters: Counters,
}

#[derive(Debug)]
pub(crate) struct ClientState {
    pub key: Bytes,
    pub owner_ids: HashMap<Bytes, OwnerId>,
    pub lock_count: usize,
}

#[derive(Debug)]
pub(crate) struct OwnerState {
    pub key: Bytes,
    pub client: ClientId,
    /// Files where the owner holds at least one range.
    pub lock_files: BTreeSet<FileId>,
    /// Files where the owner has a share reservation.
    pub share_files: BTreeSet<FileId>,
    pub waiters: BTreeSet<WaiterId>,
}

/// One owner's locks on one file, with its client so conflicts can name it without a lookup.
#[derive(Debug)]
pub(crate) struct Held {
    pub client: ClientId,
    pub segs: Segs,
}

#[derive(Debug)]
pub(crate) struct FileState {
    pub key: Bytes,
    pub locks: BTreeMap<OwnerId, Held>,
    pub lock_count: usize,
    pub shares: BTreeMap<OwnerId, Share>,
    /// FIFO: the order in which blocked requests are reconsidered.
    pub waiters: VecDeque<WaiterId>,
}

/// The interned ids of a [`Target`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ids {
    pub client: ClientId,
    pub owner: OwnerId,
    pub file: FileId,
}

impl LockManager {
    /// A manager with no state, bounded by `limits`.
    pub fn new(limits: Limits) -> Result<Self, LimitsError> {
        limits.validate()?;
        Ok(Self {
            limits,
            client_ids: HashMap::new(),
            clients: Table::default(),
            owners: Table::default(),
            file_ids: HashMap::new(),
            files: Table::default(),
            waiters: BTreeMap::new(),
            next_waiter: 1,
            locks_total: 0,
            shares_total: 0,
            grace_end_ms: 0,
            cluster_grace: false,
            counters: Counters::default(),
        })
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Starts (or restarts) the grace period after a server restart: until `now_ms + duration_ms`
    /// only reclaims are granted. After it, a request marked `reclaim` is treated as a normal one
    /// (NLM clients may send a late reclaim; it is granted if nothing conflicts).
    pub fn start_grace(&mut self, now_ms: u64, duration_ms: u64) {
        self.grace_end_ms = now_ms.saturating_add(duration_ms);
    }

    /// Whether a grace period is running: this server's own, or its cluster's.
    pub fn in_grace(&self, now_ms: u64) -> bool {
        self.in_own_grace(now_ms) || self.cluster_grace
    }

    /// Whether this server's own grace period (after its restart) is running.
    pub fn in_own_grace(&self, now_ms: u64) -> bool {
        now_ms < self.grace_end_ms
    }

    /// Turns on or off the grace period of the server's cluster (another head restarted: its
    /// clients are reclaiming there, so nothing new is granted here either).
    pub fn set_cluster_grace(&mut self, on: bool) {
        self.cluster_grace = on;
    }

    /// LOCK (NLM4_LOCK, NFSv4 LOCK). See [`LockOutcome`] for the answers; [`LockReply::granted`]
    /// lists waiters that a downgrade let through.
    pub fn lock(&mut self, now_ms: u64, req: &LockRequest, mirror: &mut dyn Mirror) -> LockReply {
        let reply = self.lock_interning(now_ms, req, mirror);
        let c = &mut self.counters;
        match reply.outcome {
            LockOutcome::Granted => c.grants += 1,
            LockOutcome::Denied(_) => c.denials += 1,
            LockOutcome::Blocked(_) => c.blocks += 1,
            LockOutcome::Deadlock => c.deadlocks += 1,
            LockOutcome::GracePeriod => c.grace_refusals += 1,
            LockOutcome::NoLocks(_) => c.nolocks_refusals += 1,
        }
        c.waiter_grants += reply.granted.len() as u64;
        reply
    }

    fn lock_interning(
        &mut self,
        now_ms: u64,
        req: &LockRequest,
        mirror: &mut dyn Mirror,
    ) -> LockReply {
        if !req.reclaim && self.in_grace(now_ms) {
            return LockReply {
                outcome: LockOutcome::GracePeriod,
                granted: Vec::new(),
            };
        }
        let ids = match self.intern(&req.target) {
            Ok(ids) => ids,
            Err(limit) => {
                return LockReply {
                    outcome: LockOutcome::NoLocks(limit),
                    granted: Vec::new(),
                }
            }
        };
        let reply = self.lock_ids(now_ms, ids, req, mirror);
        // A refused request may have interned a new owner or file: forget it again.
        self.collect_owner(ids.owner);
        self.collect_file(ids.file);
        reply
    }

    fn lock_ids(
        &mut self,
        now_ms: u64,
        ids: Ids,
        req: &LockRequest,
        mirror: &mut dyn Mirror,
    ) -> LockReply {
        let (kind, range) = (req.kind, req.range);
        let answer = |outcome| LockReply {
            outcome,
            granted: Vec::new(),
        };
        if req.block {
            // NLM clients retransmit blocked requests: the same request is one waiter.
            if let Some(waiter) = self.find_waiter(ids, kind, range) {
                return answer(LockOutcome::Blocked(waiter));
            }
        }
        if let Some(conflict) = self.find_conflict(ids.file, Some(ids.owner), kind, range) {
            if !req.block {
                return answer(LockOutcome::Denied(conflict));
            }
            if self.would_deadlock(ids.owner, ids.file, kind, range) {
                return answer(LockOutcome::Deadlock);
            }
            return answer(self.enqueue(now_ms, ids, kind, range, false));
        }
        let plan = self.plan_lock(ids, kind, range, now_ms);
        if let Err(limit) = self.check_lock_limits(ids, plan.delta()) {
            return answer(LockOutcome::NoLocks(limit));
        }
        if let Err(external) = self.mirror_acquire(mirror, ids, kind, range) {
            if !req.block {
                let conflict = Conflict {
                    holder: Holder::External,
                    kind: external.kind,
                    range: external.range,
                };
                return answer(LockOutcome::Denied(conflict));
            }
            return answer(self.enqueue(now_ms, ids, kind, range, true));
        }
        // Only a downgrade in place (exclusive to shared) can let a waiter through.
        let downgrade = kind == LockKind::Shared
            && self.segs_of(ids.file, ids.owner).is_some_and(|segs| {
                segs.overlapping(range)
                    .any(|(_, seg)| seg.kind == LockKind::Exclusive)
            });
        self.apply_plan(ids, &plan);
        let granted = if downgrade {
            self.regrant(now_ms, ids.file, mirror)
        } else {
            Vec::new()
        };
        LockReply {
            outcome: LockOutcome::Granted,
            granted,
        }
    }

    /// UNLOCK (NLM4_UNLOCK, NFSv4 LOCKU): `target`'s owner stops holding `range`. Unlocking what
    /// is not held is not an error. Returns the waiters granted as a consequence. Fails only when
    /// cutting a hole in a held range would exceed a lock limit (POSIX's ENOLCK); nothing changes
    /// then.
    pub fn unlock(
        &mut self,
        now_ms: u64,
        target: &Target,
        range: Range,
        mirror: &mut dyn Mirror,
    ) -> Result<Vec<Granted>, Limit> {
        let Some(ids) = self.lookup(target) else {
            return Ok(Vec::new());
        };
        let Some(plan) = self
            .segs_of(ids.file, ids.owner)
            .map(|segs| segs.plan_unlock(range))
        else {
            return Ok(Vec::new());
        };
        if let Err(limit) = self.check_lock_limits(ids, plan.delta()) {
            self.counters.nolocks_refusals += 1;
            return Err(limit);
        }
        if plan.released.is_empty() {
            return Ok(Vec::new());
        }
        self.apply_plan(ids, &plan);
        let key = self.file_key_or_empty(ids.file);
        for &released in &plan.released {
            mirror.release(ids.file, &key, ids.owner, released);
        }
        let granted = self.regrant(now_ms, ids.file, mirror);
        self.counters.waiter_grants += granted.len() as u64;
        self.collect_owner(ids.owner);
        self.collect_file(ids.file);
        Ok(granted)
    }

    /// TEST (NLM4_TEST, NFSv4 LOCKT): whether `target`'s owner could take `kind` over `range`
    /// now, among NFS owners (the caller asks the local file system itself if it mirrors).
    pub fn test(&self, now_ms: u64, target: &Target, kind: LockKind, range: Range) -> TestOutcome {
        if self.in_grace(now_ms) {
            return TestOutcome::GracePeriod;
        }
        let Some(&file) = self.file_ids.get(target.file.as_ref()) else {
            return TestOutcome::Free;
        };
        let me = self.owner_id(&target.client, &target.owner);
        match self.find_conflict(file, me, kind, range) {
            Some(conflict) => TestOutcome::Conflict(conflict),
            None => TestOutcome::Free,
        }
    }

    /// The first lock of another owner than `me` on `file` that conflicts with `kind` over
    /// `range`.
    pub(crate) fn find_conflict(
        &self,
        file: FileId,
        me: Option<OwnerId>,
        kind: LockKind,
        range: Range,
    ) -> Option<Conflict> {
        let state = self.files.get(file.0)?;
        let mut others = state.locks.iter().filter(|(&owner, _)| Some(owner) != me);
        others.find_map(|(&owner, held)| {
            let (held_range, seg) = held
                .segs
                .overlapping(range)
                .find(|(_, seg)| kind.conflicts_with(seg.kind))?;
            let holder = Holder::Owner {
                owner,
                client: held.client,
            };
            Some(Conflict {
                holder,
                kind: seg.kind,
                range: held_range,
            })
        })
    }

    pub(crate) fn segs_of(&self, file: FileId, owner: OwnerId) -> Option<&Segs> {
        Some(&self.files.get(file.0)?.locks.get(&owner)?.segs)
    }

    pub(crate) fn plan_lock(&self, ids: Ids, kind: LockKind, range: Range, now_ms: u64) -> Plan {
        match self.segs_of(ids.file, ids.owner) {
            Some(segs) => segs.plan_lock(range, kind, now_ms),
            None => Segs::default().plan_lock(range, kind, now_ms),
        }
    }

    /// Whether adding `delta` held ranges for `ids` stays within the limits.
    pub(crate) fn check_lock_limits(&self, ids: Ids, delta: isize) -> Result<(), Limit> {
        let Ok(added) = usize::try_from(delta) else {
            return Ok(());
        };
        let client_count = self.clients.get(ids.client.0).map_or(0, |c| c.lock_count);
        let file_count = self.files.get(ids.file.0).map_or(0, |f| f.lock_count);
        let l = &self.limits;
        if client_count + added > l.locks_per_client_max {
            Err(Limit::LocksPerClient)
        } else if file_count + added > l.locks_per_file_max {
            Err(Limit::LocksPerFile)
        } else if self.locks_total + added > l.locks_total_max {
            Err(Limit::LocksTotal)
        } else {
            Ok(())
        }
    }

    /// Commits a planned change of `ids.owner`'s ranges on `ids.file` and its counts.
    pub(crate) fn apply_plan(&mut self, ids: Ids, plan: &Plan) {
        let delta = plan.delta();
        let Some(file) = self.files.get_mut(ids.file.0) else {
            return;
        };
        let held = file.locks.entry(ids.owner).or_insert_with(|| Held {
            client: ids.client,
            segs: Segs::default(),
        });
        held.segs.apply(plan);
        let now_empty = held.segs.is_empty();
        if now_empty {
            file.locks.remove(&ids.owner);
        }
        file.lock_count = file.lock_count.saturating_add_signed(delta);
        self.locks_total = self.locks_total.saturating_add_signed(delta);
        if let Some(client) = self.clients.get_mut(ids.client.0) {
            client.lock_count = client.lock_count.saturating_add_signed(delta);
        }
        if let Some(owner) = self.owners.get_mut(ids.owner.0) {
            if now_empty {
                owner.lock_files.remove(&ids.file);
            } else {
                owner.lock_files.insert(ids.file);
            }
        }
    }

    pub(crate) fn mirror_acquire(
        &self,
        mirror: &mut dyn Mirror,
        ids: Ids,
        kind: LockKind,
        range: Range,
    ) -> Result<(), crate::External> {
        let key = self.file_key_or_empty(ids.file);
        mirror.acquire(ids.file, &key, ids.owner, kind, range)
    }

    /// The file's key (a cheap clone of [`Bytes`], so the mirror can be called while `self` is
    /// borrowed mutably).
    pub(crate) fn file_key_or_empty(&self, file: FileId) -> Bytes {
        self.files
            .get(file.0)
            .map(|f| f.key.clone())
            .unwrap_or_default()
    }
}

// Interning and forgetting.
impl LockManager {
    /// The id of the client with key `client`, if it holds or waits for anything.
    pub fn client_id(&self, client: &[u8]) -> Option<ClientId> {
        self.client_ids.get(client).copied()
    }

    /// The id of owner `owner` of client `client`, if it holds or waits for anything.
    pub fn owner_id(&self, client: &[u8], owner: &[u8]) -> Option<OwnerId> {
        let id = self.client_id(client)?;
        self.clients.get(id.0)?.owner_ids.get(owner).copied()
    }

    /// The id of the file with key `file`, if anything is locked, shared or awaited on it.
    pub fn file_id(&self, file: &[u8]) -> Option<FileId> {
        self.file_ids.get(file).copied()
    }

    /// A client's key.
    pub fn client_key(&self, client: ClientId) -> Option<&Bytes> {
        Some(&self.clients.get(client.0)?.key)
    }

    /// An owner's client and key.
    pub fn owner_key(&self, owner: OwnerId) -> Option<(ClientId, &Bytes)> {
        let state = self.owners.get(owner.0)?;
        Some((state.client, &state.key))
    }

    /// A file's key.
    pub fn file_key(&self, file: FileId) -> Option<&Bytes> {
        Some(&self.files.get(file.0)?.key)
    }

    pub(crate) fn lookup(&self, target: &Target) -> Option<Ids> {
        let client = self.client_id(&target.client)?;
        let owner = self.owner_id(&target.client, &target.owner)?;
        let file = self.file_id(&target.file)?;
        Some(Ids {
            client,
            owner,
            file,
        })
    }

    /// Interns `target`'s keys, checking every limit before creating anything.
    pub(crate) fn intern(&mut self, target: &Target) -> Result<Ids, Limit> {
        let key_max = self.limits.key_bytes_max;
        if [&target.client, &target.owner, &target.file]
            .iter()
            .any(|k| k.len() > key_max)
        {
            return Err(Limit::KeyBytes);
        }
        let client = self.client_id(&target.client);
        let owner = self.owner_id(&target.client, &target.owner);
        let file = self.file_id(&target.file);
        if client.is_none() && self.clients.len() >= self.limits.clients_max {
            return Err(Limit::Clients);
        }
        if owner.is_none() && self.owners.len() >= self.limits.owners_max {
            return Err(Limit::Owners);
        }
        if file.is_none() && self.files.len() >= self.limits.files_max {
            return Err(Limit::Files);
        }
        let client = client.unwrap_or_else(|| self.new_client(&target.client));
        let owner = owner.unwrap_or_else(|| self.new_owner(client, &target.owner));
        let file = file.unwrap_or_else(|| self.new_file(&target.file));
        Ok(Ids {
            client,
            owner,
            file,
        })
    }

    fn new_client(&mut self, key: &Bytes) -> ClientId {
        let state = ClientState {
            key: key.clone(),
            owner_ids: HashMap::new(),
            lock_count: 0,
        };
        let id = ClientId(self.clients.insert(state));
        self.client_ids.insert(key.clone(), id);
        id
    }

    fn new_owner(&mut self, client: ClientId, key: &Bytes) -> OwnerId {
        let state = OwnerState {
            key: key.clone(),
            client,
            lock_files: BTreeSet::new(),
            share_files: BTreeSet::new(),
            waiters: BTreeSet::new(),
        };
        let id = OwnerId(self.owners.insert(state));
        if let Some(c) = self.clients.get_mut(client.0) {
            c.owner_ids.insert(key.clone(), id);
        }
        id
    }

    fn new_file(&mut self, key: &Bytes) -> FileId {
        let state = FileState {
            key: key.clone(),
            locks: BTreeMap::new(),
            lock_count: 0,
            shares: BTreeMap::new(),
            waiters: VecDeque::new(),
        };
        let id = FileId(self.files.insert(state));
        self.file_ids.insert(key.clone(), id);
        id
    }

    /// Forgets `owner` if it holds and waits for nothing, and then its client if that has no
    /// owner left: this is what keeps the tables bounded by live state.
    pub(crate) fn collect_owner(&mut self, owner: OwnerId) {
        let Some(state) = self.owners.get(owner.0) else {
            return;
        };
        if !(state.lock_files.is_empty()
            && state.share_files.is_empty()
            && state.waiters.is_empty())
        {
            return;
        }
        let Some(state) = self.owners.remove(owner.0) else {
            return;
        };
        let Some(client) = self.clients.get_mut(state.client.0) else {
            return;
        };
        client.owner_ids.remove(&state.key);
        if client.owner_ids.is_empty() {
            if let Some(client) = self.clients.remove(state.client.0) {
                self.client_ids.remove(&client.key);
            }
        }
    }

    /// Forgets `file` if nothing is locked, shared or awaited on it.
    pub(crate) fn collect_file(&mut self, file: FileId) {
        let Some(state) = self.files.get(file.0) else {
            return;
        };
        if !(state.locks.is_empty() && state.shares.is_empty() && state.waiters.is_empty()) {
            return;
        }
        if let Some(state) = self.files.remove(file.0) {
            self.file_ids.remove(&state.key);
        }
    }
}
