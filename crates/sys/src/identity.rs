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
//! * **`CAP_SYS_RESOURCE` too.** It is not among the capabilities the kernel drops with the fsuid, yet
//!   it lets writes exceed disk quotas and use the blocks a file system reserves for root. So a
//!   switch to a non-zero uid also clears it from the thread's effective set (`capset(2)` acts on the
//!   calling thread only), and the switch back raises it again, as knfsd does for its threads. A
//!   process that does not hold it has nothing to drop.
//! * **Cache.** The thread's current ids are remembered in a thread-local, so a component that already
//!   has the wanted value is not set again (a root caller costs no system call at all). The cache
//!   starts "unknown", so the first switch on a thread sets everything. It assumes nothing else in the
//!   process changes credentials (no glibc `setuid`/`setgroups` broadcasts after start-up).
//! * **Lazy rest** ([`rest_lazily`]), for threads that only ever serve requests: dropping the guard
//!   restores only the fsuid (0, which brings the file-system capabilities back) and leaves the
//!   caller's fsgid and groups in place; such a thread also rests *without* `CAP_SYS_RESOURCE`,
//!   raising it only while it acts for a root caller. A stream of requests from one user then
//!   costs two `setfsuid` calls per switch and two per restore, instead of a dozen system calls.
//!   This is safe because a thread at rest acts as root only to resolve handles, stat and reopen
//!   objects (nothing it does depends on its group ids) and creates nothing; it would not be on a
//!   thread that runs other code (files it created would get the last caller's group), except for
//!   a stretch of request handlers only ([`rest_lazily_while`]), after which it is wholly root.
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
    /// `CAP_SYS_RESOURCE` is off in the effective set (or not held at all).
    resource_off: Option<bool>,
    /// A guard is alive on this thread.
    active: bool,
}

thread_local! {
    /// Set by [`rest_lazily`].
    static LAZY_REST: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static CURRENT: RefCell<Creds> = const {
        RefCell::new(Creds {
            fsuid: None,
            fsgid: None,
            groups: None,
            resource_off: None,
            active: false,
        })
    };
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

/// Declares that the calling thread runs nothing but request handlers, so guards on it may restore
/// lazily (see the module docs). Its current credentials are forgotten: the next switch sets every
/// component.
pub fn rest_lazily() {
    LAZY_REST.set(true);
    CURRENT.with_borrow_mut(forget);
}

/// Runs `f` resting lazily (see [`rest_lazily`]) on a thread that otherwise runs other code, for
/// a stretch in which it runs request handlers only (the server's calls run in place). Before
/// this returns, also when `f` unwinds, the thread is wholly root again: fsgid 0, no
/// supplementary groups, `CAP_SYS_RESOURCE` as the process holds it.
pub fn rest_lazily_while<R>(f: impl FnOnce() -> R) -> R {
    struct Restore {
        was_lazy: bool,
    }
    impl Drop for Restore {
        fn drop(&mut self) {
            LAZY_REST.set(self.was_lazy);
            if self.was_lazy {
                return;
            }
            let _ = CURRENT.try_with(|cell| {
                let mut c = cell.borrow_mut();
                // A guard still alive restores wholly itself when dropped (the flag is off).
                if !c.active && apply(&mut c, 0, 0, &[], true).is_err() {
                    forget(&mut c);
                }
            });
        }
    }
    let _restore = Restore {
        was_lazy: LAZY_REST.replace(true),
    };
    f()
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
            let restored = if LAZY_REST.get() {
                rest(&mut c)
            } else {
                apply(&mut c, 0, 0, &[], true)
            };
            if restored.is_err() {
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
    c.resource_off = None;
}

/// The lazy rest state: fsuid 0, `CAP_SYS_RESOURCE` off, group ids left as they are.
fn rest(c: &mut Creds) -> io::Result<()> {
    set_uid(c, 0)?;
    set_resource_off(c, true)
}

fn apply(c: &mut Creds, uid: u32, gid: u32, groups: &[u32], uid_first: bool) -> io::Result<()> {
    if uid_first {
        set_uid(c, uid)?;
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
    if !uid_first {
        set_uid(c, uid)?;
    }
    set_resource_off(c, uid != 0)
}

/// Sets the fsuid unless the cache says it is set already.
fn set_uid(c: &mut Creds, uid: u32) -> io::Result<()> {
    if c.fsuid.is_none() && uid != 0 {
        // The kernel drops the file-system capabilities only on a change *from* fsuid 0, and a
        // non-root process given capabilities starts at its own uid: going straight to the
        // caller's would keep CAP_DAC_OVERRIDE for that request. Pass through 0 first.
        setfsuid(0)?;
    }
    if c.fsuid != Some(uid) {
        c.fsuid = None;
        setfsuid(uid)?;
        c.fsuid = Some(uid);
    }
    Ok(())
}

/// Clears (`off`) or raises `CAP_SYS_RESOURCE` unless the cache says it is so already.
fn set_resource_off(c: &mut Creds, off: bool) -> io::Result<()> {
    if c.resource_off != Some(off) {
        c.resource_off = None;
        set_effective_cap(CAP_SYS_RESOURCE, !off)?;
        c.resource_off = Some(off);
    }
    Ok(())
}

/// `CAP_SYS_RESOURCE` (linux/capability.h).
const CAP_SYS_RESOURCE: u32 = 24;

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit capability sets as two 32-bit halves.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Raises (`on`) or clears capability `cap` in the calling thread's effective set. Nothing to do
/// when the thread's permitted set lacks it (it can be neither raised nor used).
fn set_effective_cap(cap: u32, on: bool) -> io::Result<()> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0, // the calling thread
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: with version 3, capget reads `header` and writes two capability data structs to
    // `data`; both are valid, correctly laid out (repr(C)) and outlive the call.
    let r = unsafe { libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    let (word, bit) = ((cap / 32) as usize, 1u32 << (cap % 32));
    let Some(d) = data.get_mut(word) else {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    if d.permitted & bit == 0 || (d.effective & bit != 0) == on {
        return Ok(());
    }
    d.effective ^= bit;
    // SAFETY: as above; capset only reads `header` and `data`. With pid 0 it changes the calling
    // thread's credentials only, and lowering or raising an effective capability within the
    // permitted set needs no privilege.
    let r = unsafe { libc::syscall(libc::SYS_capset, &raw const header, data.as_ptr()) };
    if r == -1 {
        return Err(io::Error::last_os_error());
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

    /// Bit `cap` of the calling thread's effective and permitted capability sets, from /proc.
    fn thread_cap(cap: u32) -> (bool, bool) {
        let s = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        let set = |name: &str| {
            let line = s.lines().find(|l| l.starts_with(name)).unwrap();
            u64::from_str_radix(line[name.len()..].trim(), 16).unwrap() >> cap & 1 == 1
        };
        (set("CapEff:"), set("CapPrm:"))
    }

    #[test]
    fn effective_capabilities_per_thread() {
        // The capget/capset plumbing, on a capability this process holds and no switch touches.
        const CAP_NET_BIND_SERVICE: u32 = 10;
        std::thread::spawn(|| {
            if thread_cap(CAP_NET_BIND_SERVICE) != (true, true) {
                return eprintln!("skipped: CAP_NET_BIND_SERVICE not held");
            }
            let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
            let bystander = std::thread::spawn(move || {
                go_rx.recv().unwrap();
                thread_cap(CAP_NET_BIND_SERVICE)
            });
            set_effective_cap(CAP_NET_BIND_SERVICE, false).unwrap();
            assert_eq!(thread_cap(CAP_NET_BIND_SERVICE), (false, true));
            set_effective_cap(CAP_NET_BIND_SERVICE, false).unwrap();
            go_tx.send(()).unwrap();
            assert_eq!(
                bystander.join().unwrap(),
                (true, true),
                "other threads keep it"
            );
            set_effective_cap(CAP_NET_BIND_SERVICE, true).unwrap();
            assert_eq!(thread_cap(CAP_NET_BIND_SERVICE), (true, true));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn sys_resource_is_root_only() {
        std::thread::spawn(|| {
            let held = thread_cap(CAP_SYS_RESOURCE).1;
            {
                let _g = set_thread_identity(1234, 1234, &[]).unwrap();
                assert!(!thread_cap(CAP_SYS_RESOURCE).0, "no quota bypass for users");
            }
            assert_eq!(thread_cap(CAP_SYS_RESOURCE), (held, held));
            {
                let _g = set_thread_identity(0, 0, &[5]).unwrap();
                assert_eq!(thread_cap(CAP_SYS_RESOURCE), (held, held));
            }
            if !held {
                eprintln!("CAP_SYS_RESOURCE not held by this process: nothing was dropped");
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn lazy_rest_restores_the_uid_and_keeps_the_groups() {
        std::thread::spawn(|| {
            rest_lazily();
            let held = thread_cap(CAP_SYS_RESOURCE).1;
            let fs_caps_at_start = thread_cap(1); // CAP_DAC_OVERRIDE
            {
                let _g = set_thread_identity(1234, 5678, &[7, 8]).unwrap();
                assert_eq!(thread_creds(), (1234, 5678, vec![7, 8]));
                assert!(!thread_cap(CAP_SYS_RESOURCE).0);
            }
            assert_eq!(
                thread_creds(),
                (0, 5678, vec![7, 8]),
                "at rest: root's fsuid, the last caller's groups"
            );
            assert_eq!(
                thread_cap(1),
                fs_caps_at_start,
                "file-system capabilities return with fsuid 0"
            );
            assert_eq!(
                thread_cap(CAP_SYS_RESOURCE),
                (false, held),
                "rests without CAP_SYS_RESOURCE"
            );
            {
                let _g = set_thread_identity(1234, 5678, &[7, 8]).unwrap();
                assert_eq!(thread_creds(), (1234, 5678, vec![7, 8]));
            }
            {
                let _g = set_thread_identity(0, 0, &[]).unwrap();
                assert_eq!(thread_creds(), (0, 0, vec![]));
                assert_eq!(
                    thread_cap(CAP_SYS_RESOURCE),
                    (held, held),
                    "a root caller has it"
                );
            }
            assert_eq!(thread_cap(CAP_SYS_RESOURCE), (false, held));
            let r = std::panic::catch_unwind(|| {
                let _g = set_thread_identity(42, 43, &[44]).unwrap();
                panic!("boom");
            });
            assert!(r.is_err());
            assert_eq!(thread_creds(), (0, 43, vec![44]), "unwinding rests too");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn resting_lazily_for_a_while_ends_wholly_root() {
        std::thread::spawn(|| {
            let held = thread_cap(CAP_SYS_RESOURCE).1;
            rest_lazily_while(|| {
                for _ in 0..2 {
                    let _g = set_thread_identity(1234, 5678, &[7, 8]).unwrap();
                    assert_eq!(thread_creds(), (1234, 5678, vec![7, 8]));
                }
                assert_eq!(thread_creds(), (0, 5678, vec![7, 8]), "at rest, lazily");
            });
            assert_eq!(thread_creds(), (0, 0, vec![]), "wholly root after");
            assert_eq!(thread_cap(CAP_SYS_RESOURCE), (held, held));
            // Not lazy any more: a guard restores everything.
            {
                let _g = set_thread_identity(42, 43, &[44]).unwrap();
            }
            assert_eq!(thread_creds(), (0, 0, vec![]));
            let r = std::panic::catch_unwind(|| {
                rest_lazily_while(|| {
                    let _g = set_thread_identity(42, 43, &[44]).unwrap();
                    panic!("boom");
                })
            });
            assert!(r.is_err());
            assert_eq!(thread_creds(), (0, 0, vec![]), "unwinding ends root too");
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
