//! The rnfsd server: exports, the RPC programs (portmapper, MOUNT, NFSv3), and the tokio glue.
//!
//! # Layers (bottom up; a module uses only those below it, checked by `tests/layers.rs`)
//! * `clock`, `lockdep`, [`config`], `peek` (NFS arguments read before decoding): no server state.
//! * `call`: one RPC call and the reply being built ([`Call`], [`Reply`], [`Transport`]).
//! * `exports` and `backends`: what is served to whom, and the factory that opens each export's
//!   storage backend (`backend = "local"`).
//! * `service`: the state every procedure shares ([`Service`]) and `Service::authorize`, where a
//!   client's file handle is verified once, before any backend sees it.
//! * `nfs/` (NFSv3, RFC 1813), `service/mount.rs` and `service/portmap.rs`: the procedures of each
//!   program, each with its table, one row per procedure.
//! * `program`: the tables' shape, the list of programs, and routing (`Service::handle_record`:
//!   program, version, row, duplicate request cache).
//! * `stats`, `registry`, `reply_memory`, `outgoing`: per-procedure statistics, what each
//!   connection is doing, the reply memory budget, sending TCP replies.
//! * `transport/`: `conn.rs` is a connection as a state machine (bytes and `now` in; records,
//!   deadlines and close reasons out; no sockets), `tcp.rs` and `udp.rs` drive it, `mod.rs` hands
//!   records to the worker pool (`pool`).
//! * `admin`, `metrics`, `logging`, `watchdog`, `rpcbind`: seeing inside a running server and
//!   registering with a system portmapper; [`serve`] ties it together.
//!
//! # Where new things go
//! * **A procedure:** its wire types in the protocol crate, a handler in its program's module, a
//!   row in that program's table (`program` docs).
//! * **A program:** a wire-type crate, a module with its handlers and its table, the table in
//!   `program::PROGRAMS` (statistics, metrics and the DRC follow), and its (program, version) in
//!   `service::OWN_PROGRAMS` (our portmapper answers it, `rpcbind` registers it).
//! * **A transport:** a driver beside `transport/tcp.rs` that turns its input into records
//!   (reusing `transport::conn` if it is a byte stream) and hands them to the pool through
//!   `transport::hand_off` (a lone call: `transport::InPlace`), charging reply memory first.
//! * **A storage backend:** an implementation of `rnfs_storage::Backend` (it is given only
//!   verified handles) and a kind in `backends` (`KINDS`, `open`).
//!
//! # Liveness rules
//! These hold everywhere in this crate and are what keeps one stuck client or file from stopping
//! the server:
//! 1. No lock is held across `.await` (`clippy::await_holding_lock` is denied workspace-wide); the
//!    service's locks are leaf locks held for a few field accesses (see `service`).
//! 2. File-system calls run only on the server's worker pool (`pool`: threads that run nothing
//!    else), gated by a semaphore, never on a reactor thread. The one exception keeps the rule's
//!    point: a lone NFS call on an idle server whose exports all answer promptly runs on the
//!    thread that read it, holding a worker permit, after that thread gave its share of the
//!    runtime to another (`block_in_place`; see `transport::InPlace`); it may wait there briefly
//!    for its connection's next call (`transport::tcp`, "Lingering"), one connection at a time.
//! 3. One writer at a time per connection, by its send turn (an atomic flag, see `outgoing`): a
//!    worker sends its own reply only without blocking, and only the connection's writer task
//!    waits for the socket; closing a connection never waits for its sends.
//! 4. Every queue between tasks is bounded.
#![forbid(unsafe_code)]

// The modules are private: what embedders (the binary, tests, fuzz targets) may use is the list
// of re-exports below, so everything else can change without breaking them.
mod admin;
mod backchannel;
mod backend_gate;
mod backends;
mod call;
mod callbacks;
mod clock;
mod cluster;
pub mod config;
mod copies;
mod drc;
mod embed;
mod exports;
mod idmap;
mod lockdep;
mod locking;
mod logging;
mod metrics;
mod nfs;
mod nfs4;
mod nlm;
mod nlm_callback;
mod nsm_store;
mod outgoing;
mod peek;
mod pool;
mod program;
mod read_loan;
mod registry;
mod reply_memory;
mod rpcbind;
mod service;
mod stage;
mod stats;
mod transport;
mod v4state;
mod watchdog;

pub use admin::ExportsReloader;
pub use admin::SOCKET_NAME as CONTROL_SOCKET_NAME;
pub use call::{Call, Origin, Outcome, Reply, Tail, Transport};
pub use clock::now_ms;
pub use embed::Embedded;
pub use exports::{Export, ExportTable};
pub use lockdep::{thread_number, TrackedMutex};
pub use logging::init as init_logging;
pub use program::cached as drc_covers;
pub use registry::{Connection, Registry};
pub use reply_memory::ReplyBudget;
pub use service::{Authorized, Denied, Service, SocketOwner};
pub use stats::Stats;
pub use watchdog::WatchState;

use std::future::Future;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{info, warn};

use crate::config::Config;
use crate::service::OwnPorts;
use crate::transport::Shared;

/// The address served when none is configured: loopback only, the standard NFS port.
pub const LISTEN_DEFAULT: &str = "127.0.0.1:2049";

/// Tokio blocking threads the server's own work may hold at once: one per admin client, and a
/// few for export reloads, rpcbind registration and the flush at shutdown.
pub const BLOCKING_TASKS_MAX: usize = admin::CLIENTS_MAX + 4;

/// What a runtime serving rnfsd should allow as `max_blocking_threads`: [`BLOCKING_TASKS_MAX`]
/// and one more, for the runtime work a thread running a call in place hands over
/// (`tokio::task::block_in_place`, see `transport::InPlace`: one thread at a time), which must
/// not queue behind them.
pub const RUNTIME_BLOCKING_THREADS_MAX: usize = BLOCKING_TASKS_MAX + 1;

/// How often idle open files are closed.
pub(crate) const HOUSEKEEPING_INTERVAL_MS: u64 = 2000;

/// The loan reaper runs at least this often even when nothing wakes it.
const LOAN_REAPER_IDLE_MS: u64 = 1000;

/// How rnfsd deals with the portmapper (port 111).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortmapMode {
    /// Register with a running rpcbind; if none runs and we are root, serve port 111 ourselves.
    Auto,
    /// Serve port 111 ourselves (fail if it is taken).
    Serve,
    /// Neither register nor serve port 111 (clients must be told our port).
    Off,
}

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub config: Config,
    pub state_dir: PathBuf,
    pub ready_file: Option<PathBuf>,
    pub portmap: PortmapMode,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("state directory {path}: {source}")]
    State {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot write ready file {path}: {source}")]
    ReadyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no exports configured")]
    NoExports,
    #[error("cannot join the cluster's grace period: {0}")]
    Cluster(String),
    #[error("cannot start the {0} thread: {1}")]
    Thread(&'static str, std::io::Error),
    #[error(
        "{0}: its CephFS client was evicted by the cluster (another head counted this one \
         dead, or an admin evicted it); stopped so that a restart recovers its clients' state"
    )]
    Fenced(String),
}

/// Runs the server until `shutdown` completes.
pub async fn serve(
    opts: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    serve_reporting(opts, None, shutdown).await
}

/// [`serve`], handing the server's handles to `ready` once it listens (e.g. for a progress line).
pub async fn serve_reporting(
    opts: ServeOptions,
    ready: Option<tokio::sync::oneshot::Sender<Running>>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let key =
        rnfs_storage::handle::HandleKey::load_or_create(&opts.state_dir).map_err(|source| {
            ServeError::State {
                path: opts.state_dir.clone(),
                source,
            }
        })?;
    let table = ExportTable::build_at_start(&opts.config, &key)?;
    serve_with(opts, table, ready, shutdown).await
}

/// What a running server exposes to its embedder (tests, the admin interface).
#[derive(Clone)]
pub struct Running {
    pub service: Arc<Service>,
    pub registry: Arc<registry::Registry>,
    /// Reply memory: what replies not yet sent hold, and the waits and shedding it caused.
    pub budget: Arc<reply_memory::ReplyBudget>,
    /// Per-procedure calls, errors, latency and bytes.
    pub stats: Arc<stats::Stats>,
    pub watch: Arc<watchdog::WatchState>,
    /// The bound TCP (and UDP) addresses, one per listener.
    pub listening: Vec<SocketAddr>,
    /// Re-reads the configuration file and swaps the export table (`rnfsd ctl exports reload`,
    /// SIGHUP).
    pub exports_reload: Arc<admin::ExportsReloader>,
}

/// Runs the server on an export table built by the caller (any backend) until `shutdown`
/// completes; `ready` receives the server's handles once it listens.
pub async fn serve_with(
    opts: ServeOptions,
    table: ExportTable,
    ready: Option<tokio::sync::oneshot::Sender<Running>>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    if table.is_empty() {
        return Err(ServeError::NoExports);
    }
    // Embedders (tests, `rnfsd serve DIR`) may build limits without loading a file.
    opts.config.limits.check()?;
    let verifier = random_verifier();
    let mut service = Service::new(table, opts.config.limits.clone(), verifier);
    if let Some(domain) = &opts.config.nfs4_domain {
        service.set_idmap(idmap::IdMap::new(
            Some(domain.clone()),
            "/etc/passwd".into(),
            "/etc/group".into(),
        ));
    }
    service.v4().delegations.store(
        opts.config.nfs4_delegations,
        std::sync::atomic::Ordering::Relaxed,
    );
    let service = Arc::new(service);
    let limits = opts.config.limits.clone();
    let shared = Arc::new(Shared::new(service.clone(), &limits));
    let watch_state = Arc::new(watchdog::WatchState::default());
    let _watchdog = watchdog::Watchdog::start(
        limits.stall_bound_ms,
        watch_state.clone(),
        service.clone(),
        shared.registry.clone(),
    )
    .map_err(|e| ServeError::Thread("watchdog", e))?;
    let _reaper = rnfs_loan::Reaper::start(service.loans().clone(), LOAN_REAPER_IDLE_MS)
        .map_err(|e| ServeError::Thread("loan reaper", e))?;

    let mut listen = opts.config.listen.clone();
    if listen.is_empty() {
        listen.push(LISTEN_DEFAULT.parse().map_err(|_| ServeError::NoExports)?);
    }
    // Before listening: no head may still be granting when this one's clients reclaim.
    join_cluster(&service, &opts).await?;
    let mut tasks = tokio::task::JoinSet::new();
    // Apart from `tasks`, which a graceful stop aborts at once: the heartbeat goes on while
    // requests finish (a backend call may keep one for the whole grace period), else the
    // watchdog would report the runtime stalled when it is not. Stopped when this returns.
    let _heartbeat = AbortOnDrop(tokio::spawn(heartbeat(watch_state.clone())));
    // Before listening: a client served by the state this replaces would lose its client id.
    start_v4(&service, &opts);
    start_callbacks(&service, &shared, &mut tasks);
    let (own, ready_lines) = listen_all(&listen, &shared, &mut tasks).await?;
    service.set_own_ports(own);

    let running = Running {
        service: service.clone(),
        registry: shared.registry.clone(),
        budget: shared.budget.clone(),
        stats: shared.stats.clone(),
        watch: watch_state.clone(),
        listening: ready_lines
            .iter()
            .filter_map(|l| l.strip_prefix("tcp ").and_then(|a| a.parse().ok()))
            .collect(),
        exports_reload: Arc::new(admin::ExportsReloader::new(service.clone(), &opts)),
    };
    // Admin interface: control socket and metrics listener (see `admin`).
    admin::start(&running, &opts, &mut tasks).await?;

    let registered = start_portmap(opts.portmap, &listen, own, &shared, &mut tasks).await;
    if registered == Some(true) {
        service.locking.use_system_statd();
    }
    announce(&service, own, &listen);

    if let Some(path) = &opts.ready_file {
        write_ready_file(path, &ready_lines)?;
    }

    tasks.spawn(housekeeping(service.clone(), shared.stats.clone()));
    start_locking(&service, &opts, &mut tasks);
    if let Some(cluster) = service.cluster().cloned() {
        // Only now is this head's own grace known (NSM's and NFSv4's records are read).
        tasks.spawn(feed_cluster(service.clone(), cluster));
    }
    if let Some(tx) = ready {
        let _ = tx.send(running);
    }

    // A fenced backend stops the server as a signal would, and the exit then says why.
    let fenced = tokio::select! {
        _ = shutdown => None,
        export = watch_fenced(&service) => Some(export),
    };
    if let Some(cluster) = service.cluster() {
        cluster.stop();
    }
    // Asynchronous copies stop within one slice; what they copied stays.
    service.copies().cancel_all();
    graceful_stop(&shared, &mut tasks, limits.shutdown_grace_ms).await;
    if let Some(statd) = registered {
        let nsm_ours = !statd;
        let _ = tokio::task::spawn_blocking(move || rpcbind::unregister_all(own, nsm_ours)).await;
    }
    info!("stopped");
    match fenced {
        Some(export) => Err(ServeError::Fenced(export)),
        None => Ok(()),
    }
}

/// How often [`watch_fenced`] looks at the exports' gates.
const FENCED_CHECK_MS: u64 = 200;

/// Returns (describing the export) once a backend call found its client evicted by the cluster
/// (see `backend_gate`). Such a head's CephFS caps and locks are gone and another head may
/// already serve them: it must not go on as if it held them. A restart does what recovery
/// needs (a new write verifier, so clients re-send what was not committed; a grace period and
/// SM_NOTIFY, so they reclaim their locks; a new CephFS session).
async fn watch_fenced(service: &Arc<Service>) -> String {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(FENCED_CHECK_MS));
    loop {
        tick.tick().await;
        let exports = service.exports();
        let fenced = exports
            .iter()
            .find(|e| e.backend.fenced())
            .map(|e| format!("export {} ({})", e.id, e.backend.describe()));
        if let Some(export) = fenced {
            return export;
        }
    }
}

/// `[cluster]`: joins the grace period shared with the other heads (see `cluster`), on a
/// blocking thread, and starts the thread that keeps polling it.
async fn join_cluster(service: &Arc<Service>, opts: &ServeOptions) -> Result<(), ServeError> {
    let Some(cfg) = opts.config.cluster.clone() else {
        return Ok(());
    };
    let limits = &opts.config.limits;
    let grace_ms = limits.lock_grace_ms.max(limits.nfs4_limits().grace_ms);
    let (cluster, store) = tokio::task::spawn_blocking(move || cluster::join(&cfg, grace_ms))
        .await
        .map_err(|e| ServeError::Cluster(e.to_string()))?
        .map_err(ServeError::Cluster)?;
    // Weak: the service holds the cluster, which holds this.
    let svc = Arc::downgrade(service);
    let enforce: cluster::Enforce = Box::new(move |on| {
        if let Some(svc) = svc.upgrade() {
            svc.locking.set_cluster_grace(on);
            svc.v4().with(|s| s.set_cluster_grace(on));
        }
    });
    let fence = opts
        .config
        .cluster
        .as_ref()
        .filter(|c| c.evict_gone_heads)
        .map(|_| fence_dead_heads(Arc::downgrade(service)));
    cluster
        .spawn(store, enforce, fence)
        .map_err(|e| ServeError::Thread("cluster", e))?;
    service.set_cluster(cluster);
    Ok(())
}

/// Evicts a dead head's CephFS sessions, one per CephFS export of this head's current table
/// (heads serving other exports must evict theirs), named as that head named them
/// ([`exports::ceph_session_uuid`]).
fn fence_dead_heads(service: std::sync::Weak<Service>) -> cluster::Fence {
    Arc::new(move |node: &str, still_gone: &dyn Fn() -> bool| {
        let service = service.upgrade().ok_or("the server is stopping")?;
        let table = service.exports();
        let (mut evicted, mut absent, mut errors) = (Vec::new(), 0, Vec::new());
        for (id, cfg) in table.ceph_exports() {
            let uuid = exports::ceph_session_uuid(node, *id);
            match rnfs_storage::ceph::evict_session(cfg, &uuid, still_gone) {
                Ok(rnfs_storage::ceph::Eviction::Evicted) => evicted.push(uuid),
                Ok(rnfs_storage::ceph::Eviction::NoSession) => absent += 1,
                Ok(rnfs_storage::ceph::Eviction::Skipped) => {
                    return Ok((
                        evicted.len() as u64,
                        "the head came back: not evicted".into(),
                    ))
                }
                Err(e) => errors.push(format!("{uuid}: {e}")),
            }
        }
        if !errors.is_empty() {
            return Err(errors.join("; "));
        }
        Ok((
            evicted.len() as u64,
            format!(
                "dead head: {} CephFS session(s) evicted {evicted:?}; {absent} export(s) had none",
                evicted.len()
            ),
        ))
    })
}

/// Feeds this head's own grace state to the cluster (the leaf state locks and an atomic: no
/// I/O here); the cluster's thread applies the cluster's grace (see `cluster`).
async fn feed_cluster(service: Arc<Service>, cluster: Arc<cluster::Cluster>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(CLUSTER_FEED_MS));
    loop {
        tick.tick().await;
        let now = clock::now_ms();
        cluster.feed(service.locking.in_grace(now) || service.v4().with(|s| s.in_grace(now)));
    }
}

/// How often [`feed_cluster`] runs.
const CLUSTER_FEED_MS: u64 = 200;

/// File locking at start: NSM's records and state number (a grace period and SM_NOTIFY to every
/// client that held locks before), and the task that makes calls to clients (GRANTED, `_RES`,
/// SM_NOTIFY).
fn start_locking(
    service: &Arc<Service>,
    opts: &ServeOptions,
    tasks: &mut tokio::task::JoinSet<()>,
) {
    let limits = &opts.config.limits;
    let name = host_name();
    match service.locking.start_nsm(
        &opts.state_dir,
        name.as_bytes(),
        clock::now_ms(),
        limits.lock_grace_ms,
    ) {
        Ok(0) => {}
        Ok(n) => {
            // NLM's clients need the whole grace period, whenever NFSv4's ends.
            service.v4().unshare_grace();
            info!(
                clients = n,
                grace_ms = limits.lock_grace_ms,
                "lock grace period: only reclaims granted; notifying the clients that held locks"
            )
        }
        Err(e) => {
            warn!(dir = %opts.state_dir.display(), error = %e, "no NSM records: clients will not be told to reclaim their locks after a restart")
        }
    }
    let callback_limits = nlm_callback::CallbackLimits {
        attempts_max: limits.lock_callback_attempts_max,
        attempt_timeout_ms: limits.lock_callback_timeout_ms,
        ..nlm_callback::CallbackLimits::default()
    };
    tasks.spawn(call_clients(service.clone(), callback_limits));
}

/// The NFSv4 back channel's dispatcher, and the SIGIO watch of delegation leases: both before
/// the server listens (a lease broken with no SIGIO handler would end the process).
fn start_callbacks(
    service: &Arc<Service>,
    shared: &Arc<Shared>,
    tasks: &mut tokio::task::JoinSet<()>,
) {
    backchannel::start(service, shared.backchannels.clone());
    // CB_OFFLOAD for finished copies, and cancelling the copies of purged clients.
    tasks.spawn(nfs4::supervise_copies(service.clone()));
    // Delegations need to hear of local processes breaking their file leases (SIGIO, whose
    // default action would end the process): without the handler, no delegation is granted.
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::io()) {
        Ok(sigio) => {
            tasks.spawn(watch_leases(service.clone(), sigio));
        }
        Err(e) => {
            warn!(error = %e, "cannot handle SIGIO: NFSv4 delegations are off");
            service
                .v4()
                .delegations
                .store(false, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Recalls the delegations of files local processes are opening (their leases break: SIGIO).
async fn watch_leases(service: Arc<Service>, mut sigio: tokio::signal::unix::Signal) {
    while sigio.recv().await.is_some() {
        let svc = service.clone();
        let _ = tokio::task::spawn_blocking(move || {
            svc.v4().scan_leases(svc.callbacks(), clock::now_ms())
        })
        .await;
    }
}

/// NFSv4 at start: the previous instance's clients (state directory) may reclaim their opens and
/// locks during a grace period, which the lock manager shares, so NLM clients wait for them too.
fn start_v4(service: &Arc<Service>, opts: &ServeOptions) {
    let grace_ms = opts.config.limits.nfs4_limits().grace_ms;
    let now = clock::now_ms();
    match service.v4().restore(&opts.state_dir, now) {
        Ok(0) => {}
        Ok(n) => {
            if !service.locking.in_grace(now) {
                service.locking.start_grace(now, grace_ms);
                service.v4().share_grace();
            }
            info!(
                clients = n,
                grace_ms,
                "NFSv4 grace period: only reclaims granted until every client has reclaimed"
            );
        }
        Err(e) => {
            warn!(dir = %opts.state_dir.display(), error = %e, "no NFSv4 client records: clients cannot reclaim after a restart")
        }
    }
}

/// Hands the lock service's calls to clients to the bounded sender as they are queued.
async fn call_clients(service: Arc<Service>, limits: nlm_callback::CallbackLimits) {
    let done = service.clone();
    let queue = nlm_callback::spawn(limits, move |cb, outcome| {
        if let Err(e) = &outcome {
            warn!(peer = %cb.peer_ip, prog = cb.prog, proc_num = cb.proc_num, error = %e, "call to a lock client failed");
        }
        done.locking.callback_done(cb, outcome.is_ok());
    });
    loop {
        service.locking.outbox_ready.notified().await;
        for cb in service.locking.take_outbox() {
            if queue.submit(cb).is_err() {
                service
                    .locking
                    .counters
                    .callbacks_dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

/// This host's name, as NSM peers know it (SM_NOTIFY's `mon_name`).
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Aborts its task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Keeps the watchdog's view of the async runtime fresh: if this stops, the runtime is stuck.
async fn heartbeat(st: Arc<watchdog::WatchState>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(
        watchdog::HEARTBEAT_INTERVAL_MS,
    ));
    loop {
        tick.tick().await;
        st.heartbeat_ms
            .store(clock::now_ms(), std::sync::atomic::Ordering::Relaxed);
    }
}

/// Binds TCP and UDP on every listen address and serves them; returns the ports of the first
/// (what the portmapper is told) and the ready file's lines.
async fn listen_all(
    listen: &[SocketAddr],
    shared: &Arc<Shared>,
    tasks: &mut tokio::task::JoinSet<()>,
) -> Result<(OwnPorts, Vec<String>), ServeError> {
    let mut ready_lines = Vec::new();
    let mut own = OwnPorts::default();
    for addr in listen {
        let failed = |source| ServeError::Listen {
            addr: *addr,
            source,
        };
        let (tcp, udp) = transport::bind_pair(*addr).await.map_err(failed)?;
        let bound = tcp.local_addr().map_err(failed)?;
        if own.tcp == 0 {
            own = OwnPorts {
                tcp: bound.port(),
                udp: bound.port(),
            };
        }
        ready_lines.push(format!("tcp {bound}"));
        ready_lines.push(format!("udp {bound}"));
        tasks.spawn(transport::serve_tcp(tcp, shared.clone()));
        tasks.spawn(transport::serve_udp(udp, shared.clone()));
    }
    Ok((own, ready_lines))
}

/// Housekeeping timer: closes idle open files, and once the server has gone quiet (no call for a
/// whole interval after some activity) gives freed memory back to the kernel. It runs on tokio's
/// blocking pool (as plain root, not on a request worker) and touches no connection state.
async fn housekeeping(service: Arc<Service>, stats: Arc<stats::Stats>) {
    let mut tick =
        tokio::time::interval(std::time::Duration::from_millis(HOUSEKEEPING_INTERVAL_MS));
    let mut calls_seen = 0;
    let mut trimmed_at = 0;
    loop {
        tick.tick().await;
        let calls = stats.calls_total();
        let quiet_after_work = calls == calls_seen && calls != trimmed_at;
        calls_seen = calls;
        if service.locking.remote_retry_since_ms().is_none() {
            // Detached: it waits on the MDS, never on this loop; one at a time (see there).
            let service = service.clone();
            drop(tokio::task::spawn_blocking(move || {
                service.locking.timer_retry_remote(clock::now_ms())
            }));
        }
        let service = service.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for e in service.exports().iter() {
                e.backend.close_idle_files();
            }
            service.locking.housekeeping(clock::now_ms());
            service.v4().housekeeping(clock::now_ms(), &service.locking);
            // Signals can merge: look at the leases anyway, and free those of files no longer
            // delegated (returned, revoked, purged).
            let v4 = service.v4();
            v4.scan_leases(service.callbacks(), clock::now_ms());
            v4.release_leases();
            if quiet_after_work {
                rnfs_sys::release_free_memory();
            }
        })
        .await;
        if quiet_after_work {
            trimmed_at = calls;
        }
    }
}

/// Stops accepting, lets requests in flight finish (up to `grace_ms`), then makes buffered writes
/// durable (the COMMIT-equivalent flush) so nothing acknowledged is lost by the exit.
async fn graceful_stop(shared: &Arc<Shared>, tasks: &mut tokio::task::JoinSet<()>, grace_ms: u64) {
    info!("shutting down: no new connections or requests; finishing those in flight");
    tasks.abort_all();
    shared.stopping.send_replace(true);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(grace_ms);
    loop {
        let in_flight = shared.registry.requests().len();
        if in_flight == 0 {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            warn!(
                in_flight,
                grace_ms, "requests still in flight at the end of the grace period"
            );
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let service = shared.service.clone();
    let flushed = tokio::task::spawn_blocking(move || {
        for e in service.exports().iter() {
            e.backend.close_all_files();
        }
    })
    .await;
    if flushed.is_err() {
        warn!("flushing open files failed");
    }
    let c = &shared.service.counters;
    let spliced = c
        .read_bytes_spliced
        .load(std::sync::atomic::Ordering::Relaxed);
    let buffered = c
        .read_bytes_buffered
        .load(std::sync::atomic::Ordering::Relaxed);
    let served = spliced + buffered;
    info!(
        read_bytes_spliced = spliced,
        read_bytes_buffered = buffered,
        "READ data served: {} MiB, {} MiB of it copied once through user space ({:.3} bytes copied per byte served)",
        served >> 20,
        buffered >> 20,
        if served == 0 { 0.0 } else { buffered as f64 / served as f64 }
    );
}

/// Registers with a system portmapper, or serves port 111. `Some(statd)` when a system
/// portmapper answered (then shutdown unregisters); `statd`: another process serves NSM there,
/// so we did not register it and use that one.
async fn start_portmap(
    mode: PortmapMode,
    listen: &[SocketAddr],
    own: OwnPorts,
    shared: &Arc<Shared>,
    tasks: &mut tokio::task::JoinSet<()>,
) -> Option<bool> {
    if mode == PortmapMode::Off {
        return None;
    }
    if mode == PortmapMode::Auto {
        let registered = tokio::task::spawn_blocking(move || rpcbind::register_all(own))
            .await
            .unwrap_or(rpcbind::Registered::NoPortmapper);
        // Say only what happened: a portmapper that answered may still have refused every SET.
        match registered {
            rpcbind::Registered::Answered {
                accepted,
                tried,
                statd,
            } if accepted == tried => {
                info!(statd, "registered NFS, MOUNT and NLM with the system portmapper on port 111 (and NSM, unless another status monitor serves it: statd)");
                return Some(statd);
            }
            rpcbind::Registered::Answered {
                accepted: 0,
                tried,
                statd,
            } => {
                warn!(tried, "the system portmapper on port 111 refused every registration: clients that ask it will not find rnfsd (give them its port, or run rnfsd as root)");
                return Some(statd);
            }
            rpcbind::Registered::Answered {
                accepted,
                tried,
                statd,
            } => {
                warn!(
                    accepted,
                    tried, "the system portmapper on port 111 accepted only some registrations"
                );
                return Some(statd);
            }
            rpcbind::Registered::NoPortmapper => {}
        }
        // Port 111 is privileged: only root can serve it.
        if !running_as_root() {
            return None;
        }
    }
    for addr in listen {
        let pm = SocketAddr::new(addr.ip(), rnfs_portmap::PMAP_PORT);
        if addr.port() == rnfs_portmap::PMAP_PORT {
            continue;
        }
        match transport::bind_pair(pm).await {
            Ok((tcp, udp)) => {
                info!(addr = %pm, "serving the portmapper");
                tasks.spawn(transport::serve_tcp(tcp, shared.clone()));
                tasks.spawn(transport::serve_udp(udp, shared.clone()));
            }
            Err(e) if mode == PortmapMode::Auto => {
                info!(addr = %pm, error = %e, "not serving the portmapper");
            }
            Err(e) => warn!(addr = %pm, error = %e, "cannot serve the portmapper"),
        }
    }
    None
}

/// Whether this process runs with effective uid 0.
pub fn running_as_root() -> bool {
    // /proc/self/status names the effective uid; avoids an unsafe libc call here.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// Logs what is exported to whom and how to reach it.
fn announce(service: &Service, own: OwnPorts, listen: &[SocketAddr]) {
    let host = listen.first().map_or_else(
        || "127.0.0.1".to_owned(),
        |a| match a.ip() {
            ip if ip.is_unspecified() => "SERVER".to_owned(),
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            ip => ip.to_string(),
        },
    );
    for e in service.exports().iter() {
        let rules: Vec<String> = e
            .rules
            .iter()
            .map(|r| {
                let mut s = format!("{} ({:?}", r.matches, r.access).to_lowercase();
                if r.all_squash {
                    s.push_str(", all_squash");
                } else if r.root_squash {
                    s.push_str(", root_squash");
                }
                if r.secure {
                    s.push_str(", secure");
                }
                s.push(')');
                s
            })
            .collect();
        info!(
            "exporting {} as {} to {}",
            e.backend.describe(),
            e.mount_path,
            rules.join(", ")
        );
        info!(
            "mount with: mount -t nfs -o vers=3,proto=tcp,port={p},mountport={p} {host}:{m} /mnt   \
             or libnfs: nfs://{host}{m}?version=3&nfsport={p}&mountport={p}",
            p = own.tcp,
            m = e.mount_path,
        );
    }
}

fn write_ready_file(path: &Path, lines: &[String]) -> Result<(), ServeError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, lines.join("\n") + "\n")
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| ServeError::ReadyFile {
            path: path.to_owned(),
            source,
        })
}

/// A fresh write verifier for this server instance (RFC 1813 §3.3.7).
pub(crate) fn random_verifier() -> [u8; 8] {
    let mut v = [0u8; 8];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut v))
        .is_ok();
    if !ok {
        // Still unique per start: the time in nanoseconds.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        v = t.to_be_bytes();
    }
    v
}
