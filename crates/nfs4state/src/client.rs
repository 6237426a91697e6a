//! Client records: EXCHANGE_ID's case analysis (RFC 8881 §18.35.4) and DESTROY_CLIENTID
//! (§18.50).
//!
//! An owner (co_ownerid) has at most one confirmed and one unconfirmed record. A record is
//! confirmed by its first successful CREATE_SESSION (see `session.rs`), which also purges the
//! owner's previous confirmed record when the new one came from a client restart (case 4).

use std::collections::HashMap;

use bytes::Bytes;

use crate::state::{Client, PurgeReason};
use crate::{ClientId, Error, Nfs4State, EXCHGID4_FLAG_CONFIRMED_R};

/// An EXCHANGE_ID request, as far as client records are concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExchangeId {
    /// co_ownerid: the client's long-lived name (at most [`crate::Limits::key_bytes_max`]).
    pub owner: Bytes,
    /// co_verifier: changes when the client restarts.
    pub verifier: [u8; 8],
    /// Who sent it, as a key chosen by the server (e.g. `b"sys:1000"`, `b"krb5:nfs/host@REALM"`).
    pub principal: Bytes,
    /// EXCHGID4_FLAG_UPD_CONFREC_A: update the confirmed record instead of establishing one.
    pub update: bool,
}

/// EXCHANGE_ID's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExchangeIdOk {
    /// eir_clientid.
    pub clientid: ClientId,
    /// eir_sequenceid: the csa_sequence the next CREATE_SESSION must carry.
    pub sequenceid: u32,
    /// EXCHGID4_FLAG_CONFIRMED_R: the record was already confirmed.
    pub confirmed: bool,
}

impl ExchangeIdOk {
    /// The eir_flags bits this crate decides (the server adds its pNFS role bits).
    pub fn flags(&self) -> u32 {
        if self.confirmed {
            EXCHGID4_FLAG_CONFIRMED_R
        } else {
            0
        }
    }
}

/// What the case analysis needs from the owner's confirmed record.
struct Confirmed {
    id: ClientId,
    same_principal: bool,
    same_verifier: bool,
    has_state: bool,
    courtesy: bool,
    next_sequenceid: u32,
}

impl Nfs4State {
    /// EXCHANGE_ID (RFC 8881 §18.35), cases of §18.35.4:
    /// 1. new owner → new unconfirmed record;
    /// 2. confirmed record, same verifier and principal → that record, confirmed;
    /// 3. confirmed record, other principal → NFS4ERR_CLID_INUSE if it has state and an
    ///    unexpired lease, else it is purged and a new record made;
    /// 4. confirmed record, same principal, other verifier (client restart) → new unconfirmed
    ///    record; the old one goes when the new one is confirmed;
    /// 5. an unconfirmed record exists → replaced by a new one.
    ///
    /// With `update`: 6. confirmed record, same verifier and principal → that record;
    /// 7. other verifier → NFS4ERR_NOT_SAME; 8. other principal → NFS4ERR_PERM;
    /// 9. no confirmed record → NFS4ERR_NOENT.
    pub fn exchange_id(&mut self, now_ms: u64, req: ExchangeId) -> Result<ExchangeIdOk, Error> {
        if req.owner.len() > self.limits.key_bytes_max
            || req.principal.len() > self.limits.key_bytes_max
        {
            return Err(Error::BadXdr);
        }
        self.counters.exchange_ids += 1;
        let confirmed = self.confirmed_record(&req);
        if req.update {
            return update(confirmed);
        }
        if let Some(conf) = confirmed {
            if !conf.same_principal {
                // Case 3: another principal may take the owner only from a client that has
                // nothing to lose, or whose lease already expired.
                if conf.has_state && !conf.courtesy {
                    return Err(Error::ClidInuse);
                }
                if let Some(released) = self.purge(conf.id, PurgeReason::Replaced) {
                    self.released.push(released);
                }
            } else if conf.same_verifier {
                return Ok(ExchangeIdOk {
                    clientid: conf.id,
                    sequenceid: conf.next_sequenceid,
                    confirmed: true,
                });
            }
        }
        self.new_record(now_ms, req)
    }

    fn confirmed_record(&self, req: &ExchangeId) -> Option<Confirmed> {
        let id = self.owners.get(&req.owner)?.confirmed?;
        let client = self.clients.get(&id.0)?;
        Some(Confirmed {
            id,
            same_principal: client.principal == req.principal,
            same_verifier: client.verifier == req.verifier,
            has_state: client.has_state(),
            courtesy: client.courtesy,
            next_sequenceid: client.cs_seqid.wrapping_add(1),
        })
    }

    /// Cases 1, 3, 4 and 5: a fresh unconfirmed record, replacing the owner's unconfirmed one.
    fn new_record(&mut self, now_ms: u64, req: ExchangeId) -> Result<ExchangeIdOk, Error> {
        if let Some(old) = self.owners.get(&req.owner).and_then(|o| o.unconfirmed) {
            // An unconfirmed record has no sessions or state: nothing to report.
            self.purge(old, PurgeReason::Replaced);
        }
        self.make_room()?;
        let id = self.allocate_clientid();
        let client = Client {
            id,
            owner: req.owner.clone(),
            verifier: req.verifier,
            principal: req.principal,
            confirmed: false,
            courtesy: false,
            renewed_ms: now_ms,
            cs_seqid: 0,
            cs_reply: None,
            sessions: Vec::new(),
            opens: HashMap::new(),
            locks: HashMap::new(),
            delegs: HashMap::new(),
            revoked: Vec::new(),
            reclaim_complete: false,
        };
        self.clients.insert(id.0, client);
        self.owners.entry(req.owner).or_default().unconfirmed = Some(id);
        Ok(ExchangeIdOk {
            clientid: id,
            sequenceid: 1,
            confirmed: false,
        })
    }

    /// Frees a client slot when the table is full by evicting the longest-silent courtesy
    /// client: its lease is over, so it has the weakest claim. NFS4ERR_DELAY if there is none,
    /// as live clients' leases will expire in time.
    fn make_room(&mut self) -> Result<(), Error> {
        if self.clients.len() < self.limits.clients_max {
            return Ok(());
        }
        self.evict_courtesy(None)
    }

    /// Purges the longest-silent courtesy client (not `except`), to make room for an active
    /// one; NFS4ERR_DELAY if there is none.
    pub(crate) fn evict_courtesy(&mut self, except: Option<ClientId>) -> Result<(), Error> {
        let oldest = self
            .clients
            .values()
            .filter(|c| c.courtesy && Some(c.id) != except)
            .min_by_key(|c| c.renewed_ms)
            .map(|c| c.id)
            .ok_or(Error::Delay)?;
        if let Some(released) = self.purge(oldest, PurgeReason::Evicted) {
            self.released.push(released);
        }
        Ok(())
    }

    fn allocate_clientid(&mut self) -> ClientId {
        // Terminates: fewer than 2^32 - 1 clients are alive (clients_max bounds them).
        loop {
            self.next_client = self.next_client.wrapping_add(1);
            let id = ClientId(u64::from(self.epoch) << 32 | u64::from(self.next_client));
            if self.next_client != 0 && !self.clients.contains_key(&id.0) {
                return id;
            }
        }
    }

    /// DESTROY_CLIENTID (RFC 8881 §18.50): NFS4ERR_CLIENTID_BUSY while the client has sessions
    /// or stateids.
    pub fn destroy_clientid(&mut self, client: ClientId) -> Result<(), Error> {
        if self.client(client)?.has_state() {
            return Err(Error::ClientidBusy);
        }
        self.purge(client, PurgeReason::Destroyed);
        Ok(())
    }
}

fn update(confirmed: Option<Confirmed>) -> Result<ExchangeIdOk, Error> {
    let conf = confirmed.ok_or(Error::Noent)?;
    if !conf.same_principal {
        return Err(Error::Perm);
    }
    if !conf.same_verifier {
        return Err(Error::NotSame);
    }
    Ok(ExchangeIdOk {
        clientid: conf.id,
        sequenceid: conf.next_sequenceid,
        confirmed: true,
    })
}
