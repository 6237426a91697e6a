//! NFSv4.2's sparse-file operations (RFC 7862 §15.1, §15.4, §15.11), COPY (§15.2) and extended
//! attributes (RFC 8276) on [`CephFs`], each as the caller (libcephfs checks the permissions
//! with the caller's `UserPerm`, as for every other call).
//!
//! * SEEK opens the file as READ does (so a caller who may not read it learns nothing of its
//!   layout) and asks `ceph_ll_lseek`. CephFS keeps no holes it could report: the whole file is
//!   data and the end is its only hole. An offset at or past the end is [`Error::NxIo`].
//! * ALLOCATE is `ceph_ll_fallocate(mode 0)` (which grows the file as needed) and DEALLOCATE
//!   `PUNCH_HOLE | KEEP_SIZE`, on a file opened for writing as the caller; both are synced
//!   before the reply, as a FILE_SYNC WRITE would be (there is no COMMIT for them).
//! * COPY reads the source as READ does and writes the destination as WRITE does, through one
//!   bounded buffer ([`COPY_BUFFER_BYTES`]): CephFS has no server-side copy in libcephfs 16.
//!   The copy is as durable as an UNSTABLE WRITE until COMMIT. CLONE stays
//!   [`Error::NotSupp`] (no shared extents), so clients copy instead.
//! * Extended attributes: only `user.` names, as with the local backend ([`crate::xattr`]).
//!   Setting and removing one is durable before the reply, as any metadata change here.

use bytes::Bytes;

use super::{err, regular, CephFs};
use crate::xattr::{read_sized, user_name, user_names};
use crate::{Error, Identity, Result, SeekWhat, Sought, VerifiedHandle, Wcc, WccAttr, XattrSet};

/// The buffer of one COPY call.
pub const COPY_BUFFER_BYTES: usize = 1 << 20;
/// Longest list of attribute names read (all namespaces, NUL-separated).
const XATTR_LIST_BYTES_MAX: usize = 64 << 10;

/// libcephfs's errors as `io::Error`s, for [`read_sized`].
fn io(e: rnfs_cephfs::Error) -> std::io::Error {
    std::io::Error::from_raw_os_error(e.errno())
}

impl CephFs {
    pub(super) fn do_seek(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        what: SeekWhat,
        offset: u64,
    ) -> Result<Sought> {
        let (i, st, p) = self.stat(who, fh)?;
        regular(st.mode)?;
        let f = self.open_kept(&i, &st, who, &p)?;
        if offset >= st.size {
            return Err(Error::NxIo);
        }
        let found = match f.seek(offset, what == SeekWhat::Hole) {
            Ok(at) => Some(at),
            // No data at or after `offset`, or the file shrank meanwhile.
            Err(e) if e.errno() == libc::ENXIO => None,
            Err(e) => return Err(err(e)),
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
        let (i, before, p) = self.stat(who, fh)?;
        regular(before.mode)?;
        let f = self.mount.open(&i, libc::O_WRONLY, &p).map_err(err)?;
        f.fallocate(crate::v42::fallocate_mode(punch), offset, len)
            .map_err(err)?;
        f.fsync(false).map_err(err)?;
        Ok(Wcc {
            before: Some(WccAttr::from(&self.attr(&before))),
            after: self.mount.getattr(&i, &p).ok().map(|s| self.attr(&s)),
        })
    }

    /// COPY: up to `len` bytes, fewer when the source ends first; an error after some bytes
    /// were copied reports those bytes (the error comes back on the next call).
    pub(super) fn do_copy_range(
        &self,
        who: &Identity,
        src: &VerifiedHandle,
        dst: &VerifiedHandle,
        (src_off, dst_off): (u64, u64),
        len: u64,
    ) -> Result<u64> {
        crate::v42::range_fits(src_off, len)?;
        crate::v42::range_fits(dst_off, len)?;
        let (si, sst, p) = self.stat(who, src)?;
        let (di, dst_st, _) = self.stat(who, dst)?;
        regular(sst.mode)?;
        regular(dst_st.mode)?;
        let from = self.open_kept(&si, &sst, who, &p)?;
        let to = self.mount.open(&di, libc::O_WRONLY, &p).map_err(err)?;
        crate::v42::buffered_copy(
            (src_off, dst_off),
            len,
            COPY_BUFFER_BYTES,
            |off, buf| from.read(off, buf).map_err(io),
            |off, buf| to.write_all(off, buf).map(|()| buf.len()).map_err(io),
        )
        .map_err(Error::from)
    }

    pub(super) fn do_getxattr(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        name: &[u8],
        max_bytes: usize,
    ) -> Result<Bytes> {
        let name = user_name(name)?;
        let (i, _, p) = self.stat(who, fh)?;
        let value = read_sized(max_bytes, |buf| {
            self.mount.getxattr(&i, &name, buf, &p).map_err(io)
        })?;
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
        let (i, before, p) = self.stat(who, fh)?;
        let flags = match how {
            XattrSet::Either => 0,
            XattrSet::Create => libc::XATTR_CREATE,
            XattrSet::Replace => libc::XATTR_REPLACE,
        };
        self.mount
            .setxattr(&i, &name, value, flags, &p)
            .map_err(err)?;
        self.durable(&[&i])?;
        Ok(Wcc {
            before: Some(WccAttr::from(&self.attr(&before))),
            after: self.mount.getattr(&i, &p).ok().map(|s| self.attr(&s)),
        })
    }

    pub(super) fn do_listxattrs(&self, who: &Identity, fh: &VerifiedHandle) -> Result<Vec<Bytes>> {
        let (i, _, p) = self.stat(who, fh)?;
        let list = read_sized(XATTR_LIST_BYTES_MAX, |buf| {
            self.mount.listxattr(&i, buf, &p).map_err(io)
        })?;
        Ok(user_names(&list))
    }

    pub(super) fn do_removexattr(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        name: &[u8],
    ) -> Result<Wcc> {
        let name = user_name(name)?;
        let (i, before, p) = self.stat(who, fh)?;
        self.mount.removexattr(&i, &name, &p).map_err(err)?;
        self.durable(&[&i])?;
        Ok(Wcc {
            before: Some(WccAttr::from(&self.attr(&before))),
            after: self.mount.getattr(&i, &p).ok().map(|s| self.attr(&s)),
        })
    }
}
