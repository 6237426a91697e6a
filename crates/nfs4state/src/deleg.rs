//! Delegations (RFC 8881 §10.2, §10.4): granted, recalled, returned and revoked.
//!
//! A delegation is a stateid of its client (one per client and file). The server asks
//! [`Nfs4State::delegate`] before granting one, after checking what this crate cannot see
//! (other clients' opens and locks, local processes). When someone else's access conflicts,
//! [`Nfs4State::break_delegations`] starts the recall of each conflicting delegation (the server
//! sends CB_RECALL) with a deadline of one lease; [`Nfs4State::tick`] revokes those not returned
//! by then, and the holder's SEQUENCE replies carry SEQ4_STATUS_RECALLABLE_STATE_REVOKED until it
//! frees them (§8.3, §18.46.3). A courtesy client's delegation in the way is revoked at once:
//! nobody would answer its recall.

use bytes::Bytes;

use crate::stateid::{Entry, Kind, StateKind};
use crate::{ClientId, Error, Nfs4State, Stateid};

/// A delegation the server should recall: CB_RECALL to `client` for `stateid` on `fh`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recall {
    /// Its holder.
    pub client: ClientId,
    /// The delegation stateid.
    pub stateid: Stateid,
    /// The file handle.
    pub fh: Bytes,
}

/// What an access that conflicts with delegations must do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Breaks {
    /// Recalls to send now (those already under way are not repeated).
    pub recall: Vec<Recall>,
    /// Some conflicting delegation is still out: the access waits (NFS4ERR_DELAY, JUKEBOX).
    pub pending: bool,
}

/// One live delegation, as `rnfsd ctl` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DelegInfo {
    /// Its holder.
    pub client: ClientId,
    /// The file key.
    pub file: Bytes,
    /// A write delegation (else read).
    pub write: bool,
    /// When its recall is due, if it is being recalled.
    pub recall_due_ms: Option<u64>,
}

/// Why no delegation is granted (the `why_no_delegation4` of OPEN_DELEGATE_NONE_EXT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoDeleg {
    /// Another client holds or is returning a conflicting delegation (WND4_CONTENTION).
    Contention,
    /// A delegation limit is reached (WND4_RESOURCE).
    Resource,
}

impl Nfs4State {
    /// Grants `client` a delegation on `file` (handle `fh`) if nothing this crate knows of stands
    /// in the way: a recall under way on the file, another client's delegation (any, for a write
    /// delegation; a write one, for a read delegation), the delegation limits. A client that
    /// already has one on the file keeps it (the same stateid is returned if it is at least as
    /// strong, else [`NoDeleg::Contention`]).
    pub fn delegate(
        &mut self,
        client: ClientId,
        file: Bytes,
        fh: Bytes,
        write: bool,
    ) -> Result<Stateid, NoDeleg> {
        let record = self.client(client).map_err(|_| NoDeleg::Resource)?;
        if let Some(&index) = record.delegs.get(&file) {
            return match self.states.at(index) {
                Some(Entry {
                    kind: Kind::Deleg { write: held, .. },
                    seqid,
                    ..
                }) if (*held || !write) && !self.recalls.contains_key(&index) => {
                    Ok(self.stateid_of(index, *seqid))
                }
                _ => Err(NoDeleg::Contention),
            };
        }
        let others = self.delegs.get(&file).map_or(&[][..], Vec::as_slice);
        for &index in others {
            let Some(entry) = self.states.at(index) else {
                continue;
            };
            let held_write = matches!(entry.kind, Kind::Deleg { write: true, .. });
            if self.recalls.contains_key(&index) || write || held_write {
                return Err(NoDeleg::Contention);
            }
        }
        if record.delegs.len() >= self.limits.delegations_per_client_max
            || self.delegations() >= self.limits.delegations_max
            || self.stateid_room(record).is_err()
        {
            return Err(NoDeleg::Resource);
        }
        let kind = Kind::Deleg {
            file: file.clone(),
            fh,
            write,
        };
        let index = self.insert(client, kind).map_err(|_| NoDeleg::Resource)?;
        if let Ok(record) = self.client_mut(client) {
            record.delegs.insert(file.clone(), index);
        }
        self.delegs.entry(file).or_default().push(index);
        self.counters.delegations_granted += 1;
        Ok(self.stateid_of(index, 1))
    }

    /// Whether any delegation is live (cheap: for a server's fast path).
    pub fn has_delegations(&self) -> bool {
        !self.delegs.is_empty()
    }

    /// Every live delegation (at most `max`), recalled ones first.
    pub fn delegation_list(&self, max: usize) -> Vec<DelegInfo> {
        let mut all: Vec<DelegInfo> = self
            .delegs
            .values()
            .flatten()
            .filter_map(|&i| match self.states.at(i)? {
                Entry {
                    kind: Kind::Deleg { file, write, .. },
                    client,
                    ..
                } => Some(DelegInfo {
                    client: *client,
                    file: file.clone(),
                    write: *write,
                    recall_due_ms: self.recalls.get(&i).copied(),
                }),
                _ => None,
            })
            .collect();
        all.sort_by_key(|d| (d.recall_due_ms.is_none(), d.recall_due_ms, d.client));
        all.truncate(max);
        all
    }

    /// Live delegations, all clients.
    pub fn delegations(&self) -> usize {
        self.delegs.values().map(Vec::len).sum()
    }

    /// `client`'s live delegation on `file`: its stateid and whether it is a write delegation.
    pub fn delegation_of(&self, client: ClientId, file: &[u8]) -> Option<(Stateid, bool)> {
        let index = *self.client(client).ok()?.delegs.get(file)?;
        match self.states.at(index)? {
            Entry {
                kind: Kind::Deleg { write, .. },
                seqid,
                ..
            } => Some((self.stateid_of(index, *seqid), *write)),
            _ => None,
        }
    }

    /// An access to `file` by `by` (`None`: not an NFSv4 client — NLM, NFSv3, a local
    /// process), reading only or writing (`write`; also a rename, a removal, an attribute
    /// change). Every other client's delegation it conflicts with (a write delegation for a
    /// read, any for a write) is recalled with a deadline of one lease from `now_ms`; a
    /// courtesy client's is revoked at once.
    pub fn break_delegations(
        &mut self,
        now_ms: u64,
        file: &[u8],
        by: Option<ClientId>,
        write: bool,
    ) -> Breaks {
        let lease_ms = self.limits.lease_ms;
        self.break_delegations_within(now_ms, file, by, write, lease_ms)
    }

    /// [`Nfs4State::break_delegations`] with recalls due within `recall_ms` (at most a lease): a
    /// local process kept waiting by a file lease waits only as long as the kernel lets it.
    pub fn break_delegations_within(
        &mut self,
        now_ms: u64,
        file: &[u8],
        by: Option<ClientId>,
        write: bool,
        recall_ms: u64,
    ) -> Breaks {
        let recall_ms = recall_ms.min(self.limits.lease_ms);
        let mut breaks = Breaks::default();
        let indexes = self.delegs.get(file).cloned().unwrap_or_default();
        for index in indexes {
            let Some(Entry {
                kind:
                    Kind::Deleg {
                        write: held_write,
                        fh,
                        ..
                    },
                client: holder,
                seqid,
                ..
            }) = self.states.at(index).cloned()
            else {
                continue;
            };
            if Some(holder) == by || !(write || held_write) {
                continue;
            }
            if self.is_courtesy(holder) {
                self.mark_revoked(holder, index);
                self.counters.delegations_revoked += 1;
                continue;
            }
            breaks.pending = true;
            let due_ms = now_ms.saturating_add(recall_ms);
            if let Some(deadline) = self.recalls.get_mut(&index) {
                // Under way: only ever brought forward.
                *deadline = (*deadline).min(due_ms);
                continue;
            }
            breaks.recall.push(Recall {
                client: holder,
                stateid: self.stateid_of(index, seqid),
                fh,
            });
            self.recalls.insert(index, due_ms);
            self.counters.delegations_recalled += 1;
        }
        breaks
    }

    /// Recalls `client`'s own delegation of `file` (it opened the file in a way its delegation
    /// does not cover), unless already under way; due in a lease.
    pub fn recall_own(&mut self, now_ms: u64, client: ClientId, file: &[u8]) -> Option<Recall> {
        let index = *self.client(client).ok()?.delegs.get(file)?;
        if self.recalls.contains_key(&index) {
            return None;
        }
        let Entry {
            kind: Kind::Deleg { fh, .. },
            seqid,
            ..
        } = self.states.at(index)?.clone()
        else {
            return None;
        };
        self.recalls
            .insert(index, now_ms.saturating_add(self.limits.lease_ms));
        self.counters.delegations_recalled += 1;
        Some(Recall {
            client,
            stateid: self.stateid_of(index, seqid),
            fh,
        })
    }

    /// The client holding a write delegation of `file`, if any (recalled or not).
    pub fn write_delegate(&self, file: &[u8]) -> Option<(ClientId, Bytes)> {
        self.delegs
            .get(file)?
            .iter()
            .find_map(|&i| match self.states.at(i)? {
                Entry {
                    kind:
                        Kind::Deleg {
                            write: true, fh, ..
                        },
                    client,
                    ..
                } => Some((*client, fh.clone())),
                _ => None,
            })
    }

    /// Whether some client holds (or is returning) a delegation of `file`.
    pub fn is_delegated(&self, file: &[u8]) -> bool {
        self.delegs.contains_key(file)
    }

    /// Takes back a delegation just granted that the server could not back (no lease on the
    /// file): as if it never was.
    pub fn undelegate(&mut self, client: ClientId, stateid: &Stateid) {
        if let Ok(index) = self.find_live(client, stateid, StateKind::Deleg) {
            self.remove_state(client, index);
            self.counters.delegations_granted -= 1;
        }
    }

    /// DELEGRETURN (RFC 8881 §18.6): the delegation is given back (a revoked one answers
    /// NFS4ERR_DELEG_REVOKED; FREE_STATEID frees it).
    pub fn delegreturn(&mut self, client: ClientId, stateid: &Stateid) -> Result<(), Error> {
        let index = self.find_live(client, stateid, StateKind::Deleg)?;
        self.remove_state(client, index);
        self.counters.delegations_returned += 1;
        Ok(())
    }

    /// Revokes the delegations whose recall deadline passed.
    pub(crate) fn revoke_unreturned(&mut self, now_ms: u64) {
        let due: Vec<u32> = self
            .recalls
            .iter()
            .filter(|(_, &deadline)| deadline <= now_ms)
            .map(|(&index, _)| index)
            .collect();
        for index in due {
            if let Some(client) = self.states.at(index).map(|e| e.client) {
                self.mark_revoked(client, index);
                self.counters.delegations_revoked += 1;
            }
            self.recalls.remove(&index);
        }
    }

    /// Forgets a delegation's file index and recall (it is revoked or removed).
    pub(crate) fn unindex_deleg(&mut self, index: u32) {
        self.recalls.remove(&index);
        let Some(Entry {
            kind: Kind::Deleg { file, .. },
            ..
        }) = self.states.at(index)
        else {
            return;
        };
        if let Some(list) = self.delegs.get_mut(file) {
            list.retain(|&i| i != index);
            if list.is_empty() {
                let file = file.clone();
                self.delegs.remove(&file);
            }
        }
    }

    /// Whether some of `client`'s revoked stateids are delegations (SEQUENCE's
    /// SEQ4_STATUS_RECALLABLE_STATE_REVOKED), and whether some are other state
    /// (SEQ4_STATUS_ADMIN_STATE_REVOKED).
    pub(crate) fn revoked_kinds(&self, revoked: &[u32]) -> (bool, bool) {
        let is_deleg = |i: &u32| {
            matches!(
                self.states.at(*i),
                Some(Entry {
                    kind: Kind::Deleg { .. },
                    ..
                })
            )
        };
        (
            revoked.iter().any(is_deleg),
            revoked.iter().any(|i| !is_deleg(i)),
        )
    }
}
