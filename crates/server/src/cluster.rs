//! Heads of one CephFS sharing a grace period (`[cluster]`, issue 19): when any head restarts,
//! every head refuses new locks and opens (NLM4_DENIED_GRACE_PERIOD, NFS4ERR_GRACE) while that
//! head's clients reclaim theirs, so no head grants one of them to someone else first (RFC 8881
//! §8.4.2; XNFS ch. 10's grace period, across servers). The rules and the database are in
//! [`rnfs_rados::grace`]; this module runs them.
//!
//! # Threads and locks (liveness)
//! * [`join`] runs at start, before the server listens (on a blocking thread): it records that
//!   this head needs a grace period and waits, at most [`join_wait_ms`], until every live head
//!   has acknowledged it, so none is still granting when this head's clients come to reclaim.
//! * A plain thread (`rnfsd-cluster`) then polls the database every `poll_ms`. Each RADOS call
//!   is bounded by [`OP_TIMEOUT_S`]; the thread holds no lock while it waits, and publishes only
//!   atomics and a leaf-locked status that `rnfsd ctl cluster` reads.
//! * A head that cannot read the database for [`stale_ms`] treats the cluster as in grace (its
//!   clients retry on GRACE) rather than risk granting against another head's reclaims: a wait
//!   that is visible in ctl, logs and metrics, never a wrong grant.
//! * The polling thread is the only one that turns the cluster's grace on or off in the lock
//!   manager and NFSv4 state (the [`Enforce`] hook: their leaf locks, no I/O), and it does so
//!   *before* its write acknowledges a new grace period, since the restarted head serves as
//!   soon as every head has acknowledged. The server's timer only feeds this head's own grace
//!   state in ([`Cluster::feed`], an atomic).
//! * A head whose entry another head's own uninterrupted polls have seen past its end for
//!   [`evict_after_ms`] is dead to that head (crashed and not restarted, frozen, or cut off;
//!   not merely unseen while RADOS itself was out: see [`DeathWatch`]), and its CephFS sessions
//!   still hold caps and record locks that block their clients until the MDS times them out
//!   (minutes, for locks). With `evict_gone_heads`, each other head evicts those sessions
//!   ([`Fence`]) on a thread of its own (`rnfsd-fence`, one at a time, watched by the watchdog)
//!   so that polls go on meanwhile. Just before each eviction it checks, in the database it read within the last
//!   two polls, that the head has not come back. A head evicted while alive finds its Ceph calls
//!   refused and stops, to be restarted (see `crate::watch_fenced`). That includes, rarely, a
//!   head that restarted and mounted within the round trips (under a second) between that check
//!   and the eviction: it restarts once more.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rnfs_rados::grace::{DeathWatch, GraceDb};
use rnfs_rados::{GraceStore, Rados};
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::config::ClusterConfig;
use crate::lockdep::TrackedMutex;

/// Every RADOS call fails after this many seconds instead of waiting forever.
pub const OP_TIMEOUT_S: u32 = 10;
/// The object holding the database, in the configured pool and namespace.
pub const GRACE_OBJECT: &str = "rnfsd-grace";
/// A head's entry stays "alive" for this many polls after its last one.
const ALIVE_POLLS: u64 = 5;
/// A failed eviction of a gone head is tried again after this long.
const FENCE_RETRY_MS: u64 = 30_000;

/// How long a head's entry must be seen past its end, through this head's own uninterrupted
/// polls, before the head counts as dead and its CephFS sessions may be evicted: [`stale_ms`],
/// after which a head that cannot renew its entry stops granting by itself. With the entry's
/// own length, a head is evicted `ALIVE_POLLS × poll_ms + stale_ms` after its last renewal.
pub fn evict_after_ms(cfg: &ClusterConfig) -> u64 {
    stale_ms(cfg)
}

/// Successful polls further apart than this start the watch for dead heads afresh (this head
/// could not see whether the others were renewing meanwhile).
fn watch_gap_max_ms(cfg: &ClusterConfig) -> u64 {
    2 * cfg.poll_ms + 1000
}

/// How long [`join`] waits for the other live heads to acknowledge a new grace period.
pub fn join_wait_ms(cfg: &ClusterConfig) -> u64 {
    cfg.poll_ms * 3 + 2_000
}

/// After this long without reading the database, the head acts as if the cluster were in grace.
pub fn stale_ms(cfg: &ClusterConfig) -> u64 {
    cfg.poll_ms * 3 + u64::from(OP_TIMEOUT_S) * 1000
}

/// Milliseconds since the Unix epoch: heads on different hosts compare these.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Applies the cluster's grace period (true: on) to the lock manager and NFSv4 state.
pub type Enforce = Box<dyn Fn(bool) + Send + Sync>;

/// Evicts the CephFS sessions of dead head `node` (blocking); the second argument says, when
/// asked just before each eviction, whether the head is still the same dead one. Returns how
/// many sessions it evicted and what it did, for logs and ctl.
pub type Fence = Arc<FenceFn>;
pub type FenceFn = dyn Fn(&str, &dyn Fn() -> bool) -> Result<(u64, String), String> + Send + Sync;

/// An eviction of a dead head's sessions, as ctl shows it.
#[derive(Debug, Clone)]
struct Eviction {
    node: String,
    /// The end of the head's entry when it was found dead (one death of it).
    alive_until_ms: u64,
    at_ms: u64,
    outcome: Result<String, String>,
}

/// What ctl shows.
#[derive(Default)]
struct Status {
    db: Option<GraceDb>,
    error: Option<String>,
    /// The latest eviction per dead head (at most one per entry of the database).
    evictions: Vec<Eviction>,
    /// The head whose sessions are being evicted now, and since when (wall clock).
    evicting: Option<(String, u64)>,
}

/// This head's view of the cluster.
pub struct Cluster {
    cfg: ClusterConfig,
    /// What this head's locks and opens obey: some head needs a grace period, or the database
    /// has not been read for [`stale_ms`].
    in_grace: AtomicBool,
    /// This head's own grace period is running (fed by the timer).
    own_need: AtomicBool,
    /// The latest this head's own need may last (wall clock): the restart's longest grace.
    need_deadline_ms: u64,
    last_ok_ms: AtomicU64,
    /// When the poll in progress started (wall clock); 0 between polls.
    poll_started_ms: AtomicU64,
    pub polls_total: AtomicU64,
    pub poll_errors_total: AtomicU64,
    /// Dead heads' sessions this head evicted.
    pub sessions_evicted_total: AtomicU64,
    /// An `rnfsd-fence` thread is running.
    fencing: AtomicBool,
    stop: AtomicBool,
    status: TrackedMutex<Status>,
}

/// Connects, records this head's need for a grace period of `grace_ms` and waits (bounded) for
/// every live head to acknowledge it. Blocking: call it on a blocking thread.
pub fn join(cfg: &ClusterConfig, grace_ms: u64) -> Result<(Arc<Cluster>, GraceStore), String> {
    let rados = Rados::connect(&cfg.ceph_conf, &cfg.ceph_client_id, OP_TIMEOUT_S)
        .map_err(|e| format!("cluster {}: {e}", cfg.ceph_conf.display()))?;
    rados
        .create_pool(&cfg.pool)
        .map_err(|e| format!("pool {}: {e}", cfg.pool))?;
    let io = rados
        .ioctx(&cfg.pool, &cfg.namespace)
        .map_err(|e| format!("pool {}: {e}", cfg.pool))?;
    let mut store = GraceStore::new(io, GRACE_OBJECT);
    let now = wall_ms();
    let cluster = Arc::new(Cluster {
        cfg: cfg.clone(),
        in_grace: AtomicBool::new(true),
        own_need: AtomicBool::new(true),
        // A margin for the poll that notices the end and for clocks a little apart.
        need_deadline_ms: now + grace_ms + 2 * cfg.poll_ms,
        last_ok_ms: AtomicU64::new(now),
        poll_started_ms: AtomicU64::new(0),
        polls_total: AtomicU64::new(0),
        poll_errors_total: AtomicU64::new(0),
        sessions_evicted_total: AtomicU64::new(0),
        fencing: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        status: TrackedMutex::new("cluster.status", Status::default()),
    });
    // Not serving yet: nothing to enforce until `spawn`.
    let db = cluster
        .poll_once(&mut store, &|_| {})
        .map_err(|e| format!("grace database: {e}"))?;
    info!(node = %cfg.node_id, epoch = db.epoch, "joined the cluster's grace period");
    let deadline = now + join_wait_ms(cfg);
    loop {
        let db = store.read().map_err(|e| format!("grace database: {e}"))?;
        let waiting = db.unacked(&cfg.node_id, wall_ms());
        if waiting.is_empty() {
            break;
        }
        if wall_ms() >= deadline {
            warn!(heads = ?waiting, "these heads did not acknowledge the grace period in time; serving anyway");
            break;
        }
        std::thread::sleep(Duration::from_millis((cfg.poll_ms / 4).max(50)));
    }
    Ok((cluster, store))
}

impl Cluster {
    /// Whether new locks and opens must wait (see [`Cluster::in_grace`] field docs).
    pub fn in_grace(&self) -> bool {
        self.in_grace.load(Ordering::Relaxed)
    }

    /// The timer's part: whether this head's own grace period is running.
    pub fn feed(&self, own_grace: bool) {
        self.own_need.store(own_grace, Ordering::Relaxed);
    }

    /// What locks and opens obey: the cluster is in grace, or its database has not been read
    /// for [`stale_ms`].
    pub fn feed_view(&self) -> bool {
        let stale =
            wall_ms().saturating_sub(self.last_ok_ms.load(Ordering::Relaxed)) > stale_ms(&self.cfg);
        self.in_grace() || stale
    }

    /// Starts the polling thread, the only caller of `enforce` (first with what [`join`]
    /// read); it stops within one poll of [`Cluster::stop`]. `fence` evicts dead heads'
    /// sessions (`None` when `evict_gone_heads` is off).
    pub fn spawn(
        self: &Arc<Self>,
        mut store: GraceStore,
        enforce: Enforce,
        fence: Option<Fence>,
    ) -> std::io::Result<()> {
        let me = self.clone();
        enforce(me.feed_view());
        std::thread::Builder::new()
            .name("rnfsd-cluster".into())
            .spawn(move || {
                let mut deaths = DeathWatch::default();
                while !me.stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(me.cfg.poll_ms));
                    match me.poll_once(&mut store, &enforce) {
                        Ok(db) => {
                            let dead = deaths.observe(
                                &db,
                                &me.cfg.node_id,
                                wall_ms(),
                                evict_after_ms(&me.cfg),
                                watch_gap_max_ms(&me.cfg),
                            );
                            if let Some(fence) = &fence {
                                me.fence_dead(dead, fence);
                            }
                        }
                        Err(e) => {
                            deaths.reset();
                            me.poll_errors_total.fetch_add(1, Ordering::Relaxed);
                            warn!(error = %e, "cluster grace database not read");
                            me.status.lock().error = Some(e);
                            // Unread for too long: act as in grace rather than risk a wrong
                            // grant.
                            enforce(me.feed_view());
                        }
                    }
                }
                // Leaving: no longer "alive", so no head waits for this one's acknowledgement.
                let now = wall_ms();
                let _ = store.poll(&me.cfg.node_id, now, now, 0, &mut |_| {});
            })
            .map(drop)
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Starts evicting the sessions of the `dead` heads (`(head, entry end)`), unless an
    /// eviction runs already or each was done (or tried recently) for this death.
    fn fence_dead(self: &Arc<Self>, dead: Vec<(String, u64)>, fence: &Fence) {
        let now = wall_ms();
        let gone: Vec<(String, u64)> = {
            let st = self.status.lock();
            dead.into_iter()
                .filter(|(node, until)| {
                    !st.evictions.iter().any(|e| {
                        &e.node == node
                            && e.alive_until_ms == *until
                            && (e.outcome.is_ok() || now < e.at_ms + FENCE_RETRY_MS)
                    })
                })
                .collect()
        };
        if gone.is_empty() || self.fencing.swap(true, Ordering::Relaxed) {
            return;
        }
        let (me, fence) = (self.clone(), fence.clone());
        let spawned = std::thread::Builder::new()
            .name("rnfsd-fence".into())
            .spawn(move || {
                for (node, until) in gone {
                    me.fence_one(&node, until, fence.as_ref());
                }
                me.fencing.store(false, Ordering::Relaxed);
            });
        if let Err(e) = spawned {
            warn!(error = %e, "cannot start the thread that evicts dead heads' sessions");
            self.fencing.store(false, Ordering::Relaxed);
        }
    }

    /// Evicts dead head `node`'s sessions (on the `rnfsd-fence` thread) and records it.
    fn fence_one(&self, node: &str, alive_until_ms: u64, fence: &FenceFn) {
        // The head must still be the same dead one in a database read within the last polls:
        // one that restarted meanwhile has a new entry end (and its own new session).
        let still_gone = || {
            let fresh = wall_ms().saturating_sub(self.last_ok_ms.load(Ordering::Relaxed))
                <= watch_gap_max_ms(&self.cfg);
            fresh
                && self
                    .status
                    .lock()
                    .db
                    .as_ref()
                    .is_some_and(|db| db.still_gone(node, alive_until_ms))
        };
        self.status.lock().evicting = Some((node.to_owned(), wall_ms()));
        let outcome = fence(node, &still_gone).map(|(evicted, what)| {
            self.sessions_evicted_total
                .fetch_add(evicted, Ordering::Relaxed);
            what
        });
        match &outcome {
            Ok(what) => warn!(head = node, dead_since_ms = alive_until_ms, "{what}"),
            Err(e) => {
                warn!(head = node, error = %e, "could not evict a dead head's CephFS sessions")
            }
        }
        let mut st = self.status.lock();
        st.evicting = None;
        st.evictions.retain(|e| e.node != node);
        // One record per head, and no more heads than the database holds.
        if st.evictions.len() >= rnfs_rados::grace::NODES_MAX {
            st.evictions.remove(0);
        }
        st.evictions.push(Eviction {
            node: node.to_owned(),
            alive_until_ms,
            at_ms: wall_ms(),
            outcome,
        });
    }

    /// One read-modify-write of the database; enforces what it says before writing.
    fn poll_once(&self, store: &mut GraceStore, enforce: &dyn Fn(bool)) -> Result<GraceDb, String> {
        let now = wall_ms();
        self.poll_started_ms.store(now, Ordering::Relaxed);
        let need_until = if self.own_need.load(Ordering::Relaxed) {
            self.need_deadline_ms
        } else {
            0
        };
        let alive_until = now + ALIVE_POLLS * self.cfg.poll_ms;
        let mut before_write = |db: &GraceDb| {
            let on = db.in_grace(now);
            if self.in_grace.swap(on, Ordering::Relaxed) != on {
                info!(
                    epoch = db.epoch,
                    in_grace = on,
                    "cluster grace period changed"
                );
            }
            enforce(on);
        };
        let polled = store.poll(
            &self.cfg.node_id,
            now,
            alive_until,
            need_until,
            &mut before_write,
        );
        self.poll_started_ms.store(0, Ordering::Relaxed);
        self.polls_total.fetch_add(1, Ordering::Relaxed);
        let db = polled.map_err(|e| e.to_string())?;
        self.last_ok_ms.store(now, Ordering::Relaxed);
        let mut st = self.status.lock();
        st.db = Some(db.clone());
        st.error = None;
        Ok(db)
    }

    /// The eviction in progress, if one is: the dead head, when it started (wall clock) and
    /// for how long it has been waiting on the cluster.
    pub fn eviction_waiting(&self) -> Option<(String, u64, u64)> {
        let st = self.status.lock();
        let (node, started) = st.evicting.clone()?;
        Some((node, started, wall_ms().saturating_sub(started)))
    }

    /// How long the poll in progress has been waiting on the cluster, if one is.
    pub fn poll_waiting_ms(&self) -> Option<u64> {
        match self.poll_started_ms.load(Ordering::Relaxed) {
            0 => None,
            t => Some(wall_ms().saturating_sub(t)),
        }
    }

    pub fn lock_info(&self) -> crate::lockdep::LockInfo {
        self.status.info()
    }

    /// `rnfsd ctl cluster`.
    pub fn report(&self) -> Value {
        let now = wall_ms();
        let st = self.status.lock();
        let heads: Vec<Value> = st
            .db
            .iter()
            .flat_map(|db| db.nodes.iter())
            .map(|n| {
                json!({
                    "node": n.id,
                    "alive": n.alive_until_ms > now,
                    "needs_grace": n.need_until_ms > now,
                    "need_left_ms": n.need_until_ms.saturating_sub(now),
                    "acked_epoch": n.acked_epoch,
                })
            })
            .collect();
        json!({
            "node": self.cfg.node_id,
            "pool": self.cfg.pool,
            "namespace": self.cfg.namespace,
            "object": GRACE_OBJECT,
            "in_grace": self.feed_view(),
            "own_grace": self.own_need.load(Ordering::Relaxed),
            "epoch": st.db.as_ref().map(|d| d.epoch),
            "last_read_ms_ago": now.saturating_sub(self.last_ok_ms.load(Ordering::Relaxed)),
            "poll_waiting_ms": self.poll_waiting_ms(),
            "polls": self.polls_total.load(Ordering::Relaxed),
            "poll_errors": self.poll_errors_total.load(Ordering::Relaxed),
            "error": st.error,
            "heads": heads,
            "evict_gone_heads_after_ms": self.cfg.evict_gone_heads.then(|| evict_after_ms(&self.cfg)),
            "sessions_evicted": self.sessions_evicted_total.load(Ordering::Relaxed),
            "evicting": st.evicting.as_ref().map(|(node, started)| json!({
                "node": node,
                "waiting_ms": now.saturating_sub(*started),
            })),
            "evictions": st.evictions.iter().map(|e| json!({
                "node": e.node,
                "dead_since_ms_ago": now.saturating_sub(e.alive_until_ms),
                "at_ms_ago": now.saturating_sub(e.at_ms),
                "outcome": match &e.outcome { Ok(s) => s, Err(s) => s },
                "ok": e.outcome.is_ok(),
            })).collect::<Vec<_>>(),
        })
    }
}
