//! Helpers shared by the storage tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;

/// Runs test `name` of this test binary again in a private mount namespace (`unshare`), where it
/// may mount freely, with `env` naming a scratch directory made (and removed) out here, where the
/// mounts are invisible. In the rerun (`env` set) it calls `inner` with that directory instead.
/// A line of the rerun's output starting with "skipped" is passed on; no `unshare` skips.
pub fn in_mount_namespace(name: &str, env: &str, inner: fn(&Path)) {
    if let Some(dir) = std::env::var_os(env) {
        return inner(Path::new(&dir));
    }
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", name, "--test-threads=1", "--nocapture"])
        .env(env, dir.path())
        .output();
    match out {
        Ok(o) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            assert!(
                o.status.success(),
                "{name} failed in its mount namespace:\n{text}"
            );
            if let Some(skipped) = text.lines().find(|l| l.starts_with("skipped")) {
                eprintln!("{skipped}");
            }
        }
        Err(e) => eprintln!("skipped: cannot run unshare: {e}"),
    }
}

use bytes::Bytes;
use rnfs_storage::local::LocalFs;
use rnfs_storage::{
    Attr, Backend, CreateMode, Created, DirEntry, DirListing, FileHandle, FsStat, Identity,
    NodeKind, PathConf, ReadData, Result, SetAttrs, Stability, Timestamp, Wcc, Written,
};

/// The backend's calls as a client makes them: each handle is verified first, as the server does
/// before it calls the backend (`LocalFs::verify`), so tests can pass the handles they got.
/// Import this instead of `Backend` (whose methods take verified handles only).
pub trait Checked {
    fn root(&self) -> FileHandle;
    fn getattr(&self, who: &Identity, fh: &FileHandle) -> Result<Attr>;
    fn lookup(&self, who: &Identity, dir: &FileHandle, name: &[u8]) -> Result<(FileHandle, Attr)>;
    fn lookup_with_dir(
        &self,
        who: &Identity,
        dir: &FileHandle,
        name: &[u8],
    ) -> (Result<(FileHandle, Attr)>, Option<Attr>);
    fn access(&self, who: &Identity, fh: &FileHandle, requested: u32) -> Result<(u32, Attr)>;
    fn readlink(&self, who: &Identity, fh: &FileHandle) -> Result<(Bytes, Attr)>;
    fn read(&self, who: &Identity, fh: &FileHandle, offset: u64, count: u32) -> Result<ReadData>;
    fn readdir(
        &self,
        who: &Identity,
        dir: &FileHandle,
        cookie: u64,
        verifier: [u8; 8],
        plus: bool,
        sink: &mut dyn FnMut(DirEntry) -> bool,
    ) -> Result<DirListing>;
    fn fsstat(&self, who: &Identity, fh: &FileHandle) -> Result<(FsStat, Attr)>;
    fn pathconf(&self, who: &Identity, fh: &FileHandle) -> Result<(PathConf, Attr)>;
    fn setattr(
        &self,
        who: &Identity,
        fh: &FileHandle,
        attrs: &SetAttrs,
        guard: Option<Timestamp>,
    ) -> Result<Wcc>;
    fn write(
        &self,
        who: &Identity,
        fh: &FileHandle,
        offset: u64,
        data: &[u8],
        stable: Stability,
    ) -> Result<Written>;
    fn commit(&self, who: &Identity, fh: &FileHandle, offset: u64, count: u32) -> Result<Wcc>;
    fn create(
        &self,
        who: &Identity,
        dir: &FileHandle,
        name: &[u8],
        how: &CreateMode,
    ) -> Result<Created>;
    fn mkdir(
        &self,
        who: &Identity,
        dir: &FileHandle,
        name: &[u8],
        attrs: &SetAttrs,
    ) -> Result<Created>;
    fn symlink(
        &self,
        who: &Identity,
        dir: &FileHandle,
        name: &[u8],
        target: &[u8],
        attrs: &SetAttrs,
    ) -> Result<Created>;
    fn mknod(
        &self,
        who: &Identity,
        dir: &FileHandle,
        name: &[u8],
        kind: NodeKind,
        attrs: &SetAttrs,
    ) -> Result<Created>;
    fn remove(&self, who: &Identity, dir: &FileHandle, name: &[u8]) -> Result<Wcc>;
    fn rmdir(&self, who: &Identity, dir: &FileHandle, name: &[u8]) -> Result<Wcc>;
    fn rename(
        &self,
        who: &Identity,
        from_dir: &FileHandle,
        from_name: &[u8],
        to_dir: &FileHandle,
        to_name: &[u8],
    ) -> Result<(Wcc, Wcc)>;
    fn link(
        &self,
        who: &Identity,
        fh: &FileHandle,
        dir: &FileHandle,
        name: &[u8],
    ) -> Result<(Option<Attr>, Wcc)>;
    fn writeback_errors(&self) -> u64;
    fn close_idle_files(&self);
    fn close_all_files(&self);
}

impl Checked for LocalFs {
    fn root(&self) -> FileHandle {
        Backend::root(self)
    }
    fn getattr(&self, who: &Identity, fh: &FileHandle) -> Result<Attr> {
        Backend::getattr(self, who, &self.verify(fh)?)
    }
    fn lookup(&self, who: &Identity, dir: &FileHandle, name: &[u8]) -> Result<(FileHandle, Attr)> {
        Backend::lookup(self, who, &self.verify(dir)?, name)
    }
    fn lookup_with_dir(
        &self,
        who: &Identity,
        dir: &FileHandle,
        name: &[u8],
    ) -> (Result<(FileHandle, Attr)>, Option<Attr>) {
        match self.verify(dir) {
            Ok(dir) => Backend::lookup_with_dir(self, who, &dir, name),
            Err(e) => (Err(e), None),
        }
    }
    fn access(&self, who: &Identity, fh: &FileHandle, requested: u32) -> Result<(u32, Attr)> {
        Backend::access(self, who, &self.verify(fh)?, requested)
    }
    fn readlink(&self, who: &Identity, fh: &FileHandle) -> Result<(Bytes, Attr)> {
        Backend::readlink(self, who, &self.verify(fh)?)
    }
    fn read(&self, who: &Identity, fh: &FileHandle, offset: u64, count: u32) -> Result<ReadData> {
        Backend::read(self, who, &self.verify(fh)?, offset, count)
    }
    fn readdir(
        &self,
        who: &Identity,
        dir: &FileHandle,
        cookie: u64,
        verifier: [u8; 8],
        plus: bool,
        sink: &mut dyn FnMut(DirEntry) -> bool,
    ) -> Result<DirListing> {
        Backend::readdir(self, who, &self.verify(dir)?, cookie, verifier, plus, sink)
    }
    fn fsstat(&self, who: &Identity, fh: &FileHandle) -> Result<(FsStat, Attr)> {
        Backend::fsstat(self, who, &self.verify(fh)?)
    }
    fn pathconf(&self, who: &Identity, fh: &FileHandle) -> Result<(PathConf, Attr)> {
        Backend::pathconf(self, who, &self.verify(fh)?)
    }
    fn setattr(
        &self,
        who: &Identity,
        fh: &FileHandle,
        attrs: &SetAttrs,
        guard: Option<Timestamp>,
    ) -> Result<Wcc> {
        Backend::setattr(self, who, &self.verify(fh)?, attrs, guard)
    }
    fn write(
        &self,
        who: &Identity,
        fh: &FileHandle,
        offset: u64,
        data: &[u8],
        stable: Stability,
    ) -> Result<Written> {
        Backend::write(self, who, &self.verify(fh)?, offset, data, stable)
    }
    fn commit(&self, who: &Identity, fh: &FileHandle, offset: u64, count: u32) -> Result<Wcc> {
        Backend::commit(self, who, &self.verify(fh)?, offset, count)
    }
    fn create(
        &self,
        who: &Identity,
        dir: &FileHandle,
        name: &[u8],
        how: &CreateMode,
    ) -> Result<Created> {
        Backend::create(self, who, &self.verify(dir)?, name, how)
    }
    fn mkdir(
        &self,
        who: &Identity,
        dir: &FileHandle,
        name: &[u8],
        attrs: &SetAttrs,
    ) -> Result<Created> {
        Backend::mkdir(self, who, &self.verify(dir)?, name, attrs)
    }
    fn symlink(
        &self,
        who: &Identity,
        dir: &FileHandle,
        name: &[u8],
        target: &[u8],
        attrs: &SetAttrs,
    ) -> Result<Created> {
        Backend::symlink(self, who, &self.verify(dir)?, name, target, attrs)
    }
    fn mknod(
        &self,
        who: &Identity,
        dir: &FileHandle,
        name: &[u8],
        kind: NodeKind,
        attrs: &SetAttrs,
    ) -> Result<Created> {
        Backend::mknod(self, who, &self.verify(dir)?, name, kind, attrs)
    }
    fn remove(&self, who: &Identity, dir: &FileHandle, name: &[u8]) -> Result<Wcc> {
        Backend::remove(self, who, &self.verify(dir)?, name)
    }
    fn rmdir(&self, who: &Identity, dir: &FileHandle, name: &[u8]) -> Result<Wcc> {
        Backend::rmdir(self, who, &self.verify(dir)?, name)
    }
    /// As the server: a directory of another export is XDEV before either handle is verified.
    fn rename(
        &self,
        who: &Identity,
        from_dir: &FileHandle,
        from_name: &[u8],
        to_dir: &FileHandle,
        to_name: &[u8],
    ) -> Result<(Wcc, Wcc)> {
        same_export(self, &[from_dir, to_dir])?;
        let (from_dir, to_dir) = (self.verify(from_dir)?, self.verify(to_dir)?);
        Backend::rename(self, who, &from_dir, from_name, &to_dir, to_name)
    }
    fn link(
        &self,
        who: &Identity,
        fh: &FileHandle,
        dir: &FileHandle,
        name: &[u8],
    ) -> Result<(Option<Attr>, Wcc)> {
        same_export(self, &[fh, dir])?;
        let (fh, dir) = (self.verify(fh)?, self.verify(dir)?);
        Backend::link(self, who, &fh, &dir, name)
    }
    fn writeback_errors(&self) -> u64 {
        Backend::writeback_errors(self)
    }
    fn close_idle_files(&self) {
        Backend::close_idle_files(self)
    }
    fn close_all_files(&self) {
        Backend::close_all_files(self)
    }
}

fn same_export(fs: &LocalFs, handles: &[&FileHandle]) -> Result<()> {
    let foreign = handles.iter().any(|fh| {
        rnfs_storage::handle::export_id(fh.as_bytes()).is_some_and(|id| id != fs.export_id())
    });
    if foreign {
        Err(rnfs_storage::Error::XDev)
    } else {
        Ok(())
    }
}
