//! The server's NFSv4 state (a layer below the `nfs4` program, like `locking` below NLM): one [`rnfs_nfs4state::Nfs4State`] behind a leaf lock, the
//! server's identity for EXCHANGE_ID, and the timer's part (lease expiry, whose released state
//! is freed in the shared lock manager).
//!
//! # Locks (liveness)
//! `state` is a leaf lock held for one state-machine call (no I/O, no other lock taken inside).
//! Calls into [`crate::locking::Locking`] are made after it is released, never under it.

use bytes::Bytes;
use rnfs_nfs4state::{self as st, ClientId, Expiry, Nfs4State, StateInfo, StateRef};
use tracing::info;

use crate::lockdep::TrackedMutex;
use crate::locking::Locking;

/// The manager's client key of an NFSv4 client: not an address followed by a space, so it never
/// reads as an NLM key (`crate::locking::split_client_key`).
pub fn client_key(id: u64) -> Bytes {
    Bytes::from(format!("nfs4:{id:016x}"))
}

/// The NFSv4 client id of a manager client key, if it is one.
pub fn client_of_key(key: &[u8]) -> Option<u64> {
    let hex = std::str::from_utf8(key.strip_prefix(b"nfs4:")?).ok()?;
    u64::from_str_radix(hex, 16).ok()
}

/// The manager's owner key of an open-owner (its share reservations).
pub fn open_owner_key(owner: &[u8]) -> Bytes {
    let mut k = Vec::with_capacity(owner.len() + 1);
    k.push(b'o');
    k.extend_from_slice(owner);
    Bytes::from(k)
}

/// The manager's owner key of a lock-owner (its byte ranges).
pub fn lock_owner_key(owner: &[u8]) -> Bytes {
    let mut k = Vec::with_capacity(owner.len() + 1);
    k.push(b'l');
    k.extend_from_slice(owner);
    Bytes::from(k)
}

/// A client as `rnfsd ctl` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct V4ClientInfo {
    pub clientid: String,
    pub owner: String,
    pub lease_age_ms: u64,
    pub courtesy: bool,
    pub sessions: usize,
    pub slots_in_use: usize,
    pub opens: usize,
    pub locks: usize,
}

/// Server-wide NFSv4 state (one per [`crate::service::Service`]).
pub struct V4State {
    state: TrackedMutex<Nfs4State>,
    lease_s: u32,
    owner: Bytes,
}

impl V4State {
    pub fn new(now_ms: u64) -> V4State {
        let limits = st::Limits::default();
        let lease_s = (limits.lease_ms / 1000) as u32;
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs() as u32)
            .max(1);
        let mut secret = [0u8; 16];
        secret[..8].copy_from_slice(&crate::random_verifier());
        secret[8..].copy_from_slice(&crate::random_verifier());
        let config = st::Config::new(limits, epoch, secret, Vec::new());
        #[allow(clippy::expect_used)]
        let state = Nfs4State::new(now_ms, config).expect("the default NFSv4 limits are valid");
        V4State {
            state: TrackedMutex::new("nfs4.state", state),
            lease_s,
            owner: Bytes::from(format!("rnfsd:{}", hostname())),
        }
    }

    /// Runs `f` on the state machine under its lock.
    pub fn with<R>(&self, f: impl FnOnce(&mut Nfs4State) -> R) -> R {
        f(&mut self.state.lock())
    }

    /// The lease time, in seconds (the `lease_time` attribute).
    pub fn lease_s(&self) -> u32 {
        self.lease_s
    }

    /// `so_major_id` and `eir_server_scope`: the same for every start of this host's server.
    pub fn server_owner(&self) -> Bytes {
        self.owner.clone()
    }

    pub fn lock_info(&self) -> crate::lockdep::LockInfo {
        self.state.info()
    }

    /// The timer's part: clients whose lease ran out become courtesy clients; those purged have
    /// their opens and locks freed in the lock manager.
    pub fn housekeeping(&self, now_ms: u64, locking: &Locking) {
        let expired = self.with(|s| s.tick(now_ms));
        for e in expired {
            match e {
                Expiry::Courtesy(id) => {
                    info!(clientid = id.0, "NFSv4 lease expired: courtesy client")
                }
                Expiry::Purged(r) => {
                    info!(clientid = r.clientid.0, reason = ?r.reason, "NFSv4 client state purged");
                    release(now_ms, locking, r.clientid, &r.states);
                }
            }
        }
    }

    /// Expires a courtesy client now (another client conflicts with it); true if it was one.
    pub fn expire_courtesy(&self, now_ms: u64, id: u64, locking: &Locking) -> bool {
        let released = self.with(|s| {
            if s.is_courtesy(ClientId(id)) {
                s.expire(ClientId(id))
            } else {
                None
            }
        });
        match released {
            Some(r) => {
                info!(
                    clientid = id,
                    "courtesy client expired: another client needs its state"
                );
                release(now_ms, locking, r.clientid, &r.states);
                true
            }
            None => false,
        }
    }

    /// Expires any client by hand (`rnfsd ctl`); false if unknown.
    pub fn expire(&self, now_ms: u64, id: u64, locking: &Locking) -> bool {
        match self.with(|s| s.expire(ClientId(id))) {
            Some(r) => {
                release(now_ms, locking, r.clientid, &r.states);
                true
            }
            None => false,
        }
    }

    pub fn clients(&self, now_ms: u64) -> Vec<V4ClientInfo> {
        self.with(|s| {
            s.clients(now_ms)
                .into_iter()
                .map(|c| V4ClientInfo {
                    clientid: format!("{:016x}", c.clientid.0),
                    owner: String::from_utf8_lossy(&c.owner).into_owned(),
                    lease_age_ms: c.lease_age_ms,
                    courtesy: c.courtesy,
                    sessions: c.sessions,
                    slots_in_use: c.slots_in_use,
                    opens: c.opens,
                    locks: c.locks,
                })
                .collect()
        })
    }
}

/// Frees a client's opens (share reservations) and lock-owners' ranges in the lock manager.
pub fn release(now_ms: u64, locking: &Locking, id: ClientId, states: &[StateRef]) {
    let client = client_key(id.0);
    let granted = locking.with_manager(None, |m, mirror| {
        let mut granted = Vec::new();
        for s in states {
            let owner = match &s.info {
                StateInfo::Open { owner, .. } => open_owner_key(owner),
                StateInfo::Lock { owner, .. } => lock_owner_key(owner),
            };
            if let Some(o) = m.owner_id(&client, &owner) {
                granted.extend(m.free_owner(now_ms, o, mirror));
            }
        }
        granted
    });
    locking.push_granted(granted);
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_do_not_collide_with_nlm() {
        let k = client_key(0x1234);
        assert_eq!(client_of_key(&k), Some(0x1234));
        assert!(crate::locking::split_client_key(&k).is_none());
        assert_eq!(client_of_key(b"127.0.0.1 host"), None);
        let _ = V4State::new(0);
    }
}
