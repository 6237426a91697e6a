//! Keeping handles inside their export: an object that a local process moves out of the exported
//! directory is no longer served through the handles issued for it, and LOOKUP `..` never leads
//! out (RFC 1813 §2.3.3: a handle names an object *of the export*; one that no longer does is
//! `NFS3ERR_STALE`, §2.6). Without this, the handle of a directory moved out led, by LOOKUP `..`
//! from it, to the whole file system: `..` stopped only at the export root, which it never met.
//!
//! # How "inside" is decided
//! `open_by_handle_at` finds an inode wherever it is on the file system, so where it *is* must be
//! asked separately. Two kernel facilities answer exactly, from the kernel's dentry tree, which
//! every rename updates at once (a move of an ancestor included, which changes no stamp of the
//! object itself):
//! * **The path** of a descriptor, `readlinkat(/proc/self/fd, N)` (the kernel's `d_path`): one
//!   system call. A directory has one dentry, always connected to the root of its file system
//!   (`open_by_handle_at` reconnects it), so its path is where it is. A file has one dentry per
//!   link the kernel remembers, and the descriptor shows one of them; a file whose dentries were
//!   all evicted (memory pressure, a reboot) comes back "disconnected", with the path `/`.
//! * **A subtree check by handle**: since Linux 6.13, `open_by_handle_at` of a handle marked
//!   "connectable" (`FILEID_IS_CONNECTABLE`) only opens an object with a remembered link below the
//!   `mount_fd` directory (our export root), trying every link it remembers (so a file linked
//!   both inside and outside is found inside, however its links were made). It costs no system
//!   call beyond the open itself.
//!
//! So: an object opened by handle (a miss of the descriptor caches) is opened marked
//! connectable, and is inside if that succeeds. A cached descriptor (a directory of the `O_PATH`
//! cache, a file of the open-file cache), which was inside when opened, is inside while its path
//! lies below the root's: one `readlinkat`, unless its last verdict still holds (see
//! "Remembered verdicts"). Anything else (a path elsewhere, too long to read, a root moved since)
//! is settled by handle as above. No stamp of the descriptor's own tells that an ancestor moved,
//! and checking each ancestor's stamp costs a call per level: the path is the cheapest exact
//! answer, and fanotify tells when it must be read again.
//!
//! # Remembered verdicts
//! A cached descriptor found inside keeps that verdict (the file system's *change generation*,
//! on the descriptor) for as long as nothing on the export's file system is renamed or removed:
//! a fanotify group ([`rnfs_sys::fanotify`], `FAN_MARK_FILESYSTEM`, needs `CAP_SYS_ADMIN`) queues
//! an event for every rename and removal before the system call that made it returns, so "no
//! event queued" (one `ioctl`, about a tenth of the `readlinkat` it replaces) proves the verdict
//! still holds. The first call that finds events queued bumps the generation, *then* empties the
//! queue, so a call that finds the queue empty because another emptied it reads the new
//! generation and checks afresh. Without fanotify (not root, in a container, Linux before 5.9)
//! every call checks the path, as above.
//!
//! # What stays served, and what not
//! * A file the kernel knows no link of (disconnected: its dentries were evicted since its last
//!   use) is served: nothing in the kernel or in the handle tells where it is, and refusing it
//!   would break every handle of a file after a reboot of the server (clients re-send unstable
//!   writes through their handles). A file moved out stays refused as long as the kernel
//!   remembers its new place, which it does from the move on, for as long as the dentry is used
//!   or memory allows. Linux's nfsd in its default (`no_subtree_check`) checks neither files nor
//!   directories; its `subtree_check` records the parent in the handle, which breaks the handles
//!   of files renamed to another directory.
//! * A descriptor whose link was removed while cached (its path ends in ` (deleted)` and the name
//!   no longer names it) is refused once and leaves the caches; the next call opens the object
//!   afresh and finds its other links, if any.
//! * Kernels before 6.13 have no subtree check by handle: a directory is then checked by walking
//!   `..` up to the root (at most [`SUBTREE_DEPTH_MAX`] levels, else stale), and a file by its one
//!   path, except that a file with several links, or whose path cannot be read, is served.
//! * A local process that moves the export root itself is noticed at the next housekeeping
//!   round (every 2 s): from then on paths prove nothing and every cached descriptor is checked
//!   by handle (slower, still exact), and a warning says to restart rnfsd with the new path.

use std::ffi::{CStr, CString};
use std::fs::OpenOptions;
use std::io::{self, Write as _};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rnfs_sys::fanotify::ChangeWatch;
use rnfs_sys::{identity, KernelHandle, Stat};

use super::{decode_body, LocalFs};
use crate::{Error, Result};

/// Most `..` steps of the walk that checks a directory where the kernel cannot (before Linux
/// 6.13): a directory deeper below the export root than this is stale there.
pub const SUBTREE_DEPTH_MAX: usize = 256;

/// The handle-type flag that asks `open_by_handle_at` for an object with a link below its
/// `mount_fd` (`include/linux/exportfs.h`, Linux 6.13).
const FILEID_IS_CONNECTABLE: i32 = 0x1_0000;

/// The first Linux release that honours [`FILEID_IS_CONNECTABLE`]; earlier ones pass the flag to
/// the file system, and some (tmpfs) ignore it instead of failing.
const SUBTREE_CHECK_RELEASE: (u32, u32) = (6, 13);

/// What the kernel appends to the path of a link removed since the descriptor was opened.
const DELETED_SUFFIX: &[u8] = b" (deleted)";

/// Room for a descriptor number and its NUL.
const FD_NAME_LEN: usize = 12;

/// Most reads that empty the change queue in one call (4 KiB each); what is left stays queued,
/// so the next call checks afresh and empties more.
const CHANGE_READS_MAX: usize = 64;

/// What the subtree check of one export needs (see the module docs).
#[derive(Debug)]
pub(crate) struct Subtree {
    /// `/proc/self/fd`, whose links give a descriptor's path.
    proc_fds: OwnedFd,
    /// The export root's path when it was opened.
    root_path: Vec<u8>,
    /// Whether `open_by_handle_at` checks subtrees ([`FILEID_IS_CONNECTABLE`]).
    by_handle: bool,
    /// Set by housekeeping while the root's path is not `root_path` (moved by a local process).
    root_moved: AtomicBool,
    /// Renames and removals on the export's file system (see "Remembered verdicts").
    changes: Option<ChangeWatch>,
    /// Bumped whenever `changes` had events queued; verdicts remember it. Starts at 1 (0 means
    /// "no verdict").
    generation: AtomicU64,
}

impl Subtree {
    /// The state for the export whose root is `root_fd`, of kernel handle `root_kh`.
    pub(crate) fn new(root_fd: BorrowedFd<'_>, root_kh: &KernelHandle) -> io::Result<Subtree> {
        let proc_fds: OwnedFd = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open("/proc/self/fd")?
            .into();
        let root_path = path_of(proc_fds.as_fd(), root_fd)?;
        let by_handle = kernel_release().is_some_and(|r| r >= SUBTREE_CHECK_RELEASE)
            && rnfs_sys::open_by_handle_at(root_fd, &connectable(root_kh), libc::O_PATH).is_ok();
        let changes = CString::new(root_path.clone())
            .map_err(io::Error::other)
            .and_then(|p| ChangeWatch::renames_and_removals(&p))
            .inspect_err(
                |e| tracing::info!(error = %e, "no fanotify: every call checks its object's path"),
            )
            .ok();
        Ok(Subtree {
            proc_fds,
            root_path,
            by_handle,
            root_moved: AtomicBool::new(false),
            changes,
            generation: AtomicU64::new(1),
        })
    }

    /// The change generation, when nothing was renamed or removed on the file system since it was
    /// last bumped; `None` when something may have been (or nothing can tell).
    fn quiet_generation(&self) -> Option<u64> {
        let changes = self.changes.as_ref()?;
        match changes.pending_bytes() {
            // Read after the queue was found empty: a bump made before another caller emptied
            // it is seen here (see "Remembered verdicts").
            Ok(0) => Some(self.generation.load(Ordering::SeqCst)),
            _ => {
                self.generation.fetch_add(1, Ordering::SeqCst);
                let _ = changes.discard(CHANGE_READS_MAX);
                None
            }
        }
    }

    /// The export root's path when the export was opened (part of its handle key).
    pub(crate) fn root_path(&self) -> &[u8] {
        &self.root_path
    }

    fn path_of(&self, fd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
        path_of(self.proc_fds.as_fd(), fd)
    }
}

/// Where a descriptor's path says its object is.
#[derive(Debug, PartialEq, Eq)]
enum Place {
    /// Below the export root.
    Inside,
    /// A file the kernel knows no link of (its path is `/`).
    Unattached,
    /// Not known: the path is longer than `PATH_MAX`, or could not be read.
    Unknown,
    /// The link it was opened by was removed since, and no other has that name.
    Removed,
    /// Elsewhere.
    Outside,
}

impl LocalFs {
    /// Confirms that the object of `fd` (of handle `body`, in state `st`), opened while it was
    /// inside the export, still is; else it leaves the caches and is [`Error::Stale`]. One
    /// `ioctl` when `memo` (the descriptor's remembered verdict) still holds, else one
    /// `readlinkat` when its path says so (see the module docs). Call it as root.
    pub(super) fn confirm_inside(
        &self,
        fd: BorrowedFd<'_>,
        st: &Stat,
        body: &[u8],
        memo: Option<&AtomicU64>,
    ) -> Result<()> {
        debug_assert!(!identity::is_switched(), "the subtree is checked as root");
        if self.is_root(st) {
            return Ok(());
        }
        let root_moved = self.subtree.root_moved.load(Ordering::Relaxed);
        // Taken before the path is read: a change after it bumps the generation past it.
        let quiet = memo.and_then(|_| self.subtree.quiet_generation());
        if let (Some(generation), Some(memo)) = (quiet, memo) {
            if memo.load(Ordering::Relaxed) == generation && !root_moved {
                return Ok(());
            }
        }
        let place = self.place(fd, st);
        let inside = match place {
            Place::Inside if !root_moved => {
                if let (Some(generation), Some(memo)) = (quiet, memo) {
                    memo.store(generation, Ordering::Relaxed);
                }
                return Ok(());
            }
            Place::Removed => false,
            _ => self.inside_by_handle(fd, st, body, &place)?,
        };
        // Out of the caches when outside, and when found inside through another link than the
        // cached one (or through one at all): the next open takes that link.
        if !inside || matches!(place, Place::Unattached | Place::Outside) {
            self.evict(body);
        }
        if inside {
            Ok(())
        } else {
            Err(Error::Stale)
        }
    }

    /// Opens handle `kh` (of `body`) as an `O_PATH` descriptor of an object inside the export,
    /// with its attributes; an object outside is [`Error::Stale`]. As [`LocalFs::open_handle`],
    /// call it as root.
    pub(super) fn open_inside(&self, kh: &KernelHandle, body: &[u8]) -> Result<(OwnedFd, Stat)> {
        if !self.subtree.by_handle {
            let fd = self.open_handle(kh)?;
            let st = self.stat_opened(fd.as_fd(), body)?;
            self.confirm_inside(fd.as_fd(), &st, body, None)?;
            return Ok((fd, st));
        }
        if let Some(fd) = self.open_connectable(kh)? {
            let st = self.stat_opened(fd.as_fd(), body)?;
            return Ok((fd, st));
        }
        // No link inside that the kernel remembers: none at all, or none it remembers (a file
        // whose dentries were evicted), which alone is served (see the module docs).
        let fd = self.open_handle(kh)?;
        let st = self.stat_opened(fd.as_fd(), body)?;
        match self.place(fd.as_fd(), &st) {
            Place::Unattached => Ok((fd, st)),
            _ => Err(Error::Stale),
        }
    }

    /// `kh` opened by the kernel's subtree check: `None` when it has no link inside the export
    /// that the kernel remembers.
    fn open_connectable(&self, kh: &KernelHandle) -> Result<Option<OwnedFd>> {
        match self.open_handle(&connectable(kh)) {
            Ok(fd) => Ok(Some(fd)),
            // The kernel's word for "not below mount_fd" is ESTALE, EACCES for a directory in
            // some releases.
            Err(Error::Stale | Error::Access) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Where the path of `fd` (in state `st`) says its object is.
    fn place(&self, fd: BorrowedFd<'_>, st: &Stat) -> Place {
        let Ok(path) = self.subtree.path_of(fd) else {
            return Place::Unknown;
        };
        if !st.is_dir() && path == b"/" {
            return Place::Unattached;
        }
        let Some(below) = below(&self.subtree.root_path, &path) else {
            return Place::Outside;
        };
        // A removed link, or a live name that ends so (which then names the object).
        if below.ends_with(DELETED_SUFFIX) && !self.names(below, st) {
            return Place::Removed;
        }
        Place::Inside
    }

    /// Whether `name` (relative to the export root) names the object in state `st`.
    fn names(&self, name: &[u8], st: &Stat) -> bool {
        CString::new(name)
            .ok()
            .and_then(|n| {
                rnfs_sys::fstatat(self.root_fd.as_fd(), &n, libc::AT_SYMLINK_NOFOLLOW).ok()
            })
            .is_some_and(|found| (found.dev, found.ino) == (st.dev, st.ino))
    }

    /// The answer where the path does not give it (`place`): the kernel's subtree check by
    /// handle, or, on kernels without it, a walk up `..` for a directory and the path for a file.
    fn inside_by_handle(
        &self,
        fd: BorrowedFd<'_>,
        st: &Stat,
        body: &[u8],
        place: &Place,
    ) -> Result<bool> {
        if self.subtree.by_handle {
            return match self.open_inside(&decode_body(body)?, body) {
                Ok(_) => Ok(true),
                Err(Error::Stale) => Ok(false),
                Err(e) => Err(e),
            };
        }
        if st.is_dir() {
            return self.walk_to_root(fd);
        }
        // Another link (which this kernel cannot look for) may be inside; the root may have moved.
        Ok(match place {
            Place::Inside | Place::Outside if st.nlink == 1 => self
                .subtree
                .path_of(self.root_fd.as_fd())
                .ok()
                .zip(self.subtree.path_of(fd).ok())
                .is_some_and(|(root, path)| below(&root, &path).is_some()),
            Place::Removed => false,
            _ => true,
        })
    }

    /// Whether directory `fd` lies below the export root: its `..` chain, at most
    /// [`SUBTREE_DEPTH_MAX`] steps, meets the root before the top of the file system.
    pub(super) fn walk_to_root(&self, fd: BorrowedFd<'_>) -> Result<bool> {
        let mut st = rnfs_sys::fstat(fd)?;
        let mut here: Option<OwnedFd> = None;
        for _ in 0..SUBTREE_DEPTH_MAX {
            if self.is_root(&st) {
                return Ok(true);
            }
            let from = here.as_ref().map_or(fd, |h| h.as_fd());
            let up = rnfs_sys::openat(from, c"..", libc::O_PATH | libc::O_DIRECTORY, 0)?;
            let up_st = rnfs_sys::fstat(up.as_fd())?;
            // Another file system, or the top of this one (its own parent).
            if up_st.dev != self.root_dev || (up_st.dev, up_st.ino) == (st.dev, st.ino) {
                return Ok(false);
            }
            (here, st) = (Some(up), up_st);
        }
        Ok(false)
    }

    /// Housekeeping: notices a move of the export root itself (see the module docs).
    pub(super) fn check_root_path(&self) {
        let now = self.subtree.path_of(self.root_fd.as_fd());
        let moved = !matches!(now.as_deref(), Ok(p) if p == self.subtree.root_path);
        if moved != self.subtree.root_moved.swap(moved, Ordering::Relaxed) {
            let lossy = |p: &[u8]| String::from_utf8_lossy(p).into_owned();
            let now = now.map_or_else(|e| e.to_string(), |p| lossy(&p));
            if moved {
                tracing::warn!(
                    export = self.export_id,
                    was = %lossy(&self.subtree.root_path),
                    now = %now,
                    "the export root was moved by a local process: every call now checks by \
                     handle that its object is inside (slower); restart rnfsd with the new path"
                );
            } else {
                tracing::info!(export = self.export_id, path = %now, "the export root is back");
            }
        }
    }
}

/// `kh` marked for the kernel's subtree check ([`FILEID_IS_CONNECTABLE`]).
fn connectable(kh: &KernelHandle) -> KernelHandle {
    KernelHandle {
        handle_type: kh.handle_type | FILEID_IS_CONNECTABLE,
        bytes: kh.bytes.clone(),
    }
}

/// The path of descriptor `fd`, read in `proc_fds` (`/proc/self/fd`).
fn path_of(proc_fds: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    let mut buf = [0u8; FD_NAME_LEN];
    write!(&mut buf[..], "{}\0", fd.as_raw_fd())?;
    let name = CStr::from_bytes_until_nul(&buf).map_err(io::Error::other)?;
    rnfs_sys::readlinkat(proc_fds, name)
}

/// `path` relative to `root` when it lies below it (or is it: then empty).
fn below<'p>(root: &[u8], path: &'p [u8]) -> Option<&'p [u8]> {
    let rest = path.strip_prefix(root)?;
    if root == b"/" || rest.is_empty() {
        return Some(rest);
    }
    rest.strip_prefix(b"/")
}

/// The running kernel's (major, minor) release.
fn kernel_release() -> Option<(u32, u32)> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let mut numbers = release.split(|c: char| !c.is_ascii_digit());
    let major = numbers.next()?.parse().ok()?;
    let minor = numbers.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handle::HandleKey;

    #[test]
    fn below_the_root_on_component_bounds() {
        assert_eq!(below(b"/srv/data", b"/srv/data/a/b"), Some(&b"a/b"[..]));
        assert_eq!(below(b"/srv/data", b"/srv/data"), Some(&b""[..]));
        assert_eq!(below(b"/srv/data", b"/srv/database/a"), None);
        assert_eq!(below(b"/srv/data", b"/srv"), None);
        assert_eq!(below(b"/", b"/etc/passwd"), Some(&b"etc/passwd"[..]));
    }

    /// The walk of kernels without the subtree check by handle: up to the root from inside,
    /// never from outside.
    #[test]
    fn the_walk_finds_the_root_from_inside_only() {
        let dir = tempfile::tempdir().unwrap();
        let export = dir.path().join("export");
        std::fs::create_dir_all(export.join("a/b/c")).unwrap();
        std::fs::create_dir_all(dir.path().join("outside/d")).unwrap();
        let fs = LocalFs::new(1, &export, HandleKey::random().unwrap()).unwrap();
        let open = |p: &std::path::Path| -> OwnedFd {
            OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
                .open(p)
                .unwrap()
                .into()
        };
        for (p, inside) in [
            (export.join("a/b/c"), true),
            (export.clone(), true),
            (dir.path().join("outside/d"), false),
            (dir.path().to_owned(), false),
            ("/".into(), false),
        ] {
            let fd = open(&p);
            assert_eq!(fs.walk_to_root(fd.as_fd()), Ok(inside), "{}", p.display());
        }
    }

    /// Objects moved out are stale through their handles, cached (a directory of the `O_PATH`
    /// cache, a file open for READ, each with a remembered verdict) or not (a new backend), and
    /// served again once moved back: with the kernel's subtree check by handle and with the
    /// fallback of older kernels, with verdicts remembered under fanotify and without it.
    #[test]
    fn moved_out_is_stale_with_and_without_the_kernels_check() {
        use crate::{Backend, Identity, VerifiedHandle};
        let who = Identity::root();
        let dir = tempfile::tempdir().unwrap();
        let (export, outside) = (dir.path().join("export"), dir.path().join("outside"));
        std::fs::create_dir_all(export.join("sub/d")).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(export.join("sub/f"), b"f").unwrap();
        let key = HandleKey::random().unwrap();
        let backend = |by_handle: bool, watched: bool| {
            let mut fs = LocalFs::new(1, &export, key.clone()).unwrap();
            fs.subtree.by_handle &= by_handle;
            if !watched {
                fs.subtree.changes = None;
            }
            fs
        };
        let fs = backend(true, true);
        let release = kernel_release();
        assert_eq!(
            fs.subtree.by_handle,
            release.is_some_and(|r| r >= SUBTREE_CHECK_RELEASE),
            "the kernel's subtree check is used where it exists ({release:?})"
        );
        let lookup =
            |dir: &VerifiedHandle, name: &str| fs.verify(&fs.lookup(&who, dir, name.as_bytes())?.0);
        let sub = lookup(&fs.verify(&fs.root()).unwrap(), "sub").unwrap();
        let (d, f) = (lookup(&sub, "d").unwrap(), lookup(&sub, "f").unwrap());
        let modes = [(true, true), (true, false), (false, true), (false, false)];
        for (by_handle, watched) in modes {
            for (moved, gone) in [
                ("sub/d", vec![&d]),
                ("sub/f", vec![&f]),
                ("sub", vec![&sub, &d, &f]),
            ] {
                for cached in [true, false] {
                    let fs = backend(by_handle, watched);
                    // Twice: the second call is answered from the remembered verdict.
                    for _ in 0..2 * usize::from(cached) {
                        fs.getattr(&who, &d).unwrap();
                        fs.read(&who, &f, 0, 1).unwrap();
                    }
                    let what = format!(
                        "{moved} moved out, by handle {by_handle}, watched {watched}, \
                         cached {cached}"
                    );
                    std::fs::rename(export.join(moved), outside.join("moved")).unwrap();
                    for fh in [&sub, &d, &f] {
                        let want = if gone.contains(&fh) {
                            Err(Error::Stale)
                        } else {
                            Ok(())
                        };
                        assert_eq!(fs.getattr(&who, fh).map(|_| ()), want, "{what}");
                    }
                    if gone.contains(&&d) {
                        assert_eq!(fs.lookup(&who, &d, b"..").unwrap_err(), Error::Stale);
                    }
                    std::fs::rename(outside.join("moved"), export.join(moved)).unwrap();
                    for fh in [&sub, &d, &f] {
                        assert!(fs.getattr(&who, fh).is_ok(), "{what}, then back");
                    }
                    assert_eq!(&fs.lookup(&who, &d, b"..").unwrap().0, sub.handle());
                }
            }
        }
    }

    /// Paths say where a descriptor is; a removed link is told from a name that ends the same.
    #[test]
    fn places_of_descriptors() {
        let dir = tempfile::tempdir().unwrap();
        let export = dir.path().join("export");
        std::fs::create_dir(&export).unwrap();
        let fs = LocalFs::new(1, &export, HandleKey::random().unwrap()).unwrap();
        let place = |p: &std::path::Path| {
            let fd: OwnedFd = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH)
                .open(p)
                .unwrap()
                .into();
            let st = rnfs_sys::fstat(fd.as_fd()).unwrap();
            (fs.place(fd.as_fd(), &st), fd, st)
        };
        let odd = export.join("x (deleted)");
        std::fs::write(&odd, b"").unwrap();
        assert_eq!(place(&odd).0, Place::Inside, "a name ending in (deleted)");
        std::fs::write(dir.path().join("out"), b"").unwrap();
        assert_eq!(place(&dir.path().join("out")).0, Place::Outside);
        let f = export.join("f");
        std::fs::write(&f, b"").unwrap();
        let (_, fd, st) = place(&f);
        std::fs::hard_link(&f, export.join("g")).unwrap();
        std::fs::remove_file(&f).unwrap();
        assert_eq!(fs.place(fd.as_fd(), &st), Place::Removed);
    }
}
