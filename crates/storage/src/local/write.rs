//! The modifying procedures of [`LocalFs`] (RFC 1813 §3.3.2, §3.3.7–§3.3.15, §3.3.21).
//!
//! # One name in one directory descriptor, as the caller
//! Handles are resolved as root (see the parent module); every change is then made by one system
//! call on a directory descriptor and **one** name component (`openat(O_CREAT|O_EXCL)`,
//! `mkdirat`, `symlinkat`, `mknodat`, `unlinkat`, `renameat2`, `linkat`) or on the object's own
//! descriptor (`fchownat(AT_EMPTY_PATH)`, `/proc/self/fd/N` for chmod, utimensat and linkat,
//! `ftruncate`, `pwrite`), with the caller's fsuid/fsgid/groups in effect. So the kernel makes every
//! permission decision (write and search permission on directories, the sticky bit, ownership for
//! chmod/chown/explicit times, `CAP_MKNOD` for devices, `fs.protected_hardlinks`), a name can never
//! reach outside the export (no `/`, no `..` walk, symlinks are created but never followed:
//! `O_NOFOLLOW`, `O_EXCL`, and symlink targets are stored as given, never resolved), and mounts are
//! never crossed (the kernel refuses a rename or link between mounts with `EXDEV`; removing or
//! renaming a mount point is `EBUSY`, answered [`Error::Access`]).
//!
//! # Names
//! As for LOOKUP: empty or containing `/` or NUL is [`Error::Access`], longer than 255 bytes is
//! [`Error::NameTooLong`]. `.` and `..` get Linux's answers: creating them (CREATE, MKDIR, SYMLINK,
//! MKNOD, LINK) is [`Error::Exist`]; REMOVE of them is [`Error::IsDir`] (`unlink(".")`); RMDIR of
//! `.` is [`Error::Inval`] and of `..` [`Error::NotEmpty`] (RFC 1813 §3.3.13 allows INVAL and, for
//! `..`, the historical EXIST; clients must take both); RENAME from or to them is
//! [`Error::Inval`] (Linux says `EBUSY`, which NFSv3 lacks). Other errors are the kernel's errno,
//! translated by [`Error::from_errno`] (so e.g. RENAME over a non-empty directory is
//! [`Error::NotEmpty`] and a directory moved into its own subtree is [`Error::Inval`]).
//!
//! # Permissions: the kernel's, with RFC 1813 §4.4's two allowances
//! READ and WRITE (and a SETATTR of the size, and COMMIT) go through descriptors shared by all
//! callers (see [`super::cache`]), so the caller's permission is asked with
//! `faccessat2(AT_EACCESS)` on every call, and asked *before* anything is opened for it (on the
//! cached descriptor, or on the object's `O_PATH` one): a denied call opens nothing. A descriptor
//! open for writing is felt outside the server (a local `execve` of the file fails with `ETXTBSY`,
//! read leases break) for as long as it stays cached. Where the kernel says `EACCES`:
//! * the **owner** may still read and write its file: a client checks permission at `open` and
//!   keeps using what it opened, e.g. `open(O_CREAT|O_WRONLY, 0444)` followed by writes (tar, git's
//!   read-only object files), which a stateless server cannot tell from a fresh access
//!   (§4.4; knfsd's `NFSD_MAY_OWNER_OVERRIDE`);
//! * an **executable** regular file may be read: a client must read a program to run it (§4.4).
//!
//! Read-only file systems, immutable and append-only files still refuse (`EROFS`, `EPERM`). Data
//! is written and files are truncated *as the caller*, so the kernel clears set-user-ID and
//! set-group-ID bits exactly as for a local write by that user.
//!
//! # SETATTR (§3.3.2)
//! The guard compares the object's current ctime (just fstat'ed) and answers
//! [`Error::NotSync`] on a mismatch, changing nothing. Changes are applied in this order, each by
//! the kernel as the caller: size (`ftruncate` on the cached read-write descriptor: write
//! permission or ownership; regular files only: a directory is [`Error::IsDir`], anything else
//! [`Error::Inval`]), owner and group (`fchownat`: only root may give a file away; the owner may
//! change the group to one of its groups), mode (`chmod` of `/proc/self/fd/N`; ignored for symlinks,
//! which have no mode on Linux, as knfsd does), then times (`utimensat` of `/proc/self/fd/N`, which
//! for a symlink sets the link's own times; times last, so a size change does not overwrite the mtime
//! a client sets in the same call). Server time for both times needs write permission or
//! ownership, anything else ownership, as for `utimensat(2)`. Not atomic: a failing step leaves the
//! earlier ones done (the client then re-reads attributes).
//!
//! # WRITE and COMMIT (§3.3.7, §3.3.21): durability, honestly
//! * UNSTABLE: `pwrite` only (page cache); the file's cache entry is marked dirty, and every
//!   [`super::cache::WRITEBACK_START_BYTES`] of a sequential stream the stream's write-back is
//!   started, not waited for (`sync_file_range(SYNC_FILE_RANGE_WRITE)`), so that the disk works
//!   while the data comes instead of all of it at the COMMIT.
//! * DATA_SYNC: `pwrite` + `fdatasync`. FILE_SYNC: `pwrite` + `fsync`. `committed` is what was asked.
//! * COMMIT: `fsync` of the whole file (the range is a hint RFC 1813 lets servers ignore), through
//!   the cached descriptor that did the UNSTABLE writes, so errseq reports their write-back errors.
//! * A failed `fdatasync`/`fsync` is [`Error::Io`] and is counted in
//!   [`crate::Backend::writeback_errors`]; the server then changes its write verifier, so clients
//!   re-send their UNSTABLE data (§3.3.7). An entry with UNSTABLE writes that leaves the cache is
//!   `fsync`ed first and a failure counted likewise, so an UNSTABLE stream never pays an `fsync` per
//!   WRITE and no acknowledged data is lost without the verifier changing. (When the file was
//!   unlinked meanwhile its data is unreachable and is not synced.)
//! * A write past the end of the file leaves a hole; an offset + count beyond 2^63 is
//!   [`Error::FBig`]. A write that fails part-way returns the count written (the error comes with the
//!   next write).
//!
//! # CREATE (§3.3.8)
//! `openat(O_CREAT|O_EXCL|O_NOFOLLOW)` as the caller, with the client's mode (owner-only `0600`
//! when none is given). Then the other attributes: a size (on the new descriptor), owner and group
//! only for root (an unprivileged caller's new file is already its own, and knfsd ignores them too),
//! times.
//! * UNCHECKED over an existing regular file returns that file, and applies only the size (how
//!   clients send `O_TRUNC`): an existing file's mode and owner are not "initial attributes" (knfsd
//!   does the same). An existing directory is [`Error::IsDir`], anything else [`Error::Exist`].
//! * GUARDED: an existing name is [`Error::Exist`].
//! * EXCLUSIVE: the file is created with mode `0600` and the 8-byte verifier is stored in its
//!   **atime and mtime seconds** (first 4 bytes big-endian → mtime, last 4 → atime, each masked to
//!   31 bits, exactly as Linux knfsd does: times need no extended-attribute support, survive
//!   everything the file system does, and 31 bits fit every file system's time range). A CREATE
//!   that finds the name holding an empty regular file with those times is a retransmission of the
//!   one that made it and gets the same handle and success; any other existing object is
//!   [`Error::Exist`]. As §3.3.8 requires, the client then sets the real attributes with SETATTR
//!   (which also clears the verifier: a retransmission arriving after that gets `Exist`, as with
//!   knfsd).
//!
//! # MKDIR, SYMLINK, MKNOD (§3.3.9–§3.3.11)
//! `mkdirat`/`symlinkat`/`mknodat` as the caller with the client's mode (owner-only when none;
//! symlinks have none), then owner/group (root only) and times as for CREATE. An empty symlink
//! target is [`Error::NoEnt`] (as `symlink(2)` and knfsd answer), one containing NUL
//! [`Error::Inval`]. MKNOD makes FIFOs and sockets for anyone allowed to write the directory;
//! character and block devices need `CAP_MKNOD`, which the kernel grants only while the fsuid is 0
//! (an unsquashed root): others get [`Error::Perm`]. The new object is then opened by name
//! (`O_PATH|O_NOFOLLOW`) for its handle; a local process replacing the name in between would be
//! noticed only by the type check.
//!
//! # REMOVE, RMDIR, RENAME, LINK (§3.3.12–§3.3.15)
//! `unlinkat` (with `AT_REMOVEDIR` for RMDIR; REMOVE of a directory is [`Error::IsDir`]),
//! `renameat2` (flags 0: atomic, replacing an existing compatible target), and LINK as
//! `linkat("/proc/self/fd/N", AT_SYMLINK_FOLLOW)` **as the caller**: the alternative,
//! `linkat(AT_EMPTY_PATH)` on the `O_PATH` descriptor, needs `CAP_DAC_READ_SEARCH` and would
//! bypass the kernel's checks (directory permissions, `protected_hardlinks`) which we would then
//! have to re-implement, racily. Before REMOVE and RENAME unlink a name, the object it names is
//! identified (`name_to_handle_at`) so that its open-file cache entry can be dropped once it is gone.
//! RENAME and LINK with a handle of another export (the handle's export id differs) are
//! [`Error::XDev`].
//!
//! # Modes are the client's: no server umask
//! The client applied its user's umask already. Threads doing creations therefore get a private
//! file-system context (`unshare(CLONE_FS)`, once per thread) with umask 0, like knfsd's threads;
//! the process umask and other threads are untouched. A directory's default ACL still applies.
//!
//! # Weak cache consistency
//! `before` is an fstat of the directory (or file) just before the change, `after` one just after.

use std::cell::Cell;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use rnfs_sys::{IdentityGuard, Stat, TimeArg, TimeSpec};

use super::cache::{OpenFile, PathFd};
use super::{as_caller, component, encode_body, timestamp, LocalFs};
use crate::{
    verifier_times, Attr, CreateMode, Created, Error, Identity, NodeKind, Result, SetAttrs,
    SetTime, Stability, Timestamp, VerifiedHandle, Wcc, WccAttr, Written, DEFAULT_DIR_MODE,
    DEFAULT_MODE,
};

/// What a descriptor from the open-file cache is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    Read,
    Write,
}

/// A regular file as [`LocalFs::find_file`] found it: its open-file cache entry, or its `O_PATH`
/// descriptor on a miss.
enum Found {
    Cached(Arc<OpenFile>),
    Path(Arc<PathFd>),
}

impl Found {
    /// A descriptor of the file to ask permission on (and to re-open from).
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Found::Cached(file) => file.fd(),
            Found::Path(fd) => fd.as_fd(),
        }
    }
}

impl LocalFs {
    // ---- Open files (READ, WRITE, COMMIT, SETATTR of the size) ----

    /// Regular file `body` as the open-file cache holds it or, on a miss, its `O_PATH` descriptor
    /// (which opens nothing for reading or writing), and its current attributes: what a caller's
    /// permission is asked on before anything is opened for it. A directory is [`Error::IsDir`],
    /// other non-regular files [`Error::Inval`], an unlinked file [`Error::Stale`]. Call it as root.
    fn find_file(&self, body: &[u8]) -> Result<(Found, Stat)> {
        // A write-leased file left the cache: its leased descriptor goes back in (a new open
        // would break the lease of the very delegation it serves).
        let file = self.files.get(body).or_else(|| {
            let leased = self.leases.write_file(body)?;
            let (file, evicted) = self.files.insert(body, leased);
            drop(evicted);
            Some(file)
        });
        if let Some(file) = file {
            let st = self.stat_linked(file.fd(), body, file.inside_memo())?;
            return Ok((Found::Cached(file), st));
        }
        let (fd, st) = self.resolve_body(body)?;
        match st.file_type() {
            libc::S_IFREG => Ok((Found::Path(fd), st)),
            libc::S_IFDIR => Err(Error::IsDir),
            // Devices, FIFOs and sockets are not read or written through NFS (and opening them
            // could block or have side effects); symlinks are never followed.
            _ => Err(Error::Inval),
        }
    }

    /// The open-file cache entry for `usage` of what [`LocalFs::find_file`] found: the cached
    /// entry if it serves, else the file opened as root (read-write for [`Use::Write`], replacing
    /// a read-only entry) and cached. Call it as root, once the caller's permission is granted.
    fn open_found(&self, body: &[u8], found: Found, usage: Use) -> Result<Arc<OpenFile>> {
        let writable = usage == Use::Write;
        match found {
            Found::Cached(file) if file.writable() || !writable => return Ok(file),
            _ => {}
        }
        // O_NONBLOCK: a file leased for a delegation answers EWOULDBLOCK (Error::Delay) at once
        // instead of making this worker wait for the lease break (see rnfs_sys::lease).
        let flags = libc::O_NOCTTY
            | libc::O_NONBLOCK
            | if writable {
                libc::O_RDWR
            } else {
                libc::O_RDONLY
            };
        let fd = self.reopen_as_root(found.fd(), flags)?;
        let file = Arc::new(OpenFile::new(fd, writable, self.writeback_errors.clone()));
        let (file, evicted) = self.files.insert(body, file);
        drop(evicted); // after the cache's lock is released: a dirty entry fsyncs when dropped
        Ok(file)
    }

    /// The cached read-write descriptor of regular file `fh` and the file's attributes, once
    /// `who` may write it (see the module docs), returned with `who`'s identity in effect (so a
    /// write through a cached descriptor costs one identity switch). The permission is decided
    /// before anything is opened for writing: a denied call opens nothing, as a descriptor open
    /// for writing makes a local `execve` of the file fail with `ETXTBSY` and breaks read leases
    /// for as long as it stays cached. Call it as root.
    pub(super) fn open_for_write(
        &self,
        who: &Identity,
        body: &[u8],
    ) -> Result<(Arc<OpenFile>, Stat, IdentityGuard)> {
        let (found, st) = self.find_file(body)?;
        let as_who = as_caller(who)?;
        may_use(found.fd(), &st, who, Use::Write)?;
        match found {
            Found::Cached(file) if file.writable() => {
                file.note_write_use();
                return Ok((file, st, as_who));
            }
            _ => drop(as_who), // opened as root: the owner may write a file whatever its mode
        }
        let file = self.open_found(body, found, Use::Write)?;
        file.note_write_use();
        Ok((file, st, as_caller(who)?))
    }

    /// `reopen` as root; when the process is out of descriptors, gives a quarter of the open-file
    /// cache back and tries once more.
    fn reopen_as_root(&self, fd: BorrowedFd<'_>, flags: libc::c_int) -> Result<OwnedFd> {
        match rnfs_sys::reopen(fd, flags) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                self.out_of_descriptors();
                rnfs_sys::reopen(fd, flags).map_err(op_error)
            }
            other => other.map_err(op_error),
        }
    }

    /// Drops the open-file cache entry of `key`. Once the file has no links left, its unsynced
    /// UNSTABLE data can never be read again, so it is not synced.
    pub(super) fn evict(&self, key: &[u8]) {
        drop(self.paths.remove(key));
        if let Some(file) = self.files.remove(key) {
            if rnfs_sys::fstat(file.fd()).is_ok_and(|st| st.nlink == 0) {
                file.discard_unsynced();
            }
        }
    }

    /// The cached descriptor of regular file `fh` for reading, once `who` may read it (see the
    /// module docs), and the file's attributes. Used by READ.
    pub(crate) fn open_for_read(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
    ) -> Result<(Arc<OpenFile>, Stat)> {
        let body = self.body(fh);
        let (found, st) = self.find_file(body)?;
        // A stream of READs by one caller asks the same question each time: remember the last
        // answer, keyed on everything it depends on (the caller's ids and groups; the file's
        // owner, group, mode and ctime, which chmod, chown and ACL changes all move), so the
        // common case costs no identity switch (6 system calls, there and back) and no
        // faccessat2.
        let grant = self.grant_key(&st, who, libc::R_OK);
        if let Found::Cached(file) = &found {
            if file.read_granted(grant) {
                return Ok((file.clone(), st));
            }
        }
        {
            // Asked before anything is opened: a denied call opens nothing.
            let _as = as_caller(who)?;
            may_use(found.fd(), &st, who, Use::Read)?;
        }
        let file = self.open_found(body, found, Use::Read)?;
        file.grant_read(grant);
        Ok((file, st))
    }

    /// Truncates or extends regular file `body` (a verified handle's, or one just made) to `size`
    /// as `who`. Call it as root.
    fn set_size(&self, who: &Identity, body: &[u8], size: u64) -> Result<()> {
        let (file, _, _as) = self.open_for_write(who, body)?;
        rnfs_sys::ftruncate(file.fd(), size).map_err(op_error)
    }

    pub(super) fn do_write(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        offset: u64,
        data: &[u8],
        stable: Stability,
    ) -> Result<Written> {
        let data = &data[..data.len().min(u32::MAX as usize)];
        let end = offset.checked_add(data.len() as u64);
        if end.is_none_or(|end| end > i64::MAX as u64) {
            return Err(Error::FBig);
        }
        let (file, st, as_who) = self.open_for_write(who, self.body(fh))?;
        let before = Some(wcc_attr(&self.attr(&st)));
        let written = rnfs_sys::pwrite_all(file.fd(), data, offset).map_err(op_error)?;
        drop(as_who); // syncs run as root
        match stable {
            Stability::Unstable => {
                file.mark_dirty();
                file.note_unstable(offset, written as u64);
            }
            Stability::DataSync => file.fdatasync().map_err(|_| Error::Io)?,
            Stability::FileSync => file.fsync().map_err(|_| Error::Io)?,
        }
        let after = rnfs_sys::fstat(file.fd()).ok().map(|s| self.attr(&s));
        Ok(Written {
            count: u32::try_from(written).unwrap_or(u32::MAX),
            committed: stable,
            file: Wcc { before, after },
        })
    }

    pub(super) fn do_commit(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        _offset: u64,
        _count: u32,
    ) -> Result<Wcc> {
        // Any cached descriptor will do for fsync; the one that did the UNSTABLE writes is the one
        // in the cache (it is only ever replaced after being synced).
        let body = self.body(fh);
        let (found, st) = self.find_file(body)?;
        {
            // As knfsd: COMMIT needs the permission WRITE needs (asked before anything opens).
            let _as = as_caller(who)?;
            may_use(found.fd(), &st, who, Use::Write)?;
        }
        let file = self.open_found(body, found, Use::Read)?;
        let before = Some(wcc_attr(&self.attr(&st)));
        file.fsync().map_err(|_| Error::Io)?;
        let after = rnfs_sys::fstat(file.fd()).ok().map(|s| self.attr(&s));
        Ok(Wcc { before, after })
    }

    // ---- SETATTR ----

    pub(super) fn do_setattr(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        attrs: &SetAttrs,
        guard: Option<Timestamp>,
    ) -> Result<Wcc> {
        let (fd, st) = self.resolve(fh)?;
        if guard.is_some_and(|ctime| ctime != timestamp(st.ctime)) {
            return Err(Error::NotSync);
        }
        let before = Some(wcc_attr(&self.attr(&st)));
        if let Some(size) = attrs.size_bytes {
            match st.file_type() {
                libc::S_IFREG => self.set_size(who, self.body(fh), size)?,
                libc::S_IFDIR => return Err(Error::IsDir),
                _ => return Err(Error::Inval),
            }
        }
        {
            let _as = as_caller(who)?;
            if attrs.uid.is_some() || attrs.gid.is_some() {
                chown(fd.as_fd(), attrs.uid, attrs.gid)?;
            }
            if let Some(mode) = attrs.mode {
                if st.file_type() != libc::S_IFLNK {
                    rnfs_sys::chmod_fd(fd.as_fd(), mode & 0o7777).map_err(op_error)?;
                }
            }
            set_times(fd.as_fd(), attrs)?;
        }
        let after = rnfs_sys::fstat(fd.as_fd()).ok().map(|s| self.attr(&s));
        Ok(Wcc { before, after })
    }

    // ---- Creating ----

    pub(super) fn do_create(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
        how: &CreateMode,
    ) -> Result<Created> {
        let (dfd, dst) = self.resolve(dir)?;
        if !dst.is_dir() {
            return Err(Error::NotDir);
        }
        let cname = new_name(name)?;
        private_umask()?;
        let (attrs, guarded) = match how {
            CreateMode::Unchecked(attrs) => (attrs, false),
            CreateMode::Guarded(attrs) => (attrs, true),
            CreateMode::Exclusive(verifier) => {
                return self.create_exclusive(who, dfd.as_fd(), &cname, verifier)
            }
        };
        let mode = attrs.mode.unwrap_or(DEFAULT_MODE) & 0o7777;
        // A name that vanishes between our O_EXCL and opening what held it is tried again.
        for _ in 0..4 {
            let before = self.pre(dfd.as_fd());
            let made = {
                let _as = as_caller(who)?;
                match create_file(dfd.as_fd(), &cname, mode) {
                    Ok(fd) => {
                        let after = self.post(dfd.as_fd());
                        if let Some(size) = attrs.size_bytes.filter(|&s| s > 0) {
                            rnfs_sys::ftruncate(fd.as_fd(), size).map_err(op_error)?;
                        }
                        apply_new_attrs(who, fd.as_fd(), attrs, libc::S_IFREG)?;
                        return self.created(fd.as_fd(), before, after);
                    }
                    Err(Error::Exist) if !guarded => match LocalFs::open_child(dfd.as_fd(), &cname)
                    {
                        Ok(fd) => fd,
                        Err(Error::NoEnt) => continue,
                        Err(e) => return Err(e),
                    },
                    Err(e) => return Err(e),
                }
            };
            return self.create_over_existing(who, dfd.as_fd(), made.as_fd(), attrs, before);
        }
        Err(Error::ServerFault(libc::EAGAIN))
    }

    /// UNCHECKED over a name that exists (`made`, opened in `dfd`): it must be a regular file,
    /// and of the attributes only the size is applied.
    fn create_over_existing(
        &self,
        who: &Identity,
        dfd: BorrowedFd<'_>,
        made: BorrowedFd<'_>,
        attrs: &SetAttrs,
        before: Option<WccAttr>,
    ) -> Result<Created> {
        let st = rnfs_sys::fstat(made)?;
        match st.file_type() {
            libc::S_IFREG => {}
            libc::S_IFDIR => return Err(Error::IsDir),
            _ => return Err(Error::Exist),
        }
        let (body, _) = self.describe_body(made).map_err(|e| match e {
            Error::XDev => Error::Exist, // a mount point: not ours to serve
            e => e,
        })?;
        if let Some(size) = attrs.size_bytes {
            self.set_size(who, &body, size)?;
        }
        let handle = self.seal_body(&body);
        let st = rnfs_sys::fstat(made)?;
        Ok(Created {
            handle,
            attr: self.attr(&st),
            dir: Wcc {
                before,
                after: self.post(dfd),
            },
        })
    }

    fn create_exclusive(
        &self,
        who: &Identity,
        dfd: BorrowedFd<'_>,
        name: &CStr,
        verifier: &[u8; 8],
    ) -> Result<Created> {
        let (v_mtime, v_atime) = verifier_times(verifier);
        let stamp = |sec| TimeArg::At(TimeSpec { sec, nsec: 0 });
        let before = self.pre(dfd);
        let _as = as_caller(who)?;
        match create_file(dfd, name, DEFAULT_MODE) {
            Ok(fd) => {
                let after = self.post(dfd);
                if let Err(e) = rnfs_sys::set_times_fd(fd.as_fd(), stamp(v_atime), stamp(v_mtime)) {
                    // Without its verifier a retransmission could not be recognised: undo.
                    let _ = rnfs_sys::unlinkat(dfd, name, 0);
                    return Err(op_error(e));
                }
                self.created(fd.as_fd(), before, after)
            }
            Err(Error::Exist) => {
                let fd = LocalFs::open_child(dfd, &CString::from(name))?;
                let st = rnfs_sys::fstat(fd.as_fd())?;
                let ours = st.file_type() == libc::S_IFREG
                    && st.size == 0
                    && st.mtime.sec == v_mtime
                    && st.atime.sec == v_atime;
                if !ours {
                    return Err(Error::Exist);
                }
                // A retransmission of the CREATE that made this file: the same answer again.
                let after = self.post(dfd);
                self.created(fd.as_fd(), before, after)
            }
            Err(e) => Err(e),
        }
    }

    pub(super) fn do_mkdir(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
        attrs: &SetAttrs,
    ) -> Result<Created> {
        let mode = attrs.mode.unwrap_or(DEFAULT_DIR_MODE) & 0o7777;
        self.make(who, dir, name, attrs, libc::S_IFDIR, |dfd, name| {
            rnfs_sys::mkdirat(dfd, name, mode)
        })
    }

    pub(super) fn do_symlink(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
        target: &[u8],
        attrs: &SetAttrs,
    ) -> Result<Created> {
        if target.is_empty() {
            return Err(Error::NoEnt);
        }
        let target = CString::new(target).map_err(|_| Error::Inval)?;
        self.make(who, dir, name, attrs, libc::S_IFLNK, |dfd, name| {
            rnfs_sys::symlinkat(&target, dfd, name)
        })
    }

    pub(super) fn do_mknod(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
        kind: NodeKind,
        attrs: &SetAttrs,
    ) -> Result<Created> {
        let (file_type, dev) = match kind {
            NodeKind::Fifo => (libc::S_IFIFO, 0),
            NodeKind::Socket => (libc::S_IFSOCK, 0),
            NodeKind::CharDevice { major, minor } => (libc::S_IFCHR, libc::makedev(major, minor)),
            NodeKind::BlockDevice { major, minor } => (libc::S_IFBLK, libc::makedev(major, minor)),
        };
        let mode = file_type | (attrs.mode.unwrap_or(DEFAULT_MODE) & 0o7777);
        self.make(who, dir, name, attrs, file_type, |dfd, name| {
            rnfs_sys::mknodat(dfd, name, mode, dev)
        })
    }

    /// MKDIR, SYMLINK and MKNOD: `make` creates `name` in the directory as the caller; the new
    /// object (of type `file_type`) then gets the remaining attributes and a handle.
    fn make(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
        attrs: &SetAttrs,
        file_type: u32,
        make: impl FnOnce(BorrowedFd<'_>, &CStr) -> io::Result<()>,
    ) -> Result<Created> {
        let (dfd, dst) = self.resolve(dir)?;
        if !dst.is_dir() {
            return Err(Error::NotDir);
        }
        let cname = new_name(name)?;
        private_umask()?;
        let before = self.pre(dfd.as_fd());
        let _as = as_caller(who)?;
        make(dfd.as_fd(), &cname).map_err(op_error)?;
        let after = self.post(dfd.as_fd());
        let fd = LocalFs::open_child(dfd.as_fd(), &cname)?;
        if rnfs_sys::fstat(fd.as_fd())?.file_type() != file_type {
            // Replaced by a local process before we could open it.
            return Err(Error::Exist);
        }
        apply_new_attrs(who, fd.as_fd(), attrs, file_type)?;
        self.created(fd.as_fd(), before, after)
    }

    fn created(
        &self,
        fd: BorrowedFd<'_>,
        before: Option<WccAttr>,
        after: Option<Attr>,
    ) -> Result<Created> {
        let (handle, st) = self.describe_sealed(fd)?;
        Ok(Created {
            handle,
            attr: self.attr(&st),
            dir: Wcc { before, after },
        })
    }

    // ---- Removing, renaming, linking ----

    pub(super) fn do_remove(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
    ) -> Result<Wcc> {
        let (dfd, dst) = self.resolve(dir)?;
        if !dst.is_dir() {
            return Err(Error::NotDir);
        }
        let cname = component(name)?;
        if is_dot(name) {
            return Err(Error::IsDir); // unlink(".") and unlink("..") say EISDIR
        }
        let before = self.pre(dfd.as_fd());
        let victim = {
            let _as = as_caller(who)?;
            let victim = self.victim_key(dfd.as_fd(), &cname);
            rnfs_sys::unlinkat(dfd.as_fd(), &cname, 0).map_err(op_error)?;
            victim
        };
        let after = self.post(dfd.as_fd());
        if let Some(key) = victim {
            self.evict(&key);
        }
        Ok(Wcc { before, after })
    }

    pub(super) fn do_rmdir(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
    ) -> Result<Wcc> {
        let (dfd, dst) = self.resolve(dir)?;
        if !dst.is_dir() {
            return Err(Error::NotDir);
        }
        let cname = component(name)?;
        match name {
            b"." => return Err(Error::Inval),
            b".." => return Err(Error::NotEmpty),
            _ => {}
        }
        let before = self.pre(dfd.as_fd());
        {
            let _as = as_caller(who)?;
            rnfs_sys::unlinkat(dfd.as_fd(), &cname, libc::AT_REMOVEDIR).map_err(|e| {
                match e.raw_os_error() {
                    // POSIX lets rmdir say EEXIST for a non-empty directory.
                    Some(libc::EEXIST) => Error::NotEmpty,
                    _ => op_error(e),
                }
            })?;
        }
        // Directories are never in the open-file cache: nothing to evict.
        let after = self.post(dfd.as_fd());
        Ok(Wcc { before, after })
    }

    pub(super) fn do_rename(
        &self,
        who: &Identity,
        from_dir: &VerifiedHandle,
        from_name: &[u8],
        to_dir: &VerifiedHandle,
        to_name: &[u8],
    ) -> Result<(Wcc, Wcc)> {
        self.same_export(&[from_dir, to_dir])?;
        let (from_fd, from_st) = self.resolve(from_dir)?;
        let (to_fd, to_st) = self.resolve(to_dir)?;
        if !from_st.is_dir() || !to_st.is_dir() {
            return Err(Error::NotDir);
        }
        let from = component(from_name)?;
        let to = component(to_name)?;
        if is_dot(from_name) || is_dot(to_name) {
            return Err(Error::Inval);
        }
        let from_before = self.pre(from_fd.as_fd());
        let to_before = self.pre(to_fd.as_fd());
        let victim = {
            let _as = as_caller(who)?;
            let victim = self.victim_key(to_fd.as_fd(), &to);
            rnfs_sys::renameat2(from_fd.as_fd(), &from, to_fd.as_fd(), &to, 0).map_err(op_error)?;
            victim
        };
        let from_wcc = Wcc {
            before: from_before,
            after: self.post(from_fd.as_fd()),
        };
        let to_wcc = Wcc {
            before: to_before,
            after: self.post(to_fd.as_fd()),
        };
        if let Some(key) = victim {
            self.evict(&key);
        }
        Ok((from_wcc, to_wcc))
    }

    pub(super) fn do_link(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        dir: &VerifiedHandle,
        name: &[u8],
    ) -> Result<(Option<Attr>, Wcc)> {
        self.same_export(&[fh, dir])?;
        let (fd, _) = self.resolve(fh)?;
        let (dfd, dst) = self.resolve(dir)?;
        if !dst.is_dir() {
            return Err(Error::NotDir);
        }
        let cname = new_name(name)?;
        let before = self.pre(dfd.as_fd());
        {
            let _as = as_caller(who)?;
            rnfs_sys::link_fd(fd.as_fd(), dfd.as_fd(), &cname).map_err(op_error)?;
        }
        let after = self.post(dfd.as_fd());
        let attr = rnfs_sys::fstat(fd.as_fd()).ok().map(|s| self.attr(&s));
        Ok((attr, Wcc { before, after }))
    }

    // ---- Helpers ----

    /// RENAME and LINK between exports (the server refuses them first; this keeps a handle of
    /// another export from reaching `resolve` should one get here).
    fn same_export(&self, handles: &[&VerifiedHandle]) -> Result<()> {
        let foreign = handles.iter().any(|fh| fh.export_id() != self.export_id);
        if foreign {
            Err(Error::XDev)
        } else {
            Ok(())
        }
    }

    /// The open-file cache key of what `name` in `dir` is now, if anything (on our mount).
    fn victim_key(&self, dir: BorrowedFd<'_>, name: &CStr) -> Option<Vec<u8>> {
        let (kh, mount_id) = rnfs_sys::name_to_handle_at(dir, name, 0).ok()?;
        (mount_id == self.root_mount_id).then(|| encode_body(&kh))
    }

    /// Weak cache consistency "before" attributes of `fd`.
    pub(super) fn pre(&self, fd: BorrowedFd<'_>) -> Option<WccAttr> {
        rnfs_sys::fstat(fd).ok().map(|s| wcc_attr(&self.attr(&s)))
    }

    /// Weak cache consistency "after" attributes of `fd`.
    pub(super) fn post(&self, fd: BorrowedFd<'_>) -> Option<Attr> {
        rnfs_sys::fstat(fd).ok().map(|s| self.attr(&s))
    }
}

pub(super) fn wcc_attr(a: &Attr) -> WccAttr {
    WccAttr::from(a)
}

fn is_dot(name: &[u8]) -> bool {
    name == b"." || name == b".."
}

/// A name to create: a valid component, and not `.` or `..`, which always exist (Linux's
/// `mkdir(".")` says `EEXIST`).
fn new_name(name: &[u8]) -> Result<CString> {
    let cname = component(name)?;
    if is_dot(name) {
        return Err(Error::Exist);
    }
    Ok(cname)
}

/// Maps the errno of a modifying call. Linux says `EBUSY` for a mount point (never crossed) and
/// `ETXTBSY` for a running executable opened for writing; NFSv3 has neither, both are refusals.
pub(super) fn op_error(e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::EBUSY | libc::ETXTBSY) => Error::Access,
        _ => Error::from(e),
    }
}

/// Whether `who` (whose identity is in effect) may read or write the open regular file `fd` with
/// attributes `st`: the kernel's answer, plus RFC 1813 §4.4's allowances for the owner and for
/// reading executables (see the module docs).
fn may_use(fd: BorrowedFd<'_>, st: &Stat, who: &Identity, usage: Use) -> Result<()> {
    let flags = libc::AT_EACCESS | libc::AT_EMPTY_PATH;
    let mode = match usage {
        Use::Read => libc::R_OK,
        Use::Write => libc::W_OK,
    };
    match rnfs_sys::faccessat2(fd, c"", mode, flags) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
            let owner = st.uid == who.uid;
            let executable =
                || usage == Use::Read && rnfs_sys::faccessat2(fd, c"", libc::X_OK, flags).is_ok();
            if owner || executable() {
                Ok(())
            } else {
                Err(Error::Access)
            }
        }
        Err(e) => Err(op_error(e)),
    }
}

/// `fchownat(AT_EMPTY_PATH)` of `fd` itself (an `O_PATH` descriptor of any type; a symlink's own
/// owner).
fn chown(fd: BorrowedFd<'_>, uid: Option<u32>, gid: Option<u32>) -> Result<()> {
    rnfs_sys::fchownat(fd, c"", uid, gid, libc::AT_EMPTY_PATH).map_err(op_error)
}

fn time_arg(t: SetTime) -> TimeArg {
    match t {
        SetTime::DontChange => TimeArg::Omit,
        SetTime::ServerTime => TimeArg::Now,
        SetTime::ClientTime(t) => TimeArg::At(TimeSpec {
            sec: i64::from(t.seconds),
            nsec: t.nanoseconds,
        }),
    }
}

/// Sets the times `attrs` asks for, if any.
fn set_times(fd: BorrowedFd<'_>, attrs: &SetAttrs) -> Result<()> {
    if attrs.atime == SetTime::DontChange && attrs.mtime == SetTime::DontChange {
        return Ok(());
    }
    rnfs_sys::set_times_fd(fd, time_arg(attrs.atime), time_arg(attrs.mtime)).map_err(op_error)
}

/// The attributes of a new object its creating call did not set (it took the mode), applied as
/// the caller, who owns it now: owner and group only for root (an unprivileged caller's object is
/// already its own; knfsd ignores them as well), then times.
fn apply_new_attrs(
    who: &Identity,
    fd: BorrowedFd<'_>,
    attrs: &SetAttrs,
    file_type: u32,
) -> Result<()> {
    if who.uid == 0 && (attrs.uid.is_some() || attrs.gid.is_some()) {
        chown(fd, attrs.uid, attrs.gid)?;
        // chown clears set-user-ID/set-group-ID bits, even for root: the client asked for them.
        if let Some(mode) = attrs.mode.filter(|m| m & 0o6000 != 0) {
            if file_type != libc::S_IFLNK && file_type != libc::S_IFDIR {
                rnfs_sys::chmod_fd(fd, mode & 0o7777).map_err(op_error)?;
            }
        }
    }
    set_times(fd, attrs)
}

/// `openat(O_CREAT|O_EXCL)` of a new regular file, read-write (a new file may be opened for writing
/// whatever its mode), never following a symlink.
fn create_file(dfd: BorrowedFd<'_>, name: &CStr, mode: u32) -> Result<OwnedFd> {
    let flags = libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_NOFOLLOW | libc::O_NOCTTY;
    rnfs_sys::openat(dfd, name, flags, mode).map_err(op_error)
}

thread_local! {
    /// This thread has its own file-system context with umask 0.
    static PRIVATE_UMASK: Cell<bool> = const { Cell::new(false) };
}

/// Gives the calling thread its own umask of 0 (once), so new objects get exactly the client's
/// mode.
fn private_umask() -> Result<()> {
    if PRIVATE_UMASK.get() {
        return Ok(());
    }
    rnfs_sys::unshare_fs().map_err(|e| {
        tracing::error!(error = %e, "cannot give the thread its own umask (unshare(CLONE_FS))");
        Error::ServerFault(e.raw_os_error().unwrap_or(0))
    })?;
    rnfs_sys::umask(0);
    PRIVATE_UMASK.set(true);
    Ok(())
}
