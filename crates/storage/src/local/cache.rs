//! The descriptor caches of [`super::LocalFs`]: regular files kept open between READ, WRITE and
//! COMMIT calls ([`OpenFiles`]), and `O_PATH` descriptors of recently used directories
//! ([`PathFds`]).
//!
//! # Why
//! * **Cost.** Without it every READ/WRITE would run `open_by_handle_at` and `open` again; a stream
//!   of small WRITEs would mostly measure those.
//! * **Write-back errors.** Since Linux 4.13 a write-back error is reported by `fsync` to each open
//!   file description that was open when it happened (errseq), not to descriptions opened later. An
//!   `fsync` on a freshly opened descriptor at COMMIT time can therefore *miss* the failure of the
//!   pages that UNSTABLE WRITEs left in the page cache. So the descriptor that did the unstable
//!   writes stays open until it has been `fsync`ed: by COMMIT, by a FILE_SYNC write, or when it
//!   leaves the cache ([`OpenFile`]'s `Drop`). A failed `fsync` is counted in the backend's
//!   write-back error counter, which makes the server change its write verifier (RFC 1813 §3.3.7),
//!   so clients re-send whatever may have been lost: no acknowledged UNSTABLE data is lost silently.
//!
//! # What an entry is
//! An [`OpenFile`] holds a descriptor opened **as root** (so it can be shared by every caller; each
//! call checks *its* caller's permission with `faccessat2` first), read-only until the first write
//! needs it read-write (then the entry is replaced by a read-write one). Read-only until needed
//! because a descriptor open for writing has side effects on the server: local `execve` of the file
//! fails with `ETXTBSY` and read leases cannot be taken.
//!
//! # Limits and eviction
//! * At most `limit` entries (default [`DEFAULT_OPEN_FILES`]); inserting past it evicts the least
//!   recently used entry.
//! * [`OpenFiles::close_idle`] evicts entries not used since its previous call; the server calls it
//!   periodically (see `LocalFs::close_idle_files`), so files are not held open for long after
//!   clients are done with them. Counting calls instead of reading a clock keeps the backend free of
//!   time.
//! * [`OpenFiles::close_idle_writers`] does the same for *write* use: a read-write entry with no
//!   unsynced writes that no granted write used since the previous round leaves the cache, even
//!   while READs and GETATTRs keep it in use (they need no write permission, so anyone holding the
//!   handle could otherwise keep the file open for writing, and a local `execve` of it failing,
//!   forever). The next READ opens it read-only again.
//! * [`PathFds`] works the same way. Its `O_PATH` descriptors pin their directories: one removed
//!   by a local process lingers until its entry leaves the cache, which the idle rounds bound to
//!   a few seconds after its last use.
//! * Entries are also removed when the file is found unlinked (`st_nlink == 0`: removed behind our
//!   back) and when REMOVE or RENAME through this backend unlinks the name it was reached by.
//!
//! # Locking
//! Lock order: `OpenFiles::inner` and `PathFds::inner` are **leaf** locks (never held together). It is held only for map operations: no system
//! call, no identity switch, no other lock is taken while it is held, and no [`OpenFile`] is
//! dropped under it (its `Drop` may `fsync`): every method returns the entries it removed, and the
//! caller drops them after the lock is released. The only other lock in the local backend is the
//! remembered listings' (see [`super::listing`]), also a leaf.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};

/// Default bound on the open-file cache of one export.
pub const DEFAULT_OPEN_FILES: usize = 1024;

/// UNSTABLE bytes written through one descriptor between two starts of its write-back (see
/// [`OpenFile::note_unstable`]): at most this much of a stream is left unstarted for its COMMIT
/// to write; 8 MiB is eight 1 MiB WRITEs, one system call per 8 MiB, and large enough for the
/// disk to get whole extents.
pub const WRITEBACK_START_BYTES: u64 = 8 << 20;

/// One cached open regular file.
#[derive(Debug)]
pub struct OpenFile {
    fd: OwnedFd,
    writable: bool,
    /// UNSTABLE writes went through `fd` that no `fsync` has covered yet.
    dirty: AtomicBool,
    /// The sequential UNSTABLE stream written through `fd`, if any (see
    /// [`OpenFile::note_unstable`]). Held for a few comparisons, never across a system call, and
    /// never waited for.
    stream: Mutex<Stream>,
    writeback_errors: Arc<AtomicU64>,
    /// The last READ permission granted through this descriptor, as a keyed digest of the caller
    /// and of the file's owner, mode and ctime (0 = none): the next READ by the same caller of the
    /// unchanged file skips the identity switch and the permission check (see `open_for_read`).
    read_granted: AtomicU64,
    /// A granted write used this (read-write) descriptor since the last write-idle round (see
    /// [`OpenFiles::close_idle_writers`]).
    written: AtomicBool,
    /// The file system's change generation when this descriptor was last found inside the
    /// export (0 = never; see `subtree`).
    inside: AtomicU64,
}

impl OpenFile {
    pub(crate) fn new(fd: OwnedFd, writable: bool, writeback_errors: Arc<AtomicU64>) -> OpenFile {
        OpenFile {
            fd,
            writable,
            dirty: AtomicBool::new(false),
            stream: Mutex::new(Stream::default()),
            writeback_errors,
            read_granted: AtomicU64::new(0),
            written: AtomicBool::new(writable),
            inside: AtomicU64::new(0),
        }
    }

    /// Where the subtree check remembers its last verdict (see `subtree`).
    pub(crate) fn inside_memo(&self) -> &AtomicU64 {
        &self.inside
    }

    /// Records that a caller allowed to write is using this descriptor (call it once the
    /// permission is granted: a denied call must not keep a file open for writing).
    pub(crate) fn note_write_use(&self) {
        self.written.store(true, Ordering::Relaxed);
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Open for writing (else only for reading).
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// Whether READ was last granted for `grant` (a non-zero digest, see `read_granted`).
    pub(crate) fn read_granted(&self, grant: u64) -> bool {
        self.read_granted.load(Ordering::Acquire) == grant
    }

    /// Remembers that READ was granted for `grant`; one entry, the last caller wins.
    pub(crate) fn grant_read(&self, grant: u64) {
        self.read_granted.store(grant, Ordering::Release);
    }

    /// Records an UNSTABLE write (call it after the write).
    pub(crate) fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    /// Notes an UNSTABLE write of `len` bytes at `offset` and, every [`WRITEBACK_START_BYTES`]
    /// of a sequential stream, starts write-back of what the stream wrote since, without waiting
    /// for it.
    ///
    /// Why: the kernel starts write-back only past `dirty_background_ratio` of memory (GiBs
    /// here) or after 30 s, so a client streaming UNSTABLE writes otherwise leaves it all to its
    /// COMMIT, which then waits for every byte to reach the disk (0.30-0.60 s per GiB on the
    /// bench machine, a third of a 1 GiB copy). Started as the data comes, the disk works while
    /// the network does. Only streams: random writes would each start write-back of scattered
    /// pages that may be written again soon (measured: 4 KiB random writes at 16 in flight lost
    /// a fifth of their rate when every 8 MiB of them started write-back of the whole file). A
    /// failure to start is left to COMMIT's `fsync`, which reports write-back errors either way.
    pub(crate) fn note_unstable(&self, offset: u64, len: u64) {
        // Bookkeeping for a heuristic: a writer that finds another one noting its write skips
        // its own note rather than wait (the stream's end moves on with the next write).
        let range = match self.stream.try_lock() {
            Ok(mut stream) => stream.wrote(offset, len),
            Err(TryLockError::Poisoned(p)) => p.into_inner().wrote(offset, len),
            Err(TryLockError::WouldBlock) => None,
        };
        if let Some((start, end)) = range {
            if let Err(e) = rnfs_sys::start_writeback(self.fd.as_fd(), start, end - start) {
                tracing::debug!(error = %e, "could not start write-back; COMMIT will write it all");
            }
        }
    }

    /// Forgets unsynced UNSTABLE writes: for a file with no links left, whose data nobody can read
    /// again (syncing it would only cost time).
    pub(crate) fn discard_unsynced(&self) {
        self.dirty.store(false, Ordering::Release);
    }

    /// Whether UNSTABLE writes await an `fsync`.
    pub fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::Acquire)
    }

    /// `fsync`s the file, covering every earlier write through this descriptor. A failure is
    /// counted as a write-back error.
    pub(crate) fn fsync(&self) -> io::Result<()> {
        // Cleared *before* the fsync: a write that lands after this point sets it again, one that
        // landed before is covered by the fsync below.
        self.dirty.store(false, Ordering::Release);
        rnfs_sys::fsync(self.fd.as_fd()).inspect_err(|e| self.writeback_error(e))
    }

    /// `fdatasync`s the file; a failure is counted as a write-back error. Leaves the dirty mark:
    /// COMMIT and eviction still `fsync` (the metadata of earlier UNSTABLE writes may be pending).
    pub(crate) fn fdatasync(&self) -> io::Result<()> {
        rnfs_sys::fdatasync(self.fd.as_fd()).inspect_err(|e| self.writeback_error(e))
    }

    fn writeback_error(&self, e: &io::Error) {
        self.writeback_errors.fetch_add(1, Ordering::AcqRel);
        tracing::error!(error = %e, "write-back error: data acknowledged as UNSTABLE may be lost");
    }
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        // The last holder lets go of a descriptor with unsynced UNSTABLE writes: sync them now,
        // through this very descriptor, so a write-back error is seen and counted.
        if *self.dirty.get_mut() {
            let _ = self.fsync();
        }
    }
}

/// A sequential stream of writes through one descriptor: writes that land within
/// [`WRITEBACK_START_BYTES`] of the last one's end continue it (several in flight arrive a little
/// out of order), any other starts a new one.
#[derive(Debug, Default)]
struct Stream {
    /// The furthest end written in the stream.
    end: u64,
    /// Bytes of the stream written since write-back was last started.
    unstarted_bytes: u64,
    /// Where write-back was last started up to (or where the stream began).
    started_to: u64,
}

impl Stream {
    /// Notes a write; returns the byte range whose write-back should start now, if any.
    fn wrote(&mut self, offset: u64, len: u64) -> Option<(u64, u64)> {
        let end = offset.saturating_add(len);
        if offset.abs_diff(self.end) > WRITEBACK_START_BYTES {
            *self = Stream {
                end,
                unstarted_bytes: 0,
                started_to: offset,
            };
        }
        self.end = self.end.max(end);
        self.unstarted_bytes = self.unstarted_bytes.saturating_add(len);
        if self.unstarted_bytes < WRITEBACK_START_BYTES {
            return None;
        }
        // From a little before the last start: writes that arrived late, below it, go too.
        let start = self.started_to.saturating_sub(WRITEBACK_START_BYTES);
        self.started_to = self.end;
        self.unstarted_bytes = 0;
        Some((start, self.end))
    }
}

#[derive(Debug)]
struct Slot<T> {
    value: T,
    /// Position in `Lru::order` (larger = used more recently).
    tick: u64,
    /// The `close_idle` round in which it was last used.
    round: u64,
}

/// A least-recently-used map from kernel-handle bytes to `T`, with idle rounds.
#[derive(Debug)]
pub(crate) struct Lru<T> {
    map: HashMap<Vec<u8>, Slot<T>>,
    /// tick → key, oldest first.
    order: BTreeMap<u64, Vec<u8>>,
    tick: u64,
    round: u64,
}

impl<T> Default for Lru<T> {
    fn default() -> Self {
        Lru {
            map: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            round: 0,
        }
    }
}

impl<T: Clone> Lru<T> {
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn touch(&mut self, key: &[u8]) -> Option<T> {
        self.tick += 1;
        let (tick, round) = (self.tick, self.round);
        let slot = self.map.get_mut(key)?;
        let key = self
            .order
            .remove(&slot.tick)
            .unwrap_or_else(|| key.to_vec());
        slot.tick = tick;
        slot.round = round;
        let value = slot.value.clone();
        self.order.insert(tick, key);
        Some(value)
    }

    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<T> {
        let slot = self.map.remove(key)?;
        self.order.remove(&slot.tick);
        Some(slot.value)
    }

    pub(crate) fn pop_oldest(&mut self) -> Option<T> {
        let (_, key) = self.order.pop_first()?;
        self.map.remove(&key).map(|s| s.value)
    }

    fn oldest_round(&self) -> Option<u64> {
        let (_, key) = self.order.first_key_value()?;
        self.map.get(key).map(|s| s.round)
    }

    /// Inserts a key known to be absent, first evicting the oldest entries down to `limit - 1`.
    pub(crate) fn insert_new(&mut self, key: &[u8], value: T, limit: usize, evicted: &mut Vec<T>) {
        while self.map.len() >= limit {
            match self.pop_oldest() {
                Some(old) => evicted.push(old),
                None => break,
            }
        }
        self.tick += 1;
        let (tick, round) = (self.tick, self.round);
        self.order.insert(tick, key.to_vec());
        self.map.insert(key.to_vec(), Slot { value, tick, round });
    }

    /// Takes out every entry not used since the previous call, and starts a new round.
    pub(crate) fn close_idle(&mut self) -> Vec<T> {
        let mut evicted = Vec::new();
        // Least recently used first; stop at the first entry used in the current round.
        while self.oldest_round().is_some_and(|r| r < self.round) {
            evicted.extend(self.pop_oldest());
        }
        self.round += 1;
        evicted
    }
}

fn lock<T>(m: &Mutex<Lru<T>>) -> MutexGuard<'_, Lru<T>> {
    // Nothing under the lock can panic half-way through an update, so a poisoned map is whole.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A bounded, least-recently-used map from kernel-handle bytes to shared entries: the common part
/// of [`OpenFiles`] and [`PathFds`], which differ only in how an entry is inserted.
pub struct DescriptorCache<T> {
    limit: usize,
    inner: Mutex<Lru<T>>,
}

impl<T> fmt::Debug for DescriptorCache<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DescriptorCache")
            .field("limit", &self.limit)
            .field("len", &lock(&self.inner).map.len())
            .finish()
    }
}

impl<T: Clone> DescriptorCache<T> {
    /// A cache of at most `limit` entries (at least 1).
    pub fn new(limit: usize) -> Self {
        DescriptorCache {
            limit: limit.max(1),
            inner: Mutex::new(Lru::default()),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn len(&self) -> usize {
        lock(&self.inner).map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entry for `key`, marked as just used.
    pub fn get(&self, key: &[u8]) -> Option<T> {
        lock(&self.inner).touch(key)
    }

    /// Takes `key`'s entry out.
    pub fn remove(&self, key: &[u8]) -> Option<T> {
        lock(&self.inner).remove(key)
    }

    /// Takes out the `n` least recently used entries.
    pub fn shrink_by(&self, n: usize) -> Vec<T> {
        let mut lru = lock(&self.inner);
        (0..n).map_while(|_| lru.pop_oldest()).collect()
    }

    /// Takes out every entry (at shutdown: dropping open files syncs unstable writes).
    pub fn take_all(&self) -> Vec<T> {
        let mut lru = lock(&self.inner);
        let mut all = Vec::new();
        while let Some(f) = lru.pop_oldest() {
            all.push(f);
        }
        all
    }

    /// Takes out every entry not used since the previous call, and starts a new round.
    pub fn close_idle(&self) -> Vec<T> {
        lock(&self.inner).close_idle()
    }
}

/// The bounded map from kernel-handle bytes to [`OpenFile`].
pub type OpenFiles = DescriptorCache<Arc<OpenFile>>;

/// Entries taken out of the cache. Drop it only after the cache's lock is released: dropping the
/// last reference to a dirty [`OpenFile`] `fsync`s it.
pub type Evicted = Vec<Arc<OpenFile>>;

impl OpenFiles {
    /// Takes out every read-write entry with no unsynced writes that no granted write used since
    /// the previous call, and starts a new write round (see the module docs). Entries with
    /// unsynced UNSTABLE writes stay until COMMIT syncs them (their descriptor must see any
    /// write-back error).
    pub fn close_idle_writers(&self) -> Evicted {
        let mut lru = lock(&self.inner);
        let idle: Vec<Vec<u8>> = lru
            .map
            .iter()
            .filter(|(_, slot)| {
                let f = &slot.value;
                f.writable() && !f.written.swap(false, Ordering::Relaxed) && !f.is_dirty()
            })
            .map(|(key, _)| key.clone())
            .collect();
        idle.iter().filter_map(|key| lru.remove(key)).collect()
    }

    /// Inserts `file` under `key` unless an entry at least as capable is already there (another
    /// thread raced us), and returns the entry now cached plus what left the cache: the loser of
    /// the race or a replaced read-only entry, and least recently used entries beyond the limit.
    pub fn insert(&self, key: &[u8], file: Arc<OpenFile>) -> (Arc<OpenFile>, Evicted) {
        let mut evicted = Vec::new();
        let mut lru = lock(&self.inner);
        if let Some(existing) = lru.touch(key) {
            if existing.writable() || !file.writable() {
                evicted.push(file);
                return (existing, evicted);
            }
            evicted.extend(lru.remove(key));
        }
        lru.insert_new(key, file.clone(), self.limit, &mut evicted);
        (file, evicted)
    }
}

/// One directory's `O_PATH` descriptor, kept between calls.
#[derive(Debug)]
pub struct PathFd {
    fd: OwnedFd,
    /// The last search permission granted on this directory, as a keyed digest of the caller and
    /// of the directory's owner, mode and ctime (0 = none): see `LocalFs::lookup`.
    search_granted: AtomicU64,
    /// As [`OpenFile`]'s: the change generation of the last inside verdict (0 = none).
    inside: AtomicU64,
}

impl PathFd {
    pub(crate) fn new(fd: OwnedFd) -> PathFd {
        PathFd {
            fd,
            search_granted: AtomicU64::new(0),
            inside: AtomicU64::new(0),
        }
    }

    /// Where the subtree check remembers its last verdict (see `subtree`).
    pub(crate) fn inside_memo(&self) -> &AtomicU64 {
        &self.inside
    }

    pub(crate) fn search_granted(&self, grant: u64) -> bool {
        self.search_granted.load(Ordering::Acquire) == grant
    }

    pub(crate) fn grant_search(&self, grant: u64) {
        self.search_granted.store(grant, Ordering::Release);
    }
}

impl AsFd for PathFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The bounded map from kernel-handle bytes to [`PathFd`]: resolving a directory's handle that was
/// resolved in the last few seconds costs one `fstat` and the subtree check (still inside the
/// export? see [`super::subtree`]) instead of `open_by_handle_at` + `fstat` + `close`. Same limits
/// and idle rounds as [`OpenFiles`]; dropping a [`PathFd`] only closes a
/// descriptor, so entries may be dropped anywhere but under the lock.
pub type PathFds = DescriptorCache<Arc<PathFd>>;

impl PathFds {
    /// Caches `fd` under `key` unless another thread did first, and returns the cached entry.
    pub fn insert(&self, key: &[u8], fd: Arc<PathFd>) -> Arc<PathFd> {
        let mut evicted = Vec::new();
        let cached = {
            let mut lru = lock(&self.inner);
            match lru.touch(key) {
                Some(existing) => existing,
                None => {
                    lru.insert_new(key, fd.clone(), self.limit, &mut evicted);
                    fd
                }
            }
        };
        drop(evicted); // closes descriptors: outside the lock
        cached
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// Write-back starts every `WRITEBACK_START_BYTES` of a stream, over what the stream wrote
    /// since the last start (and a margin below it for late arrivals).
    #[test]
    fn a_sequential_stream_starts_write_back_every_few_mib() {
        let mut s = Stream::default();
        let per = WRITEBACK_START_BYTES / MIB;
        let mut starts = Vec::new();
        for i in 0..4 * per {
            if let Some(r) = s.wrote(i * MIB, MIB) {
                starts.push((i, r));
            }
        }
        let w = WRITEBACK_START_BYTES;
        assert_eq!(
            starts,
            vec![
                (per - 1, (0, w)),
                (2 * per - 1, (0, 2 * w)),
                (3 * per - 1, (w, 3 * w)),
                (4 * per - 1, (2 * w, 4 * w)),
            ]
        );
    }

    /// Writes a little out of order (several in flight) still make one stream.
    #[test]
    fn out_of_order_writes_within_the_window_continue_the_stream() {
        let mut s = Stream::default();
        let per = WRITEBACK_START_BYTES / MIB;
        let mut started = 0;
        for pair in 0..2 * per {
            // 1, 0, 3, 2, 5, 4, ...
            let i = pair ^ 1;
            started += u64::from(s.wrote(i * MIB, MIB).is_some());
        }
        assert_eq!(started, 2);
    }

    /// Small writes scattered over a large file never start write-back: their pages may be
    /// written again soon, and COMMIT writes them anyway.
    #[test]
    fn scattered_writes_never_start_write_back() {
        let mut s = Stream::default();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // 4 KiB writes at 4 KiB-aligned offsets anywhere in 64 GiB.
            let offset = (x % (16 << 20)) * 4096;
            assert_eq!(s.wrote(offset, 4096), None);
        }
    }

    /// A stream of UNSTABLE writes to a file on a disk file system gets its first 8 MiB
    /// written back without an `fsync` (without the start, the kernel would leave them dirty for
    /// 30 s at these sizes).
    #[test]
    fn a_stream_is_written_back_without_a_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let f = std::fs::File::create(&path).unwrap();
        let file = OpenFile::new(f.into(), true, Arc::new(AtomicU64::new(0)));
        let chunk = vec![7u8; MIB as usize];
        let first = WRITEBACK_START_BYTES;
        for i in 0..(first / MIB + 1) {
            rnfs_sys::pwrite_all(file.fd(), &chunk, i * MIB).unwrap();
            file.mark_dirty();
            file.note_unstable(i * MIB, MIB);
        }
        match rnfs_sys::dirty_pages(file.fd(), 0, first) {
            Err(e) => return eprintln!("skipped: no cachestat(2) here ({e})"),
            Ok(0) if dirty_pages_stay(&path) == Some(false) => {
                return eprintln!("skipped: {} keeps no dirty pages", path.display())
            }
            Ok(_) => {}
        }
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while rnfs_sys::dirty_pages(file.fd(), 0, first).unwrap() > 0 {
            assert!(
                std::time::Instant::now() < until,
                "the stream's first {first} bytes are still dirty after 10 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // The last MiB was not part of a start yet.
        file.discard_unsynced();
    }

    /// Whether a file written next to `path` has dirty pages right after the write (tmpfs has
    /// none to write back: the test above means nothing there).
    fn dirty_pages_stay(path: &std::path::Path) -> Option<bool> {
        let probe = path.with_extension("probe");
        let f = std::fs::File::create(&probe).ok()?;
        rnfs_sys::pwrite_all(f.as_fd(), &[1u8; 4096], 0).ok()?;
        rnfs_sys::dirty_pages(f.as_fd(), 0, 4096)
            .ok()
            .map(|n| n > 0)
    }

    fn file(writable: bool, errors: &Arc<AtomicU64>) -> Arc<OpenFile> {
        let fd = rnfs_sys::reopen(
            std::fs::File::open("/dev/null")
                .expect("open /dev/null")
                .as_fd(),
            libc::O_RDONLY,
        )
        .expect("reopen");
        Arc::new(OpenFile::new(fd, writable, errors.clone()))
    }

    #[test]
    fn lru_bound_and_order() {
        let errors = Arc::new(AtomicU64::new(0));
        let c = OpenFiles::new(3);
        for k in 0u8..3 {
            assert!(c.insert(&[k], file(false, &errors)).1.is_empty());
        }
        assert!(c.get(&[0]).is_some()); // 1 is now the oldest
        let (_, ev) = c.insert(&[3], file(false, &errors));
        assert_eq!(ev.len(), 1);
        assert!(c.get(&[1]).is_none());
        assert_eq!(c.len(), 3);
        // A racing insert of the same key keeps the cached entry unless it upgrades it.
        let cached = c.get(&[0]).expect("cached");
        let (now, ev) = c.insert(&[0], file(false, &errors));
        assert!(Arc::ptr_eq(&now, &cached) && ev.len() == 1);
        let rw = file(true, &errors);
        let (now, ev) = c.insert(&[0], rw.clone());
        assert!(Arc::ptr_eq(&now, &rw) && Arc::ptr_eq(&ev[0], &cached));
        assert_eq!(c.len(), 3);
        assert_eq!(c.shrink_by(2).len(), 2);
        assert_eq!(c.len(), 1);
        assert!(c.remove(&[0]).is_some());
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn idle_entries_close_after_a_round_without_use() {
        let errors = Arc::new(AtomicU64::new(0));
        let c = OpenFiles::new(10);
        c.insert(b"a", file(false, &errors));
        c.insert(b"b", file(false, &errors));
        assert!(c.close_idle().is_empty(), "used in the current round");
        assert!(c.get(b"a").is_some());
        let ev = c.close_idle();
        assert_eq!(ev.len(), 1, "b was not used since the last round");
        assert!(c.get(b"b").is_none());
        assert_eq!(
            c.close_idle().len(),
            1,
            "a was last used before the previous round"
        );
        assert_eq!(c.len(), 0);
    }
}
