//! Read leases for NFSv4 read delegations ([`crate::Backend::lease`]): one descriptor per
//! leased file, opened read-only as root, holding a kernel read lease (see
//! [`rnfs_sys::lease`]). A local process that opens the file for writing breaks it: the kernel
//! makes that process wait and signals this one, the server recalls the delegation, and
//! [`Leases::release`] (the delegation returned or revoked) closes the descriptor, which lets
//! the process go on.
//!
//! # Locking
//! `inner` is a leaf lock held for map operations only: every system call (open, `fcntl`,
//! close) happens outside it, on descriptors shared through `Arc`.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

/// The leases of one export: handle bytes → leased descriptor.
#[derive(Debug)]
pub struct Leases {
    inner: Mutex<HashMap<Bytes, Arc<OwnedFd>>>,
    /// Leases held at most: each is an open file, and the process's other files (connections,
    /// cached files, loan pipes) must not run out because clients collect delegations.
    max: usize,
}

impl Default for Leases {
    fn default() -> Self {
        let limit = rnfs_sys::open_files_limit().unwrap_or(1024);
        Leases {
            inner: Mutex::default(),
            max: usize::try_from(limit / 4).unwrap_or(usize::MAX).max(1),
        }
    }
}

impl Leases {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Bytes, Arc<OwnedFd>>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Leases held.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// No lease held.
    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }

    /// Whether `key` is leased.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.map().contains_key(key)
    }

    /// Takes a read lease on `fd` (open read-only) and keeps it under `key`. `Ok(false)`: the
    /// file is open for writing somewhere.
    pub fn take(&self, key: Bytes, fd: OwnedFd) -> std::io::Result<bool> {
        if self.len() >= self.max || !rnfs_sys::lease::take_read_lease(fd.as_fd())? {
            return Ok(false);
        }
        let previous = self.map().insert(key, Arc::new(fd));
        drop(previous); // a racing lease of the same file: closed outside the lock
        Ok(true)
    }

    /// Releases the lease on `key`.
    pub fn release(&self, key: &[u8]) {
        let gone = self.map().remove(key);
        drop(gone);
    }

    /// The keys whose lease is being broken or was broken by the kernel.
    pub fn broken(&self) -> Vec<Bytes> {
        let all: Vec<(Bytes, Arc<OwnedFd>)> = self
            .map()
            .iter()
            .map(|(k, fd)| (k.clone(), fd.clone()))
            .collect();
        all.into_iter()
            .filter(|(_, fd)| !rnfs_sys::lease::read_lease_held(fd.as_fd()).unwrap_or(false))
            .map(|(k, _)| k)
            .collect()
    }
}
