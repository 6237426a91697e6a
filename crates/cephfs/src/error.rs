//! Errors of libcephfs calls: the negated `errno` each call returns, as an enum.

use rnfs_cephfs_sys::LoadError;

pub type Result<T> = std::result::Result<T, Error>;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// libcephfs itself could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A call returned an error.
    #[error("{op}: {errno}")]
    Call { op: &'static str, errno: Errno },
    /// A name or string argument that cannot be passed to C (empty, `/` or NUL inside).
    #[error("{op}: invalid name")]
    BadName { op: &'static str },
}

impl Error {
    /// The errno to report, for callers that map errors on (`EINVAL` for a bad name).
    pub fn errno(&self) -> i32 {
        match self {
            Error::Load(_) => libc::ENOSYS,
            Error::Call { errno, .. } => errno.raw(),
            Error::BadName { .. } => libc::EINVAL,
        }
    }
}

/// The errors libcephfs calls return, named; [`Errno::Other`] keeps any other number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Errno {
    #[error("operation not permitted")]
    Perm,
    #[error("no such file or directory")]
    NoEnt,
    #[error("I/O error")]
    Io,
    #[error("out of memory")]
    NoMem,
    #[error("permission denied")]
    Access,
    #[error("file exists")]
    Exist,
    #[error("cross-device link")]
    XDev,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("invalid argument")]
    Inval,
    #[error("file too large")]
    FBig,
    #[error("no space left on device")]
    NoSpc,
    #[error("read-only file system")]
    RoFs,
    #[error("too many links")]
    MLink,
    #[error("name too long")]
    NameTooLong,
    #[error("directory not empty")]
    NotEmpty,
    #[error("quota exceeded")]
    DQuot,
    #[error("stale file handle")]
    Stale,
    #[error("operation not supported")]
    NotSupp,
    #[error("timed out")]
    TimedOut,
    #[error("too many levels of symbolic links")]
    Loop,
    /// The client was evicted and blocklisted by the cluster (Ceph's `EBLOCKLISTED`): none of
    /// its calls will succeed again; only a new client (a new mount) can serve.
    #[error("client evicted (blocklisted) by the cluster")]
    Blocklisted,
    /// The client is not mounted (any more): libcephfs unmounts a client by force when a
    /// recalled delegation is not returned in time. Like [`Errno::Blocklisted`], final.
    #[error("client not mounted (unmounted by force)")]
    NotConnected,
    #[error("errno {0}")]
    Other(i32),
}

const TABLE: &[(i32, Errno)] = &[
    (libc::EPERM, Errno::Perm),
    (libc::ENOENT, Errno::NoEnt),
    (libc::EIO, Errno::Io),
    (libc::ENOMEM, Errno::NoMem),
    (libc::EACCES, Errno::Access),
    (libc::EEXIST, Errno::Exist),
    (libc::EXDEV, Errno::XDev),
    (libc::ENOTDIR, Errno::NotDir),
    (libc::EISDIR, Errno::IsDir),
    (libc::EINVAL, Errno::Inval),
    (libc::EFBIG, Errno::FBig),
    (libc::ENOSPC, Errno::NoSpc),
    (libc::EROFS, Errno::RoFs),
    (libc::EMLINK, Errno::MLink),
    (libc::ENAMETOOLONG, Errno::NameTooLong),
    (libc::ENOTEMPTY, Errno::NotEmpty),
    (libc::EDQUOT, Errno::DQuot),
    (libc::ESTALE, Errno::Stale),
    (libc::EOPNOTSUPP, Errno::NotSupp),
    (libc::ETIMEDOUT, Errno::TimedOut),
    (libc::ELOOP, Errno::Loop),
    // Ceph defines EBLOCKLISTED as ESHUTDOWN.
    (libc::ESHUTDOWN, Errno::Blocklisted),
    (libc::ENOTCONN, Errno::NotConnected),
];

impl Errno {
    /// The enum for a (positive) errno.
    pub fn from_raw(errno: i32) -> Errno {
        TABLE
            .iter()
            .find(|(n, _)| *n == errno)
            .map_or(Errno::Other(errno), |(_, e)| *e)
    }

    /// The (positive) errno.
    pub fn raw(self) -> i32 {
        match self {
            Errno::Other(n) => n,
            e => TABLE
                .iter()
                .find(|(_, t)| *t == e)
                .map_or(libc::EIO, |(n, _)| *n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos_round_trip() {
        for (n, e) in TABLE {
            assert_eq!(Errno::from_raw(*n), *e);
            assert_eq!(e.raw(), *n);
        }
        assert_eq!(Errno::from_raw(9999), Errno::Other(9999));
        assert_eq!(Errno::Other(9999).raw(), 9999);
    }
}
