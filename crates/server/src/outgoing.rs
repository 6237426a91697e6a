//! Sending replies over TCP: a resumable record writer, and the *send turn* that lets a worker
//! send its own reply when the connection's writer is idle.
//!
//! # Why
//! A request used to cross three threads: the connection's reader (a runtime task), a
//! file-system worker, and the connection's writer (another runtime task). With one request in
//! flight, each crossing is a wake-up and a context switch, which costs more than a small READ
//! itself. Now the worker tries to send the finished reply itself, without blocking: most replies
//! fit in the socket's send buffer at once, and the writer task is not woken at all.
//!
//! # Rules (the liveness rules of [`crate::transport`] still hold)
//! * **One record at a time on the wire.** Whoever writes to the socket holds the connection's
//!   send turn ([`SendTurn`]), an atomic flag: taken with a swap, given back with a store and a
//!   notification. It is not a lock anyone waits for on a thread: a worker only *tries* to take it
//!   and queues its reply for the writer when it is taken; only the writer task waits for it, and
//!   asynchronously.
//! * **Workers never block on the socket.** [`Outgoing::advance`] writes what the socket accepts
//!   now (`try_write_vectored`, non-blocking `splice`) and remembers where it stopped. A worker
//!   that could not finish hands the rest to the writer through a one-slot channel, *keeping the
//!   turn*, so no other record can start in the middle of it; the writer finishes it (under the
//!   send-stall limit) and gives the turn back.
//! * **Replies may leave in any order** (RPC matches them by xid); records never interleave.
//! * **Nothing here keeps a socket open.** Workers reach the socket through a `Weak`: once the
//!   reader and writer are gone, a late reply is dropped (its loan returned, O(1)).
//!
//! # Reply memory (`reply_bytes_max`)
//! A reply may wait long for a client that does not read it, so the memory of replies being built
//! or waiting to be sent is bounded server-wide by [`ReplyBudget`]:
//! * **Charged before it is allocated.** Before a call runs, its reader reserves the most its
//!   reply can hold, read from the call's arguments ([`reply_bytes_estimate`]: READ's `count`,
//!   READDIR's `count`, READDIRPLUS's `maxcount`, capped by the transfer size; a few KiB for the
//!   rest). Once the reply is built, the charge is fitted to what it holds ([`reply_bytes`]): the
//!   unused part goes back at once; a reply larger than its reservation (a long MOUNT list) takes
//!   the excess only if it is free, else it is replaced by `SYSTEM_ERR` — nothing past the budget
//!   is ever queued. The charge travels with the reply ([`Queued`]) and is released when the
//!   reply is sent whole or dropped (connection closed, shed): atomic subtractions and a
//!   semaphore release (tokio's short internal lock, waking at most the waiters it satisfies),
//!   never a wait. Zero-copy READ data counts too: its pipe pins page-cache pages as surely as a
//!   buffer holds heap (and it is already bounded by `loans_max`, but not below the budget).
//! * **Backpressure, fairly.** With the budget spent, a connection that holds reply memory reads
//!   no more requests until its own replies are sent (it must not take memory others wait for);
//!   one that holds none waits in a FIFO queue (tokio's fair semaphore) with the UDP requests.
//!   Connections none of whose replies was ever sent whole (newcomers, and clients that never
//!   read) take turns: one at a time, they take memory that is free with nobody queued, and
//!   queue only after 100 ms ([`ReplyBudget::newcomer_turn`]). So a client that reads its
//!   replies waits behind other readers and at most one non-reader, never behind memory a
//!   non-reader keeps.
//! * **Shedding.** Memory held by a client that does not read would otherwise come back only at
//!   `send_stall_ms_max`. While requests wait in the queue, connections whose replies have not
//!   moved to the socket for [`SHED_STALL_MS`] are closed (their writers drop their replies at
//!   once), the biggest holders first, until what the queue wants is freed: one round per
//!   [`SHED_INTERVAL_MS`], server-wide. A client that reads keeps its bytes moving: not shed.
//! * **No deadlock.** A connection's replies are sent by its writer, which never waits for the
//!   budget; a reader waiting for its own replies needs only them to be sent or dropped; a queued
//!   request needs only releases, which sends and shedding (time alone) provide.

use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use bytes::{Buf, Bytes};
use rnfs_oncrpc::peek::CallPeek;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};

use crate::registry::{Connection, Tracked};
use crate::service::{LoanedPipe, Reply, Tail};

const ZERO_PAD: [u8; 3] = [0; 3];

/// What is left of a reply's tail.
enum Rest {
    /// Buffered bytes (possibly none).
    Bytes(Bytes),
    /// Bytes still to splice from the loan's pipe.
    Spliced { loan: LoanedPipe, left: usize },
}

/// One reply on its way out as one TCP record: the head (record marker included), the tail,
/// then XDR padding. Dropping it at any point returns its loan (O(1)).
pub struct Outgoing {
    head: Bytes,
    rest: Rest,
    /// Padding bytes still to send (sent after the tail).
    pad: usize,
    /// A buffered READ's loan, held until the reply is sent or dropped.
    _loan: Option<LoanedPipe>,
    /// The record's size on the wire.
    record_bytes: u64,
    /// Bytes written so far.
    written: u64,
}

impl Outgoing {
    pub fn new(mut reply: Reply) -> Outgoing {
        let message = reply.message_len();
        let marker = rnfs_oncrpc::record::single_fragment_marker(message);
        reply.head[..Reply::MARKER_BYTES].copy_from_slice(&marker);
        let pad = rnfs_xdr::pad_len(reply.tail_len());
        let rest = match std::mem::replace(&mut reply.tail, Tail::None) {
            Tail::None => Rest::Bytes(Bytes::new()),
            Tail::Bytes(b) => Rest::Bytes(b),
            Tail::Spliced { loan, len } => Rest::Spliced { loan, left: len },
        };
        Outgoing {
            head: std::mem::take(&mut reply.head).freeze(),
            rest,
            pad,
            _loan: reply.loan.take(),
            record_bytes: (Reply::MARKER_BYTES + message) as u64,
            written: 0,
        }
    }

    pub fn record_bytes(&self) -> u64 {
        self.record_bytes
    }

    /// Bytes of the record written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Writes as much of the record as `stream` takes without blocking. `Ok(true)`: all sent;
    /// `Ok(false)`: the socket is full (wait until it is writable and call again).
    pub fn advance(&mut self, stream: &TcpStream) -> io::Result<bool> {
        loop {
            let splice_left = match &self.rest {
                Rest::Spliced { left, .. } => *left,
                Rest::Bytes(_) => 0,
            };
            let tail = match &self.rest {
                Rest::Bytes(b) => &b[..],
                Rest::Spliced { .. } => &[][..],
            };
            // Padding goes out only once nothing is left to splice before it.
            let pad = if splice_left == 0 { self.pad } else { 0 };
            if !self.head.is_empty() || !tail.is_empty() || pad > 0 {
                let slices = [
                    IoSlice::new(&self.head),
                    IoSlice::new(tail),
                    IoSlice::new(&ZERO_PAD[..pad]),
                ];
                // Before spliced pages, the head goes with MSG_MORE so that it shares their first
                // segment instead of leaving alone (TCP_NODELAY is on).
                let written = if splice_left > 0 {
                    stream.try_io(Interest::WRITABLE, || {
                        rnfs_sys::pipe::send_more(std::os::fd::AsFd::as_fd(stream), &slices)
                    })
                } else {
                    stream.try_write_vectored(&slices)
                };
                let n = match written {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) => return Err(e),
                };
                self.consume(n);
                continue;
            }
            let Rest::Spliced { loan, left } = &mut self.rest else {
                return Ok(true);
            };
            if *left == 0 {
                return Ok(true);
            }
            let want = *left;
            let more = self.pad > 0;
            let moved = stream.try_io(Interest::WRITABLE, || {
                loan.with_resource(|pipe| match pipe {
                    Some(p) => p.0.drain_to(std::os::fd::AsFd::as_fd(stream), want, more),
                    None => Err(io::Error::other("loan without a pipe")),
                })
            });
            match moved {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    *left -= n;
                    self.written += n as u64;
                    if *left == 0 {
                        // Everything spliced in went out: the pipe is empty again, so the loan
                        // goes back without the reaper.
                        loan.mark_clean();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
    }

    /// Marks `n` bytes written, in order: head, buffered tail, padding.
    fn consume(&mut self, mut n: usize) {
        self.written += n as u64;
        let h = n.min(self.head.len());
        self.head.advance(h);
        n -= h;
        if let Rest::Bytes(b) = &mut self.rest {
            let t = n.min(b.len());
            b.advance(t);
            n -= t;
        }
        let p = n.min(self.pad);
        self.pad -= p;
        debug_assert_eq!(n, p, "wrote more than the record");
    }

    /// Sends the rest of the record, waiting for the socket as needed (the writer's path).
    pub async fn finish(&mut self, stream: &TcpStream) -> io::Result<()> {
        while !self.advance(stream)? {
            stream.writable().await?;
        }
        Ok(())
    }
}

/// A reply with what its request holds until it is sent: its registry entry, its per-connection
/// permit (so at most `connection_requests_max` replies exist per connection) and its share of
/// the reply memory budget.
pub struct Queued {
    pub out: Outgoing,
    pub tracked: Option<Tracked>,
    pub permit: OwnedSemaphorePermit,
    pub charge: ReplyCharge,
}

impl Queued {
    /// A built reply about to be sent: from now on its connection counts it as unsent.
    pub fn new(
        out: Outgoing,
        tracked: Option<Tracked>,
        permit: OwnedSemaphorePermit,
        mut charge: ReplyCharge,
    ) -> Queued {
        charge.mark_unsent();
        Queued {
            out,
            tracked,
            permit,
            charge,
        }
    }

    /// [`Outgoing::advance`], noting progress for the budget's shedding.
    pub fn advance(&mut self, stream: &TcpStream) -> io::Result<bool> {
        let before = self.out.written();
        let done = self.out.advance(stream);
        if self.out.written() != before {
            self.charge.progress();
        }
        done
    }

    /// Sends the rest of the record, waiting for the socket as needed (the writer's path).
    pub async fn finish(&mut self, stream: &TcpStream) -> io::Result<()> {
        while !self.advance(stream)? {
            stream.writable().await?;
        }
        Ok(())
    }

    /// Counts the record as sent on its connection and lets go of the request.
    pub fn done(self) {
        if let Some(t) = &self.tracked {
            t.connection()
                .bytes_out
                .fetch_add(self.out.record_bytes(), Ordering::Relaxed);
        }
    }
}

/// The right to write to one connection's socket (see the module docs).
pub struct SendTurn {
    taken: AtomicBool,
    given_back: Notify,
    /// Set when the writer has stopped: nobody writes any more.
    closed: AtomicBool,
}

impl Default for SendTurn {
    fn default() -> Self {
        SendTurn {
            taken: AtomicBool::new(false),
            given_back: Notify::new(),
            closed: AtomicBool::new(false),
        }
    }
}

impl SendTurn {
    /// Takes the turn if nobody has it. Never waits.
    pub fn try_take(&self) -> bool {
        !self.taken.swap(true, Ordering::Acquire)
    }

    /// Gives the turn back and wakes the writer if it waits for it (a stored permit if not, so
    /// the wake-up cannot be missed).
    pub fn give_back(&self) {
        self.taken.store(false, Ordering::Release);
        self.given_back.notify_one();
    }

    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// A worker's way to a connection's socket.
#[derive(Clone)]
pub struct SendSide {
    pub stream: Weak<TcpStream>,
    pub turn: Arc<SendTurn>,
    /// Replies for the writer (it takes the turn for each). Boxed, so that the channels' slot
    /// blocks, allocated with each connection, stay small.
    pub queue: mpsc::Sender<Box<Queued>>,
    /// A reply a worker started and could not finish; the turn comes with it.
    pub resume: mpsc::Sender<Box<Queued>>,
}

/// How a worker's reply went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Written whole by the worker.
    Direct,
    /// Started by the worker, finished by the writer.
    Resumed,
    /// Queued for the writer (the turn was taken).
    Queued,
    /// Dropped: the connection is closing (or the direct write failed, which the writer and
    /// reader will see too).
    Dropped,
}

impl SendSide {
    /// Sends `item` from the calling (worker) thread if the turn is free, else queues it for the
    /// writer. Never blocks.
    pub fn send_or_queue(&self, mut item: Queued) -> Sent {
        if self.turn.is_closed() {
            return Sent::Dropped;
        }
        if !self.turn.try_take() {
            return match self.queue.try_send(Box::new(item)) {
                Ok(()) => Sent::Queued,
                Err(_) => Sent::Dropped,
            };
        }
        let Some(stream) = self.stream.upgrade() else {
            self.turn.give_back();
            return Sent::Dropped;
        };
        match item.advance(&stream) {
            Ok(true) => {
                self.turn.give_back();
                item.done();
                Sent::Direct
            }
            // The writer finishes it, and gives the turn back. If the writer is gone, the turn
            // stays taken: the connection is closing and nothing may follow half a record.
            Ok(false) => match self.resume.try_send(Box::new(item)) {
                Ok(()) => Sent::Resumed,
                Err(_) => Sent::Dropped,
            },
            Err(e) => {
                // The socket failed; the writer's next write (or the reader) fails too and closes
                // the connection.
                tracing::debug!(error = %e, "direct reply write failed");
                self.turn.give_back();
                Sent::Dropped
            }
        }
    }
}

/// The writer's side: the next reply to send, with the turn held for it; `None` once no worker
/// or reader can send any more.
pub struct WriterQueue {
    pub turn: Arc<SendTurn>,
    pub queue: mpsc::Receiver<Box<Queued>>,
    pub resume: mpsc::Receiver<Box<Queued>>,
    /// A queued reply waiting for the turn.
    waiting: Option<Box<Queued>>,
}

impl WriterQueue {
    pub fn new(
        turn: Arc<SendTurn>,
        queue: mpsc::Receiver<Box<Queued>>,
        resume: mpsc::Receiver<Box<Queued>>,
    ) -> Self {
        WriterQueue {
            turn,
            queue,
            resume,
            waiting: None,
        }
    }

    pub async fn next(&mut self) -> Option<Box<Queued>> {
        loop {
            if self.waiting.is_none() {
                tokio::select! {
                    biased;
                    // A resumed send comes with the turn.
                    Some(item) = self.resume.recv() => return Some(item),
                    Some(item) = self.queue.recv() => self.waiting = Some(item),
                    else => return None,
                }
            }
            if self.turn.try_take() {
                return self.waiting.take();
            }
            // A worker is writing: it gives the turn back, or hands over an unfinished send.
            tokio::select! {
                biased;
                Some(item) = self.resume.recv() => return Some(item),
                () = self.turn.given_back.notified() => {}
            }
        }
    }
}

// ---- reply memory --------------------------------------------------------------------------------

/// Charged for every reply whatever it holds: the queue entry, the record writer, the head's
/// first buffer.
pub const REPLY_FIXED_BYTES: usize = 1024;
/// Reserved for a call whose reply carries no bulk data (see [`crate::config::REPLY_SMALL_BYTES`]).
/// A larger reply (a long MOUNT or portmapper list) takes the excess only if it is free (see
/// [`ReplyCharge::fit`]).
pub const REPLY_SMALL_BYTES: usize = crate::config::REPLY_SMALL_BYTES;
/// While requests wait for reply memory, a connection whose replies have not moved to the socket
/// for this long may be shed (a client that reads gets its bytes moving within a round trip).
pub const SHED_STALL_MS: u64 = 500;
/// How often a request waiting for reply memory looks for connections to shed; one shedding round
/// per interval, server-wide.
pub const SHED_INTERVAL_MS: u64 = 10;
/// A newcomer whose turn it is tries this many times, one per [`SHED_INTERVAL_MS`], to take free
/// reply memory before it queues with the readers (see [`ReplyBudget::newcomer_turn`]).
pub const NEWCOMER_TRIES: u32 = 10;

/// The most reply memory a call can need (`call`: its peeked header, `None` for a record that is
/// no well-formed call), reserved before it runs: the data READ, READDIR or READDIRPLUS asks for
/// (capped by `payload_max`, the transport's transfer size), plus [`REPLY_SMALL_BYTES`]. Nothing
/// peeked is trusted: a malformed call gets the small reservation (its reply is an error).
pub fn reply_bytes_estimate(call: Option<&CallPeek>, payload_max: u32) -> usize {
    let data = call
        .filter(|c| c.prog == rnfs_nfs3::NFS_PROGRAM && c.vers == 3)
        .and_then(|c| {
            let (_, mut rest) = crate::peek::nfs_handle(c)?;
            // After the handle: READ offset, count; READDIR cookie, verifier, count; READDIRPLUS
            // cookie, verifier, dircount, maxcount.
            let at = match c.proc_num {
                rnfs_nfs3::NFSPROC3_READ => 8,
                rnfs_nfs3::NFSPROC3_READDIR => 16,
                rnfs_nfs3::NFSPROC3_READDIRPLUS => 20,
                _ => return None,
            };
            rest.take(at).ok()?;
            Some(rest.u32().ok()?.min(payload_max) as usize)
        })
        .unwrap_or(0);
    REPLY_SMALL_BYTES + data
}

/// The memory a built reply holds until it is sent: its head's buffer, its data (heap or pipe),
/// and [`REPLY_FIXED_BYTES`].
pub fn reply_bytes(reply: &Reply) -> usize {
    REPLY_FIXED_BYTES + reply.head.capacity() + reply.tail_len()
}

/// Bytes of replies being built or waiting to be sent, all connections and UDP together, bounded
/// by `reply_bytes_max` (see the module docs).
pub struct ReplyBudget {
    /// One permit per byte; fair (FIFO) for waiters.
    bytes: Arc<Semaphore>,
    max: usize,
    /// Requests that found the budget spent and waited.
    pub waits: AtomicU64,
    /// Connections shed to free reply memory.
    pub shed: AtomicU64,
    /// Replies larger than their reservation, replaced by `SYSTEM_ERR` because the budget was spent.
    pub overruns: AtomicU64,
    /// Before this time (ms, [`crate::clock::now_ms`]) nothing more is shed.
    next_shed_ms: AtomicU64,
    /// Bytes the waiting requests want: those queued for `bytes`, and the newcomer whose turn it is.
    waiting_bytes: AtomicU64,
    /// One permit: the newcomers' turn (see [`ReplyBudget::newcomer_turn`]).
    newcomers: Semaphore,
}

impl ReplyBudget {
    pub fn new(max: usize) -> ReplyBudget {
        // At least one small reply always fits, so any call can be answered.
        let max = max.clamp(REPLY_SMALL_BYTES, Semaphore::MAX_PERMITS);
        ReplyBudget {
            bytes: Arc::new(Semaphore::new(max)),
            max,
            waits: AtomicU64::new(0),
            shed: AtomicU64::new(0),
            overruns: AtomicU64::new(0),
            next_shed_ms: AtomicU64::new(0),
            waiting_bytes: AtomicU64::new(0),
            newcomers: Semaphore::new(1),
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Bytes charged now (including what is promised to the first waiter).
    pub fn held(&self) -> usize {
        self.max.saturating_sub(self.bytes.available_permits())
    }

    /// A reservation larger than the whole budget is cut to it (it could never be met); the
    /// reply then fits only if it turns out smaller ([`ReplyCharge::fit`]).
    fn permits(&self, bytes: usize) -> u32 {
        u32::try_from(bytes.min(self.max)).unwrap_or(u32::MAX)
    }

    /// Charges `bytes` to `conn` (none for UDP) if they are free now and nobody waits for them.
    pub fn try_charge(&self, bytes: usize, conn: Option<&Arc<Connection>>) -> Option<ReplyCharge> {
        let permit = self
            .bytes
            .clone()
            .try_acquire_many_owned(self.permits(bytes))
            .ok()?;
        Some(ReplyCharge::new(permit, conn))
    }

    /// Charges `bytes`, waiting in FIFO order for them (a connection that reads its replies, or a
    /// UDP request). `None` only if the budget is closed (never: it is not closed).
    pub async fn charge(
        &self,
        bytes: usize,
        conn: Option<&Arc<Connection>>,
    ) -> Option<ReplyCharge> {
        let permits = self.permits(bytes);
        let _wanting = self.wanting(permits as usize);
        let permit = self.bytes.clone().acquire_many_owned(permits).await.ok()?;
        Some(ReplyCharge::new(permit, conn))
    }

    /// The newcomers' turn, FIFO. A connection none of whose replies was ever sent whole (a
    /// newcomer, or a client that never reads) waits for it, then takes reply memory only when it
    /// is free with no reading client queued for it, one try per [`SHED_INTERVAL_MS`], and queues
    /// with the readers only after [`NEWCOMER_TRIES`]. So fresh connections, however many, put at
    /// most one request ahead of a client that reads, and take what is freed at a bounded rate:
    /// memory shed from stalled connections is not all refilled by new non-readers before it can
    /// be shed again.
    pub async fn newcomer_turn(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.newcomers.acquire().await.ok()
    }

    /// Counts `bytes` as wanted by a waiting request (see [`ReplyBudget::shortfall`]) until the
    /// guard is dropped, also when the wait is given up.
    pub fn wanting(&self, bytes: usize) -> Wanting<'_> {
        let bytes = bytes.min(self.max) as u64;
        self.waiting_bytes.fetch_add(bytes, Ordering::Relaxed);
        Wanting {
            waiting: &self.waiting_bytes,
            bytes,
        }
    }

    /// What the waiting requests want beyond what is free now: what shedding must free for all of
    /// them to go on.
    pub fn shortfall(&self) -> u64 {
        self.waiting_bytes
            .load(Ordering::Relaxed)
            .saturating_sub(self.bytes.available_permits() as u64)
    }

    /// Whether the caller may run a shedding round now (server-wide one per
    /// [`SHED_INTERVAL_MS`]).
    pub fn shed_due(&self, now_ms: u64) -> bool {
        let next = self.next_shed_ms.load(Ordering::Relaxed);
        now_ms >= next
            && self
                .next_shed_ms
                .compare_exchange(
                    next,
                    now_ms + SHED_INTERVAL_MS,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}

/// Bytes a waiting request wants, counted until dropped (see [`ReplyBudget::wanting`]).
pub struct Wanting<'a> {
    waiting: &'a AtomicU64,
    bytes: u64,
}

impl Drop for Wanting<'_> {
    fn drop(&mut self) {
        self.waiting.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// Reply memory charged to one request's reply, released when dropped (O(1): atomic updates and a
/// semaphore release, never a wait).
pub struct ReplyCharge {
    permit: OwnedSemaphorePermit,
    /// The connection the reply belongs to (TCP), whose own accounting follows the charge.
    conn: Option<Arc<Connection>>,
    /// Counted in its connection's `replies_unsent`.
    unsent: bool,
}

impl ReplyCharge {
    fn new(permit: OwnedSemaphorePermit, conn: Option<&Arc<Connection>>) -> ReplyCharge {
        if let Some(c) = conn {
            c.reply_bytes
                .fetch_add(permit.num_permits() as u64, Ordering::AcqRel);
        }
        ReplyCharge {
            permit,
            conn: conn.cloned(),
            unsent: false,
        }
    }

    /// Bytes charged.
    pub fn bytes(&self) -> usize {
        self.permit.num_permits()
    }

    /// Fits the charge to `bytes`, what the built reply holds: the unused part is released now;
    /// more is taken only if it is free now. `false` (charge unchanged) when it is not.
    pub fn fit(&mut self, bytes: usize) -> bool {
        let have = self.bytes();
        if bytes <= have {
            self.release(have - bytes);
            return true;
        }
        let budget = self.permit.semaphore().clone();
        let Ok(extra) = u32::try_from(bytes - have) else {
            return false;
        };
        match budget.try_acquire_many_owned(extra) {
            Ok(more) => {
                if let Some(c) = &self.conn {
                    c.reply_bytes.fetch_add(u64::from(extra), Ordering::AcqRel);
                }
                self.permit.merge(more);
                true
            }
            Err(_) => false,
        }
    }

    /// Gives `n` of the charged bytes back.
    fn release(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        if let Some(c) = &self.conn {
            // Not to zero: the charge still holds the rest.
            c.reply_bytes.fetch_sub(n as u64, Ordering::AcqRel);
        }
        drop(self.permit.split(n));
    }

    /// The reply is built and about to be sent: its connection counts it as unsent (and, if it
    /// had none, its send clock starts now).
    pub fn mark_unsent(&mut self) {
        if let (Some(c), false) = (&self.conn, self.unsent) {
            self.unsent = true;
            if c.replies_unsent.fetch_add(1, Ordering::AcqRel) == 0 {
                c.send_progress_ms
                    .store(crate::clock::now_ms(), Ordering::Release);
            }
        }
    }

    /// Some of the reply reached the socket.
    pub fn progress(&self) {
        if let Some(c) = &self.conn {
            c.send_progress_ms
                .store(crate::clock::now_ms(), Ordering::Release);
        }
    }
}

impl Drop for ReplyCharge {
    fn drop(&mut self) {
        if let Some(c) = &self.conn {
            if self.unsent {
                c.replies_unsent.fetch_sub(1, Ordering::AcqRel);
            }
            let n = self.permit.num_permits() as u64;
            if c.reply_bytes.fetch_sub(n, Ordering::AcqRel) == n {
                // Stores a permit if the reader is not waiting yet: it cannot miss it.
                c.replies_drained.notify_one();
            }
        }
        // The permit's release follows (the semaphore's short internal lock; never a wait).
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn estimate(record: &[u8], payload_max: u32) -> usize {
        reply_bytes_estimate(CallPeek::parse(record).ok().as_ref(), payload_max)
    }
    use tokio::io::AsyncReadExt;

    fn reply(head: &[u8], tail: &[u8]) -> Reply {
        let mut r = Reply::new();
        r.head.extend_from_slice(head);
        if !tail.is_empty() {
            r.tail = Tail::Bytes(Bytes::copy_from_slice(tail));
        }
        r
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        (a, b)
    }

    /// Larger than loopback's socket buffers (a few MiB), so sends stop part way.
    const TAIL_BYTES: usize = (32 << 20) + 1;

    /// The record on the wire: marker, head, tail, padding — also when the socket fills up and
    /// the send resumes many times.
    #[tokio::test]
    async fn records_survive_partial_writes() {
        let (mut client, server) = pair().await;
        let tail: Vec<u8> = (0..TAIL_BYTES as u32).map(|i| (i % 251) as u8).collect();
        let mut out = Outgoing::new(reply(b"HEAD", &tail));
        assert_eq!(out.record_bytes(), (8 + TAIL_BYTES + 3) as u64);
        let mut partial = 0;
        let reader = tokio::spawn(async move {
            let mut got = vec![0; 8 + TAIL_BYTES + 3];
            client.read_exact(&mut got).await.unwrap();
            got
        });
        while !out.advance(&server).unwrap() {
            partial += 1;
            server.writable().await.unwrap();
        }
        let got = reader.await.unwrap();
        assert!(
            partial > 0,
            "a 32 MB record cannot fit the socket buffers at once"
        );
        let marker = u32::from_be_bytes(got[..4].try_into().unwrap());
        assert_eq!(marker, 0x8000_0000 | (4 + TAIL_BYTES + 3) as u32);
        assert_eq!(&got[4..8], b"HEAD");
        assert_eq!(&got[8..8 + tail.len()], &tail[..]);
        assert_eq!(&got[8 + tail.len()..], &[0, 0, 0]);
    }

    /// With the turn taken, a worker queues; with it free, it sends directly; a send it cannot
    /// finish goes to the writer with the turn, and nothing else is written meanwhile.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn turn_keeps_records_whole() {
        let (mut client, server) = pair().await;
        let server = Arc::new(server);
        let turn = Arc::new(SendTurn::default());
        let (qtx, qrx) = mpsc::channel(8);
        let (rtx, rrx) = mpsc::channel(1);
        let side = SendSide {
            stream: Arc::downgrade(&server),
            turn: turn.clone(),
            queue: qtx,
            resume: rtx,
        };
        let permits = Arc::new(tokio::sync::Semaphore::new(8));
        let budget = ReplyBudget::new(1 << 20);
        let item = |r: Reply| {
            Queued::new(
                Outgoing::new(r),
                None,
                permits.clone().try_acquire_owned().unwrap(),
                budget.try_charge(REPLY_SMALL_BYTES, None).unwrap(),
            )
        };
        // Small: sent directly.
        assert_eq!(side.send_or_queue(item(reply(b"one", b""))), Sent::Direct);
        // Large: started directly, resumed by the writer, the turn still taken.
        let big = vec![7u8; 32 << 20];
        assert_eq!(side.send_or_queue(item(reply(b"two", &big))), Sent::Resumed);
        assert!(
            !turn.try_take(),
            "the turn travels with the unfinished send"
        );
        // Meanwhile another reply is queued, not written into the middle of "two".
        assert_eq!(side.send_or_queue(item(reply(b"three", b""))), Sent::Queued);
        drop(side);
        let writer = {
            let server = server.clone();
            tokio::spawn(async move {
                let mut q = WriterQueue::new(turn.clone(), qrx, rrx);
                let mut sent = 0;
                while let Some(mut item) = q.next().await {
                    item.out.finish(&server).await.unwrap();
                    turn.give_back();
                    item.done();
                    sent += 1;
                }
                sent
            })
        };
        let mut records = Vec::new();
        for _ in 0..3 {
            let mut marker = [0; 4];
            client.read_exact(&mut marker).await.unwrap();
            let len = (u32::from_be_bytes(marker) & 0x7fff_ffff) as usize;
            let mut body = vec![0; len];
            client.read_exact(&mut body).await.unwrap();
            records.push(body);
        }
        assert_eq!(writer.await.unwrap(), 2);
        assert_eq!(records[0], b"one");
        assert_eq!(&records[1][..3], b"two");
        assert!(records[1][3..].iter().all(|&b| b == 7));
        assert_eq!(records[2], b"three");
    }

    fn a_call(prog: u32, proc_num: u32, args: &[u8]) -> Vec<u8> {
        let mut call = bytes::BytesMut::new();
        let cred = rnfs_oncrpc::AuthSys {
            stamp: 1,
            machine_name: Bytes::from_static(b"host"),
            uid: 1,
            gid: 1,
            gids: vec![5],
        };
        rnfs_oncrpc::encode_call(&mut call, 9, prog, 3, proc_num, &cred.to_opaque());
        call.extend_from_slice(args);
        call.to_vec()
    }

    /// READ, READDIR and READDIRPLUS reserve what they ask for, capped by the transfer size;
    /// everything else (and anything malformed) the small reservation.
    #[test]
    fn estimates_read_the_call() {
        use rnfs_nfs3::*;
        use rnfs_xdr::to_bytes;
        let fh = nfs_fh3::new(vec![7u8; 37]).unwrap();
        let read = |count| {
            let args = to_bytes(&READ3args {
                file: fh.clone(),
                offset: 5,
                count,
            });
            estimate(&a_call(NFS_PROGRAM, NFSPROC3_READ, &args), 1 << 20)
        };
        assert_eq!(read(4096), REPLY_SMALL_BYTES + 4096);
        assert_eq!(read(u32::MAX), REPLY_SMALL_BYTES + (1 << 20), "capped");
        let rdp = to_bytes(&READDIRPLUS3args {
            dir: fh.clone(),
            cookie: 1,
            cookieverf: [0; 8],
            dircount: 512,
            maxcount: 65536,
        });
        assert_eq!(
            estimate(&a_call(NFS_PROGRAM, NFSPROC3_READDIRPLUS, &rdp), 1 << 20),
            REPLY_SMALL_BYTES + 65536
        );
        let rd = to_bytes(&READDIR3args {
            dir: fh.clone(),
            cookie: 1,
            cookieverf: [0; 8],
            count: 3000,
        });
        assert_eq!(
            estimate(&a_call(NFS_PROGRAM, NFSPROC3_READDIR, &rd), 1 << 20),
            REPLY_SMALL_BYTES + 3000
        );
        let getattr = to_bytes(&GETATTR3args { object: fh });
        assert_eq!(
            estimate(&a_call(NFS_PROGRAM, NFSPROC3_GETATTR, &getattr), 1 << 20),
            REPLY_SMALL_BYTES
        );
        let truncated = a_call(NFS_PROGRAM, NFSPROC3_READ, &[0, 0, 0, 37, 1, 2]);
        assert_eq!(estimate(&truncated, 1 << 20), REPLY_SMALL_BYTES);
        assert_eq!(estimate(b"junk", 1 << 20), REPLY_SMALL_BYTES);
    }

    fn conn() -> Arc<Connection> {
        let reg = crate::registry::Registry::default();
        let peer = "127.0.0.1:9".parse().unwrap();
        reg.open(1, peer, crate::service::Transport::Tcp, 4, 0)
    }

    /// Charging, fitting and releasing keep the budget and the connection's own account equal;
    /// the last release wakes a reader waiting for its replies to drain.
    #[tokio::test]
    async fn charges_follow_the_reply() {
        let budget = ReplyBudget::new(100_000);
        let c = conn();
        let mut a = budget.try_charge(60_000, Some(&c)).unwrap();
        assert_eq!(
            (budget.held(), c.reply_bytes.load(Ordering::Relaxed)),
            (60_000, 60_000)
        );
        assert!(budget.try_charge(50_000, Some(&c)).is_none(), "spent");
        // Built: 20,000 bytes really held; the rest is free at once.
        assert!(a.fit(20_000));
        assert_eq!(
            (budget.held(), c.reply_bytes.load(Ordering::Relaxed)),
            (20_000, 20_000)
        );
        // Growing takes only what is free.
        assert!(a.fit(30_000));
        assert!(!a.fit(200_000), "more than the budget");
        assert_eq!(a.bytes(), 30_000);
        a.mark_unsent();
        assert_eq!(c.replies_unsent.load(Ordering::Relaxed), 1);
        let b = budget.try_charge(70_000, Some(&c)).unwrap();
        assert_eq!(budget.held(), 100_000);
        drop(b);
        let drained = c.replies_drained.notified();
        drop(a);
        assert_eq!(
            (budget.held(), c.reply_bytes.load(Ordering::Relaxed)),
            (0, 0)
        );
        assert_eq!(c.replies_unsent.load(Ordering::Relaxed), 0);
        tokio::time::timeout(std::time::Duration::from_secs(1), drained)
            .await
            .expect("the last release wakes the reader");
        // A reservation larger than the whole budget is cut to it, so it can be met.
        let all = budget.try_charge(1 << 30, None).unwrap();
        assert_eq!(all.bytes(), 100_000);
    }

    /// Waiters are served in order: a large one first is not passed by smaller ones behind it,
    /// and nobody takes bytes without queueing while someone waits.
    #[tokio::test]
    async fn waiters_are_served_in_order() {
        let budget = Arc::new(ReplyBudget::new(100_000));
        let held = budget.try_charge(90_000, None).unwrap();
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (i, want) in [(0, 50_000usize), (1, 1_000), (2, 1_000)] {
            let (budget, order) = (budget.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let c = budget.charge(want, None).await.unwrap();
                order.lock().unwrap().push(i);
                c
            }));
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(order.lock().unwrap().is_empty(), "the first needs 50,000");
        assert!(
            budget.try_charge(1_000, None).is_none(),
            "no passing the queue"
        );
        // 52,000 wanted, 10,000 free (or already promised to the first waiter).
        let short = budget.shortfall();
        assert!((42_000..=52_000).contains(&short), "shortfall {short}");
        drop(held);
        let mut charges = Vec::new();
        for t in tasks {
            charges.push(t.await.unwrap());
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2]);
        assert_eq!(budget.held(), 52_000);
        assert_eq!(budget.shortfall(), 0);
    }
}
