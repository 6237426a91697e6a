//! NFSv4.2's server-side copy and clone (RFC 7862 §15.2 COPY, §15.13 CLONE) on [`LocalFs`], as
//! the caller.
//!
//! Both take the source through READ's permission check and cached descriptor and the
//! destination through WRITE's ([`LocalFs::open_for_write`]: the permission is decided before
//! anything is opened for writing), and run the system call with the caller's identity in effect,
//! so quotas and reserved blocks are the caller's.
//!
//! * COPY is `copy_file_range(2)`: the data never enters user space, and a file system that can
//!   share or copy extents itself (XFS, Btrfs, NFS) does so. Short copies are looped until the
//!   asked length or the end of the source; an error after some bytes were copied reports those
//!   bytes (the error comes back on the next call). Where the kernel cannot copy between the two
//!   files (`EXDEV`, `EOPNOTSUPP`, `ENOSYS`), the bytes go through one bounded buffer
//!   ([`BUFFER_BYTES`]). The copied data is unstable, like an UNSTABLE WRITE's: COMMIT (or the
//!   open-file cache when it closes the descriptor) makes it durable.
//! * CLONE is `ioctl(FICLONERANGE)`: shared extents or nothing. A file system without them says
//!   `EOPNOTSUPP` (ext4, tmpfs), two file systems `EXDEV`, an unaligned range `EINVAL`; all three
//!   are [`Error::NotSupp`] here, which the server answers NFS4ERR_NOTSUPP (a client then copies
//!   instead). A clone is durable once the destination is synced, as a copy is.

use std::os::fd::BorrowedFd;

use super::write::op_error;
use super::LocalFs;
use crate::{Error, Identity, Result, VerifiedHandle};

/// Most bytes one `copy_file_range` call is asked for (the kernel caps a call near 2 GiB anyway).
const CALL_BYTES_MAX: u64 = 1 << 30;
/// The buffer of a copy the kernel cannot do itself.
pub const BUFFER_BYTES: usize = 1 << 20;

/// Whether the kernel refused to copy between these two files at all (so a buffered copy may).
fn kernel_cannot(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EXDEV | libc::EOPNOTSUPP | libc::ENOSYS)
    )
}

/// Maps FICLONERANGE's refusals: the file system cannot share these extents.
pub fn clone_error(e: std::io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::EOPNOTSUPP | libc::EXDEV | libc::EINVAL | libc::ENOTTY) => Error::NotSupp,
        _ => op_error(e),
    }
}

/// Offsets and a length whose ends fit a file (`loff_t`), or [`Error::FBig`].
fn check_ends(src_off: u64, dst_off: u64, len: u64) -> Result<()> {
    crate::v42::range_fits(src_off, len)?;
    crate::v42::range_fits(dst_off, len)
}

/// Copies up to `len` bytes with `copy_file_range`, looping over short copies; `Err` only when
/// nothing was copied.
fn kernel_copy(
    from: BorrowedFd<'_>,
    to: BorrowedFd<'_>,
    src_off: u64,
    dst_off: u64,
    len: u64,
) -> std::io::Result<u64> {
    let mut done = 0u64;
    while done < len {
        let want = (len - done).min(CALL_BYTES_MAX) as usize;
        match rnfs_sys::copy_file_range(from, src_off + done, to, dst_off + done, want) {
            Ok(0) => break,
            Ok(n) => done += n as u64,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(done)
}

/// Copies up to `len` bytes through one [`BUFFER_BYTES`] buffer; `Err` only when nothing was
/// copied.
fn buffered_copy(
    from: BorrowedFd<'_>,
    to: BorrowedFd<'_>,
    src_off: u64,
    dst_off: u64,
    len: u64,
) -> std::io::Result<u64> {
    crate::v42::buffered_copy(
        (src_off, dst_off),
        len,
        BUFFER_BYTES,
        |off, buf| rnfs_sys::pread(from, buf, off),
        |off, buf| rnfs_sys::pwrite_all(to, buf, off),
    )
}

impl LocalFs {
    /// COPY: see the module docs. Returns the bytes copied (0 at or past the end of `src`).
    pub(super) fn do_copy_range(
        &self,
        who: &Identity,
        src: &VerifiedHandle,
        dst: &VerifiedHandle,
        (src_off, dst_off): (u64, u64),
        len: u64,
    ) -> Result<u64> {
        check_ends(src_off, dst_off, len)?;
        let (from, _) = self.open_for_read(who, src)?;
        let (to, _, as_who) = self.open_for_write(who, self.body(dst))?;
        let copied = match kernel_copy(from.fd(), to.fd(), src_off, dst_off, len) {
            Err(e) if kernel_cannot(&e) => buffered_copy(from.fd(), to.fd(), src_off, dst_off, len),
            other => other,
        }
        .map_err(op_error)?;
        drop(as_who);
        if copied > 0 {
            to.mark_dirty();
        }
        Ok(copied)
    }

    /// CLONE: see the module docs. `len` 0 clones to the end of `src`.
    pub(super) fn do_clone_range(
        &self,
        who: &Identity,
        src: &VerifiedHandle,
        dst: &VerifiedHandle,
        (src_off, dst_off): (u64, u64),
        len: u64,
    ) -> Result<()> {
        check_ends(src_off, dst_off, len)?;
        let (from, _) = self.open_for_read(who, src)?;
        let (to, _, as_who) = self.open_for_write(who, self.body(dst))?;
        rnfs_sys::clone_range(from.fd(), src_off, to.fd(), dst_off, len).map_err(clone_error)?;
        drop(as_who);
        to.mark_dirty();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_refusals_are_not_supported() {
        for errno in [libc::EOPNOTSUPP, libc::EXDEV, libc::EINVAL, libc::ENOTTY] {
            let e = std::io::Error::from_raw_os_error(errno);
            assert_eq!(clone_error(e), Error::NotSupp, "errno {errno}");
        }
        let e = std::io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(clone_error(e), Error::NoSpc);
        let e = std::io::Error::from_raw_os_error(libc::ETXTBSY);
        assert_eq!(clone_error(e), Error::Access);
    }

    #[test]
    fn ranges_past_the_largest_file_are_too_big() {
        assert_eq!(check_ends(0, 0, i64::MAX as u64), Ok(()));
        assert_eq!(check_ends(1, 0, i64::MAX as u64), Err(Error::FBig));
        assert_eq!(check_ends(0, u64::MAX, 1), Err(Error::FBig));
    }
}
