//! Open-file-description (OFD) byte-range locks: `fcntl(2)` with `F_OFD_SETLK` / `F_OFD_GETLK`.
//!
//! An OFD lock belongs to the *open file description* (one `open(2)`; `dup`s share it), not to the
//! process, so one server process can hold locks for many NFS lock owners by giving each owner its
//! own description of the file. OFD locks and classic POSIX (`F_SETLK`, `lockf`) locks live in the
//! same per-inode table and conflict with each other, which is what makes the server's locks visible
//! to local programs (SQLite, `lockf`) and theirs to NFS clients.
//!
//! # Kernel behaviour callers must know
//! * Locks held by one description never conflict with each other: taking a lock over a range the
//!   same description already holds replaces it (shared ↔ exclusive upgrade/downgrade in place), and
//!   unlocking part of a range splits it. Two descriptions of one file conflict like two processes.
//! * An OFD lock is released when the last descriptor referring to its description is closed (not
//!   on any `close` of the file by the process, as classic POSIX locks are).
//! * OFD locks also conflict with classic POSIX locks held by **this** process (the kernel treats the
//!   process's POSIX locks as another owner).
//! * An exclusive lock needs a description open for writing, a shared one a description open for
//!   reading; otherwise the kernel answers `EBADF` (an io error here, not [`Outcome::Denied`]).
//! * Only the non-blocking `F_OFD_SETLK` is used: no call here ever waits for a lock.
//!
//! # Ranges
//! Ranges come as NFS sends them: `start` and `len` as `u64`, `len == 0` meaning "to end of file"
//! (to the largest offset, whatever the file's size). The kernel takes `i64` offsets:
//! * a `start` above `i64::MAX` cannot be represented: the call fails with `EINVAL` (the caller maps
//!   it, e.g. to NLM4_FBIG or NFS4ERR_INVAL);
//! * a range whose last byte lies beyond `i64::MAX` is locked to end of file (`len` 0), as Linux's
//!   lockd does for NLM4 ranges past `OFFSET_MAX`.
//!
//! [`Conflict::len`] follows the same convention: 0 means the conflicting lock extends to end of
//! file.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use crate::retry;

/// The kind of a byte-range lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockKind {
    /// A read lock (`F_RDLCK`): any number may overlap.
    Shared,
    /// A write lock (`F_WRLCK`): overlaps nothing held by another owner.
    Exclusive,
}

impl LockKind {
    fn l_type(self) -> libc::c_short {
        match self {
            LockKind::Shared => libc::F_RDLCK as libc::c_short,
            LockKind::Exclusive => libc::F_WRLCK as libc::c_short,
        }
    }
}

/// What [`lock`] achieved.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The lock is held by the description.
    Granted,
    /// A conflicting lock is held by another description or process (`EAGAIN`/`EACCES`); nothing
    /// changed. Use [`get`] to describe the holder (racy: it may be gone already).
    Denied,
}

/// A lock that conflicts with a requested one, as [`get`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conflict {
    pub kind: LockKind,
    pub start: u64,
    /// 0: to end of file.
    pub len: u64,
    /// The holder's process id when it is a classic POSIX lock of a process visible in our pid
    /// namespace; `None` for an OFD lock (the kernel reports -1: a description has no process) or
    /// a process in another pid namespace (reported as 0).
    pub pid: Option<i32>,
}

/// Takes (or converts, on a range this description already holds) a `kind` lock over `len` bytes
/// from `start` (`len == 0`: to end of file) with `F_OFD_SETLK`. Never blocks.
///
/// Returns [`Outcome::Denied`] when another owner holds a conflicting lock. Io errors: `EBADF`
/// when the descriptor is not open for writing (exclusive) or reading (shared), `EINVAL` for a
/// `start` beyond `i64::MAX`, `ENOLCK` when the kernel is out of lock records.
pub fn lock(fd: BorrowedFd<'_>, kind: LockKind, start: u64, len: u64) -> io::Result<Outcome> {
    let fl = flock(kind.l_type(), start, len)?;
    match setlk(fd, &fl) {
        Ok(()) => Ok(Outcome::Granted),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) => {
            Ok(Outcome::Denied)
        }
        Err(e) => Err(e),
    }
}

/// Releases whatever this description holds within `len` bytes from `start` (`len == 0`: to end
/// of file); parts of locks outside the range stay. Unlocking a range not held is no error.
pub fn unlock(fd: BorrowedFd<'_>, start: u64, len: u64) -> io::Result<()> {
    let fl = flock(libc::F_UNLCK as libc::c_short, start, len)?;
    setlk(fd, &fl)
}

/// `F_OFD_GETLK`: the first lock of another owner (another description, or a process's classic
/// POSIX lock) that would conflict with a `kind` lock over the range, or `None` if the lock could
/// be taken now. Errors as for [`lock`] (`EBADF` is not reported for an access-mode mismatch: the
/// test needs no particular access mode).
pub fn get(
    fd: BorrowedFd<'_>,
    kind: LockKind,
    start: u64,
    len: u64,
) -> io::Result<Option<Conflict>> {
    let mut fl = flock(kind.l_type(), start, len)?;
    // SAFETY: F_OFD_GETLK reads and writes one `struct flock` through the pointer, which is valid
    // and exclusively borrowed for the call; `l_pid` is 0 as the kernel requires for OFD commands.
    retry(|| unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) })?;
    let kind = match libc::c_int::from(fl.l_type) {
        libc::F_UNLCK => return Ok(None),
        libc::F_RDLCK => LockKind::Shared,
        _ => LockKind::Exclusive,
    };
    Ok(Some(Conflict {
        kind,
        start: fl.l_start.max(0) as u64,
        len: fl.l_len.max(0) as u64,
        pid: (fl.l_pid > 0).then_some(fl.l_pid),
    }))
}

fn setlk(fd: BorrowedFd<'_>, fl: &libc::flock) -> io::Result<()> {
    // SAFETY: F_OFD_SETLK reads one `struct flock` through the pointer, which is valid for the
    // call; `l_pid` is 0 as the kernel requires for OFD commands.
    retry(|| unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, fl) })?;
    Ok(())
}

/// The kernel's (start, len) for an NFS range: see the module documentation.
fn kernel_range(start: u64, len: u64) -> io::Result<(i64, i64)> {
    let Ok(kstart) = i64::try_from(start) else {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    // A range whose last byte (start + len - 1) is i64::MAX or beyond is the same as one to EOF
    // (the kernel's OFFSET_MAX); every shorter one is representable as it is.
    let klen = if len <= (i64::MAX - kstart) as u64 {
        len as i64
    } else {
        0
    };
    Ok((kstart, klen))
}

fn flock(l_type: libc::c_short, start: u64, len: u64) -> io::Result<libc::flock> {
    let (l_start, l_len) = kernel_range(start, len)?;
    // SAFETY: `flock` is a plain C struct for which all-zero bytes are a valid value (and `l_pid`
    // must be 0 for OFD commands).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = l_type;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = l_start;
    fl.l_len = l_len;
    Ok(fl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::os::fd::{AsFd, OwnedFd};
    use std::path::Path;
    use std::process::{Child, Command, Stdio};
    use LockKind::{Exclusive, Shared};

    fn open(path: &Path, write: bool) -> OwnedFd {
        std::fs::OpenOptions::new()
            .read(true)
            .write(write)
            .open(path)
            .unwrap()
            .into()
    }

    /// A file and two descriptions of it (read-write).
    fn two_descriptions() -> (tempfile::NamedTempFile, OwnedFd, OwnedFd) {
        let file = tempfile::NamedTempFile::new().unwrap();
        let a = open(file.path(), true);
        let b = open(file.path(), true);
        (file, a, b)
    }

    #[test]
    fn kernel_range_mapping() {
        assert_eq!(kernel_range(5, 10).unwrap(), (5, 10));
        assert_eq!(kernel_range(5, 0).unwrap(), (5, 0));
        let max = i64::MAX as u64;
        assert_eq!(kernel_range(0, max).unwrap(), (0, i64::MAX));
        assert_eq!(kernel_range(1, max - 1).unwrap(), (1, i64::MAX - 1));
        assert_eq!(
            kernel_range(0, max + 1).unwrap(),
            (0, 0),
            "last byte i64::MAX: to EOF"
        );
        assert_eq!(
            kernel_range(0, max + 2).unwrap(),
            (0, 0),
            "past i64::MAX: to EOF"
        );
        assert_eq!(kernel_range(max, 1).unwrap(), (i64::MAX, 0));
        assert_eq!(kernel_range(max, 2).unwrap(), (i64::MAX, 0));
        assert_eq!(kernel_range(1, u64::MAX).unwrap(), (1, 0));
        assert_eq!(
            kernel_range(max + 1, 1).unwrap_err().raw_os_error(),
            Some(libc::EINVAL)
        );
    }

    #[test]
    fn exclusive_conflicts_shared_does_not() {
        let (_f, a, b) = two_descriptions();
        assert_eq!(lock(a.as_fd(), Exclusive, 0, 10).unwrap(), Outcome::Granted);
        assert_eq!(lock(b.as_fd(), Exclusive, 5, 10).unwrap(), Outcome::Denied);
        assert_eq!(lock(b.as_fd(), Shared, 9, 1).unwrap(), Outcome::Denied);
        unlock(a.as_fd(), 0, 10).unwrap();
        assert_eq!(lock(a.as_fd(), Shared, 0, 10).unwrap(), Outcome::Granted);
        assert_eq!(lock(b.as_fd(), Shared, 5, 10).unwrap(), Outcome::Granted);
        assert_eq!(lock(b.as_fd(), Exclusive, 5, 10).unwrap(), Outcome::Denied);
    }

    #[test]
    fn adjacent_ranges_do_not_conflict() {
        let (_f, a, b) = two_descriptions();
        assert_eq!(lock(a.as_fd(), Exclusive, 0, 10).unwrap(), Outcome::Granted);
        assert_eq!(
            lock(b.as_fd(), Exclusive, 10, 10).unwrap(),
            Outcome::Granted
        );
        assert_eq!(get(b.as_fd(), Exclusive, 10, 0).unwrap(), None);
        assert!(get(b.as_fd(), Exclusive, 9, 2).unwrap().is_some());
    }

    #[test]
    fn to_end_of_file() {
        let (_f, a, b) = two_descriptions();
        assert_eq!(
            lock(a.as_fd(), Exclusive, 100, 0).unwrap(),
            Outcome::Granted
        );
        assert_eq!(lock(b.as_fd(), Shared, 0, 100).unwrap(), Outcome::Granted);
        assert_eq!(
            lock(b.as_fd(), Shared, 1 << 40, 1).unwrap(),
            Outcome::Denied,
            "far beyond the file's size"
        );
        assert_eq!(
            lock(b.as_fd(), Shared, i64::MAX as u64, 1).unwrap(),
            Outcome::Denied
        );
        let c = get(b.as_fd(), Shared, 0, 0).unwrap().unwrap();
        assert_eq!((c.kind, c.start, c.len, c.pid), (Exclusive, 100, 0, None));
        // A range running past i64::MAX is to EOF too, and conflicts just the same.
        unlock(a.as_fd(), 0, 0).unwrap();
        unlock(b.as_fd(), 0, 0).unwrap();
        assert_eq!(
            lock(a.as_fd(), Exclusive, 50, u64::MAX - 10).unwrap(),
            Outcome::Granted
        );
        let c = get(b.as_fd(), Exclusive, 0, 0).unwrap().unwrap();
        assert_eq!((c.start, c.len), (50, 0));
    }

    #[test]
    fn unlock_releases() {
        let (_f, a, b) = two_descriptions();
        assert_eq!(lock(a.as_fd(), Exclusive, 0, 0).unwrap(), Outcome::Granted);
        assert_eq!(lock(b.as_fd(), Exclusive, 0, 1).unwrap(), Outcome::Denied);
        unlock(a.as_fd(), 0, 0).unwrap();
        assert_eq!(lock(b.as_fd(), Exclusive, 0, 1).unwrap(), Outcome::Granted);
        unlock(a.as_fd(), 0, 0).unwrap(); // nothing held: no error
    }

    #[test]
    fn closing_the_description_releases() {
        let (f, a, b) = two_descriptions();
        let a2 = a.try_clone().unwrap(); // dup: the same description
        assert_eq!(lock(a.as_fd(), Exclusive, 0, 0).unwrap(), Outcome::Granted);
        drop(a);
        assert_eq!(lock(b.as_fd(), Exclusive, 0, 1).unwrap(), Outcome::Denied);
        // Another description of the file in this process closing changes nothing either.
        drop(open(f.path(), false));
        assert_eq!(lock(b.as_fd(), Exclusive, 0, 1).unwrap(), Outcome::Denied);
        drop(a2);
        assert_eq!(lock(b.as_fd(), Exclusive, 0, 1).unwrap(), Outcome::Granted);
    }

    #[test]
    fn upgrade_and_downgrade_in_place() {
        let (_f, a, b) = two_descriptions();
        assert_eq!(lock(a.as_fd(), Shared, 0, 10).unwrap(), Outcome::Granted);
        assert_eq!(lock(a.as_fd(), Exclusive, 0, 10).unwrap(), Outcome::Granted);
        assert_eq!(lock(b.as_fd(), Shared, 0, 1).unwrap(), Outcome::Denied);
        assert_eq!(lock(a.as_fd(), Shared, 0, 10).unwrap(), Outcome::Granted);
        assert_eq!(lock(b.as_fd(), Shared, 0, 1).unwrap(), Outcome::Granted);
        // Upgrade refused while another description shares the range; the shared lock stays.
        assert_eq!(lock(a.as_fd(), Exclusive, 0, 10).unwrap(), Outcome::Denied);
        let c = get(b.as_fd(), Exclusive, 0, 10).unwrap().unwrap();
        assert_eq!((c.kind, c.start, c.len), (Shared, 0, 10));
    }

    #[test]
    fn partial_unlock_splits() {
        let (_f, a, b) = two_descriptions();
        assert_eq!(lock(a.as_fd(), Exclusive, 0, 30).unwrap(), Outcome::Granted);
        unlock(a.as_fd(), 10, 10).unwrap();
        assert_eq!(get(b.as_fd(), Exclusive, 10, 10).unwrap(), None);
        let c = get(b.as_fd(), Exclusive, 0, 15).unwrap().unwrap();
        assert_eq!((c.kind, c.start, c.len, c.pid), (Exclusive, 0, 10, None));
        let c = get(b.as_fd(), Shared, 15, 0).unwrap().unwrap();
        assert_eq!((c.kind, c.start, c.len), (Exclusive, 20, 10));
        assert_eq!(
            lock(b.as_fd(), Exclusive, 10, 10).unwrap(),
            Outcome::Granted
        );
    }

    #[test]
    fn get_reports_holder_range() {
        let (_f, a, b) = two_descriptions();
        assert_eq!(lock(a.as_fd(), Shared, 1000, 24).unwrap(), Outcome::Granted);
        assert_eq!(get(b.as_fd(), Shared, 0, 0).unwrap(), None);
        assert_eq!(
            get(b.as_fd(), Exclusive, 0, 0).unwrap(),
            Some(Conflict {
                kind: Shared,
                start: 1000,
                len: 24,
                pid: None
            })
        );
        assert_eq!(get(a.as_fd(), Exclusive, 0, 0).unwrap(), None, "own lock");
    }

    #[test]
    fn access_mode_and_range_errors() {
        let (f, a, _b) = two_descriptions();
        let ro = open(f.path(), false);
        let e = lock(ro.as_fd(), Exclusive, 0, 1).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF));
        assert_eq!(lock(ro.as_fd(), Shared, 0, 1).unwrap(), Outcome::Granted);
        let wo: OwnedFd = std::fs::OpenOptions::new()
            .write(true)
            .open(f.path())
            .unwrap()
            .into();
        let e = lock(wo.as_fd(), Shared, 100, 1).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF));
        let e = lock(a.as_fd(), Exclusive, 1 << 63, 1).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
        let e = get(a.as_fd(), Exclusive, u64::MAX, 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    }

    #[test]
    fn conflicts_with_own_process_posix_lock() {
        let (_f, a, b) = two_descriptions();
        let mut fl = flock(libc::F_WRLCK as libc::c_short, 0, 10).unwrap();
        // SAFETY: classic F_SETLK reads one valid `struct flock` through the pointer.
        let r = unsafe { libc::fcntl(a.as_raw_fd(), libc::F_SETLK, &fl) };
        assert_eq!(r, 0, "{}", io::Error::last_os_error());
        // Even through the very description the process lock was taken on.
        assert_eq!(lock(a.as_fd(), Exclusive, 0, 1).unwrap(), Outcome::Denied);
        let c = get(b.as_fd(), Shared, 0, 0).unwrap().unwrap();
        assert_eq!(c.pid, Some(std::process::id() as i32));
        fl.l_type = libc::F_UNLCK as libc::c_short;
        // SAFETY: as above.
        let r = unsafe { libc::fcntl(a.as_raw_fd(), libc::F_SETLK, &fl) };
        assert_eq!(r, 0);
        assert_eq!(lock(b.as_fd(), Exclusive, 0, 1).unwrap(), Outcome::Granted);
    }

    // ---------------------------------------------------------------------------------------------
    // Interoperation with classic POSIX locks of another process (python3's fcntl.lockf, which is
    // fcntl(F_SETLK) with a struct flock, as SQLite and most local programs use).

    /// Holds `lockf(mode)` on [start, start+len) of `path` until stdin closes, after reporting
    /// "granted" or "denied <errno>" on stdout; with `once`, reports and exits at once.
    const CHILD: &str = r#"
import fcntl, sys
path, mode, start, length, once = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "once"
f = open(path, "r+b")
op = (fcntl.LOCK_EX if mode == "ex" else fcntl.LOCK_SH) | fcntl.LOCK_NB
try:
    fcntl.lockf(f, op, length, start)
    print("granted", flush=True)
except OSError as e:
    print("denied", e.errno, flush=True)
if not once:
    sys.stdin.read()
"#;

    /// Starts python3 running [`CHILD`]; `None` (with a message) if python3 is not installed.
    fn python_lockf(path: &Path, mode: &str, start: u64, len: u64, once: bool) -> Option<Child> {
        let spawn = |python: &str| {
            Command::new(python)
                .arg("-c")
                .arg(CHILD)
                .arg(path)
                .args([mode, &start.to_string(), &len.to_string()])
                .arg(if once { "once" } else { "hold" })
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
        };
        match spawn("python3").or_else(|_| spawn("/usr/bin/python3")) {
            Ok(child) => Some(child),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                eprintln!("SKIPPED: python3 not found, cross-process lock test not run");
                None
            }
            Err(e) => panic!("spawning python3: {e}"),
        }
    }

    fn first_line(child: &mut Child) -> String {
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        line.trim().to_owned()
    }

    /// What a one-shot child's `lockf(mode | LOCK_NB)` answers; `None` without python3.
    fn child_try(path: &Path, mode: &str, start: u64, len: u64) -> Option<String> {
        let mut child = python_lockf(path, mode, start, len, true)?;
        let line = first_line(&mut child);
        assert!(child.wait().unwrap().success());
        Some(line)
    }

    fn release(mut child: Child) {
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
    }

    #[test]
    fn posix_lock_of_another_process_blocks_ofd() {
        let (f, a, _b) = two_descriptions();
        let Some(mut child) = python_lockf(f.path(), "ex", 10, 10, false) else {
            return;
        };
        assert_eq!(first_line(&mut child), "granted");
        assert_eq!(lock(a.as_fd(), Exclusive, 0, 100).unwrap(), Outcome::Denied);
        assert_eq!(lock(a.as_fd(), Shared, 19, 1).unwrap(), Outcome::Denied);
        let c = get(a.as_fd(), Shared, 0, 0).unwrap().unwrap();
        assert_eq!(
            c,
            Conflict {
                kind: Exclusive,
                start: 10,
                len: 10,
                pid: Some(child.id() as i32)
            }
        );
        assert_eq!(lock(a.as_fd(), Exclusive, 20, 0).unwrap(), Outcome::Granted);
        unlock(a.as_fd(), 0, 0).unwrap();
        release(child);
        assert_eq!(get(a.as_fd(), Exclusive, 0, 0).unwrap(), None);
        assert_eq!(
            lock(a.as_fd(), Exclusive, 0, 100).unwrap(),
            Outcome::Granted
        );
    }

    #[test]
    fn ofd_lock_blocks_another_process() {
        let (f, a, _b) = two_descriptions();
        assert_eq!(
            lock(a.as_fd(), Exclusive, 100, 0).unwrap(),
            Outcome::Granted
        );
        let Some(answer) = child_try(f.path(), "ex", 100, 1) else {
            return;
        };
        assert!(
            answer == format!("denied {}", libc::EAGAIN)
                || answer == format!("denied {}", libc::EACCES),
            "{answer}"
        );
        eprintln!("child's lockf against our OFD lock: {answer}");
        assert_eq!(
            child_try(f.path(), "ex", 0, 100).unwrap(),
            "granted",
            "below the range"
        );
        // Shared against shared passes, shared against exclusive does not.
        assert_eq!(lock(a.as_fd(), Shared, 100, 0).unwrap(), Outcome::Granted);
        assert_eq!(child_try(f.path(), "sh", 200, 1).unwrap(), "granted");
        assert!(child_try(f.path(), "ex", 200, 1)
            .unwrap()
            .starts_with("denied"));
        unlock(a.as_fd(), 0, 0).unwrap();
        assert_eq!(child_try(f.path(), "ex", 100, 0).unwrap(), "granted");

        // A holding child and our lock both succeed once the other side let go.
        let mut child = python_lockf(f.path(), "ex", 0, 0, false).unwrap();
        assert_eq!(first_line(&mut child), "granted");
        release(child);
        assert_eq!(lock(a.as_fd(), Exclusive, 0, 0).unwrap(), Outcome::Granted);
    }
}
