//! A small blocking client for NFSv3 (RFC 1813), MOUNT v3 (RFC 1813 Appendix I), the portmapper
//! (RFC 1833) and NLM v4 / NSM v1 (XNFS), over TCP or UDP, for integration tests, benchmarks and tools.
//!
//! It speaks ONC RPC v2 (RFC 5531) through its own small [`rpc`] module, one call at a time per
//! [`Client`]. Three levels of API:
//! * [`Client::call_raw`] sends any call and returns the parsed reply, so tests can see every
//!   accept and reject status (PROG_MISMATCH, PROC_UNAVAIL, GARBAGE_ARGS, AUTH_ERROR, ...);
//!   [`Client::send_message`] / [`Client::recv_reply`] go lower still (arbitrary bytes).
//! * [`Client::call`] / [`Client::call_decode`] encode typed arguments and return the results of a
//!   successful call, any other reply becoming [`Error::Rpc`].
//! * Typed helpers ([`Client::mount`], [`Client::getattr`], [`Client::read`], [`Client::readdir`],
//!   ...) return the `...resok` body, a failing NFS status becoming [`Error::Nfs`]. For the
//!   failure body use [`Client::nfs_call`] and the `...3res` type.
//!
//! For NFSv4.1, [`v4`] adds a client id and session ([`v4::Session`]): COMPOUNDs that begin with
//! SEQUENCE on an ordered slot, and typed helpers (path walk, OPEN, READ, WRITE, LOCK...).
//!
//! For file locking, [`locking`] adds typed NLM v4 and NSM v1 calls ([`Client::nlm_lock`],
//! [`Client::sm_notify`], ...), [`LockOwner`] to build their arguments, and [`GrantedService`],
//! the callback service (and portmapper) a lock server calls back with NLM GRANTED.
#![forbid(unsafe_code)]

pub mod locking;
pub mod rpc;
pub mod v4;

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rnfs_nfs3::*;
use rnfs_xdr::{to_bytes, Decoder, Opaque, XdrDecode, XdrEncode};
/// The protocol crates, re-exported so users need not depend on them.
pub use {
    rnfs_mount as mount, rnfs_nfs3 as nfs3, rnfs_nfs4 as nfs4, rnfs_nlm as nlm,
    rnfs_portmap as portmap,
};

pub use locking::{GrantedService, LockOwner};
pub use rpc::{Auth, ReplyStatus, RpcReply};

/// What can go wrong with a call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    #[error("undecodable reply: {0}")]
    Xdr(#[from] rnfs_xdr::Error),
    /// The call was not executed: any reply status but SUCCESS.
    #[error("RPC call failed: {0}")]
    Rpc(ReplyStatus),
    #[error("NFS error {0}")]
    Nfs(nfsstat3),
    #[error("MOUNT error {0:?}")]
    Mount(mount::mountstat3),
    #[error("protocol violation: {0}")]
    Protocol(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Default time to wait for a reply.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default largest reply record accepted over TCP (a 1 MiB READ plus headers fits).
pub const DEFAULT_MAX_RECORD: usize = 4 << 20;
/// Largest UDP datagram received.
const UDP_MAX_DATAGRAM: usize = 65_536;
/// How many unrelated replies (stale XIDs) to skip while waiting for ours.
const MAX_STALE_REPLIES: usize = 64;
/// Most pages [`Client::readdir`] and [`Client::readdirplus`] fetch before giving up.
const MAX_READDIR_PAGES: usize = 100_000;

enum Transport {
    Tcp(TcpStream),
    Udp(UdpSocket),
}

/// A connection to one server address; one call at a time.
///
/// Over TCP, a timeout or I/O error may leave the stream in the middle of a record: make a new
/// client after one.
/// Answers a call the server makes on this client's connection (the NFSv4.1 back channel):
/// gets the call message, returns the reply message to send (or `None`: no answer).
pub type CallbackHandler = Box<dyn FnMut(&[u8]) -> Option<Vec<u8>> + Send>;

pub struct Client {
    transport: Transport,
    /// Calls from the server read while waiting for a reply go here (else they break the stream).
    callbacks: Option<CallbackHandler>,
    peer: SocketAddr,
    auth: Auth,
    next_xid: u32,
    timeout: Duration,
    udp_retransmit: Duration,
    max_record: usize,
    max_fragment: usize,
}

fn initial_xid() -> u32 {
    // Distinct clients should not reuse each other's XIDs (servers keep a duplicate request cache).
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
        .unwrap_or(0);
    nanos ^ std::process::id().rotate_left(16)
}

fn resolve(addr: impl ToSocketAddrs) -> io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "address resolved to nothing",
        ));
    }
    Ok(addrs)
}

/// A plain TCP connection from `local` (an address, and a port or 0) to `server`, for tests that
/// speak raw bytes (hostile input, many idle connections from many loopback addresses).
pub fn tcp_connect_from(
    local: SocketAddr,
    server: SocketAddr,
    timeout: Duration,
) -> io::Result<TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(server),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.bind(&local.into())?;
    socket.connect_timeout(&server.into(), timeout)?;
    let s: TcpStream = socket.into();
    s.set_nodelay(true)?;
    Ok(s)
}

fn name_of(name: &[u8]) -> filename3 {
    // Not checked against the limit on purpose: tests send over-long names to see the server's
    // NFS3ERR_NAMETOOLONG.
    Opaque(Bytes::copy_from_slice(name))
}

impl Client {
    fn new(transport: Transport, peer: SocketAddr) -> Self {
        Client {
            transport,
            callbacks: None,
            peer,
            auth: Auth::None,
            next_xid: initial_xid(),
            timeout: DEFAULT_TIMEOUT,
            udp_retransmit: Duration::from_millis(500),
            max_record: DEFAULT_MAX_RECORD,
            max_fragment: usize::MAX,
        }
    }

    /// Connects over TCP (the first resolved address that accepts within the default timeout).
    pub fn connect_tcp(addr: impl ToSocketAddrs) -> Result<Self> {
        let mut last = None;
        for a in resolve(addr)? {
            match TcpStream::connect_timeout(&a, DEFAULT_TIMEOUT) {
                Ok(s) => {
                    s.set_nodelay(true)?;
                    let mut c = Client::new(Transport::Tcp(s), a);
                    c.set_timeout(DEFAULT_TIMEOUT)?;
                    return Ok(c);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(Error::Io(last.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::NotConnected, "no address")
        })))
    }

    /// Connects over TCP from `local` (an address, and a port or 0): lets tests appear as another
    /// loopback address (e.g. `127.0.0.2:0`) or use a privileged source port (as root).
    pub fn connect_tcp_from(local: SocketAddr, server: impl ToSocketAddrs) -> Result<Self> {
        use socket2::{Domain, Protocol, Socket, Type};
        let a = resolve(server)?[0];
        let socket = Socket::new(Domain::for_address(a), Type::STREAM, Some(Protocol::TCP))?;
        socket.bind(&local.into())?;
        socket.connect_timeout(&a.into(), DEFAULT_TIMEOUT)?;
        let s: TcpStream = socket.into();
        s.set_nodelay(true)?;
        let mut c = Client::new(Transport::Tcp(s), a);
        c.set_timeout(DEFAULT_TIMEOUT)?;
        Ok(c)
    }

    /// Like [`Client::connect_udp`], with the socket bound to `local` first.
    pub fn connect_udp_from(local: SocketAddr, server: impl ToSocketAddrs) -> Result<Self> {
        let a = resolve(server)?[0];
        let s = UdpSocket::bind(local)?;
        s.connect(a)?;
        let mut c = Client::new(Transport::Udp(s), a);
        c.set_timeout(DEFAULT_TIMEOUT)?;
        Ok(c)
    }

    /// The local address of this client's socket (what the server sees as the peer).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(match &self.transport {
            Transport::Tcp(s) => s.local_addr()?,
            Transport::Udp(s) => s.local_addr()?,
        })
    }

    /// "Connects" a UDP socket to the server's address (replies from elsewhere are ignored).
    pub fn connect_udp(addr: impl ToSocketAddrs) -> Result<Self> {
        let a = resolve(addr)?[0];
        let local: SocketAddr = if a.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let s = UdpSocket::bind(local)?;
        s.connect(a)?;
        let mut c = Client::new(Transport::Udp(s), a);
        c.set_timeout(DEFAULT_TIMEOUT)?;
        Ok(c)
    }

    /// Sends AUTH_SYS credentials with this uid, gid and supplementary groups from now on.
    pub fn with_auth_sys(mut self, uid: u32, gid: u32, groups: &[u32]) -> Self {
        self.auth = Auth::Sys {
            stamp: 0,
            machinename: Bytes::from_static(b"rnfs-client"),
            uid,
            gid,
            gids: groups.to_vec(),
        };
        self
    }

    /// Sends these credentials from now on (AUTH_NONE, AUTH_SYS, or anything raw).
    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    pub fn set_auth(&mut self, auth: Auth) {
        self.auth = auth;
    }

    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    pub fn is_udp(&self) -> bool {
        matches!(self.transport, Transport::Udp(_))
    }

    /// How long to wait for a reply (UDP: in total, across retransmissions).
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<()> {
        let timeout = timeout.max(Duration::from_millis(1));
        self.timeout = timeout;
        match &self.transport {
            Transport::Tcp(s) => {
                s.set_read_timeout(Some(timeout))?;
                s.set_write_timeout(Some(timeout))?;
            }
            Transport::Udp(s) => s.set_write_timeout(Some(timeout))?,
        }
        Ok(())
    }

    /// UDP only: resend a call after this long without a reply (default 500 ms).
    pub fn set_udp_retransmit(&mut self, interval: Duration) {
        self.udp_retransmit = interval.max(Duration::from_millis(1));
    }

    /// Largest reply record accepted over TCP (default [`DEFAULT_MAX_RECORD`]).
    pub fn set_max_record_size(&mut self, max: usize) {
        self.max_record = max;
    }

    /// TCP only: split each call into record fragments of at most `max` bytes (to exercise a
    /// server's reassembly). Default: one fragment per call.
    pub fn set_max_fragment_size(&mut self, max: usize) {
        self.max_fragment = max.max(1);
    }

    /// The XID the next call will use.
    pub fn next_xid(&self) -> u32 {
        self.next_xid
    }

    fn take_xid(&mut self) -> u32 {
        let x = self.next_xid;
        self.next_xid = self.next_xid.wrapping_add(1);
        x
    }

    /// Sends one complete RPC message as is (one record over TCP, one datagram over UDP).
    pub fn send_message(&mut self, msg: &[u8]) -> Result<()> {
        match &mut self.transport {
            Transport::Tcp(s) => rpc::write_record(s, msg, self.max_fragment)?,
            Transport::Udp(s) => {
                s.send(msg)?;
            }
        }
        Ok(())
    }

    /// Sends several complete RPC messages at once: over TCP their records go out in one write
    /// (so the server reads them together, as from a client with many calls in flight); over
    /// UDP, one datagram each.
    pub fn send_messages(&mut self, msgs: &[&[u8]]) -> Result<()> {
        match &mut self.transport {
            Transport::Tcp(s) => {
                let mut out = Vec::new();
                for m in msgs {
                    rpc::write_record(&mut out, m, self.max_fragment)?;
                }
                io::Write::write_all(s, &out)?;
            }
            Transport::Udp(s) => {
                for m in msgs {
                    s.send(m)?;
                }
            }
        }
        Ok(())
    }

    /// Receives and parses the next reply, whatever its XID (waits at most the timeout).
    pub fn recv_reply(&mut self) -> Result<RpcReply> {
        let msg = self.recv_message(self.timeout)?;
        Ok(rpc::decode_reply(msg)?)
    }

    fn recv_message(&mut self, wait: Duration) -> Result<Bytes> {
        match &mut self.transport {
            Transport::Tcp(s) => rpc::read_record(s, self.max_record).map_err(|e| match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout(self.timeout),
                _ => Error::Io(e),
            }),
            Transport::Udp(s) => {
                s.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
                let mut buf = vec![0u8; UDP_MAX_DATAGRAM];
                match s.recv(&mut buf) {
                    Ok(n) => {
                        buf.truncate(n);
                        Ok(Bytes::from(buf))
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        Err(Error::Timeout(wait))
                    }
                    Err(e) => Err(Error::Io(e)),
                }
            }
        }
    }

    /// Answers the server's calls on this connection (the NFSv4.1 back channel) with `handler`
    /// while waiting for replies.
    pub fn set_callback_handler(&mut self, handler: CallbackHandler) {
        self.callbacks = Some(handler);
    }

    /// Sends a call with already-encoded `args` and returns the parsed reply, whatever its status.
    /// `xid` defaults to the next XID; passing one lets tests retransmit (duplicate request cache).
    /// Replies with other XIDs are skipped. Over UDP the call is resent every retransmit interval
    /// until the timeout.
    pub fn call_raw(
        &mut self,
        xid: Option<u32>,
        prog: u32,
        vers: u32,
        proc: u32,
        args: &[u8],
    ) -> Result<RpcReply> {
        let xid = xid.unwrap_or_else(|| self.take_xid());
        let msg = rpc::encode_call(xid, prog, vers, proc, &self.auth, args);
        self.exchange(xid, &msg).map(|(_, parsed)| parsed)
    }

    /// Like [`Client::call_raw`] with a given `xid`, but returns the reply message exactly as it
    /// arrived (one record's bytes over TCP, the datagram over UDP): lets tests compare replies
    /// byte for byte (a duplicate request cache must replay them identically).
    pub fn call_raw_bytes(
        &mut self,
        xid: u32,
        prog: u32,
        vers: u32,
        proc: u32,
        args: &[u8],
    ) -> Result<Bytes> {
        let msg = rpc::encode_call(xid, prog, vers, proc, &self.auth, args);
        self.exchange(xid, &msg).map(|(raw, _)| raw)
    }

    /// Receives the next reply message as raw bytes, whatever its XID (waits at most the timeout).
    pub fn recv_raw(&mut self) -> Result<Bytes> {
        self.recv_message(self.timeout)
    }

    /// Sends `msg` (a call with transaction id `xid`) and waits for the reply with that XID,
    /// returning it raw and parsed. Over UDP the call is resent every retransmit interval.
    fn exchange(&mut self, xid: u32, msg: &[u8]) -> Result<(Bytes, RpcReply)> {
        self.send_message(msg)?;
        let deadline = Instant::now() + self.timeout;
        let mut stale = 0;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Timeout(self.timeout));
            }
            let wait = if self.is_udp() {
                self.udp_retransmit.min(deadline - now)
            } else {
                deadline - now
            };
            let reply = match self.recv_message(wait) {
                Ok(m) => m,
                Err(Error::Timeout(_)) if self.is_udp() => {
                    if Instant::now() < deadline {
                        self.send_message(msg)?;
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            // A call from the server (msg_type CALL after the xid): answered, not a reply.
            if reply.get(4..8) == Some(&[0, 0, 0, 0]) {
                if let Some(handler) = self.callbacks.as_mut() {
                    if let Some(answer) = handler(&reply) {
                        self.send_message(&answer)?;
                    }
                    continue;
                }
            }
            // Over UDP a stray datagram is skipped; over TCP a bad record means a broken stream.
            let parsed = match rpc::decode_reply(reply.clone()) {
                Ok(r) => r,
                Err(_) if self.is_udp() => continue,
                Err(e) => return Err(e.into()),
            };
            if parsed.xid == xid {
                return Ok((reply, parsed));
            }
            stale += 1;
            if stale > MAX_STALE_REPLIES {
                return Err(Error::Protocol(format!(
                    "{stale} replies with unexpected XIDs while waiting for {xid:#x}"
                )));
            }
        }
    }

    /// Calls `proc` with typed `args`; returns the encoded results of a successful call.
    pub fn call<A: XdrEncode + ?Sized>(
        &mut self,
        prog: u32,
        vers: u32,
        proc: u32,
        args: &A,
    ) -> Result<Bytes> {
        let args = to_bytes(args);
        match self.call_raw(None, prog, vers, proc, &args)?.status {
            ReplyStatus::Success(res) => Ok(res),
            other => Err(Error::Rpc(other)),
        }
    }

    /// [`Client::call`], then decodes the whole result as `R`.
    pub fn call_decode<A: XdrEncode + ?Sized, R: XdrDecode>(
        &mut self,
        prog: u32,
        vers: u32,
        proc: u32,
        args: &A,
    ) -> Result<R> {
        let res = self.call(prog, vers, proc, args)?;
        let mut d = Decoder::new(res);
        let r = R::decode(&mut d)?;
        d.finish()?;
        Ok(r)
    }

    // ---- portmapper ---------------------------------------------------------------------------

    /// PMAPPROC_GETPORT on this connection: the port of `prog`/`vers` over `prot`
    /// ([`portmap::IPPROTO_TCP`] or [`portmap::IPPROTO_UDP`]); 0 if not registered.
    pub fn portmap_getport(&mut self, prog: u32, vers: u32, prot: u32) -> Result<u32> {
        let m = portmap::mapping {
            prog,
            vers,
            prot,
            port: 0,
        };
        self.call_decode(
            portmap::PMAP_PROG,
            portmap::PMAP_VERS,
            portmap::PMAPPROC_GETPORT,
            &m,
        )
    }

    /// PMAPPROC_DUMP on this connection.
    pub fn portmap_dump(&mut self) -> Result<Vec<portmap::mapping>> {
        let l: portmap::pmaplist = self.call_decode(
            portmap::PMAP_PROG,
            portmap::PMAP_VERS,
            portmap::PMAPPROC_DUMP,
            &(),
        )?;
        Ok(l.0)
    }

    // ---- MOUNT v3 -----------------------------------------------------------------------------

    /// MOUNTPROC3_MNT, returning the whole reply (status, handle, auth flavors).
    pub fn mnt(&mut self, path: &[u8]) -> Result<mount::mountres3> {
        let p: mount::dirpath = Opaque(Bytes::copy_from_slice(path));
        self.call_decode(
            mount::MOUNT_PROG,
            mount::MOUNT_V3,
            mount::MOUNTPROC3_MNT,
            &p,
        )
    }

    /// Mounts `path` (MOUNT v3 on this connection) and returns its root file handle.
    pub fn mount(&mut self, path: &[u8]) -> Result<nfs_fh3> {
        match self.mnt(path)? {
            mount::mountres3::Ok(ok) => Ok(nfs_fh3 { data: ok.fhandle }),
            mount::mountres3::Fail(s) => Err(Error::Mount(s)),
        }
    }

    /// MOUNTPROC3_UMNT.
    pub fn umnt(&mut self, path: &[u8]) -> Result<()> {
        let p: mount::dirpath = Opaque(Bytes::copy_from_slice(path));
        self.call_decode(
            mount::MOUNT_PROG,
            mount::MOUNT_V3,
            mount::MOUNTPROC3_UMNT,
            &p,
        )
    }

    /// MOUNTPROC3_EXPORT.
    pub fn exports(&mut self) -> Result<mount::exports> {
        self.call_decode(
            mount::MOUNT_PROG,
            mount::MOUNT_V3,
            mount::MOUNTPROC3_EXPORT,
            &(),
        )
    }

    // ---- NFSv3 --------------------------------------------------------------------------------

    /// Calls NFSv3 procedure `proc` and decodes its `...3res`, failure arm included.
    pub fn nfs_call<A: XdrEncode + ?Sized, R: XdrDecode>(
        &mut self,
        proc: u32,
        args: &A,
    ) -> Result<R> {
        self.call_decode(NFS_PROGRAM, NFS_V3, proc, args)
    }

    /// NFSPROC3_NULL.
    pub fn null(&mut self) -> Result<()> {
        self.nfs_call(NFSPROC3_NULL, &())
    }

    /// The NULL procedure of any program and version.
    pub fn null_of(&mut self, prog: u32, vers: u32) -> Result<()> {
        self.call_decode(prog, vers, 0, &())
    }

    pub fn getattr(&mut self, object: &nfs_fh3) -> Result<fattr3> {
        let args = GETATTR3args {
            object: object.clone(),
        };
        let r: GETATTR3res = self.nfs_call(NFSPROC3_GETATTR, &args)?;
        Ok(r.into_result().map_err(Error::Nfs)?.obj_attributes)
    }

    pub fn setattr(
        &mut self,
        object: &nfs_fh3,
        new_attributes: sattr3,
        guard: sattrguard3,
    ) -> Result<SETATTR3resok> {
        let args = SETATTR3args {
            object: object.clone(),
            new_attributes,
            guard,
        };
        let r: SETATTR3res = self.nfs_call(NFSPROC3_SETATTR, &args)?;
        r.into_result().map_err(Error::Nfs)
    }

    pub fn lookup(&mut self, dir: &nfs_fh3, name: &[u8]) -> Result<LOOKUP3resok> {
        let args = LOOKUP3args {
            what: diropargs3 {
                dir: dir.clone(),
                name: name_of(name),
            },
        };
        let r: LOOKUP3res = self.nfs_call(NFSPROC3_LOOKUP, &args)?;
        r.into_result().map_err(Error::Nfs)
    }

    /// ACCESS with a mask of `ACCESS3_*` bits; the reply's `access` is what is granted.
    pub fn access(&mut self, object: &nfs_fh3, access: u32) -> Result<ACCESS3resok> {
        let args = ACCESS3args {
            object: object.clone(),
            access,
        };
        let r: ACCESS3res = self.nfs_call(NFSPROC3_ACCESS, &args)?;
        r.into_result().map_err(Error::Nfs)
    }

    /// The target of a symbolic link.
    pub fn readlink(&mut self, symlink: &nfs_fh3) -> Result<Bytes> {
        let args = READLINK3args {
            symlink: symlink.clone(),
        };
        let r: READLINK3res = self.nfs_call(NFSPROC3_READLINK, &args)?;
        Ok(r.into_result().map_err(Error::Nfs)?.data.0)
    }

    pub fn read(&mut self, file: &nfs_fh3, offset: u64, count: u32) -> Result<READ3resok> {
        let args = READ3args {
            file: file.clone(),
            offset,
            count,
        };
        let r: READ3res = self.nfs_call(NFSPROC3_READ, &args)?;
        r.into_result().map_err(Error::Nfs)
    }

    pub fn write(
        &mut self,
        file: &nfs_fh3,
        offset: u64,
        data: Bytes,
        stable: stable_how,
    ) -> Result<WRITE3resok> {
        let args = WRITE3args {
            file: file.clone(),
            offset,
            count: data.len() as u32,
            stable,
            data: Opaque(data),
        };
        let r: WRITE3res = self.nfs_call(NFSPROC3_WRITE, &args)?;
        r.into_result().map_err(Error::Nfs)
    }

    pub fn create(&mut self, dir: &nfs_fh3, name: &[u8], how: createhow3) -> Result<CREATE3resok> {
        let args = CREATE3args {
            r#where: diropargs3 {
                dir: dir.clone(),
                name: name_of(name),
            },
            how,
        };
        let r: CREATE3res = self.nfs_call(NFSPROC3_CREATE, &args)?;
        r.into_result().map_err(Error::Nfs)
    }

    pub fn mkdir(&mut self, dir: &nfs_fh3, name: &[u8], attributes: sattr3) -> Result<MKDIR3resok> {
        let args = MKDIR3args {
            r#where: diropargs3 {
                dir: dir.clone(),
                name: name_of(name),
            },
            attributes,
        };
        let r: MKDIR3res = self.nfs_call(NFSPROC3_MKDIR, &args)?;
        r.into_result().map_err(Error::Nfs)
    }

    pub fn symlink(
        &mut self,
        dir: &nfs_fh3,
        name: &[u8],
        target: &[u8],
        attributes: sattr3,
    ) -> Result<SYMLINK3resok> {
        let args = SYMLINK3args {
            r#where: diropargs3 {
                dir: dir.clone(),
                name: name_of(name),
            },
            symlink: symlinkdata3 {
                symlink_attributes: attributes,
                symlink_data: Opaque(Bytes::copy_from_slice(target)),
            },
        };
        let r: SYMLINK3res = self.nfs_call(NFSPROC3_SYMLINK, &args)?;
        r.into_result().map_err(Error::Nfs)
    }

    /// CREATE with `createhow3::Exclusive(verf)` (RFC 1813 §3.3.8).
    pub fn create_exclusive(
        &mut self,
        dir: &nfs_fh3,
        name: &[u8],
        verf: createverf3,
    ) -> Result<CREATE3resok> {
        self.create(dir, name, createhow3::Exclusive(verf))
    }

    /// MKNOD: a device, socket or FIFO (`what` names the type and its attributes).
    pub fn mknod(&mut self, dir: &nfs_fh3, name: &[u8], what: mknoddata3) -> Result<MKNOD3resok> {
        let args = MKNOD3args {
            r#where: diropargs3 {
                dir: dir.clone(),
                name: name_of(name),
            },
            what,
        };
        let r: MKNOD3res = self.nfs_call(NFSPROC3_MKNOD, &args)?;
        r.into_result().map_err(Error::Nfs)
    }

    pub fn remove(&mut self, dir: &nfs_fh3, name: &[u8]) -> Result<REMOVE3resok> {
        let args = REMOVE3args {
            object: diropargs3 {
                dir: dir.clone(),
                name: name_of(name),
            },
        };
        let r: REMOVE3res = self.nfs_call(NFSPROC3_REMOVE, &args)?;
        r.into_result().map_err(Error::Nfs)
    }

    pub fn rmdir(&mut self, dir: &nfs_fh3, name: &[u8]) -> Result<RMDIR3resok> {
        let args = RMDIR3args {
            object: diropargs3 {
                dir: dir.clone(),
                name: name_of(name),
            },
        };
        let r: RMDIR3res = self.nfs_call(NFSPROC3_RMDIR, &args)?;
        r.into_result().map_err(Error::Nfs)
    }

    pub fn rename(
        &mut self,
        from_dir: &nfs_fh3,
        from_name: &[u8],
        to_dir: &nfs_fh3,
        to_name: &[u8],
    ) -> Result<RENAME3resok> {
        let args = RENAME3args {
            from: diropargs3 {
                dir: from_dir.clone(),
                name: name_of(from_name),
            },
            to: diropargs3 {
                dir: to_dir.clone(),
                name: name_of(to_name),
            },
        };
        let r: RENAME3res = self.nfs_call(NFSPROC3_RENAME, &args)?;
        r.into_result().map_err(Error::Nfs)
    }

    pub fn link(&mut self, file: &nfs_fh3, dir: &nfs_fh3, name: &[u8]) -> Result<LINK3resok> {
        let args = LINK3args {
            file: file.clone(),
            link: diropargs3 {
                dir: dir.clone(),
                name: name_of(name),
            },
        };
        let r: LINK3res = self.nfs_call(NFSPROC3_LINK, &args)?;
        r.into_result().map_err(Error::Nfs)
    }

    pub fn commit(&mut self, file: &nfs_fh3, offset: u64, count: u32) -> Result<COMMIT3resok> {
        let args = COMMIT3args {
            file: file.clone(),
            offset,
            count,
        };
        let r: COMMIT3res = self.nfs_call(NFSPROC3_COMMIT, &args)?;
        r.into_result().map_err(Error::Nfs)
    }

    /// One READDIR page.
    pub fn readdir_page(
        &mut self,
        dir: &nfs_fh3,
        cookie: cookie3,
        cookieverf: cookieverf3,
        count: u32,
    ) -> Result<READDIR3resok> {
        let args = READDIR3args {
            dir: dir.clone(),
            cookie,
            cookieverf,
            count,
        };
        let r: READDIR3res = self.nfs_call(NFSPROC3_READDIR, &args)?;
        r.into_result().map_err(Error::Nfs)
    }

    /// All entries of a directory (READDIR pages of 8 KiB until `eof`), "." and ".." included if
    /// the server sends them.
    pub fn readdir(&mut self, dir: &nfs_fh3) -> Result<Vec<entry3>> {
        let mut out = Vec::new();
        let (mut cookie, mut verf) = (0, [0; NFS3_COOKIEVERFSIZE]);
        for _ in 0..MAX_READDIR_PAGES {
            let page = self.readdir_page(dir, cookie, verf, 8192)?;
            verf = page.cookieverf;
            let eof = page.reply.eof;
            match page.reply.entries.last() {
                Some(last) => cookie = last.cookie,
                None if !eof => {
                    return Err(Error::Protocol(
                        "READDIR page with no entries and no eof".into(),
                    ))
                }
                None => {}
            }
            out.extend(page.reply.entries);
            if eof {
                return Ok(out);
            }
        }
        Err(Error::Protocol(format!(
            "READDIR did not reach eof in {MAX_READDIR_PAGES} pages"
        )))
    }

    /// One READDIRPLUS page.
    pub fn readdirplus_page(
        &mut self,
        dir: &nfs_fh3,
        cookie: cookie3,
        cookieverf: cookieverf3,
        dircount: u32,
        maxcount: u32,
    ) -> Result<READDIRPLUS3resok> {
        let args = READDIRPLUS3args {
            dir: dir.clone(),
            cookie,
            cookieverf,
            dircount,
            maxcount,
        };
        let r: READDIRPLUS3res = self.nfs_call(NFSPROC3_READDIRPLUS, &args)?;
        r.into_result().map_err(Error::Nfs)
    }

    /// All entries of a directory with attributes and handles (READDIRPLUS, dircount 8 KiB,
    /// maxcount 32 KiB per page).
    pub fn readdirplus(&mut self, dir: &nfs_fh3) -> Result<Vec<entryplus3>> {
        let mut out = Vec::new();
        let (mut cookie, mut verf) = (0, [0; NFS3_COOKIEVERFSIZE]);
        for _ in 0..MAX_READDIR_PAGES {
            let page = self.readdirplus_page(dir, cookie, verf, 8192, 32768)?;
            verf = page.cookieverf;
            let eof = page.reply.eof;
            match page.reply.entries.last() {
                Some(last) => cookie = last.cookie,
                None if !eof => {
                    return Err(Error::Protocol(
                        "READDIRPLUS page with no entries and no eof".into(),
                    ))
                }
                None => {}
            }
            out.extend(page.reply.entries);
            if eof {
                return Ok(out);
            }
        }
        Err(Error::Protocol(format!(
            "READDIRPLUS did not reach eof in {MAX_READDIR_PAGES} pages"
        )))
    }

    pub fn fsstat(&mut self, fsroot: &nfs_fh3) -> Result<FSSTAT3resok> {
        let args = FSSTAT3args {
            fsroot: fsroot.clone(),
        };
        let r: FSSTAT3res = self.nfs_call(NFSPROC3_FSSTAT, &args)?;
        r.into_result().map_err(Error::Nfs)
    }

    pub fn fsinfo(&mut self, fsroot: &nfs_fh3) -> Result<FSINFO3resok> {
        let args = FSINFO3args {
            fsroot: fsroot.clone(),
        };
        let r: FSINFO3res = self.nfs_call(NFSPROC3_FSINFO, &args)?;
        r.into_result().map_err(Error::Nfs)
    }

    pub fn pathconf(&mut self, object: &nfs_fh3) -> Result<PATHCONF3resok> {
        let args = PATHCONF3args {
            object: object.clone(),
        };
        let r: PATHCONF3res = self.nfs_call(NFSPROC3_PATHCONF, &args)?;
        r.into_result().map_err(Error::Nfs)
    }
}

#[cfg(test)]
mod tests;
