//! What the backends' NFSv4.2 calls (RFC 7862) share: the checks of a range, the
//! `fallocate(2)` mode of ALLOCATE and DEALLOCATE, and COPY through a bounded buffer.

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

/// Copies up to `len` bytes from `src_off` to `dst_off` through one buffer of at most
/// `buffer_bytes`: `read` fills a buffer at a source offset (0 at the end), `write` writes one
/// at a destination offset and returns how many bytes it wrote. Stops at the end of the source;
/// `Err` only when nothing was copied (an error after some bytes ends the copy there, and comes
/// back on the next call).
pub(crate) fn buffered_copy(
    (src_off, dst_off): (u64, u64),
    len: u64,
    buffer_bytes: usize,
    mut read: impl FnMut(u64, &mut [u8]) -> std::io::Result<usize>,
    mut write: impl FnMut(u64, &[u8]) -> std::io::Result<usize>,
) -> std::io::Result<u64> {
    let mut buf = vec![0u8; buffer_bytes.min(usize::try_from(len).unwrap_or(usize::MAX))];
    let mut done = 0u64;
    while done < len {
        let want = (len - done).min(buf.len() as u64) as usize;
        let step = read(src_off + done, &mut buf[..want])
            .and_then(|n| write(dst_off + done, &buf[..n]).map(|w| (n, w)));
        match step {
            Ok((0, _)) => break,
            Ok((_, w)) => done += w as u64,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(done)
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

    #[test]
    fn a_buffered_copy_stops_at_the_end_and_reports_what_it_copied() {
        let src: Vec<u8> = (0..100u8).collect();
        let mut dst = [0u8; 120];
        let read = |off: u64, b: &mut [u8]| {
            let rest = src.get(off as usize..).unwrap_or(&[]);
            let n = rest.len().min(b.len());
            b[..n].copy_from_slice(&rest[..n]);
            Ok(n)
        };
        let n = buffered_copy((10, 5), 1000, 7, read, |off, b| {
            dst[off as usize..off as usize + b.len()].copy_from_slice(b);
            Ok(b.len())
        })
        .unwrap();
        assert_eq!(n, 90);
        assert_eq!(&dst[5..95], &src[10..]);
        // An error after some bytes ends the copy with those; before any, it is the answer.
        let mut calls = 0;
        let failing = |_: u64, b: &[u8]| {
            calls += 1;
            if calls > 2 {
                Err(std::io::Error::from_raw_os_error(libc::EIO))
            } else {
                Ok(b.len())
            }
        };
        assert_eq!(buffered_copy((0, 0), 100, 10, read, failing).unwrap(), 20);
        let never = |_: u64, _: &[u8]| Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(buffered_copy((0, 0), 100, 10, read, never).is_err());
    }
}
