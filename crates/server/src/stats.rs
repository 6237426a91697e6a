//! Per-procedure statistics: calls, errors by status, latency histograms, bytes.
//!
//! Recorded once per request by the transport ([`Observed`], around the worker-pool job), read by
//! `rnfsd ctl stats` and the Prometheus endpoint. Everything here is a fixed array of atomics
//! indexed by procedure, status and latency bucket: recording is a handful of relaxed
//! `fetch_add`s, with no lock and no allocation on the request path, and the label set is bounded
//! by construction (35 procedures × 36 statuses × 26 buckets; the procedures are the rows of
//! the program tables in [`crate::program`], plus one slot for anything else).
//!
//! The service itself is not touched: what a request was is peeked from its RPC header, and how it
//! ended from the reply header the service built (the accept/reject status and, for NFS and MNT,
//! the first word of the results: the nfsstat3 or mountstat3), both with [`rnfs_oncrpc::peek`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::call::{Origin, Reply, Transport};

/// Every procedure of every program's table (see [`crate::program::slot`]), plus one slot for
/// anything else (other programs, versions, junk).
pub const PROCEDURES: usize = crate::program::procedures_total() + 1;
const OTHER: usize = PROCEDURES - 1;

/// The NFS (and MOUNT) status codes counted, in the order of their counters.
const STATUS_CODES: [(u32, &str); 28] = [
    (1, "PERM"),
    (2, "NOENT"),
    (5, "IO"),
    (6, "NXIO"),
    (13, "ACCES"),
    (17, "EXIST"),
    (18, "XDEV"),
    (19, "NODEV"),
    (20, "NOTDIR"),
    (21, "ISDIR"),
    (22, "INVAL"),
    (27, "FBIG"),
    (28, "NOSPC"),
    (30, "ROFS"),
    (31, "MLINK"),
    (63, "NAMETOOLONG"),
    (66, "NOTEMPTY"),
    (69, "DQUOT"),
    (70, "STALE"),
    (71, "REMOTE"),
    (10001, "BADHANDLE"),
    (10002, "NOT_SYNC"),
    (10003, "BAD_COOKIE"),
    (10004, "NOTSUPP"),
    (10005, "TOOSMALL"),
    (10006, "SERVERFAULT"),
    (10007, "BADTYPE"),
    (10008, "JUKEBOX"),
];
/// RPC-level outcomes counted after the status codes.
const RPC_OUTCOMES: [&str; 8] = [
    "PROG_UNAVAIL",
    "PROG_MISMATCH",
    "PROC_UNAVAIL",
    "GARBAGE_ARGS",
    "SYSTEM_ERR",
    "RPC_MISMATCH",
    "AUTH_ERROR",
    // A status we do not know, or a reply we could not parse.
    "UNKNOWN",
];
const RPC_BASE: usize = STATUS_CODES.len();
/// Error kinds counted per procedure.
pub const ERROR_KINDS: usize = STATUS_CODES.len() + RPC_OUTCOMES.len();

/// Latency buckets: upper bounds 2^(3+i) µs, from 8 µs to 2^27 µs (about 134 s), then +Inf.
pub const LATENCY_BUCKETS: usize = 25;

/// Upper bound of latency bucket `i` in microseconds (`None` for the last, unbounded one).
pub fn bucket_upper_us(i: usize) -> Option<u64> {
    (i + 1 < LATENCY_BUCKETS).then(|| 1u64 << (3 + i))
}

fn bucket_of(us: u64) -> usize {
    // Smallest i with us <= 2^(3+i).
    let bits = 64 - us.saturating_sub(1).leading_zeros() as usize;
    bits.saturating_sub(3).min(LATENCY_BUCKETS - 1)
}

/// One procedure's counters.
#[derive(Debug)]
pub struct ProcCounters {
    pub calls: AtomicU64,
    /// Calls that got no reply (dropped retransmissions, undecodable messages, handler failures).
    pub dropped: AtomicU64,
    pub errors: [AtomicU64; ERROR_KINDS],
    pub latency: [AtomicU64; LATENCY_BUCKETS],
    pub latency_sum_us: AtomicU64,
    pub latency_max_us: AtomicU64,
}

impl Default for ProcCounters {
    fn default() -> Self {
        ProcCounters {
            calls: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            errors: std::array::from_fn(|_| AtomicU64::new(0)),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
            latency_sum_us: AtomicU64::new(0),
            latency_max_us: AtomicU64::new(0),
        }
    }
}

/// All of a server's request statistics.
#[derive(Debug)]
pub struct Stats {
    procs: Box<[ProcCounters]>,
    /// RPC message bytes received and sent (TCP record markers included).
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Data bytes of successful NFS WRITEs.
    pub write_bytes: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            procs: (0..PROCEDURES).map(|_| ProcCounters::default()).collect(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            write_bytes: AtomicU64::new(0),
        }
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Ok,
    /// An error kind (index into the error counters).
    Error(usize),
    NoReply,
}

impl Stats {
    /// Records one finished request.
    pub fn record(&self, proc_idx: usize, ending: Ending, micros: u64) {
        let Some(p) = self.procs.get(proc_idx) else {
            return;
        };
        p.calls.fetch_add(1, Ordering::Relaxed);
        match ending {
            Ending::Ok => {}
            Ending::Error(k) => {
                if let Some(c) = p.errors.get(k) {
                    c.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ending::NoReply => {
                p.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        p.latency[bucket_of(micros)].fetch_add(1, Ordering::Relaxed);
        p.latency_sum_us.fetch_add(micros, Ordering::Relaxed);
        p.latency_max_us.fetch_max(micros, Ordering::Relaxed);
    }

    /// A consistent-enough copy of every procedure's counters (each read once, relaxed).
    pub fn snapshot(&self) -> Vec<ProcSnapshot> {
        self.procs
            .iter()
            .enumerate()
            .map(|(i, p)| ProcSnapshot {
                program: program_name(i),
                procedure: procedure_name(i),
                calls: p.calls.load(Ordering::Relaxed),
                dropped: p.dropped.load(Ordering::Relaxed),
                errors: p
                    .errors
                    .iter()
                    .enumerate()
                    .filter_map(|(k, c)| {
                        let n = c.load(Ordering::Relaxed);
                        (n > 0).then(|| (error_name(i, k), n))
                    })
                    .collect(),
                latency: std::array::from_fn(|b| p.latency[b].load(Ordering::Relaxed)),
                latency_sum_us: p.latency_sum_us.load(Ordering::Relaxed),
                latency_max_us: p.latency_max_us.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Calls of every procedure together.
    pub fn calls_total(&self) -> u64 {
        self.procs
            .iter()
            .map(|p| p.calls.load(Ordering::Relaxed))
            .sum()
    }
}

/// One procedure's counters, copied.
#[derive(Debug, Clone)]
pub struct ProcSnapshot {
    pub program: &'static str,
    pub procedure: &'static str,
    pub calls: u64,
    pub dropped: u64,
    /// Nonzero error counts by status name (e.g. `NFS3ERR_NOENT`, `GARBAGE_ARGS`).
    pub errors: Vec<(String, u64)>,
    /// Calls per latency bucket (not cumulative); see [`bucket_upper_us`].
    pub latency: [u64; LATENCY_BUCKETS],
    pub latency_sum_us: u64,
    /// The slowest call's latency.
    pub latency_max_us: u64,
}

impl ProcSnapshot {
    /// The `q` quantile (0..=1) of latency in microseconds, interpolated within its bucket (and
    /// never above the slowest call seen).
    pub fn latency_quantile_us(&self, q: f64) -> Option<f64> {
        let total: u64 = self.latency.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * total as f64).max(1.0);
        let mut seen = 0u64;
        for (i, &n) in self.latency.iter().enumerate() {
            if n == 0 {
                continue;
            }
            if (seen + n) as f64 >= rank {
                let lower = if i == 0 { 0 } else { 1u64 << (2 + i) } as f64;
                let max = self.latency_max_us as f64;
                // The slowest call bounds the bucket it falls in.
                let upper = bucket_upper_us(i)
                    .map_or(max, |u| u as f64)
                    .min(max)
                    .max(lower);
                let within = (rank - seen as f64) / n as f64;
                return Some(lower + (upper - lower) * within);
            }
            seen += n;
        }
        None
    }
}

/// The program of procedure slot `i` ("NFS").
pub fn program_name(i: usize) -> &'static str {
    crate::program::of_slot(i).map_or("OTHER", |(p, _)| p.name)
}

/// The procedure name of slot `i` (e.g. `READ`).
pub fn procedure_name(i: usize) -> &'static str {
    crate::program::of_slot(i).map_or("OTHER", |(_, row)| row.name)
}

fn error_name(proc_idx: usize, kind: usize) -> String {
    match STATUS_CODES.get(kind) {
        Some((_, name)) if program_name(proc_idx) == "MOUNT" => format!("MNT3ERR_{name}"),
        Some((_, name)) => format!("NFS3ERR_{name}"),
        None => RPC_OUTCOMES
            .get(kind - RPC_BASE)
            .copied()
            .unwrap_or("UNKNOWN")
            .to_owned(),
    }
}

/// How a request ended, for logs: `OK`, `NO_REPLY` or an error name.
struct EndingName(usize, Ending);

impl std::fmt::Display for EndingName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.1 {
            Ending::Ok => f.write_str("OK"),
            Ending::NoReply => f.write_str("NO_REPLY"),
            Ending::Error(k) => f.write_str(&error_name(self.0, k)),
        }
    }
}

/// The procedure slot of a call.
pub fn proc_index(prog: u32, vers: u32, proc_num: u32) -> usize {
    crate::program::slot(prog, vers, proc_num).unwrap_or(OTHER)
}

/// What statistics and logs keep of a call, peeked at without decoding it (nothing here is
/// trusted; owned, so it outlives the record).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallSummary {
    pub xid: u32,
    pub prog: u32,
    pub vers: u32,
    pub proc_num: u32,
    /// Credential flavour (0 = AUTH_NONE, 1 = AUTH_SYS, ...).
    pub flavor: u32,
    /// The AUTH_SYS uid.
    pub uid: Option<u32>,
    /// A WRITE's `count` argument.
    pub write_count: Option<u32>,
}

impl CallSummary {
    /// Peeks at a call record: `None` when it is not one (see [`rnfs_oncrpc::peek`]).
    pub fn of(record: &[u8]) -> Option<CallSummary> {
        let call = rnfs_oncrpc::peek::CallPeek::parse(record).ok()?;
        Some(CallSummary {
            xid: call.xid,
            prog: call.prog,
            vers: call.vers,
            proc_num: call.proc_num,
            flavor: call.cred_flavor,
            uid: call.auth_sys_uid(),
            write_count: crate::peek::write_count(&call),
        })
    }
}

/// How a reply (the RPC message, without record marker) ends the call.
pub fn reply_ending(prog: u32, vers: u32, proc_num: u32, msg: &[u8]) -> Ending {
    use rnfs_oncrpc::peek::{Cursor, ReplyPeek, ReplyStat};
    use rnfs_oncrpc::{accept_stat, reject_stat};
    let unknown = Ending::Error(RPC_BASE + 7);
    let rpc = |i: usize| Ending::Error(RPC_BASE + i);
    let results = match ReplyPeek::parse(msg).map(|r| r.stat) {
        Ok(ReplyStat::Accepted {
            accept_stat: accept_stat::SUCCESS,
            rest,
            ..
        }) => rest,
        // RPC_OUTCOMES lists PROG_UNAVAIL..=SYSTEM_ERR in accept_stat order.
        Ok(ReplyStat::Accepted {
            accept_stat: n @ 1..=5,
            ..
        }) => return rpc(n as usize - 1),
        Ok(ReplyStat::Denied {
            reject_stat: reject_stat::RPC_MISMATCH,
            ..
        }) => return rpc(5),
        Ok(ReplyStat::Denied {
            reject_stat: reject_stat::AUTH_ERROR,
            ..
        }) => return rpc(6),
        _ => return unknown,
    };
    // Whatever the version: a version we do not serve got PROG_MISMATCH above.
    let has_status = crate::program::procedure(prog, vers, proc_num).is_some_and(|row| row.status);
    if !has_status {
        return Ending::Ok;
    }
    match Cursor::new(results).u32() {
        Ok(0) => Ending::Ok,
        Ok(code) => STATUS_CODES
            .iter()
            .position(|(c, _)| *c == code)
            .map_or(unknown, Ending::Error),
        Err(_) => unknown,
    }
}

/// Observes one request on its worker thread, from when the worker takes it until its reply is
/// built: opens the request's log span, and records the statistics when finished (or, if dropped
/// unfinished, as a request that got no reply). Latency is the service time (decode, file-system
/// calls, encode); time spent queued for a worker shows in `rnfsd ctl requests` instead.
pub struct Observed<'a> {
    stats: &'a Stats,
    peek: Option<CallSummary>,
    proc_idx: usize,
    transport: Transport,
    started: Instant,
    record_bytes: u64,
    span: tracing::Span,
    finished: bool,
}

impl<'a> Observed<'a> {
    pub fn start(stats: &'a Stats, record: &[u8], origin: Origin) -> Observed<'a> {
        let peek = CallSummary::of(record);
        let proc_idx = peek.map_or(OTHER, |p| proc_index(p.prog, p.vers, p.proc_num));
        let marker = if origin.transport == Transport::Tcp {
            4
        } else {
            0
        };
        Observed {
            stats,
            peek,
            proc_idx,
            transport: origin.transport,
            started: Instant::now(),
            record_bytes: record.len() as u64 + marker,
            span: crate::logging::request_span(
                peek.map_or(0, |p| p.xid),
                program_name(proc_idx),
                procedure_name(proc_idx),
                origin.peer,
            ),
            finished: false,
        }
    }

    /// The request's log span (enter it where the handler runs).
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Records the request's outcome: `reply` is what will be sent, `None` for no reply.
    pub fn finish(mut self, reply: Option<&Reply>) {
        self.finished = true;
        let stats = self.stats;
        stats
            .bytes_in
            .fetch_add(self.record_bytes, Ordering::Relaxed);
        let (prog, vers, proc_num) = self
            .peek
            .map_or((0, 0, 0), |p| (p.prog, p.vers, p.proc_num));
        let ending = match reply {
            Some(r) => {
                let marker = if self.transport == Transport::Tcp {
                    Reply::MARKER_BYTES
                } else {
                    0
                };
                stats
                    .bytes_out
                    .fetch_add((r.message_len() + marker) as u64, Ordering::Relaxed);
                reply_ending(
                    prog,
                    vers,
                    proc_num,
                    r.head.get(Reply::MARKER_BYTES..).unwrap_or(&[]),
                )
            }
            None => Ending::NoReply,
        };
        if ending == Ending::Ok {
            if let Some(n) = self.peek.and_then(|p| p.write_count) {
                stats.write_bytes.fetch_add(u64::from(n), Ordering::Relaxed);
            }
        }
        let micros = self.micros();
        stats.record(self.proc_idx, ending, micros);
        tracing::debug!(
            status = %EndingName(self.proc_idx, ending),
            micros,
            reply_bytes = reply.map_or(0, Reply::message_len),
            "done"
        );
    }

    fn micros(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

impl Drop for Observed<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let micros = self.micros();
            self.stats.record(self.proc_idx, Ending::NoReply, micros);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_log_spaced() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(8), 0);
        assert_eq!(bucket_of(9), 1);
        assert_eq!(bucket_of(16), 1);
        assert_eq!(bucket_of(17), 2);
        assert_eq!(bucket_of(u64::MAX), LATENCY_BUCKETS - 1);
        for i in 0..LATENCY_BUCKETS - 1 {
            let ub = bucket_upper_us(i).unwrap();
            assert_eq!(bucket_of(ub), i);
            assert_eq!(bucket_of(ub + 1), i + 1);
        }
        assert_eq!(bucket_upper_us(LATENCY_BUCKETS - 1), None);
    }

    #[test]
    fn quantiles_interpolate() {
        let s = Stats::default();
        for _ in 0..100 {
            s.record(6, Ending::Ok, 100); // bucket (64, 128]
        }
        let snap = &s.snapshot()[6];
        assert_eq!(
            (snap.program, snap.procedure, snap.calls),
            ("NFS", "READ", 100)
        );
        let p50 = snap.latency_quantile_us(0.5).unwrap();
        assert!((64.0..=100.0).contains(&p50), "{p50}");
        assert_eq!(
            snap.latency_quantile_us(1.0),
            Some(100.0),
            "capped at the max seen"
        );
        assert_eq!(snap.latency_max_us, 100);
    }

    #[test]
    fn peeks_calls_and_replies() {
        // xid, CALL, rpcvers 2, NFS, v3, WRITE, AUTH_SYS cred (stamp, "ab", uid 1000, gid 7, no
        // gids), AUTH_NONE verf, fh of 8 bytes, offset, count 4096.
        let mut m = Vec::new();
        for w in [0x1234u32, 0, 2, 100003, 3, 7, 1, 24, 0, 2] {
            m.extend_from_slice(&w.to_be_bytes());
        }
        m.extend_from_slice(b"ab\0\0");
        for w in [1000u32, 7, 0, 0, 0, 8] {
            m.extend_from_slice(&w.to_be_bytes());
        }
        m.extend_from_slice(&[9; 8]);
        m.extend_from_slice(&0u64.to_be_bytes());
        m.extend_from_slice(&4096u32.to_be_bytes());
        let p = CallSummary::of(&m).unwrap();
        assert_eq!(
            (p.xid, p.prog, p.proc_num, p.flavor, p.uid, p.write_count),
            (0x1234, 100003, 7, 1, Some(1000), Some(4096))
        );
        assert_eq!(CallSummary::of(&m[..10]), None);

        let reply =
            |words: &[u32]| -> Vec<u8> { words.iter().flat_map(|w| w.to_be_bytes()).collect() };
        // accepted, AUTH_NONE verf, SUCCESS, NFS3ERR_NOENT
        let noent = reply(&[1, 1, 0, 0, 0, 0, 2]);
        assert_eq!(reply_ending(100003, 3, 3, &noent), Ending::Error(1));
        assert_eq!(error_name(3, 1), "NFS3ERR_NOENT");
        assert_eq!(
            reply_ending(100003, 3, 0, &noent),
            Ending::Ok,
            "NULL has no status"
        );
        let garbage = reply(&[1, 1, 0, 0, 0, 4]);
        assert_eq!(
            error_name(
                3,
                match reply_ending(100003, 3, 3, &garbage) {
                    Ending::Error(k) => k,
                    e => panic!("{e:?}"),
                }
            ),
            "GARBAGE_ARGS"
        );
        let auth = reply(&[1, 1, 1, 1, 5]);
        assert_eq!(
            reply_ending(100003, 3, 3, &auth),
            Ending::Error(RPC_BASE + 6)
        );
    }
}
