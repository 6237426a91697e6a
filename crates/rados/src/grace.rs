//! The cluster grace database: one small RADOS object through which the rnfsd heads serving one
//! CephFS agree on a cluster-wide grace period, so that a head that restarts lets its clients
//! reclaim their locks and opens before *any* head grants a conflicting new one (RFC 8881 §8.4.2
//! and XNFS's NLM grace period, across servers). The idea is nfs-ganesha's `rados_cluster`
//! recovery backend (one shared object, a flag per node); the encoding and rules here are ours.
//!
//! # Rules
//! * Every head has an entry: its `alive_until_ms` (renewed at every poll: a head that stops
//!   polling drops out of the cluster once it passes), the grace `epoch` it has acknowledged
//!   (it refuses non-reclaims from then on), and `need_until_ms` while it needs a grace period.
//! * The cluster is in grace while some entry's `need_until_ms` is in the future. Every need has
//!   a deadline, so a head that dies during its grace cannot hold the cluster in grace forever.
//! * A head that starts sets its need; if no grace was running, that begins a new epoch. Before
//!   it serves, it waits until every live head has acknowledged the epoch (so none is still
//!   granting new state while its clients reclaim); it clears its need when its own grace ends.
//!
//! This module is sans-I/O (times are passed in, as wall-clock milliseconds, since heads on
//! different hosts compare them); [`crate::IoCtx`] reads and replaces the object.

/// Heads one database holds at most (a record per head: the object stays small).
pub const NODES_MAX: usize = 64;
/// Longest head name, in bytes.
pub const NODE_ID_BYTES_MAX: usize = 64;
/// Largest encoded database: header plus `NODES_MAX` full entries.
pub const DB_BYTES_MAX: usize = HEADER_BYTES + NODES_MAX * (1 + NODE_ID_BYTES_MAX + 24);
const HEADER_BYTES: usize = 8 + 8 + 4;
const MAGIC: &[u8; 8] = b"RNFSGRC1";
/// Entries of heads not seen for this long are dropped when the database is rewritten.
pub const FORGET_AFTER_MS: u64 = 24 * 3600 * 1000;

/// Why a database could not be read or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraceError {
    #[error("grace database is corrupt: {0}")]
    Corrupt(&'static str),
    #[error("grace database is full ({NODES_MAX} heads)")]
    Full,
    #[error("head name must be 1 to {NODE_ID_BYTES_MAX} bytes")]
    BadNodeId,
}

/// One head's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: String,
    /// 0: this head needs no grace period.
    pub need_until_ms: u64,
    /// The last grace epoch this head has seen (and enforces while it lasts).
    pub acked_epoch: u64,
    pub alive_until_ms: u64,
}

/// The whole database.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GraceDb {
    /// Incremented each time a grace period begins (0: there never was one).
    pub epoch: u64,
    pub nodes: Vec<Node>,
}

impl GraceDb {
    /// Whether a cluster-wide grace period is running at `now_ms`.
    pub fn in_grace(&self, now_ms: u64) -> bool {
        self.nodes.iter().any(|n| n.need_until_ms > now_ms)
    }

    /// Heads alive at `now_ms` that have not yet acknowledged the current epoch (`me` excluded).
    pub fn unacked(&self, me: &str, now_ms: u64) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.id != me && n.alive_until_ms > now_ms && n.acked_epoch < self.epoch)
            .map(|n| n.id.clone())
            .collect()
    }

    /// Whether head `id` is still the one that was gone with entry end `alive_until_ms` (it
    /// has not polled since: not restarted, not back).
    pub fn still_gone(&self, id: &str, alive_until_ms: u64) -> bool {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .is_none_or(|n| n.alive_until_ms == alive_until_ms)
    }

    /// `me`'s poll at `now_ms`: it is alive until `alive_until_ms`, needs a grace period until
    /// `need_until_ms` (0: none), and acknowledges the epoch it now sees. Starts a new epoch if
    /// `me` needs a grace period and none is running. Forgets heads long gone.
    pub fn poll(
        &mut self,
        me: &str,
        now_ms: u64,
        alive_until_ms: u64,
        need_until_ms: u64,
    ) -> Result<(), GraceError> {
        check_id(me)?;
        if need_until_ms > now_ms && !self.in_grace(now_ms) {
            self.epoch += 1;
        }
        self.nodes
            .retain(|n| n.id == me || n.alive_until_ms.saturating_add(FORGET_AFTER_MS) > now_ms);
        let i = match self.nodes.iter().position(|n| n.id == me) {
            Some(i) => i,
            None if self.nodes.len() >= NODES_MAX => return Err(GraceError::Full),
            None => {
                self.nodes.push(Node {
                    id: me.to_owned(),
                    need_until_ms: 0,
                    acked_epoch: 0,
                    alive_until_ms: 0,
                });
                self.nodes.len() - 1
            }
        };
        let epoch = self.epoch;
        let n = &mut self.nodes[i];
        n.alive_until_ms = alive_until_ms;
        n.need_until_ms = need_until_ms;
        n.acked_epoch = epoch;
        Ok(())
    }

    /// The object's bytes (at most [`DB_BYTES_MAX`]).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_BYTES + self.nodes.len() * 40);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&(self.nodes.len() as u32).to_be_bytes());
        for n in &self.nodes {
            out.push(n.id.len() as u8);
            out.extend_from_slice(n.id.as_bytes());
            out.extend_from_slice(&n.need_until_ms.to_be_bytes());
            out.extend_from_slice(&n.acked_epoch.to_be_bytes());
            out.extend_from_slice(&n.alive_until_ms.to_be_bytes());
        }
        out
    }

    /// Reads the object's bytes; an empty object is an empty database.
    pub fn decode(b: &[u8]) -> Result<GraceDb, GraceError> {
        if b.is_empty() {
            return Ok(GraceDb::default());
        }
        if b.len() > DB_BYTES_MAX {
            return Err(GraceError::Corrupt("too long"));
        }
        let mut r = Reader(b);
        if r.take(8)? != MAGIC {
            return Err(GraceError::Corrupt("not a grace database"));
        }
        let epoch = r.u64()?;
        let count = u32::from_be_bytes(r.array()?) as usize;
        if count > NODES_MAX {
            return Err(GraceError::Corrupt("too many heads"));
        }
        let mut nodes = Vec::with_capacity(count);
        for _ in 0..count {
            let len = usize::from(r.take(1)?[0]);
            let id = std::str::from_utf8(r.take(len)?)
                .map_err(|_| GraceError::Corrupt("head name not UTF-8"))?
                .to_owned();
            check_id(&id).map_err(|_| GraceError::Corrupt("bad head name"))?;
            if nodes.iter().any(|n: &Node| n.id == id) {
                return Err(GraceError::Corrupt("head listed twice"));
            }
            nodes.push(Node {
                id,
                need_until_ms: r.u64()?,
                acked_epoch: r.u64()?,
                alive_until_ms: r.u64()?,
            });
        }
        if !r.0.is_empty() {
            return Err(GraceError::Corrupt("trailing bytes"));
        }
        Ok(GraceDb { epoch, nodes })
    }
}

/// Which heads this head has seen dead: entries that stayed past their end, unchanged, through
/// this head's own successful polls for a while. Only time observed that way counts, so an
/// outage of RADOS itself, which stops every head's polls alike, makes no head look dead once
/// it is over: the heads renew their entries before anyone has watched them expired for long.
#[derive(Debug, Default)]
pub struct DeathWatch {
    /// `(head, its entry's end, when this head first saw it past)`, at most [`NODES_MAX`].
    expired: Vec<(String, u64, u64)>,
    last_poll_ms: Option<u64>,
}

impl DeathWatch {
    /// After a successful poll at `now_ms` that read `db`: the heads other than `me` whose
    /// entry has been past its end, unchanged, for at least `after_ms` of this head's polls,
    /// as `(head, entry end)` (the entry end tells one death of a head from the next). Polls
    /// more than `gap_max_ms` apart start the watch afresh.
    pub fn observe(
        &mut self,
        db: &GraceDb,
        me: &str,
        now_ms: u64,
        after_ms: u64,
        gap_max_ms: u64,
    ) -> Vec<(String, u64)> {
        if self
            .last_poll_ms
            .is_some_and(|last| now_ms.saturating_sub(last) > gap_max_ms)
        {
            self.expired.clear();
        }
        self.last_poll_ms = Some(now_ms);
        let expired: Vec<(String, u64, u64)> = db
            .nodes
            .iter()
            .filter(|n| n.id != me && n.alive_until_ms <= now_ms)
            .map(|n| {
                let since = self
                    .expired
                    .iter()
                    .find(|(id, until, _)| *id == n.id && *until == n.alive_until_ms)
                    .map_or(now_ms, |e| e.2);
                (n.id.clone(), n.alive_until_ms, since)
            })
            .take(NODES_MAX)
            .collect();
        self.expired = expired;
        self.expired
            .iter()
            .filter(|(_, _, since)| now_ms.saturating_sub(*since) >= after_ms)
            .map(|(id, until, _)| (id.clone(), *until))
            .collect()
    }

    /// A poll failed: what was watched no longer counts.
    pub fn reset(&mut self) {
        self.expired.clear();
        self.last_poll_ms = None;
    }
}

/// A head name: 1 to [`NODE_ID_BYTES_MAX`] bytes.
pub fn check_id(id: &str) -> Result<(), GraceError> {
    if id.is_empty() || id.len() > NODE_ID_BYTES_MAX {
        return Err(GraceError::BadNodeId);
    }
    Ok(())
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], GraceError> {
        if self.0.len() < n {
            return Err(GraceError::Corrupt("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], GraceError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u64(&mut self) -> Result<u64, GraceError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: u64 = 1000;

    #[test]
    fn a_head_is_dead_once_seen_expired_through_uninterrupted_polls() {
        let (after, gap) = (13 * S, 3 * S);
        let mut db = GraceDb::default();
        db.poll("a", 0, 5 * S, 0).unwrap();
        db.poll("b", 0, 5 * S, 0).unwrap();
        let mut w = DeathWatch::default();
        // "a" stops polling at 0; "b" polls every second and first sees it expired at 5 s.
        for t in 1..18 {
            db.poll("b", t * S, (t + 5) * S, 0).unwrap();
            assert!(
                w.observe(&db, "b", t * S, after, gap).is_empty(),
                "at {t} s"
            );
        }
        db.poll("b", 18 * S, 23 * S, 0).unwrap();
        assert_eq!(
            w.observe(&db, "b", 18 * S, after, gap),
            [("a".to_owned(), 5 * S)]
        );
        assert!(db.still_gone("a", 5 * S));
        // "a" restarts: a new entry end, not the same death, not dead.
        db.poll("a", 19 * S, 24 * S, 30 * S).unwrap();
        assert!(!db.still_gone("a", 5 * S));
        assert!(w.observe(&db, "b", 19 * S, after, gap).is_empty());
        assert!(
            db.still_gone("never-seen", 5 * S),
            "no entry: nothing came back"
        );
    }

    #[test]
    fn an_outage_of_the_database_makes_no_head_look_dead() {
        let (after, gap) = (13 * S, 3 * S);
        let mut db = GraceDb::default();
        db.poll("a", 0, 5 * S, 0).unwrap();
        db.poll("b", 0, 5 * S, 0).unwrap();
        let mut w = DeathWatch::default();
        assert!(w.observe(&db, "b", 0, after, gap).is_empty());
        // Nobody can poll for 60 s. Then "b" reads first: "a" expired 55 s ago, but "b" has
        // watched it for no time at all, and "a" renews at its next poll.
        assert!(w.observe(&db, "b", 60 * S, after, gap).is_empty());
        db.poll("b", 60 * S, 65 * S, 0).unwrap();
        assert!(w.observe(&db, "b", 61 * S, after, gap).is_empty());
        db.poll("a", 61 * S, 66 * S, 0).unwrap();
        for t in 62..90 {
            db.poll("b", t * S, (t + 5) * S, 0).unwrap();
            db.poll("a", t * S, (t + 5) * S, 0).unwrap();
            assert!(w.observe(&db, "b", t * S, after, gap).is_empty());
        }
        // A failed poll also starts the watch afresh.
        let mut w = DeathWatch::default();
        for t in 90..100 {
            db.poll("b", t * S, (t + 5) * S, 0).unwrap();
            assert!(w.observe(&db, "b", t * S, after, gap).is_empty());
        }
        w.reset();
        for t in 100..112 {
            db.poll("b", t * S, (t + 5) * S, 0).unwrap();
            assert!(
                w.observe(&db, "b", t * S, after, gap).is_empty(),
                "at {t} s"
            );
        }
        assert_eq!(w.observe(&db, "b", 113 * S, after, gap).len(), 1);
    }

    #[test]
    fn a_restart_starts_a_grace_that_every_live_head_acknowledges() {
        let mut db = GraceDb::default();
        db.poll("b", 0, 10 * S, 0).unwrap();
        db.poll("c", 0, 10 * S, 0).unwrap();
        assert!(!db.in_grace(0));
        // "a" restarts and needs 90 s: epoch 1 begins.
        db.poll("a", S, 11 * S, 91 * S).unwrap();
        assert!(db.in_grace(S));
        assert_eq!(db.epoch, 1);
        assert_eq!(db.unacked("a", S), ["b", "c"]);
        db.poll("b", 2 * S, 12 * S, 0).unwrap();
        assert_eq!(db.unacked("a", 2 * S), ["c"]);
        // "c" died: once its lease runs out, "a" no longer waits for it.
        assert!(db.unacked("a", 10 * S).is_empty());
        // A second head needing grace during the first joins the same epoch.
        db.poll("b", 3 * S, 13 * S, 50 * S).unwrap();
        assert_eq!(db.epoch, 1);
        // "a" is done; "b" still needs it; then "b" is done: the grace is over.
        db.poll("a", 4 * S, 14 * S, 0).unwrap();
        assert!(db.in_grace(4 * S));
        db.poll("b", 5 * S, 15 * S, 0).unwrap();
        assert!(!db.in_grace(5 * S));
        // The next restart starts epoch 2.
        db.poll("c", 6 * S, 16 * S, 30 * S).unwrap();
        assert_eq!(db.epoch, 2);
    }

    #[test]
    fn a_need_ends_at_its_deadline_even_if_its_head_died() {
        let mut db = GraceDb::default();
        db.poll("a", 0, 10 * S, 90 * S).unwrap();
        assert!(db.in_grace(89 * S));
        assert!(!db.in_grace(90 * S));
    }

    #[test]
    fn heads_long_gone_are_forgotten_and_the_table_is_bounded() {
        let mut db = GraceDb::default();
        for i in 0..NODES_MAX {
            db.poll(&format!("h{i}"), 0, S, 0).unwrap();
        }
        assert_eq!(db.poll("new", S, 2 * S, 0), Err(GraceError::Full));
        db.poll("new", FORGET_AFTER_MS + S, FORGET_AFTER_MS + 2 * S, 0)
            .unwrap();
        assert_eq!(db.nodes.len(), 1);
        assert_eq!(db.poll("", 0, 0, 0), Err(GraceError::BadNodeId));
        let long = "x".repeat(NODE_ID_BYTES_MAX + 1);
        assert_eq!(db.poll(&long, 0, 0, 0), Err(GraceError::BadNodeId));
    }

    #[test]
    fn the_encoding_is_checked() {
        let mut db = GraceDb::default();
        db.poll("a", 0, S, 2 * S).unwrap();
        let b = db.encode();
        assert_eq!(GraceDb::decode(&b).unwrap(), db);
        assert_eq!(GraceDb::decode(&[]).unwrap(), GraceDb::default());
        assert!(GraceDb::decode(&b[..b.len() - 1]).is_err());
        let mut twice = b.clone();
        twice.push(0);
        assert!(GraceDb::decode(&twice).is_err());
        assert!(GraceDb::decode(b"RNFSGRC0").is_err());
    }

    fn node() -> impl Strategy<Value = Node> {
        ("[a-z0-9.-]{1,64}", any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
            |(id, need_until_ms, acked_epoch, alive_until_ms)| Node {
                id,
                need_until_ms,
                acked_epoch,
                alive_until_ms,
            },
        )
    }

    proptest! {
        #[test]
        fn round_trip(epoch: u64, nodes in proptest::collection::vec(node(), 0..NODES_MAX)) {
            let mut seen = std::collections::HashSet::new();
            let nodes: Vec<Node> = nodes.into_iter().filter(|n| seen.insert(n.id.clone())).collect();
            let db = GraceDb { epoch, nodes };
            let b = db.encode();
            prop_assert!(b.len() <= DB_BYTES_MAX);
            prop_assert_eq!(GraceDb::decode(&b).unwrap(), db);
        }

        #[test]
        fn decoding_anything_never_panics(b in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = GraceDb::decode(&b);
        }
    }
}
