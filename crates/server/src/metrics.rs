//! Prometheus metrics on an opt-in HTTP listener (`rnfsd serve --metrics 127.0.0.1:9xxx`).
//!
//! The text is produced by `prometheus-client` (OpenMetrics text format) from one [`Collector`]
//! that reads the server's atomics at scrape time: nothing on the request path knows metrics
//! exist. Labels come from fixed sets only (program, procedure, status name, transport, reason),
//! so the number of series is bounded whatever clients send.
//!
//! The HTTP side is deliberately tiny: HTTP/1.1, `GET /metrics` (or `/`), one request per
//! connection, a bounded request head, a deadline for the whole exchange, and a bounded number of
//! scrapes at once.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use crate::stats::{bucket_upper_us, LATENCY_BUCKETS};
use crate::Running;

/// Largest HTTP request head accepted.
const REQUEST_HEAD_BYTES_MAX: usize = 8 << 10;
/// Deadline for one scrape (read request, encode, write response).
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// Scrapes served at once; more wait in the accept backlog.
const SCRAPES_MAX: usize = 4;

/// Reads a running server's state for Prometheus.
#[derive(Clone)]
pub struct ServerCollector {
    running: Running,
    started_ms: u64,
}

impl std::fmt::Debug for ServerCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerCollector")
    }
}

impl ServerCollector {
    /// `started_ms`: when the server started, on [`crate::clock::now_ms`]'s clock.
    pub fn new(running: Running, started_ms: u64) -> Self {
        ServerCollector {
            running,
            started_ms,
        }
    }

    /// The metrics text (OpenMetrics), as served at `/metrics`.
    pub fn render(&self) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(self.clone()));
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
            out = "# metrics encoding failed\n".to_owned();
        }
        out
    }
}

fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value);
    let m = enc.encode_descriptor(name, help, None, c.metric_type())?;
    c.encode(m)
}

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(value);
    let m = enc.encode_descriptor(name, help, None, g.metric_type())?;
    g.encode(m)
}

/// A counter with one label taking several values.
fn counter_by(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: &[(&str, u64)],
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (v, n) in values {
        let labels = [(label, *v)];
        let labels = labels.as_slice();
        let f = m.encode_family(&labels)?;
        ConstCounter::new(*n).encode(f)?;
    }
    Ok(())
}

fn sat(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Collector for ServerCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let r = &self.running;
        encode_procedures(&mut enc, &r.stats.snapshot())?;
        encode_data(&mut enc, &r.service.counters, &r.stats)?;
        encode_loans_and_drc(&mut enc, &r.service)?;
        encode_connections(&mut enc, r)?;
        encode_file_locks(&mut enc, &r.service)?;
        encode_nfs4(&mut enc, &r.service)?;
        encode_cluster(&mut enc, &r.service)?;
        encode_backend_gates(&mut enc, &r.service)?;
        encode_reply_memory_and_uptime(&mut enc, r, self.started_ms)
    }
}

/// A gauge with one label taking several values.
fn gauge_by(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: &[(&str, u64)],
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (v, n) in values {
        let labels = [(label, *v)];
        let labels = labels.as_slice();
        let f = m.encode_family(&labels)?;
        ConstGauge::new(sat(*n)).encode(f)?;
    }
    Ok(())
}

/// Each export's backend gate (crate::backend_gate), by export id: requests busy in its
/// backend and waiting for a slot, and those answered "try again later".
fn encode_backend_gates(
    enc: &mut DescriptorEncoder,
    service: &crate::service::Service,
) -> Result<(), std::fmt::Error> {
    let gates = crate::backend_gate::gates();
    let exports = service.exports();
    // The gates of this server's exports, once each (the list is process-wide).
    let mine: Vec<(String, crate::backend_gate::GateInfo)> = exports
        .iter()
        .filter_map(|e| {
            let g = gates.iter().find(|g| g.export_id == e.id)?;
            Some((e.id.to_string(), g.clone()))
        })
        .collect();
    let by = |f: fn(&crate::backend_gate::GateInfo) -> u64| -> Vec<(&str, u64)> {
        mine.iter().map(|(id, g)| (id.as_str(), f(g))).collect()
    };
    gauge_by(
        enc,
        "rnfsd_export_backend_busy",
        "Requests busy in the export's backend now (at most export_fs_workers_max)",
        "export",
        &by(|g| g.busy as u64),
    )?;
    gauge_by(
        enc,
        "rnfsd_export_backend_waiting",
        "Requests waiting for one of the export's backend slots now",
        "export",
        &by(|g| g.waiting),
    )?;
    counter_by(
        enc,
        "rnfsd_export_backend_refused",
        "Requests answered JUKEBOX/DELAY because the export's backend was stuck or full",
        "export",
        &by(|g| g.refused_total),
    )
}

fn load(a: &std::sync::atomic::AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// Calls, errors and latency by program and procedure (procedures never called are left out).
fn encode_procedures(
    enc: &mut DescriptorEncoder,
    procs: &[crate::stats::ProcSnapshot],
) -> Result<(), std::fmt::Error> {
    let called: Vec<_> = procs.iter().filter(|p| p.calls > 0).collect();
    let mut m = enc.encode_descriptor(
        "rnfsd_requests",
        "RPC requests handled, by program and procedure",
        None,
        MetricType::Counter,
    )?;
    for p in &called {
        let labels = [("program", p.program), ("procedure", p.procedure)];
        ConstCounter::new(p.calls).encode(m.encode_family(&labels.as_slice())?)?;
    }
    encode_errors(enc, &called)?;
    encode_durations(enc, &called)
}

/// Failed requests by program, procedure and status; a call that got no reply is `NO_REPLY`.
fn encode_errors(
    enc: &mut DescriptorEncoder,
    called: &[&crate::stats::ProcSnapshot],
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(
        "rnfsd_request_errors",
        "Requests that failed, by program, procedure and status (nfsstat3, mountstat3 or RPC)",
        None,
        MetricType::Counter,
    )?;
    for p in called {
        let dropped = (p.dropped > 0).then_some(("NO_REPLY", p.dropped));
        let errors = p.errors.iter().map(|(s, n)| (s.as_str(), *n));
        for (status, n) in errors.chain(dropped) {
            let labels = [
                ("program", p.program),
                ("procedure", p.procedure),
                ("status", status),
            ];
            ConstCounter::new(n).encode(m.encode_family(&labels.as_slice())?)?;
        }
    }
    Ok(())
}

/// The latency histogram of each procedure called.
fn encode_durations(
    enc: &mut DescriptorEncoder,
    called: &[&crate::stats::ProcSnapshot],
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(
        "rnfsd_request_duration_seconds",
        "Time from taking a request to its reply being ready, by program and procedure",
        None,
        MetricType::Histogram,
    )?;
    for p in called {
        let labels = [("program", p.program), ("procedure", p.procedure)];
        let buckets: Vec<(f64, u64)> = (0..LATENCY_BUCKETS)
            .map(|i| {
                let ub = bucket_upper_us(i).map_or(f64::INFINITY, |u| u as f64 / 1e6);
                (ub, p.latency[i])
            })
            .collect();
        let count: u64 = p.latency.iter().sum();
        m.encode_family(&labels.as_slice())?
            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                p.latency_sum_us as f64 / 1e6,
                count,
                &buckets,
                None,
            )?;
    }
    Ok(())
}

/// READ, WRITE and network bytes.
fn encode_data(
    enc: &mut DescriptorEncoder,
    c: &crate::service::Counters,
    stats: &crate::stats::Stats,
) -> Result<(), std::fmt::Error> {
    counter_by(
        enc,
        "rnfsd_read_bytes",
        "NFS READ data bytes sent: zero-copy (spliced from the page cache) or buffered (one copy)",
        "path",
        &[
            ("zero_copy", load(&c.read_bytes_spliced)),
            ("buffered", load(&c.read_bytes_buffered)),
        ],
    )?;
    counter(
        enc,
        "rnfsd_write_bytes",
        "NFS WRITE data bytes written (successful WRITEs)",
        load(&stats.write_bytes),
    )?;
    counter_by(
        enc,
        "rnfsd_network_bytes",
        "RPC message bytes received and sent",
        "direction",
        &[
            ("in", load(&stats.bytes_in)),
            ("out", load(&stats.bytes_out)),
        ],
    )?;
    counter_by(
        enc,
        "rnfsd_requests_run",
        "Requests run on the thread that read them (a lone NFS call, see README 'Liveness') or on the worker pool",
        "on",
        &[
            ("in_place", load(&c.requests_in_place)),
            ("pool", load(&c.requests_pooled)),
        ],
    )?;
    counter(
        enc,
        "rnfsd_requests_read_lingering",
        "Of the requests run in place, those read by the thread that ran its connection's previous call, while it waited for the next one",
        load(&c.requests_in_place_lingering),
    )
}

/// The loan table and the duplicate request cache.
fn encode_loans_and_drc(
    enc: &mut DescriptorEncoder,
    svc: &crate::service::Service,
) -> Result<(), std::fmt::Error> {
    let loans = svc.loans().stats();
    gauge(
        enc,
        "rnfsd_loans_outstanding",
        "READ replies holding a loan slot now",
        i64::try_from(loans.outstanding).unwrap_or(i64::MAX),
    )?;
    gauge(
        enc,
        "rnfsd_loan_bytes_outstanding",
        "READ data bytes on loan now",
        sat(loans.bytes_outstanding),
    )?;
    counter(enc, "rnfsd_loans_lent", "Loans made", loans.lent_total)?;
    counter(
        enc,
        "rnfsd_loans_exhausted",
        "READs served without a loan because every slot was busy",
        loans.exhausted,
    )?;

    let drc = &svc.drc.stats;
    counter(
        enc,
        "rnfsd_drc_hits",
        "Retransmitted non-idempotent calls answered from the duplicate request cache",
        load(&drc.hits),
    )?;
    counter(
        enc,
        "rnfsd_drc_in_progress_drops",
        "Retransmissions dropped because the original call was still running",
        load(&drc.in_progress_drops),
    )?;

    Ok(())
}

/// Connections open, requests in flight, and why connections were closed or refused.
/// NLM: lock requests by outcome, calls to clients by result, and what is held now.
fn encode_file_locks(
    enc: &mut DescriptorEncoder,
    service: &crate::service::Service,
) -> Result<(), std::fmt::Error> {
    let locking = &service.locking;
    let (c, u) = locking.snapshot();
    counter_by(
        enc,
        "rnfsd_file_lock_requests",
        "Byte-range lock requests (NLM) by outcome",
        "outcome",
        &[
            ("granted", c.grants),
            ("granted_after_wait", c.waiter_grants),
            ("denied", c.denials),
            ("blocked", c.blocks),
            ("deadlock", c.deadlocks),
            ("grace_period", c.grace_refusals),
            ("no_locks", c.nolocks_refusals),
            ("cancelled", c.cancels),
        ],
    )?;
    let k = &locking.counters;
    counter_by(
        enc,
        "rnfsd_file_lock_callbacks",
        "Calls to lock clients (GRANTED, _RES, SM_NOTIFY) by result",
        "result",
        &[
            ("delivered", load(&k.callbacks_delivered)),
            ("failed", load(&k.callbacks_failed)),
            ("dropped", load(&k.callbacks_dropped)),
        ],
    )?;
    counter_by(
        enc,
        "rnfsd_file_lock_errors",
        "Lock calls that met a problem, by kind (each is also logged)",
        "kind",
        &[
            ("stale_handle", load(&k.stale_handles)),
            ("mirror", load(&k.mirror_errors)),
            ("nsm_record", load(&k.nsm_record_errors)),
            ("remote", load(&k.remote_errors)),
        ],
    )?;
    counter(
        enc,
        "rnfsd_file_lock_remote_calls",
        "Lock calls to a remote lock service (CephFS: the MDS), made outside the lock manager",
        load(&k.remote_calls),
    )?;
    gauge(
        enc,
        "rnfsd_file_locks",
        "Byte ranges locked by NFS clients",
        sat(u.locks as u64),
    )?;
    gauge(
        enc,
        "rnfsd_file_lock_waiters",
        "Blocked lock requests queued",
        sat(u.waiters as u64),
    )?;
    gauge(
        enc,
        "rnfsd_file_lock_shares",
        "Share reservations held",
        sat(u.shares as u64),
    )?;
    gauge(
        enc,
        "rnfsd_file_lock_clients",
        "Clients holding locks or waiting",
        sat(u.clients as u64),
    )
}

/// NFSv4: operations by name (executed, failed), clients, sessions, slots, stateids, grace.
fn encode_nfs4(
    enc: &mut DescriptorEncoder,
    service: &crate::service::Service,
) -> Result<(), std::fmt::Error> {
    let v4 = service.v4();
    let ops = &v4.ops;
    let by_op = |a: &[std::sync::atomic::AtomicU64]| -> Vec<(&'static str, u64)> {
        a.iter()
            .enumerate()
            .map(|(i, n)| (rnfs_nfs4::op_name(i as u32), load(n)))
            .filter(|(_, n)| *n > 0)
            .collect()
    };
    counter_by(
        enc,
        "rnfsd_nfs4_operations",
        "NFSv4 operations executed, by operation",
        "op",
        &by_op(&ops.calls),
    )?;
    counter_by(
        enc,
        "rnfsd_nfs4_operation_errors",
        "NFSv4 operations that failed (any status but NFS4_OK), by operation",
        "op",
        &by_op(&ops.errors),
    )?;
    let now = crate::clock::now_ms();
    let (c, u, in_grace, courtesy, busy) = v4.with(|s| {
        let clients = s.clients(now);
        let courtesy = clients.iter().filter(|c| c.courtesy).count();
        let busy: usize = clients.iter().map(|c| c.slots_in_use).sum();
        (s.counters(), s.usage(), s.in_grace(now), courtesy, busy)
    });
    counter_by(
        enc,
        "rnfsd_nfs4_events",
        "NFSv4 state events: client ids made, sessions made, SEQUENCEs, replies replayed from a slot, leases expired into courtesy, courtesy clients back, clients purged, delegations granted, recalled, returned and revoked",
        "event",
        &[
            ("exchange_id", c.exchange_ids),
            ("session_created", c.sessions_created),
            ("sequence", c.sequences),
            ("replay", c.replays),
            ("lease_expired", c.courtesy),
            ("courtesy_revived", c.revived),
            ("client_purged", c.purged),
            ("delegation_granted", c.delegations_granted),
            ("delegation_recalled", c.delegations_recalled),
            ("delegation_returned", c.delegations_returned),
            ("delegation_revoked", c.delegations_revoked),
        ],
    )?;
    let cb = &service.callbacks().counters;
    counter_by(
        enc,
        "rnfsd_nfs4_callbacks",
        "Calls to NFSv4 clients on their back channel (CB_NULL, CB_COMPOUND): made, answered, timed out, failed otherwise; replies matching no call; callbacks refused (queue full)",
        "result",
        &[
            ("call", load(&cb.calls)),
            ("answered", load(&cb.answered)),
            ("timeout", load(&cb.timeouts)),
            ("failed", load(&cb.failed)),
            ("stray_reply", load(&cb.stray_replies)),
            ("refused", load(&cb.jobs_refused)),
        ],
    )?;
    let copies = service.copies();
    gauge(
        enc,
        "rnfsd_nfs4_copy_jobs",
        "NFSv4.2 asynchronous copies running now (each on its own thread, at most copy_jobs_max)",
        sat(copies.running() as u64),
    )?;
    counter(
        enc,
        "rnfsd_nfs4_copy_bytes",
        "Bytes NFSv4.2 COPY copied within the server, synchronous and asynchronous",
        load(&copies.counters.bytes),
    )?;
    gauge(
        enc,
        "rnfsd_nfs4_delegations",
        "NFSv4 delegations held (those being recalled included)",
        sat(u.delegations as u64),
    )?;
    gauge(
        enc,
        "rnfsd_nfs4_clients",
        "NFSv4 client records",
        sat(u.clients as u64),
    )?;
    gauge(
        enc,
        "rnfsd_nfs4_courtesy_clients",
        "NFSv4 clients whose lease expired, state kept",
        sat(courtesy as u64),
    )?;
    gauge(
        enc,
        "rnfsd_nfs4_sessions",
        "NFSv4 sessions",
        sat(u.sessions as u64),
    )?;
    gauge(
        enc,
        "rnfsd_nfs4_slots_busy",
        "NFSv4 session slots with a request executing",
        sat(busy as u64),
    )?;
    gauge(
        enc,
        "rnfsd_nfs4_stateids",
        "NFSv4 open and lock stateids",
        sat(u.stateids as u64),
    )?;
    gauge(
        enc,
        "rnfsd_nfs4_reply_cache_bytes",
        "Bytes of NFSv4 slot reply caches holding replies",
        sat(u.reply_cache_used_bytes as u64),
    )?;
    gauge(
        enc,
        "rnfsd_nfs4_grace",
        "1 while the NFSv4 grace period runs",
        i64::from(in_grace),
    )
}

/// `[cluster]` only: the shared grace period and the polls of its database.
fn encode_cluster(
    enc: &mut DescriptorEncoder,
    svc: &crate::service::Service,
) -> Result<(), std::fmt::Error> {
    let Some(c) = svc.cluster() else {
        return Ok(());
    };
    gauge(
        enc,
        "rnfsd_cluster_grace",
        "1 while the grace period shared with the other heads runs (or its database is unread)",
        i64::from(c.feed_view()),
    )?;
    counter(
        enc,
        "rnfsd_cluster_polls",
        "Reads and renewals of the cluster's grace database",
        load(&c.polls_total),
    )?;
    counter(
        enc,
        "rnfsd_cluster_poll_errors",
        "Polls of the cluster's grace database that failed (logged)",
        load(&c.poll_errors_total),
    )?;
    counter(
        enc,
        "rnfsd_cluster_sessions_evicted",
        "CephFS sessions of dead heads this head evicted (logged)",
        load(&c.sessions_evicted_total),
    )
}

fn encode_connections(enc: &mut DescriptorEncoder, r: &Running) -> Result<(), std::fmt::Error> {
    let c = &r.service.counters;
    let conns = r.registry.connections();
    let tcp = conns
        .iter()
        .filter(|c| c.transport == crate::call::Transport::Tcp)
        .count();
    gauge(
        enc,
        "rnfsd_connections",
        "Open TCP connections",
        i64::try_from(tcp).unwrap_or(i64::MAX),
    )?;
    let in_flight: usize = conns.iter().map(|c| c.requests().len()).sum();
    gauge(
        enc,
        "rnfsd_requests_in_flight",
        "Requests received and not yet answered",
        i64::try_from(in_flight).unwrap_or(i64::MAX),
    )?;
    counter_by(
        enc,
        "rnfsd_connections_closed",
        "Connections the server closed, by reason",
        "reason",
        &[
            ("idle", load(&c.connections_closed_idle)),
            ("evicted_idlest", load(&c.connections_evicted_idle)),
            ("evicted_client_idlest", load(&r.registry.client_evictions)),
            ("reply_memory", load(&r.budget.shed)),
            ("slow_record", load(&c.connections_closed_slow_record)),
            ("send_stall", load(&c.connections_closed_send_stall)),
            ("bad_record", load(&c.connections_closed_bad_record)),
        ],
    )?;
    counter(
        enc,
        "rnfsd_connections_refused",
        "Connections refused because their client had too many, none of them idle",
        load(&c.connections_refused_per_client),
    )?;
    counter(
        enc,
        "rnfsd_udp_datagrams_dropped",
        "UDP requests dropped because the server was at its request limit",
        load(&c.udp_datagrams_dropped),
    )?;
    Ok(())
}

/// Reply memory, watchdog stalls and uptime.
fn encode_reply_memory_and_uptime(
    enc: &mut DescriptorEncoder,
    r: &Running,
    started_ms: u64,
) -> Result<(), std::fmt::Error> {
    let budget = &r.budget;
    gauge(
        enc,
        "rnfsd_reply_memory_bytes",
        "Bytes of replies being built or waiting to be sent (bounded by reply_bytes_max)",
        sat(budget.held() as u64),
    )?;
    counter(
        enc,
        "rnfsd_reply_memory_waits",
        "Requests that waited because replies not yet sent held all of reply_bytes_max",
        load(&budget.waits),
    )?;
    counter(
        enc,
        "rnfsd_reply_memory_overruns",
        "Replies larger than their reservation answered SYSTEM_ERR as no reply memory was free",
        load(&budget.overruns),
    )?;
    counter(
        enc,
        "rnfsd_watchdog_stalls",
        "Stalls the watchdog reported (requests, loans or the runtime stuck past the bound)",
        r.watch.stalls_total.load(Ordering::Relaxed),
    )?;
    gauge(
        enc,
        "rnfsd_uptime_seconds",
        "Seconds since the server started",
        sat(crate::clock::now_ms().saturating_sub(started_ms) / 1000),
    )?;
    Ok(())
}

/// Serves `GET /metrics` on `listener` until the task is cancelled.
pub async fn serve(listener: TcpListener, collector: ServerCollector) {
    let collector = Arc::new(collector);
    let scrapes = Arc::new(Semaphore::new(SCRAPES_MAX));
    loop {
        let Ok(permit) = scrapes.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let collector = collector.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(SCRAPE_TIMEOUT, scrape(stream, &collector)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => debug!(%peer, error = %e, "metrics: scrape failed"),
                Err(_) => debug!(%peer, "metrics: scrape timed out"),
            }
            drop(permit);
        });
    }
}

async fn scrape(mut stream: TcpStream, collector: &ServerCollector) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        if head.len() > REQUEST_HEAD_BYTES_MAX {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "request head too large\n",
            )
            .await;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") | ("GET", "/") => {
            let body = collector.render();
            respond(
                &mut stream,
                "200 OK",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                &body,
            )
            .await
        }
        ("GET", _) => respond(&mut stream, "404 Not Found", "text/plain", "try /metrics\n").await,
        _ => {
            respond(
                &mut stream,
                "405 Method Not Allowed",
                "text/plain",
                "GET only\n",
            )
            .await
        }
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
