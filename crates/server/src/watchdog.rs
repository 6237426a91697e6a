//! The watchdog: a plain OS thread, outside the async runtime, that notices stalls and says what
//! is stuck.
//!
//! Every tick it checks three things against the stall bound (default 5 s):
//! * the runtime heartbeat — a task that stamps the time every 100 ms; if the stamp goes stale, the
//!   reactor is blocked (which the liveness rules should make impossible);
//! * the age of every request in flight ([`crate::registry`]), with the stage it waits in;
//! * the age of every loan ([`rnfs_loan`]);
//! * the age of every backend call in flight ([`crate::backend_gate`]), so a report names the
//!   backend and the call a stalled request waits in (e.g. `ceph:cephfs:/nfs` `create`).
//!
//! Each stall is reported once (logged at ERROR and kept for `rnfsd ctl stalls`), with the
//! requests in flight, the loans outstanding and every tracked lock's holder and call site — what
//! a kernel debugger's lock dump would show. Because the watchdog runs on its own thread and reads
//! only atomics (plus brief leaf locks never held across waits), it keeps working when the runtime
//! does not.

use std::collections::{HashSet, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::backend_gate::BackendCall;
use crate::clock::now_ms;
use crate::lockdep::TrackedMutex;
use crate::registry::Registry;
use crate::service::Service;

/// How many reports are kept for the admin interface.
const REPORTS_KEPT: usize = 32;
/// How often the runtime task stamps its heartbeat.
pub const HEARTBEAT_INTERVAL_MS: u64 = 100;

/// One stall, as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StallReport {
    pub at_ms: u64,
    /// One line: what stalled and for how long.
    pub summary: String,
    /// The full report: summary, requests, loans, locks.
    pub text: String,
}

/// State shared between the watchdog thread, the heartbeat task and readers.
pub struct WatchState {
    pub heartbeat_ms: AtomicU64,
    pub stalls_total: AtomicU64,
    reports: TrackedMutex<VecDeque<StallReport>>,
}

impl Default for WatchState {
    fn default() -> Self {
        WatchState {
            heartbeat_ms: AtomicU64::new(now_ms()),
            stalls_total: AtomicU64::new(0),
            reports: TrackedMutex::new("watchdog.reports", VecDeque::new()),
        }
    }
}

impl WatchState {
    /// The most recent reports, oldest first.
    pub fn reports(&self) -> Vec<StallReport> {
        self.reports.lock().iter().cloned().collect()
    }
}

/// The running watchdog thread; stops when dropped.
pub struct Watchdog {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    /// Starts watching. `stall_bound_ms` is how long anything may wait before it is a stall.
    pub fn start(
        stall_bound_ms: u64,
        state: Arc<WatchState>,
        service: Arc<Service>,
        registry: Arc<Registry>,
    ) -> std::io::Result<Watchdog> {
        let stop = Arc::new(AtomicBool::new(false));
        let tick = Duration::from_millis((stall_bound_ms / 4).clamp(10, 1000));
        let (st, stop2) = (state.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("rnfsd-watchdog".into())
            .spawn(move || {
                let mut seen = Seen::default();
                while !stop2.load(Ordering::Acquire) {
                    std::thread::park_timeout(tick);
                    check(stall_bound_ms, &st, &service, &registry, &mut seen);
                }
            })?;
        Ok(Watchdog {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// What has been reported already, so each stall is reported once.
#[derive(Default)]
struct Seen {
    runtime: bool,
    cluster_poll: bool,
    /// The start of the eviction of a dead head reported.
    cluster_eviction: Option<u64>,
    /// The start of the remote lock retry reported.
    remote_retry: Option<u64>,
    requests: HashSet<(u64, u32, u64)>,
    loans: HashSet<(usize, u64)>,
    backend_calls: HashSet<CallKey>,
}

/// A backend call: its export, start and request (connection and xid).
type CallKey = (u32, u64, Option<(u64, u32)>);

fn check(bound_ms: u64, st: &WatchState, service: &Service, registry: &Registry, seen: &mut Seen) {
    let now = now_ms();
    let requests = registry.requests();
    let loans = service.loans().snapshot();
    let calls = crate::backend_gate::calls();
    let mut stalls = Vec::new();
    runtime_stall(now, bound_ms, st, seen, &mut stalls);
    remote_retry_stall(now, bound_ms, service, seen, &mut stalls);
    request_stalls(now, bound_ms, &requests, &calls, seen, &mut stalls);
    loan_stalls(now, bound_ms, &loans, seen, &mut stalls);
    backend_stalls(now, bound_ms, &calls, seen, &mut stalls);
    cluster_stall(bound_ms, service, seen, &mut stalls);
    if stalls.is_empty() {
        return;
    }
    let mut text = String::new();
    for s in &stalls {
        let _ = writeln!(text, "STALL: {s}");
    }
    describe_requests(&mut text, now, &requests, &calls);
    describe_backend_calls(&mut text, now, &calls);
    describe_loans(&mut text, now, &loans);
    describe_locks(&mut text, now);
    tracing::error!("watchdog: {}", text.trim_end());
    st.stalls_total
        .fetch_add(stalls.len() as u64, Ordering::Relaxed);
    let report = StallReport {
        at_ms: now,
        summary: stalls.join("; "),
        text,
    };
    let mut reports = st.reports.lock();
    if reports.len() >= REPORTS_KEPT {
        reports.pop_front();
    }
    reports.push_back(report);
}

/// The async runtime's heartbeat, reported once per stall.
fn runtime_stall(now: u64, bound_ms: u64, st: &WatchState, seen: &mut Seen, out: &mut Vec<String>) {
    let heartbeat_age = now.saturating_sub(st.heartbeat_ms.load(Ordering::Relaxed));
    if heartbeat_age <= bound_ms {
        seen.runtime = false;
    } else if !seen.runtime {
        seen.runtime = true;
        out.push(format!(
            "async runtime heartbeat stalled for {heartbeat_age} ms"
        ));
    }
}

/// The cluster grace database's poll (`[cluster]`) waiting on RADOS longer than the bound,
/// reported once per stall (new locks and opens wait meanwhile: see `crate::cluster`).
fn cluster_stall(bound_ms: u64, service: &Service, seen: &mut Seen, out: &mut Vec<String>) {
    let waiting = service.cluster().and_then(|c| c.poll_waiting_ms());
    match waiting {
        Some(ms) if ms > bound_ms => {
            if !seen.cluster_poll {
                seen.cluster_poll = true;
                out.push(format!(
                    "cluster grace database poll waiting on RADOS for {ms} ms (rados_read or \
                     rados_write_op_operate; new locks and opens wait as in a grace period)"
                ));
            }
        }
        _ => seen.cluster_poll = false,
    }
    // The eviction of a dead head's sessions (its own thread: polls go on meanwhile).
    match service.cluster().and_then(|c| c.eviction_waiting()) {
        Some((node, started, ms)) if ms > bound_ms => {
            if seen.cluster_eviction != Some(started) {
                seen.cluster_eviction = Some(started);
                out.push(format!(
                    "eviction of dead head {node}'s CephFS sessions waiting on the cluster for \
                     {ms} ms (ceph_init or ceph_start_reclaim)"
                ));
            }
        }
        _ => seen.cluster_eviction = None,
    }
}

/// The lock manager's retry of waiters blocked by another head (CephFS lock calls from the
/// timer, not a request), reported once per run that outlasts the bound.
fn remote_retry_stall(
    now: u64,
    bound_ms: u64,
    service: &Service,
    seen: &mut Seen,
    out: &mut Vec<String>,
) {
    let Some(since) = service.locking.remote_retry_since_ms() else {
        seen.remote_retry = None;
        return;
    };
    let age = now.saturating_sub(since);
    if age > bound_ms && seen.remote_retry != Some(since) {
        seen.remote_retry = Some(since);
        out.push(format!(
            "retry of lock waiters blocked by another head running for {age} ms, waiting on: \
             CephFS lock call (MDS round trip)"
        ));
    }
}

/// Requests in flight longer than the bound, each reported once.
fn request_stalls(
    now: u64,
    bound_ms: u64,
    requests: &[crate::registry::RequestInfo],
    calls: &[BackendCall],
    seen: &mut Seen,
    out: &mut Vec<String>,
) {
    seen.requests.retain(|k| {
        requests
            .iter()
            .any(|r| (r.conn_id, r.xid, r.started_ms) == *k)
    });
    for r in requests {
        let age = now.saturating_sub(r.started_ms);
        if age > bound_ms && seen.requests.insert((r.conn_id, r.xid, r.started_ms)) {
            out.push(format!(
                "{} xid {:#x} from {} (connection {}) in flight for {age} ms, waiting on: {}",
                r.procedure_name(),
                r.xid,
                r.peer,
                r.conn_id,
                waiting_on(r, calls)
            ));
        }
    }
}

/// What a request waits on: its stage, or the backend call it is in.
pub(crate) fn waiting_on(r: &crate::registry::RequestInfo, calls: &[BackendCall]) -> String {
    match calls.iter().find(|c| c.request == Some((r.conn_id, r.xid))) {
        Some(c) if r.stage == crate::registry::Stage::Fs => format!(
            "backend call {} of export {} ({})",
            c.call, c.export_id, c.backend
        ),
        _ => r.stage.as_str().to_owned(),
    }
}

/// Backend calls in flight longer than the bound, each reported once (those of requests too:
/// a call outside a request, e.g. housekeeping, is reported only here).
fn backend_stalls(
    now: u64,
    bound_ms: u64,
    calls: &[BackendCall],
    seen: &mut Seen,
    out: &mut Vec<String>,
) {
    let key = |c: &BackendCall| (c.export_id, c.started_ms, c.request);
    seen.backend_calls
        .retain(|k| calls.iter().any(|c| key(c) == *k));
    for c in calls {
        let age = now.saturating_sub(c.started_ms);
        if age > bound_ms && seen.backend_calls.insert(key(c)) {
            out.push(format!(
                "backend call {} of export {} ({}) in flight for {age} ms, {}",
                c.call,
                c.export_id,
                c.backend,
                match c.request {
                    Some((conn, xid)) => format!("for xid {xid:#x} of connection {conn}"),
                    None => "outside any request".to_owned(),
                }
            ));
        }
    }
}

fn describe_backend_calls(text: &mut String, now: u64, calls: &[BackendCall]) {
    let _ = writeln!(text, "backend calls in flight ({}):", calls.len());
    for c in calls {
        let _ = writeln!(
            text,
            "  export {} ({}) {} age {} ms {}",
            c.export_id,
            c.backend,
            c.call,
            now.saturating_sub(c.started_ms),
            match c.request {
                Some((conn, xid)) => format!("conn {conn} xid {xid:#x}"),
                None => "no request".to_owned(),
            }
        );
    }
}

/// Loans outstanding longer than the bound, each reported once.
fn loan_stalls(
    now: u64,
    bound_ms: u64,
    loans: &[rnfs_loan::LoanInfo],
    seen: &mut Seen,
    out: &mut Vec<String>,
) {
    seen.loans
        .retain(|k| loans.iter().any(|l| (l.slot, l.started_ms) == *k));
    for l in loans {
        let age = now.saturating_sub(l.started_ms);
        if age > bound_ms && seen.loans.insert((l.slot, l.started_ms)) {
            out.push(format!(
                "loan in slot {} ({:?}, {} bytes of file {} at {}) held by connection {} for {age} ms{}",
                l.slot,
                l.kind,
                l.bytes,
                l.fileid,
                l.offset,
                l.owner,
                match l.state {
                    rnfs_loan::LoanState::Claimed => " (claimed, being filled)",
                    rnfs_loan::LoanState::Lent => "",
                    rnfs_loan::LoanState::Returned => " (returned, awaiting the reaper)",
                }
            ));
        }
    }
}

fn describe_requests(
    text: &mut String,
    now: u64,
    requests: &[crate::registry::RequestInfo],
    calls: &[BackendCall],
) {
    let _ = writeln!(text, "requests in flight ({}):", requests.len());
    for r in requests {
        let _ = writeln!(
            text,
            "  conn {} {} xid {:#x} {} age {} ms stage {}",
            r.conn_id,
            r.peer,
            r.xid,
            r.procedure_name(),
            now.saturating_sub(r.started_ms),
            waiting_on(r, calls)
        );
    }
}

fn describe_loans(text: &mut String, now: u64, loans: &[rnfs_loan::LoanInfo]) {
    let _ = writeln!(text, "loans outstanding ({}):", loans.len());
    for l in loans {
        let _ = writeln!(
            text,
            "  slot {} {:?} owner conn {} file {} offset {} bytes {} age {} ms{}",
            l.slot,
            l.kind,
            l.owner,
            l.fileid,
            l.offset,
            l.bytes,
            now.saturating_sub(l.started_ms),
            match l.state {
                rnfs_loan::LoanState::Claimed => " claimed",
                rnfs_loan::LoanState::Lent => " lent",
                rnfs_loan::LoanState::Returned => " returned",
            }
        );
    }
}

/// Every tracked lock alive in the process: the service's, the registry's, the DRC's, ...
fn describe_locks(text: &mut String, now: u64) {
    let _ = writeln!(text, "locks:");
    for lock in crate::lockdep::all_locks() {
        match lock.holder {
            Some(h) => {
                let _ = writeln!(
                    text,
                    "  {} held by thread #{} since {} ms at {}, {} waiting",
                    lock.name,
                    h,
                    now.saturating_sub(lock.held_since_ms.unwrap_or(now)),
                    lock.site.as_deref().unwrap_or("?"),
                    lock.waiters
                );
            }
            None => {
                let _ = writeln!(text, "  {} free, {} waiting", lock.name, lock.waiters);
            }
        }
    }
}
