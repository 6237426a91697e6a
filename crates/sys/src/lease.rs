//! File leases (`fcntl(2)` `F_SETLEASE`, `F_GETLEASE`): how the server learns that a local
//! process opens a file an NFSv4 client holds a delegation of, as Linux's nfsd does in the kernel.
//!
//! # Kernel behaviour callers must know
//! * A read lease (`F_RDLCK`) needs a descriptor open read-only, and is refused (`EAGAIN`) while
//!   anyone — this process included — has the file open for writing. It is broken by an open for
//!   writing or a truncate, by anyone, this process included.
//! * Breaking it sends the holder `SIGIO` (no `F_SETSIG` here) and makes the opener wait until
//!   the holder releases the lease or `/proc/sys/fs/lease-break-time` seconds pass, after which
//!   the kernel removes the lease itself. An opener with `O_NONBLOCK` is not made to wait: its
//!   open fails with `EWOULDBLOCK`, and the break starts all the same.
//! * `SIGIO`'s default action ends the process: install a handler before taking any lease.
//! * The lease goes with the open file description: closing the descriptor releases it.
//! * A write lease (`F_WRLCK`) needs the file open nowhere else (this process's other
//!   descriptors included) and is broken by any other open, for reading too.
//! * Taking a lease needs the file's owner as fsuid or `CAP_LEASE`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use crate::cvt;

/// Takes a read lease on `fd` (open read-only). `Ok(false)`: the file is open for writing
/// somewhere (`EAGAIN`), so no lease.
pub fn take_read_lease(fd: BorrowedFd<'_>) -> io::Result<bool> {
    // SAFETY: fcntl F_SETLEASE takes an int argument and touches no user memory.
    match cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETLEASE, libc::F_RDLCK) }) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Takes a write lease on `fd`: broken by any other open of the file, for reading too.
/// `Ok(false)`: the file is open elsewhere (`EAGAIN`; this process's other descriptors count).
pub fn take_write_lease(fd: BorrowedFd<'_>) -> io::Result<bool> {
    // SAFETY: fcntl F_SETLEASE takes an int argument and touches no user memory.
    match cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETLEASE, libc::F_WRLCK) }) {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EBUSY)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Releases the lease on `fd` (the descriptor stays open).
pub fn release_lease(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: fcntl F_SETLEASE takes an int argument and touches no user memory.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK) }).map(|_| ())
}

/// Whether the lease taken on `fd` (a write lease if `write`) still stands: `false` while it is
/// being broken (the kernel reports the type it is being broken to) and once the kernel removed
/// it.
pub fn lease_held(fd: BorrowedFd<'_>, write: bool) -> io::Result<bool> {
    // SAFETY: fcntl F_GETLEASE takes no argument and touches no user memory.
    let kind = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETLEASE) })?;
    Ok(kind == if write { libc::F_WRLCK } else { libc::F_RDLCK })
}

/// How long the kernel lets a lease holder take before it breaks the lease itself
/// (`/proc/sys/fs/lease-break-time`, seconds), in milliseconds; 45 s (the kernel's default)
/// when it cannot be read.
pub fn lease_break_ms() -> u64 {
    std::fs::read_to_string("/proc/sys/fs/lease-break-time")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map_or(45_000, |s| s.saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::fd::AsFd;

    /// Ignores SIGIO for this test process: a broken lease must not end it.
    fn ignore_sigio() {
        // SAFETY: installing SIG_IGN for SIGIO touches no memory of ours.
        unsafe {
            libc::signal(libc::SIGIO, libc::SIG_IGN);
        }
    }

    #[test]
    fn a_writer_breaks_a_read_lease_and_an_existing_writer_prevents_one() {
        ignore_sigio();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").unwrap();
        let reader = std::fs::File::open(&path).unwrap();
        if !take_read_lease(reader.as_fd()).unwrap_or(false) {
            // Not the file's owner and no CAP_LEASE: nothing to test here.
            return;
        }
        assert!(lease_held(reader.as_fd(), false).unwrap());
        // A non-blocking writer is refused at once, and the break starts.
        use std::os::unix::fs::OpenOptionsExt;
        let w = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path);
        assert_eq!(
            w.err().and_then(|e| e.raw_os_error()),
            Some(libc::EWOULDBLOCK)
        );
        assert!(!lease_held(reader.as_fd(), false).unwrap());
        drop(reader);
        // With a writer open, no read lease can be taken.
        let writer = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let reader = std::fs::File::open(&path).unwrap();
        assert!(!take_read_lease(reader.as_fd()).unwrap());
        drop(reader);
        // The only open description may take a write lease; a reader then breaks it.
        assert!(take_write_lease(writer.as_fd()).unwrap());
        assert!(lease_held(writer.as_fd(), true).unwrap());
        let r = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path);
        assert_eq!(
            r.err().and_then(|e| e.raw_os_error()),
            Some(libc::EWOULDBLOCK)
        );
        assert!(!lease_held(writer.as_fd(), true).unwrap());
        release_lease(writer.as_fd()).unwrap();
        // With another description open, no write lease.
        let other = std::fs::File::open(&path).unwrap();
        assert!(!take_write_lease(writer.as_fd()).unwrap());
        drop(other);
    }
}
