//! What the server is doing right now: connections and the requests in flight on each.
//!
//! Each connection (or UDP socket) has a fixed array of request slots, one per request it may have
//! in flight (its in-flight limit), so tracking a request is a store into a slot it already owns and
//! finishing it is one store: no lock on the request path. The list of connections is guarded by a
//! leaf lock taken only when a connection opens or closes and when someone reads the list (the
//! watchdog, the admin interface); readers clone the list and read the atomics lock-free.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Weak};

use crate::lockdep::TrackedMutex;
use crate::service::Transport;

/// Where an in-flight request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Stage {
    /// Received; waiting for a file-system worker.
    Queued = 1,
    /// Running on the file-system worker pool (decode, storage calls, encode).
    Fs = 2,
    /// Reply built; queued for or being written by the connection's writer.
    Sending = 3,
}

impl Stage {
    fn from_u8(v: u8) -> Option<Stage> {
        match v {
            1 => Some(Stage::Queued),
            2 => Some(Stage::Fs),
            3 => Some(Stage::Sending),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Queued => "queued for a worker",
            Stage::Fs => "file-system pool",
            Stage::Sending => "send",
        }
    }
}

#[derive(Default)]
struct Slot {
    /// 0 = free, else a [`Stage`].
    stage: AtomicU8,
    xid: AtomicU32,
    prog: AtomicU32,
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
    slots: Box<[Slot]>,
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

impl Drop for Tracked {
    fn drop(&mut self) {
        self.conn.slots[self.idx].stage.store(0, Ordering::Release);
        self.conn.requests_served.fetch_add(1, Ordering::Relaxed);
    }
}

impl Connection {
    /// Starts tracking a request of `record` (its RPC header is peeked, not trusted). `None` when
    /// every slot is busy, which the in-flight limit prevents for TCP.
    pub fn track(self: &Arc<Self>, record: &[u8], now_ms: u64) -> Option<Tracked> {
        let word = |i: usize| {
            record
                .get(i * 4..i * 4 + 4)
                .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        for (idx, slot) in self.slots.iter().enumerate() {
            if slot
                .stage
                .compare_exchange(0, Stage::Queued as u8, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                slot.xid.store(word(0), Ordering::Relaxed);
                slot.prog.store(word(3), Ordering::Relaxed);
                slot.proc_num.store(word(5), Ordering::Relaxed);
                slot.started_ms.store(now_ms, Ordering::Relaxed);
                let fh = nfs_file_handle(record).unwrap_or(&[]);
                for (i, w) in slot.fh_words.iter().enumerate() {
                    let mut b = [0u8; 8];
                    let chunk = fh.get(i * 8..).unwrap_or(&[]);
                    let n = chunk.len().min(8);
                    b[..n].copy_from_slice(&chunk[..n]);
                    w.store(u64::from_be_bytes(b), Ordering::Relaxed);
                }
                slot.fh_len.store(fh.len() as u8, Ordering::Relaxed);
                self.last_active_ms.store(now_ms, Ordering::Relaxed);
                if let Some(auth) = crate::stats::auth_word(record) {
                    self.last_auth.store(auth, Ordering::Relaxed);
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

/// The file handle an NFSv3 call names: the first argument of every procedure but NULL. Read from
/// the raw record without trusting it: any inconsistency gives `None`.
fn nfs_file_handle(record: &[u8]) -> Option<&[u8]> {
    let word = |at: usize| -> Option<usize> {
        let b = record.get(at..at + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let padded = |n: usize| n.checked_add(3).map(|v| v & !3);
    // xid, CALL, rpcvers, prog, vers, proc, then credential and verifier (flavour, length, body).
    if word(4)? != 0 || word(12)? != rnfs_nfs3::NFS_PROGRAM as usize || word(20)? == 0 {
        return None;
    }
    let cred_len = word(28)?;
    let verf_at = 32usize.checked_add(padded(cred_len)?)?;
    let verf_len = word(verf_at + 4)?;
    let args_at = verf_at.checked_add(8)?.checked_add(padded(verf_len)?)?;
    let fh_len = word(args_at)?;
    if fh_len > rnfs_nfs3::NFS3_FHSIZE {
        return None;
    }
    record.get(args_at + 4..args_at + 4 + fh_len)
}

/// A request in flight, as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    pub conn_id: u64,
    pub peer: SocketAddr,
    pub xid: u32,
    pub prog: u32,
    pub proc_num: u32,
    pub started_ms: u64,
    pub stage: Stage,
    /// The file handle the request names (empty for MOUNT, portmapper and NFS NULL).
    pub file_handle: Vec<u8>,
}

impl RequestInfo {
    /// "NFS READ", "MOUNT MNT", ... for reports.
    pub fn procedure_name(&self) -> String {
        match self.prog {
            rnfs_nfs3::NFS_PROGRAM => {
                format!(
                    "NFS {}",
                    rnfs_nfs3::procedure_name(self.proc_num).unwrap_or("?")
                )
            }
            rnfs_mount::MOUNT_PROG => format!("MOUNT proc {}", self.proc_num),
            rnfs_portmap::PMAP_PROG => format!("PORTMAP proc {}", self.proc_num),
            p => format!("program {p} proc {}", self.proc_num),
        }
    }
}

/// All live connections.
pub struct Registry {
    conns: TrackedMutex<Vec<Weak<Connection>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            conns: TrackedMutex::new("registry.connections", Vec::new()),
        }
    }
}

impl Registry {
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
            slots: (0..slots.max(1)).map(|_| Slot::default()).collect(),
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

    /// Asks the TCP connection idle the longest, with nothing in flight, to close. Returns its
    /// peer, or `None` when every connection is busy.
    pub fn evict_idlest(&self) -> Option<SocketAddr> {
        let victim = self
            .connections()
            .into_iter()
            .filter(|c| c.transport == Transport::Tcp && c.is_idle())
            .min_by_key(|c| c.last_active_ms.load(Ordering::Relaxed))?;
        // notify_one stores a permit, so a reader not waiting right now still sees it.
        victim.close.notify_one();
        Some(victim.peer)
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

    #[test]
    fn track_and_finish() {
        let reg = Registry::default();
        let peer: SocketAddr = "127.0.0.1:999".parse().unwrap();
        let conn = reg.open(7, peer, Transport::Tcp, 2, 100);
        let mut rec = vec![0u8; 24];
        rec[..4].copy_from_slice(&0xabcdu32.to_be_bytes());
        rec[12..16].copy_from_slice(&100003u32.to_be_bytes());
        rec[20..24].copy_from_slice(&6u32.to_be_bytes());
        let a = conn.track(&rec, 150).unwrap();
        let b = conn.track(&[1, 2], 160).unwrap();
        assert!(conn.track(&rec, 170).is_none(), "two slots only");
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
        let t = conn.track(&call, 200).unwrap();
        assert_eq!(reg.requests()[0].file_handle, vec![7u8; 37]);
        drop(t);
        assert_eq!(conn.requests_served.load(Ordering::Relaxed), 3);
        drop(conn);
        assert!(reg.connections().is_empty());
    }
}
