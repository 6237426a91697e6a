//! The NFS view of extended attributes, shared by the backends (RFC 8276 §5.2): only the
//! `user.` namespace is reachable, an NFS name `foo` is `user.foo` in the file system, and
//! listings show only `user.` names, without the prefix. Values and lists are read into buffers
//! sized from the file system's answer, never from a client's number.

use bytes::Bytes;
use std::ffi::CString;

use crate::{Error, Result, XATTR_NAME_BYTES_MAX, XATTR_USER_PREFIX};

/// How often a value or list that changed size between "how long?" and "give it" is asked for
/// again before giving up.
const SIZE_RACE_RETRIES: usize = 4;

/// `user.` + `name`, or why not: empty or containing NUL is [`Error::Inval`], too long
/// [`Error::NameTooLong`].
pub(crate) fn user_name(name: &[u8]) -> Result<CString> {
    if name.is_empty() || name.contains(&0) {
        return Err(Error::Inval);
    }
    if name.len() > XATTR_NAME_BYTES_MAX {
        return Err(Error::NameTooLong);
    }
    let mut full = Vec::with_capacity(XATTR_USER_PREFIX.len() + name.len() + 1);
    full.extend_from_slice(XATTR_USER_PREFIX.as_bytes());
    full.extend_from_slice(name);
    CString::new(full).map_err(|_| Error::Inval)
}

/// The `user.` names of a kernel name list (NUL-separated), without their prefix.
pub(crate) fn user_names(list: &[u8]) -> Vec<Bytes> {
    list.split(|&b| b == 0)
        .filter_map(|n| n.strip_prefix(XATTR_USER_PREFIX.as_bytes()))
        .filter(|n| !n.is_empty())
        .map(Bytes::copy_from_slice)
        .collect()
}

/// Reads something whose length the kernel tells first (`fill(&mut [])`), at most `max` bytes:
/// longer is [`Error::XattrTooBig`]. A size that changes in between is asked for again.
pub(crate) fn read_sized(
    max: usize,
    mut fill: impl FnMut(&mut [u8]) -> std::io::Result<usize>,
) -> Result<Vec<u8>> {
    for _ in 0..SIZE_RACE_RETRIES {
        let len = fill(&mut [])?;
        if len > max {
            return Err(Error::XattrTooBig);
        }
        let mut buf = vec![0u8; len];
        match fill(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            // It grew since: ask again.
            Err(e) if e.raw_os_error() == Some(libc::ERANGE) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::XattrTooBig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_get_the_user_prefix_and_lose_it_in_listings() {
        assert_eq!(user_name(b"foo").unwrap().as_bytes(), b"user.foo");
        assert_eq!(user_name(b"").unwrap_err(), Error::Inval);
        assert_eq!(user_name(b"a\0b").unwrap_err(), Error::Inval);
        let long = vec![b'x'; XATTR_NAME_BYTES_MAX];
        assert_eq!(user_name(&long).unwrap().as_bytes().len(), 255);
        let longer = vec![b'x'; XATTR_NAME_BYTES_MAX + 1];
        assert_eq!(user_name(&longer).unwrap_err(), Error::NameTooLong);
        let list = b"security.selinux\0user.a\0trusted.t\0user.user.b\0user.\0";
        assert_eq!(
            user_names(list),
            vec![Bytes::from("a"), Bytes::from("user.b")]
        );
        assert!(user_names(b"").is_empty());
    }

    #[test]
    fn sized_reads_are_bounded_and_retried() {
        assert_eq!(
            read_sized(4, |b| Ok(if b.is_empty() {
                3
            } else {
                b.copy_from_slice(b"abc");
                3
            }))
            .unwrap(),
            b"abc"
        );
        assert_eq!(read_sized(2, |_| Ok(3)).unwrap_err(), Error::XattrTooBig);
        // Always growing in between: gives up after a few tries.
        let mut n = 0;
        let grows = |b: &mut [u8]| {
            n += 1;
            if b.is_empty() {
                Ok(1)
            } else {
                Err(std::io::Error::from_raw_os_error(libc::ERANGE))
            }
        };
        assert_eq!(read_sized(8, grows).unwrap_err(), Error::XattrTooBig);
        assert_eq!(n, 2 * SIZE_RACE_RETRIES);
    }
}
