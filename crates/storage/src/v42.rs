//! What the backends' NFSv4.2 calls (RFC 7862) share: the checks of a range and the
//! `fallocate(2)` mode of ALLOCATE and DEALLOCATE.

use crate::{Error, Result};

/// `offset..offset + len` ends within what a file can hold (`loff_t`), or [`Error::FBig`].
pub(crate) fn range_fits(offset: u64, len: u64) -> Result<()> {
    match offset.checked_add(len) {
        Some(end) if end <= i64::MAX as u64 => Ok(()),
        _ => Err(Error::FBig),
    }
}

/// ALLOCATE's and DEALLOCATE's range: it fits a file and is not empty ([`Error::Inval`]).
pub(crate) fn allocation_fits(offset: u64, len: u64) -> Result<()> {
    range_fits(offset, len)?;
    if len == 0 {
        return Err(Error::Inval);
    }
    Ok(())
}

/// The `fallocate(2)` mode of DEALLOCATE (`punch`: a hole that keeps the size) or ALLOCATE.
pub(crate) fn fallocate_mode(punch: bool) -> i32 {
    if punch {
        libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_must_fit_a_file() {
        assert_eq!(range_fits(0, i64::MAX as u64), Ok(()));
        assert_eq!(range_fits(1, i64::MAX as u64), Err(Error::FBig));
        assert_eq!(range_fits(u64::MAX, 1), Err(Error::FBig));
        assert_eq!(allocation_fits(5, 0), Err(Error::Inval));
        assert_eq!(allocation_fits(5, 1), Ok(()));
    }
}
