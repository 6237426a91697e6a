//! Leases for NFSv4 delegations on a CephFS export ([`crate::Backend::lease`]), held as
//! libcephfs delegations ([`rnfs_cephfs::Delegation`]): this head's Ceph client keeps its caps
//! on the file for the NFS client, and the MDS recalls them when another head (or any CephFS
//! client) opens the file for writing, so a delegation holds across heads.
//!
//! * Only **read** delegations: a write delegation would conflict with this head's own opens for
//!   the holder's READs and WRITEs (each call opens the file), so none is granted.
//! * While a read delegation is held, this head's own opens for writing fail with EAGAIN, which
//!   the backend answers [`crate::Error::Delay`] (NFS3ERR_JUKEBOX, NFS4ERR_DELAY), as the local
//!   backend does for a leased file.
//! * A recall is a flag libcephfs sets from its own thread ([`Delegations::recalled`] reads
//!   them); the server then recalls the NFS delegation and releases the lease when it is
//!   returned or revoked, which it must do within [`Delegations::timeout_ms`], or libcephfs
//!   unmounts this client by force (the head then stops, as a fenced one: `Error::Fenced`).
//!
//! # Locking
//! The map's lock is a leaf held for map operations only: the libcephfs calls (open,
//! `ceph_ll_delegation`, close) run outside it.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use rnfs_cephfs::{Delegation, Mount, Perm};
use tracing::warn;

use super::{err, file_type, CephFs};
use crate::{FileType, Result, VerifiedHandle};

/// Delegations held at most per export: each keeps an open file and this client's caps.
pub const DELEGATIONS_MAX: usize = 4096;

/// The delegations of one export, by file handle bytes.
pub struct Delegations {
    held: Mutex<HashMap<Bytes, Delegation>>,
    /// `None`: the mount could not enable delegations (none are granted).
    timeout_ms: Option<u64>,
}

impl Delegations {
    /// Enables delegations on `mount`; without them (an old cluster) none are granted.
    pub fn new(mount: &Mount) -> Delegations {
        let timeout_ms = match mount.enable_delegations() {
            Ok(secs) => Some(u64::from(secs) * 1000),
            Err(e) => {
                warn!(error = %e, "CephFS delegations unavailable: no NFSv4 delegation on this export");
                None
            }
        };
        Delegations {
            held: Mutex::default(),
            timeout_ms,
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<Bytes, Delegation>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How long a recalled delegation may take to come back before libcephfs unmounts this
    /// client; `None` when delegations are off.
    pub fn timeout_ms(&self) -> Option<u64> {
        self.timeout_ms
    }

    /// The keys libcephfs asked back.
    pub fn recalled(&self) -> Vec<Bytes> {
        self.held()
            .iter()
            .filter(|(_, d)| d.recalled())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Returns the delegation of `key` (nothing if none), outside the lock.
    pub fn release(&self, key: &[u8]) {
        let gone = self.held().remove(key);
        drop(gone);
    }

    /// Delegations held now.
    pub fn len(&self) -> usize {
        self.held().len()
    }
}

impl CephFs {
    /// [`crate::Backend::lease`]: a read delegation on the regular file `fh`.
    pub(super) fn take_delegation(&self, fh: &VerifiedHandle, write: bool) -> Result<bool> {
        if write || self.delegations.timeout_ms.is_none() {
            return Ok(false);
        }
        let key = fh.handle().to_bytes();
        let len = {
            let held = self.delegations.held();
            if held.contains_key(&key) {
                return Ok(true);
            }
            held.len()
        };
        if len >= DELEGATIONS_MAX {
            return Ok(false);
        }
        let root = Perm::new(0, 0, &[]).map_err(err)?;
        let i = self.inode(fh)?;
        let st = self.mount.getattr(&i, &root).map_err(err)?;
        if file_type(st.mode) != FileType::Regular {
            return Ok(false);
        }
        let file = self.mount.open(&i, libc::O_RDONLY, &root).map_err(err)?;
        let Some(d) = Delegation::take(file, false).map_err(err)? else {
            return Ok(false);
        };
        // A racing lease of the same file: the older one is returned outside the lock.
        let previous = self.delegations.held().insert(key, d);
        drop(previous);
        Ok(true)
    }

    /// Delegations held (see `deleg`).
    pub fn delegations_held(&self) -> usize {
        self.delegations.len()
    }
}
