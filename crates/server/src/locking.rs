//! The server's file-locking state: one [`rnfs_locks::LockManager`] for the whole server (byte
//! ranges, shares, waiters, deadlocks, grace, limits), which NLM (`crate::nlm`) and NFSv4
//! (`crate::nfs4`) share. This module holds it behind a leaf lock and mirrors each lock owner's
//! ranges into the file system through the export's backend ([`rnfs_storage::LockFile`]: an OFD
//! lock on a description of the owner's own), so a local process's `fcntl` lock and an NFS
//! client's lock see each other, as with Linux's nfsd.
//!
//! # Who is who
//! * A **client** is the caller's address *and* the `caller_name` it gives: a host cannot act for
//!   (or free the locks of) another host by naming it.
//! * An **owner** is (client, svid, oh), as NLM defines it; a **file** is its verified handle.
//!
//! # Locks (liveness)
//! `state` is a leaf lock held for one manager call and the non-blocking `F_OFD_SETLK`/`GETLK`
//! calls it makes (never a waiting lock call, never a file open): descriptions are opened before
//! it is taken and closed after it is released. A blocked request waits as a queued waiter in the
//! manager, never as a thread.
//!
//! # Locks that may wait (CephFS)
//! On a ceph export a description is an open CephFS file and its locks are held in the MDS, so
//! NLM and NFSv4 byte-range locks conflict across every rnfsd head of the file system (issue 19;
//! NFSv4 share reservations and delegations are not held in CephFS). Each such call is a
//! round trip that can take as long as the MDS stalls ([`LockFile::may_wait`]), so none is made
//! under `state`:
//! * LOCK takes the CephFS lock first ([`Before::Lock`]), then the manager runs with a mirror that
//!   returns that answer; if the manager does not commit the lock, the CephFS lock is undone
//!   after `state` is released (the owner's previous ranges restored, the rest unlocked).
//! * TEST (and NFSv4 LOCKT) asks the MDS first ([`Before::Test`]) and the mirror's probe returns
//!   that answer.
//! * Releases (UNLOCK, FREE_ALL, CANCEL, reboots) are recorded by the mirror under `state` and
//!   made after it is released.
//! * A grant the manager would make on its own (an UNLOCK letting a waiter through) cannot ask
//!   the MDS there: the mirror refuses it, the waiter is marked as blocked by an external lock,
//!   and [`Locking::retry_remote`] later takes its CephFS lock outside `state` and grants it under
//!   `state` with that answer. It runs right after a release on this head and from the
//!   housekeeping timer (nothing tells us when another head unlocks).
//!
//! A request's calls to the MDS show as the stage "CephFS lock call" of the request in flight
//! (`rnfsd ctl requests`, the watchdog). The timer's retry runs on a thread of its own, one at a
//! time, so a stalled MDS holds up neither housekeeping nor a pile of threads; the watchdog
//! reports it when it outlasts the stall bound.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use rnfs_locks::{
    Conflict, External, FileId, Granted, Holder, LockKind, LockManager, Mirror, OwnerId, Range,
    Target, WaiterId,
};
use rnfs_storage::{Backend, LockFile, VerifiedHandle};
use tracing::warn;

use crate::lockdep::TrackedMutex;
use crate::nlm_callback::Callback;
use crate::nsm_store::NsmStore;

/// Calls to clients waiting to be handed to the callback sender: GRANTED for each waiter granted,
/// a `_RES` for each `_MSG` call, SM_NOTIFY after a restart. Past it, new ones are dropped and
/// counted (a client whose GRANTED is lost learns of its lock when it asks again).
pub(crate) const OUTBOX_MAX: usize = 8192;
/// Descriptions held open to mirror locks, at most (each is a file descriptor). Past it, new
/// (file, owner) pairs are decided by the lock manager alone: local processes do not see them.
pub(crate) const DESCRIPTIONS_MAX: usize = 16_384;
/// Client addresses the host's status monitor is asked to watch, at most.
const MONITORED_MAX: usize = 65_536;
/// Waiters blocked by a remote (CephFS) lock tried again per [`Locking::retry_remote`], at most:
/// each try is a round trip to the MDS.
const REMOTE_RETRIES_MAX: usize = 64;

/// A description opened for one (file, owner), with the file it was opened for: ids are reused
/// once the manager forgets them, so an entry is only used for the same file key.
struct Described {
    file_key: Bytes,
    /// Shared so a call to a lock file that may wait can be made after `state` is released.
    lock_file: Arc<dyn LockFile>,
}

/// The manager and the descriptions that mirror its locks.
struct LockState {
    manager: LockManager,
    described: HashMap<(FileId, OwnerId), Described>,
}

/// Server-wide locking state (one per [`crate::service::Service`]).
pub(crate) struct Locking {
    state: TrackedMutex<LockState>,
    /// Calls to clients not yet handed to the sender (see [`OUTBOX_MAX`]).
    outbox: TrackedMutex<VecDeque<Callback>>,
    /// Wakes the callback task when the outbox gains calls.
    pub outbox_ready: tokio::sync::Notify,
    /// Clients that hold locks, on disk (set at start when the server has a state directory).
    nsm: std::sync::OnceLock<NsmStore>,
    /// The host's own status monitor serves NSM: client reboots are learned from it (SM_MON for
    /// each client address, its callback is NLM procedure 16), not from SM_NOTIFY to us.
    system_statd: std::sync::atomic::AtomicBool,
    /// Client addresses already monitored by the system status monitor.
    monitored: TrackedMutex<std::collections::HashSet<IpAddr>>,
    /// Our NSM state number: odd while up, bumped at every start (XNFS chapter 11).
    nsm_state: AtomicI32,
    /// A grant was refused because it needed a remote lock call under `state`: retry remote
    /// waiters ([`Locking::after_release`]).
    remote_retry_due: AtomicBool,
    /// When the timer's [`Locking::timer_retry_remote`] started, 0 when none runs: at most one
    /// runs at a time, and the watchdog reports one that waits too long.
    remote_retry_since_ms: AtomicU64,
    pub counters: LockingCounters,
}

/// Events the manager does not count itself.
#[derive(Debug, Default)]
pub(crate) struct LockingCounters {
    /// A mirror call failed with an I/O error (logged); the lock was decided by the manager alone.
    pub mirror_errors: AtomicU64,
    /// Calls refused because the handle was stale or forged.
    pub stale_handles: AtomicU64,
    /// Calls to clients delivered (answered, or sent when no answer is expected).
    pub callbacks_delivered: AtomicU64,
    /// Calls to clients that failed (no port, no answer in the bounded attempts, refused).
    pub callbacks_failed: AtomicU64,
    /// Calls to clients dropped because the outbox or the sender's queue was full.
    pub callbacks_dropped: AtomicU64,
    /// Writing a client's NSM record failed (logged).
    pub nsm_record_errors: AtomicU64,
    /// Remote lock calls (CephFS: round trips to the MDS) made outside the state lock.
    pub remote_calls: AtomicU64,
    /// Remote lock calls that failed, or undid or restored a lock that could not be (logged).
    pub remote_errors: AtomicU64,
}

impl Locking {
    /// Locking state bounded by `limits` (checked with the configuration, see
    /// `config::Limits::check`; if they were not, the defaults apply and the error is logged).
    pub fn new(limits: rnfs_locks::Limits) -> Locking {
        let manager = LockManager::new(limits).unwrap_or_else(|e| {
            tracing::error!(error = %e, "invalid lock limits: using the defaults");
            LockManager::new(rnfs_locks::Limits::default())
                .unwrap_or_else(|_| unreachable!("the default lock limits are valid"))
        });
        Locking {
            state: TrackedMutex::new(
                "nlm.state",
                LockState {
                    manager,
                    described: HashMap::new(),
                },
            ),
            outbox: TrackedMutex::new("nlm.outbox", VecDeque::new()),
            outbox_ready: tokio::sync::Notify::new(),
            nsm: std::sync::OnceLock::new(),
            system_statd: std::sync::atomic::AtomicBool::new(false),
            monitored: TrackedMutex::new("nlm.monitored", std::collections::HashSet::new()),
            nsm_state: AtomicI32::new(1),
            remote_retry_due: AtomicBool::new(false),
            remote_retry_since_ms: AtomicU64::new(0),
            counters: LockingCounters::default(),
        }
    }

    pub fn lock_infos(&self) -> [crate::lockdep::LockInfo; 3] {
        [self.state.info(), self.outbox.info(), self.monitored.info()]
    }

    /// Our NSM state number.
    pub fn nsm_state(&self) -> i32 {
        self.nsm_state.load(Ordering::Relaxed)
    }

    /// At start: opens the NSM records in `state_dir`, takes the new state number, and if any
    /// client held locks before, opens the grace period and queues SM_NOTIFY to each (`our_name`
    /// is the name they know us by). Returns how many clients are notified.
    pub fn start_nsm(
        &self,
        state_dir: &std::path::Path,
        our_name: &[u8],
        now_ms: u64,
        grace_ms: u64,
    ) -> std::io::Result<usize> {
        let opened = crate::nsm_store::NsmStore::open(state_dir)?;
        self.nsm_state.store(opened.state, Ordering::Relaxed);
        let _ = self.nsm.set(opened.store);
        let previous = opened.previous_clients;
        if previous.is_empty() {
            return Ok(0);
        }
        self.start_grace(now_ms, grace_ms);
        let mon_name =
            rnfs_xdr::Opaque::new(bytes::Bytes::copy_from_slice(our_name)).unwrap_or_default();
        let args = rnfs_xdr::to_bytes(&rnfs_nlm::nsm::stat_chge {
            mon_name,
            state: opened.state,
        });
        let mut notified = 0;
        for key in &previous {
            let Some((peer_ip, _)) = split_client_key(key) else {
                continue;
            };
            self.send(Callback {
                peer_ip,
                prog: rnfs_nlm::nsm::SM_PROG,
                vers: rnfs_nlm::nsm::SM_VERS,
                proc_num: rnfs_nlm::nsm::SM_NOTIFY,
                args: args.clone(),
                expect_reply: true,
                client: key.clone(),
            });
            notified += 1;
        }
        Ok(notified)
    }

    /// Use the host's status monitor for client reboots (see `system_statd`).
    pub fn use_system_statd(&self) {
        self.system_statd.store(true, Ordering::Relaxed);
    }

    /// Asks the host's status monitor to watch the client at `ip` (once per address, see
    /// [`statd_call`]).
    fn monitor(&self, ip: IpAddr) {
        {
            let mut monitored = self.monitored.lock();
            if monitored.len() >= MONITORED_MAX || !monitored.insert(ip) {
                return;
            }
        }
        self.send(statd_call(rnfs_nlm::nsm::SM_MON, ip));
    }

    /// Stops the host's status monitor watching addresses where no client holds or waits for
    /// anything any more (SM_UNMON), as Linux's lockd does when it forgets a host.
    fn unmonitor_idle(&self) {
        if !self.system_statd.load(Ordering::Relaxed) {
            return;
        }
        let active: std::collections::HashSet<IpAddr> = {
            let state = self.state.lock();
            state
                .manager
                .clients()
                .filter_map(|(_, key)| split_client_key(key).map(|(ip, _)| ip))
                .collect()
        };
        let idle: Vec<IpAddr> = {
            let mut monitored = self.monitored.lock();
            let idle = monitored
                .iter()
                .filter(|ip| !active.contains(ip))
                .copied()
                .collect();
            monitored.retain(|ip| active.contains(ip));
            idle
        };
        for ip in idle {
            self.send(statd_call(rnfs_nlm::nsm::SM_UNMON, ip));
        }
    }

    /// The host at `ip` restarted (the status monitor says so): every client at that address
    /// loses its locks, shares and waiters.
    pub fn host_rebooted(&self, now_ms: u64, ip: IpAddr) {
        let prefix = format!("{} ", ip.to_canonical());
        let granted = self.with_manager(None, |m, mirror| {
            let clients: Vec<_> = m
                .clients()
                .filter(|(_, key)| key.starts_with(prefix.as_bytes()))
                .map(|(id, _)| id)
                .collect();
            let mut granted = Vec::new();
            for client in clients {
                granted.extend(m.free_client(now_ms, client, mirror));
            }
            granted
        });
        self.monitored.lock().remove(&ip);
        self.push_granted(granted);
        self.after_release(now_ms);
    }

    /// Records on disk that `client` holds locks, so it is notified after a restart (a disk
    /// write the first time per client and process; call it outside every lock).
    pub fn remember_client(&self, client: &Bytes) {
        if self.system_statd.load(Ordering::Relaxed) {
            if let Some((ip, _)) = split_client_key(client) {
                self.monitor(ip);
            }
        }
        if let Some(store) = self.nsm.get() {
            if let Err(e) = store.remember(client) {
                warn!(error = %e, "cannot record a locking client for NSM: it will not be notified after a restart");
                self.counters
                    .nsm_record_errors
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A call to a client was delivered or failed: counts it, and forgets the NSM record of a
    /// client told of our restart.
    pub fn callback_done(&self, cb: &Callback, delivered: bool) {
        let counter = if delivered {
            &self.counters.callbacks_delivered
        } else {
            &self.counters.callbacks_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if delivered && cb.prog == rnfs_nlm::nsm::SM_PROG {
            if let Some(store) = self.nsm.get() {
                if let Err(e) = store.notified(&cb.client) {
                    warn!(error = %e, "cannot remove a notified client's NSM record");
                }
            }
        }
    }

    /// Queues a call to a client (dropped and counted when the outbox is full).
    pub fn send(&self, cb: Callback) {
        {
            let mut outbox = self.outbox.lock();
            if outbox.len() >= OUTBOX_MAX {
                drop(outbox);
                self.counters
                    .callbacks_dropped
                    .fetch_add(1, Ordering::Relaxed);
                return;
            }
            outbox.push_back(cb);
        }
        self.outbox_ready.notify_one();
    }

    /// Takes the calls waiting in the outbox.
    pub fn take_outbox(&self) -> VecDeque<Callback> {
        std::mem::take(&mut *self.outbox.lock())
    }

    /// Whether the grace period is running.
    pub fn in_grace(&self, now_ms: u64) -> bool {
        self.state.lock().manager.in_own_grace(now_ms)
    }

    /// Turns the cluster's grace period on or off here (see `crate::cluster`).
    pub fn set_cluster_grace(&self, on: bool) {
        self.state.lock().manager.set_cluster_grace(on);
    }

    /// Starts the grace period after a restart: only reclaims are granted until it ends.
    pub fn start_grace(&self, now_ms: u64, grace_ms: u64) {
        self.state.lock().manager.start_grace(now_ms, grace_ms);
    }

    /// Runs `f` on the manager, with a mirror backed by the owners' descriptions. `spare` is a
    /// description opened beforehand for the request's (file, owner) if it had none. Descriptions
    /// no longer holding anything are closed after the lock is released, and lock calls that may
    /// wait, recorded by the mirror, are made then too.
    pub(crate) fn with_manager<R>(
        &self,
        spare: Option<Spare>,
        f: impl FnOnce(&mut LockManager, &mut OfdMirror<'_>) -> R,
    ) -> R {
        self.run(spare, Pre::default(), None, f)
    }

    /// [`Locking::with_manager`] for a request of `target`, making `before`'s remote lock call
    /// first (outside `state`) when the owner's description may wait (see the module docs).
    pub(crate) fn with_request<R>(
        &self,
        target: &Target,
        spare: Option<Spare>,
        before: Before,
        f: impl FnOnce(&mut LockManager, &mut OfdMirror<'_>) -> R,
    ) -> R {
        let Some(remote) = self.remote_file(target, spare.as_ref()) else {
            return self.with_manager(spare, f);
        };
        // The mirror adopts the very description the call went through if the owner has none
        // by then (closed meanwhile): its CephFS lock must not be closed with a dropped spare.
        let spare = spare.or_else(|| {
            Some(Spare {
                file_key: target.file.clone(),
                lock_file: remote.clone(),
            })
        });
        let mut pre = Pre::default();
        match before {
            Before::Nothing => {}
            Before::Lock(kind, range) => {
                let granted = crate::stage::in_stage(crate::stage::Stage::LockCall, || {
                    self.remote_lock(&*remote, kind, range)
                });
                pre.decided = Some(Decided {
                    lock_file: remote,
                    kind,
                    range,
                    granted,
                    used: false,
                });
            }
            Before::Test(kind, range) => {
                let found = crate::stage::in_stage(crate::stage::Stage::LockCall, || {
                    self.count_remote(local_conflict(&*remote, kind, range))
                });
                pre.tested = Some(found);
            }
        }
        self.run(spare, pre, Some(target), f)
    }

    fn run<R>(
        &self,
        spare: Option<Spare>,
        pre: Pre,
        target: Option<&Target>,
        f: impl FnOnce(&mut LockManager, &mut OfdMirror<'_>) -> R,
    ) -> R {
        let mut closing = Vec::new();
        let (result, deferred, remote_refused) = {
            let mut state = self.state.lock();
            let LockState { manager, described } = &mut *state;
            let mut mirror = OfdMirror {
                described,
                spare,
                touched: Vec::new(),
                errors: 0,
                decided: pre.decided,
                tested: pre.tested,
                deferred: Vec::new(),
                remote_refused: false,
            };
            let result = f(manager, &mut mirror);
            let request_ids = target.and_then(|t| ids(manager, t));
            mirror.settle(manager, request_ids);
            self.counters
                .mirror_errors
                .fetch_add(mirror.errors, Ordering::Relaxed);
            closing.extend(mirror.spare.take().map(|s| s.lock_file));
            let touched = std::mem::take(&mut mirror.touched);
            let (deferred, remote_refused) = (mirror.deferred, mirror.remote_refused);
            for key in touched {
                if !manager.holds(key.0, key.1) && !manager.waits(key.0, key.1) {
                    closing.extend(described.remove(&key).map(|d| d.lock_file));
                }
            }
            (result, deferred, remote_refused)
        };
        self.perform(deferred);
        drop(closing);
        if remote_refused {
            self.remote_retry_due.store(true, Ordering::Relaxed);
        }
        result
    }

    /// The description of `target`'s owner if its calls may wait: the spare's, or the one it
    /// has. `None`: the manager and non-waiting descriptions decide, under `state`.
    fn remote_file(&self, target: &Target, spare: Option<&Spare>) -> Option<Arc<dyn LockFile>> {
        if let Some(spare) = spare {
            return spare.lock_file.may_wait().then(|| spare.lock_file.clone());
        }
        let state = self.state.lock();
        let key = ids(&state.manager, target)?;
        state
            .described
            .get(&key)
            .filter(|d| d.file_key == target.file && d.lock_file.may_wait())
            .map(|d| d.lock_file.clone())
    }

    /// Takes `kind` over `range` through a description that may wait (never under `state`).
    /// A failed call counts as a conflict: granting without the MDS would let two heads hold
    /// conflicting locks.
    fn remote_lock(&self, lock_file: &dyn LockFile, kind: LockKind, range: Range) -> bool {
        self.counters.remote_calls.fetch_add(1, Ordering::Relaxed);
        let (start, len) = range.to_offset_len();
        match lock_file.lock(kind == LockKind::Exclusive, start, len) {
            Ok(granted) => granted,
            Err(e) => {
                warn!(error = %e, "CephFS lock call failed: the lock is refused");
                self.counters.remote_errors.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    fn count_remote(&self, found: Result<Option<Conflict>, ()>) -> Option<Conflict> {
        self.counters.remote_calls.fetch_add(1, Ordering::Relaxed);
        found.unwrap_or_else(|()| {
            self.counters.remote_errors.fetch_add(1, Ordering::Relaxed);
            None
        })
    }

    /// Makes the lock calls the mirror deferred (outside `state`).
    fn perform(&self, deferred: Vec<Deferred>) {
        if deferred.is_empty() {
            return;
        }
        crate::stage::in_stage(crate::stage::Stage::LockCall, || {
            for call in deferred {
                self.counters.remote_calls.fetch_add(1, Ordering::Relaxed);
                let failed = match &call {
                    Deferred::Unlock(lock_file, range) => {
                        let (start, len) = range.to_offset_len();
                        lock_file.unlock(start, len).err().map(|e| e.to_string())
                    }
                    Deferred::Restore(lock_file, kind, range) => {
                        let (start, len) = range.to_offset_len();
                        match lock_file.lock(*kind == LockKind::Exclusive, start, len) {
                            Ok(true) => None,
                            Ok(false) => Some("another owner took it meanwhile".to_owned()),
                            Err(e) => Some(e.to_string()),
                        }
                    }
                };
                if let Some(why) = failed {
                    warn!(error = %why, "a deferred CephFS lock call failed");
                    self.counters.remote_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }

    /// After a release on this head: waiters it would have let through, but whose locks need a
    /// remote call, are tried now ([`Locking::retry_remote`]) rather than at the next tick.
    pub fn after_release(&self, now_ms: u64) {
        if self.remote_retry_due.swap(false, Ordering::Relaxed) {
            let granted = self.retry_remote(now_ms);
            self.push_granted(granted);
        }
    }

    /// The timer's part of [`Locking::retry_remote`] (nothing tells us when another head
    /// unlocks). Run on a thread of its own, not the housekeeping one: it waits as long as the
    /// MDS does, and housekeeping (lease expiry...) must not. Returns at once if one runs already.
    pub fn timer_retry_remote(&self, now_ms: u64) {
        let started = now_ms.max(1);
        if self
            .remote_retry_since_ms
            .compare_exchange(0, started, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        self.remote_retry_due.store(false, Ordering::Relaxed);
        let granted = self.retry_remote(now_ms);
        self.push_granted(granted);
        self.remote_retry_since_ms.store(0, Ordering::Release);
    }

    /// Whether (since when) the timer's remote retry runs.
    pub fn remote_retry_since_ms(&self) -> Option<u64> {
        match self.remote_retry_since_ms.load(Ordering::Acquire) {
            0 => None,
            since => Some(since),
        }
    }

    /// Waiters blocked by a lock outside the manager whose descriptions may wait (another head's
    /// CephFS lock, say): takes each one's lock outside `state` (at most
    /// [`REMOTE_RETRIES_MAX`]), then grants under `state` those the MDS granted; a grant the
    /// manager no longer wants (cancelled, an NFS owner in the way) is undone. Returns the
    /// waiters granted (the caller sends GRANTED).
    pub fn retry_remote(&self, now_ms: u64) -> Vec<Granted> {
        type Try = (
            WaiterId,
            LockKind,
            Range,
            Arc<dyn LockFile>,
            (FileId, OwnerId),
        );
        let tries: Vec<Try> = {
            let state = self.state.lock();
            state
                .manager
                .waiters()
                .filter(|w| w.external)
                .filter_map(|w| {
                    let key = (w.file.0, w.owner.0);
                    let d = state.described.get(&key)?;
                    (d.file_key == *w.file.1 && d.lock_file.may_wait())
                        .then(|| (w.waiter, w.kind, w.range, d.lock_file.clone(), key))
                })
                .take(REMOTE_RETRIES_MAX)
                .collect()
        };
        let taken: Vec<(Try, bool)> = crate::stage::in_stage(crate::stage::Stage::LockCall, || {
            tries
                .into_iter()
                .map(|t| {
                    let granted = self.remote_lock(&*t.3, t.1, t.2);
                    (t, granted)
                })
                .collect()
        });
        if !taken.iter().any(|(_, granted)| *granted) {
            return Vec::new();
        }
        self.with_manager(None, |m, mirror| {
            let mut granted = Vec::new();
            for ((waiter, kind, range, lock_file, key), ok) in taken {
                if !ok {
                    continue;
                }
                mirror.decided = Some(Decided {
                    lock_file,
                    kind,
                    range,
                    granted: true,
                    used: false,
                });
                granted.extend(m.grant_waiter(now_ms, waiter, mirror));
                mirror.settle(m, Some(key));
                mirror.touched.push(key);
            }
            granted
        })
    }

    /// Whether (file, owner) of `target` already has a description, or may not get one (so none
    /// need be opened).
    fn described(&self, target: &Target) -> bool {
        let state = self.state.lock();
        if state.described.len() >= DESCRIPTIONS_MAX {
            // Full: none will be opened (so none is "needed").
            return true;
        }
        ids(&state.manager, target)
            .and_then(|key| state.described.get(&key))
            .is_some_and(|d| d.file_key == target.file)
    }

    /// A description for `target`'s owner if it has none yet (opened without any lock held),
    /// for a LOCK or TEST that goes through [`Locking::with_request`] (NLM, NFSv4 LOCK and
    /// LOCKT): lock files that may wait (CephFS) too.
    pub(crate) fn request_spare_for(
        &self,
        target: &Target,
        backend: &dyn Backend,
        fh: &VerifiedHandle,
    ) -> Option<Spare> {
        if self.described(target) {
            return None;
        }
        match backend.open_lock_file(fh) {
            Ok(lock_file) => lock_file.map(|lock_file| Spare {
                file_key: target.file.clone(),
                lock_file: Arc::from(lock_file),
            }),
            Err(e) => {
                warn!(error = ?e, "cannot open a description to mirror NFS locks: manager alone decides");
                self.counters.mirror_errors.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Frees everything the client `key` holds or waits for (FREE_ALL, SM_NOTIFY).
    pub fn free_client(&self, now_ms: u64, key: &[u8]) {
        let granted = self.with_manager(None, |m, mirror| match m.client_id(key) {
            Some(client) => m.free_client(now_ms, client, mirror),
            None => Vec::new(),
        });
        self.push_granted(granted);
        self.after_release(now_ms);
    }

    /// The housekeeping timer's part: waiters blocked only by local (non-NFS) locks are tried
    /// again (nothing else would wake them), and those granted are called back.
    pub fn housekeeping(&self, now_ms: u64) {
        let granted = self.with_manager(None, |m, mirror| m.retry_external(now_ms, mirror));
        self.push_granted(granted);
        self.close_idle_descriptions();
        self.unmonitor_idle();
    }

    /// Closes the descriptions of (file, owner) pairs that hold and wait for nothing any more and
    /// that no call marked (a client freed by FREE_ALL while only waiting, say).
    fn close_idle_descriptions(&self) {
        let closing: Vec<Described> = {
            let mut state = self.state.lock();
            let LockState { manager, described } = &mut *state;
            let idle: Vec<_> = described
                .keys()
                .filter(|&&(file, owner)| {
                    !manager.holds(file, owner) && !manager.waits(file, owner)
                })
                .copied()
                .collect();
            idle.iter()
                .filter_map(|key| described.remove(key))
                .collect()
        };
        drop(closing);
    }

    /// Queues a GRANTED call to the client of each waiter granted (XNFS 10: the server calls the
    /// client's NLM back). The lock is already its owner's; one whose owner is gone by now has
    /// nobody to tell.
    pub(crate) fn push_granted(&self, granted: Vec<Granted>) {
        if granted.is_empty() {
            return;
        }
        let calls: Vec<Callback> = {
            let state = self.state.lock();
            granted
                .iter()
                .filter_map(|g| granted_call(&state.manager, g))
                .collect()
        };
        for cb in calls {
            self.send(cb);
        }
    }

    /// Counters and sizes, for metrics and `rnfsd ctl`.
    pub fn snapshot(&self) -> (rnfs_locks::Counters, rnfs_locks::Usage) {
        let state = self.state.lock();
        (state.manager.counters().clone(), state.manager.usage())
    }

    /// Every lock, share and waiter, rendered for `rnfsd ctl filelocks` (at most `rows_max`).
    pub fn report(&self, now_ms: u64, rows_max: usize) -> Vec<LockRow> {
        let state = self.state.lock();
        let m = &state.manager;
        let row = |what, keys: [&Bytes; 3], mode: String, range, since_ms: u64| LockRow {
            what,
            file: keys[0].clone(),
            client: keys[1].clone(),
            owner: keys[2].clone(),
            mode,
            range,
            age_ms: now_ms.saturating_sub(since_ms),
        };
        let locks = m.locks().map(|l| {
            let keys = [l.file.1, l.client.1, l.owner.1];
            let mode = kind_name(l.kind).to_owned();
            row("lock", keys, mode, l.range.to_offset_len(), l.since_ms)
        });
        let shares = m.shares().map(|s| {
            let keys = [s.file.1, s.client.1, s.owner.1];
            let mode = format!("access={} deny={}", s.access, s.deny);
            row("share", keys, mode, (0, 0), s.since_ms)
        });
        let waiters = m.waiters().map(|w| {
            let keys = [w.file.1, w.client.1, w.owner.1];
            let mode = kind_name(w.kind).to_owned();
            row("waiter", keys, mode, w.range.to_offset_len(), w.since_ms)
        });
        locks.chain(shares).chain(waiters).take(rows_max).collect()
    }
}

/// One line of `rnfsd ctl filelocks`.
#[derive(Debug, Clone)]
pub(crate) struct LockRow {
    pub what: &'static str,
    pub file: Bytes,
    pub client: Bytes,
    pub owner: Bytes,
    pub mode: String,
    /// (offset, length); length 0 = to end of file.
    pub range: (u64, u64),
    pub age_ms: u64,
}

fn kind_name(kind: LockKind) -> &'static str {
    match kind {
        LockKind::Shared => "shared",
        LockKind::Exclusive => "exclusive",
    }
}

/// A description opened for a request before the state lock was taken; used for the request's
/// file only (a waiter granted on another file by the same call goes unmirrored instead).
pub(crate) struct Spare {
    file_key: Bytes,
    lock_file: Arc<dyn LockFile>,
}

/// The remote lock call made for a request before `state` was taken ([`Locking::with_request`]).
pub(crate) enum Before {
    /// None (UNLOCK, CANCEL: releases are deferred instead).
    Nothing,
    /// LOCK: take this lock.
    Lock(LockKind, Range),
    /// TEST: ask who is in the way of this lock.
    Test(LockKind, Range),
}

/// The answers of the calls made before `state` was taken.
#[derive(Default)]
struct Pre {
    decided: Option<Decided>,
    tested: Option<Option<Conflict>>,
}

/// A lock already taken (or refused) through a description that may wait, for the mirror to
/// report when the manager asks for exactly it.
struct Decided {
    lock_file: Arc<dyn LockFile>,
    kind: LockKind,
    range: Range,
    granted: bool,
    /// The manager asked for it (and so committed it, if granted).
    used: bool,
}

/// A lock call deferred until `state` is released.
enum Deferred {
    Unlock(Arc<dyn LockFile>, Range),
    /// Takes back a range the owner held before a remote lock the manager did not commit.
    Restore(Arc<dyn LockFile>, LockKind, Range),
}

/// The [`Mirror`] over the owners' descriptions.
pub(crate) struct OfdMirror<'a> {
    described: &'a mut HashMap<(FileId, OwnerId), Described>,
    spare: Option<Spare>,
    /// (file, owner) pairs whose locks changed: their descriptions are closed if now empty.
    touched: Vec<(FileId, OwnerId)>,
    errors: u64,
    decided: Option<Decided>,
    tested: Option<Option<Conflict>>,
    /// Calls to descriptions that may wait, made once `state` is released.
    deferred: Vec<Deferred>,
    /// An acquire was refused because it would have needed a remote call under `state`.
    remote_refused: bool,
}

impl OfdMirror<'_> {
    /// The description of (file, owner), taking the spare for a new pair. `None`: the backend has
    /// no file-system locks (or opening failed): the manager alone decides.
    fn description(
        &mut self,
        file: FileId,
        file_key: &Bytes,
        owner: OwnerId,
    ) -> Option<Arc<dyn LockFile>> {
        let key = (file, owner);
        let stale = self
            .described
            .get(&key)
            .is_some_and(|d| d.file_key != *file_key);
        if stale || !self.described.contains_key(&key) {
            let spare = self.spare.take_if(|s| s.file_key == *file_key)?;
            self.described.insert(
                key,
                Described {
                    file_key: spare.file_key,
                    lock_file: spare.lock_file,
                },
            );
        }
        self.touched.push(key);
        self.described.get(&key).map(|d| d.lock_file.clone())
    }

    /// After a request: a remote lock taken for it that the manager did not commit is undone
    /// (deferred): what the owner (`ids`) still holds in its range is taken back, the rest
    /// unlocked.
    fn settle(&mut self, m: &LockManager, ids: Option<(FileId, OwnerId)>) {
        let Some(d) = self.decided.take() else {
            return;
        };
        if !d.granted || d.used {
            return;
        }
        let held = ids.map_or_else(Vec::new, |(file, owner)| {
            m.held_within(file, owner, d.range)
        });
        let mut at = d.range.start();
        let mut gaps = Vec::new();
        for &(kind, range) in &held {
            self.deferred
                .push(Deferred::Restore(d.lock_file.clone(), kind, range));
            gaps.extend(Range::new(at, range.start()).ok());
            at = range.end();
        }
        gaps.extend(Range::new(at, d.range.end()).ok());
        self.deferred.extend(
            gaps.into_iter()
                .map(|gap| Deferred::Unlock(d.lock_file.clone(), gap)),
        );
    }

    /// The answer for an acquire through a description that may wait: the call made before
    /// `state` was taken if it was exactly this one, else a refusal (never a call under `state`);
    /// a refused waiter is retried by [`Locking::retry_remote`].
    fn decided_answer(
        &mut self,
        lock_file: &Arc<dyn LockFile>,
        kind: LockKind,
        range: Range,
    ) -> Result<(), External> {
        let decided = self.decided.as_mut().filter(|d| {
            !d.used && Arc::ptr_eq(&d.lock_file, lock_file) && d.kind == kind && d.range == range
        });
        match decided {
            Some(d) => {
                d.used = true;
                if d.granted {
                    Ok(())
                } else {
                    Err(External { kind, range })
                }
            }
            None => {
                self.remote_refused = true;
                Err(External { kind, range })
            }
        }
    }

    /// Whether a remote lock was taken for the request and the manager has not used it yet.
    pub(crate) fn has_unused_remote_grant(&self) -> bool {
        self.decided.as_ref().is_some_and(|d| d.granted && !d.used)
    }

    /// Marks `target`'s (file, owner) as changed: its description is closed after the call if
    /// it holds and waits for nothing.
    pub(crate) fn touch(&mut self, m: &LockManager, target: &Target) {
        if let Some(key) = ids(m, target) {
            self.touched.push(key);
        }
    }

    /// Keeps the spare as `target`'s description (a blocked request's, for its grant).
    pub(crate) fn keep(&mut self, m: &LockManager, target: &Target) {
        if let Some((file, owner)) = ids(m, target) {
            let _ = self.description(file, &target.file, owner);
        }
    }

    /// A lock of another description or a local process in the way of `target` taking `kind`
    /// over `range` (TEST, once the manager found no NFS owner in the way). Through the owner's
    /// own description when it has one, whose locks GETLK ignores; else through the spare.
    pub(crate) fn probe(
        &mut self,
        m: &LockManager,
        target: &Target,
        kind: LockKind,
        range: Range,
    ) -> Option<Conflict> {
        if let Some(tested) = self.tested.take() {
            return tested;
        }
        match ids(m, target) {
            Some((file, owner)) => self.probe_described(file, &target.file, owner, kind, range),
            None => self.probe_new(&target.file, kind, range),
        }
    }

    /// [`OfdMirror::probe`] for an owner the manager does not know yet: through the spare.
    fn probe_new(&mut self, file_key: &Bytes, kind: LockKind, range: Range) -> Option<Conflict> {
        let spare = self.spare.as_ref().filter(|s| s.file_key == *file_key)?;
        if spare.lock_file.may_wait() {
            return None;
        }
        let found = local_conflict(&*spare.lock_file, kind, range);
        self.count(found)
    }

    /// A probe's answer, its failure counted (and logged by [`local_conflict`]).
    fn count(&mut self, found: Result<Option<Conflict>, ()>) -> Option<Conflict> {
        found.unwrap_or_else(|()| {
            self.errors += 1;
            None
        })
    }

    /// [`OfdMirror::probe`] through (file, owner)'s description.
    fn probe_described(
        &mut self,
        file: FileId,
        file_key: &Bytes,
        owner: OwnerId,
        kind: LockKind,
        range: Range,
    ) -> Option<Conflict> {
        let lock_file = self.description(file, file_key, owner)?;
        if lock_file.may_wait() {
            return None;
        }
        let found = local_conflict(&*lock_file, kind, range);
        self.count(found)
    }
}

/// `F_OFD_GETLK` through `lock_file`: a lock in the way of `kind` over `range` that the manager
/// does not know (`Err` when the call failed; logged).
fn local_conflict(
    lock_file: &dyn LockFile,
    kind: LockKind,
    range: Range,
) -> Result<Option<Conflict>, ()> {
    let (start, len) = range.to_offset_len();
    match lock_file.conflict(kind == LockKind::Exclusive, start, len) {
        Ok(found) => Ok(found.map(|c| external_conflict(c, range))),
        Err(e) => {
            warn!(error = %e, "F_OFD_GETLK failed");
            Err(())
        }
    }
}

impl Mirror for OfdMirror<'_> {
    fn acquire(
        &mut self,
        file: FileId,
        file_key: &Bytes,
        owner: OwnerId,
        kind: LockKind,
        range: Range,
    ) -> Result<(), External> {
        let (start, len) = range.to_offset_len();
        let Some(lock_file) = self.description(file, file_key, owner) else {
            return Ok(());
        };
        if lock_file.may_wait() {
            return self.decided_answer(&lock_file, kind, range);
        }
        match lock_file.lock(kind == LockKind::Exclusive, start, len) {
            Ok(true) => Ok(()),
            Ok(false) => Err(External { kind, range }),
            Err(e) => {
                warn!(error = %e, "mirroring an NFS lock as an OFD lock failed: manager alone decides");
                self.errors += 1;
                Ok(())
            }
        }
    }

    fn release(&mut self, file: FileId, file_key: &Bytes, owner: OwnerId, range: Range) {
        let key = (file, owner);
        let Some(d) = self.described.get(&key).filter(|d| d.file_key == *file_key) else {
            return;
        };
        if d.lock_file.may_wait() {
            self.deferred
                .push(Deferred::Unlock(d.lock_file.clone(), range));
            self.touched.push(key);
            return;
        }
        let (start, len) = range.to_offset_len();
        if let Err(e) = d.lock_file.unlock(start, len) {
            warn!(error = %e, "releasing a mirrored OFD lock failed");
            self.errors += 1;
        }
        self.touched.push(key);
    }
}

/// The manager's ids of `target`'s file and owner, if it knows both.
fn ids(m: &LockManager, target: &Target) -> Option<(FileId, OwnerId)> {
    Some((
        m.file_id(&target.file)?,
        m.owner_id(&target.client, &target.owner)?,
    ))
}

/// A lock the file system reports, as a conflict with a holder outside the manager.
fn external_conflict((exclusive, start, len): (bool, u64, u64), asked: Range) -> Conflict {
    Conflict {
        holder: Holder::External,
        kind: if exclusive {
            LockKind::Exclusive
        } else {
            LockKind::Shared
        },
        range: Range::from_offset_len(start, len).unwrap_or(asked),
    }
}

/// SM_MON (`mon`) or SM_UNMON (`mon_id`) of the client address `ip`, to the host's status
/// monitor: when that host restarts, the monitor calls our NLM procedure 16 (as it calls Linux's
/// lockd) with the address as `mon_name`.
fn statd_call(proc_num: u32, ip: IpAddr) -> Callback {
    use rnfs_nlm::nsm::{mon, mon_id, my_id, SM_MON};
    let name = |s: &[u8]| rnfs_xdr::Opaque::new(Bytes::copy_from_slice(s)).unwrap_or_default();
    let id = mon_id {
        mon_name: name(ip.to_string().as_bytes()),
        my_id: my_id {
            my_name: name(b"127.0.0.1"),
            my_prog: rnfs_nlm::NLM_PROG as i32,
            my_vers: rnfs_nlm::NLM4_VERS as i32,
            my_proc: rnfs_nlm::NLMPROC_NSM_NOTIFY as i32,
        },
    };
    let args = if proc_num == SM_MON {
        rnfs_xdr::to_bytes(&mon {
            mon_id: id,
            r#priv: [0; 16],
        })
    } else {
        rnfs_xdr::to_bytes(&id)
    };
    Callback {
        peer_ip: std::net::Ipv4Addr::LOCALHOST.into(),
        prog: rnfs_nlm::nsm::SM_PROG,
        vers: rnfs_nlm::nsm::SM_VERS,
        proc_num,
        args,
        expect_reply: true,
        client: Bytes::new(),
    }
}

/// The GRANTED call telling a waiter's client that its lock is held: the lock as the client
/// asked for it (caller_name, handle, owner, range); the cookie is the waiter's id.
fn granted_call(m: &LockManager, g: &Granted) -> Option<Callback> {
    use rnfs_nlm::{nlm4_lock, nlm4_testargs};
    let client = m.client_key(g.client)?;
    let (peer_ip, caller_name) = split_client_key(client)?;
    let (_, owner) = m.owner_key(g.owner)?;
    let (svid, oh) = split_owner_key(owner);
    let fh = m.file_key(g.file)?;
    let (l_offset, l_len) = g.range.to_offset_len();
    let args = nlm4_testargs {
        cookie: rnfs_xdr::Opaque::new(Bytes::copy_from_slice(&g.waiter.0.to_be_bytes()))
            .unwrap_or_default(),
        exclusive: g.kind == LockKind::Exclusive,
        alock: nlm4_lock {
            caller_name: rnfs_xdr::Opaque::new(caller_name).unwrap_or_default(),
            fh: rnfs_xdr::Opaque::new(fh.clone()).unwrap_or_default(),
            oh: rnfs_xdr::Opaque::new(oh).unwrap_or_default(),
            svid,
            l_offset,
            l_len,
        },
    };
    Some(Callback {
        peer_ip,
        prog: rnfs_nlm::NLM_PROG,
        vers: rnfs_nlm::NLM4_VERS,
        proc_num: rnfs_nlm::NLMPROC4_GRANTED,
        args: rnfs_xdr::to_bytes(&args),
        expect_reply: true,
        client: client.clone(),
    })
}

/// The address and caller_name of a client key ([`client_key`]'s inverse).
pub(crate) fn split_client_key(key: &Bytes) -> Option<(IpAddr, Bytes)> {
    let space = key.iter().position(|&b| b == b' ')?;
    let ip = std::str::from_utf8(&key[..space]).ok()?.parse().ok()?;
    Some((ip, key.slice(space + 1..)))
}

/// The manager's client key: the caller's address and the name it gives (see module docs).
pub(crate) fn client_key(peer: IpAddr, caller_name: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(caller_name.len() + 20);
    b.put_slice(peer.to_canonical().to_string().as_bytes());
    b.put_u8(b' ');
    b.put_slice(caller_name);
    b.freeze()
}

/// The manager's owner key for NLM: svid, then the owner handle.
pub(crate) fn owner_key(svid: i32, oh: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(oh.len() + 4);
    b.put_i32(svid);
    b.put_slice(oh);
    b.freeze()
}

/// svid and oh back from an owner key (for NLM4_DENIED's holder).
pub(crate) fn split_owner_key(key: &Bytes) -> (i32, Bytes) {
    match key.first_chunk::<4>() {
        Some(svid) => (i32::from_be_bytes(*svid), key.slice(4..)),
        None => (0, Bytes::new()),
    }
}
