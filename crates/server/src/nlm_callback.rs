//! Calls from the server back to an NLM client: GRANTED and the `_RES` procedures.
//!
//! A lock server must call its clients back (XNFS, The Open Group, ch. 10, "Network Lock
//! Manager Protocol"): NLM_GRANTED when a blocked lock is finally granted, and NLM_*_RES to answer
//! the asynchronous `_MSG` procedures. The client's lock manager is found through the client's
//! own portmapper: PMAPPROC_GETPORT for (100021, 4, UDP) at the client's address (RFC 1833 §3).
//!
//! [`deliver`] makes one such call over UDP: it looks up the client's NLM port (cached in a
//! [`PortCache`] for a while), sends the call, and retransmits it with the same transaction id
//! until a matching reply (same xid, from the address called) arrives or the attempts run out. A
//! call whose reply nobody waits for (`expect_reply == false`, the `_RES` procedures) is sent
//! once. [`spawn`] runs a task that delivers queued [`Callback`]s and reports each outcome.
//!
//! # Liveness rules
//! * No lock across `.await`: the port cache's mutex is held for one lookup, insert or removal.
//! * Every wait is bounded: each attempt (port lookup and call) ends at its own deadline,
//!   `attempt_timeout_ms` after it starts, and there are at most `attempts_max` attempts, so a
//!   delivery takes at most about `attempts_max × attempt_timeout_ms`.
//! * Bounded queue and concurrency: producers use `try_send` on a bounded channel (a full queue is
//!   an error they see at once, never a wait), and at most `in_flight_max` deliveries run at a
//!   time; while they are all busy the queue fills and further callbacks are refused.
//! * Nothing here runs on a worker thread or blocks the reactor: sockets are tokio's.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rnfs_oncrpc::{decode_reply, encode_call, OpaqueAuth, ReplyHeader};
use rnfs_portmap as pmap;
use rnfs_xdr::XdrEncode;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, Semaphore};

/// Largest reply datagram read; NLM results are a few hundred bytes at most.
const REPLY_BUF_BYTES: usize = 8192;

/// How hard and how widely callbacks are tried.
#[derive(Debug, Clone)]
pub(crate) struct CallbackLimits {
    /// Attempts per callback, each a port lookup if needed plus one transmission.
    pub attempts_max: u32,
    /// How long one attempt waits for its answer.
    pub attempt_timeout_ms: u64,
    /// The clients' portmapper port: 111, except in tests.
    pub portmap_port: u16,
    /// Callbacks delivered at the same time.
    pub in_flight_max: usize,
    /// Callbacks waiting in the queue of [`spawn`]'s task.
    pub queue_max: usize,
}

impl Default for CallbackLimits {
    fn default() -> Self {
        CallbackLimits {
            attempts_max: 5,
            attempt_timeout_ms: 2000,
            portmap_port: pmap::PMAP_PORT,
            in_flight_max: 64,
            queue_max: 256,
        }
    }
}

/// One call to a client's service over UDP: its NLM v4 (GRANTED, the `_RES` answers) or its
/// status monitor (NSM v1 SM_NOTIFY after our restart).
#[derive(Debug, Clone)]
pub(crate) struct Callback {
    pub peer_ip: IpAddr,
    pub prog: u32,
    pub vers: u32,
    /// `NLMPROC4_GRANTED`, one of the `NLMPROC4_*_RES`, or `SM_NOTIFY`.
    pub proc_num: u32,
    /// The XDR-encoded arguments.
    pub args: Bytes,
    /// Whether to wait for (and retransmit until) a reply.
    pub expect_reply: bool,
    /// The lock manager's key of the client called (for what follows its delivery).
    pub client: Bytes,
}

/// Why a callback was not delivered.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallbackError {
    /// The client's portmapper never gave a port for the program over UDP (silent, or 0).
    #[error("the client's UDP port for the program is unknown")]
    PortUnknown,
    /// The client's NLM service never answered.
    #[error("no answer after {attempts} attempts")]
    TimedOut { attempts: u32 },
    /// The client answered with an RPC error.
    #[error("the client refused the call: {0:?}")]
    Refused(ReplyHeader),
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

/// Where each client's NLM service listens, as its portmapper said: a small map with expiry.
pub(crate) struct PortCache {
    /// Peer → (port, when learned). Held for one lookup, insert or removal; never across `.await`.
    entries: Mutex<HashMap<(IpAddr, u32), (u16, Instant)>>,
    ttl: Duration,
    max_entries: usize,
}

impl Default for PortCache {
    fn default() -> Self {
        PortCache::new(Duration::from_secs(60), 1024)
    }
}

impl PortCache {
    pub(crate) fn new(ttl: Duration, max_entries: usize) -> Self {
        PortCache {
            entries: Mutex::new(HashMap::new()),
            ttl,
            max_entries: max_entries.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(IpAddr, u32), (u16, Instant)>> {
        // The map is always consistent between statements; a panic elsewhere does not spoil it.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached port of `ip`, if learned less than the time-to-live ago.
    pub(crate) fn get(&self, ip: (IpAddr, u32)) -> Option<u16> {
        let mut map = self.lock();
        match map.get(&ip) {
            Some(&(port, at)) if at.elapsed() < self.ttl => Some(port),
            Some(_) => {
                map.remove(&ip);
                None
            }
            None => None,
        }
    }

    /// Remembers `port` for `ip`. When full, expired entries go first, then the oldest one.
    pub(crate) fn insert(&self, ip: (IpAddr, u32), port: u16) {
        let mut map = self.lock();
        if map.len() >= self.max_entries && !map.contains_key(&ip) {
            let ttl = self.ttl;
            map.retain(|_, (_, at)| at.elapsed() < ttl);
            if map.len() >= self.max_entries {
                let oldest = map.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| *k);
                if let Some(k) = oldest {
                    map.remove(&k);
                }
            }
        }
        map.insert(ip, (port, Instant::now()));
    }

    /// Forgets `ip` (its service may have restarted on another port).
    pub(crate) fn forget(&self, ip: (IpAddr, u32)) {
        self.lock().remove(&ip);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// A fresh transaction id: a per-process random-ish start plus a counter (NLM and NFSv4
/// callbacks).
pub(crate) fn next_xid() -> u32 {
    static SEED: OnceLock<u32> = OnceLock::new();
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = *SEED.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
            .unwrap_or(0);
        nanos ^ std::process::id().rotate_left(16)
    });
    seed.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed))
}

fn call_message(xid: u32, prog: u32, vers: u32, proc_num: u32, args: &[u8]) -> Bytes {
    let mut msg = BytesMut::with_capacity(40 + args.len());
    encode_call(&mut msg, xid, prog, vers, proc_num, &OpaqueAuth::none());
    msg.extend_from_slice(args);
    msg.freeze()
}

/// What came back for one transmission before its deadline.
enum Answer {
    Reply(ReplyHeader, Bytes),
    Nothing,
}

/// Waits until `deadline` for a reply with transaction id `xid` from `from`; anything else that
/// arrives (other senders, other xids, undecodable datagrams) is ignored.
async fn await_reply(
    sock: &UdpSocket,
    buf: &mut [u8],
    from: SocketAddr,
    xid: u32,
    deadline: tokio::time::Instant,
) -> Result<Answer, CallbackError> {
    loop {
        let (n, sender) = match tokio::time::timeout_at(deadline, sock.recv_from(buf)).await {
            Err(_elapsed) => return Ok(Answer::Nothing),
            Ok(r) => r?,
        };
        if sender != from {
            continue;
        }
        let Some(datagram) = buf.get(..n) else {
            continue;
        };
        match decode_reply(Bytes::copy_from_slice(datagram)) {
            Ok((rx, header, body)) if rx == xid => return Ok(Answer::Reply(header, body)),
            _ => continue,
        }
    }
}

/// One GETPORT for `cb`'s program over UDP. `Ok(None)` when no usable port came back in time.
async fn lookup_port(
    sock: &UdpSocket,
    buf: &mut [u8],
    portmapper: SocketAddr,
    cb: &Callback,
    deadline: tokio::time::Instant,
) -> Result<Option<u16>, CallbackError> {
    let xid = next_xid();
    let mapping = pmap::mapping {
        prog: cb.prog,
        vers: cb.vers,
        prot: pmap::IPPROTO_UDP,
        port: 0,
    };
    let mut msg = BytesMut::new();
    encode_call(
        &mut msg,
        xid,
        pmap::PMAP_PROG,
        pmap::PMAP_VERS,
        pmap::PMAPPROC_GETPORT,
        &OpaqueAuth::none(),
    );
    mapping.encode(&mut msg);
    sock.send_to(&msg, portmapper).await?;
    match await_reply(sock, buf, portmapper, xid, deadline).await? {
        Answer::Reply(ReplyHeader::Success, body) => {
            match pmap::Res::decode(pmap::PMAPPROC_GETPORT, body) {
                Ok(pmap::Res::Getport(port)) => Ok(u16::try_from(port).ok().filter(|&p| p != 0)),
                _ => Ok(None),
            }
        }
        Answer::Reply(..) | Answer::Nothing => Ok(None),
    }
}

/// Delivers one callback: returns the results body of the reply (`None` when no reply was
/// expected). Takes at most about `attempts_max × attempt_timeout_ms`.
pub(crate) async fn deliver(
    cb: &Callback,
    limits: &CallbackLimits,
    cache: &PortCache,
) -> Result<Option<Bytes>, CallbackError> {
    let local: IpAddr = match cb.peer_ip {
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let sock = UdpSocket::bind(SocketAddr::new(local, 0)).await?;
    let portmapper = SocketAddr::new(cb.peer_ip, limits.portmap_port);
    let timeout = Duration::from_millis(limits.attempt_timeout_ms);
    let xid = next_xid();
    let msg = call_message(xid, cb.prog, cb.vers, cb.proc_num, &cb.args);
    let key = (cb.peer_ip, cb.prog);
    let mut buf = vec![0u8; REPLY_BUF_BYTES];
    let mut port_known = false;
    let attempts = limits.attempts_max.max(1);
    for _ in 0..attempts {
        let deadline = tokio::time::Instant::now() + timeout;
        let port = match cache.get(key) {
            Some(p) => p,
            None => match lookup_port(&sock, &mut buf, portmapper, cb, deadline).await? {
                Some(p) => {
                    cache.insert(key, p);
                    p
                }
                None => {
                    // Silent, or "not registered": the client's lock manager may be starting.
                    // Let this attempt's time run out before asking again.
                    tokio::time::sleep_until(deadline).await;
                    continue;
                }
            },
        };
        port_known = true;
        let nlm = SocketAddr::new(cb.peer_ip, port);
        sock.send_to(&msg, nlm).await?;
        if !cb.expect_reply {
            return Ok(None);
        }
        match await_reply(&sock, &mut buf, nlm, xid, deadline).await? {
            Answer::Reply(ReplyHeader::Success, body) => return Ok(Some(body)),
            Answer::Reply(refusal, _) => {
                cache.forget(key);
                return Err(CallbackError::Refused(refusal));
            }
            // The client may have restarted on a new port: ask its portmapper again.
            Answer::Nothing => cache.forget(key),
        }
    }
    if port_known {
        Err(CallbackError::TimedOut { attempts })
    } else {
        Err(CallbackError::PortUnknown)
    }
}

/// Why [`CallbackQueue::submit`] did not take a callback (it is handed back).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SubmitError {
    #[error("the callback queue is full")]
    Full(Callback),
    #[error("the callback task has stopped")]
    Closed(Callback),
}

/// The producers' side of the callback task.
#[derive(Clone)]
pub(crate) struct CallbackQueue {
    tx: mpsc::Sender<Callback>,
}

impl CallbackQueue {
    /// Queues `cb` without waiting; a full queue is an error at once (the caller counts it,
    /// as it counts each outcome `on_done` reports).
    pub(crate) fn submit(&self, cb: Callback) -> Result<(), SubmitError> {
        self.tx.try_send(cb).map_err(|e| match e {
            mpsc::error::TrySendError::Full(cb) => SubmitError::Full(cb),
            mpsc::error::TrySendError::Closed(cb) => SubmitError::Closed(cb),
        })
    }
}

/// Spawns the callback task (on the current tokio runtime) and returns its queue. The task takes
/// a callback from the queue only when fewer than `in_flight_max` are being delivered, delivers
/// each in its own task, and calls `on_done` once per callback with the outcome. It ends when
/// every [`CallbackQueue`] clone is dropped; deliveries under way finish (each is bounded).
pub(crate) fn spawn(
    limits: CallbackLimits,
    on_done: impl Fn(&Callback, Result<Option<Bytes>, CallbackError>) + Send + Sync + 'static,
) -> CallbackQueue {
    let (tx, mut rx) = mpsc::channel::<Callback>(limits.queue_max.max(1));
    let permits = Arc::new(Semaphore::new(limits.in_flight_max.max(1)));
    let cache = Arc::new(PortCache::default());
    let limits = Arc::new(limits);
    let on_done = Arc::new(on_done);
    tokio::spawn(async move {
        loop {
            // Take a slot first, so that a busy task leaves callbacks in the (bounded) queue.
            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                break;
            };
            let Some(cb) = rx.recv().await else {
                break;
            };
            let (limits, cache, on_done) = (
                Arc::clone(&limits),
                Arc::clone(&cache),
                Arc::clone(&on_done),
            );
            tokio::spawn(async move {
                let outcome = deliver(&cb, &limits, &cache).await;
                on_done(&cb, outcome);
                drop(permit);
            });
        }
    });
    CallbackQueue { tx }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use rnfs_nlm::{nlm4_lock, nlm4_res, nlm4_stat, nlm4_stats, nlm4_testargs, Opaque};
    use rnfs_nlm::{NLM4_VERS, NLM_PROG};
    use rnfs_oncrpc::{decode_call, CallHeader};
    use rnfs_xdr::{from_bytes, to_bytes};
    use std::sync::atomic::AtomicUsize;

    /// How the fake client's lock manager behaves.
    #[derive(Clone, Copy, PartialEq)]
    enum Nlm {
        /// Answers every call `nlm4_res { cookie, NLM4_GRANTED }`.
        Answer,
        /// Answers nothing.
        Silent,
        /// First answers with the wrong xid (status DENIED), and from another socket with the
        /// right xid (status DENIED), then properly.
        Decoys,
        /// Answers PROG_UNAVAIL.
        Refuses,
    }

    struct FakeClient {
        portmap_port: u16,
        getports: Arc<AtomicUsize>,
        calls: mpsc::Receiver<(CallHeader, Bytes)>,
    }

    /// A client on 127.0.0.1: a portmapper on an ephemeral port, answering GETPORT for NLM v4
    /// UDP with the lock manager's port (or `port_override`), and a lock manager.
    async fn fake_client(nlm: Nlm, port_override: Option<u32>) -> FakeClient {
        let pm = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let lm = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let decoy = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let portmap_port = pm.local_addr().unwrap().port();
        let lm_port = u32::from(lm.local_addr().unwrap().port());
        let getports = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&getports);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 1024];
            loop {
                let (n, from) = pm.recv_from(&mut buf).await.unwrap();
                let (h, args) = decode_call(Bytes::copy_from_slice(&buf[..n])).unwrap();
                assert_eq!(
                    (h.prog, h.vers, h.proc_num),
                    (pmap::PMAP_PROG, 2, pmap::PMAPPROC_GETPORT)
                );
                counted.fetch_add(1, Ordering::Relaxed);
                let m: pmap::mapping = from_bytes(args).unwrap();
                let port = if (m.prog, m.vers, m.prot) == (NLM_PROG, 4, pmap::IPPROTO_UDP) {
                    port_override.unwrap_or(lm_port)
                } else {
                    0
                };
                let mut reply = BytesMut::new();
                ReplyHeader::Success.encode(h.xid, &mut reply);
                port.encode(&mut reply);
                pm.send_to(&reply, from).await.unwrap();
            }
        });
        let (calls_tx, calls) = mpsc::channel(64);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let (n, from) = lm.recv_from(&mut buf).await.unwrap();
                let (h, args) = decode_call(Bytes::copy_from_slice(&buf[..n])).unwrap();
                let xid = h.xid;
                let _ = calls_tx.try_send((h, args.clone()));
                let reply = |xid: u32, stat| {
                    let cookie = from_bytes::<nlm4_testargs>(args.clone())
                        .map(|a| a.cookie)
                        .unwrap_or_default();
                    let mut b = BytesMut::new();
                    ReplyHeader::Success.encode(xid, &mut b);
                    nlm4_res {
                        cookie,
                        stat: nlm4_stat { stat },
                    }
                    .encode(&mut b);
                    b.freeze()
                };
                if nlm == Nlm::Decoys {
                    let wrong = reply(xid.wrapping_add(1), nlm4_stats::NLM4_DENIED);
                    lm.send_to(&wrong, from).await.unwrap();
                    let elsewhere = reply(xid, nlm4_stats::NLM4_DENIED);
                    decoy.send_to(&elsewhere, from).await.unwrap();
                }
                if nlm == Nlm::Refuses {
                    let mut b = BytesMut::new();
                    ReplyHeader::ProgUnavail.encode(xid, &mut b);
                    lm.send_to(&b, from).await.unwrap();
                } else if nlm != Nlm::Silent {
                    let good = reply(xid, nlm4_stats::NLM4_GRANTED);
                    lm.send_to(&good, from).await.unwrap();
                }
            }
        });
        FakeClient {
            portmap_port,
            getports,
            calls,
        }
    }

    fn granted_args(cookie: &'static [u8]) -> nlm4_testargs {
        nlm4_testargs {
            cookie: Opaque(Bytes::from_static(cookie)),
            exclusive: true,
            alock: nlm4_lock {
                caller_name: Opaque(Bytes::from_static(b"client")),
                fh: Opaque(Bytes::from_static(&[7; 32])),
                oh: Opaque(Bytes::from_static(b"owner")),
                svid: 42,
                l_offset: 100,
                l_len: 10,
            },
        }
    }

    fn limits(client: &FakeClient, attempts_max: u32, attempt_timeout_ms: u64) -> CallbackLimits {
        CallbackLimits {
            attempts_max,
            attempt_timeout_ms,
            portmap_port: client.portmap_port,
            in_flight_max: 4,
            queue_max: 4,
        }
    }

    fn granted(args: &nlm4_testargs) -> Callback {
        Callback {
            peer_ip: Ipv4Addr::LOCALHOST.into(),
            prog: NLM_PROG,
            vers: NLM4_VERS,
            proc_num: rnfs_nlm::NLMPROC4_GRANTED,
            args: to_bytes(args),
            expect_reply: true,
            client: Bytes::new(),
        }
    }

    #[tokio::test]
    async fn granted_is_delivered_and_answered() {
        let mut client = fake_client(Nlm::Answer, None).await;
        let args = granted_args(b"cookie-1");
        let cache = PortCache::default();
        let body = deliver(&granted(&args), &limits(&client, 3, 2000), &cache)
            .await
            .unwrap()
            .unwrap();
        let res: nlm4_res = from_bytes(body).unwrap();
        assert_eq!(res.cookie.as_bytes(), b"cookie-1");
        assert_eq!(res.stat.stat, nlm4_stats::NLM4_GRANTED);
        let (h, got) = client.calls.recv().await.unwrap();
        assert_eq!(
            (h.prog, h.vers, h.proc_num),
            (NLM_PROG, NLM4_VERS, rnfs_nlm::NLMPROC4_GRANTED)
        );
        assert_eq!(from_bytes::<nlm4_testargs>(got).unwrap(), args);
        assert!(cache.get((Ipv4Addr::LOCALHOST.into(), NLM_PROG)).is_some());

        // A second call uses the cached port: no second GETPORT.
        deliver(&granted(&args), &limits(&client, 3, 2000), &cache)
            .await
            .unwrap();
        assert_eq!(client.getports.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_silent_lock_manager_times_out_after_every_attempt() {
        let mut client = fake_client(Nlm::Silent, None).await;
        let cache = PortCache::default();
        let started = Instant::now();
        let err = deliver(
            &granted(&granted_args(b"c")),
            &limits(&client, 3, 50),
            &cache,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, CallbackError::TimedOut { attempts: 3 }),
            "{err:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        // Three transmissions of one call (same xid), and the port asked again after each
        // silence.
        let mut xids = Vec::new();
        while let Ok((h, _)) = client.calls.try_recv() {
            xids.push(h.xid);
        }
        assert_eq!(xids.len(), 3);
        assert!(xids.iter().all(|&x| x == xids[0]));
        assert_eq!(client.getports.load(Ordering::Relaxed), 3);
        assert_eq!(cache.len(), 0);
    }

    #[tokio::test]
    async fn port_zero_is_port_unknown() {
        let client = fake_client(Nlm::Answer, Some(0)).await;
        let cache = PortCache::default();
        let err = deliver(
            &granted(&granted_args(b"c")),
            &limits(&client, 2, 50),
            &cache,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, CallbackError::PortUnknown), "{err:?}");
        assert_eq!(client.getports.load(Ordering::Relaxed), 2);
        assert_eq!(cache.len(), 0);
    }

    #[tokio::test]
    async fn replies_with_another_xid_or_from_elsewhere_are_ignored() {
        let client = fake_client(Nlm::Decoys, None).await;
        let body = deliver(
            &granted(&granted_args(b"c")),
            &limits(&client, 1, 2000),
            &PortCache::default(),
        )
        .await
        .unwrap()
        .unwrap();
        let res: nlm4_res = from_bytes(body).unwrap();
        assert_eq!(res.stat.stat, nlm4_stats::NLM4_GRANTED);
    }

    #[tokio::test]
    async fn an_rpc_error_is_refused_at_once_and_forgets_the_port() {
        let client = fake_client(Nlm::Refuses, None).await;
        let cache = PortCache::default();
        let err = deliver(
            &granted(&granted_args(b"c")),
            &limits(&client, 3, 2000),
            &cache,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, CallbackError::Refused(ReplyHeader::ProgUnavail)),
            "{err:?}"
        );
        assert_eq!(client.getports.load(Ordering::Relaxed), 1);
        assert_eq!(cache.len(), 0);
    }

    #[tokio::test]
    async fn a_failed_callback_is_reported() {
        let client = fake_client(Nlm::Silent, None).await;
        let (done_tx, mut done_rx) = mpsc::channel::<bool>(4);
        let queue = spawn(limits(&client, 2, 30), move |_, outcome| {
            let timed_out = matches!(outcome, Err(CallbackError::TimedOut { attempts: 2 }));
            done_tx.try_send(timed_out).unwrap();
        });
        queue.submit(granted(&granted_args(b"c"))).unwrap();
        let timed_out = tokio::time::timeout(Duration::from_secs(10), done_rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(timed_out);
    }

    #[tokio::test]
    async fn one_way_calls_are_sent_once_without_waiting() {
        let mut client = fake_client(Nlm::Silent, None).await;
        let mut cb = granted(&granted_args(b"c"));
        cb.proc_num = rnfs_nlm::NLMPROC4_GRANTED_RES;
        cb.expect_reply = false;
        let got = deliver(&cb, &limits(&client, 3, 2000), &PortCache::default())
            .await
            .unwrap();
        assert!(got.is_none());
        let (h, _) = client.calls.recv().await.unwrap();
        assert_eq!(h.proc_num, rnfs_nlm::NLMPROC4_GRANTED_RES);
    }

    #[test]
    fn the_port_cache_is_bounded_and_expires() {
        let cache = PortCache::new(Duration::from_millis(30), 2);
        let ip = |n: u8| (IpAddr::from([10, 0, 0, n]), NLM_PROG);
        cache.insert(ip(1), 1);
        cache.insert(ip(2), 2);
        cache.insert(ip(3), 3);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(ip(1)), None, "the oldest went first");
        assert_eq!(cache.get(ip(3)), Some(3));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(cache.get(ip(3)), None);
    }

    #[tokio::test]
    async fn the_queue_refuses_when_full_and_reports_each_callback_once() {
        let client = fake_client(Nlm::Answer, None).await;
        let (done_tx, mut done_rx) = mpsc::channel::<(Bytes, bool)>(64);
        let mut lim = limits(&client, 3, 2000);
        lim.in_flight_max = 1;
        lim.queue_max = 2;
        let queue = spawn(lim, move |cb, outcome| {
            done_tx
                .try_send((cb.args.clone(), outcome.is_ok()))
                .unwrap();
        });
        // The (current-thread) runtime does not run the task until we await: the queue fills.
        let mut accepted = Vec::new();
        let mut full = 0;
        for i in 0u32..6 {
            let cb = granted(&granted_args(b"c"));
            let cb = Callback {
                args: to_bytes(&i),
                ..cb
            };
            match queue.submit(cb) {
                Ok(()) => accepted.push(to_bytes(&i)),
                Err(SubmitError::Full(back)) => {
                    assert_eq!(back.args, to_bytes(&i));
                    full += 1;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(accepted.len(), 2);
        assert_eq!(full, 4);
        let mut seen = Vec::new();
        for _ in 0..accepted.len() {
            let (args, ok) = tokio::time::timeout(Duration::from_secs(10), done_rx.recv())
                .await
                .unwrap()
                .unwrap();
            assert!(ok);
            seen.push(args);
        }
        // No further reports.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(done_rx.try_recv().is_err());
        assert_eq!(seen, accepted);
    }
}
