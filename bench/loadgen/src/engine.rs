//! The pipelined RPC engine: many calls in flight over one or several TCP connections.
//!
//! Everything runs on one thread (a tokio current-thread runtime with a `LocalSet`), so the load
//! generator costs at most one core and hands nothing between threads. Per connection:
//! * a *writer* task owns the write half and writes queued calls (small calls are coalesced into
//!   one `write`; a WRITE's payload is written from the caller's buffer, not copied);
//! * a *reader* task owns the read half, reassembles records into one growing buffer, and hands
//!   each reply (a zero-copy `Bytes` slice of that buffer) to the waiting call by XID.
//!
//! The closed loop: `qd` worker tasks each take the next request from the workload generator,
//! call, check the reply, record the latency, and repeat; so exactly `qd` calls are in flight.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use rnfs_client::rpc::{decode_reply, encode_call, Auth, ReplyStatus, LAST_FRAGMENT};
use rnfs_nfs3::{NFS_PROGRAM, NFS_V3};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// Calls smaller than this are copied into one buffer with their neighbours (one `write`).
const COALESCE_BYTES: usize = 64 << 10;
/// Free space the reader keeps in its buffer before each `read`.
const READ_RESERVE: usize = 256 << 10;
/// Largest reply record accepted.
const MAX_RECORD: usize = 8 << 20;

type Waiter = oneshot::Sender<Result<Bytes, String>>;

/// Why a call failed.
#[derive(Debug, Clone)]
pub enum CallError {
    /// The connection broke, timed out, or the reply was not RPC.
    Transport(String),
    /// The server did not execute the call (PROC_UNAVAIL, AUTH_ERROR, ...).
    Rpc(ReplyStatus),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Transport(s) => write!(f, "transport: {s}"),
            CallError::Rpc(s) => write!(f, "RPC: {s}"),
        }
    }
}

/// One TCP connection with calls pipelined over it.
pub struct Conn {
    tx: mpsc::UnboundedSender<Vec<Bytes>>,
    pending: Rc<RefCell<HashMap<u32, Waiter>>>,
    broken: Rc<RefCell<Option<String>>>,
    next_xid: Cell<u32>,
    /// The NFS program version calls go to (3 unless [`Conn::set_version`] changed it).
    vers: Cell<u32>,
    auth: Auth,
    timeout: Duration,
}

impl Conn {
    /// Connects and starts the reader and writer tasks (call inside a `LocalSet`).
    pub async fn connect(
        addr: SocketAddr,
        from: Option<std::net::IpAddr>,
        auth: Auth,
        timeout: Duration,
        xid_seed: u32,
    ) -> std::io::Result<Rc<Conn>> {
        let s = match from {
            None => TcpStream::connect(addr).await?,
            // From a given local address: several "client hosts" on loopback.
            Some(ip) => {
                let sock = match ip {
                    std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
                    std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
                };
                sock.bind(SocketAddr::new(ip, 0))?;
                sock.connect(addr).await?
            }
        };
        s.set_nodelay(true)?;
        let (mut rd, mut wr) = s.into_split();
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<Bytes>>();
        let pending: Rc<RefCell<HashMap<u32, Waiter>>> = Rc::default();
        let broken: Rc<RefCell<Option<String>>> = Rc::default();

        // Writer.
        let wbroken = broken.clone();
        tokio::task::spawn_local(async move {
            let mut small = BytesMut::with_capacity(COALESCE_BYTES * 2);
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while let Ok(more) = rx.try_recv() {
                    batch.push(more);
                    if batch.len() >= 64 {
                        break;
                    }
                }
                for parts in batch {
                    for p in parts {
                        if p.len() < COALESCE_BYTES {
                            small.extend_from_slice(&p);
                            if small.len() < COALESCE_BYTES {
                                continue;
                            }
                        }
                        let r = async {
                            if !small.is_empty() {
                                wr.write_all(&small).await?;
                                small.clear();
                            }
                            if p.len() >= COALESCE_BYTES {
                                wr.write_all(&p).await?;
                            }
                            std::io::Result::Ok(())
                        }
                        .await;
                        if let Err(e) = r {
                            *wbroken.borrow_mut() = Some(format!("write: {e}"));
                            return;
                        }
                    }
                }
                if !small.is_empty() {
                    if let Err(e) = wr.write_all(&small).await {
                        *wbroken.borrow_mut() = Some(format!("write: {e}"));
                        return;
                    }
                    small.clear();
                }
            }
        });

        // Reader.
        let rpending = pending.clone();
        let rbroken = broken.clone();
        tokio::task::spawn_local(async move {
            let mut buf = BytesMut::with_capacity(4 << 20);
            let mut frags = BytesMut::new();
            let why = loop {
                // Hand out every complete fragment in the buffer.
                loop {
                    if buf.len() < 4 {
                        break;
                    }
                    let mark = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                    let len = (mark & !LAST_FRAGMENT) as usize;
                    if len + frags.len() > MAX_RECORD {
                        break;
                    }
                    if buf.len() < 4 + len {
                        buf.reserve(4 + len - buf.len());
                        break;
                    }
                    let _ = buf.split_to(4);
                    let frag = buf.split_to(len);
                    let rec = if mark & LAST_FRAGMENT == 0 {
                        frags.extend_from_slice(&frag);
                        continue;
                    } else if frags.is_empty() {
                        frag.freeze()
                    } else {
                        frags.extend_from_slice(&frag);
                        frags.split().freeze()
                    };
                    if rec.len() < 4 {
                        continue;
                    }
                    let xid = u32::from_be_bytes([rec[0], rec[1], rec[2], rec[3]]);
                    if let Some(w) = rpending.borrow_mut().remove(&xid) {
                        let _ = w.send(Ok(rec));
                    }
                }
                if buf.len() >= 4 {
                    let mark = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                    if ((mark & !LAST_FRAGMENT) as usize) + frags.len() > MAX_RECORD {
                        break format!("reply record over {MAX_RECORD} bytes");
                    }
                }
                if buf.capacity() - buf.len() < READ_RESERVE {
                    buf.reserve(READ_RESERVE);
                }
                match rd.read_buf(&mut buf).await {
                    Ok(0) => break "connection closed by server".to_string(),
                    Ok(_) => {}
                    Err(e) => break format!("read: {e}"),
                }
            };
            *rbroken.borrow_mut() = Some(why.clone());
            for (_, w) in rpending.borrow_mut().drain() {
                let _ = w.send(Err(why.clone()));
            }
        });

        Ok(Rc::new(Conn {
            tx,
            pending,
            broken,
            next_xid: Cell::new(xid_seed),
            vers: Cell::new(NFS_V3),
            auth,
            timeout,
        }))
    }

    /// Sends every later call to NFS program version `vers` (4 for COMPOUNDs).
    pub fn set_version(&self, vers: u32) {
        self.vers.set(vers);
    }

    /// Calls NFS procedure `proc` (of version 3 unless set otherwise) with arguments given as consecutive parts; returns the
    /// procedure's encoded results.
    pub async fn call(&self, proc: u32, args: Vec<Bytes>) -> Result<Bytes, CallError> {
        if let Some(why) = self.broken.borrow().as_ref() {
            return Err(CallError::Transport(why.clone()));
        }
        let xid = self.next_xid.get();
        self.next_xid.set(xid.wrapping_add(1));
        let header = encode_call(xid, NFS_PROGRAM, self.vers.get(), proc, &self.auth, &[]);
        let len = header.len() + args.iter().map(Bytes::len).sum::<usize>();
        let mut first = BytesMut::with_capacity(4 + header.len() + 256);
        first.put_u32(LAST_FRAGMENT | len as u32);
        first.extend_from_slice(&header);
        let mut parts = Vec::with_capacity(args.len() + 1);
        let mut args = args.into_iter().peekable();
        // Small leading parts go in the same buffer as the header.
        while let Some(p) = args.next_if(|p| p.len() < 1024) {
            first.extend_from_slice(&p);
        }
        parts.push(first.freeze());
        parts.extend(args);

        let (wtx, wrx) = oneshot::channel();
        self.pending.borrow_mut().insert(xid, wtx);
        if self.tx.send(parts).is_err() {
            self.pending.borrow_mut().remove(&xid);
            return Err(CallError::Transport("writer gone".into()));
        }
        let rec = match tokio::time::timeout(self.timeout, wrx).await {
            Ok(Ok(Ok(rec))) => rec,
            Ok(Ok(Err(why))) => return Err(CallError::Transport(why)),
            Ok(Err(_)) => return Err(CallError::Transport("reader gone".into())),
            Err(_) => {
                self.pending.borrow_mut().remove(&xid);
                return Err(CallError::Transport(format!(
                    "no reply within {:?}",
                    self.timeout
                )));
            }
        };
        let reply =
            decode_reply(rec).map_err(|e| CallError::Transport(format!("bad reply: {e}")))?;
        match reply.status {
            ReplyStatus::Success(res) => Ok(res),
            other => Err(CallError::Rpc(other)),
        }
    }
}

/// One request from a workload generator.
pub struct Req {
    /// Given back to [`Gen::done`] with the reply.
    pub tag: u64,
    pub proc: u32,
    pub args: Vec<Bytes>,
}

/// Why a workload stopped early.
#[derive(Debug, Clone)]
pub enum OpError {
    /// The server refuses this kind of operation (read-only, not implemented).
    Unsupported(String),
    /// Anything else: a wrong reply, an error status, a broken connection.
    Failed(String),
}

/// A workload: hands out requests and checks replies.
pub trait Gen {
    /// The next request, or `None` when the workload is done (or its time is up).
    fn next(&mut self) -> Option<Req>;
    /// Checks one reply; returns the payload bytes it moved (0 for metadata).
    fn done(&mut self, tag: u64, res: Bytes) -> Result<u64, OpError>;
}

/// What one closed-loop run measured.
#[derive(Debug, Default)]
pub struct RunStats {
    pub ops: u64,
    pub bytes: u64,
    pub secs: f64,
    /// Per-call latency in nanoseconds, in completion order.
    pub lat_ns: Vec<u64>,
    pub error: Option<OpError>,
}

/// Runs `gen` to completion with `qd` calls in flight, spread over `conns` round-robin.
pub async fn run<G: Gen + 'static>(conns: &[Rc<Conn>], qd: usize, gen: Rc<RefCell<G>>) -> RunStats {
    let stats = Rc::new(RefCell::new(RunStats::default()));
    let stop = Rc::new(Cell::new(false));
    let t0 = Instant::now();
    let mut workers = Vec::new();
    for i in 0..qd.max(1) {
        let conn = conns[i % conns.len()].clone();
        let gen = gen.clone();
        let stats = stats.clone();
        let stop = stop.clone();
        workers.push(tokio::task::spawn_local(async move {
            while !stop.get() {
                let Some(req) = gen.borrow_mut().next() else {
                    break;
                };
                let t = Instant::now();
                let r = conn.call(req.proc, req.args).await;
                let lat = t.elapsed().as_nanos() as u64;
                let outcome = match r {
                    Ok(res) => gen.borrow_mut().done(req.tag, res),
                    Err(CallError::Rpc(ReplyStatus::ProcUnavail)) => Err(OpError::Unsupported(
                        format!("procedure {} unavailable", req.proc),
                    )),
                    Err(e) => Err(OpError::Failed(e.to_string())),
                };
                let mut s = stats.borrow_mut();
                match outcome {
                    Ok(b) => {
                        s.ops += 1;
                        s.bytes += b;
                        s.lat_ns.push(lat);
                    }
                    Err(e) => {
                        if s.error.is_none() {
                            s.error = Some(e);
                        }
                        stop.set(true);
                    }
                }
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let mut s = std::mem::take(&mut *stats.borrow_mut());
    s.secs = t0.elapsed().as_secs_f64();
    s
}

/// Sends one call outside a closed loop (setup, COMMIT).
pub async fn call_one(conn: &Conn, proc: u32, args: Bytes) -> Result<Bytes, CallError> {
    conn.call(proc, vec![args]).await
}
