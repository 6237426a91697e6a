//! Per-thread file-system identity: who the kernel thinks is opening, reading and listing.
//!
//! A worker thread normally runs as root (fsuid 0, fsgid 0, no supplementary groups) so it can resolve
//! file handles (`open_by_handle_at` needs `CAP_DAC_READ_SEARCH`). For the operation itself it takes
//! on the caller's identity with [`set_thread_identity`]; the returned [`IdentityGuard`] switches
//! back to root when dropped, also on unwinding.
//!
//! * **Raw system calls.** `setfsuid`, `setfsgid` and `setgroups` are issued with `syscall(2)`: the
//!   kernel applies them to the calling thread only. glibc's `setgroups` (like its `setuid` family)
//!   broadcasts the change to every thread of the process, which would leak one request's groups into
//!   others running concurrently.
//! * **Capabilities follow the fsuid.** While the fsuid is not 0 the kernel clears the file-system
//!   capabilities (`CAP_DAC_OVERRIDE`, `CAP_DAC_READ_SEARCH`, `CAP_FOWNER`, …) from the thread's
//!   effective set, so the kernel's permission checks apply to the caller as to any local user; they
//!   come back from the permitted set when the fsuid returns to 0. `CAP_SETUID`/`CAP_SETGID` are not
//!   affected, which is what lets the guard switch back.
//! * **Cache.** The thread's current ids are remembered in a thread-local, so a component that already
//!   has the wanted value is not set again (a root caller costs no system call at all). The cache
//!   starts "unknown", so the first switch on a thread sets everything. It assumes nothing else in the
//!   process changes credentials (no glibc `setuid`/`setgroups` broadcasts after start-up).
//! * Switches do not nest: a second [`set_thread_identity`] while a guard is alive fails.
//! * A thread created while its creator is switched inherits the switched credentials (the kernel
//!   copies them at `clone`): create worker threads while acting as root.

use std::cell::RefCell;
use std::io;
use std::marker::PhantomData;

#[derive(Debug)]
struct Creds {
    /// `None` = unknown, must be set before it can be relied on.
    fsuid: Option<u32>,
    fsgid: Option<u32>,
    groups: Option<Vec<u32>>,
    /// A guard is alive on this thread.
    active: bool,
}

thread_local! {
    static CURRENT: RefCell<Creds> =
        const { RefCell::new(Creds { fsuid: None, fsgid: None, groups: None, active: false }) };
}

/// Restores root's fs identity on the current thread when dropped. Not `Send`: it belongs to the
/// thread whose credentials it changed.
#[derive(Debug)]
#[must_use = "the identity reverts to root when the guard is dropped"]
pub struct IdentityGuard {
    _not_send: PhantomData<*const ()>,
}

/// Makes the calling thread act as `uid`/`gid` with supplementary `groups` for permission checks,
/// until the returned guard is dropped. On failure the thread is back to root (as far as possible)
/// and the error is returned.
pub fn set_thread_identity(uid: u32, gid: u32, groups: &[u32]) -> io::Result<IdentityGuard> {
    // u32::MAX is (uid_t)-1, which the kernel reads as "no change".
    if uid == u32::MAX || gid == u32::MAX || groups.contains(&u32::MAX) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    CURRENT.with_borrow_mut(|c| {
        if c.active {
            return Err(io::Error::other("nested per-thread identity switch"));
        }
        // Take the uid last so the thread keeps root's group view no longer than needed either way.
        if let Err(e) = apply(c, uid, gid, groups, false) {
            if apply(c, 0, 0, &[], true).is_err() {
                forget(c);
            }
            return Err(e);
        }
        c.active = true;
        Ok(IdentityGuard {
            _not_send: PhantomData,
        })
    })
}

/// Whether an [`IdentityGuard`] is alive on this thread (the thread is not acting as root).
pub fn is_switched() -> bool {
    CURRENT.with_borrow(|c| c.active)
}

impl Drop for IdentityGuard {
    fn drop(&mut self) {
        // try_with: the guard may be dropped while thread-locals are being torn down.
        let _ = CURRENT.try_with(|cell| {
            let mut c = cell.borrow_mut();
            c.active = false;
            if apply(&mut c, 0, 0, &[], true).is_err() {
                // Cannot happen while we hold CAP_SETUID/CAP_SETGID. If it did, the thread is left
                // *less* privileged (handle resolution fails), and the next switch resets all.
                forget(&mut c);
            }
        });
    }
}

fn forget(c: &mut Creds) {
    c.fsuid = None;
    c.fsgid = None;
    c.groups = None;
}

fn apply(c: &mut Creds, uid: u32, gid: u32, groups: &[u32], uid_first: bool) -> io::Result<()> {
    if uid_first && c.fsuid != Some(uid) {
        c.fsuid = None;
        setfsuid(uid)?;
        c.fsuid = Some(uid);
    }
    if c.groups.as_deref() != Some(groups) {
        c.groups = None;
        setgroups(groups)?;
        c.groups = Some(groups.to_vec());
    }
    if c.fsgid != Some(gid) {
        c.fsgid = None;
        setfsgid(gid)?;
        c.fsgid = Some(gid);
    }
    if !uid_first && c.fsuid != Some(uid) {
        c.fsuid = None;
        setfsuid(uid)?;
        c.fsuid = Some(uid);
    }
    Ok(())
}

/// setfsuid/setfsgid report no error: they return the previous value whether or not they succeeded.
/// Calling again with -1 (never a valid id) changes nothing and returns the current value, which tells
/// whether the change took.
fn set_fs_id(nr: libc::c_long, id: u32) -> io::Result<()> {
    // SAFETY: setfsuid/setfsgid take one id by value and touch no user memory.
    unsafe { libc::syscall(nr, id) };
    // SAFETY: as above; -1 only queries.
    let now = unsafe { libc::syscall(nr, u32::MAX) };
    if now == libc::c_long::from(id) {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(libc::EPERM))
    }
}

fn setfsuid(uid: u32) -> io::Result<()> {
    set_fs_id(libc::SYS_setfsuid, uid)
}

fn setfsgid(gid: u32) -> io::Result<()> {
    set_fs_id(libc::SYS_setfsgid, gid)
}

fn setgroups(groups: &[u32]) -> io::Result<()> {
    let n = libc::c_int::try_from(groups.len())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: the kernel reads `n` gid_t values from `groups`, which holds exactly that many and
    // outlives the call. The raw system call changes this thread's credentials only.
    let r = unsafe { libc::syscall(libc::SYS_setgroups, n, groups.as_ptr()) };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (fsuid, fsgid, groups) of the calling thread, from /proc.
    fn thread_creds() -> (u32, u32, Vec<u32>) {
        let s = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        let field = |name: &str| -> Vec<u32> {
            let line = s.lines().find(|l| l.starts_with(name)).unwrap();
            line[name.len()..]
                .split_whitespace()
                .map(|x| x.parse().unwrap())
                .collect()
        };
        (field("Uid:")[3], field("Gid:")[3], field("Groups:"))
    }

    #[test]
    fn switch_is_per_thread_and_reverts() {
        // Run in fresh threads so the test harness thread is untouched.
        std::thread::spawn(|| {
            // A thread spawned while switched would inherit the identity (clone copies the
            // creator's credentials), so start the bystander first.
            let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
            let bystander = std::thread::spawn(move || {
                go_rx.recv().unwrap();
                thread_creds()
            });
            let g = set_thread_identity(1234, 5678, &[7, 8, 9]).unwrap();
            assert!(is_switched());
            assert_eq!(thread_creds(), (1234, 5678, vec![7, 8, 9]));
            // Another thread is unaffected.
            go_tx.send(()).unwrap();
            let other = bystander.join().unwrap();
            assert_eq!((other.0, other.1), (0, 0));
            assert!(!other.2.contains(&7));
            // No nesting.
            assert!(set_thread_identity(1, 1, &[]).is_err());
            drop(g);
            assert!(!is_switched());
            assert_eq!(thread_creds(), (0, 0, vec![]));
            // Cached path: same identity twice in a row, and root (no system calls).
            for _ in 0..2 {
                let _g = set_thread_identity(1234, 5678, &[]).unwrap();
                assert_eq!(thread_creds(), (1234, 5678, vec![]));
            }
            let _g = set_thread_identity(0, 0, &[]).unwrap();
            assert_eq!(thread_creds(), (0, 0, vec![]));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn reverts_on_panic() {
        std::thread::spawn(|| {
            let r = std::panic::catch_unwind(|| {
                let _g = set_thread_identity(42, 42, &[42]).unwrap();
                panic!("boom");
            });
            assert!(r.is_err());
            assert_eq!(thread_creds(), (0, 0, vec![]));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn invalid_ids_refused() {
        std::thread::spawn(|| {
            assert!(set_thread_identity(u32::MAX, 0, &[]).is_err());
            assert!(!is_switched());
        })
        .join()
        .unwrap();
    }
}
