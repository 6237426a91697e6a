//! NFSv4.2 asynchronous server-side copies (RFC 7862 §4.4, §15.2.3): the jobs, the threads that
//! run them, their limits and counts. A leaf: COPY, OFFLOAD_STATUS and OFFLOAD_CANCEL
//! (`crate::nfs4`) admit, read and cancel jobs here, and the NFSv4 supervisor sends each finished
//! job's CB_OFFLOAD (RFC 7862 §16.1) and cancels the jobs of purged clients.
//!
//! # Liveness rules
//! * A job runs on a thread of its own, never on the file-system worker pool, and at most
//!   `copy_jobs_max` of them (and `copy_jobs_per_client_max` of one client) run at once: past
//!   either, [`CopyJobs::admit`] refuses at once (COPY then answers NFS4ERR_DELAY).
//! * A job copies in slices of at most [`SLICE_BYTES`] and looks at its cancel flag between
//!   slices, so OFFLOAD_CANCEL, a purge or shutdown stops it within one slice. No lock is held
//!   across a slice: progress is an atomic, the outcome a `OnceLock`.
//! * The registry's lock is a leaf held for one map operation. Records are bounded too
//!   ([`CopyJobs::records_max`]): a finished job stays until its CB_OFFLOAD is answered, or for
//!   [`KEEP_FINISHED_MS`] when the client cannot be told.
//! * A job needs no connection: it survives its client's connections closing, and ends when it
//!   is done or cancelled. What it copied is real data in the destination (a prefix of the
//!   range, in order), whatever stops it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use rnfs_storage::Error as StorageError;

use crate::lockdep::TrackedMutex;

/// Most bytes one step of a job copies before it looks at its cancel flag again.
pub const SLICE_BYTES: u64 = 8 << 20;
/// How long a finished job whose CB_OFFLOAD was not answered stays for OFFLOAD_STATUS.
pub const KEEP_FINISHED_MS: u64 = 60_000;
/// Records (running and finished) per running-job slot.
const RECORDS_PER_SLOT: usize = 4;

/// A job's id: the `other` field of its callback stateid.
pub type JobId = [u8; 12];

/// Copies one slice: `(offset into the range, length)` to the bytes copied (0: the source
/// ended).
pub type SliceFn = Box<dyn FnMut(u64, u64) -> Result<u64, StorageError> + Send>;

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Bytes copied, from the start of the range.
    pub copied: u64,
    /// The error that stopped it early, if one did.
    pub error: Option<StorageError>,
    /// Stopped by OFFLOAD_CANCEL, a purge of its client or shutdown.
    pub cancelled: bool,
    pub finished_ms: u64,
}

/// One asynchronous copy.
#[derive(Debug)]
pub struct Job {
    pub id: JobId,
    pub client: u64,
    /// Wire handles of the source and destination (for CB_OFFLOAD and `rnfsd ctl`).
    pub src_fh: Bytes,
    pub dst_fh: Bytes,
    pub total: u64,
    pub started_ms: u64,
    copied: AtomicU64,
    cancel: AtomicBool,
    outcome: OnceLock<Outcome>,
    /// Its CB_OFFLOAD was handed to the back channel.
    reported: AtomicBool,
}

impl Job {
    pub fn copied(&self) -> u64 {
        self.copied.load(Ordering::Relaxed)
    }
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.get()
    }
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
    /// Marks the CB_OFFLOAD sent; `false` if it already was.
    pub fn take_report(&self) -> bool {
        !self.reported.swap(true, Ordering::Relaxed)
    }
    /// What `rnfsd ctl nfs4 copies` says of it.
    pub fn state(&self) -> &'static str {
        match self.outcome() {
            None if self.cancelled() => "cancelling",
            None => "running",
            Some(o) if o.cancelled => "cancelled",
            Some(o) if o.error.is_some() => "failed",
            Some(_) if self.reported.load(Ordering::Relaxed) => "done, reported",
            Some(_) => "done",
        }
    }
}

/// Why a job was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("copy_jobs_max asynchronous copies are running")]
    Full,
    #[error("this client runs copy_jobs_per_client_max asynchronous copies")]
    ClientFull,
    #[error("no thread could be started for the copy")]
    NoThread,
}

/// Counts for metrics and `rnfsd ctl`.
#[derive(Debug, Default)]
pub struct CopyCounters {
    /// Bytes copied by COPY, synchronous and asynchronous.
    pub bytes: AtomicU64,
    pub sync_copies: AtomicU64,
    pub async_started: AtomicU64,
    pub async_refused: AtomicU64,
    pub cancelled: AtomicU64,
    pub offloads_sent: AtomicU64,
}

/// Every asynchronous copy of the server.
pub struct CopyJobs {
    jobs: TrackedMutex<HashMap<JobId, Arc<Job>>>,
    /// Jobs whose thread is still running.
    running: AtomicUsize,
    next: AtomicU64,
    /// Random per start: callback stateids of an earlier run never name a job of this one.
    salt: [u8; 4],
    jobs_max: usize,
    per_client_max: usize,
    /// Woken when a job finishes (its CB_OFFLOAD is due).
    pub finished: tokio::sync::Notify,
    pub counters: CopyCounters,
}

impl CopyJobs {
    pub fn new(salt: [u8; 4], jobs_max: usize, per_client_max: usize) -> CopyJobs {
        CopyJobs {
            jobs: TrackedMutex::new("copies.jobs", HashMap::new()),
            running: AtomicUsize::new(0),
            next: AtomicU64::new(1),
            salt,
            jobs_max,
            per_client_max,
            finished: tokio::sync::Notify::new(),
            counters: CopyCounters::default(),
        }
    }

    /// Most records kept, running and finished.
    pub fn records_max(&self) -> usize {
        self.jobs_max * RECORDS_PER_SLOT
    }

    /// Jobs whose thread runs now (the `rnfsd_nfs4_copy_jobs` gauge).
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    /// Every record, oldest first.
    pub fn list(&self) -> Vec<Arc<Job>> {
        let mut v: Vec<Arc<Job>> = self.jobs.lock().values().cloned().collect();
        v.sort_by_key(|j| (j.started_ms, j.id));
        v
    }

    pub fn get(&self, id: &JobId) -> Option<Arc<Job>> {
        self.jobs.lock().get(id).cloned()
    }

    pub fn remove(&self, id: &JobId) -> Option<Arc<Job>> {
        self.jobs.lock().remove(id)
    }

    pub fn lock_info(&self) -> crate::lockdep::LockInfo {
        self.jobs.info()
    }

    /// Starts a job copying `total` bytes with `slice`, for `client`, if the limits allow.
    pub fn start(
        self: &Arc<Self>,
        client: u64,
        (src_fh, dst_fh): (Bytes, Bytes),
        total: u64,
        now_ms: u64,
        slice: SliceFn,
    ) -> Result<Arc<Job>, Refused> {
        let job = self.admit(client, src_fh, dst_fh, total, now_ms)?;
        let (jobs, j) = (self.clone(), job.clone());
        let spawned = std::thread::Builder::new()
            .name("rnfsd-copy".into())
            .spawn(move || run(&jobs, &j, slice));
        if spawned.is_err() {
            self.remove(&job.id);
            self.running.fetch_sub(1, Ordering::Relaxed);
            self.counters.async_refused.fetch_add(1, Ordering::Relaxed);
            return Err(Refused::NoThread);
        }
        self.counters.async_started.fetch_add(1, Ordering::Relaxed);
        Ok(job)
    }

    /// Takes a running slot and records the job, or says which limit refuses it.
    fn admit(
        &self,
        client: u64,
        src_fh: Bytes,
        dst_fh: Bytes,
        total: u64,
        now_ms: u64,
    ) -> Result<Arc<Job>, Refused> {
        let mut jobs = self.jobs.lock();
        let refused = if self.running() >= self.jobs_max || jobs.len() >= self.records_max() {
            Some(Refused::Full)
        } else if jobs
            .values()
            .filter(|j| j.client == client && j.outcome().is_none())
            .count()
            >= self.per_client_max
        {
            Some(Refused::ClientFull)
        } else {
            None
        };
        if let Some(r) = refused {
            self.counters.async_refused.fetch_add(1, Ordering::Relaxed);
            return Err(r);
        }
        let mut id = [0u8; 12];
        id[..4].copy_from_slice(&self.salt);
        id[4..].copy_from_slice(&self.next.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        let job = Arc::new(Job {
            id,
            client,
            src_fh,
            dst_fh,
            total,
            started_ms: now_ms,
            copied: AtomicU64::new(0),
            cancel: AtomicBool::new(false),
            outcome: OnceLock::new(),
            reported: AtomicBool::new(false),
        });
        jobs.insert(id, job.clone());
        self.running.fetch_add(1, Ordering::Relaxed);
        Ok(job)
    }

    /// Asks `client`'s jobs to stop (its client id is gone); each stops within one slice.
    pub fn cancel_client(&self, client: u64) {
        for j in self.list().iter().filter(|j| j.client == client) {
            j.cancel();
            if j.outcome().is_some() {
                self.remove(&j.id);
            }
        }
    }

    /// Asks every running job to stop (shutdown); each stops within one slice.
    pub fn cancel_all(&self) {
        for j in self.list() {
            j.cancel();
        }
    }
}

/// A job's thread: slices until done, cancelled or failed; then the outcome, and a wake-up for
/// the supervisor (which sends CB_OFFLOAD). A cancelled job leaves no record: nobody is told.
fn run(jobs: &CopyJobs, job: &Job, mut slice: SliceFn) {
    // A thread starts with its creator's credentials (a worker's last caller's groups): act as
    // plain root between the caller's own switches, as the storage backend expects.
    drop(rnfs_sys::identity::set_thread_identity(0, 0, &[]));
    let mut copied = 0u64;
    let mut error = None;
    while copied < job.total && !job.cancelled() {
        let len = (job.total - copied).min(SLICE_BYTES);
        match slice(copied, len) {
            Ok(0) => break, // the source shrank meanwhile
            Ok(n) => {
                copied += n.min(len);
                job.copied.store(copied, Ordering::Relaxed);
                jobs.counters.bytes.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let cancelled = job.cancelled();
    let _ = job.outcome.set(Outcome {
        copied,
        error,
        cancelled,
        finished_ms: crate::clock::now_ms(),
    });
    if cancelled {
        jobs.counters.cancelled.fetch_add(1, Ordering::Relaxed);
        jobs.remove(&job.id);
    }
    jobs.running.fetch_sub(1, Ordering::Relaxed);
    jobs.finished.notify_one();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::{Duration, Instant};

    fn wait_for(what: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !what() {
            assert!(Instant::now() < deadline, "timed out");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn fhs() -> (Bytes, Bytes) {
        (Bytes::from_static(b"s"), Bytes::from_static(b"d"))
    }

    #[test]
    fn a_job_copies_in_slices_and_records_its_outcome() {
        let jobs = Arc::new(CopyJobs::new([1; 4], 2, 1));
        let seen = Arc::new(TrackedMutex::new("test.seen", Vec::new()));
        let s = seen.clone();
        let slice: SliceFn = Box::new(move |off, len| {
            s.lock().push((off, len));
            Ok(len)
        });
        let job = jobs.start(7, fhs(), SLICE_BYTES * 2 + 5, 0, slice).unwrap();
        wait_for(|| job.outcome().is_some());
        let o = job.outcome().unwrap();
        assert_eq!(
            (o.copied, o.cancelled, o.error.clone()),
            (SLICE_BYTES * 2 + 5, false, None)
        );
        let want = vec![
            (0, SLICE_BYTES),
            (SLICE_BYTES, SLICE_BYTES),
            (2 * SLICE_BYTES, 5),
        ];
        assert_eq!(*seen.lock(), want);
        // Finished, it stays for its CB_OFFLOAD, and no longer counts as running.
        assert!(jobs.get(&job.id).is_some());
        wait_for(|| jobs.running() == 0);
        assert_eq!(
            jobs.counters.bytes.load(Ordering::Relaxed),
            SLICE_BYTES * 2 + 5
        );
    }

    #[test]
    fn limits_refuse_at_once_and_cancel_stops_within_a_slice() {
        let jobs = Arc::new(CopyJobs::new([2; 4], 2, 1));
        let gate = Arc::new(AtomicBool::new(false));
        let blocked = |gate: Arc<AtomicBool>| -> SliceFn {
            Box::new(move |_, len| {
                while !gate.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok(len.min(1))
            })
        };
        let a = jobs
            .start(1, fhs(), 1 << 40, 0, blocked(gate.clone()))
            .unwrap();
        // Client 1 is at its own limit; client 2 takes the last slot; then all are busy.
        let e = jobs
            .start(1, fhs(), 10, 0, blocked(gate.clone()))
            .unwrap_err();
        assert_eq!(e, Refused::ClientFull);
        let b = jobs
            .start(2, fhs(), 1 << 40, 0, blocked(gate.clone()))
            .unwrap();
        let e = jobs
            .start(3, fhs(), 10, 0, blocked(gate.clone()))
            .unwrap_err();
        assert_eq!(e, Refused::Full);
        assert_eq!(jobs.running(), 2);
        a.cancel();
        b.cancel();
        gate.store(true, Ordering::Relaxed);
        wait_for(|| jobs.running() == 0);
        // Cancelled jobs leave no record, and report how much they copied.
        assert!(jobs.list().is_empty());
        let o = a.outcome().unwrap();
        assert!(o.cancelled && o.copied <= 1, "{o:?}");
        assert_eq!(jobs.counters.async_refused.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn an_error_ends_the_job_with_what_was_copied() {
        let jobs = Arc::new(CopyJobs::new([3; 4], 1, 1));
        let mut calls = 0;
        let slice: SliceFn = Box::new(move |_, len| {
            calls += 1;
            if calls == 2 {
                Err(StorageError::NoSpc)
            } else {
                Ok(len)
            }
        });
        let job = jobs.start(1, fhs(), SLICE_BYTES * 3, 0, slice).unwrap();
        wait_for(|| job.outcome().is_some());
        let o = job.outcome().unwrap();
        assert_eq!(
            (o.copied, o.error.clone()),
            (SLICE_BYTES, Some(StorageError::NoSpc))
        );
        assert_eq!(job.state(), "failed");
    }
}
