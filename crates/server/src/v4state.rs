//! The server's NFSv4 state (a layer below the `nfs4` program, like `locking` below NLM): one [`rnfs_nfs4state::Nfs4State`] behind a leaf lock, the
//! server's identity for EXCHANGE_ID, and the timer's part (lease expiry, whose released state
//! is freed in the shared lock manager).
//!
//! # Locks (liveness)
//! `state` is a leaf lock held for one state-machine call (no I/O, no other lock taken inside).
//! Calls into [`crate::locking::Locking`] are made after it is released, never under it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use rnfs_nfs4state::{self as st, ClientId, Expiry, Nfs4State, StateInfo, StateRef};
use tracing::{debug, info, warn};

use crate::callbacks::{Callbacks, CbDone, CbJob};
use crate::lockdep::TrackedMutex;
use crate::locking::Locking;
use rnfs_nfs4::cb::{CB_RECALL4args, CbArgOp};

/// The manager's client key of an NFSv4 client: not an address followed by a space, so it never
/// reads as an NLM key (`crate::locking::split_client_key`).
pub fn client_key(id: u64) -> Bytes {
    Bytes::from(format!("nfs4:{id:016x}"))
}

/// The NFSv4 client id of a manager client key, if it is one.
pub fn client_of_key(key: &[u8]) -> Option<u64> {
    let hex = std::str::from_utf8(key.strip_prefix(b"nfs4:")?).ok()?;
    u64::from_str_radix(hex, 16).ok()
}

/// The manager's owner key of an open-owner (its share reservations).
pub fn open_owner_key(owner: &[u8]) -> Bytes {
    let mut k = Vec::with_capacity(owner.len() + 1);
    k.push(b'o');
    k.extend_from_slice(owner);
    Bytes::from(k)
}

/// The manager's owner key of a lock-owner (its byte ranges).
pub fn lock_owner_key(owner: &[u8]) -> Bytes {
    let mut k = Vec::with_capacity(owner.len() + 1);
    k.push(b'l');
    k.extend_from_slice(owner);
    Bytes::from(k)
}

/// A client as `rnfsd ctl` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct V4ClientInfo {
    pub clientid: String,
    pub owner: String,
    pub lease_age_ms: u64,
    pub courtesy: bool,
    pub sessions: usize,
    pub slots_in_use: usize,
    pub opens: usize,
    pub locks: usize,
    pub delegations: usize,
    /// Revoked stateids the client has not freed yet.
    pub revoked: usize,
    /// A back channel works: a session's probe or last callback was answered.
    pub callbacks: bool,
}

/// A file leased for delegations: the backend holding the lease, and whether it is a write lease.
#[derive(Clone)]
pub struct Leased {
    pub backend: std::sync::Arc<dyn rnfs_storage::Backend>,
    pub write: bool,
}

/// A delegation as `rnfsd ctl nfs4 delegations` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct V4DelegInfo {
    pub clientid: String,
    /// The file's handle, in hex.
    pub file: String,
    pub kind: &'static str,
    /// Milliseconds until a recall under way is due (then the delegation is revoked).
    pub recall_due_in_ms: Option<u64>,
}

/// File in the state directory listing the confirmed clients' owners (one hex line each), read
/// at start to open the grace period for their reclaims (RFC 8881 §8.4.2.1).
pub const CLIENTS_FILE: &str = "nfs4-clients";
const CLIENTS_HEADER: &str = "rnfsd nfs4 clients v1";
/// Largest client records file read (bytes): the clients table's worth of 1 KiB owners in hex.
const CLIENTS_FILE_BYTES_MAX: u64 = 16 << 20;

/// Server-wide NFSv4 state (one per [`crate::service::Service`]).
pub struct V4State {
    state: TrackedMutex<Nfs4State>,
    limits: st::Limits,
    lease_s: u32,
    owner: Bytes,
    /// Where client records are kept (none until [`V4State::restore`]); writers take this lock,
    /// so the file is written by one at a time, each with a fresh snapshot. It is held across
    /// the file write, by workers and the housekeeping thread only: no timer, reactor or
    /// connection waits for it.
    store: TrackedMutex<Option<PathBuf>>,
    /// The lock manager's grace period was opened for NFSv4's reclaims only: end it with theirs.
    grace_shared: AtomicBool,
    /// Delegations may be granted (the `nfs4_delegations` switch).
    pub delegations: AtomicBool,
    /// Some client holds a delegation (see [`V4State::any_delegations`]).
    any_delegations: AtomicBool,
    /// Workers waiting for a CB_GETATTR answer (see [`V4State::ask_holder`]).
    holder_waits: std::sync::atomic::AtomicUsize,
    /// Files leased for delegations (see `crate::nfs4::deleg`), with the backend holding each
    /// lease. A leaf lock, held for map operations only (never across a backend call).
    pub leases: TrackedMutex<std::collections::HashMap<Bytes, Leased>>,
    /// Operations executed and those that failed, by operation number (OP_ILLEGAL and numbers
    /// past the last defined one counted at index 0).
    pub ops: OpCounters,
}

/// Per-operation counts (for metrics).
pub struct OpCounters {
    pub calls: [AtomicU64; OP_SLOTS],
    pub errors: [AtomicU64; OP_SLOTS],
}

/// Operation numbers 0 (illegal ones) to the last defined.
pub const OP_SLOTS: usize = rnfs_nfs4::op::OP_LAST as usize + 1;

impl OpCounters {
    fn new() -> OpCounters {
        OpCounters {
            calls: std::array::from_fn(|_| AtomicU64::new(0)),
            errors: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Counts one operation's result.
    pub fn count(&self, op: u32, ok: bool) {
        let i = usize::try_from(op)
            .ok()
            .filter(|&i| i < OP_SLOTS)
            .unwrap_or(0);
        self.calls[i].fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl V4State {
    pub fn new(now_ms: u64, limits: st::Limits) -> V4State {
        V4State {
            state: TrackedMutex::new("nfs4.state", fresh(now_ms, limits.clone(), Vec::new())),
            lease_s: (limits.lease_ms / 1000).max(1) as u32,
            limits,
            owner: Bytes::from(format!("rnfsd:{}", crate::host_name())),
            store: TrackedMutex::new("nfs4.store", None),
            grace_shared: AtomicBool::new(false),
            delegations: AtomicBool::new(true),
            any_delegations: AtomicBool::new(false),
            holder_waits: std::sync::atomic::AtomicUsize::new(0),
            leases: TrackedMutex::new("nfs4.leases", Default::default()),
            ops: OpCounters::new(),
        }
    }

    /// At start: reads the client records of `state_dir` and, if the previous instance had
    /// clients, opens the grace period (the limits' `grace_ms`) for their reclaims. From then on
    /// the records are kept there. Returns how many clients may reclaim.
    pub fn restore(&self, state_dir: &Path, now_ms: u64) -> std::io::Result<usize> {
        let path = state_dir.join(CLIENTS_FILE);
        let previous = read_clients(&path)?;
        let n = previous.len();
        *self.state.lock() = fresh(now_ms, self.limits.clone(), previous);
        *self.store.lock() = Some(path);
        Ok(n)
    }

    /// The lock manager's grace period was opened for NFSv4 reclaims alone (no NLM client held
    /// locks): it ends when NFSv4's does, early once every client has reclaimed.
    pub fn share_grace(&self) {
        self.grace_shared.store(true, Ordering::Relaxed);
    }

    /// NLM's clients need the lock manager's grace period too: it is no longer ended with
    /// NFSv4's.
    pub fn unshare_grace(&self) {
        self.grace_shared.store(false, Ordering::Relaxed);
    }

    /// Writes the client records (after a client is confirmed or goes away).
    pub fn persist(&self, now_ms: u64) {
        let store = self.store.lock();
        let Some(path) = store.as_ref() else {
            return;
        };
        let owners = self.with(|s| s.persisted_owners(now_ms));
        if let Err(e) = write_clients(path, &owners) {
            // Tried again at the next change.
            warn!(path = %path.display(), error = %e, "cannot keep NFSv4 client records: after a restart their clients cannot reclaim");
        }
    }
}

/// A state machine with `previous` clients in grace.
fn fresh(now_ms: u64, limits: st::Limits, previous: Vec<Bytes>) -> Nfs4State {
    // Random per instance, so an earlier instance's clientids and stateids are recognised as
    // stale even across two starts within one second.
    let r = crate::random_verifier();
    let epoch = u32::from_be_bytes([r[0], r[1], r[2], r[3]]).max(1);
    let mut secret = [0u8; 16];
    secret[..8].copy_from_slice(&crate::random_verifier());
    secret[8..].copy_from_slice(&crate::random_verifier());
    let config = st::Config::new(limits, epoch, secret, previous);
    #[allow(clippy::expect_used)]
    Nfs4State::new(now_ms, config).expect("the NFSv4 limits are valid (grace_ms >= lease_ms)")
}

/// Reads the owners a client records file lists (none if there is no file yet).
fn read_clients(path: &Path) -> std::io::Result<Vec<Bytes>> {
    let mut text = String::new();
    match std::fs::File::open(path) {
        Ok(f) => f.take(CLIENTS_FILE_BYTES_MAX).read_to_string(&mut text)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut lines = text.lines();
    if lines.next() != Some(CLIENTS_HEADER) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not an rnfsd NFSv4 client records file",
        ));
    }
    Ok(lines.filter_map(unhex).collect())
}

fn unhex(line: &str) -> Option<Bytes> {
    let b = line.trim().as_bytes();
    if b.is_empty() || b.len() % 2 != 0 || b.len() > 2 * rnfs_nfs4::NFS4_OPAQUE_LIMIT {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16);
    b.chunks(2)
        .map(|p| Some((nibble(p[0])? * 16 + nibble(p[1])?) as u8))
        .collect::<Option<Vec<u8>>>()
        .map(Bytes::from)
}

/// Writes the records atomically (a new file renamed over the old, synced first: a crash leaves
/// the old list or the new, never half of one).
fn write_clients(path: &Path, owners: &[Bytes]) -> std::io::Result<()> {
    let mut text = String::with_capacity(32 + owners.len() * 64);
    text.push_str(CLIENTS_HEADER);
    text.push('\n');
    for o in owners {
        for b in o.iter() {
            text.push_str(&format!("{b:02x}"));
        }
        text.push('\n');
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl V4State {
    /// Runs `f` on the state machine under its lock.
    pub fn with<R>(&self, f: impl FnOnce(&mut Nfs4State) -> R) -> R {
        let mut state = self.state.lock();
        let r = f(&mut state);
        self.any_delegations
            .store(state.has_delegations(), Ordering::SeqCst);
        r
    }

    /// Whether some client holds a delegation (read without the state's lock: NFSv3's fast
    /// path). A delegation granted after this read conflicts with nothing this caller does:
    /// it was granted on what the lock manager showed then.
    pub fn any_delegations(&self) -> bool {
        self.any_delegations.load(Ordering::SeqCst)
    }

    /// The lease time, in seconds (the `lease_time` attribute).
    pub fn lease_s(&self) -> u32 {
        self.lease_s
    }

    /// `so_major_id` and `eir_server_scope`: the same for every start of this host's server.
    pub fn server_owner(&self) -> Bytes {
        self.owner.clone()
    }

    pub fn lock_infos(&self) -> [crate::lockdep::LockInfo; 2] {
        [self.state.info(), self.store.info()]
    }

    /// The timer's part: clients whose lease ran out become courtesy clients; those purged have
    /// their opens and locks freed in the lock manager.
    pub fn housekeeping(&self, now_ms: u64, locking: &Locking) {
        let (expired, in_grace) = self.with(|s| (s.tick(now_ms), s.in_grace(now_ms)));
        if !in_grace && self.grace_shared.swap(false, Ordering::Relaxed) {
            // Every NFSv4 client reclaimed (or the time is up): so may everyone lock again.
            locking.start_grace(now_ms, 0);
            self.persist(now_ms);
            info!("NFSv4 grace period over");
        }
        let purged = expired.iter().any(|e| matches!(e, Expiry::Purged(_)));
        for e in expired {
            match e {
                Expiry::Courtesy(id) => {
                    info!(clientid = id.0, "NFSv4 lease expired: courtesy client")
                }
                Expiry::Purged(r) => {
                    info!(clientid = r.clientid.0, reason = ?r.reason, "NFSv4 client state purged");
                    release(now_ms, locking, r.clientid, &r.states);
                }
            }
        }
        if purged {
            self.persist(now_ms);
        }
    }

    /// Expires a courtesy client now (another client conflicts with it); true if it was one.
    pub fn expire_courtesy(&self, now_ms: u64, id: u64, locking: &Locking) -> bool {
        let released = self.with(|s| {
            if s.is_courtesy(ClientId(id)) {
                s.expire(ClientId(id))
            } else {
                None
            }
        });
        match released {
            Some(r) => {
                info!(
                    clientid = id,
                    "courtesy client expired: another client needs its state"
                );
                release(now_ms, locking, r.clientid, &r.states);
                true
            }
            None => false,
        }
    }

    /// Expires any client by hand (`rnfsd ctl`); false if unknown.
    pub fn expire(&self, now_ms: u64, id: u64, locking: &Locking) -> bool {
        match self.with(|s| s.expire(ClientId(id))) {
            Some(r) => {
                release(now_ms, locking, r.clientid, &r.states);
                self.persist(now_ms);
                true
            }
            None => false,
        }
    }

    pub fn clients(&self, now_ms: u64) -> Vec<V4ClientInfo> {
        self.with(|s| {
            s.clients(now_ms)
                .into_iter()
                .map(|c| V4ClientInfo {
                    clientid: format!("{:016x}", c.clientid.0),
                    owner: String::from_utf8_lossy(&c.owner).into_owned(),
                    lease_age_ms: c.lease_age_ms,
                    courtesy: c.courtesy,
                    sessions: c.sessions,
                    slots_in_use: c.slots_in_use,
                    opens: c.opens,
                    locks: c.locks,
                    delegations: c.delegations,
                    revoked: c.revoked,
                    callbacks: !s.client_sessions(c.clientid).is_empty(),
                })
                .collect()
        })
    }

    /// Live delegations (at most `max`), those being recalled first.
    pub fn delegations(&self, now_ms: u64, max: usize) -> Vec<V4DelegInfo> {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        self.with(|s| s.delegation_list(max))
            .into_iter()
            .map(|d| V4DelegInfo {
                clientid: format!("{:016x}", d.client.0),
                file: hex(&d.file),
                kind: if d.write { "write" } else { "read" },
                recall_due_in_ms: d.recall_due_ms.map(|t| t.saturating_sub(now_ms)),
            })
            .collect()
    }
}

/// Delegations: recalls, and the leases that make local processes wait for them (see
/// `crate::nfs4` for the grants). Calls to clients are only queued here ([`Callbacks::submit`]).
impl V4State {
    /// Recalls every delegation an access to `file` by `by` (an NFSv4 client; `None` for anyone
    /// else) conflicts with — reading conflicts with a write delegation, writing (or removing,
    /// renaming, changing attributes) with any — and says whether the access may go on now
    /// (`false`: a conflicting delegation is still out; answer "try later", never wait).
    pub fn break_for(
        &self,
        callbacks: &Callbacks,
        now_ms: u64,
        file: &[u8],
        by: Option<ClientId>,
        write: bool,
    ) -> bool {
        if !self.any_delegations() {
            return true;
        }
        let breaks = self.with(|s| s.break_delegations(now_ms, file, by, write));
        self.send_recalls(callbacks, breaks.recall);
        !breaks.pending
    }

    /// CB_GETATTR to the holder of a write delegation (the change and size it reports), waited
    /// for at most `timeout_ms` on this worker, by at most [`HOLDER_WAITS_MAX`] workers at a
    /// time (past them, `None` at once: the caller recalls instead). It holds no lock while it
    /// waits, and the reply comes in on the holder's connection, which no worker serves.
    pub fn ask_holder(
        &self,
        callbacks: &Callbacks,
        holder: ClientId,
        fh: Bytes,
        timeout_ms: u64,
    ) -> Option<rnfs_nfs4::attr::ChangeSize> {
        let waiting = HolderWait::enter(&self.holder_waits)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let done: CbDone = std::sync::Arc::new(move |res| {
            let _ = tx.try_send(res);
        });
        let request = rnfs_nfs4::Bitmap::from_bits(&[
            rnfs_nfs4::attr::num::CHANGE,
            rnfs_nfs4::attr::num::SIZE,
        ]);
        let op = CbArgOp::Getattr(rnfs_nfs4::cb::CB_GETATTR4args {
            fh: rnfs_nfs4::Opaque(fh),
            attr_request: request,
        });
        let job = CbJob::Compound {
            client: holder,
            ops: vec![op],
            done,
        };
        if !callbacks.submit(job) {
            return None;
        }
        let res = rx
            .recv_timeout(std::time::Duration::from_millis(timeout_ms))
            .ok()?
            .ok()?;
        drop(waiting);
        let attrs = res
            .resarray
            .0
            .iter()
            .find(|r| r.op == rnfs_nfs4::cb::OP_CB_GETATTR)?
            .attrs
            .as_ref()?;
        rnfs_nfs4::attr::change_and_size(attrs)
    }

    /// Queues CB_RECALL for each delegation (the back channel's dispatcher sends them).
    pub fn send_recalls(&self, callbacks: &Callbacks, recalls: Vec<st::Recall>) {
        for r in recalls {
            info!(
                client = format_args!("{:016x}", r.client.0),
                "recalling a delegation: another client or process needs the file"
            );
            let op = CbArgOp::Recall(CB_RECALL4args {
                stateid: rnfs_nfs4::stateid4 {
                    seqid: r.stateid.seqid,
                    other: r.stateid.other,
                },
                truncate: false,
                fh: rnfs_nfs4::Opaque(r.fh),
            });
            let client = r.client;
            // A failed recall is not retried: the delegation is revoked at its deadline.
            let done: CbDone = std::sync::Arc::new(move |res| {
                if let Ok(res) = res {
                    debug!(client = client.0, status = ?res.status, "CB_RECALL answered");
                }
            });
            callbacks.submit(CbJob::Compound {
                client,
                ops: vec![op],
                done,
            });
        }
    }

    /// Releases the leases of files no longer delegated (returned, revoked, their holder
    /// purged): a local process waiting to open one goes on. Called after DELEGRETURN and by the
    /// timer.
    pub fn release_leases(&self) {
        let leased: Vec<Bytes> = self.leases.lock().keys().cloned().collect();
        if leased.is_empty() {
            return;
        }
        let gone: Vec<Bytes> =
            self.with(|s| leased.into_iter().filter(|k| !s.is_delegated(k)).collect());
        for key in gone {
            let leased = self.leases.lock().remove(&key);
            if let Some(l) = leased {
                l.backend.unlease(&key);
            }
        }
    }

    /// Recalls the delegations of files whose lease a local process is breaking (it waits in
    /// its `open` meanwhile). The recall is due before the kernel ends the wait itself
    /// (`lease-break-time`): a delegation not returned by then is revoked.
    pub fn scan_leases(&self, callbacks: &Callbacks, now_ms: u64) {
        let backends: Vec<std::sync::Arc<dyn rnfs_storage::Backend>> = {
            let leases = self.leases.lock();
            let mut seen: Vec<std::sync::Arc<dyn rnfs_storage::Backend>> = Vec::new();
            for b in leases.values().map(|l| &l.backend) {
                if !seen.iter().any(|s| std::sync::Arc::ptr_eq(s, b)) {
                    seen.push(b.clone());
                }
            }
            seen
        };
        for backend in backends {
            let within_ms = recall_within_ms(backend.lease_break_ms());
            for key in backend.leases_broken() {
                let breaks =
                    self.with(|s| s.break_delegations_within(now_ms, &key, None, true, within_ms));
                self.send_recalls(callbacks, breaks.recall);
            }
        }
    }
}

/// Workers waiting for a CB_GETATTR answer at once, at most: each waits at most a callback's
/// timeout, and the others keep serving.
pub const HOLDER_WAITS_MAX: usize = 4;

/// One worker's place among the [`HOLDER_WAITS_MAX`].
struct HolderWait<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> HolderWait<'a> {
    fn enter(count: &'a std::sync::atomic::AtomicUsize) -> Option<HolderWait<'a>> {
        let before = count.fetch_add(1, Ordering::AcqRel);
        if before >= HOLDER_WAITS_MAX {
            count.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(HolderWait(count))
    }
}

impl Drop for HolderWait<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How long a delegation whose lease broke may take to come back: the backend's bound
/// (`break_ms`; `None`: the kernel's `lease-break-time`, after which a local process waiting
/// for the file goes on anyway), less a margin for the revocation to land first (the timer
/// that revokes runs every [`crate::HOUSEKEEPING_INTERVAL_MS`]).
fn recall_within_ms(break_ms: Option<u64>) -> u64 {
    static KERNEL_MS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let break_ms =
        break_ms.unwrap_or_else(|| *KERNEL_MS.get_or_init(rnfs_sys::lease::lease_break_ms));
    break_ms
        .saturating_sub(1000 + crate::HOUSEKEEPING_INTERVAL_MS)
        .max(1000)
}

/// Frees a client's opens (share reservations) and lock-owners' ranges in the lock manager.
pub fn release(now_ms: u64, locking: &Locking, id: ClientId, states: &[StateRef]) {
    let client = client_key(id.0);
    let granted = locking.with_manager(None, |m, mirror| {
        let mut granted = Vec::new();
        for s in states {
            let owner = match &s.info {
                StateInfo::Open { owner, .. } => open_owner_key(owner),
                StateInfo::Lock { owner, .. } => lock_owner_key(owner),
                // A delegation holds nothing in the lock manager.
                StateInfo::Deleg { .. } => continue,
            };
            if let Some(o) = m.owner_id(&client, &owner) {
                granted.extend(m.free_owner(now_ms, o, mirror));
            }
        }
        granted
    });
    locking.push_granted(granted);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_do_not_collide_with_nlm() {
        let k = client_key(0x1234);
        assert_eq!(client_of_key(&k), Some(0x1234));
        assert!(crate::locking::split_client_key(&k).is_none());
        assert_eq!(client_of_key(b"127.0.0.1 host"), None);
        let _ = V4State::new(0, st::Limits::default());
    }

    #[test]
    fn client_records_round_trip_and_reopen_grace() {
        let dir = tempfile::tempdir().expect("temp dir");
        let v4 = V4State::new(0, st::Limits::default());
        assert_eq!(v4.restore(dir.path(), 0).expect("no file yet"), 0);
        let owners = vec![
            Bytes::from_static(b"linux host a"),
            Bytes::from(vec![0u8, 255, 7]),
        ];
        write_clients(&dir.path().join(CLIENTS_FILE), &owners).expect("written");
        let again = V4State::new(0, st::Limits::default());
        assert_eq!(again.restore(dir.path(), 1000).expect("read"), 2);
        assert!(again.with(|s| s.in_grace(1000)));
        assert!(!again.with(|s| s.in_grace(1000 + 90_000)));
        // Garbage is refused, not half read.
        std::fs::write(dir.path().join(CLIENTS_FILE), "something else\nzz\n").expect("written");
        assert!(V4State::new(0, st::Limits::default())
            .restore(dir.path(), 0)
            .is_err());
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
    }
}
