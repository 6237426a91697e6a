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

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rnfs_rados::grace::GraceDb;
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

/// What ctl shows.
#[derive(Default)]
struct Status {
    db: Option<GraceDb>,
    error: Option<String>,
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
    /// read); it stops within one poll of [`Cluster::stop`].
    pub fn spawn(self: &Arc<Self>, mut store: GraceStore, enforce: Enforce) -> std::io::Result<()> {
        let me = self.clone();
        enforce(me.feed_view());
        std::thread::Builder::new()
            .name("rnfsd-cluster".into())
            .spawn(move || {
                while !me.stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(me.cfg.poll_ms));
                    if let Err(e) = me.poll_once(&mut store, &enforce) {
                        me.poll_errors_total.fetch_add(1, Ordering::Relaxed);
                        warn!(error = %e, "cluster grace database not read");
                        me.status.lock().error = Some(e);
                        // Unread for too long: act as in grace rather than risk a wrong grant.
                        enforce(me.feed_view());
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
        })
    }
}
