//! Locks that say who holds them, since when, where they were taken, and how many wait.
//!
//! The server's few locks are all leaf locks (held for a handful of field accesses, never while
//! taking another, never across `.await`). [`TrackedMutex`] keeps that promise checkable in
//! production: each acquisition records the holder's thread number, the call site
//! (`#[track_caller]`) and the time, in atomics the watchdog and the admin interface read without
//! taking the lock. The cost is a few relaxed stores per acquisition.
//!
//! # Lock order
//! There is none to keep, because no code path holds two of these at once, but for one leaf:
//! `registry.client_totals`, taken by a closing connection (wherever its last reference goes,
//! perhaps under another lock) and never held while taking another. The locks are:
//! `service.exports`, `service.mounts`, `service.portmap`, `drc`, `registry.connections`,
//! `registry.client_totals`, `transport.per_client`, the worker pool's `pool.state` and the
//! watchdog's `watchdog.reports`.
//! The storage backend's descriptor caches and remembered listings have their own leaf locks (see
//! `rnfs-storage`'s `local/cache.rs` and `local/listing.rs`). The loan table has no lock at all
//! (`rnfs-loan`).

use std::panic::Location;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

/// A small number naming the current thread in lock reports.
pub fn thread_number() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local!(static ID: u64 = NEXT.fetch_add(1, Ordering::Relaxed));
    ID.with(|id| *id)
}

/// A mutex that records its holder.
pub struct TrackedMutex<T> {
    inner: Mutex<T>,
    state: Arc<LockState>,
}

/// What a [`TrackedMutex`] records about itself; shared with the process-wide list.
struct LockState {
    name: &'static str,
    /// 0 when free.
    holder: AtomicU64,
    /// Where the holder took the lock. Its own tiny lock is held only to store or copy one
    /// reference, never while waiting for anything.
    site: Mutex<Option<&'static Location<'static>>>,
    since_ms: AtomicU64,
    waiters: AtomicU32,
    acquisitions: AtomicU64,
}

/// Every live tracked lock, weakly; pruned when a lock is created.
static ALL_LOCKS: Mutex<Vec<Weak<LockState>>> = Mutex::new(Vec::new());

/// The state of every tracked lock alive in the process, in creation order.
pub fn all_locks() -> Vec<LockInfo> {
    let states: Vec<Arc<LockState>> = ALL_LOCKS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    states.iter().map(|s| s.info()).collect()
}

/// A lock's state, as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    pub name: &'static str,
    /// Thread number of the holder, if held.
    pub holder: Option<u64>,
    /// `file:line` where the current holder took it.
    pub site: Option<String>,
    pub held_since_ms: Option<u64>,
    pub waiters: u32,
    pub acquisitions: u64,
}

impl<T> TrackedMutex<T> {
    pub fn new(name: &'static str, value: T) -> Self {
        let state = Arc::new(LockState {
            name,
            holder: AtomicU64::new(0),
            site: Mutex::new(None),
            since_ms: AtomicU64::new(0),
            waiters: AtomicU32::new(0),
            acquisitions: AtomicU64::new(0),
        });
        {
            let mut all = ALL_LOCKS.lock().unwrap_or_else(PoisonError::into_inner);
            all.retain(|w| w.strong_count() > 0);
            all.push(Arc::downgrade(&state));
        }
        TrackedMutex {
            inner: Mutex::new(value),
            state,
        }
    }

    /// Takes the lock, recording the caller as its holder. Poisoning is ignored: the data behind
    /// these locks stays consistent between statements.
    #[track_caller]
    pub fn lock(&self) -> TrackedGuard<'_, T> {
        let site = Location::caller();
        let st = &*self.state;
        st.waiters.fetch_add(1, Ordering::Relaxed);
        let guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        st.waiters.fetch_sub(1, Ordering::Relaxed);
        *st.site.lock().unwrap_or_else(PoisonError::into_inner) = Some(site);
        st.since_ms.store(crate::clock::now_ms(), Ordering::Relaxed);
        st.holder.store(thread_number(), Ordering::Release);
        st.acquisitions.fetch_add(1, Ordering::Relaxed);
        TrackedGuard { lock: self, guard }
    }

    /// The lock's state, read without taking it.
    pub fn info(&self) -> LockInfo {
        self.state.info()
    }
}

impl LockState {
    fn info(&self) -> LockInfo {
        let holder = self.holder.load(Ordering::Acquire);
        let held = holder != 0;
        let site = *self.site.lock().unwrap_or_else(PoisonError::into_inner);
        LockInfo {
            name: self.name,
            holder: held.then_some(holder),
            site: site
                .filter(|_| held)
                .map(|l| format!("{}:{}", l.file(), l.line())),
            held_since_ms: held.then(|| self.since_ms.load(Ordering::Relaxed)),
            waiters: self.waiters.load(Ordering::Relaxed),
            acquisitions: self.acquisitions.load(Ordering::Relaxed),
        }
    }
}

/// The guard; releasing it clears the holder.
pub struct TrackedGuard<'a, T> {
    lock: &'a TrackedMutex<T>,
    guard: MutexGuard<'a, T>,
}

impl<T> std::ops::Deref for TrackedGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> std::ops::DerefMut for TrackedGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T> Drop for TrackedGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.state.holder.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_holder_and_site() {
        let m = TrackedMutex::new("test.lock", 5);
        assert_eq!(m.info().holder, None);
        let g = m.lock();
        let info = m.info();
        assert_eq!(info.holder, Some(thread_number()));
        assert!(
            info.site
                .as_deref()
                .is_some_and(|s| s.contains("lockdep.rs")),
            "{info:?}"
        );
        assert_eq!(*g, 5);
        drop(g);
        let info = m.info();
        assert_eq!((info.holder, info.site, info.acquisitions), (None, None, 1));
    }

    #[test]
    fn every_live_lock_is_listed() {
        let m = TrackedMutex::new("test.listed", ());
        let _g = m.lock();
        let listed = all_locks();
        let info = listed
            .iter()
            .find(|l| l.name == "test.listed")
            .expect("listed");
        assert_eq!(info.holder, Some(thread_number()));
        drop(_g);
        drop(m);
        assert!(all_locks().iter().all(|l| l.name != "test.listed"));
    }
}
