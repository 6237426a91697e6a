//! NFSv4.2's sparse-file operations (RFC 7862 §15.1, §15.4, §15.11) and extended attributes
//! (RFC 8276) on [`LocalFs`], each as the caller.
//!
//! # Sparse files
//! SEEK is `lseek(SEEK_DATA|SEEK_HOLE)` on the cached descriptor READ uses, after READ's own
//! permission check (so a caller who may not read the file learns nothing of its layout). An
//! offset at or past the end is [`Error::NxIo`]; no data after the offset is `offset: None`.
//! ALLOCATE is `fallocate(mode 0)` and DEALLOCATE `fallocate(PUNCH_HOLE|KEEP_SIZE)` on the cached
//! read-write descriptor WRITE uses, after WRITE's permission check, with the caller's identity in
//! effect (reserved blocks are root's only when the caller is root); both are then made durable
//! with `fdatasync`, as a FILE_SYNC WRITE would be: there is no COMMIT for them.
//!
//! # Extended attributes
//! Only the `user.` namespace is reachable: an NFS name `foo` is `user.foo` on disk, and the
//! listing shows only `user.` names, without the prefix (RFC 8276 §5.2). A client cannot read or
//! set `trusted.`, `security.` or `system.` attributes: `trusted.x` sent by a client is stored as
//! `user.trusted.x`. The calls go through `/proc/self/fd/N` of the object's `O_PATH` descriptor
//! (see `rnfs_sys::xattr`) with the caller's identity in effect, so the kernel decides: read
//! permission to get, write permission (or ownership of a sticky directory's entry) to set and
//! remove, `EPERM` for `user.` attributes of anything but regular files and directories. Values
//! are read into a buffer sized from the kernel's answer, never from a client's number, and at
//! most `max_bytes`.

use std::os::fd::{AsFd, BorrowedFd};

use bytes::Bytes;
use rnfs_sys::xattr::{self as sysx, SetMode};

use super::write::{op_error, wcc_attr};
use super::{as_caller, LocalFs};
use crate::xattr::{read_sized, user_name, user_names};
use crate::{Error, Identity, Result, SeekWhat, Sought, VerifiedHandle, Wcc, XattrSet};

/// Whether the file system of `root` takes `user.` attributes: asking for one that does not
/// exist is `ENODATA` there, `EOPNOTSUPP` where the namespace is missing. Call it as root.
pub(super) fn xattrs_supported(root: BorrowedFd<'_>) -> bool {
    match sysx::get(root, c"user.rnfsd-probe", &mut []) {
        Ok(_) => true,
        Err(e) => e.raw_os_error() == Some(libc::ENODATA),
    }
}

impl LocalFs {
    pub(super) fn do_seek(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        what: SeekWhat,
        offset: u64,
    ) -> Result<Sought> {
        let (file, st) = self.open_for_read(who, fh)?;
        if offset >= st.size {
            return Err(Error::NxIo);
        }
        let whence = match what {
            SeekWhat::Data => libc::SEEK_DATA,
            SeekWhat::Hole => libc::SEEK_HOLE,
        };
        // `offset` < size <= i64::MAX. lseek moves the shared descriptor's position, which no
        // one uses: every read and write is positioned (pread/pwrite).
        let at = i64::try_from(offset).map_err(|_| Error::NxIo)?;
        let found = match rnfs_sys::lseek(file.fd(), at, whence) {
            Ok(p) => Some(u64::try_from(p).map_err(|_| Error::Io)?),
            // No data at or after `offset` (a hole to the end), or the file shrank meanwhile.
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => None,
            Err(e) => return Err(e.into()),
        };
        Ok(Sought {
            offset: found,
            size_bytes: st.size,
        })
    }

    /// ALLOCATE (`punch` false) and DEALLOCATE.
    pub(super) fn do_fallocate(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        offset: u64,
        len: u64,
        punch: bool,
    ) -> Result<Wcc> {
        crate::v42::allocation_fits(offset, len)?;
        let (file, st, as_who) = self.open_for_write(who, self.body(fh))?;
        let before = Some(wcc_attr(&self.attr(&st)));
        let mode = crate::v42::fallocate_mode(punch);
        rnfs_sys::fallocate(file.fd(), mode, offset, len).map_err(op_error)?;
        drop(as_who); // syncs run as root
        file.fdatasync().map_err(|_| Error::Io)?;
        Ok(Wcc {
            before,
            after: self.post(file.fd()),
        })
    }

    pub(super) fn do_getxattr(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        name: &[u8],
        max_bytes: usize,
    ) -> Result<Bytes> {
        let name = user_name(name)?;
        let (fd, _) = self.resolve(fh)?;
        let _as = as_caller(who)?;
        let value = read_sized(max_bytes, |buf| sysx::get(fd.as_fd(), &name, buf))?;
        Ok(Bytes::from(value))
    }

    pub(super) fn do_setxattr(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        name: &[u8],
        value: &[u8],
        how: XattrSet,
    ) -> Result<Wcc> {
        let name = user_name(name)?;
        let (fd, _) = self.resolve(fh)?;
        let mode = match how {
            XattrSet::Either => SetMode::Either,
            XattrSet::Create => SetMode::Create,
            XattrSet::Replace => SetMode::Replace,
        };
        let before = self.pre(fd.as_fd());
        {
            let _as = as_caller(who)?;
            sysx::set(fd.as_fd(), &name, value, mode).map_err(op_error)?;
        }
        Ok(Wcc {
            before,
            after: self.post(fd.as_fd()),
        })
    }

    pub(super) fn do_listxattrs(&self, who: &Identity, fh: &VerifiedHandle) -> Result<Vec<Bytes>> {
        let (fd, _) = self.resolve(fh)?;
        let _as = as_caller(who)?;
        let list = read_sized(sysx::LIST_BYTES_MAX, |buf| sysx::list(fd.as_fd(), buf))?;
        Ok(user_names(&list))
    }

    pub(super) fn do_removexattr(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        name: &[u8],
    ) -> Result<Wcc> {
        let name = user_name(name)?;
        let (fd, _) = self.resolve(fh)?;
        let before = self.pre(fd.as_fd());
        {
            let _as = as_caller(who)?;
            sysx::remove(fd.as_fd(), &name).map_err(op_error)?;
        }
        Ok(Wcc {
            before,
            after: self.post(fd.as_fd()),
        })
    }
}
