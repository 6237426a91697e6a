//! The only home of `unsafe` system-call code in rnfsd: thin, safe wrappers over the Linux calls the
//! local storage backend needs.
//!
//! # Design
//! * Every wrapper takes [`BorrowedFd`]s, returns [`OwnedFd`]s for new descriptors (always opened with
//!   `O_CLOEXEC`) and reports failures as [`std::io::Error`] carrying the errno, so callers map errors
//!   to NFS status codes with `raw_os_error()`. `EINTR` is retried where a call can see it.
//! * Wrappers do no policy: which flags to pass, which identity to run as and how to interpret results
//!   is the caller's business (see `rnfs-storage`'s `local` module).
//! * Objects are addressed by **kernel file handles** ([`name_to_handle_at`], [`open_by_handle_at`])
//!   and `O_PATH` descriptors, which need no permission on the object itself. An `O_PATH` descriptor is
//!   upgraded to a readable one with [`reopen`] through `/proc/self/fd/N`, which is a real `open(2)`
//!   of the inode: the kernel checks the thread's *current* credentials, exactly as for a path open.
//! * **Per-thread identity** ([`identity`]): the thread's fsuid/fsgid/supplementary groups are switched
//!   with raw system calls, which on Linux change the calling thread only (glibc's wrappers broadcast
//!   the change to every thread of the process, which would let one request's identity leak into
//!   another's).
//!
//! Only 64-bit Linux is supported: `struct stat` and the `setfs*id` system calls are used in their
//! 64-bit/32-bit-id forms.

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
compile_error!("rnfs-sys supports 64-bit Linux only");

pub mod fanotify;
pub mod identity;
pub mod lease;
pub mod ofd;
pub mod pipe;
pub mod poll;
pub mod reactor;
pub mod sockets;
pub mod xattr;

pub use identity::{set_thread_identity, IdentityGuard};

use std::ffi::{CStr, CString};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// The kernel's limit on the size of a file handle's opaque part (`MAX_HANDLE_SZ`).
pub const MAX_HANDLE_SZ: usize = 128;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cvt_long(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn is_eintr(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINTR)
}

/// Wraps a descriptor number just returned by a successful system call.
fn owned(fd: libc::c_int) -> OwnedFd {
    // SAFETY: `fd` was returned by a successful open-like system call and is owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

// ---------------------------------------------------------------------------------------------------
// File handles

/// A kernel file handle: the file system's own type tag and opaque bytes (at most [`MAX_HANDLE_SZ`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KernelHandle {
    pub handle_type: i32,
    pub bytes: Vec<u8>,
}

/// `struct file_handle` with inline storage for the largest handle the kernel produces.
#[repr(C)]
struct RawFileHandle {
    handle_bytes: libc::c_uint,
    handle_type: libc::c_int,
    f_handle: [u8; MAX_HANDLE_SZ],
}

/// `name_to_handle_at(2)`: the kernel handle of `name` relative to `dirfd`, and the id of the mount
/// holding it. `flags` may contain `AT_EMPTY_PATH` (with `name` = `""`: the object `dirfd` refers to)
/// and `AT_SYMLINK_FOLLOW`; without the latter a trailing symlink is not followed.
pub fn name_to_handle_at(
    dirfd: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
) -> io::Result<(KernelHandle, i32)> {
    let mut raw = RawFileHandle {
        handle_bytes: MAX_HANDLE_SZ as libc::c_uint,
        handle_type: 0,
        f_handle: [0; MAX_HANDLE_SZ],
    };
    let mut mount_id: libc::c_int = 0;
    // SAFETY: `name` is NUL-terminated; `raw` is a `struct file_handle` header followed by
    // `handle_bytes` writable bytes, as the call requires; `mount_id` is a valid out-pointer. All of
    // them outlive the call.
    cvt(unsafe {
        libc::name_to_handle_at(
            dirfd.as_raw_fd(),
            name.as_ptr(),
            (&raw mut raw).cast::<libc::file_handle>(),
            &mut mount_id,
            flags,
        )
    })?;
    let len = (raw.handle_bytes as usize).min(MAX_HANDLE_SZ);
    Ok((
        KernelHandle {
            handle_type: raw.handle_type,
            bytes: raw.f_handle[..len].to_vec(),
        },
        mount_id,
    ))
}

/// [`name_to_handle_at`] of the object `fd` itself (`AT_EMPTY_PATH`).
pub fn fd_to_handle(fd: BorrowedFd<'_>) -> io::Result<(KernelHandle, i32)> {
    name_to_handle_at(fd, c"", libc::AT_EMPTY_PATH)
}

/// `open_by_handle_at(2)`: opens the object `handle` names on the file system of `mount_fd`.
/// `mount_fd` must be a real (not `O_PATH`) descriptor, e.g. the export root opened `O_RDONLY`;
/// the kernel answers `EBADF` for an `O_PATH` one.
///
/// Needs `CAP_DAC_READ_SEARCH` in the calling thread's *effective* set, which the kernel clears while
/// the thread's fsuid is not 0: call it before switching to a caller's identity.
pub fn open_by_handle_at(
    mount_fd: BorrowedFd<'_>,
    handle: &KernelHandle,
    flags: libc::c_int,
) -> io::Result<OwnedFd> {
    if handle.bytes.len() > MAX_HANDLE_SZ {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut raw = RawFileHandle {
        handle_bytes: handle.bytes.len() as libc::c_uint,
        handle_type: handle.handle_type,
        f_handle: [0; MAX_HANDLE_SZ],
    };
    raw.f_handle[..handle.bytes.len()].copy_from_slice(&handle.bytes);
    // SAFETY: `raw` is a valid `struct file_handle` whose `handle_bytes` do not exceed its storage;
    // the kernel only reads it during the call.
    let fd = cvt(unsafe {
        libc::open_by_handle_at(
            mount_fd.as_raw_fd(),
            (&raw mut raw).cast::<libc::file_handle>(),
            flags | libc::O_CLOEXEC,
        )
    })?;
    Ok(owned(fd))
}

// ---------------------------------------------------------------------------------------------------
// Opening

/// `openat(2)` with `O_CLOEXEC` added. `mode` is used only when creating.
pub fn openat(
    dirfd: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    loop {
        // SAFETY: `name` is NUL-terminated and outlives the call; `mode` is passed as the variadic
        // `mode_t` argument the call expects.
        let r = unsafe {
            libc::openat(
                dirfd.as_raw_fd(),
                name.as_ptr(),
                flags | libc::O_CLOEXEC,
                mode as libc::c_uint,
            )
        };
        match cvt(r) {
            Ok(fd) => return Ok(owned(fd)),
            Err(e) if is_eintr(&e) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Opens the object an (`O_PATH`) descriptor refers to anew with `flags`, through
/// `/proc/self/fd/N`. This is a full `open(2)` of the inode: permissions are checked against the
/// calling thread's current fsuid/fsgid/groups. Never pass `O_NOFOLLOW` (the `/proc` entry is a
/// link) or `O_CREAT`.
pub fn reopen(fd: BorrowedFd<'_>, flags: libc::c_int) -> io::Result<OwnedFd> {
    let path = proc_fd_path(fd);
    loop {
        // SAFETY: `path` is NUL-terminated and outlives the call; no mode argument is needed without
        // O_CREAT.
        let r = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) };
        match cvt(r) {
            Ok(fd) => return Ok(owned(fd)),
            Err(e) if is_eintr(&e) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `/proc/self/fd/N`: a "magic link" whose resolution lands on the very object `fd` refers to, as a
/// path the kernel resolves with the calling thread's *current* credentials. When `fd` is an
/// `O_PATH` descriptor of a symlink, resolution stops at the symlink itself (the magic link is
/// followed, the symlink it lands on is not).
fn proc_fd_path(fd: BorrowedFd<'_>) -> CString {
    let mut path = format!("/proc/self/fd/{}", fd.as_raw_fd()).into_bytes();
    path.push(0);
    // The formatted string holds digits and ASCII only, and exactly one trailing NUL.
    CString::from_vec_with_nul(path).unwrap_or_default()
}

/// Runs a system call returning `-1`/errno on failure, retrying `EINTR`.
fn retry(mut call: impl FnMut() -> libc::c_int) -> io::Result<libc::c_int> {
    loop {
        match cvt(call()) {
            Err(e) if is_eintr(&e) => continue,
            other => return other,
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Making and removing names. All of them act on one name in a directory descriptor; the kernel checks
// the calling thread's current credentials (write and search permission on the directory, sticky
// bit, `CAP_MKNOD` for devices, `protected_hardlinks`, ...).

/// `mkdirat(2)`. `mode` is reduced by the thread's umask (see [`umask`]).
pub fn mkdirat(dirfd: BorrowedFd<'_>, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and outlives the call.
    retry(|| unsafe { libc::mkdirat(dirfd.as_raw_fd(), name.as_ptr(), mode) })?;
    Ok(())
}

/// `symlinkat(2)`: creates `name` in `dirfd` holding `target`, which is stored as given and not
/// resolved.
pub fn symlinkat(target: &CStr, dirfd: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: both strings are NUL-terminated and outlive the call.
    retry(|| unsafe { libc::symlinkat(target.as_ptr(), dirfd.as_raw_fd(), name.as_ptr()) })?;
    Ok(())
}

/// `mknodat(2)`: `mode` holds the type (`S_IFIFO`, `S_IFSOCK`, `S_IFCHR`, `S_IFBLK`, `S_IFREG`) and
/// the permission bits (reduced by the umask); `dev` is used for devices only (see
/// [`libc::makedev`]). Devices need `CAP_MKNOD`.
pub fn mknodat(
    dirfd: BorrowedFd<'_>,
    name: &CStr,
    mode: libc::mode_t,
    dev: libc::dev_t,
) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and outlives the call.
    retry(|| unsafe { libc::mknodat(dirfd.as_raw_fd(), name.as_ptr(), mode, dev) })?;
    Ok(())
}

/// `unlinkat(2)`: removes a non-directory, or with `AT_REMOVEDIR` an empty directory.
pub fn unlinkat(dirfd: BorrowedFd<'_>, name: &CStr, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and outlives the call.
    retry(|| unsafe { libc::unlinkat(dirfd.as_raw_fd(), name.as_ptr(), flags) })?;
    Ok(())
}

/// `renameat2(2)` (flags 0 is a plain atomic `renameat`, replacing an existing target). Issued as a
/// raw system call, so it does not depend on the C library's version.
pub fn renameat2(
    olddirfd: BorrowedFd<'_>,
    oldname: &CStr,
    newdirfd: BorrowedFd<'_>,
    newname: &CStr,
    flags: libc::c_uint,
) -> io::Result<()> {
    loop {
        // SAFETY: raw system call with two descriptors, two NUL-terminated strings that outlive the
        // call and an integer, matching the kernel's renameat2 signature.
        let r = unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                olddirfd.as_raw_fd(),
                oldname.as_ptr(),
                newdirfd.as_raw_fd(),
                newname.as_ptr(),
                flags,
            )
        };
        match cvt_long(r) {
            Err(e) if is_eintr(&e) => continue,
            other => return other.map(drop),
        }
    }
}

/// `linkat(2)`. Linking an `O_PATH` descriptor itself (`AT_EMPTY_PATH`) needs
/// `CAP_DAC_READ_SEARCH`; [`link_fd`] does it without.
pub fn linkat(
    olddirfd: BorrowedFd<'_>,
    oldname: &CStr,
    newdirfd: BorrowedFd<'_>,
    newname: &CStr,
    flags: libc::c_int,
) -> io::Result<()> {
    // SAFETY: both names are NUL-terminated and outlive the call.
    retry(|| unsafe {
        libc::linkat(
            olddirfd.as_raw_fd(),
            oldname.as_ptr(),
            newdirfd.as_raw_fd(),
            newname.as_ptr(),
            flags,
        )
    })?;
    Ok(())
}

/// Makes a new hard link `newname` in `newdirfd` to the object `fd` refers to (any descriptor,
/// `O_PATH` included; a symlink is linked itself, not its target): `linkat` of `/proc/self/fd/N`
/// with `AT_SYMLINK_FOLLOW`, which the linkat(2) manual documents for this purpose. Unlike
/// `AT_EMPTY_PATH` it needs no capability, so every check (directory permissions,
/// `fs.protected_hardlinks`, same mount) is made against the calling thread's credentials.
/// An object whose last link is gone cannot be linked again (`ENOENT`).
pub fn link_fd(fd: BorrowedFd<'_>, newdirfd: BorrowedFd<'_>, newname: &CStr) -> io::Result<()> {
    let path = proc_fd_path(fd);
    // SAFETY: both paths are NUL-terminated and outlive the call; AT_FDCWD is ignored for the
    // absolute /proc path.
    retry(|| unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            path.as_ptr(),
            newdirfd.as_raw_fd(),
            newname.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    })?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Changing attributes

/// `fchownat(2)`; `None` leaves the id unchanged. With `AT_EMPTY_PATH` and `name` = `""` it changes
/// `dirfd` itself, `O_PATH` descriptors (and symlinks: the link, not its target) included.
pub fn fchownat(
    dirfd: BorrowedFd<'_>,
    name: &CStr,
    uid: Option<u32>,
    gid: Option<u32>,
    flags: libc::c_int,
) -> io::Result<()> {
    // (uid_t)-1 / (gid_t)-1 mean "no change" to the kernel.
    let uid = uid.unwrap_or(u32::MAX);
    let gid = gid.unwrap_or(u32::MAX);
    // SAFETY: `name` is NUL-terminated and outlives the call.
    retry(|| unsafe { libc::fchownat(dirfd.as_raw_fd(), name.as_ptr(), uid, gid, flags) })?;
    Ok(())
}

/// Whether the kernel takes `AT_EMPTY_PATH` in a call (0 unknown, 1 yes, 2 no): checked on first
/// use, so that kernels before 6.6 fall back to `/proc/self/fd/N`.
struct EmptyPathSupport(std::sync::atomic::AtomicU8);

impl EmptyPathSupport {
    const fn new() -> Self {
        EmptyPathSupport(std::sync::atomic::AtomicU8::new(0))
    }

    /// Runs `direct` (the `AT_EMPTY_PATH` form) unless known unsupported, falling back to
    /// `via_proc` when it is refused with `EINVAL`/`ENOSYS` (then remembered if the fallback works).
    fn run(
        &self,
        direct: impl FnMut() -> libc::c_int,
        via_proc: impl FnMut() -> libc::c_int,
    ) -> io::Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        if self.0.load(Relaxed) != 2 {
            match retry(direct) {
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {}
                other => {
                    self.0.store(1, Relaxed);
                    return other.map(drop);
                }
            }
            let r = retry(via_proc).map(drop);
            if r.is_ok() && self.0.load(Relaxed) == 0 {
                self.0.store(2, Relaxed);
            }
            return r;
        }
        retry(via_proc).map(drop)
    }
}

/// `chmod(2)` of the object `fd` refers to (any descriptor, `O_PATH` included): `fchmodat2(fd, "",
/// AT_EMPTY_PATH)` (Linux 6.6+; `fchmod` refuses `O_PATH` descriptors), else through
/// `/proc/self/fd/N` as glibc's `fchmodat(AT_SYMLINK_NOFOLLOW)` does — a path walk through procfs
/// that costs several times more. Do not pass a symlink: Linux has no symlink modes, and some file
/// systems would store one anyway.
pub fn chmod_fd(fd: BorrowedFd<'_>, mode: libc::mode_t) -> io::Result<()> {
    static SUPPORT: EmptyPathSupport = EmptyPathSupport::new();
    let path = proc_fd_path(fd);
    SUPPORT.run(
        // SAFETY: fchmodat2 reads the NUL-terminated empty name, a static; the rest are values.
        || unsafe {
            libc::syscall(
                libc::SYS_fchmodat2,
                fd.as_raw_fd(),
                c"".as_ptr(),
                mode,
                libc::AT_EMPTY_PATH,
            ) as libc::c_int
        },
        // SAFETY: `path` is NUL-terminated and outlives the call.
        || unsafe { libc::fchmodat(libc::AT_FDCWD, path.as_ptr(), mode, 0) },
    )
}

/// One time argument of [`set_times_fd`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeArg {
    /// Leave it (`UTIME_OMIT`).
    Omit,
    /// The current time (`UTIME_NOW`).
    Now,
    /// This time; `nsec` must be below 10^9.
    At(TimeSpec),
}

impl TimeArg {
    fn timespec(self) -> libc::timespec {
        let (tv_sec, tv_nsec) = match self {
            TimeArg::Omit => (0, libc::UTIME_OMIT),
            TimeArg::Now => (0, libc::UTIME_NOW),
            TimeArg::At(t) => (t.sec, libc::c_long::from(t.nsec)),
        };
        libc::timespec { tv_sec, tv_nsec }
    }
}

/// `utimensat(2)` of the object `fd` refers to (any descriptor, `O_PATH` included), with
/// `AT_EMPTY_PATH` where the kernel takes it, else through `/proc/self/fd/N`: either way, for an
/// `O_PATH` descriptor of a symlink it sets the times of the link itself, never of its target. The
/// kernel's rules apply to the calling thread: setting both times to [`TimeArg::Now`] needs write
/// permission or ownership, anything else needs ownership.
pub fn set_times_fd(fd: BorrowedFd<'_>, atime: TimeArg, mtime: TimeArg) -> io::Result<()> {
    static SUPPORT: EmptyPathSupport = EmptyPathSupport::new();
    let path = proc_fd_path(fd);
    let times = [atime.timespec(), mtime.timespec()];
    SUPPORT.run(
        // SAFETY: the empty name is a NUL-terminated static; `times` is an array of two
        // timespecs, as required, and outlives the call.
        || unsafe {
            libc::utimensat(
                fd.as_raw_fd(),
                c"".as_ptr(),
                times.as_ptr(),
                libc::AT_EMPTY_PATH,
            )
        },
        // SAFETY: `path` is NUL-terminated; `times` as above; both outlive the call.
        || unsafe { libc::utimensat(libc::AT_FDCWD, path.as_ptr(), times.as_ptr(), 0) },
    )
}

// ---------------------------------------------------------------------------------------------------
// Attributes

/// Seconds and nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeSpec {
    pub sec: i64,
    pub nsec: u32,
}

/// The fields of `struct stat` rnfsd uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub dev: u64,
    pub ino: u64,
    /// File type and permission bits (`st_mode`).
    pub mode: u32,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub size: u64,
    /// Allocated 512-byte blocks.
    pub blocks: u64,
    pub blksize: u64,
    pub atime: TimeSpec,
    pub mtime: TimeSpec,
    pub ctime: TimeSpec,
}

impl Stat {
    /// The `S_IFMT` part of `mode`.
    pub fn file_type(&self) -> u32 {
        self.mode & libc::S_IFMT
    }

    pub fn is_dir(&self) -> bool {
        self.file_type() == libc::S_IFDIR
    }

    fn from_raw(s: &libc::stat) -> Stat {
        let ts = |sec: i64, nsec: i64| TimeSpec {
            sec,
            nsec: u32::try_from(nsec).unwrap_or(0),
        };
        Stat {
            dev: s.st_dev,
            ino: s.st_ino,
            mode: s.st_mode,
            nlink: s.st_nlink,
            uid: s.st_uid,
            gid: s.st_gid,
            rdev: s.st_rdev,
            size: u64::try_from(s.st_size).unwrap_or(0),
            blocks: u64::try_from(s.st_blocks).unwrap_or(0),
            blksize: u64::try_from(s.st_blksize).unwrap_or(0),
            atime: ts(s.st_atime, s.st_atime_nsec),
            mtime: ts(s.st_mtime, s.st_mtime_nsec),
            ctime: ts(s.st_ctime, s.st_ctime_nsec),
        }
    }
}

/// `fstat(2)`; works on `O_PATH` descriptors and needs no permission on the object.
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<Stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is writable storage for one `struct stat`.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded, so the kernel filled `st` completely.
    Ok(Stat::from_raw(unsafe { st.assume_init_ref() }))
}

/// `fstatat(2)` of `name` relative to `dirfd` (pass `AT_SYMLINK_NOFOLLOW` not to follow a trailing
/// symlink).
pub fn fstatat(dirfd: BorrowedFd<'_>, name: &CStr, flags: libc::c_int) -> io::Result<Stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `name` is NUL-terminated; `st` is writable storage for one `struct stat`.
    cvt(unsafe { libc::fstatat(dirfd.as_raw_fd(), name.as_ptr(), st.as_mut_ptr(), flags) })?;
    // SAFETY: fstatat succeeded, so the kernel filled `st` completely.
    Ok(Stat::from_raw(unsafe { st.assume_init_ref() }))
}

/// The fields of `struct statvfs` rnfsd uses. Block counts are in units of `frsize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatVfs {
    pub bsize: u64,
    pub frsize: u64,
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub favail: u64,
    pub namemax: u64,
}

/// `fstatvfs(3)`; works on `O_PATH` descriptors.
pub fn fstatvfs(fd: BorrowedFd<'_>) -> io::Result<StatVfs> {
    let mut st = MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `st` is writable storage for one `struct statvfs`.
    cvt(unsafe { libc::fstatvfs(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstatvfs succeeded, so `st` is filled.
    let s = unsafe { st.assume_init_ref() };
    Ok(StatVfs {
        bsize: s.f_bsize,
        frsize: s.f_frsize,
        blocks: s.f_blocks,
        bfree: s.f_bfree,
        bavail: s.f_bavail,
        files: s.f_files,
        ffree: s.f_ffree,
        favail: s.f_favail,
        namemax: s.f_namemax,
    })
}

/// The magic number of the file system `fd` is on (`f_type` of `fstatfs(2)`, e.g. `0xEF53` for
/// ext2/3/4); works on `O_PATH` descriptors.
pub fn fs_type(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut st = MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `st` is writable storage for one `struct statfs`.
    cvt(unsafe { libc::fstatfs(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstatfs succeeded, so `st` is filled.
    let s = unsafe { st.assume_init_ref() };
    // f_type is a signed word on some targets; the magic numbers are its bit pattern.
    #[allow(clippy::cast_sign_loss, clippy::unnecessary_cast)]
    Ok(s.f_type as u64 & 0xFFFF_FFFF)
}

/// `fpathconf(3)`: `Ok(None)` when the limit is indeterminate.
pub fn fpathconf(fd: BorrowedFd<'_>, name: libc::c_int) -> io::Result<Option<i64>> {
    // SAFETY: __errno_location returns this thread's errno slot; clearing it lets us tell "no
    // limit" (-1, errno untouched) from failure (-1, errno set).
    unsafe { *libc::__errno_location() = 0 };
    // SAFETY: plain call with a descriptor and an integer.
    let r = unsafe { libc::fpathconf(fd.as_raw_fd(), name) };
    if r == -1 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(0) {
            Ok(None)
        } else {
            Err(e)
        };
    }
    Ok(Some(r))
}

/// `readlinkat(2)`: the target of symlink `name` relative to `dirfd`; with `name` = `""` that of the
/// `O_PATH` symlink descriptor `dirfd` itself.
pub fn readlinkat(dirfd: BorrowedFd<'_>, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    loop {
        // SAFETY: `name` is NUL-terminated; `buf` is writable for `buf.len()` bytes.
        let n = unsafe {
            libc::readlinkat(
                dirfd.as_raw_fd(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        if n < buf.len() {
            buf.truncate(n);
            return Ok(buf);
        }
        // Possibly truncated: retry with room to spare (targets are bounded by the file system).
        if buf.len() >= 1 << 20 {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        buf.resize(buf.len() * 2, 0);
    }
}

/// `faccessat2(2)`: whether the object passes an access check for `mode` (`R_OK`/`W_OK`/`X_OK`).
/// With `AT_EACCESS` the check uses the thread's fsuid/fsgid and groups (without it, the *real* ids,
/// which for rnfsd are root's). With `AT_EMPTY_PATH` and `name` = `""` it checks `dirfd` itself.
pub fn faccessat2(
    dirfd: BorrowedFd<'_>,
    name: &CStr,
    mode: libc::c_int,
    flags: libc::c_int,
) -> io::Result<()> {
    // SAFETY: raw system call with a descriptor, a NUL-terminated path that outlives the call and two
    // integers, matching the kernel's faccessat2 signature.
    cvt_long(unsafe {
        libc::syscall(
            libc::SYS_faccessat2,
            dirfd.as_raw_fd(),
            name.as_ptr(),
            mode,
            flags,
        )
    })?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Data

/// `pread(2)` once into `buf` (may return fewer bytes; 0 at end of file). Retries `EINTR`.
pub fn pread(fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let off = i64::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    loop {
        // SAFETY: `buf` is writable for `buf.len()` bytes for the duration of the call.
        let n = unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), off) };
        match usize::try_from(n) {
            Ok(n) => return Ok(n),
            Err(_) => {
                let e = io::Error::last_os_error();
                if !is_eintr(&e) {
                    return Err(e);
                }
            }
        }
    }
}

/// `pread(2)` once into the spare capacity of `buf` (without zero-filling it first), at most `max`
/// bytes, appending what was read. Reads nothing when `buf` has no spare capacity. Retries `EINTR`.
pub fn pread_append(
    fd: BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    max: usize,
    offset: u64,
) -> io::Result<usize> {
    let off = i64::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let spare = buf.spare_capacity_mut();
    let want = spare.len().min(max);
    if want == 0 {
        return Ok(0);
    }
    let n = loop {
        // SAFETY: `spare` is writable for `want <= spare.len()` bytes; the kernel only writes there.
        let n = unsafe { libc::pread(fd.as_raw_fd(), spare.as_mut_ptr().cast(), want, off) };
        match usize::try_from(n) {
            Ok(n) => break n.min(want),
            Err(_) => {
                let e = io::Error::last_os_error();
                if !is_eintr(&e) {
                    return Err(e);
                }
            }
        }
    };
    let len = buf.len() + n;
    // SAFETY: the kernel initialised the first `n` spare bytes, and `len` is within the capacity.
    unsafe { buf.set_len(len) };
    Ok(n)
}

/// A file offset or length as the kernel's `loff_t`/`off_t`; one beyond it is `EFBIG`, as the
/// kernel answers for a file grown past its limit.
fn file_offset(v: u64) -> io::Result<i64> {
    i64::try_from(v).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))
}

/// `pwrite(2)` once from `buf` (may write fewer bytes). Retries `EINTR`.
pub fn pwrite(fd: BorrowedFd<'_>, buf: &[u8], offset: u64) -> io::Result<usize> {
    let off = file_offset(offset)?;
    loop {
        // SAFETY: `buf` is readable for `buf.len()` bytes for the duration of the call.
        let n = unsafe { libc::pwrite(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), off) };
        match usize::try_from(n) {
            Ok(n) => return Ok(n.min(buf.len())),
            Err(_) => {
                let e = io::Error::last_os_error();
                if !is_eintr(&e) {
                    return Err(e);
                }
            }
        }
    }
}

/// Writes all of `buf` at `offset` with as many `pwrite(2)` calls as it takes. Returns the number
/// written: all of `buf`, or fewer when an error struck after some bytes were written (the error
/// then repeats on the next call, e.g. `ENOSPC`). An error before any byte was written is returned.
pub fn pwrite_all(fd: BorrowedFd<'_>, buf: &[u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let at = offset
            .checked_add(done as u64)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EFBIG))?;
        match pwrite(fd, &buf[done..], at) {
            Ok(0) => return Err(io::Error::from_raw_os_error(libc::EIO)),
            Ok(n) => done += n,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(done)
}

/// `ftruncate(2)`: the descriptor must be open for writing; no permission check is made on the
/// object (the kernel does clear set-user-id bits as for a write by the calling thread).
pub fn ftruncate(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    let len = file_offset(len)?;
    // SAFETY: plain call with a descriptor and an integer.
    retry(|| unsafe { libc::ftruncate(fd.as_raw_fd(), len) })?;
    Ok(())
}

/// `fsync(2)`: data and metadata to stable storage. Reports write-back errors that happened since
/// this *open file description* was opened (and were not yet reported through it), not earlier ones.
pub fn fsync(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: plain call with a descriptor.
    retry(|| unsafe { libc::fsync(fd.as_raw_fd()) })?;
    Ok(())
}

/// `fdatasync(2)`: data and the metadata needed to read it back; same error reporting as [`fsync`].
pub fn fdatasync(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: plain call with a descriptor.
    retry(|| unsafe { libc::fdatasync(fd.as_raw_fd()) })?;
    Ok(())
}

/// `sync_file_range(fd, offset, len, SYNC_FILE_RANGE_WRITE)`: starts write-back of the range's
/// dirty pages that are not under write-back already, and does not wait for it. Consumes no
/// write-back error: a later `fsync` through the same open file still reports them (errseq).
pub fn start_writeback(fd: BorrowedFd<'_>, offset: u64, len: u64) -> io::Result<()> {
    let (offset, len) = (file_offset(offset)?, file_offset(len)?);
    // SAFETY: plain call with a descriptor and integers.
    retry(|| unsafe {
        libc::sync_file_range(fd.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
    })?;
    Ok(())
}

/// How many pages of the file's `[offset, offset + len)` are dirty in the page cache
/// (`cachestat(2)`, Linux 6.5; `ENOSYS` before).
pub fn dirty_pages(fd: BorrowedFd<'_>, offset: u64, len: u64) -> io::Result<u64> {
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct CacheStat {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }
    // The same number on every architecture (system calls added since 5.x share one table).
    const SYS_CACHESTAT: libc::c_long = 451;
    let range = Range { off: offset, len };
    let mut stat = CacheStat::default();
    // SAFETY: `range` and `stat` are live, properly laid out (repr(C), the kernel's struct
    // cachestat_range and struct cachestat) and writable for the call; flags must be 0.
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            fd.as_raw_fd(),
            &range as *const Range,
            &mut stat as *mut CacheStat,
            0 as libc::c_uint,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stat.nr_dirty)
}

/// `fallocate(2)`: `mode` 0 allocates (and may extend the file), `FALLOC_FL_PUNCH_HOLE |
/// FALLOC_FL_KEEP_SIZE` deallocates. The descriptor must be open for writing; the kernel checks
/// nothing else against the calling thread but quotas and reserved blocks. Retries `EINTR`.
pub fn fallocate(fd: BorrowedFd<'_>, mode: libc::c_int, offset: u64, len: u64) -> io::Result<()> {
    let (offset, len) = (file_offset(offset)?, file_offset(len)?);
    // SAFETY: plain call with a descriptor and integers.
    retry(|| unsafe { libc::fallocate(fd.as_raw_fd(), mode, offset, len) })?;
    Ok(())
}

/// `copy_file_range(2)` once: up to `len` bytes from `src` at `src_off` to `dst` at `dst_off`,
/// within the kernel (no user-space buffer; a reflink or a server-side copy where the file system
/// offers one). Returns the bytes copied: fewer than `len` is a short copy (the caller loops), 0
/// is the end of `src`. `dst` must be open for writing and must not be opened with `O_APPEND`.
/// Retries `EINTR`.
pub fn copy_file_range(
    src: BorrowedFd<'_>,
    src_off: u64,
    dst: BorrowedFd<'_>,
    dst_off: u64,
    len: usize,
) -> io::Result<usize> {
    let mut src_off = file_offset(src_off)?;
    let mut dst_off = file_offset(dst_off)?;
    loop {
        // SAFETY: both offsets are valid `loff_t`s owned by this frame for the call's duration;
        // the descriptors are borrowed, so they stay open until it returns.
        let n = unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                &mut src_off,
                dst.as_raw_fd(),
                &mut dst_off,
                len,
                0,
            )
        };
        match usize::try_from(n) {
            Ok(n) => return Ok(n.min(len)),
            Err(_) => {
                let e = io::Error::last_os_error();
                if !is_eintr(&e) {
                    return Err(e);
                }
            }
        }
    }
}

/// `ioctl(FICLONERANGE)`: makes `len` bytes of `dst` at `dst_off` share the blocks of `src` at
/// `src_off` (a reflink; `len` 0 means to the end of `src`). File systems without shared extents
/// say `EOPNOTSUPP` (ext4, tmpfs), different file systems `EXDEV`, offsets or a length not aligned
/// to the block size `EINVAL`.
pub fn clone_range(
    src: BorrowedFd<'_>,
    src_off: u64,
    dst: BorrowedFd<'_>,
    dst_off: u64,
    len: u64,
) -> io::Result<()> {
    let arg = libc::file_clone_range {
        src_fd: i64::from(src.as_raw_fd()),
        src_offset: src_off,
        src_length: len,
        dest_offset: dst_off,
    };
    // SAFETY: FICLONERANGE reads one `file_clone_range`, which lives in this frame for the call.
    retry(|| unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONERANGE, &arg) })?;
    Ok(())
}

/// `lseek(2)`.
pub fn lseek(fd: BorrowedFd<'_>, offset: i64, whence: libc::c_int) -> io::Result<i64> {
    // SAFETY: plain call with a descriptor and integers.
    let r = unsafe { libc::lseek(fd.as_raw_fd(), offset, whence) };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

// ---------------------------------------------------------------------------------------------------
// Directories

/// `getdents64(2)`: fills `buf` with `linux_dirent64` records from the directory's current position
/// (parse them with [`dirents`]); 0 at the end of the directory.
pub fn getdents64(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is writable for `buf.len()` bytes; the kernel writes whole records only.
        let r = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                fd.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        match cvt_long(r) {
            Ok(n) => return Ok(usize::try_from(n).unwrap_or(0).min(buf.len())),
            Err(e) if is_eintr(&e) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// One `linux_dirent64` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dirent<'a> {
    pub ino: u64,
    /// The position just after this entry: `lseek` to it to continue with the next one.
    pub off: i64,
    /// `DT_*`, or `DT_UNKNOWN`.
    pub d_type: u8,
    /// The name, without its NUL terminator.
    pub name: &'a [u8],
}

/// Iterator over the records [`getdents64`] wrote. Stops at the first malformed record.
#[derive(Debug, Clone)]
pub struct Dirents<'a> {
    buf: &'a [u8],
}

/// Parses records from `buf`, which must be exactly the bytes [`getdents64`] reported.
pub fn dirents(buf: &[u8]) -> Dirents<'_> {
    Dirents { buf }
}

impl<'a> Iterator for Dirents<'a> {
    type Item = Dirent<'a>;

    fn next(&mut self) -> Option<Dirent<'a>> {
        // Layout: d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name[] (NUL-terminated, padded).
        const HEADER: usize = 19;
        let b = self.buf;
        if b.len() < HEADER {
            return None;
        }
        let ino = u64::from_ne_bytes(b[0..8].try_into().ok()?);
        let off = i64::from_ne_bytes(b[8..16].try_into().ok()?);
        let reclen = usize::from(u16::from_ne_bytes(b[16..18].try_into().ok()?));
        if reclen <= HEADER || reclen > b.len() {
            self.buf = &[];
            return None;
        }
        let raw_name = &b[HEADER..reclen];
        let name_len = raw_name
            .iter()
            .position(|&c| c == 0)
            .unwrap_or(raw_name.len());
        self.buf = &b[reclen..];
        Some(Dirent {
            ino,
            off,
            d_type: b[18],
            name: &raw_name[..name_len],
        })
    }
}

// ---------------------------------------------------------------------------------------------------
// Thread file-system context

/// `unshare(CLONE_FS)`: gives the calling thread its own copy of the root directory, current
/// directory and umask, so that [`umask`] afterwards affects this thread only. Threads it creates
/// later inherit the copy.
pub fn unshare_fs() -> io::Result<()> {
    // SAFETY: plain call with a flag; CLONE_FS only copies the thread's fs_struct.
    cvt(unsafe { libc::unshare(libc::CLONE_FS) })?;
    Ok(())
}

/// `umask(2)`: sets the file mode creation mask of the calling thread's fs context (shared with the
/// whole process unless [`unshare_fs`] was called) and returns the previous one.
pub fn umask(mask: libc::mode_t) -> libc::mode_t {
    // SAFETY: plain call with an integer; it cannot fail.
    unsafe { libc::umask(mask) }
}

/// Gives the allocator's free memory back to the kernel (glibc `malloc_trim(0)`): after a burst of
/// large requests, freed buffers otherwise stay in each thread's arena and count in the resident
/// set. Walks every arena, so call it when the process is quiet. Elsewhere than glibc it does
/// nothing. Returns whether any memory was released.
pub fn release_free_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim(3) takes a pad size and only touches the allocator's own state,
        // under the allocator's own locks; any thread may call it at any time.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// This process's soft limit on open files.
pub fn open_files_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit for getrlimit to fill.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    Ok(lim.rlim_cur)
}

/// `CLOCK_MONOTONIC` in microseconds: the clock systemd's `MONOTONIC_USEC=` notification names
/// (`std::time::Instant` reads it too, but does not say its value).
pub fn monotonic_usec() -> io::Result<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for clock_gettime to fill.
    cvt(unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) })?;
    let secs = u64::try_from(ts.tv_sec).map_err(io::Error::other)?;
    let nanos = u64::try_from(ts.tv_nsec).map_err(io::Error::other)?;
    Ok(secs.saturating_mul(1_000_000).saturating_add(nanos / 1000))
}

/// Raises this process's soft limit on open files to its hard limit (the open-file cache and the
/// loan pipes need more than the usual 1024). Returns the new soft limit.
pub fn raise_open_files_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit for getrlimit to fill.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: `lim` is a valid rlimit; raising the soft limit up to the hard one needs no privilege.
        cvt(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) })?;
    }
    Ok(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn open_path(p: &std::path::Path) -> OwnedFd {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH)
            .open(p)
            .unwrap()
            .into()
    }

    #[test]
    fn handle_round_trip_and_stat() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"hello").unwrap();
        let d = open_path(dir.path());
        let f = openat(d.as_fd(), c"f", libc::O_PATH | libc::O_NOFOLLOW, 0).unwrap();
        let (h, mnt) = fd_to_handle(f.as_fd()).unwrap();
        let (h2, mnt2) = name_to_handle_at(d.as_fd(), c"f", 0).unwrap();
        assert_eq!((h.clone(), mnt), (h2, mnt2));
        assert_eq!(
            open_by_handle_at(d.as_fd(), &h, libc::O_PATH)
                .unwrap_err()
                .raw_os_error(),
            Some(libc::EBADF)
        );
        let m = reopen(d.as_fd(), libc::O_RDONLY | libc::O_DIRECTORY).unwrap();
        let g = open_by_handle_at(m.as_fd(), &h, libc::O_PATH).unwrap();
        let (a, b) = (fstat(f.as_fd()).unwrap(), fstat(g.as_fd()).unwrap());
        assert_eq!((a.dev, a.ino, a.size), (b.dev, b.ino, 5));
        assert_eq!(
            fstatat(d.as_fd(), c"f", libc::AT_SYMLINK_NOFOLLOW)
                .unwrap()
                .ino,
            a.ino
        );

        let r = reopen(g.as_fd(), libc::O_RDONLY).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(pread(r.as_fd(), &mut buf, 1).unwrap(), 4);
        assert_eq!(&buf[..4], b"ello");
        let mut v = Vec::with_capacity(4);
        assert_eq!(pread_append(r.as_fd(), &mut v, 3, 0).unwrap(), 3);
        assert_eq!(v, b"hel");
        assert_eq!(pread_append(r.as_fd(), &mut v, 9, 3).unwrap(), 1);
        assert_eq!(v, b"hell");
        faccessat2(
            g.as_fd(),
            c"",
            libc::R_OK,
            libc::AT_EACCESS | libc::AT_EMPTY_PATH,
        )
        .unwrap();
        assert!(fstatvfs(d.as_fd()).unwrap().blocks > 0);
    }

    #[test]
    fn copy_file_range_copies_and_clone_is_refused_without_reflink() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&a, &data).unwrap();
        let src: OwnedFd = std::fs::File::open(&a).unwrap().into();
        let dst: OwnedFd = std::fs::File::create(&b).unwrap().into();
        let mut done = 0;
        while done < data.len() {
            let n = copy_file_range(
                src.as_fd(),
                done as u64,
                dst.as_fd(),
                10 + done as u64,
                1 << 16,
            )
            .unwrap();
            assert!(n > 0);
            done += n;
        }
        // At the end of the source: 0.
        assert_eq!(
            copy_file_range(src.as_fd(), done as u64, dst.as_fd(), 0, 10).unwrap(),
            0
        );
        let back = std::fs::read(&b).unwrap();
        assert_eq!(&back[..10], &[0; 10]);
        assert_eq!(&back[10..], &data[..]);
        // ext4 and tmpfs (where tests run) have no shared extents; a reflinking file system would.
        match clone_range(src.as_fd(), 0, dst.as_fd(), 0, 0) {
            Ok(()) => assert_eq!(std::fs::read(&b).unwrap()[..data.len()], data[..]),
            Err(e) => assert!(
                matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP | libc::EXDEV | libc::EINVAL)
                ),
                "{e}"
            ),
        }
    }

    #[test]
    fn fallocate_punches_holes_that_seek_finds() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, vec![7u8; 1 << 20]).unwrap();
        let f: OwnedFd = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .unwrap()
            .into();
        let f = f.as_fd();
        fsync(f).unwrap();
        let before = fstat(f).unwrap().blocks;
        let punch = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        match fallocate(f, punch, 256 << 10, 512 << 10) {
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => return,
            r => r.unwrap(),
        }
        let after = fstat(f).unwrap();
        assert_eq!(after.size, 1 << 20);
        assert!(after.blocks < before, "{} -> {}", before, after.blocks);
        assert_eq!(lseek(f, 0, libc::SEEK_HOLE).unwrap(), 256 << 10);
        assert_eq!(lseek(f, 256 << 10, libc::SEEK_DATA).unwrap(), 768 << 10);
        let e = lseek(f, 1 << 20, libc::SEEK_DATA).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENXIO));
        let mut buf = [1u8; 8];
        pread(f, &mut buf, 300 << 10).unwrap();
        assert_eq!(buf, [0; 8]);
        fallocate(f, 0, 2 << 20, 4096).unwrap();
        assert_eq!(fstat(f).unwrap().size, (2 << 20) + 4096);
        assert!(fallocate(f, 0, u64::MAX, 1).is_err());
    }

    #[test]
    fn readlink_on_o_path_symlink() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("some/where", dir.path().join("l")).unwrap();
        let d = open_path(dir.path());
        let l = openat(d.as_fd(), c"l", libc::O_PATH | libc::O_NOFOLLOW, 0).unwrap();
        assert_eq!(readlinkat(l.as_fd(), c"").unwrap(), b"some/where");
        assert_eq!(readlinkat(d.as_fd(), c"l").unwrap(), b"some/where");
    }

    #[test]
    fn getdents_resumes_at_d_off() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..300 {
            std::fs::write(dir.path().join(format!("file-{i}")), b"").unwrap();
        }
        let d = reopen(
            open_path(dir.path()).as_fd(),
            libc::O_RDONLY | libc::O_DIRECTORY,
        )
        .unwrap();
        let mut buf = vec![0u8; 1024];
        let mut names = Vec::new();
        let mut cookie = 0i64;
        loop {
            lseek(d.as_fd(), cookie, libc::SEEK_SET).unwrap();
            let n = getdents64(d.as_fd(), &mut buf).unwrap();
            if n == 0 {
                break;
            }
            // Take only the first entry of each batch, to exercise resuming.
            let e = dirents(&buf[..n]).next().unwrap();
            names.push(String::from_utf8(e.name.to_vec()).unwrap());
            cookie = e.off;
        }
        names.sort();
        let mut want: Vec<String> = (0..300).map(|i| format!("file-{i}")).collect();
        want.push(".".into());
        want.push("..".into());
        want.sort();
        assert_eq!(names, want);
    }

    #[test]
    fn names_made_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let d = open_path(dir.path());
        mkdirat(d.as_fd(), c"sub", 0o755).unwrap();
        assert_eq!(
            mkdirat(d.as_fd(), c"sub", 0o755)
                .unwrap_err()
                .raw_os_error(),
            Some(libc::EEXIST)
        );
        symlinkat(c"../../nowhere", d.as_fd(), c"l").unwrap();
        assert_eq!(readlinkat(d.as_fd(), c"l").unwrap(), b"../../nowhere");
        mknodat(d.as_fd(), c"fifo", libc::S_IFIFO | 0o600, 0).unwrap();
        assert_eq!(
            fstatat(d.as_fd(), c"fifo", 0).unwrap().file_type(),
            libc::S_IFIFO
        );
        std::fs::write(dir.path().join("a"), b"a").unwrap();
        std::fs::write(dir.path().join("b"), b"b").unwrap();
        // Plain rename replaces the target.
        renameat2(d.as_fd(), c"a", d.as_fd(), c"b", 0).unwrap();
        assert_eq!(std::fs::read(dir.path().join("b")).unwrap(), b"a");
        assert!(!dir.path().join("a").exists());
        linkat(d.as_fd(), c"b", d.as_fd(), c"b2", 0).unwrap();
        assert_eq!(fstatat(d.as_fd(), c"b", 0).unwrap().nlink, 2);
        // Linking an O_PATH descriptor through /proc, without CAP_DAC_READ_SEARCH's AT_EMPTY_PATH.
        let f = openat(d.as_fd(), c"b", libc::O_PATH, 0).unwrap();
        link_fd(f.as_fd(), d.as_fd(), c"b3").unwrap();
        assert_eq!(fstat(f.as_fd()).unwrap().nlink, 3);
        // A symlink is linked itself, not followed.
        let l = openat(d.as_fd(), c"l", libc::O_PATH | libc::O_NOFOLLOW, 0).unwrap();
        link_fd(l.as_fd(), d.as_fd(), c"l2").unwrap();
        assert_eq!(readlinkat(d.as_fd(), c"l2").unwrap(), b"../../nowhere");
        unlinkat(d.as_fd(), c"b2", 0).unwrap();
        assert_eq!(
            unlinkat(d.as_fd(), c"sub", 0).unwrap_err().raw_os_error(),
            Some(libc::EISDIR)
        );
        unlinkat(d.as_fd(), c"sub", libc::AT_REMOVEDIR).unwrap();
        // An object without links cannot be linked back.
        unlinkat(d.as_fd(), c"b", 0).unwrap();
        unlinkat(d.as_fd(), c"b3", 0).unwrap();
        assert_eq!(
            link_fd(f.as_fd(), d.as_fd(), c"back")
                .unwrap_err()
                .raw_os_error(),
            Some(libc::ENOENT)
        );
    }

    #[test]
    fn attributes_through_o_path() {
        let dir = tempfile::tempdir().unwrap();
        let d = open_path(dir.path());
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        std::os::unix::fs::symlink("f", dir.path().join("l")).unwrap();
        let f = openat(d.as_fd(), c"f", libc::O_PATH, 0).unwrap();
        let l = openat(d.as_fd(), c"l", libc::O_PATH | libc::O_NOFOLLOW, 0).unwrap();
        chmod_fd(f.as_fd(), 0o4711).unwrap();
        assert_eq!(fstat(f.as_fd()).unwrap().mode & 0o7777, 0o4711);
        fchownat(f.as_fd(), c"", Some(1234), None, libc::AT_EMPTY_PATH).unwrap();
        let st = fstat(f.as_fd()).unwrap();
        assert_eq!((st.uid, st.gid), (1234, 0));
        fchownat(l.as_fd(), c"", None, Some(99), libc::AT_EMPTY_PATH).unwrap();
        assert_eq!(fstat(l.as_fd()).unwrap().gid, 99);
        assert_eq!(fstat(f.as_fd()).unwrap().gid, 0, "the target is untouched");

        let t = |sec| TimeArg::At(TimeSpec { sec, nsec: 5 });
        set_times_fd(f.as_fd(), t(1000), t(2000)).unwrap();
        let st = fstat(f.as_fd()).unwrap();
        assert_eq!((st.atime.sec, st.mtime.sec, st.mtime.nsec), (1000, 2000, 5));
        // On a symlink's O_PATH descriptor: the link's times change, the target's do not.
        set_times_fd(l.as_fd(), TimeArg::Omit, t(3000)).unwrap();
        assert_eq!(fstat(l.as_fd()).unwrap().mtime.sec, 3000);
        let st = fstat(f.as_fd()).unwrap();
        assert_eq!((st.atime.sec, st.mtime.sec), (1000, 2000));
        set_times_fd(f.as_fd(), TimeArg::Now, TimeArg::Omit).unwrap();
        let st = fstat(f.as_fd()).unwrap();
        assert!(st.atime.sec > 1_600_000_000 && st.mtime.sec == 2000);
    }

    #[test]
    fn write_truncate_sync() {
        let dir = tempfile::tempdir().unwrap();
        let d = open_path(dir.path());
        let f = openat(
            d.as_fd(),
            c"f",
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
            0o600,
        )
        .unwrap();
        assert_eq!(pwrite_all(f.as_fd(), b"hello", 1 << 20).unwrap(), 5);
        fdatasync(f.as_fd()).unwrap();
        let st = fstat(f.as_fd()).unwrap();
        assert_eq!(st.size, (1 << 20) + 5);
        assert!(st.blocks * 512 < 1 << 20, "a hole, not zeros");
        let mut buf = [1u8; 4];
        assert_eq!(pread(f.as_fd(), &mut buf, 0).unwrap(), 4);
        assert_eq!(buf, [0; 4]);
        ftruncate(f.as_fd(), 3).unwrap();
        fsync(f.as_fd()).unwrap();
        assert_eq!(fstat(f.as_fd()).unwrap().size, 3);
        assert_eq!(pwrite(f.as_fd(), b"", 0).unwrap(), 0);
        assert_eq!(
            pwrite_all(f.as_fd(), b"x", u64::MAX)
                .unwrap_err()
                .raw_os_error(),
            Some(libc::EFBIG)
        );
        // Not open for writing.
        let r = reopen(f.as_fd(), libc::O_RDONLY).unwrap();
        assert_eq!(
            pwrite_all(r.as_fd(), b"x", 0).unwrap_err().raw_os_error(),
            Some(libc::EBADF)
        );
        assert!(ftruncate(r.as_fd(), 0).is_err());
    }

    #[test]
    fn umask_is_per_thread_after_unshare() {
        fn thread_umask() -> u32 {
            let s = std::fs::read_to_string("/proc/thread-self/status").unwrap();
            let line = s.lines().find(|l| l.starts_with("Umask:")).unwrap();
            u32::from_str_radix(line["Umask:".len()..].trim(), 8).unwrap()
        }
        let before = thread_umask();
        std::thread::spawn(move || {
            unshare_fs().unwrap();
            let old = umask(0o077 ^ before);
            assert_eq!(old, before);
            assert_eq!(thread_umask(), 0o077 ^ before);
            let dir = tempfile::tempdir().unwrap();
            let d = open_path(dir.path());
            umask(0);
            mkdirat(d.as_fd(), c"open", 0o777).unwrap();
            assert_eq!(fstatat(d.as_fd(), c"open", 0).unwrap().mode & 0o777, 0o777);
        })
        .join()
        .unwrap();
        assert_eq!(
            thread_umask(),
            before,
            "other threads keep the process umask"
        );
    }

    #[test]
    fn pathconf_link_max() {
        let dir = tempfile::tempdir().unwrap();
        let d = open_path(dir.path());
        assert!(
            fpathconf(d.as_fd(), libc::_PC_LINK_MAX)
                .unwrap()
                .unwrap_or(1)
                > 0
        );
    }
}
