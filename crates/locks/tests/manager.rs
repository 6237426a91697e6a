//! The manager's rules, one test each, through the public API.
#![allow(clippy::unwrap_used)]

use rnfs_locks::{
    Bytes, Conflict, External, FileId, Granted, Holder, Limit, Limits, LockKind, LockManager,
    LockOutcome, LockRequest, Mirror, NoMirror, OthersUse, OwnerId, Range, ShareOutcome,
    ShareRequest, Target, TestOutcome, WaiterId, SHARE_READ, SHARE_WRITE,
};

use LockKind::{Exclusive as X, Shared as S};

fn target(client: &str, owner: &str, file: &str) -> Target {
    Target {
        client: Bytes::copy_from_slice(client.as_bytes()),
        owner: Bytes::copy_from_slice(owner.as_bytes()),
        file: Bytes::copy_from_slice(file.as_bytes()),
    }
}

/// Owner `o` of client `c<o>` on file `f`.
fn who(o: &str) -> Target {
    target(&format!("c{o}"), o, "f")
}

fn r(start: u64, end: u64) -> Range {
    Range::new(start, end).unwrap()
}

fn req(t: &Target, kind: LockKind, range: Range, block: bool) -> LockRequest {
    LockRequest {
        target: t.clone(),
        kind,
        range,
        block,
        reclaim: false,
    }
}

fn mgr() -> LockManager {
    LockManager::new(Limits::default()).unwrap()
}

fn lock(m: &mut LockManager, t: &Target, kind: LockKind, range: Range) -> LockOutcome {
    m.lock(0, &req(t, kind, range, false), &mut NoMirror)
        .outcome
}

fn block(m: &mut LockManager, t: &Target, kind: LockKind, range: Range) -> LockOutcome {
    m.lock(0, &req(t, kind, range, true), &mut NoMirror).outcome
}

fn unlock(m: &mut LockManager, t: &Target, range: Range) -> Vec<Granted> {
    m.unlock(0, t, range, &mut NoMirror).unwrap()
}

/// (owner key, start, end, kind) of every held range.
fn held(m: &LockManager) -> Vec<(String, u64, u64, LockKind)> {
    let mut v: Vec<_> = m
        .locks()
        .map(|l| {
            (
                String::from_utf8_lossy(l.owner.1).into_owned(),
                l.range.start(),
                l.range.end(),
                l.kind,
            )
        })
        .collect();
    v.sort();
    v
}

fn h(o: &str, s: u64, e: u64, k: LockKind) -> (String, u64, u64, LockKind) {
    (o.to_string(), s, e, k)
}

fn waiter(outcome: LockOutcome) -> WaiterId {
    match outcome {
        LockOutcome::Blocked(w) => w,
        other => panic!("expected Blocked, got {other:?}"),
    }
}

#[test]
fn shared_locks_coexist_and_exclusive_conflicts() {
    let mut m = mgr();
    let (a, b, c) = (who("a"), who("b"), who("c"));
    assert_eq!(lock(&mut m, &a, S, r(0, 10)), LockOutcome::Granted);
    assert_eq!(lock(&mut m, &b, S, r(5, 15)), LockOutcome::Granted);
    let LockOutcome::Denied(conflict) = lock(&mut m, &c, X, r(12, 13)) else {
        panic!()
    };
    let b_id = m.owner_id(b"cb", b"b").unwrap();
    let b_client = m.client_id(b"cb").unwrap();
    assert_eq!(
        conflict,
        Conflict {
            holder: Holder::Owner {
                owner: b_id,
                client: b_client
            },
            kind: S,
            range: r(5, 15)
        }
    );
    assert_eq!(lock(&mut m, &c, X, r(15, 20)), LockOutcome::Granted);
    assert_eq!(
        m.test(0, &a, S, r(0, 100)),
        TestOutcome::Conflict(Conflict {
            holder: Holder::Owner {
                owner: m.owner_id(b"cc", b"c").unwrap(),
                client: m.client_id(b"cc").unwrap()
            },
            kind: X,
            range: r(15, 20),
        })
    );
    assert_eq!(m.test(0, &a, S, r(0, 15)), TestOutcome::Free);
    assert_eq!(m.test(0, &who("new"), S, r(0, 15)), TestOutcome::Free);
}

#[test]
fn own_locks_never_conflict_and_same_kind_merges() {
    let mut m = mgr();
    let a = who("a");
    assert_eq!(lock(&mut m, &a, X, r(0, 10)), LockOutcome::Granted);
    assert_eq!(lock(&mut m, &a, X, r(5, 20)), LockOutcome::Granted);
    assert_eq!(lock(&mut m, &a, X, r(20, 30)), LockOutcome::Granted);
    assert_eq!(held(&m), vec![h("a", 0, 30, X)]);
    assert_eq!(m.usage().locks, 1);
    assert_eq!(lock(&mut m, &a, S, r(30, 40)), LockOutcome::Granted);
    assert_eq!(held(&m), vec![h("a", 0, 30, X), h("a", 30, 40, S)]);
}

#[test]
fn to_eof_conflicts_with_everything_after_its_start() {
    let mut m = mgr();
    let (a, b) = (who("a"), who("b"));
    assert_eq!(
        lock(&mut m, &a, X, Range::to_eof(100).unwrap()),
        LockOutcome::Granted
    );
    assert!(matches!(
        lock(&mut m, &b, S, r(u64::MAX - 1, u64::MAX)),
        LockOutcome::Denied(_)
    ));
    assert!(matches!(
        lock(&mut m, &b, S, r(99, 101)),
        LockOutcome::Denied(_)
    ));
    assert_eq!(lock(&mut m, &b, S, r(0, 100)), LockOutcome::Granted);
}

#[test]
fn upgrade_and_downgrade_in_place() {
    let mut m = mgr();
    let a = who("a");
    lock(&mut m, &a, S, r(0, 30));
    assert_eq!(lock(&mut m, &a, X, r(10, 20)), LockOutcome::Granted);
    assert_eq!(
        held(&m),
        vec![h("a", 0, 10, S), h("a", 10, 20, X), h("a", 20, 30, S)]
    );
    assert_eq!(lock(&mut m, &a, S, r(10, 20)), LockOutcome::Granted);
    assert_eq!(held(&m), vec![h("a", 0, 30, S)]);
}

#[test]
fn failed_upgrade_changes_nothing() {
    let mut m = mgr();
    let (a, b) = (who("a"), who("b"));
    lock(&mut m, &a, S, r(0, 10));
    lock(&mut m, &a, X, r(20, 30));
    lock(&mut m, &b, S, r(5, 6));
    let before = held(&m);
    assert!(matches!(
        lock(&mut m, &a, X, r(0, 30)),
        LockOutcome::Denied(_)
    ));
    assert_eq!(held(&m), before);
}

#[test]
fn partial_unlock_splits() {
    let mut m = mgr();
    let (a, b) = (who("a"), who("b"));
    lock(&mut m, &a, X, r(0, 100));
    assert!(unlock(&mut m, &a, r(40, 60)).is_empty());
    assert_eq!(held(&m), vec![h("a", 0, 40, X), h("a", 60, 100, X)]);
    assert_eq!(lock(&mut m, &b, X, r(40, 60)), LockOutcome::Granted);
    assert!(matches!(
        lock(&mut m, &b, X, r(39, 40)),
        LockOutcome::Denied(_)
    ));
    // Unlocking what is not held is fine.
    assert!(unlock(&mut m, &who("z"), r(0, 1)).is_empty());
    assert!(unlock(&mut m, &a, r(200, 300)).is_empty());
}

#[test]
fn downgrade_grants_shared_waiters() {
    let mut m = mgr();
    let (a, b) = (who("a"), who("b"));
    lock(&mut m, &a, X, r(0, 10));
    let w = waiter(block(&mut m, &b, S, r(0, 5)));
    let reply = m.lock(7, &req(&a, S, r(0, 10), false), &mut NoMirror);
    assert_eq!(reply.outcome, LockOutcome::Granted);
    assert_eq!(reply.granted.len(), 1);
    assert_eq!(reply.granted[0].waiter, w);
    assert_eq!(reply.granted[0].range, r(0, 5));
    assert_eq!(held(&m), vec![h("a", 0, 10, S), h("b", 0, 5, S)]);
}

#[test]
fn waiters_are_granted_in_fifo_order_when_possible() {
    let mut m = mgr();
    let (a, b, c, d) = (who("a"), who("b"), who("c"), who("d"));
    lock(&mut m, &a, X, r(0, 10));
    let wb = waiter(block(&mut m, &b, X, r(0, 10)));
    let wc = waiter(block(&mut m, &c, X, r(5, 15)));
    // A blocking request on a free range is granted at once.
    assert_eq!(block(&mut m, &d, S, r(50, 60)), LockOutcome::Granted);
    let g = unlock(&mut m, &a, r(0, 10));
    assert_eq!(g.iter().map(|g| g.waiter).collect::<Vec<_>>(), vec![wb]);
    assert_eq!(g[0].owner, m.owner_id(b"cb", b"b").unwrap());
    assert_eq!(g[0].file, m.file_id(b"f").unwrap());
    let g = unlock(&mut m, &b, Range::to_eof(0).unwrap());
    assert_eq!(g.iter().map(|g| g.waiter).collect::<Vec<_>>(), vec![wc]);
    assert_eq!(m.counters().waiter_grants, 2);
}

#[test]
fn several_shared_waiters_are_granted_together() {
    let mut m = mgr();
    let (a, b, c) = (who("a"), who("b"), who("c"));
    lock(&mut m, &a, X, r(0, 10));
    waiter(block(&mut m, &b, S, r(0, 10)));
    waiter(block(&mut m, &c, S, r(0, 10)));
    assert_eq!(unlock(&mut m, &a, r(0, 10)).len(), 2);
    assert_eq!(m.usage().waiters, 0);
}

#[test]
fn cancel_removes_the_waiter() {
    let mut m = mgr();
    let (a, b) = (who("a"), who("b"));
    lock(&mut m, &a, X, r(0, 10));
    waiter(block(&mut m, &b, X, r(0, 10)));
    assert!(!m.cancel(&b, S, r(0, 10)));
    assert!(m.cancel(&b, X, r(0, 10)));
    assert!(!m.cancel(&b, X, r(0, 10)));
    assert!(unlock(&mut m, &a, r(0, 10)).is_empty());
    assert_eq!(m.counters().cancels, 1);
    assert_eq!(m.usage(), Default::default());
}

#[test]
fn a_retransmitted_blocking_request_is_one_waiter() {
    let mut m = mgr();
    let (a, b) = (who("a"), who("b"));
    lock(&mut m, &a, X, r(0, 10));
    let w1 = waiter(block(&mut m, &b, X, r(0, 10)));
    let w2 = waiter(block(&mut m, &b, X, r(0, 10)));
    assert_eq!(w1, w2);
    assert_eq!(m.waiters().count(), 1);
    // A different range is another waiter.
    assert_ne!(waiter(block(&mut m, &b, X, r(0, 5))), w1);
}

#[test]
fn two_owner_deadlock_is_refused() {
    let mut m = mgr();
    let (a, b) = (who("a"), who("b"));
    lock(&mut m, &a, X, r(0, 10));
    lock(&mut m, &b, X, r(20, 30));
    waiter(block(&mut m, &a, X, r(20, 30)));
    assert_eq!(block(&mut m, &b, X, r(0, 10)), LockOutcome::Deadlock);
    assert_eq!(m.counters().deadlocks, 1);
    // Both holding shared and both upgrading is the classic case.
    let mut m = mgr();
    lock(&mut m, &a, S, r(0, 10));
    lock(&mut m, &b, S, r(0, 10));
    waiter(block(&mut m, &a, X, r(0, 10)));
    assert_eq!(block(&mut m, &b, X, r(0, 10)), LockOutcome::Deadlock);
}

#[test]
fn three_owner_deadlock_across_files_is_refused() {
    let mut m = mgr();
    let a = target("c1", "a", "f1");
    let b = target("c2", "b", "f2");
    let c = target("c3", "c", "f3");
    lock(&mut m, &a, X, r(0, 10));
    lock(&mut m, &b, X, r(0, 10));
    lock(&mut m, &c, X, r(0, 10));
    waiter(block(&mut m, &target("c1", "a", "f2"), X, r(0, 10))); // a waits for b
    waiter(block(&mut m, &target("c2", "b", "f3"), S, r(5, 6))); // b waits for c
    assert_eq!(
        block(&mut m, &target("c3", "c", "f1"), S, r(9, 20)),
        LockOutcome::Deadlock
    );
    // No cycle: c waiting on a file nobody waits from is fine.
    lock(&mut m, &target("c4", "d", "f4"), X, r(0, 10));
    waiter(block(&mut m, &target("c3", "c", "f4"), X, r(0, 10)));
}

#[test]
fn deadlock_search_is_bounded_in_depth() {
    let limits = Limits {
        deadlock_depth_max: 1,
        ..Limits::default()
    };
    let mut m = LockManager::new(limits).unwrap();
    let (a, b) = (who("a"), who("b"));
    lock(&mut m, &a, X, r(0, 10));
    lock(&mut m, &b, X, r(20, 30));
    waiter(block(&mut m, &a, X, r(20, 30)));
    // The cycle b -> a -> b has two edges: beyond the limit, so not seen.
    waiter(block(&mut m, &b, X, r(0, 10)));
}

#[test]
fn a_cluster_grace_period_admits_only_reclaims_until_it_is_lifted() {
    let mut m = mgr();
    let a = who("a");
    assert!(!m.in_grace(0));
    m.set_cluster_grace(true);
    assert!(m.in_grace(0) && !m.in_own_grace(0));
    assert_eq!(
        m.lock(0, &req(&a, X, r(0, 10), false), &mut NoMirror)
            .outcome,
        LockOutcome::GracePeriod
    );
    assert_eq!(m.test(0, &a, S, r(0, 10)), TestOutcome::GracePeriod);
    let reclaim = LockRequest {
        reclaim: true,
        ..req(&a, X, r(0, 10), false)
    };
    assert_eq!(
        m.lock(0, &reclaim, &mut NoMirror).outcome,
        LockOutcome::Granted
    );
    m.set_cluster_grace(false);
    assert!(!m.in_grace(0));
    assert_eq!(
        m.lock(0, &req(&a, X, r(20, 30), false), &mut NoMirror)
            .outcome,
        LockOutcome::Granted
    );
}

#[test]
fn grace_period_admits_only_reclaims() {
    let mut m = mgr();
    let (a, b) = (who("a"), who("b"));
    m.start_grace(1000, 500);
    assert!(m.in_grace(1000) && m.in_grace(1499) && !m.in_grace(1500));
    assert_eq!(
        m.lock(1000, &req(&a, X, r(0, 10), false), &mut NoMirror)
            .outcome,
        LockOutcome::GracePeriod
    );
    let reclaim = LockRequest {
        reclaim: true,
        ..req(&a, X, r(0, 10), false)
    };
    assert_eq!(
        m.lock(1001, &reclaim, &mut NoMirror).outcome,
        LockOutcome::Granted
    );
    let reclaim_b = LockRequest {
        reclaim: true,
        ..req(&b, X, r(5, 6), false)
    };
    assert!(matches!(
        m.lock(1002, &reclaim_b, &mut NoMirror).outcome,
        LockOutcome::Denied(_)
    ));
    assert_eq!(m.test(1003, &b, S, r(20, 30)), TestOutcome::GracePeriod);
    // Unlocks are allowed during grace.
    assert!(m
        .unlock(1004, &a, r(0, 10), &mut NoMirror)
        .unwrap()
        .is_empty());
    assert_eq!(m.test(1500, &b, S, r(20, 30)), TestOutcome::Free);
    assert_eq!(
        m.lock(1500, &req(&b, X, r(0, 10), false), &mut NoMirror)
            .outcome,
        LockOutcome::Granted
    );
    // After grace, a reclaim is an ordinary request.
    let late = LockRequest {
        reclaim: true,
        ..req(&a, X, r(50, 60), false)
    };
    assert_eq!(
        m.lock(1600, &late, &mut NoMirror).outcome,
        LockOutcome::Granted
    );
    assert_eq!(m.counters().grace_refusals, 1);
}

#[test]
fn one_client_sending_100_000_locks_gets_nolocks_at_its_limit() {
    let mut m = mgr();
    let a = who("a");
    let mut granted = 0;
    let mut refused = 0;
    for i in 0..100_000u64 {
        match lock(&mut m, &a, X, r(2 * i, 2 * i + 1)) {
            LockOutcome::Granted => granted += 1,
            LockOutcome::NoLocks(Limit::LocksPerClient) => refused += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(granted, 10_000);
    assert_eq!(refused, 90_000);
    let usage = m.usage();
    assert_eq!(
        (usage.locks, usage.owners, usage.clients, usage.files),
        (10_000, 1, 1, 1)
    );
    assert_eq!(m.counters().nolocks_refusals, 90_000);
    // A lock that merges (fewer ranges) is still possible at the limit.
    assert_eq!(lock(&mut m, &a, X, r(1, 2)), LockOutcome::Granted);
    assert_eq!(m.usage().locks, 9_999);
}

#[test]
fn nolocks_leaves_state_unchanged() {
    let limits = Limits {
        locks_per_client_max: 2,
        ..Limits::default()
    };
    let mut m = LockManager::new(limits).unwrap();
    let a = who("a");
    lock(&mut m, &a, X, r(0, 1));
    lock(&mut m, &a, X, r(2, 3));
    let before = held(&m);
    assert_eq!(
        lock(&mut m, &a, X, r(4, 5)),
        LockOutcome::NoLocks(Limit::LocksPerClient)
    );
    // A downgrade in the middle of a range would split it in three.
    lock(&mut m, &a, X, r(1, 2));
    assert_eq!(
        lock(&mut m, &a, S, r(1, 2)),
        LockOutcome::NoLocks(Limit::LocksPerClient)
    );
    assert_eq!(held(&m), vec![h("a", 0, 3, X)]);
    // So would an unlock punching a hole, beyond one more range.
    lock(&mut m, &a, X, r(10, 20));
    assert_eq!(
        m.unlock(0, &a, r(14, 15), &mut NoMirror),
        Err(Limit::LocksPerClient)
    );
    assert_eq!(held(&m).len(), 2);
    assert_ne!(before, held(&m));
}

#[test]
fn other_limits_are_enforced() {
    let limits = Limits {
        locks_per_file_max: 1,
        waiters_per_file_max: 1,
        owners_max: 3,
        clients_max: 3,
        files_max: 2,
        key_bytes_max: 8,
        ..Limits::default()
    };
    let mut m = LockManager::new(limits).unwrap();
    let (a, b, c) = (who("a"), who("b"), who("c"));
    lock(&mut m, &a, X, r(0, 1));
    assert_eq!(
        lock(&mut m, &b, X, r(5, 6)),
        LockOutcome::NoLocks(Limit::LocksPerFile)
    );
    waiter(block(&mut m, &b, X, r(0, 1)));
    assert_eq!(
        block(&mut m, &c, X, r(0, 1)),
        LockOutcome::NoLocks(Limit::WaitersPerFile)
    );
    assert_eq!(
        lock(&mut m, &target("c1", "x", "g"), X, r(0, 1)),
        LockOutcome::Granted
    );
    assert_eq!(
        lock(&mut m, &target("c1", "y", "h"), X, r(0, 1)),
        LockOutcome::NoLocks(Limit::Owners)
    );
    assert_eq!(
        lock(&mut m, &target("c9", "y", "g"), X, r(5, 6)),
        LockOutcome::NoLocks(Limit::Clients)
    );
    assert_eq!(
        lock(&mut m, &target("c1", "x", "h"), X, r(0, 1)),
        LockOutcome::NoLocks(Limit::Files)
    );
    assert_eq!(
        lock(&mut m, &target("c1", "x", "a-long-key"), X, r(0, 1)),
        LockOutcome::NoLocks(Limit::KeyBytes)
    );
    assert_eq!(m.usage().owners, 3);
}

#[test]
fn total_limits_are_enforced() {
    let (a, b) = (who("a"), who("b"));
    let mut m = LockManager::new(Limits {
        waiters_total_max: 1,
        waiters_per_file_max: 1,
        ..Limits::default()
    })
    .unwrap();
    lock(&mut m, &a, X, r(0, 1));
    lock(&mut m, &target("ca", "a", "g"), X, r(0, 1));
    waiter(block(&mut m, &b, X, r(0, 1)));
    assert_eq!(
        block(&mut m, &target("cb", "b", "g"), X, r(0, 1)),
        LockOutcome::NoLocks(Limit::WaitersTotal)
    );
    let mut m = LockManager::new(Limits {
        locks_total_max: 1,
        locks_per_client_max: 1,
        locks_per_file_max: 1,
        ..Limits::default()
    })
    .unwrap();
    lock(&mut m, &a, X, r(0, 1));
    assert_eq!(
        lock(&mut m, &target("cb", "b", "g"), X, r(0, 1)),
        LockOutcome::NoLocks(Limit::LocksTotal)
    );
    assert!(LockManager::new(Limits {
        locks_per_file_max: 200_000,
        ..Limits::default()
    })
    .is_err());
}

#[test]
fn interning_forgets_owners_without_state() {
    let limits = Limits {
        owners_max: 4,
        clients_max: 4,
        files_max: 4,
        ..Limits::default()
    };
    let mut m = LockManager::new(limits).unwrap();
    let holder = who("holder");
    lock(&mut m, &holder, X, r(0, 10));
    for i in 0..10_000 {
        let t = target(
            &format!("client{i}"),
            &format!("owner{i}"),
            &format!("file{}", i % 7),
        );
        assert_eq!(lock(&mut m, &t, S, r(100, 200)), LockOutcome::Granted);
        unlock(&mut m, &t, r(0, 1000));
        // Denied requests do not leave their owner behind either.
        assert!(matches!(
            lock(&mut m, &who(&format!("d{i}")), X, r(5, 6)),
            LockOutcome::Denied(_)
        ));
    }
    let usage = m.usage();
    assert_eq!(
        (usage.locks, usage.owners, usage.clients, usage.files),
        (1, 1, 1, 1)
    );
    m.free_client(0, m.client_id(b"cholder").unwrap(), &mut NoMirror);
    assert_eq!(m.usage(), Default::default());
    assert!(m.file_id(b"f").is_none());
}

#[test]
fn shares_conflict_by_access_and_deny() {
    let mut m = mgr();
    let share = |t: &Target, access, deny| ShareRequest {
        target: t.clone(),
        access,
        deny,
        reclaim: false,
    };
    let (a, b, c) = (who("a"), who("b"), who("c"));
    assert_eq!(
        m.share(0, &share(&a, SHARE_READ, SHARE_WRITE)),
        ShareOutcome::Granted
    );
    assert_eq!(m.share(0, &share(&b, SHARE_READ, 0)), ShareOutcome::Granted);
    let a_id = m.owner_id(b"ca", b"a").unwrap();
    assert!(
        matches!(m.share(0, &share(&c, SHARE_WRITE, 0)), ShareOutcome::Denied { owner, .. } if owner == a_id)
    );
    // c denying read conflicts with a's and b's read access.
    assert!(matches!(
        m.share(0, &share(&c, SHARE_READ, SHARE_READ)),
        ShareOutcome::Denied { .. }
    ));
    // a re-shares without deny: c may now write.
    assert_eq!(m.share(0, &share(&a, SHARE_READ, 0)), ShareOutcome::Granted);
    assert_eq!(
        m.share(0, &share(&c, SHARE_WRITE, 0)),
        ShareOutcome::Granted
    );
    assert_eq!(m.shares().count(), 3);
    assert!(m.unshare(&a) && !m.unshare(&a));
    assert!(m.unshare(&b) && m.unshare(&c));
    assert_eq!(m.usage(), Default::default());
    m.start_grace(0, 10);
    assert_eq!(
        m.share(5, &share(&a, SHARE_READ, 0)),
        ShareOutcome::GracePeriod
    );
    let reclaim = ShareRequest {
        reclaim: true,
        ..share(&a, SHARE_READ, 0)
    };
    assert_eq!(m.share(5, &reclaim), ShareOutcome::Granted);
    let mut m = LockManager::new(Limits {
        shares_total_max: 1,
        ..Limits::default()
    })
    .unwrap();
    assert_eq!(m.share(0, &share(&a, SHARE_READ, 0)), ShareOutcome::Granted);
    assert_eq!(
        m.share(0, &share(&a, SHARE_WRITE, 0)),
        ShareOutcome::Granted
    );
    assert_eq!(
        m.share(0, &share(&b, SHARE_READ, 0)),
        ShareOutcome::NoLocks(Limit::SharesTotal)
    );
}

#[test]
fn free_client_drops_everything_and_grants_waiters() {
    let mut m = mgr();
    let x1 = target("x", "1", "f");
    let x2 = target("x", "2", "f");
    let x2g = target("x", "2", "g");
    let y = target("y", "1", "f");
    let z = target("z", "1", "g");
    lock(&mut m, &x1, X, r(0, 10));
    lock(&mut m, &x2, S, r(20, 30));
    lock(&mut m, &z, X, r(0, 10));
    waiter(block(&mut m, &x2g, X, r(0, 10))); // x's own waiter must not be granted
    m.share(
        0,
        &ShareRequest {
            target: x1.clone(),
            access: SHARE_READ,
            deny: SHARE_WRITE,
            reclaim: false,
        },
    );
    let wy = waiter(block(&mut m, &y, X, r(0, 30)));
    let g = m.free_client(5, m.client_id(b"x").unwrap(), &mut NoMirror);
    assert_eq!(g.iter().map(|g| g.waiter).collect::<Vec<_>>(), vec![wy]);
    assert_eq!(held(&m), vec![h("1", 0, 10, X), h("1", 0, 30, X)]);
    assert_eq!(m.usage().waiters, 0);
    assert_eq!(m.usage().shares, 0);
    assert!(m.client_id(b"x").is_none());
    assert!(m
        .locks()
        .all(|l| l.since_ms == 5 || l.client.1.as_ref() == b"z"));
}

#[test]
fn free_owner_drops_only_that_owner() {
    let mut m = mgr();
    let (a1, a2, b) = (target("c", "1", "f"), target("c", "2", "f"), who("b"));
    lock(&mut m, &a1, S, r(0, 10));
    lock(&mut m, &a2, S, r(0, 10));
    waiter(block(&mut m, &b, X, r(0, 10)));
    assert!(m
        .free_owner(0, m.owner_id(b"c", b"1").unwrap(), &mut NoMirror)
        .is_empty());
    assert_eq!(
        m.free_owner(0, m.owner_id(b"c", b"2").unwrap(), &mut NoMirror)
            .len(),
        1
    );
    assert_eq!(held(&m), vec![h("b", 0, 10, X)]);
    assert!(m.free_owner(0, OwnerId(999), &mut NoMirror).is_empty());
}

/// Local locks the manager does not know, and a log of what was mirrored.
#[derive(Default)]
struct Local {
    held: Vec<(Bytes, Range)>,
    acquired: Vec<(OwnerId, LockKind, Range)>,
    released: Vec<(OwnerId, Range)>,
}

impl Mirror for Local {
    fn acquire(
        &mut self,
        _: FileId,
        key: &Bytes,
        owner: OwnerId,
        kind: LockKind,
        range: Range,
    ) -> Result<(), External> {
        if let Some(&(_, local)) = self
            .held
            .iter()
            .find(|(k, l)| k == key && l.overlaps(range))
        {
            return Err(External {
                kind: X,
                range: local,
            });
        }
        self.acquired.push((owner, kind, range));
        Ok(())
    }

    fn release(&mut self, _: FileId, _: &Bytes, owner: OwnerId, range: Range) {
        self.released.push((owner, range));
    }
}

#[test]
fn external_conflicts_deny_or_block_until_retried() {
    let mut m = mgr();
    let mut local = Local {
        held: vec![(Bytes::from_static(b"f"), r(0, 10))],
        ..Local::default()
    };
    let (a, b) = (who("a"), who("b"));
    let out = m.lock(0, &req(&a, X, r(5, 20), false), &mut local).outcome;
    assert_eq!(
        out,
        LockOutcome::Denied(Conflict {
            holder: Holder::External,
            kind: X,
            range: r(0, 10)
        })
    );
    assert_eq!(m.usage(), Default::default());
    let w = waiter(m.lock(0, &req(&a, X, r(5, 20), true), &mut local).outcome);
    assert!(m.waiters().all(|w| w.external));
    // b's lock elsewhere is unaffected; a's waiter still blocked.
    assert_eq!(
        m.lock(0, &req(&b, S, r(30, 40), false), &mut local).outcome,
        LockOutcome::Granted
    );
    assert!(m.retry_external(1, &mut local).is_empty());
    local.held.clear();
    let g = m.retry_external(2, &mut local);
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].waiter, w);
    let a_id = m.owner_id(b"ca", b"a").unwrap();
    assert_eq!(local.acquired.last(), Some(&(a_id, X, r(5, 20))));
    // Unlocks release exactly the ranges removed.
    m.unlock(3, &a, r(0, 8), &mut local).unwrap();
    m.unlock(3, &a, r(15, 100), &mut local).unwrap();
    assert_eq!(local.released, vec![(a_id, r(5, 8)), (a_id, r(15, 20))]);
    let b_id = m.owner_id(b"cb", b"b").unwrap();
    m.free_client(4, m.client_id(b"cb").unwrap(), &mut local);
    assert_eq!(local.released.last(), Some(&(b_id, r(30, 40))));
}

#[test]
fn grant_waiter_grants_one_waiter_only_when_nothing_is_in_the_way() {
    let mut m = mgr();
    let mut local = Local {
        held: vec![(Bytes::from_static(b"f"), r(0, 10))],
        ..Local::default()
    };
    let (a, b, c) = (who("a"), who("b"), who("c"));
    let wa = waiter(m.lock(0, &req(&a, X, r(0, 10), true), &mut local).outcome);
    let wb = waiter(m.lock(0, &req(&b, S, r(5, 6), true), &mut local).outcome);
    // Still refused by the mirror: the waiter stays queued.
    assert_eq!(m.grant_waiter(1, wa, &mut local), None);
    assert_eq!(m.waiters().count(), 2);
    local.held.clear();
    let g = m.grant_waiter(2, wa, &mut local).unwrap();
    assert_eq!((g.waiter, g.kind, g.range), (wa, X, r(0, 10)));
    assert_eq!(held(&m), vec![h("a", 0, 10, X)]);
    // b is in a's way now (an NFS owner): not granted, and not marked external any more.
    assert_eq!(m.grant_waiter(3, wb, &mut local), None);
    assert!(m.waiters().all(|w| w.waiter == wb && !w.external));
    // A waiter that is gone is not granted.
    assert_eq!(m.grant_waiter(4, wa, &mut local), None);
    assert_eq!(m.grant_waiter(4, WaiterId(999), &mut local), None);
    assert_eq!(lock(&mut m, &c, S, r(20, 30)), LockOutcome::Granted);
    assert_eq!(m.counters().waiter_grants, 1);
}

#[test]
fn held_within_cuts_the_owners_ranges_to_the_request() {
    let mut m = mgr();
    let (a, b) = (who("a"), who("b"));
    assert_eq!(lock(&mut m, &a, S, r(0, 10)), LockOutcome::Granted);
    assert_eq!(lock(&mut m, &a, X, r(20, 30)), LockOutcome::Granted);
    assert_eq!(lock(&mut m, &a, S, r(40, 50)), LockOutcome::Granted);
    assert_eq!(lock(&mut m, &b, S, r(5, 8)), LockOutcome::Granted);
    let file = m.file_id(b"f").unwrap();
    let oa = m.owner_id(b"ca", b"a").unwrap();
    assert_eq!(
        m.held_within(file, oa, r(5, 25)),
        vec![(S, r(5, 10)), (X, r(20, 25))]
    );
    assert_eq!(
        m.held_within(file, oa, Range::to_eof(45).unwrap()),
        vec![(S, r(45, 50))]
    );
    assert!(m.held_within(file, oa, r(10, 20)).is_empty());
    assert!(m.held_within(file, OwnerId(999), r(0, 100)).is_empty());
}

#[test]
fn external_conflict_on_a_grant_keeps_the_waiter() {
    let mut m = mgr();
    let mut local = Local::default();
    let (a, b) = (who("a"), who("b"));
    m.lock(0, &req(&a, X, r(0, 10), false), &mut local);
    waiter(m.lock(0, &req(&b, X, r(0, 10), true), &mut local).outcome);
    local.held.push((Bytes::from_static(b"f"), r(3, 4)));
    assert!(m.unlock(1, &a, r(0, 10), &mut local).unwrap().is_empty());
    assert!(m.waiters().all(|w| w.external));
    local.held.clear();
    assert_eq!(m.retry_external(2, &mut local).len(), 1);
}

#[test]
fn observability_lists_locks_shares_waiters() {
    let mut m = mgr();
    let (a, b) = (who("a"), who("b"));
    m.lock(42, &req(&a, X, r(0, 10), false), &mut NoMirror);
    m.lock(43, &req(&b, S, r(0, 10), true), &mut NoMirror);
    m.share(
        44,
        &ShareRequest {
            target: a.clone(),
            access: SHARE_READ | SHARE_WRITE,
            deny: 0,
            reclaim: false,
        },
    );
    let l = m.locks().next().unwrap();
    assert_eq!(
        (l.file.1.as_ref(), l.client.1.as_ref(), l.owner.1.as_ref()),
        (&b"f"[..], &b"ca"[..], &b"a"[..])
    );
    assert_eq!((l.range, l.kind, l.since_ms), (r(0, 10), X, 42));
    let w = m.waiters().next().unwrap();
    assert_eq!(
        (w.owner.1.as_ref(), w.since_ms, w.kind, w.external),
        (&b"b"[..], 43, S, false)
    );
    let s = m.shares().next().unwrap();
    assert_eq!((s.access, s.deny, s.since_ms), (3, 0, 44));
    let c = m.counters();
    assert_eq!((c.grants, c.blocks, c.share_grants), (1, 1, 1));
    assert_eq!(m.file_key(l.file.0).unwrap().as_ref(), b"f");
    assert_eq!(m.client_key(l.client.0).unwrap().as_ref(), b"ca");
    assert_eq!(m.owner_key(l.owner.0).unwrap().1.as_ref(), b"a");
}

#[test]
fn used_by_others_sums_other_clients_shares_and_locks() {
    let mut m = mgr();
    let share = |t: &Target, access, deny| ShareRequest {
        target: t.clone(),
        access,
        deny,
        reclaim: false,
    };
    let (a, b) = (who("a"), who("b"));
    assert_eq!(m.used_by_others(b"f", b"ca"), OthersUse::default());
    assert_eq!(
        m.share(0, &share(&a, SHARE_WRITE, 0)),
        ShareOutcome::Granted
    );
    assert_eq!(
        m.share(0, &share(&b, SHARE_READ, SHARE_WRITE)),
        ShareOutcome::Denied {
            owner: m.owner_id(b"ca", b"a").unwrap(),
            client: m.client_id(b"ca").unwrap()
        }
    );
    assert_eq!(m.share(0, &share(&b, SHARE_READ, 0)), ShareOutcome::Granted);
    // Each client sees only the others.
    assert_eq!(
        m.used_by_others(b"f", b"ca"),
        OthersUse {
            access: SHARE_READ,
            deny: 0,
            locks: false
        }
    );
    assert_eq!(
        m.used_by_others(b"f", b"cb"),
        OthersUse {
            access: SHARE_WRITE,
            deny: 0,
            locks: false
        }
    );
    assert!(matches!(lock(&mut m, &b, S, r(0, 9)), LockOutcome::Granted));
    assert!(m.used_by_others(b"f", b"ca").locks);
    assert!(!m.used_by_others(b"f", b"cb").locks);
    assert_eq!(m.used_by_others(b"other", b"ca"), OthersUse::default());
}
