//! The storage backend: what an export is served from.
//!
//! # Design
//! * The [`Backend`] trait is **synchronous and blocking**: the server runs every call on its bounded
//!   file-system worker pool, never on a reactor thread. A backend never sees sockets or clocks.
//! * Every call carries the caller's [`Identity`] *after* export squashing. The local backend performs
//!   each call with that identity as the thread's fsuid/fsgid/supplementary groups, so the kernel's own
//!   permission checks apply (RFC 1813 §4.4: the server enforces permissions).
//! * File handles are opaque to the server except for the common prefix defined in [`handle`], which
//!   names the export so a request can be routed before its handle is verified. Handles carry a keyed
//!   MAC (see [`handle`]): a forged or corrupted handle is [`Error::BadHandle`], one for an object that
//!   no longer exists, or is no longer inside its export (moved out, or the export redefined), is
//!   [`Error::Stale`]. The server verifies the MAC with the backend's key ([`Backend::handle_key`])
//!   before any call, so backend methods take [`VerifiedHandle`]s, which only that check makes.
//! * Errors are a closed set of NFS-meaningful kinds ([`Error`]); the server maps them to `nfsstat3`.
#![forbid(unsafe_code)]

pub mod ceph;
mod ceph_files;
mod ceph_listing;
mod ceph_lock;
pub mod fault;
pub mod handle;
mod idle_list;
pub mod local;
mod v42;
mod xattr;

use bytes::Bytes;

pub use handle::{FileHandle, VerifiedHandle};

/// Who performs a call, after root/all squashing (RFC 1813 §4.4, AUTH_SYS of RFC 5531 appendix A).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, at most 16 with AUTH_SYS.
    pub groups: Vec<u32>,
}

impl Identity {
    pub fn root() -> Self {
        Identity {
            uid: 0,
            gid: 0,
            groups: Vec::new(),
        }
    }
}

/// The type of a file system object (`ftype3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    Regular,
    Directory,
    BlockDevice,
    CharDevice,
    Symlink,
    Socket,
    Fifo,
}

/// Seconds and nanoseconds since the Unix epoch (`nfstime3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Timestamp {
    pub seconds: u32,
    pub nanoseconds: u32,
}

/// File attributes (`fattr3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub file_type: FileType,
    /// Permission bits including setuid/setgid/sticky (`mode & 0o7777`).
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub size_bytes: u64,
    pub used_bytes: u64,
    /// Device major and minor numbers for block and character devices.
    pub rdev: (u32, u32),
    pub fsid: u64,
    pub fileid: u64,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
}

/// The attributes a client uses to detect change around an operation (`wcc_attr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WccAttr {
    pub size_bytes: u64,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
}

impl From<&Attr> for WccAttr {
    fn from(a: &Attr) -> Self {
        WccAttr {
            size_bytes: a.size_bytes,
            mtime: a.mtime,
            ctime: a.ctime,
        }
    }
}

/// The ACCESS3 bits (RFC 1813 §3.3.4).
pub mod access {
    pub const READ: u32 = 0x0001;
    pub const LOOKUP: u32 = 0x0002;
    pub const MODIFY: u32 = 0x0004;
    pub const EXTEND: u32 = 0x0008;
    pub const DELETE: u32 = 0x0010;
    pub const EXECUTE: u32 = 0x0020;
    pub const ALL: u32 = 0x003f;
}

/// One directory entry as READDIR/READDIRPLUS return it.
#[derive(Debug, Clone)]
pub struct DirEntry {
    pub fileid: u64,
    pub name: Bytes,
    /// Where the *next* READDIR continues after this entry. Stable while the directory is unchanged.
    pub cookie: u64,
    /// Filled for READDIRPLUS only (and only when they could be read).
    pub attr: Option<Attr>,
    pub handle: Option<FileHandle>,
}

/// The outcome of one READDIR pass.
#[derive(Debug, Clone)]
pub struct DirListing {
    /// True when the sink accepted every remaining entry of the directory.
    pub eof: bool,
    pub verifier: [u8; 8],
    pub dir_attr: Attr,
}

/// Data returned by READ.
#[derive(Debug, Clone)]
pub struct ReadData {
    pub data: Bytes,
    /// True when the read reached the end of the file.
    pub eof: bool,
    /// Post-operation attributes of the file.
    pub attr: Attr,
}

/// The outcome of [`Backend::read_spliced`].
#[derive(Debug, Clone)]
pub struct SplicedRead {
    /// Bytes now in the pipe.
    pub bytes: u32,
    pub eof: bool,
    pub attr: Attr,
}

/// File system totals (`FSSTAT3resok`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsStat {
    pub total_bytes: u64,
    pub free_bytes: u64,
    pub avail_bytes: u64,
    pub total_files: u64,
    pub free_files: u64,
    pub avail_files: u64,
}

/// POSIX limits (`PATHCONF3resok`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathConf {
    pub link_max: u32,
    pub name_max: u32,
    pub no_trunc: bool,
    pub chown_restricted: bool,
    pub case_insensitive: bool,
    pub case_preserving: bool,
}

/// How SETATTR, CREATE, MKDIR, SYMLINK and MKNOD set a time (`set_atime`/`set_mtime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SetTime {
    #[default]
    DontChange,
    ServerTime,
    ClientTime(Timestamp),
}

/// Attributes to change (`sattr3`); `None` leaves a field alone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetAttrs {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size_bytes: Option<u64>,
    pub atime: SetTime,
    pub mtime: SetTime,
}

/// How durable a write is (`stable_how`), asked for and achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stability {
    /// In the page cache only; made durable by COMMIT.
    Unstable,
    /// Data (and the metadata needed to read it back) on stable storage.
    DataSync,
    /// Data and all metadata on stable storage.
    FileSync,
}

/// How CREATE treats an existing name (`createhow3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateMode {
    /// Create or truncate-and-reuse.
    Unchecked(SetAttrs),
    /// Fail with `Exist` if the name exists.
    Guarded(SetAttrs),
    /// Create once: a retransmission with the same verifier succeeds and returns the same file,
    /// another verifier fails with `Exist` (RFC 1813 §3.3.8).
    Exclusive([u8; 8]),
}

/// A special file MKNOD makes (`mknoddata3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Fifo,
    Socket,
    CharDevice { major: u32, minor: u32 },
    BlockDevice { major: u32, minor: u32 },
}

/// Mode of a new file, FIFO, socket or device when the client gives none, and of an EXCLUSIVE
/// CREATE until the client's SETATTR: owner only (every backend alike).
pub(crate) const DEFAULT_MODE: u32 = 0o600;
/// Mode of a new directory when the client gives none.
pub(crate) const DEFAULT_DIR_MODE: u32 = 0o700;

/// An EXCLUSIVE CREATE verifier as the (mtime, atime) seconds that store it, 31 bits each, as
/// knfsd stores it (RFC 1813 §3.3.8: the server keeps the verifier with the file).
pub(crate) fn verifier_times(v: &[u8; 8]) -> (i64, i64) {
    let hi = u32::from_be_bytes([v[0], v[1], v[2], v[3]]) & 0x7fff_ffff;
    let lo = u32::from_be_bytes([v[4], v[5], v[6], v[7]]) & 0x7fff_ffff;
    (i64::from(hi), i64::from(lo))
}

/// Weak cache consistency data (`wcc_data`): attributes before and after a change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Wcc {
    pub before: Option<WccAttr>,
    pub after: Option<Attr>,
}

/// A new object, and the change to its directory.
#[derive(Debug, Clone)]
pub struct Created {
    pub handle: FileHandle,
    pub attr: Attr,
    pub dir: Wcc,
}

/// The outcome of WRITE.
#[derive(Debug, Clone)]
pub struct Written {
    pub count: u32,
    /// Never less durable than what was asked.
    pub committed: Stability,
    pub file: Wcc,
}

/// What [`Backend::seek`] looks for (RFC 7862 §15.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekWhat {
    Data,
    Hole,
}

/// What [`Backend::seek`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sought {
    /// Where the data or hole starts; `None` when there is no data at or after the offset (a
    /// hole runs to the end of the file). The end of the file counts as a hole.
    pub offset: Option<u64>,
    /// The file's size when it was asked.
    pub size_bytes: u64,
}

/// How [`Backend::setxattr`] treats an existing attribute (RFC 8276 §8.4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XattrSet {
    /// Create or replace.
    Either,
    /// [`Error::Exist`] if it exists.
    Create,
    /// [`Error::NoXattr`] if it does not.
    Replace,
}

/// Longest xattr name a backend takes (bytes, without the `user.` prefix): Linux's 255
/// (`XATTR_NAME_MAX`) less the prefix.
pub const XATTR_NAME_BYTES_MAX: usize = 255 - XATTR_USER_PREFIX.len();
/// The namespace every NFS xattr lives in (RFC 8276 §5.2: the user namespace only).
pub const XATTR_USER_PREFIX: &str = "user.";

/// A storage error, in the terms NFSv3 can report (`nfsstat3`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("operation not permitted")]
    Perm,
    #[error("no such file or directory")]
    NoEnt,
    #[error("I/O error")]
    Io,
    #[error("no such device")]
    NxIo,
    #[error("permission denied")]
    Access,
    #[error("file exists")]
    Exist,
    #[error("cross-device link")]
    XDev,
    #[error("no such device")]
    NoDev,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("invalid argument")]
    Inval,
    #[error("file too large")]
    FBig,
    #[error("no space left on device")]
    NoSpc,
    #[error("read-only file system")]
    RoFs,
    #[error("too many links")]
    MLink,
    #[error("name too long")]
    NameTooLong,
    #[error("directory not empty")]
    NotEmpty,
    #[error("quota exceeded")]
    DQuot,
    #[error("stale file handle")]
    Stale,
    #[error("malformed or forged file handle")]
    BadHandle,
    #[error("stale READDIR cookie")]
    BadCookie,
    #[error("SETATTR guard mismatch: the object's ctime changed")]
    NotSync,
    #[error("operation not supported")]
    NotSupp,
    #[error("object of a type the server does not support")]
    BadType,
    /// The file is delegated to an NFSv4 client or leased by a local process, and that is
    /// being recalled: try again shortly (NFS3ERR_JUKEBOX, NFS4ERR_DELAY).
    #[error("file delegated or leased elsewhere: try again later")]
    Delay,
    #[error("no such extended attribute")]
    NoXattr,
    #[error("extended attribute value or list too large")]
    XattrTooBig,
    #[error("server fault (errno {0})")]
    ServerFault(i32),
    /// The backend's client was evicted by its cluster (a CephFS client blocklisted, e.g. by
    /// another head that counted this one dead): nothing it holds is valid any more, and only
    /// a restart of the server recovers (clients retry meanwhile: NFS3ERR_JUKEBOX,
    /// NFS4ERR_DELAY).
    #[error("storage client evicted (fenced) by its cluster: the server must restart")]
    Fenced,
}

impl Error {
    /// Maps an errno from a system call to the closest NFS error.
    pub fn from_errno(errno: i32) -> Self {
        match errno {
            libc::EPERM => Error::Perm,
            libc::ENOENT => Error::NoEnt,
            libc::EIO => Error::Io,
            libc::ENXIO => Error::NxIo,
            libc::EACCES => Error::Access,
            libc::EEXIST => Error::Exist,
            libc::EXDEV => Error::XDev,
            libc::ENODEV => Error::NoDev,
            libc::ENOTDIR => Error::NotDir,
            libc::EISDIR => Error::IsDir,
            libc::EINVAL => Error::Inval,
            libc::EFBIG => Error::FBig,
            libc::ENOSPC => Error::NoSpc,
            libc::EROFS => Error::RoFs,
            libc::EMLINK => Error::MLink,
            libc::ENAMETOOLONG => Error::NameTooLong,
            libc::ENOTEMPTY => Error::NotEmpty,
            libc::EDQUOT => Error::DQuot,
            libc::ESTALE => Error::Stale,
            libc::EOPNOTSUPP => Error::NotSupp,
            // An O_NONBLOCK open meeting a file lease that is being broken.
            libc::EWOULDBLOCK => Error::Delay,
            // Only the xattr calls say these: no such attribute, value or list too large.
            libc::ENODATA => Error::NoXattr,
            libc::E2BIG | libc::ERANGE => Error::XattrTooBig,
            // A symlink met where a directory was needed (O_NOFOLLOW) is "not a directory" to NFS.
            libc::ELOOP => Error::NotDir,
            other => Error::ServerFault(other),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        e.raw_os_error().map_or(Error::Io, Error::from_errno)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// One export's storage. All methods block; call them from a worker thread.
///
/// `who` is always the squashed caller identity. Names are single path components: the backend
/// refuses `/`, NUL and empty names, and never lets `..` leave the export root.
pub trait Backend: Send + Sync + 'static {
    /// The export's root handle.
    fn root(&self) -> FileHandle;

    /// The key this backend seals its handles with ([`handle::seal`]). The server verifies every
    /// handle a client sends with it ([`handle::ExportKey::verify`]) before calling the backend,
    /// which therefore only ever sees [`VerifiedHandle`]s.
    fn handle_key(&self) -> &handle::ExportKey;

    /// What the export is served from, for logs and the admin interface (e.g. the directory of a
    /// local export).
    fn describe(&self) -> String;

    /// Everything that chose where this backend's data comes from: a reload keeps an export's
    /// backend (open files, caches, connections) only when this is unchanged. By default, what
    /// [`describe`](Backend::describe) says.
    fn source_identity(&self) -> String {
        self.describe()
    }

    /// The export root's path in the server's own file system, when it has one. MNT resolves an
    /// absolute symlink inside the export against it, as Linux's mountd does.
    fn local_root(&self) -> Option<Vec<u8>> {
        None
    }

    /// Whether every call answers from this machine's own memory or disks, never waiting on a
    /// network or a remote service. The server may then run a lone request on the thread that
    /// read it (saving a hand-off to the worker pool); the cost of a slow call is that one
    /// connection reading nothing meanwhile. `false` (the default) keeps every call on the pool.
    fn answers_promptly(&self) -> bool {
        false
    }

    /// Whether a call found the backend's client evicted by its cluster ([`Error::Fenced`]):
    /// the server then stops, to be restarted. Kept by the server's gate around each backend;
    /// backends themselves need not track it.
    fn fenced(&self) -> bool {
        false
    }

    /// Attributes of `fh` (GETATTR). Needs no permission on the object itself.
    fn getattr(&self, who: &Identity, fh: &VerifiedHandle) -> Result<Attr>;

    /// Looks `name` up in directory `dir` (LOOKUP), with `.` and `..` handled and `..` of the root
    /// being the root. Returns the object's handle and attributes.
    fn lookup(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
    ) -> Result<(FileHandle, Attr)>;

    /// [`Backend::lookup`] and the directory's attributes, for a LOOKUP reply (which carries
    /// both, success or not). A backend that has the directory's attributes at hand during the
    /// lookup returns those instead of resolving `dir` a second time.
    fn lookup_with_dir(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
    ) -> (Result<(FileHandle, Attr)>, Option<Attr>) {
        let found = self.lookup(who, dir, name);
        (found, self.getattr(who, dir).ok())
    }

    /// Which of the `requested` ACCESS3 bits `who` holds on `fh`, and its attributes.
    fn access(&self, who: &Identity, fh: &VerifiedHandle, requested: u32) -> Result<(u32, Attr)>;

    /// The target of symbolic link `fh` and its attributes.
    fn readlink(&self, who: &Identity, fh: &VerifiedHandle) -> Result<(Bytes, Attr)>;

    /// Up to `count` bytes of `fh` from `offset`.
    fn read(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        offset: u64,
        count: u32,
    ) -> Result<ReadData>;

    /// Like [`Backend::read`], but moves the data into `pipe` by `splice(2)` instead of copying it
    /// to user space: the pipe then holds references to the file's pages (the loan the server sends
    /// from). Returns `Ok(None)` when this backend cannot splice (the caller then uses `read`).
    /// `data` in the result is empty; `eof` and `attr` are as for `read`, and the number of bytes
    /// in the pipe is in [`SplicedRead::bytes`].
    fn read_spliced(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        offset: u64,
        count: u32,
        pipe: &rnfs_sys::pipe::Pipe,
    ) -> Result<Option<SplicedRead>> {
        let _ = (who, fh, offset, count, pipe);
        Ok(None)
    }

    /// Lists `dir` from `cookie` (0 = start), feeding entries to `sink` in order until it returns
    /// false (that entry is then *not* taken) or the directory ends. With `plus`, entries carry
    /// attributes and handles (READDIRPLUS). Holds no lock between calls: a huge directory is read
    /// one reply at a time.
    ///
    /// Whether `.` and `..` are listed is the backend's choice (RFC 1813 §3.3.16); [`local::LocalFs`]
    /// lists both. The sink may run while the worker thread acts as `who` (see [`local`]): it must only
    /// collect or encode entries, not touch the file system or start threads (a thread inherits the
    /// identity of the thread that creates it).
    fn readdir(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        cookie: u64,
        verifier: [u8; 8],
        plus: bool,
        sink: &mut dyn FnMut(DirEntry) -> bool,
    ) -> Result<DirListing>;

    /// File system totals for the file system holding `fh`, and `fh`'s attributes.
    fn fsstat(&self, who: &Identity, fh: &VerifiedHandle) -> Result<(FsStat, Attr)>;

    /// POSIX limits for `fh`, and its attributes.
    fn pathconf(&self, who: &Identity, fh: &VerifiedHandle) -> Result<(PathConf, Attr)>;
    // ---- The modifying procedures. Defaults refuse (a read-only backend needs nothing more). ----

    /// Changes attributes (SETATTR). With `guard`, the change happens only if the object's ctime
    /// equals it, else `NotSync`. A size change needs write permission; the kernel decides.
    fn setattr(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        attrs: &SetAttrs,
        guard: Option<Timestamp>,
    ) -> Result<Wcc> {
        let _ = (who, fh, attrs, guard);
        Err(Error::RoFs)
    }

    /// Writes `data` at `offset` (WRITE) at least as durably as `stable` asks.
    fn write(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        offset: u64,
        data: &[u8],
        stable: Stability,
    ) -> Result<Written> {
        let _ = (who, fh, offset, data, stable);
        Err(Error::RoFs)
    }

    /// Makes earlier unstable writes to `fh` durable (COMMIT). A write-back error is `Io` and is
    /// also counted in [`Backend::writeback_errors`].
    fn commit(&self, who: &Identity, fh: &VerifiedHandle, offset: u64, count: u32) -> Result<Wcc> {
        let _ = (who, fh, offset, count);
        Err(Error::RoFs)
    }

    /// Creates a regular file (CREATE).
    fn create(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
        how: &CreateMode,
    ) -> Result<Created> {
        let _ = (who, dir, name, how);
        Err(Error::RoFs)
    }

    /// Creates a directory (MKDIR).
    fn mkdir(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
        attrs: &SetAttrs,
    ) -> Result<Created> {
        let _ = (who, dir, name, attrs);
        Err(Error::RoFs)
    }

    /// Creates a symbolic link to `target`, which is stored as given and never resolved here.
    fn symlink(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
        target: &[u8],
        attrs: &SetAttrs,
    ) -> Result<Created> {
        let _ = (who, dir, name, target, attrs);
        Err(Error::RoFs)
    }

    /// Creates a special file (MKNOD).
    fn mknod(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
        kind: NodeKind,
        attrs: &SetAttrs,
    ) -> Result<Created> {
        let _ = (who, dir, name, kind, attrs);
        Err(Error::RoFs)
    }

    /// Removes a non-directory (REMOVE).
    fn remove(&self, who: &Identity, dir: &VerifiedHandle, name: &[u8]) -> Result<Wcc> {
        let _ = (who, dir, name);
        Err(Error::RoFs)
    }

    /// Removes an empty directory (RMDIR).
    fn rmdir(&self, who: &Identity, dir: &VerifiedHandle, name: &[u8]) -> Result<Wcc> {
        let _ = (who, dir, name);
        Err(Error::RoFs)
    }

    /// Renames atomically, replacing an existing target (RENAME). Returns the source and target
    /// directories' wcc data.
    fn rename(
        &self,
        who: &Identity,
        from_dir: &VerifiedHandle,
        from_name: &[u8],
        to_dir: &VerifiedHandle,
        to_name: &[u8],
    ) -> Result<(Wcc, Wcc)> {
        let _ = (who, from_dir, from_name, to_dir, to_name);
        Err(Error::RoFs)
    }

    /// Makes a hard link to `fh` named `name` in `dir` (LINK). Returns the file's new attributes
    /// and the directory's wcc data.
    fn link(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        dir: &VerifiedHandle,
        name: &[u8],
    ) -> Result<(Option<Attr>, Wcc)> {
        let _ = (who, fh, dir, name);
        Err(Error::RoFs)
    }

    // ---- NFSv4.2: sparse files (RFC 7862) and extended attributes (RFC 8276). Defaults: not
    // supported. ----

    /// Where the next data or hole at or after `offset` starts (`SEEK_DATA`/`SEEK_HOLE`), for a
    /// caller who may read the regular file `fh`. An `offset` at or past the end is
    /// [`Error::NxIo`].
    fn seek(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        what: SeekWhat,
        offset: u64,
    ) -> Result<Sought> {
        let _ = (who, fh, what, offset);
        Err(Error::NotSupp)
    }

    /// Reserves space for `len` bytes at `offset` (may extend the file), for a caller who may
    /// write it.
    fn allocate(&self, who: &Identity, fh: &VerifiedHandle, offset: u64, len: u64) -> Result<Wcc> {
        let _ = (who, fh, offset, len);
        Err(Error::NotSupp)
    }

    /// Punches a hole of `len` bytes at `offset` (reads there return zeros; the size does not
    /// change), for a caller who may write the file.
    fn deallocate(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        offset: u64,
        len: u64,
    ) -> Result<Wcc> {
        let _ = (who, fh, offset, len);
        Err(Error::NotSupp)
    }

    /// Copies up to `len` bytes of regular file `src` at `offsets.0` to regular file `dst` at
    /// `offsets.1` (COPY, RFC 7862 §15.2), for a caller who may read `src` and write `dst`.
    /// Returns the bytes copied: fewer than `len` when the source ends first (0 at or past its
    /// end) or an error struck after some were copied. The copied data is as durable as an
    /// UNSTABLE write's until [`Backend::commit`].
    fn copy_range(
        &self,
        who: &Identity,
        src: &VerifiedHandle,
        dst: &VerifiedHandle,
        offsets: (u64, u64),
        len: u64,
    ) -> Result<u64> {
        let _ = (who, src, dst, offsets, len);
        Err(Error::NotSupp)
    }

    /// Makes `len` bytes of `dst` at `offsets.1` share the storage of `src` at `offsets.0`
    /// (CLONE, RFC 7862 §15.13; `len` 0: to the end of `src`), for a caller who may read `src`
    /// and write `dst`. [`Error::NotSupp`] where the file system cannot share extents.
    fn clone_range(
        &self,
        who: &Identity,
        src: &VerifiedHandle,
        dst: &VerifiedHandle,
        offsets: (u64, u64),
        len: u64,
    ) -> Result<()> {
        let _ = (who, src, dst, offsets, len);
        Err(Error::NotSupp)
    }

    /// Whether the xattr methods work on this export (the `xattr_support` attribute).
    fn xattr_support(&self) -> bool {
        false
    }

    /// The value of the user-namespace attribute `name` (given without `user.`), at most
    /// `max_bytes` long: a longer one is [`Error::XattrTooBig`], a missing one [`Error::NoXattr`].
    fn getxattr(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        name: &[u8],
        max_bytes: usize,
    ) -> Result<Bytes> {
        let _ = (who, fh, name, max_bytes);
        Err(Error::NotSupp)
    }

    /// Sets the user-namespace attribute `name`; the object's attributes before and after.
    fn setxattr(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        name: &[u8],
        value: &[u8],
        how: XattrSet,
    ) -> Result<Wcc> {
        let _ = (who, fh, name, value, how);
        Err(Error::NotSupp)
    }

    /// The names of the object's user-namespace attributes, without `user.`, in the file
    /// system's order (stable while none is added or removed).
    fn listxattrs(&self, who: &Identity, fh: &VerifiedHandle) -> Result<Vec<Bytes>> {
        let _ = (who, fh);
        Err(Error::NotSupp)
    }

    /// Removes the user-namespace attribute `name`; the object's attributes before and after.
    fn removexattr(&self, who: &Identity, fh: &VerifiedHandle, name: &[u8]) -> Result<Wcc> {
        let _ = (who, fh, name);
        Err(Error::NotSupp)
    }

    /// How many write-back errors this backend has seen so far (monotonic). The server changes its
    /// write verifier whenever this grows, so clients re-send what may have been lost.
    fn writeback_errors(&self) -> u64 {
        0
    }

    /// Housekeeping: releases resources (open files) not used since the previous call. The server
    /// calls it periodically (every second or two) on a thread that may block: it may `fsync`
    /// files with UNSTABLE writes (a failure counts in [`Backend::writeback_errors`]).
    fn close_idle_files(&self) {}

    /// Closes every open file, first making UNSTABLE writes durable (the COMMIT-equivalent flush
    /// of a graceful shutdown). A failure counts in [`Backend::writeback_errors`].
    fn close_all_files(&self) {}

    /// Opens a description of the regular file `fh` of its own, on which one NFS lock owner's
    /// byte-range locks are mirrored into the file system, so local processes and NFS clients see
    /// each other's locks (as with Linux's nfsd). `None`: this backend has no such locks, and the
    /// server's lock manager alone decides. Opened as root: whether the caller may lock the file
    /// is the server's business (export rules), not the file's mode.
    fn open_lock_file(&self, _fh: &VerifiedHandle) -> Result<Option<Box<dyn LockFile>>> {
        Ok(None)
    }

    /// Whether the [`LockFile`]s of this backend may wait ([`LockFile::may_wait`]), known before
    /// opening one.
    fn lock_files_may_wait(&self) -> bool {
        false
    }

    /// Takes a lease on the regular file `fh` for an NFSv4 delegation (a write delegation if
    /// `write`): from now on a local process opening it for writing (for a write delegation: at
    /// all) is made to wait, and [`Backend::leases_broken`] names it, until [`Backend::unlease`]
    /// (RFC 8881 §10.4; Linux's nfsd does the same in the kernel). `Ok(false)`: no lease (the
    /// file is open for writing somewhere — for a write delegation, open at all — or this backend
    /// cannot see local users); the server then grants no delegation. For a read delegation,
    /// opening the file for writing through this backend breaks the lease too; a write
    /// delegation's holder reads and writes through the leased descriptor itself.
    fn lease(&self, _fh: &VerifiedHandle, _write: bool) -> Result<bool> {
        Ok(false)
    }

    /// How long a broken lease may take to be released before the backend suffers for it (the
    /// kernel's `lease-break-time` for a local export, which then breaks it itself; for CephFS,
    /// the delegation timeout after which libcephfs unmounts the client). `None`: the kernel's.
    fn lease_break_ms(&self) -> Option<u64> {
        None
    }

    /// Releases the lease taken on the file whose handle bytes are `key` (nothing if none).
    fn unlease(&self, _key: &[u8]) {}

    /// The handle bytes of leased files someone is trying to open for writing (their leases are
    /// being broken, or the kernel broke them). Cheap when nothing is leased.
    fn leases_broken(&self) -> Vec<Bytes> {
        Vec::new()
    }
}

/// One lock owner's private description of a file ([`Backend::open_lock_file`]). Its locks are
/// released when it is dropped. Nothing here may wait for another lock holder: a conflict is an
/// answer, not a wait, because the caller holds the server's lock-manager mutex (unless
/// [`LockFile::may_wait`]).
pub trait LockFile: Send + Sync {
    /// Takes, upgrades or downgrades the range (`len_bytes` 0 = to end of file). `Ok(false)`:
    /// a lock the server does not hold (a local process's) conflicts; nothing changed.
    fn lock(&self, exclusive: bool, start: u64, len_bytes: u64) -> std::io::Result<bool>;
    /// Releases the range (parts not held are ignored, as with `fcntl`).
    fn unlock(&self, start: u64, len_bytes: u64) -> std::io::Result<()>;
    /// A lock held through another description (or by a local process) that would conflict with
    /// this one taking the range: `(exclusive, start, len_bytes)`, `len_bytes` 0 = to end of file.
    fn conflict(
        &self,
        exclusive: bool,
        start: u64,
        len_bytes: u64,
    ) -> std::io::Result<Option<(bool, u64, u64)>>;
    /// Whether these calls may wait on something remote (a CephFS lock is a round trip to the
    /// MDS, which may stall): the server then makes none of them under its lock-manager mutex,
    /// only before or after it. `false` (OFD locks): each call returns at once.
    fn may_wait(&self) -> bool {
        false
    }
}
