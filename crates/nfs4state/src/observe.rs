//! Snapshots and counters for `rnfsd ctl` and metrics.

use bytes::Bytes;

use crate::state::Client;
use crate::{ClientId, Nfs4State};

/// Event counts since start-up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// EXCHANGE_IDs handled (refused ones included).
    pub exchange_ids: u64,
    /// Sessions created.
    pub sessions_created: u64,
    /// SEQUENCEs accepted (new requests and replays).
    pub sequences: u64,
    /// Replies replayed (SEQUENCE and CREATE_SESSION).
    pub replays: u64,
    /// Leases expired into courtesy.
    pub courtesy: u64,
    /// Courtesy clients that came back.
    pub revived: u64,
    /// Client records removed (expiry, replacement, destruction).
    pub purged: u64,
    /// Open and lock stateids created.
    pub stateids_created: u64,
    /// Delegations granted.
    pub delegations_granted: u64,
    /// Delegations recalled (CB_RECALL asked for).
    pub delegations_recalled: u64,
    /// Delegations returned (DELEGRETURN).
    pub delegations_returned: u64,
    /// Delegations revoked: not returned in time, or held by a courtesy client in another's way.
    pub delegations_revoked: u64,
}

/// One client, as `rnfsd ctl` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientInfo {
    /// Its clientid.
    pub clientid: ClientId,
    /// co_ownerid.
    pub owner: Bytes,
    /// The principal that established it.
    pub principal: Bytes,
    /// Confirmed by a CREATE_SESSION.
    pub confirmed: bool,
    /// Lease expired, state kept.
    pub courtesy: bool,
    /// Time since the last renewal.
    pub lease_age_ms: u64,
    /// Sessions.
    pub sessions: usize,
    /// Slots with a request executing, over all its sessions.
    pub slots_in_use: usize,
    /// Open stateids.
    pub opens: usize,
    /// Lock stateids.
    pub locks: usize,
    /// Delegations.
    pub delegations: usize,
    /// Revoked stateids not yet freed.
    pub revoked: usize,
    /// RECLAIM_COMPLETE done.
    pub reclaim_complete: bool,
}

/// How full the tables are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Client records.
    pub clients: usize,
    /// Sessions.
    pub sessions: usize,
    /// Connections bound to some session.
    pub connections: usize,
    /// Stateids.
    pub stateids: usize,
    /// Delegations.
    pub delegations: usize,
    /// Reply cache bytes reserved by sessions.
    pub reply_cache_reserved_bytes: usize,
    /// Reply cache bytes holding replies.
    pub reply_cache_used_bytes: usize,
}

impl Nfs4State {
    /// The event counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Table sizes.
    pub fn usage(&self) -> Usage {
        Usage {
            clients: self.clients.len(),
            sessions: self.sessions.len(),
            connections: self.conns.len(),
            stateids: self.states.len(),
            delegations: self.delegations(),
            reply_cache_reserved_bytes: self.reply_cache_reserved,
            reply_cache_used_bytes: self.reply_cache_used,
        }
    }

    /// Every client, in clientid order.
    pub fn clients(&self, now_ms: u64) -> Vec<ClientInfo> {
        let mut all: Vec<ClientInfo> = self
            .clients
            .values()
            .map(|c| self.info(now_ms, c))
            .collect();
        all.sort_by_key(|c| c.clientid);
        all
    }

    /// One client.
    pub fn client_info(&self, now_ms: u64, client: ClientId) -> Option<ClientInfo> {
        self.client(client).ok().map(|c| self.info(now_ms, c))
    }

    fn info(&self, now_ms: u64, c: &Client) -> ClientInfo {
        let sessions = || c.sessions.iter().filter_map(|s| self.sessions.get(s));
        ClientInfo {
            clientid: c.id,
            owner: c.owner.clone(),
            principal: c.principal.clone(),
            confirmed: c.confirmed,
            courtesy: c.courtesy,
            lease_age_ms: now_ms.saturating_sub(c.renewed_ms),
            sessions: c.sessions.len(),
            slots_in_use: sessions().map(|s| s.slots_in_use()).sum(),
            opens: c.opens.len(),
            locks: c.locks.len(),
            delegations: c.delegs.len(),
            revoked: c.revoked.len(),
            reclaim_complete: c.reclaim_complete,
        }
    }
}
