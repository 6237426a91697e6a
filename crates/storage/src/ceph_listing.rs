//! Directory listings of the CephFS backend continued where the previous READDIR(PLUS) page
//! stopped (RFC 1813 §3.3.16–17: the client sends back the cookie of the last entry it got).
//!
//! libcephfs marks a directory as completely cached only at the end of one stream that started
//! at the beginning and ran to the end. Opening the directory again and seeking to the cookie
//! for every page never does that, so every page of every listing asked the MDS again. A stream
//! parked between pages lets one listing fill that cache and later listings be answered from
//! it, for as long as the MDS lets this client keep it.
//!
//! A parked stream is continued only for the same caller (opening it checked that caller's
//! read permission), only at the cookie where it stopped, and only for [`PARKED_IDLE_MS_MAX`];
//! at most [`PARKED_MAX`] are kept. The lock guards the list only: no libcephfs call runs under
//! it, and streams are closed after it is released.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::Identity;

/// Streams kept open between pages, for the whole export.
pub(crate) const PARKED_MAX: usize = 32;
/// How long a parked stream waits for its next page.
pub(crate) const PARKED_IDLE_MS_MAX: u64 = 10_000;

/// A listing stopped at a page boundary: `S` is the stream (a libcephfs directory stream, or a
/// stand-in in tests).
pub(crate) struct Parked<S> {
    pub dir_ino: u64,
    /// The cookie the next page starts at (that of the last entry sent).
    pub cookie: u64,
    pub who: Identity,
    pub stream: S,
    /// The entry read but not sent (it did not fit in the page): it comes first next time.
    pub pending: Option<rnfs_cephfs::DirEntry>,
    pub parked_at: Instant,
}

pub(crate) struct Listings<S> {
    parked: Mutex<VecDeque<Parked<S>>>,
}

impl<S> Default for Listings<S> {
    fn default() -> Self {
        Listings {
            parked: Mutex::default(),
        }
    }
}

impl<S> Listings<S> {
    /// The stream parked for `who` in directory `dir_ino` at `cookie`, if any. Expired streams
    /// are closed on the way.
    pub fn take(
        &self,
        dir_ino: u64,
        cookie: u64,
        who: &Identity,
        now: Instant,
    ) -> Option<Parked<S>> {
        let (found, expired) = {
            let mut parked = self.lock();
            let expired = Self::expire(&mut parked, now);
            let at = parked
                .iter()
                .position(|p| p.dir_ino == dir_ino && p.cookie == cookie && p.who == *who);
            (at.and_then(|i| parked.remove(i)), expired)
        };
        drop(expired);
        found
    }

    /// Parks `p` for its next page, closing the oldest stream when [`PARKED_MAX`] are kept.
    pub fn park(&self, p: Parked<S>) {
        let closed = {
            let mut parked = self.lock();
            let mut closed = Self::expire(&mut parked, p.parked_at);
            parked.push_back(p);
            while parked.len() > PARKED_MAX {
                closed.extend(parked.pop_front());
            }
            closed
        };
        drop(closed);
    }

    /// How many streams are parked now.
    pub fn parked(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Parked<S>>> {
        // The list stays consistent whatever panicked while it was held.
        self.parked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Removes the streams idle for longer than [`PARKED_IDLE_MS_MAX`] (oldest first), for the
    /// caller to close once the lock is released.
    fn expire(parked: &mut VecDeque<Parked<S>>, now: Instant) -> Vec<Parked<S>> {
        let idle_max = Duration::from_millis(PARKED_IDLE_MS_MAX);
        let mut expired = Vec::new();
        while parked
            .front()
            .is_some_and(|p| now.saturating_duration_since(p.parked_at) > idle_max)
        {
            expired.extend(parked.pop_front());
        }
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(uid: u32) -> Identity {
        Identity {
            uid,
            gid: uid,
            groups: vec![],
        }
    }

    fn parked(dir_ino: u64, cookie: u64, uid: u32, at: Instant) -> Parked<u64> {
        Parked {
            dir_ino,
            cookie,
            who: who(uid),
            stream: cookie,
            pending: None,
            parked_at: at,
        }
    }

    #[test]
    fn a_stream_is_continued_only_by_its_caller_in_its_directory_at_its_cookie() {
        let l = Listings::default();
        let t0 = Instant::now();
        l.park(parked(7, 100, 1000, t0));
        assert!(l.take(7, 100, &who(1001), t0).is_none(), "another caller");
        assert!(
            l.take(8, 100, &who(1000), t0).is_none(),
            "another directory"
        );
        assert!(l.take(7, 99, &who(1000), t0).is_none(), "another cookie");
        assert_eq!(l.take(7, 100, &who(1000), t0).map(|p| p.stream), Some(100));
        assert!(l.take(7, 100, &who(1000), t0).is_none(), "taken once");
    }

    #[test]
    fn streams_are_bounded_in_number_and_idle_time() {
        let l = Listings::default();
        let t0 = Instant::now();
        for c in 0..PARKED_MAX as u64 + 3 {
            l.park(parked(1, c, 0, t0));
        }
        assert_eq!(l.parked(), PARKED_MAX);
        assert!(
            l.take(1, 0, &who(0), t0).is_none(),
            "the oldest were closed"
        );
        assert!(l.take(1, 3, &who(0), t0).is_some());
        let idle = Duration::from_millis(PARKED_IDLE_MS_MAX + 1);
        let later = t0 + idle;
        l.park(parked(2, 5, 0, later));
        assert_eq!(l.parked(), 1, "every stream idle too long was closed");
        assert!(l.take(2, 5, &who(0), later + idle).is_none(), "expired");
        assert_eq!(l.parked(), 0);
    }
}
