//! Loans: the bookkeeping of READ data that is in flight to a client.
//!
//! # Why this exists
//! An NFS server that sends file pages without copying them lends those pages to the network stack
//! until the send completes. The classic failure (NetBSD 5.1, 2011) was in *returning* such a loan:
//! a thread closing a socket had to give the pages back, needed the file object's lock, and slept
//! on it while holding the network lock — which the TCP timers needed to make the progress that
//! would have woken it. This crate makes that class of bug impossible by construction:
//!
//! * **Returning a loan is O(1) and never blocks**: dropping a [`Loan`] is one compare-and-swap on
//!   its slot, two counter updates and an unpark of the reaper thread (or, for a loan whose holder
//!   marked its resource clean — a pipe sent whole — no unpark: the slot is free at once). It takes no lock, never
//!   sleeps, never waits for I/O — so it is safe from any context: a connection closing, a send
//!   failing, a runtime shutting down.
//! * **Cleanup happens elsewhere**: the [`Reaper`] (a plain OS thread holding no connection state)
//!   cleans returned resources (e.g. empties a pipe that still holds pages after an aborted send)
//!   and frees their slots.
//! * **Bounded and observable**: loans live in a fixed table of slots ([`LoanTable`]); when every
//!   slot is taken the caller falls back to a path that needs no loan. Every slot's owner, file,
//!   range, size and start time are readable at any moment ([`LoanTable::snapshot`]), lock-free,
//!   for the watchdog and the admin interface.
//!
//! # The slot protocol
//! ```text
//!   FREE --claim (CAS)--> CLAIMED --lend--> LENT --drop (CAS)--> RETURNED --reaper (CAS)--> CLEANING --> FREE
//!                                              LENT --drop of a clean loan (CAS)--------------------------> FREE
//! ```
//! Each slot owns one reusable resource `R` (a pipe in the server), created on first use and kept
//! across loans. Exactly one party owns the resource at a time, and ownership moves only by a state
//! change with Release/Acquire ordering: the claimer in CLAIMED, the [`Loan`] holder in LENT, the
//! reaper in CLEANING. The model test (`tests/loom.rs`, run with `--cfg loom`) explores every
//! interleaving of lend, return, connection close and reaping, and checks there is no deadlock, no
//! double return, no leak and no unsynchronized access to the resource.
//!
//! No clocks: times are passed in as milliseconds by the caller.

mod sync {
    #[cfg(loom)]
    pub use loom::cell::UnsafeCell;
    #[cfg(loom)]
    pub use loom::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
    #[cfg(loom)]
    pub use loom::sync::Arc;
    #[cfg(loom)]
    pub use loom::thread;

    #[cfg(not(loom))]
    pub use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
    #[cfg(not(loom))]
    pub use std::sync::Arc;
    #[cfg(not(loom))]
    pub use std::thread;

    /// `std`'s UnsafeCell with loom's closure-based API, so one body of code serves both.
    #[cfg(not(loom))]
    #[derive(Debug, Default)]
    pub struct UnsafeCell<T>(std::cell::UnsafeCell<T>);
    #[cfg(not(loom))]
    impl<T> UnsafeCell<T> {
        pub fn new(v: T) -> Self {
            UnsafeCell(std::cell::UnsafeCell::new(v))
        }
        pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

use sync::{Arc, AtomicU64, AtomicU8, AtomicUsize, Ordering, UnsafeCell};

const FREE: u8 = 0;
const CLAIMED: u8 = 1;
const LENT: u8 = 2;
const RETURNED: u8 = 3;
const CLEANING: u8 = 4;

/// What kind of data a loan holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LoanKind {
    /// File pages spliced into the slot's pipe: sent without a user-space copy.
    Spliced = 1,
    /// A user-space buffer (small reads, UDP, or when splicing is not possible).
    Buffered = 2,
}

/// A resource a slot keeps between loans.
pub trait Resource: Send + 'static {
    /// Makes the resource reusable after a loan (e.g. empties a pipe). Runs on the reaper, never
    /// on the path that returns the loan. Returning false discards the resource.
    fn clean(&mut self) -> bool;
}

/// Who holds a loan and of what, as the watchdog and the admin interface show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoanInfo {
    pub slot: usize,
    pub kind: LoanKind,
    /// The connection (or UDP socket) the data is being sent on.
    pub owner: u64,
    pub fileid: u64,
    pub offset: u64,
    pub bytes: u64,
    pub started_ms: u64,
    pub state: LoanState,
}

/// Where a slot is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoanState {
    /// Claimed by a request that is filling it (e.g. splicing file pages in).
    Claimed,
    /// On loan: the reply is queued or being sent.
    Lent,
    /// Returned, waiting for the reaper.
    Returned,
}

struct Slot<R> {
    state: AtomicU8,
    kind: AtomicU8,
    owner: AtomicU64,
    fileid: AtomicU64,
    offset: AtomicU64,
    bytes: AtomicU64,
    started_ms: AtomicU64,
    /// Owned by whoever the state says (see the module docs).
    resource: UnsafeCell<Option<R>>,
}

/// Counters, all monotonic except the two "outstanding" gauges.
#[derive(Debug, Default)]
struct Counters {
    outstanding: AtomicUsize,
    bytes_outstanding: AtomicU64,
    lent_total: AtomicU64,
    returned_by_reaper: AtomicU64,
    returned_clean: AtomicU64,
    exhausted: AtomicU64,
    resources_discarded: AtomicU64,
    claims_abandoned: AtomicU64,
    resources_live: AtomicUsize,
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoanStats {
    pub outstanding: usize,
    pub bytes_outstanding: u64,
    pub lent_total: u64,
    pub returned_by_reaper: u64,
    /// Loans returned clean (their resource needed no cleaning): freed without the reaper.
    pub returned_clean: u64,
    /// Times no slot was free and the caller had to do without a loan.
    pub exhausted: u64,
    pub resources_discarded: u64,
    /// Claims given up before lending (e.g. the READ failed); they are reaped like loans.
    pub claims_abandoned: u64,
    /// Resources (pipes) the slots keep for reuse right now.
    pub resources_live: usize,
}

/// The fixed table of loan slots: a cheap handle, clone it freely.
pub struct LoanTable<R: Resource> {
    shared: Arc<Shared<R>>,
}

impl<R: Resource> Clone for LoanTable<R> {
    fn clone(&self) -> Self {
        LoanTable {
            shared: self.shared.clone(),
        }
    }
}

struct Shared<R: Resource> {
    slots: Box<[Slot<R>]>,
    next_hint: AtomicUsize,
    counters: Counters,
    reaper: std::sync::OnceLock<sync::thread::Thread>,
    /// Model tests only: return loans the broken way, cleaning inline in the returning thread
    /// (what the 2011 lockup did), so the model can show it deadlocks.
    #[cfg(loom)]
    broken_inline_return: bool,
}

// SAFETY: the resource cells are only accessed by the single party the slot's state designates
// (claimer, loan holder, or reaper), and ownership moves by Release/Acquire state transitions, so
// sharing the table between threads never gives two threads access to one cell at once. `R: Send`
// lets the resource move between those threads.
unsafe impl<R: Resource> Sync for Shared<R> {}
// SAFETY: as above; the table owns its resources, which are Send.
unsafe impl<R: Resource> Send for Shared<R> {}

impl<R: Resource> LoanTable<R> {
    /// A table of `slots` loans at most.
    pub fn new(slots: usize) -> Self {
        LoanTable {
            shared: Arc::new(Shared::new(slots)),
        }
    }

    /// Model tests only: a table whose loans clean their resource inline when returned.
    #[cfg(loom)]
    pub fn new_broken_inline_return(slots: usize) -> Self {
        let mut shared = Shared::new(slots);
        shared.broken_inline_return = true;
        LoanTable {
            shared: Arc::new(shared),
        }
    }

    pub fn capacity(&self) -> usize {
        self.shared.slots.len()
    }

    /// Claims a free slot for `owner`. `None` when all are in use (counted): the caller must then
    /// serve the request without a loan. Never blocks.
    pub fn claim(&self, owner: u64, now_ms: u64) -> Option<Claim<R>> {
        let idx = self.shared.claim_index()?;
        let slot = &self.shared.slots[idx];
        slot.owner.store(owner, Ordering::Relaxed);
        slot.started_ms.store(now_ms, Ordering::Relaxed);
        for f in [&slot.fileid, &slot.offset, &slot.bytes] {
            f.store(0, Ordering::Relaxed);
        }
        Some(Claim {
            table: Some(self.shared.clone()),
            idx,
        })
    }

    /// Cleans every returned slot and frees it. Returns how many it freed. This is the reaper's
    /// work; [`Reaper`] runs it on its own thread.
    pub fn reap(&self) -> usize {
        self.shared.reap()
    }

    /// Slots in use (claimed, lent or awaiting the reaper), read without locking.
    pub fn snapshot(&self) -> Vec<LoanInfo> {
        self.shared.snapshot()
    }

    /// The age of the oldest outstanding loan at `now_ms`.
    pub fn oldest_age_ms(&self, now_ms: u64) -> Option<u64> {
        self.shared
            .snapshot()
            .iter()
            .map(|l| now_ms.saturating_sub(l.started_ms))
            .max()
    }

    pub fn stats(&self) -> LoanStats {
        self.shared.stats()
    }
}

impl<R: Resource> Shared<R> {
    fn new(slots: usize) -> Self {
        let slots = (0..slots.max(1))
            .map(|_| Slot {
                state: AtomicU8::new(FREE),
                kind: AtomicU8::new(0),
                owner: AtomicU64::new(0),
                fileid: AtomicU64::new(0),
                offset: AtomicU64::new(0),
                bytes: AtomicU64::new(0),
                started_ms: AtomicU64::new(0),
                resource: UnsafeCell::new(None),
            })
            .collect();
        Shared {
            slots,
            next_hint: AtomicUsize::new(0),
            counters: Counters::default(),
            reaper: std::sync::OnceLock::new(),
            #[cfg(loom)]
            broken_inline_return: false,
        }
    }

    fn claim_index(&self) -> Option<usize> {
        let n = self.slots.len();
        let start = self.next_hint.fetch_add(1, Ordering::Relaxed) % n;
        for i in 0..n {
            let idx = (start + i) % n;
            if self.slots[idx]
                .state
                .compare_exchange(FREE, CLAIMED, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return Some(idx);
            }
        }
        self.counters.exhausted.fetch_add(1, Ordering::Relaxed);
        None
    }

    fn reap(&self) -> usize {
        let mut freed = 0;
        for slot in self.slots.iter() {
            if slot
                .state
                .compare_exchange(RETURNED, CLEANING, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            // We own the resource now (CLEANING).
            let discarded = slot.resource.with_mut(|r| {
                // SAFETY: state CLEANING gives this thread exclusive access (module docs).
                let r = unsafe { &mut *r };
                let keep = r.as_mut().is_none_or(|res| res.clean());
                if !keep {
                    *r = None;
                }
                !keep
            });
            if discarded {
                self.counters
                    .resources_discarded
                    .fetch_add(1, Ordering::Relaxed);
            }
            slot.state.store(FREE, Ordering::Release);
            self.counters
                .returned_by_reaper
                .fetch_add(1, Ordering::Relaxed);
            freed += 1;
        }
        freed
    }

    fn snapshot(&self) -> Vec<LoanInfo> {
        let mut out = Vec::new();
        for (i, s) in self.slots.iter().enumerate() {
            let state = match s.state.load(Ordering::Acquire) {
                CLAIMED => LoanState::Claimed,
                LENT => LoanState::Lent,
                RETURNED => LoanState::Returned,
                _ => continue,
            };
            let kind = if s.kind.load(Ordering::Relaxed) == LoanKind::Spliced as u8 {
                LoanKind::Spliced
            } else {
                LoanKind::Buffered
            };
            out.push(LoanInfo {
                slot: i,
                kind,
                owner: s.owner.load(Ordering::Relaxed),
                fileid: s.fileid.load(Ordering::Relaxed),
                offset: s.offset.load(Ordering::Relaxed),
                bytes: s.bytes.load(Ordering::Relaxed),
                started_ms: s.started_ms.load(Ordering::Relaxed),
                state,
            });
        }
        out
    }

    fn stats(&self) -> LoanStats {
        let c = &self.counters;
        LoanStats {
            outstanding: c.outstanding.load(Ordering::Relaxed),
            bytes_outstanding: c.bytes_outstanding.load(Ordering::Relaxed),
            lent_total: c.lent_total.load(Ordering::Relaxed),
            returned_by_reaper: c.returned_by_reaper.load(Ordering::Relaxed),
            returned_clean: c.returned_clean.load(Ordering::Relaxed),
            exhausted: c.exhausted.load(Ordering::Relaxed),
            resources_discarded: c.resources_discarded.load(Ordering::Relaxed),
            claims_abandoned: c.claims_abandoned.load(Ordering::Relaxed),
            resources_live: c.resources_live.load(Ordering::Relaxed),
        }
    }

    fn wake_reaper(&self) {
        if let Some(t) = self.reaper.get() {
            t.unpark();
        }
    }
}

/// A claimed slot, before it is lent: its owner may prepare the slot's resource.
pub struct Claim<R: Resource> {
    table: Option<Arc<Shared<R>>>,
    idx: usize,
}

impl<R: Resource> Claim<R> {
    /// The slot's resource, created with `make` if it has none yet.
    pub fn resource_or_try_init<E>(
        &mut self,
        make: impl FnOnce() -> Result<R, E>,
    ) -> Result<&mut R, E> {
        let Some(table) = self.table.as_ref() else {
            unreachable_claim()
        };
        let (slot, counters) = (&table.slots[self.idx], &table.counters);
        slot.resource.with_mut(|r| {
            // SAFETY: state CLAIMED gives the claim's holder exclusive access; the returned
            // reference is tied to `&mut self`, which is consumed or dropped before the state
            // changes again.
            let r = unsafe { &mut *r };
            if r.is_none() {
                *r = Some(make()?);
                counters.resources_live.fetch_add(1, Ordering::Relaxed);
            }
            match r.as_mut() {
                Some(res) => Ok(res),
                None => unreachable_claim(),
            }
        })
    }

    /// Lends the slot: from here on the data is on loan until the [`Loan`] is dropped.
    pub fn lend(
        mut self,
        kind: LoanKind,
        owner: u64,
        fileid: u64,
        offset: u64,
        bytes: u64,
        now_ms: u64,
    ) -> Loan<R> {
        let table = match self.table.take() {
            Some(t) => t,
            None => unreachable_claim(),
        };
        let slot = &table.slots[self.idx];
        slot.kind.store(kind as u8, Ordering::Relaxed);
        slot.owner.store(owner, Ordering::Relaxed);
        slot.fileid.store(fileid, Ordering::Relaxed);
        slot.offset.store(offset, Ordering::Relaxed);
        slot.bytes.store(bytes, Ordering::Relaxed);
        slot.started_ms.store(now_ms, Ordering::Relaxed);
        table.counters.outstanding.fetch_add(1, Ordering::Relaxed);
        table
            .counters
            .bytes_outstanding
            .fetch_add(bytes, Ordering::Relaxed);
        table.counters.lent_total.fetch_add(1, Ordering::Relaxed);
        slot.state.store(LENT, Ordering::Release);
        Loan {
            table,
            idx: self.idx,
            bytes,
            clean: false,
        }
    }
}

impl<R: Resource> Drop for Claim<R> {
    /// A claim given up before lending goes back through the reaper too (its resource may be
    /// half-filled).
    fn drop(&mut self) {
        if let Some(table) = self.table.take() {
            table
                .counters
                .claims_abandoned
                .fetch_add(1, Ordering::Relaxed);
            table.slots[self.idx]
                .state
                .store(RETURNED, Ordering::Release);
            table.wake_reaper();
        }
    }
}

#[cold]
fn unreachable_claim() -> ! {
    // A Claim always holds its table until `lend` consumes it; reaching here is a bug in this file.
    std::process::abort()
}

/// Data on loan. Dropping it returns the loan in O(1) (see the module docs).
pub struct Loan<R: Resource> {
    table: Arc<Shared<R>>,
    idx: usize,
    bytes: u64,
    /// The holder says the resource is back as claimed: returning skips the reaper.
    clean: bool,
}

impl<R: Resource> std::fmt::Debug for Loan<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loan")
            .field("slot", &self.idx)
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl<R: Resource> Loan<R> {
    /// Runs `f` with the loaned resource (e.g. to splice the pipe into a socket).
    pub fn with_resource<T>(&mut self, f: impl FnOnce(Option<&mut R>) -> T) -> T {
        self.table.slots[self.idx].resource.with_mut(|r| {
            // SAFETY: state LENT gives this Loan's holder exclusive access, and `&mut self`
            // guarantees no other use of this Loan meanwhile.
            f(unsafe { &mut *r }.as_mut())
        })
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Declares the resource clean — in the state the reaper would leave it (a pipe sent whole
    /// is empty) — so that returning the loan frees its slot at once instead of waking the
    /// reaper. Only the holder can know this; marking a resource clean that is not would hand
    /// the next claimer a dirty one.
    pub fn mark_clean(&mut self) {
        self.clean = true;
    }

    pub fn slot(&self) -> usize {
        self.idx
    }
}

impl<R: Resource> Drop for Loan<R> {
    fn drop(&mut self) {
        let slot = &self.table.slots[self.idx];
        // A clean resource needs no reaper: the slot is free for the next claimer, whose Acquire
        // claim sees everything this holder did to the resource.
        let next = if self.clean { FREE } else { RETURNED };
        let was = slot
            .state
            .compare_exchange(LENT, next, Ordering::AcqRel, Ordering::Relaxed);
        if was.is_err() {
            // A loan is returned exactly once (it is not Clone and Drop runs once): a second
            // return would corrupt the table, so stop here rather than carry on wrong.
            std::process::abort();
        }
        let c = &self.table.counters;
        c.outstanding.fetch_sub(1, Ordering::Relaxed);
        c.bytes_outstanding.fetch_sub(self.bytes, Ordering::Relaxed);
        if self.clean {
            c.returned_clean.fetch_add(1, Ordering::Relaxed);
            return;
        }
        #[cfg(loom)]
        if self.table.broken_inline_return {
            self.table.reap();
            return;
        }
        self.table.wake_reaper();
    }
}

/// The thread that cleans returned loans.
pub struct Reaper {
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

#[cfg(not(loom))]
impl Reaper {
    /// Starts the reaper for `table`. It wakes when a loan is returned, and at least every
    /// `idle_ms` milliseconds.
    pub fn start<R: Resource>(table: LoanTable<R>, idle_ms: u64) -> std::io::Result<Reaper> {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let t = table.clone();
        let handle = std::thread::Builder::new()
            .name("rnfsd-reaper".into())
            .spawn(move || {
                while !stop2.load(Ordering::Acquire) {
                    t.reap();
                    std::thread::park_timeout(std::time::Duration::from_millis(idle_ms));
                }
                t.reap();
            })?;
        let _ = table.shared.reaper.set(handle.thread().clone());
        Ok(Reaper {
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(h) = self.handle.take() {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Res {
        cleaned: u32,
        ok: bool,
    }
    impl Resource for Res {
        fn clean(&mut self) -> bool {
            self.cleaned += 1;
            self.ok
        }
    }

    /// Claims a slot of `table` for owner 1 and gives it a fresh resource.
    fn claim_with_resource(table: &LoanTable<Res>) -> Claim<Res> {
        let mut c = table.claim(1, 0).expect("a free slot");
        c.resource_or_try_init(|| {
            Ok::<_, ()>(Res {
                cleaned: 0,
                ok: true,
            })
        })
        .expect("the resource is made");
        c
    }

    #[test]
    fn clean_return_frees_the_slot_without_the_reaper() {
        let table = LoanTable::<Res>::new(1);
        let c = claim_with_resource(&table);
        let mut loan = c.lend(LoanKind::Spliced, 7, 42, 0, 1000, 5);
        loan.mark_clean();
        drop(loan);
        let stats = table.stats();
        assert_eq!((stats.outstanding, stats.bytes_outstanding), (0, 0));
        assert_eq!((stats.returned_clean, stats.returned_by_reaper), (1, 0));
        assert!(table.snapshot().is_empty(), "free at once");
        let mut again = table
            .claim(2, 6)
            .expect("the one slot is free without reaping");
        let res = again
            .resource_or_try_init(|| Err::<Res, ()>(()))
            .expect("the slot kept its resource");
        assert_eq!(res.cleaned, 0, "a clean return does not run clean()");
        drop(again);
        assert_eq!(
            table.reap(),
            1,
            "an abandoned claim still goes through the reaper"
        );
    }

    #[test]
    fn lend_return_reap_reuse() {
        let table = LoanTable::<Res>::new(2);
        let c = claim_with_resource(&table);
        let loan = c.lend(LoanKind::Spliced, 7, 42, 4096, 1000, 5);
        let snap = table.snapshot();
        assert_eq!(snap.len(), 1);
        assert_eq!(
            (snap[0].owner, snap[0].fileid, snap[0].bytes, snap[0].state),
            (7, 42, 1000, LoanState::Lent)
        );
        assert_eq!(table.stats().bytes_outstanding, 1000);
        assert_eq!(table.oldest_age_ms(25), Some(20));
        drop(loan);
        assert_eq!(table.stats().outstanding, 0);
        assert_eq!(
            table.snapshot()[0].state,
            LoanState::Returned,
            "waiting for the reaper"
        );
        assert_eq!(table.reap(), 1);
        assert!(table.snapshot().is_empty());
        assert_eq!(table.stats().returned_by_reaper, 1);
        // The resource survives for the next loan of that slot.
        let mut seen = Vec::new();
        for _ in 0..2 {
            let mut c = table.claim(1, 0).unwrap();
            let r = c
                .resource_or_try_init(|| {
                    Ok::<_, ()>(Res {
                        cleaned: 0,
                        ok: true,
                    })
                })
                .unwrap();
            seen.push(r.cleaned);
            drop(c.lend(LoanKind::Buffered, 1, 1, 0, 1, 0));
        }
        assert!(
            seen.contains(&1),
            "one slot's resource was cleaned and reused"
        );
    }

    #[test]
    fn exhaustion_is_counted_not_blocking() {
        let table = LoanTable::<Res>::new(1);
        let c = table.claim(1, 0).unwrap();
        let l = c.lend(LoanKind::Buffered, 1, 1, 0, 10, 0);
        assert!(table.claim(1, 0).is_none());
        assert_eq!(table.stats().exhausted, 1);
        drop(l);
        assert!(table.claim(1, 0).is_none(), "not free until reaped");
        table.reap();
        assert!(table.claim(1, 0).is_some());
    }

    #[test]
    fn failed_clean_discards_resource() {
        let table = LoanTable::<Res>::new(1);
        let mut c = table.claim(1, 0).unwrap();
        c.resource_or_try_init(|| {
            Ok::<_, ()>(Res {
                cleaned: 0,
                ok: false,
            })
        })
        .unwrap();
        drop(c.lend(LoanKind::Spliced, 1, 1, 0, 10, 0));
        table.reap();
        assert_eq!(table.stats().resources_discarded, 1);
        let mut c = table.claim(1, 0).unwrap();
        let r = c
            .resource_or_try_init(|| {
                Ok::<_, ()>(Res {
                    cleaned: 100,
                    ok: true,
                })
            })
            .unwrap();
        assert_eq!(
            r.cleaned, 100,
            "a fresh resource replaced the discarded one"
        );
    }

    #[test]
    fn abandoned_claim_is_reaped() {
        let table = LoanTable::<Res>::new(1);
        assert_eq!(table.stats().claims_abandoned, 0);
        drop(table.claim(1, 0).unwrap());
        assert_eq!(table.reap(), 1);
        assert_eq!(table.stats().claims_abandoned, 1);
        assert!(table.claim(1, 0).is_some());
    }

    #[test]
    fn reaper_thread_frees_returned_loans() {
        let table = LoanTable::<Res>::new(4);
        let reaper = Reaper::start(table.clone(), 1000).unwrap();
        for _ in 0..100 {
            let c = loop {
                if let Some(c) = table.claim(1, 0) {
                    break c;
                }
                std::thread::yield_now();
            };
            drop(c.lend(LoanKind::Buffered, 1, 1, 0, 1, 0));
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while table.stats().returned_by_reaper < 100 && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert_eq!(table.stats().returned_by_reaper, 100);
        drop(reaper);
        assert!(table.snapshot().is_empty());
    }
}
