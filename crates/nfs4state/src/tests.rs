//! Deterministic tests of every rule, one scenario each.

use bytes::Bytes;

use crate::*;

const P: &[u8] = b"sys:0";

fn config(limits: Limits, epoch: u32, previous: Vec<Bytes>) -> Config {
    Config::new(limits, epoch, [9; 16], previous)
}

fn state() -> Nfs4State {
    Nfs4State::new(0, config(Limits::default(), 7, vec![])).unwrap()
}

fn xid(owner: &'static [u8], verifier: u8, principal: &'static [u8], update: bool) -> ExchangeId {
    ExchangeId {
        owner: Bytes::from_static(owner),
        verifier: [verifier; 8],
        principal: Bytes::from_static(principal),
        update,
    }
}

fn fore() -> ChannelAttrs {
    ChannelAttrs::new(1 << 20, 1 << 20, 4096, 16, 8)
}

fn cs(clientid: ClientId, sequence: u32, principal: &'static [u8]) -> CreateSession {
    CreateSession {
        clientid,
        sequence,
        principal: Bytes::from_static(principal),
        flags: 0,
        fore: fore(),
        back: ChannelAttrs::new(4096, 4096, 0, 4, 2),
        cb_program: 0x4000_0001,
        cb_sec: Bytes::new(),
        conn: 1,
        minor: 1,
    }
}

/// EXCHANGE_ID and CREATE_SESSION for `owner`.
fn establish(st: &mut Nfs4State, now: u64, owner: &'static [u8]) -> (ClientId, SessionId) {
    let ok = st.exchange_id(now, xid(owner, 1, P, false)).unwrap();
    let session = st
        .create_session(now, cs(ok.clientid, ok.sequenceid, P))
        .unwrap();
    (ok.clientid, session.sessionid)
}

fn seq(sessionid: SessionId, slotid: u32, sequenceid: u32) -> Sequence {
    Sequence {
        sessionid,
        sequenceid,
        slotid,
        highest_slotid: 0,
        cachethis: true,
        conn: 1,
        digest: None,
    }
}

/// A full request on a slot: SEQUENCE, then complete with a cached reply.
fn request(
    st: &mut Nfs4State,
    now: u64,
    sessionid: SessionId,
    slotid: u32,
    sequenceid: u32,
) -> Ticket {
    let SequenceOutcome::Execute(ticket) = st
        .sequence(now, seq(sessionid, slotid, sequenceid))
        .unwrap()
    else {
        panic!("expected a new request")
    };
    st.complete(sessionid, slotid, Bytes::from_static(b"reply"), true)
        .unwrap();
    ticket
}

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

// ---- EXCHANGE_ID, §18.35.4 ----

#[test]
fn case1_new_owner_gets_an_unconfirmed_record_in_this_epoch() {
    let mut st = state();
    let a = st.exchange_id(0, xid(b"a", 1, P, false)).unwrap();
    let c = st.exchange_id(0, xid(b"c", 1, P, false)).unwrap();
    assert!(!a.confirmed);
    assert_eq!(a.flags(), 0);
    assert_eq!(a.sequenceid, 1);
    assert_ne!(a.clientid, c.clientid);
    assert_eq!(a.clientid.epoch(), 7);
}

#[test]
fn case2_same_verifier_and_principal_returns_the_confirmed_record() {
    let mut st = state();
    let (id, _) = establish(&mut st, 0, b"a");
    let again = st.exchange_id(0, xid(b"a", 1, P, false)).unwrap();
    assert_eq!(again.clientid, id);
    assert!(again.confirmed);
    assert_eq!(again.flags(), EXCHGID4_FLAG_CONFIRMED_R);
    assert_eq!(again.sequenceid, 2, "the next csa_sequence");
}

#[test]
fn case3_other_principal_is_refused_while_the_client_has_state() {
    let mut st = state();
    let (id, sid) = establish(&mut st, 0, b"a");
    assert_eq!(
        st.exchange_id(0, xid(b"a", 1, b"sys:1", false)),
        Err(Error::ClidInuse)
    );
    // Without sessions or state, the owner is taken over.
    st.destroy_session(sid).unwrap();
    let taken = st.exchange_id(0, xid(b"a", 1, b"sys:1", false)).unwrap();
    assert_ne!(taken.clientid, id);
    assert!(!taken.confirmed);
    assert_eq!(
        st.create_session(0, cs(id, 2, P)),
        Err(Error::StaleClientid)
    );
}

#[test]
fn case3_takes_over_a_courtesy_client_and_reports_its_state() {
    let mut st = state();
    let (id, _) = establish(&mut st, 0, b"a");
    st.open(0, id, b("oo"), b("f"), 1, 0).unwrap();
    assert_eq!(st.tick(90_001), vec![Expiry::Courtesy(id)]);
    let taken = st
        .exchange_id(90_002, xid(b"a", 1, b"sys:1", false))
        .unwrap();
    assert_ne!(taken.clientid, id);
    let expiries = st.tick(90_003);
    let [Expiry::Purged(released)] = expiries.as_slice() else {
        panic!("{expiries:?}")
    };
    assert_eq!(released.clientid, id);
    assert_eq!(released.reason, PurgeReason::Replaced);
    assert_eq!(released.states.len(), 1);
}

#[test]
fn case4_restart_replaces_the_record_when_the_new_one_is_confirmed() {
    let mut st = state();
    let (old, old_sid) = establish(&mut st, 0, b"a");
    let open = st.open(0, old, b("oo"), b("f"), 3, 0).unwrap();
    let new = st.exchange_id(0, xid(b"a", 2, P, false)).unwrap();
    assert_ne!(new.clientid, old);
    assert!(!new.confirmed);
    // The old record works until the new one is confirmed.
    request(&mut st, 1, old_sid, 0, 1);
    st.create_session(2, cs(new.clientid, new.sequenceid, P))
        .unwrap();
    assert_eq!(st.sequence(3, seq(old_sid, 0, 2)), Err(Error::BadSession));
    assert_eq!(st.test_stateid(old, &open.stateid), Err(Error::BadStateid));
    let expiries = st.tick(4);
    let [Expiry::Purged(released)] = expiries.as_slice() else {
        panic!("{expiries:?}")
    };
    assert_eq!(
        (released.clientid, released.reason),
        (old, PurgeReason::Replaced)
    );
    assert_eq!(released.states[0].stateid.other, open.stateid.other);
}

#[test]
fn case5_unconfirmed_record_is_replaced() {
    let mut st = state();
    let first = st.exchange_id(0, xid(b"a", 1, P, false)).unwrap();
    let second = st.exchange_id(0, xid(b"a", 2, P, false)).unwrap();
    assert_ne!(first.clientid, second.clientid);
    assert_eq!(
        st.create_session(0, cs(first.clientid, 1, P)),
        Err(Error::StaleClientid)
    );
    assert!(st.create_session(0, cs(second.clientid, 1, P)).is_ok());
    assert_eq!(st.usage().clients, 1);
}

#[test]
fn update_cases_6_to_9() {
    let mut st = state();
    assert_eq!(st.exchange_id(0, xid(b"a", 1, P, true)), Err(Error::Noent));
    let (id, _) = establish(&mut st, 0, b"a");
    let updated = st.exchange_id(0, xid(b"a", 1, P, true)).unwrap();
    assert_eq!((updated.clientid, updated.confirmed), (id, true));
    assert_eq!(
        st.exchange_id(0, xid(b"a", 2, P, true)),
        Err(Error::NotSame)
    );
    assert_eq!(
        st.exchange_id(0, xid(b"a", 1, b"sys:1", true)),
        Err(Error::Perm)
    );
    assert_eq!(
        st.exchange_id(0, xid(b"a", 2, b"sys:1", true)),
        Err(Error::Perm)
    );
}

#[test]
fn oversized_owner_is_badxdr() {
    let mut st = state();
    let req = ExchangeId {
        owner: Bytes::from(vec![1; 1025]),
        ..xid(b"", 1, P, false)
    };
    assert_eq!(st.exchange_id(0, req), Err(Error::BadXdr));
}

#[test]
fn full_clients_table_evicts_the_oldest_courtesy_client_else_delays() {
    let limits = Limits {
        clients_max: 2,
        ..Limits::default()
    };
    let mut st = Nfs4State::new(0, config(limits, 7, vec![])).unwrap();
    let (a, _) = establish(&mut st, 0, b"a");
    establish(&mut st, 10, b"b");
    assert_eq!(
        st.exchange_id(20, xid(b"c", 1, P, false)),
        Err(Error::Delay)
    );
    st.tick(90_005); // a is courtesy, b not yet
    assert!(st.is_courtesy(a));
    st.exchange_id(90_006, xid(b"c", 1, P, false)).unwrap();
    let expiries = st.tick(90_007);
    assert!(expiries.iter().any(
        |e| matches!(e, Expiry::Purged(r) if r.clientid == a && r.reason == PurgeReason::Evicted)
    ));
}

// ---- CREATE_SESSION, §18.36 ----

#[test]
fn create_session_replay_misorder_and_stale_clientid() {
    let mut st = state();
    let ok = st.exchange_id(0, xid(b"a", 1, P, false)).unwrap();
    assert_eq!(
        st.create_session(0, cs(ok.clientid, 0, P)),
        Err(Error::SeqMisordered)
    );
    assert_eq!(
        st.create_session(0, cs(ok.clientid, 5, P)),
        Err(Error::SeqMisordered)
    );
    let first = st.create_session(0, cs(ok.clientid, 1, P)).unwrap();
    let replay = st.create_session(0, cs(ok.clientid, 1, P)).unwrap();
    assert_eq!(first, replay);
    assert_eq!(st.usage().sessions, 1, "a replay creates nothing");
    assert_eq!(
        st.create_session(0, cs(ok.clientid, 3, P)),
        Err(Error::SeqMisordered)
    );
    let second = st.create_session(0, cs(ok.clientid, 2, P)).unwrap();
    assert_ne!(first.sessionid, second.sessionid);
    let unknown = ClientId(ok.clientid.0 + 100);
    assert_eq!(
        st.create_session(0, cs(unknown, 1, P)),
        Err(Error::StaleClientid)
    );
    let other_epoch = ClientId(u64::from(8u32) << 32 | (ok.clientid.0 & 0xffff_ffff));
    assert_eq!(
        st.create_session(0, cs(other_epoch, 3, P)),
        Err(Error::StaleClientid)
    );
}

#[test]
fn create_session_by_another_principal_on_unconfirmed_is_clid_inuse() {
    let mut st = state();
    let ok = st.exchange_id(0, xid(b"a", 1, P, false)).unwrap();
    assert_eq!(
        st.create_session(0, cs(ok.clientid, 1, b"sys:1")),
        Err(Error::ClidInuse)
    );
}

#[test]
fn channel_attributes_are_clamped_and_too_small_refused() {
    let limits = Limits {
        slots_max: 4,
        ops_per_compound_max: 8,
        slot_reply_bytes_max: 1000,
        ..Limits::default()
    };
    let mut st = Nfs4State::new(0, config(limits, 7, vec![])).unwrap();
    let ok = st.exchange_id(0, xid(b"a", 1, P, false)).unwrap();
    let mut req = cs(ok.clientid, 1, P);
    req.fore = ChannelAttrs {
        headerpadsize: 64,
        ..ChannelAttrs::new(u32::MAX, u32::MAX, u32::MAX, 1000, 1000)
    };
    req.flags = CREATE_SESSION4_FLAG_PERSIST
        | CREATE_SESSION4_FLAG_CONN_BACK_CHAN
        | CREATE_SESSION4_FLAG_CONN_RDMA;
    let got = st.create_session(0, req.clone()).unwrap();
    assert_eq!(
        got.fore,
        ChannelAttrs::new(1_114_112, 1_114_112, 1000, 8, 4)
    );
    assert_eq!(got.flags, CREATE_SESSION4_FLAG_CONN_BACK_CHAN);
    assert_eq!(
        (got.back.maxrequests, got.back.maxresponsesize_cached),
        (1, 0)
    );
    for small in [
        ChannelAttrs::new(100, 1 << 20, 0, 8, 8),
        ChannelAttrs::new(1 << 20, 100, 0, 8, 8),
        ChannelAttrs::new(1 << 20, 1 << 20, 0, 1, 8),
        ChannelAttrs::new(1 << 20, 1 << 20, 0, 8, 0),
    ] {
        let req = CreateSession {
            sequence: 2,
            fore: small,
            ..req.clone()
        };
        assert_eq!(st.create_session(0, req), Err(Error::TooSmall));
    }
    let req = CreateSession {
        sequence: 2,
        back: ChannelAttrs::new(100, 100, 0, 1, 1),
        ..req
    };
    assert_eq!(st.create_session(0, req), Err(Error::TooSmall));
}

#[test]
fn sessions_per_client_limit_is_resource() {
    let limits = Limits {
        sessions_per_client_max: 2,
        ..Limits::default()
    };
    let mut st = Nfs4State::new(0, config(limits, 7, vec![])).unwrap();
    let ok = st.exchange_id(0, xid(b"a", 1, P, false)).unwrap();
    st.create_session(0, cs(ok.clientid, 1, P)).unwrap();
    st.create_session(0, cs(ok.clientid, 2, P)).unwrap();
    assert_eq!(
        st.create_session(0, cs(ok.clientid, 3, P)),
        Err(Error::Resource)
    );
}

#[test]
fn reply_cache_budget_is_shared_out_then_courtesy_clients_make_room() {
    let limits = Limits {
        slots_max: 8,
        slot_reply_bytes_max: 4096,
        reply_cache_bytes_max: 64 * 4096,
        ..Limits::default()
    };
    let mut st = Nfs4State::new(0, config(limits, 7, vec![])).unwrap();
    let owners: [&'static [u8]; 8] = [b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"h"];
    let mut granted = Vec::new();
    let mut refused = None;
    'clients: for owner in owners {
        let ok = st.exchange_id(0, xid(owner, 1, P, false)).unwrap();
        for seq in 1..=8 {
            match st.create_session(0, cs(ok.clientid, seq, P)) {
                Ok(s) => granted.push(s.fore.maxrequests),
                Err(e) => {
                    refused = Some(e);
                    break 'clients;
                }
            }
        }
    }
    // Each session gets at most an eighth of what is left, so slots shrink gradually (8 while
    // 256 KiB remain, ... 1 at the end), never all to the first.
    assert_eq!(granted[0], 8);
    assert!(granted.windows(2).all(|w| w[1] <= w[0]), "{granted:?}");
    assert_eq!(*granted.last().unwrap(), 1);
    assert!(granted.len() > 16, "{granted:?}");
    assert_eq!(
        refused,
        Some(Error::Delay),
        "no courtesy client to evict yet"
    );
    assert!(st.usage().reply_cache_reserved_bytes <= 64 * 4096);
    // Once the others' leases have run out, a live client's session evicts courtesy clients.
    let later = Limits::default().lease_ms + 1;
    st.tick(later);
    let fresh = st.exchange_id(later, xid(b"late", 1, P, false)).unwrap();
    let s = st.create_session(later, cs(fresh.clientid, 1, P)).unwrap();
    assert!(s.fore.maxrequests >= 1);
    assert!(
        st.tick(later)
            .iter()
            .any(|e| matches!(e, Expiry::Purged(_))),
        "an evicted client's state is handed back"
    );
}

// ---- SEQUENCE and the reply cache, §2.10.6 ----

#[test]
fn sequence_new_replay_and_misordered() {
    let mut st = state();
    let (id, sid) = establish(&mut st, 0, b"a");
    let ticket = request(&mut st, 1, sid, 0, 1);
    assert_eq!(
        (ticket.clientid, ticket.slotid, ticket.sequenceid),
        (id, 0, 1)
    );
    assert_eq!(
        (ticket.highest_slotid, ticket.target_highest_slotid),
        (7, 7)
    );
    assert_eq!(
        st.sequence(2, seq(sid, 0, 1)),
        Ok(SequenceOutcome::Replay(b("reply")))
    );
    assert_eq!(st.sequence(2, seq(sid, 0, 3)), Err(Error::SeqMisordered));
    assert_eq!(st.sequence(2, seq(sid, 0, 0)), Err(Error::SeqMisordered));
    // A fresh slot starts at 0: its first request is 1, and "replaying" 0 is misordered.
    assert_eq!(st.sequence(2, seq(sid, 1, 0)), Err(Error::SeqMisordered));
    request(&mut st, 2, sid, 0, 2);
    assert_eq!(st.counters().replays, 1);
}

#[test]
fn sequence_uncached_retry_badslot_delay_badsession() {
    let mut st = state();
    let (_, sid) = establish(&mut st, 0, b"a");
    assert!(matches!(
        st.sequence(1, seq(sid, 0, 1)),
        Ok(SequenceOutcome::Execute(_))
    ));
    assert_eq!(
        st.sequence(1, seq(sid, 0, 1)),
        Err(Error::Delay),
        "still executing"
    );
    assert_eq!(st.sequence(1, seq(sid, 0, 2)), Err(Error::SeqMisordered));
    st.complete(sid, 0, b("reply"), false).unwrap();
    assert_eq!(st.sequence(1, seq(sid, 0, 1)), Err(Error::RetryUncachedRep));
    assert_eq!(st.sequence(1, seq(sid, 8, 1)), Err(Error::BadSlot));
    assert_eq!(
        st.sequence(1, seq(SessionId([0; 16]), 0, 1)),
        Err(Error::BadSession)
    );
    assert_eq!(
        st.complete(sid, 0, b("x"), true),
        Err(Error::Inval),
        "nothing in progress"
    );
}

#[test]
fn false_retry_is_detected_by_digest() {
    let mut st = state();
    let (_, sid) = establish(&mut st, 0, b"a");
    let first = Sequence {
        digest: Some(1),
        ..seq(sid, 0, 1)
    };
    st.sequence(1, first).unwrap();
    st.complete(sid, 0, b("reply"), true).unwrap();
    assert_eq!(
        st.sequence(
            1,
            Sequence {
                digest: Some(2),
                ..first
            }
        ),
        Err(Error::SeqFalseRetry)
    );
    assert_eq!(
        st.sequence(1, first),
        Ok(SequenceOutcome::Replay(b("reply")))
    );
}

#[test]
fn oversized_replies_are_not_cached() {
    let mut st = state();
    let (_, sid) = establish(&mut st, 0, b"a");
    let SequenceOutcome::Execute(ticket) = st.sequence(1, seq(sid, 0, 1)).unwrap() else {
        panic!()
    };
    assert_eq!(ticket.check_reply(4096), Ok(()));
    assert_eq!(ticket.check_reply(4097), Err(Error::RepTooBigToCache));
    assert_eq!(ticket.check_reply((1 << 20) + 1), Err(Error::RepTooBig));
    assert_eq!(
        ticket.check_request((1 << 20) + 1, 1),
        Err(Error::ReqTooBig)
    );
    assert_eq!(ticket.check_request(100, 17), Err(Error::TooManyOps));
    assert_eq!(ticket.check_request(100, 16), Ok(()));
    assert_eq!(
        st.complete(sid, 0, Bytes::from(vec![0; 4097]), true),
        Err(Error::RepTooBigToCache)
    );
    assert_eq!(st.sequence(1, seq(sid, 0, 1)), Err(Error::RetryUncachedRep));
    assert_eq!(st.usage().reply_cache_used_bytes, 0);
    request(&mut st, 2, sid, 0, 2);
    assert_eq!(st.usage().reply_cache_used_bytes, 5);
    st.destroy_session(sid).unwrap();
    assert_eq!(st.usage().reply_cache_used_bytes, 0);
    assert_eq!(st.usage().reply_cache_reserved_bytes, 0);
}

// ---- connections and the back channel, §2.10.3.1, §18.34 ----

#[test]
fn connections_bind_and_back_channel_status() {
    let mut st = state();
    let ok = st.exchange_id(0, xid(b"a", 1, P, false)).unwrap();
    let req = CreateSession {
        flags: CREATE_SESSION4_FLAG_CONN_BACK_CHAN,
        conn: 5,
        ..cs(ok.clientid, 1, P)
    };
    let sid = st.create_session(0, req).unwrap().sessionid;
    assert_eq!(st.status_flags(sid), 0);
    let cb = st.backchannel(sid).unwrap();
    assert_eq!(
        (cb.conn, cb.cb_program, cb.slotid, cb.sequenceid, cb.minor),
        (5, 0x4000_0001, 0, 1, 1)
    );
    // One callback at a time on the session's one slot.
    assert_eq!(st.backchannel(sid), Err(CbUnavailable::Busy));
    assert_eq!(st.client_backchannel(ok.clientid), Err(CbUnavailable::Busy));
    st.callback_done(sid, true);
    assert_eq!(st.client_backchannel(ok.clientid).unwrap().sequenceid, 2);
    // Unanswered: the path is down and the next call retries the same sequence id.
    st.callback_done(sid, false);
    assert_eq!(
        st.status_flags(sid),
        SEQ4_STATUS_CB_PATH_DOWN | SEQ4_STATUS_CB_PATH_DOWN_SESSION
    );
    assert_eq!(
        st.client_backchannel(ok.clientid),
        Err(CbUnavailable::PathDown)
    );
    assert_eq!(st.backchannel(sid).unwrap().sequenceid, 2);
    st.callback_done(sid, true);
    assert_eq!(st.status_flags(sid), 0);
    // A SEQUENCE on another connection binds it (fore only).
    request(&mut st, 1, sid, 0, 1);
    st.connection_closed(5);
    assert_eq!(st.backchannel(sid), Err(CbUnavailable::PathDown));
    let ticket = request(&mut st, 2, sid, 0, 2);
    assert_eq!(
        ticket.status_flags,
        SEQ4_STATUS_CB_PATH_DOWN | SEQ4_STATUS_CB_PATH_DOWN_SESSION
    );
    assert_eq!(st.bind_conn(sid, 6, BindDir::BackOrBoth), Ok(ConnDir::Both));
    assert_eq!(st.status_flags(sid), 0);
    // A probe that goes unanswered marks it down; one answered brings it back.
    st.probe_done(sid, false);
    assert_ne!(st.status_flags(sid), 0);
    st.probe_done(sid, true);
    assert_eq!(st.status_flags(sid), 0);
    st.backchannel_ctl(sid, 77, b("sec")).unwrap();
    let cb = st.backchannel(sid).unwrap();
    assert_eq!(
        (cb.conn, cb.cb_program, cb.cb_sec, cb.sequenceid),
        (6, 77, b("sec"), 3)
    );
    assert_eq!(
        st.bind_conn(SessionId([1; 16]), 6, BindDir::Fore),
        Err(Error::BadSession)
    );
}

#[test]
fn session_without_back_channel_request_reports_no_path_down() {
    let mut st = state();
    let (_, sid) = establish(&mut st, 0, b"a");
    assert_eq!(request(&mut st, 1, sid, 0, 1).status_flags, 0);
    assert_eq!(st.backchannel(sid), Err(CbUnavailable::Gone));
}

#[test]
fn bound_connections_are_limited() {
    let limits = Limits {
        conns_per_session_max: 2,
        ..Limits::default()
    };
    let mut st = Nfs4State::new(0, config(limits, 7, vec![])).unwrap();
    let (_, sid) = establish(&mut st, 0, b"a");
    st.bind_conn(sid, 2, BindDir::Fore).unwrap();
    assert_eq!(st.bind_conn(sid, 3, BindDir::Fore), Err(Error::Resource));
    assert_eq!(
        st.sequence(
            0,
            Sequence {
                conn: 3,
                ..seq(sid, 0, 1)
            }
        ),
        Err(Error::Resource)
    );
    st.connection_closed(2);
    st.bind_conn(sid, 3, BindDir::Fore).unwrap();
}

// ---- DESTROY_SESSION, DESTROY_CLIENTID ----

#[test]
fn destroy_session_and_clientid() {
    let mut st = state();
    let (id, sid) = establish(&mut st, 0, b"a");
    assert_eq!(st.destroy_clientid(id), Err(Error::ClientidBusy));
    st.destroy_session(sid).unwrap();
    assert_eq!(st.destroy_session(sid), Err(Error::BadSession));
    assert_eq!(st.sequence(0, seq(sid, 0, 1)), Err(Error::BadSession));
    st.destroy_clientid(id).unwrap();
    assert_eq!(st.destroy_clientid(id), Err(Error::StaleClientid));
    assert!(st.confirmed_owners().is_empty());
}

// ---- leases and courtesy, §8.3 ----

#[test]
fn courtesy_client_revives_with_its_state() {
    let mut st = state();
    let (id, sid) = establish(&mut st, 0, b"a");
    let open = st.open(0, id, b("oo"), b("f"), 1, 0).unwrap();
    assert_eq!(st.tick(90_000), vec![], "a full lease is still valid");
    assert_eq!(st.tick(90_001), vec![Expiry::Courtesy(id)]);
    assert!(st.is_courtesy(id));
    assert_eq!(st.tick(100_000), vec![], "reported once");
    request(&mut st, 100_001, sid, 0, 1);
    assert!(!st.is_courtesy(id));
    assert!(st.test_stateid(id, &open.stateid).is_ok());
    assert_eq!(st.counters().revived, 1);
}

#[test]
fn courtesy_client_is_purged_after_courtesy_ms_with_its_state() {
    let mut st = state();
    let (id, sid) = establish(&mut st, 0, b"a");
    let open = st.open(0, id, b("oo"), b("f"), 3, 1).unwrap();
    let (lock, _) = st.lock_stateid(id, &open.stateid, b("lo")).unwrap();
    st.tick(90_001);
    assert_eq!(st.tick(90_000 + 86_400_000), vec![]);
    let expiries = st.tick(90_001 + 86_400_000);
    let [Expiry::Purged(released)] = expiries.as_slice() else {
        panic!("{expiries:?}")
    };
    assert_eq!(released.reason, PurgeReason::CourtesyTimeout);
    assert_eq!(released.owner, b("a"));
    let mut ids: Vec<_> = released.states.iter().map(|s| s.stateid.other).collect();
    ids.sort();
    let mut want = vec![open.stateid.other, lock.other];
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(st.sequence(0, seq(sid, 0, 1)), Err(Error::BadSession));
    assert_eq!(
        st.create_session(0, cs(id, 2, P)),
        Err(Error::StaleClientid)
    );
    assert_eq!(st.usage(), Usage::default());
}

#[test]
fn expire_purges_at_once_and_returns_what_was_held() {
    let mut st = state();
    let (id, _) = establish(&mut st, 0, b"a");
    let open = st.open(0, id, b("oo"), b("f"), 2, 0).unwrap();
    let released = st.expire(id).unwrap();
    assert_eq!(released.reason, PurgeReason::Expired);
    assert_eq!(
        released.states[0].info,
        StateInfo::Open {
            owner: b("oo"),
            file: b("f"),
            access: 2,
            deny: 0
        }
    );
    assert_eq!(st.expire(id), None);
    assert_eq!(st.test_stateid(id, &open.stateid), Err(Error::BadStateid));
}

#[test]
fn executing_request_holds_the_lease_and_unconfirmed_records_go_quietly() {
    let mut st = state();
    let (id, sid) = establish(&mut st, 0, b"a");
    st.exchange_id(0, xid(b"u", 1, P, false)).unwrap();
    st.sequence(0, seq(sid, 0, 1)).unwrap();
    assert_eq!(st.tick(200_000), vec![]);
    assert!(!st.is_courtesy(id));
    assert_eq!(st.usage().clients, 1, "the unconfirmed record is gone");
    st.complete(sid, 0, b("r"), true).unwrap();
    assert_eq!(st.tick(200_000), vec![Expiry::Courtesy(id)]);
    assert_eq!(st.next_deadline_ms(), Some(90_001 + 86_400_000));
}

// ---- stateids, §8.2 ----

#[test]
fn open_upgrade_downgrade_and_seqid_rules() {
    let mut st = state();
    let (id, _) = establish(&mut st, 0, b"a");
    let first = st.open(0, id, b("oo"), b("f"), 1, 0).unwrap();
    assert_eq!((first.stateid.seqid, first.previous), (1, None));
    let second = st.open(0, id, b("oo"), b("f"), 2, 1).unwrap();
    assert_eq!((second.stateid.seqid, second.previous), (2, Some((1, 0))));
    assert_eq!(second.stateid.other, first.stateid.other);
    assert_eq!(st.open_state(id, b"oo", b"f"), Some((3, 1)));
    // seqid 0 is "current"; older is OLD; newer is BAD.
    let current = Stateid {
        seqid: 0,
        ..first.stateid
    };
    assert!(st.check(id, &current, StateKind::Open).is_ok());
    assert_eq!(
        st.check(id, &first.stateid, StateKind::Open),
        Err(Error::OldStateid)
    );
    let future = Stateid {
        seqid: 3,
        ..first.stateid
    };
    assert_eq!(
        st.check(id, &future, StateKind::Open),
        Err(Error::BadStateid)
    );
    assert_eq!(
        st.check(id, &second.stateid, StateKind::Lock),
        Err(Error::BadStateid)
    );
    assert_eq!(
        st.open_downgrade(id, &second.stateid, 3, 3),
        Err(Error::Inval)
    );
    assert_eq!(st.open(0, id, b("oo"), b("f"), 0, 0), Err(Error::Inval));
    assert_eq!(st.open(0, id, b("oo"), b("f"), 4, 0), Err(Error::Inval));
    let down = st.open_downgrade(id, &second.stateid, 1, 0).unwrap();
    assert_eq!(down.seqid, 3);
    assert_eq!(st.open_state(id, b"oo", b"f"), Some((1, 0)));
    // Another owner on the same file gets its own stateid.
    let other = st.open(0, id, b("oo2"), b("f"), 1, 0).unwrap();
    assert_ne!(other.stateid.other, first.stateid.other);
    assert_eq!(st.opens_of(id).len(), 2);
}

#[test]
fn another_clients_or_instances_stateid_is_refused() {
    let mut st = state();
    let (a, _) = establish(&mut st, 0, b"a");
    let (c, _) = establish(&mut st, 0, b"c");
    let open = st.open(0, a, b("oo"), b("f"), 3, 0).unwrap();
    assert_eq!(
        st.check(c, &open.stateid, StateKind::Any),
        Err(Error::BadStateid)
    );
    assert_eq!(st.close(c, &open.stateid), Err(Error::BadStateid));
    assert_eq!(st.bump(c, &open.stateid), Err(Error::BadStateid));
    assert_eq!(st.free_stateid(c, &open.stateid), Err(Error::BadStateid));
    assert_eq!(
        st.lock_stateid(c, &open.stateid, b("lo")),
        Err(Error::BadStateid)
    );
    assert_eq!(
        st.open_downgrade(c, &open.stateid, 1, 0),
        Err(Error::BadStateid)
    );
    assert!(
        st.check(a, &open.stateid, StateKind::Any).is_ok(),
        "untouched"
    );
    let mut stale = open.stateid;
    stale.other[..4].copy_from_slice(&8u32.to_be_bytes());
    assert_eq!(
        st.check(a, &stale, StateKind::Any),
        Err(Error::StaleStateid)
    );
    let special = Stateid {
        seqid: 0,
        other: [0; 12],
    };
    assert_eq!(
        st.check(a, &special, StateKind::Any),
        Err(Error::BadStateid)
    );
}

#[test]
fn locks_close_and_free_stateid() {
    let mut st = state();
    let (id, _) = establish(&mut st, 0, b"a");
    let open = st.open(0, id, b("oo"), b("f"), 3, 0).unwrap();
    let (lock, new) = st.lock_stateid(id, &open.stateid, b("lo")).unwrap();
    assert_eq!((lock.seqid, new), (1, true));
    let (again, new) = st.lock_stateid(id, &open.stateid, b("lo")).unwrap();
    assert_eq!((again.other, again.seqid, new), (lock.other, 2, false));
    assert_eq!(st.bump(id, &again).unwrap().seqid, 3);
    let info = st.check(id, &lock, StateKind::Lock);
    assert_eq!(info, Err(Error::OldStateid));
    let info = st
        .check(id, &Stateid { seqid: 0, ..lock }, StateKind::Lock)
        .unwrap();
    assert_eq!(
        info.info,
        StateInfo::Lock {
            owner: b("lo"),
            file: b("f"),
            open: open.stateid
        }
    );
    assert_eq!(st.free_stateid(id, &open.stateid), Err(Error::LocksHeld));
    let (lock2, _) = st.lock_stateid(id, &open.stateid, b("lo2")).unwrap();
    st.free_stateid(id, &lock2).unwrap();
    assert_eq!(
        st.check(id, &lock2, StateKind::Lock),
        Err(Error::BadStateid)
    );
    let closed = st.close(id, &open.stateid).unwrap();
    assert_eq!(closed.open.stateid.seqid, 2);
    assert_eq!(closed.locks.len(), 1);
    assert_eq!(
        st.check(id, &Stateid { seqid: 0, ..lock }, StateKind::Any),
        Err(Error::BadStateid)
    );
    assert_eq!(st.stateids_of(id), 0);
    // The freed slot is reused under a new generation: the old stateid stays dead.
    let reopened = st.open(0, id, b("oo"), b("f"), 1, 0).unwrap();
    assert_ne!(reopened.stateid.other, open.stateid.other);
    assert_eq!(
        st.check(
            id,
            &Stateid {
                seqid: 0,
                ..open.stateid
            },
            StateKind::Any
        ),
        Err(Error::BadStateid)
    );
}

#[test]
fn stateid_limits() {
    let limits = Limits {
        stateids_per_client_max: 2,
        stateids_max: 3,
        delegations_per_client_max: 1,
        delegations_max: 2,
        ..Limits::default()
    };
    let mut st = Nfs4State::new(0, config(limits, 7, vec![])).unwrap();
    let (a, _) = establish(&mut st, 0, b"a");
    let (c, _) = establish(&mut st, 0, b"c");
    let open = st.open(0, a, b("o1"), b("f"), 1, 0).unwrap();
    st.lock_stateid(a, &open.stateid, b("lo")).unwrap();
    assert_eq!(st.open(0, a, b("o2"), b("f"), 1, 0), Err(Error::Resource));
    assert_eq!(
        st.lock_stateid(a, &open.stateid, b("lo2")),
        Err(Error::Resource)
    );
    // An upgrade needs no new stateid.
    assert!(st.open(0, a, b("o1"), b("f"), 2, 0).is_ok());
    st.open(0, c, b("o1"), b("f"), 1, 0).unwrap();
    assert_eq!(st.open(0, c, b("o2"), b("f"), 1, 0), Err(Error::Delay));
    assert_eq!(st.usage().stateids, 3);
}

#[test]
fn revoked_stateids_until_freed() {
    let mut st = state();
    let (id, sid) = establish(&mut st, 0, b"a");
    let open = st.open(0, id, b("oo"), b("f"), 3, 0).unwrap();
    let (lock, _) = st.lock_stateid(id, &open.stateid, b("lo")).unwrap();
    let revoked = st.revoke(&open.stateid);
    assert_eq!(revoked.len(), 2);
    assert_eq!(
        st.check(id, &open.stateid, StateKind::Any),
        Err(Error::AdminRevoked)
    );
    assert_eq!(st.test_stateid(id, &lock), Err(Error::AdminRevoked));
    assert_eq!(
        request(&mut st, 1, sid, 0, 1).status_flags,
        SEQ4_STATUS_ADMIN_STATE_REVOKED
    );
    assert_eq!(st.open_state(id, b"oo", b"f"), None);
    st.free_stateid(id, &open.stateid).unwrap();
    assert_eq!(st.stateids_of(id), 0, "its revoked lock went along");
    assert_eq!(request(&mut st, 2, sid, 0, 2).status_flags, 0);
}

// ---- grace, §8.4.2 ----

#[test]
fn no_grace_without_previous_clients() {
    let mut st = state();
    let (id, _) = establish(&mut st, 0, b"a");
    assert!(!st.in_grace(0));
    assert_eq!(st.check_grace(0), Ok(()));
    assert_eq!(st.may_reclaim(0, id), Err(Error::NoGrace));
}

#[test]
fn a_cluster_grace_refuses_non_reclaims_without_letting_anyone_reclaim() {
    let mut st = state();
    let (id, _) = establish(&mut st, 0, b"a");
    st.set_cluster_grace(true);
    assert_eq!(st.check_grace(0), Err(Error::Grace));
    assert!(!st.in_grace(0), "this server's own grace is not on");
    assert_eq!(st.may_reclaim(0, id), Err(Error::NoGrace));
    st.set_cluster_grace(false);
    assert_eq!(st.check_grace(0), Ok(()));
}

#[test]
fn grace_reclaim_rules_and_early_end() {
    let previous = vec![b("a"), b("c")];
    let mut st = Nfs4State::new(1000, config(Limits::default(), 7, previous)).unwrap();
    assert!(st.in_grace(1000));
    assert_eq!(st.check_grace(1000), Err(Error::Grace));
    let (a, _) = establish(&mut st, 1000, b"a");
    let (n, _) = establish(&mut st, 1000, b"new");
    assert_eq!(st.may_reclaim(1000, a), Ok(()));
    assert_eq!(st.may_reclaim(1000, n), Err(Error::ReclaimBad));
    st.reclaim_complete(a).unwrap();
    assert_eq!(st.reclaim_complete(a), Err(Error::CompleteAlready));
    assert_eq!(st.may_reclaim(1000, a), Err(Error::NoGrace));
    assert!(st.in_grace(1000), "c has not reclaimed yet");
    let (c, _) = establish(&mut st, 1000, b"c");
    st.reclaim_complete(c).unwrap();
    assert!(!st.in_grace(1001), "everyone reclaimed: grace ends early");
    let mut owners = st.confirmed_owners();
    owners.sort();
    assert_eq!(owners, vec![b("a"), b("c"), b("new")]);
}

#[test]
fn grace_ends_on_time_or_when_previous_clients_are_gone() {
    let mut st = Nfs4State::new(0, config(Limits::default(), 7, vec![b("a")])).unwrap();
    assert!(st.in_grace(89_999));
    assert!(!st.in_grace(90_000));
    st.tick(90_000);
    assert!(!st.in_grace(0), "over for good");
    let mut st = Nfs4State::new(0, config(Limits::default(), 7, vec![b("a")])).unwrap();
    let (a, sid) = establish(&mut st, 0, b"a");
    st.destroy_session(sid).unwrap();
    st.destroy_clientid(a).unwrap();
    assert!(!st.in_grace(1));
}

// ---- construction and observability ----

#[test]
fn bad_epoch_or_limits_are_refused() {
    assert_eq!(
        Nfs4State::new(0, config(Limits::default(), 0, vec![])).err(),
        Some(LimitsError::Epoch)
    );
    assert_eq!(
        Nfs4State::new(0, config(Limits::default(), u32::MAX, vec![])).err(),
        Some(LimitsError::Epoch)
    );
    let limits = Limits {
        clients_max: 0,
        ..Limits::default()
    };
    assert!(Nfs4State::new(0, config(limits, 7, vec![])).is_err());
}

#[test]
fn stale_clientid_from_an_earlier_instance() {
    let mut before = Nfs4State::new(0, config(Limits::default(), 6, vec![])).unwrap();
    let (old, old_sid) = establish(&mut before, 0, b"a");
    let mut st = state();
    establish(&mut st, 0, b"a");
    assert_eq!(
        st.create_session(0, cs(old, 2, P)),
        Err(Error::StaleClientid)
    );
    assert_eq!(st.sequence(0, seq(old_sid, 0, 1)), Err(Error::BadSession));
}

#[test]
fn snapshot_and_counters() {
    let mut st = state();
    let (id, sid) = establish(&mut st, 0, b"a");
    let open = st.open(0, id, b("oo"), b("f"), 1, 0).unwrap();
    st.lock_stateid(id, &open.stateid, b("lo")).unwrap();
    st.sequence(10, seq(sid, 0, 1)).unwrap();
    let infos = st.clients(50);
    assert_eq!(infos.len(), 1);
    let info = &infos[0];
    assert_eq!(
        (
            info.clientid,
            info.owner.clone(),
            info.confirmed,
            info.courtesy
        ),
        (id, b("a"), true, false)
    );
    assert_eq!(
        (
            info.lease_age_ms,
            info.sessions,
            info.slots_in_use,
            info.opens,
            info.locks
        ),
        (40, 1, 1, 1, 1)
    );
    assert_eq!(st.client_info(50, id).as_ref(), Some(info));
    let counters = st.counters();
    assert_eq!(
        (
            counters.exchange_ids,
            counters.sessions_created,
            counters.sequences,
            counters.stateids_created
        ),
        (1, 1, 1, 2)
    );
    assert_eq!(st.session_client(sid), Some(id));
}

#[test]
fn delegations_are_granted_recalled_returned_and_revoked() {
    let mut st = state();
    let (a, sa) = establish(&mut st, 0, b"a");
    let (b_, sb) = establish(&mut st, 0, b"b");
    let (c, _) = establish(&mut st, 0, b"c");
    let file = b("file");
    let da = st.delegate(a, file.clone(), b("fh"), false).unwrap();
    // The same client asking again keeps its delegation.
    assert_eq!(st.delegate(a, file.clone(), b("fh"), false), Ok(da));
    let db = st.delegate(b_, file.clone(), b("fh"), false).unwrap();
    // Read delegations share; a write delegation does not.
    assert_eq!(
        st.delegate(c, file.clone(), b("fh"), true),
        Err(NoDeleg::Contention)
    );
    // A reader does not break read delegations; a writer breaks every other client's.
    assert_eq!(
        st.break_delegations(0, &file, Some(c), false),
        Breaks::default()
    );
    let breaks = st.break_delegations(10, &file, Some(a), true);
    assert!(breaks.pending);
    assert_eq!(
        breaks.recall,
        vec![Recall {
            client: b_,
            stateid: db,
            fh: b("fh")
        }]
    );
    // Asking again does not repeat the recall, and nobody gets a delegation meanwhile.
    let again = st.break_delegations(20, &file, None, true);
    assert!(again.pending && again.recall.len() == 1 && again.recall[0].client == a);
    assert_eq!(
        st.delegate(c, file.clone(), b("fh"), false),
        Err(NoDeleg::Contention)
    );
    st.delegreturn(a, &da).unwrap();
    assert_eq!(st.delegreturn(a, &da), Err(Error::BadStateid));
    assert_eq!(st.delegreturn(a, &db), Err(Error::BadStateid));
    // b's recall (at 10) is not answered within the lease: revoked (b itself stays alive).
    let lease = st.limits().lease_ms;
    request(&mut st, lease, sb, 0, 1);
    st.tick(lease + 9);
    assert!(st.break_delegations(0, &file, None, true).pending);
    st.tick(lease + 10);
    assert!(!st.break_delegations(0, &file, None, true).pending);
    assert!(!st.is_courtesy(b_));
    assert_eq!(
        st.check(b_, &db, StateKind::Any).map(|_| ()),
        Err(Error::DelegRevoked)
    );
    assert_eq!(st.test_stateid(b_, &db), Err(Error::DelegRevoked));
    assert_eq!(st.status_flags(sb), SEQ4_STATUS_RECALLABLE_STATE_REVOKED);
    assert_eq!(st.delegreturn(b_, &db), Err(Error::DelegRevoked));
    st.free_stateid(b_, &db).unwrap();
    assert_eq!(st.status_flags(sb), 0);
    assert_eq!(st.status_flags(sa), 0);
    assert_eq!(st.counters().delegations_revoked, 1);
    assert_eq!(st.counters().delegations_returned, 1);
}

#[test]
fn a_courtesy_clients_delegation_in_the_way_is_revoked_at_once() {
    let mut st = state();
    let (a, _) = establish(&mut st, 0, b"a");
    let d = st.delegate(a, b("f"), b("fh"), true).unwrap();
    st.tick(st.limits().lease_ms + 1);
    assert!(st.is_courtesy(a));
    let breaks = st.break_delegations(st.limits().lease_ms + 1, b"f", None, false);
    assert_eq!(breaks, Breaks::default());
    assert_eq!(st.delegreturn(a, &d), Err(Error::DelegRevoked));
    assert_eq!(st.delegation_of(a, b"f"), None);
}

#[test]
fn delegation_limits_answer_resource() {
    let limits = Limits {
        delegations_per_client_max: 1,
        delegations_max: 2,
        ..Limits::default()
    };
    let mut st = Nfs4State::new(0, config(limits, 7, vec![])).unwrap();
    let (a, _) = establish(&mut st, 0, b"a");
    let (c, _) = establish(&mut st, 0, b"c");
    let (d, _) = establish(&mut st, 0, b"d");
    st.delegate(a, b("f1"), b("h"), false).unwrap();
    assert_eq!(
        st.delegate(a, b("f2"), b("h"), false),
        Err(NoDeleg::Resource)
    );
    st.delegate(c, b("f2"), b("h"), false).unwrap();
    assert_eq!(
        st.delegate(d, b("f3"), b("h"), false),
        Err(NoDeleg::Resource)
    );
    assert_eq!(st.usage().delegations, 2);
    // A purged client's delegations go with it.
    st.expire(a).unwrap();
    assert_eq!(st.usage().delegations, 1);
    st.delegate(d, b("f3"), b("h"), false).unwrap();
}
