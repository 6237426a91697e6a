//! Sessions (RFC 8881 §2.10): CREATE_SESSION with its own replay slot (§18.36.4),
//! DESTROY_SESSION (§18.37), connection binding (§2.10.3.1, BIND_CONN_TO_SESSION §18.34), the
//! back channel (BACKCHANNEL_CTL §18.33), and SEQUENCE with the slot reply cache (§2.10.6,
//! §18.46).
//!
//! The reply cache stores the whole encoded COMPOUND reply per slot ("exactly once semantics",
//! §2.10.6). A session reserves `slots * ca_maxresponsesize_cached` bytes of
//! [`Limits::reply_cache_bytes_max`](crate::Limits::reply_cache_bytes_max) when created (fewer
//! slots are granted when the cache is short), so a reply within the negotiated size always fits
//! and the cache never exceeds its bound.

use std::hash::{DefaultHasher, Hasher};

use bytes::Bytes;

use crate::state::PurgeReason;
use crate::{
    ClientId, Error, Nfs4State, SessionId, CREATE_SESSION4_FLAG_CONN_BACK_CHAN,
    SEQ4_STATUS_ADMIN_STATE_REVOKED, SEQ4_STATUS_CB_PATH_DOWN, SEQ4_STATUS_CB_PATH_DOWN_SESSION,
    SEQ4_STATUS_RECALLABLE_STATE_REVOKED,
};

/// Smallest ca_maxrequestsize / ca_maxresponsesize accepted: room for an RPC header with some
/// credentials, the COMPOUND header and a SEQUENCE. Less could carry no useful request
/// (NFS4ERR_TOOSMALL).
pub const CHANNEL_BYTES_MIN: u32 = 256;
/// One session reserves at most this fraction of the reply cache left when it is created.
pub const CACHE_SHARE_DIVISOR: usize = 8;
/// Smallest ca_maxoperations accepted: SEQUENCE and one operation.
pub const CHANNEL_OPS_MIN: u32 = 2;

/// channel_attrs4 without the RDMA field (RDMA is not offered).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelAttrs {
    /// ca_headerpadsize: always granted as 0.
    pub headerpadsize: u32,
    /// ca_maxrequestsize.
    pub maxrequestsize: u32,
    /// ca_maxresponsesize.
    pub maxresponsesize: u32,
    /// ca_maxresponsesize_cached.
    pub maxresponsesize_cached: u32,
    /// ca_maxoperations.
    pub maxoperations: u32,
    /// ca_maxrequests: the number of slots.
    pub maxrequests: u32,
}

impl ChannelAttrs {
    /// Attributes without header padding.
    pub fn new(
        maxrequestsize: u32,
        maxresponsesize: u32,
        maxresponsesize_cached: u32,
        maxoperations: u32,
        maxrequests: u32,
    ) -> Self {
        Self {
            headerpadsize: 0,
            maxrequestsize,
            maxresponsesize,
            maxresponsesize_cached,
            maxoperations,
            maxrequests,
        }
    }

    fn too_small(&self) -> bool {
        self.maxrequests == 0
            || self.maxoperations < CHANNEL_OPS_MIN
            || self.maxrequestsize < CHANNEL_BYTES_MIN
            || self.maxresponsesize < CHANNEL_BYTES_MIN
    }
}

/// A CREATE_SESSION request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateSession {
    /// csa_clientid.
    pub clientid: ClientId,
    /// csa_sequence.
    pub sequence: u32,
    /// Who sent it (the key EXCHANGE_ID was given).
    pub principal: Bytes,
    /// csa_flags.
    pub flags: u32,
    /// csa_fore_chan_attrs.
    pub fore: ChannelAttrs,
    /// csa_back_chan_attrs.
    pub back: ChannelAttrs,
    /// csa_cb_program.
    pub cb_program: u32,
    /// csa_sec_parms, as the server encodes them for itself.
    pub cb_sec: Bytes,
    /// The connection it arrived on.
    pub conn: u64,
    /// The COMPOUND's minor version: callbacks are sent with it.
    pub minor: u32,
}

/// CREATE_SESSION's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateSessionOk {
    /// csr_sessionid.
    pub sessionid: SessionId,
    /// csr_sequence.
    pub sequence: u32,
    /// csr_flags: only CREATE_SESSION4_FLAG_CONN_BACK_CHAN is ever granted.
    pub flags: u32,
    /// csr_fore_chan_attrs, negotiated.
    pub fore: ChannelAttrs,
    /// csr_back_chan_attrs, negotiated (one slot: callbacks are serialised per session).
    pub back: ChannelAttrs,
}

/// Which channels a connection serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnDir {
    /// Fore channel: client requests.
    Fore,
    /// Back channel: callbacks.
    Back,
    /// Both.
    Both,
}

impl ConnDir {
    fn has_back(self) -> bool {
        self != ConnDir::Fore
    }

    fn with_fore(self) -> Self {
        match self {
            ConnDir::Back => ConnDir::Both,
            other => other,
        }
    }
}

/// BIND_CONN_TO_SESSION's bctsa_dir (channel_dir_from_client4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BindDir {
    /// CDFC4_FORE.
    Fore,
    /// CDFC4_BACK.
    Back,
    /// CDFC4_FORE_OR_BOTH: granted both.
    ForeOrBoth,
    /// CDFC4_BACK_OR_BOTH: granted both.
    BackOrBoth,
}

/// A SEQUENCE request, plus the connection it came on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sequence {
    /// sa_sessionid.
    pub sessionid: SessionId,
    /// sa_sequenceid.
    pub sequenceid: u32,
    /// sa_slotid.
    pub slotid: u32,
    /// sa_highest_slotid.
    pub highest_slotid: u32,
    /// sa_cachethis.
    pub cachethis: bool,
    /// The connection it arrived on.
    pub conn: u64,
    /// A digest of the request's arguments, if the server computes one: a retransmission whose
    /// digest differs from the original's is refused with NFS4ERR_SEQ_FALSE_RETRY (§2.10.6.1.3).
    pub digest: Option<u64>,
}

/// What to do with a SEQUENCE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SequenceOutcome {
    /// A new request: execute the COMPOUND, then call [`Nfs4State::complete`].
    Execute(Ticket),
    /// A retransmission: send this cached reply again, unchanged.
    Replay(Bytes),
}

/// A slot held by an executing request, and what SEQUENCE's reply needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket {
    /// The session's client.
    pub clientid: ClientId,
    /// sr_sessionid.
    pub sessionid: SessionId,
    /// sr_slotid.
    pub slotid: u32,
    /// sr_sequenceid.
    pub sequenceid: u32,
    /// sr_highest_slotid: the highest slot granted.
    pub highest_slotid: u32,
    /// sr_target_highest_slotid: the same, as the slot table is never shrunk.
    pub target_highest_slotid: u32,
    /// sr_status_flags (see [`Nfs4State::status_flags`]).
    pub status_flags: u32,
    /// sa_cachethis.
    pub cachethis: bool,
    /// The session's negotiated fore channel.
    pub fore: ChannelAttrs,
}

impl Ticket {
    /// Checks a request against the session's channel (§18.46.3): NFS4ERR_REQ_TOO_BIG,
    /// NFS4ERR_TOO_MANY_OPS.
    pub fn check_request(&self, request_bytes: usize, ops: usize) -> Result<(), Error> {
        if request_bytes > self.fore.maxrequestsize as usize {
            return Err(Error::ReqTooBig);
        }
        if ops > self.fore.maxoperations as usize {
            return Err(Error::TooManyOps);
        }
        Ok(())
    }

    /// Checks a reply about to be sent (§2.10.6.4): NFS4ERR_REP_TOO_BIG, and
    /// NFS4ERR_REP_TOO_BIG_TO_CACHE when it was asked to be cached.
    pub fn check_reply(&self, reply_bytes: usize) -> Result<(), Error> {
        if reply_bytes > self.fore.maxresponsesize as usize {
            return Err(Error::RepTooBig);
        }
        if self.cachethis && reply_bytes > self.fore.maxresponsesize_cached as usize {
            return Err(Error::RepTooBigToCache);
        }
        Ok(())
    }
}

/// Where to send a callback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backchannel {
    /// The session (cb_sessionid of CB_SEQUENCE).
    pub sessionid: SessionId,
    /// A connection bound to its back channel.
    pub conn: u64,
    /// The callback program number.
    pub cb_program: u32,
    /// The callback security parameters, as the server stored them.
    pub cb_sec: Bytes,
    /// csa_slotid of CB_SEQUENCE: the back channel has one slot.
    pub slotid: u32,
    /// csa_sequenceid of CB_SEQUENCE for this callback.
    pub sequenceid: u32,
    /// The minor version of the session's COMPOUNDs, used for its CB_COMPOUNDs.
    pub minor: u32,
}

/// Why no callback can be sent on a session now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CbUnavailable {
    /// No such session (or client), or it asked for no back channel.
    Gone,
    /// No connection is bound to its back channel, or the last call on it went unanswered.
    PathDown,
    /// Its one back-channel slot carries another callback: try again when that one is done.
    Busy,
}

#[derive(Clone, Debug, Default)]
enum Reply {
    /// The slot never completed a request.
    #[default]
    Never,
    /// Completed without caching (cachethis false, or too big).
    Uncached,
    Cached(Bytes),
}

#[derive(Clone, Debug, Default)]
struct Slot {
    seqid: u32,
    in_progress: bool,
    reply: Reply,
    digest: Option<u64>,
}

enum Verdict {
    New,
    Replay(Bytes),
}

impl Slot {
    /// The slot rules of RFC 8881 §2.10.6.1.
    fn check(&self, seqid: u32, digest: Option<u64>) -> Result<Verdict, Error> {
        if self.in_progress {
            // A retransmission of what is executing waits; anything else is out of order.
            return Err(if seqid == self.seqid {
                Error::Delay
            } else {
                Error::SeqMisordered
            });
        }
        if seqid == self.seqid.wrapping_add(1) {
            return Ok(Verdict::New);
        }
        if seqid != self.seqid {
            return Err(Error::SeqMisordered);
        }
        if let (Some(old), Some(new)) = (self.digest, digest) {
            if old != new {
                return Err(Error::SeqFalseRetry);
            }
        }
        match &self.reply {
            Reply::Cached(bytes) => Ok(Verdict::Replay(bytes.clone())),
            Reply::Uncached => Err(Error::RetryUncachedRep),
            Reply::Never => Err(Error::SeqMisordered),
        }
    }

    fn cached_bytes(&self) -> usize {
        match &self.reply {
            Reply::Cached(bytes) => bytes.len(),
            _ => 0,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Session {
    client: ClientId,
    fore: ChannelAttrs,
    slots: Vec<Slot>,
    reserved_bytes: usize,
    conns: Vec<(u64, ConnDir)>,
    /// The client asked for a back channel (CONN_BACK_CHAN, or a back binding).
    back_wanted: bool,
    cb_program: u32,
    cb_sec: Bytes,
    /// The sequence id of the back channel's one slot, last used by a call the client answered.
    cb_seqid: u32,
    /// A CB_COMPOUND is in flight on the slot.
    cb_busy: bool,
    /// The last call on the back channel (the CB_NULL probe or a CB_COMPOUND) went unanswered,
    /// or the probe was refused: reported as SEQ4_STATUS_CB_PATH_DOWN_SESSION until a call
    /// succeeds.
    cb_down: bool,
    minor: u32,
}

impl Session {
    pub fn busy(&self) -> bool {
        self.slots.iter().any(|s| s.in_progress)
    }

    pub fn slots_in_use(&self) -> usize {
        self.slots.iter().filter(|s| s.in_progress).count()
    }

    fn back_conn(&self) -> Option<u64> {
        self.conns
            .iter()
            .rev()
            .find(|(_, d)| d.has_back())
            .map(|(c, _)| *c)
    }

    fn cached_bytes(&self) -> usize {
        self.slots.iter().map(Slot::cached_bytes).sum()
    }
}

fn to_u32(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

impl Nfs4State {
    /// CREATE_SESSION (RFC 8881 §18.36). csa_sequence follows the client record's own slot
    /// (§18.36.4): the last executed one replays its result, the next one is executed, anything
    /// else is NFS4ERR_SEQ_MISORDERED. The first success confirms the client record, purging the
    /// owner's earlier confirmed record (a client restart, reported by the next `tick`).
    pub fn create_session(
        &mut self,
        now_ms: u64,
        req: CreateSession,
    ) -> Result<CreateSessionOk, Error> {
        let client = self.client(req.clientid)?;
        if !client.confirmed && client.principal != req.principal {
            return Err(Error::ClidInuse);
        }
        if req.sequence == client.cs_seqid {
            let replay = client.cs_reply.clone().ok_or(Error::SeqMisordered);
            self.counters.replays += u64::from(replay.is_ok());
            return replay;
        }
        if req.sequence != client.cs_seqid.wrapping_add(1) {
            return Err(Error::SeqMisordered);
        }
        if client.sessions.len() >= self.limits.sessions_per_client_max {
            return Err(Error::Resource);
        }
        let mut fore = self.negotiate_fore(&req.fore)?;
        let back = negotiate_back(&req.back)?;
        let (slots, reserved_bytes) = self.reserve_slots(&fore, req.clientid)?;
        fore.maxrequests = slots;
        let sessionid = self.new_sessionid(req.clientid);
        let back_wanted = req.flags & CREATE_SESSION4_FLAG_CONN_BACK_CHAN != 0;
        let session = Session {
            client: req.clientid,
            fore,
            slots: vec![Slot::default(); slots as usize],
            reserved_bytes,
            conns: Vec::new(),
            back_wanted,
            cb_program: req.cb_program,
            cb_sec: req.cb_sec,
            cb_seqid: 0,
            cb_busy: false,
            cb_down: false,
            minor: req.minor,
        };
        self.sessions.insert(sessionid, session);
        self.reply_cache_reserved += reserved_bytes;
        let dir = if back_wanted {
            ConnDir::Both
        } else {
            ConnDir::Fore
        };
        // A session always has room for its first connection (conns_per_session_max >= 1).
        let _ = self.bind(sessionid, req.conn, dir, false);
        let ok = CreateSessionOk {
            sessionid,
            sequence: req.sequence,
            flags: req.flags & CREATE_SESSION4_FLAG_CONN_BACK_CHAN,
            fore,
            back,
        };
        self.record_session(now_ms, req.clientid, &ok)?;
        self.counters.sessions_created += 1;
        Ok(ok)
    }

    fn record_session(
        &mut self,
        now_ms: u64,
        id: ClientId,
        ok: &CreateSessionOk,
    ) -> Result<(), Error> {
        let client = self.client_mut(id)?;
        client.sessions.push(ok.sessionid);
        client.cs_seqid = ok.sequence;
        client.cs_reply = Some(ok.clone());
        client.renewed_ms = now_ms;
        client.courtesy = false;
        if !client.confirmed {
            client.confirmed = true;
            self.confirm(id);
        }
        Ok(())
    }

    /// Makes `id` the owner's confirmed record, purging the one it replaces (§18.35.4 case 4).
    fn confirm(&mut self, id: ClientId) {
        let Some(owner_key) = self.clients.get(&id.0).map(|c| c.owner.clone()) else {
            return;
        };
        let owner = self.owners.entry(owner_key).or_default();
        if owner.unconfirmed == Some(id) {
            owner.unconfirmed = None;
        }
        let old = owner.confirmed.replace(id);
        if let Some(old) = old.filter(|&old| old != id) {
            if let Some(released) = self.purge(old, PurgeReason::Replaced) {
                self.released.push(released);
            }
        }
    }

    fn negotiate_fore(&self, asked: &ChannelAttrs) -> Result<ChannelAttrs, Error> {
        if asked.too_small() {
            return Err(Error::TooSmall);
        }
        let l = &self.limits;
        let maxresponsesize = asked.maxresponsesize.min(to_u32(l.response_bytes_max));
        Ok(ChannelAttrs {
            headerpadsize: 0,
            maxrequestsize: asked.maxrequestsize.min(to_u32(l.request_bytes_max)),
            maxresponsesize,
            maxresponsesize_cached: asked
                .maxresponsesize_cached
                .min(to_u32(l.slot_reply_bytes_max))
                .min(maxresponsesize),
            maxoperations: asked.maxoperations.min(to_u32(l.ops_per_compound_max)),
            maxrequests: asked.maxrequests.min(to_u32(l.slots_max)),
        })
    }

    /// How many of the negotiated slots the reply cache has room for, and the bytes reserved.
    /// One session takes at most [`CACHE_SHARE_DIVISOR`]th of the room left (and at least one
    /// slot), so the budget is shared out over many sessions instead of going to the first few.
    /// With no room for one slot, courtesy clients (not `requester`) are evicted, longest silent
    /// first; NFS4ERR_DELAY when there are none left: active sessions will go away.
    fn reserve_slots(
        &mut self,
        fore: &ChannelAttrs,
        requester: ClientId,
    ) -> Result<(u32, usize), Error> {
        let per_slot = fore.maxresponsesize_cached as usize;
        if per_slot == 0 {
            return Ok((fore.maxrequests, 0));
        }
        loop {
            let room = self
                .limits
                .reply_cache_bytes_max
                .saturating_sub(self.reply_cache_reserved);
            let share = (room / CACHE_SHARE_DIVISOR).max(per_slot.min(room));
            let slots = fore.maxrequests.min(to_u32(share / per_slot));
            if slots > 0 {
                return Ok((slots, slots as usize * per_slot));
            }
            self.evict_courtesy(Some(requester))?;
        }
    }

    /// 8 bytes of clientid, then 8 bytes of a keyed hash of the clientid and a counter: unique
    /// per instance (the counter) and not derivable without the secret.
    fn new_sessionid(&mut self, client: ClientId) -> SessionId {
        loop {
            self.sessions_made = self.sessions_made.wrapping_add(1);
            let mut hasher = DefaultHasher::new();
            hasher.write(&self.secret);
            hasher.write_u64(client.0);
            hasher.write_u64(self.sessions_made);
            let mut id = [0; 16];
            id[..8].copy_from_slice(&client.0.to_be_bytes());
            id[8..].copy_from_slice(&hasher.finish().to_be_bytes());
            let id = SessionId(id);
            if !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    /// DESTROY_SESSION (RFC 8881 §18.37). A request still executing on it may still call
    /// [`Nfs4State::complete`], which then fails with NFS4ERR_BADSESSION (harmless).
    pub fn destroy_session(&mut self, sessionid: SessionId) -> Result<(), Error> {
        if !self.sessions.contains_key(&sessionid) {
            return Err(Error::BadSession);
        }
        self.remove_session(&sessionid);
        Ok(())
    }

    pub(crate) fn remove_session(&mut self, sessionid: &SessionId) {
        let Some(session) = self.sessions.remove(sessionid) else {
            return;
        };
        self.reply_cache_reserved -= session.reserved_bytes;
        self.reply_cache_used -= session.cached_bytes();
        for (conn, _) in &session.conns {
            self.unindex_conn(*conn, sessionid);
        }
        if let Some(client) = self.clients.get_mut(&session.client.0) {
            client.sessions.retain(|s| s != sessionid);
        }
    }

    fn unindex_conn(&mut self, conn: u64, sessionid: &SessionId) {
        if let Some(list) = self.conns.get_mut(&conn) {
            list.retain(|s| s != sessionid);
            if list.is_empty() {
                self.conns.remove(&conn);
            }
        }
    }

    /// The client a session belongs to.
    pub fn session_client(&self, sessionid: SessionId) -> Option<ClientId> {
        self.sessions.get(&sessionid).map(|s| s.client)
    }

    /// BIND_CONN_TO_SESSION (RFC 8881 §18.34): binds `conn` to the session's fore channel, back
    /// channel or both, replacing an earlier binding of the same connection. NFS4ERR_RESOURCE
    /// beyond [`Limits::conns_per_session_max`](crate::Limits::conns_per_session_max).
    pub fn bind_conn(
        &mut self,
        sessionid: SessionId,
        conn: u64,
        dir: BindDir,
    ) -> Result<ConnDir, Error> {
        let dir = match dir {
            BindDir::Fore => ConnDir::Fore,
            BindDir::Back => ConnDir::Back,
            BindDir::ForeOrBoth | BindDir::BackOrBoth => ConnDir::Both,
        };
        self.bind(sessionid, conn, dir, false)?;
        if dir.has_back() {
            if let Some(session) = self.sessions.get_mut(&sessionid) {
                session.back_wanted = true;
            }
        }
        Ok(dir)
    }

    /// Binds, or rebinds (`add_fore`: keep the old direction and add the fore channel).
    fn bind(
        &mut self,
        sessionid: SessionId,
        conn: u64,
        dir: ConnDir,
        add_fore: bool,
    ) -> Result<(), Error> {
        let max = self.limits.conns_per_session_max;
        let session = self.sessions.get_mut(&sessionid).ok_or(Error::BadSession)?;
        if let Some(bound) = session.conns.iter_mut().find(|(c, _)| *c == conn) {
            bound.1 = if add_fore { bound.1.with_fore() } else { dir };
            return Ok(());
        }
        if session.conns.len() >= max {
            return Err(Error::Resource);
        }
        session.conns.push((conn, dir));
        self.conns.entry(conn).or_default().push(sessionid);
        Ok(())
    }

    /// The connection is gone: unbind it from every session.
    pub fn connection_closed(&mut self, conn: u64) {
        for sessionid in self.conns.remove(&conn).unwrap_or_default() {
            if let Some(session) = self.sessions.get_mut(&sessionid) {
                session.conns.retain(|(c, _)| *c != conn);
            }
        }
    }

    /// BACKCHANNEL_CTL (RFC 8881 §18.33): new callback program and security parameters.
    pub fn backchannel_ctl(
        &mut self,
        sessionid: SessionId,
        cb_program: u32,
        cb_sec: Bytes,
    ) -> Result<(), Error> {
        let session = self.sessions.get_mut(&sessionid).ok_or(Error::BadSession)?;
        session.cb_program = cb_program;
        session.cb_sec = cb_sec;
        Ok(())
    }

    /// Where to send the next CB_COMPOUND on this session: takes its one back-channel slot (the
    /// server sends one callback at a time per session) with the sequence id after the last
    /// one answered. Give the slot back with [`Nfs4State::callback_done`].
    pub fn backchannel(&mut self, sessionid: SessionId) -> Result<Backchannel, CbUnavailable> {
        let target = self.probe_target(sessionid)?;
        let session = self
            .sessions
            .get_mut(&sessionid)
            .ok_or(CbUnavailable::Gone)?;
        if session.cb_busy {
            return Err(CbUnavailable::Busy);
        }
        session.cb_busy = true;
        Ok(Backchannel {
            sequenceid: session.cb_seqid.wrapping_add(1),
            ..target
        })
    }

    /// A CB_COMPOUND taken with [`Nfs4State::backchannel`] is over. `answered`: the client's
    /// CB_SEQUENCE processed it (its sequence id is used up), else the call went unanswered
    /// and the path is down (the next call reuses the sequence id, as a retry).
    pub fn callback_done(&mut self, sessionid: SessionId, answered: bool) {
        if let Some(session) = self.sessions.get_mut(&sessionid) {
            session.cb_busy = false;
            session.cb_down = !answered;
            if answered {
                session.cb_seqid = session.cb_seqid.wrapping_add(1);
            }
        }
    }

    /// Where to send a CB_NULL probe of the session's back channel (no slot is taken).
    pub fn probe_target(&self, sessionid: SessionId) -> Result<Backchannel, CbUnavailable> {
        let session = self.sessions.get(&sessionid).ok_or(CbUnavailable::Gone)?;
        if !session.back_wanted {
            return Err(CbUnavailable::Gone);
        }
        let conn = session.back_conn().ok_or(CbUnavailable::PathDown)?;
        Ok(Backchannel {
            sessionid,
            conn,
            cb_program: session.cb_program,
            cb_sec: session.cb_sec.clone(),
            slotid: 0,
            sequenceid: session.cb_seqid,
            minor: session.minor,
        })
    }

    /// The outcome of a CB_NULL probe: the path is up if the client answered.
    pub fn probe_done(&mut self, sessionid: SessionId, answered: bool) {
        if let Some(session) = self.sessions.get_mut(&sessionid) {
            session.cb_down = !answered;
        }
    }

    /// The client's sessions that may carry a callback, newest first.
    pub fn client_sessions(&self, client: ClientId) -> Vec<SessionId> {
        let Ok(record) = self.client(client) else {
            return Vec::new();
        };
        record
            .sessions
            .iter()
            .rev()
            .filter(|s| {
                self.sessions
                    .get(s)
                    .is_some_and(|s| s.back_wanted && s.back_conn().is_some() && !s.cb_down)
            })
            .copied()
            .collect()
    }

    /// [`Nfs4State::backchannel`] on the client's newest session whose back channel is up and
    /// free: a recall goes to the client, whichever session carries it.
    pub fn client_backchannel(&mut self, client: ClientId) -> Result<Backchannel, CbUnavailable> {
        let sessions = self.client_sessions(client);
        if sessions.is_empty() {
            return Err(CbUnavailable::PathDown);
        }
        for sessionid in sessions {
            if let Ok(b) = self.backchannel(sessionid) {
                return Ok(b);
            }
        }
        Err(CbUnavailable::Busy)
    }

    /// sr_status_flags for a SEQUENCE on this session (RFC 8881 §18.46.3). Set here:
    /// SEQ4_STATUS_CB_PATH_DOWN_SESSION (a back channel was asked for and none is bound, or
    /// its last call went unanswered), SEQ4_STATUS_CB_PATH_DOWN (so for every session of the
    /// client that asked for one), SEQ4_STATUS_ADMIN_STATE_REVOKED,
    /// SEQ4_STATUS_RECALLABLE_STATE_REVOKED. Never set: the EXPIRED_* flags (a courtesy client
    /// keeps all its state or is purged whole, and a purged client has no session to hear it;
    /// its delegations in another's way are revoked), the GSS, LEASE_MOVED,
    /// RESTART_RECLAIM_NEEDED, BACKCHANNEL_FAULT and DEVID flags.
    pub fn status_flags(&self, sessionid: SessionId) -> u32 {
        let Some(session) = self.sessions.get(&sessionid) else {
            return 0;
        };
        let Some(client) = self.clients.get(&session.client.0) else {
            return 0;
        };
        let down = |s: &Session| s.back_conn().is_none() || s.cb_down;
        let mut flags = 0;
        if session.back_wanted && down(session) {
            flags |= SEQ4_STATUS_CB_PATH_DOWN_SESSION;
        }
        let sessions = || client.sessions.iter().filter_map(|s| self.sessions.get(s));
        let wanted = || sessions().filter(|s| s.back_wanted);
        if wanted().next().is_some() && wanted().all(down) {
            flags |= SEQ4_STATUS_CB_PATH_DOWN;
        }
        let (delegations, other) = self.revoked_kinds(&client.revoked);
        if delegations {
            flags |= SEQ4_STATUS_RECALLABLE_STATE_REVOKED;
        }
        if other {
            flags |= SEQ4_STATUS_ADMIN_STATE_REVOKED;
        }
        flags
    }

    /// The fore channel of session `id`, if it exists: a server checks a request against it
    /// (NFS4ERR_TOO_MANY_OPS, NFS4ERR_REQ_TOO_BIG) before [`Nfs4State::sequence`] takes the slot,
    /// since a SEQUENCE that fails leaves its slot unchanged (RFC 8881 §18.46.3).
    pub fn session_fore(&self, id: SessionId) -> Option<ChannelAttrs> {
        self.sessions.get(&id).map(|s| s.fore)
    }

    /// SEQUENCE (RFC 8881 §18.46, slot rules §2.10.6.1): NFS4ERR_BADSESSION, NFS4ERR_BADSLOT,
    /// NFS4ERR_DELAY (the slot's request is executing), NFS4ERR_SEQ_MISORDERED,
    /// NFS4ERR_RETRY_UNCACHED_REP, NFS4ERR_SEQ_FALSE_RETRY; else a new request or a replay.
    /// Either renews the client's lease (a courtesy client gets it back) and binds an unbound
    /// connection to the fore channel (§2.10.3.1).
    pub fn sequence(&mut self, now_ms: u64, req: Sequence) -> Result<SequenceOutcome, Error> {
        let session = self.sessions.get(&req.sessionid).ok_or(Error::BadSession)?;
        let slot = session
            .slots
            .get(req.slotid as usize)
            .ok_or(Error::BadSlot)?;
        let verdict = slot.check(req.sequenceid, req.digest)?;
        let client = session.client;
        self.bind(req.sessionid, req.conn, ConnDir::Fore, true)?;
        self.renew(now_ms, client);
        self.counters.sequences += 1;
        if let Verdict::Replay(bytes) = verdict {
            self.counters.replays += 1;
            return Ok(SequenceOutcome::Replay(bytes));
        }
        let status_flags = self.status_flags(req.sessionid);
        let session = self
            .sessions
            .get_mut(&req.sessionid)
            .ok_or(Error::BadSession)?;
        let highest_slotid = to_u32(session.slots.len().saturating_sub(1));
        let slot = session
            .slots
            .get_mut(req.slotid as usize)
            .ok_or(Error::BadSlot)?;
        let freed = slot.cached_bytes();
        *slot = Slot {
            seqid: req.sequenceid,
            in_progress: true,
            reply: Reply::Never,
            digest: req.digest,
        };
        self.reply_cache_used -= freed;
        Ok(SequenceOutcome::Execute(Ticket {
            clientid: client,
            sessionid: req.sessionid,
            slotid: req.slotid,
            sequenceid: req.sequenceid,
            highest_slotid,
            target_highest_slotid: highest_slotid,
            status_flags,
            cachethis: req.cachethis,
            fore: session.fore,
        }))
    }

    fn renew(&mut self, now_ms: u64, client: ClientId) {
        if let Some(client) = self.clients.get_mut(&client.0) {
            if client.courtesy {
                client.courtesy = false;
                self.counters.revived += 1;
            }
            client.renewed_ms = client.renewed_ms.max(now_ms);
        }
    }

    /// Ends the request on a slot, storing its whole encoded COMPOUND reply when `cachethis`
    /// (else only that it completed, so a retransmission gets NFS4ERR_RETRY_UNCACHED_REP). A
    /// reply above the session's ca_maxresponsesize_cached is not stored and
    /// NFS4ERR_REP_TOO_BIG_TO_CACHE returned: the server should have checked it with
    /// [`Ticket::check_reply`]. NFS4ERR_INVAL when the slot has no request in progress.
    pub fn complete(
        &mut self,
        sessionid: SessionId,
        slotid: u32,
        reply: Bytes,
        cachethis: bool,
    ) -> Result<(), Error> {
        let session = self.sessions.get_mut(&sessionid).ok_or(Error::BadSession)?;
        let cached_max = session.fore.maxresponsesize_cached as usize;
        let slot = session
            .slots
            .get_mut(slotid as usize)
            .ok_or(Error::BadSlot)?;
        if !slot.in_progress {
            return Err(Error::Inval);
        }
        slot.in_progress = false;
        slot.reply = Reply::Uncached;
        if !cachethis {
            return Ok(());
        }
        if reply.len() > cached_max {
            return Err(Error::RepTooBigToCache);
        }
        // A copy: a slice of a larger receive buffer would pin all of it, beyond the accounting.
        slot.reply = Reply::Cached(Bytes::copy_from_slice(&reply));
        self.reply_cache_used += reply.len();
        Ok(())
    }
}

fn negotiate_back(asked: &ChannelAttrs) -> Result<ChannelAttrs, Error> {
    if asked.too_small() {
        return Err(Error::TooSmall);
    }
    Ok(ChannelAttrs {
        headerpadsize: 0,
        maxresponsesize_cached: 0,
        maxrequests: 1,
        ..*asked
    })
}
