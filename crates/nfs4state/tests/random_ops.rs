//! Random operation sequences from several clients: nothing panics, no limit is exceeded, and no
//! call by one client succeeds on another client's stateid.

use std::collections::HashMap;

use proptest::prelude::*;
use rnfs_nfs4state::*;

const OWNERS: usize = 3;

fn limits() -> Limits {
    Limits {
        clients_max: 4,
        sessions_per_client_max: 2,
        conns_per_session_max: 2,
        slots_max: 4,
        slot_reply_bytes_max: 64,
        reply_cache_bytes_max: 4 * 64 * 3,
        stateids_per_client_max: 6,
        stateids_max: 10,
        delegations_per_client_max: 2,
        delegations_max: 4,
        lease_ms: 1000,
        courtesy_ms: 5000,
        grace_ms: 1000,
        ops_per_compound_max: 8,
        ..Limits::default()
    }
}

#[derive(Clone, Debug)]
enum Op {
    Establish {
        who: usize,
        verifier: u8,
        principal: u8,
    },
    CreateSession {
        who: usize,
    },
    Sequence {
        who: usize,
        slot: u32,
        retry: bool,
        complete: bool,
        cache: bool,
        len: usize,
        conn: u64,
    },
    Open {
        who: usize,
        owner: u8,
        file: u8,
        access: u32,
        deny: u32,
    },
    Lock {
        who: usize,
        pick: usize,
        owner: u8,
    },
    Use {
        who: usize,
        pick: usize,
        what: u8,
        current: bool,
    },
    Tick {
        advance_ms: u64,
    },
    Expire {
        who: usize,
    },
    DestroySession {
        who: usize,
    },
    DestroyClientid {
        who: usize,
    },
    ConnClosed {
        conn: u64,
    },
    Revoke {
        pick: usize,
    },
    ReclaimComplete {
        who: usize,
    },
    Delegate {
        who: usize,
        file: u8,
        write: bool,
    },
    Break {
        /// `OWNERS`: not an NFSv4 client.
        by: usize,
        file: u8,
        write: bool,
    },
    DelegReturn {
        pick: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let who = 0..OWNERS;
    prop_oneof![
        (who.clone(), 0..3u8, any::<bool>()).prop_map(|(who, file, write)| Op::Delegate {
            who,
            file,
            write
        }),
        (0..=OWNERS, 0..3u8, any::<bool>()).prop_map(|(by, file, write)| Op::Break {
            by,
            file,
            write
        }),
        (0..16usize).prop_map(|pick| Op::DelegReturn { pick }),
        (who.clone(), 0..2u8, 0..2u8).prop_map(|(who, verifier, principal)| Op::Establish {
            who,
            verifier,
            principal
        }),
        who.clone().prop_map(|who| Op::CreateSession { who }),
        (
            who.clone(),
            0..5u32,
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            0..100usize,
            0..4u64
        )
            .prop_map(
                |(who, slot, retry, complete, cache, len, conn)| Op::Sequence {
                    who,
                    slot,
                    retry,
                    complete,
                    cache,
                    len,
                    conn
                }
            ),
        (who.clone(), 0..3u8, 0..3u8, 0..4u32, 0..4u32).prop_map(
            |(who, owner, file, access, deny)| Op::Open {
                who,
                owner,
                file,
                access,
                deny
            }
        ),
        (who.clone(), any::<usize>(), 0..2u8).prop_map(|(who, pick, owner)| Op::Lock {
            who,
            pick,
            owner
        }),
        (who.clone(), any::<usize>(), 0..6u8, any::<bool>()).prop_map(
            |(who, pick, what, current)| Op::Use {
                who,
                pick,
                what,
                current
            }
        ),
        (0..3000u64).prop_map(|advance_ms| Op::Tick { advance_ms }),
        who.clone().prop_map(|who| Op::Expire { who }),
        who.clone().prop_map(|who| Op::DestroySession { who }),
        who.clone().prop_map(|who| Op::DestroyClientid { who }),
        (0..4u64).prop_map(|conn| Op::ConnClosed { conn }),
        any::<usize>().prop_map(|pick| Op::Revoke { pick }),
        who.prop_map(|who| Op::ReclaimComplete { who }),
    ]
}

/// What the test remembers of each owner.
#[derive(Clone, Debug, Default)]
struct Known {
    clientid: Option<ClientId>,
    next_cs: u32,
    session: Option<SessionId>,
    slots: HashMap<u32, u32>,
}

struct World {
    st: Nfs4State,
    now: u64,
    known: Vec<Known>,
    /// Every stateid handed out, with the client it was handed to.
    issued: Vec<(Stateid, ClientId)>,
}

impl World {
    fn pick(&self, pick: usize) -> Option<(Stateid, ClientId)> {
        (!self.issued.is_empty()).then(|| self.issued[pick % self.issued.len()])
    }

    fn issue(&mut self, stateid: Stateid, client: ClientId) {
        if let Some(entry) = self
            .issued
            .iter_mut()
            .find(|(s, _)| s.other == stateid.other)
        {
            entry.0 = stateid;
        } else {
            self.issued.push((stateid, client));
        }
    }

    fn apply(&mut self, op: Op) -> Result<(), TestCaseError> {
        let now = self.now;
        match op {
            Op::Establish {
                who,
                verifier,
                principal,
            } => {
                let req = ExchangeId {
                    owner: Bytes::from(vec![b'o', who as u8]),
                    verifier: [verifier; 8],
                    principal: Bytes::from(vec![principal]),
                    update: false,
                };
                if let Ok(ok) = self.st.exchange_id(now, req) {
                    let k = &mut self.known[who];
                    if k.clientid != Some(ok.clientid) {
                        *k = Known {
                            clientid: Some(ok.clientid),
                            next_cs: ok.sequenceid,
                            ..Known::default()
                        };
                    }
                }
            }
            Op::CreateSession { who } => {
                let Some(clientid) = self.known[who].clientid else {
                    return Ok(());
                };
                let req = CreateSession {
                    clientid,
                    sequence: self.known[who].next_cs,
                    principal: Bytes::from(vec![0]),
                    flags: CREATE_SESSION4_FLAG_CONN_BACK_CHAN,
                    fore: ChannelAttrs::new(1 << 16, 1 << 16, 64, 8, 8),
                    back: ChannelAttrs::new(4096, 4096, 0, 2, 1),
                    cb_program: 1,
                    cb_sec: Bytes::new(),
                    conn: who as u64,
                    minor: 1,
                };
                if let Ok(ok) = self.st.create_session(now, req) {
                    let k = &mut self.known[who];
                    k.next_cs = k.next_cs.wrapping_add(1);
                    k.session = Some(ok.sessionid);
                    k.slots.clear();
                    prop_assert!(ok.fore.maxrequests as usize <= limits().slots_max);
                }
            }
            Op::Sequence {
                who,
                slot,
                retry,
                complete,
                cache,
                len,
                conn,
            } => {
                let Some(sessionid) = self.known[who].session else {
                    return Ok(());
                };
                let last = self.known[who].slots.get(&slot).copied().unwrap_or(0);
                let sequenceid = if retry { last } else { last.wrapping_add(1) };
                let req = Sequence {
                    sessionid,
                    sequenceid,
                    slotid: slot,
                    highest_slotid: 0,
                    cachethis: cache,
                    conn,
                    digest: None,
                };
                if let Ok(SequenceOutcome::Execute(ticket)) = self.st.sequence(now, req) {
                    self.known[who].slots.insert(slot, sequenceid);
                    if complete {
                        let reply = Bytes::from(vec![7; len]);
                        let stored = self.st.complete(sessionid, ticket.slotid, reply, cache);
                        prop_assert!(stored.is_ok() || (cache && len > 64));
                    }
                }
            }
            Op::Open {
                who,
                owner,
                file,
                access,
                deny,
            } => {
                let Some(clientid) = self.known[who].clientid else {
                    return Ok(());
                };
                let opened = self.st.open(
                    now,
                    clientid,
                    Bytes::from(vec![owner]),
                    Bytes::from(vec![file]),
                    access,
                    deny,
                );
                if let Ok(ok) = opened {
                    self.issue(ok.stateid, clientid);
                }
            }
            Op::Lock { who, pick, owner } => {
                let (Some(clientid), Some((stateid, issued_to))) =
                    (self.known[who].clientid, self.pick(pick))
                else {
                    return Ok(());
                };
                let got = self
                    .st
                    .lock_stateid(clientid, &stateid, Bytes::from(vec![owner]));
                prop_assert!(
                    got.is_err() || issued_to == clientid,
                    "lock on another client's open"
                );
                if let Ok((lock, _)) = got {
                    self.issue(lock, clientid);
                }
            }
            Op::Use {
                who,
                pick,
                what,
                current,
            } => {
                let (Some(clientid), Some((mut stateid, issued_to))) =
                    (self.known[who].clientid, self.pick(pick))
                else {
                    return Ok(());
                };
                if current {
                    stateid.seqid = 0;
                }
                let ok = match what {
                    0 => self.st.check(clientid, &stateid, StateKind::Any).is_ok(),
                    1 => self.st.test_stateid(clientid, &stateid).is_ok(),
                    2 => self
                        .st
                        .bump(clientid, &stateid)
                        .map(|s| self.issue(s, clientid))
                        .is_ok(),
                    3 => self.st.close(clientid, &stateid).is_ok(),
                    4 => self.st.free_stateid(clientid, &stateid).is_ok(),
                    _ => self
                        .st
                        .open_downgrade(clientid, &stateid, 1, 0)
                        .map(|s| self.issue(s, clientid))
                        .is_ok(),
                };
                prop_assert!(
                    !ok || issued_to == clientid,
                    "client used another client's stateid"
                );
            }
            Op::Tick { advance_ms } => {
                self.now += advance_ms;
                self.st.tick(self.now);
            }
            Op::Expire { who } => {
                if let Some(clientid) = self.known[who].clientid {
                    if let Some(released) = self.st.expire(clientid) {
                        prop_assert!(released.states.iter().all(|s| s.client == clientid));
                    }
                }
            }
            Op::DestroySession { who } => {
                if let Some(sessionid) = self.known[who].session {
                    let _ = self.st.destroy_session(sessionid);
                }
            }
            Op::DestroyClientid { who } => {
                if let Some(clientid) = self.known[who].clientid {
                    let _ = self.st.destroy_clientid(clientid);
                }
            }
            Op::ConnClosed { conn } => self.st.connection_closed(conn),
            Op::Revoke { pick } => {
                if let Some((stateid, issued_to)) = self.pick(pick) {
                    prop_assert!(self
                        .st
                        .revoke(&stateid)
                        .iter()
                        .all(|s| s.client == issued_to));
                }
            }
            Op::ReclaimComplete { who } => {
                if let Some(clientid) = self.known[who].clientid {
                    let _ = self.st.reclaim_complete(clientid);
                }
            }
            Op::Delegate { who, file, write } => {
                if let Some(clientid) = self.known[who].clientid {
                    let key = Bytes::from(vec![b'f', file]);
                    if let Ok(stateid) = self.st.delegate(clientid, key.clone(), key, write) {
                        self.issue(stateid, clientid);
                    }
                }
            }
            Op::Break { by, file, write } => {
                let by = self.known.get(by).and_then(|k| k.clientid);
                let breaks = self
                    .st
                    .break_delegations(self.now, &[b'f', file], by, write);
                prop_assert!(breaks.recall.iter().all(|r| Some(r.client) != by));
                prop_assert!(breaks.pending || breaks.recall.is_empty());
            }
            Op::DelegReturn { pick } => {
                if let Some((stateid, issued_to)) = self.pick(pick) {
                    for k in self.known.clone() {
                        if let Some(clientid) = k.clientid {
                            let ok = self.st.delegreturn(clientid, &stateid).is_ok();
                            prop_assert!(!ok || clientid == issued_to);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Delegations never conflict: on a file, a write delegation is the only one.
    fn check_delegations(&self) -> Result<(), TestCaseError> {
        for file in 0..3u8 {
            let key = [b'f', file];
            let held: Vec<bool> = self
                .known
                .iter()
                .filter_map(|k| k.clientid)
                .filter_map(|c| self.st.delegation_of(c, &key).map(|(_, w)| w))
                .collect();
            prop_assert!(!held.contains(&true) || held.len() == 1, "{held:?}");
        }
        prop_assert!(self.st.delegations() <= limits().delegations_max);
        Ok(())
    }

    fn check_limits(&self) -> Result<(), TestCaseError> {
        let l = limits();
        let usage = self.st.usage();
        prop_assert!(usage.clients <= l.clients_max);
        prop_assert!(usage.stateids <= l.stateids_max);
        prop_assert!(usage.sessions <= l.clients_max * l.sessions_per_client_max);
        prop_assert!(usage.reply_cache_used_bytes <= usage.reply_cache_reserved_bytes);
        prop_assert!(usage.reply_cache_reserved_bytes <= l.reply_cache_bytes_max);
        for info in self.st.clients(self.now) {
            prop_assert!(
                info.opens + info.locks + info.delegations + info.revoked
                    <= l.stateids_per_client_max
            );
            prop_assert!(info.delegations <= l.delegations_per_client_max);
            prop_assert!(info.sessions <= l.sessions_per_client_max);
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_operations_keep_the_rules(ops in proptest::collection::vec(op(), 1..120)) {
        let previous = vec![Bytes::from(vec![b'o', 0])];
        let st = Nfs4State::new(0, Config::new(limits(), 5, [3; 16], previous)).unwrap();
        let mut world = World { st, now: 0, known: vec![Known::default(); OWNERS], issued: Vec::new() };
        for op in ops {
            world.apply(op)?;
            world.check_limits()?;
            world.check_delegations()?;
        }
    }
}
