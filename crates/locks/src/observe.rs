//! What the control socket shows: every lock, share and waiter, the counters, the table sizes.

use bytes::Bytes;

use crate::{ClientId, FileId, LockKind, LockManager, OwnerId, Range, WaiterId};

/// Counts of what the manager answered since it was created.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// LOCKs granted at once.
    pub grants: u64,
    /// Queued LOCKs granted later (each is one [`Granted`](crate::Granted) event).
    pub waiter_grants: u64,
    /// LOCKs denied by a conflict (NFS or external).
    pub denials: u64,
    /// LOCKs queued.
    pub blocks: u64,
    /// LOCKs refused because waiting would deadlock.
    pub deadlocks: u64,
    /// LOCKs and SHAREs refused by the grace period.
    pub grace_refusals: u64,
    /// LOCKs, UNLOCKs and SHAREs refused by a limit.
    pub nolocks_refusals: u64,
    /// Queued LOCKs cancelled.
    pub cancels: u64,
    /// SHAREs granted.
    pub share_grants: u64,
    /// SHAREs denied.
    pub share_denials: u64,
}

/// How much state the manager holds now (each bounded by a [`Limits`](crate::Limits) field).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Held ranges.
    pub locks: usize,
    /// Share reservations.
    pub shares: usize,
    /// Queued requests.
    pub waiters: usize,
    /// Owners known.
    pub owners: usize,
    /// Clients known.
    pub clients: usize,
    /// Files known.
    pub files: usize,
}

/// One held range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockInfo<'a> {
    /// The file's id and key.
    pub file: (FileId, &'a Bytes),
    /// The client's id and key.
    pub client: (ClientId, &'a Bytes),
    /// The owner's id and key.
    pub owner: (OwnerId, &'a Bytes),
    /// The range.
    pub range: Range,
    /// Its kind.
    pub kind: LockKind,
    /// When it was granted (the earliest of the pieces merged into it).
    pub since_ms: u64,
}

/// One share reservation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShareInfo<'a> {
    /// The file's id and key.
    pub file: (FileId, &'a Bytes),
    /// The client's id and key.
    pub client: (ClientId, &'a Bytes),
    /// The owner's id and key.
    pub owner: (OwnerId, &'a Bytes),
    /// Access mask.
    pub access: u8,
    /// Deny mask.
    pub deny: u8,
    /// When it was granted.
    pub since_ms: u64,
}

/// One queued request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaiterInfo<'a> {
    /// Its id.
    pub waiter: WaiterId,
    /// The file's id and key.
    pub file: (FileId, &'a Bytes),
    /// The client's id and key.
    pub client: (ClientId, &'a Bytes),
    /// The owner's id and key.
    pub owner: (OwnerId, &'a Bytes),
    /// The kind asked for.
    pub kind: LockKind,
    /// The range asked for.
    pub range: Range,
    /// When it was queued.
    pub since_ms: u64,
    /// Whether it waits only for a lock outside the manager.
    pub external: bool,
}

static NO_KEY_BYTES: Bytes = Bytes::new();
const NO_KEY: &Bytes = &NO_KEY_BYTES;

impl LockManager {
    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Whether `owner` holds any range of `file` (a server that mirrors locks per (file, owner)
    /// closes its description when this turns false).
    pub fn holds(&self, file: FileId, owner: OwnerId) -> bool {
        self.segs_of(file, owner)
            .is_some_and(|segs| !segs.is_empty())
    }

    /// What `owner` holds on `file` within `range`, each held range cut to `range`, in order:
    /// what a server must restore in a mirror where it took `range` before the manager refused
    /// the request.
    pub fn held_within(
        &self,
        file: FileId,
        owner: OwnerId,
        range: Range,
    ) -> Vec<(LockKind, Range)> {
        let Some(segs) = self.segs_of(file, owner) else {
            return Vec::new();
        };
        let mut held: Vec<(LockKind, Range)> = segs
            .overlapping(range)
            .filter_map(|(r, seg)| {
                let cut = Range::new(r.start().max(range.start()), r.end().min(range.end()));
                cut.ok().map(|cut| (seg.kind, cut))
            })
            .collect();
        held.sort_by_key(|(_, r)| r.start());
        held
    }

    /// Every client the manager knows (holding locks or shares, or waiting), with its key.
    pub fn clients(&self) -> impl Iterator<Item = (ClientId, &Bytes)> + '_ {
        self.clients.iter().map(|(id, c)| (ClientId(id), &c.key))
    }

    /// Whether `owner` has a blocked request queued on `file`.
    pub fn waits(&self, file: FileId, owner: OwnerId) -> bool {
        self.owners.get(owner.0).is_some_and(|o| {
            o.waiters
                .iter()
                .filter_map(|w| self.waiters.get(w))
                .any(|w| w.ids.file == file)
        })
    }

    /// The current table sizes.
    pub fn usage(&self) -> Usage {
        Usage {
            locks: self.locks_total,
            shares: self.shares_total,
            waiters: self.waiters.len(),
            owners: self.owners.len(),
            clients: self.clients.len(),
            files: self.files.len(),
        }
    }

    fn client_entry(&self, client: ClientId) -> (ClientId, &Bytes) {
        (client, self.client_key(client).unwrap_or(NO_KEY))
    }

    fn owner_entry(&self, owner: OwnerId) -> (OwnerId, &Bytes) {
        (owner, self.owner_key(owner).map_or(NO_KEY, |(_, key)| key))
    }

    /// Every held range, by file, owner and start.
    pub fn locks(&self) -> impl Iterator<Item = LockInfo<'_>> + '_ {
        self.files.iter().flat_map(move |(file, state)| {
            state.locks.iter().flat_map(move |(&owner, held)| {
                held.segs.iter().map(move |(range, seg)| LockInfo {
                    file: (FileId(file), &state.key),
                    client: self.client_entry(held.client),
                    owner: self.owner_entry(owner),
                    range,
                    kind: seg.kind,
                    since_ms: seg.since_ms,
                })
            })
        })
    }

    /// Every share reservation, by file and owner.
    pub fn shares(&self) -> impl Iterator<Item = ShareInfo<'_>> + '_ {
        self.files.iter().flat_map(move |(file, state)| {
            state.shares.iter().map(move |(&owner, share)| ShareInfo {
                file: (FileId(file), &state.key),
                client: self.client_entry(share.client),
                owner: self.owner_entry(owner),
                access: share.access,
                deny: share.deny,
                since_ms: share.since_ms,
            })
        })
    }

    /// Every queued request, oldest first.
    pub fn waiters(&self) -> impl Iterator<Item = WaiterInfo<'_>> + '_ {
        self.waiters.iter().map(move |(&waiter, w)| WaiterInfo {
            waiter,
            file: (w.ids.file, self.file_key(w.ids.file).unwrap_or(NO_KEY)),
            client: self.client_entry(w.ids.client),
            owner: self.owner_entry(w.ids.owner),
            kind: w.kind,
            range: w.range,
            since_ms: w.since_ms,
            external: w.external,
        })
    }
}
