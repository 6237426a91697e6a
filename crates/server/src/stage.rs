//! What an in-flight request is waiting on ([`Stage`]), and how code deep in a handler shows a
//! long wait ([`in_stage`]) without the request being passed down. A leaf module: the registry
//! implements [`StageSink`] for its connections, and handlers (NLM's CephFS lock calls) use
//! [`in_stage`] without depending on the registry.

use std::cell::RefCell;
use std::sync::Arc;

/// Where an in-flight request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Stage {
    /// Received; waiting for a file-system worker.
    Queued = 1,
    /// Running on the file-system worker pool (decode, storage calls, encode).
    Fs = 2,
    /// Reply built; queued for or being written by the connection's writer.
    Sending = 3,
    /// Received; waiting for reply memory (`reply_bytes_max`; see [`crate::outgoing`]).
    Budget = 4,
    /// On the worker pool, waiting for a remote lock call: a CephFS record lock (a round trip to
    /// the MDS) of an NLM request on a ceph export, made outside the lock manager's mutex.
    LockCall = 5,
}

impl Stage {
    pub(crate) fn from_u8(v: u8) -> Option<Stage> {
        match v {
            1 => Some(Stage::Queued),
            2 => Some(Stage::Fs),
            3 => Some(Stage::Sending),
            4 => Some(Stage::Budget),
            5 => Some(Stage::LockCall),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Queued => "queued for a worker",
            Stage::Fs => "file-system pool",
            Stage::Sending => "send",
            Stage::Budget => "reply memory",
            Stage::LockCall => "CephFS lock call (MDS round trip)",
        }
    }
}

/// Where a request's stage is kept: a connection's table of requests in flight.
pub trait StageSink: Send + Sync {
    fn set_stage(&self, idx: usize, stage: Stage);
}

thread_local! {
    /// The request this worker thread runs (see `registry::Tracked::enter`).
    static CURRENT: RefCell<Option<(Arc<dyn StageSink>, usize)>> = const { RefCell::new(None) };
}

/// The calling thread runs request `idx` of `sink` until [`leave`].
pub(crate) fn enter(sink: Arc<dyn StageSink>, idx: usize) {
    CURRENT.with(|c| *c.borrow_mut() = Some((sink, idx)));
}

pub(crate) fn leave() {
    CURRENT.with(|c| c.borrow_mut().take());
}

/// Runs `f` with the current request (if the thread runs one) shown in `stage`, then back in
/// [`Stage::Fs`]: how a handler makes a long remote wait visible to the watchdog and `rnfsd ctl`.
pub fn in_stage<R>(stage: Stage, f: impl FnOnce() -> R) -> R {
    let set = |stage: Stage| {
        CURRENT.with(|c| {
            if let Some((sink, idx)) = &*c.borrow() {
                sink.set_stage(*idx, stage);
            }
        })
    };
    set(stage);
    let result = f();
    set(Stage::Fs);
    result
}
