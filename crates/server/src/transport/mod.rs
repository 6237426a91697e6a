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
//!   ([`crate::pool`]), gated by a global semaphore, never on a reactor thread.
//! * Closing a connection never waits for its sends: the reader just returns; the writer ends when
//!   its channel closes or the socket fails, and dropping a queued reply is O(1).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, Semaphore};
use tracing::{debug, info, warn};

use rnfs_oncrpc::peek::CallPeek;
use rnfs_oncrpc::record::RecordReader;

use crate::outgoing::{
    reply_bytes, reply_bytes_estimate, Outgoing, Queued, ReplyCharge, SendSide, SendTurn,
    WriterQueue,
};
use crate::registry::{Connection, Stage, Tracked};
use crate::service::{Origin, Outcome, Reply, Service, Tail, Transport};

/// Identifies connections and UDP sockets (the owners of loans) for the life of the process.
static NEXT_CONN_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_conn_id() -> u64 {
    NEXT_CONN_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

use crate::clock::now_ms;

const ZERO_PAD: [u8; 3] = [0; 3];

/// Read buffer growth step for TCP connections.
const READ_CHUNK_BYTES: usize = 64 << 10;
/// A new connection's read buffer: enough for any call but WRITE; it grows by
/// [`READ_CHUNK_BYTES`] when a larger record arrives. Small, so idle connections cost little.
const READ_FIRST_BYTES: usize = 4 << 10;
/// Most UDP requests per socket the registry tracks at once.
const UDP_TRACKED_MAX: usize = 256;
/// At the connection limit, how long to wait for an evicted connection to close before evicting
/// another.
const EVICTION_WAIT_MS: u64 = 100;
/// Largest UDP datagram we accept (the IPv4 maximum payload).
pub const UDP_DATAGRAM_BYTES_MAX: usize = 65_507;

/// State shared by every transport task.
pub struct Shared {
    pub service: Arc<Service>,
    /// Gates the worker pool: one permit per request being processed.
    pub workers: Arc<Semaphore>,
    /// The threads that run request handlers (see crate::pool).
    pub pool: crate::pool::WorkerPool,
    /// One permit per open TCP connection.
    pub connections: Arc<Semaphore>,
    /// Live connections and their requests in flight.
    pub registry: Arc<crate::registry::Registry>,
    /// One permit per request being processed, server-wide (TCP and UDP).
    pub requests: Arc<Semaphore>,
    /// Connections per client address.
    pub per_client: PerClient,
    /// Becomes true at shutdown: connections stop taking requests.
    pub stopping: tokio::sync::watch::Sender<bool>,
}

/// Serves one record on the current (worker) thread. A panic in a handler is a bug: it is logged
/// and the message gets no reply (the client retransmits); the server carries on.
fn run_job(service: &Service, record: Bytes, origin: Origin) -> Option<Reply> {
    let now = now_ms();
    // Admin: per-procedure statistics and the request's log span (see crate::stats).
    let observed = crate::stats::Observed::start(&service.counters.procedures, &record, origin);
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

/// Runs `service.handle_record` on the worker pool. Returns the reply, or `None` when the message
/// gets no reply.
async fn process(
    shared: &Shared,
    record: Bytes,
    origin: Origin,
    tracked: Option<&Tracked>,
) -> Option<Reply> {
    // Closed only at shutdown, when dropping the request is right.
    let _permit = shared.workers.clone().acquire_owned().await.ok()?;
    if let Some(t) = tracked {
        t.set_stage(Stage::Fs);
    }
    let service = shared.service.clone();
    let (done, reply) = tokio::sync::oneshot::channel();
    let job = Box::new(move || {
        let _ = done.send(run_job(&service, record, origin));
    });
    if let Err(e) = shared.pool.submit(job) {
        // The request gets no reply; the client retransmits.
        warn!(peer = %origin.peer, error = %e, "cannot run a request");
        return None;
    }
    // An error means the job was dropped unrun (the pool is stopping).
    let reply = reply.await.ok()?;
    if let Some(t) = tracked {
        t.set_stage(Stage::Sending);
    }
    reply
}

/// Accepts TCP connections until the listener fails or the task is cancelled.
pub async fn serve_tcp(listener: TcpListener, shared: Arc<Shared>) {
    let local = listener.local_addr().ok();
    loop {
        // At the connection limit, make room by closing the connection idle the longest (as
        // knfsd does), so idle or abandoned connections cannot lock honest clients out; if every
        // connection is busy, wait (the kernel backlog holds newcomers).
        let permit = match shared.connections.clone().try_acquire_owned() {
            Ok(p) => p,
            // The wait after an eviction is bounded: the victim may never return a permit (it can
            // be a connection that already closed, its permit taken, while another reader of the
            // registry — the watchdog, the admin interface — still held it), so evict again.
            Err(_) => loop {
                if let Some(peer) = shared.registry.evict_idlest() {
                    debug!(%peer, "connection limit reached: closing the idlest connection");
                    count(&shared.service.counters.connections_evicted_idle);
                }
                let wait = std::time::Duration::from_millis(EVICTION_WAIT_MS);
                match tokio::time::timeout(wait, shared.connections.clone().acquire_owned()).await {
                    Ok(Ok(p)) => break p,
                    Ok(Err(_)) => return,
                    Err(_) => continue,
                }
            },
        };
        match listener.accept().await {
            Ok((stream, peer)) => {
                let max = shared.service.limits().client_connections_max;
                let Some(per_client) = shared.admit_client(peer.ip(), max) else {
                    warn!(%peer, max, "refusing connection: too many from this client, all busy");
                    count(&shared.service.counters.connections_refused_per_client);
                    continue;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    connection(stream, peer, shared, &per_client).await;
                    drop(per_client);
                    drop(permit);
                });
            }
            Err(e) => {
                // EMFILE and friends: back off briefly rather than spin.
                warn!(?local, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
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

async fn connection(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>, slot: &ClientSlot) {
    let _ = stream.set_nodelay(true);
    debug!(%peer, "connection opened");
    let limits = shared.service.limits().clone();
    let counters = &shared.service.counters;
    // Shared by the reader and the writer; workers reach it through a `Weak` (see
    // crate::outgoing), so the socket closes as soon as both are gone.
    let stream = Arc::new(stream);
    let origin = Origin {
        peer,
        transport: Transport::Tcp,
        conn_id: next_conn_id(),
    };
    let conn = shared.registry.open(
        origin.conn_id,
        peer,
        Transport::Tcp,
        limits.connection_requests_max,
        now_ms(),
    );
    slot.bind(&conn);
    // A reply travels with its request's per-connection permit, released only once it is sent:
    // so at most `connection_requests_max` replies exist per connection (being built, queued or
    // being sent), and this channel, that large, never fills.
    let (reply_tx, reply_rx) = mpsc::channel::<Box<Queued>>(limits.connection_requests_max);
    // At most one unfinished direct send exists: only the holder of the send turn makes one.
    let (resume_tx, resume_rx) = mpsc::channel::<Box<Queued>>(1);
    let turn = Arc::new(SendTurn::default());
    let send_side = SendSide {
        stream: Arc::downgrade(&stream),
        turn: turn.clone(),
        queue: reply_tx,
        resume: resume_tx,
    };
    let in_flight = Arc::new(Semaphore::new(limits.connection_requests_max));
    // Set by the writer when it gives up, so the reader stops too.
    let writer_gone = Arc::new(tokio::sync::Notify::new());

    // The writer: sends what workers could not send themselves (see crate::outgoing).
    {
        let writer_gone = writer_gone.clone();
        let shared = shared.clone();
        let stream = stream.clone();
        let conn = conn.clone();
        let send_stall = std::time::Duration::from_millis(limits.send_stall_ms_max);
        tokio::spawn(async move {
            let mut replies = WriterQueue::new(turn.clone(), reply_rx, resume_rx);
            // Shed (see `Registry::shed_stalled`): stop now, dropping every unsent reply.
            let abort = conn.abort.notified();
            tokio::pin!(abort);
            loop {
                let next = tokio::select! {
                    biased;
                    () = &mut abort => None,
                    item = replies.next() => item,
                };
                let Some(mut item) = next else {
                    break;
                };
                // Dropping the reply on timeout returns its loan at once.
                let sent = tokio::select! {
                    biased;
                    () = &mut abort => break,
                    sent = tokio::time::timeout(send_stall, item.finish(&stream)) => sent,
                };
                match sent {
                    Ok(Ok(())) => {
                        turn.give_back();
                        item.done();
                    }
                    Ok(Err(e)) => {
                        debug!(%peer, error = %e, "write failed; dropping queued replies");
                        break;
                    }
                    Err(_) => {
                        warn!(%peer, ms = send_stall.as_millis() as u64, "closing connection: client stopped reading its replies");
                        count(&shared.service.counters.connections_closed_send_stall);
                        break;
                    }
                }
            }
            // Keeps the turn: nothing may follow a half-sent record.
            turn.close();
            writer_gone.notify_one();
        });
    }

    let idle = std::time::Duration::from_millis(limits.idle_timeout_ms);
    let record_max = std::time::Duration::from_millis(limits.record_receive_ms_max);
    let mut last_activity = tokio::time::Instant::now();
    let mut record_started: Option<tokio::time::Instant> = None;
    let mut stopping = shared.stopping.subscribe();
    let mut reader = RecordReader::new(limits.record_bytes_max, limits.record_fragments_max);
    let mut input = BytesMut::with_capacity(READ_FIRST_BYTES);
    // Made once and polled again each turn: a new timer and two new waiter registrations per
    // request would cost the reactor thread more than the request's own reading.
    let timer = tokio::time::sleep_until(last_activity + idle);
    tokio::pin!(timer);
    let writer_gone_wait = writer_gone.notified();
    tokio::pin!(writer_gone_wait);
    let close_wait = conn.close.notified();
    tokio::pin!(close_wait);
    loop {
        if *stopping.borrow() {
            // Shutting down: take no more requests; those in flight still get their replies.
            return;
        }
        loop {
            match reader.next_record(&mut input) {
                Ok(Some(record)) => {
                    // Backpressure: with this connection's (or the server's) requests all in
                    // flight, we stop reading until one finishes.
                    let Ok(permit) = in_flight.clone().acquire_owned().await else {
                        return;
                    };
                    let Ok(global) = shared.requests.clone().acquire_owned().await else {
                        return;
                    };
                    if conn.shed.load(std::sync::atomic::Ordering::Acquire) {
                        return;
                    }
                    let record_bytes = (record.len() + 4) as u64;
                    conn.bytes_in
                        .fetch_add(record_bytes, std::sync::atomic::Ordering::Relaxed);
                    // The header, peeked once for the registry and the reply reservation.
                    let call = CallPeek::parse(&record).ok();
                    let tracked = conn.track(&record, call.as_ref(), now_ms());
                    // Memory for its reply, reserved before anything is allocated; waiting here
                    // stops this connection's reading (see crate::outgoing, "Reply memory").
                    let want = reply_bytes_estimate(call.as_ref(), limits.transfer_bytes_max);
                    let budget = &shared.registry.budget;
                    let mut charge = match budget.try_charge(want, Some(&conn)) {
                        Some(c) => c,
                        None => {
                            if let Some(t) = &tracked {
                                t.set_stage(Stage::Budget);
                            }
                            let charge = tokio::select! {
                                c = wait_for_reply_memory(&shared, Some(&conn), want) => c,
                                () = &mut close_wait => {
                                    debug!(%peer, "closing connection on request");
                                    return;
                                }
                                () = &mut writer_gone_wait => return,
                            };
                            let Some(charge) = charge else {
                                return;
                            };
                            if let Some(t) = &tracked {
                                t.set_stage(Stage::Queued);
                            }
                            charge
                        }
                    };
                    // A worker for it: waiting here stops this connection's reading (backpressure).
                    let Ok(worker) = shared.workers.clone().acquire_owned().await else {
                        return;
                    };
                    if let Some(t) = &tracked {
                        t.set_stage(Stage::Fs);
                    }
                    let service = shared.service.clone();
                    let registry = shared.registry.clone();
                    let side = send_side.clone();
                    // Straight onto the worker pool; the job sends its reply itself when the
                    // socket takes it at once, else hands it to the writer.
                    let submitted = shared.pool.submit(Box::new(move || {
                        let reply = run_job(&service, record, origin);
                        drop((worker, global));
                        if let Some(reply) = reply {
                            let reply = fit_reply(&registry.budget, &mut charge, reply, 1);
                            if let Some(t) = &tracked {
                                t.set_stage(Stage::Sending);
                            }
                            let item = Queued::new(Outgoing::new(reply), tracked, permit, charge);
                            // A dropped reply (the connection is closing) returns its loan here,
                            // O(1).
                            side.send_or_queue(item);
                        }
                    }));
                    if let Err(e) = submitted {
                        // Cannot happen while the semaphores admit at most the pool's bound of
                        // jobs; the client retransmits.
                        warn!(%peer, error = %e, "cannot run a request");
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    warn!(%peer, error = %e, "closing connection: bad record");
                    count(&counters.connections_closed_bad_record);
                    return;
                }
            }
        }
        let mid_record = !input.is_empty() || reader.partial_bytes() > 0;
        record_started = match (mid_record, record_started) {
            (false, _) => None,
            (true, None) => Some(tokio::time::Instant::now()),
            (true, started) => started,
        };
        let deadline = match record_started {
            Some(t) => t + record_max,
            None => last_activity + idle,
        };
        if input.capacity() - input.len() < READ_FIRST_BYTES {
            input.reserve(READ_CHUNK_BYTES);
        }
        // The timer moves only to an earlier deadline (a record has started). A later one (more
        // activity) is noticed when the timer fires, which then re-arms it: one timer update per
        // idle period rather than per request.
        if deadline < timer.deadline() {
            timer.as_mut().reset(deadline);
        }
        tokio::select! {
            r = read_some(&stream, &mut input) => match r {
                Ok(0) => {
                    debug!(%peer, "connection closed by peer");
                    return;
                }
                Ok(_) => last_activity = tokio::time::Instant::now(),
                Err(e) => {
                    debug!(%peer, error = %e, "read failed; closing");
                    return;
                }
            },
            () = &mut timer => {
                if tokio::time::Instant::now() < deadline {
                    timer.as_mut().reset(deadline);
                    continue;
                }
                if record_started.is_some() {
                    warn!(%peer, ms = record_max.as_millis() as u64, "closing connection: a record took too long to arrive");
                    count(&counters.connections_closed_slow_record);
                    return;
                }
                if in_flight.available_permits() == limits.connection_requests_max {
                    debug!(%peer, "closing idle connection");
                    count(&counters.connections_closed_idle);
                    return;
                }
                // Requests still running: not idle.
                last_activity = tokio::time::Instant::now();
                timer.as_mut().reset(last_activity + idle);
            }
            () = &mut writer_gone_wait => return,
            () = &mut close_wait => {
                debug!(%peer, "closing connection on request");
                return;
            }
            _ = stopping.changed() => {}
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
    use crate::outgoing::{SHED_INTERVAL_MS, SHED_STALL_MS};
    use std::sync::atomic::Ordering;
    let budget = &shared.registry.budget;
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
        for _ in 0..crate::outgoing::NEWCOMER_TRIES {
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
    budget: &crate::outgoing::ReplyBudget,
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

/// Reads what `stream` has into `input` (at least one byte, or 0 at end of stream). Cancel safe.
///
/// A read that does not fill `input`'s spare room emptied the socket's receive queue, so the
/// socket's readiness is cleared right away (as tokio's own `poll_read` does) instead of by one
/// more `recv` that would only say `EAGAIN`: one system call less per request. Data arriving after
/// the read is a new readiness event, which clearing does not lose.
async fn read_some(stream: &TcpStream, input: &mut BytesMut) -> std::io::Result<usize> {
    use std::io::ErrorKind::WouldBlock;
    loop {
        stream.readable().await?;
        let spare = input.capacity() - input.len();
        let mut got = None;
        let r = stream.try_io(tokio::io::Interest::READABLE, || {
            let n = stream.try_read_buf(&mut *input)?;
            got = Some(n);
            if n > 0 && n < spare {
                Err(WouldBlock.into())
            } else {
                Ok(n)
            }
        });
        match (got, r) {
            (Some(n), _) => return Ok(n),
            (None, Err(e)) if e.kind() == WouldBlock => continue,
            (None, r) => return r,
        }
    }
}

/// Serves RPC over one UDP socket until the task is cancelled.
pub async fn serve_udp(socket: UdpSocket, shared: Arc<Shared>) {
    let socket = Arc::new(socket);
    let conn_id = next_conn_id();
    let local = socket
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    // Requests over UDP are bounded by `requests_in_flight_max`; the registry tracks up to
    // UDP_TRACKED_MAX of them per socket (the rest run untracked).
    let conn = shared.registry.open(
        conn_id,
        local,
        Transport::Udp,
        shared
            .service
            .limits()
            .requests_in_flight_max
            .min(UDP_TRACKED_MAX),
        now_ms(),
    );
    let mut buf = vec![0u8; UDP_DATAGRAM_BYTES_MAX + 1];
    loop {
        let (len, peer) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "UDP receive failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        if len > UDP_DATAGRAM_BYTES_MAX {
            debug!(%peer, "dropping oversized datagram");
            continue;
        }
        // Bounded work: with every request slot busy, drop the datagram (the client retransmits)
        // rather than queue tasks without limit.
        let Ok(global) = shared.requests.clone().try_acquire_owned() else {
            count(&shared.service.counters.udp_datagrams_dropped);
            debug!(%peer, "server busy: dropping a UDP request");
            continue;
        };
        let record = Bytes::copy_from_slice(&buf[..len]);
        conn.bytes_in
            .fetch_add(len as u64, std::sync::atomic::Ordering::Relaxed);
        let call = CallPeek::parse(&record).ok();
        let tracked = conn.track(&record, call.as_ref(), now_ms());
        // Reply memory first, twice over: the reply and its datagram (see `fit_reply`).
        let payload = Transport::Udp.payload_bytes_max(shared.service.limits());
        let want = 2 * reply_bytes_estimate(call.as_ref(), payload);
        let shared = shared.clone();
        let socket = socket.clone();
        tokio::spawn(async move {
            let origin = Origin {
                peer,
                transport: Transport::Udp,
                conn_id,
            };
            let budget = &shared.registry.budget;
            let mut charge = match budget.try_charge(want, None) {
                Some(c) => c,
                None => {
                    if let Some(t) = &tracked {
                        t.set_stage(Stage::Budget);
                    }
                    let Some(c) = wait_for_reply_memory(&shared, None, want).await else {
                        return;
                    };
                    if let Some(t) = &tracked {
                        t.set_stage(Stage::Queued);
                    }
                    c
                }
            };
            let reply = process(&shared, record, origin, tracked.as_ref()).await;
            if let Some(reply) = reply {
                let reply = fit_reply(budget, &mut charge, reply, 2);
                // One datagram: the tail (never spliced over UDP) is joined to the head.
                // Sized once: growing it could double its buffer past what was charged.
                let mut datagram = BytesMut::with_capacity(reply.message_len());
                datagram.extend_from_slice(&reply.head[Reply::MARKER_BYTES..]);
                if let Tail::Bytes(data) = &reply.tail {
                    datagram.extend_from_slice(data);
                    datagram.extend_from_slice(&ZERO_PAD[..rnfs_xdr::pad_len(data.len())]);
                }
                drop(reply);
                if let Err(e) = socket.send_to(&datagram, peer).await {
                    debug!(%peer, error = %e, "UDP send failed");
                }
            }
            drop((charge, global));
        });
    }
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
