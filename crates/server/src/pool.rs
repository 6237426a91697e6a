//! The file-system worker pool: threads that run request handlers and nothing else.
//!
//! # Why not `tokio::task::spawn_blocking`
//! * **Hand-off cost.** Tokio's blocking pool queues a job under its mutex and signals a condition
//!   variable while still holding it, so the woken thread often wakes only to sleep again on that
//!   mutex. With one request in flight the hand-off is on every request's path. Here a job goes
//!   straight into an idle worker's mailbox and the worker alone is woken: one wake-up, no lock
//!   held across it.
//! * **Identity.** Workers switch their file-system identity to each caller's (see
//!   `rnfs_sys::identity`). Threads that only ever serve requests may keep the last caller's group
//!   ids between requests ([`rnfs_sys::identity::rest_lazily`]), which halves the system calls of
//!   a switch. That is safe only on threads nothing else runs on: tokio's blocking threads also run
//!   the admin socket, export reloads and rpcbind registration, which must act as plain root.
//!
//! # Rules
//! * **Bounded.** At most `threads_max` threads, started on demand and kept (idle ones cost a
//!   parked thread each). Jobs beyond the idle threads wait in a queue bounded by `queue_max`;
//!   callers admit jobs through their own semaphore, so the queue never fills in practice, and
//!   a full queue refuses the job instead of growing.
//! * **Leaf lock.** The pool's one lock (`pool.state`, tracked like every server lock) is held for
//!   a push or a pop: never while a job runs, never while waking a thread.
//! * **A panicking job** is caught and logged; its thread carries on.

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::Thread;

use crate::lockdep::{TrackedGuard, TrackedMutex};

/// A unit of work for a worker thread.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

struct State {
    /// Parked workers: their number (an index into `mail`) and thread.
    idle: Vec<(usize, Thread)>,
    /// Per worker, the job handed to it while it was idle.
    mail: Vec<Option<Job>>,
    queue: VecDeque<Job>,
    threads: usize,
    stopping: bool,
}

struct Inner {
    state: TrackedMutex<State>,
    threads_max: usize,
    queue_max: usize,
    name: &'static str,
}

impl Inner {
    #[track_caller]
    fn lock(&self) -> TrackedGuard<'_, State> {
        self.state.lock()
    }
}

/// The pool. Dropping it stops the idle workers; busy ones stop after their job.
pub struct WorkerPool {
    inner: Arc<Inner>,
}

/// Why a job was not taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    #[error("the worker pool's queue is full ({0} jobs)")]
    QueueFull(usize),
    #[error("the worker pool is stopping")]
    Stopping,
    #[error("cannot start a worker thread: {0}")]
    Spawn(std::io::Error),
}

impl WorkerPool {
    /// A pool of at most `threads_max` threads named `name` (at least one) whose queue holds at
    /// most `queue_max` waiting jobs.
    pub fn new(name: &'static str, threads_max: usize, queue_max: usize) -> WorkerPool {
        WorkerPool {
            inner: Arc::new(Inner {
                state: TrackedMutex::new(
                    "pool.state",
                    State {
                        idle: Vec::new(),
                        mail: Vec::new(),
                        queue: VecDeque::new(),
                        threads: 0,
                        stopping: false,
                    },
                ),
                threads_max: threads_max.max(1),
                queue_max,
                name,
            }),
        }
    }

    /// Runs `job` on a worker: an idle one if any, else a new one (below the limit), else after
    /// the jobs queued before it. Never blocks.
    pub fn submit(&self, job: Job) -> Result<(), SubmitError> {
        let mut st = self.inner.lock();
        if st.stopping {
            return Err(SubmitError::Stopping);
        }
        if let Some((worker, thread)) = st.idle.pop() {
            st.mail[worker] = Some(job);
            drop(st);
            thread.unpark();
            return Ok(());
        }
        if st.threads < self.inner.threads_max {
            let worker = st.mail.len();
            st.mail.push(None);
            st.threads += 1;
            drop(st);
            let inner = self.inner.clone();
            let spawned = std::thread::Builder::new()
                .name(self.inner.name.into())
                .spawn(move || worker_main(inner, worker, job));
            return match spawned {
                Ok(_) => Ok(()),
                Err(e) => {
                    // Its mailbox stays, unused: at most `threads_max` are ever made.
                    self.inner.lock().threads -= 1;
                    Err(SubmitError::Spawn(e))
                }
            };
        }
        if st.queue.len() >= self.inner.queue_max {
            return Err(SubmitError::QueueFull(st.queue.len()));
        }
        st.queue.push_back(job);
        Ok(())
    }

    /// Threads started so far (they are kept until the pool is dropped).
    #[cfg(test)]
    pub fn threads(&self) -> usize {
        self.inner.lock().threads
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        let idle = {
            let mut st = self.inner.lock();
            st.stopping = true;
            st.queue.clear();
            std::mem::take(&mut st.idle)
        };
        for (_, thread) in idle {
            thread.unpark();
        }
    }
}

fn worker_main(inner: Arc<Inner>, worker: usize, first: Job) {
    // Only request handlers run here (see the module docs).
    rnfs_sys::identity::rest_lazily();
    let mut job = Some(first);
    loop {
        if let Some(j) = job.take() {
            run(j);
        }
        {
            let mut st = inner.lock();
            if st.stopping {
                st.threads -= 1;
                return;
            }
            if let Some(next) = st.queue.pop_front() {
                job = Some(next);
                continue;
            }
            st.idle.push((worker, std::thread::current()));
        }
        // Idle until a job lands in the mailbox (the park token makes an early unpark count).
        loop {
            std::thread::park();
            let mut st = inner.lock();
            if let Some(j) = st.mail[worker].take() {
                job = Some(j);
                break;
            }
            if st.stopping {
                return;
            }
        }
    }
}

fn run(job: Job) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
        tracing::error!("a worker job panicked; the worker carries on");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    #[test]
    fn runs_every_job_on_at_most_the_bounded_threads() {
        let pool = WorkerPool::new("test-worker", 3, 1000);
        let done = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        for _ in 0..500 {
            let done = done.clone();
            let tx = tx.clone();
            pool.submit(Box::new(move || {
                done.fetch_add(1, Ordering::SeqCst);
                let _ = tx.send(std::thread::current().name().map(str::to_owned));
            }))
            .unwrap();
        }
        for _ in 0..500 {
            let name = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
            assert_eq!(name.as_deref(), Some("test-worker"));
        }
        assert_eq!(done.load(Ordering::SeqCst), 500);
        assert!(pool.threads() <= 3, "{} threads", pool.threads());
    }

    #[test]
    fn a_full_queue_refuses_and_a_panic_spares_the_thread() {
        let pool = WorkerPool::new("test-worker", 1, 1);
        let (hold_tx, hold_rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        pool.submit(Box::new(move || {
            let _ = started_tx.send(());
            let _ = hold_rx.recv();
        }))
        .unwrap();
        started_rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        // The only thread is busy: one job may wait, the next is refused.
        pool.submit(Box::new(|| panic!("a handler bug"))).unwrap();
        assert!(matches!(
            pool.submit(Box::new(|| {})),
            Err(SubmitError::QueueFull(1))
        ));
        drop(hold_tx);
        // After the panic, the same thread still runs jobs.
        let (tx, rx) = mpsc::channel();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let tx = tx.clone();
            if pool.submit(Box::new(move || tx.send(()).unwrap())).is_ok() {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "queue never drained");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        assert_eq!(pool.threads(), 1);
    }
}
