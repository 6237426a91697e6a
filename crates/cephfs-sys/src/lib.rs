//! Raw declarations of the part of libcephfs (Ceph 16, `cephfs/libcephfs.h` and
//! `cephfs/ceph_ll_client.h`) that rnfsd uses: mounting, per-call credentials (`UserPerm`) and
//! the low-level inode API (`ceph_ll_*`). The safe wrapper is the `rnfs-cephfs` crate; nothing
//! else should call these.
//!
//! # Loaded at run time, not linked
//! The library is opened with `dlopen` ([`libloading`]) the first time a CephFS export is opened,
//! not linked at build time, because:
//! * rnfsd then builds, and serves local exports, on hosts without Ceph: only an export with
//!   `backend = "ceph"` needs `libcephfs.so.2`, and when it is missing that export fails with a
//!   clear message ([`LoadError`]) instead of the whole binary failing to start in the loader;
//! * the build needs no `libcephfs-dev`, no pkg-config and no build script.
//!
//! The cost is that the signatures below are not checked by a C compiler. They were written by
//! hand from the Ceph 16.2 header; to check them again (e.g. for a new Ceph release):
//! 1. `apt-get install libcephfs-dev`;
//! 2. `cargo test -p rnfs-cephfs-sys`: `tests/header.rs` compiles a C program against the header
//!    that prints the size and every field offset of the structures declared here and compares
//!    them with Rust's, and checks that every function named in [`API_FUNCTIONS`] is declared
//!    in the header and exported by the library;
//! 3. compare each declaration of [`Api`] with the header's prototype of the same name
//!    (`grep -A3 'ceph_ll_lookup(' /usr/include/cephfs/libcephfs.h`): argument order and types,
//!    and the return type.
//!
//! # Conventions of the C API
//! Calls return 0 or a count on success and a negated `errno` on failure. Every `Inode *` a call
//! hands out carries a reference that must be dropped with `ceph_ll_put`. A `UserPerm` does not
//! copy its group list: the list must outlive it.
#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_uint, c_void};
use std::sync::OnceLock;

pub use libc::{dev_t, dirent, flock, gid_t, mode_t, statvfs, timespec, uid_t};

/// The shared object's name (its SONAME: the runtime package `libcephfs2` ships it).
pub const LIBRARY: &str = "libcephfs.so.2";

/// `struct ceph_mount_info`: one client instance (opaque).
#[repr(C)]
pub struct ceph_mount_info {
    _private: [u8; 0],
}

/// `struct Inode`: a client-side inode reference (opaque).
#[repr(C)]
pub struct Inode {
    _private: [u8; 0],
}

/// `struct Fh`: an open file (opaque).
#[repr(C)]
pub struct Fh {
    _private: [u8; 0],
}

/// `struct UserPerm`: the credentials of one call (opaque).
#[repr(C)]
pub struct UserPerm {
    _private: [u8; 0],
}

/// `struct ceph_dir_result`: an open directory stream (opaque).
#[repr(C)]
pub struct ceph_dir_result {
    _private: [u8; 0],
}

/// `inodeno_t`: a CephFS inode number.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct inodeno_t {
    pub val: u64,
}

/// `snapid_t`: a snapshot id ([`CEPH_NOSNAP`] for the live file system).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct snapid_t {
    pub val: u64,
}

/// `vinodeno_t`: an inode in a snapshot (or the live one).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct vinodeno_t {
    pub ino: inodeno_t,
    pub snapid: snapid_t,
}

/// The snapshot id of the live (head) file system (`CEPH_NOSNAP` of Ceph's `include/rados.h`,
/// `(uint64_t)(-2)`).
pub const CEPH_NOSNAP: u64 = u64::MAX - 1;

/// `struct ceph_statx` (`ceph_ll_client.h`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ceph_statx {
    pub stx_mask: u32,
    pub stx_blksize: u32,
    pub stx_nlink: u32,
    pub stx_uid: u32,
    pub stx_gid: u32,
    pub stx_mode: u16,
    pub stx_ino: u64,
    pub stx_size: u64,
    pub stx_blocks: u64,
    pub stx_dev: dev_t,
    pub stx_rdev: dev_t,
    pub stx_atime: timespec,
    pub stx_ctime: timespec,
    pub stx_mtime: timespec,
    pub stx_btime: timespec,
    pub stx_version: u64,
}

impl ceph_statx {
    /// All zero: what the calls fill in.
    pub fn zeroed() -> ceph_statx {
        let t = timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        ceph_statx {
            stx_mask: 0,
            stx_blksize: 0,
            stx_nlink: 0,
            stx_uid: 0,
            stx_gid: 0,
            stx_mode: 0,
            stx_ino: 0,
            stx_size: 0,
            stx_blocks: 0,
            stx_dev: 0,
            stx_rdev: 0,
            stx_atime: t,
            stx_ctime: t,
            stx_mtime: t,
            stx_btime: t,
            stx_version: 0,
        }
    }
}

// `want` bits of the statx calls.
pub const CEPH_STATX_MODE: c_uint = 0x0000_0001;
pub const CEPH_STATX_NLINK: c_uint = 0x0000_0002;
pub const CEPH_STATX_UID: c_uint = 0x0000_0004;
pub const CEPH_STATX_GID: c_uint = 0x0000_0008;
pub const CEPH_STATX_RDEV: c_uint = 0x0000_0010;
pub const CEPH_STATX_ATIME: c_uint = 0x0000_0020;
pub const CEPH_STATX_MTIME: c_uint = 0x0000_0040;
pub const CEPH_STATX_CTIME: c_uint = 0x0000_0080;
pub const CEPH_STATX_INO: c_uint = 0x0000_0100;
pub const CEPH_STATX_SIZE: c_uint = 0x0000_0200;
pub const CEPH_STATX_BLOCKS: c_uint = 0x0000_0400;
pub const CEPH_STATX_BASIC_STATS: c_uint = 0x0000_07ff;
pub const CEPH_STATX_VERSION: c_uint = 0x0000_1000;
pub const CEPH_STATX_ALL_STATS: c_uint = 0x0000_1fff;
/// `flags` of the statx calls: return cached attributes without asking the MDS.
pub const AT_STATX_DONT_SYNC: c_uint = 0x4000;
/// `flags`: do not follow a final symlink.
pub const AT_SYMLINK_NOFOLLOW: c_uint = 0x100;

// `mask` bits of `ceph_ll_setattr`.
pub const CEPH_SETATTR_MODE: c_int = 1 << 0;
pub const CEPH_SETATTR_UID: c_int = 1 << 1;
pub const CEPH_SETATTR_GID: c_int = 1 << 2;
pub const CEPH_SETATTR_MTIME: c_int = 1 << 3;
pub const CEPH_SETATTR_ATIME: c_int = 1 << 4;
pub const CEPH_SETATTR_SIZE: c_int = 1 << 5;
pub const CEPH_SETATTR_CTIME: c_int = 1 << 6;
pub const CEPH_SETATTR_MTIME_NOW: c_int = 1 << 7;
pub const CEPH_SETATTR_ATIME_NOW: c_int = 1 << 8;

/// Declares the function table: one field per C function, each a plain function pointer looked
/// up by its own name, and [`API_FUNCTIONS`] listing those names for the header check.
macro_rules! api {
    ($($name:ident: fn($($arg:ty),* $(,)?) $(-> $ret:ty)?;)*) => {
        /// The loaded library and the functions rnfsd calls, under their C names.
        pub struct Api {
            $(pub $name: unsafe extern "C" fn($($arg),*) $(-> $ret)?,)*
            // Last, so it outlives the pointers above while the struct is dropped (it never is
            // when loaded through `api()`).
            _lib: libloading::Library,
        }

        /// The C names of every function in [`Api`].
        pub const API_FUNCTIONS: &[&str] = &[$(stringify!($name)),*];

        impl Api {
            /// Opens the library at `path` (a file name is searched the way `dlopen` searches)
            /// and looks every function up.
            pub fn load_from(path: &str) -> Result<Api, LoadError> {
                // SAFETY: opening libcephfs runs its initialisers (C++ static constructors of
                // Ceph's common code), which have no preconditions on the caller; that is how
                // every program linked with it starts too.
                let lib = unsafe { libloading::Library::new(path) }
                    .map_err(|e| LoadError::Open { path: path.to_owned(), reason: e.to_string() })?;
                $(
                    // SAFETY: the pointer type is this function's prototype in the Ceph 16
                    // header (checked by tests/header.rs and by hand, see the crate docs); the
                    // pointer is kept in the same struct as `lib`, which is never unloaded
                    // while the struct lives.
                    let $name = *unsafe {
                        lib.get::<unsafe extern "C" fn($($arg),*) $(-> $ret)?>(
                            concat!(stringify!($name), "\0").as_bytes(),
                        )
                    }
                    .map_err(|e| LoadError::Symbol {
                        name: stringify!($name),
                        reason: e.to_string(),
                    })?;
                )*
                Ok(Api { $($name,)* _lib: lib })
            }
        }
    };
}

api! {
    ceph_version: fn(*mut c_int, *mut c_int, *mut c_int) -> *const c_char;
    ceph_create: fn(*mut *mut ceph_mount_info, *const c_char) -> c_int;
    ceph_conf_read_file: fn(*mut ceph_mount_info, *const c_char) -> c_int;
    ceph_conf_set: fn(*mut ceph_mount_info, *const c_char, *const c_char) -> c_int;
    ceph_conf_get: fn(*mut ceph_mount_info, *const c_char, *mut c_char, usize) -> c_int;
    ceph_select_filesystem: fn(*mut ceph_mount_info, *const c_char) -> c_int;
    ceph_mount: fn(*mut ceph_mount_info, *const c_char) -> c_int;
    ceph_unmount: fn(*mut ceph_mount_info) -> c_int;
    ceph_release: fn(*mut ceph_mount_info) -> c_int;
    ceph_userperm_new: fn(uid_t, gid_t, c_int, *mut gid_t) -> *mut UserPerm;
    ceph_userperm_destroy: fn(*mut UserPerm);
    ceph_ll_lookup_root: fn(*mut ceph_mount_info, *mut *mut Inode) -> c_int;
    ceph_ll_lookup: fn(
        *mut ceph_mount_info, *mut Inode, *const c_char, *mut *mut Inode, *mut ceph_statx,
        c_uint, c_uint, *const UserPerm,
    ) -> c_int;
    ceph_ll_lookup_vino: fn(*mut ceph_mount_info, vinodeno_t, *mut *mut Inode) -> c_int;
    ceph_ll_lookup_inode: fn(*mut ceph_mount_info, inodeno_t, *mut *mut Inode) -> c_int;
    ceph_ll_put: fn(*mut ceph_mount_info, *mut Inode) -> c_int;
    ceph_ll_getattr: fn(
        *mut ceph_mount_info, *mut Inode, *mut ceph_statx, c_uint, c_uint, *const UserPerm,
    ) -> c_int;
    ceph_ll_setattr: fn(
        *mut ceph_mount_info, *mut Inode, *mut ceph_statx, c_int, *const UserPerm,
    ) -> c_int;
    ceph_ll_open: fn(*mut ceph_mount_info, *mut Inode, c_int, *mut *mut Fh, *const UserPerm)
        -> c_int;
    ceph_ll_read: fn(*mut ceph_mount_info, *mut Fh, i64, u64, *mut c_char) -> c_int;
    ceph_ll_write: fn(*mut ceph_mount_info, *mut Fh, i64, u64, *const c_char) -> c_int;
    ceph_ll_fsync: fn(*mut ceph_mount_info, *mut Fh, c_int) -> c_int;
    ceph_ll_sync_inode: fn(*mut ceph_mount_info, *mut Inode, c_int) -> c_int;
    ceph_ll_close: fn(*mut ceph_mount_info, *mut Fh) -> c_int;
    ceph_ll_create: fn(
        *mut ceph_mount_info, *mut Inode, *const c_char, mode_t, c_int, *mut *mut Inode,
        *mut *mut Fh, *mut ceph_statx, c_uint, c_uint, *const UserPerm,
    ) -> c_int;
    ceph_ll_mknod: fn(
        *mut ceph_mount_info, *mut Inode, *const c_char, mode_t, dev_t, *mut *mut Inode,
        *mut ceph_statx, c_uint, c_uint, *const UserPerm,
    ) -> c_int;
    ceph_ll_mkdir: fn(
        *mut ceph_mount_info, *mut Inode, *const c_char, mode_t, *mut *mut Inode,
        *mut ceph_statx, c_uint, c_uint, *const UserPerm,
    ) -> c_int;
    ceph_ll_symlink: fn(
        *mut ceph_mount_info, *mut Inode, *const c_char, *const c_char, *mut *mut Inode,
        *mut ceph_statx, c_uint, c_uint, *const UserPerm,
    ) -> c_int;
    ceph_ll_readlink: fn(*mut ceph_mount_info, *mut Inode, *mut c_char, usize, *const UserPerm)
        -> c_int;
    ceph_ll_link: fn(*mut ceph_mount_info, *mut Inode, *mut Inode, *const c_char,
        *const UserPerm) -> c_int;
    ceph_ll_unlink: fn(*mut ceph_mount_info, *mut Inode, *const c_char, *const UserPerm)
        -> c_int;
    ceph_ll_rmdir: fn(*mut ceph_mount_info, *mut Inode, *const c_char, *const UserPerm)
        -> c_int;
    ceph_ll_rename: fn(
        *mut ceph_mount_info, *mut Inode, *const c_char, *mut Inode, *const c_char,
        *const UserPerm,
    ) -> c_int;
    ceph_ll_opendir: fn(*mut ceph_mount_info, *mut Inode, *mut *mut ceph_dir_result,
        *const UserPerm) -> c_int;
    ceph_ll_releasedir: fn(*mut ceph_mount_info, *mut ceph_dir_result) -> c_int;
    ceph_readdirplus_r: fn(
        *mut ceph_mount_info, *mut ceph_dir_result, *mut dirent, *mut ceph_statx, c_uint,
        c_uint, *mut *mut Inode,
    ) -> c_int;
    ceph_telldir: fn(*mut ceph_mount_info, *mut ceph_dir_result) -> i64;
    ceph_seekdir: fn(*mut ceph_mount_info, *mut ceph_dir_result, i64);
    ceph_ll_statfs: fn(*mut ceph_mount_info, *mut Inode, *mut statvfs) -> c_int;
    // POSIX record locks held in the MDS for `owner` (any 64-bit id the caller picks); the last
    // argument of setlk is `sleep`: rnfsd always passes 0 (a conflict is -EAGAIN, not a wait).
    ceph_ll_getlk: fn(*mut ceph_mount_info, *mut Fh, *mut flock, u64) -> c_int;
    ceph_ll_setlk: fn(*mut ceph_mount_info, *mut Fh, *mut flock, u64, c_int) -> c_int;
    // Taking over a previous instance of this client (same uuid): its session is evicted at
    // once, so what it held (caps, locks) does not wait for the MDS's session timeout.
    ceph_init: fn(*mut ceph_mount_info) -> c_int;
    ceph_start_reclaim: fn(*mut ceph_mount_info, *const c_char, c_uint) -> c_int;
    ceph_finish_reclaim: fn(*mut ceph_mount_info);
    ceph_set_uuid: fn(*mut ceph_mount_info, *const c_char);
    ceph_set_session_timeout: fn(*mut ceph_mount_info, c_uint);
    // NFSv4.2: SEEK, ALLOCATE/DEALLOCATE and the `user.` extended attributes.
    ceph_ll_lseek: fn(*mut ceph_mount_info, *mut Fh, i64, c_int) -> i64;
    ceph_ll_fallocate: fn(*mut ceph_mount_info, *mut Fh, c_int, i64, i64) -> c_int;
    ceph_ll_getxattr: fn(
        *mut ceph_mount_info, *mut Inode, *const c_char, *mut c_void, usize, *const UserPerm,
    ) -> c_int;
    ceph_ll_setxattr: fn(
        *mut ceph_mount_info, *mut Inode, *const c_char, *const c_void, usize, c_int,
        *const UserPerm,
    ) -> c_int;
    ceph_ll_listxattr: fn(
        *mut ceph_mount_info, *mut Inode, *mut c_char, usize, *mut usize, *const UserPerm,
    ) -> c_int;
    ceph_ll_removexattr: fn(*mut ceph_mount_info, *mut Inode, *const c_char, *const UserPerm)
        -> c_int;
    // NFSv4 delegations: caps held for the application until recalled through `cb` (run under
    // the client's lock, from its threads: it must not call back into the library).
    ceph_get_cap_return_timeout: fn(*mut ceph_mount_info) -> u32;
    ceph_set_deleg_timeout: fn(*mut ceph_mount_info, u32) -> c_int;
    ceph_ll_delegation: fn(*mut ceph_mount_info, *mut Fh, c_uint, Option<ceph_deleg_cb_t>,
        *mut c_void) -> c_int;
}

/// `ceph_deleg_cb_t`: called when a delegation must be returned.
#[allow(non_camel_case_types)]
pub type ceph_deleg_cb_t = unsafe extern "C" fn(*mut Fh, *mut c_void);
/// `cmd` of `ceph_ll_delegation`.
pub const CEPH_DELEGATION_NONE: c_uint = 0;
pub const CEPH_DELEGATION_RD: c_uint = 1;
pub const CEPH_DELEGATION_WR: c_uint = 2;

/// `flags` of `ceph_start_reclaim`: evict the previous instance rather than take its state.
pub const CEPH_RECLAIM_RESET: c_uint = 1;

/// Why libcephfs could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("{path} not found or not loadable ({reason}): install libcephfs2 (Debian: apt-get install libcephfs2)")]
    Open { path: String, reason: String },
    #[error("libcephfs lacks {name} ({reason}): rnfsd needs Ceph 16 or later")]
    Symbol { name: &'static str, reason: String },
}

/// The process-wide libcephfs, loaded on first use (and never unloaded: its threads and static
/// state must outlive every mount).
pub fn api() -> Result<&'static Api, LoadError> {
    static API: OnceLock<Result<Api, LoadError>> = OnceLock::new();
    API.get_or_init(|| Api::load_from(LIBRARY))
        .as_ref()
        .map_err(Clone::clone)
}
