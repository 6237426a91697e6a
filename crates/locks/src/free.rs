//! Dropping all the state of an owner or a client: NLM FREE_ALL and SM_NOTIFY (the client
//! rebooted), NFSv4 lease expiry and RELEASE_LOCKOWNER.

use std::collections::BTreeSet;

use crate::{ClientId, FileId, Granted, LockManager, Mirror, OwnerId};

impl LockManager {
    /// Drops every lock, share and waiter of `owner`, releasing its locks in the mirror. Returns
    /// the waiters of other owners granted as a consequence.
    pub fn free_owner(
        &mut self,
        now_ms: u64,
        owner: OwnerId,
        mirror: &mut dyn Mirror,
    ) -> Vec<Granted> {
        self.free_owners(now_ms, &[owner], mirror)
    }

    /// Drops every lock, share and waiter of every owner of `client` (NLM FREE_ALL, SM_NOTIFY).
    /// Returns the waiters of other clients granted as a consequence.
    pub fn free_client(
        &mut self,
        now_ms: u64,
        client: ClientId,
        mirror: &mut dyn Mirror,
    ) -> Vec<Granted> {
        let Some(state) = self.clients.get(client.0) else {
            return Vec::new();
        };
        let owners: Vec<OwnerId> = state.owner_ids.values().copied().collect();
        self.free_owners(now_ms, &owners, mirror)
    }

    /// Strips all the owners first and only then grants waiters, so that no waiter of an owner
    /// being freed is granted on the way.
    fn free_owners(
        &mut self,
        now_ms: u64,
        owners: &[OwnerId],
        mirror: &mut dyn Mirror,
    ) -> Vec<Granted> {
        let mut lock_files = BTreeSet::new();
        let mut all_files = BTreeSet::new();
        for &owner in owners {
            let (locked, touched) = self.strip_owner(owner, mirror);
            lock_files.extend(locked);
            all_files.extend(touched);
        }
        let granted: Vec<Granted> = lock_files
            .iter()
            .flat_map(|&file| self.regrant(now_ms, file, mirror))
            .collect();
        self.counters.waiter_grants += granted.len() as u64;
        for &owner in owners {
            self.collect_owner(owner);
        }
        for file in all_files {
            self.collect_file(file);
        }
        granted
    }

    /// Removes `owner`'s waiters, shares and locks. Returns the files where it held locks, and all
    /// the files it touched.
    fn strip_owner(
        &mut self,
        owner: OwnerId,
        mirror: &mut dyn Mirror,
    ) -> (Vec<FileId>, Vec<FileId>) {
        let Some(state) = self.owners.get_mut(owner.0) else {
            return (Vec::new(), Vec::new());
        };
        let waiters = std::mem::take(&mut state.waiters);
        let share_files = std::mem::take(&mut state.share_files);
        let lock_files: Vec<FileId> = state.lock_files.iter().copied().collect();
        let mut touched: Vec<FileId> = Vec::new();
        for id in waiters {
            if let Some(waiter) = self.remove_waiter(id) {
                touched.push(waiter.ids.file);
            }
        }
        for &file in &share_files {
            self.remove_share(owner, file);
            touched.push(file);
        }
        for &file in &lock_files {
            self.drop_locks(owner, file, mirror);
        }
        touched.extend(&lock_files);
        (lock_files, touched)
    }

    /// Removes all of `owner`'s ranges on `file` and releases them in the mirror.
    fn drop_locks(&mut self, owner: OwnerId, file: FileId, mirror: &mut dyn Mirror) {
        let Some(state) = self.files.get_mut(file.0) else {
            return;
        };
        let Some(held) = state.locks.remove(&owner) else {
            return;
        };
        let count = held.segs.len();
        state.lock_count = state.lock_count.saturating_sub(count);
        let key = state.key.clone();
        self.locks_total = self.locks_total.saturating_sub(count);
        if let Some(client) = self.clients.get_mut(held.client.0) {
            client.lock_count = client.lock_count.saturating_sub(count);
        }
        if let Some(o) = self.owners.get_mut(owner.0) {
            o.lock_files.remove(&file);
        }
        for (range, _) in held.segs.iter() {
            mirror.release(file, &key, owner, range);
        }
    }
}
