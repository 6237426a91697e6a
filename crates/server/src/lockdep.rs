//! Locks that say who holds them, since when, where they were taken, and how many wait.
//!
//! The server's few locks are all leaf locks (held for a handful of field accesses, never while
//! taking another, never across `.await`). [`TrackedMutex`] keeps that promise checkable in
//! production: each acquisition records the holder's thread number, the call site
//! (`#[track_caller]`) and the time, in atomics the watchdog and the admin interface read without
//! taking the lock. The cost is a few relaxed stores per acquisition.
//!
//! # Lock order
//! There is none to keep, because no code path holds two of these at once. The locks are:
//! `service.exports`, `service.mounts`, `service.portmap`, `registry.connections` and the
//! watchdog's `watchdog.reports`; the storage backend's open-file cache lock is its own leaf lock.

use std::panic::Location;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A small number naming the current thread in lock reports.
pub fn thread_number() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local!(static ID: u64 = NEXT.fetch_add(1, Ordering::Relaxed));
    ID.with(|id| *id)
}

/// A mutex that records its holder.
pub struct TrackedMutex<T> {
    name: &'static str,
    inner: Mutex<T>,
    /// 0 when free.
    holder: AtomicU64,
    /// Where the holder took the lock. Its own tiny lock is held only to store or copy one
    /// reference, never while waiting for anything.
    site: Mutex<Option<&'static Location<'static>>>,
    since_ms: AtomicU64,
    waiters: AtomicU32,
    acquisitions: AtomicU64,
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
        TrackedMutex {
            name,
            inner: Mutex::new(value),
            holder: AtomicU64::new(0),
            site: Mutex::new(None),
            since_ms: AtomicU64::new(0),
            waiters: AtomicU32::new(0),
            acquisitions: AtomicU64::new(0),
        }
    }

    /// Takes the lock, recording the caller as its holder. Poisoning is ignored: the data behind
    /// these locks stays consistent between statements.
    #[track_caller]
    pub fn lock(&self) -> TrackedGuard<'_, T> {
        let site = Location::caller();
        self.waiters.fetch_add(1, Ordering::Relaxed);
        let guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        *self.site.lock().unwrap_or_else(PoisonError::into_inner) = Some(site);
        self.since_ms
            .store(crate::transport::now_ms(), Ordering::Relaxed);
        self.holder.store(thread_number(), Ordering::Release);
        self.acquisitions.fetch_add(1, Ordering::Relaxed);
        TrackedGuard { lock: self, guard }
    }

    /// The lock's state, read without taking it.
    pub fn info(&self) -> LockInfo {
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
        self.lock.holder.store(0, Ordering::Release);
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
}
