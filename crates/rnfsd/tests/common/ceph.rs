//! What the CephFS tests share: the cluster's file system as its admin sees it (to lay out an
//! export before a head serves it), and the config of a head serving one directory of it.

use rnfs_cephfs::test_cluster::TestCluster;
use rnfs_storage::ceph::{CephConfig, CephFs};
use rnfs_storage::handle::HandleKey;
use rnfs_storage::{Backend, CreateMode, Identity, SetAttrs, Stability, VerifiedHandle};

/// The whole file system through libcephfs, as root (export id 1, a throw-away key).
pub struct Admin {
    pub fs: CephFs,
}

impl Admin {
    pub fn new(cluster: &TestCluster) -> Admin {
        let cfg = CephConfig {
            conf: cluster.conf().to_owned(),
            client_id: "admin".into(),
            fs_name: None,
            path: "/".into(),
            uuid: None,
        };
        Admin {
            fs: CephFs::new(1, &cfg, &HandleKey::random().unwrap()).unwrap(),
        }
    }

    pub fn root(&self) -> VerifiedHandle {
        self.fs.handle_key().verify(1, &self.fs.root()).unwrap()
    }

    /// Makes directory `name` (one level, no '/') in `dir` with `mode`, owned by root.
    pub fn mkdir(&self, dir: &VerifiedHandle, name: &str, mode: u32) -> VerifiedHandle {
        let made = self
            .fs
            .mkdir(&Identity::root(), dir, name.as_bytes(), &with_mode(mode))
            .unwrap();
        self.fs.handle_key().verify(1, &made.handle).unwrap()
    }

    /// Makes regular file `name` in `dir` with `mode`, owned by root.
    pub fn create(&self, dir: &VerifiedHandle, name: &str, mode: u32) {
        let how = CreateMode::Guarded(with_mode(mode));
        self.fs
            .create(&Identity::root(), dir, name.as_bytes(), &how)
            .unwrap();
    }
}

impl Admin {
    fn verify(&self, made: &rnfs_storage::FileHandle) -> VerifiedHandle {
        self.fs.handle_key().verify(1, made).unwrap()
    }

    /// Makes regular file `name` in `dir` holding `data`, with `mode`, owned by root; synced.
    pub fn file(&self, dir: &VerifiedHandle, name: &str, mode: u32, data: &[u8]) -> VerifiedHandle {
        let how = CreateMode::Guarded(with_mode(mode));
        let made = self
            .fs
            .create(&Identity::root(), dir, name.as_bytes(), &how)
            .unwrap();
        let fh = self.verify(&made.handle);
        for (i, chunk) in data.chunks(1 << 20).enumerate() {
            let w = self
                .fs
                .write(
                    &Identity::root(),
                    &fh,
                    (i << 20) as u64,
                    chunk,
                    Stability::FileSync,
                )
                .unwrap();
            assert_eq!(w.count as usize, chunk.len());
        }
        fh
    }

    /// Makes symbolic link `name` in `dir` pointing at `target` (stored as given).
    pub fn symlink(&self, dir: &VerifiedHandle, name: &str, target: &str) {
        self.fs
            .symlink(
                &Identity::root(),
                dir,
                name.as_bytes(),
                target.as_bytes(),
                &SetAttrs::default(),
            )
            .unwrap();
    }

    /// Gives `h` to `uid`:`gid`.
    pub fn chown(&self, h: &VerifiedHandle, uid: u32, gid: u32) {
        let attrs = SetAttrs {
            uid: Some(uid),
            gid: Some(gid),
            ..Default::default()
        };
        self.fs.setattr(&Identity::root(), h, &attrs, None).unwrap();
    }
}

fn with_mode(mode: u32) -> SetAttrs {
    SetAttrs {
        mode: Some(mode),
        ..Default::default()
    }
}

/// A head's config: directory `dir` of the cluster's file system, read-write to loopback, as
/// Ceph client `client_id`, followed by `extra` (more tables).
pub fn head_config(cluster: &TestCluster, dir: &str, client_id: &str, extra: &str) -> String {
    format!(
        "[[export]]\nbackend = \"ceph\"\npath = \"{dir}\"\nceph_conf = {:?}\n\
         ceph_client_id = \"{client_id}\"\n\n[[export.client]]\nmatch = \"127.0.0.0/8\"\n\
         access = \"rw\"\n\n{extra}",
        cluster.conf()
    )
}
