//! The bounds on the manager's state. Every table the manager keeps is bounded by one of these, so
//! its memory is bounded whatever clients send.

/// Bounds on the manager's state. Reaching one makes the request fail with
/// [`LockOutcome::NoLocks`](crate::LockOutcome::NoLocks) naming it, with the state unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Held ranges (after merging) of all the owners of one client.
    pub locks_per_client_max: usize,
    /// Held ranges of all owners on one file.
    pub locks_per_file_max: usize,
    /// Held ranges in the whole manager.
    pub locks_total_max: usize,
    /// Share reservations in the whole manager.
    pub shares_total_max: usize,
    /// Blocked requests queued on one file.
    pub waiters_per_file_max: usize,
    /// Blocked requests in the whole manager.
    pub waiters_total_max: usize,
    /// Lock owners known at once (an owner is forgotten when it holds and waits for nothing).
    pub owners_max: usize,
    /// Clients known at once.
    pub clients_max: usize,
    /// Files known at once.
    pub files_max: usize,
    /// Length of a client, owner or file key (NLM's LM_MAXSTRLEN and MAXNETOBJ_SZ and NFSv4's
    /// opaque limits are all 1024).
    pub key_bytes_max: usize,
    /// How many waits-for edges the deadlock search follows from a new waiter; a cycle longer
    /// than this is not detected.
    pub deadlock_depth_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            locks_per_client_max: 10_000,
            locks_per_file_max: 10_000,
            locks_total_max: 100_000,
            shares_total_max: 100_000,
            waiters_per_file_max: 64,
            waiters_total_max: 4096,
            owners_max: 100_000,
            clients_max: 10_000,
            files_max: 100_000,
            key_bytes_max: 1024,
            deadlock_depth_max: 16,
        }
    }
}

/// Which limit a request ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Limit {
    /// [`Limits::locks_per_client_max`].
    #[error("too many locks held by this client")]
    LocksPerClient,
    /// [`Limits::locks_per_file_max`].
    #[error("too many locks on this file")]
    LocksPerFile,
    /// [`Limits::locks_total_max`].
    #[error("too many locks")]
    LocksTotal,
    /// [`Limits::shares_total_max`].
    #[error("too many share reservations")]
    SharesTotal,
    /// [`Limits::waiters_per_file_max`].
    #[error("too many blocked requests on this file")]
    WaitersPerFile,
    /// [`Limits::waiters_total_max`].
    #[error("too many blocked requests")]
    WaitersTotal,
    /// [`Limits::owners_max`].
    #[error("too many lock owners")]
    Owners,
    /// [`Limits::clients_max`].
    #[error("too many clients")]
    Clients,
    /// [`Limits::files_max`].
    #[error("too many locked files")]
    Files,
    /// [`Limits::key_bytes_max`].
    #[error("client, owner or file key too long")]
    KeyBytes,
}

/// A [`Limits`] that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    /// A limit is zero: nothing could ever be granted.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// A per-client or per-file limit is above the total it is part of.
    #[error("{part} ({part_value}) must not exceed {whole} ({whole_value})")]
    PartAboveWhole {
        /// The smaller limit's name.
        part: &'static str,
        /// Its value.
        part_value: usize,
        /// The larger limit's name.
        whole: &'static str,
        /// Its value.
        whole_value: usize,
    },
}

impl Limits {
    /// Checks that every limit is at least 1 and that each part is at most its whole.
    pub fn validate(&self) -> Result<(), LimitsError> {
        let all = [
            ("locks_per_client_max", self.locks_per_client_max),
            ("locks_per_file_max", self.locks_per_file_max),
            ("locks_total_max", self.locks_total_max),
            ("shares_total_max", self.shares_total_max),
            ("waiters_per_file_max", self.waiters_per_file_max),
            ("waiters_total_max", self.waiters_total_max),
            ("owners_max", self.owners_max),
            ("clients_max", self.clients_max),
            ("files_max", self.files_max),
            ("key_bytes_max", self.key_bytes_max),
            ("deadlock_depth_max", self.deadlock_depth_max),
        ];
        if let Some((name, _)) = all.iter().find(|(_, v)| *v == 0) {
            return Err(LimitsError::Zero(name));
        }
        let pairs = [
            (all[0], all[2]), // locks_per_client_max <= locks_total_max
            (all[1], all[2]), // locks_per_file_max <= locks_total_max
            (all[4], all[5]), // waiters_per_file_max <= waiters_total_max
            (all[7], all[6]), // clients_max <= owners_max: every client has an owner
        ];
        for ((part, part_value), (whole, whole_value)) in pairs {
            if part_value > whole_value {
                return Err(LimitsError::PartAboveWhole {
                    part,
                    part_value,
                    whole,
                    whole_value,
                });
            }
        }
        Ok(())
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
    fn part_above_whole_is_refused() {
        let limits = Limits {
            locks_per_client_max: 200_000,
            ..Limits::default()
        };
        assert!(matches!(
            limits.validate(),
            Err(LimitsError::PartAboveWhole {
                part: "locks_per_client_max",
                ..
            })
        ));
        let limits = Limits {
            waiters_per_file_max: 5000,
            ..Limits::default()
        };
        assert!(limits.validate().is_err());
    }

    #[test]
    fn zero_is_refused() {
        let limits = Limits {
            deadlock_depth_max: 0,
            ..Limits::default()
        };
        assert_eq!(
            limits.validate(),
            Err(LimitsError::Zero("deadlock_depth_max"))
        );
    }
}
