//! The NFSv4.1 status codes this crate returns (RFC 8881 §15.1), and a few that only the server
//! produces but that belong to the same session and state checks, so the server can map every
//! state failure through one type.

/// An NFS4ERR status. [`Error::nfsstat4`] gives its number on the wire (RFC 8881 §15.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    /// NFS4ERR_PERM (1): EXCHANGE_ID update by a different principal (§18.35.4 case 8).
    #[error("NFS4ERR_PERM")]
    Perm,
    /// NFS4ERR_NOENT (2): EXCHANGE_ID update with no confirmed record (§18.35.4 case 9).
    #[error("NFS4ERR_NOENT")]
    Noent,
    /// NFS4ERR_INVAL (22): an argument out of range (share bits, a downgrade that is not a
    /// subset, `complete` on a slot with nothing in progress).
    #[error("NFS4ERR_INVAL")]
    Inval,
    /// NFS4ERR_TOOSMALL (10005): CREATE_SESSION channel attributes too small to carry a request.
    #[error("NFS4ERR_TOOSMALL")]
    TooSmall,
    /// NFS4ERR_DELAY (10008): the slot's previous request is still executing, or a server-wide
    /// table is full (it frees up as other clients' state expires).
    #[error("NFS4ERR_DELAY")]
    Delay,
    /// NFS4ERR_EXPIRED (10011): produced by the server (this crate forgets purged state, whose
    /// stateids are then [`Error::BadStateid`]).
    #[error("NFS4ERR_EXPIRED")]
    Expired,
    /// NFS4ERR_GRACE (10013): a non-reclaim request during the grace period.
    #[error("NFS4ERR_GRACE")]
    Grace,
    /// NFS4ERR_CLID_INUSE (10017): the owner is held by another principal that has state
    /// (§18.35.4 case 3), or CREATE_SESSION for an unconfirmed client by another principal.
    #[error("NFS4ERR_CLID_INUSE")]
    ClidInuse,
    /// NFS4ERR_RESOURCE (10018): a per-client limit is reached (sessions, stateids, bound
    /// connections); retrying cannot help until the client frees some of its own state.
    #[error("NFS4ERR_RESOURCE")]
    Resource,
    /// NFS4ERR_STALE_CLIENTID (10022): unknown clientid, or one from an earlier server instance.
    #[error("NFS4ERR_STALE_CLIENTID")]
    StaleClientid,
    /// NFS4ERR_STALE_STATEID (10023): a stateid from an earlier server instance.
    #[error("NFS4ERR_STALE_STATEID")]
    StaleStateid,
    /// NFS4ERR_OLD_STATEID (10024): a seqid older than the stateid's current one.
    #[error("NFS4ERR_OLD_STATEID")]
    OldStateid,
    /// NFS4ERR_BAD_STATEID (10025): unknown, freed, another client's, the wrong kind, or a seqid
    /// from the future.
    #[error("NFS4ERR_BAD_STATEID")]
    BadStateid,
    /// NFS4ERR_BAD_SEQID (10026): produced by the server (v4.0 owner seqids are not used in v4.1).
    #[error("NFS4ERR_BAD_SEQID")]
    BadSeqid,
    /// NFS4ERR_NOT_SAME (10027): EXCHANGE_ID update with another verifier (§18.35.4 case 7).
    #[error("NFS4ERR_NOT_SAME")]
    NotSame,
    /// NFS4ERR_NO_GRACE (10033): a reclaim outside the grace period, or after the client's
    /// RECLAIM_COMPLETE (§18.51.3).
    #[error("NFS4ERR_NO_GRACE")]
    NoGrace,
    /// NFS4ERR_RECLAIM_BAD (10034): a reclaim by a client the previous instance did not know.
    #[error("NFS4ERR_RECLAIM_BAD")]
    ReclaimBad,
    /// NFS4ERR_BADXDR (10036): an opaque longer than its XDR bound (`Limits::key_bytes_max`).
    #[error("NFS4ERR_BADXDR")]
    BadXdr,
    /// NFS4ERR_LOCKS_HELD (10037): FREE_STATEID on an open stateid (CLOSE it instead).
    #[error("NFS4ERR_LOCKS_HELD")]
    LocksHeld,
    /// NFS4ERR_OPENMODE (10038): produced by the server (I/O against a stateid's share access).
    #[error("NFS4ERR_OPENMODE")]
    OpenMode,
    /// NFS4ERR_ADMIN_REVOKED (10047): the stateid was revoked by [`crate::Nfs4State::revoke`].
    #[error("NFS4ERR_ADMIN_REVOKED")]
    AdminRevoked,
    /// NFS4ERR_DELEG_REVOKED (10087): the delegation was revoked (its recall was not answered
    /// in time, or its holder was a courtesy client in another's way).
    #[error("NFS4ERR_DELEG_REVOKED")]
    DelegRevoked,
    /// NFS4ERR_BADSESSION (10052): unknown session (destroyed, or its client was purged).
    #[error("NFS4ERR_BADSESSION")]
    BadSession,
    /// NFS4ERR_BADSLOT (10053): slot id at or above the slots granted.
    #[error("NFS4ERR_BADSLOT")]
    BadSlot,
    /// NFS4ERR_COMPLETE_ALREADY (10054): a second RECLAIM_COMPLETE.
    #[error("NFS4ERR_COMPLETE_ALREADY")]
    CompleteAlready,
    /// NFS4ERR_CONN_NOT_BOUND_TO_SESSION (10055): a callback was asked for with no back channel
    /// connection bound.
    #[error("NFS4ERR_CONN_NOT_BOUND_TO_SESSION")]
    ConnNotBoundToSession,
    /// NFS4ERR_SEQ_MISORDERED (10063): a sequence id neither the slot's last nor the next.
    #[error("NFS4ERR_SEQ_MISORDERED")]
    SeqMisordered,
    /// NFS4ERR_SEQUENCE_POS (10064): produced by the server (SEQUENCE not first).
    #[error("NFS4ERR_SEQUENCE_POS")]
    SequencePos,
    /// NFS4ERR_REQ_TOO_BIG (10065): request above the session's ca_maxrequestsize.
    #[error("NFS4ERR_REQ_TOO_BIG")]
    ReqTooBig,
    /// NFS4ERR_REP_TOO_BIG (10066): reply above the session's ca_maxresponsesize.
    #[error("NFS4ERR_REP_TOO_BIG")]
    RepTooBig,
    /// NFS4ERR_REP_TOO_BIG_TO_CACHE (10067): reply asked to be cached but above
    /// ca_maxresponsesize_cached.
    #[error("NFS4ERR_REP_TOO_BIG_TO_CACHE")]
    RepTooBigToCache,
    /// NFS4ERR_RETRY_UNCACHED_REP (10068): a retransmission whose reply was not cached.
    #[error("NFS4ERR_RETRY_UNCACHED_REP")]
    RetryUncachedRep,
    /// NFS4ERR_TOO_MANY_OPS (10070): more operations than the session's ca_maxoperations.
    #[error("NFS4ERR_TOO_MANY_OPS")]
    TooManyOps,
    /// NFS4ERR_CLIENTID_BUSY (10074): DESTROY_CLIENTID while sessions or state remain.
    #[error("NFS4ERR_CLIENTID_BUSY")]
    ClientidBusy,
    /// NFS4ERR_SEQ_FALSE_RETRY (10076): a retransmission whose request digest differs from the
    /// original's.
    #[error("NFS4ERR_SEQ_FALSE_RETRY")]
    SeqFalseRetry,
    /// NFS4ERR_DEADSESSION (10078): produced by the server (this crate destroys a session at
    /// once; later requests on it get [`Error::BadSession`]).
    #[error("NFS4ERR_DEADSESSION")]
    DeadSession,
}

impl Error {
    /// The nfsstat4 value (RFC 8881 §15.1, the `nfsstat4` enum of §15.1 and the XDR).
    pub fn nfsstat4(&self) -> u32 {
        match self {
            Self::Perm => 1,
            Self::Noent => 2,
            Self::Inval => 22,
            Self::TooSmall => 10005,
            Self::Delay => 10008,
            Self::Expired => 10011,
            Self::Grace => 10013,
            Self::ClidInuse => 10017,
            Self::Resource => 10018,
            Self::StaleClientid => 10022,
            Self::StaleStateid => 10023,
            Self::OldStateid => 10024,
            Self::BadStateid => 10025,
            Self::BadSeqid => 10026,
            Self::NotSame => 10027,
            Self::NoGrace => 10033,
            Self::ReclaimBad => 10034,
            Self::BadXdr => 10036,
            Self::LocksHeld => 10037,
            Self::OpenMode => 10038,
            Self::AdminRevoked => 10047,
            Self::BadSession => 10052,
            Self::BadSlot => 10053,
            Self::CompleteAlready => 10054,
            Self::ConnNotBoundToSession => 10055,
            Self::SeqMisordered => 10063,
            Self::SequencePos => 10064,
            Self::ReqTooBig => 10065,
            Self::RepTooBig => 10066,
            Self::RepTooBigToCache => 10067,
            Self::RetryUncachedRep => 10068,
            Self::TooManyOps => 10070,
            Self::ClientidBusy => 10074,
            Self::SeqFalseRetry => 10076,
            Self::DeadSession => 10078,
            Self::DelegRevoked => 10087,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn numbers_match_rfc_8881() {
        let expected = [
            (Error::Perm, 1),
            (Error::Noent, 2),
            (Error::Inval, 22),
            (Error::TooSmall, 10005),
            (Error::Delay, 10008),
            (Error::Expired, 10011),
            (Error::Grace, 10013),
            (Error::ClidInuse, 10017),
            (Error::Resource, 10018),
            (Error::StaleClientid, 10022),
            (Error::StaleStateid, 10023),
            (Error::OldStateid, 10024),
            (Error::BadStateid, 10025),
            (Error::BadSeqid, 10026),
            (Error::NotSame, 10027),
            (Error::NoGrace, 10033),
            (Error::ReclaimBad, 10034),
            (Error::BadXdr, 10036),
            (Error::LocksHeld, 10037),
            (Error::OpenMode, 10038),
            (Error::AdminRevoked, 10047),
            (Error::BadSession, 10052),
            (Error::BadSlot, 10053),
            (Error::CompleteAlready, 10054),
            (Error::ConnNotBoundToSession, 10055),
            (Error::SeqMisordered, 10063),
            (Error::SequencePos, 10064),
            (Error::ReqTooBig, 10065),
            (Error::RepTooBig, 10066),
            (Error::RepTooBigToCache, 10067),
            (Error::RetryUncachedRep, 10068),
            (Error::TooManyOps, 10070),
            (Error::ClientidBusy, 10074),
            (Error::SeqFalseRetry, 10076),
            (Error::DeadSession, 10078),
            (Error::DelegRevoked, 10087),
        ];
        for (error, number) in expected {
            assert_eq!(error.nfsstat4(), number, "{error}");
        }
    }
}
