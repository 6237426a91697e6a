//! What the server asks of NFSv4 clients through their back channel (RFC 8881 §20), as workers
//! queue it: the jobs, their outcomes and counts. A leaf: the dispatcher that makes the calls is
//! [`crate::backchannel`], started with the transport.
//!
//! Workers never call a client: [`Callbacks::submit`] is a `try_send` on a bounded queue (a full
//! queue is refused and counted at once, never waited for).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use rnfs_nfs4::cb::{CB_COMPOUND4res, CbArgOp};
use rnfs_nfs4state::{ClientId, SessionId};
use tokio::sync::mpsc;

/// Why a call failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CbError {
    #[error("no connection is bound to the back channel")]
    NoPath,
    #[error("the connection is full or closing")]
    ConnBusy,
    #[error("no reply within {0} ms")]
    Timeout(u64),
    #[error("the client refused the call: {0}")]
    Refused(String),
    #[error("the client's reply cannot be decoded")]
    Garbage,
    #[error("the back channel accepts only RPCSEC_GSS, which this server does not speak")]
    NoSecurity,
}

/// What to do with a CB_COMPOUND's outcome (runs on the dispatcher task: must not block).
pub type CbDone = Arc<dyn Fn(Result<CB_COMPOUND4res, CbError>) + Send + Sync>;

/// A call for the dispatcher.
#[derive(Clone)]
pub enum CbJob {
    /// CB_NULL on a session's back channel (after CREATE_SESSION, a back binding or
    /// BACKCHANNEL_CTL); its outcome marks the path up or down.
    Probe(SessionId),
    /// A CB_COMPOUND of `ops` (after CB_SEQUENCE) to the client, on whichever of its sessions
    /// has its back channel up and free; `done` gets the result.
    Compound {
        client: ClientId,
        ops: Vec<CbArgOp>,
        done: CbDone,
    },
}

/// Counts for metrics and `rnfsd ctl`.
#[derive(Debug, Default)]
pub struct CbCounters {
    pub calls: AtomicU64,
    pub answered: AtomicU64,
    pub timeouts: AtomicU64,
    pub failed: AtomicU64,
    /// Replies whose xid no call waited for (late, or forged).
    pub stray_replies: AtomicU64,
    /// Jobs refused because the queue was full or no dispatcher runs.
    pub jobs_refused: AtomicU64,
}

/// The dispatcher's queue and the counts.
#[derive(Default)]
pub struct Callbacks {
    jobs: OnceLock<mpsc::Sender<CbJob>>,
    pub counters: CbCounters,
}

pub(crate) fn count(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Callbacks {
    /// Queues a job for the dispatcher; never waits. `false` (counted) if it is refused.
    pub fn submit(&self, job: CbJob) -> bool {
        let sent = self.jobs.get().is_some_and(|q| q.try_send(job).is_ok());
        if !sent {
            count(&self.counters.jobs_refused);
        }
        sent
    }

    /// The dispatcher's queue, once (later calls are ignored: one dispatcher per server).
    pub(crate) fn set_queue(&self, tx: mpsc::Sender<CbJob>) -> bool {
        self.jobs.set(tx).is_ok()
    }
}
