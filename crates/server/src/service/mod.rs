//! The RPC service: one record in, one reply out, with no sockets and no clocks.
//!
//! [`Service`] is the state every procedure shares: the export table, the mounts list, the
//! portmapper's registrations, the loan table, the duplicate request cache and the counters, and
//! [`Service::authorize`], which every NFS procedure passes. Routing a record to its procedure is
//! [`crate::program`]'s (`Service::handle_record`), above this module: the handlers take a
//! `&Service`, so the service does not know them. It is synchronous and may block in the storage
//! backend, so the transports run it on the worker pool.
//!
//! Programs served on every listener: portmapper v2 (100000), MOUNT v1–v3 (100005), NLM v4,
//! NSM v1 and NFS v3 (100003), and NFS v4 over TCP. A version we do not serve gets PROG_MISMATCH
//! with the range we do over that transport (3 to 4 over TCP, 3 over UDP).
//!
//! # Locks
//! `exports`, `mounts` and `portmap` are leaf locks: each is taken for a few field reads or writes,
//! never while another is held, never across a call into the backend, and never in async code.

use std::net::SocketAddr;
use std::sync::Arc;

use tracing::{debug, warn};

use rnfs_oncrpc::{AuthStat, Credential};
use rnfs_portmap as pmap;
use rnfs_storage::{FileHandle, VerifiedHandle};
use rnfs_xdr::Opaque;

use crate::call::{Call, PipeResource};
use crate::config::{ClientRule, Limits};
use crate::exports::{normalize_mount_path, Export, ExportTable};
use crate::lockdep::TrackedMutex;

mod mount;
mod portmap;

pub(crate) use mount::MOUNT;
pub use portmap::SocketOwner;
use portmap::{kernel_socket_owner, Registration};
pub(crate) use portmap::{OWN_PROGRAMS, PORTMAP};

/// The ports our own programs are reachable on, for portmapper GETPORT.
#[derive(Debug, Clone, Copy, Default)]
pub struct OwnPorts {
    pub tcp: u16,
    pub udp: u16,
}

/// The whole RPC service.
pub struct Service {
    exports: TrackedMutex<Arc<ExportTable>>,
    /// Every export's backend answers promptly ([`rnfs_storage::Backend::answers_promptly`]):
    /// lone NFS calls may then run where they were read (see `transport::InPlace`).
    exports_prompt: std::sync::atomic::AtomicBool,
    mounts: TrackedMutex<Vec<(String, String)>>,
    portmap: TrackedMutex<Vec<Registration>>,
    socket_owner: SocketOwner,
    /// TCP port in the high 16 bits, UDP port in the low 16.
    own_ports: std::sync::atomic::AtomicU32,
    limits: Limits,
    /// Random per start; see [`Service::write_verifier`].
    write_verifier_base: u64,
    /// Bumped when the export table is replaced, so a backend's error count restarting at zero
    /// cannot bring an old verifier back.
    export_generation: std::sync::atomic::AtomicU64,
    loans: rnfs_loan::LoanTable<PipeResource>,
    pub counters: Counters,
    /// Replies of non-idempotent calls, for retransmissions.
    pub drc: Arc<crate::drc::Drc>,
    /// File locks (NLM now, NFSv4 later) and their mirror in the file system.
    pub(crate) locking: crate::locking::Locking,
    /// NFSv4 clients, sessions and stateids.
    v4: crate::v4state::V4State,
    /// NFSv4 owner strings.
    idmap: crate::idmap::IdMap,
    /// Calls to NFSv4 clients: the dispatcher's queue (see crate::backchannel) and counts.
    callbacks: crate::callbacks::Callbacks,
    /// NFSv4.2 asynchronous copies (COPY, OFFLOAD_*; see crate::copies).
    copies: Arc<crate::copies::CopyJobs>,
    /// The grace period shared with the other heads of a CephFS (`[cluster]`), once joined.
    cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
}

/// Whether every export of `table` answers promptly (see `Service::exports_prompt`).
fn all_prompt(table: &ExportTable) -> bool {
    table.iter().all(|e| e.backend.answers_promptly())
}

/// Monotonic counters the service keeps (metrics and benchmarks read them).
#[derive(Debug, Default)]
pub struct Counters {
    /// READ bytes sent from loaned pages, never copied through user space.
    pub read_bytes_spliced: std::sync::atomic::AtomicU64,
    /// READ bytes read into a user-space buffer (one copy) and sent from it.
    pub read_bytes_buffered: std::sync::atomic::AtomicU64,
    /// Limit events: each is also logged where it happens.
    pub connections_refused_per_client: std::sync::atomic::AtomicU64,
    pub connections_closed_idle: std::sync::atomic::AtomicU64,
    /// Idle connections closed to make room for a new one at the connection limit.
    pub connections_evicted_idle: std::sync::atomic::AtomicU64,
    pub connections_closed_slow_record: std::sync::atomic::AtomicU64,
    pub connections_closed_send_stall: std::sync::atomic::AtomicU64,
    pub connections_closed_bad_record: std::sync::atomic::AtomicU64,
    pub udp_datagrams_dropped: std::sync::atomic::AtomicU64,
    /// Requests run on the thread that read them (see `transport::InPlace`), and on the pool.
    pub requests_in_place: std::sync::atomic::AtomicU64,
    pub requests_pooled: std::sync::atomic::AtomicU64,
    /// Of `requests_in_place`, those the in-place thread read itself while it lingered for its
    /// connection's next call (see `transport::tcp`, "Lingering").
    pub requests_in_place_lingering: std::sync::atomic::AtomicU64,
}

impl Service {
    pub fn new(exports: ExportTable, limits: Limits, write_verifier: [u8; 8]) -> Service {
        Service {
            exports_prompt: std::sync::atomic::AtomicBool::new(all_prompt(&exports)),
            exports: TrackedMutex::new("service.exports", Arc::new(exports)),
            mounts: TrackedMutex::new("service.mounts", Vec::new()),
            portmap: TrackedMutex::new("service.portmap", Vec::new()),
            socket_owner: kernel_socket_owner,
            own_ports: std::sync::atomic::AtomicU32::new(0),
            limits: limits.clone(),
            write_verifier_base: u64::from_be_bytes(write_verifier),
            export_generation: std::sync::atomic::AtomicU64::new(0),
            loans: rnfs_loan::LoanTable::new(limits.loans_max),
            counters: Counters::default(),
            drc: crate::drc::Drc::new(limits.drc_entries_max, limits.drc_bytes_max),
            locking: crate::locking::Locking::new(limits.lock_limits()),
            v4: crate::v4state::V4State::new(0, limits.nfs4_limits()),
            idmap: crate::idmap::IdMap::numeric(),
            callbacks: Default::default(),
            copies: Arc::new(crate::copies::CopyJobs::new(
                [
                    write_verifier[0],
                    write_verifier[1],
                    write_verifier[2],
                    write_verifier[3],
                ],
                limits.copy_jobs_max,
                limits.copy_jobs_per_client_max,
            )),
            cluster: std::sync::OnceLock::new(),
        }
    }

    /// Whether every export answers promptly, so lone NFS calls may run in place.
    pub(crate) fn exports_prompt(&self) -> bool {
        self.exports_prompt
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Replaces how the portmapper learns who owns a caller's socket (tests).
    pub fn with_socket_owner(mut self, socket_owner: SocketOwner) -> Service {
        self.socket_owner = socket_owner;
        self
    }

    /// The state of the service's locks (for stall reports and `rnfsd ctl locks`).
    pub fn lock_infos(&self) -> Vec<crate::lockdep::LockInfo> {
        let [nlm_state, nlm_outbox, nlm_monitored] = self.locking.lock_infos();
        let [v4_state, v4_store] = self.v4.lock_infos();
        vec![
            self.exports.info(),
            self.mounts.info(),
            self.portmap.info(),
            self.drc.lock_info(),
            self.copies.lock_info(),
            nlm_state,
            nlm_outbox,
            nlm_monitored,
            v4_state,
            v4_store,
            self.idmap.lock_info(),
        ]
    }

    /// NFSv4 state (clients, sessions, stateids).
    pub(crate) fn v4(&self) -> &crate::v4state::V4State {
        &self.v4
    }

    /// How NFSv4 owner strings map to ids (before serving starts).
    pub fn set_idmap(&mut self, idmap: crate::idmap::IdMap) {
        self.idmap = idmap;
    }

    pub(crate) fn idmap(&self) -> &crate::idmap::IdMap {
        &self.idmap
    }

    /// A TCP connection closed: NFSv4 sessions unbind it.
    pub fn v4_connection_closed(&self, conn_id: u64) {
        self.v4.with(|s| s.connection_closed(conn_id));
    }

    /// An access to a file by someone other than an NFSv4 client (NFSv3, NLM): recalls the
    /// NFSv4 delegations it conflicts with (a write delegation for a read; any for a write, a
    /// removal, a rename or an attribute change) and answers [`rnfs_storage::Error::Delay`] while
    /// one is still out.
    pub(crate) fn delegations_allow(
        &self,
        now_ms: u64,
        file: &[u8],
        write: bool,
    ) -> Result<(), rnfs_storage::Error> {
        if !self.v4.any_delegations()
            || self
                .v4
                .break_for(&self.callbacks, now_ms, file, None, write)
        {
            return Ok(());
        }
        Err(rnfs_storage::Error::Delay)
    }

    /// [`Service::delegations_allow`] for the file `name` in directory `dir` (REMOVE, RENAME),
    /// which is looked up only while some delegation exists.
    pub(crate) fn delegations_allow_name(
        &self,
        now_ms: u64,
        dir: &Authorized,
        name: &[u8],
    ) -> Result<(), rnfs_storage::Error> {
        if !self.v4.any_delegations() {
            return Ok(());
        }
        match dir.export.backend.lookup(&dir.who, &dir.handle, name) {
            Ok((fh, _)) => self.delegations_allow(now_ms, &fh.to_bytes(), true),
            Err(_) => Ok(()),
        }
    }

    /// NFSv4.2 asynchronous copies.
    pub(crate) fn copies(&self) -> &Arc<crate::copies::CopyJobs> {
        &self.copies
    }

    /// The cluster this head shares its grace period with, if configured and joined.
    pub fn cluster(&self) -> Option<&Arc<crate::cluster::Cluster>> {
        self.cluster.get()
    }

    pub(crate) fn set_cluster(&self, cluster: Arc<crate::cluster::Cluster>) {
        let _ = self.cluster.set(cluster);
    }

    /// Calls to NFSv4 clients (the back channel's queue and counts).
    pub(crate) fn callbacks(&self) -> &crate::callbacks::Callbacks {
        &self.callbacks
    }

    /// The table of READ data on loan.
    pub fn loans(&self) -> &rnfs_loan::LoanTable<PipeResource> {
        &self.loans
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The write verifier (RFC 1813 §3.3.7): random per start, and different again after any
    /// write-back error a backend reports, so clients re-send data they have not seen committed.
    /// It is derived from monotonic counters, so reading it takes no lock.
    pub fn write_verifier(&self) -> [u8; 8] {
        let errors: u64 = self
            .exports()
            .iter()
            .map(|e| e.backend.writeback_errors())
            .sum();
        let generation = self
            .export_generation
            .load(std::sync::atomic::Ordering::Relaxed);
        self.write_verifier_base
            .wrapping_add(errors)
            .wrapping_add(generation << 32)
            .to_be_bytes()
    }

    /// The current export table (a cheap `Arc` clone; the lock is held only for the clone).
    pub fn exports(&self) -> Arc<ExportTable> {
        self.exports.lock().clone()
    }

    /// Replaces the export table; requests already running keep the table they started with.
    pub fn set_exports(&self, table: ExportTable) {
        let prompt = all_prompt(&table);
        // Cleared before a slow export is served, set only after the last one left.
        if !prompt {
            self.exports_prompt
                .store(false, std::sync::atomic::Ordering::Release);
        }
        *self.exports.lock() = Arc::new(table);
        if prompt {
            self.exports_prompt
                .store(true, std::sync::atomic::Ordering::Release);
        }
        self.export_generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn set_own_ports(&self, ports: OwnPorts) {
        let packed = (u32::from(ports.tcp) << 16) | u32::from(ports.udp);
        self.own_ports
            .store(packed, std::sync::atomic::Ordering::Relaxed);
    }

    fn own_ports(&self) -> OwnPorts {
        let packed = self.own_ports.load(std::sync::atomic::Ordering::Relaxed);
        OwnPorts {
            tcp: (packed >> 16) as u16,
            udp: packed as u16,
        }
    }

    /// The export a file handle belongs to, the caller's rule and identity for it, and the handle
    /// verified with the export's key, or why the call must fail. Applied to every NFS
    /// procedure, not only at MOUNT. This is the one place client handles are verified: backends
    /// only ever get the [`VerifiedHandle`] this returns.
    pub fn authorize(&self, call: &Call, fh: FileHandle) -> Result<Authorized, Denied> {
        self.admit(call, fh)?.verify()
    }

    /// [`Service::authorize`] up to the MAC check: the export the handle's prefix names must exist
    /// (else stale), a rule must cover the client, and its port must do. The handle is verified
    /// by `Admitted::verify`; RENAME and LINK admit their second handle and verify it only once
    /// it is known to be of the same export (another export is XDEV whatever its tags).
    /// (The handle is taken by value: it moves into the result, no clone per call.)
    pub fn admit(&self, call: &Call, fh: FileHandle) -> Result<Admitted, Denied> {
        let Some(id) = rnfs_storage::handle::export_id(fh.as_bytes()) else {
            return Err(Denied::BadHandle);
        };
        let table = self.exports();
        let Some(export) = table.by_id(id) else {
            // An export that was removed (or never existed): its handles are stale.
            return Err(Denied::Stale);
        };
        let Some(rule) = export.rule_for(call.peer.ip()) else {
            debug!(peer = %call.peer, export = %export.mount_path, "NFS call refused: no client rule matches");
            return Err(Denied::Access);
        };
        if !rule.port_allowed(call.peer) {
            return Err(Denied::Auth(AuthStat::TooWeak));
        }
        let who = match &call.header.credential {
            Credential::Sys(sys) => rule.squash(sys.uid, sys.gid, &sys.gids),
            Credential::None => rule.anonymous(),
        };
        Ok(Admitted {
            export: export.clone(),
            rule: rule.clone(),
            who,
            raw: fh,
        })
    }
}

/// What [`Service::authorize`] grants.
#[derive(Clone)]
pub struct Authorized {
    pub export: Arc<Export>,
    pub rule: ClientRule,
    pub who: rnfs_storage::Identity,
    /// The call's handle, verified for `export`.
    pub handle: VerifiedHandle,
}

/// A handle whose export and caller [`Service::admit`] accepted, not verified yet.
pub struct Admitted {
    pub export: Arc<Export>,
    pub rule: ClientRule,
    pub who: rnfs_storage::Identity,
    raw: FileHandle,
}

impl Admitted {
    /// The handle as the client sent it.
    pub fn handle(&self) -> &FileHandle {
        &self.raw
    }

    /// Verifies the handle's tags with the export's key: a forged or corrupted handle is
    /// [`Denied::BadHandle`], one of an earlier root of the export (or the retired layout)
    /// [`Denied::Stale`] (see [`rnfs_storage::handle`]).
    pub fn verify(self) -> Result<Authorized, Denied> {
        let handle = self.export.verify_owned(self.raw).map_err(|e| match e {
            rnfs_storage::Error::Stale => Denied::Stale,
            _ => Denied::BadHandle,
        })?;
        Ok(Authorized {
            export: self.export,
            rule: self.rule,
            who: self.who,
            handle,
        })
    }
}

/// Why [`Service::authorize`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    BadHandle,
    Stale,
    Access,
    /// Refused at the RPC level (AUTH_ERROR), e.g. an insecure port on a `secure` export.
    Auth(AuthStat),
}
