//! The TCP listener and the driver of [`super::conn`]: async code that owns the socket and the
//! timers and acts on what the state machine decides. Per connection, a *reader* task reads into
//! the machine, admits each record (the three semaphores, reply memory) and hands it to the worker
//! pool (`super::hand_off`); a *writer* task sends what workers could not (see
//! [`crate::outgoing`]). Record marking is RFC 5531 §11 (see [`super::conn`]).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::futures::Notified;
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, warn};

use super::conn::{CloseReason, Conn, Record, SendClock};
use super::socket::{RecvSocket, SendSocket};
use super::{
    count, fit_reply, hand_off, may_run_in_place, next_conn_id, run_in_place,
    wait_for_reply_memory, ClientSlot, InPlace, Shared,
};
use crate::call::{Origin, Reply, Transport};
use crate::clock::{instant_at, now_ms};
use crate::config::Limits;
use crate::outgoing::{Outgoing, Queued, SendSide, SendTurn, WriterQueue};
use crate::registry::{Connection, Stage, Tracked};
use crate::reply_memory::{reply_bytes_estimate, ReplyCharge};
use crate::service::Counters;

/// At the connection limit, how long to wait for an evicted connection to close before evicting
/// another.
const EVICTION_WAIT_MS: u64 = 100;

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
/// Logs and counts why a connection closed (the `rnfsd_connections_closed` reasons).
fn report_close(reason: &CloseReason, peer: SocketAddr, counters: &Counters) {
    match reason {
        CloseReason::BadRecord(e) => {
            warn!(%peer, error = %e, "closing connection: bad record");
            count(&counters.connections_closed_bad_record);
        }
        CloseReason::SlowRecord { ms } => {
            warn!(%peer, ms = *ms, "closing connection: a record took too long to arrive");
            count(&counters.connections_closed_slow_record);
        }
        CloseReason::Idle => {
            debug!(%peer, "closing idle connection");
            count(&counters.connections_closed_idle);
        }
        CloseReason::SendStall { ms } => {
            warn!(%peer, ms = *ms, "closing connection: client stopped reading its replies");
            count(&counters.connections_closed_send_stall);
        }
    }
}

/// The timer instant for a machine's deadline (none: far in the future).
fn timer_at(deadline_ms: Option<u64>) -> tokio::time::Instant {
    tokio::time::Instant::from_std(instant_at(deadline_ms.unwrap_or(u64::MAX)))
}

/// Serves one connection until it closes: starts its writer, then reads.
async fn connection(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>, slot: &ClientSlot) {
    let _ = stream.set_nodelay(true);
    let (mut recv, send) = match super::socket::split(stream) {
        Ok(sides) => sides,
        Err(e) => {
            warn!(%peer, error = %e, "closing connection: cannot register its socket");
            return;
        }
    };
    debug!(%peer, "connection opened");
    let limits = shared.service.limits().clone();
    // The sending side is shared by this function and the writer; workers reach it through a
    // `Weak` (see crate::outgoing), so the socket closes as soon as both sides are gone.
    let stream = Arc::new(send);
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
    // Set by the writer when it gives up, so the reader stops too.
    let writer_gone = Arc::new(Notify::new());
    let replies = WriterQueue::new(turn, reply_rx, resume_rx);
    let in_flight = Arc::new(Semaphore::new(limits.connection_requests_max));
    // The NFSv4 back channel sends its calls the way workers send replies.
    shared.backchannels.register(
        origin.conn_id,
        crate::backchannel::CbConn::new(
            send_side.clone(),
            in_flight.clone(),
            shared.budget.clone(),
        ),
    );
    tokio::spawn(write_loop(
        replies,
        stream.clone(),
        conn.clone(),
        shared.clone(),
        writer_gone.clone(),
    ));
    let reader = Reader {
        in_flight,
        shared: &shared,
        conn: &conn,
        origin,
        send_side,
        limits: &limits,
    };
    reader.run(&mut recv, &writer_gone).await;
    drop(recv);
    drop(stream);
    // NFSv4 sessions forget the connection (a back channel bound to it is gone) and its calls
    // waiting for replies fail. Leaf locks, taken and released here without an await.
    shared.service.v4_connection_closed(origin.conn_id);
    shared.backchannels.unregister(origin.conn_id);
}

/// How the writer's attempt at one reply ended.
enum Sent {
    Whole,
    Aborted,
    Failed(std::io::Error),
    Stalled(CloseReason),
}

/// The writer: sends what workers could not send themselves (see crate::outgoing), each reply
/// within `send_stall_ms_max` ([`SendClock`]).
async fn write_loop(
    mut replies: WriterQueue,
    stream: Arc<SendSocket>,
    conn: Arc<Connection>,
    shared: Arc<Shared>,
    writer_gone: Arc<Notify>,
) {
    let peer = conn.peer;
    let mut clock = SendClock::new(shared.service.limits());
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
        clock.started(now_ms());
        // Dropping the reply on timeout (or abort) returns its loan at once.
        match send_in_time(&mut item, &stream, &mut clock, abort.as_mut()).await {
            Sent::Whole => {
                clock.finished();
                replies.turn.give_back();
                item.done();
            }
            Sent::Aborted => break,
            Sent::Failed(e) => {
                debug!(%peer, error = %e, "write failed; dropping queued replies");
                break;
            }
            Sent::Stalled(reason) => {
                report_close(&reason, peer, &shared.service.counters);
                break;
            }
        }
    }
    // Keeps the turn: nothing may follow a half-sent record.
    replies.turn.close();
    writer_gone.notify_one();
}

/// Finishes sending `item` unless the connection is aborted or the send stalls past `clock`'s
/// deadline.
async fn send_in_time(
    item: &mut Queued,
    stream: &SendSocket,
    clock: &mut SendClock,
    mut abort: Pin<&mut Notified<'_>>,
) -> Sent {
    loop {
        let deadline = timer_at(clock.next_deadline());
        let sent = tokio::select! {
            biased;
            () = abort.as_mut() => return Sent::Aborted,
            sent = tokio::time::timeout_at(deadline, item.finish(stream)) => sent,
        };
        match sent {
            Ok(Ok(())) => return Sent::Whole,
            Ok(Err(e)) => return Sent::Failed(e),
            Err(_) => {
                if let Some(reason) = clock.on_timeout(now_ms()) {
                    return Sent::Stalled(reason);
                }
                // Woken a little early: the send resumes where it stopped.
            }
        }
    }
}

/// How long the in-place thread waits for its connection's next call before giving the thread
/// back (see [`Reader::linger`]): a few round trips of a client with one call in flight.
const LINGER_IDLE_US: u64 = 500;
/// How long the in-place thread lingers on one connection at most before the reader takes over
/// again (see [`Reader::linger`]); then the next lone call starts over.
const LINGER_MS_MAX: u64 = 50;

/// How admitting a record ended.
enum Admitted {
    Open,
    /// Close the connection.
    Closed,
    /// The in-place thread read a record it could not run in place (or a bad one): the reader
    /// takes it up.
    Next(Result<Record, CloseReason>),
}

/// What admitting a record may wait for besides its own resources: a request to close the
/// connection, or its writer ending.
struct Waits<'a, 'b> {
    close: Pin<&'a mut Notified<'b>>,
    writer_gone: Pin<&'a mut Notified<'b>>,
}

/// What the in-place thread needs to read the connection's next records itself (see
/// [`Reader::linger`]).
struct Lingering<'a> {
    machine: &'a mut Conn,
    socket: &'a mut RecvSocket,
    stopping: &'a tokio::sync::watch::Receiver<bool>,
}

/// The reader's side of one connection: what each record needs to be admitted and handed off.
struct Reader<'a> {
    shared: &'a Arc<Shared>,
    conn: &'a Arc<Connection>,
    origin: Origin,
    /// One permit per request of this connection not yet answered.
    in_flight: Arc<Semaphore>,
    send_side: SendSide,
    limits: &'a Limits,
}

impl Reader<'_> {
    /// Reads records and hands them off until the connection closes. Closing never waits for
    /// sends: this just returns.
    async fn run(&self, socket: &mut RecvSocket, writer_gone: &Notify) {
        let peer = self.origin.peer;
        let counters = &self.shared.service.counters;
        let mut machine = Conn::new(self.limits, now_ms());
        let mut stopping = self.shared.stopping.subscribe();
        // Made once and polled again each turn: a new timer and two new waiter registrations per
        // request would cost the reactor thread more than the request's own reading.
        let timer = tokio::time::sleep_until(timer_at(machine.next_deadline()));
        tokio::pin!(timer);
        let writer_gone_wait = writer_gone.notified();
        tokio::pin!(writer_gone_wait);
        let close_wait = self.conn.close.notified();
        tokio::pin!(close_wait);
        loop {
            if *stopping.borrow() {
                // Shutting down: take no more requests; those in flight still get their replies.
                return;
            }
            // A record the in-place thread read but could not run in place (see `linger`).
            let mut pending: Option<Result<Record, CloseReason>> = None;
            loop {
                let polled = match pending.take() {
                    Some(p) => p.map(Some),
                    None => machine.poll_record(now_ms()),
                };
                match polled {
                    Ok(Some(record)) if crate::backchannel::is_reply(record.bytes()) => {
                        // A client's reply to a callback: never a request, never a worker.
                        self.conn
                            .bytes_in
                            .fetch_add(record.wire_bytes(), std::sync::atomic::Ordering::Relaxed);
                        self.shared
                            .backchannels
                            .deliver(self.origin.conn_id, record.into_bytes());
                    }
                    Ok(Some(record)) => {
                        let alone = machine.nothing_buffered();
                        let waits = Waits {
                            close: close_wait.as_mut(),
                            writer_gone: writer_gone_wait.as_mut(),
                        };
                        let lingering = Lingering {
                            machine: &mut machine,
                            socket: &mut *socket,
                            stopping: &stopping,
                        };
                        match self.admit(record, alone, waits, lingering).await {
                            Admitted::Open => {}
                            Admitted::Closed => return,
                            Admitted::Next(next) => pending = Some(next),
                        }
                    }
                    Ok(None) => break,
                    Err(reason) => return report_close(&reason, peer, counters),
                }
            }
            // The timer moves only to an earlier deadline (a record has started). A later one
            // (more activity) is noticed when the timer fires, which then re-arms it: one timer
            // update per idle period rather than per request.
            let deadline = timer_at(machine.next_deadline());
            if deadline < timer.deadline() {
                timer.as_mut().reset(deadline);
            }
            tokio::select! {
                r = socket.read_some(machine.recv_buf()) => match r {
                    Ok(0) => {
                        debug!(%peer, "connection closed by peer");
                        return;
                    }
                    Ok(n) => machine.received(n, now_ms()),
                    Err(e) => {
                        debug!(%peer, error = %e, "read failed; closing");
                        return;
                    }
                },
                () = &mut timer => {
                    if let Some(reason) = machine.on_timeout(now_ms(), self.requests_in_flight()) {
                        return report_close(&reason, peer, counters);
                    }
                    timer.as_mut().reset(timer_at(machine.next_deadline()));
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

    /// This connection's requests not yet answered (their replies unsent).
    fn requests_in_flight(&self) -> usize {
        self.limits.connection_requests_max - self.in_flight.available_permits()
    }

    /// Admits one record and hands it to the worker pool, or runs it in place when it came
    /// `alone` and may (see `super::InPlace`; the thread then lingers: see [`Reader::linger`]).
    /// Every wait here stops this connection's reading (backpressure): for a slot among its
    /// requests in flight, one among the server's, reply memory, a worker.
    async fn admit(
        &self,
        record: Record,
        alone: bool,
        waits: Waits<'_, '_>,
        mut lingering: Lingering<'_>,
    ) -> Admitted {
        let Ok(permit) = self.in_flight.clone().acquire_owned().await else {
            return Admitted::Closed;
        };
        let Ok(global) = self.shared.requests.clone().acquire_owned().await else {
            return Admitted::Closed;
        };
        if self.conn.shed.load(std::sync::atomic::Ordering::Acquire) {
            return Admitted::Closed;
        }
        self.conn
            .bytes_in
            .fetch_add(record.wire_bytes(), std::sync::atomic::Ordering::Relaxed);
        // The header, peeked once for the registry and the reply reservation.
        let call = record.call();
        let lone_call = alone
            && call
                .as_ref()
                .is_some_and(|c| may_run_in_place(record.bytes(), c));
        let tracked = self.conn.track(record.bytes(), call.as_ref(), now_ms());
        let want = reply_bytes_estimate(call.as_ref(), self.limits.transfer_bytes_max);
        let reserved = self.reserve_reply(want, tracked.as_ref(), waits.close, waits.writer_gone);
        let Some(charge) = reserved.await else {
            return Admitted::Closed;
        };
        let then = self.replier(global, permit, charge);
        let record = record.into_bytes();
        if let Some((slot, worker)) = lone_call.then(|| self.shared.try_in_place()).flatten() {
            // Request handlers only until it returns, so the identity may rest lazily between
            // calls, as on pool threads (see rnfs_sys::identity).
            let next = tokio::task::block_in_place(|| {
                rnfs_sys::identity::rest_lazily_while(|| {
                    let origin = self.origin;
                    run_in_place(&slot, self.shared, record, origin, tracked, worker, then);
                    self.linger(&slot, &mut lingering)
                })
            });
            // Back in the driver's hands before the reader waits on it again.
            if let Err(e) = lingering.socket.unpark() {
                warn!(peer = %self.origin.peer, error = %e, "closing connection: cannot register its socket");
                return Admitted::Closed;
            }
            return next.map_or(Admitted::Open, Admitted::Next);
        }
        if hand_off(self.shared, record, self.origin, tracked, then).await {
            Admitted::Open
        } else {
            Admitted::Closed
        }
    }

    /// What gets a request's reply, once run: it sends the reply itself when the socket takes
    /// it at once, else hands it to the writer; the request's permits and reply memory go with
    /// the reply until it is sent (or dropped).
    fn replier(
        &self,
        global: OwnedSemaphorePermit,
        permit: OwnedSemaphorePermit,
        mut charge: ReplyCharge,
    ) -> impl FnOnce(Option<Reply>, Option<Tracked>) + Send + 'static {
        let budget = self.shared.budget.clone();
        let side = self.send_side.clone();
        move |reply: Option<Reply>, tracked: Option<Tracked>| {
            drop(global);
            if let Some(reply) = reply {
                let reply = fit_reply(&budget, &mut charge, reply, 1);
                if let Some(t) = &tracked {
                    t.set_stage(Stage::Sending);
                }
                let item = Queued::new(Outgoing::new(reply), tracked, permit, charge);
                // A dropped reply (the connection is closing) returns its loan here, O(1).
                side.send_or_queue(item);
            }
        }
    }

    /// # Lingering
    /// After a call in place, its thread (no runtime thread any more: see `super::InPlace`)
    /// waits up to [`LINGER_IDLE_US`] for the connection's next call, reads it itself and runs
    /// it in place too when it came alone and may. With one call in flight that spares each call
    /// the hand-over of the runtime to another thread, and (the socket parked) the I/O driver's
    /// wake-up: 1 context switch per call instead of 3. It
    /// stops, leaving what it read to the async reader, at the first record it cannot run so
    /// (returned, for the reader to admit), at a partial record's deadline, after
    /// [`LINGER_MS_MAX`] in all (so the reader's timers and close requests are seen), when the
    /// server stops or the connection is shed, and on the end of the stream or an error (which
    /// the reader then meets itself). Records read here are limited and timed by the same
    /// machine as the reader's.
    ///
    /// The socket is out of the driver meanwhile (see `super::socket`): an arriving call wakes
    /// this thread alone. The caller gives it back.
    fn linger(
        &self,
        slot: &InPlace,
        lingering: &mut Lingering<'_>,
    ) -> Option<Result<Record, CloseReason>> {
        let Lingering {
            machine,
            socket,
            stopping,
        } = lingering;
        socket.park();
        let fd = socket.fd()?;
        let until_ms = now_ms().saturating_add(LINGER_MS_MAX);
        loop {
            if *stopping.borrow() || self.conn.shed.load(std::sync::atomic::Ordering::Acquire) {
                return None;
            }
            let now = now_ms();
            if now >= until_ms || machine.next_deadline().is_some_and(|d| now >= d) {
                return None;
            }
            match rnfs_sys::poll::wait_readable(fd, LINGER_IDLE_US) {
                Ok(true) => {}
                Ok(false) | Err(_) => return None,
            }
            match rnfs_sys::poll::recv_into(fd, machine.recv_buf()) {
                Ok(0) => return None,
                Ok(n) => machine.received(n, now_ms()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => return None,
            }
            let record = match machine.poll_record(now_ms()) {
                Ok(Some(record)) => record,
                Ok(None) => continue,
                Err(reason) => return Some(Err(reason)),
            };
            if !machine.nothing_buffered() || crate::backchannel::is_reply(record.bytes()) {
                return Some(Ok(record));
            }
            if let Some(record) = self.admit_in_place(slot, record) {
                return Some(Ok(record));
            }
        }
    }

    /// Admits `record` and runs it here, holding `slot`, if it may run in place and nothing it
    /// needs must be waited for; else hands it back untouched.
    fn admit_in_place(&self, slot: &InPlace, record: Record) -> Option<Record> {
        let call = record.call();
        if !call
            .as_ref()
            .is_some_and(|c| may_run_in_place(record.bytes(), c))
        {
            return Some(record);
        }
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            return Some(record);
        };
        let Ok(global) = self.shared.requests.clone().try_acquire_owned() else {
            return Some(record);
        };
        let Some(worker) = self.shared.try_worker_in_place() else {
            return Some(record);
        };
        let want = reply_bytes_estimate(call.as_ref(), self.limits.transfer_bytes_max);
        let Some(charge) = self.shared.budget.try_charge(want, Some(self.conn)) else {
            return Some(record);
        };
        self.conn
            .bytes_in
            .fetch_add(record.wire_bytes(), std::sync::atomic::Ordering::Relaxed);
        let tracked = self.conn.track(record.bytes(), call.as_ref(), now_ms());
        let then = self.replier(global, permit, charge);
        count(&self.shared.service.counters.requests_in_place_lingering);
        let origin = self.origin;
        run_in_place(
            slot,
            self.shared,
            record.into_bytes(),
            origin,
            tracked,
            worker,
            then,
        );
        None
    }

    /// Memory for a reply of `want` bytes, reserved before anything is allocated (see
    /// crate::outgoing, "Reply memory"). `None` when the connection is closing.
    async fn reserve_reply(
        &self,
        want: usize,
        tracked: Option<&Tracked>,
        close_wait: Pin<&mut Notified<'_>>,
        writer_gone_wait: Pin<&mut Notified<'_>>,
    ) -> Option<ReplyCharge> {
        if let Some(c) = self.shared.budget.try_charge(want, Some(self.conn)) {
            return Some(c);
        }
        if let Some(t) = tracked {
            t.set_stage(Stage::Budget);
        }
        let charge = tokio::select! {
            c = wait_for_reply_memory(self.shared, Some(self.conn), want) => c,
            () = close_wait => {
                debug!(peer = %self.origin.peer, "closing connection on request");
                return None;
            }
            () = writer_gone_wait => return None,
        };
        if let (Some(t), Some(_)) = (tracked, &charge) {
            t.set_stage(Stage::Queued);
        }
        charge
    }
}
