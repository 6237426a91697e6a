//! NFSv4.1 (RFC 8881) on top of [`Client`]: a client id and a session ([`Session`]), COMPOUNDs
//! that begin with SEQUENCE on a slot kept in order ([`SlotTable`]), and typed helpers for the
//! common operations (walking a path from the pseudo root, GETATTR, READDIR, OPEN, READ, WRITE,
//! COMMIT, CLOSE, LOCK, LOCKU).
//!
//! Every reply is decoded with the bounded decoders of `rnfs-nfs4` (at most
//! [`nfs4::RESULTS_MAX`] results, bounded opaques and lists), and nothing the server sends is
//! trusted to be well formed: a missing or mismatched result is [`Error::Protocol`].
//!
//! Tests that need to misbehave have [`Session::compound_on`] (any slot and sequence id, no
//! bookkeeping), [`Session::compound_bytes`] (the reply exactly as it arrived) and
//! [`compound_raw`] (a COMPOUND without SEQUENCE).

use bytes::Bytes;
use rnfs_nfs4::{
    self as nfs4, nfsstat4, op::*, ArgOp, Bitmap, CompoundRes, Opaque, ResBody, ResOp,
    XdrDecode as _,
};
use rnfs_xdr::{to_bytes, Decoder};

use crate::{Client, ReplyStatus};

/// What can go wrong with an NFSv4 call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The RPC layer failed (I/O, timeout, undecodable reply, call not accepted).
    #[error(transparent)]
    Rpc(#[from] crate::Error),
    /// An operation failed with this status (`op` is its number).
    #[error("{} failed: {status:?}", nfs4::op_name(*op))]
    Status { op: u32, status: nfsstat4 },
    /// LOCK or LOCKT found a conflicting lock.
    #[error("lock denied: held by {0:?}")]
    Denied(nfs4::LOCK4denied),
    /// The reply does not match the request.
    #[error("protocol violation: {0}")]
    Protocol(String),
}

impl From<rnfs_xdr::Error> for Error {
    fn from(e: rnfs_xdr::Error) -> Self {
        Error::Rpc(crate::Error::Xdr(e))
    }
}

impl Error {
    /// The NFSv4 status of a failed operation (NFS4ERR_DENIED for [`Error::Denied`]).
    pub fn status(&self) -> Option<nfsstat4> {
        match self {
            Error::Status { status, .. } => Some(*status),
            Error::Denied(_) => Some(nfsstat4::NFS4ERR_DENIED),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// The minor version [`Session`] speaks.
pub const MINOR_VERSION: u32 = 1;
/// Slots asked for in CREATE_SESSION.
pub const SLOTS_WANTED: u32 = 8;
/// Most operations asked for in CREATE_SESSION.
pub const OPS_WANTED: u32 = 64;
/// Request and reply sizes asked for (a 1 MiB READ or WRITE and headers).
pub const BYTES_WANTED: u32 = 1024 * 1024 + 64 * 1024;
/// Most READDIR replies [`Session::readdir_all`] asks for.
const READDIR_PAGES_MAX: usize = 100_000;
/// Largest READ or WRITE one call of the whole-file helpers makes.
const IO_CHUNK_MAX: u32 = 1024 * 1024;
/// Room kept for everything but the data in a READ reply or WRITE request.
const IO_OVERHEAD: u32 = 4096;

/// The client side of a session's fore-channel slot table (RFC 8881 §2.10.6.1): each slot's
/// last sequence id the server accepted. A request on a slot carries the next id; the slot only
/// moves on when the server executed the request (its SEQUENCE succeeded), so a request lost or
/// refused is resent with the same id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotTable {
    seqids: Vec<u32>,
    /// The server's `sr_target_highest_slotid`: slots above it should not be used.
    target_highest: u32,
}

impl SlotTable {
    /// `slots` slots (at least one), each at sequence id 0 (the first request carries 1).
    pub fn new(slots: u32) -> SlotTable {
        let slots = slots.clamp(1, 1024);
        SlotTable {
            seqids: vec![0; slots as usize],
            target_highest: slots - 1,
        }
    }

    /// How many slots there are.
    pub fn len(&self) -> u32 {
        self.seqids.len() as u32
    }

    /// Always false: a table has at least one slot.
    pub fn is_empty(&self) -> bool {
        self.seqids.is_empty()
    }

    /// The highest slot id a request may claim (`sa_highest_slotid`).
    pub fn highest_slotid(&self) -> u32 {
        self.len() - 1
    }

    /// The slot the next request uses: the lowest one (one call at a time per client).
    pub fn pick(&self) -> u32 {
        0
    }

    /// The sequence id the next request on `slot` carries, `None` for a slot not in the table.
    pub fn next_seqid(&self, slot: u32) -> Option<u32> {
        self.seqids.get(slot as usize).map(|s| s.wrapping_add(1))
    }

    /// The last sequence id the server accepted on `slot`.
    pub fn seqid(&self, slot: u32) -> Option<u32> {
        self.seqids.get(slot as usize).copied()
    }

    /// Records the reply to a request sent on `slot` with `seqid`: `sequence` is the result of
    /// its SEQUENCE, `None` when the reply had none (a compound-level failure before it). The
    /// slot moves on only when SEQUENCE succeeded with the id that was sent.
    pub fn on_reply(&mut self, slot: u32, seqid: u32, sequence: Option<&ResOp>) {
        let Some(res) = sequence else { return };
        if res.status != nfsstat4::NFS4_OK {
            return;
        }
        let Some(ResBody::Sequence(ok)) = &res.body else {
            return;
        };
        if ok.sr_slotid != slot || ok.sr_sequenceid != seqid {
            return;
        }
        if let Some(s) = self.seqids.get_mut(slot as usize) {
            *s = seqid;
        }
        self.target_highest = ok.sr_target_highest_slotid.min(self.highest_slotid());
    }

    /// The server's target highest slot id from the last reply.
    pub fn target_highest(&self) -> u32 {
        self.target_highest
    }
}

/// Sends one COMPOUND as is (no SEQUENCE is added) and decodes the reply. Any result status is
/// returned; only RPC failures and undecodable replies are errors.
pub fn compound_raw(
    client: &mut Client,
    minorversion: u32,
    ops: Vec<ArgOp>,
) -> Result<CompoundRes> {
    let args = encode_compound(minorversion, ops);
    let reply = client.call_raw(
        None,
        nfs4::NFS4_PROGRAM,
        nfs4::NFS_V4,
        nfs4::NFSPROC4_COMPOUND,
        &args,
    )?;
    match reply.status {
        ReplyStatus::Success(body) => decode_compound_res(body),
        other => Err(Error::Rpc(crate::Error::Rpc(other))),
    }
}

/// The encoded arguments of a COMPOUND with an empty tag.
pub fn encode_compound(minorversion: u32, ops: Vec<ArgOp>) -> Bytes {
    to_bytes(&nfs4::Compound {
        tag: Opaque(Bytes::new()),
        minorversion,
        ops,
    })
}

/// Decodes a whole COMPOUND4res (bounded; trailing bytes are an error).
pub fn decode_compound_res(body: Bytes) -> Result<CompoundRes> {
    let mut d = Decoder::new(body);
    let res = CompoundRes::decode(&mut d)?;
    d.finish()?;
    Ok(res)
}

/// The `i`th result of `res`, which must be operation `op` and have succeeded; else the first
/// failing result's status.
fn result(res: &CompoundRes, i: usize, op: u32) -> Result<&ResOp> {
    if let Some(bad) = res.results.iter().find(|r| r.status != nfsstat4::NFS4_OK) {
        if let Some(ResBody::Denied(d)) = &bad.body {
            return Err(Error::Denied(d.clone()));
        }
        return Err(Error::Status {
            op: bad.op,
            status: bad.status,
        });
    }
    if res.status != nfsstat4::NFS4_OK {
        return Err(Error::Status {
            op: res.results.last().map_or(OP_ILLEGAL, |r| r.op),
            status: res.status,
        });
    }
    match res.results.get(i) {
        Some(r) if r.op == op => Ok(r),
        Some(r) => Err(Error::Protocol(format!(
            "result {i} is {} where {} was expected",
            nfs4::op_name(r.op),
            nfs4::op_name(op)
        ))),
        None => Err(Error::Protocol(format!(
            "{} results, result {i} ({}) missing",
            res.results.len(),
            nfs4::op_name(op)
        ))),
    }
}

fn missing(op: u32) -> Error {
    Error::Protocol(format!("{} succeeded without its body", nfs4::op_name(op)))
}

/// EXCHANGE_ID alone (no session yet), with this client owner and verifier.
pub fn exchange_id(
    client: &mut Client,
    owner: &[u8],
    verifier: nfs4::verifier4,
) -> Result<nfs4::EXCHANGE_ID4resok> {
    let owner = Opaque::new(Bytes::copy_from_slice(owner))
        .ok_or_else(|| Error::Protocol("client owner over NFS4_OPAQUE_LIMIT".into()))?;
    let args = nfs4::EXCHANGE_ID4args {
        eia_clientowner: nfs4::client_owner4 {
            co_verifier: verifier,
            co_ownerid: owner,
        },
        eia_flags: 0,
        eia_state_protect: nfs4::state_protect4_a::None,
        eia_client_impl_id: rnfs_xdr::Array(Vec::new()),
    };
    let res = compound_raw(client, MINOR_VERSION, vec![ArgOp::ExchangeId(args)])?;
    match &result(&res, 0, OP_EXCHANGE_ID)?.body {
        Some(ResBody::ExchangeId(ok)) => Ok(ok.clone()),
        _ => Err(missing(OP_EXCHANGE_ID)),
    }
}

/// The fore-channel attributes [`Session`] asks for.
pub fn fore_channel_wanted() -> nfs4::channel_attrs4 {
    nfs4::channel_attrs4 {
        ca_headerpadsize: 0,
        ca_maxrequestsize: BYTES_WANTED,
        ca_maxresponsesize: BYTES_WANTED,
        ca_maxresponsesize_cached: 16 * 1024,
        ca_maxoperations: OPS_WANTED,
        ca_maxrequests: SLOTS_WANTED,
        ca_rdma_ird: rnfs_xdr::Array(Vec::new()),
    }
}

/// CREATE_SESSION alone for client `clientid` with its CREATE_SESSION sequence id.
pub fn create_session(
    client: &mut Client,
    clientid: u64,
    sequence: u32,
) -> Result<nfs4::CREATE_SESSION4resok> {
    create_session_flags(client, clientid, sequence, 0)
}

/// [`create_session`] with `csa_flags` (CREATE_SESSION4_FLAG_CONN_BACK_CHAN: this connection
/// carries the back channel too).
pub fn create_session_flags(
    client: &mut Client,
    clientid: u64,
    sequence: u32,
    flags: u32,
) -> Result<nfs4::CREATE_SESSION4resok> {
    let args = nfs4::CREATE_SESSION4args {
        csa_clientid: clientid,
        csa_sequence: sequence,
        csa_flags: flags,
        csa_fore_chan_attrs: fore_channel_wanted(),
        csa_back_chan_attrs: nfs4::channel_attrs4 {
            ca_headerpadsize: 0,
            ca_maxrequestsize: 4096,
            ca_maxresponsesize: 4096,
            ca_maxresponsesize_cached: 0,
            ca_maxoperations: 2,
            ca_maxrequests: 1,
            ca_rdma_ird: rnfs_xdr::Array(Vec::new()),
        },
        csa_cb_program: 0x4000_0000,
        csa_sec_parms: rnfs_xdr::Array(vec![nfs4::callback_sec_parms4::None]),
    };
    let res = compound_raw(client, MINOR_VERSION, vec![ArgOp::CreateSession(args)])?;
    match &result(&res, 0, OP_CREATE_SESSION)?.body {
        Some(ResBody::CreateSession(ok)) => Ok(ok.clone()),
        _ => Err(missing(OP_CREATE_SESSION)),
    }
}

/// DESTROY_CLIENTID alone (outside any of the client's sessions).
pub fn destroy_clientid(client: &mut Client, clientid: u64) -> Result<()> {
    let res = compound_raw(
        client,
        MINOR_VERSION,
        vec![ArgOp::DestroyClientid(clientid)],
    )?;
    result(&res, 0, OP_DESTROY_CLIENTID).map(|_| ())
}

/// A component name, refused locally only when it cannot be encoded at all.
fn component(name: &[u8]) -> Result<nfs4::component4> {
    Opaque::new(Bytes::copy_from_slice(name))
        .ok_or_else(|| Error::Protocol(format!("name of {} bytes over the limit", name.len())))
}

/// An opened file: its handle and the open stateid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub fh: nfs4::nfs_fh4,
    pub stateid: nfs4::stateid4,
}

/// A client id with one session on one connection.
pub struct Session {
    client: Client,
    clientid: u64,
    sessionid: nfs4::sessionid4,
    slots: SlotTable,
    fore: nfs4::channel_attrs4,
    /// Distinguishes this session's open and lock owners from other clients' in tests.
    owner: Bytes,
    /// Operations appended after SEQUENCE at most (the session's limit less one).
    ops_max: usize,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("clientid", &self.clientid)
            .field("sessionid", &self.sessionid)
            .field("slots", &self.slots)
            .finish()
    }
}

impl Session {
    /// EXCHANGE_ID with `owner` (a fresh verifier), CREATE_SESSION, and RECLAIM_COMPLETE (this
    /// client has nothing to reclaim, so it may open and lock at once).
    pub fn establish(mut client: Client, owner: &[u8]) -> Result<Session> {
        let verifier = client.next_xid().to_be_bytes();
        let mut v = [0u8; 8];
        v[..4].copy_from_slice(&verifier);
        v[4..].copy_from_slice(&std::process::id().to_be_bytes());
        let ex = exchange_id(&mut client, owner, v)?;
        let mut s = Session::create(client, ex.eir_clientid, ex.eir_sequenceid, owner)?;
        s.reclaim_complete()?;
        Ok(s)
    }

    /// [`Session::establish`] asking for a back channel on this connection: the server's calls
    /// on it (CB_NULL, CB_COMPOUND) go to `handler` while this session waits for its replies
    /// (see [`callback_answerer`]).
    pub fn establish_with_back_channel(
        mut client: Client,
        owner: &[u8],
        handler: crate::CallbackHandler,
    ) -> Result<Session> {
        client.set_callback_handler(handler);
        let verifier = client.next_xid().to_be_bytes();
        let mut v = [0u8; 8];
        v[..4].copy_from_slice(&verifier);
        v[4..].copy_from_slice(&std::process::id().to_be_bytes());
        let ex = exchange_id(&mut client, owner, v)?;
        let cs = create_session_flags(
            &mut client,
            ex.eir_clientid,
            ex.eir_sequenceid,
            nfs4::CREATE_SESSION4_FLAG_CONN_BACK_CHAN,
        )?;
        let mut s = Session::from_created(client, ex.eir_clientid, cs, owner)?;
        s.reclaim_complete()?;
        Ok(s)
    }

    /// A compound of SEQUENCE alone: renews the lease, lets the server's calls waiting on the
    /// connection be answered, and returns SEQUENCE's status flags.
    pub fn ping(&mut self) -> Result<u32> {
        let res = self.compound(Vec::new())?;
        match &result(&res, 0, OP_SEQUENCE)?.body {
            Some(ResBody::Sequence(ok)) => Ok(ok.sr_status_flags),
            _ => Err(missing(OP_SEQUENCE)),
        }
    }

    /// CREATE_SESSION for a client id EXCHANGE_ID returned; `owner` names the session's open and
    /// lock owners.
    pub fn create(
        mut client: Client,
        clientid: u64,
        sequence: u32,
        owner: &[u8],
    ) -> Result<Session> {
        let cs = create_session(&mut client, clientid, sequence)?;
        Session::from_created(client, clientid, cs, owner)
    }

    fn from_created(
        client: Client,
        clientid: u64,
        cs: nfs4::CREATE_SESSION4resok,
        owner: &[u8],
    ) -> Result<Session> {
        let fore = cs.csr_fore_chan_attrs;
        if fore.ca_maxrequests == 0 || fore.ca_maxoperations < 2 {
            return Err(Error::Protocol(format!(
                "unusable fore channel: {} slots, {} operations",
                fore.ca_maxrequests, fore.ca_maxoperations
            )));
        }
        Ok(Session {
            client,
            clientid,
            sessionid: cs.csr_sessionid,
            slots: SlotTable::new(fore.ca_maxrequests),
            ops_max: (fore.ca_maxoperations as usize).saturating_sub(1),
            fore,
            owner: Bytes::copy_from_slice(owner),
        })
    }

    pub fn clientid(&self) -> u64 {
        self.clientid
    }

    pub fn sessionid(&self) -> nfs4::sessionid4 {
        self.sessionid
    }

    /// The fore channel the server granted.
    pub fn fore_channel(&self) -> &nfs4::channel_attrs4 {
        &self.fore
    }

    pub fn slots(&self) -> &SlotTable {
        &self.slots
    }

    /// The connection, for raw calls on it.
    pub fn client_mut(&mut self) -> &mut Client {
        &mut self.client
    }

    /// The SEQUENCE operation for `slot` and `seqid`.
    pub fn sequence_op(&self, slot: u32, seqid: u32, cachethis: bool) -> ArgOp {
        ArgOp::Sequence(nfs4::SEQUENCE4args {
            sa_sessionid: self.sessionid,
            sa_sequenceid: seqid,
            sa_slotid: slot,
            sa_highest_slotid: self.slots.highest_slotid(),
            sa_cachethis: cachethis,
        })
    }

    /// SEQUENCE on the next slot and sequence id, then `ops`. Returns the whole reply whatever
    /// the operations' statuses; a failed SEQUENCE is an error.
    pub fn compound(&mut self, ops: Vec<ArgOp>) -> Result<CompoundRes> {
        self.compound_cached(ops, false)
    }

    /// [`Session::compound`] asking the server to cache the reply (`sa_cachethis`).
    pub fn compound_cached(&mut self, ops: Vec<ArgOp>, cachethis: bool) -> Result<CompoundRes> {
        let slot = self.slots.pick();
        let seqid = self
            .slots
            .next_seqid(slot)
            .ok_or_else(|| Error::Protocol("empty slot table".into()))?;
        let res = self.compound_on(slot, seqid, cachethis, ops)?;
        self.slots.on_reply(slot, seqid, res.results.first());
        match res.results.first() {
            Some(r) if r.op == OP_SEQUENCE && r.status == nfsstat4::NFS4_OK => Ok(res),
            Some(r) if r.op == OP_SEQUENCE => Err(Error::Status {
                op: OP_SEQUENCE,
                status: r.status,
            }),
            _ => Err(Error::Status {
                op: res.results.first().map_or(OP_SEQUENCE, |r| r.op),
                status: res.status,
            }),
        }
    }

    /// SEQUENCE with this slot and sequence id, then `ops`, without touching the slot table
    /// (for tests of the server's slot checks). Returns the reply whatever its statuses.
    pub fn compound_on(
        &mut self,
        slot: u32,
        seqid: u32,
        cachethis: bool,
        mut ops: Vec<ArgOp>,
    ) -> Result<CompoundRes> {
        ops.insert(0, self.sequence_op(slot, seqid, cachethis));
        compound_raw(&mut self.client, MINOR_VERSION, ops)
    }

    /// Like [`Session::compound_on`] with RPC transaction id `xid`, returning the reply message
    /// exactly as it arrived (to compare a retransmission's reply byte for byte).
    pub fn compound_bytes(
        &mut self,
        xid: u32,
        slot: u32,
        seqid: u32,
        cachethis: bool,
        mut ops: Vec<ArgOp>,
    ) -> Result<Bytes> {
        ops.insert(0, self.sequence_op(slot, seqid, cachethis));
        let args = encode_compound(MINOR_VERSION, ops);
        Ok(self.client.call_raw_bytes(
            xid,
            nfs4::NFS4_PROGRAM,
            nfs4::NFS_V4,
            nfs4::NFSPROC4_COMPOUND,
            &args,
        )?)
    }

    /// Records that the request on `slot` with `seqid` was executed (after
    /// [`Session::compound_on`] or [`Session::compound_bytes`] succeeded), so later compounds
    /// carry the next id.
    pub fn mark_used(&mut self, slot: u32, seqid: u32) {
        if let Some(s) = self.slots.seqids.get_mut(slot as usize) {
            *s = seqid;
        }
    }

    /// SEQUENCE and `ops`, which must all succeed; the results after SEQUENCE.
    pub fn run(&mut self, ops: Vec<ArgOp>) -> Result<Vec<ResOp>> {
        if ops.len() > self.ops_max {
            return Err(Error::Protocol(format!(
                "{} operations, the session allows {}",
                ops.len(),
                self.ops_max
            )));
        }
        let n = ops.len();
        let res = self.compound(ops)?;
        if n > 0 {
            let last = res.results.last().map_or(OP_SEQUENCE, |r| r.op);
            result(&res, n, last)?;
        } else {
            result(&res, 0, OP_SEQUENCE)?;
        }
        let mut results = res.results;
        results.remove(0);
        Ok(results)
    }

    /// RECLAIM_COMPLETE for the whole client.
    pub fn reclaim_complete(&mut self) -> Result<()> {
        self.run(vec![ArgOp::ReclaimComplete(false)]).map(|_| ())
    }

    /// PUTROOTFH, then LOOKUP of each component: the handle at the end.
    /// The handle of the local path `dir` as the server's pseudo file system shows it (an
    /// export's mount path is its absolute path).
    pub fn lookup_dir(&mut self, dir: &std::path::Path) -> Result<nfs4::nfs_fh4> {
        let comps: Vec<&str> = dir
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(s) => s.to_str(),
                _ => None,
            })
            .collect();
        self.lookup_path(&comps)
    }

    pub fn lookup_path(&mut self, path: &[&str]) -> Result<nfs4::nfs_fh4> {
        let chunk = self.ops_max.saturating_sub(2).max(1);
        let mut start = ArgOp::PutRootFh;
        let mut rest = path;
        loop {
            let (now, later) = rest.split_at(rest.len().min(chunk));
            let mut ops = vec![start];
            for c in now {
                ops.push(ArgOp::Lookup(component(c.as_bytes())?));
            }
            ops.push(ArgOp::GetFh);
            let fh = match self.run(ops)?.pop().and_then(|r| r.body) {
                Some(ResBody::GetFh(fh)) => fh,
                _ => return Err(missing(OP_GETFH)),
            };
            if later.is_empty() {
                return Ok(fh);
            }
            start = ArgOp::PutFh(fh);
            rest = later;
        }
    }

    /// PUTFH `fh` then `op`: its result (which succeeded).
    fn on_fh(&mut self, fh: &nfs4::nfs_fh4, op: ArgOp) -> Result<ResOp> {
        let num = op.num();
        let mut r = self.run(vec![ArgOp::PutFh(fh.clone()), op])?;
        match r.pop() {
            Some(res) if res.op == num => Ok(res),
            _ => Err(missing(num)),
        }
    }

    /// GETATTR of `fh`.
    pub fn getattr(&mut self, fh: &nfs4::nfs_fh4, bitmap: &Bitmap) -> Result<nfs4::fattr4> {
        match self.on_fh(fh, ArgOp::GetAttr(bitmap.clone()))?.body {
            Some(ResBody::GetAttr(f)) => Ok(f),
            _ => Err(missing(OP_GETATTR)),
        }
    }

    /// LOOKUP `name` in directory `dir`: its handle.
    pub fn lookup(&mut self, dir: &nfs4::nfs_fh4, name: &str) -> Result<nfs4::nfs_fh4> {
        let mut r = self.run(vec![
            ArgOp::PutFh(dir.clone()),
            ArgOp::Lookup(component(name.as_bytes())?),
            ArgOp::GetFh,
        ])?;
        match r.pop().and_then(|r| r.body) {
            Some(ResBody::GetFh(fh)) => Ok(fh),
            _ => Err(missing(OP_GETFH)),
        }
    }

    /// Every name in directory `dir` (READDIR until eof), in the server's order.
    pub fn readdir_all(&mut self, dir: &nfs4::nfs_fh4) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let (mut cookie, mut verf) = (0u64, [0u8; 8]);
        for _ in 0..READDIR_PAGES_MAX {
            let args = nfs4::READDIR4args {
                cookie,
                cookieverf: verf,
                dircount: 8192,
                maxcount: 32768,
                attr_request: Bitmap::default(),
            };
            let ok = match self.on_fh(dir, ArgOp::ReadDir(args))?.body {
                Some(ResBody::ReadDir(ok)) => ok,
                _ => return Err(missing(OP_READDIR)),
            };
            verf = ok.cookieverf;
            for e in &ok.entries.0 {
                names.push(String::from_utf8_lossy(e.name.as_bytes()).into_owned());
            }
            match ok.entries.0.last() {
                _ if ok.eof => return Ok(names),
                Some(e) => cookie = e.cookie,
                None => return Err(Error::Protocol("READDIR: no entries and no eof".into())),
            }
        }
        Err(Error::Protocol("READDIR: too many pages".into()))
    }

    /// The open owner of this session.
    pub fn open_owner(&self) -> nfs4::open_owner4 {
        let mut o = b"open:".to_vec();
        o.extend_from_slice(&self.owner);
        nfs4::state_owner4 {
            clientid: self.clientid,
            owner: Opaque(Bytes::from(o)),
        }
    }

    /// The lock owner of this session.
    pub fn lock_owner(&self) -> nfs4::lock_owner4 {
        let mut o = b"lock:".to_vec();
        o.extend_from_slice(&self.owner);
        nfs4::state_owner4 {
            clientid: self.clientid,
            owner: Opaque(Bytes::from(o)),
        }
    }

    /// OPEN `name` in `dir` (creating it, UNCHECKED with mode 0644, when `create`) with share
    /// `access` and no deny: the file's handle and open stateid.
    pub fn open(
        &mut self,
        dir: &nfs4::nfs_fh4,
        name: &str,
        create: bool,
        access: u32,
    ) -> Result<(nfs4::nfs_fh4, nfs4::stateid4)> {
        self.open_deny(dir, name, create, access, nfs4::OPEN4_SHARE_DENY_NONE)
            .map(|o| (o.fh, o.stateid))
    }

    /// [`Session::open`] with a share `deny`.
    pub fn open_deny(
        &mut self,
        dir: &nfs4::nfs_fh4,
        name: &str,
        create: bool,
        access: u32,
        deny: u32,
    ) -> Result<Opened> {
        let how = create.then(|| {
            nfs4::createhow4::Unchecked(nfs4::attr::encode_settable(&nfs4::attr::SetAttrs4 {
                mode: Some(0o644),
                ..Default::default()
            }))
        });
        let args = nfs4::OPEN4args {
            seqid: 0,
            share_access: access,
            share_deny: deny,
            owner: self.open_owner(),
            openhow: nfs4::OpenHow(how),
            claim: nfs4::open_claim4::Null(component(name.as_bytes())?),
        };
        let r = self.run(vec![
            ArgOp::PutFh(dir.clone()),
            ArgOp::Open(args),
            ArgOp::GetFh,
        ])?;
        let stateid = match r.get(1).and_then(|r| r.body.as_ref()) {
            Some(ResBody::Open(ok)) => ok.stateid,
            _ => return Err(missing(OP_OPEN)),
        };
        match r.get(2).and_then(|r| r.body.as_ref()) {
            Some(ResBody::GetFh(fh)) => Ok(Opened {
                fh: fh.clone(),
                stateid,
            }),
            _ => Err(missing(OP_GETFH)),
        }
    }

    /// READ `count` bytes at `offset`.
    pub fn read(
        &mut self,
        fh: &nfs4::nfs_fh4,
        stateid: &nfs4::stateid4,
        offset: u64,
        count: u32,
    ) -> Result<nfs4::READ4resok> {
        let args = nfs4::READ4args {
            stateid: *stateid,
            offset,
            count,
        };
        match self.on_fh(fh, ArgOp::Read(args))?.body {
            Some(ResBody::Read(ok)) => Ok(ok),
            _ => Err(missing(OP_READ)),
        }
    }

    /// The largest READ that fits the session's replies.
    pub fn read_chunk(&self) -> u32 {
        self.fore
            .ca_maxresponsesize
            .saturating_sub(IO_OVERHEAD)
            .clamp(512, IO_CHUNK_MAX)
    }

    /// The largest WRITE that fits the session's requests.
    pub fn write_chunk(&self) -> u32 {
        self.fore
            .ca_maxrequestsize
            .saturating_sub(IO_OVERHEAD)
            .clamp(512, IO_CHUNK_MAX)
    }

    /// The whole file, READ by READ until eof (at most `limit` bytes).
    pub fn read_all(
        &mut self,
        fh: &nfs4::nfs_fh4,
        stateid: &nfs4::stateid4,
        limit: usize,
    ) -> Result<Vec<u8>> {
        let chunk = self.read_chunk();
        let mut out = Vec::new();
        loop {
            let r = self.read(fh, stateid, out.len() as u64, chunk)?;
            out.extend_from_slice(r.data.as_bytes());
            if out.len() > limit {
                return Err(Error::Protocol(format!("file over {limit} bytes")));
            }
            if r.eof {
                return Ok(out);
            }
            if r.data.as_bytes().is_empty() {
                return Err(Error::Protocol("READ: no data and no eof".into()));
            }
        }
    }

    /// WRITE `data` at `offset`.
    pub fn write(
        &mut self,
        fh: &nfs4::nfs_fh4,
        stateid: &nfs4::stateid4,
        offset: u64,
        data: &[u8],
        stable: nfs4::stable_how4,
    ) -> Result<nfs4::WRITE4resok> {
        let data = Opaque::new(Bytes::copy_from_slice(data))
            .ok_or_else(|| Error::Protocol("WRITE over WRITE_BYTES_MAX".into()))?;
        let args = nfs4::WRITE4args {
            stateid: *stateid,
            offset,
            stable,
            data,
        };
        match self.on_fh(fh, ArgOp::Write(args))?.body {
            Some(ResBody::Write(ok)) => Ok(ok),
            _ => Err(missing(OP_WRITE)),
        }
    }

    /// All of `data` from offset 0, WRITE by WRITE (short writes continued), UNSTABLE.
    pub fn write_all(
        &mut self,
        fh: &nfs4::nfs_fh4,
        stateid: &nfs4::stateid4,
        data: &[u8],
    ) -> Result<()> {
        let chunk = self.write_chunk() as usize;
        let mut at = 0;
        while at < data.len() {
            let end = (at + chunk).min(data.len());
            let w = self.write(
                fh,
                stateid,
                at as u64,
                &data[at..end],
                nfs4::stable_how4::UNSTABLE4,
            )?;
            if w.count == 0 || w.count as usize > end - at {
                return Err(Error::Protocol(format!("WRITE wrote {} bytes", w.count)));
            }
            at += w.count as usize;
        }
        Ok(())
    }

    /// COMMIT: the write verifier.
    pub fn commit(
        &mut self,
        fh: &nfs4::nfs_fh4,
        offset: u64,
        count: u32,
    ) -> Result<nfs4::verifier4> {
        match self
            .on_fh(fh, ArgOp::Commit(nfs4::COMMIT4args { offset, count }))?
            .body
        {
            Some(ResBody::Commit(v)) => Ok(v),
            _ => Err(missing(OP_COMMIT)),
        }
    }

    /// CLOSE: the (closed) stateid the server returns.
    pub fn close(
        &mut self,
        fh: &nfs4::nfs_fh4,
        stateid: &nfs4::stateid4,
    ) -> Result<nfs4::stateid4> {
        let args = nfs4::CLOSE4args {
            seqid: 0,
            open_stateid: *stateid,
        };
        match self.on_fh(fh, ArgOp::Close(args))?.body {
            Some(ResBody::Stateid(s)) => Ok(s),
            _ => Err(missing(OP_CLOSE)),
        }
    }

    /// LOCK with this session's lock owner, new from `open_stateid`: the lock stateid. A
    /// conflict is [`Error::Denied`] with the holder.
    pub fn lock(
        &mut self,
        fh: &nfs4::nfs_fh4,
        open_stateid: &nfs4::stateid4,
        locktype: nfs4::nfs_lock_type4,
        offset: u64,
        length: u64,
    ) -> Result<nfs4::stateid4> {
        let locker = nfs4::locker4::New(nfs4::open_to_lock_owner4 {
            open_seqid: 0,
            open_stateid: *open_stateid,
            lock_seqid: 0,
            lock_owner: self.lock_owner(),
        });
        self.lock_with(fh, locker, locktype, offset, length)
    }

    /// LOCK with an existing lock stateid.
    pub fn lock_existing(
        &mut self,
        fh: &nfs4::nfs_fh4,
        lock_stateid: &nfs4::stateid4,
        locktype: nfs4::nfs_lock_type4,
        offset: u64,
        length: u64,
    ) -> Result<nfs4::stateid4> {
        let locker = nfs4::locker4::Existing(nfs4::exist_lock_owner4 {
            lock_stateid: *lock_stateid,
            lock_seqid: 0,
        });
        self.lock_with(fh, locker, locktype, offset, length)
    }

    fn lock_with(
        &mut self,
        fh: &nfs4::nfs_fh4,
        locker: nfs4::locker4,
        locktype: nfs4::nfs_lock_type4,
        offset: u64,
        length: u64,
    ) -> Result<nfs4::stateid4> {
        let args = nfs4::LOCK4args {
            locktype,
            reclaim: false,
            offset,
            length,
            locker,
        };
        match self.on_fh(fh, ArgOp::Lock(args))?.body {
            Some(ResBody::Stateid(s)) => Ok(s),
            _ => Err(missing(OP_LOCK)),
        }
    }

    /// LOCKU: the lock stateid after it.
    pub fn locku(
        &mut self,
        fh: &nfs4::nfs_fh4,
        lock_stateid: &nfs4::stateid4,
        locktype: nfs4::nfs_lock_type4,
        offset: u64,
        length: u64,
    ) -> Result<nfs4::stateid4> {
        let args = nfs4::LOCKU4args {
            locktype,
            seqid: 0,
            lock_stateid: *lock_stateid,
            offset,
            length,
        };
        match self.on_fh(fh, ArgOp::LockU(args))?.body {
            Some(ResBody::Stateid(s)) => Ok(s),
            _ => Err(missing(OP_LOCKU)),
        }
    }

    /// DESTROY_SESSION from inside the session (its last operation); the connection is returned.
    pub fn destroy_session(mut self) -> Result<(Client, u64)> {
        self.run(vec![ArgOp::DestroySession(self.sessionid)])?;
        Ok((self.client, self.clientid))
    }

    /// DESTROY_SESSION, then DESTROY_CLIENTID: all of the client's state is released.
    pub fn destroy(self) -> Result<Client> {
        let (mut client, id) = self.destroy_session()?;
        destroy_clientid(&mut client, id)?;
        Ok(client)
    }
}

/// The numeric value of a string attribute (owner or owner_group) when `f` holds only it.
pub fn single_string_attr(f: &nfs4::fattr4) -> Result<String> {
    let mut d = Decoder::new(f.attr_vals.0.clone());
    let s: Opaque<{ nfs4::attr::OWNER_BYTES_MAX }> = d.decode()?;
    d.finish()?;
    String::from_utf8(s.0.to_vec()).map_err(|_| Error::Protocol("owner not UTF-8".into()))
}

/// A u64 attribute (size, fileid...) when `f` holds only it.
pub fn single_u64_attr(f: &nfs4::fattr4) -> Result<u64> {
    let mut d = Decoder::new(f.attr_vals.0.clone());
    let v = d.u64()?;
    d.finish()?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq_res(status: nfsstat4, slot: u32, seqid: u32, target: u32) -> ResOp {
        ResOp {
            op: OP_SEQUENCE,
            status,
            body: (status == nfsstat4::NFS4_OK).then_some(ResBody::Sequence(
                nfs4::SEQUENCE4resok {
                    sr_sessionid: [0; 16],
                    sr_sequenceid: seqid,
                    sr_slotid: slot,
                    sr_highest_slotid: 7,
                    sr_target_highest_slotid: target,
                    sr_status_flags: 0,
                },
            )),
        }
    }

    #[test]
    fn slots_start_at_one_and_advance_only_on_success() {
        let mut t = SlotTable::new(4);
        assert_eq!(t.len(), 4);
        assert_eq!(t.highest_slotid(), 3);
        assert_eq!(t.next_seqid(0), Some(1));
        assert_eq!(t.next_seqid(4), None, "beyond the table");
        t.on_reply(0, 1, Some(&seq_res(nfsstat4::NFS4_OK, 0, 1, 3)));
        assert_eq!(t.seqid(0), Some(1));
        assert_eq!(t.next_seqid(0), Some(2));
        // A refused SEQUENCE, or a reply without one (lost, or failed before it): same id again.
        t.on_reply(
            0,
            2,
            Some(&seq_res(nfsstat4::NFS4ERR_SEQ_MISORDERED, 0, 2, 3)),
        );
        t.on_reply(0, 2, None);
        assert_eq!(t.next_seqid(0), Some(2));
        // Other slots are independent.
        assert_eq!(t.next_seqid(1), Some(1));
    }

    #[test]
    fn a_reply_for_another_slot_or_id_is_ignored() {
        let mut t = SlotTable::new(2);
        t.on_reply(0, 1, Some(&seq_res(nfsstat4::NFS4_OK, 1, 1, 1)));
        t.on_reply(0, 1, Some(&seq_res(nfsstat4::NFS4_OK, 0, 5, 1)));
        assert_eq!(t.seqid(0), Some(0));
        // A non-SEQUENCE body in its place is ignored too.
        let odd = ResOp::ok(OP_SEQUENCE, ResBody::Commit([0; 8]));
        t.on_reply(0, 1, Some(&odd));
        assert_eq!(t.seqid(0), Some(0));
    }

    #[test]
    fn sequence_ids_wrap_and_the_target_is_bounded() {
        let mut t = SlotTable::new(0);
        assert_eq!(t.len(), 1, "at least one slot");
        t.seqids[0] = u32::MAX;
        assert_eq!(t.next_seqid(0), Some(0));
        t.on_reply(0, 0, Some(&seq_res(nfsstat4::NFS4_OK, 0, 0, 99)));
        assert_eq!(t.seqid(0), Some(0));
        assert_eq!(t.target_highest(), 0, "never above the table");
        assert_eq!(SlotTable::new(100_000).len(), 1024, "bounded");
    }

    #[test]
    fn the_first_failing_result_is_the_error() {
        let res = CompoundRes {
            status: nfsstat4::NFS4ERR_ACCESS,
            tag: Opaque(Bytes::new()),
            results: vec![
                seq_res(nfsstat4::NFS4_OK, 0, 1, 0),
                ResOp::status(OP_PUTFH, nfsstat4::NFS4_OK),
                ResOp::status(OP_OPEN, nfsstat4::NFS4ERR_ACCESS),
            ],
        };
        let e = result(&res, 2, OP_OPEN).unwrap_err();
        assert_eq!(e.status(), Some(nfsstat4::NFS4ERR_ACCESS));
        let ok = CompoundRes {
            status: nfsstat4::NFS4_OK,
            tag: Opaque(Bytes::new()),
            results: vec![ResOp::status(OP_PUTFH, nfsstat4::NFS4_OK)],
        };
        assert!(matches!(result(&ok, 1, OP_GETFH), Err(Error::Protocol(_))));
        assert!(matches!(result(&ok, 0, OP_GETFH), Err(Error::Protocol(_))));
    }

    #[test]
    fn replies_decode_bounded() {
        // A reply claiming 2^31 results is refused before anything is allocated.
        let mut b = Vec::new();
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&0x8000_0000u32.to_be_bytes());
        assert!(decode_compound_res(Bytes::from(b)).is_err());
        // Trailing bytes are refused too.
        let ok = CompoundRes {
            status: nfsstat4::NFS4_OK,
            tag: Opaque(Bytes::new()),
            results: vec![],
        };
        let mut b = to_bytes(&ok).to_vec();
        assert!(decode_compound_res(Bytes::from(b.clone())).is_ok());
        b.extend_from_slice(&[0, 0, 0, 0]);
        assert!(decode_compound_res(Bytes::from(b)).is_err());
    }
}

/// What a test client's back channel saw: CB_NULLs, the delegations recalled, the CB_GETATTRs
/// and the asynchronous copies reported (CB_OFFLOAD); and what it answers CB_GETATTR with (change
/// and size; none: an empty attribute list).
#[derive(Debug, Default)]
pub struct CallbacksSeen {
    pub nulls: usize,
    pub recalls: Vec<nfs4::stateid4>,
    pub getattrs: usize,
    pub getattr_answer: Option<(u64, u64)>,
    pub offloads: Vec<nfs4::cb::CB_OFFLOAD4args>,
}

/// A [`crate::CallbackHandler`] answering CB_NULL and CB_COMPOUND (CB_SEQUENCE echoed back,
/// CB_RECALL and CB_OFFLOAD recorded and accepted, CB_GETATTR answered from `seen`) into `seen`;
/// with `answer` false it records but never replies (a client whose back channel is dead).
pub fn callback_answerer(
    seen: std::sync::Arc<std::sync::Mutex<CallbacksSeen>>,
    answer: bool,
) -> crate::CallbackHandler {
    use nfs4::cb::{CB_COMPOUND4args, CB_COMPOUND4res, CB_SEQUENCE4resok, CbArgOp, CbResOp};
    use nfs4::cb::{OP_CB_GETATTR, OP_CB_OFFLOAD, OP_CB_RECALL, OP_CB_SEQUENCE};
    Box::new(move |msg: &[u8]| {
        let call = crate::rpc::decode_call(Bytes::copy_from_slice(msg)).ok()?;
        let mut seen = seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let results = match call.proc {
            0 => {
                seen.nulls += 1;
                Bytes::new()
            }
            1 => {
                let args: CB_COMPOUND4args = rnfs_xdr::from_bytes(call.args).ok()?;
                let mut res = Vec::new();
                for op in args.argarray.0 {
                    match op {
                        CbArgOp::Sequence(a) => res.push(CbResOp {
                            op: OP_CB_SEQUENCE,
                            status: nfsstat4::NFS4_OK,
                            sequence: Some(CB_SEQUENCE4resok {
                                csr_sessionid: a.csa_sessionid,
                                csr_sequenceid: a.csa_sequenceid,
                                csr_slotid: a.csa_slotid,
                                csr_highest_slotid: a.csa_highest_slotid,
                                csr_target_highest_slotid: a.csa_highest_slotid,
                            }),
                            attrs: None,
                        }),
                        CbArgOp::Getattr(_) => {
                            seen.getattrs += 1;
                            let mut vals = Vec::new();
                            let mut mask = Bitmap::default();
                            if let Some((change, size)) = seen.getattr_answer {
                                vals.extend_from_slice(&change.to_be_bytes());
                                vals.extend_from_slice(&size.to_be_bytes());
                                mask = Bitmap::from_bits(&[
                                    nfs4::attr::num::CHANGE,
                                    nfs4::attr::num::SIZE,
                                ]);
                            }
                            res.push(CbResOp {
                                op: OP_CB_GETATTR,
                                status: nfsstat4::NFS4_OK,
                                sequence: None,
                                attrs: Some(nfs4::fattr4 {
                                    attrmask: mask,
                                    attr_vals: Opaque(Bytes::from(vals)),
                                }),
                            });
                        }
                        CbArgOp::Recall(r) => {
                            seen.recalls.push(r.stateid);
                            res.push(CbResOp {
                                op: OP_CB_RECALL,
                                status: nfsstat4::NFS4_OK,
                                sequence: None,
                                attrs: None,
                            });
                        }
                        CbArgOp::Offload(o) => {
                            seen.offloads.push(o);
                            res.push(CbResOp {
                                op: OP_CB_OFFLOAD,
                                status: nfsstat4::NFS4_OK,
                                sequence: None,
                                attrs: None,
                            });
                        }
                    }
                }
                rnfs_xdr::to_bytes(&CB_COMPOUND4res {
                    status: nfsstat4::NFS4_OK,
                    tag: args.tag,
                    resarray: rnfs_xdr::Array(res),
                })
            }
            _ => return None,
        };
        answer.then(|| {
            crate::rpc::encode_reply(call.xid, &crate::rpc::ReplyStatus::Success(results)).to_vec()
        })
    })
}
