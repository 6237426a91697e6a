//! A short list of things kept for reuse (open streams, open files), bounded in length and in
//! idle time, least recently used first. The lock guards the list only: what leaves it (taken
//! out, expired, evicted) is dropped after the lock is released, so dropping may call into a
//! library (closing a file) without holding it.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

pub(crate) struct IdleList<T> {
    /// (last used, item), least recently used first.
    items: Mutex<VecDeque<(Instant, T)>>,
    len_max: usize,
    idle_max: Duration,
}

impl<T> IdleList<T> {
    pub fn new(len_max: usize, idle_max: Duration) -> IdleList<T> {
        assert!(len_max > 0, "an idle list keeps at least one item");
        IdleList {
            items: Mutex::new(VecDeque::new()),
            len_max,
            idle_max,
        }
    }

    /// Takes out the least recently used item that `matches` (items idle for longer than the
    /// limit are dropped first).
    pub fn take(&self, now: Instant, matches: impl Fn(&T) -> bool) -> Option<T> {
        let (found, expired) = {
            let mut items = self.lock();
            let expired = self.expire(&mut items, now);
            let at = items.iter().position(|(_, t)| matches(t));
            (at.and_then(|i| items.remove(i)).map(|(_, t)| t), expired)
        };
        drop(expired);
        found
    }

    /// Adds `item`, used at `now`; the least recently used item is dropped past the length limit.
    pub fn put(&self, now: Instant, item: T) {
        let dropped = {
            let mut items = self.lock();
            let mut dropped = self.expire(&mut items, now);
            items.push_back((now, item));
            while items.len() > self.len_max {
                dropped.extend(items.pop_front());
            }
            dropped
        };
        drop(dropped);
    }

    /// Drops every item that `matches`.
    pub fn remove_all(&self, matches: impl Fn(&T) -> bool) {
        let removed: VecDeque<(Instant, T)> = {
            let mut items = self.lock();
            let (removed, kept) = items.drain(..).partition(|(_, t)| matches(t));
            *items = kept;
            removed
        };
        drop(removed);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<(Instant, T)>> {
        // The list stays consistent whatever panicked while it was held.
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Removes the items idle for longer than the limit, for the caller to drop once the lock
    /// is released.
    fn expire(&self, items: &mut VecDeque<(Instant, T)>, now: Instant) -> Vec<(Instant, T)> {
        let mut expired = Vec::new();
        while items
            .front()
            .is_some_and(|(used, _)| now.saturating_duration_since(*used) > self.idle_max)
        {
            expired.extend(items.pop_front());
        }
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_in_length_and_idle_time_least_recently_used_first() {
        let idle = Duration::from_millis(100);
        let l = IdleList::new(3, idle);
        let t0 = Instant::now();
        for i in 0..5 {
            l.put(t0, i);
        }
        assert_eq!(l.len(), 3);
        assert_eq!(l.take(t0, |&i| i < 2), None, "0 and 1 were dropped");
        assert_eq!(
            l.take(t0, |&i| i >= 2),
            Some(2),
            "least recently used first"
        );
        l.put(t0 + idle, 9);
        assert_eq!(
            l.take(t0 + idle + idle / 2, |_| true),
            Some(9),
            "the rest idled out"
        );
        l.put(t0, 7);
        l.put(t0, 8);
        l.remove_all(|&i| i == 7);
        assert_eq!(l.take(t0, |_| true), Some(8));
        assert_eq!(l.len(), 0);
    }
}
