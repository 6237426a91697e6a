//! Benchmark peer: the `nfsserve` crate (0.11) serving a local directory, read and write.
//!
//! The crate ships no example, so this is a small "mirror" file system written against its
//! `NFSFileSystem` trait, in the spirit of the upstream `mirrorfs` example:
//! * file ids are assigned on first sight (root = 1) and kept in two hash maps (id -> path,
//!   path -> id), so lookups and getattr are O(1);
//! * a directory's listing is cached sorted by id and re-read when the directory's mtime changes,
//!   because nfsserve pages READDIR(PLUS) by "start after this file id";
//! * every file-system call is a plain blocking `std::fs` call on the runtime's worker threads
//!   (page-cache hits are short; this avoids a thread hand-off per call).
//!
//! Caveat, by design of nfsserve: WRITE always answers FILE_SYNC and COMMIT is not implemented
//! (PROC_UNAVAIL). This adapter does not fsync, so its write figures are not durable writes.
//!
//! Usage: `nfsserve-mirror DIR ADDR:PORT [--export NAME] [--ready-file FILE]`
//! Clients mount `/NAME` (default `/export`); NFS and MOUNT answer on the one port.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use async_trait::async_trait;
use nfsserve::fs_util::{metadata_to_fattr3, path_setattr};
use nfsserve::nfs::{
    fattr3, fileid3, filename3, nfspath3, nfsstat3, nfsstring, sattr3, set_mode3, set_size3,
};
use nfsserve::tcp::{NFSTcp, NFSTcpListener};
use nfsserve::vfs::{DirEntry, NFSFileSystem, ReadDirResult, VFSCapabilities};

const ROOT_ID: fileid3 = 1;

struct DirListing {
    mtime: (i64, i64),
    /// (id, name), sorted by id.
    entries: Vec<(fileid3, Vec<u8>)>,
}

#[derive(Default)]
struct Maps {
    paths: HashMap<fileid3, PathBuf>,
    ids: HashMap<PathBuf, fileid3>,
    next: fileid3,
    dirs: HashMap<fileid3, DirListing>,
}

impl Maps {
    fn id_for(&mut self, path: PathBuf) -> fileid3 {
        if let Some(id) = self.ids.get(&path) {
            return *id;
        }
        let id = self.next;
        self.next += 1;
        self.paths.insert(id, path.clone());
        self.ids.insert(path, id);
        id
    }

    fn forget(&mut self, path: &Path) {
        if let Some(id) = self.ids.remove(path) {
            self.paths.remove(&id);
            self.dirs.remove(&id);
        }
    }
}

struct Mirror {
    maps: RwLock<Maps>,
}

fn io_err(e: std::io::Error) -> nfsstat3 {
    use std::io::ErrorKind::*;
    match e.kind() {
        NotFound => nfsstat3::NFS3ERR_NOENT,
        PermissionDenied => nfsstat3::NFS3ERR_ACCES,
        AlreadyExists => nfsstat3::NFS3ERR_EXIST,
        _ => match e.raw_os_error() {
            // errno values (Linux): ENOTDIR, EISDIR, ENOTEMPTY, ENOSPC.
            Some(20) => nfsstat3::NFS3ERR_NOTDIR,
            Some(21) => nfsstat3::NFS3ERR_ISDIR,
            Some(39) => nfsstat3::NFS3ERR_NOTEMPTY,
            Some(28) => nfsstat3::NFS3ERR_NOSPC,
            _ => nfsstat3::NFS3ERR_IO,
        },
    }
}

fn check_name(name: &[u8]) -> Result<&OsStr, nfsstat3> {
    if name.is_empty() || name.contains(&b'/') || name.contains(&0) {
        return Err(nfsstat3::NFS3ERR_INVAL);
    }
    if name.len() > 255 {
        return Err(nfsstat3::NFS3ERR_NAMETOOLONG);
    }
    Ok(OsStr::from_bytes(name))
}

impl Mirror {
    fn new(root: PathBuf) -> Self {
        let mut maps = Maps {
            next: ROOT_ID,
            ..Default::default()
        };
        let id = maps.id_for(root);
        assert_eq!(id, ROOT_ID);
        Mirror {
            maps: RwLock::new(maps),
        }
    }

    fn path(&self, id: fileid3) -> Result<PathBuf, nfsstat3> {
        self.maps
            .read()
            .expect("poisoned")
            .paths
            .get(&id)
            .cloned()
            .ok_or(nfsstat3::NFS3ERR_STALE)
    }

    fn child(&self, dirid: fileid3, name: &filename3) -> Result<PathBuf, nfsstat3> {
        let dir = self.path(dirid)?;
        match &name.0[..] {
            b"." => Ok(dir),
            b".." => Ok(dir.parent().map(Path::to_path_buf).unwrap_or(dir)),
            n => Ok(dir.join(check_name(n)?)),
        }
    }

    fn id_for(&self, path: PathBuf) -> fileid3 {
        if let Some(id) = self.maps.read().expect("poisoned").ids.get(&path) {
            return *id;
        }
        self.maps.write().expect("poisoned").id_for(path)
    }

    fn attr(&self, id: fileid3, path: &Path) -> Result<fattr3, nfsstat3> {
        let m = fs::symlink_metadata(path).map_err(io_err)?;
        Ok(metadata_to_fattr3(id, &m))
    }

    fn forget(&self, path: &Path) {
        self.maps.write().expect("poisoned").forget(path);
    }

    /// The directory's entries sorted by id, re-read when its mtime changed.
    fn listing(&self, dirid: fileid3, dir: &Path) -> Result<Vec<(fileid3, Vec<u8>)>, nfsstat3> {
        let m = fs::metadata(dir).map_err(io_err)?;
        if !m.is_dir() {
            return Err(nfsstat3::NFS3ERR_NOTDIR);
        }
        let mtime = (m.mtime(), m.mtime_nsec());
        if let Some(l) = self.maps.read().expect("poisoned").dirs.get(&dirid) {
            if l.mtime == mtime {
                return Ok(l.entries.clone());
            }
        }
        let mut names = Vec::new();
        for e in fs::read_dir(dir).map_err(io_err)? {
            let e = e.map_err(io_err)?;
            names.push(e.file_name());
        }
        let mut maps = self.maps.write().expect("poisoned");
        let mut entries: Vec<(fileid3, Vec<u8>)> = names
            .into_iter()
            .map(|n| (maps.id_for(dir.join(&n)), n.as_bytes().to_vec()))
            .collect();
        entries.sort_unstable_by_key(|e| e.0);
        maps.dirs.insert(
            dirid,
            DirListing {
                mtime,
                entries: entries.clone(),
            },
        );
        Ok(entries)
    }
}

fn apply_create_attrs(f: &fs::File, attr: &sattr3) {
    if let set_mode3::mode(mode) = attr.mode {
        let _ = f.set_permissions(fs::Permissions::from_mode(mode & 0o7777));
    }
    if let set_size3::size(s) = attr.size {
        let _ = f.set_len(s);
    }
}

#[async_trait]
impl NFSFileSystem for Mirror {
    fn capabilities(&self) -> VFSCapabilities {
        VFSCapabilities::ReadWrite
    }

    fn root_dir(&self) -> fileid3 {
        ROOT_ID
    }

    async fn lookup(&self, dirid: fileid3, filename: &filename3) -> Result<fileid3, nfsstat3> {
        let p = self.child(dirid, filename)?;
        fs::symlink_metadata(&p).map_err(io_err)?;
        Ok(self.id_for(p))
    }

    async fn getattr(&self, id: fileid3) -> Result<fattr3, nfsstat3> {
        let p = self.path(id)?;
        self.attr(id, &p)
    }

    async fn setattr(&self, id: fileid3, setattr: sattr3) -> Result<fattr3, nfsstat3> {
        let p = self.path(id)?;
        path_setattr(&p, &setattr).await?;
        self.attr(id, &p)
    }

    async fn read(
        &self,
        id: fileid3,
        offset: u64,
        count: u32,
    ) -> Result<(Vec<u8>, bool), nfsstat3> {
        let p = self.path(id)?;
        let f = fs::File::open(&p).map_err(io_err)?;
        let len = f.metadata().map_err(io_err)?.len();
        if offset >= len {
            return Ok((Vec::new(), true));
        }
        let want = (count as u64).min(len - offset) as usize;
        let mut buf = vec![0u8; want];
        let mut done = 0;
        while done < want {
            match f.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(e)),
            }
        }
        buf.truncate(done);
        Ok((buf, offset + done as u64 >= len))
    }

    async fn write(&self, id: fileid3, offset: u64, data: &[u8]) -> Result<fattr3, nfsstat3> {
        let p = self.path(id)?;
        let f = fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .map_err(io_err)?;
        f.write_all_at(data, offset).map_err(io_err)?;
        let m = f.metadata().map_err(io_err)?;
        Ok(metadata_to_fattr3(id, &m))
    }

    async fn create(
        &self,
        dirid: fileid3,
        filename: &filename3,
        attr: sattr3,
    ) -> Result<(fileid3, fattr3), nfsstat3> {
        let p = self.child(dirid, filename)?;
        let f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&p)
            .map_err(io_err)?;
        apply_create_attrs(&f, &attr);
        let m = f.metadata().map_err(io_err)?;
        let id = self.id_for(p);
        Ok((id, metadata_to_fattr3(id, &m)))
    }

    async fn create_exclusive(
        &self,
        dirid: fileid3,
        filename: &filename3,
    ) -> Result<fileid3, nfsstat3> {
        let p = self.child(dirid, filename)?;
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&p)
            .map_err(io_err)?;
        Ok(self.id_for(p))
    }

    async fn mkdir(
        &self,
        dirid: fileid3,
        dirname: &filename3,
    ) -> Result<(fileid3, fattr3), nfsstat3> {
        let p = self.child(dirid, dirname)?;
        fs::create_dir(&p).map_err(io_err)?;
        let id = self.id_for(p.clone());
        Ok((id, self.attr(id, &p)?))
    }

    async fn remove(&self, dirid: fileid3, filename: &filename3) -> Result<(), nfsstat3> {
        let p = self.child(dirid, filename)?;
        let m = fs::symlink_metadata(&p).map_err(io_err)?;
        if m.is_dir() {
            fs::remove_dir(&p).map_err(io_err)?;
        } else {
            fs::remove_file(&p).map_err(io_err)?;
        }
        self.forget(&p);
        Ok(())
    }

    async fn rename(
        &self,
        from_dirid: fileid3,
        from_filename: &filename3,
        to_dirid: fileid3,
        to_filename: &filename3,
    ) -> Result<(), nfsstat3> {
        let from = self.child(from_dirid, from_filename)?;
        let to = self.child(to_dirid, to_filename)?;
        fs::rename(&from, &to).map_err(io_err)?;
        let mut maps = self.maps.write().expect("poisoned");
        maps.forget(&to);
        if let Some(id) = maps.ids.remove(&from) {
            maps.paths.insert(id, to.clone());
            maps.ids.insert(to, id);
            // Children of a renamed directory keep stale paths; the benchmark renames no
            // directories, so keep it simple: drop cached listings.
            maps.dirs.clear();
        }
        Ok(())
    }

    async fn readdir(
        &self,
        dirid: fileid3,
        start_after: fileid3,
        max_entries: usize,
    ) -> Result<ReadDirResult, nfsstat3> {
        let dir = self.path(dirid)?;
        let entries = self.listing(dirid, &dir)?;
        let start = entries.partition_point(|e| e.0 <= start_after);
        let mut out = ReadDirResult {
            entries: Vec::with_capacity(max_entries.min(entries.len() - start)),
            end: false,
        };
        let mut i = start;
        while i < entries.len() && out.entries.len() < max_entries {
            let (id, name) = &entries[i];
            let p = dir.join(OsStr::from_bytes(name));
            // An entry removed since the listing was read is skipped.
            if let Ok(m) = fs::symlink_metadata(&p) {
                out.entries.push(DirEntry {
                    fileid: *id,
                    name: nfsstring(name.clone()),
                    attr: metadata_to_fattr3(*id, &m),
                });
            }
            i += 1;
        }
        out.end = i >= entries.len();
        Ok(out)
    }

    async fn symlink(
        &self,
        dirid: fileid3,
        linkname: &filename3,
        symlink: &nfspath3,
        _attr: &sattr3,
    ) -> Result<(fileid3, fattr3), nfsstat3> {
        let p = self.child(dirid, linkname)?;
        std::os::unix::fs::symlink(OsStr::from_bytes(&symlink.0), &p).map_err(io_err)?;
        let id = self.id_for(p.clone());
        Ok((id, self.attr(id, &p)?))
    }

    async fn readlink(&self, id: fileid3) -> Result<nfspath3, nfsstat3> {
        let p = self.path(id)?;
        let t = fs::read_link(&p).map_err(io_err)?;
        Ok(nfsstring(t.as_os_str().as_bytes().to_vec()))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: nfsserve-mirror DIR ADDR:PORT [--export NAME] [--ready-file FILE]";
    if args.len() < 3 {
        eprintln!("{usage}");
        std::process::exit(2);
    }
    let dir = fs::canonicalize(&args[1]).unwrap_or_else(|e| {
        eprintln!("{}: {e}", args[1]);
        std::process::exit(2)
    });
    let addr = args[2].clone();
    let mut export = "export".to_string();
    let mut ready: Option<PathBuf> = None;
    let mut i = 3;
    while i < args.len() {
        match (args[i].as_str(), args.get(i + 1)) {
            ("--export", Some(v)) => export = v.clone(),
            ("--ready-file", Some(v)) => ready = Some(PathBuf::from(v)),
            _ => {
                eprintln!("{usage}");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    let threads = std::env::var("NFSSERVE_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let mut listener = NFSTcpListener::bind(&addr, Mirror::new(dir))
            .await
            .unwrap_or_else(|e| {
                eprintln!("bind {addr}: {e}");
                std::process::exit(1)
            });
        listener.with_export_name(&export);
        if let Some(r) = ready {
            let mut f = fs::File::create(&r).expect("ready file");
            let _ = writeln!(
                f,
                "tcp {}:{}",
                listener.get_listen_ip(),
                listener.get_listen_port()
            );
        }
        tokio::select! {
            r = listener.handle_forever() => { if let Err(e) = r { eprintln!("serve: {e}"); } }
            _ = tokio::signal::ctrl_c() => {}
            _ = async {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut s) => { s.recv().await; }
                    Err(_) => std::future::pending::<()>().await,
                }
            } => {}
        }
    });
}
