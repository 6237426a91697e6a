//! [`LocalFs`]: one export served from a directory of a local Linux file system.
//!
//! # Objects are addressed by kernel file handles
//! A [`FileHandle`]'s body (see [`crate::handle`]) is the kernel's own handle for the object, from
//! `name_to_handle_at(2)`: the file system's handle type (i32, big-endian) followed by its opaque
//! bytes, at most [`MAX_KERNEL_HANDLE`] = 39 of them so the sealed handle fits `NFS3_FHSIZE` (ext4 and
//! xfs use 8 to 20; a file system whose root handle does not fit is refused by [`LocalFs::new`]).
//! Such handles survive server restarts and renames and go stale when the object is deleted, which is
//! what RFC 1813 §2.3.3 and §4.1 ask of NFS handles. No path strings and no handle→path table exist:
//! memory does not grow with the number of files clients have seen.
//!
//! # Every call: resolve as root, operate as the caller
//! 1. The handle was verified by the server before the call (tags → [`Error::BadHandle`], or
//!    [`Error::Stale`] for a handle of an earlier root of the export: see [`crate::handle`]; the
//!    key is this backend's, [`Backend::handle_key`]); its body is opened with
//!    `open_by_handle_at(2)` as an `O_PATH` descriptor. This needs `CAP_DAC_READ_SEARCH`, so it runs as root; `ESTALE`/`ENOENT`
//!    become [`Error::Stale`], and so does an object no longer inside the export ([`subtree`]).
//! 2. The operation itself runs with the caller's fsuid/fsgid/groups ([`rnfs_sys::identity`]), so
//!    the kernel's own permission checks decide (RFC 1813 §4.4): `openat` for LOOKUP needs search
//!    permission on the directory, READDIR re-opens the directory `O_RDONLY`, ACCESS asks
//!    `faccessat2(AT_EACCESS)`. READ (like WRITE) uses a descriptor from the open-file cache
//!    ([`cache`]) and asks `faccessat2` for the caller first, with RFC 1813 §4.4's two allowances
//!    (see [`write`](mod@write): the owner may read and write its file whatever the mode bits, and an
//!    executable file may be read). The last READ grant is remembered on the cached descriptor,
//!    keyed on the caller's ids and groups and the file's owner, group, mode and ctime: a stream of
//!    READs by one caller pays for the identity switch once, and any chmod/chown/ACL change asks
//!    again. Answers about an object changed less than [`GRANT_SETTLE_MS`] ago (2.25 s where
//!    timestamps are whole seconds) are not remembered: two changes within one tick of the clock
//!    can leave the same ctime (see `LocalFs::grant_key`). GETATTR, READLINK, FSSTAT and
//!    PATHCONF need no permission on the object (as for `stat(2)`/`readlink(2)` once the path is
//!    resolved) and run as root on the `O_PATH` descriptor, which saves the identity switches;
//!    GETATTR of a file in the open-file cache is one `fstat` of the cached descriptor.
//!
//! An object whose last link is gone (`st_nlink == 0`, e.g. a file still held open by a local
//! process or by the open-file cache) is [`Error::Stale`]: it is no longer part of the export.
//!
//! The modifying procedures, durability and the open-file cache are described in
//! [`write`](mod@write) and [`cache`]; NFSv4.2's sparse-file operations and extended attributes
//! in `v42`.
//!
//! Presenting a valid handle skips the search permissions of the directories above the object, as in
//! every NFS server: the MAC is what keeps clients from minting handles they were not given.
//!
//! # Staying inside the export
//! * `..` of the export root is the root itself (LOOKUP and READDIR alike); the parent is never
//!   exposed.
//! * Mounts are not crossed: a LOOKUP whose result is on another device or mount (a mount point inside
//!   the export) is refused with [`Error::Access`] and logged; READDIRPLUS lists such an entry without
//!   attributes or handle.
//! * An object a local process moves out of the export is [`Error::Stale`] through the handles
//!   issued for it, and so is LOOKUP `..` that would lead out: every handle resolution confirms
//!   that its object is still inside ([`subtree`]: the kernel's subtree check by handle, or the
//!   path of a cached descriptor). One exception: a file the kernel remembers no link of (its
//!   dentries evicted since the move) is served, as nothing tells where it is.
//!
//! # READDIR (RFC 1813 §3.3.16, §3.3.17)
//! * The directory is re-opened per call and positioned with `lseek` to the cookie; entries come from
//!   `getdents64` one 32 KiB buffer at a time, so memory stays bounded for any directory size and no
//!   state or lock is kept between calls. An entry's cookie is its `d_off`: the position just after it.
//! * `.` and `..` **are listed**, as knfsd does and as NFSv3 clients expect (the Linux client does not
//!   synthesise them for v3). `.` carries the directory's own fileid/attributes/handle; `..` of the
//!   export root carries the root's.
//! * Cookie verifier: the directory's mtime (seconds, nanoseconds; big-endian u32 each). It is
//!   returned as a change hint but **never checked**: ext4's cookies are hash positions that remain
//!   meaningful after the directory changes (entries added or removed are simply seen or not), so
//!   refusing an old verifier with NFS3ERR_BAD_COOKIE would only force clients to restart listings.
//!   A cookie `lseek` rejects is [`Error::BadCookie`].
//! * With `plus`, attributes and a handle are computed only for entries offered to the sink (never
//!   for read-ahead entries), from one `O_PATH` open of the name so the two always describe the same
//!   object. The work runs as the caller: without search permission on the directory the entries come
//!   without attributes or handle, as knfsd does.
//! * A directory listed again while unchanged is listed from memory ([`listing`]): the names,
//!   cookies and handles a previous READDIRPLUS pass found, with attributes `fstatat`ed afresh by
//!   the caller; what a pass given up early found answers the calls within it (a prefix, read on
//!   from the directory past its end). The directory is still re-opened as the caller (read
//!   permission) on every call.

pub mod cache;
mod copy;
pub mod lease;
pub mod listing;
pub mod subtree;
mod v42;
pub mod write;

pub use cache::DEFAULT_OPEN_FILES;

use std::ffi::{CStr, CString};
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use rnfs_sys::{identity, IdentityGuard, KernelHandle, Stat, TimeSpec};

use crate::handle::{self, ExportKey, HandleKey, VerifiedHandle, MAX_BODY};
use crate::{
    access, Attr, Backend, CreateMode, Created, DirEntry, DirListing, Error, FileHandle, FileType,
    FsStat, Identity, LockFile, NodeKind, PathConf, ReadData, Result, SeekWhat, SetAttrs, Sought,
    Stability, Timestamp, Wcc, Written, XattrSet,
};
use cache::{OpenFiles, PathFd, PathFds};
use listing::{Listed, ListedKind, Listing, Listings, Stamp};

/// How often `open_by_handle_at` is retried after an ENOMEM (see `LocalFs::resolve_body`).
const ENOMEM_RETRIES_MAX: usize = 16;

/// Most directory descriptors cached per export.
pub const PATH_FDS_MAX: usize = 16_384;

/// The descriptor cache's bound: [`PATH_FDS_MAX`], or an eighth of the process's open-file limit
/// when that is smaller (several exports, sockets and loan pipes need descriptors too).
fn default_path_fds() -> usize {
    (rnfs_sys::open_files_limit().unwrap_or(1024) as usize / 8).clamp(64, PATH_FDS_MAX)
}

/// The largest kernel handle (opaque bytes, without its type) that fits a sealed [`FileHandle`].
pub const MAX_KERNEL_HANDLE: usize = MAX_BODY - 4;

/// Longest name a LOOKUP accepts (`NAME_MAX`).
pub const NAME_MAX: usize = 255;

/// `getdents64` buffer: the first read of a READDIR call asks for this much, each further read
/// twice as much, up to [`DIRENT_BUF_MAX`]. A reply holds a few hundred entries, and everything
/// the kernel reads beyond what the reply takes is read again by the next call (from its cookie):
/// with one 32 KiB read per call, ext4 produced three times the entries a READDIRPLUS reply used.
const DIRENT_BUF_FIRST: usize = 4 * 1024;
const DIRENT_BUF_MAX: usize = 32 * 1024;

/// One export backed by a local directory. Share it (`Arc`): its only mutable state is the
/// descriptor caches and the write-back error counter, all safe to use from many threads.
#[derive(Debug)]
pub struct LocalFs {
    export_id: u32,
    /// Seals this export's handles; derived from the server's key and this root.
    key: ExportKey,
    /// The export root opened `O_RDONLY|O_DIRECTORY`: the `mount_fd` of `open_by_handle_at` (which
    /// refuses `O_PATH` descriptors) and the anchor of the file system.
    root_fd: OwnedFd,
    root_dev: u64,
    root_ino: u64,
    root_mount_id: i32,
    root_handle: FileHandle,
    /// What tells whether an object is still inside the export (see [`subtree`]).
    subtree: subtree::Subtree,
    fsid: u64,
    /// Regular files kept open for READ/WRITE/COMMIT (see [`cache`]).
    files: OpenFiles,
    /// `O_PATH` descriptors of recently used directories (see [`cache`]).
    paths: PathFds,
    /// Listings of unchanged directories (see [`listing`]).
    listings: Listings,
    /// Write-back errors seen so far ([`Backend::writeback_errors`]); shared with every
    /// [`cache::OpenFile`], whose last `fsync` may happen when it leaves the cache.
    writeback_errors: Arc<AtomicU64>,
    /// Keys the digests of remembered permissions (per process, random), so that no caller can
    /// aim for another's digest.
    grant_hasher: std::hash::RandomState,
    /// Read leases held for NFSv4 delegations (see [`lease`]).
    leases: lease::Leases,
    /// The file system takes `user.` extended attributes (probed at start).
    xattrs: bool,
    /// The root is on a local disk or in memory (see [`Backend::answers_promptly`]).
    on_local_fs: bool,
}

impl LocalFs {
    /// Serves the directory `root` as export `export_id`, with handles sealed by `key`.
    ///
    /// Fails if `root` is not a directory, if its file system has no file handles or handles too
    /// large for NFSv3, or if handles cannot be opened (the process lacks `CAP_DAC_READ_SEARCH`).
    /// Must be called by a thread acting as root.
    pub fn new(export_id: u32, root: &Path, key: HandleKey) -> io::Result<LocalFs> {
        let context = |e: io::Error, what: &str| {
            io::Error::new(e.kind(), format!("export {}: {what}: {e}", root.display()))
        };
        let root_fd: OwnedFd = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(root)
            .map_err(|e| context(e, "cannot open the export root directory"))?
            .into();
        let st = rnfs_sys::fstat(root_fd.as_fd())?;
        let (kh, mount_id) = rnfs_sys::fd_to_handle(root_fd.as_fd()).map_err(|e| {
            context(
                e,
                "the file system does not support file handles (name_to_handle_at)",
            )
        })?;
        if kh.bytes.len() > MAX_KERNEL_HANDLE {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "export {}: the file system's handles are {} bytes, at most {MAX_KERNEL_HANDLE} fit \
                     an NFSv3 file handle",
                    root.display(),
                    kh.bytes.len()
                ),
            ));
        }
        // Prove now that handles can be opened (needs CAP_DAC_READ_SEARCH) and lead back here.
        let back = rnfs_sys::open_by_handle_at(root_fd.as_fd(), &kh, libc::O_PATH)
            .map_err(|e| context(e, "cannot open file handles (open_by_handle_at)"))?;
        let back = rnfs_sys::fstat(back.as_fd())?;
        if (back.dev, back.ino) != (st.dev, st.ino) {
            return Err(io::Error::other(format!(
                "export {}: the root's file handle resolves to another object",
                root.display()
            )));
        }
        // READ and READDIR re-open objects through /proc/self/fd.
        rnfs_sys::reopen(root_fd.as_fd(), libc::O_RDONLY | libc::O_DIRECTORY).map_err(|e| {
            context(
                e,
                "cannot re-open through /proc/self/fd (is /proc mounted?)",
            )
        })?;
        let subtree = subtree::Subtree::new(root_fd.as_fd(), &kh)
            .map_err(|e| context(e, "cannot read the root's path in /proc/self/fd"))?;
        // Handles are bound to this root (see `handle`): the same id with another root, or this
        // one moved, makes them stale.
        let key = key.for_export(export_id, &encode_body(&kh), subtree.root_path());
        let root_handle = handle::seal(&key, export_id, &encode_body(&kh));
        Ok(LocalFs {
            export_id,
            key,
            root_dev: st.dev,
            root_ino: st.ino,
            root_mount_id: mount_id,
            root_handle,
            subtree,
            fsid: st.dev,
            files: OpenFiles::new(DEFAULT_OPEN_FILES),
            paths: PathFds::new(default_path_fds()),
            listings: Listings::default(),
            writeback_errors: Arc::new(AtomicU64::new(0)),
            grant_hasher: std::hash::RandomState::new(),
            leases: lease::Leases::default(),
            xattrs: v42::xattrs_supported(root_fd.as_fd()),
            on_local_fs: rnfs_sys::fs_type(root_fd.as_fd()).is_ok_and(is_local_fs),
            root_fd,
        })
    }

    /// Keeps at most `limit` regular files open (at least 1; default [`DEFAULT_OPEN_FILES`]). Each
    /// is one descriptor of the process: keep the sum over all exports well below
    /// `RLIMIT_NOFILE`.
    pub fn with_open_files(mut self, limit: usize) -> LocalFs {
        self.files = OpenFiles::new(limit);
        self
    }

    /// Keeps at most `limit` `O_PATH` descriptors of directories (at least 1; default: an eighth
    /// of the open-file limit, at most [`PATH_FDS_MAX`]).
    pub fn with_path_fds(mut self, limit: usize) -> LocalFs {
        self.paths = PathFds::new(limit);
        self
    }

    /// How many `O_PATH` descriptors the cache holds now (at most [`LocalFs::path_fd_limit`]).
    pub fn path_fds(&self) -> usize {
        self.paths.len()
    }

    /// The bound on [`LocalFs::path_fds`].
    pub fn path_fd_limit(&self) -> usize {
        self.paths.limit()
    }

    /// What the remembered directory listings hold now (see [`listing`]).
    pub fn remembered_listings(&self) -> listing::ListingStats {
        self.listings.stats()
    }

    /// How many regular files are open in the cache now (at most [`LocalFs::open_file_limit`]).
    pub fn open_files(&self) -> usize {
        self.files.len()
    }

    /// The bound on [`LocalFs::open_files`].
    pub fn open_file_limit(&self) -> usize {
        self.files.limit()
    }

    /// Reports `fsid` in attributes instead of the root's device number (e.g. from configuration,
    /// so it stays the same if the device is renumbered).
    pub fn with_fsid(mut self, fsid: u64) -> LocalFs {
        self.fsid = fsid;
        self
    }

    pub fn export_id(&self) -> u32 {
        self.export_id
    }

    /// The digest under which permission `access` (`R_OK`, `X_OK`...) for `who` on an object in
    /// state `st` is remembered (never 0, which means "none"). It covers everything the kernel's
    /// answer depends on: the caller's ids and groups, and the object's owner, group, mode and
    /// ctime (which chmod, chown and ACL changes all move). Call it before asking the kernel.
    ///
    /// Two changes within one tick of the clock that stamps ctime can leave the same ctime, and
    /// an ACL change moves neither owner nor mode. The change cookie that would tell (i_version)
    /// is not given to user space: statx masks `STATX_CHANGE_COOKIE` off. So an object whose
    /// ctime is not [`settled`] gets a key no other call computes, and its answers are never
    /// reused; once it is settled, any later change stamps a later ctime.
    pub(crate) fn grant_key(&self, st: &Stat, who: &Identity, access: libc::c_int) -> u64 {
        use std::hash::BuildHasher;
        let object = (st.dev, st.ino, st.uid, st.gid, st.mode);
        let changed = (st.ctime.sec, st.ctime.nsec);
        let caller = (who.uid, who.gid, &who.groups);
        let once = if settled(st.ctime, std::time::SystemTime::now()) {
            0
        } else {
            UNSETTLED_GRANTS.fetch_add(1, Ordering::Relaxed) + 1
        };
        self.grant_hasher
            .hash_one((access, object, changed, caller, once))
            .max(1)
    }

    /// Verifies `fh` as a handle of this export (what the server does before every call; tests
    /// and embedders that call the backend directly use this).
    pub fn verify(&self, fh: &FileHandle) -> Result<VerifiedHandle> {
        self.key.verify(self.export_id, fh)
    }

    /// The body of a handle the server verified with this export's key.
    fn body<'a>(&self, fh: &'a VerifiedHandle) -> &'a [u8] {
        // The server routes by export id and verifies with this backend's key, which binds the id.
        debug_assert_eq!(fh.export_id(), self.export_id);
        fh.body()
    }

    /// The `O_PATH` descriptor of `fh`'s object (cached, or opened as root).
    fn resolve(&self, fh: &VerifiedHandle) -> Result<(Arc<PathFd>, Stat)> {
        self.resolve_body(self.body(fh))
    }

    /// The `O_PATH` descriptor of the object of a verified handle body: from the descriptor cache
    /// (one `fstat` and the subtree check), else opened as root (and cached if it is a directory).
    /// An object without links, or no longer inside the export, is stale (and leaves the caches).
    ///
    /// Only directories are cached: they are few and each serves many calls (every LOOKUP,
    /// CREATE, REMOVE and READDIR in it). Files are kept open by the open-file cache when they are
    /// read or written; caching every file GETATTR touched would thrash once a client's working
    /// set outgrows the bound (each miss then also pays an eviction), which measured slower than
    /// no cache at all.
    fn resolve_body(&self, body: &[u8]) -> Result<(Arc<PathFd>, Stat)> {
        if let Some(fd) = self.paths.get(body) {
            let st = self.stat_linked(fd.as_fd(), body, fd.inside_memo())?;
            return Ok((fd, st));
        }
        let kh = decode_body(body)?;
        let (fd, st) = self.open_inside(&kh, body)?;
        let fd = Arc::new(PathFd::new(fd));
        if st.is_dir() {
            Ok((self.paths.insert(body, fd), st))
        } else {
            Ok((fd, st))
        }
    }

    /// Opens kernel handle `kh` as an `O_PATH` descriptor, as root. A handle of nothing is
    /// [`Error::Stale`]; where the object is is not checked here (see [`subtree`]).
    fn open_handle(&self, kh: &KernelHandle) -> Result<OwnedFd> {
        debug_assert!(!identity::is_switched(), "handles must be resolved as root");
        let open = || rnfs_sys::open_by_handle_at(self.root_fd.as_fd(), kh, libc::O_PATH);
        let mut opened = open();
        // ext4 answers ENOMEM (not ESTALE) when the handle's inode is being evicted at that very
        // moment — after a REMOVE that closed our last descriptor of it, say. The eviction takes
        // microseconds: ask again a few times before calling it a failure.
        for _ in 0..ENOMEM_RETRIES_MAX {
            match &opened {
                Err(e) if e.raw_os_error() == Some(libc::ENOMEM) => {
                    std::thread::yield_now();
                    opened = open();
                }
                _ => break,
            }
        }
        match opened {
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                self.out_of_descriptors();
                open()
            }
            other => other,
        }
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ESTALE | libc::ENOENT) => Error::Stale,
            _ => Error::from(e),
        })
    }

    /// `fstat` of a cached descriptor of the object `body` names. An object whose last link is
    /// gone (removed behind our back: by a local process, another export...) or that is no longer
    /// inside the export (moved out: see [`subtree`]) leaves the caches and is [`Error::Stale`].
    fn stat_linked(&self, fd: BorrowedFd<'_>, body: &[u8], memo: &AtomicU64) -> Result<Stat> {
        let st = self.stat_opened(fd, body)?;
        self.confirm_inside(fd, &st, body, Some(memo))?;
        Ok(st)
    }

    /// `fstat` of a descriptor of the object `body` names; an object without links is stale
    /// (and leaves the caches).
    fn stat_opened(&self, fd: BorrowedFd<'_>, body: &[u8]) -> Result<Stat> {
        let st = rnfs_sys::fstat(fd)?;
        if st.nlink == 0 {
            self.evict(body);
            return Err(Error::Stale);
        }
        Ok(st)
    }

    /// The process ran out of descriptors: gives a quarter of each descriptor cache back.
    pub(crate) fn out_of_descriptors(&self) {
        tracing::warn!(
            open_files = self.files.len(),
            path_descriptors = self.paths.len(),
            "out of file descriptors: shrinking the descriptor caches (raise RLIMIT_NOFILE)"
        );
        drop(self.files.shrink_by(self.files.len() / 4 + 1));
        drop(self.paths.shrink_by(self.paths.len() / 4 + 1));
    }

    fn is_root(&self, st: &Stat) -> bool {
        (st.dev, st.ino) == (self.root_dev, self.root_ino)
    }

    fn attr(&self, st: &Stat) -> Attr {
        let file_type = match st.file_type() {
            libc::S_IFDIR => FileType::Directory,
            libc::S_IFLNK => FileType::Symlink,
            libc::S_IFBLK => FileType::BlockDevice,
            libc::S_IFCHR => FileType::CharDevice,
            libc::S_IFSOCK => FileType::Socket,
            libc::S_IFIFO => FileType::Fifo,
            _ => FileType::Regular,
        };
        Attr {
            file_type,
            mode: st.mode & 0o7777,
            nlink: u32::try_from(st.nlink).unwrap_or(u32::MAX),
            uid: st.uid,
            gid: st.gid,
            size_bytes: st.size,
            used_bytes: st.blocks.saturating_mul(512),
            rdev: (libc::major(st.rdev), libc::minor(st.rdev)),
            fsid: self.fsid,
            fileid: st.ino,
            atime: timestamp(st.atime),
            mtime: timestamp(st.mtime),
            ctime: timestamp(st.ctime),
        }
    }

    /// Opens `name` in `dir` as an `O_PATH` descriptor (the caller's identity must be in effect)
    /// without following a trailing symlink.
    fn open_child(dir: BorrowedFd<'_>, name: &CString) -> Result<OwnedFd> {
        Ok(rnfs_sys::openat(
            dir,
            name,
            libc::O_PATH | libc::O_NOFOLLOW,
            0,
        )?)
    }

    /// LOOKUP of `name` in the directory `dir` (already resolved to `dfd`, `dst`).
    fn lookup_in(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        dfd: &PathFd,
        dst: &Stat,
        name: &[u8],
    ) -> Result<(FileHandle, Attr)> {
        if !dst.is_dir() {
            return Err(Error::NotDir);
        }
        let cname = component(name)?;
        let dot = name == b".";
        let dotdot_of_root = name == b".." && self.is_root(dst);
        // `..` is kept open, to be confirmed below (as root) to lie inside the export.
        let find = || -> Result<Option<LookedUp>> {
            if dot || dotdot_of_root {
                return Ok(None);
            }
            if name == b".." {
                let fd = Self::open_child(dfd.as_fd(), &cname)?;
                let (body, st) = self.describe_body(fd.as_fd())?;
                return Ok(Some((body, st, Some(fd))));
            }
            let (body, st) = self.describe_child(dfd.as_fd(), &cname)?;
            Ok(Some((body, st, None)))
        };
        let child = self.with_search_permission(who, dfd, dst, find)?;
        let Some(child) = child.transpose() else {
            let fh = if dot {
                dir.handle().clone()
            } else {
                self.root_handle.clone()
            };
            return Ok((fh, self.attr(dst)));
        };
        match child {
            Ok((body, st, dotdot)) => {
                if let Some(fd) = dotdot {
                    self.confirm_inside(fd.as_fd(), &st, &body, None)?;
                }
                Ok((self.seal_body(&body), self.attr(&st)))
            }
            Err(Error::XDev) => {
                tracing::warn!(
                    export = self.export_id,
                    name = %String::from_utf8_lossy(name),
                    "lookup refused: the name is a mount point inside the export (mounts are not crossed)"
                );
                Err(Error::Access)
            }
            Err(e) => Err(e),
        }
    }

    /// Runs `find` once `who` may search `dfd` (whose attributes are `dst`). The only permission
    /// a lookup needs is search on the directory, and an O_PATH open of the name needs nothing
    /// more, whoever makes it. So once the kernel has said yes to this caller for this directory
    /// as it is now (owner, mode, ctime: see `grant_key`), the next lookups skip the identity
    /// switch and run as root; until then `find` runs as the caller.
    fn with_search_permission<T>(
        &self,
        who: &Identity,
        dfd: &PathFd,
        dst: &Stat,
        find: impl FnOnce() -> T,
    ) -> Result<T> {
        let grant = self.grant_key(dst, who, libc::X_OK);
        if dfd.search_granted(grant) {
            return Ok(find());
        }
        let _as = as_caller(who)?;
        // Asked first, so that the answer can be remembered (dot and dotdot need no open, but
        // the caller still needs search permission, as for any lookup).
        rnfs_sys::faccessat2(
            dfd.as_fd(),
            c"",
            libc::X_OK,
            libc::AT_EACCESS | libc::AT_EMPTY_PATH,
        )?;
        dfd.grant_search(grant);
        Ok(find())
    }

    /// Stat and handle of an object reached from a directory, refusing other mounts.
    fn describe_sealed(&self, fd: BorrowedFd<'_>) -> Result<(FileHandle, Stat)> {
        let (body, st) = self.describe_body(fd)?;
        Ok((self.seal_body(&body), st))
    }

    /// Handle body and attributes of `name` in `dir` (as the calling thread's identity, a trailing
    /// symlink not followed): described by name when that can be done exactly, else opened.
    fn describe_child(&self, dir: BorrowedFd<'_>, name: &CString) -> Result<(Vec<u8>, Stat)> {
        match self.describe_name(dir, name) {
            Some(described) => described,
            None => self.describe_body(Self::open_child(dir, name)?.as_fd()),
        }
    }

    /// Handle and attributes of `name` in `dir` without opening it (two system calls instead of
    /// `openat` + `fstat` + `name_to_handle_at` + `close`), as the calling thread's identity; a
    /// trailing symlink is not followed. `None` when this cannot be done exactly: the handle's
    /// format does not name its inode (only the `ino32 + generation` handles of ext4, XFS and
    /// others do), or the name changed between the two calls (the handle's inode is not the one
    /// stat saw). The caller then opens the name.
    fn describe_name(&self, dir: BorrowedFd<'_>, name: &CStr) -> Option<Result<(Vec<u8>, Stat)>> {
        let (kh, mount_id) = match rnfs_sys::name_to_handle_at(dir, name, 0) {
            Ok(x) => x,
            Err(e) => return Some(Err(Error::from(e))),
        };
        let ino = handle_inode(&kh)?;
        let st = match rnfs_sys::fstatat(dir, name, libc::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(e) => return Some(Err(Error::from(e))),
        };
        if st.ino != u64::from(ino) {
            return None;
        }
        Some(self.servable(&kh, mount_id, st))
    }

    fn describe_body(&self, fd: BorrowedFd<'_>) -> Result<(Vec<u8>, Stat)> {
        let st = rnfs_sys::fstat(fd)?;
        let (kh, mount_id) = rnfs_sys::fd_to_handle(fd)?;
        self.servable(&kh, mount_id, st)
    }

    /// The handle body of an object found by name, refusing other mounts and handles too large
    /// for an NFSv3 file handle.
    fn servable(&self, kh: &KernelHandle, mount_id: i32, st: Stat) -> Result<(Vec<u8>, Stat)> {
        if st.dev != self.root_dev || mount_id != self.root_mount_id {
            return Err(Error::XDev);
        }
        if kh.bytes.len() > MAX_KERNEL_HANDLE {
            tracing::error!(
                len = kh.bytes.len(),
                "kernel file handle too large to serve"
            );
            return Err(Error::ServerFault(libc::EOVERFLOW));
        }
        Ok((encode_body(kh), st))
    }

    fn seal_body(&self, body: &[u8]) -> FileHandle {
        handle::seal(&self.key, self.export_id, body)
    }

    /// READDIRPLUS extras for `name` in the directory `dir` (read as the caller); `None` when they
    /// cannot be had (no search permission, entry vanished, mount point).
    fn plus_extras(&self, dir: BorrowedFd<'_>, name: &[u8]) -> Option<PlusExtras> {
        let cname = CString::new(name).ok()?;
        let (body, st) = self.describe_child(dir, &cname).ok()?;
        Some((self.attr(&st), self.seal_body(&body)))
    }
}

/// One READDIR(PLUS) call, on a directory resolved and opened for reading as the caller.
struct DirCall<'a> {
    /// The directory's handle body (its listing's key).
    key: &'a [u8],
    /// The directory, opened for reading as the caller and positioned at `cookie`.
    rd: BorrowedFd<'a>,
    dst: &'a Stat,
    dir: &'a FileHandle,
    dir_attr: &'a Attr,
    is_root: bool,
    plus: bool,
    cookie: u64,
    stamp: Stamp,
    /// See [`Stamp::settled`].
    settled: bool,
}

/// How much of a call a remembered listing answered (see [`LocalFs::readdir_remembered`]).
enum Served {
    /// Nothing was sent: the call reads the directory itself.
    Nothing,
    /// The reply is complete. `recorded`: every entry sent was added to the recording.
    Answered { eof: bool, recorded: bool },
    /// A prefix ran out with room left in the reply: the call goes on reading the directory
    /// from this cookie.
    PrefixEnd(u64),
}

/// A READDIRPLUS entry's attributes and handle.
type PlusExtras = (Attr, FileHandle);

impl LocalFs {
    /// Records what a READDIRPLUS call sent (see [`Listings::record`]); READDIR records nothing.
    fn record_sent(&self, call: &DirCall<'_>, batch: Option<Vec<Listed>>, eof: bool) {
        if call.plus {
            self.listings
                .record(call.key, call.stamp, call.settled, call.cookie, batch, eof);
        }
    }

    /// Answers the call from the directory's remembered listing if that reaches the cookie:
    /// `Some(eof)` when the reply is complete, `None` when the call goes on to read the directory
    /// (`call.rd` then positioned where a remembered prefix ends, if one was served).
    fn readdir_from_memory(
        &self,
        call: &DirCall<'_>,
        sink: &mut dyn FnMut(DirEntry) -> bool,
        batch: &mut Option<Vec<Listed>>,
    ) -> Result<Option<bool>> {
        let Some(remembered) = self.listings.get(call.key, &call.stamp) else {
            return Ok(None);
        };
        let start = remembered
            .position(call.cookie)
            .filter(|&i| i < remembered.len() || remembered.is_complete());
        let Some(start) = start else {
            return Ok(None);
        };
        // Calls answered from a complete listing record nothing (there is nothing left to learn);
        // from a prefix they do, so that their pass can complete the listing.
        let prefix = !remembered.is_complete();
        let recording = batch.as_mut().filter(|_| prefix);
        let served = self.readdir_remembered(call, &remembered, start, sink, recording);
        if !matches!(served, Served::Nothing) {
            self.listings.count_served();
        }
        match served {
            Served::Nothing => Ok(None),
            Served::Answered { eof, recorded } => {
                if prefix {
                    self.record_sent(call, batch.take().filter(|_| recorded), eof);
                }
                Ok(Some(eof))
            }
            Served::PrefixEnd(last) => {
                rnfs_sys::lseek(call.rd, last as i64, libc::SEEK_SET)?;
                Ok(None)
            }
        }
    }

    /// Answers the call (the rest of it, after a remembered prefix) by reading the directory from
    /// where `call.rd` stands; returns eof. `batch` holds what the pass recorded so far.
    fn readdir_from_disk(
        &self,
        call: &DirCall<'_>,
        sink: &mut dyn FnMut(DirEntry) -> bool,
        mut batch: Option<Vec<Listed>>,
    ) -> Result<bool> {
        let mut buf = vec![0u8; DIRENT_BUF_MAX];
        let mut want = DIRENT_BUF_FIRST;
        loop {
            let n = rnfs_sys::getdents64(call.rd, &mut buf[..want])?;
            want = (want * 2).min(DIRENT_BUF_MAX);
            if n == 0 {
                self.record_sent(call, batch, true);
                return Ok(true);
            }
            for d in rnfs_sys::dirents(&buf[..n]) {
                if d.ino == 0 {
                    continue; // a deleted slot, on file systems that report them
                }
                let (entry, kind) = self.read_entry(call, &d);
                let name = entry.name.clone();
                if !sink(entry) {
                    self.record_sent(call, batch, false);
                    return Ok(false);
                }
                batch = batch.zip(kind).map(|(mut b, kind)| {
                    b.push(Listed {
                        ino: d.ino,
                        name,
                        cookie: d.off as u64,
                        kind,
                    });
                    b
                });
            }
        }
    }

    /// The entry to send for `d`, read from the directory, and how a listing remembers it
    /// (`None`: it must not be).
    fn read_entry(
        &self,
        call: &DirCall<'_>,
        d: &rnfs_sys::Dirent<'_>,
    ) -> (DirEntry, Option<ListedKind>) {
        let plus = call.plus;
        let (fileid, extras) = match d.name {
            b"." => (
                call.dst.ino,
                plus.then(|| (call.dir_attr.clone(), call.dir.clone())),
            ),
            b".." if call.is_root => (
                call.dst.ino,
                plus.then(|| (call.dir_attr.clone(), self.root_handle.clone())),
            ),
            name => (
                d.ino,
                if plus {
                    self.plus_extras(call.rd, name)
                } else {
                    None
                },
            ),
        };
        let kind = match (d.name, &extras) {
            (b".", _) => Some(ListedKind::Dot),
            (b"..", _) => Some(ListedKind::DotDot),
            (_, Some((_, h))) => Some(ListedKind::Child(h.clone())),
            // What this caller could not see must not be remembered for others.
            (_, None) => None,
        };
        let (attr, handle) = extras.map_or((None, None), |(a, h)| (Some(a), Some(h)));
        let entry = DirEntry {
            fileid,
            name: Bytes::copy_from_slice(d.name),
            // Cookies are `d_off` values reinterpreted as u64 (see `open_at_cookie`).
            cookie: d.off as u64,
            attr,
            handle,
        };
        (entry, kind)
    }

    /// Serves a READDIR(PLUS) call from a remembered listing, from entry `start`, as the caller
    /// (whose identity is in effect): names, cookies and handles as remembered, attributes from
    /// one `fstatat` per entry. Each entry sent is also pushed to `recording` if given. If the
    /// first entry it would send no longer matches the directory, the listing is dropped and
    /// nothing is sent; a later mismatch ends the reply early, and the client's next call reads
    /// the directory from that point.
    fn readdir_remembered(
        &self,
        call: &DirCall<'_>,
        listing: &Listing,
        start: usize,
        sink: &mut dyn FnMut(DirEntry) -> bool,
        mut recording: Option<&mut Vec<Listed>>,
    ) -> Served {
        let mut sent = false;
        for (i, e) in (start..listing.len()).map_while(|i| Some((i, listing.get(i)?))) {
            let Some((fileid, extras)) = self.remembered_entry(call, listing, i, &e) else {
                self.listings.forget(call.key);
                return if sent {
                    Served::Answered {
                        eof: false,
                        recorded: false,
                    }
                } else {
                    Served::Nothing
                };
            };
            let (attr, handle) = extras.map_or((None, None), |(a, h)| (Some(a), Some(h)));
            let entry = DirEntry {
                fileid,
                name: e.name.clone(),
                cookie: e.cookie,
                attr,
                handle,
            };
            if !sink(entry) {
                return Served::Answered {
                    eof: false,
                    recorded: true,
                };
            }
            if let Some(r) = recording.as_deref_mut() {
                r.push(e);
            }
            sent = true;
        }
        if listing.is_complete() {
            Served::Answered {
                eof: true,
                recorded: true,
            }
        } else {
            Served::PrefixEnd(listing.last_cookie())
        }
    }

    /// The fileid and READDIRPLUS extras of remembered entry `e` (number `i` of `listing`);
    /// `None` if it no longer matches the directory.
    fn remembered_entry(
        &self,
        call: &DirCall<'_>,
        listing: &Listing,
        i: usize,
        e: &Listed,
    ) -> Option<(u64, Option<PlusExtras>)> {
        let plus = call.plus;
        Some(match &e.kind {
            ListedKind::Dot => (
                call.dst.ino,
                plus.then(|| (call.dir_attr.clone(), call.dir.clone())),
            ),
            ListedKind::DotDot if call.is_root => (
                call.dst.ino,
                plus.then(|| (call.dir_attr.clone(), self.root_handle.clone())),
            ),
            ListedKind::DotDot => (
                e.ino,
                plus.then(|| self.plus_extras(call.rd, b"..")).flatten(),
            ),
            ListedKind::Child(handle) if plus => {
                let stat = listing
                    .c_name(i)
                    .map(|n| rnfs_sys::fstatat(call.rd, n, libc::AT_SYMLINK_NOFOLLOW));
                match stat {
                    Some(Ok(st)) if st.ino == e.ino && st.dev == self.root_dev => {
                        (e.ino, Some((self.attr(&st), handle.clone())))
                    }
                    // As when reading the directory: no search permission, no extras.
                    Some(Err(err)) if denied(&err) => (e.ino, None),
                    _ => return None,
                }
            }
            ListedKind::Child(_) => (e.ino, None),
        })
    }
}

/// `dir` opened for reading (as the calling thread's identity), positioned at `cookie`.
fn open_at_cookie(dir: BorrowedFd<'_>, cookie: u64) -> Result<OwnedFd> {
    let rd = rnfs_sys::reopen(dir, libc::O_RDONLY | libc::O_DIRECTORY)?;
    // Cookies are `d_off` values reinterpreted as u64 (see `LocalFs::read_entry`); undo that bit
    // for bit.
    rnfs_sys::lseek(rd.as_fd(), cookie as i64, libc::SEEK_SET).map_err(|e| {
        match e.raw_os_error() {
            Some(libc::EINVAL) => Error::BadCookie,
            _ => Error::from(e),
        }
    })?;
    Ok(rd)
}

/// What LOOKUP found by name: its handle body and attributes, and, for `..`, its descriptor.
type LookedUp = (Vec<u8>, Stat, Option<OwnedFd>);

fn as_caller(who: &Identity) -> Result<IdentityGuard> {
    rnfs_sys::set_thread_identity(who.uid, who.gid, &who.groups).map_err(|e| {
        match e.raw_os_error() {
            // An id the kernel cannot represent ((uid_t)-1): such a caller may do nothing.
            Some(libc::EINVAL) => Error::Access,
            errno => {
                tracing::error!(error = %e, uid = who.uid, "cannot take on the caller's identity");
                Error::ServerFault(errno.unwrap_or(0))
            }
        }
    })
}

/// File systems whose calls never wait on a network (`f_type` magic numbers from
/// `linux/magic.h`, and ZFS's): ext2/3/4, XFS, Btrfs, tmpfs, F2FS, ZFS, and overlayfs (a
/// container's root: its layers are local directories in practice). Anything else (NFS, CIFS,
/// FUSE, …) is taken as possibly remote.
fn is_local_fs(magic: u64) -> bool {
    const EXT4: u64 = 0xEF53;
    const XFS: u64 = 0x5846_5342;
    const BTRFS: u64 = 0x9123_683E;
    const TMPFS: u64 = 0x0102_1994;
    const F2FS: u64 = 0xF2F5_2010;
    const ZFS: u64 = 0x2FC1_2FC1;
    const OVERLAYFS: u64 = 0x794C_7630;
    matches!(magic, EXT4 | XFS | BTRFS | TMPFS | F2FS | ZFS | OVERLAYFS)
}

fn encode_body(kh: &KernelHandle) -> Vec<u8> {
    let mut b = Vec::with_capacity(4 + kh.bytes.len());
    b.extend_from_slice(&kh.handle_type.to_be_bytes());
    b.extend_from_slice(&kh.bytes);
    b
}

/// The inode number a kernel handle names, for the formats that carry it in the clear:
/// `FILEID_INO32_GEN` (1) and `FILEID_INO32_GEN_PARENT` (2), whose first word is the 32-bit inode
/// number in the kernel's byte order (ext4, XFS with 32-bit inodes, and others using the generic
/// encoder). `None` for every other format.
fn handle_inode(kh: &KernelHandle) -> Option<u32> {
    const FILEID_INO32_GEN: i32 = 1;
    const FILEID_INO32_GEN_PARENT: i32 = 2;
    if !matches!(kh.handle_type, FILEID_INO32_GEN | FILEID_INO32_GEN_PARENT) {
        return None;
    }
    let word: [u8; 4] = kh.bytes.get(..4)?.try_into().ok()?;
    Some(u32::from_ne_bytes(word))
}

fn decode_body(body: &[u8]) -> Result<KernelHandle> {
    // A verified body was made by `encode_body`, but check anyway rather than trust a key.
    if body.len() < 4 || body.len() > 4 + MAX_KERNEL_HANDLE {
        return Err(Error::BadHandle);
    }
    let (t, bytes) = body.split_at(4);
    Ok(KernelHandle {
        handle_type: i32::from_be_bytes([t[0], t[1], t[2], t[3]]),
        bytes: bytes.to_vec(),
    })
}

/// `nfstime3` has unsigned 32-bit seconds: clamp times outside 1970..2106.
fn timestamp(t: TimeSpec) -> Timestamp {
    let seconds = u32::try_from(t.sec.max(0)).unwrap_or(u32::MAX);
    Timestamp {
        seconds,
        nanoseconds: t.nsec.min(999_999_999),
    }
}

fn verifier(st: &Stat) -> [u8; 8] {
    let t = timestamp(st.mtime);
    let mut v = [0u8; 8];
    v[..4].copy_from_slice(&t.seconds.to_be_bytes());
    v[4..].copy_from_slice(&t.nanoseconds.to_be_bytes());
    v
}

/// A single path component: non-empty, no `/` or NUL (refused with ACCES, as Linux's
/// `lookup_one_len` does), at most [`NAME_MAX`] bytes.
fn component(name: &[u8]) -> Result<CString> {
    if name.is_empty() || name.contains(&b'/') {
        return Err(Error::Access);
    }
    if name.len() > NAME_MAX {
        return Err(Error::NameTooLong);
    }
    CString::new(name).map_err(|_| Error::Access)
}

/// Whether an `faccessat2` failure means "not granted" rather than a failure of the call.
fn denied(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EACCES | libc::EPERM | libc::EROFS | libc::ETXTBSY)
    )
}

/// How old an object's ctime must be before the kernel's permission answers about it are
/// remembered (see `LocalFs::grant_key`): many ticks of the coarse clock that stamps it.
pub const GRANT_SETTLE_MS: u64 = 250;
/// The same for a ctime of whole seconds (ext4 with 128-byte inodes, ext2/ext3; FAT's 2 s): a
/// ctime without nanoseconds is taken for one.
pub const GRANT_SETTLE_COARSE_MS: u64 = 2_250;

/// Numbers the keys of answers that must not be reused (see [`LocalFs::grant_key`]).
static UNSETTLED_GRANTS: AtomicU64 = AtomicU64::new(0);

/// Whether `ctime`, read against the wall clock `now` (read before the kernel is asked), is old
/// enough that any change after `now` gets another ctime: a change is stamped at most a tick
/// of the coarse clock before the wall clock, truncated to the file system's granularity.
fn settled(ctime: TimeSpec, now: std::time::SystemTime) -> bool {
    use std::time::{Duration, UNIX_EPOCH};
    let settle_ms = if ctime.nsec == 0 {
        GRANT_SETTLE_COARSE_MS
    } else {
        GRANT_SETTLE_MS
    };
    let changed = u64::try_from(ctime.sec)
        .ok()
        .and_then(|sec| UNIX_EPOCH.checked_add(Duration::new(sec, ctime.nsec)));
    changed.is_some_and(|changed| {
        now.duration_since(changed)
            .is_ok_and(|age| age >= Duration::from_millis(settle_ms))
    })
}

/// A description of a file of its own that mirrors one NFS lock owner's locks as OFD locks
/// (`F_OFD_SETLK`, never the waiting form), which conflict with every other description's locks
/// and with classic `fcntl` locks of local processes, and are released when it is closed.
struct OfdLockFile {
    fd: OwnedFd,
    /// Opened read-only (a read-only file system, a file being executed): exclusive locks cannot
    /// be mirrored on it and are left to the lock manager alone.
    read_only: bool,
}

impl LockFile for OfdLockFile {
    fn lock(&self, exclusive: bool, start: u64, len_bytes: u64) -> io::Result<bool> {
        use rnfs_sys::ofd::{LockKind, Outcome};
        if exclusive && self.read_only {
            return Ok(true);
        }
        let kind = if exclusive {
            LockKind::Exclusive
        } else {
            LockKind::Shared
        };
        match rnfs_sys::ofd::lock(self.fd.as_fd(), kind, start, len_bytes) {
            Ok(Outcome::Granted) => Ok(true),
            Ok(Outcome::Denied) => Ok(false),
            // Offsets the kernel cannot represent (past i64::MAX): nothing local can lock them.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(true),
            Err(e) => Err(e),
        }
    }

    fn unlock(&self, start: u64, len_bytes: u64) -> io::Result<()> {
        match rnfs_sys::ofd::unlock(self.fd.as_fd(), start, len_bytes) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
            other => other,
        }
    }

    fn conflict(
        &self,
        exclusive: bool,
        start: u64,
        len_bytes: u64,
    ) -> io::Result<Option<(bool, u64, u64)>> {
        use rnfs_sys::ofd::LockKind;
        let kind = if exclusive {
            LockKind::Exclusive
        } else {
            LockKind::Shared
        };
        match rnfs_sys::ofd::get(self.fd.as_fd(), kind, start, len_bytes) {
            Ok(found) => Ok(found.map(|c| (c.kind == LockKind::Exclusive, c.start, c.len))),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl LocalFs {
    /// [`Backend::open_lock_file`]: a new description of the regular file, read-write where the
    /// file system allows it.
    fn open_ofd_lock_file(&self, fh: &VerifiedHandle) -> Result<Box<dyn LockFile>> {
        let (path, st) = self.resolve(fh)?;
        if st.file_type() != libc::S_IFREG {
            return Err(if st.is_dir() {
                Error::IsDir
            } else {
                Error::Inval
            });
        }
        let flags = libc::O_NOCTTY | libc::O_NONBLOCK;
        match rnfs_sys::reopen(path.as_fd(), libc::O_RDWR | flags) {
            Ok(fd) => Ok(Box::new(OfdLockFile {
                fd,
                read_only: false,
            })),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EROFS | libc::ETXTBSY | libc::EACCES)
                ) =>
            {
                let fd = rnfs_sys::reopen(path.as_fd(), libc::O_RDONLY | flags)?;
                Ok(Box::new(OfdLockFile {
                    fd,
                    read_only: true,
                }))
            }
            Err(e) => Err(Error::from(e)),
        }
    }
}

impl Backend for LocalFs {
    fn open_lock_file(&self, fh: &VerifiedHandle) -> Result<Option<Box<dyn LockFile>>> {
        self.open_ofd_lock_file(fh).map(Some)
    }

    fn lease(&self, fh: &VerifiedHandle, write: bool) -> Result<bool> {
        let key = fh.handle().to_bytes();
        if self.leases.contains(&key) {
            return Ok(true);
        }
        let (path, st) = self.resolve(fh)?;
        if st.file_type() != libc::S_IFREG {
            return Ok(false);
        }
        let flags = libc::O_NOCTTY | libc::O_NONBLOCK;
        if !write {
            let fd = rnfs_sys::reopen(path.as_fd(), libc::O_RDONLY | flags)?;
            return Ok(self.leases.take_read(key, fd)?);
        }
        // The cache's descriptor of the file would keep the write lease from being taken: this
        // one, opened for writing, takes its place and is the file's only open description.
        let body = self.body(fh);
        drop(self.files.remove(body));
        let fd = rnfs_sys::reopen(path.as_fd(), libc::O_RDWR | flags)?;
        let file = Arc::new(cache::OpenFile::new(
            fd,
            true,
            self.writeback_errors.clone(),
        ));
        if !self.leases.take_write(key, body, file.clone())? {
            return Ok(false);
        }
        let (_, evicted) = self.files.insert(body, file);
        drop(evicted);
        Ok(true)
    }

    fn unlease(&self, key: &[u8]) {
        self.leases.release(key);
    }

    fn leases_broken(&self) -> Vec<Bytes> {
        self.leases.broken()
    }

    fn root(&self) -> FileHandle {
        self.root_handle.clone()
    }

    fn handle_key(&self) -> &ExportKey {
        &self.key
    }

    /// The export root's path (as the kernel names it).
    fn describe(&self) -> String {
        String::from_utf8_lossy(self.subtree.root_path()).into_owned()
    }

    fn local_root(&self) -> Option<Vec<u8>> {
        Some(self.subtree.root_path().to_vec())
    }

    fn answers_promptly(&self) -> bool {
        self.on_local_fs
    }

    fn getattr(&self, _who: &Identity, fh: &VerifiedHandle) -> Result<Attr> {
        let body = self.body(fh);
        // A file kept open for READ/WRITE answers from its descriptor: one fstat instead of
        // open_by_handle_at + fstat + close (clients GETATTR the files they are reading).
        if let Some(file) = self.files.get(body) {
            return Ok(self.attr(&self.stat_linked(file.fd(), body, file.inside_memo())?));
        }
        let (_fd, st) = self.resolve_body(body)?;
        Ok(self.attr(&st))
    }

    fn lookup(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
    ) -> Result<(FileHandle, Attr)> {
        self.lookup_with_dir(who, dir, name).0
    }

    fn lookup_with_dir(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
    ) -> (Result<(FileHandle, Attr)>, Option<Attr>) {
        let (dfd, dst) = match self.resolve(dir) {
            Ok(x) => x,
            Err(e) => return (Err(e), None),
        };
        // The directory's attributes as resolved: a lookup does not change them.
        let dir_attr = Some(self.attr(&dst));
        (self.lookup_in(who, dir, &dfd, &dst, name), dir_attr)
    }

    fn access(&self, who: &Identity, fh: &VerifiedHandle, requested: u32) -> Result<(u32, Attr)> {
        let (fd, st) = self.resolve(fh)?;
        let is_dir = st.is_dir();
        // Creating, removing or renaming in a directory needs write *and* search permission on it
        // (as knfsd maps MODIFY/EXTEND/DELETE for directories).
        let write_mode = if is_dir {
            libc::W_OK | libc::X_OK
        } else {
            libc::W_OK
        };
        // (bit, which check, applies to this type); checks: 0 read, 1 search/execute, 2 write.
        let wanted: [(u32, usize, bool); 6] = [
            (access::READ, 0, true),
            (access::LOOKUP, 1, is_dir),
            (access::EXECUTE, 1, !is_dir),
            (access::MODIFY, 2, true),
            (access::EXTEND, 2, true),
            (access::DELETE, 2, is_dir),
        ];
        let modes = [libc::R_OK, libc::X_OK, write_mode];
        let mut answers: [Option<bool>; 3] = [None; 3];
        let mut granted = 0;
        {
            let _as = as_caller(who)?;
            for (bit, check, applies) in wanted {
                if requested & bit == 0 || !applies {
                    continue;
                }
                let ok = match answers[check] {
                    Some(ok) => ok,
                    None => {
                        let flags = libc::AT_EACCESS | libc::AT_EMPTY_PATH;
                        let ok = match rnfs_sys::faccessat2(fd.as_fd(), c"", modes[check], flags) {
                            Ok(()) => true,
                            Err(e) if denied(&e) => false,
                            Err(e) => return Err(e.into()),
                        };
                        answers[check] = Some(ok);
                        ok
                    }
                };
                if ok {
                    granted |= bit;
                }
            }
        }
        Ok((granted, self.attr(&st)))
    }

    fn readlink(&self, _who: &Identity, fh: &VerifiedHandle) -> Result<(Bytes, Attr)> {
        let (fd, st) = self.resolve(fh)?;
        if st.file_type() != libc::S_IFLNK {
            return Err(Error::Inval);
        }
        let target = rnfs_sys::readlinkat(fd.as_fd(), c"")?;
        Ok((Bytes::from(target), self.attr(&st)))
    }

    fn read(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        offset: u64,
        count: u32,
    ) -> Result<ReadData> {
        // Regular files only: devices and FIFOs are not read through NFS.
        let (open, st) = self.open_for_read(who, fh)?;
        let file = open.fd();
        let want = count as usize;
        // Allocate for what the file holds now, not for `count`: a small file's read stays small.
        let initial = usize::try_from(st.size.saturating_sub(offset))
            .unwrap_or(usize::MAX)
            .min(want);
        let mut data = Vec::with_capacity(initial);
        loop {
            while data.len() < want && data.len() < data.capacity() {
                let at = offset.saturating_add(data.len() as u64);
                let max = want - data.len();
                if rnfs_sys::pread_append(file.as_fd(), &mut data, max, at)? == 0 {
                    break;
                }
            }
            let post = rnfs_sys::fstat(file.as_fd())?;
            let end = offset.saturating_add(data.len() as u64);
            if data.len() < want && data.len() == data.capacity() && end < post.size {
                // The file grew while we read: read on (an empty non-EOF reply makes clients fail).
                let more = usize::try_from(post.size - end)
                    .unwrap_or(usize::MAX)
                    .min(want - data.len());
                data.reserve_exact(more);
                continue;
            }
            return Ok(ReadData {
                data: Bytes::from(data),
                eof: end >= post.size,
                attr: self.attr(&post),
            });
        }
    }

    /// The zero-copy READ: the cached descriptor (permission checked for `who`) is spliced into
    /// the loan's pipe, so the pages go from the page cache to the socket without a user-space
    /// copy. The byte count is what the pipe holds, fixed before the reply header is written.
    fn read_spliced(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        offset: u64,
        count: u32,
        pipe: &rnfs_sys::pipe::Pipe,
    ) -> Result<Option<crate::SplicedRead>> {
        let (open, _) = self.open_for_read(who, fh)?;
        let file = open.fd();
        let want = (count as usize).min(pipe.capacity_bytes());
        let moved = pipe.fill_from_file(file.as_fd(), offset, want)?;
        let post = rnfs_sys::fstat(file.as_fd())?;
        let end = offset.saturating_add(moved as u64);
        Ok(Some(crate::SplicedRead {
            bytes: moved as u32,
            eof: end >= post.size,
            attr: self.attr(&post),
        }))
    }

    fn readdir(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        cookie: u64,
        _verifier: [u8; 8],
        plus: bool,
        sink: &mut dyn FnMut(DirEntry) -> bool,
    ) -> Result<DirListing> {
        // Read before the directory is `fstat`ed (see `listing::Stamp::settled`).
        let now = std::time::SystemTime::now();
        let body = self.body(dir);
        let (dfd, dst) = self.resolve_body(body)?;
        if !dst.is_dir() {
            return Err(Error::NotDir);
        }
        let stamp = Stamp::of(&dst);
        let is_root = self.is_root(&dst);
        let dir_attr = self.attr(&dst);

        // Everything below runs as the caller: the open needs read permission, the READDIRPLUS
        // lookups search permission. The sink is our own encoder and touches no file system.
        let _as = as_caller(who)?;
        let rd = open_at_cookie(dfd.as_fd(), cookie)?;
        let call = DirCall {
            key: body,
            rd: rd.as_fd(),
            dst: &dst,
            dir: dir.handle(),
            dir_attr: &dir_attr,
            is_root,
            plus,
            cookie,
            stamp,
            settled: stamp.settled(now),
        };
        // A READDIRPLUS pass records what it sends (see `listing`); `None` once an entry cannot
        // be remembered.
        let mut batch = plus.then(Vec::new);
        let eof = match self.readdir_from_memory(&call, sink, &mut batch)? {
            Some(eof) => eof,
            None => self.readdir_from_disk(&call, sink, batch)?,
        };
        Ok(DirListing {
            eof,
            verifier: verifier(&dst),
            dir_attr,
        })
    }

    fn fsstat(&self, _who: &Identity, fh: &VerifiedHandle) -> Result<(FsStat, Attr)> {
        let (fd, st) = self.resolve(fh)?;
        let v = rnfs_sys::fstatvfs(fd.as_fd())?;
        let bytes = |blocks: u64| blocks.saturating_mul(v.frsize);
        let fs = FsStat {
            total_bytes: bytes(v.blocks),
            free_bytes: bytes(v.bfree),
            avail_bytes: bytes(v.bavail),
            total_files: v.files,
            free_files: v.ffree,
            avail_files: v.favail,
        };
        Ok((fs, self.attr(&st)))
    }

    fn pathconf(&self, _who: &Identity, fh: &VerifiedHandle) -> Result<(PathConf, Attr)> {
        let (fd, st) = self.resolve(fh)?;
        // glibc answers from the file system type (65000 for ext4); an unknown limit is reported as
        // ext4's rather than as "none", which NFSv3 cannot express.
        let link_max = match rnfs_sys::fpathconf(fd.as_fd(), libc::_PC_LINK_MAX) {
            Ok(Some(n)) => u32::try_from(n).unwrap_or(u32::MAX),
            _ => 65000,
        };
        let pc = PathConf {
            link_max,
            name_max: NAME_MAX as u32,
            no_trunc: true,
            chown_restricted: true,
            case_insensitive: false,
            case_preserving: true,
        };
        Ok((pc, self.attr(&st)))
    }

    // The modifying procedures live in `write`.

    fn setattr(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        attrs: &SetAttrs,
        guard: Option<Timestamp>,
    ) -> Result<Wcc> {
        self.do_setattr(who, fh, attrs, guard)
    }

    fn write(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        offset: u64,
        data: &[u8],
        stable: Stability,
    ) -> Result<Written> {
        self.do_write(who, fh, offset, data, stable)
    }

    fn commit(&self, who: &Identity, fh: &VerifiedHandle, offset: u64, count: u32) -> Result<Wcc> {
        self.do_commit(who, fh, offset, count)
    }

    fn create(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
        how: &CreateMode,
    ) -> Result<Created> {
        self.do_create(who, dir, name, how)
    }

    fn mkdir(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
        attrs: &SetAttrs,
    ) -> Result<Created> {
        self.do_mkdir(who, dir, name, attrs)
    }

    fn symlink(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
        target: &[u8],
        attrs: &SetAttrs,
    ) -> Result<Created> {
        self.do_symlink(who, dir, name, target, attrs)
    }

    fn mknod(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
        kind: NodeKind,
        attrs: &SetAttrs,
    ) -> Result<Created> {
        self.do_mknod(who, dir, name, kind, attrs)
    }

    fn remove(&self, who: &Identity, dir: &VerifiedHandle, name: &[u8]) -> Result<Wcc> {
        self.do_remove(who, dir, name)
    }

    fn rmdir(&self, who: &Identity, dir: &VerifiedHandle, name: &[u8]) -> Result<Wcc> {
        self.do_rmdir(who, dir, name)
    }

    fn rename(
        &self,
        who: &Identity,
        from_dir: &VerifiedHandle,
        from_name: &[u8],
        to_dir: &VerifiedHandle,
        to_name: &[u8],
    ) -> Result<(Wcc, Wcc)> {
        self.do_rename(who, from_dir, from_name, to_dir, to_name)
    }

    fn link(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        dir: &VerifiedHandle,
        name: &[u8],
    ) -> Result<(Option<Attr>, Wcc)> {
        self.do_link(who, fh, dir, name)
    }

    fn writeback_errors(&self) -> u64 {
        self.writeback_errors.load(Ordering::Acquire)
    }

    /// Closes the cached files not used since the previous call (see [`cache`]).
    fn close_idle_files(&self) {
        self.check_root_path();
        let idle = self.files.close_idle();
        drop(idle); // outside the cache's lock: may fsync
        drop(self.files.close_idle_writers());
        drop(self.paths.close_idle());
        drop(self.listings.drop_idle());
    }

    fn close_all_files(&self) {
        let all = self.files.take_all();
        drop(all); // outside the cache's lock: syncs unstable writes
    }

    // NFSv4.2's operations live in `v42`.

    fn seek(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        what: SeekWhat,
        offset: u64,
    ) -> Result<Sought> {
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

    fn clone_range(
        &self,
        who: &Identity,
        src: &VerifiedHandle,
        dst: &VerifiedHandle,
        offsets: (u64, u64),
        len: u64,
    ) -> Result<()> {
        self.do_clone_range(who, src, dst, offsets, len)
    }

    fn xattr_support(&self) -> bool {
        self.xattrs
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
        how: XattrSet,
    ) -> Result<Wcc> {
        self.do_setxattr(who, fh, name, value, how)
    }

    fn listxattrs(&self, who: &Identity, fh: &VerifiedHandle) -> Result<Vec<Bytes>> {
        self.do_listxattrs(who, fh)
    }

    fn removexattr(&self, who: &Identity, fh: &VerifiedHandle, name: &[u8]) -> Result<Wcc> {
        self.do_removexattr(who, fh, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Describing a name without opening it gives what opening it gives, and declines (rather
    /// than guess) when the handle does not name the inode stat saw.
    #[test]
    fn described_by_name_as_by_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        std::os::unix::fs::symlink("f", dir.path().join("l")).unwrap();
        let fs = LocalFs::new(1, dir.path(), HandleKey::random().unwrap()).unwrap();
        let root = fs.root_fd.as_fd();
        for name in [c"f", c"l"] {
            let fd = LocalFs::open_child(root, &name.to_owned()).unwrap();
            let (body, st) = fs.describe_body(fd.as_fd()).unwrap();
            match fs.describe_name(root, name) {
                Some(Ok((b, s))) => {
                    assert_eq!((b, s.ino, s.mode), (body, st.ino, st.mode), "{name:?}");
                }
                Some(Err(e)) => panic!("{name:?}: {e:?}"),
                // A file system whose handles do not carry the inode: the caller opens.
                None => {
                    let (kh, _) = rnfs_sys::fd_to_handle(fd.as_fd()).unwrap();
                    assert_ne!(handle_inode(&kh), Some(st.ino as u32));
                }
            }
        }
        assert!(matches!(
            fs.describe_name(root, c"missing"),
            Some(Err(Error::NoEnt))
        ));
        // The inode number is read from the handle's first word (what `describe_name` compares
        // with stat's): a handle with another word names another inode.
        let (mut kh, _) = rnfs_sys::name_to_handle_at(root, c"f", 0).unwrap();
        if let Some(ino) = handle_inode(&kh) {
            kh.bytes[..4].copy_from_slice(&(ino ^ 1).to_ne_bytes());
            assert_ne!(handle_inode(&kh), Some(ino));
        }
        assert_eq!(
            handle_inode(&KernelHandle {
                handle_type: 0x4d,
                bytes: vec![1; 16]
            }),
            None,
            "formats that do not carry the inode in the clear"
        );
    }

    /// A ctime is settled once it is older than the margin for its granularity; one in the
    /// future (a clock stepped back) or before the epoch never is.
    #[test]
    fn settled_after_the_margin_for_the_granularity() {
        let at = |sec, nsec| TimeSpec { sec, nsec };
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000);
        assert!(settled(at(999, 750_000_000), now));
        assert!(!settled(at(999, 750_000_001), now));
        // Whole seconds: 2.25 s.
        assert!(!settled(at(998, 0), now));
        assert!(settled(at(997, 0), now));
        assert!(!settled(at(1_000, 1), now));
        assert!(!settled(at(-1, 5), now));
        // An unsettled object never gets the same key twice, so no answer about it is reused.
        let dir = tempfile::tempdir().unwrap();
        let fs = LocalFs::new(1, dir.path(), HandleKey::random().unwrap()).unwrap();
        let mut st = rnfs_sys::fstat(fs.root_fd.as_fd()).unwrap();
        let who = Identity::root();
        st.ctime = at(1, 1);
        let old = fs.grant_key(&st, &who, libc::R_OK);
        assert_eq!(old, fs.grant_key(&st, &who, libc::R_OK));
        st.ctime = at(i64::from(u32::MAX), 1);
        let future = fs.grant_key(&st, &who, libc::R_OK);
        assert_ne!(future, fs.grant_key(&st, &who, libc::R_OK));
    }
}
