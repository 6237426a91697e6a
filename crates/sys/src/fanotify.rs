//! fanotify(7), only as far as being told that *something* on a file system was renamed or
//! removed: the events themselves are never parsed, only counted as "changed since".
//!
//! The local backend checks on every call that a cached descriptor's object is still inside its
//! export (a `readlinkat` of its path). A verdict can be reused while nothing on the file system
//! was renamed or unlinked since it was made: fanotify queues an event for every rename and
//! removal *before* the system call returns (the kernel's `fsnotify_move`/`fsnotify_delete` run
//! inside `vfs_rename`/`vfs_unlink`), so "no event queued" ([`ChangeWatch::pending_bytes`], one
//! `ioctl`) proves that no such change finished since the queue was last emptied.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::{cvt, is_eintr, owned};

/// One read of the event queue: events are a few dozen bytes, so this holds many.
const EVENT_BUFFER_BYTES: usize = 4096;

/// A fanotify group watching one file system for renames and removals (of files and directories).
#[derive(Debug)]
pub struct ChangeWatch {
    fd: OwnedFd,
}

impl ChangeWatch {
    /// Watches the whole file system that holds `path` (`FAN_MARK_FILESYSTEM`) for entries moved
    /// away (`FAN_MOVED_FROM`, every rename) and removed (`FAN_DELETE`), directories included.
    /// Needs `CAP_SYS_ADMIN` and Linux 5.9 (directory-entry events with `FAN_REPORT_DIR_FID`).
    pub fn renames_and_removals(path: &CStr) -> io::Result<ChangeWatch> {
        let init_flags = libc::FAN_CLOEXEC
            | libc::FAN_NONBLOCK
            | libc::FAN_CLASS_NOTIF
            | libc::FAN_REPORT_FID
            | libc::FAN_REPORT_DIR_FID;
        let event_flags = (libc::O_RDONLY | libc::O_CLOEXEC) as libc::c_uint;
        // SAFETY: fanotify_init takes two flag words and returns a new descriptor or -1.
        let fd = owned(cvt(unsafe {
            libc::fanotify_init(init_flags, event_flags)
        })?);
        let mask = libc::FAN_MOVED_FROM | libc::FAN_DELETE | libc::FAN_ONDIR;
        // SAFETY: `fd` is the fanotify group just made; `path` is NUL-terminated and outlives
        // the call; AT_FDCWD resolves a relative path as open(2) would.
        cvt(unsafe {
            libc::fanotify_mark(
                fd.as_raw_fd(),
                libc::FAN_MARK_ADD | libc::FAN_MARK_FILESYSTEM,
                mask,
                libc::AT_FDCWD,
                path.as_ptr(),
            )
        })?;
        Ok(ChangeWatch { fd })
    }

    /// Bytes of events waiting in the queue (`FIONREAD`): 0 means no rename or removal finished
    /// on the file system since the queue was last emptied.
    pub fn pending_bytes(&self) -> io::Result<usize> {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int through the pointer, which is valid for the call.
        cvt(unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::FIONREAD, &mut n) })?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Empties the queue without blocking, at most `reads_max` reads; returns the bytes taken.
    /// Several threads may call it at once: each takes distinct events.
    pub fn discard(&self, reads_max: usize) -> io::Result<usize> {
        let mut buf = [0u8; EVENT_BUFFER_BYTES];
        let mut taken = 0;
        for _ in 0..reads_max {
            // SAFETY: `buf` is writable for its whole length during the call.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            match usize::try_from(n) {
                Ok(0) => break,
                Ok(n) => taken += n,
                Err(_) => {
                    let e = io::Error::last_os_error();
                    match e.raw_os_error() {
                        Some(libc::EAGAIN) => break,
                        _ if is_eintr(&e) => continue,
                        _ => return Err(e),
                    }
                }
            }
        }
        Ok(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renames and removals are queued before the call that made them returns. (Only what must
    /// be seen is asserted: other processes may change the same file system meanwhile.)
    #[test]
    fn sees_renames_and_removals() {
        let dir = tempfile::tempdir().unwrap();
        let path = std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes()).unwrap();
        let watch = match ChangeWatch::renames_and_removals(&path) {
            Ok(w) => w,
            // Not root, or a kernel without directory-entry events: nothing to test here.
            Err(e) => return eprintln!("skipped: fanotify unavailable: {e}"),
        };
        std::fs::write(dir.path().join("a"), b"x").unwrap();
        let changes: [(&str, &dyn Fn()); 3] = [
            ("a rename", &|| {
                std::fs::rename(dir.path().join("a"), dir.path().join("b")).unwrap()
            }),
            ("a removed directory", &|| {
                std::fs::create_dir(dir.path().join("d")).unwrap();
                std::fs::remove_dir(dir.path().join("d")).unwrap();
            }),
            ("a removed file", &|| {
                std::fs::remove_file(dir.path().join("b")).unwrap()
            }),
        ];
        for (what, change) in changes {
            watch.discard(1024).unwrap();
            change();
            assert!(watch.pending_bytes().unwrap() > 0, "{what} is seen at once");
        }
        assert!(watch.discard(1024).unwrap() > 0);
    }
}
