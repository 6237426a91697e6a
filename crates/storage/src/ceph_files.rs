//! Files of the CephFS backend kept open between READs of the same caller.
//!
//! libcephfs keeps a file's read-ahead with its open file (`Fh`): a file opened and closed for
//! every READ, as each NFS call used to, read every 1 MiB of a sequential read from the OSDs
//! only when asked, and every open and close changed the capabilities this client wants from
//! the MDS. A file stays open while its caller keeps using it, like nfs-ganesha's per-file
//! descriptor, as coherent as any CephFS client's open file.
//!
//! An open file is shared only by calls of the same caller (it was opened with that caller's
//! credentials, which checked its permission), for
//! at most [`KEPT_IDLE_MS_MAX`] after its last use; at most [`KEPT_MAX`] are kept ([`IdleList`]:
//! no libcephfs call runs under its lock).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::idle_list::IdleList;
use crate::Identity;

/// Files kept open for the whole export.
pub(crate) const KEPT_MAX: usize = 64;
/// How long a file stays open after its last use. Short: a removed file's space comes back
/// only when its last open file is closed.
pub(crate) const KEPT_IDLE_MS_MAX: u64 = 2_000;

struct Kept<F> {
    ino: u64,
    who: Identity,
    file: Arc<F>,
}

/// `F` is the open file (a libcephfs file, or a stand-in in tests).
pub(crate) struct OpenFiles<F> {
    kept: IdleList<Kept<F>>,
}

impl<F> Default for OpenFiles<F> {
    fn default() -> Self {
        OpenFiles {
            kept: IdleList::new(KEPT_MAX, Duration::from_millis(KEPT_IDLE_MS_MAX)),
        }
    }
}

impl<F> OpenFiles<F> {
    /// The file `ino` kept open for `who`, now used again at `now`.
    pub fn get(&self, ino: u64, who: &Identity, now: Instant) -> Option<Arc<F>> {
        let k = self.kept.take(now, |k| k.ino == ino && k.who == *who)?;
        let file = k.file.clone();
        self.kept.put(now, k);
        Some(file)
    }

    /// Keeps `file` open for later calls of `who` on `ino` (the least recently used file is
    /// closed past [`KEPT_MAX`]).
    pub fn keep(&self, ino: u64, who: &Identity, file: Arc<F>, now: Instant) {
        let who = who.clone();
        self.kept.put(now, Kept { ino, who, file });
    }

    /// Closes every file kept open on `ino` (it was removed or replaced), so that its space
    /// comes back now.
    pub fn forget(&self, ino: u64) {
        self.kept.remove_all(|k| k.ino == ino);
    }

    /// How many files are kept open now.
    pub fn kept(&self) -> usize {
        self.kept.len()
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
    fn a_file_is_shared_only_by_its_caller_and_use_keeps_it() {
        let files = OpenFiles::default();
        let t0 = Instant::now();
        files.keep(7, &who(1000), Arc::new("r"), t0);
        files.keep(9, &who(1000), Arc::new("other"), t0);
        assert!(files.get(7, &who(1001), t0).is_none(), "another caller");
        assert!(files.get(8, &who(1000), t0).is_none(), "another file");
        let half = t0 + Duration::from_millis(KEPT_IDLE_MS_MAX / 2);
        assert_eq!(files.get(7, &who(1000), half).as_deref(), Some(&"r"));
        let later = t0 + Duration::from_millis(KEPT_IDLE_MS_MAX + 1);
        assert!(files.get(7, &who(1000), later).is_some(), "used since");
        assert_eq!(files.kept(), 1, "the unused one idled out");
        files.forget(7);
        assert_eq!(files.kept(), 0);
    }
}
