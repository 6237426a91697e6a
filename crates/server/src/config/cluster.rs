//! The `[cluster]` table: heads serving one CephFS that share a grace period through a RADOS
//! object (see `crate::cluster`).

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

/// Bounds of `poll_ms`: often enough that a restart is seen within seconds, rarely enough that a
/// dozen heads do not load the cluster.
pub const POLL_MS_MIN: u64 = 100;
pub const POLL_MS_MAX: u64 = 10_000;

/// `[cluster]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This head's name in the grace database: unique among the heads, the same across its
    /// restarts (1 to 64 bytes).
    pub node_id: String,
    #[serde(default = "default_ceph_conf")]
    pub ceph_conf: PathBuf,
    #[serde(default = "default_client_id")]
    pub ceph_client_id: String,
    /// The RADOS pool holding the grace database (created if missing).
    #[serde(default = "default_pool")]
    pub pool: String,
    /// The RADOS namespace in `pool` ("" is the default namespace).
    #[serde(default)]
    pub namespace: String,
    /// How often the head reads and renews the database.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// Evict the CephFS sessions of a head that has stopped renewing its entry for long
    /// enough (`crate::cluster::evict_after_ms`), so that its caps and locks stop blocking the
    /// other heads' clients before the MDS times the session out.
    #[serde(default = "default_evict_gone_heads")]
    pub evict_gone_heads: bool,
}

fn default_evict_gone_heads() -> bool {
    true
}

fn default_ceph_conf() -> PathBuf {
    PathBuf::from("/etc/ceph/ceph.conf")
}

fn default_client_id() -> String {
    "admin".into()
}

fn default_pool() -> String {
    "rnfsd".into()
}

fn default_poll_ms() -> u64 {
    1000
}

impl ClusterConfig {
    pub fn check(&self) -> Result<(), ConfigError> {
        let bad = |why: String| Err(ConfigError::Cluster(why));
        if rnfs_rados::grace::check_id(&self.node_id).is_err() {
            return bad(format!(
                "node_id {:?} must be 1 to {} bytes",
                self.node_id,
                rnfs_rados::grace::NODE_ID_BYTES_MAX
            ));
        }
        if !(POLL_MS_MIN..=POLL_MS_MAX).contains(&self.poll_ms) {
            return bad(format!(
                "poll_ms = {} must be {POLL_MS_MIN} to {POLL_MS_MAX}",
                self.poll_ms
            ));
        }
        if self.pool.is_empty() || self.pool.contains('\0') || self.namespace.contains('\0') {
            return bad("pool must be a non-empty name".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ClusterConfig, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn dead_heads_are_evicted_unless_turned_off() {
        let c = parse("node_id = \"a\"").unwrap();
        assert!(c.evict_gone_heads);
        assert_eq!(c.poll_ms, 1000);
        assert!(c.check().is_ok());
        let c = parse("node_id = \"a\"\nevict_gone_heads = false").unwrap();
        assert!(!c.evict_gone_heads);
        assert!(parse("node_id = \"a\"\nevict_gone_heads = 1").is_err());
        assert!(
            parse("node_id = \"a\"\nevict_after_ms = 5").is_err(),
            "unknown key"
        );
    }
}
