//! Sending replies over TCP: a resumable record writer, and the *send turn* that lets a worker
//! send its own reply when the connection's writer is idle. What replies may hold meanwhile is
//! bounded by [`crate::reply_memory`].
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

use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use bytes::{Buf, Bytes};
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit};

use crate::call::{LoanedPipe, Reply, Tail};
use crate::registry::Tracked;
use crate::reply_memory::ReplyCharge;
use crate::transport::socket::SendSocket;

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
    pub fn advance(&mut self, stream: &SendSocket) -> io::Result<bool> {
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
                    stream.try_send_with(|fd| rnfs_sys::pipe::send_more(fd, &slices))
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
            let moved = stream.try_send_with(|fd| {
                loan.with_resource(|pipe| match pipe {
                    Some(p) => p.0.drain_to(fd, want, more),
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

    /// Sends the rest of the record, waiting for the socket as needed.
    #[cfg(test)]
    pub async fn finish(&mut self, stream: &SendSocket) -> io::Result<()> {
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
    /// Held, not read: released when the reply is sent or dropped.
    pub _permit: OwnedSemaphorePermit,
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
            _permit: permit,
            charge,
        }
    }

    /// [`Outgoing::advance`], noting progress for the budget's shedding.
    pub fn advance(&mut self, stream: &SendSocket) -> io::Result<bool> {
        let before = self.out.written();
        let done = self.out.advance(stream);
        if self.out.written() != before {
            self.charge.progress();
        }
        done
    }

    /// Sends the rest of the record, waiting for the socket as needed (the writer's path).
    pub async fn finish(&mut self, stream: &SendSocket) -> io::Result<()> {
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
    pub stream: Weak<SendSocket>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::REPLY_SMALL_BYTES;
    use crate::reply_memory::ReplyBudget;

    use tokio::io::AsyncReadExt;

    fn reply(head: &[u8], tail: &[u8]) -> Reply {
        let mut r = Reply::new();
        r.head.extend_from_slice(head);
        if !tail.is_empty() {
            r.tail = Tail::Bytes(Bytes::copy_from_slice(tail));
        }
        r
    }

    async fn pair() -> (tokio::net::TcpStream, SendSocket) {
        let (client, _recv, send) = crate::transport::socket::tests::pair().await;
        (client, send)
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
}
