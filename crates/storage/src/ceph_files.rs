//! Files of the CephFS backend kept open between READs and WRITEs of the same caller.
//!
//! libcephfs keeps a file's read-ahead with its open file (`Fh`): a file opened and closed for
//! every READ, as each NFS call used to, read every 1 MiB of a sequential read from the OSDs
//! only when asked, and every open and close changed the capabilities this client wants from
//! the MDS. A file stays open while its caller keeps using it, like nfs-ganesha's per-file
//! descriptor, as coherent as any CephFS client's open file.
//!
//! An open file is shared only by calls of the same caller (it was opened with that caller's
//! credentials, which checked its permission), for reading or for writing as it was opened, for
//! at most [`KEPT_IDLE_MS_MAX`] after its last use; at most [`KEPT_MAX`] are kept. The lock
//! guards the list only: no libcephfs call runs under it, and files are closed after it is
//! released.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::Identity;

/// Files kept open for the whole export.
pub(crate) const KEPT_MAX: usize = 64;
/// How long a file stays open after its last use. Short: a removed file's space comes back
/// only when its last open file is closed.
pub(crate) const KEPT_IDLE_MS_MAX: u64 = 2_000;

struct Kept<F> {
    ino: u64,
    who: Identity,
    write: bool,
    file: Arc<F>,
    used_at: Instant,
}

/// `F` is the open file (a libcephfs file, or a stand-in in tests).
pub(crate) struct OpenFiles<F> {
    kept: Mutex<VecDeque<Kept<F>>>,
}

impl<F> Default for OpenFiles<F> {
    fn default() -> Self {
        OpenFiles {
            kept: Mutex::default(),
        }
    }
}

impl<F> OpenFiles<F> {
    /// The file `ino` kept open for `who` (for writing if `write`), marked used at `now`.
    /// Files idle too long are closed on the way.
    pub fn get(&self, ino: u64, who: &Identity, write: bool, now: Instant) -> Option<Arc<F>> {
        let (found, expired) = {
            let mut kept = self.lock();
            let expired = Self::expire(&mut kept, now);
            let at = kept
                .iter()
                .position(|k| k.ino == ino && k.write == write && k.who == *who);
            // Most recently used last, so that expiry and eviction take the front.
            let found = at.and_then(|i| kept.remove(i)).map(|mut k| {
                k.used_at = now;
                let file = k.file.clone();
                kept.push_back(k);
                file
            });
            (found, expired)
        };
        drop(expired);
        found
    }

    /// Keeps `file` open for later calls of `who` on `ino`; the least recently used file is
    /// closed when [`KEPT_MAX`] are kept.
    pub fn keep(&self, ino: u64, who: &Identity, write: bool, file: Arc<F>, now: Instant) {
        let closed = {
            let mut kept = self.lock();
            let mut closed = Self::expire(&mut kept, now);
            kept.push_back(Kept {
                ino,
                who: who.clone(),
                write,
                file,
                used_at: now,
            });
            while kept.len() > KEPT_MAX {
                closed.extend(kept.pop_front());
            }
            closed
        };
        drop(closed);
    }

    /// Closes every file kept open on `ino` (it was removed or replaced), so that its space
    /// comes back now.
    pub fn forget(&self, ino: u64) {
        let closed: VecDeque<Kept<F>> = {
            let mut kept = self.lock();
            let (gone, stay) = kept.drain(..).partition(|k| k.ino == ino);
            *kept = stay;
            gone
        };
        drop(closed);
    }

    /// How many files are kept open now.
    pub fn kept(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Kept<F>>> {
        // The list stays consistent whatever panicked while it was held.
        self.kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Removes the files idle for longer than [`KEPT_IDLE_MS_MAX`] (least recently used
    /// first), for the caller to close once the lock is released.
    fn expire(kept: &mut VecDeque<Kept<F>>, now: Instant) -> Vec<Kept<F>> {
        let idle_max = Duration::from_millis(KEPT_IDLE_MS_MAX);
        let mut expired = Vec::new();
        while kept
            .front()
            .is_some_and(|k| now.saturating_duration_since(k.used_at) > idle_max)
        {
            expired.extend(kept.pop_front());
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

    #[test]
    fn a_file_is_shared_only_by_its_caller_in_its_mode() {
        let files = OpenFiles::default();
        let t0 = Instant::now();
        files.keep(7, &who(1000), false, Arc::new("r"), t0);
        assert!(
            files.get(7, &who(1001), false, t0).is_none(),
            "another caller"
        );
        assert!(files.get(7, &who(1000), true, t0).is_none(), "for writing");
        assert!(
            files.get(8, &who(1000), false, t0).is_none(),
            "another file"
        );
        assert_eq!(files.get(7, &who(1000), false, t0).as_deref(), Some(&"r"));
        assert_eq!(files.kept(), 1, "still kept after use");
        files.forget(7);
        assert_eq!(files.kept(), 0);
    }

    #[test]
    fn files_are_bounded_in_number_and_idle_time_and_use_keeps_them() {
        let files = OpenFiles::default();
        let t0 = Instant::now();
        for ino in 0..KEPT_MAX as u64 + 2 {
            files.keep(ino, &who(0), false, Arc::new(ino), t0);
        }
        assert_eq!(files.kept(), KEPT_MAX);
        assert!(
            files.get(0, &who(0), false, t0).is_none(),
            "least recently used closed"
        );
        let half = t0 + Duration::from_millis(KEPT_IDLE_MS_MAX / 2);
        assert!(files.get(5, &who(0), false, half).is_some());
        let later = t0 + Duration::from_millis(KEPT_IDLE_MS_MAX + 1);
        assert!(files.get(5, &who(0), false, later).is_some(), "used since");
        assert_eq!(files.kept(), 1, "the others idled out");
    }
}
