//! What the server is doing right now: connections and the requests in flight on each.
//!
//! Each connection (or UDP socket) has a fixed array of request slots, one per request it may have
//! in flight (its in-flight limit), so tracking a request is a store into a slot it already owns and
//! finishing it is one store: no lock on the request path. The list of connections is guarded by a
//! leaf lock taken only when a connection opens or closes and when someone reads the list (the
//! watchdog, the admin interface); readers clone the list and read the atomics lock-free.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Weak};

use rnfs_oncrpc::peek::{call_header_words, CallPeek};

use crate::call::Transport;
use crate::lockdep::TrackedMutex;

pub use crate::stage::Stage;
use crate::stage::StageSink;

#[derive(Default)]
struct Slot {
    /// 0 = free, else a [`Stage`].
    stage: AtomicU8,
    xid: AtomicU32,
    prog: AtomicU32,
    vers: AtomicU32,
    proc_num: AtomicU32,
    started_ms: AtomicU64,
    /// The request's file handle (every NFSv3 procedure's first argument), up to 64 bytes.
    fh_words: [AtomicU64; 8],
    fh_len: AtomicU8,
}

/// One connection's live state.
pub struct Connection {
    pub id: u64,
    pub peer: SocketAddr,
    pub transport: Transport,
    pub opened_ms: u64,
    pub last_active_ms: AtomicU64,
    pub requests_served: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Flavour (high 32 bits) and uid (low 32 bits) of the last credential seen, u64::MAX if none.
    pub last_auth: AtomicU64,
    /// Asks the connection's reader to close it (idle eviction, admin).
    pub close: tokio::sync::Notify,
    /// Asks the connection's writer to stop at once, dropping the replies not yet sent (a
    /// connection shed to free reply memory; see [`Registry::shed_stalled`]).
    pub abort: tokio::sync::Notify,
    /// Reply memory charged to this connection's requests (being built, queued or being sent).
    pub reply_bytes: AtomicU64,
    /// Notified when `reply_bytes` drops to zero (the reader may wait for it).
    pub replies_drained: tokio::sync::Notify,
    /// Replies built and not yet sent whole.
    pub replies_unsent: AtomicU32,
    /// When one of its replies last moved to the socket (or became unsent while none was).
    pub send_progress_ms: AtomicU64,
    /// Set once this connection's per-client slot is given up: by the connection closing, or
    /// handed to a newcomer from the same client that evicts it (whoever sets it owns the slot).
    pub client_slot_released: AtomicBool,
    /// Set once the connection is shed (so it is chosen once).
    pub shed: AtomicBool,
    slots: Box<[Slot]>,
    /// Where its counters go when it closes.
    closed: Arc<ClosedTotals>,
}

/// Most client addresses whose closed TCP connections are counted apart; the others' are summed
/// under `None` (clients choose their addresses, so the table must not grow with them).
pub const CLIENT_TOTALS_MAX: usize = 4096;

/// Connections, requests and bytes of one client's TCP connections.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ClientTotals {
    pub connections: u64,
    pub requests: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl ClientTotals {
    fn add(&mut self, c: &Connection) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        self.connections += 1;
        self.requests += load(&c.requests_served);
        self.bytes_in += load(&c.bytes_in);
        self.bytes_out += load(&c.bytes_out);
    }
}

type ClosedTotals = TrackedMutex<HashMap<Option<IpAddr>, ClientTotals>>;

impl Drop for Connection {
    /// Keeps what a closed connection did, so per-client rates (`rnfsd ctl top`) count short
    /// connections too.
    fn drop(&mut self) {
        if self.transport != Transport::Tcp {
            return;
        }
        let mut closed = self.closed.lock();
        let ip = self.peer.ip();
        let key = if closed.len() < CLIENT_TOTALS_MAX || closed.contains_key(&Some(ip)) {
            Some(ip)
        } else {
            None
        };
        closed.entry(key).or_default().add(self);
    }
}

/// A request being tracked; finishing it (dropping this) frees its slot.
pub struct Tracked {
    conn: Arc<Connection>,
    idx: usize,
}

impl Tracked {
    pub fn connection(&self) -> &Arc<Connection> {
        &self.conn
    }

    pub fn set_stage(&self, stage: Stage) {
        self.conn.slots[self.idx]
            .stage
            .store(stage as u8, Ordering::Release);
    }
}

/// While alive, the thread runs the request it was made from ([`Tracked::enter`]).
pub struct Entered(());

impl Drop for Entered {
    fn drop(&mut self) {
        crate::stage::leave();
    }
}

impl Tracked {
    /// Marks the calling thread as running this request until the guard drops.
    pub fn enter(&self) -> Entered {
        crate::stage::enter(self.conn.clone(), self.idx);
        Entered(())
    }
}

impl StageSink for Connection {
    fn set_stage(&self, idx: usize, stage: Stage) {
        if let Some(slot) = self.slots.get(idx) {
            slot.stage.store(stage as u8, Ordering::Release);
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.conn.slots[self.idx].stage.store(0, Ordering::Release);
        self.conn.requests_served.fetch_add(1, Ordering::Relaxed);
    }
}

impl Connection {
    /// Starts tracking a request of `record`, whose header the caller peeked at (`call`, `None`
    /// for a record that is no well-formed call; nothing in it is trusted). `None` when every
    /// slot is busy, which the in-flight limit prevents for TCP.
    pub fn track(
        self: &Arc<Self>,
        record: &[u8],
        call: Option<&CallPeek>,
        now_ms: u64,
    ) -> Option<Tracked> {
        // The numbers are reported even for a record that is no well-formed call.
        let [xid, _, _, prog, vers, proc_num] = call_header_words(record);
        let fh = call
            .and_then(crate::peek::nfs_handle)
            .map_or(&[][..], |(fh, _)| fh);
        for (idx, slot) in self.slots.iter().enumerate() {
            if slot
                .stage
                .compare_exchange(0, Stage::Queued as u8, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                slot.xid.store(xid, Ordering::Relaxed);
                slot.prog.store(prog, Ordering::Relaxed);
                slot.vers.store(vers, Ordering::Relaxed);
                slot.proc_num.store(proc_num, Ordering::Relaxed);
                slot.started_ms.store(now_ms, Ordering::Relaxed);
                for (i, w) in slot.fh_words.iter().enumerate() {
                    let mut b = [0u8; 8];
                    let chunk = fh.get(i * 8..).unwrap_or(&[]);
                    let n = chunk.len().min(8);
                    b[..n].copy_from_slice(&chunk[..n]);
                    w.store(u64::from_be_bytes(b), Ordering::Relaxed);
                }
                slot.fh_len.store(fh.len() as u8, Ordering::Relaxed);
                self.last_active_ms.store(now_ms, Ordering::Relaxed);
                if let Some(call) = call {
                    self.last_auth.store(auth_word(call), Ordering::Relaxed);
                }
                return Some(Tracked {
                    conn: self.clone(),
                    idx,
                });
            }
        }
        None
    }

    /// Whether no request is in flight on this connection (what [`Connection::requests`] would
    /// say, without building the list).
    pub fn is_idle(&self) -> bool {
        self.slots
            .iter()
            .all(|s| s.stage.load(Ordering::Acquire) == 0)
    }

    /// Requests in flight on this connection.
    pub fn requests(&self) -> Vec<RequestInfo> {
        self.slots
            .iter()
            .filter_map(|s| {
                let stage = Stage::from_u8(s.stage.load(Ordering::Acquire))?;
                Some(RequestInfo {
                    conn_id: self.id,
                    peer: self.peer,
                    xid: s.xid.load(Ordering::Relaxed),
                    prog: s.prog.load(Ordering::Relaxed),
                    vers: s.vers.load(Ordering::Relaxed),
                    proc_num: s.proc_num.load(Ordering::Relaxed),
                    file_handle: {
                        let len = usize::from(s.fh_len.load(Ordering::Relaxed)).min(64);
                        let mut fh: Vec<u8> = s
                            .fh_words
                            .iter()
                            .flat_map(|w| w.load(Ordering::Relaxed).to_be_bytes())
                            .collect();
                        fh.truncate(len);
                        fh
                    },
                    started_ms: s.started_ms.load(Ordering::Relaxed),
                    stage,
                })
            })
            .collect()
    }
}

/// The credential as [`Connection::last_auth`] keeps it: flavour in the high 32 bits, AUTH_SYS
/// uid (or 0) in the low 32.
fn auth_word(call: &CallPeek) -> u64 {
    (u64::from(call.cred_flavor) << 32) | u64::from(call.auth_sys_uid().unwrap_or(0))
}

/// A request in flight, as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    pub conn_id: u64,
    pub peer: SocketAddr,
    pub xid: u32,
    pub prog: u32,
    pub vers: u32,
    pub proc_num: u32,
    pub started_ms: u64,
    pub stage: Stage,
    /// The file handle the request names (empty for MOUNT, portmapper and NFS NULL).
    pub file_handle: Vec<u8>,
}

impl RequestInfo {
    /// "NFS READ", "MOUNT MNT", ... for reports.
    pub fn procedure_name(&self) -> String {
        match crate::program::find(self.prog, self.vers) {
            Some(p) => match p.procedure(self.proc_num) {
                Some(row) => format!("{} {}", p.name, row.name),
                None => format!("{} proc {}", p.name, self.proc_num),
            },
            None => format!("program {} proc {}", self.prog, self.proc_num),
        }
    }
}

/// All live connections.
pub struct Registry {
    conns: TrackedMutex<Vec<Weak<Connection>>>,
    /// Connections closed to admit a newcomer from the same client at `client_connections_max`.
    pub client_evictions: AtomicU64,
    /// Closed TCP connections' counters by client address (a leaf lock, taken last).
    closed: Arc<ClosedTotals>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl Registry {
    pub fn new() -> Registry {
        Registry {
            conns: TrackedMutex::new("registry.connections", Vec::new()),
            client_evictions: AtomicU64::new(0),
            closed: Arc::new(TrackedMutex::new("registry.client_totals", HashMap::new())),
        }
    }

    /// Registers a connection with room for `slots` requests in flight. It is unregistered when
    /// the returned `Arc` (and every request tracked on it) is gone.
    pub fn open(
        &self,
        id: u64,
        peer: SocketAddr,
        transport: Transport,
        slots: usize,
        now_ms: u64,
    ) -> Arc<Connection> {
        let conn = Arc::new(Connection {
            id,
            peer,
            transport,
            opened_ms: now_ms,
            last_active_ms: AtomicU64::new(now_ms),
            requests_served: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            last_auth: AtomicU64::new(u64::MAX),
            close: tokio::sync::Notify::new(),
            abort: tokio::sync::Notify::new(),
            reply_bytes: AtomicU64::new(0),
            replies_drained: tokio::sync::Notify::new(),
            replies_unsent: AtomicU32::new(0),
            send_progress_ms: AtomicU64::new(now_ms),
            client_slot_released: AtomicBool::new(false),
            shed: AtomicBool::new(false),
            slots: (0..slots.max(1)).map(|_| Slot::default()).collect(),
            closed: self.closed.clone(),
        });
        let mut conns = self.conns.lock();
        // Prune closed connections here, so the list stays as long as the live set.
        conns.retain(|w| w.strong_count() > 0);
        conns.push(Arc::downgrade(&conn));
        conn
    }

    /// The live connections.
    pub fn connections(&self) -> Vec<Arc<Connection>> {
        self.conns.lock().iter().filter_map(Weak::upgrade).collect()
    }

    /// Each TCP client's totals since the server started, closed and open connections together
    /// (`None`: the clients past [`CLIENT_TOTALS_MAX`]), with its connections open now.
    pub fn client_totals(&self) -> Vec<(Option<IpAddr>, ClientTotals, u64)> {
        // Holding the live connections keeps them from closing, so none is counted twice.
        let live = self.connections();
        let closed = self.closed.lock().clone();
        let mut all: HashMap<Option<IpAddr>, (ClientTotals, u64)> =
            closed.into_iter().map(|(ip, t)| (ip, (t, 0))).collect();
        for c in live.iter().filter(|c| c.transport == Transport::Tcp) {
            let e = all.entry(Some(c.peer.ip())).or_default();
            e.0.add(c);
            e.1 += 1;
        }
        let mut out: Vec<_> = all
            .into_iter()
            .map(|(ip, (t, open))| (ip, t, open))
            .collect();
        out.sort_by_key(|(ip, _, _)| *ip);
        out
    }

    /// The TCP connections with nothing in flight that `also` accepts, idle the longest first:
    /// the candidates for eviction at the server's and at a client's connection limit.
    fn idle_tcp(&self, also: impl Fn(&Connection) -> bool) -> Vec<Arc<Connection>> {
        let mut idle: Vec<Arc<Connection>> = self
            .connections()
            .into_iter()
            .filter(|c| c.transport == Transport::Tcp && c.is_idle() && also(c))
            .collect();
        idle.sort_by_key(|c| c.last_active_ms.load(Ordering::Relaxed));
        idle
    }

    /// Asks the TCP connection idle the longest, with nothing in flight, to close. Returns its
    /// peer, or `None` when every connection is busy.
    pub fn evict_idlest(&self) -> Option<SocketAddr> {
        let victim = self.idle_tcp(|_| true).into_iter().next()?;
        // notify_one stores a permit, so a reader not waiting right now still sees it.
        victim.close.notify_one();
        Some(victim.peer)
    }

    /// Gives up the per-client slot of `ip`'s TCP connection idle the longest, with nothing in
    /// flight, and asks it to close: the slot is the caller's (a newcomer from the same client).
    /// `None` when every connection of that client is busy.
    pub fn release_idlest_of(&self, ip: std::net::IpAddr) -> Option<Arc<Connection>> {
        let idle = self.idle_tcp(|c| c.peer.ip().to_canonical() == ip);
        // The first to set the flag owns the slot: a connection closing at this moment keeps its
        // own (and gives it back itself), so another is chosen.
        let victim = idle.into_iter().find(|c| {
            c.client_slot_released
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        })?;
        victim.close.notify_one();
        self.client_evictions.fetch_add(1, Ordering::Relaxed);
        Some(victim)
    }

    /// Sheds TCP connections whose replies have not moved to the socket for `stall_ms` (their
    /// clients are not reading them), those holding the most reply memory first, until they held
    /// `need_bytes` (at least one, if any qualifies): each one's writer stops, dropping its unsent
    /// replies (their memory is free at once), and its reader closes it. Returns each one's peer
    /// and the reply bytes it held.
    pub fn shed_stalled(
        &self,
        now_ms: u64,
        stall_ms: u64,
        need_bytes: u64,
    ) -> Vec<(SocketAddr, u64)> {
        let stalled = |c: &Arc<Connection>| {
            c.transport == Transport::Tcp
                && !c.shed.load(Ordering::Acquire)
                && c.replies_unsent.load(Ordering::Acquire) > 0
                && now_ms.saturating_sub(c.send_progress_ms.load(Ordering::Acquire)) >= stall_ms
        };
        let mut victims: Vec<(u64, Arc<Connection>)> = self
            .connections()
            .into_iter()
            .filter(stalled)
            .map(|c| (c.reply_bytes.load(Ordering::Relaxed), c))
            .collect();
        victims.sort_by_key(|v| std::cmp::Reverse(v.0));
        let mut shed = Vec::new();
        let mut freed = 0u64;
        for (bytes, victim) in victims {
            if !shed.is_empty() && freed >= need_bytes {
                break;
            }
            if victim.shed.swap(true, Ordering::AcqRel) {
                continue;
            }
            // Both store a permit, so neither the writer nor the reader can miss it.
            victim.abort.notify_one();
            victim.close.notify_one();
            freed += bytes;
            shed.push((victim.peer, bytes));
        }
        shed
    }

    /// Every request in flight.
    pub fn requests(&self) -> Vec<RequestInfo> {
        self.connections()
            .iter()
            .flat_map(|c| c.requests())
            .collect()
    }

    /// The registry's own lock, for lock reports.
    pub fn lock_info(&self) -> crate::lockdep::LockInfo {
        self.conns.info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peek(record: &[u8]) -> Option<CallPeek<'_>> {
        CallPeek::parse(record).ok()
    }

    #[test]
    fn client_totals_keep_closed_connections_and_are_bounded() {
        let reg = Registry::default();
        let a: SocketAddr = "10.0.0.1:700".parse().unwrap();
        let served = |c: &Connection, n: u64, bytes: u64| {
            c.requests_served.store(n, Ordering::Relaxed);
            c.bytes_in.store(bytes, Ordering::Relaxed);
            c.bytes_out.store(bytes * 2, Ordering::Relaxed);
        };
        let first = reg.open(1, a, Transport::Tcp, 1, 0);
        served(&first, 3, 100);
        drop(first);
        let second = reg.open(2, a, Transport::Tcp, 1, 0);
        served(&second, 4, 10);
        let udp = reg.open(3, "10.0.0.9:2049".parse().unwrap(), Transport::Udp, 1, 0);
        served(&udp, 50, 50);
        let totals = reg.client_totals();
        let want = ClientTotals {
            connections: 2,
            requests: 7,
            bytes_in: 110,
            bytes_out: 220,
        };
        assert_eq!(totals, vec![(Some(a.ip()), want, 1)], "UDP is no client");
        drop(second);
        assert_eq!(reg.client_totals(), vec![(Some(a.ip()), want, 0)]);

        // Past the bound, newcomers share one row.
        for i in 0..CLIENT_TOTALS_MAX as u32 + 5 {
            let ip = std::net::Ipv4Addr::from(0x0b00_0000 + i);
            drop(reg.open(10, SocketAddr::new(ip.into(), 1), Transport::Tcp, 1, 0));
        }
        let totals = reg.client_totals();
        assert_eq!(totals.len(), CLIENT_TOTALS_MAX + 1);
        assert_eq!(totals[0].0, None);
        assert_eq!(totals[0].1.connections, 6);
    }

    #[test]
    fn track_and_finish() {
        let reg = Registry::default();
        let peer: SocketAddr = "127.0.0.1:999".parse().unwrap();
        let conn = reg.open(7, peer, Transport::Tcp, 2, 100);
        let mut rec = vec![0u8; 24];
        rec[..4].copy_from_slice(&0xabcdu32.to_be_bytes());
        rec[12..16].copy_from_slice(&100003u32.to_be_bytes());
        rec[20..24].copy_from_slice(&6u32.to_be_bytes());
        let a = conn.track(&rec, peek(&rec).as_ref(), 150).unwrap();
        let b = conn.track(&[1, 2], None, 160).unwrap();
        assert!(
            conn.track(&rec, peek(&rec).as_ref(), 170).is_none(),
            "two slots only"
        );
        a.set_stage(Stage::Fs);
        let reqs = reg.requests();
        assert_eq!(reqs.len(), 2);
        let r = reqs.iter().find(|r| r.xid == 0xabcd).unwrap();
        assert_eq!(
            (r.stage, r.started_ms, r.procedure_name().as_str()),
            (Stage::Fs, 150, "NFS READ")
        );
        assert!(r.file_handle.is_empty(), "not a well-formed NFS call");
        drop(a);
        drop(b);
        assert!(reg.requests().is_empty());

        // A real GETATTR names its file handle.
        let mut call = bytes::BytesMut::new();
        let cred = rnfs_oncrpc::AuthSys {
            stamp: 1,
            machine_name: bytes::Bytes::from_static(b"host"),
            uid: 1,
            gid: 1,
            gids: vec![5],
        };
        rnfs_oncrpc::encode_call(
            &mut call,
            9,
            rnfs_nfs3::NFS_PROGRAM,
            3,
            rnfs_nfs3::NFSPROC3_GETATTR,
            &cred.to_opaque(),
        );
        let fh = rnfs_nfs3::nfs_fh3::new(vec![7u8; 37]).unwrap();
        rnfs_xdr::XdrEncode::encode(&rnfs_nfs3::GETATTR3args { object: fh }, &mut call);
        let t = conn.track(&call, peek(&call).as_ref(), 200).unwrap();
        assert_eq!(reg.requests()[0].file_handle, vec![7u8; 37]);
        assert_eq!(conn.last_auth.load(Ordering::Relaxed), (1 << 32) | 1);
        drop(t);
        assert_eq!(conn.requests_served.load(Ordering::Relaxed), 3);
        drop(conn);
        assert!(reg.connections().is_empty());
    }

    /// Shedding picks, among connections whose replies have not moved for the bound, the one
    /// holding the most reply memory; never one whose replies move, one without unsent replies,
    /// or one already shed.
    #[test]
    fn shedding_picks_the_biggest_stalled_holder() {
        let reg = Registry::new();
        let budget = crate::reply_memory::ReplyBudget::new(1 << 20);
        let open = |id: u64, port: u16| {
            let peer = SocketAddr::from(([127, 0, 0, 1], port));
            reg.open(id, peer, Transport::Tcp, 4, 0)
        };
        let (small, big, moving, building) = (open(1, 1), open(2, 2), open(3, 3), open(4, 4));
        let mut charges = Vec::new();
        for (c, bytes, at_ms) in [
            (&small, 10_000, 0),
            (&big, 200_000, 0),
            (&moving, 300_000, 900),
            (&building, 400_000, 0),
        ] {
            let mut charge = budget.try_charge(bytes, Some(c)).unwrap();
            if c.id != 4 {
                charge.mark_unsent();
                c.send_progress_ms.store(at_ms, Ordering::Relaxed);
            }
            charges.push(charge);
        }
        // At 1,000 ms with a 500 ms bound: "moving" sent 100 ms ago; "building" has no reply yet.
        assert_eq!(reg.shed_stalled(1000, 500, 1), vec![(big.peer, 200_000)]);
        assert!(big.shed.load(Ordering::Relaxed));
        assert_eq!(reg.shed_stalled(1000, 500, 1), vec![(small.peer, 10_000)]);
        assert_eq!(reg.shed_stalled(1000, 500, 1), vec![]);
        // As many as it takes to free what waiters need, biggest first.
        for (id, bytes) in [(5, 30_000), (6, 20_000), (7, 40_000)] {
            let c = open(id, id as u16);
            let mut charge = budget.try_charge(bytes, Some(&c)).unwrap();
            charge.mark_unsent();
            c.send_progress_ms.store(0, Ordering::Relaxed);
            charges.push(charge);
        }
        let shed: Vec<u64> = reg
            .shed_stalled(1000, 500, 60_000)
            .iter()
            .map(|v| v.1)
            .collect();
        assert_eq!(shed, vec![40_000, 30_000]);
        // The shed connection's writer and reader are told (stored permits).
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let wait = std::time::Duration::from_secs(1);
            tokio::time::timeout(wait, big.abort.notified())
                .await
                .unwrap();
            tokio::time::timeout(wait, big.close.notified())
                .await
                .unwrap();
        });
    }

    /// At the per-client limit, the client's idlest connection with nothing in flight gives up its
    /// slot, once; other clients' connections and busy ones are never chosen.
    #[test]
    fn the_idlest_idle_connection_of_that_client_gives_up_its_slot() {
        let reg = Registry::default();
        let at = |ip: [u8; 4], id: u64, active_ms: u64| {
            let c = reg.open(
                id,
                SocketAddr::from((ip, 1000 + id as u16)),
                Transport::Tcp,
                2,
                0,
            );
            c.last_active_ms.store(active_ms, Ordering::Relaxed);
            c
        };
        let other = at([127, 0, 0, 2], 1, 10);
        let busy = at([127, 0, 0, 1], 2, 20);
        let newer = at([127, 0, 0, 1], 3, 300);
        let older = at([127, 0, 0, 1], 4, 200);
        let _req = busy.track(&[0; 24], None, 20).unwrap();
        let ip = "127.0.0.1".parse().unwrap();
        assert_eq!(reg.release_idlest_of(ip).unwrap().id, older.id);
        assert_eq!(reg.release_idlest_of(ip).unwrap().id, newer.id);
        assert!(
            reg.release_idlest_of(ip).is_none(),
            "only the busy one is left"
        );
        assert!(!other.client_slot_released.load(Ordering::Relaxed));
        assert_eq!(reg.client_evictions.load(Ordering::Relaxed), 2);
    }

    /// At the connection limit the idlest TCP connection with nothing in flight, of any client,
    /// is asked to close; busy connections and UDP sockets never are, and with none idle there is
    /// no victim. Nothing is marked: if the victim has not closed when the caller looks again,
    /// it is chosen again.
    #[tokio::test]
    async fn the_idlest_idle_connection_is_evicted_at_the_connection_limit() {
        let reg = Registry::default();
        let at = |id: u64, transport: Transport, active_ms: u64| {
            let c = reg.open(
                id,
                SocketAddr::from(([127, 0, 0, id as u8], 700)),
                transport,
                2,
                0,
            );
            c.last_active_ms.store(active_ms, Ordering::Relaxed);
            c
        };
        let udp = at(1, Transport::Udp, 1);
        let busy = at(2, Transport::Tcp, 5);
        let idlest = at(3, Transport::Tcp, 10);
        let _recent = at(4, Transport::Tcp, 900);
        let req = busy.track(&[0; 24], None, 5).unwrap();
        assert_eq!(reg.evict_idlest(), Some(idlest.peer));
        tokio::time::timeout(std::time::Duration::from_secs(1), idlest.close.notified())
            .await
            .expect("the victim is told to close");
        assert_eq!(reg.evict_idlest(), Some(idlest.peer), "chosen again");
        drop(idlest);
        drop(_recent);
        assert_eq!(reg.evict_idlest(), None, "the busy one and UDP are left");
        drop(req);
        assert_eq!(reg.evict_idlest(), Some(busy.peer));
        drop(udp);
    }
}
