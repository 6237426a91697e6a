//! The NLM v4 procedure table (XNFS chapter 10; procedure numbers 0-15 and 20-23, 16-19 unused)
//! and its handlers. See [`crate::program`] for what a row holds.

use rnfs_locks::{
    Conflict, Holder, LockKind, LockOutcome, LockRequest, Range, ShareOutcome, ShareRequest,
    Target, TestOutcome, SHARE_READ, SHARE_WRITE,
};
use rnfs_nlm::*;
use rnfs_oncrpc::AuthStat;
use rnfs_storage::FileHandle;
use tracing::debug;

use crate::call::Call;
use crate::locking::{client_key, owner_key, split_owner_key, Before};
use crate::program::{handler, null, unavailable, Procedure, Program};
use crate::service::{Authorized, Denied, Service};

/// NLM version 4. LOCK, UNLOCK, CANCEL, SHARE and UNSHARE change the lock state but may run
/// twice (a second LOCK of the same range by the same owner is granted again), so nothing is
/// cached. Each `_MSG` form runs as its synchronous form and sends the results back to the
/// caller's NLM service as the matching `_RES` call; the `_RES` calls a client sends us answer
/// nothing we asked (we call GRANTED, not GRANTED_MSG) and are accepted and ignored.
pub const NLM4: Program = Program {
    prog: NLM_PROG,
    name: "NLM",
    low: NLM4_VERS,
    high: NLM4_VERS,
    procedures: &[
        Procedure::new(NLMPROC4_NULL, "NULL", handler!(null)),
        Procedure::new(NLMPROC4_TEST, "TEST", handler!(test)),
        Procedure::new(NLMPROC4_LOCK, "LOCK", handler!(lock)).modifies(),
        Procedure::new(NLMPROC4_CANCEL, "CANCEL", handler!(cancel)).modifies(),
        Procedure::new(NLMPROC4_UNLOCK, "UNLOCK", handler!(unlock)).modifies(),
        Procedure::new(NLMPROC4_GRANTED, "GRANTED", handler!(granted)),
        Procedure::new(NLMPROC4_TEST_MSG, "TEST_MSG", handler!(test_msg)),
        Procedure::new(NLMPROC4_LOCK_MSG, "LOCK_MSG", handler!(lock_msg)).modifies(),
        Procedure::new(NLMPROC4_CANCEL_MSG, "CANCEL_MSG", handler!(cancel_msg)).modifies(),
        Procedure::new(NLMPROC4_UNLOCK_MSG, "UNLOCK_MSG", handler!(unlock_msg)).modifies(),
        Procedure::new(NLMPROC4_GRANTED_MSG, "GRANTED_MSG", handler!(granted_msg)),
        Procedure::new(
            NLMPROC4_TEST_RES,
            "TEST_RES",
            handler!(ignore::<nlm4_testres>),
        ),
        Procedure::new(NLMPROC4_LOCK_RES, "LOCK_RES", handler!(ignore::<nlm4_res>)),
        Procedure::new(
            NLMPROC4_CANCEL_RES,
            "CANCEL_RES",
            handler!(ignore::<nlm4_res>),
        ),
        Procedure::new(
            NLMPROC4_UNLOCK_RES,
            "UNLOCK_RES",
            handler!(ignore::<nlm4_res>),
        ),
        Procedure::new(
            NLMPROC4_GRANTED_RES,
            "GRANTED_RES",
            handler!(ignore::<nlm4_res>),
        ),
        Procedure::new(NLMPROC_NSM_NOTIFY, "NSM_NOTIFY", handler!(nsm_notify)).modifies(),
        unavailable(17, "-"),
        unavailable(18, "-"),
        unavailable(19, "-"),
        Procedure::new(NLMPROC4_SHARE, "SHARE", handler!(share)).modifies(),
        Procedure::new(NLMPROC4_UNSHARE, "UNSHARE", handler!(unshare)).modifies(),
        Procedure::new(NLMPROC4_NM_LOCK, "NM_LOCK", handler!(nm_lock)).modifies(),
        Procedure::new(NLMPROC4_FREE_ALL, "FREE_ALL", handler!(free_all)).modifies(),
    ],
    stats_any_version: false,
    tcp_only: false,
};

fn res(cookie: netobj, stat: nlm4_stats) -> nlm4_res {
    nlm4_res {
        cookie,
        stat: nlm4_stat { stat },
    }
}

fn kind(exclusive: bool) -> LockKind {
    if exclusive {
        LockKind::Exclusive
    } else {
        LockKind::Shared
    }
}

/// The export, identity and verified handle of `fh`, or the NLM status refusing the call. NLM
/// handles are NFS handles, so the export's client rules apply as to any NFS call.
fn authorize(
    svc: &Service,
    call: &Call,
    fh: &netobj,
) -> Result<Result<Authorized, nlm4_stats>, AuthStat> {
    // A reference to the received record, not a copy.
    let handle = FileHandle::from_wire(fh.0.clone());
    match svc.authorize(call, handle) {
        Ok(auth) => Ok(Ok(auth)),
        Err(Denied::BadHandle | Denied::Stale) => {
            svc.locking
                .counters
                .stale_handles
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(Err(nlm4_stats::NLM4_STALE_FH))
        }
        Err(Denied::Access) => {
            debug!(peer = %call.peer, "NLM call refused: no client rule matches");
            Ok(Err(nlm4_stats::NLM4_FAILED))
        }
        Err(Denied::Auth(stat)) => Err(stat),
    }
}

/// Who and what a lock or share names, for the manager: the caller's host, the owner (svid and
/// owner handle; shares have no svid) and the file (its handle, already verified).
fn target(call: &Call, caller_name: &[u8], svid: i32, oh: &[u8], auth: &Authorized) -> Target {
    Target {
        client: client_key(call.peer.ip(), caller_name),
        owner: owner_key(svid, oh),
        file: auth.handle.handle().to_bytes(),
    }
}

/// The byte range of an `nlm4_lock`; one past 2^64 - 1 is NLM4_FBIG.
fn range(lock: &nlm4_lock) -> Result<Range, nlm4_stats> {
    Range::from_offset_len(lock.l_offset, lock.l_len).map_err(|_| nlm4_stats::NLM4_FBIG)
}

/// Verifies the handle, builds the target and range, opens a description if needed, makes the
/// remote lock call `before` asks for (on a ceph export, outside the lock manager's mutex), and
/// runs `f` on the manager: the common part of TEST, LOCK, UNLOCK and CANCEL.
fn with_lock<R>(
    svc: &Service,
    call: &Call,
    lock: &nlm4_lock,
    delegations: Option<bool>,
    before: impl FnOnce(Range) -> Before,
    f: impl FnOnce(
        &mut rnfs_locks::LockManager,
        &mut crate::locking::OfdMirror<'_>,
        &Target,
        Range,
    ) -> R,
) -> Result<Result<R, nlm4_stats>, AuthStat> {
    let auth = match authorize(svc, call, &lock.fh)? {
        Ok(auth) => auth,
        Err(stat) => return Ok(Err(stat)),
    };
    let range = match range(lock) {
        Ok(r) => r,
        Err(stat) => return Ok(Err(stat)),
    };
    // A lock (exclusive: as a write) conflicts with NFSv4 delegations of the file: they are
    // recalled, and the client told to try again shortly (DENIED_GRACE_PERIOD is the status
    // NLM clients retry after a pause, as NFSv3 clients do JUKEBOX).
    if let Some(write) = delegations {
        if svc
            .delegations_allow(call.now_ms, auth.handle.as_bytes(), write)
            .is_err()
        {
            return Ok(Err(nlm4_stats::NLM4_DENIED_GRACE_PERIOD));
        }
    }
    let (name, oh) = (lock.caller_name.as_bytes(), lock.oh.as_bytes());
    let target = target(call, name, lock.svid, oh, &auth);
    let spare = svc
        .locking
        .request_spare_for(&target, auth.export.backend.as_ref(), &auth.handle);
    Ok(Ok(svc.locking.with_request(
        &target,
        spare,
        before(range),
        |m, mirror| f(m, mirror, &target, range),
    )))
}

/// NLM4_DENIED's holder: an NFS owner's svid and owner handle (read while the manager is at
/// hand, so the owner cannot be gone), or svid 0 for a local process's lock.
fn holder(m: &rnfs_locks::LockManager, conflict: &Conflict) -> nlm4_holder {
    let (svid, oh) = match conflict.holder {
        Holder::Owner { owner, .. } => m
            .owner_key(owner)
            .map(|(_, key)| split_owner_key(key))
            .unwrap_or_default(),
        Holder::External => (0, bytes::Bytes::new()),
    };
    let (l_offset, l_len) = conflict.range.to_offset_len();
    nlm4_holder {
        exclusive: conflict.kind == LockKind::Exclusive,
        svid,
        oh: Opaque::new(oh).unwrap_or_default(),
        l_offset,
        l_len,
    }
}

fn test(svc: &Service, call: &Call, args: nlm4_testargs) -> Result<nlm4_testres, AuthStat> {
    let now = call.now_ms;
    let want = kind(args.exclusive);
    let before = |range| Before::Test(want, range);
    let answer = with_lock(
        svc,
        call,
        &args.alock,
        None,
        before,
        |m, mirror, target, range| {
            match m.test(now, target, want, range) {
                TestOutcome::Free => {
                    // The manager knows NFS owners only: ask the file system about local locks.
                    let local = mirror.probe(m, target, want, range);
                    match local {
                        Some(c) => nlm4_testrply::Denied(holder(m, &c)),
                        None => nlm4_testrply::Status(nlm4_stats::NLM4_GRANTED),
                    }
                }
                TestOutcome::Conflict(c) => nlm4_testrply::Denied(holder(m, &c)),
                TestOutcome::GracePeriod => {
                    nlm4_testrply::Status(nlm4_stats::NLM4_DENIED_GRACE_PERIOD)
                }
            }
        },
    )?;
    let test_stat = answer.unwrap_or_else(nlm4_testrply::Status);
    Ok(nlm4_testres {
        cookie: args.cookie,
        test_stat,
    })
}

fn lock_status(outcome: LockOutcome) -> nlm4_stats {
    match outcome {
        LockOutcome::Granted => nlm4_stats::NLM4_GRANTED,
        LockOutcome::Denied(_) => nlm4_stats::NLM4_DENIED,
        LockOutcome::Blocked(_) => nlm4_stats::NLM4_BLOCKED,
        LockOutcome::Deadlock => nlm4_stats::NLM4_DEADLCK,
        LockOutcome::GracePeriod => nlm4_stats::NLM4_DENIED_GRACE_PERIOD,
        LockOutcome::NoLocks(_) => nlm4_stats::NLM4_DENIED_NOLOCKS,
    }
}

/// LOCK and NM_LOCK (`monitored` false for NM_LOCK: a client without a status monitor is not
/// recorded for SM_NOTIFY, and cannot be called back, so it never blocks).
fn do_lock(
    svc: &Service,
    call: &Call,
    args: &nlm4_lockargs,
    monitored: bool,
) -> Result<nlm4_stats, AuthStat> {
    let block = monitored && args.block;
    let now = call.now_ms;
    let conflicts = Some(args.exclusive);
    let answer = with_lock(
        svc,
        call,
        &args.alock,
        conflicts,
        |range| Before::Lock(kind(args.exclusive), range),
        |m, mirror, target, range| {
            let req = LockRequest {
                target: target.clone(),
                kind: kind(args.exclusive),
                range,
                block,
                reclaim: args.reclaim,
            };
            let mut reply = m.lock(now, &req, mirror);
            if let LockOutcome::Blocked(waiter) = reply.outcome {
                // A retransmission of a queued request whose remote (CephFS) lock was just taken:
                // the waiter is granted now, rather than that lock undone and taken again.
                if mirror.has_unused_remote_grant() && m.grant_waiter(now, waiter, mirror).is_some()
                {
                    reply.outcome = LockOutcome::Granted;
                }
            }
            if let LockOutcome::Blocked(_) = reply.outcome {
                // Keep the request's description for when the waiter is granted.
                mirror.keep(m, target);
            }
            (reply, target.client.clone())
        },
    )?;
    Ok(match answer {
        Ok((reply, client)) => {
            svc.locking.push_granted(reply.granted);
            svc.locking.after_release(now);
            let held = matches!(
                reply.outcome,
                LockOutcome::Granted | LockOutcome::Blocked(_)
            );
            if monitored && held {
                svc.locking.remember_client(&client);
            }
            lock_status(reply.outcome)
        }
        Err(stat) => stat,
    })
}

fn lock(svc: &Service, call: &Call, args: nlm4_lockargs) -> Result<nlm4_res, AuthStat> {
    let stat = do_lock(svc, call, &args, true)?;
    Ok(res(args.cookie, stat))
}

fn nm_lock(svc: &Service, call: &Call, args: nlm4_lockargs) -> Result<nlm4_res, AuthStat> {
    let stat = do_lock(svc, call, &args, false)?;
    Ok(res(args.cookie, stat))
}

fn unlock(svc: &Service, call: &Call, args: nlm4_unlockargs) -> Result<nlm4_res, AuthStat> {
    let now = call.now_ms;
    let nothing = |_| Before::Nothing;
    let answer = with_lock(
        svc,
        call,
        &args.alock,
        None,
        nothing,
        |m, mirror, target, range| m.unlock(now, target, range, mirror),
    )?;
    let stat = match answer {
        Ok(Ok(granted)) => {
            svc.locking.push_granted(granted);
            svc.locking.after_release(now);
            nlm4_stats::NLM4_GRANTED
        }
        Ok(Err(_limit)) => nlm4_stats::NLM4_DENIED_NOLOCKS,
        Err(stat) => stat,
    };
    Ok(res(args.cookie, stat))
}

fn cancel(svc: &Service, call: &Call, args: nlm4_cancargs) -> Result<nlm4_res, AuthStat> {
    let want = kind(args.exclusive);
    let nothing = |_| Before::Nothing;
    let answer = with_lock(
        svc,
        call,
        &args.alock,
        None,
        nothing,
        |m, mirror, target, range| {
            // The waiter's description (kept for its grant) closes with it.
            mirror.touch(m, target);
            m.cancel(target, want, range)
        },
    )?;
    let stat = match answer {
        Ok(true) => nlm4_stats::NLM4_GRANTED,
        Ok(false) => nlm4_stats::NLM4_DENIED,
        Err(stat) => stat,
    };
    Ok(res(args.cookie, stat))
}

/// GRANTED is a client's procedure (the server calls it); a server has no blocked lock of ours
/// to take, so it is refused.
fn granted(_: &Service, _: &Call, args: nlm4_testargs) -> Result<nlm4_res, AuthStat> {
    Ok(res(args.cookie, nlm4_stats::NLM4_DENIED))
}

/// Access and deny bits of a share reservation (read = 1, write = 2 in both).
fn share_bits(share: &nlm4_share) -> (u8, u8) {
    let bits = |v: u32| {
        (if v & 1 != 0 { SHARE_READ } else { 0 }) | (if v & 2 != 0 { SHARE_WRITE } else { 0 })
    };
    (bits(share.access as u32), bits(share.mode as u32))
}

/// A share reservation NFSv4 delegations of the file stand in the way of (writing, or denying
/// anything, conflicts with any; reading with a write delegation): they are recalled, and the
/// client told to try again shortly.
fn delegated(svc: &Service, call: &Call, auth: &Authorized, share: &nlm4_share) -> bool {
    let (access, deny) = share_bits(share);
    let write = access & SHARE_WRITE != 0 || deny != 0;
    svc.delegations_allow(call.now_ms, auth.handle.as_bytes(), write)
        .is_err()
}

fn share_target(call: &Call, share: &nlm4_share, auth: &Authorized) -> Target {
    target(
        call,
        share.caller_name.as_bytes(),
        0,
        share.oh.as_bytes(),
        auth,
    )
}

fn share(svc: &Service, call: &Call, args: nlm4_shareargs) -> Result<nlm4_shareres, AuthStat> {
    let stat = match authorize(svc, call, &args.share.fh)? {
        Err(stat) => stat,
        Ok(auth) if delegated(svc, call, &auth, &args.share) => {
            nlm4_stats::NLM4_DENIED_GRACE_PERIOD
        }
        Ok(auth) => {
            let (access, deny) = share_bits(&args.share);
            let req = ShareRequest {
                target: share_target(call, &args.share, &auth),
                access,
                deny,
                reclaim: args.reclaim,
            };
            match svc
                .locking
                .with_manager(None, |m, _| m.share(call.now_ms, &req))
            {
                ShareOutcome::Granted => {
                    // Told after our restart, watched by the host's statd, as a lock holder is.
                    svc.locking.remember_client(&req.target.client);
                    nlm4_stats::NLM4_GRANTED
                }
                ShareOutcome::Denied { .. } => nlm4_stats::NLM4_DENIED,
                ShareOutcome::GracePeriod => nlm4_stats::NLM4_DENIED_GRACE_PERIOD,
                ShareOutcome::NoLocks(_) => nlm4_stats::NLM4_DENIED_NOLOCKS,
            }
        }
    };
    Ok(nlm4_shareres {
        cookie: args.cookie,
        stat,
        sequence: 0,
    })
}

fn unshare(svc: &Service, call: &Call, args: nlm4_shareargs) -> Result<nlm4_shareres, AuthStat> {
    let stat = match authorize(svc, call, &args.share.fh)? {
        Err(stat) => stat,
        Ok(auth) => {
            let target = share_target(call, &args.share, &auth);
            svc.locking.with_manager(None, |m, _| m.unshare(&target));
            nlm4_stats::NLM4_GRANTED
        }
    };
    Ok(nlm4_shareres {
        cookie: args.cookie,
        stat,
        sequence: 0,
    })
}

/// FREE_ALL: the host `name` (at the caller's address) rebooted; everything it held goes.
fn free_all(svc: &Service, call: &Call, args: nlm4_notify) -> Result<(), AuthStat> {
    svc.locking.free_client(
        call.now_ms,
        &client_key(call.peer.ip(), args.name.as_bytes()),
    );
    Ok(())
}

/// Sends a `_MSG` call's results to the caller's NLM service as the `_RES` call `proc_num`.
fn answer_later<R: rnfs_xdr::XdrEncode>(svc: &Service, call: &Call, proc_num: u32, results: &R) {
    svc.locking.send(crate::nlm_callback::Callback {
        peer_ip: call.peer.ip().to_canonical(),
        prog: NLM_PROG,
        vers: NLM4_VERS,
        proc_num,
        args: rnfs_xdr::to_bytes(results),
        expect_reply: false,
        client: bytes::Bytes::new(),
    });
}

fn test_msg(svc: &Service, call: &Call, args: nlm4_testargs) -> Result<(), AuthStat> {
    let res = test(svc, call, args)?;
    answer_later(svc, call, NLMPROC4_TEST_RES, &res);
    Ok(())
}

fn lock_msg(svc: &Service, call: &Call, args: nlm4_lockargs) -> Result<(), AuthStat> {
    let res = lock(svc, call, args)?;
    answer_later(svc, call, NLMPROC4_LOCK_RES, &res);
    Ok(())
}

fn cancel_msg(svc: &Service, call: &Call, args: nlm4_cancargs) -> Result<(), AuthStat> {
    let res = cancel(svc, call, args)?;
    answer_later(svc, call, NLMPROC4_CANCEL_RES, &res);
    Ok(())
}

fn unlock_msg(svc: &Service, call: &Call, args: nlm4_unlockargs) -> Result<(), AuthStat> {
    let res = unlock(svc, call, args)?;
    answer_later(svc, call, NLMPROC4_UNLOCK_RES, &res);
    Ok(())
}

fn granted_msg(svc: &Service, call: &Call, args: nlm4_testargs) -> Result<(), AuthStat> {
    let res = granted(svc, call, args)?;
    answer_later(svc, call, NLMPROC4_GRANTED_RES, &res);
    Ok(())
}

/// A `_RES` call: results of something we never asked asynchronously; decoded (garbage is
/// GARBAGE_ARGS) and dropped.
fn ignore<A>(_: &Service, _: &Call, _: A) -> Result<(), AuthStat> {
    Ok(())
}

/// The host's status monitor (we asked it with SM_MON, see `crate::locking`) says a monitored
/// host restarted: `mon_name` is the address we gave it. Taken only from this host.
fn nsm_notify(svc: &Service, call: &Call, args: rnfs_nlm::nsm::status) -> Result<(), AuthStat> {
    // As Linux's lockd: only a privileged process on this host (the status monitor) may say
    // that a host rebooted, or any local user could free other hosts' locks.
    if !call.peer.ip().to_canonical().is_loopback() || call.peer.port() >= 1024 {
        debug!(peer = %call.peer, "NSM callback not from a privileged local process: ignored");
        return Ok(());
    }
    let Ok(ip) = std::str::from_utf8(args.mon_name.as_bytes())
        .unwrap_or_default()
        .parse()
    else {
        return Ok(());
    };
    svc.locking.host_rebooted(call.now_ms, ip);
    Ok(())
}
