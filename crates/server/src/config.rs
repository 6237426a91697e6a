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
//!
//! [[export.client]]
//! match = "192.168.1.0/24"  # CIDR, address, host name, or "*"
//! access = "rw"             # or "ro"
//! root_squash = true
//! all_squash = false
//! anonuid = 65534
//! anongid = 65534
//! secure = false            # require a source port below 1024
//! ```
//!
//! Rules are tried in order; the first whose `match` covers the client's address applies. A client
//! no rule covers is refused (MNT3ERR_ACCES at MOUNT, NFS3ERR_ACCES on every NFS call).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use serde::Deserialize;

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
    #[error("export {0:?}: {1}")]
    Export(String, String),
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
    /// The file this configuration was loaded from (what `rnfsd ctl exports reload` re-reads).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// One exported directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    pub path: PathBuf,
    pub mount_path: Option<String>,
    pub id: Option<u32>,
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
    /// At SIGTERM, how long requests in flight get to finish before the server exits anyway.
    pub shutdown_grace_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            record_bytes_max: rnfs_oncrpc::record::RECORD_BYTES_MAX_DEFAULT,
            record_fragments_max: rnfs_oncrpc::record::RECORD_FRAGMENTS_MAX_DEFAULT,
            connections_max: 1024,
            connection_requests_max: 32,
            fs_workers_max: 32,
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
            shutdown_grace_ms: 5000,
        }
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
        config.source = Some(std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned()));
        Ok(config)
    }

    /// The configuration `rnfsd serve DIR` uses: DIR exported read-write to loopback clients with
    /// root squash.
    pub fn single_export(dir: PathBuf) -> Config {
        let loopback = |m: &str| ClientRuleConfig {
            matches: m.to_owned(),
            access: Access::Rw,
            root_squash: true,
            all_squash: false,
            anonuid: NOBODY,
            anongid: NOBODY,
            secure: false,
        };
        Config {
            listen: Vec::new(),
            state_dir: None,
            exports: vec![ExportConfig {
                path: dir,
                mount_path: None,
                id: None,
                clients: vec![loopback("127.0.0.0/8"), loopback("::1/128")],
            }],
            limits: Limits::default(),
            metrics: None,
            source: None,
        }
    }
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
            return Ok(ClientMatch::Cidr(addr, len));
        }
        if let Ok(addr) = s.parse::<IpAddr>() {
            let len = if addr.is_ipv4() { 32 } else { 128 };
            return Ok(ClientMatch::Cidr(addr, len));
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

    /// Whether `ip` is covered. IPv4-mapped IPv6 addresses are compared as IPv4.
    pub fn covers(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        match self {
            ClientMatch::Any => true,
            ClientMatch::Cidr(net, len) => prefix_matches(*net, *len, ip),
            ClientMatch::Host(_, addrs) => addrs.iter().any(|a| canonical_ip(*a) == ip),
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

/// `::ffff:a.b.c.d` is the IPv4 client a.b.c.d talking to a dual-stack socket.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn prefix_matches(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    match (canonical_ip(net), ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
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
}
