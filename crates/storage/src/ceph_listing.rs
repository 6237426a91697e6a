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
//! at most [`PARKED_MAX`] are kept ([`IdleList`]: no libcephfs call runs under its lock).

use std::time::{Duration, Instant};

use crate::idle_list::IdleList;
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
}

pub(crate) struct Listings<S> {
    parked: IdleList<Parked<S>>,
}

impl<S> Default for Listings<S> {
    fn default() -> Self {
        Listings {
            parked: IdleList::new(PARKED_MAX, Duration::from_millis(PARKED_IDLE_MS_MAX)),
        }
    }
}

impl<S> Listings<S> {
    /// The stream parked for `who` in directory `dir_ino` at `cookie`, if any.
    pub fn take(
        &self,
        dir_ino: u64,
        cookie: u64,
        who: &Identity,
        now: Instant,
    ) -> Option<Parked<S>> {
        self.parked.take(now, |p| {
            p.dir_ino == dir_ino && p.cookie == cookie && p.who == *who
        })
    }

    /// Parks `p` for its next page (the oldest stream is closed past [`PARKED_MAX`]).
    pub fn park(&self, p: Parked<S>, now: Instant) {
        self.parked.put(now, p);
    }

    /// How many streams are parked now.
    pub fn parked(&self) -> usize {
        self.parked.len()
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

    fn parked(dir_ino: u64, cookie: u64, uid: u32) -> Parked<u64> {
        Parked {
            dir_ino,
            cookie,
            who: who(uid),
            stream: cookie,
            pending: None,
        }
    }

    #[test]
    fn a_stream_is_continued_only_by_its_caller_in_its_directory_at_its_cookie() {
        let l = Listings::default();
        let t0 = Instant::now();
        l.park(parked(7, 100, 1000), t0);
        assert!(l.take(7, 100, &who(1001), t0).is_none(), "another caller");
        assert!(
            l.take(8, 100, &who(1000), t0).is_none(),
            "another directory"
        );
        assert!(l.take(7, 99, &who(1000), t0).is_none(), "another cookie");
        assert_eq!(l.take(7, 100, &who(1000), t0).map(|p| p.stream), Some(100));
        assert!(l.take(7, 100, &who(1000), t0).is_none(), "taken once");
        for c in 0..PARKED_MAX as u64 + 1 {
            l.park(parked(1, c, 0), t0);
        }
        assert_eq!(l.parked(), PARKED_MAX, "bounded");
        let later = t0 + Duration::from_millis(PARKED_IDLE_MS_MAX + 1);
        assert!(l.take(1, 5, &who(0), later).is_none(), "expired");
        assert_eq!(l.parked(), 0);
    }
}
