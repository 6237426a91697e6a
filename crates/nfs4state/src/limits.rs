//! The bounds on the state machine. Every table it keeps is bounded by one of these, so its
//! memory is bounded whatever clients send.

/// Bounds on clients, sessions, the slot reply cache and stateids, and the lease timers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Client records (confirmed, unconfirmed and courtesy) at once.
    pub clients_max: usize,
    /// Sessions of one client.
    pub sessions_per_client_max: usize,
    /// Connections bound to one session.
    pub conns_per_session_max: usize,
    /// Fore-channel slots granted to one session at most (the ca_maxrequests ceiling).
    pub slots_max: usize,
    /// Bytes of one cached reply (the ca_maxresponsesize_cached ceiling).
    pub slot_reply_bytes_max: usize,
    /// Bytes reserved for cached replies across all slots of all sessions. A session reserves
    /// `slots * ca_maxresponsesize_cached` when created, so a stored reply always fits.
    pub reply_cache_bytes_max: usize,
    /// Open and lock stateids of one client.
    pub stateids_per_client_max: usize,
    /// Open and lock stateids in the whole server.
    pub stateids_max: usize,
    /// Delegations of one client (each is also one of its stateids).
    pub delegations_per_client_max: usize,
    /// Delegations in the whole server.
    pub delegations_max: usize,
    /// Length of a client owner, open or lock owner, principal or file key (the XDR bound of
    /// those opaques is NFS4_OPAQUE_LIMIT, 1024).
    pub key_bytes_max: usize,
    /// The lease (RFC 8881 §8.3): a client silent for longer becomes a courtesy client.
    pub lease_ms: u64,
    /// How long a courtesy client keeps its state after its lease expired before it is purged.
    pub courtesy_ms: u64,
    /// The grace period after a restart (§8.4.2), when previous clients reclaim.
    pub grace_ms: u64,
    /// Operations in one COMPOUND (the ca_maxoperations ceiling).
    pub ops_per_compound_max: usize,
    /// Bytes of one request (the ca_maxrequestsize ceiling).
    pub request_bytes_max: usize,
    /// Bytes of one reply (the ca_maxresponsesize ceiling).
    pub response_bytes_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            clients_max: 4096,
            sessions_per_client_max: 8,
            conns_per_session_max: 16,
            slots_max: 64,
            slot_reply_bytes_max: 16 * 1024,
            reply_cache_bytes_max: 32 * 1024 * 1024,
            stateids_per_client_max: 16_384,
            stateids_max: 131_072,
            delegations_per_client_max: 1024,
            delegations_max: 4096,
            key_bytes_max: 1024,
            lease_ms: 90_000,
            courtesy_ms: 86_400_000,
            grace_ms: 90_000,
            ops_per_compound_max: 64,
            request_bytes_max: 1024 * 1024 + 64 * 1024,
            response_bytes_max: 1024 * 1024 + 64 * 1024,
        }
    }
}

/// A [`Limits`] that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    /// A limit is zero: nothing could ever be granted.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// A limit is below another one it must cover.
    #[error("{small} ({small_value}) must not exceed {large} ({large_value})")]
    Above {
        /// The limit that must be the smaller.
        small: &'static str,
        /// Its value.
        small_value: u64,
        /// The limit that must be the larger.
        large: &'static str,
        /// Its value.
        large_value: u64,
    },
    /// A channel size does not fit the u32 of the channel attributes.
    #[error("{0} must fit in 32 bits")]
    TooLarge(&'static str),
    /// The boot epoch is 0 or u32::MAX: stateids would look like the special stateids (whose
    /// `other` is all zeros or all ones, RFC 8881 §8.2.3).
    #[error("the boot epoch must be neither 0 nor u32::MAX")]
    Epoch,
}

impl Limits {
    /// Checks that every limit is at least 1 and that the limits that must cover one another do.
    pub fn validate(&self) -> Result<(), LimitsError> {
        let all = self.named();
        if let Some((name, _)) = all.iter().find(|(_, v)| *v == 0) {
            return Err(LimitsError::Zero(name));
        }
        for name in ["request_bytes_max", "response_bytes_max"] {
            let value = all.iter().find(|(n, _)| *n == name).map_or(0, |(_, v)| *v);
            if value > u64::from(u32::MAX) {
                return Err(LimitsError::TooLarge(name));
            }
        }
        let one_full_session =
            (self.slots_max as u64).saturating_mul(self.slot_reply_bytes_max as u64);
        let pairs = [
            // The part of a whole is at most the whole.
            (
                (
                    "stateids_per_client_max",
                    self.stateids_per_client_max as u64,
                ),
                ("stateids_max", self.stateids_max as u64),
            ),
            // A cached reply is a reply.
            (
                ("slot_reply_bytes_max", self.slot_reply_bytes_max as u64),
                ("response_bytes_max", self.response_bytes_max as u64),
            ),
            // One session with every slot full must fit in an empty cache, or the first session
            // of a fresh server would already be cut down.
            (
                ("slots_max * slot_reply_bytes_max", one_full_session),
                ("reply_cache_bytes_max", self.reply_cache_bytes_max as u64),
            ),
            // RFC 8881 §8.4.2.1: the grace period lasts at least one lease, so every client
            // that renews in time can reclaim.
            (("lease_ms", self.lease_ms), ("grace_ms", self.grace_ms)),
            (
                (
                    "delegations_per_client_max",
                    self.delegations_per_client_max as u64,
                ),
                ("delegations_max", self.delegations_max as u64),
            ),
            (
                (
                    "delegations_per_client_max",
                    self.delegations_per_client_max as u64,
                ),
                (
                    "stateids_per_client_max",
                    self.stateids_per_client_max as u64,
                ),
            ),
            (
                ("delegations_max", self.delegations_max as u64),
                ("stateids_max", self.stateids_max as u64),
            ),
        ];
        for ((small, small_value), (large, large_value)) in pairs {
            if small_value > large_value {
                return Err(LimitsError::Above {
                    small,
                    small_value,
                    large,
                    large_value,
                });
            }
        }
        Ok(())
    }

    fn named(&self) -> [(&'static str, u64); 17] {
        [
            ("clients_max", self.clients_max as u64),
            (
                "sessions_per_client_max",
                self.sessions_per_client_max as u64,
            ),
            ("conns_per_session_max", self.conns_per_session_max as u64),
            ("slots_max", self.slots_max as u64),
            ("slot_reply_bytes_max", self.slot_reply_bytes_max as u64),
            ("reply_cache_bytes_max", self.reply_cache_bytes_max as u64),
            (
                "stateids_per_client_max",
                self.stateids_per_client_max as u64,
            ),
            ("stateids_max", self.stateids_max as u64),
            (
                "delegations_per_client_max",
                self.delegations_per_client_max as u64,
            ),
            ("delegations_max", self.delegations_max as u64),
            ("key_bytes_max", self.key_bytes_max as u64),
            ("lease_ms", self.lease_ms),
            ("courtesy_ms", self.courtesy_ms),
            ("grace_ms", self.grace_ms),
            ("ops_per_compound_max", self.ops_per_compound_max as u64),
            ("request_bytes_max", self.request_bytes_max as u64),
            ("response_bytes_max", self.response_bytes_max as u64),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Limits::default().validate(), Ok(()));
    }

    #[test]
    fn zero_is_refused() {
        let limits = Limits {
            slots_max: 0,
            ..Limits::default()
        };
        assert_eq!(limits.validate(), Err(LimitsError::Zero("slots_max")));
    }

    #[test]
    fn relations_are_checked() {
        let small_cache = Limits {
            reply_cache_bytes_max: 1024,
            ..Limits::default()
        };
        assert!(matches!(
            small_cache.validate(),
            Err(LimitsError::Above {
                small: "slots_max * slot_reply_bytes_max",
                ..
            })
        ));
        let short_grace = Limits {
            grace_ms: 1,
            ..Limits::default()
        };
        assert!(matches!(
            short_grace.validate(),
            Err(LimitsError::Above {
                large: "grace_ms",
                ..
            })
        ));
        let per_client = Limits {
            stateids_per_client_max: 1 << 20,
            ..Limits::default()
        };
        assert!(per_client.validate().is_err());
        let huge = Limits {
            request_bytes_max: 1 << 33,
            ..Limits::default()
        };
        assert_eq!(
            huge.validate(),
            Err(LimitsError::TooLarge("request_bytes_max"))
        );
    }
}
