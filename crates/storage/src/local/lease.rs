//! Leases for NFSv4 delegations ([`crate::Backend::lease`]): the kernel tells this process when
//! a local process opens a delegated file (see [`rnfs_sys::lease`]), makes that process wait, the
//! server recalls the delegation, and [`Leases::release`] (the delegation returned or revoked)
//! lets the process go on.
//!
//! * A **read** delegation's lease is a read lease on a descriptor of its own, opened read-only
//!   as root: broken by any open for writing (this server's own included).
//! * A **write** delegation's lease is a write lease on the open-file cache's read-write
//!   descriptor of the file, which must be its only open description: the holder's own READs and
//!   WRITEs go through it and break nothing, any other open breaks it. Kept here too, so that a
//!   write finding the cache without it uses it again instead of opening the file anew
//!   ([`Leases::write_file`]).
//!
//! # Locking
//! `inner` is a leaf lock held for map operations only: every system call (open, `fcntl`,
//! close) happens outside it, on descriptors shared through `Arc`.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

use super::cache::OpenFile;

#[derive(Debug, Clone)]
enum Held {
    Read(Arc<OwnedFd>),
    Write { body: Vec<u8>, file: Arc<OpenFile> },
}

impl Held {
    fn still_held(&self) -> bool {
        let (fd, write) = match self {
            Held::Read(fd) => (fd.as_fd(), false),
            Held::Write { file, .. } => (file.fd(), true),
        };
        rnfs_sys::lease::lease_held(fd, write).unwrap_or(false)
    }
}

#[derive(Debug, Default)]
struct Maps {
    /// Handle bytes → lease.
    by_key: HashMap<Bytes, Held>,
    /// Kernel handle body → the write-leased descriptor.
    writes: HashMap<Vec<u8>, Arc<OpenFile>>,
}

/// The leases of one export.
#[derive(Debug)]
pub struct Leases {
    inner: Mutex<Maps>,
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
    fn maps(&self) -> std::sync::MutexGuard<'_, Maps> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Leases held.
    pub fn len(&self) -> usize {
        self.maps().by_key.len()
    }

    /// No lease held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `key` is leased.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.maps().by_key.contains_key(key)
    }

    /// Takes a read lease on `fd` (open read-only) and keeps it under `key`. `Ok(false)`: the
    /// file is open for writing somewhere, or the leases are at their bound.
    pub fn take_read(&self, key: Bytes, fd: OwnedFd) -> std::io::Result<bool> {
        if self.len() >= self.max || !rnfs_sys::lease::take_read_lease(fd.as_fd())? {
            return Ok(false);
        }
        let previous = self.maps().by_key.insert(key, Held::Read(Arc::new(fd)));
        drop(previous); // a racing lease of the same file: closed outside the lock
        Ok(true)
    }

    /// Takes a write lease on `file` (read-write, the file's only open description) and keeps
    /// it under `key` and `body`. `Ok(false)`: the file is open elsewhere, or at the bound.
    pub fn take_write(
        &self,
        key: Bytes,
        body: &[u8],
        file: Arc<OpenFile>,
    ) -> std::io::Result<bool> {
        if self.len() >= self.max || !rnfs_sys::lease::take_write_lease(file.fd())? {
            return Ok(false);
        }
        let held = Held::Write {
            body: body.to_vec(),
            file: file.clone(),
        };
        let previous = {
            let mut maps = self.maps();
            maps.writes.insert(body.to_vec(), file);
            maps.by_key.insert(key, held)
        };
        drop(previous);
        Ok(true)
    }

    /// The write-leased descriptor of the file with kernel handle body `body`, if any.
    pub fn write_file(&self, body: &[u8]) -> Option<Arc<OpenFile>> {
        self.maps().writes.get(body).cloned()
    }

    /// Releases the lease on `key` (a write-leased descriptor stays open in the cache).
    pub fn release(&self, key: &[u8]) {
        let gone = {
            let mut maps = self.maps();
            let gone = maps.by_key.remove(key);
            if let Some(Held::Write { body, .. }) = &gone {
                maps.writes.remove(body);
            }
            gone
        };
        if let Some(Held::Write { file, .. }) = &gone {
            let _ = rnfs_sys::lease::release_lease(file.fd());
        }
        drop(gone);
    }

    /// The keys whose lease is being broken or was broken by the kernel.
    pub fn broken(&self) -> Vec<Bytes> {
        let all: Vec<(Bytes, Held)> = self
            .maps()
            .by_key
            .iter()
            .map(|(k, h)| (k.clone(), h.clone()))
            .collect();
        all.into_iter()
            .filter(|(_, h)| !h.still_held())
            .map(|(k, _)| k)
            .collect()
    }
}
