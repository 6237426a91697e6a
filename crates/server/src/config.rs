//! The server's configuration: listeners, limits, and the export table with per-client rules.
//!
//! A TOML file describes everything; `rnfsd serve DIR` builds the same structure from embedded
//! defaults (one export, loopback clients, read-write, root squash). Example:
//!
//! ```toml
//! listen = ["127.0.0.1:2049", "[::1]:2049"]
//! state_dir = "/var/lib/rnfsd"
//!
//! [[export]]
//! path = "/srv/data"        # local directory
//! mount_path = "/data"      # what clients mount (default: same as path)
//! id = 1                    # stable export id, part of every file handle (default: derived)
//! backend = "local"         # what serves it (default "local"; see `crate::backends::KINDS`)
//!
//! [[export.client]]
//! match = "192.168.1.0/24"  # CIDR, address, host name, or "*"
//! access = "rw"             # or "ro"
//! root_squash = true
//! all_squash = false
//! anonuid = 65534
//! anongid = 65534
//! secure = false            # require a source port below 1024
//!
//! [[export]]                # a directory of a CephFS file system
//! backend = "ceph"
//! path = "/shared"          # the directory inside CephFS (also the default mount_path)
//! ceph_conf = "/etc/ceph/ceph.conf"  # the default
//! ceph_client_id = "admin"  # the default
//! ceph_fs = "cephfs"        # default: the cluster's default file system
//!
//! [[export.client]]
//! match = "10.0.0.0/8"
//!
//! [cluster]                 # heads of one CephFS sharing their grace period (optional)
//! node_id = "head-a"        # unique per head, the same across its restarts
//! ceph_conf = "/etc/ceph/ceph.conf"  # the default
//! ceph_client_id = "admin"  # the default
//! pool = "rnfsd"            # RADOS pool of the grace database (created if missing)
//! namespace = ""            # RADOS namespace in it
//! poll_ms = 1000            # how often the database is read and renewed (100 to 10000)
//! evict_gone_heads = true   # evict dead heads' CephFS sessions (see crate::cluster)
//! ```
//!
//! Rules are tried in order; the first whose `match` covers the client's address applies. A client
//! no rule covers is refused (MNT3ERR_ACCES at MOUNT, NFS3ERR_ACCES on every NFS call).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use serde::Deserialize;

mod backend_keys;
mod cluster;
mod exports_file;

pub use backend_keys::{ceph_config, check_export};
pub use cluster::ClusterConfig;

/// `//a//b/` → `/a/b`; the root stays `/` (mount paths, and paths inside CephFS).
pub fn normalize_mount_path(p: &str) -> String {
    let parts: Vec<&str> = p
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

pub use exports_file::{
    apply_options, linux_default_rule, parse_exports, ExportsError, EXPORTS_CLIENTS_MAX,
    EXPORTS_ENTRY_BYTES_MAX, EXPORTS_FILE_BYTES_MAX, EXPORTS_LINE_BYTES_MAX,
};

/// Why a configuration is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("invalid client match {0:?}: expected CIDR, address, host name or \"*\"")]
    BadMatch(String),
    #[error(
        "invalid client match {0:?}: an IPv4-mapped network (::ffff:a.b.c.d/n) needs n of at \
         least 96; write the IPv4 network instead"
    )]
    MappedPrefix(String),
    #[error("export {0:?}: {1}")]
    Export(String, String),
    #[error("{path}: {at}")]
    Exports { path: PathBuf, at: ExportsError },
    #[error("-o {options}: {why}")]
    Options { options: String, why: String },
    #[error("nfs4_domain = {0:?}: {1}")]
    Domain(String, &'static str),
    #[error("[cluster]: {0}")]
    Cluster(String),
    #[error("limits.{key} = {value}: {why}")]
    Limit {
        key: &'static str,
        value: u64,
        why: String,
    },
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub listen: Vec<SocketAddr>,
    pub state_dir: Option<PathBuf>,
    #[serde(default, rename = "export")]
    pub exports: Vec<ExportConfig>,
    #[serde(default)]
    pub limits: Limits,
    /// Prometheus metrics over HTTP on this address (`GET /metrics`); off when absent.
    #[serde(default)]
    pub metrics: Option<SocketAddr>,
    /// NFSv4 `owner`/`owner_group` as `name@nfs4_domain` (from /etc/passwd and /etc/group);
    /// numeric ids when absent (see `crate::idmap`).
    #[serde(default)]
    pub nfs4_domain: Option<String>,
    /// NFSv4 read and write delegations (RFC 8881 §10): granted to clients with a working back channel when
    /// nothing conflicts, recalled when another client, an NLM client, an NFSv3 client or a
    /// local process (seen through a file lease) needs the file.
    #[serde(default = "default_true")]
    pub nfs4_delegations: bool,
    /// Heads sharing a grace period with the other heads of one CephFS (`[cluster]`); none
    /// when absent.
    #[serde(default)]
    pub cluster: Option<ClusterConfig>,
    /// The file this configuration was loaded from (what `rnfsd ctl exports reload` re-reads).
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// How `source` is written.
    #[serde(skip)]
    pub source_format: SourceFormat,
}

/// How a configuration file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceFormat {
    /// rnfsd's TOML (`--config`).
    #[default]
    Toml,
    /// Linux's `/etc/exports` syntax, exports only (`--exports`).
    Exports,
}

/// One exported directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    pub path: PathBuf,
    pub mount_path: Option<String>,
    pub id: Option<u32>,
    /// Which backend serves it: `"local"` (the default; the kinds are listed in `backends::KINDS`).
    #[serde(default = "default_backend")]
    pub backend: String,
    /// `backend = "ceph"` only: the cluster's configuration file (default
    /// `/etc/ceph/ceph.conf`).
    pub ceph_conf: Option<PathBuf>,
    /// `backend = "ceph"` only: the cephx client id, without `client.` (default `admin`).
    pub ceph_client_id: Option<String>,
    /// `backend = "ceph"` only: the file system (default: the cluster's default one).
    pub ceph_fs: Option<String>,
    #[serde(default, rename = "client")]
    pub clients: Vec<ClientRuleConfig>,
}

/// A client rule as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRuleConfig {
    #[serde(rename = "match")]
    pub matches: String,
    #[serde(default)]
    pub access: Access,
    #[serde(default = "yes")]
    pub root_squash: bool,
    #[serde(default)]
    pub all_squash: bool,
    #[serde(default = "nobody")]
    pub anonuid: u32,
    #[serde(default = "nobody")]
    pub anongid: u32,
    #[serde(default)]
    pub secure: bool,
}

fn yes() -> bool {
    true
}
fn default_true() -> bool {
    true
}

fn default_backend() -> String {
    crate::backends::DEFAULT_KIND.to_owned()
}
fn nobody() -> u32 {
    NOBODY
}

/// The uid and gid of "nobody", the default anonymous identity.
pub const NOBODY: u32 = 65534;

/// Read-only or read-write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Ro,
    #[default]
    Rw,
}

/// Named limits; each has a default sized for a small server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest RPC record accepted over TCP.
    pub record_bytes_max: usize,
    /// Most fragments in one record.
    pub record_fragments_max: usize,
    /// Connections open at once, all clients together.
    pub connections_max: usize,
    /// Requests being processed at once on one connection; past it we stop reading.
    pub connection_requests_max: usize,
    /// File-system calls running at once (the worker pool).
    pub fs_workers_max: usize,
    /// Requests busy in one export's backend at once (at most `fs_workers_max`). Past it, a
    /// request for that export waits (bounded) for one to finish while the backend is moving,
    /// and is answered NFS3ERR_JUKEBOX / NFS4ERR_DELAY when it is stuck, so a backend that stops
    /// answering (a hung Ceph daemon, a dead disk) can never hold every worker and starve the
    /// other exports (see `backend_gate`).
    pub export_fs_workers_max: usize,
    /// Largest READ/WRITE transfer and preferred size advertised in FSINFO.
    pub transfer_bytes_max: u32,
    /// READ replies in flight at once, all connections together (each holds a loan slot; a
    /// spliced one also a pipe of up to `transfer_bytes_max`). Past it, READs are served from a
    /// plain buffer without a slot, and counted as `exhausted`.
    pub loans_max: usize,
    /// READs of at least this many bytes over TCP are sent zero-copy (spliced); smaller ones are
    /// copied once through a buffer, which is cheaper for them. 0 disables zero-copy.
    pub zero_copy_min_bytes: u32,
    /// How long a request, a loan or the runtime's heartbeat may stall before the watchdog
    /// reports it.
    pub stall_bound_ms: u64,
    /// Completed non-idempotent calls remembered for retransmissions, and their reply bytes.
    pub drc_entries_max: usize,
    pub drc_bytes_max: usize,
    /// Connections from one client address at once.
    pub client_connections_max: usize,
    /// Requests being processed at once, all connections and UDP together. Past it, connections
    /// wait (we stop reading them) and UDP datagrams are dropped (clients retransmit).
    pub requests_in_flight_max: usize,
    /// A connection with nothing in flight and nothing received for this long is closed.
    pub idle_timeout_ms: u64,
    /// Time allowed to receive one whole record once it has begun (slow senders are cut off).
    pub record_receive_ms_max: u64,
    /// Time allowed for one reply's send to make progress; a client that stops reading its
    /// replies is disconnected after it, which returns the replies' loans.
    pub send_stall_ms_max: u64,
    /// Bytes of replies being built or waiting to be sent, all connections together (zero-copy
    /// READ data included). Past it, connections holding unsent replies are not read until theirs
    /// are sent, others wait their turn, and connections whose replies have not moved for a while
    /// are closed to make room.
    pub reply_bytes_max: usize,
    /// At SIGTERM, how long requests in flight get to finish before the server exits anyway.
    pub shutdown_grace_ms: u64,
    /// Byte-range locks (NLM) held by one client, on one file, and in all; past each, LOCK gets
    /// NLM4_DENIED_NOLOCKS. A file's limit above one client's keeps a single client from using
    /// up a file (others can still lock it).
    pub locks_per_client_max: usize,
    pub locks_per_file_max: usize,
    pub locks_max: usize,
    /// Blocked lock requests queued, all files together (64 at most per file).
    pub lock_waiters_max: usize,
    /// After a restart, how long only lock reclaims are granted (NLM4_DENIED_GRACE_PERIOD). Only
    /// when clients held locks before the restart (NSM records in the state directory).
    pub lock_grace_ms: u64,
    /// Calls to a client (GRANTED, SM_NOTIFY): attempts, and how long each waits for an answer.
    pub lock_callback_attempts_max: u32,
    pub lock_callback_timeout_ms: u64,
    /// An NFSv4 client's lease (the `lease_time` attribute): renewed by every SEQUENCE; a client
    /// silent for longer becomes a courtesy client (state kept until another client needs it).
    pub nfs4_lease_ms: u64,
    /// NFSv4 delegations held by all clients, and by one client. Each holds one open file (its
    /// lease), so the whole is also kept under a quarter of the process's open-file limit.
    pub nfs4_delegations_max: usize,
    pub nfs4_delegations_per_client_max: usize,
    /// Largest extended attribute value SETXATTR stores and GETXATTR returns (NFSv4.2, RFC
    /// 8276); past it, NFS4ERR_XATTR2BIG. At most Linux's own 64 KiB.
    pub xattr_value_bytes_max: u32,
    /// Largest LISTXATTRS reply (names, cookie and flags); a client asking for more gets this
    /// much and continues from the cookie.
    pub xattr_list_bytes_max: u32,
    /// NFSv4.2 COPY (RFC 7862 §15.2): a copy of at most this many bytes runs within the request
    /// (synchronously); so does one the client asks to be synchronous, shortened to this many
    /// bytes (the client asks again for the rest), and so does every copy of a client whose back
    /// channel cannot carry CB_OFFLOAD.
    pub copy_sync_bytes_max: u64,
    /// Asynchronous copies running at once (each on a thread of its own, off the worker pool),
    /// all clients together, and for one client; past either, COPY gets NFS4ERR_DELAY.
    pub copy_jobs_max: usize,
    pub copy_jobs_per_client_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            record_bytes_max: rnfs_oncrpc::record::RECORD_BYTES_MAX_DEFAULT,
            record_fragments_max: rnfs_oncrpc::record::RECORD_FRAGMENTS_MAX_DEFAULT,
            connections_max: 1024,
            connection_requests_max: 32,
            fs_workers_max: 32,
            export_fs_workers_max: 24,
            transfer_bytes_max: 1 << 20,
            loans_max: 256,
            zero_copy_min_bytes: 32 << 10,
            stall_bound_ms: 5000,
            drc_entries_max: 8192,
            drc_bytes_max: 16 << 20,
            client_connections_max: 64,
            requests_in_flight_max: 1024,
            idle_timeout_ms: 6 * 60 * 1000,
            record_receive_ms_max: 30_000,
            send_stall_ms_max: 60_000,
            reply_bytes_max: 128 << 20,
            shutdown_grace_ms: 5000,
            locks_per_client_max: 10_000,
            locks_per_file_max: 20_000,
            locks_max: 100_000,
            lock_waiters_max: 4096,
            lock_grace_ms: 90_000,
            lock_callback_attempts_max: 5,
            lock_callback_timeout_ms: 2000,
            nfs4_lease_ms: 90_000,
            nfs4_delegations_max: 4096,
            nfs4_delegations_per_client_max: 1024,
            xattr_value_bytes_max: XATTR_VALUE_BYTES_MOST,
            xattr_list_bytes_max: 64 << 10,
            copy_sync_bytes_max: 4 << 20,
            copy_jobs_max: 16,
            copy_jobs_per_client_max: 4,
        }
    }
}

/// Smallest READ/WRITE transfer FSINFO may advertise: RFC 1813 §3.3.19 expects clients to handle
/// any size, but one page is the least that keeps a client's I/O sane.
pub const TRANSFER_BYTES_MIN: u32 = 4096;
/// Room a record needs around the largest WRITE's data: RPC header, credential (at most 400 bytes
/// of body and 400 of verifier, RFC 5531 §8.2), handle, offsets and the record marker.
pub const RECORD_HEADROOM_BYTES: usize = 4096;
/// Reply memory reserved for a call whose reply carries no bulk data (every procedure but READ,
/// READDIR and READDIRPLUS): enough for READLINK's longest path with attributes.
pub const REPLY_SMALL_BYTES: usize = 8 << 10;
/// Linux's largest extended attribute value (`XATTR_SIZE_MAX`): `xattr_value_bytes_max` can be
/// no larger.
pub const XATTR_VALUE_BYTES_MOST: u32 = 64 << 10;
/// Bounds of `xattr_list_bytes_max`: room for one longest name, and Linux's largest list.
pub const XATTR_LIST_BYTES_LEAST: u32 = 512;
pub const XATTR_LIST_BYTES_MOST: u32 = 1 << 20;

/// Largest READ/READDIR payload of a UDP reply, whatever `transfer_bytes_max` says: a reply is
/// one datagram and needs room for its RPC and NFS headers.
pub const UDP_PAYLOAD_BYTES_MAX: u32 = 32 << 10;

impl Limits {
    /// Checks every limit on its own and the relations between them, naming the key at fault.
    /// Run when a configuration is loaded (at start and at `exports reload`) and by
    /// [`crate::serve_with`], so no limit reaches the server unchecked: a zero worker count would
    /// hang every request, a zero per-connection count would stop every connection.
    pub fn check(&self) -> Result<(), ConfigError> {
        const MIB: u64 = 1 << 20;
        const HOUR_MS: u64 = 3_600_000;
        // (key, value, least, most): the upper bounds keep a typo from allocating without bound
        // (slots, channels and threads are sized from these at start).
        let transfer_most = rnfs_nfs3::WRITE_DATA_MAX_BYTES.min(rnfs_nfs3::READ_DATA_MAX_BYTES);
        #[rustfmt::skip]
        let ranges: [(&'static str, u64, u64, u64); 34] = [
            ("record_bytes_max", self.record_bytes_max as u64, 8192, 64 * MIB),
            ("record_fragments_max", self.record_fragments_max as u64, 1, 65_536),
            ("connections_max", self.connections_max as u64, 1, 1 << 20),
            ("connection_requests_max", self.connection_requests_max as u64, 1, 4096),
            ("fs_workers_max", self.fs_workers_max as u64, 1, 1024),
            ("export_fs_workers_max", self.export_fs_workers_max as u64, 1, 1024),
            ("transfer_bytes_max", u64::from(self.transfer_bytes_max),
                u64::from(TRANSFER_BYTES_MIN), transfer_most as u64),
            ("loans_max", self.loans_max as u64, 1, 65_536),
            ("zero_copy_min_bytes", u64::from(self.zero_copy_min_bytes), 0, u64::from(u32::MAX)),
            ("stall_bound_ms", self.stall_bound_ms, 100, HOUR_MS),
            ("drc_entries_max", self.drc_entries_max as u64, 1, 1 << 22),
            ("drc_bytes_max", self.drc_bytes_max as u64, 64 << 10, 4096 * MIB),
            ("client_connections_max", self.client_connections_max as u64, 1, 1 << 20),
            ("requests_in_flight_max", self.requests_in_flight_max as u64, 1, 1 << 20),
            ("idle_timeout_ms", self.idle_timeout_ms, 1000, 24 * HOUR_MS),
            ("record_receive_ms_max", self.record_receive_ms_max, 100, HOUR_MS),
            ("send_stall_ms_max", self.send_stall_ms_max, 100, HOUR_MS),
            ("shutdown_grace_ms", self.shutdown_grace_ms, 0, HOUR_MS),
            ("reply_bytes_max", self.reply_bytes_max as u64, 64 << 10, 64 * 1024 * MIB),
            ("locks_per_client_max", self.locks_per_client_max as u64, 1, 1 << 24),
            ("locks_per_file_max", self.locks_per_file_max as u64, 1, 1 << 24),
            ("locks_max", self.locks_max as u64, 1, 1 << 24),
            ("lock_waiters_max", self.lock_waiters_max as u64, 1, 1 << 20),
            ("lock_grace_ms", self.lock_grace_ms, 0, HOUR_MS),
            ("lock_callback_attempts_max", u64::from(self.lock_callback_attempts_max), 1, 100),
            ("lock_callback_timeout_ms", self.lock_callback_timeout_ms, 10, 60_000),
            ("nfs4_lease_ms", self.nfs4_lease_ms, 1000, HOUR_MS),
            ("nfs4_delegations_max", self.nfs4_delegations_max as u64, 1, 131_072),
            (
                "nfs4_delegations_per_client_max",
                self.nfs4_delegations_per_client_max as u64,
                1,
                16_384,
            ),
            ("xattr_value_bytes_max", u64::from(self.xattr_value_bytes_max), 1,
                u64::from(XATTR_VALUE_BYTES_MOST)),
            ("xattr_list_bytes_max", u64::from(self.xattr_list_bytes_max),
                u64::from(XATTR_LIST_BYTES_LEAST), u64::from(XATTR_LIST_BYTES_MOST)),
            ("copy_sync_bytes_max", self.copy_sync_bytes_max, 64 << 10, 1024 * MIB),
            ("copy_jobs_max", self.copy_jobs_max as u64, 1, 256),
            ("copy_jobs_per_client_max", self.copy_jobs_per_client_max as u64, 1, 256),
        ];
        for (key, value, least, most) in ranges {
            if !(least..=most).contains(&value) {
                return Err(ConfigError::Limit {
                    key,
                    value,
                    why: format!("must be between {least} and {most}"),
                });
            }
        }
        self.check_relations()
    }

    /// Largest READ/READDIR payload of a UDP reply: one datagram, with room for the RPC and NFS
    /// headers.
    pub fn udp_payload_bytes_max(&self) -> u32 {
        self.transfer_bytes_max.min(UDP_PAYLOAD_BYTES_MAX)
    }

    /// The lock manager's limits: the named ones above, the rest sized from them.
    pub fn lock_limits(&self) -> rnfs_locks::Limits {
        let d = rnfs_locks::Limits::default();
        rnfs_locks::Limits {
            locks_per_client_max: self.locks_per_client_max,
            locks_per_file_max: self.locks_per_file_max,
            locks_total_max: self.locks_max,
            waiters_total_max: self.lock_waiters_max,
            waiters_per_file_max: d.waiters_per_file_max.min(self.lock_waiters_max),
            // Each lock, share or waiter has at most one owner, client and file of its own.
            owners_max: self.locks_max.max(d.owners_max),
            files_max: self.locks_max.max(d.files_max),
            ..d
        }
    }

    /// The NFSv4 state machine's limits: its defaults with this lease, and a grace period at
    /// least one lease long (a client needs a lease to notice the restart and reclaim).
    pub fn nfs4_limits(&self) -> rnfs_nfs4state::Limits {
        let d = rnfs_nfs4state::Limits::default();
        rnfs_nfs4state::Limits {
            lease_ms: self.nfs4_lease_ms,
            grace_ms: self.lock_grace_ms.max(self.nfs4_lease_ms),
            delegations_max: self.nfs4_delegations_max,
            delegations_per_client_max: self.nfs4_delegations_per_client_max,
            ..d
        }
    }

    /// The relations between limits that the server relies on.
    fn check_relations(&self) -> Result<(), ConfigError> {
        if let Err(e) = self.lock_limits().validate() {
            return Err(ConfigError::Limit {
                key: "locks_max",
                value: self.locks_max as u64,
                why: format!("lock limits do not fit together: {e}"),
            });
        }
        if let Err(e) = self.nfs4_limits().validate() {
            return Err(ConfigError::Limit {
                key: "nfs4_delegations_per_client_max",
                value: self.nfs4_delegations_per_client_max as u64,
                why: format!("NFSv4 limits do not fit together: {e}"),
            });
        }
        if self.copy_jobs_per_client_max > self.copy_jobs_max {
            return Err(ConfigError::Limit {
                key: "copy_jobs_per_client_max",
                value: self.copy_jobs_per_client_max as u64,
                why: format!("must be at most copy_jobs_max = {}", self.copy_jobs_max),
            });
        }
        let record_least = self.transfer_bytes_max as usize + RECORD_HEADROOM_BYTES;
        if self.record_bytes_max < record_least {
            return Err(ConfigError::Limit {
                key: "record_bytes_max",
                value: self.record_bytes_max as u64,
                why: format!(
                    "must be at least transfer_bytes_max + {RECORD_HEADROOM_BYTES} = {record_least}, \
                     or the largest WRITE FSINFO advertises could not arrive"
                ),
            });
        }
        // SETXATTR carries a whole value: the largest one must fit in a record.
        let xattr_record_least = self.xattr_value_bytes_max as usize + RECORD_HEADROOM_BYTES;
        if self.record_bytes_max < xattr_record_least {
            return Err(ConfigError::Limit {
                key: "record_bytes_max",
                value: self.record_bytes_max as u64,
                why: format!(
                    "must be at least xattr_value_bytes_max + {RECORD_HEADROOM_BYTES} = \
                     {xattr_record_least}, or the largest SETXATTR could not arrive"
                ),
            });
        }
        // Every reply is charged before it is built: the largest one a call can ask for must fit,
        // or that call could never run (see the server's reply memory). A UDP reply is charged
        // twice (it is copied into its datagram).
        let small = REPLY_SMALL_BYTES;
        let udp_payload = self.udp_payload_bytes_max() as usize;
        let xattr_reply = self.xattr_value_bytes_max.max(self.xattr_list_bytes_max) as usize;
        let reply_least = (self.transfer_bytes_max as usize + small)
            .max(2 * (udp_payload + small))
            .max(xattr_reply + small);
        if self.reply_bytes_max < reply_least {
            return Err(ConfigError::Limit {
                key: "reply_bytes_max",
                value: self.reply_bytes_max as u64,
                why: format!(
                    "must be at least {reply_least} (the largest READ reply transfer_bytes_max \
                     allows, over TCP or UDP, or GETXATTR/LISTXATTRS reply the xattr limits \
                     allow), or that call could never be answered"
                ),
            });
        }
        Ok(())
    }
}

impl Config {
    /// Reads and parses a TOML configuration file.
    pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config: Config = toml::from_str(&text)?;
        config.limits.check()?;
        config.check_backends()?;
        config.check_domain()?;
        if let Some(c) = &config.cluster {
            c.check()?;
        }
        config.source = Some(std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned()));
        Ok(config)
    }

    /// Reads `path` as written in `format`: a whole TOML configuration, or an exports(5) file
    /// with every other setting at its default (what `exports reload` re-reads).
    pub fn load_as(path: &std::path::Path, format: SourceFormat) -> Result<Config, ConfigError> {
        match format {
            SourceFormat::Toml => Config::load(path),
            SourceFormat::Exports => Config::empty().with_exports_file(path),
        }
    }

    /// This configuration serving the exports of the exports(5) file `path` instead of its own
    /// (which must be none: two export tables would be ambiguous).
    pub fn with_exports_file(mut self, path: &std::path::Path) -> Result<Config, ConfigError> {
        if !self.exports.is_empty() {
            return Err(ConfigError::Export(
                path.display().to_string(),
                "the --config file has [[export]] tables too; keep the exports in one place".into(),
            ));
        }
        self.exports = read_exports_file(path)?;
        if self.exports.is_empty() {
            return Err(ConfigError::Export(
                path.display().to_string(),
                "no exports in it".into(),
            ));
        }
        self.check_backends()?;
        self.source = Some(std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned()));
        self.source_format = SourceFormat::Exports;
        Ok(self)
    }

    /// `nfs4_domain` is a DNS-like name: 1 to 255 bytes of letters, digits, '-', '.' and '_'.
    pub fn check_domain(&self) -> Result<(), ConfigError> {
        let Some(d) = &self.nfs4_domain else {
            return Ok(());
        };
        let ok = (1..=255).contains(&d.len())
            && d.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
        if !ok {
            return Err(ConfigError::Domain(
                d.clone(),
                "must be 1 to 255 letters, digits, '-', '.' or '_' (e.g. \"example.com\")",
            ));
        }
        Ok(())
    }

    /// Every export names a backend this server has (else the error names the export and the
    /// backends there are), and has only the settings of that backend.
    pub fn check_backends(&self) -> Result<(), ConfigError> {
        for e in &self.exports {
            check_export(e)
                .map_err(|msg| ConfigError::Export(e.path.display().to_string(), msg))?;
        }
        Ok(())
    }

    /// The configuration `rnfsd serve DIR` uses: DIR exported read-write to loopback clients with
    /// root squash.
    pub fn single_export(dir: PathBuf) -> Config {
        let clients = LOOPBACK.iter().map(|m| single_export_rule(m)).collect();
        Config::single_export_to(dir, clients)
    }

    /// `rnfsd serve DIR [--client MATCH]... [-o OPTIONS]`: DIR exported to `clients` (loopback
    /// when empty), each rule `serve DIR`'s defaults changed by the exports(5) `options`.
    pub fn single_export_with(
        dir: PathBuf,
        clients: &[String],
        options: Option<&str>,
    ) -> Result<Config, ConfigError> {
        let matches: Vec<&str> = if clients.is_empty() {
            LOOPBACK.to_vec()
        } else {
            clients.iter().map(String::as_str).collect()
        };
        let mut id = None;
        let mut rules = Vec::new();
        for m in matches {
            ClientMatch::parse(m)?;
            let (rule, fsid) = apply_options(&single_export_rule(m), options.unwrap_or(""))
                .map_err(|why| ConfigError::Options {
                    options: options.unwrap_or("").to_owned(),
                    why,
                })?;
            id = fsid;
            rules.push(rule);
        }
        let mut config = Config::single_export_to(dir, rules);
        if let Some(e) = config.exports.first_mut() {
            e.id = id;
        }
        Ok(config)
    }

    fn single_export_to(dir: PathBuf, clients: Vec<ClientRuleConfig>) -> Config {
        Config {
            exports: vec![ExportConfig {
                path: dir,
                mount_path: None,
                id: None,
                backend: default_backend(),
                ceph_conf: None,
                ceph_client_id: None,
                ceph_fs: None,
                clients,
            }],
            ..Config::empty()
        }
    }

    /// No exports, every setting at its default.
    pub fn empty() -> Config {
        Config {
            listen: Vec::new(),
            state_dir: None,
            exports: Vec::new(),
            limits: Limits::default(),
            metrics: None,
            nfs4_domain: None,
            nfs4_delegations: true,
            cluster: None,
            source: None,
            source_format: SourceFormat::Toml,
        }
    }
}

/// The clients `rnfsd serve DIR` serves by default.
const LOOPBACK: [&str; 2] = ["127.0.0.0/8", "::1/128"];

/// `rnfsd serve DIR`'s rule for `matches`: read-write, root squash, any source port.
fn single_export_rule(matches: &str) -> ClientRuleConfig {
    ClientRuleConfig {
        matches: matches.to_owned(),
        access: Access::Rw,
        root_squash: true,
        all_squash: false,
        anonuid: NOBODY,
        anongid: NOBODY,
        secure: false,
    }
}

/// Reads and parses an exports(5) file, at most [`EXPORTS_FILE_BYTES_MAX`] of it, and checks
/// every client match (host names are resolved here, as for the TOML rules).
pub fn read_exports_file(path: &std::path::Path) -> Result<Vec<ExportConfig>, ConfigError> {
    use std::io::Read;
    let read_err = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(read_err)?
        .take(EXPORTS_FILE_BYTES_MAX as u64 + 1)
        .read_to_string(&mut text)
        .map_err(read_err)?;
    let exports = parse_exports(&text).map_err(|at| ConfigError::Exports {
        path: path.to_owned(),
        at,
    })?;
    for e in &exports {
        for c in &e.clients {
            ClientMatch::parse(&c.matches)?;
        }
    }
    Ok(exports)
}

/// What a client rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMatch {
    Any,
    /// An address block: network address and prefix length.
    Cidr(IpAddr, u8),
    /// A host name, resolved to these addresses when the table was loaded.
    Host(String, Vec<IpAddr>),
}

impl ClientMatch {
    /// Parses `*`, `a.b.c.d`, `a.b.c.d/n`, `::1`, `fe80::/10` or a host name (resolved now).
    pub fn parse(s: &str) -> Result<ClientMatch, ConfigError> {
        let bad = || ConfigError::BadMatch(s.to_owned());
        if s == "*" {
            return Ok(ClientMatch::Any);
        }
        if let Some((addr, len)) = s.split_once('/') {
            let addr: IpAddr = addr.parse().map_err(|_| bad())?;
            let len: u8 = len.parse().map_err(|_| bad())?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            if len > max {
                return Err(bad());
            }
            return Self::cidr(s, addr, len);
        }
        if let Ok(addr) = s.parse::<IpAddr>() {
            let len = if addr.is_ipv4() { 32 } else { 128 };
            return Self::cidr(s, addr, len);
        }
        if s.is_empty() || s.contains(char::is_whitespace) {
            return Err(bad());
        }
        let addrs = (s, 0u16)
            .to_socket_addrs()
            .map(|it| it.map(|a| a.ip()).collect::<Vec<_>>())
            .unwrap_or_default();
        Ok(ClientMatch::Host(s.to_owned(), addrs))
    }

    /// An address block. An IPv4-mapped IPv6 block (`::ffff:a.b.c.d/n`) becomes the IPv4 block
    /// it names, its length rebased from 96, since clients are compared as IPv4 (see
    /// `IpAddr::to_canonical`); one shorter than 96 would also cover non-IPv4 addresses and is refused.
    fn cidr(s: &str, addr: IpAddr, len: u8) -> Result<ClientMatch, ConfigError> {
        let IpAddr::V6(v6) = addr else {
            return Ok(ClientMatch::Cidr(addr, len));
        };
        match v6.to_ipv4_mapped() {
            None => Ok(ClientMatch::Cidr(addr, len)),
            Some(v4) if len >= MAPPED_PREFIX_BITS => {
                Ok(ClientMatch::Cidr(IpAddr::V4(v4), len - MAPPED_PREFIX_BITS))
            }
            Some(_) => Err(ConfigError::MappedPrefix(s.to_owned())),
        }
    }

    /// Whether `ip` is covered. IPv4-mapped IPv6 addresses are compared as IPv4.
    pub fn covers(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match self {
            ClientMatch::Any => true,
            ClientMatch::Cidr(net, len) => prefix_matches(*net, *len, ip),
            ClientMatch::Host(_, addrs) => addrs.iter().any(|a| a.to_canonical() == ip),
        }
    }
}

impl std::fmt::Display for ClientMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientMatch::Any => write!(f, "*"),
            ClientMatch::Cidr(a, l) => write!(f, "{a}/{l}"),
            ClientMatch::Host(h, _) => write!(f, "{h}"),
        }
    }
}

/// Bits of `::ffff:0:0/96`, the prefix of IPv4-mapped IPv6 addresses (RFC 4291 §2.5.5.2).
const MAPPED_PREFIX_BITS: u8 = 96;

/// Whether `ip` lies in `net/len`. A length longer than the address (which [`ClientMatch::parse`]
/// never makes) matches nothing rather than overflowing a shift.
fn prefix_matches(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    let len = u32::from(len);
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) if len <= 32 => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) if len <= 128 => {
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// A client rule ready for use.
#[derive(Debug, Clone)]
pub struct ClientRule {
    pub matches: ClientMatch,
    pub access: Access,
    pub root_squash: bool,
    pub all_squash: bool,
    pub anonuid: u32,
    pub anongid: u32,
    pub secure: bool,
}

impl ClientRule {
    pub fn from_config(c: &ClientRuleConfig) -> Result<ClientRule, ConfigError> {
        Ok(ClientRule {
            matches: ClientMatch::parse(&c.matches)?,
            access: c.access,
            root_squash: c.root_squash,
            all_squash: c.all_squash,
            anonuid: c.anonuid,
            anongid: c.anongid,
            secure: c.secure,
        })
    }

    /// The identity a caller acts as under this rule (RFC 1813 §4.4; root squash maps uid 0, gid 0
    /// and group 0 to the anonymous identity, all squash maps everyone).
    pub fn squash(&self, uid: u32, gid: u32, groups: &[u32]) -> rnfs_storage::Identity {
        if self.all_squash {
            return rnfs_storage::Identity {
                uid: self.anonuid,
                gid: self.anongid,
                groups: Vec::new(),
            };
        }
        let squash_root = |id: u32, anon: u32| {
            if self.root_squash && id == 0 {
                anon
            } else {
                id
            }
        };
        rnfs_storage::Identity {
            uid: squash_root(uid, self.anonuid),
            gid: squash_root(gid, self.anongid),
            groups: groups
                .iter()
                .map(|g| squash_root(*g, self.anongid))
                .collect(),
        }
    }

    /// The identity of an AUTH_NONE caller.
    pub fn anonymous(&self) -> rnfs_storage::Identity {
        rnfs_storage::Identity {
            uid: self.anonuid,
            gid: self.anongid,
            groups: Vec::new(),
        }
    }

    /// Whether `peer`'s source port satisfies the `secure` option.
    pub fn port_allowed(&self, peer: SocketAddr) -> bool {
        !self.secure || peer.port() < 1024
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_matching() {
        let m = ClientMatch::parse("10.1.0.0/16").unwrap();
        assert!(m.covers("10.1.200.3".parse().unwrap()));
        assert!(!m.covers("10.2.0.1".parse().unwrap()));
        assert!(
            m.covers("::ffff:10.1.0.9".parse().unwrap()),
            "mapped IPv4 counts as IPv4"
        );
        let m = ClientMatch::parse("::1").unwrap();
        assert!(m.covers("::1".parse().unwrap()));
        assert!(!m.covers("127.0.0.1".parse().unwrap()));
        assert!(ClientMatch::parse("0.0.0.0/0")
            .unwrap()
            .covers("8.8.8.8".parse().unwrap()));
        assert!(ClientMatch::parse("*")
            .unwrap()
            .covers("::2".parse().unwrap()));
        assert!(ClientMatch::parse("1.2.3.4/33").is_err());
        assert!(ClientMatch::parse("a b").is_err());
        assert!(ClientMatch::parse("localhost")
            .unwrap()
            .covers("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn ipv4_mapped_networks_become_ipv4() {
        // The whole mapped range is every IPv4 client (it refused 127.0.0.1 before: the prefix
        // length was not rebased from 96).
        let all = ClientMatch::parse("::ffff:0.0.0.0/96").unwrap();
        assert_eq!(all, ClientMatch::Cidr("0.0.0.0".parse().unwrap(), 0));
        assert!(all.covers("127.0.0.1".parse().unwrap()));
        assert!(all.covers("::ffff:10.9.8.7".parse().unwrap()));
        assert!(!all.covers("::1".parse().unwrap()));
        let net = ClientMatch::parse("::ffff:10.1.0.0/112").unwrap();
        assert_eq!(net, ClientMatch::Cidr("10.1.0.0".parse().unwrap(), 16));
        assert!(net.covers("10.1.2.3".parse().unwrap()));
        assert!(!net.covers("10.2.0.1".parse().unwrap()));
        let one = ClientMatch::parse("::ffff:127.0.0.2").unwrap();
        assert!(one.covers("127.0.0.2".parse().unwrap()));
        assert!(!one.covers("127.0.0.3".parse().unwrap()));
        for short in [
            "::ffff:0.0.0.0/95",
            "::ffff:127.0.0.0/64",
            "::ffff:0.0.0.0/0",
        ] {
            let e = ClientMatch::parse(short).unwrap_err();
            assert!(matches!(e, ConfigError::MappedPrefix(_)), "{short}: {e}");
            assert!(e.to_string().contains("at least 96"), "{e}");
        }
    }

    #[test]
    fn lengths_past_the_address_match_nothing() {
        let v4 = "10.0.0.1".parse().unwrap();
        assert!(!prefix_matches(v4, 33, v4));
        assert!(!prefix_matches(v4, 200, v4));
        assert!(prefix_matches(v4, 32, v4));
        let v6 = "::1".parse().unwrap();
        assert!(!prefix_matches(v6, 129, v6));
        assert!(prefix_matches(v6, 0, "fe80::1".parse().unwrap()));
    }

    #[test]
    fn default_limits_pass_their_own_check() {
        let l = Limits::default();
        l.check().unwrap();
        // One client at its lock limit leaves room on the file for others.
        assert!(l.locks_per_file_max > l.locks_per_client_max);
        l.lock_limits().validate().unwrap();
    }

    /// Each limit that used to hang, panic or lie is refused with its key named.
    #[test]
    fn bad_limits_are_refused_naming_the_key() {
        type Spoil = fn(&mut Limits);
        let cases: [(&str, Spoil); 14] = [
            ("fs_workers_max", |l| l.fs_workers_max = 0),
            ("connection_requests_max", |l| l.connection_requests_max = 0),
            ("transfer_bytes_max", |l| l.transfer_bytes_max = 2 << 20),
            ("transfer_bytes_max", |l| l.transfer_bytes_max = 100),
            ("requests_in_flight_max", |l| l.requests_in_flight_max = 0),
            ("record_bytes_max", |l| l.record_bytes_max = 1 << 20),
            ("reply_bytes_max", |l| l.reply_bytes_max = 1 << 20),
            ("xattr_value_bytes_max", |l| l.xattr_value_bytes_max = 0),
            ("xattr_value_bytes_max", |l| {
                l.xattr_value_bytes_max = (64 << 10) + 1
            }),
            ("xattr_list_bytes_max", |l| l.xattr_list_bytes_max = 100),
            ("copy_sync_bytes_max", |l| l.copy_sync_bytes_max = 0),
            ("copy_jobs_max", |l| l.copy_jobs_max = 0),
            // One client may not hold more copies than all clients together.
            ("copy_jobs_per_client_max", |l| {
                l.copy_jobs_per_client_max = 17
            }),
            // A SETXATTR of the largest value must fit a record.
            ("record_bytes_max", |l| {
                l.transfer_bytes_max = 4096;
                l.record_bytes_max = 16 << 10;
            }),
        ];
        for (key, spoil) in cases {
            let mut limits = Limits::default();
            spoil(&mut limits);
            let e = limits.check().unwrap_err();
            assert!(
                matches!(&e, ConfigError::Limit { key: k, .. } if *k == key),
                "{key}: {e}"
            );
            assert!(
                e.to_string().starts_with(&format!("limits.{key} = ")),
                "{e}"
            );
        }
    }

    #[test]
    fn loading_a_file_checks_its_limits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rnfsd.toml");
        std::fs::write(&path, "[limits]\nfs_workers_max = 0\n").unwrap();
        let e = Config::load(&path).unwrap_err();
        assert!(e.to_string().contains("limits.fs_workers_max = 0"), "{e}");
    }

    #[test]
    fn squashing() {
        let c = Config::single_export("/x".into());
        let rule = ClientRule::from_config(&c.exports[0].clients[0]).unwrap();
        let id = rule.squash(0, 0, &[0, 5]);
        assert_eq!(
            (id.uid, id.gid, id.groups),
            (NOBODY, NOBODY, vec![NOBODY, 5])
        );
        let id = rule.squash(1000, 100, &[7]);
        assert_eq!((id.uid, id.gid, id.groups), (1000, 100, vec![7]));
        let all = ClientRule {
            all_squash: true,
            anonuid: 9,
            anongid: 8,
            ..rule
        };
        let id = all.squash(1000, 100, &[7]);
        assert_eq!((id.uid, id.gid, id.groups), (9, 8, vec![]));
    }

    #[test]
    fn parses_file() {
        let c: Config = toml::from_str(
            r#"
            listen = ["127.0.0.1:0"]
            [[export]]
            path = "/srv"
            mount_path = "/data"
            id = 7
            [[export.client]]
            match = "127.0.0.2"
            access = "ro"
            all_squash = true
            [limits]
            connections_max = 10
            "#,
        )
        .unwrap();
        assert_eq!(c.exports[0].id, Some(7));
        assert_eq!(c.exports[0].clients[0].access, Access::Ro);
        assert!(c.exports[0].clients[0].root_squash);
        assert_eq!(c.limits.connections_max, 10);
        assert_eq!(
            c.limits.connection_requests_max,
            Limits::default().connection_requests_max
        );
        assert!(
            toml::from_str::<Config>("bogus = 1").is_err(),
            "unknown keys are refused"
        );
    }

    #[test]
    fn backend_defaults_to_local_and_unknown_ones_are_refused() {
        let parse = |backend: &str| {
            toml::from_str::<Config>(&format!(
                "[[export]]\npath = \"/srv\"\n{backend}\n[[export.client]]\nmatch = \"*\"\n"
            ))
            .unwrap()
        };
        let c = parse("");
        assert_eq!(c.exports[0].backend, "local");
        assert!(c.check_backends().is_ok());
        let c = parse("backend = \"local\"");
        assert_eq!(c.exports[0].backend, "local");
        assert!(c.check_backends().is_ok());
        let e = parse("backend = \"cephfs\"").check_backends().unwrap_err();
        assert!(
            matches!(&e, ConfigError::Export(path, _) if path == "/srv"),
            "names the export: {e}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains("\"cephfs\"") && msg.contains("\"local\""),
            "{msg}"
        );
        // Through `load` too, before any export is opened.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rnfsd.toml");
        std::fs::write(
            &file,
            "[[export]]\npath = \"/nonexistent\"\nbackend = \"cephfs\"\n",
        )
        .unwrap();
        assert!(matches!(
            Config::load(&file),
            Err(ConfigError::Export(path, _)) if path == "/nonexistent"
        ));
    }

    #[test]
    fn ceph_exports_load_and_ceph_keys_on_local_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rnfsd.toml");
        // `path` is inside CephFS: loading never looks for it on this host.
        std::fs::write(
            &file,
            "[[export]]\nbackend = \"ceph\"\npath = \"/not/on/this/disk\"\n\
             ceph_fs = \"cephfs\"\n[[export.client]]\nmatch = \"*\"\n",
        )
        .unwrap();
        let c = Config::load(&file).unwrap();
        assert_eq!(c.exports[0].ceph_fs.as_deref(), Some("cephfs"));
        std::fs::write(
            &file,
            "[[export]]\npath = \"/srv\"\nceph_conf = \"/etc/ceph/ceph.conf\"\n",
        )
        .unwrap();
        let e = Config::load(&file).unwrap_err();
        assert!(
            matches!(&e, ConfigError::Export(path, msg) if path == "/srv" && msg.contains("ceph_conf")),
            "{e}"
        );
    }
}
