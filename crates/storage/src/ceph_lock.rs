//! NLM locks of a CephFS export held as CephFS record locks ([`Backend::open_lock_file`] of the
//! ceph backend), so the MDS arbitrates between every rnfsd head serving the file system, and
//! between the lock owners of one head (issue 19).
//!
//! Each description is its own open CephFS file with its own lock-owner id, unique in this
//! process (the MDS tells heads apart by their client session), so two NFS owners conflict in
//! the MDS as they do in the lock manager. Every call is a round trip to the MDS that may take
//! arbitrarily long when the MDS stalls: [`LockFile::may_wait`] says so, and the server never
//! makes these calls under its lock-manager mutex.
//!
//! [`Backend::open_lock_file`]: crate::Backend::open_lock_file

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use rnfs_cephfs::{File, Inode, Mount, Perm};

use crate::{Error, LockFile, Result};

/// Lock-owner ids handed out so far in this process (never reused: an id names one
/// description for the MDS).
static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

/// One NFS lock owner's open CephFS file; its MDS locks are dropped when it is closed.
pub(crate) struct CephLockFile {
    file: File,
    owner: u64,
}

/// Opens the regular file `inode` for one lock owner: read-write, or read-only where that is
/// refused (then the MDS may refuse exclusive locks; that error leaves the decision to the
/// manager). As root: whether the caller may lock is the server's business.
pub(crate) fn open(mount: &Mount, inode: &Inode) -> Result<Box<dyn LockFile>> {
    let root = Perm::new(0, 0, &[]).map_err(crate::ceph::err)?;
    let st = mount.getattr(inode, &root).map_err(crate::ceph::err)?;
    match st.mode & libc::S_IFMT {
        libc::S_IFREG => {}
        libc::S_IFDIR => return Err(Error::IsDir),
        _ => return Err(Error::Inval),
    }
    let file = match mount.open(inode, libc::O_RDWR, &root) {
        Ok(file) => file,
        Err(e) if matches!(e.errno(), libc::EROFS | libc::EACCES | libc::EPERM) => mount
            .open(inode, libc::O_RDONLY, &root)
            .map_err(crate::ceph::err)?,
        Err(e) => return Err(crate::ceph::err(e)),
    };
    Ok(Box::new(CephLockFile {
        file,
        owner: NEXT_OWNER.fetch_add(1, Ordering::Relaxed),
    }))
}

fn io_err(e: rnfs_cephfs::Error) -> io::Error {
    io::Error::other(e)
}

impl LockFile for CephLockFile {
    fn lock(&self, exclusive: bool, start: u64, len_bytes: u64) -> io::Result<bool> {
        self.file
            .try_lock(self.owner, exclusive, start, len_bytes)
            .map_err(io_err)
    }

    fn unlock(&self, start: u64, len_bytes: u64) -> io::Result<()> {
        self.file
            .unlock(self.owner, start, len_bytes)
            .map_err(io_err)
    }

    fn conflict(
        &self,
        exclusive: bool,
        start: u64,
        len_bytes: u64,
    ) -> io::Result<Option<(bool, u64, u64)>> {
        self.file
            .lock_conflict(self.owner, exclusive, start, len_bytes)
            .map_err(io_err)
    }

    fn may_wait(&self) -> bool {
        true
    }
}
