//! File locking: typed NLM v4 (program 100021) and NSM v1 (program 100024) calls on a [`Client`],
//! [`LockOwner`] to build their arguments, and [`GrantedService`], the callback side a lock
//! client must offer: the server calls NLM GRANTED there when a blocked lock is granted.
//!
//! The calls go over the client's own connection: rnfsd answers NLM and NSM on its NFS port (a
//! server elsewhere would be found through its portmapper first, [`Client::portmap_getport`]).
//! Each helper encodes its arguments with `rnfs-nlm`, makes the call and decodes the results with
//! [`nlm::Res::decode`] / [`nlm::nsm::Res::decode`]; a status other than `NLM4_GRANTED` is not an
//! error here, the decoded result is returned as the server sent it.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use rnfs_nfs3::nfs_fh3;
use rnfs_nlm::nsm::{self, sm_name, sm_stat_res, stat_chge};
use rnfs_nlm::*;
use rnfs_xdr::{to_bytes, ArgsError, Decoder, Opaque, XdrDecode, XdrEncode};

use crate::rpc::{self, ReplyStatus};
use crate::{nlm, portmap, Client, Error, Result};

fn args_error(e: ArgsError) -> Error {
    match e {
        ArgsError::GarbageArgs(e) => Error::Xdr(e),
        ArgsError::ProcUnavail(p) => Error::Protocol(format!("no results type for procedure {p}")),
    }
}

fn unexpected(what: &str, got: impl std::fmt::Debug) -> Error {
    Error::Protocol(format!("{what}: unexpected results {got:?}"))
}

/// A fresh 8-byte cookie (a process-wide counter): NLM replies echo it.
fn next_cookie() -> netobj {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Opaque(Bytes::copy_from_slice(&n.to_be_bytes()))
}

/// Who takes NLM locks: a client host (`caller_name`) and one process on it (`svid`, with `oh`
/// as its opaque owner handle). Builds the arguments of the NLM calls, each with a fresh cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockOwner {
    pub caller_name: Bytes,
    pub svid: i32,
    pub oh: Bytes,
}

impl LockOwner {
    /// Process `svid` of host `caller_name`; its owner handle is `"<svid>@<caller_name>"`.
    pub fn new(caller_name: &str, svid: i32) -> Self {
        LockOwner {
            caller_name: Bytes::copy_from_slice(caller_name.as_bytes()),
            svid,
            oh: Bytes::from(format!("{svid}@{caller_name}")),
        }
    }

    /// The range [`l_offset`, `l_offset + l_len`) of `fh` (`l_len` 0: to the end of the file).
    pub fn lock(&self, fh: &nfs_fh3, l_offset: u64, l_len: u64) -> nlm4_lock {
        nlm4_lock {
            caller_name: Opaque(self.caller_name.clone()),
            fh: Opaque(fh.data.0.clone()),
            oh: Opaque(self.oh.clone()),
            svid: self.svid,
            l_offset,
            l_len,
        }
    }

    /// TEST arguments: would this owner get the lock?
    pub fn test_args(
        &self,
        fh: &nfs_fh3,
        exclusive: bool,
        l_offset: u64,
        l_len: u64,
    ) -> nlm4_testargs {
        nlm4_testargs {
            cookie: next_cookie(),
            exclusive,
            alock: self.lock(fh, l_offset, l_len),
        }
    }

    /// LOCK arguments, not blocking, not a reclaim, NSM state 0: set `block`, `reclaim` and
    /// `state` on the result as needed.
    pub fn lock_args(
        &self,
        fh: &nfs_fh3,
        exclusive: bool,
        l_offset: u64,
        l_len: u64,
    ) -> nlm4_lockargs {
        nlm4_lockargs {
            cookie: next_cookie(),
            block: false,
            exclusive,
            alock: self.lock(fh, l_offset, l_len),
            reclaim: false,
            state: 0,
        }
    }

    /// CANCEL arguments for a blocked LOCK of the same range and kind.
    pub fn cancel_args(
        &self,
        fh: &nfs_fh3,
        exclusive: bool,
        l_offset: u64,
        l_len: u64,
    ) -> nlm4_cancargs {
        nlm4_cancargs {
            cookie: next_cookie(),
            block: true,
            exclusive,
            alock: self.lock(fh, l_offset, l_len),
        }
    }

    /// UNLOCK arguments.
    pub fn unlock_args(&self, fh: &nfs_fh3, l_offset: u64, l_len: u64) -> nlm4_unlockargs {
        nlm4_unlockargs {
            cookie: next_cookie(),
            alock: self.lock(fh, l_offset, l_len),
        }
    }

    /// SHARE / UNSHARE arguments (not a reclaim).
    pub fn share_args(&self, fh: &nfs_fh3, mode: fsh4_mode, access: fsh4_access) -> nlm4_shareargs {
        nlm4_shareargs {
            cookie: next_cookie(),
            share: nlm4_share {
                caller_name: Opaque(self.caller_name.clone()),
                fh: Opaque(fh.data.0.clone()),
                oh: Opaque(self.oh.clone()),
                mode,
                access,
            },
            reclaim: false,
        }
    }
}

impl Client {
    // ---- NLM v4 -------------------------------------------------------------------------------

    /// Calls the NLM v4 procedure of `args` and decodes its results, whatever the status.
    pub fn nlm_call(&mut self, args: &nlm::Args) -> Result<nlm::Res> {
        let proc = args.procedure();
        let res = self.call(NLM_PROG, NLM4_VERS, proc, args)?;
        nlm::Res::decode(proc, res).map_err(args_error)
    }

    /// NLMPROC4_TEST: `NLM4_GRANTED`, or `NLM4_DENIED` with the conflicting holder.
    pub fn nlm_test(&mut self, args: &nlm4_testargs) -> Result<nlm4_testres> {
        match self.nlm_call(&nlm::Args::Test(args.clone()))? {
            nlm::Res::Test(r) => Ok(r),
            other => Err(unexpected("NLM TEST", other)),
        }
    }

    /// NLMPROC4_LOCK (`args.block`: wait, `NLM4_BLOCKED` then GRANTED later; `args.reclaim`: in
    /// the grace period after a server restart).
    pub fn nlm_lock(&mut self, args: &nlm4_lockargs) -> Result<nlm4_res> {
        match self.nlm_call(&nlm::Args::Lock(args.clone()))? {
            nlm::Res::Lock(r) => Ok(r),
            other => Err(unexpected("NLM LOCK", other)),
        }
    }

    /// NLMPROC4_CANCEL of a blocked LOCK.
    pub fn nlm_cancel(&mut self, args: &nlm4_cancargs) -> Result<nlm4_res> {
        match self.nlm_call(&nlm::Args::Cancel(args.clone()))? {
            nlm::Res::Cancel(r) => Ok(r),
            other => Err(unexpected("NLM CANCEL", other)),
        }
    }

    /// NLMPROC4_UNLOCK.
    pub fn nlm_unlock(&mut self, args: &nlm4_unlockargs) -> Result<nlm4_res> {
        match self.nlm_call(&nlm::Args::Unlock(args.clone()))? {
            nlm::Res::Unlock(r) => Ok(r),
            other => Err(unexpected("NLM UNLOCK", other)),
        }
    }

    /// NLMPROC4_SHARE: a DOS-style share reservation.
    pub fn nlm_share(&mut self, args: &nlm4_shareargs) -> Result<nlm4_shareres> {
        match self.nlm_call(&nlm::Args::Share(args.clone()))? {
            nlm::Res::Share(r) => Ok(r),
            other => Err(unexpected("NLM SHARE", other)),
        }
    }

    /// NLMPROC4_UNSHARE.
    pub fn nlm_unshare(&mut self, args: &nlm4_shareargs) -> Result<nlm4_shareres> {
        match self.nlm_call(&nlm::Args::Unshare(args.clone()))? {
            nlm::Res::Unshare(r) => Ok(r),
            other => Err(unexpected("NLM UNSHARE", other)),
        }
    }

    /// NLMPROC4_FREE_ALL: host `name` (at this client's address) restarted with NSM state
    /// `state`; the server frees all it held.
    pub fn nlm_free_all(&mut self, name: &[u8], state: i32) -> Result<()> {
        let args = nlm4_notify {
            name: Opaque(Bytes::copy_from_slice(name)),
            state,
        };
        match self.nlm_call(&nlm::Args::FreeAll(args))? {
            nlm::Res::FreeAll => Ok(()),
            other => Err(unexpected("NLM FREE_ALL", other)),
        }
    }

    // ---- NSM v1 -------------------------------------------------------------------------------

    fn nsm_call(&mut self, args: &nsm::Args) -> Result<nsm::Res> {
        let proc = args.procedure();
        let res = self.call(nsm::SM_PROG, nsm::SM_VERS, proc, args)?;
        nsm::Res::decode(proc, res).map_err(args_error)
    }

    /// SM_NOTIFY: host `mon_name` (at this client's address) now has state number `state`; a
    /// lock server frees what that host held.
    pub fn sm_notify(&mut self, mon_name: &[u8], state: i32) -> Result<()> {
        let args = stat_chge {
            mon_name: Opaque(Bytes::copy_from_slice(mon_name)),
            state,
        };
        match self.nsm_call(&nsm::Args::Notify(args))? {
            nsm::Res::Notify => Ok(()),
            other => Err(unexpected("SM_NOTIFY", other)),
        }
    }

    /// SM_STAT: whether the server's monitor would monitor `mon_name`, and its state number.
    pub fn sm_stat(&mut self, mon_name: &[u8]) -> Result<sm_stat_res> {
        let args = sm_name {
            mon_name: Opaque(Bytes::copy_from_slice(mon_name)),
        };
        match self.nsm_call(&nsm::Args::Stat(args))? {
            nsm::Res::Stat(r) => Ok(r),
            other => Err(unexpected("SM_STAT", other)),
        }
    }
}

// ---- the GRANTED callback service -------------------------------------------------------------

/// GRANTED calls kept until read; past this, further ones are counted and dropped.
pub const GRANTED_QUEUE_MAX: usize = 1024;
/// How often the service threads look at their stop flag.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Largest call datagram read (GRANTED is a few hundred bytes at most).
const CALL_BUF_BYTES: usize = 8192;

/// A client host's lock callback service, for tests: an NLM v4 service over UDP (ephemeral
/// port) that answers GRANTED with `NLM4_GRANTED` and records each call, and a portmapper on
/// UDP port 111 of the same address that points (100021, 4, UDP) at it, as servers look the
/// client's lock manager up there (0 for anything else). Binding port 111 needs root and a free
/// port: run it in a network namespace (`unshare --net`). Both sockets are served on background
/// threads that stop, and are joined, when the service is dropped.
pub struct GrantedService {
    nlm_addr: SocketAddr,
    portmap_addr: SocketAddr,
    granted: Receiver<nlm4_testargs>,
    dropped: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl GrantedService {
    /// Binds `addr`:ephemeral (NLM) and `addr`:111 (portmapper), both UDP, and starts serving.
    pub fn bind(addr: IpAddr) -> io::Result<GrantedService> {
        Self::bind_with_portmap_port(addr, portmap::PMAP_PORT)
    }

    /// Like [`GrantedService::bind`] with the portmapper on another port (0: ephemeral), for a
    /// server configured to look there.
    pub fn bind_with_portmap_port(addr: IpAddr, portmap_port: u16) -> io::Result<GrantedService> {
        let nlm_sock = UdpSocket::bind((addr, 0))?;
        let pmap_sock = UdpSocket::bind((addr, portmap_port))?;
        nlm_sock.set_read_timeout(Some(POLL_INTERVAL))?;
        pmap_sock.set_read_timeout(Some(POLL_INTERVAL))?;
        let nlm_addr = nlm_sock.local_addr()?;
        let portmap_addr = pmap_sock.local_addr()?;
        let (tx, granted) = mpsc::sync_channel(GRANTED_QUEUE_MAX);
        let dropped = Arc::new(AtomicU32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut service = GrantedService {
            nlm_addr,
            portmap_addr,
            granted,
            dropped: dropped.clone(),
            stop: stop.clone(),
            threads: Vec::new(),
        };
        let nlm_port = u32::from(nlm_addr.port());
        let stop2 = stop.clone();
        service.threads.push(
            std::thread::Builder::new()
                .name("granted-pmap".into())
                .spawn(move || serve(&pmap_sock, &stop2, |call| portmap_answer(call, nlm_port)))?,
        );
        service.threads.push(
            std::thread::Builder::new()
                .name("granted-nlm".into())
                .spawn(move || serve(&nlm_sock, &stop, |call| nlm_answer(call, &tx, &dropped)))?,
        );
        Ok(service)
    }

    /// Where the NLM service listens.
    pub fn nlm_addr(&self) -> SocketAddr {
        self.nlm_addr
    }

    /// Where the portmapper listens.
    pub fn portmap_addr(&self) -> SocketAddr {
        self.portmap_addr
    }

    /// The next GRANTED call received (in arrival order, retransmissions included), waiting at
    /// most `timeout`.
    pub fn recv_granted(&self, timeout: Duration) -> Option<nlm4_testargs> {
        self.granted.recv_timeout(timeout).ok()
    }

    /// GRANTED calls answered but not kept because the queue was full.
    pub fn dropped(&self) -> u32 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for GrantedService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Answers each call datagram on `sock` with what `answer` says (`None`: no reply) until `stop`.
fn serve(
    sock: &UdpSocket,
    stop: &AtomicBool,
    mut answer: impl FnMut(&rpc::RpcCall) -> Option<ReplyStatus>,
) {
    let mut buf = vec![0u8; CALL_BUF_BYTES];
    while !stop.load(Ordering::Relaxed) {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            // Errors such as ICMP port unreachable from an earlier reply: keep serving.
            Err(_) => continue,
        };
        let Ok(call) = rpc::decode_call(Bytes::copy_from_slice(&buf[..n])) else {
            continue; // not a call: ignored, as a server ignores stray replies
        };
        let status = if call.rpcvers != rpc::RPC_VERSION {
            Some(ReplyStatus::RpcMismatch {
                low: rpc::RPC_VERSION,
                high: rpc::RPC_VERSION,
            })
        } else {
            answer(&call)
        };
        if let Some(status) = status {
            let _ = sock.send_to(&rpc::encode_reply(call.xid, &status), from);
        }
    }
}

fn decode_all<T: XdrDecode>(args: &Bytes) -> Option<T> {
    let mut d = Decoder::new(args.clone());
    let v = T::decode(&mut d).ok()?;
    d.finish().ok()?;
    Some(v)
}

fn success<T: XdrEncode + ?Sized>(v: &T) -> Option<ReplyStatus> {
    Some(ReplyStatus::Success(to_bytes(v)))
}

/// The portmapper: NULL, and GETPORT giving `nlm_port` for (NLM, v4, UDP) only.
fn portmap_answer(call: &rpc::RpcCall, nlm_port: u32) -> Option<ReplyStatus> {
    if call.prog != portmap::PMAP_PROG {
        return Some(ReplyStatus::ProgUnavail);
    }
    if call.vers != portmap::PMAP_VERS {
        return Some(ReplyStatus::ProgMismatch {
            low: portmap::PMAP_VERS,
            high: portmap::PMAP_VERS,
        });
    }
    match call.proc {
        portmap::PMAPPROC_NULL => success(&()),
        portmap::PMAPPROC_GETPORT => match decode_all::<portmap::mapping>(&call.args) {
            Some(m) => {
                let port =
                    if (m.prog, m.vers, m.prot) == (NLM_PROG, NLM4_VERS, portmap::IPPROTO_UDP) {
                        nlm_port
                    } else {
                        0
                    };
                success(&port)
            }
            None => Some(ReplyStatus::GarbageArgs),
        },
        _ => Some(ReplyStatus::ProcUnavail),
    }
}

/// The client's NLM v4: NULL, and GRANTED (recorded, answered `NLM4_GRANTED` with its cookie).
fn nlm_answer(
    call: &rpc::RpcCall,
    queue: &SyncSender<nlm4_testargs>,
    dropped: &AtomicU32,
) -> Option<ReplyStatus> {
    if call.prog != NLM_PROG {
        return Some(ReplyStatus::ProgUnavail);
    }
    if call.vers != NLM4_VERS {
        return Some(ReplyStatus::ProgMismatch {
            low: NLM4_VERS,
            high: NLM4_VERS,
        });
    }
    match call.proc {
        NLMPROC4_NULL => success(&()),
        NLMPROC4_GRANTED => {
            let Some(args) = decode_all::<nlm4_testargs>(&call.args) else {
                return Some(ReplyStatus::GarbageArgs);
            };
            let res = nlm4_res {
                cookie: args.cookie.clone(),
                stat: nlm4_stat {
                    stat: nlm4_stats::NLM4_GRANTED,
                },
            };
            match queue.try_send(args) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                Err(TrySendError::Full(_)) => {
                    dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            success(&res)
        }
        _ => Some(ReplyStatus::ProcUnavail),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::Instant;

    #[test]
    fn granted_service_answers_portmap_and_granted_and_records_it() {
        let svc = GrantedService::bind_with_portmap_port(Ipv4Addr::LOCALHOST.into(), 0).unwrap();
        let mut pmap = Client::connect_udp(svc.portmap_addr()).unwrap();
        let nlm_port = u32::from(svc.nlm_addr().port());
        assert_eq!(
            pmap.portmap_getport(NLM_PROG, NLM4_VERS, portmap::IPPROTO_UDP)
                .unwrap(),
            nlm_port
        );
        assert_eq!(
            pmap.portmap_getport(NLM_PROG, NLM4_VERS, portmap::IPPROTO_TCP)
                .unwrap(),
            0
        );
        assert_eq!(
            pmap.portmap_getport(NLM_PROG, 3, portmap::IPPROTO_UDP)
                .unwrap(),
            0
        );
        assert!(matches!(
            pmap.null_of(NLM_PROG, NLM4_VERS),
            Err(Error::Rpc(ReplyStatus::ProgUnavail))
        ));

        let mut server = Client::connect_udp(svc.nlm_addr()).unwrap();
        server.null_of(NLM_PROG, NLM4_VERS).unwrap();
        let fh = nfs_fh3 {
            data: Opaque(Bytes::from_static(b"handle")),
        };
        let args = LockOwner::new("host-b", 7).test_args(&fh, true, 5, 10);
        let res: nlm4_res = server
            .call_decode(NLM_PROG, NLM4_VERS, NLMPROC4_GRANTED, &args)
            .unwrap();
        assert_eq!(res.cookie, args.cookie);
        assert_eq!(res.stat.stat, nlm4_stats::NLM4_GRANTED);
        assert_eq!(svc.recv_granted(Duration::from_secs(5)), Some(args));
        assert_eq!(svc.recv_granted(Duration::from_millis(10)), None);
        // Anything but NULL and GRANTED is unavailable; another version mismatched.
        assert!(matches!(
            server.call(NLM_PROG, NLM4_VERS, NLMPROC4_TEST, &()),
            Err(Error::Rpc(ReplyStatus::ProcUnavail))
        ));
        assert!(matches!(
            server.null_of(NLM_PROG, 3),
            Err(Error::Rpc(ReplyStatus::ProgMismatch { low: 4, high: 4 }))
        ));
        assert!(matches!(
            server.call(NLM_PROG, NLM4_VERS, NLMPROC4_GRANTED, &1u32),
            Err(Error::Rpc(ReplyStatus::GarbageArgs))
        ));
        // Dropping stops both threads within about one poll interval.
        let start = Instant::now();
        drop(svc);
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn lock_owner_builds_arguments_with_fresh_cookies() {
        let fh = nfs_fh3 {
            data: Opaque(Bytes::from_static(b"fh")),
        };
        let o = LockOwner::new("host-a", 3);
        let a = o.lock_args(&fh, true, 0, 10);
        let b = o.lock_args(&fh, true, 0, 10);
        assert_ne!(a.cookie, b.cookie);
        assert_eq!(a.alock.caller_name.as_bytes(), b"host-a");
        assert_eq!(a.alock.oh.as_bytes(), b"3@host-a");
        assert_eq!((a.alock.svid, a.alock.l_offset, a.alock.l_len), (3, 0, 10));
        assert!(!a.block && !a.reclaim && a.exclusive);
        assert!(o.cancel_args(&fh, false, 1, 2).block);
    }
}
