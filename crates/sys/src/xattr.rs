//! Extended attributes of the object a descriptor refers to (`getxattr(2)`, `setxattr(2)`,
//! `listxattr(2)`, `removexattr(2)`), for any descriptor, `O_PATH` ones included.
//!
//! The `f*xattr` calls refuse `O_PATH` descriptors (`EBADF`), which is what the storage backend
//! holds for most objects, so these go through `/proc/self/fd/N` (see [`super::reopen`]): a path
//! the kernel resolves with the calling thread's *current* credentials, landing on the very object
//! the descriptor refers to (for a symlink's `O_PATH` descriptor, the link itself). The kernel's
//! checks then apply to the caller: read permission to get a `user.` attribute, write permission
//! (and the sticky-directory rule) to set or remove one, `EPERM` on immutable files and on
//! `user.` attributes of anything but regular files and directories.
//!
//! Names are whole names, namespace included (`user.foo`); which namespace to use is the
//! caller's business.

use std::ffi::CStr;
use std::io;
use std::os::fd::BorrowedFd;

use super::{proc_fd_path, retry};

/// How `setxattr` treats an existing attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetMode {
    /// Create or replace.
    Either,
    /// Fail with `EEXIST` if it exists.
    Create,
    /// Fail with `ENODATA` if it does not.
    Replace,
}

/// Longest list of names the kernel returns (`XATTR_LIST_MAX`).
pub const LIST_BYTES_MAX: usize = 65_536;

/// Runs a call returning a byte count or `-1`/errno, retrying `EINTR`.
fn retry_size(mut call: impl FnMut() -> libc::ssize_t) -> io::Result<usize> {
    loop {
        let r = call();
        match usize::try_from(r) {
            Ok(n) => return Ok(n),
            Err(_) => {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EINTR) {
                    return Err(e);
                }
            }
        }
    }
}

/// The value of attribute `name` into `buf`: its length. An empty `buf` asks only for the
/// length. A value longer than `buf` is `ERANGE`, a missing attribute `ENODATA`.
pub fn get(fd: BorrowedFd<'_>, name: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    let path = proc_fd_path(fd);
    retry_size(|| {
        // SAFETY: `path` and `name` are NUL-terminated and outlive the call; `buf` is writable for
        // `buf.len()` bytes (a null pointer with size 0 is what the kernel expects for "length
        // only", and an empty slice's dangling pointer is never written through).
        unsafe {
            libc::getxattr(
                path.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        }
    })
}

/// Sets attribute `name` to `value`.
pub fn set(fd: BorrowedFd<'_>, name: &CStr, value: &[u8], mode: SetMode) -> io::Result<()> {
    let path = proc_fd_path(fd);
    let flags = match mode {
        SetMode::Either => 0,
        SetMode::Create => libc::XATTR_CREATE,
        SetMode::Replace => libc::XATTR_REPLACE,
    };
    // SAFETY: `path` and `name` are NUL-terminated; `value` is readable for `value.len()` bytes;
    // all outlive the call.
    retry(|| unsafe {
        libc::setxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    })?;
    Ok(())
}

/// The NUL-separated names of every attribute the caller may see, into `buf`: their length. An
/// empty `buf` asks only for the length; a list longer than `buf` is `ERANGE`.
pub fn list(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    let path = proc_fd_path(fd);
    retry_size(|| {
        // SAFETY: `path` is NUL-terminated and outlives the call; `buf` is writable for
        // `buf.len()` bytes.
        unsafe { libc::listxattr(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) }
    })
}

/// Removes attribute `name` (`ENODATA` if there is none).
pub fn remove(fd: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    let path = proc_fd_path(fd);
    // SAFETY: `path` and `name` are NUL-terminated and outlive the call.
    retry(|| unsafe { libc::removexattr(path.as_ptr(), name.as_ptr()) })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn set_get_list_remove_on_a_path_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        let d: std::os::fd::OwnedFd = std::fs::File::open(dir.path()).unwrap().into();
        let fd = crate::openat(d.as_fd(), c"f", libc::O_PATH | libc::O_NOFOLLOW, 0).unwrap();
        let fd = fd.as_fd();
        match set(fd, c"user.k", b"v1", SetMode::Create) {
            // A file system without user xattrs: nothing more to see here.
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => return,
            r => r.unwrap(),
        }
        let e = set(fd, c"user.k", b"v2", SetMode::Create).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
        set(fd, c"user.k", b"v22", SetMode::Replace).unwrap();
        assert_eq!(get(fd, c"user.k", &mut []).unwrap(), 3);
        let mut small = [0u8; 2];
        let e = get(fd, c"user.k", &mut small).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ERANGE));
        let mut buf = [0u8; 8];
        let n = get(fd, c"user.k", &mut buf).unwrap();
        assert_eq!(&buf[..n], b"v22");
        let mut names = [0u8; 256];
        let n = list(fd, &mut names).unwrap();
        assert!(names[..n].split(|&b| b == 0).any(|n| n == b"user.k"));
        remove(fd, c"user.k").unwrap();
        let e = remove(fd, c"user.k").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENODATA));
        let e = set(fd, c"user.k", b"v", SetMode::Replace).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENODATA));
    }
}
