//! The grace period after a restart (RFC 8881 §8.4.2) and RECLAIM_COMPLETE (§18.51).
//!
//! The server passes the owners the previous instance had confirmed (from its state directory).
//! When there were any, the new instance is in grace for [`Limits::grace_ms`](crate::Limits):
//! those clients may reclaim, everyone else's non-reclaim OPEN and LOCK wait (NFS4ERR_GRACE).
//! Grace ends early once every previous client has sent RECLAIM_COMPLETE or is gone for good,
//! as then nobody is left to reclaim.

use std::collections::HashSet;

use bytes::Bytes;

use crate::{ClientId, Error, Nfs4State};

#[derive(Debug)]
pub(crate) struct Grace {
    end_ms: u64,
    active: bool,
    previous: HashSet<Bytes>,
    /// Previous owners that have not yet completed reclaiming.
    pending: HashSet<Bytes>,
    /// Another head of this server's cluster is in its grace period: non-reclaims wait here too.
    cluster: bool,
}

impl Grace {
    pub fn new(now_ms: u64, grace_ms: u64, previous: Vec<Bytes>, owners_max: usize) -> Self {
        // Bounded like the clients table: the previous instance had no more than that.
        let previous: HashSet<Bytes> = previous.into_iter().take(owners_max).collect();
        Self {
            end_ms: now_ms.saturating_add(grace_ms),
            active: !previous.is_empty(),
            pending: previous.clone(),
            previous,
            cluster: false,
        }
    }

    pub fn in_grace(&self, now_ms: u64) -> bool {
        self.active && now_ms < self.end_ms && !self.pending.is_empty()
    }

    pub fn tick(&mut self, now_ms: u64) {
        if !self.in_grace(now_ms) {
            self.active = false;
            self.pending.clear();
        }
    }

    pub fn end_ms(&self) -> Option<u64> {
        self.active.then_some(self.end_ms)
    }

    pub fn forget(&mut self, owner: &Bytes) {
        self.pending.remove(owner);
    }
}

impl Nfs4State {
    /// Whether the grace period is on.
    pub fn in_grace(&self, now_ms: u64) -> bool {
        self.grace.in_grace(now_ms)
    }

    /// Turns on or off the grace period of the server's cluster (another head restarted and its
    /// clients are reclaiming there). It does not let this server's clients reclaim.
    pub fn set_cluster_grace(&mut self, on: bool) {
        self.grace.cluster = on;
    }

    /// For a non-reclaim OPEN or LOCK: NFS4ERR_GRACE while this server's grace period, or its
    /// cluster's, is on.
    pub fn check_grace(&self, now_ms: u64) -> Result<(), Error> {
        if self.in_grace(now_ms) || self.grace.cluster {
            return Err(Error::Grace);
        }
        Ok(())
    }

    /// For a reclaim (OPEN CLAIM_PREVIOUS, LOCK reclaim): NFS4ERR_NO_GRACE outside the grace
    /// period or after the client's RECLAIM_COMPLETE (§18.51.3), NFS4ERR_RECLAIM_BAD for a
    /// client the previous instance did not have (it has nothing to reclaim).
    pub fn may_reclaim(&self, now_ms: u64, client: ClientId) -> Result<(), Error> {
        let record = self.client(client)?;
        if !self.in_grace(now_ms) || record.reclaim_complete {
            return Err(Error::NoGrace);
        }
        if !self.grace.previous.contains(&record.owner) {
            return Err(Error::ReclaimBad);
        }
        Ok(())
    }

    /// RECLAIM_COMPLETE (RFC 8881 §18.51) with rca_one_fs false: NFS4ERR_COMPLETE_ALREADY the
    /// second time.
    pub fn reclaim_complete(&mut self, client: ClientId) -> Result<(), Error> {
        let record = self.client_mut(client)?;
        if record.reclaim_complete {
            return Err(Error::CompleteAlready);
        }
        record.reclaim_complete = true;
        let owner = record.owner.clone();
        self.grace.forget(&owner);
        Ok(())
    }

    /// What the server persists for the next instance's `previous_clients`: the confirmed
    /// owners, and, while the grace period lasts, the previous instance's owners that have not
    /// come back yet (a second restart during grace must not forget them).
    pub fn persisted_owners(&self, now_ms: u64) -> Vec<Bytes> {
        let mut owners = self.confirmed_owners();
        if self.grace.in_grace(now_ms) {
            let have: HashSet<Bytes> = owners.iter().cloned().collect();
            owners.extend(
                self.grace
                    .pending
                    .iter()
                    .filter(|o| !have.contains(*o))
                    .cloned(),
            );
        }
        owners
    }

    /// Owners of the confirmed clients (courtesy ones included), for the server to persist: the
    /// next instance's `previous_clients`.
    pub fn confirmed_owners(&self) -> Vec<Bytes> {
        self.owners
            .iter()
            .filter(|(_, o)| o.confirmed.is_some())
            .map(|(owner, _)| owner.clone())
            .collect()
    }
}
