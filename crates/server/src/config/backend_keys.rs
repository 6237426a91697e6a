//! The backend settings of one export: that `backend` names a kind this server has, and that
//! only that kind's keys are set (the CephFS ones for `backend = "ceph"`). Kept out of
//! [`crate::backends`], which opens backends and knows nothing of the configuration's types.

use rnfs_storage::ceph::CephConfig;

use super::{normalize_mount_path, ExportConfig};
use crate::backends::{check_kind, DEFAULT_CEPH_CLIENT_ID, DEFAULT_CEPH_CONF};

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
        path: normalize_mount_path(path),
        uuid: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

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
                uuid: None,
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
