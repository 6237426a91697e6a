//! The CephFS backend (issue 19): an export served from a directory of a CephFS file system
//! through libcephfs ([`rnfs_cephfs`]), so that several rnfsd heads can serve one file system.
//!
//! * Every call runs as the caller: a libcephfs `UserPerm` of the squashed [`Identity`], so the
//!   Ceph client checks permissions as the kernel does for the local backend (RFC 1813 §4.4).
//! * A handle's body is the CephFS inode number and snapshot id (both big-endian), sealed under
//!   the export's key ([`handle`]): it names the same object on every head that has the same
//!   server key and export. It is resolved with `ceph_ll_lookup_vino`, which asks the MDS when
//!   this client has not seen the inode.
//! * Every operation that changes metadata is durable before its reply: the inodes involved
//!   are synced (`ceph_ll_sync_inode`), which flushes a SETATTR the Ceph client only cached and
//!   waits for the MDS's journal ("safe" reply) of a create, rename or unlink.
//! * WRITE with UNSTABLE leaves the data in the Ceph client's cache; COMMIT (`ceph_ll_fsync`)
//!   makes it durable on the OSDs. DATA_SYNC and FILE_SYNC writes are synced before the reply
//!   (RFC 1813 §3.3.7, §3.3.21).
//!
//! * EXCLUSIVE CREATE keeps the client's verifier in the new file's atime and mtime, as knfsd
//!   does (RFC 1813 §3.3.8); MKNOD and LINK are served as by the local backend.
//!
//! Not yet supported (NFS3ERR_NOTSUPP): the NFSv4.2 extras (the trait's defaults). Handles of
//! objects moved out of the export's directory still resolve (no subtree check, like Linux's
//! default `no_subtree_check`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rnfs_cephfs::{Errno, Mount, MountConfig, Perm, SetTime as CephSetTime, Stat, Time};

mod deleg;
mod v42;

use crate::ceph_files::OpenFiles;
use crate::ceph_listing::{Listings, Parked};
use crate::handle::{self, ExportKey, HandleKey};
use crate::{
    access, verifier_times, Attr, CreateMode, Created, DirEntry, DirListing, Error, FileHandle,
    FileType, FsStat, Identity, NodeKind, PathConf, ReadData, Result, SetAttrs, SetTime, Stability,
    Timestamp, VerifiedHandle, Wcc, WccAttr, Written, DEFAULT_DIR_MODE, DEFAULT_MODE,
};

/// Where a CephFS export comes from (the export's `ceph_*` settings and `path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CephConfig {
    pub conf: PathBuf,
    pub client_id: String,
    /// `None`: the cluster's default file system.
    pub fs_name: Option<String>,
    /// The directory inside the file system that is exported.
    pub path: String,
    /// This head's identity for this export, the same across its restarts: a restarted head
    /// evicts its previous instance's Ceph session at once (see `rnfs_cephfs::MountConfig`).
    pub uuid: Option<String>,
}

/// What [`evict_session`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// A session had that uuid: it is gone, its caps and locks released, its client blocklisted.
    Evicted,
    /// No session had that uuid (closed, already evicted, or timed out by the MDS).
    NoSession,
    /// `still_wanted` said no.
    Skipped,
}

/// Evicts the CephFS session named `uuid` (another head's client of an export: see
/// [`CephConfig::uuid`]) from the file system `cfg` names, as the cluster's admin, so the caps
/// and record locks it held stop blocking everyone else. `still_wanted` is asked after the slow
/// set-up, just before the eviction, which is then one round trip to the MDS. Blocking.
pub fn evict_session(
    cfg: &CephConfig,
    uuid: &str,
    still_wanted: &dyn Fn() -> bool,
) -> std::result::Result<Eviction, String> {
    let evictor = rnfs_cephfs::Evictor::new(&MountConfig {
        conf: cfg.conf.clone(),
        client_id: cfg.client_id.clone(),
        fs_name: cfg.fs_name.clone(),
        root: "/".into(),
        uuid: None,
    })
    .map_err(|e| e.to_string())?;
    if !still_wanted() {
        return Ok(Eviction::Skipped);
    }
    match evictor.evict(uuid) {
        Ok(true) => Ok(Eviction::Evicted),
        Ok(false) => Ok(Eviction::NoSession),
        Err(e) => Err(e.to_string()),
    }
}

/// One CephFS export.
pub struct CephFs {
    export_id: u32,
    mount: Mount,
    key: ExportKey,
    root_handle: FileHandle,
    root_ino: u64,
    describe: String,
    /// `describe` plus the cluster's config file and client id, which a reload compares.
    source_identity: String,
    /// Listings stopped at a page boundary, continued by the next page.
    listings: Listings<rnfs_cephfs::Dir>,
    /// Files kept open between a caller's READs (read-ahead lives with them).
    files: OpenFiles<rnfs_cephfs::File>,
    /// Read delegations held for NFSv4 clients (see `deleg`).
    delegations: deleg::Delegations,
}

const BODY_LEN: usize = 16;
/// Directory levels [`CephFs::is_ancestor`] walks up at most.
const ANCESTORS_MAX: usize = 256;
/// Largest READ served at once.
const READ_BYTES_MAX: u32 = 1 << 20;

fn body(ino: u64, snap: u64) -> [u8; BODY_LEN] {
    let mut b = [0u8; BODY_LEN];
    b[..8].copy_from_slice(&ino.to_be_bytes());
    b[8..].copy_from_slice(&snap.to_be_bytes());
    b
}

fn parse_body(b: &[u8]) -> Result<(u64, u64)> {
    let b: &[u8; BODY_LEN] = b.try_into().map_err(|_| Error::BadHandle)?;
    let (ino, snap) = b.split_at(8);
    let ino = u64::from_be_bytes(ino.try_into().map_err(|_| Error::BadHandle)?);
    let snap = u64::from_be_bytes(snap.try_into().map_err(|_| Error::BadHandle)?);
    Ok((ino, snap))
}

pub(crate) fn err(e: rnfs_cephfs::Error) -> Error {
    match e {
        rnfs_cephfs::Error::Call {
            errno: Errno::Blocklisted | Errno::NotConnected,
            ..
        } => Error::Fenced,
        rnfs_cephfs::Error::Call {
            errno: Errno::NoEnt,
            op: "ceph_ll_lookup_vino",
        } => Error::Stale,
        e => Error::from_errno(e.errno()),
    }
}

fn perm(who: &Identity) -> Result<Perm> {
    Perm::new(who.uid, who.gid, &who.groups).map_err(err)
}

impl CephFs {
    /// Mounts `cfg.path` of the file system and serves it as export `export_id`.
    pub fn new(
        export_id: u32,
        cfg: &CephConfig,
        key: &HandleKey,
    ) -> std::result::Result<CephFs, String> {
        let mount = Mount::new(&MountConfig {
            conf: cfg.conf.clone(),
            client_id: cfg.client_id.clone(),
            fs_name: cfg.fs_name.clone(),
            root: cfg.path.clone(),
            uuid: cfg.uuid.clone(),
        })
        .map_err(|e| format!("cannot mount CephFS {}: {e}", cfg.path))?;
        let root = mount.root().map_err(|e| e.to_string())?;
        let st = mount
            .getattr(&root, &Perm::new(0, 0, &[]).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        let describe = format!(
            "ceph:{}:{}",
            cfg.fs_name.as_deref().unwrap_or("(default)"),
            cfg.path
        );
        let root_body = body(st.ino, rnfs_cephfs::CEPH_NOSNAP);
        let key = key.for_export(export_id, &root_body, describe.as_bytes());
        let root_handle = handle::seal(&key, export_id, &root_body);
        // Not part of `describe`, which seeds the handle key: heads on other machines may keep
        // the same cluster's config elsewhere and must still share handles.
        let source_identity = format!(
            "{describe} conf={} client_id={}",
            cfg.conf.display(),
            cfg.client_id
        );
        let delegations = deleg::Delegations::new(&mount);
        Ok(CephFs {
            export_id,
            mount,
            key,
            root_handle,
            root_ino: st.ino,
            describe,
            source_identity,
            listings: Listings::default(),
            files: OpenFiles::default(),
            delegations,
        })
    }

    fn inode(&self, fh: &VerifiedHandle) -> Result<rnfs_cephfs::Inode> {
        let (ino, snap) = parse_body(fh.body())?;
        self.mount.lookup_ino(ino, snap).map_err(err)
    }

    fn seal(&self, st: &Stat) -> FileHandle {
        handle::seal(
            &self.key,
            self.export_id,
            &body(st.ino, rnfs_cephfs::CEPH_NOSNAP),
        )
    }

    fn attr(&self, st: &Stat) -> Attr {
        attr(st, u64::from(self.export_id))
    }

    fn stat(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
    ) -> Result<(rnfs_cephfs::Inode, Stat, Perm)> {
        let p = perm(who)?;
        let i = self.inode(fh)?;
        let st = self.mount.getattr(&i, &p).map_err(err)?;
        // A removed file may linger in this client's cache (or be open elsewhere): to NFS it is
        // gone.
        if st.nlink == 0 {
            return Err(Error::Stale);
        }
        Ok((i, st, p))
    }

    fn dir_wcc(&self, dir: &rnfs_cephfs::Inode, p: &Perm, before: &Stat) -> Wcc {
        Wcc {
            before: Some(WccAttr::from(&self.attr(before))),
            after: self.mount.getattr(dir, p).ok().map(|s| self.attr(&s)),
        }
    }

    fn created(&self, dir: &rnfs_cephfs::Inode, p: &Perm, before: &Stat, st: &Stat) -> Created {
        Created {
            handle: self.seal(st),
            attr: self.attr(st),
            dir: self.dir_wcc(dir, p, before),
        }
    }
}

fn time(t: Time) -> Timestamp {
    Timestamp {
        seconds: u32::try_from(t.seconds).unwrap_or(if t.seconds < 0 { 0 } else { u32::MAX }),
        nanoseconds: t.nanoseconds,
    }
}

/// `Ok` for a regular file; [`Error::IsDir`] for a directory, [`Error::Inval`] for the rest
/// (what reading, writing or sizing anything else answers).
fn regular(mode: u32) -> Result<()> {
    match file_type(mode) {
        FileType::Regular => Ok(()),
        FileType::Directory => Err(Error::IsDir),
        _ => Err(Error::Inval),
    }
}

fn file_type(mode: u32) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFBLK => FileType::BlockDevice,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFSOCK => FileType::Socket,
        libc::S_IFIFO => FileType::Fifo,
        _ => FileType::Regular,
    }
}

fn attr(st: &Stat, fsid: u64) -> Attr {
    Attr {
        file_type: file_type(st.mode),
        mode: st.mode & 0o7777,
        nlink: st.nlink,
        uid: st.uid,
        gid: st.gid,
        size_bytes: st.size,
        used_bytes: st.blocks.saturating_mul(512),
        rdev: (libc::major(st.rdev), libc::minor(st.rdev)),
        fsid,
        fileid: st.ino,
        atime: time(st.atime),
        mtime: time(st.mtime),
        ctime: time(st.ctime),
    }
}

fn set_time(t: SetTime) -> CephSetTime {
    match t {
        SetTime::DontChange => CephSetTime::Keep,
        SetTime::ServerTime => CephSetTime::Now,
        SetTime::ClientTime(ts) => CephSetTime::At(Time {
            seconds: i64::from(ts.seconds),
            nanoseconds: ts.nanoseconds,
        }),
    }
}

fn set_attr(a: &SetAttrs) -> rnfs_cephfs::SetAttr {
    rnfs_cephfs::SetAttr {
        mode: a.mode,
        uid: a.uid,
        gid: a.gid,
        size: a.size_bytes,
        atime: set_time(a.atime),
        mtime: set_time(a.mtime),
    }
}

/// Which ACCESS3 bits the mode bits grant `who` (the client enforces the same rules on each
/// call; this is the advisory answer ACCESS gives).
fn allowed(who: &Identity, st: &Stat, requested: u32) -> u32 {
    let class = if who.uid == 0 {
        return requested;
    } else if who.uid == st.uid {
        (st.mode >> 6) & 7
    } else if who.gid == st.gid || who.groups.contains(&st.gid) {
        (st.mode >> 3) & 7
    } else {
        st.mode & 7
    };
    let dir = st.mode & libc::S_IFMT == libc::S_IFDIR;
    let mut ok = 0;
    if class & 4 != 0 {
        ok |= access::READ;
    }
    if class & 2 != 0 {
        ok |= access::MODIFY | access::EXTEND | if dir { access::DELETE } else { 0 };
    }
    if class & 1 != 0 {
        ok |= if dir { access::LOOKUP } else { access::EXECUTE };
    }
    ok & requested
}

impl crate::Backend for CephFs {
    /// NLM locks are held as CephFS record locks (see `ceph_lock`): the MDS arbitrates heads.
    fn open_lock_file(&self, fh: &VerifiedHandle) -> Result<Option<Box<dyn crate::LockFile>>> {
        crate::ceph_lock::open(&self.mount, &self.inode(fh)?).map(Some)
    }

    fn lock_files_may_wait(&self) -> bool {
        true
    }

    fn lease(&self, fh: &VerifiedHandle, write: bool) -> Result<bool> {
        self.take_delegation(fh, write)
    }

    fn unlease(&self, key: &[u8]) {
        self.delegations.release(key);
    }

    fn leases_broken(&self) -> Vec<Bytes> {
        self.delegations.recalled()
    }

    fn lease_break_ms(&self) -> Option<u64> {
        self.delegations.timeout_ms()
    }

    // NFSv4.2's operations live in `v42`.

    fn seek(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        what: crate::SeekWhat,
        offset: u64,
    ) -> Result<crate::Sought> {
        self.do_seek(who, fh, what, offset)
    }

    fn allocate(&self, who: &Identity, fh: &VerifiedHandle, offset: u64, len: u64) -> Result<Wcc> {
        self.do_fallocate(who, fh, offset, len, false)
    }

    fn deallocate(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        offset: u64,
        len: u64,
    ) -> Result<Wcc> {
        self.do_fallocate(who, fh, offset, len, true)
    }

    fn copy_range(
        &self,
        who: &Identity,
        src: &VerifiedHandle,
        dst: &VerifiedHandle,
        offsets: (u64, u64),
        len: u64,
    ) -> Result<u64> {
        self.do_copy_range(who, src, dst, offsets, len)
    }

    fn xattr_support(&self) -> bool {
        true
    }

    fn getxattr(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        name: &[u8],
        max_bytes: usize,
    ) -> Result<Bytes> {
        self.do_getxattr(who, fh, name, max_bytes)
    }

    fn setxattr(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        name: &[u8],
        value: &[u8],
        how: crate::XattrSet,
    ) -> Result<Wcc> {
        self.do_setxattr(who, fh, name, value, how)
    }

    fn listxattrs(&self, who: &Identity, fh: &VerifiedHandle) -> Result<Vec<Bytes>> {
        self.do_listxattrs(who, fh)
    }

    fn removexattr(&self, who: &Identity, fh: &VerifiedHandle, name: &[u8]) -> Result<Wcc> {
        self.do_removexattr(who, fh, name)
    }

    fn root(&self) -> FileHandle {
        self.root_handle.clone()
    }

    fn handle_key(&self) -> &ExportKey {
        &self.key
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn source_identity(&self) -> String {
        self.source_identity.clone()
    }

    fn getattr(&self, who: &Identity, fh: &VerifiedHandle) -> Result<Attr> {
        let (_, st, _) = self.stat(who, fh)?;
        Ok(self.attr(&st))
    }

    fn lookup(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
    ) -> Result<(FileHandle, Attr)> {
        let p = perm(who)?;
        let d = self.inode(dir)?;
        let (_, st) = self.mount.lookup(&d, name, &p).map_err(err)?;
        Ok((self.seal(&st), self.attr(&st)))
    }

    fn access(&self, who: &Identity, fh: &VerifiedHandle, requested: u32) -> Result<(u32, Attr)> {
        let (_, st, _) = self.stat(who, fh)?;
        Ok((allowed(who, &st, requested), self.attr(&st)))
    }

    fn readlink(&self, who: &Identity, fh: &VerifiedHandle) -> Result<(Bytes, Attr)> {
        let (i, st, p) = self.stat(who, fh)?;
        let target = self.mount.readlink(&i, &p).map_err(err)?;
        Ok((Bytes::from(target), self.attr(&st)))
    }

    fn read(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        offset: u64,
        count: u32,
    ) -> Result<ReadData> {
        let (i, st, p) = self.stat(who, fh)?;
        if file_type(st.mode) != FileType::Regular {
            return Err(Error::Inval);
        }
        let f = self.open_kept(&i, &st, who, &p)?;
        let mut buf = vec![0u8; count.min(READ_BYTES_MAX) as usize];
        let mut got = 0;
        while got < buf.len() {
            let n = f.read(offset + got as u64, &mut buf[got..]).map_err(err)?;
            if n == 0 {
                break;
            }
            got += n;
        }
        buf.truncate(got);
        let eof = offset.saturating_add(got as u64) >= st.size;
        Ok(ReadData {
            data: Bytes::from(buf),
            eof,
            attr: self.attr(&st),
        })
    }

    fn readdir(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        cookie: u64,
        verifier: [u8; 8],
        plus: bool,
        sink: &mut dyn FnMut(DirEntry) -> bool,
    ) -> Result<DirListing> {
        let _ = verifier;
        let (d, st, p) = self.stat(who, dir)?;
        let parked = (cookie != 0)
            .then(|| self.listings.take(st.ino, cookie, who, Instant::now()))
            .flatten();
        let (mut stream, mut pending) = match parked {
            Some(p) => (p.stream, p.pending),
            None => {
                let mut stream = self.mount.opendir(&d, &p).map_err(err)?;
                if cookie != 0 {
                    stream.seek(i64::try_from(cookie).map_err(|_| Error::BadCookie)?);
                }
                (stream, None)
            }
        };
        let mut at = cookie;
        let mut eof = true;
        loop {
            let e = match pending.take() {
                Some(e) => e,
                None => match stream.next_entry().map_err(err)? {
                    Some(e) => e,
                    None => break,
                },
            };
            let next = u64::try_from(e.next).map_err(|_| Error::Io)?;
            let entry = DirEntry {
                fileid: e.stat.ino,
                cookie: next,
                attr: plus.then(|| self.attr(&e.stat)),
                handle: (plus && e.name != b"..").then(|| self.seal(&e.stat)),
                name: Bytes::copy_from_slice(&e.name),
            };
            if !sink(entry) {
                eof = false;
                // The client asks for the rest at `at`: this stream goes on from there.
                let parked = Parked {
                    dir_ino: st.ino,
                    cookie: at,
                    who: who.clone(),
                    stream,
                    pending: Some(e),
                };
                self.listings.park(parked, Instant::now());
                break;
            }
            at = next;
        }
        Ok(DirListing {
            eof,
            verifier: [0; 8],
            dir_attr: self.attr(&st),
        })
    }

    fn fsstat(&self, who: &Identity, fh: &VerifiedHandle) -> Result<(FsStat, Attr)> {
        let (i, st, _) = self.stat(who, fh)?;
        let s = self.mount.statfs(&i).map_err(err)?;
        let fs = FsStat {
            total_bytes: s.blocks.saturating_mul(s.block_bytes),
            free_bytes: s.blocks_free.saturating_mul(s.block_bytes),
            avail_bytes: s.blocks_avail.saturating_mul(s.block_bytes),
            total_files: s.files,
            free_files: s.files_free,
            avail_files: s.files_free,
        };
        Ok((fs, self.attr(&st)))
    }

    fn pathconf(&self, who: &Identity, fh: &VerifiedHandle) -> Result<(PathConf, Attr)> {
        let (_, st, _) = self.stat(who, fh)?;
        let pc = PathConf {
            link_max: u32::MAX,
            name_max: rnfs_cephfs::NAME_BYTES_MAX as u32,
            no_trunc: true,
            chown_restricted: true,
            case_insensitive: false,
            case_preserving: true,
        };
        Ok((pc, self.attr(&st)))
    }

    fn setattr(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        attrs: &SetAttrs,
        guard: Option<Timestamp>,
    ) -> Result<Wcc> {
        let (i, before, p) = self.stat(who, fh)?;
        if guard.is_some_and(|g| g != time(before.ctime)) {
            return Err(Error::NotSync);
        }
        // As the local backend (and knfsd): only a regular file has a size to set; CephFS
        // would take a directory's "size" (its recursive byte count) as given.
        if attrs.size_bytes.is_some() {
            regular(before.mode)?;
        }
        let after = self.mount.setattr(&i, &set_attr(attrs), &p).map_err(err)?;
        self.durable(&[&i])?;
        Ok(Wcc {
            before: Some(WccAttr::from(&self.attr(&before))),
            after: Some(self.attr(&after)),
        })
    }

    fn write(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        offset: u64,
        data: &[u8],
        stable: Stability,
    ) -> Result<Written> {
        let (i, before, p) = self.stat(who, fh)?;
        // Opened for this call only: a file kept open for writing, with data in this client's
        // cache, once held up another head's read of it for 30 s (tests/ceph_export.rs).
        let f = self.mount.open(&i, libc::O_WRONLY, &p).map_err(err)?;
        f.write_all(offset, data).map_err(err)?;
        let done = data.len();
        let committed = if stable == Stability::Unstable {
            Stability::Unstable
        } else {
            f.fsync(false).map_err(err)?;
            Stability::FileSync
        };
        let after = self.mount.getattr(&i, &p).ok().map(|s| self.attr(&s));
        Ok(Written {
            count: u32::try_from(done).map_err(|_| Error::Io)?,
            committed,
            file: Wcc {
                before: Some(WccAttr::from(&self.attr(&before))),
                after,
            },
        })
    }

    fn commit(&self, who: &Identity, fh: &VerifiedHandle, offset: u64, count: u32) -> Result<Wcc> {
        let _ = (offset, count);
        let (i, before, p) = self.stat(who, fh)?;
        regular(before.mode)?;
        // ceph_ll_fsync flushes the inode's dirty data, whichever open file wrote it.
        let f = self.mount.open(&i, libc::O_RDONLY, &p).map_err(err)?;
        f.fsync(false).map_err(err)?;
        let a = self.attr(&before);
        Ok(Wcc {
            before: Some(WccAttr::from(&a)),
            after: Some(a),
        })
    }

    fn create(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
        how: &CreateMode,
    ) -> Result<Created> {
        let (d, before, p) = self.stat(who, dir)?;
        let (attrs, guarded) = match how {
            CreateMode::Unchecked(a) => (a, false),
            CreateMode::Guarded(a) => (a, true),
            CreateMode::Exclusive(verifier) => {
                return self.create_exclusive(&d, &p, &before, name, verifier)
            }
        };
        let mode = attrs.mode.unwrap_or(DEFAULT_MODE);
        // O_EXCL even for UNCHECKED: over an existing file only the size may change (RFC 1813
        // §3.3.8), so we must know whether the file is new.
        match self
            .mount
            .create(&d, name, mode, libc::O_WRONLY | libc::O_EXCL, &p)
        {
            Ok((i, f, st)) => {
                drop(f);
                let st = self.apply_new(&i, who, &p, attrs, st)?;
                self.durable(&[&i, &d])?;
                Ok(self.created(&d, &p, &before, &st))
            }
            Err(e) if e.errno() == libc::EEXIST && !guarded => {
                let (i, st) = self.mount.lookup(&d, name, &p).map_err(err)?;
                match file_type(st.mode) {
                    FileType::Regular => {}
                    FileType::Directory => return Err(Error::IsDir),
                    _ => return Err(Error::Exist),
                }
                let st = match attrs.size_bytes {
                    Some(size) => {
                        let only_size = SetAttrs {
                            size_bytes: Some(size),
                            ..SetAttrs::default()
                        };
                        self.mount
                            .setattr(&i, &set_attr(&only_size), &p)
                            .map_err(err)?
                    }
                    None => st,
                };
                self.durable(&[&i])?;
                Ok(self.created(&d, &p, &before, &st))
            }
            Err(e) => Err(err(e)),
        }
    }

    fn mkdir(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
        attrs: &SetAttrs,
    ) -> Result<Created> {
        let (d, before, p) = self.stat(who, dir)?;
        let (i, st) = self
            .mount
            .mkdir(&d, name, attrs.mode.unwrap_or(DEFAULT_DIR_MODE), &p)
            .map_err(err)?;
        let st = self.apply_new(&i, who, &p, attrs, st)?;
        self.durable(&[&i, &d])?;
        Ok(self.created(&d, &p, &before, &st))
    }

    fn symlink(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
        target: &[u8],
        attrs: &SetAttrs,
    ) -> Result<Created> {
        let (d, before, p) = self.stat(who, dir)?;
        let (i, st) = self.mount.symlink(&d, name, target, &p).map_err(err)?;
        // A symlink's own mode means nothing (as on Linux): only owner and times are applied.
        let rest = SetAttrs {
            mode: None,
            ..attrs.clone()
        };
        let st = self.apply_new(&i, who, &p, &rest, st)?;
        self.durable(&[&i, &d])?;
        Ok(self.created(&d, &p, &before, &st))
    }

    fn remove(&self, who: &Identity, dir: &VerifiedHandle, name: &[u8]) -> Result<Wcc> {
        let (d, before, p) = self.stat(who, dir)?;
        let gone = self.mount.lookup(&d, name, &p).ok().map(|(_, st)| st.ino);
        self.mount.unlink(&d, name, &p).map_err(err)?;
        // A removed file's space comes back when its last open file closes.
        if let Some(ino) = gone {
            self.files.forget(ino);
        }
        self.durable(&[&d])?;
        Ok(self.dir_wcc(&d, &p, &before))
    }

    fn rmdir(&self, who: &Identity, dir: &VerifiedHandle, name: &[u8]) -> Result<Wcc> {
        let (d, before, p) = self.stat(who, dir)?;
        self.mount.rmdir(&d, name, &p).map_err(err)?;
        self.durable(&[&d])?;
        Ok(self.dir_wcc(&d, &p, &before))
    }

    fn rename(
        &self,
        who: &Identity,
        from_dir: &VerifiedHandle,
        from_name: &[u8],
        to_dir: &VerifiedHandle,
        to_name: &[u8],
    ) -> Result<(Wcc, Wcc)> {
        let (fd, fbefore, p) = self.stat(who, from_dir)?;
        let (td, tbefore, _) = self.stat(who, to_dir)?;
        // libcephfs 16.2.15 mishandles two renames (found by tests/differential.rs), so they
        // never reach it. A missing source fails, but leaves the target name marked as being
        // renamed in this client: every later lookup of it waits forever. And a rename onto
        // the same file (the same name, or another link to it) removes the name from this
        // client's cache though the MDS keeps it; POSIX makes it a no-op.
        let (_, source) = self.mount.lookup(&fd, from_name, &p).map_err(err)?;
        let found = self.mount.lookup(&td, to_name, &p).ok();
        let target = found.as_ref().map(|(_, t)| t);
        if target.is_some_and(|t| t.ino == source.ino) {
            return Ok((
                self.dir_wcc(&fd, &p, &fbefore),
                self.dir_wcc(&td, &p, &tbefore),
            ));
        }
        // Onto a directory that holds the source (an ancestor): ENOTEMPTY, as Linux answers
        // before looking at the types (CephFS would say EISDIR for a file).
        let source_dir = file_type(source.mode) == FileType::Directory;
        // A directory into itself or below it: EINVAL, Linux's first check after the names.
        if source_dir && self.is_ancestor(source.ino, &td, &tbefore, &p) {
            return Err(Error::Inval);
        }
        if let Some(t) = target {
            let target_dir = file_type(t.mode) == FileType::Directory;
            if target_dir && self.is_ancestor(t.ino, &fd, &fbefore, &p) {
                return Err(Error::NotEmpty);
            }
            // The types before the target's emptiness, as Linux's may_delete does (CephFS
            // answers ENOTEMPTY for a file onto a non-empty directory).
            match (source_dir, target_dir) {
                (false, true) => return Err(Error::IsDir),
                (true, false) => return Err(Error::NotDir),
                _ => {}
            }
        }
        // A file with other hard links: libcephfs would turn this client's cached entries
        // for those other names into trusted "no such name" entries (see
        // `Mount::rename_over_linked`).
        let over_linked =
            target.is_some_and(|t| t.nlink > 1 && file_type(t.mode) != FileType::Directory);
        if let Some((target_inode, _)) = found.as_ref().filter(|_| over_linked) {
            self.mount
                .rename_over_linked(&fd, from_name, &td, to_name, target_inode, &p)
                .map_err(err)?;
        } else {
            self.mount
                .rename(&fd, from_name, &td, to_name, &p)
                .map_err(err)?;
        }
        if let Some(t) = target {
            self.files.forget(t.ino);
        }
        self.durable(&[&fd, &td])?;
        Ok((
            self.dir_wcc(&fd, &p, &fbefore),
            self.dir_wcc(&td, &p, &tbefore),
        ))
    }

    fn mknod(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
        kind: crate::NodeKind,
        attrs: &SetAttrs,
    ) -> Result<Created> {
        let (file_type, rdev) = match kind {
            NodeKind::Fifo => (libc::S_IFIFO, 0),
            NodeKind::Socket => (libc::S_IFSOCK, 0),
            NodeKind::CharDevice { major, minor } => (libc::S_IFCHR, libc::makedev(major, minor)),
            NodeKind::BlockDevice { major, minor } => (libc::S_IFBLK, libc::makedev(major, minor)),
        };
        let (d, before, p) = self.stat(who, dir)?;
        let mode = file_type | (attrs.mode.unwrap_or(DEFAULT_MODE) & 0o7777);
        let (i, st) = self.mount.mknod(&d, name, mode, rdev, &p).map_err(err)?;
        let st = self.apply_new(&i, who, &p, attrs, st)?;
        self.durable(&[&i, &d])?;
        Ok(self.created(&d, &p, &before, &st))
    }

    fn link(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        dir: &VerifiedHandle,
        name: &[u8],
    ) -> Result<(Option<Attr>, Wcc)> {
        if fh.export_id() != self.export_id || dir.export_id() != self.export_id {
            return Err(Error::XDev);
        }
        let (i, _, p) = self.stat(who, fh)?;
        let (d, before, _) = self.stat(who, dir)?;
        if file_type(before.mode) != FileType::Directory {
            return Err(Error::NotDir);
        }
        // An existing name is EEXIST before anything else, as on Linux (CephFS checks the
        // source's type first: EPERM for a directory).
        if self.mount.lookup(&d, name, &p).is_ok() {
            return Err(Error::Exist);
        }
        self.mount.link(&i, &d, name, &p).map_err(err)?;
        self.durable(&[&i, &d])?;
        let attr = self.mount.getattr(&i, &p).ok().map(|s| self.attr(&s));
        Ok((attr, self.dir_wcc(&d, &p, &before)))
    }
}

impl CephFs {
    /// Makes a change durable before it is answered, as NFS requires of every operation that
    /// changes metadata (RFC 1813 §3.3, e.g. §3.3.2 SETATTR): the Ceph client may hold a SETATTR
    /// in its cache and answers a create or unlink on the MDS's early reply, before the MDS's
    /// journal has it; syncing the inodes involved waits for both.
    fn durable(&self, inodes: &[&rnfs_cephfs::Inode]) -> Result<()> {
        for i in inodes {
            self.mount.sync_inode(i, false).map_err(err)?;
        }
        Ok(())
    }

    /// The file `i` (attributes `st`) open for reading for `who`: kept from an earlier READ of
    /// theirs (see [`OpenFiles`]) when the mode bits still let them read, else opened now, as
    /// them, which is where libcephfs checks their permission.
    fn open_kept(
        &self,
        i: &rnfs_cephfs::Inode,
        st: &Stat,
        who: &Identity,
        p: &Perm,
    ) -> Result<Arc<rnfs_cephfs::File>> {
        let now = Instant::now();
        // NFS checks permission on every call (RFC 1813 §4.4), not once per open: a kept file
        // serves a caller who may still read, the owner included (whom a server lets read their
        // own file whatever its mode, for reads through an open file).
        if who.uid == st.uid || allowed(who, st, access::READ) == access::READ {
            if let Some(f) = self.files.get(st.ino, who, now) {
                return Ok(f);
            }
        }
        let f = Arc::new(self.mount.open(i, libc::O_RDONLY, p).map_err(err)?);
        self.files.keep(st.ino, who, f.clone(), now);
        Ok(f)
    }

    /// Whether directory `ino` is `dir` or one of its ancestors inside the export (walked up
    /// through `..`, at most [`ANCESTORS_MAX`] levels).
    fn is_ancestor(&self, ino: u64, dir: &rnfs_cephfs::Inode, dir_st: &Stat, p: &Perm) -> bool {
        if dir_st.ino == ino {
            return true;
        }
        if dir_st.ino == self.root_ino {
            return false;
        }
        let mut at = match self.mount.lookup(dir, b"..", p) {
            Ok(up) => up,
            Err(_) => return false,
        };
        for _ in 0..ANCESTORS_MAX {
            if at.1.ino == ino {
                return true;
            }
            if at.1.ino == self.root_ino {
                return false;
            }
            at = match self.mount.lookup(&at.0, b"..", p) {
                Ok(up) => up,
                Err(_) => return false,
            };
        }
        false
    }

    /// The attributes of a new object beyond its mode, as the local backend applies them: the
    /// owner only when the caller is root (anyone else's new object is already theirs), then
    /// size and times. The object stays if this fails, as with the local backend.
    fn apply_new(
        &self,
        i: &rnfs_cephfs::Inode,
        who: &Identity,
        p: &Perm,
        attrs: &SetAttrs,
        st: Stat,
    ) -> Result<Stat> {
        let rest = SetAttrs {
            mode: None,
            uid: attrs.uid.filter(|_| who.uid == 0),
            gid: attrs.gid.filter(|_| who.uid == 0),
            ..attrs.clone()
        };
        if rest == SetAttrs::default() {
            return Ok(st);
        }
        let st = self.mount.setattr(i, &set_attr(&rest), p).map_err(err)?;
        // chown clears set-user-ID/set-group-ID bits, even for root: the client asked for them.
        match attrs
            .mode
            .filter(|m| m & 0o6000 != 0 && rest.uid.or(rest.gid).is_some())
        {
            Some(mode) if file_type(st.mode) != FileType::Directory => {
                let m = SetAttrs {
                    mode: Some(mode),
                    ..SetAttrs::default()
                };
                self.mount.setattr(i, &set_attr(&m), p).map_err(err)
            }
            _ => Ok(st),
        }
    }

    /// EXCLUSIVE CREATE (RFC 1813 §3.3.8): the verifier is kept in the new file's atime and
    /// mtime (as knfsd and the local backend keep it), so a retransmitted CREATE finds the file
    /// it made and gets the same answer, and any other CREATE of the name gets EXIST.
    fn create_exclusive(
        &self,
        d: &rnfs_cephfs::Inode,
        p: &Perm,
        before: &Stat,
        name: &[u8],
        verifier: &[u8; 8],
    ) -> Result<Created> {
        let (v_mtime, v_atime) = verifier_times(verifier);
        let at = |seconds| {
            CephSetTime::At(Time {
                seconds,
                nanoseconds: 0,
            })
        };
        match self
            .mount
            .create(d, name, DEFAULT_MODE, libc::O_WRONLY | libc::O_EXCL, p)
        {
            Ok((i, f, _)) => {
                drop(f);
                let stamp = rnfs_cephfs::SetAttr {
                    mode: None,
                    uid: None,
                    gid: None,
                    size: None,
                    atime: at(v_atime),
                    mtime: at(v_mtime),
                };
                match self.mount.setattr(&i, &stamp, p) {
                    Ok(st) => {
                        self.durable(&[&i, d])?;
                        Ok(self.created(d, p, before, &st))
                    }
                    Err(e) => {
                        // Without its verifier a retransmission could not be recognised: undo.
                        let _ = self.mount.unlink(d, name, p);
                        Err(err(e))
                    }
                }
            }
            Err(e) if e.errno() == libc::EEXIST => {
                let (_, st) = self.mount.lookup(d, name, p).map_err(err)?;
                let ours = file_type(st.mode) == FileType::Regular
                    && st.size == 0
                    && st.mtime.seconds == v_mtime
                    && st.atime.seconds == v_atime;
                if !ours {
                    return Err(Error::Exist);
                }
                Ok(self.created(d, p, before, &st))
            }
            Err(e) => Err(err(e)),
        }
    }
}

impl CephFs {
    /// Directory listings stopped at a page boundary and kept for their next page.
    pub fn parked_listings(&self) -> usize {
        self.listings.parked()
    }

    /// Files kept open between calls (see `ceph_files`).
    pub fn kept_files(&self) -> usize {
        self.files.kept()
    }

    /// The CephFS inode number of the export's root.
    pub fn root_ino(&self) -> u64 {
        self.root_ino
    }
}
