//! The backend factory: which [`Backend`] serves an export, from its `backend` setting.
//!
//! Each kind is named in the configuration (`backend = "local"`, the default) and listed in
//! [`KINDS`]; [`open`] makes one. The server never builds a backend type by name anywhere else,
//! and never sees what a backend is served from except through [`Backend::describe`].

use std::path::Path;
use std::sync::Arc;

use rnfs_storage::ceph::{CephConfig, CephFs};
use rnfs_storage::handle::HandleKey;
use rnfs_storage::local::LocalFs;
use rnfs_storage::Backend;

/// The backend kinds this server can open; the first is the default.
pub const KINDS: &[&str] = &["local", "ceph"];

/// `ceph_conf` when an export does not set it: where Ceph's own tools look.
pub const DEFAULT_CEPH_CONF: &str = "/etc/ceph/ceph.conf";
/// `ceph_client_id` when an export does not set it.
pub const DEFAULT_CEPH_CLIENT_ID: &str = "admin";

/// The default backend kind (`backend` absent from an export).
pub const DEFAULT_KIND: &str = "local";

/// What a backend is opened from.
#[derive(Debug, Clone, Copy)]
pub struct BackendSpec<'a> {
    /// One of [`KINDS`].
    pub kind: &'a str,
    /// The export id, part of every handle the backend seals.
    pub id: u32,
    /// The export's `path` (for `local`: the directory, canonical; unused for `ceph`).
    pub path: &'a Path,
    /// For `ceph`: where the file system is and which directory of it is served.
    pub ceph: Option<&'a CephConfig>,
    /// The server's handle key; the backend derives its export's key from it.
    pub key: &'a HandleKey,
}

/// `Ok` if `kind` names a backend this server has, else why not (naming the ones it has).
pub fn check_kind(kind: &str) -> Result<(), String> {
    if KINDS.contains(&kind) {
        Ok(())
    } else {
        Err(format!(
            "unknown backend {kind:?}: expected one of {}",
            KINDS
                .iter()
                .map(|k| format!("{k:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

/// Opens the backend `spec` describes. Errors are messages for a [`crate::config::ConfigError`].
pub fn open(spec: &BackendSpec<'_>) -> Result<Arc<dyn Backend>, String> {
    check_kind(spec.kind)?;
    match spec.kind {
        "local" => {
            let fs =
                LocalFs::new(spec.id, spec.path, spec.key.clone()).map_err(|e| e.to_string())?;
            Ok(Arc::new(fs))
        }
        "ceph" => {
            let cfg = spec
                .ceph
                .ok_or("backend \"ceph\" opened without its CephFS settings")?;
            Ok(Arc::new(CephFs::new(spec.id, cfg, spec.key)?))
        }
        // `check_kind` passed: a kind listed in KINDS without an arm here is a bug of this file.
        other => Err(format!("backend {other:?} is listed but not built")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_checked() {
        assert!(check_kind("local").is_ok());
        assert!(KINDS.contains(&DEFAULT_KIND));
        assert!(check_kind("ceph").is_ok());
        let e = check_kind("cephfs").unwrap_err();
        assert!(e.contains("\"cephfs\"") && e.contains("\"local\""), "{e}");
    }

    #[test]
    fn local_describes_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = std::fs::canonicalize(dir.path()).unwrap();
        let key = HandleKey::random().unwrap();
        let spec = BackendSpec {
            kind: "local",
            id: 3,
            path: &path,
            ceph: None,
            key: &key,
        };
        let b = open(&spec).unwrap();
        assert_eq!(b.describe(), path.display().to_string());
        assert!(open(&BackendSpec {
            kind: "nfs",
            ..spec
        })
        .is_err());
        // A ceph spec without its settings is refused, not opened from `path`.
        assert!(open(&BackendSpec {
            kind: "ceph",
            ..spec
        })
        .is_err());
    }
}
