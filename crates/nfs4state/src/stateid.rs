//! Open and lock stateids (RFC 8881 §8.2, §9.1.4).
//!
//! `other` is the boot epoch, the slab index and the slot's generation (4 bytes each): another
//! instance's stateid is NFS4ERR_STALE_STATEID, a freed or reused slot NFS4ERR_BAD_STATEID, and
//! lookups are O(1). `seqid` starts at 1 and is bumped on each change; in a request, 0 means
//! "the current one" (§8.2.2), an older one is NFS4ERR_OLD_STATEID and a newer one
//! NFS4ERR_BAD_STATEID. Every lookup is made on behalf of a client, and another client's stateid
//! is NFS4ERR_BAD_STATEID exactly as an unknown one: no call reveals or changes another client's
//! state.
//!
//! An open stateid is shared by all OPENs of one open-owner on one file (§9.1.4.2: a second OPEN
//! upgrades it); a lock stateid by one lock-owner on the file of one open (§9.1.4.3).

use bytes::Bytes;

use crate::state::Client;
use crate::{ClientId, Error, Nfs4State, Stateid, OPEN4_SHARE_ACCESS_BOTH, OPEN4_SHARE_DENY_BOTH};

/// Which kind of stateid a request needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StateKind {
    /// An open stateid (CLOSE, OPEN_DOWNGRADE, LOCK's open_to_lock_owner).
    Open,
    /// A lock stateid (LOCKU, LOCK's exist_lock_owner).
    Lock,
    /// A delegation stateid (DELEGRETURN, the CLAIM_DELEG_CUR claims).
    Deleg,
    /// Any (READ, WRITE, SETATTR, TEST_STATEID).
    Any,
}

/// What a stateid stands for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum StateInfo {
    /// An open.
    Open {
        /// The open-owner.
        owner: Bytes,
        /// The file key.
        file: Bytes,
        /// OPEN4_SHARE_ACCESS_* bits (union of the owner's opens).
        access: u32,
        /// OPEN4_SHARE_DENY_* bits (union of the owner's opens).
        deny: u32,
    },
    /// A lock-owner's locks on a file.
    Lock {
        /// The lock-owner.
        owner: Bytes,
        /// The file key.
        file: Bytes,
        /// The open stateid it was made from, current seqid.
        open: Stateid,
    },
    /// A delegation (RFC 8881 §10.2).
    Deleg {
        /// The file key.
        file: Bytes,
        /// The file handle CB_RECALL names.
        fh: Bytes,
        /// A write delegation (else read).
        write: bool,
        /// Being recalled.
        recalling: bool,
    },
}

/// A stateid as it is now, with what it stands for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StateRef {
    /// The stateid with its current seqid.
    pub stateid: Stateid,
    /// Its client.
    pub client: ClientId,
    /// What it stands for.
    pub info: StateInfo,
    /// Revoked by [`Nfs4State::revoke`], kept until FREE_STATEID.
    pub revoked: bool,
}

/// [`Nfs4State::open`]'s result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenResult {
    /// The open stateid, with its new seqid.
    pub stateid: Stateid,
    /// The share access and deny before this OPEN, when it upgraded an existing open.
    pub previous: Option<(u32, u32)>,
}

/// [`Nfs4State::close`]'s result: the open, and the lock stateids that went with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closed {
    /// The closed open, seqid bumped (the value CLOSE would have returned in NFSv4.0).
    pub open: StateRef,
    /// Its lock stateids, now freed.
    pub locks: Vec<StateRef>,
}

#[derive(Clone, Debug)]
pub(crate) enum Kind {
    Open {
        owner: Bytes,
        file: Bytes,
        access: u32,
        deny: u32,
    },
    Lock {
        owner: Bytes,
        file: Bytes,
        open: u32,
    },
    Deleg {
        file: Bytes,
        fh: Bytes,
        write: bool,
    },
}

#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) client: ClientId,
    pub(crate) seqid: u32,
    pub(crate) kind: Kind,
    pub(crate) revoked: bool,
}

/// The next seqid: after u32::MAX comes 1, as 0 means "current" (§8.2.2).
fn next_seqid(seqid: u32) -> u32 {
    if seqid == u32::MAX {
        1
    } else {
        seqid + 1
    }
}

fn valid_share(access: u32, deny: u32) -> bool {
    (1..=OPEN4_SHARE_ACCESS_BOTH).contains(&access) && deny <= OPEN4_SHARE_DENY_BOTH
}

fn be32(bytes: &[u8]) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(bytes);
    u32::from_be_bytes(word)
}

impl Nfs4State {
    pub(crate) fn stateid_of(&self, index: u32, seqid: u32) -> Stateid {
        let mut other = [0; 12];
        other[..4].copy_from_slice(&self.epoch.to_be_bytes());
        other[4..8].copy_from_slice(&index.to_be_bytes());
        other[8..].copy_from_slice(&self.states.generation(index).to_be_bytes());
        Stateid { seqid, other }
    }

    pub(crate) fn state_ref(&self, index: u32) -> Option<StateRef> {
        let entry = self.states.at(index)?;
        let info = match &entry.kind {
            Kind::Open {
                owner,
                file,
                access,
                deny,
            } => StateInfo::Open {
                owner: owner.clone(),
                file: file.clone(),
                access: *access,
                deny: *deny,
            },
            Kind::Lock { owner, file, open } => StateInfo::Lock {
                owner: owner.clone(),
                file: file.clone(),
                open: self.stateid_of(*open, self.states.at(*open).map_or(0, |o| o.seqid)),
            },
            Kind::Deleg { file, fh, write } => StateInfo::Deleg {
                file: file.clone(),
                fh: fh.clone(),
                write: *write,
                recalling: self.recalls.contains_key(&index),
            },
        };
        Some(StateRef {
            stateid: self.stateid_of(index, entry.seqid),
            client: entry.client,
            info,
            revoked: entry.revoked,
        })
    }

    /// The slab index a stateid names for `client`, seqid rules applied; revocation and kind
    /// are the callers' business.
    fn find(&self, client: ClientId, stateid: &Stateid) -> Result<u32, Error> {
        let other = &stateid.other;
        if *other == [0; 12] || *other == [0xff; 12] {
            // The special stateids (§8.2.3) are the server's to interpret before calling here.
            return Err(Error::BadStateid);
        }
        if be32(&other[..4]) != self.epoch {
            return Err(Error::StaleStateid);
        }
        let index = be32(&other[4..8]);
        let entry = self
            .states
            .get(index, be32(&other[8..]))
            .ok_or(Error::BadStateid)?;
        if entry.client != client {
            return Err(Error::BadStateid);
        }
        match stateid.seqid {
            0 => Ok(index),
            seqid if seqid == entry.seqid => Ok(index),
            seqid if seqid < entry.seqid => Err(Error::OldStateid),
            _ => Err(Error::BadStateid),
        }
    }

    pub(crate) fn find_live(
        &self,
        client: ClientId,
        stateid: &Stateid,
        want: StateKind,
    ) -> Result<u32, Error> {
        let index = self.find(client, stateid)?;
        let entry = self.states.at(index).ok_or(Error::BadStateid)?;
        if entry.revoked {
            return Err(match entry.kind {
                Kind::Deleg { .. } => Error::DelegRevoked,
                _ => Error::AdminRevoked,
            });
        }
        let kind_ok = matches!(
            (want, &entry.kind),
            (StateKind::Any, _)
                | (StateKind::Open, Kind::Open { .. })
                | (StateKind::Lock, Kind::Lock { .. })
                | (StateKind::Deleg, Kind::Deleg { .. })
        );
        if !kind_ok {
            return Err(Error::BadStateid);
        }
        Ok(index)
    }

    /// Checks a stateid a request from `client` carries: NFS4ERR_STALE_STATEID (earlier
    /// instance), NFS4ERR_BAD_STATEID (unknown, freed, another client's, wrong kind, future
    /// seqid), NFS4ERR_OLD_STATEID, NFS4ERR_ADMIN_REVOKED.
    pub fn check(
        &self,
        client: ClientId,
        stateid: &Stateid,
        want: StateKind,
    ) -> Result<StateRef, Error> {
        let index = self.find_live(client, stateid, want)?;
        self.state_ref(index).ok_or(Error::BadStateid)
    }

    /// TEST_STATEID (RFC 8881 §18.48) for one stateid.
    pub fn test_stateid(&self, client: ClientId, stateid: &Stateid) -> Result<(), Error> {
        self.find_live(client, stateid, StateKind::Any).map(|_| ())
    }

    fn bump_index(&mut self, index: u32) -> Result<Stateid, Error> {
        let entry = self.states.at_mut(index).ok_or(Error::BadStateid)?;
        entry.seqid = next_seqid(entry.seqid);
        let seqid = entry.seqid;
        Ok(self.stateid_of(index, seqid))
    }

    /// Bumps a live stateid's seqid (a LOCK or LOCKU changed the locks it stands for).
    pub fn bump(&mut self, client: ClientId, stateid: &Stateid) -> Result<Stateid, Error> {
        let index = self.find_live(client, stateid, StateKind::Any)?;
        self.bump_index(index)
    }

    /// Room for one more stateid of `client`: NFS4ERR_RESOURCE past the client's own limit (its
    /// retries cannot help), NFS4ERR_DELAY past the server's (other clients' state will go).
    pub(crate) fn stateid_room(&self, client: &Client) -> Result<(), Error> {
        if client.stateids() >= self.limits.stateids_per_client_max {
            return Err(Error::Resource);
        }
        if self.states.len() >= self.limits.stateids_max {
            return Err(Error::Delay);
        }
        Ok(())
    }

    pub(crate) fn insert(&mut self, client: ClientId, kind: Kind) -> Result<u32, Error> {
        let entry = Entry {
            client,
            seqid: 1,
            kind,
            revoked: false,
        };
        self.states
            .insert(entry)
            .map(|(index, _)| index)
            .map_err(|_| Error::Delay)
    }

    /// OPEN (RFC 8881 §18.16) once the server decided it may: the owner's existing open of the
    /// file is upgraded (union of the share bits, seqid + 1), else a new open stateid (seqid 1).
    /// Share conflicts are checked by the server in `rnfs-locks` before. NFS4ERR_INVAL for share
    /// bits outside READ/WRITE (the server strips the WANT bits).
    pub fn open(
        &mut self,
        now_ms: u64,
        client: ClientId,
        owner: Bytes,
        file: Bytes,
        access: u32,
        deny: u32,
    ) -> Result<OpenResult, Error> {
        if !valid_share(access, deny) {
            return Err(Error::Inval);
        }
        if owner.len() > self.limits.key_bytes_max || file.len() > self.limits.key_bytes_max {
            return Err(Error::BadXdr);
        }
        let record = self.client_mut(client)?;
        record.renewed_ms = record.renewed_ms.max(now_ms);
        let key = (owner, file);
        if let Some(&index) = record.opens.get(&key) {
            return self.upgrade(index, access, deny);
        }
        self.stateid_room(self.client(client)?)?;
        let (owner, file) = key.clone();
        let index = self.insert(
            client,
            Kind::Open {
                owner,
                file,
                access,
                deny,
            },
        )?;
        self.client_mut(client)?.opens.insert(key, index);
        self.counters.stateids_created += 1;
        Ok(OpenResult {
            stateid: self.stateid_of(index, 1),
            previous: None,
        })
    }

    fn upgrade(&mut self, index: u32, access: u32, deny: u32) -> Result<OpenResult, Error> {
        let entry = self.states.at_mut(index).ok_or(Error::BadStateid)?;
        let Kind::Open {
            access: a, deny: d, ..
        } = &mut entry.kind
        else {
            return Err(Error::BadStateid);
        };
        let previous = (*a, *d);
        *a |= access;
        *d |= deny;
        let stateid = self.bump_index(index)?;
        Ok(OpenResult {
            stateid,
            previous: Some(previous),
        })
    }

    /// The share access and deny of `owner`'s open of `file`.
    pub fn open_state(&self, client: ClientId, owner: &[u8], file: &[u8]) -> Option<(u32, u32)> {
        let key = (Bytes::copy_from_slice(owner), Bytes::copy_from_slice(file));
        let index = *self.client(client).ok()?.opens.get(&key)?;
        match &self.states.at(index)?.kind {
            Kind::Open { access, deny, .. } => Some((*access, *deny)),
            Kind::Lock { .. } | Kind::Deleg { .. } => None,
        }
    }

    /// OPEN_DOWNGRADE (RFC 8881 §18.18): the new bits must be a subset of the current ones
    /// (NFS4ERR_INVAL otherwise); seqid + 1.
    pub fn open_downgrade(
        &mut self,
        client: ClientId,
        stateid: &Stateid,
        access: u32,
        deny: u32,
    ) -> Result<Stateid, Error> {
        let index = self.find_live(client, stateid, StateKind::Open)?;
        if !valid_share(access, deny) {
            return Err(Error::Inval);
        }
        let entry = self.states.at_mut(index).ok_or(Error::BadStateid)?;
        let Kind::Open {
            access: a, deny: d, ..
        } = &mut entry.kind
        else {
            return Err(Error::BadStateid);
        };
        if access & !*a != 0 || deny & !*d != 0 {
            return Err(Error::Inval);
        }
        *a = access;
        *d = deny;
        self.bump_index(index)
    }

    /// CLOSE (RFC 8881 §18.2): frees the open stateid and its lock stateids. The server checks
    /// in `rnfs-locks` that no locks are held (NFS4ERR_LOCKS_HELD) before calling.
    pub fn close(&mut self, client: ClientId, stateid: &Stateid) -> Result<Closed, Error> {
        let index = self.find_live(client, stateid, StateKind::Open)?;
        let children = self.locks_of_open(client, index);
        self.bump_index(index)?;
        let open = self.state_ref(index).ok_or(Error::BadStateid)?;
        let locks = children.iter().filter_map(|&i| self.state_ref(i)).collect();
        for child in children {
            self.remove_state(client, child);
        }
        self.remove_state(client, index);
        Ok(Closed { open, locks })
    }

    /// Lock stateids (live or revoked) made from the open at `open`.
    fn locks_of_open(&self, client: ClientId, open: u32) -> Vec<u32> {
        let Ok(record) = self.client(client) else {
            return Vec::new();
        };
        let is_child = |i: &u32| matches!(self.states.at(*i), Some(Entry { kind: Kind::Lock { open: o, .. }, .. }) if *o == open);
        record
            .locks
            .values()
            .chain(record.revoked.iter())
            .copied()
            .filter(is_child)
            .collect()
    }

    /// Removes a stateid from the slab and from its client's tables.
    pub(crate) fn remove_state(&mut self, client: ClientId, index: u32) {
        if let Ok(record) = self.client_mut(client) {
            record.opens.retain(|_, i| *i != index);
            record.locks.retain(|_, i| *i != index);
            record.delegs.retain(|_, i| *i != index);
            record.revoked.retain(|i| *i != index);
        }
        self.unindex_deleg(index);
        self.states.remove(index);
    }

    /// LOCK's stateid (RFC 8881 §18.10.3): the lock-owner's stateid for the open's file, made
    /// (seqid 1, `true`) or bumped (`false`).
    pub fn lock_stateid(
        &mut self,
        client: ClientId,
        open_stateid: &Stateid,
        lock_owner: Bytes,
    ) -> Result<(Stateid, bool), Error> {
        let open = self.find_live(client, open_stateid, StateKind::Open)?;
        if lock_owner.len() > self.limits.key_bytes_max {
            return Err(Error::BadXdr);
        }
        let key = (open, lock_owner);
        if let Some(&index) = self.client(client)?.locks.get(&key) {
            return Ok((self.bump_index(index)?, false));
        }
        self.stateid_room(self.client(client)?)?;
        let file = match self.states.at(open).map(|e| &e.kind) {
            Some(Kind::Open { file, .. }) => file.clone(),
            _ => return Err(Error::BadStateid),
        };
        let index = self.insert(
            client,
            Kind::Lock {
                owner: key.1.clone(),
                file,
                open,
            },
        )?;
        self.client_mut(client)?.locks.insert(key, index);
        self.counters.stateids_created += 1;
        Ok((self.stateid_of(index, 1), true))
    }

    /// FREE_STATEID (RFC 8881 §18.38): frees a lock stateid (the server checked in `rnfs-locks`
    /// that it holds no locks) or a revoked stateid (a revoked open takes its revoked locks
    /// along). An open stateid is NFS4ERR_LOCKS_HELD: CLOSE it.
    pub fn free_stateid(&mut self, client: ClientId, stateid: &Stateid) -> Result<StateRef, Error> {
        let index = self.find(client, stateid)?;
        let freed = self.state_ref(index).ok_or(Error::BadStateid)?;
        match (&freed.info, freed.revoked) {
            (StateInfo::Open { .. }, false) => return Err(Error::LocksHeld),
            (StateInfo::Open { .. }, true) => {
                for child in self.locks_of_open(client, index) {
                    self.remove_state(client, child);
                }
            }
            (StateInfo::Lock { .. }, _) => {}
            // A live delegation is given back with DELEGRETURN.
            (StateInfo::Deleg { .. }, false) => return Err(Error::LocksHeld),
            (StateInfo::Deleg { .. }, true) => {}
        }
        self.remove_state(client, index);
        Ok(freed)
    }

    /// Revokes a stateid (an admin command): it and, for an open, its lock stateids answer
    /// NFS4ERR_ADMIN_REVOKED until the client frees them, and the client's SEQUENCE replies
    /// carry SEQ4_STATUS_ADMIN_STATE_REVOKED. Returns what to release in `rnfs-locks`.
    pub fn revoke(&mut self, stateid: &Stateid) -> Vec<StateRef> {
        let Some(client) = self.owner_of(stateid) else {
            return Vec::new();
        };
        let Ok(index) = self.find_live(client, stateid, StateKind::Any) else {
            return Vec::new();
        };
        let mut indexes = self.locks_of_open(client, index);
        indexes.retain(|i| self.states.at(*i).is_some_and(|e| !e.revoked));
        indexes.push(index);
        for &i in &indexes {
            self.mark_revoked(client, i);
        }
        indexes.iter().filter_map(|&i| self.state_ref(i)).collect()
    }

    fn owner_of(&self, stateid: &Stateid) -> Option<ClientId> {
        let other = &stateid.other;
        (be32(&other[..4]) == self.epoch).then_some(())?;
        Some(
            self.states
                .get(be32(&other[4..8]), be32(&other[8..]))?
                .client,
        )
    }

    pub(crate) fn mark_revoked(&mut self, client: ClientId, index: u32) {
        if let Some(entry) = self.states.at_mut(index) {
            entry.revoked = true;
        }
        if let Ok(record) = self.client_mut(client) {
            record.opens.retain(|_, i| *i != index);
            record.locks.retain(|_, i| *i != index);
            record.delegs.retain(|_, i| *i != index);
            record.revoked.push(index);
        }
        self.unindex_deleg(index);
    }

    /// The client's live open stateids.
    pub fn opens_of(&self, client: ClientId) -> Vec<StateRef> {
        let Ok(record) = self.client(client) else {
            return Vec::new();
        };
        record
            .opens
            .values()
            .filter_map(|&i| self.state_ref(i))
            .collect()
    }

    /// The client's live lock stateids.
    pub fn locks_of(&self, client: ClientId) -> Vec<StateRef> {
        let Ok(record) = self.client(client) else {
            return Vec::new();
        };
        record
            .locks
            .values()
            .filter_map(|&i| self.state_ref(i))
            .collect()
    }

    /// How many stateids (open, lock, revoked) the client has.
    pub fn stateids_of(&self, client: ClientId) -> usize {
        self.client(client).map_or(0, Client::stateids)
    }
}
