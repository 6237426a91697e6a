//! A safe wrapper of libcephfs's low-level inode API (`ceph_ll_*`, Ceph 16's
//! `cephfs/libcephfs.h`), for rnfsd's CephFS backend (issue 19).
//!
//! * [`Mount`] is one CephFS client (a `ceph_mount_info`), mounted at a directory of one file
//!   system. It is `Send + Sync`: libcephfs serialises its client state internally, and every
//!   call may come from any worker thread. It is unmounted and released when the last [`Mount`],
//!   [`Inode`], [`File`] or [`Dir`] made from it is dropped.
//! * [`Inode`] is a counted reference to a client inode; dropping it releases it (`ceph_ll_put`).
//! * [`Perm`] is the caller's credentials (uid, gid, groups): every call that the MDS or the
//!   client checks permissions for takes one, so each NFS request runs as its own caller, as
//!   RFC 1813 §4.4 asks of a server (the server enforces permissions).
//! * Errors are [`Error`]: a negated errno becomes an [`Errno`]; sizes from the library are
//!   checked against the buffers they describe, and every buffer is bounded.
//!
//! Calls block (network round trips to the MDS and OSDs): call them from a worker thread.

use std::ffi::{c_char, c_int, CStr, CString};
use std::path::PathBuf;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rnfs_cephfs_sys as sys;
pub use sys::{LoadError, CEPH_NOSNAP};

mod error;
pub use error::{Errno, Error, Result};

#[cfg(feature = "test-cluster")]
pub mod test_cluster;

/// Longest name of a directory entry (`NAME_MAX`).
pub const NAME_BYTES_MAX: usize = 255;
/// Longest symlink target (`PATH_MAX` less its NUL).
pub const TARGET_BYTES_MAX: usize = 4095;
/// Most bytes one read or write moves (a longer buffer is served in part, as `read(2)` may).
pub const IO_BYTES_MAX: usize = 16 << 20;
/// Most supplementary groups a [`Perm`] carries (AUTH_SYS has 16; more is refused).
pub const GROUPS_MAX: usize = 64;
/// Seconds a mount waits for the cluster before failing (libcephfs's `client_mount_timeout`).
pub const MOUNT_TIMEOUT_SECONDS: u32 = 30;

/// What to mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountConfig {
    /// The cluster's `ceph.conf` (monitor addresses, keyring).
    pub conf: PathBuf,
    /// The client's name without `client.` (e.g. `admin`).
    pub client_id: String,
    /// The file system, or `None` for the cluster's default one.
    pub fs_name: Option<String>,
    /// The directory inside the file system that becomes the mount's root (`/` for all of it).
    pub root: String,
    /// This client's identity across its restarts (e.g. a head's name and export): the MDS
    /// evicts a previous instance with the same uuid when this one mounts, so its caps and locks
    /// are released at once instead of after the session timeout. `None`: no identity.
    pub uuid: Option<String>,
}

/// The client instance every handle of one mount shares.
struct Client {
    api: &'static sys::Api,
    cmount: NonNull<sys::ceph_mount_info>,
    /// The name cache's limit while [`Mount::rename_over_linked`] calls run.
    cache_limit: Mutex<CacheLimit>,
}

/// Debug-log settings of the client's hot paths, silenced (`0/0`) unless the cluster's config
/// file sets them (see `configure`).
const QUIET_LOGS: [&str; 3] = ["debug_client", "debug_objectcacher", "debug_objecter"];

/// The libcephfs setting that limits the client's cache of names (dentries).
const CACHE_SIZE_KEY: &str = "client_cache_size";
/// Longest value of a setting read back ([`conf_get`]).
const CONF_VALUE_BYTES_MAX: usize = 64;

/// How many [`Mount::rename_over_linked`] calls hold the name cache's limit at zero, and the
/// limit to restore after the last of them.
struct CacheLimit {
    holders: u32,
    configured: String,
}

// SAFETY: a mounted `ceph_mount_info` is used concurrently from many threads by design (the
// library takes its client lock in every call; nfs-ganesha's FSAL_CEPH does the same), and the
// pointer is only released in `Drop`, when no other reference exists.
unsafe impl Send for Client {}
// SAFETY: as for `Send`: every call through a shared `Client` is serialised by libcephfs.
unsafe impl Sync for Client {}

impl Client {
    /// A new, unconfigured instance named `client.<client_id>`; released when dropped.
    fn create(client_id: &str) -> Result<Client> {
        let api = sys::api()?;
        let id = c_string("ceph_create", client_id)?;
        let mut cmount = ptr::null_mut();
        // SAFETY: `cmount` is a valid out-pointer and `id` a NUL-terminated string that
        // outlives the call (the library copies it).
        check("ceph_create", unsafe {
            (api.ceph_create)(&mut cmount, id.as_ptr())
        })?;
        let cmount = NonNull::new(cmount).ok_or(Error::Call {
            op: "ceph_create",
            errno: Errno::Io,
        })?;
        // From here the instance exists: a failure must release it, which dropping this
        // `Client` does (unmounting a never-mounted instance is a harmless error).
        Ok(Client {
            api,
            cmount,
            cache_limit: Mutex::new(CacheLimit {
                holders: 0,
                configured: String::new(),
            }),
        })
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // SAFETY: the mount is live and this is its last user (every Inode/File/Dir holds an
        // Arc of this Client, so they are all gone); unmount then release is the documented
        // teardown, and the pointer is not used again.
        unsafe {
            (self.api.ceph_unmount)(self.cmount.as_ptr());
            (self.api.ceph_release)(self.cmount.as_ptr());
        }
    }
}

/// Turns a libcephfs return value into a result: negative is a negated errno.
fn check(op: &'static str, rc: c_int) -> Result<c_int> {
    if rc < 0 {
        Err(Error::Call {
            op,
            errno: Errno::from_raw(rc.saturating_neg()),
        })
    } else {
        Ok(rc)
    }
}

fn c_string(op: &'static str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::BadName { op })
}

/// A single path component: not empty, no `/` or NUL, at most [`NAME_BYTES_MAX`] bytes.
fn c_name(op: &'static str, name: &[u8]) -> Result<CString> {
    if name.len() > NAME_BYTES_MAX {
        return Err(Error::Call {
            op,
            errno: Errno::NameTooLong,
        });
    }
    if name.is_empty() || name.contains(&b'/') {
        return Err(Error::BadName { op });
    }
    CString::new(name).map_err(|_| Error::BadName { op })
}

/// One CephFS mount. Cheap to clone (shared).
#[derive(Clone)]
pub struct Mount {
    client: Arc<Client>,
}

impl std::fmt::Debug for Mount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mount({:p})", self.client.cmount)
    }
}

impl Mount {
    /// Loads libcephfs if needed, reads `cfg.conf`, and mounts `cfg.root` of the file system.
    /// Fails after [`MOUNT_TIMEOUT_SECONDS`] when the cluster does not answer.
    pub fn new(cfg: &MountConfig) -> Result<Mount> {
        let client = Client::create(&cfg.client_id)?;
        configure(&client, cfg)?;
        if let Some(uuid) = &cfg.uuid {
            take_over(&client, uuid)?;
        }
        let root = c_string("ceph_mount", &cfg.root)?;
        // SAFETY: the instance is configured and not yet mounted; `root` is NUL-terminated.
        check("ceph_mount", unsafe {
            (client.api.ceph_mount)(client.cmount.as_ptr(), root.as_ptr())
        })?;
        Ok(Mount {
            client: Arc::new(client),
        })
    }

    fn api(&self) -> &'static sys::Api {
        self.client.api
    }

    fn cm(&self) -> *mut sys::ceph_mount_info {
        self.client.cmount.as_ptr()
    }

    /// The raw pointer of an inode of this mount (one of another mount would be another
    /// client's object: refused).
    fn raw(&self, op: &'static str, i: &Inode) -> Result<*mut sys::Inode> {
        if Arc::ptr_eq(&self.client, &i.client) {
            Ok(i.ptr.as_ptr())
        } else {
            Err(Error::Call {
                op,
                errno: Errno::Inval,
            })
        }
    }

    /// Wraps an inode reference a successful call handed out.
    fn wrap(&self, op: &'static str, p: *mut sys::Inode) -> Result<Inode> {
        let ptr = NonNull::new(p).ok_or(Error::Call {
            op,
            errno: Errno::Io,
        })?;
        Ok(Inode {
            client: self.client.clone(),
            ptr,
        })
    }

    /// Lets this mount hand out [`Delegation`]s: a recalled one must be returned within the
    /// returned number of seconds (the MDS's cap return timeout less one, as Ceph's own tests
    /// set it), or libcephfs unmounts this client by force.
    pub fn enable_delegations(&self) -> Result<u32> {
        const OP: &str = "ceph_set_deleg_timeout";
        // SAFETY: live, mounted instance.
        let cap_return = unsafe { (self.api().ceph_get_cap_return_timeout)(self.cm()) };
        let secs = cap_return.saturating_sub(1);
        if secs < 2 {
            return Err(Error::Call {
                op: OP,
                errno: Errno::Inval,
            });
        }
        // SAFETY: live, mounted instance.
        check(OP, unsafe {
            (self.api().ceph_set_deleg_timeout)(self.cm(), secs)
        })?;
        Ok(secs)
    }

    /// The mount's root directory.
    pub fn root(&self) -> Result<Inode> {
        let mut out = ptr::null_mut();
        // SAFETY: live mount, valid out-pointer; the reference it returns is owned by the
        // Inode made from it.
        check("ceph_ll_lookup_root", unsafe {
            (self.api().ceph_ll_lookup_root)(self.cm(), &mut out)
        })?;
        self.wrap("ceph_ll_lookup_root", out)
    }

    /// The inode numbered `ino` in snapshot `snap` ([`CEPH_NOSNAP`] for the live file system),
    /// asking the MDS when the client does not have it cached. No permission is checked: the
    /// caller proved its right to the object some other way (a sealed file handle).
    pub fn lookup_ino(&self, ino: u64, snap: u64) -> Result<Inode> {
        let vino = sys::vinodeno_t {
            ino: sys::inodeno_t { val: ino },
            snapid: sys::snapid_t { val: snap },
        };
        let mut out = ptr::null_mut();
        // SAFETY: live mount, `vino` passed by value, valid out-pointer.
        check("ceph_ll_lookup_vino", unsafe {
            (self.api().ceph_ll_lookup_vino)(self.cm(), vino, &mut out)
        })?;
        self.wrap("ceph_ll_lookup_vino", out)
    }

    /// Looks `name` up in directory `dir` as `perm` (who needs search permission on `dir`).
    pub fn lookup(&self, dir: &Inode, name: &[u8], perm: &Perm) -> Result<(Inode, Stat)> {
        const OP: &str = "ceph_ll_lookup";
        let d = self.raw(OP, dir)?;
        let name = c_name(OP, name)?;
        let mut stx = sys::ceph_statx::zeroed();
        let mut out = ptr::null_mut();
        // SAFETY: live mount and inode of it, NUL-terminated name, valid out-pointers, and a
        // live UserPerm; all outlive the call.
        check(OP, unsafe {
            (self.api().ceph_ll_lookup)(
                self.cm(),
                d,
                name.as_ptr(),
                &mut out,
                &mut stx,
                sys::CEPH_STATX_ALL_STATS,
                0,
                perm.ptr.as_ptr(),
            )
        })?;
        Ok((self.wrap(OP, out)?, Stat::from(&stx)))
    }

    /// Attributes of `inode`, fresh from the MDS unless this client holds the capabilities.
    pub fn getattr(&self, inode: &Inode, perm: &Perm) -> Result<Stat> {
        const OP: &str = "ceph_ll_getattr";
        let i = self.raw(OP, inode)?;
        let mut stx = sys::ceph_statx::zeroed();
        // SAFETY: live mount and inode, valid statx out-buffer, live UserPerm.
        check(OP, unsafe {
            (self.api().ceph_ll_getattr)(
                self.cm(),
                i,
                &mut stx,
                sys::CEPH_STATX_ALL_STATS,
                0,
                perm.ptr.as_ptr(),
            )
        })?;
        Ok(Stat::from(&stx))
    }

    /// Changes the attributes `set` names, as `perm`; returns the new attributes.
    pub fn setattr(&self, inode: &Inode, set: &SetAttr, perm: &Perm) -> Result<Stat> {
        const OP: &str = "ceph_ll_setattr";
        let i = self.raw(OP, inode)?;
        let (mut stx, mask) = set.to_statx();
        if mask != 0 {
            // SAFETY: live mount and inode; `stx` holds the fields `mask` names; live UserPerm.
            check(OP, unsafe {
                (self.api().ceph_ll_setattr)(self.cm(), i, &mut stx, mask, perm.ptr.as_ptr())
            })?;
        }
        self.getattr(inode, perm)
    }

    /// Makes what this client changed of `inode` durable: its dirty metadata (a SETATTR the
    /// client only cached) is flushed to the MDS, and the metadata requests on it (a create,
    /// rename or unlink in a directory) wait for the MDS's journal (the "safe" reply; the
    /// first, early reply comes before). With `data_only`, only its written data.
    pub fn sync_inode(&self, inode: &Inode, data_only: bool) -> Result<()> {
        const OP: &str = "ceph_ll_sync_inode";
        let i = self.raw(OP, inode)?;
        // SAFETY: live mount and inode of it.
        check(OP, unsafe {
            (self.api().ceph_ll_sync_inode)(self.cm(), i, c_int::from(data_only))
        })?;
        Ok(())
    }

    /// Opens `inode` with `open(2)` `flags` (`O_RDONLY`, `O_WRONLY`, `O_RDWR`, `O_TRUNC`...).
    pub fn open(&self, inode: &Inode, flags: i32, perm: &Perm) -> Result<File> {
        const OP: &str = "ceph_ll_open";
        let i = self.raw(OP, inode)?;
        let mut fh = ptr::null_mut();
        // SAFETY: live mount and inode, valid out-pointer, live UserPerm.
        check(OP, unsafe {
            (self.api().ceph_ll_open)(self.cm(), i, flags, &mut fh, perm.ptr.as_ptr())
        })?;
        self.wrap_file(OP, fh)
    }

    fn wrap_file(&self, op: &'static str, fh: *mut sys::Fh) -> Result<File> {
        let fh = NonNull::new(fh).ok_or(Error::Call {
            op,
            errno: Errno::Io,
        })?;
        Ok(File {
            client: self.client.clone(),
            fh,
        })
    }

    /// Creates (or with `flags` lacking `O_EXCL`, opens) regular file `name` in `dir` with
    /// permission bits `mode`, open with `flags`.
    pub fn create(
        &self,
        dir: &Inode,
        name: &[u8],
        mode: u32,
        flags: i32,
        perm: &Perm,
    ) -> Result<(Inode, File, Stat)> {
        const OP: &str = "ceph_ll_create";
        let d = self.raw(OP, dir)?;
        let name = c_name(OP, name)?;
        let (mut out, mut fh) = (ptr::null_mut(), ptr::null_mut());
        let mut stx = sys::ceph_statx::zeroed();
        // SAFETY: live mount and directory inode, NUL-terminated name, valid out-pointers,
        // live UserPerm. On success both the inode reference and the open file are ours.
        let rc = unsafe {
            (self.api().ceph_ll_create)(
                self.cm(),
                d,
                name.as_ptr(),
                mode & 0o7777,
                flags | libc::O_CREAT,
                &mut out,
                &mut fh,
                &mut stx,
                sys::CEPH_STATX_ALL_STATS,
                0,
                perm.ptr.as_ptr(),
            )
        };
        check(OP, rc)?;
        let inode = self.wrap(OP, out)?;
        Ok((inode, self.wrap_file(OP, fh)?, Stat::from(&stx)))
    }

    /// Makes directory `name` in `dir`.
    pub fn mkdir(&self, dir: &Inode, name: &[u8], mode: u32, perm: &Perm) -> Result<(Inode, Stat)> {
        const OP: &str = "ceph_ll_mkdir";
        let d = self.raw(OP, dir)?;
        let name = c_name(OP, name)?;
        let mut out = ptr::null_mut();
        let mut stx = sys::ceph_statx::zeroed();
        // SAFETY: as for `create`.
        check(OP, unsafe {
            (self.api().ceph_ll_mkdir)(
                self.cm(),
                d,
                name.as_ptr(),
                mode & 0o7777,
                &mut out,
                &mut stx,
                sys::CEPH_STATX_ALL_STATS,
                0,
                perm.ptr.as_ptr(),
            )
        })?;
        Ok((self.wrap(OP, out)?, Stat::from(&stx)))
    }

    /// Makes a special file (`mode` includes the file type bits: `S_IFIFO`, `S_IFCHR`...).
    pub fn mknod(
        &self,
        dir: &Inode,
        name: &[u8],
        mode: u32,
        rdev: u64,
        perm: &Perm,
    ) -> Result<(Inode, Stat)> {
        const OP: &str = "ceph_ll_mknod";
        let d = self.raw(OP, dir)?;
        let name = c_name(OP, name)?;
        let mut out = ptr::null_mut();
        let mut stx = sys::ceph_statx::zeroed();
        // SAFETY: as for `create`.
        check(OP, unsafe {
            (self.api().ceph_ll_mknod)(
                self.cm(),
                d,
                name.as_ptr(),
                mode,
                rdev,
                &mut out,
                &mut stx,
                sys::CEPH_STATX_ALL_STATS,
                0,
                perm.ptr.as_ptr(),
            )
        })?;
        Ok((self.wrap(OP, out)?, Stat::from(&stx)))
    }

    /// Makes symlink `name` in `dir` pointing at `target` (stored as given).
    pub fn symlink(
        &self,
        dir: &Inode,
        name: &[u8],
        target: &[u8],
        perm: &Perm,
    ) -> Result<(Inode, Stat)> {
        const OP: &str = "ceph_ll_symlink";
        let d = self.raw(OP, dir)?;
        let name = c_name(OP, name)?;
        if target.is_empty() || target.len() > TARGET_BYTES_MAX {
            return Err(Error::BadName { op: OP });
        }
        let target = CString::new(target).map_err(|_| Error::BadName { op: OP })?;
        let mut out = ptr::null_mut();
        let mut stx = sys::ceph_statx::zeroed();
        // SAFETY: as for `create`; `target` is NUL-terminated too.
        check(OP, unsafe {
            (self.api().ceph_ll_symlink)(
                self.cm(),
                d,
                name.as_ptr(),
                target.as_ptr(),
                &mut out,
                &mut stx,
                sys::CEPH_STATX_ALL_STATS,
                0,
                perm.ptr.as_ptr(),
            )
        })?;
        Ok((self.wrap(OP, out)?, Stat::from(&stx)))
    }

    /// The target of symlink `inode` (at most [`TARGET_BYTES_MAX`] bytes).
    pub fn readlink(&self, inode: &Inode, perm: &Perm) -> Result<Vec<u8>> {
        const OP: &str = "ceph_ll_readlink";
        let i = self.raw(OP, inode)?;
        // One byte more than the longest target we accept: a full buffer means "longer".
        let mut buf = vec![0u8; TARGET_BYTES_MAX + 1];
        // SAFETY: live mount and inode; `buf` is writable for its whole length, which is what
        // the call is told; live UserPerm.
        let n = check(OP, unsafe {
            (self.api().ceph_ll_readlink)(
                self.cm(),
                i,
                buf.as_mut_ptr().cast::<c_char>(),
                buf.len(),
                perm.ptr.as_ptr(),
            )
        })?;
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if n > TARGET_BYTES_MAX {
            return Err(Error::Call {
                op: OP,
                errno: Errno::NameTooLong,
            });
        }
        buf.truncate(n);
        Ok(buf)
    }

    /// Extended attribute `name` (the full name, e.g. `user.foo`) of `inode` into `buf`: its
    /// length, which with an empty `buf` is the length it needs. ERANGE when `buf` is too
    /// short, ENODATA when there is none.
    pub fn getxattr(
        &self,
        inode: &Inode,
        name: &CStr,
        buf: &mut [u8],
        perm: &Perm,
    ) -> Result<usize> {
        const OP: &str = "ceph_ll_getxattr";
        let i = self.raw(OP, inode)?;
        // SAFETY: live mount and inode; NUL-terminated name; `buf` is writable for its whole
        // length, which is what the call is told; live UserPerm.
        let n = check(OP, unsafe {
            (self.api().ceph_ll_getxattr)(
                self.cm(),
                i,
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                perm.ptr.as_ptr(),
            )
        })?;
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if !buf.is_empty() && n > buf.len() {
            return Err(Error::Call {
                op: OP,
                errno: Errno::Other(libc::ERANGE),
            });
        }
        Ok(n)
    }

    /// Sets extended attribute `name`; `flags` 0, `XATTR_CREATE` or `XATTR_REPLACE`.
    pub fn setxattr(
        &self,
        inode: &Inode,
        name: &CStr,
        value: &[u8],
        flags: c_int,
        perm: &Perm,
    ) -> Result<()> {
        const OP: &str = "ceph_ll_setxattr";
        let i = self.raw(OP, inode)?;
        // SAFETY: live mount and inode; NUL-terminated name; `value` readable for its length,
        // which the library copies; live UserPerm.
        check(OP, unsafe {
            (self.api().ceph_ll_setxattr)(
                self.cm(),
                i,
                name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                flags,
                perm.ptr.as_ptr(),
            )
        })?;
        Ok(())
    }

    /// The NUL-separated names of `inode`'s extended attributes into `buf`: their length, which
    /// with an empty `buf` is the length needed. ERANGE when `buf` is too short.
    pub fn listxattr(&self, inode: &Inode, buf: &mut [u8], perm: &Perm) -> Result<usize> {
        const OP: &str = "ceph_ll_listxattr";
        let i = self.raw(OP, inode)?;
        let mut len = 0usize;
        // SAFETY: live mount and inode; `buf` is writable for its whole length, which is what
        // the call is told; `len` is a valid out-pointer; live UserPerm.
        check(OP, unsafe {
            (self.api().ceph_ll_listxattr)(
                self.cm(),
                i,
                buf.as_mut_ptr().cast::<c_char>(),
                buf.len(),
                &mut len,
                perm.ptr.as_ptr(),
            )
        })?;
        if !buf.is_empty() && len > buf.len() {
            return Err(Error::Call {
                op: OP,
                errno: Errno::Other(libc::ERANGE),
            });
        }
        Ok(len)
    }

    /// Removes extended attribute `name` (ENODATA when there is none).
    pub fn removexattr(&self, inode: &Inode, name: &CStr, perm: &Perm) -> Result<()> {
        const OP: &str = "ceph_ll_removexattr";
        let i = self.raw(OP, inode)?;
        // SAFETY: live mount and inode; NUL-terminated name; live UserPerm.
        check(OP, unsafe {
            (self.api().ceph_ll_removexattr)(self.cm(), i, name.as_ptr(), perm.ptr.as_ptr())
        })?;
        Ok(())
    }

    /// Makes `name` in `dir` a new link to `inode`.
    pub fn link(&self, inode: &Inode, dir: &Inode, name: &[u8], perm: &Perm) -> Result<()> {
        const OP: &str = "ceph_ll_link";
        let (i, d) = (self.raw(OP, inode)?, self.raw(OP, dir)?);
        let name = c_name(OP, name)?;
        // SAFETY: live mount and inodes, NUL-terminated name, live UserPerm.
        check(OP, unsafe {
            (self.api().ceph_ll_link)(self.cm(), i, d, name.as_ptr(), perm.ptr.as_ptr())
        })?;
        Ok(())
    }

    /// The value of the client's setting `key` (e.g. `client_cache_size`).
    pub fn setting(&self, key: &str) -> Result<String> {
        conf_get(&self.client, key)
    }

    /// Removes non-directory `name` from `dir`.
    pub fn unlink(&self, dir: &Inode, name: &[u8], perm: &Perm) -> Result<()> {
        self.remove("ceph_ll_unlink", self.api().ceph_ll_unlink, dir, name, perm)
    }

    /// Removes empty directory `name` from `dir`.
    pub fn rmdir(&self, dir: &Inode, name: &[u8], perm: &Perm) -> Result<()> {
        self.remove("ceph_ll_rmdir", self.api().ceph_ll_rmdir, dir, name, perm)
    }

    fn remove(
        &self,
        op: &'static str,
        f: unsafe extern "C" fn(
            *mut sys::ceph_mount_info,
            *mut sys::Inode,
            *const c_char,
            *const sys::UserPerm,
        ) -> c_int,
        dir: &Inode,
        name: &[u8],
        perm: &Perm,
    ) -> Result<()> {
        let d = self.raw(op, dir)?;
        let name = c_name(op, name)?;
        // SAFETY: `f` is ceph_ll_unlink or ceph_ll_rmdir (same prototype); live mount and
        // inode, NUL-terminated name, live UserPerm.
        check(op, unsafe {
            f(self.cm(), d, name.as_ptr(), perm.ptr.as_ptr())
        })?;
        Ok(())
    }

    /// Renames `from_dir/from` to `to_dir/to`, replacing a compatible target.
    pub fn rename(
        &self,
        from_dir: &Inode,
        from: &[u8],
        to_dir: &Inode,
        to: &[u8],
        perm: &Perm,
    ) -> Result<()> {
        const OP: &str = "ceph_ll_rename";
        let (fd, td) = (self.raw(OP, from_dir)?, self.raw(OP, to_dir)?);
        let (from, to) = (c_name(OP, from)?, c_name(OP, to)?);
        // SAFETY: live mount and inodes, NUL-terminated names, live UserPerm.
        check(OP, unsafe {
            (self.api().ceph_ll_rename)(
                self.cm(),
                fd,
                from.as_ptr(),
                td,
                to.as_ptr(),
                perm.ptr.as_ptr(),
            )
        })?;
        Ok(())
    }

    /// Renames as [`Mount::rename`] does, onto `to` that is `target`, a file with other hard
    /// links, with the client's name cache emptied first.
    ///
    /// libcephfs 16.2.15 (`Client::_try_to_trim_inode`, run when the MDS's "safe" reply to a
    /// RENAME is handled) turns every name of the replaced file that this client has cached into
    /// a "no such name" entry, and it trusts that entry for as long as it holds the directory's
    /// shared caps: the file's other links, which the MDS keeps, answer ENOENT here. So the cache
    /// is limited to nothing for the call, and emptied before the rename: a LINK of `target` to
    /// `to`, which must fail (EEXIST) and makes libcephfs trim its cache. Trimming a name that
    /// exists also makes its directory stop claiming to be completely cached, so later lookups of
    /// the other names ask the MDS. (Trimming only after the rename is not enough: a name the
    /// safe reply turned into "no such name" is trimmed without that, and the directory still
    /// answers ENOENT from its complete listing.)
    ///
    /// A request holds its name in the cache (pinned, not trimmed) until the MDS has journalled
    /// it: a name of `target` made by a LINK or CREATE still in the journal would survive the
    /// trim and be spoiled (under CPU load, in 8 of 12 runs of our test). So the target's unsafe
    /// requests are waited for first (an fsync of `target`, which also asks the MDS to journal at
    /// once).
    ///
    /// Should `to` have gone meanwhile (another client removed it), the LINK makes it again and
    /// it is removed at once, before the rename. A lookup of another name of the file that runs
    /// on another thread between the trim and the MDS's reply can still cache that name in time
    /// to be spoiled.
    pub fn rename_over_linked(
        &self,
        from_dir: &Inode,
        from: &[u8],
        to_dir: &Inode,
        to: &[u8],
        target: &Inode,
        perm: &Perm,
    ) -> Result<()> {
        let _emptied = CacheEmptied::hold(&self.client)?;
        // Unpins the names made by the target's requests still in the MDS's journal.
        self.sync_inode(target, false)?;
        // As root: a permission check must not stop the trim (nothing is changed).
        let root = Perm::new(0, 0, &[])?;
        match self.link(target, to_dir, to, &root) {
            Ok(()) => self.unlink(to_dir, to, &root)?,
            Err(Error::Call {
                errno: Errno::Exist,
                ..
            }) => {}
            Err(e) => return Err(e),
        }
        self.rename(from_dir, from, to_dir, to, perm)
    }

    /// Opens directory `inode` for listing (needs read permission).
    pub fn opendir(&self, inode: &Inode, perm: &Perm) -> Result<Dir> {
        const OP: &str = "ceph_ll_opendir";
        let i = self.raw(OP, inode)?;
        let mut dirp = ptr::null_mut();
        // SAFETY: live mount and inode, valid out-pointer, live UserPerm.
        check(OP, unsafe {
            (self.api().ceph_ll_opendir)(self.cm(), i, &mut dirp, perm.ptr.as_ptr())
        })?;
        let dirp = NonNull::new(dirp).ok_or(Error::Call {
            op: OP,
            errno: Errno::Io,
        })?;
        Ok(Dir {
            client: self.client.clone(),
            dirp,
        })
    }

    /// Totals of the file system holding `inode`.
    pub fn statfs(&self, inode: &Inode) -> Result<FsStats> {
        const OP: &str = "ceph_ll_statfs";
        let i = self.raw(OP, inode)?;
        // SAFETY: statvfs is plain old data; all zero is a valid value.
        let mut st: sys::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: live mount and inode, valid out-buffer.
        check(OP, unsafe {
            (self.api().ceph_ll_statfs)(self.cm(), i, &mut st)
        })?;
        Ok(FsStats::from(&st))
    }
}

/// Reads `cfg.conf` and applies the settings rnfsd needs before mounting.
fn configure(client: &Client, cfg: &MountConfig) -> Result<()> {
    let api = client.api;
    let cm = client.cmount.as_ptr();
    let conf = cfg.conf.to_str().ok_or(Error::BadName {
        op: "ceph_conf_read_file",
    })?;
    let conf = c_string("ceph_conf_read_file", conf)?;
    let defaults = QUIET_LOGS
        .iter()
        .map(|key| conf_get(client, key))
        .collect::<Result<Vec<_>>>()?;
    // SAFETY: unmounted instance, NUL-terminated path.
    check("ceph_conf_read_file", unsafe {
        (api.ceph_conf_read_file)(cm, conf.as_ptr())
    })?;
    // Left at the library's defaults (gather level 5), these subsystems format a log line in
    // memory for nearly every call and wake Ceph's log thread to keep it: at one READDIRPLUS
    // or LOOKUP in flight that cost more than the call. A config file that sets them wins.
    for (key, default) in QUIET_LOGS.iter().zip(defaults) {
        if conf_get(client, key)? == default {
            conf_set(client, key, "0/0")?;
        }
    }
    let timeout = MOUNT_TIMEOUT_SECONDS.to_string();
    conf_set(client, "client_mount_timeout", &timeout)?;
    if let Some(fs) = &cfg.fs_name {
        let fs = c_string("ceph_select_filesystem", fs)?;
        // SAFETY: unmounted instance, NUL-terminated name.
        check("ceph_select_filesystem", unsafe {
            (api.ceph_select_filesystem)(cm, fs.as_ptr())
        })?;
    }
    Ok(())
}

/// Evicts a previous instance of this client (a head that crashed and restarted) and names this
/// one `uuid` (as nfs-ganesha's FSAL_CEPH does). Before mounting.
fn take_over(client: &Client, uuid: &str) -> Result<()> {
    let id = c_string("ceph_set_uuid", uuid)?;
    // SAFETY: configured, unmounted instance; `ceph_init` brings up its messenger (bounded by
    // client_mount_timeout), which reclaim needs.
    check("ceph_init", unsafe {
        (client.api.ceph_init)(client.cmount.as_ptr())
    })?;
    reclaim_reset(client, &id)?;
    // SAFETY: initialised, unmounted instance; the uuid is copied.
    unsafe { (client.api.ceph_set_uuid)(client.cmount.as_ptr(), id.as_ptr()) };
    Ok(())
}

/// Evicts the session of the client named `uuid` (see [`MountConfig::uuid`]) from the file
/// system `cfg` names, without mounting: its caps and record locks are released and the client
/// is blocklisted (its later calls fail with [`Errno::Blocklisted`]), as `ceph tell mds.N client
/// evict` would. For a client known to be dead, so that others need not wait for the MDS's
/// session timeout. `Ok(false)`: no session has that uuid. Blocking (see [`Evictor`]).
pub fn evict(cfg: &MountConfig, uuid: &str) -> Result<bool> {
    Evictor::new(cfg)?.evict(uuid)
}

/// An unmounted client ready to evict sessions: [`Evictor::new`] does the slow part (reading the
/// config, starting the messenger, bounded by [`MOUNT_TIMEOUT_SECONDS`]), so that a caller can
/// check once more that the target is still dead just before [`Evictor::evict`], a round trip
/// to the MDS.
pub struct Evictor {
    client: Client,
}

impl Evictor {
    pub fn new(cfg: &MountConfig) -> Result<Evictor> {
        let client = Client::create(&cfg.client_id)?;
        configure(&client, cfg)?;
        // SAFETY: configured, unmounted instance; `ceph_init` brings up its messenger (bounded
        // by client_mount_timeout), which reclaim needs.
        check("ceph_init", unsafe {
            (client.api.ceph_init)(client.cmount.as_ptr())
        })?;
        Ok(Evictor { client })
    }

    /// Evicts the session named `uuid`: `Ok(false)` when there is none. Once per evictor.
    pub fn evict(self, uuid: &str) -> Result<bool> {
        let id = c_string("ceph_start_reclaim", uuid)?;
        reclaim_reset(&self.client, &id)
    }
}

/// Evicts the session named `id` (`Ok(false)`: none) through an initialised instance.
fn reclaim_reset(client: &Client, id: &CStr) -> Result<bool> {
    let api = client.api;
    let cm = client.cmount.as_ptr();
    // SAFETY: initialised instance, NUL-terminated uuid (copied). ENOENT: no such session,
    // the usual case.
    let rc = unsafe { (api.ceph_start_reclaim)(cm, id.as_ptr(), sys::CEPH_RECLAIM_RESET) };
    let found = match check("ceph_start_reclaim", rc) {
        Err(Error::Call {
            errno: Errno::NoEnt,
            ..
        }) => false,
        Ok(_) => true,
        Err(e) => return Err(e),
    };
    // SAFETY: initialised instance; ends the reclaim started above (a no-op after ENOENT).
    unsafe { (api.ceph_finish_reclaim)(cm) };
    Ok(found)
}

fn conf_set(client: &Client, key: &str, value: &str) -> Result<()> {
    let (k, v) = (
        c_string("ceph_conf_set", key)?,
        c_string("ceph_conf_set", value)?,
    );
    // SAFETY: live instance (mounted or not: the library locks its configuration),
    // NUL-terminated strings the library copies.
    check("ceph_conf_set", unsafe {
        (client.api.ceph_conf_set)(client.cmount.as_ptr(), k.as_ptr(), v.as_ptr())
    })?;
    Ok(())
}

/// The value of setting `key`, at most [`CONF_VALUE_BYTES_MAX`] bytes.
fn conf_get(client: &Client, key: &str) -> Result<String> {
    const OP: &str = "ceph_conf_get";
    let k = c_string(OP, key)?;
    let mut buf = [0u8; CONF_VALUE_BYTES_MAX + 1];
    // SAFETY: live instance, NUL-terminated key; the library writes at most `buf.len()` bytes,
    // NUL included (ENAMETOOLONG when the value does not fit).
    check(OP, unsafe {
        (client.api.ceph_conf_get)(
            client.cmount.as_ptr(),
            k.as_ptr(),
            buf.as_mut_ptr().cast::<c_char>(),
            buf.len(),
        )
    })?;
    let value = CStr::from_bytes_until_nul(&buf).map_err(|_| Error::BadName { op: OP })?;
    Ok(value.to_string_lossy().into_owned())
}

/// The name cache held at zero (see [`Mount::rename_over_linked`]) while this lives; the
/// configured limit comes back when the last holder drops. The lock is held only while a
/// setting is read or written, never across a call that waits for the cluster.
struct CacheEmptied<'a>(&'a Client);

impl<'a> CacheEmptied<'a> {
    fn hold(client: &'a Client) -> Result<CacheEmptied<'a>> {
        let mut limit = client
            .cache_limit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if limit.holders == 0 {
            limit.configured = conf_get(client, CACHE_SIZE_KEY)?;
            conf_set(client, CACHE_SIZE_KEY, "0")?;
        }
        limit.holders += 1;
        Ok(CacheEmptied(client))
    }
}

impl Drop for CacheEmptied<'_> {
    fn drop(&mut self) {
        let mut limit = self
            .0
            .cache_limit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        limit.holders = limit.holders.saturating_sub(1);
        if limit.holders == 0 {
            // The library took this value before; should it refuse it now, the cache stays
            // small, which costs lookups, not correctness.
            let _ = conf_set(self.0, CACHE_SIZE_KEY, &limit.configured);
        }
    }
}

impl std::fmt::Debug for File {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "File({:p})", self.fh)
    }
}

impl std::fmt::Debug for Dir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dir({:p})", self.dirp)
    }
}

/// A counted reference to a client inode, released on drop.
pub struct Inode {
    client: Arc<Client>,
    ptr: NonNull<sys::Inode>,
}

// SAFETY: the client inode is reference counted and locked by libcephfs; this reference may be
// used and dropped (ceph_ll_put) from any thread.
unsafe impl Send for Inode {}
// SAFETY: as for `Send`: shared use only passes the pointer to libcephfs calls, which lock.
unsafe impl Sync for Inode {}

impl Drop for Inode {
    fn drop(&mut self) {
        // SAFETY: this struct owns exactly one reference, dropped once here; the client is
        // still mounted (we hold an Arc of it).
        unsafe {
            (self.client.api.ceph_ll_put)(self.client.cmount.as_ptr(), self.ptr.as_ptr());
        }
    }
}

impl std::fmt::Debug for Inode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Inode({:p})", self.ptr)
    }
}

/// An open file, closed on drop.
pub struct File {
    client: Arc<Client>,
    fh: NonNull<sys::Fh>,
}

// SAFETY: libcephfs locks around every use of an `Fh` (reads and writes of one open file from
// several threads are allowed, as with a file descriptor).
unsafe impl Send for File {}
// SAFETY: as for `Send`.
unsafe impl Sync for File {}

impl File {
    /// Reads at `offset` into `buf` (at most [`IO_BYTES_MAX`] bytes); returns the bytes read,
    /// 0 at the end of the file.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        const OP: &str = "ceph_ll_read";
        let len = buf.len().min(IO_BYTES_MAX);
        let off = i64::try_from(offset).map_err(|_| Error::Call {
            op: OP,
            errno: Errno::Inval,
        })?;
        // SAFETY: open file of a live mount; `buf` is writable for `len` bytes, which is what
        // the call is told.
        let n = check(OP, unsafe {
            (self.client.api.ceph_ll_read)(
                self.client.cmount.as_ptr(),
                self.fh.as_ptr(),
                off,
                len as u64,
                buf.as_mut_ptr().cast::<c_char>(),
            )
        })?;
        bounded(OP, n, len)
    }

    /// Writes `data` at `offset` (at most [`IO_BYTES_MAX`] bytes); returns the bytes written.
    /// The data is in the client's cache (buffered) until [`File::fsync`].
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<usize> {
        const OP: &str = "ceph_ll_write";
        let len = data.len().min(IO_BYTES_MAX);
        let off = i64::try_from(offset).map_err(|_| Error::Call {
            op: OP,
            errno: Errno::FBig,
        })?;
        // SAFETY: open file of a live mount; `data` is readable for `len` bytes.
        let n = check(OP, unsafe {
            (self.client.api.ceph_ll_write)(
                self.client.cmount.as_ptr(),
                self.fh.as_ptr(),
                off,
                len as u64,
                data.as_ptr().cast::<c_char>(),
            )
        })?;
        bounded(OP, n, len)
    }

    /// Writes all of `data` at `offset` (in calls of at most [`IO_BYTES_MAX`] bytes). A call
    /// that writes nothing is EIO rather than a loop without end.
    pub fn write_all(&self, offset: u64, data: &[u8]) -> Result<()> {
        let mut done = 0;
        while done < data.len() {
            match self.write(offset + done as u64, &data[done..])? {
                0 => {
                    return Err(Error::Call {
                        op: "ceph_ll_write",
                        errno: Errno::Io,
                    })
                }
                n => done += n,
            }
        }
        Ok(())
    }

    /// Makes the file's written data (and with `data_only` false, its metadata) durable on the
    /// OSDs (and MDS).
    pub fn fsync(&self, data_only: bool) -> Result<()> {
        // SAFETY: open file of a live mount.
        check("ceph_ll_fsync", unsafe {
            (self.client.api.ceph_ll_fsync)(
                self.client.cmount.as_ptr(),
                self.fh.as_ptr(),
                c_int::from(data_only),
            )
        })?;
        Ok(())
    }

    /// Where the next data (`hole` false) or hole at or after `offset` starts (`SEEK_DATA`,
    /// `SEEK_HOLE`): ENXIO past the end, or when no data follows. CephFS reports a whole file
    /// as data, with its one hole at the end.
    pub fn seek(&self, offset: u64, hole: bool) -> Result<u64> {
        const OP: &str = "ceph_ll_lseek";
        let off = i64::try_from(offset).map_err(|_| Error::Call {
            op: OP,
            errno: Errno::Inval,
        })?;
        let whence = if hole {
            libc::SEEK_HOLE
        } else {
            libc::SEEK_DATA
        };
        // SAFETY: open file of a live mount; the call only moves this Fh's position, which no
        // other call here uses (reads and writes are positioned).
        let at = unsafe {
            (self.client.api.ceph_ll_lseek)(
                self.client.cmount.as_ptr(),
                self.fh.as_ptr(),
                off,
                whence,
            )
        };
        if at < 0 {
            let errno = c_int::try_from(at.saturating_neg()).unwrap_or(libc::EIO);
            return Err(Error::Call {
                op: OP,
                errno: Errno::from_raw(errno),
            });
        }
        Ok(at.unsigned_abs())
    }

    /// `fallocate(2)` on the file: mode 0 reserves `offset..offset+len` (growing the file),
    /// `FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE` makes it read as zeros.
    pub fn fallocate(&self, mode: c_int, offset: u64, len: u64) -> Result<()> {
        const OP: &str = "ceph_ll_fallocate";
        let fits = |v: u64| {
            i64::try_from(v).map_err(|_| Error::Call {
                op: OP,
                errno: Errno::FBig,
            })
        };
        let (off, len) = (fits(offset)?, fits(len)?);
        // SAFETY: open file of a live mount; plain integer arguments.
        check(OP, unsafe {
            (self.client.api.ceph_ll_fallocate)(
                self.client.cmount.as_ptr(),
                self.fh.as_ptr(),
                mode,
                off,
                len,
            )
        })?;
        Ok(())
    }
}

impl File {
    /// Takes, upgrades or downgrades a POSIX record lock over `start..start+len_bytes`
    /// (`len_bytes` 0 = to the end of the file) for `owner`, held in the MDS so every client of
    /// the file system sees it. Never waits: `Ok(false)` when another owner's lock (of this or
    /// any other client) conflicts; nothing changed then. It is still a round trip to the MDS,
    /// which may take long: never call it under a lock others need.
    pub fn try_lock(
        &self,
        owner: u64,
        exclusive: bool,
        start: u64,
        len_bytes: u64,
    ) -> Result<bool> {
        let kind = if exclusive {
            libc::F_WRLCK
        } else {
            libc::F_RDLCK
        };
        match self.setlk("ceph_ll_setlk", owner, kind, start, len_bytes) {
            Ok(()) => Ok(true),
            Err(Error::Call { errno, .. }) if is_conflict(errno) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Releases `owner`'s locks over the range (parts not held are ignored, as with `fcntl`).
    pub fn unlock(&self, owner: u64, start: u64, len_bytes: u64) -> Result<()> {
        self.setlk(
            "ceph_ll_setlk(F_UNLCK)",
            owner,
            libc::F_UNLCK,
            start,
            len_bytes,
        )
    }

    /// A lock of another owner (of any client) that conflicts with `owner` taking the range:
    /// `(exclusive, start, len_bytes)`, `len_bytes` 0 = to the end of the file.
    pub fn lock_conflict(
        &self,
        owner: u64,
        exclusive: bool,
        start: u64,
        len_bytes: u64,
    ) -> Result<Option<(bool, u64, u64)>> {
        const OP: &str = "ceph_ll_getlk";
        let kind = if exclusive {
            libc::F_WRLCK
        } else {
            libc::F_RDLCK
        };
        let mut fl = flock_of(OP, kind, start, len_bytes)?;
        // SAFETY: open file of a live mount; `fl` is a valid, initialised `struct flock` the
        // call reads the request from and writes the answer into.
        check(OP, unsafe {
            (self.client.api.ceph_ll_getlk)(
                self.client.cmount.as_ptr(),
                self.fh.as_ptr(),
                &mut fl,
                owner_bits(owner),
            )
        })?;
        if i32::from(fl.l_type) == libc::F_UNLCK {
            return Ok(None);
        }
        // Values from the MDS: a negative one is not trusted, it reads as "to the end".
        let start = u64::try_from(fl.l_start).unwrap_or(0);
        let len = u64::try_from(fl.l_len).unwrap_or(0);
        Ok(Some((i32::from(fl.l_type) == libc::F_WRLCK, start, len)))
    }

    fn setlk(
        &self,
        op: &'static str,
        owner: u64,
        kind: c_int,
        start: u64,
        len_bytes: u64,
    ) -> Result<()> {
        let mut fl = flock_of(op, kind, start, len_bytes)?;
        // SAFETY: open file of a live mount; `fl` is a valid, initialised `struct flock`;
        // `sleep` is 0, so the call returns on a conflict instead of waiting for the holder.
        check(op, unsafe {
            (self.client.api.ceph_ll_setlk)(
                self.client.cmount.as_ptr(),
                self.fh.as_ptr(),
                &mut fl,
                owner_bits(owner),
                0,
            )
        })?;
        Ok(())
    }
}

/// The owner as libcephfs is given it: the top bit set marks an owner that alone (without the
/// pid) names the lock holder in the MDS (`ceph_filelock_owner_equal`), as the kernel client
/// and ceph-fuse pass theirs.
fn owner_bits(owner: u64) -> u64 {
    owner | (1 << 63)
}

/// Whether a setlk error is "another owner holds a conflicting lock".
fn is_conflict(errno: Errno) -> bool {
    matches!(errno.raw(), libc::EAGAIN | libc::EACCES)
}

/// A `struct flock` for `kind` over the range; a range past `i64::MAX` is cut to "to the end of
/// the file" (length 0), which is what such a range means in practice.
fn flock_of(op: &'static str, kind: c_int, start: u64, len_bytes: u64) -> Result<sys::flock> {
    let l_start = i64::try_from(start).map_err(|_| Error::Call {
        op,
        errno: Errno::Inval,
    })?;
    let l_len = i64::try_from(len_bytes)
        .ok()
        .filter(|len| l_start.checked_add(*len).is_some())
        .unwrap_or(0);
    // SAFETY: `struct flock` is plain integers: all-zero is a valid value.
    let mut fl: sys::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = l_start;
    fl.l_len = l_len;
    // The owner alone names the holder (see `owner_bits`); a fixed pid keeps it so either way.
    fl.l_pid = 0;
    Ok(fl)
}

/// A count the library returned, checked against the buffer it was given.
fn bounded(op: &'static str, n: c_int, len: usize) -> Result<usize> {
    match usize::try_from(n) {
        Ok(n) if n <= len => Ok(n),
        _ => Err(Error::Call {
            op,
            errno: Errno::Io,
        }),
    }
}

impl Drop for File {
    fn drop(&mut self) {
        // SAFETY: this struct owns the open file, closed once here; the mount is live.
        unsafe {
            (self.client.api.ceph_ll_close)(self.client.cmount.as_ptr(), self.fh.as_ptr());
        }
    }
}

/// A delegation on an open file (`ceph_ll_delegation`): this client's caps on the file are
/// held for the application until [`Delegation::recalled`] turns true (another client, or this
/// one, wants a conflicting open, link, rename or unlink), which libcephfs signals from its own
/// threads; the holder must then drop the delegation within the timeout of
/// [`Mount::enable_delegations`], or libcephfs unmounts this client by force. Meanwhile
/// conflicting calls of this client fail with EAGAIN. Dropping it returns the delegation, then
/// closes the file.
pub struct Delegation {
    file: File,
    /// Set by [`recall`]; boxed so its address stays put while libcephfs holds it.
    recalled: Box<AtomicBool>,
}

/// The recall callback: one atomic store, so it never blocks libcephfs, whose lock it runs
/// under.
unsafe extern "C" fn recall(_fh: *mut sys::Fh, private: *mut std::ffi::c_void) {
    // SAFETY: `private` is the `AtomicBool` boxed in a `Delegation`, which returns the
    // delegation (after which libcephfs no longer calls this) before the box is freed.
    unsafe { (*private.cast::<AtomicBool>()).store(true, Ordering::Release) };
}

impl Delegation {
    /// Takes a read (or write) delegation on `file`: `Ok(None)` when a conflicting open or
    /// delegation exists (the file is then closed).
    pub fn take(file: File, write: bool) -> Result<Option<Delegation>> {
        const OP: &str = "ceph_ll_delegation";
        let recalled = Box::new(AtomicBool::new(false));
        let cmd = if write {
            sys::CEPH_DELEGATION_WR
        } else {
            sys::CEPH_DELEGATION_RD
        };
        let private: *const AtomicBool = &*recalled;
        // SAFETY: open file of a live mount; `recall` only stores into `private`, which the
        // returned Delegation keeps alive until it has returned the delegation (Drop).
        let rc = unsafe {
            (file.client.api.ceph_ll_delegation)(
                file.client.cmount.as_ptr(),
                file.fh.as_ptr(),
                cmd,
                Some(recall),
                private.cast_mut().cast(),
            )
        };
        match check(OP, rc) {
            Ok(_) => Ok(Some(Delegation { file, recalled })),
            Err(Error::Call { errno, .. }) if errno.raw() == libc::EAGAIN => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether libcephfs asked for the delegation back.
    pub fn recalled(&self) -> bool {
        self.recalled.load(Ordering::Acquire)
    }

    /// The delegated open file.
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl Drop for Delegation {
    fn drop(&mut self) {
        // SAFETY: open file of a mount kept live by `self.file`; NONE returns the delegation
        // (under libcephfs's lock, so `recall` is not running and will not run again); the
        // file is closed and `recalled` freed only after this, when the fields drop.
        unsafe {
            (self.file.client.api.ceph_ll_delegation)(
                self.file.client.cmount.as_ptr(),
                self.file.fh.as_ptr(),
                sys::CEPH_DELEGATION_NONE,
                None,
                ptr::null_mut(),
            );
        }
    }
}

/// An open directory stream, released on drop.
pub struct Dir {
    client: Arc<Client>,
    dirp: NonNull<sys::ceph_dir_result>,
}

// SAFETY: the stream is only used through `&mut self` (one thread at a time), and libcephfs
// does not tie it to the thread that opened it.
unsafe impl Send for Dir {}

/// One directory entry with its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub stat: Stat,
    /// Where the listing continues after this entry ([`Dir::seek`]).
    pub next: i64,
}

impl Dir {
    /// The next entry (`.` and `..` included), or `None` at the end.
    pub fn next_entry(&mut self) -> Result<Option<DirEntry>> {
        const OP: &str = "ceph_readdirplus_r";
        // SAFETY: dirent is plain old data; all zero is a valid value.
        let mut de: sys::dirent = unsafe { std::mem::zeroed() };
        let mut stx = sys::ceph_statx::zeroed();
        let cm = self.client.cmount.as_ptr();
        // SAFETY: live mount and stream; valid out-buffers; a null `out` asks for no inode
        // reference.
        let rc = check(OP, unsafe {
            (self.client.api.ceph_readdirplus_r)(
                cm,
                self.dirp.as_ptr(),
                &mut de,
                &mut stx,
                sys::CEPH_STATX_ALL_STATS,
                0,
                ptr::null_mut(),
            )
        })?;
        if rc == 0 {
            return Ok(None);
        }
        let name = dirent_name(&de).ok_or(Error::Call {
            op: OP,
            errno: Errno::Io,
        })?;
        Ok(Some(DirEntry {
            name,
            stat: Stat::from(&stx),
            next: self.tell(),
        }))
    }

    /// The position after the last entry returned.
    pub fn tell(&self) -> i64 {
        // SAFETY: live mount and stream.
        unsafe { (self.client.api.ceph_telldir)(self.client.cmount.as_ptr(), self.dirp.as_ptr()) }
    }

    /// Continues the listing at `pos` (0, or a [`DirEntry::next`] of this directory).
    pub fn seek(&mut self, pos: i64) {
        // SAFETY: live mount and stream; libcephfs validates the position itself (an unknown
        // one restarts or ends the listing).
        unsafe {
            (self.client.api.ceph_seekdir)(self.client.cmount.as_ptr(), self.dirp.as_ptr(), pos)
        }
    }
}

/// The NUL-terminated name inside a dirent, never reading past the array.
fn dirent_name(de: &sys::dirent) -> Option<Vec<u8>> {
    let bytes: Vec<u8> = de.d_name.iter().map(|&c| c as u8).collect();
    let name = CStr::from_bytes_until_nul(&bytes).ok()?.to_bytes();
    (!name.is_empty()).then(|| name.to_vec())
}

impl Drop for Dir {
    fn drop(&mut self) {
        // SAFETY: this struct owns the stream, released once here; the mount is live.
        unsafe {
            (self.client.api.ceph_ll_releasedir)(self.client.cmount.as_ptr(), self.dirp.as_ptr());
        }
    }
}

/// The credentials one call runs with.
pub struct Perm {
    api: &'static sys::Api,
    ptr: NonNull<sys::UserPerm>,
    /// The group list the UserPerm points into (libcephfs does not copy it): kept alive, and
    /// never moved (a boxed slice's heap buffer stays put), as long as `ptr`.
    _groups: Box<[sys::gid_t]>,
}

// SAFETY: a UserPerm is immutable after creation (uid, gid and a pointer to our group list,
// which is never written); libcephfs only reads it, from any thread.
unsafe impl Send for Perm {}
// SAFETY: as for `Send`.
unsafe impl Sync for Perm {}

impl Perm {
    /// Credentials of `uid`, `gid` and supplementary `groups` (at most [`GROUPS_MAX`]).
    pub fn new(uid: u32, gid: u32, groups: &[u32]) -> Result<Perm> {
        const OP: &str = "ceph_userperm_new";
        if groups.len() > GROUPS_MAX {
            return Err(Error::Call {
                op: OP,
                errno: Errno::Inval,
            });
        }
        let api = sys::api()?;
        let mut list: Box<[sys::gid_t]> = groups.into();
        let n = c_int::try_from(list.len()).unwrap_or(0);
        // SAFETY: `list` is valid for `n` entries and lives (unmoved) as long as the UserPerm,
        // in the same struct; the call only allocates.
        let p = unsafe { (api.ceph_userperm_new)(uid, gid, n, list.as_mut_ptr()) };
        let ptr = NonNull::new(p).ok_or(Error::Call {
            op: OP,
            errno: Errno::NoMem,
        })?;
        Ok(Perm {
            api,
            ptr,
            _groups: list,
        })
    }
}

impl Drop for Perm {
    fn drop(&mut self) {
        // SAFETY: we own the UserPerm and free it once; its group list is freed after (fields
        // drop after this).
        unsafe { (self.api.ceph_userperm_destroy)(self.ptr.as_ptr()) }
    }
}

impl std::fmt::Debug for Perm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Perm(groups {:?})", self._groups)
    }
}

/// A time: seconds and nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Time {
    pub seconds: i64,
    pub nanoseconds: u32,
}

impl From<&sys::timespec> for Time {
    fn from(t: &sys::timespec) -> Self {
        Time {
            seconds: t.tv_sec,
            nanoseconds: u32::try_from(t.tv_nsec).unwrap_or(0).min(999_999_999),
        }
    }
}

/// An inode's attributes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stat {
    pub ino: u64,
    /// File type and permission bits (`st_mode`).
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// 512-byte blocks.
    pub blocks: u64,
    pub rdev: u64,
    pub atime: Time,
    pub mtime: Time,
    pub ctime: Time,
    /// The inode's change attribute (grows with every change).
    pub version: u64,
}

impl From<&sys::ceph_statx> for Stat {
    fn from(s: &sys::ceph_statx) -> Self {
        Stat {
            ino: s.stx_ino,
            mode: u32::from(s.stx_mode),
            nlink: s.stx_nlink,
            uid: s.stx_uid,
            gid: s.stx_gid,
            size: s.stx_size,
            blocks: s.stx_blocks,
            rdev: s.stx_rdev,
            atime: Time::from(&s.stx_atime),
            mtime: Time::from(&s.stx_mtime),
            ctime: Time::from(&s.stx_ctime),
            version: s.stx_version,
        }
    }
}

/// How [`SetAttr`] sets a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SetTime {
    #[default]
    Keep,
    Now,
    At(Time),
}

/// Attributes to change; `None`/[`SetTime::Keep`] leaves one alone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: SetTime,
    pub mtime: SetTime,
}

impl SetAttr {
    fn to_statx(&self) -> (sys::ceph_statx, c_int) {
        let mut stx = sys::ceph_statx::zeroed();
        let mut mask = 0;
        if let Some(m) = self.mode {
            stx.stx_mode = (m & 0o7777) as u16;
            mask |= sys::CEPH_SETATTR_MODE;
        }
        if let Some(u) = self.uid {
            stx.stx_uid = u;
            mask |= sys::CEPH_SETATTR_UID;
        }
        if let Some(g) = self.gid {
            stx.stx_gid = g;
            mask |= sys::CEPH_SETATTR_GID;
        }
        if let Some(s) = self.size {
            stx.stx_size = s;
            mask |= sys::CEPH_SETATTR_SIZE;
        }
        mask |= set_time(&self.atime, &mut stx.stx_atime, sys::CEPH_SETATTR_ATIME);
        mask |= set_time(&self.mtime, &mut stx.stx_mtime, sys::CEPH_SETATTR_MTIME);
        (stx, mask)
    }
}

/// Fills one time of a setattr statx; returns its mask bit(s). "Now" is the `_NOW` bit, which
/// libcephfs fills with its own clock.
fn set_time(t: &SetTime, field: &mut sys::timespec, bit: c_int) -> c_int {
    match t {
        SetTime::Keep => 0,
        SetTime::Now => {
            if bit == sys::CEPH_SETATTR_ATIME {
                sys::CEPH_SETATTR_ATIME | sys::CEPH_SETATTR_ATIME_NOW
            } else {
                sys::CEPH_SETATTR_MTIME | sys::CEPH_SETATTR_MTIME_NOW
            }
        }
        SetTime::At(time) => {
            field.tv_sec = time.seconds;
            field.tv_nsec = i64::from(time.nanoseconds);
            bit
        }
    }
}

/// File system totals (from `statvfs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsStats {
    pub block_bytes: u64,
    pub blocks: u64,
    pub blocks_free: u64,
    pub blocks_avail: u64,
    pub files: u64,
    pub files_free: u64,
    pub name_max: u64,
}

impl From<&sys::statvfs> for FsStats {
    fn from(s: &sys::statvfs) -> Self {
        // libcephfs reports f_frsize as the unit of the block counts.
        let unit = if s.f_frsize != 0 {
            s.f_frsize
        } else {
            s.f_bsize
        };
        FsStats {
            block_bytes: unit,
            blocks: s.f_blocks,
            blocks_free: s.f_bfree,
            blocks_avail: s.f_bavail,
            files: s.f_files,
            files_free: s.f_ffree,
            name_max: s.f_namemax,
        }
    }
}
