//! Reply memory (`reply_bytes_max`): a budget for the replies being built or waiting to be sent.
//!
//! A reply may wait long for a client that does not read it, so the memory of replies being built
//! or waiting to be sent is bounded server-wide by [`ReplyBudget`]:
//! * **Charged before it is allocated.** Before a call runs, its reader reserves the most its
//!   reply can hold, read from the call's arguments ([`reply_bytes_estimate`]: READ's `count`,
//!   READDIR's `count`, READDIRPLUS's `maxcount`, capped by the transfer size; a few KiB for the
//!   rest). Once the reply is built, the charge is fitted to what it holds ([`reply_bytes`]): the
//!   unused part goes back at once; a reply larger than its reservation (a long MOUNT list) takes
//!   the excess only if it is free, else it is replaced by `SYSTEM_ERR` — nothing past the budget
//!   is ever queued. The charge travels with the reply ([`crate::outgoing::Queued`]) and is released when the
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
//!   `SHED_INTERVAL_MS`, server-wide. A client that reads keeps its bytes moving: not shed.
//! * **No deadlock.** A connection's replies are sent by its writer, which never waits for the
//!   budget; a reader waiting for its own replies needs only them to be sent or dropped; a queued
//!   request needs only releases, which sends and shedding (time alone) provide.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rnfs_oncrpc::peek::CallPeek;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::call::Reply;
use crate::registry::Connection;

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
/// A newcomer whose turn it is tries this many times, one per `SHED_INTERVAL_MS`, to take free
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
    /// is free with no reading client queued for it, one try per `SHED_INTERVAL_MS`, and queues
    /// with the readers only after `NEWCOMER_TRIES`. So fresh connections, however many, put at
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
    /// `SHED_INTERVAL_MS`).
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
    use bytes::Bytes;

    fn estimate(record: &[u8], payload_max: u32) -> usize {
        reply_bytes_estimate(CallPeek::parse(record).ok().as_ref(), payload_max)
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
        reg.open(1, peer, crate::call::Transport::Tcp, 4, 0)
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
