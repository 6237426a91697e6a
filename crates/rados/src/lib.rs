//! The cluster grace database ([`grace`]) through which several rnfsd heads on one CephFS
//! coordinate their grace periods, kept in one RADOS object ([`GraceStore`], through
//! `rnfs-rados-sys`).
#![forbid(unsafe_code)]

pub mod grace;

pub use rnfs_rados_sys::{Error, IoCtx, Rados, Replaced};

/// Why a grace database poll failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Rados(#[from] Error),
    #[error(transparent)]
    Grace(#[from] grace::GraceError),
    #[error("grace database changed under us {0} times in a row")]
    Contended(u32),
}

/// The grace database ([`grace::GraceDb`]) in object `oid` of an I/O context.
pub struct GraceStore {
    io: IoCtx,
    oid: String,
}

/// Read-modify-write rounds a poll tries before giving up until the next poll.
const POLL_ATTEMPTS_MAX: u32 = 8;

impl GraceStore {
    pub fn new(io: IoCtx, oid: &str) -> GraceStore {
        GraceStore {
            io,
            oid: oid.to_owned(),
        }
    }

    /// The database as it is now.
    pub fn read(&mut self) -> std::result::Result<grace::GraceDb, StoreError> {
        match self.io.read_versioned(&self.oid, grace::DB_BYTES_MAX)? {
            Some((b, _)) => Ok(grace::GraceDb::decode(&b)?),
            None => Ok(grace::GraceDb::default()),
        }
    }

    /// Applies `me`'s poll ([`grace::GraceDb::poll`]) with compare-and-replace, retrying when
    /// another head wrote in between; returns the database as written. `before_write` sees each
    /// database about to be written: a head must enforce a grace period before its write
    /// acknowledges it, since the head that started it serves once everyone has.
    pub fn poll(
        &mut self,
        me: &str,
        now_ms: u64,
        alive_until_ms: u64,
        need_until_ms: u64,
        before_write: &mut dyn FnMut(&grace::GraceDb),
    ) -> std::result::Result<grace::GraceDb, StoreError> {
        for _ in 0..POLL_ATTEMPTS_MAX {
            let (mut db, version) = match self.io.read_versioned(&self.oid, grace::DB_BYTES_MAX)? {
                Some((b, v)) => (grace::GraceDb::decode(&b)?, Some(v)),
                None => (grace::GraceDb::default(), None),
            };
            db.poll(me, now_ms, alive_until_ms, need_until_ms)?;
            before_write(&db);
            if self.io.replace(&self.oid, version, &db.encode())? == Replaced::Done {
                return Ok(db);
            }
        }
        Err(StoreError::Contended(POLL_ATTEMPTS_MAX))
    }
}
