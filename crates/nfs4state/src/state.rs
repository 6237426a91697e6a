//! The state machine's root: client records, the tables that point into them, leases and the
//! courtesy period (RFC 8881 §8.3; the courtesy client is Linux nfsd's "courteous server").

use std::collections::HashMap;

use bytes::Bytes;

use crate::grace::Grace;
use crate::observe::Counters;
use crate::session::{CreateSessionOk, Session};
use crate::slab::Slab;
use crate::stateid::{Entry, StateRef};
use crate::{ClientId, Error, Limits, LimitsError, SessionId};

/// What a server instance is started with.
#[derive(Clone, Debug)]
pub struct Config {
    /// The bounds.
    pub limits: Limits,
    /// Distinguishes this instance's clientids and stateids from every earlier instance's (e.g.
    /// seconds since the epoch at start-up). Neither 0 nor u32::MAX.
    pub boot_epoch: u32,
    /// Mixed into session ids so they cannot be guessed from a clientid and a counter alone.
    /// The server draws it from a random source at start-up.
    pub secret: [u8; 16],
    /// Owners (co_ownerid) of the clients the previous instance had confirmed, from the server's
    /// state directory: they may reclaim during the grace period.
    pub previous_clients: Vec<Bytes>,
}

impl Config {
    /// A configuration from its parts.
    pub fn new(
        limits: Limits,
        boot_epoch: u32,
        secret: [u8; 16],
        previous_clients: Vec<Bytes>,
    ) -> Self {
        Self {
            limits,
            boot_epoch,
            secret,
            previous_clients,
        }
    }
}

/// Why a client's state was purged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PurgeReason {
    /// A courtesy client outlived [`Limits::courtesy_ms`].
    CourtesyTimeout,
    /// The server asked ([`Nfs4State::expire`]): a conflict with a courtesy client, or an admin.
    Expired,
    /// The same owner restarted and confirmed a new record (§18.35.4 case 4), or took over a
    /// courtesy record under another principal (case 3).
    Replaced,
    /// The clients table was full and this was the oldest courtesy client.
    Evicted,
    /// DESTROY_CLIENTID (§18.50).
    Destroyed,
}

/// A purged client and everything it held, for the server to release in `rnfs-locks`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Released {
    /// The client.
    pub clientid: ClientId,
    /// Its co_ownerid.
    pub owner: Bytes,
    /// Why.
    pub reason: PurgeReason,
    /// Its open and lock stateids (revoked ones included), each with its owner and file.
    pub states: Vec<StateRef>,
}

/// What [`Nfs4State::tick`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// The client's lease expired: it is now a courtesy client, its state kept.
    Courtesy(ClientId),
    /// The client is gone; release what it held.
    Purged(Released),
}

/// The owner's records: at most one confirmed and one unconfirmed (§18.35.4).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Owner {
    pub confirmed: Option<ClientId>,
    pub unconfirmed: Option<ClientId>,
}

#[derive(Debug)]
pub(crate) struct Client {
    pub id: ClientId,
    pub owner: Bytes,
    pub verifier: [u8; 8],
    pub principal: Bytes,
    pub confirmed: bool,
    pub courtesy: bool,
    pub renewed_ms: u64,
    /// The CREATE_SESSION slot (§18.36.4): the last csa_sequence executed and its reply.
    pub cs_seqid: u32,
    pub cs_reply: Option<CreateSessionOk>,
    pub sessions: Vec<SessionId>,
    /// (open-owner, file) → slab index.
    pub opens: HashMap<(Bytes, Bytes), u32>,
    /// (open slab index, lock-owner) → slab index.
    pub locks: HashMap<(u32, Bytes), u32>,
    /// File → delegation's slab index (one per client and file).
    pub delegs: HashMap<Bytes, u32>,
    /// Revoked stateids kept until FREE_STATEID, so the client learns why they stopped working.
    pub revoked: Vec<u32>,
    pub reclaim_complete: bool,
}

impl Client {
    pub fn stateids(&self) -> usize {
        self.opens.len() + self.locks.len() + self.delegs.len() + self.revoked.len()
    }

    /// Linux nfsd's client_has_state: what makes taking the owner over a collision.
    pub fn has_state(&self) -> bool {
        !self.sessions.is_empty() || self.stateids() > 0
    }
}

/// The NFSv4.1 client, session and stateid state of one server instance.
#[derive(Debug)]
pub struct Nfs4State {
    pub(crate) limits: Limits,
    pub(crate) epoch: u32,
    pub(crate) secret: [u8; 16],
    pub(crate) clients: HashMap<u64, Client>,
    pub(crate) owners: HashMap<Bytes, Owner>,
    pub(crate) next_client: u32,
    pub(crate) sessions: HashMap<SessionId, Session>,
    pub(crate) sessions_made: u64,
    /// Connection → sessions it is bound to (a connection may serve several, §2.10.5).
    pub(crate) conns: HashMap<u64, Vec<SessionId>>,
    pub(crate) states: Slab<Entry>,
    pub(crate) reply_cache_reserved: usize,
    pub(crate) reply_cache_used: usize,
    pub(crate) grace: Grace,
    /// Purges that happened inside other calls, reported by the next [`Nfs4State::tick`].
    pub(crate) released: Vec<Released>,
    /// File → its delegations' slab indexes (every client's, recalled ones included).
    pub(crate) delegs: HashMap<Bytes, Vec<u32>>,
    /// Delegations being recalled → when they are revoked if not returned.
    pub(crate) recalls: HashMap<u32, u64>,
    pub(crate) counters: Counters,
}

impl Nfs4State {
    /// A fresh instance at `now_ms`; in grace when `config.previous_clients` is not empty.
    pub fn new(now_ms: u64, config: Config) -> Result<Self, LimitsError> {
        config.limits.validate()?;
        if config.boot_epoch == 0 || config.boot_epoch == u32::MAX {
            return Err(LimitsError::Epoch);
        }
        let grace = Grace::new(
            now_ms,
            config.limits.grace_ms,
            config.previous_clients,
            config.limits.clients_max,
        );
        Ok(Self {
            states: Slab::new(config.limits.stateids_max),
            limits: config.limits,
            epoch: config.boot_epoch,
            secret: config.secret,
            clients: HashMap::new(),
            owners: HashMap::new(),
            next_client: 0,
            sessions: HashMap::new(),
            sessions_made: 0,
            conns: HashMap::new(),
            reply_cache_reserved: 0,
            reply_cache_used: 0,
            grace,
            released: Vec::new(),
            delegs: HashMap::new(),
            recalls: HashMap::new(),
            counters: Counters::default(),
        })
    }

    /// The bounds in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// This instance's boot epoch.
    pub fn boot_epoch(&self) -> u32 {
        self.epoch
    }

    pub(crate) fn client(&self, id: ClientId) -> Result<&Client, Error> {
        if id.epoch() != self.epoch {
            return Err(Error::StaleClientid);
        }
        self.clients.get(&id.0).ok_or(Error::StaleClientid)
    }

    pub(crate) fn client_mut(&mut self, id: ClientId) -> Result<&mut Client, Error> {
        if id.epoch() != self.epoch {
            return Err(Error::StaleClientid);
        }
        self.clients.get_mut(&id.0).ok_or(Error::StaleClientid)
    }

    /// Whether `client` is a courtesy client: its lease expired but its state is kept.
    pub fn is_courtesy(&self, client: ClientId) -> bool {
        self.client(client).is_ok_and(|c| c.courtesy)
    }

    /// Expires leases: clients silent for [`Limits::lease_ms`] become courtesy clients, courtesy
    /// clients silent for [`Limits::courtesy_ms`] more are purged, unconfirmed records silent for
    /// a lease are dropped. Also reports purges done inside other calls since the last tick
    /// (a client restart confirmed by CREATE_SESSION, an eviction to make room).
    pub fn tick(&mut self, now_ms: u64) -> Vec<Expiry> {
        let mut out: Vec<Expiry> = self.released.drain(..).map(Expiry::Purged).collect();
        let ids: Vec<ClientId> = self.clients.values().map(|c| c.id).collect();
        for id in ids {
            if let Some(expiry) = self.check_lease(now_ms, id) {
                out.push(expiry);
            }
        }
        self.grace.tick(now_ms);
        self.revoke_unreturned(now_ms);
        out
    }

    fn check_lease(&mut self, now_ms: u64, id: ClientId) -> Option<Expiry> {
        let client = self.clients.get(&id.0)?;
        // A request still executing holds the lease (it renewed it, and its reply may need it).
        if self.client_busy(client) {
            return None;
        }
        let silent_ms = now_ms.saturating_sub(client.renewed_ms);
        if silent_ms <= self.limits.lease_ms {
            return None;
        }
        if !client.confirmed {
            // Nothing hangs off an unconfirmed record: drop it without a report.
            self.purge(id, PurgeReason::CourtesyTimeout);
            return None;
        }
        if !client.courtesy {
            self.clients.get_mut(&id.0)?.courtesy = true;
            self.counters.courtesy += 1;
            return Some(Expiry::Courtesy(id));
        }
        if silent_ms - self.limits.lease_ms <= self.limits.courtesy_ms {
            return None;
        }
        self.purge(id, PurgeReason::CourtesyTimeout)
            .map(Expiry::Purged)
    }

    pub(crate) fn client_busy(&self, client: &Client) -> bool {
        client
            .sessions
            .iter()
            .filter_map(|s| self.sessions.get(s))
            .any(Session::busy)
    }

    /// When [`Nfs4State::tick`] next has something to do, if ever.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        let leases = self.clients.values().map(|c| {
            let courtesy = if c.courtesy {
                self.limits.courtesy_ms
            } else {
                0
            };
            c.renewed_ms
                .saturating_add(self.limits.lease_ms)
                .saturating_add(courtesy)
                .saturating_add(1)
        });
        let recalls = self.recalls.values().map(|d| d.saturating_add(1));
        leases.chain(self.grace.end_ms()).chain(recalls).min()
    }

    /// Purges `client` now, whatever its state (a conflict with a courtesy client, an admin
    /// command), and returns what it held. `None` when unknown.
    pub fn expire(&mut self, client: ClientId) -> Option<Released> {
        self.client(client).ok()?;
        self.purge(client, PurgeReason::Expired)
    }

    /// Removes a client with its sessions and stateids.
    pub(crate) fn purge(&mut self, id: ClientId, reason: PurgeReason) -> Option<Released> {
        let client = self.clients.remove(&id.0)?;
        self.unlink_owner(&client);
        for sessionid in &client.sessions {
            self.remove_session(sessionid);
        }
        let indexes: Vec<u32> = client
            .locks
            .values()
            .chain(client.opens.values())
            .chain(client.delegs.values())
            .chain(client.revoked.iter())
            .copied()
            .collect();
        // Refs first: a lock's ref names its open, which must still be in the slab.
        let states: Vec<StateRef> = indexes.iter().filter_map(|&i| self.state_ref(i)).collect();
        for index in indexes {
            self.unindex_deleg(index);
            self.states.remove(index);
        }
        // A previous client that is gone for good will not reclaim: stop waiting for it.
        // A replaced one is the same owner under a new record, which still may.
        if client.confirmed && reason != PurgeReason::Replaced {
            self.grace.forget(&client.owner);
        }
        self.counters.purged += 1;
        Some(Released {
            clientid: id,
            owner: client.owner,
            reason,
            states,
        })
    }

    fn unlink_owner(&mut self, client: &Client) {
        let Some(owner) = self.owners.get_mut(&client.owner) else {
            return;
        };
        if owner.confirmed == Some(client.id) {
            owner.confirmed = None;
        }
        if owner.unconfirmed == Some(client.id) {
            owner.unconfirmed = None;
        }
        if owner.confirmed.is_none() && owner.unconfirmed.is_none() {
            self.owners.remove(&client.owner);
        }
    }
}
