//! The duplicate request cache (DRC): a non-idempotent call is executed once, however often it is
//! retransmitted.
//!
//! Clients retransmit when a reply is late or lost — on the same connection, on a new one after a
//! reconnect, or over UDP. Running a retransmitted REMOVE, RENAME or exclusive CREATE a second time
//! would turn success into a spurious error (or worse); running a WRITE twice could undo a later
//! one. So for the modifying procedures (SETATTR, WRITE, CREATE, MKDIR, SYMLINK, MKNOD, REMOVE,
//! RMDIR, RENAME, LINK, COMMIT: the rows flagged `cached` in [`crate::nfs::NFS3`]):
//! * a retransmission of a call still in progress is dropped (the client will retransmit again and
//!   get the reply), not executed twice;
//! * a retransmission of a call that completed gets the cached reply, byte for byte.
//!
//! The key is the client's IP address (not its port: a reconnecting client has a new port), the
//! transaction id, program, version, procedure, and a checksum of the call's credential and
//! arguments (their length and first bytes) — xids alone collide (some clients derive them from the clock). The cache is bounded
//! by entries and by bytes; the oldest completed entries are evicted first. Its lock is a leaf
//! lock held for a map operation, never while a procedure runs.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::lockdep::TrackedMutex;

/// What identifies one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub client: IpAddr,
    pub xid: u32,
    pub prog: u32,
    pub vers: u32,
    pub proc_num: u32,
    pub checksum: u64,
}

/// How much of a call's arguments the checksum covers. Enough for every procedure's handles,
/// names, offsets and counts (and the start of a WRITE's data); hashing a whole 1 MiB WRITE would
/// cost more than writing it. Linux's nfsd covers 256 bytes the same way.
pub const CHECKSUM_ARGS_BYTES_MAX: usize = 256;

impl Key {
    /// A checksum of the parts of a call that make it "the same call": who sends it, the length
    /// of its arguments and their first [`CHECKSUM_ARGS_BYTES_MAX`] bytes.
    pub fn checksum(credential: &rnfs_oncrpc::Credential, args: &[u8]) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        credential.flavor().hash(&mut h);
        if let rnfs_oncrpc::Credential::Sys(sys) = credential {
            (sys.uid, sys.gid, &sys.gids, &sys.machine_name[..]).hash(&mut h);
        }
        args.len().hash(&mut h);
        args[..args.len().min(CHECKSUM_ARGS_BYTES_MAX)].hash(&mut h);
        h.finish()
    }
}

enum Entry {
    InProgress,
    Done(Bytes),
}

struct Inner {
    map: HashMap<Key, Entry>,
    /// Completed keys, oldest first (in-progress ones are not evictable).
    order: VecDeque<Key>,
    bytes: usize,
}

/// Counters (monotonic).
#[derive(Debug, Default)]
pub struct DrcStats {
    pub hits: AtomicU64,
    pub in_progress_drops: AtomicU64,
    pub evictions: AtomicU64,
    pub inserts: AtomicU64,
}

/// The cache.
pub struct Drc {
    inner: TrackedMutex<Inner>,
    entries_max: usize,
    bytes_max: usize,
    pub stats: DrcStats,
}

/// What to do with a call.
pub enum Lookup {
    /// New: execute it, then [`Pending::complete`] with the reply.
    Execute(Pending),
    /// Completed before: send this reply again.
    Replay(Bytes),
    /// Still executing: drop this copy.
    Drop,
}

/// A call being executed. Dropping it without completing (a handler that failed to reply)
/// forgets the call, so a retransmission executes it.
pub struct Pending {
    drc: Arc<Drc>,
    key: Option<Key>,
}

impl Pending {
    /// Records the reply (the RPC message, without record marker) for retransmissions.
    pub fn complete(mut self, reply: &[u8]) {
        if let Some(key) = self.key.take() {
            self.drc.store(key, Bytes::copy_from_slice(reply));
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let mut inner = self.drc.inner.lock();
            if matches!(inner.map.get(&key), Some(Entry::InProgress)) {
                inner.map.remove(&key);
            }
        }
    }
}

impl Drc {
    pub fn new(entries_max: usize, bytes_max: usize) -> Arc<Drc> {
        Arc::new(Drc {
            inner: TrackedMutex::new(
                "drc",
                Inner {
                    map: HashMap::new(),
                    order: VecDeque::new(),
                    bytes: 0,
                },
            ),
            entries_max: entries_max.max(1),
            bytes_max,
            stats: DrcStats::default(),
        })
    }

    /// Looks a call up, registering it as in progress if it is new.
    pub fn begin(self: &Arc<Self>, key: Key) -> Lookup {
        let mut inner = self.inner.lock();
        match inner.map.get(&key) {
            Some(Entry::Done(reply)) => {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                return Lookup::Replay(reply.clone());
            }
            Some(Entry::InProgress) => {
                self.stats.in_progress_drops.fetch_add(1, Ordering::Relaxed);
                return Lookup::Drop;
            }
            None => {}
        }
        // In-progress entries are bounded by the requests in flight; completed ones below.
        inner.map.insert(key, Entry::InProgress);
        Lookup::Execute(Pending {
            drc: self.clone(),
            key: Some(key),
        })
    }

    fn store(&self, key: Key, reply: Bytes) {
        let mut evicted = 0u64;
        let mut inner = self.inner.lock();
        if reply.len() > self.bytes_max {
            inner.map.remove(&key);
            return;
        }
        inner.bytes += reply.len();
        inner.map.insert(key, Entry::Done(reply));
        inner.order.push_back(key);
        self.stats.inserts.fetch_add(1, Ordering::Relaxed);
        while inner.order.len() > self.entries_max || inner.bytes > self.bytes_max {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            if let Some(Entry::Done(r)) = inner.map.remove(&old) {
                inner.bytes -= r.len();
                evicted += 1;
            }
        }
        drop(inner);
        self.stats.evictions.fetch_add(evicted, Ordering::Relaxed);
    }

    /// Completed entries and their bytes.
    pub fn usage(&self) -> (usize, usize) {
        let inner = self.inner.lock();
        (inner.order.len(), inner.bytes)
    }

    pub fn lock_info(&self) -> crate::lockdep::LockInfo {
        self.inner.info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(xid: u32) -> Key {
        Key {
            client: "127.0.0.1".parse().unwrap(),
            xid,
            prog: 100003,
            vers: 3,
            proc_num: 12,
            checksum: 7,
        }
    }

    #[test]
    fn checksum_covers_length_and_leading_bytes() {
        let cred = rnfs_oncrpc::Credential::None;
        let mut args = vec![7u8; 4096];
        let base = Key::checksum(&cred, &args);
        args[CHECKSUM_ARGS_BYTES_MAX - 1] ^= 1;
        assert_ne!(Key::checksum(&cred, &args), base, "a leading byte differs");
        args[CHECKSUM_ARGS_BYTES_MAX - 1] ^= 1;
        args[CHECKSUM_ARGS_BYTES_MAX] ^= 1;
        assert_eq!(
            Key::checksum(&cred, &args),
            base,
            "bytes past the covered prefix are not read"
        );
        args.push(0);
        assert_ne!(Key::checksum(&cred, &args), base, "the length differs");
    }

    #[test]
    fn execute_once_then_replay() {
        let drc = Drc::new(10, 1 << 20);
        let Lookup::Execute(p) = drc.begin(key(1)) else {
            panic!("new call executes")
        };
        assert!(
            matches!(drc.begin(key(1)), Lookup::Drop),
            "in progress: dropped"
        );
        p.complete(b"reply");
        let Lookup::Replay(r) = drc.begin(key(1)) else {
            panic!("completed: replayed")
        };
        assert_eq!(&r[..], b"reply");
        assert_eq!(drc.stats.hits.load(Ordering::Relaxed), 1);
        assert_eq!(drc.stats.in_progress_drops.load(Ordering::Relaxed), 1);
        // A different checksum is a different call.
        assert!(matches!(
            drc.begin(Key {
                checksum: 8,
                ..key(1)
            }),
            Lookup::Execute(_)
        ));
    }

    #[test]
    fn abandoned_call_is_forgotten() {
        let drc = Drc::new(10, 1 << 20);
        let Lookup::Execute(p) = drc.begin(key(1)) else {
            panic!()
        };
        drop(p);
        assert!(matches!(drc.begin(key(1)), Lookup::Execute(_)));
    }

    #[test]
    fn bounded_by_entries_and_bytes() {
        let drc = Drc::new(3, 10);
        for x in 0..5 {
            let Lookup::Execute(p) = drc.begin(key(x)) else {
                panic!()
            };
            p.complete(b"abcd");
        }
        let (entries, bytes) = drc.usage();
        assert!(
            entries <= 2 && bytes <= 10,
            "{entries} entries, {bytes} bytes"
        );
        assert!(drc.stats.evictions.load(Ordering::Relaxed) >= 3);
        assert!(
            matches!(drc.begin(key(4)), Lookup::Replay(_)),
            "newest kept"
        );
        assert!(
            matches!(drc.begin(key(0)), Lookup::Execute(_)),
            "oldest evicted"
        );
    }
}
