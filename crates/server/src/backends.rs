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

use crate::config::ExportConfig;

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

/// `Ok` if `e` names a backend this server has and sets only that backend's keys.
pub fn check_export(e: &ExportConfig) -> Result<(), String> {
    check_kind(&e.backend)?;
    if e.backend == "ceph" {
        return ceph_config(e).map(drop);
    }
    let ceph_keys: Vec<&str> = [
        ("ceph_conf", e.ceph_conf.is_some()),
        ("ceph_client_id", e.ceph_client_id.is_some()),
        ("ceph_fs", e.ceph_fs.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, set)| set.then_some(k))
    .collect();
    if ceph_keys.is_empty() {
        Ok(())
    } else {
        // Silently ignoring them would serve a local directory where CephFS was meant.
        Err(format!(
            "{} only apply to backend = \"ceph\", not {:?}",
            ceph_keys.join(", "),
            e.backend
        ))
    }
}

/// The CephFS settings of a `backend = "ceph"` export, defaults filled in. `path` is the
/// directory inside CephFS: absolute, without `..`, normalized (`//a/./b/` → `/a/b`).
pub fn ceph_config(e: &ExportConfig) -> Result<CephConfig, String> {
    let path = e.path.to_str().ok_or("a CephFS path must be UTF-8")?;
    if !path.starts_with('/') {
        return Err(format!(
            "a CephFS path is absolute inside the file system: {path:?}"
        ));
    }
    if path.split('/').any(|c| c == "..") {
        return Err(format!("a CephFS path may not contain \"..\": {path:?}"));
    }
    let client_id = e
        .ceph_client_id
        .clone()
        .unwrap_or_else(|| DEFAULT_CEPH_CLIENT_ID.to_owned());
    if client_id.is_empty() {
        return Err("ceph_client_id is empty".into());
    }
    if e.ceph_fs.as_deref() == Some("") {
        return Err("ceph_fs is empty (leave it out for the default file system)".into());
    }
    Ok(CephConfig {
        conf: e
            .ceph_conf
            .clone()
            .unwrap_or_else(|| DEFAULT_CEPH_CONF.into()),
        client_id,
        fs_name: e.ceph_fs.clone(),
        path: crate::exports::normalize_mount_path(path),
    })
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

    fn export(toml_text: &str) -> ExportConfig {
        let c: crate::config::Config =
            toml::from_str(&format!("[[export]]\n{toml_text}\n")).unwrap();
        c.exports.into_iter().next().unwrap()
    }

    #[test]
    fn ceph_settings_default_and_normalize() {
        let c = ceph_config(&export("backend = \"ceph\"\npath = \"//shared/./x/\"")).unwrap();
        assert_eq!(
            c,
            CephConfig {
                conf: DEFAULT_CEPH_CONF.into(),
                client_id: DEFAULT_CEPH_CLIENT_ID.into(),
                fs_name: None,
                path: "/shared/x".into(),
            }
        );
        let c = ceph_config(&export(
            "backend = \"ceph\"\npath = \"/\"\nceph_conf = \"/c/ceph.conf\"\n\
             ceph_client_id = \"nfs\"\nceph_fs = \"fs2\"",
        ))
        .unwrap();
        assert_eq!(c.conf, Path::new("/c/ceph.conf"));
        assert_eq!(
            (c.client_id.as_str(), c.fs_name.as_deref(), c.path.as_str()),
            ("nfs", Some("fs2"), "/")
        );
    }

    #[test]
    fn bad_ceph_settings_are_refused() {
        for (text, why) in [
            ("path = \"rel\"", "absolute"),
            ("path = \"/a/../b\"", ".."),
            ("path = \"/a\"\nceph_client_id = \"\"", "ceph_client_id"),
            ("path = \"/a\"\nceph_fs = \"\"", "ceph_fs"),
        ] {
            let e = check_export(&export(&format!("backend = \"ceph\"\n{text}"))).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn ceph_keys_on_a_local_export_are_refused() {
        assert!(check_export(&export("path = \"/srv\"")).is_ok());
        for key in [
            "ceph_conf = \"/c\"",
            "ceph_client_id = \"a\"",
            "ceph_fs = \"f\"",
        ] {
            let e = check_export(&export(&format!("path = \"/srv\"\n{key}"))).unwrap_err();
            let name = key.split(' ').next().unwrap_or_default();
            assert!(e.contains(name) && e.contains("\"ceph\""), "{e}");
            let e = check_export(&export(&format!(
                "path = \"/srv\"\nbackend = \"local\"\n{key}"
            )))
            .unwrap_err();
            assert!(e.contains(name), "{e}");
        }
    }
}
