//! TCP and UDP transports: the only place sockets meet the service.
//!
//! # Liveness rules (see also the crate docs)
//! * A connection's socket is written by whoever holds its *send turn* (an atomic flag, see
//!   [`crate::outgoing`]): the file-system worker that built a reply sends it itself when the turn
//!   is free and the socket takes it without blocking; otherwise the connection's *writer* task
//!   sends it (queued over a bounded channel) or finishes it (handed over with the turn). Workers
//!   never wait for the turn or for the socket, so no thread blocks on a slow client.
//! * The *reader* stops reading when the connection's in-flight limit is reached (backpressure),
//!   instead of queueing requests without bound, and when no reply memory is left
//!   (`reply_bytes_max`, charged before a call runs and released when its reply is sent or
//!   dropped; see [`crate::outgoing`], "Reply memory").
//! * At `client_connections_max`, a newcomer from that client closes the client's idlest
//!   connection (nothing in flight); it is refused only when all of them are busy.
//! * Request handling (decode, file-system calls, encode) runs on the worker pool
//!   ([`crate::pool`]), gated by a global semaphore, never on a reactor thread; a lone call on
//!   an idle server runs where it was read, once that thread is no reactor thread any more (see
//!   [`InPlace`]).
//! * Closing a connection never waits for its sends: the reader just returns; the writer ends when
//!   its channel closes or the socket fails, and dropping a queued reply is O(1).
//!
//! # Layout
//! * [`conn`]: one TCP connection's protocol state without I/O: record marking (RFC 5531 §11),
//!   the idle, slow-record and send-stall timers, and the decisions to close.
//! * [`socket`]: a connection's socket, seen by the runtime's I/O driver through two
//!   descriptors, so that reading can leave the driver while a thread lingers on it.
//! * [`tcp`]: the listener and the async driver of [`conn`] (the reader and the writer tasks).
//! * [`udp`]: one datagram, one request.
//! * Here: what both share — admission ([`Shared`], [`PerClient`]), reply memory, `hand_off`,
//!   the one path from a transport to the worker pool, and [`InPlace`], the way around it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{info, warn};

use crate::call::{Origin, Outcome, Reply};
use crate::registry::{Connection, Stage, Tracked};
use crate::reply_memory::{reply_bytes, ReplyCharge};
use crate::service::Service;

pub mod conn;
pub mod socket;
pub mod tcp;
pub mod udp;

pub use tcp::serve_tcp;
pub use udp::serve_udp;

/// Identifies connections and UDP sockets (the owners of loans) for the life of the process.
static NEXT_CONN_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_conn_id() -> u64 {
    NEXT_CONN_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

use crate::clock::now_ms;

/// State shared by every transport task.
pub struct Shared {
    pub service: Arc<Service>,
    /// Gates the worker pool: one permit per request being processed.
    pub workers: Arc<Semaphore>,
    /// `workers`' permits.
    workers_max: usize,
    /// The threads that run request handlers (see crate::pool).
    pub pool: crate::pool::WorkerPool,
    /// One permit per open TCP connection.
    pub connections: Arc<Semaphore>,
    /// Live connections and their requests in flight.
    pub registry: Arc<crate::registry::Registry>,
    /// Reply memory (`reply_bytes_max`), shared by every connection and UDP socket.
    pub budget: Arc<crate::reply_memory::ReplyBudget>,
    /// Per-procedure statistics (admin interface, metrics).
    pub stats: Arc<crate::stats::Stats>,
    /// One permit per request being processed, server-wide (TCP and UDP).
    pub requests: Arc<Semaphore>,
    /// Connections per client address.
    pub per_client: PerClient,
    /// Becomes true at shutdown: connections stop taking requests.
    pub stopping: tokio::sync::watch::Sender<bool>,
    /// Each TCP connection's way out for calls to NFSv4 clients, and their pending replies.
    pub backchannels: Arc<crate::backchannel::BackChannels>,
    /// Taken by the one connection whose reader thread runs calls in place (see [`InPlace`]).
    in_place_taken: Arc<AtomicBool>,
}

impl Shared {
    /// The state of a server starting with `limits`, serving `service`.
    pub fn new(service: Arc<Service>, limits: &crate::config::Limits) -> Shared {
        Shared {
            service: service.clone(),
            workers: Arc::new(Semaphore::new(limits.fs_workers_max)),
            workers_max: limits.fs_workers_max,
            // Every queued job holds a `workers` permit, so the queue never holds more than that.
            pool: crate::pool::WorkerPool::new(
                "rnfsd-fs",
                limits.fs_workers_max,
                limits.fs_workers_max,
            ),
            connections: Arc::new(Semaphore::new(limits.connections_max)),
            registry: Arc::new(crate::registry::Registry::new()),
            budget: Arc::new(crate::reply_memory::ReplyBudget::new(
                limits.reply_bytes_max,
            )),
            stats: Arc::new(crate::stats::Stats::default()),
            requests: Arc::new(Semaphore::new(limits.requests_in_flight_max)),
            per_client: PerClient::default(),
            stopping: tokio::sync::watch::channel(false).0,
            backchannels: Arc::new(crate::backchannel::BackChannels::new(service.clone())),
            in_place_taken: Arc::default(),
        }
    }
}

impl Shared {
    /// Whether a call may run in place, its worker permit held (see [`InPlace`]): no other
    /// request is being run, every export answers promptly, and no NFSv4 client holds a
    /// delegation.
    fn alone_and_prompt(&self) -> bool {
        self.workers.available_permits() + 1 == self.workers_max
            && self.service.exports_prompt()
            && !self.service.v4().any_delegations()
    }

    /// The in-place slot and a worker, for a lone call to run in place, if it may now (see
    /// [`InPlace`]): no other request running, every export prompt, no delegation held, a
    /// multi-threaded runtime (whose threads can hand their work over), and no other connection
    /// in place.
    pub(crate) fn try_in_place(&self) -> Option<(InPlace, OwnedSemaphorePermit)> {
        let worker = self.workers.clone().try_acquire_owned().ok()?;
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if !(multi_thread && self.alone_and_prompt()) {
            return None;
        }
        self.in_place_taken
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        let slot = InPlace {
            taken: self.in_place_taken.clone(),
        };
        Some((slot, worker))
    }

    /// A worker for the next lone call of the connection in place, if it may still run there
    /// (as for [`Shared::try_in_place`]).
    pub(crate) fn try_worker_in_place(&self) -> Option<OwnedSemaphorePermit> {
        let worker = self.workers.clone().try_acquire_owned().ok()?;
        self.alone_and_prompt().then_some(worker)
    }
}

/// The one in-place slot: leave to run lone calls where they were read, instead of on the pool.
/// With one call in flight the hand-off to a pool thread (a wake-up of a parked worker, then of
/// the reader again) was a third of its round trip. A transport holding the slot runs calls with
/// [`run_in_place`] inside `tokio::task::block_in_place`, and the rules still hold:
/// * `block_in_place` gives this thread's share of the runtime (its other tasks, the I/O driver,
///   the timers) to another thread before the call runs, so a slow call stalls this connection's
///   reading only, never the reactor. (Calling the job directly would not: a runtime thread busy
///   in a file-system call leaves what it was due to poll unpolled.)
/// * Each call holds a worker permit like any call, so the pool's bound counts it, the watchdog
///   and `rnfsd ctl` see it; it runs only while no other request does.
/// * One connection at a time holds the slot, also while its thread waits briefly for the
///   connection's next call (`tcp`, "Lingering"): so at most one thread is out of the runtime's
///   hands, which `RUNTIME_BLOCKING_THREADS_MAX` counts.
/// * Only NFS calls that cannot wait long do ([`may_run_in_place`]), only while every export
///   answers promptly ([`rnfs_storage::Backend::answers_promptly`]: a local file system, not
///   CephFS or a network mount), and only while no NFSv4 client holds a delegation: a call may
///   then wait for a recall (the kernel's lease break) or for the holder's CB_GETATTR reply,
///   which could come on this very connection, whose reader would be the waiting thread.
pub(crate) struct InPlace {
    taken: Arc<AtomicBool>,
}

impl Drop for InPlace {
    fn drop(&mut self) {
        self.taken.store(false, Ordering::Release);
    }
}

/// Runs `record` on this thread, now, holding `worker` (see [`InPlace`]; only inside
/// `block_in_place`). `then` as for [`hand_off`].
pub(crate) fn run_in_place<F>(
    _slot: &InPlace,
    shared: &Shared,
    record: Bytes,
    origin: Origin,
    tracked: Option<Tracked>,
    worker: OwnedSemaphorePermit,
    then: F,
) where
    F: FnOnce(Option<Reply>, Option<Tracked>) + Send + 'static,
{
    count(&shared.service.counters.requests_in_place);
    job(shared, record, origin, tracked, worker, then)();
}

/// Serves one record on the current (worker) thread. A panic in a handler is a bug: it is logged
/// and the message gets no reply (the client retransmits); the server carries on.
fn run_job(
    service: &Service,
    stats: &crate::stats::Stats,
    record: Bytes,
    origin: Origin,
) -> Option<Reply> {
    let now = now_ms();
    // Admin: per-procedure statistics and the request's log span (see crate::stats).
    let observed = crate::stats::Observed::start(stats, &record, origin);
    let span = observed.span().clone();
    let _in_span = span.enter();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut reply = Reply::new();
        match service.handle_record(record, origin, now, &mut reply) {
            Outcome::Reply => Some(reply),
            Outcome::Drop => None,
        }
    }));
    let reply = result.unwrap_or_else(|_| {
        warn!(peer = %origin.peer, "request handler panicked; no reply sent");
        None
    });
    observed.finish(reply.as_ref());
    reply
}

/// The one path from a transport to the worker pool: waits for a worker (a free permit of
/// `shared.workers`; waiting is backpressure), then runs `record` there. `then` gets the reply
/// (`None` when the message gets none) and the request's registry entry, with the worker already
/// released; it must not block (see the liveness rules). `false` when no worker will come
/// (shutdown); a job the pool refuses is logged and dropped (the client retransmits). (A lone
/// call may run in place instead: see [`InPlace`].)
pub(crate) async fn hand_off<F>(
    shared: &Shared,
    record: Bytes,
    origin: Origin,
    tracked: Option<Tracked>,
    then: F,
) -> bool
where
    F: FnOnce(Option<Reply>, Option<Tracked>) + Send + 'static,
{
    // Closed only at shutdown, when dropping the request is right.
    let Ok(worker) = shared.workers.clone().acquire_owned().await else {
        return false;
    };
    count(&shared.service.counters.requests_pooled);
    let job = job(shared, record, origin, tracked, worker, then);
    if let Err(e) = shared.pool.submit(Box::new(job)) {
        // Cannot happen while the semaphores admit at most the pool's bound of jobs; the request
        // gets no reply and the client retransmits.
        warn!(peer = %origin.peer, error = %e, "cannot run a request");
    }
    true
}

/// The work of one request holding `worker`: runs it, releases the worker, then gives the reply
/// to `then`.
fn job<F>(
    shared: &Shared,
    record: Bytes,
    origin: Origin,
    tracked: Option<Tracked>,
    worker: OwnedSemaphorePermit,
    then: F,
) -> impl FnOnce() + Send + 'static
where
    F: FnOnce(Option<Reply>, Option<Tracked>) + Send + 'static,
{
    if let Some(t) = &tracked {
        t.set_stage(Stage::Fs);
    }
    let service = shared.service.clone();
    let stats = shared.stats.clone();
    // The xid, for the backend calls the request makes (see crate::backend_gate).
    let xid = record
        .get(..4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    move || {
        let reply = {
            let _running = tracked.as_ref().map(Tracked::enter);
            crate::backend_gate::request_scope(origin.conn_id, xid, || {
                run_job(&service, &stats, record, origin)
            })
        };
        drop(worker);
        then(reply, tracked);
    }
}

/// Whether `call` (peeked from `record`) may run in place (see [`InPlace`]): as its procedure's
/// row says ([`crate::program::InPlaceRule`]), for a version the program serves.
fn may_run_in_place(record: &Bytes, call: &rnfs_oncrpc::peek::CallPeek<'_>) -> bool {
    use crate::program::InPlaceRule as Rule;
    let Some(row) = crate::program::find(call.prog, call.vers)
        .filter(|p| p.serves(call.vers))
        .and_then(|p| p.procedure(call.proc_num))
    else {
        return false;
    };
    match row.in_place {
        Rule::Never => false,
        Rule::Always => true,
        Rule::IfUnstable => {
            crate::peek::write_stable(call) == Some(rnfs_nfs3::stable_how::UNSTABLE as u32)
        }
        Rule::IfEveryOperationMay => {
            crate::peek::compound_may_run_in_place(record.slice_ref(call.args))
        }
    }
}

fn count(c: &std::sync::atomic::AtomicU64) {
    c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Connections per client address, so one client cannot take every connection slot.
pub struct PerClient {
    counts: crate::lockdep::TrackedMutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

impl Default for PerClient {
    fn default() -> Self {
        PerClient {
            counts: crate::lockdep::TrackedMutex::new("transport.per_client", Default::default()),
        }
    }
}

/// One admitted connection; dropping it gives its client's slot back, unless a newcomer from the
/// same client took it over by evicting this connection.
pub struct ClientSlot {
    shared: Arc<Shared>,
    ip: std::net::IpAddr,
    /// The connection holding the slot, once registered.
    conn: std::sync::OnceLock<Arc<Connection>>,
}

impl ClientSlot {
    fn bind(&self, conn: &Arc<Connection>) {
        let _ = self.conn.set(conn.clone());
    }
}

impl Shared {
    /// Admits one more connection from `ip`. At `max`, the client's idlest connection (nothing in
    /// flight, idle the longest) is closed and its slot handed to the newcomer, as Linux's nfsd
    /// closes the oldest temporary connection: idle connections cannot lock their own client out.
    /// `None` when all of the client's connections are busy.
    fn admit_client(self: &Arc<Self>, ip: std::net::IpAddr, max: usize) -> Option<ClientSlot> {
        let ip = ip.to_canonical();
        let slot = ClientSlot {
            shared: self.clone(),
            ip,
            conn: std::sync::OnceLock::new(),
        };
        {
            let mut counts = self.per_client.counts.lock();
            let n = counts.entry(ip).or_insert(0);
            if *n < max {
                *n += 1;
                return Some(slot);
            }
        }
        // Outside the leaf lock (the registry has its own). The count stays: the victim's slot
        // is the newcomer's now, and the victim's own drop leaves the count alone.
        let victim = self.registry.release_idlest_of(ip)?;
        info!(peer = %victim.peer, max, "client connection limit reached: closing its idlest connection");
        Some(slot)
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        // The first to set the flag owns the slot (see `Registry::release_idlest_of`).
        if let Some(c) = self.conn.get() {
            if c.client_slot_released
                .swap(true, std::sync::atomic::Ordering::AcqRel)
            {
                return;
            }
        }
        let mut counts = self.shared.per_client.counts.lock();
        if let Some(n) = counts.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Waits for `want` bytes of reply memory once the budget was found spent (see crate::outgoing,
/// "Reply memory"). A connection holding some waits until its own replies are sent or dropped
/// (it must not take memory others wait for); then, like a UDP request, it waits its turn in the
/// budget's FIFO queue (connections that never had a reply sent take their turns apart, see
/// `ReplyBudget::newcomer_turn`). While it waits, connections whose replies have not moved for
/// `SHED_STALL_MS` are shed, the biggest holders first, until what the queue wants is freed (one
/// round per `SHED_INTERVAL_MS`, server-wide). `None` if the budget closed.
async fn wait_for_reply_memory(
    shared: &Shared,
    conn: Option<&Arc<Connection>>,
    want: usize,
) -> Option<ReplyCharge> {
    use crate::reply_memory::{SHED_INTERVAL_MS, SHED_STALL_MS};
    use std::sync::atomic::Ordering;
    let budget = &shared.budget;
    count(&budget.waits);
    if let Some(c) = conn {
        while c.reply_bytes.load(Ordering::Acquire) > 0 {
            // Notified when they reach zero (a stored permit if that happens first).
            c.replies_drained.notified().await;
        }
        if let Some(charge) = budget.try_charge(want, conn) {
            return Some(charge);
        }
    }
    let stall_ms = SHED_STALL_MS.min(shared.service.limits().send_stall_ms_max);
    let tick = std::time::Duration::from_millis(SHED_INTERVAL_MS);
    let shed = || {
        let now = now_ms();
        if budget.shed_due(now) {
            // Enough for every waiter, so none waits on another's shedding round.
            for (peer, bytes) in shared
                .registry
                .shed_stalled(now, stall_ms, budget.shortfall())
            {
                count(&budget.shed);
                warn!(%peer, reply_bytes = bytes, stall_ms, "closing connection: its replies have not moved while others wait for reply memory (reply_bytes_max)");
            }
        }
    };
    // Proven: one of its replies was sent whole (it reads). A UDP request cannot hold memory
    // past its send, so it counts as proven.
    let _turn = if conn.is_none_or(|c| c.bytes_out.load(Ordering::Relaxed) > 0) {
        None
    } else {
        // A newcomer, or a client that never read a reply: one at a time, a try per tick, and
        // queued like the others only after `NEWCOMER_TRIES` (so no reader waits behind more
        // than one of them, and a newcomer is not starved by a busy queue).
        let turn = budget.newcomer_turn().await?;
        let _wanting = budget.wanting(want);
        for _ in 0..crate::reply_memory::NEWCOMER_TRIES {
            tokio::time::sleep(tick).await;
            shed();
            if let Some(charge) = budget.try_charge(want, conn) {
                return Some(charge);
            }
        }
        Some(turn)
    };
    let charge = budget.charge(want, conn);
    tokio::pin!(charge);
    loop {
        tokio::select! {
            c = &mut charge => return c,
            () = tokio::time::sleep(tick) => shed(),
        }
    }
}

/// Fits `charge` to what `reply` holds (`copies` times: a UDP reply is copied into its datagram).
/// A reply larger than its reservation whose excess is not free is replaced by `SYSTEM_ERR`
/// (RFC 5531: "e.g. memory allocation failure"): nothing past the budget is ever queued.
fn fit_reply(
    budget: &crate::reply_memory::ReplyBudget,
    charge: &mut ReplyCharge,
    reply: Reply,
    copies: usize,
) -> Reply {
    if charge.fit(copies * reply_bytes(&reply)) {
        return reply;
    }
    count(&budget.overruns);
    let xid = reply
        .head
        .get(Reply::MARKER_BYTES..Reply::MARKER_BYTES + 4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    warn!(
        xid,
        reply_bytes = reply_bytes(&reply),
        reserved = charge.bytes(),
        "reply larger than its reservation and no reply memory free: answering SYSTEM_ERR"
    );
    drop(reply);
    let mut refused = Reply::new();
    rnfs_oncrpc::ReplyHeader::SystemErr.encode(xid, &mut refused.head);
    // Smaller than any reservation: always fits.
    charge.fit(copies * reply_bytes(&refused));
    refused
}

/// Binds TCP and UDP on `addr`. With port 0, one free port is chosen for both.
pub async fn bind_pair(addr: SocketAddr) -> std::io::Result<(TcpListener, UdpSocket)> {
    let mut last_err = None;
    for _ in 0..16 {
        let tcp = TcpListener::bind(addr).await?;
        let bound = tcp.local_addr()?;
        match UdpSocket::bind(bound).await {
            Ok(udp) => {
                info!(tcp = %bound, "listening");
                return Ok((tcp, udp));
            }
            // Another socket owns that UDP port: with a fixed port that is final, with port 0 we
            // try another pair.
            Err(e) if addr.port() == 0 => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| std::io::Error::other("no free port pair")))
}
