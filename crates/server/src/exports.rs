//! The export table: which directories are served, under which mount paths, to whom.
//!
//! Every NFS request names its export through the prefix of its file handle
//! ([`rnfs_storage::handle::export_id`]); the table maps that id to the export's backend and client
//! rules. The table is immutable once built; reloading builds a new one and swaps the `Arc`.
//!
//! # Whose key verifies a handle
//! An export's handles are sealed by its backend, with a key bound to the export's root (the
//! local backend derives it from the root's kernel handle and path: see
//! [`rnfs_storage::handle`]). The export verifies client handles with that same key, which it
//! asks its backend for ([`Backend::handle_key`]), rather than keeping a copy: export and backend
//! can never disagree on it, and a reloaded export that keeps its backend keeps its key.
//!
//! Backends are made by the factory in [`crate::backends`] from each export's `backend` setting,
//! and each is served behind its export's gate ([`crate::backend_gate`]).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rnfs_storage::handle::HandleKey;
use rnfs_storage::{Backend, FileHandle, VerifiedHandle};

use crate::backends::{self, BackendSpec};
pub use crate::config::normalize_mount_path;
use crate::config::{ClientRule, Config, ConfigError};

/// One served directory.
pub struct Export {
    pub id: u32,
    /// What clients name in MNT (e.g. `/srv/data`).
    pub mount_path: String,
    pub backend: Arc<dyn Backend>,
    pub rules: Vec<ClientRule>,
}

impl std::fmt::Debug for Export {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Export")
            .field("id", &self.id)
            .field("mount_path", &self.mount_path)
            .field("backend", &self.backend.describe())
            .finish_non_exhaustive()
    }
}

impl Export {
    /// The first rule covering `ip`, or `None` when this client may not use the export.
    pub fn rule_for(&self, ip: IpAddr) -> Option<&ClientRule> {
        self.rules.iter().find(|r| r.matches.covers(ip))
    }

    /// Verifies `fh` as a handle of this export, with the key its backend seals handles with
    /// (`BadHandle`, or `Stale` for a handle of an earlier root: see [`rnfs_storage::handle`]).
    pub fn verify(&self, fh: &FileHandle) -> rnfs_storage::Result<VerifiedHandle> {
        self.backend.handle_key().verify(self.id, fh)
    }

    /// [`Export::verify`] taking the handle (the request path: no clone).
    pub fn verify_owned(&self, fh: FileHandle) -> rnfs_storage::Result<VerifiedHandle> {
        self.backend.handle_key().verify_owned(self.id, fh)
    }
}

/// All exports.
#[derive(Debug, Default)]
pub struct ExportTable {
    exports: Vec<Arc<Export>>,
    /// The CephFS exports' ids and cluster settings, for evicting a dead head's sessions
    /// (`crate::cluster`).
    ceph: Vec<(u32, rnfs_storage::ceph::CephConfig)>,
}

/// The name (uuid) of head `node_id`'s CephFS client for export `export_id` (`[cluster]` only):
/// the same across the head's restarts, so a restarted head evicts its previous session, and
/// known to the other heads, so they can evict the session of a head that stays dead.
pub fn ceph_session_uuid(node_id: &str, export_id: u32) -> String {
    format!("rnfsd:{node_id}:{export_id}")
}

impl ExportTable {
    /// Opens every export of `config`, each with the backend its `backend` setting names.
    pub fn build(config: &Config, key: &HandleKey) -> Result<ExportTable, ConfigError> {
        ExportTable::build_as(config, key, false)
    }

    /// [`build`](ExportTable::build) at the server's start: with a `[cluster]`, each CephFS
    /// export's client is named after the head and export, so it evicts the session a crashed
    /// previous instance left behind (its caps and locks would otherwise block the other heads
    /// until the MDS's session timeout). Never at a reload: the new client would evict the one
    /// in use.
    pub fn build_at_start(config: &Config, key: &HandleKey) -> Result<ExportTable, ConfigError> {
        ExportTable::build_as(config, key, true)
    }

    fn build_as(
        config: &Config,
        key: &HandleKey,
        take_over: bool,
    ) -> Result<ExportTable, ConfigError> {
        let mut exports: Vec<Arc<Export>> = Vec::new();
        let mut ceph_exports = Vec::new();
        for e in &config.exports {
            let name = e.path.display().to_string();
            let err = |msg: String| ConfigError::Export(name.clone(), msg);
            // Before anything is opened: an unknown backend or a key of another backend is a
            // configuration error.
            crate::config::check_export(e).map_err(err)?;
            let ceph = if e.backend == "ceph" {
                Some(crate::config::ceph_config(e).map_err(err)?)
            } else {
                None
            };
            // A ceph export's `path` names a directory inside CephFS: it must not be looked up on
            // this host's disk.
            let local_path = match &ceph {
                Some(c) => PathBuf::from(&c.path),
                None => {
                    let p = std::fs::canonicalize(&e.path).map_err(|io| err(io.to_string()))?;
                    if !p.is_dir() {
                        return Err(err("not a directory".into()));
                    }
                    p
                }
            };
            let mount_path = normalize_mount_path(
                e.mount_path
                    .as_deref()
                    .unwrap_or(&local_path.to_string_lossy()),
            );
            // The same (file system, directory) gives the same id on every head, so handles from
            // one head resolve on another that shares the state key.
            let id = e.id.unwrap_or_else(|| match &ceph {
                Some(c) => derived_export_id(
                    format!(
                        "ceph:{}:{}",
                        c.fs_name.as_deref().unwrap_or_default(),
                        c.path
                    )
                    .as_ref(),
                ),
                None => derived_export_id(&local_path),
            });
            if exports.iter().any(|x| x.id == id) {
                return Err(err(format!(
                    "export id {id} is used twice; set distinct `id`s"
                )));
            }
            if exports.iter().any(|x| x.mount_path == mount_path) {
                return Err(err(format!("mount path {mount_path} is used twice")));
            }
            let rules = e
                .clients
                .iter()
                .map(ClientRule::from_config)
                .collect::<Result<Vec<_>, _>>()?;
            if rules.is_empty() {
                return Err(err(
                    "no [[export.client]] rule: nobody could mount it".into()
                ));
            }
            let ceph = ceph.map(|mut c| {
                c.uuid = config
                    .cluster
                    .as_ref()
                    .filter(|_| take_over)
                    .map(|cl| ceph_session_uuid(&cl.node_id, id));
                ceph_exports.push((id, c.clone()));
                c
            });
            let backend = backends::open(&BackendSpec {
                kind: &e.backend,
                id,
                path: &local_path,
                ceph: ceph.as_ref(),
                key,
            })
            .map_err(err)?;
            // Behind the export's gate, so a backend that stops answering holds at most
            // `export_fs_workers_max` of the workers (see crate::backend_gate).
            let busy_max = config
                .limits
                .export_fs_workers_max
                .min(config.limits.fs_workers_max);
            let backend: Arc<dyn Backend> =
                Arc::new(crate::backend_gate::Gated::new(backend, id, busy_max));
            exports.push(Arc::new(Export {
                id,
                mount_path,
                backend,
                rules,
            }));
        }
        Ok(ExportTable {
            exports,
            ceph: ceph_exports,
        })
    }

    /// A table of already-built exports (tests, other backends).
    pub fn from_exports(exports: Vec<Arc<Export>>) -> ExportTable {
        ExportTable {
            exports,
            ceph: Vec::new(),
        }
    }

    /// The CephFS exports' ids and cluster settings.
    pub fn ceph_exports(&self) -> &[(u32, rnfs_storage::ceph::CephConfig)] {
        &self.ceph
    }

    pub fn by_id(&self, id: u32) -> Option<&Arc<Export>> {
        self.exports.iter().find(|e| e.id == id)
    }

    /// The export holding MNT path `path` and the components below its mount path (empty when
    /// `path` is the export itself). The longest matching mount path wins, on component bounds.
    pub fn for_path(&self, path: &str) -> Option<(&Arc<Export>, Vec<String>)> {
        let path = normalize_mount_path(path);
        let below = |e: &Arc<Export>| -> Option<Vec<String>> {
            let rest = if e.mount_path == "/" {
                path.as_str()
            } else {
                path.strip_prefix(e.mount_path.as_str())?
            };
            if !(rest.is_empty() || rest.starts_with('/')) {
                return None;
            }
            Some(
                rest.split('/')
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect(),
            )
        };
        self.exports
            .iter()
            .filter_map(|e| below(e).map(|rest| (e, rest)))
            .max_by_key(|(e, _)| e.mount_path.len())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Export>> {
        self.exports.iter()
    }

    pub fn len(&self) -> usize {
        self.exports.len()
    }

    pub fn is_empty(&self) -> bool {
        self.exports.is_empty()
    }
}

/// A stable export id from the canonical path (FNV-1a), so handles survive restarts without an
/// explicit `id`. Moving the export to another path changes it; set `id` to avoid that.
fn derived_export_id(path: &Path) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in path.as_os_str().as_encoded_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use rnfs_storage::local::LocalFs;

    #[test]
    fn mount_paths_normalize() {
        assert_eq!(normalize_mount_path("//srv//data/"), "/srv/data");
        assert_eq!(normalize_mount_path("/"), "/");
        assert_eq!(normalize_mount_path("/a/./b"), "/a/b");
    }

    #[test]
    fn mount_paths_match_on_component_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let key = HandleKey::random().unwrap();
        let export = |id: u32, mount_path: &str| {
            Arc::new(Export {
                id,
                mount_path: mount_path.to_owned(),
                backend: Arc::new(LocalFs::new(id, dir.path(), key.clone()).unwrap()),
                rules: Vec::new(),
            })
        };
        let t = ExportTable::from_exports(vec![export(1, "/srv"), export(2, "/srv/data")]);
        let hit = |p: &str| t.for_path(p).map(|(e, rest)| (e.id, rest));
        assert_eq!(hit("/srv"), Some((1, vec![])));
        assert_eq!(
            hit("/srv/other/x"),
            Some((1, vec!["other".to_owned(), "x".to_owned()]))
        );
        assert_eq!(
            hit("/srv/data/"),
            Some((2, vec![])),
            "longest mount path wins"
        );
        assert_eq!(hit("/srv/database"), Some((1, vec!["database".to_owned()])));
        assert_eq!(hit("/srvx"), None, "prefix only on component bounds");
        assert_eq!(hit("/"), None);
    }

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        assert_eq!(
            derived_export_id(Path::new("/a")),
            derived_export_id(Path::new("/a"))
        );
        assert_ne!(
            derived_export_id(Path::new("/a")),
            derived_export_id(Path::new("/b"))
        );
    }

    #[test]
    fn a_ceph_export_is_not_looked_up_on_the_local_disk() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("missing-ceph.conf");
        let c: Config = toml::from_str(&format!(
            "[[export]]\nbackend = \"ceph\"\npath = \"/no/such/local/dir\"\n\
             ceph_conf = {conf:?}\n[[export.client]]\nmatch = \"*\"\n"
        ))
        .unwrap();
        let key = HandleKey::random().unwrap();
        let e = ExportTable::build(&c, &key).unwrap_err().to_string();
        // The failure is the Ceph mount's, not canonicalize's "No such file or directory".
        assert!(e.contains("CephFS") || e.contains("libcephfs"), "{e}");
    }
}
