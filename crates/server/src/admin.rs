//! The admin interface: a control socket that answers what the server is doing right now.
//!
//! `state_dir/rnfsd.sock` is a Unix socket, mode 0600, that accepts only peers whose
//! `SO_PEERCRED` uid is root or the server's own. The protocol is one JSON object per line each
//! way: a request such as `{"cmd":"status"}` gets one reply, `{"ok":true,"cmd":"status","data":
//! {...}}` or `{"ok":false,"error":"..."}`. `rnfsd ctl` is its client; anything that writes a line
//! to a Unix socket is another (`socat - UNIX-CONNECT:rnfsd.sock`).
//!
//! Commands:
//!
//! | `cmd` | answers |
//! |---|---|
//! | `status` | version, uptime, exports, listeners, connections, requests in flight, loans, verifier, stalls |
//! | `connections` | each connection: peer, transport, auth flavour and uid, age, idle, requests served and in flight by stage, bytes in and out |
//! | `requests` | every request in flight: connection, peer, xid, procedure, file handle, age, stage |
//! | `loans` | READ data on loan: slot, owner connection and peer, file, range, bytes, age, state |
//! | `locks` | every tracked lock: holder thread, call site, held for, waiters |
//! | `exports` | the export table and its client rules |
//! | `exports reload` | re-read the configuration file and swap the export table (what SIGHUP does too: [`ExportsReloader`]) |
//! | `stats` | per-procedure calls, errors by status, latency percentiles; bytes |
//! | `stalls` | the watchdog's stall reports |
//! | `log` | the log filter and per-client debug; `filter` sets the filter, `client` + `level` (`debug`/`off`) the per-client switch |
//!
//! # Liveness
//! Every command but `exports reload` only reads atomics and takes leaf locks for a copy, so it is
//! answered on the reactor even while every file-system worker is stuck (the situation it exists
//! for). `exports reload` reads files and runs on the blocking pool, one at a time. Requests are
//! bounded (one line of at most [`REQUEST_BYTES_MAX`]), so are clients at once
//! ([`CLIENTS_MAX`]), and an idle client is dropped after [`CLIENT_IDLE`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::clock::now_ms;
use crate::config::Config;
use crate::exports::{Export, ExportTable};
use crate::registry::Stage;
use crate::{Running, ServeError, ServeOptions};

/// The control socket's name inside the state directory.
pub const SOCKET_NAME: &str = "rnfsd.sock";
/// Largest request line.
pub const REQUEST_BYTES_MAX: usize = 4096;
/// Admin clients served at once; more are told so and closed.
pub const CLIENTS_MAX: usize = 8;
/// An admin client that sends nothing for this long is closed.
pub const CLIENT_IDLE: Duration = Duration::from_secs(60);
/// Time allowed to write one reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// What the admin interface reads and changes.
pub struct Admin {
    running: Running,
    started_ms: u64,
    state_dir: PathBuf,
    config_source: Option<PathBuf>,
    metrics: Option<SocketAddr>,
    socket: Option<PathBuf>,
}

/// Re-reads the file a server was started from and swaps its export table: what
/// `rnfsd ctl exports reload` and the binary's SIGHUP both call, so the two cannot differ.
pub struct ExportsReloader {
    service: Arc<crate::service::Service>,
    state_dir: PathBuf,
    source: Option<PathBuf>,
    format: crate::config::SourceFormat,
    /// One reload at a time, whoever asks.
    one: Semaphore,
}

impl ExportsReloader {
    pub(crate) fn new(service: Arc<crate::service::Service>, opts: &ServeOptions) -> Self {
        ExportsReloader {
            service,
            state_dir: opts.state_dir.clone(),
            source: opts.config.source.clone(),
            format: opts.config.source_format,
            one: Semaphore::new(1),
        }
    }

    /// The file a reload re-reads (`None`: the server was not started from one).
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// Re-reads the configuration and swaps the export table (see [`reload_exports`]); on error
    /// the current table stays and the error says why. Reads files on the blocking pool.
    pub async fn reload(&self) -> Result<Value, String> {
        let Some(source) = self.source.clone() else {
            return Err(
                "this server was not started from a configuration file (--config or --exports): \
                 nothing to reload"
                    .into(),
            );
        };
        let _one = self
            .one
            .acquire()
            .await
            .map_err(|_| "shutting down".to_owned())?;
        let service = self.service.clone();
        let state_dir = self.state_dir.clone();
        let format = self.format;
        tokio::task::spawn_blocking(move || reload_exports(&service, &source, format, &state_dir))
            .await
            .map_err(|e| format!("reload failed: {e}"))?
    }
}

/// Starts the admin interface of a running server: the metrics listener, if configured (failing
/// to bind it fails the start), and the control socket (failing to create it is logged: the
/// server still serves).
pub async fn start(
    running: &Running,
    opts: &ServeOptions,
    tasks: &mut tokio::task::JoinSet<()>,
) -> Result<Arc<Admin>, ServeError> {
    let started_ms = now_ms();
    let mut metrics = None;
    if let Some(addr) = opts.config.metrics {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Listen { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| ServeError::Listen { addr, source })?;
        info!("metrics: http://{bound}/metrics");
        metrics = Some(bound);
        tasks.spawn(crate::metrics::serve(
            listener,
            crate::metrics::ServerCollector::new(running.clone(), started_ms),
        ));
    }

    let state_dir = opts.state_dir.clone();
    let bound = {
        let dir = state_dir.clone();
        tokio::task::spawn_blocking(move || bind_socket(&dir))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
    };
    let (listener, socket) = match bound
        .and_then(|(std_listener, file)| Ok((UnixListener::from_std(std_listener)?, file)))
    {
        Ok((l, file)) => {
            info!(socket = %file.path.display(), "control socket: rnfsd ctl --state-dir {} status", state_dir.display());
            let path = file.path.clone();
            (Some((l, file)), Some(path))
        }
        Err(e) => {
            warn!(dir = %state_dir.display(), error = %e, "no control socket: rnfsd ctl will not reach this server");
            (None, None)
        }
    };
    let admin = Arc::new(Admin {
        running: running.clone(),
        started_ms,
        state_dir,
        config_source: opts.config.source.clone(),
        metrics,
        socket,
    });
    if let Some((listener, file)) = listener {
        tasks.spawn(accept_loop(listener, file, admin.clone()));
    }
    Ok(admin)
}

/// The socket file; removed when the accept loop ends (shutdown), if it is still ours.
struct SocketFile {
    path: PathBuf,
    ino: u64,
    own_uid: u32,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        use std::os::unix::fs::MetadataExt;
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.ino) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Creates the state directory if needed and binds the control socket in it, mode 0600.
fn bind_socket(
    state_dir: &Path,
) -> std::io::Result<(std::os::unix::net::UnixListener, SocketFile)> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)?;
    let path = state_dir.join(SOCKET_NAME);
    if std::fs::symlink_metadata(&path).is_ok() {
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is in use by another running rnfsd", path.display()),
            ));
        }
        // Left behind by a server that did not exit cleanly.
        std::fs::remove_file(&path)?;
    }
    // Bind under a private name, restrict it, then move it into place: the socket is never
    // reachable with looser permissions.
    let tmp = state_dir.join(format!("{SOCKET_NAME}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener = std::os::unix::net::UnixListener::bind(&tmp)?;
    let setup = (|| {
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        let meta = std::fs::symlink_metadata(&tmp)?;
        std::fs::rename(&tmp, &path)?;
        Ok::<_, std::io::Error>(meta)
    })();
    let meta = match setup {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    listener.set_nonblocking(true)?;
    Ok((
        listener,
        SocketFile {
            path,
            ino: meta.ino(),
            own_uid: meta.uid(),
        },
    ))
}

async fn accept_loop(listener: UnixListener, file: SocketFile, admin: Arc<Admin>) {
    let clients = Arc::new(Semaphore::new(CLIENTS_MAX));
    let own_uid = file.own_uid;
    // Keeps the socket file until this task ends.
    let _file = file;
    loop {
        let mut stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                warn!(error = %e, "control socket: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let uid = stream.peer_cred().map(|c| c.uid()).ok();
        if !uid.is_some_and(|u| u == 0 || u == own_uid) {
            warn!(
                ?uid,
                "control socket: refused a client that is neither root nor the server's user"
            );
            tokio::spawn(async move {
                let _ = tokio::time::timeout(
                    REPLY_TIMEOUT,
                    write_line(&mut stream, &error_reply("permission denied")),
                )
                .await;
            });
            continue;
        }
        let Ok(permit) = clients.clone().try_acquire_owned() else {
            tokio::spawn(async move {
                let _ = tokio::time::timeout(
                    REPLY_TIMEOUT,
                    write_line(
                        &mut stream,
                        &error_reply("too many admin clients; try again"),
                    ),
                )
                .await;
            });
            continue;
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            admin.client(stream).await;
            drop(permit);
        });
    }
}

fn error_reply(msg: &str) -> Value {
    json!({"ok": false, "error": msg})
}

async fn write_line(stream: &mut UnixStream, v: &Value) -> std::io::Result<()> {
    let mut line = v.to_string();
    line.push('\n');
    stream.write_all(line.as_bytes()).await
}

/// One admin request.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub cmd: String,
    /// `log`: the new global filter.
    #[serde(default)]
    pub filter: Option<String>,
    /// `log`: the client address for per-client debug.
    #[serde(default)]
    pub client: Option<String>,
    /// `log` with `client`: `debug` or `off`.
    #[serde(default)]
    pub level: Option<String>,
}

impl Admin {
    async fn client(&self, stream: UnixStream) {
        let (rd, mut wr) = stream.into_split();
        let mut rd = BufReader::new(rd);
        let mut line = Vec::with_capacity(256);
        loop {
            line.clear();
            let mut limited = (&mut rd).take(REQUEST_BYTES_MAX as u64 + 1);
            let read = limited.read_until(b'\n', &mut line);
            match tokio::time::timeout(CLIENT_IDLE, read).await {
                Ok(Ok(0)) | Err(_) => return,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    debug!(error = %e, "control socket: read failed");
                    return;
                }
            }
            let too_long = line.last() != Some(&b'\n') && line.len() > REQUEST_BYTES_MAX;
            let reply = if too_long {
                error_reply(&format!("request longer than {REQUEST_BYTES_MAX} bytes"))
            } else {
                match serde_json::from_slice::<Request>(&line) {
                    Ok(req) => self.handle(req).await,
                    Err(e) => error_reply(&format!(
                        "bad request (want one JSON object per line, e.g. {{\"cmd\":\"status\"}}): {e}"
                    )),
                }
            };
            let mut out = reply.to_string();
            out.push('\n');
            match tokio::time::timeout(REPLY_TIMEOUT, wr.write_all(out.as_bytes())).await {
                Ok(Ok(())) if !too_long => {}
                _ => return,
            }
        }
    }

    /// Answers one request.
    pub async fn handle(&self, req: Request) -> Value {
        let cmd = req.cmd.split_whitespace().collect::<Vec<_>>().join(" ");
        let result = match cmd.as_str() {
            "status" => Ok(self.status()),
            "connections" | "clients" => Ok(self.connections()),
            "client totals" => Ok(self.client_totals()),
            "requests" => Ok(self.requests()),
            "loans" => Ok(self.loans()),
            "locks" => Ok(locks()),
            "filelocks" => Ok(self.file_locks()),
            "nfs4 clients" => Ok(self.nfs4_clients()),
            "nfs4 delegations" => Ok(self.nfs4_delegations()),
            "nfs4 copies" => Ok(self.nfs4_copies()),
            "nfs4 expire" => self.nfs4_expire(req.client.as_deref()).await,
            "exports" => Ok(self.exports()),
            "exports reload" | "reload" => self.reload().await,
            "stats" => Ok(self.stats()),
            "stalls" => Ok(self.stalls()),
            "cluster" => Ok(self.cluster()),
            "log" => log_command(&req),
            other => Err(format!(
                "unknown command {other:?}; commands: status, connections, requests, loans, locks, \
                 filelocks, nfs4 clients, nfs4 delegations, nfs4 copies, nfs4 expire, exports, exports reload, stats, stalls, cluster, log"
            )),
        };
        match result {
            Ok(data) => json!({"ok": true, "cmd": cmd, "data": data}),
            Err(e) => error_reply(&e),
        }
    }

    fn status(&self) -> Value {
        let r = &self.running;
        let now = now_ms();
        let conns = r.registry.connections();
        let tcp = conns
            .iter()
            .filter(|c| c.transport == crate::call::Transport::Tcp)
            .count();
        let in_flight: usize = conns.iter().map(|c| c.requests().len()).sum();
        let loans = r.service.loans().stats();
        let table = r.service.exports();
        let gates = crate::backend_gate::gates();
        let c = &r.service.counters;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        let mut listeners = Vec::new();
        for a in &r.listening {
            listeners.push(format!("tcp {a}"));
            listeners.push(format!("udp {a}"));
        }
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "uptime_ms": now.saturating_sub(self.started_ms),
            "listeners": listeners,
            "metrics": self.metrics.map(|a| format!("http://{a}/metrics")),
            "control_socket": self.socket.as_ref().map(|p| p.display().to_string()),
            "state_dir": self.state_dir.display().to_string(),
            "config": self.config_source.as_ref().map(|p| p.display().to_string()),
            "exports": table.iter().map(|e| {
                // The export's gate (crate::backend_gate): requests busy in its backend now, the
                // most allowed, and how many were answered "try again later" for want of one.
                let gate = gates.iter().find(|g| g.export_id == e.id);
                json!({
                    "id": e.id,
                    "mount_path": e.mount_path,
                    "backend": e.backend.describe(),
                    "backend_busy": gate.map(|g| g.busy),
                    "backend_busy_max": gate.map(|g| g.busy_max),
                    "backend_waiting": gate.map(|g| g.waiting),
                    "backend_refused_total": gate.map(|g| g.refused_total),
                    "backend_fenced": gate.map(|g| g.fenced),
                })
            }).collect::<Vec<_>>(),
            "connections": tcp,
            "requests_in_flight": in_flight,
            "requests_total": r.stats.calls_total(),
            "loans": {
                "outstanding": loans.outstanding,
                "bytes_outstanding": loans.bytes_outstanding,
                "slots": r.service.loans().capacity(),
                "lent_total": loans.lent_total,
                "exhausted": loans.exhausted,
            },
            "reply_memory": {
                "held": r.budget.held(),
                "max": r.budget.max(),
                "waits": load(&r.budget.waits),
                "connections_shed": load(&r.budget.shed),
                "overruns": load(&r.budget.overruns),
            },
            "write_verifier": hex(&r.service.write_verifier()),
            "read_bytes": {
                "zero_copy": load(&c.read_bytes_spliced),
                "buffered": load(&c.read_bytes_buffered),
            },
            "write_bytes": load(&r.stats.write_bytes),
            "drc_hits": load(&r.service.drc.stats.hits),
            "stalls_total": load(&r.watch.stalls_total),
            "heartbeat_age_ms": now.saturating_sub(load(&r.watch.heartbeat_ms)),
            "log_filter": crate::logging::current_filter(),
        })
    }

    fn connections(&self) -> Value {
        let now = now_ms();
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        let list: Vec<Value> = self
            .running
            .registry
            .connections()
            .iter()
            .map(|c| {
                let reqs = c.requests();
                let at = |s: Stage| reqs.iter().filter(|r| r.stage == s).count();
                let auth = load(&c.last_auth);
                let (flavor, uid) = if auth == u64::MAX {
                    (None, None)
                } else {
                    let f = (auth >> 32) as u32;
                    (Some(flavor_name(f)), (f == 1).then_some(auth as u32))
                };
                let udp = c.transport == crate::call::Transport::Udp;
                json!({
                    "id": c.id,
                    // A UDP socket serves every UDP client: its counters are theirs together.
                    "peer": if udp { "*".to_owned() } else { c.peer.to_string() },
                    "local": udp.then(|| c.peer.to_string()),
                    "transport": match c.transport {
                        crate::call::Transport::Tcp => "tcp",
                        crate::call::Transport::Udp => "udp",
                    },
                    "auth": flavor,
                    "uid": uid,
                    "age_ms": now.saturating_sub(c.opened_ms),
                    "idle_ms": now.saturating_sub(load(&c.last_active_ms)),
                    "requests_served": load(&c.requests_served),
                    "in_flight": reqs.len(),
                    // Waiting for reply memory is waiting before running, as queued is.
                    "queued": at(Stage::Queued) + at(Stage::Budget),
                    "in_fs": at(Stage::Fs) + at(Stage::LockCall),
                    "sending": at(Stage::Sending),
                    "bytes_in": load(&c.bytes_in),
                    "bytes_out": load(&c.bytes_out),
                })
            })
            .collect();
        Value::Array(list)
    }

    /// Per client address since the start: TCP connections open and closed, requests, bytes;
    /// and each UDP socket's, which are all UDP clients' together.
    fn client_totals(&self) -> Value {
        let reg = &self.running.registry;
        let mut list: Vec<Value> = reg
            .client_totals()
            .into_iter()
            .map(|(ip, t, open)| {
                json!({
                    // `null`: the clients past the table's bound, together.
                    "client": ip.map(|a| a.to_string()),
                    "transport": "tcp",
                    "connections_open": open,
                    "connections_closed": t.connections.saturating_sub(open),
                    "requests": t.requests,
                    "bytes_in": t.bytes_in,
                    "bytes_out": t.bytes_out,
                })
            })
            .collect();
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        let udp = reg.connections().into_iter();
        list.extend(
            udp.filter(|c| c.transport == crate::call::Transport::Udp)
                .map(|c| {
                    json!({
                        "client": "*",
                        "transport": "udp",
                        "local": c.peer.to_string(),
                        "connections_open": 1,
                        "connections_closed": 0,
                        "requests": load(&c.requests_served),
                        "bytes_in": load(&c.bytes_in),
                        "bytes_out": load(&c.bytes_out),
                    })
                }),
        );
        Value::Array(list)
    }

    fn requests(&self) -> Value {
        let now = now_ms();
        let mut reqs = self.running.registry.requests();
        reqs.sort_by_key(|r| r.started_ms);
        let calls = crate::backend_gate::calls();
        Value::Array(
            reqs.iter()
                .map(|r| {
                    json!({
                        "conn": r.conn_id,
                        "peer": r.peer.to_string(),
                        "xid": format!("{:#x}", r.xid),
                        "procedure": r.procedure_name(),
                        "file_handle": r.file_handle.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                        "age_ms": now.saturating_sub(r.started_ms),
                        "stage": stage_name(r.stage),
                        "waiting_on": crate::watchdog::waiting_on(r, &calls),
                        "backend_call": calls.iter()
                            .find(|c| c.request == Some((r.conn_id, r.xid)))
                            .map(|c| json!({
                                "export": c.export_id,
                                "backend": c.backend,
                                "call": c.call,
                                "age_ms": now.saturating_sub(c.started_ms),
                            })),
                    })
                })
                .collect(),
        )
    }

    fn loans(&self) -> Value {
        let now = now_ms();
        let conns = self.running.registry.connections();
        let stats = self.running.service.loans().stats();
        let loans: Vec<Value> = self
            .running
            .service
            .loans()
            .snapshot()
            .iter()
            .map(|l| {
                json!({
                    "slot": l.slot,
                    "kind": match l.kind {
                        rnfs_loan::LoanKind::Spliced => "zero-copy",
                        rnfs_loan::LoanKind::Buffered => "buffered",
                    },
                    "state": match l.state {
                        rnfs_loan::LoanState::Claimed => "claimed",
                        rnfs_loan::LoanState::Lent => "lent",
                        rnfs_loan::LoanState::Returned => "returned",
                    },
                    "owner_conn": l.owner,
                    "peer": conns.iter().find(|c| c.id == l.owner).map(|c| c.peer.to_string()),
                    "fileid": l.fileid,
                    "offset": l.offset,
                    "bytes": l.bytes,
                    "age_ms": now.saturating_sub(l.started_ms),
                })
            })
            .collect();
        json!({
            "outstanding": stats.outstanding,
            "bytes_outstanding": stats.bytes_outstanding,
            "slots": self.running.service.loans().capacity(),
            "lent_total": stats.lent_total,
            "returned_clean": stats.returned_clean,
            "returned_by_reaper": stats.returned_by_reaper,
            "exhausted": stats.exhausted,
            "loans": loans,
        })
    }

    fn exports(&self) -> Value {
        json!({
            "config": self.config_source.as_ref().map(|p| p.display().to_string()),
            "exports": export_list(&self.running.service.exports()),
        })
    }

    async fn reload(&self) -> Result<Value, String> {
        self.running.exports_reload.reload().await
    }

    fn stats(&self) -> Value {
        let r = &self.running;
        let c = &r.service.counters;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        let procs: Vec<Value> = r
            .stats
            .snapshot()
            .iter()
            .filter(|p| p.calls > 0)
            .map(|p| {
                let q = |x: f64| p.latency_quantile_us(x).map(|v| v.round() as u64);
                let errors: serde_json::Map<String, Value> = p
                    .errors
                    .iter()
                    .map(|(k, n)| (k.clone(), json!(n)))
                    .collect();
                json!({
                    "program": p.program,
                    "procedure": p.procedure,
                    "calls": p.calls,
                    "errors": errors,
                    "no_reply": p.dropped,
                    "latency_us": {
                        "mean": p.latency_sum_us.checked_div(p.calls),
                        "p50": q(0.5),
                        "p90": q(0.9),
                        "p99": q(0.99),
                        "max": p.latency_max_us,
                    },
                    // Calls per bucket (bounds in `latency_bucket_upper_us`), so a client can
                    // difference two replies into one interval's percentiles (`rnfsd ctl top`).
                    "latency_buckets": p.latency.as_slice(),
                })
            })
            .collect();
        json!({
            "uptime_ms": now_ms().saturating_sub(self.started_ms),
            "requests_total": r.stats.calls_total(),
            "bytes_in": load(&r.stats.bytes_in),
            "bytes_out": load(&r.stats.bytes_out),
            "read_bytes_zero_copy": load(&c.read_bytes_spliced),
            "read_bytes_buffered": load(&c.read_bytes_buffered),
            "write_bytes": load(&r.stats.write_bytes),
            "drc_hits": load(&self.running.service.drc.stats.hits),
            "latency_bucket_upper_us": (0..crate::stats::LATENCY_BUCKETS)
                .map(crate::stats::bucket_upper_us)
                .collect::<Vec<_>>(),
            "procedures": procs,
        })
    }

    fn stalls(&self) -> Value {
        let now = now_ms();
        let w = &self.running.watch;
        json!({
            "stalls_total": w.stalls_total.load(std::sync::atomic::Ordering::Relaxed),
            "stall_bound_ms": self.running.service.limits().stall_bound_ms,
            "reports": w.reports().iter().map(|r| json!({
                "at_ms": r.at_ms,
                "ago_ms": now.saturating_sub(r.at_ms),
                "summary": r.summary,
                "text": r.text,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Rows of `rnfsd ctl nfs4 delegations` at most (the total is given).
const DELEGATION_ROWS_MAX: usize = 10_000;

/// Rows of `rnfsd ctl filelocks` at most (the manager may hold many more; their count is given).
const FILE_LOCK_ROWS_MAX: usize = 10_000;

impl Admin {
    /// NFS clients' byte-range locks, share reservations and blocked requests, with counters.
    /// NFSv4 clients: owner, lease age, sessions, slots in use, opens, locks.
    fn nfs4_clients(&self) -> Value {
        let clients = self.running.service.v4().clients(now_ms());
        json!({ "clients": clients })
    }

    /// NFSv4 delegations: holder, file handle, kind, and the recall's deadline; with the
    /// back channel's call counts.
    /// The grace period shared with the other heads of a CephFS (`[cluster]`).
    fn cluster(&self) -> Value {
        match self.running.service.cluster() {
            Some(c) => c.report(),
            None => json!({ "configured": false }),
        }
    }

    fn nfs4_delegations(&self) -> Value {
        let svc = &self.running.service;
        let rows = svc.v4().delegations(now_ms(), DELEGATION_ROWS_MAX);
        let total = svc.v4().with(|s| s.delegations());
        let c = &svc.callbacks().counters;
        let n = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        json!({
            "delegations": rows,
            "total": total,
            "callbacks": {
                "calls": n(&c.calls),
                "answered": n(&c.answered),
                "timeouts": n(&c.timeouts),
                "failed": n(&c.failed),
                "stray_replies": n(&c.stray_replies),
                "jobs_refused": n(&c.jobs_refused),
            },
        })
    }

    /// NFSv4.2 asynchronous copies (running, and finished ones not yet forgotten): client,
    /// source and destination handles, bytes done of total, age, state; with COPY's counts.
    fn nfs4_copies(&self) -> Value {
        let copies = self.running.service.copies();
        let now = now_ms();
        let rows: Vec<Value> = copies
            .list()
            .iter()
            .map(|j| {
                let copied = j.outcome().map_or(j.copied(), |o| o.copied);
                json!({
                    "clientid": format!("{:016x}", j.client),
                    "stateid": hex(&j.id),
                    "src": hex(&j.src_fh),
                    "dst": hex(&j.dst_fh),
                    "copied": copied,
                    "total": j.total,
                    "age_ms": now.saturating_sub(j.started_ms),
                    "state": j.state(),
                    "error": j.outcome().and_then(|o| o.error.as_ref()).map(|e| e.to_string()),
                })
            })
            .collect();
        let c = &copies.counters;
        let n = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        json!({
            "copies": rows,
            "running": copies.running(),
            "limit": self.running.service.limits().copy_jobs_max,
            "counters": {
                "bytes": n(&c.bytes),
                "sync_copies": n(&c.sync_copies),
                "async_started": n(&c.async_started),
                "async_refused": n(&c.async_refused),
                "cancelled": n(&c.cancelled),
                "offloads_sent": n(&c.offloads_sent),
            },
        })
    }

    /// Expires an NFSv4 client by hand (its opens and locks are released, its record file
    /// rewritten: on a blocking thread, not the runtime's).
    async fn nfs4_expire(&self, client: Option<&str>) -> Result<Value, String> {
        let id = client
            .and_then(|c| u64::from_str_radix(c.trim_start_matches("0x"), 16).ok())
            .ok_or("usage: rnfsd ctl nfs4 expire CLIENTID (hex, as `nfs4 clients` shows it)")?;
        let service = self.running.service.clone();
        let expired = tokio::task::spawn_blocking(move || {
            service.v4().expire(now_ms(), id, &service.locking)
        })
        .await
        .map_err(|e| format!("expire failed: {e}"))?;
        if expired {
            // Its copies stop now rather than at the copy supervisor's next look.
            self.running.service.copies().cancel_client(id);
            Ok(json!({ "expired": format!("{id:016x}") }))
        } else {
            Err(format!("no NFSv4 client {id:016x}"))
        }
    }

    fn file_locks(&self) -> Value {
        let locking = &self.running.service.locking;
        let (counters, usage) = locking.snapshot();
        let rows = locking.report(now_ms(), FILE_LOCK_ROWS_MAX);
        let text = |b: &bytes::Bytes| String::from_utf8_lossy(b).into_owned();
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        // NLM owners are svid and the owner handle (often text, e.g. "1234@host").
        let owner = |b: &bytes::Bytes| {
            let (svid, oh) = crate::locking::split_owner_key(b);
            match std::str::from_utf8(&oh) {
                Ok(t) if t.chars().all(|c| c.is_ascii_graphic()) => format!("{svid}/{t}"),
                _ => format!("{svid}/0x{}", hex(&oh)),
            }
        };
        json!({
            "usage": {
                "locks": usage.locks, "shares": usage.shares, "waiters": usage.waiters,
                "owners": usage.owners, "clients": usage.clients, "files": usage.files,
            },
            "counters": {
                "grants": counters.grants, "waiter_grants": counters.waiter_grants,
                "denials": counters.denials, "blocks": counters.blocks,
                "deadlocks": counters.deadlocks, "grace_refusals": counters.grace_refusals,
                "nolocks_refusals": counters.nolocks_refusals, "cancels": counters.cancels,
            },
            "nsm_state": locking.nsm_state(),
            // Lock calls to a remote lock service (CephFS: the MDS), made outside the manager.
            "remote_calls": locking.counters.remote_calls.load(std::sync::atomic::Ordering::Relaxed),
            "remote_errors": locking.counters.remote_errors.load(std::sync::atomic::Ordering::Relaxed),
            "rows": rows.iter().map(|r| json!({
                "what": r.what,
                "file": hex(&r.file[..]),
                "client": text(&r.client),
                "owner": owner(&r.owner),
                "mode": r.mode,
                "offset": r.range.0,
                "len": r.range.1,
                "age_ms": r.age_ms,
            })).collect::<Vec<_>>(),
        })
    }
}

fn locks() -> Value {
    let now = now_ms();
    Value::Array(
        crate::lockdep::all_locks()
            .iter()
            .map(|l| {
                json!({
                    "name": l.name,
                    "held": l.holder.is_some(),
                    "holder_thread": l.holder,
                    "site": l.site,
                    "held_for_ms": l.held_since_ms.map(|t| now.saturating_sub(t)),
                    "waiters": l.waiters,
                    "acquisitions": l.acquisitions,
                })
            })
            .collect(),
    )
}

fn log_command(req: &Request) -> Result<Value, String> {
    match (&req.filter, &req.client) {
        (Some(_), Some(_)) => return Err("give either a filter or a client, not both".into()),
        (Some(f), None) => {
            crate::logging::set_filter(f)?;
        }
        (None, Some(c)) => {
            let ip: std::net::IpAddr = c
                .parse()
                .map_err(|_| format!("{c:?} is not an IP address"))?;
            let on = match req.level.as_deref().unwrap_or("debug") {
                "debug" | "on" => true,
                "off" | "default" | "none" => false,
                other => {
                    return Err(format!(
                        "per-client level {other:?}: use \"debug\" or \"off\""
                    ))
                }
            };
            crate::logging::set_client_debug(ip, on)?;
        }
        (None, None) => {}
    }
    Ok(json!({
        "filter": crate::logging::current_filter(),
        "debug_clients": crate::logging::debug_clients().iter().map(|ip| ip.to_string()).collect::<Vec<_>>(),
    }))
}

fn export_list(table: &ExportTable) -> Vec<Value> {
    table
        .iter()
        .map(|e| {
            json!({
                "id": e.id,
                "mount_path": e.mount_path,
                "backend": e.backend.describe(),
                "rules": e.rules.iter().map(|r| json!({
                    "match": r.matches.to_string(),
                    "access": match r.access {
                        crate::config::Access::Ro => "ro",
                        crate::config::Access::Rw => "rw",
                    },
                    "root_squash": r.root_squash,
                    "all_squash": r.all_squash,
                    "anonuid": r.anonuid,
                    "anongid": r.anongid,
                    "secure": r.secure,
                })).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// Re-reads `source` and replaces the service's export table. Exports that keep their id and
/// source (directory; for CephFS also the cluster's config and client id: `source_identity`)
/// keep their backend (open files, caches, connections), so transfers in progress are undisturbed;
/// the new rules apply from the next call on. Listeners and limits are not reloaded.
pub fn reload_exports(
    service: &crate::service::Service,
    source: &Path,
    format: crate::config::SourceFormat,
    state_dir: &Path,
) -> Result<Value, String> {
    let config = Config::load_as(source, format).map_err(|e| e.to_string())?;
    let key = rnfs_storage::handle::HandleKey::load_or_create(state_dir)
        .map_err(|e| format!("state directory {}: {e}", state_dir.display()))?;
    let fresh = ExportTable::build(&config, &key).map_err(|e| e.to_string())?;
    if fresh.is_empty() {
        return Err(format!(
            "{} has no exports; keeping the current table",
            source.display()
        ));
    }
    let old = service.exports();
    let mut exports = Vec::new();
    let (mut added, mut changed, mut kept) = (Vec::new(), Vec::new(), Vec::new());
    for e in fresh.iter() {
        let backend = match old.by_id(e.id) {
            Some(o) if o.backend.source_identity() == e.backend.source_identity() => {
                let same_rules = format!("{:?}", o.rules) == format!("{:?}", e.rules)
                    && o.mount_path == e.mount_path;
                if same_rules {
                    kept.push(e.mount_path.clone());
                } else {
                    changed.push(e.mount_path.clone());
                }
                o.backend.clone()
            }
            _ => {
                added.push(e.mount_path.clone());
                e.backend.clone()
            }
        };
        exports.push(Arc::new(Export {
            id: e.id,
            mount_path: e.mount_path.clone(),
            backend,
            rules: e.rules.clone(),
        }));
    }
    let removed: Vec<String> = old
        .iter()
        .filter(|o| {
            !exports
                .iter()
                .any(|e| e.id == o.id && e.backend.source_identity() == o.backend.source_identity())
        })
        .map(|o| o.mount_path.clone())
        .collect();
    let table = ExportTable::from_exports(exports);
    let list = export_list(&table);
    service.set_exports(table);
    info!(
        config = %source.display(),
        ?added, ?changed, ?removed,
        "export table reloaded"
    );
    Ok(json!({
        "config": source.display().to_string(),
        "added": added,
        "changed": changed,
        "removed": removed,
        "unchanged": kept,
        "exports": list,
    }))
}

fn stage_name(s: Stage) -> &'static str {
    match s {
        Stage::Queued => "queued",
        Stage::Fs => "fs",
        Stage::Sending => "send",
        Stage::Budget => "reply_memory",
        Stage::LockCall => "lock_call",
    }
}

fn flavor_name(f: u32) -> &'static str {
    match f {
        0 => "AUTH_NONE",
        1 => "AUTH_SYS",
        2 => "AUTH_SHORT",
        3 => "AUTH_DH",
        6 => "RPCSEC_GSS",
        _ => "other",
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
