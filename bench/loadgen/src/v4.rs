//! NFSv4.1 workloads (`--proto v4`): the same closed loop as the NFSv3 ones, over a session.
//!
//! Setup (untimed): EXCHANGE_ID, CREATE_SESSION asking for `--qd` fore-channel slots (fewer
//! granted is an error: the run could not keep `--qd` calls in flight), RECLAIM_COMPLETE, then
//! PUTROOTFH + one LOOKUP per component of `--export` and of the file's path (the pseudo file
//! system leads to the export). Every timed call is one COMPOUND that starts with SEQUENCE on its
//! own slot: a slot carries one request at a time and its sequence id goes up by one per use.
//! Every reply is decoded and every operation's status checked; the first failing status stops
//! the run and becomes its `status`/`message` (NFS4ERR_NOTSUPP and NFS4ERR_ROFS as
//! "unsupported", anything else as "error"). At the end the session and the client id are
//! destroyed (untimed), so runs do not pile up state in the server.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use rnfs_nfs4::{
    self as v4, attr, nfsstat4, op::*, op_name, ArgOp, Bitmap, CompoundRes, Decoder, Opaque,
    ResBody, ResOp, XdrDecode, XdrEncode,
};
use rnfs_xdr::to_bytes;

use crate::engine::{self, CallError, Conn, Gen, OpError, Req};
use crate::workloads::{Pattern, Rng};
use crate::{payload, report, split_parent, status, Ctx, Opts, Probe};

/// Fore-channel request and reply size asked for: a 1 MiB WRITE or READ and its headers.
const CHANNEL_BYTES: u32 = 2 << 20;
/// Room for the RPC, COMPOUND, SEQUENCE and PUTFH around a READ's or WRITE's data.
const IO_OVERHEAD: u64 = 1024;
/// The callback program (no back channel is made; the field must hold something).
const CB_PROGRAM: u32 = 0x4000_0000;

fn fail(m: impl Into<String>) -> OpError {
    OpError::Failed(m.into())
}

/// Maps a failing NFSv4 status like [`crate::workloads::status_error`] maps NFSv3's.
fn status_error(what: &str, s: nfsstat4) -> OpError {
    match s {
        nfsstat4::NFS4ERR_NOTSUPP | nfsstat4::NFS4ERR_ROFS => {
            OpError::Unsupported(format!("{what}: {s:?}"))
        }
        _ => OpError::Failed(format!("{what}: {s:?}")),
    }
}

/// The COMPOUND header: an empty tag, minor version 1, `nops` operations.
fn head(nops: u32) -> BytesMut {
    let mut b = BytesMut::with_capacity(512);
    b.put_u32(0);
    b.put_u32(1);
    b.put_u32(nops);
    b
}

/// Decodes a COMPOUND reply and checks it: every operation of `want` answered, in order, each
/// NFS4_OK. Returns the results.
fn check(res: Bytes, want: &[u32], what: &str) -> Result<Vec<ResOp>, OpError> {
    let mut d = Decoder::new(res);
    let r = CompoundRes::decode(&mut d)
        .map_err(|e| fail(format!("{what}: undecodable COMPOUND reply: {e}")))?;
    for (i, res) in r.results.iter().enumerate() {
        if want.get(i) != Some(&res.op) {
            return Err(fail(format!(
                "{what}: result {i} is {} (sent {})",
                op_name(res.op),
                want.get(i).map_or("nothing", |&o| op_name(o))
            )));
        }
        if res.status != nfsstat4::NFS4_OK {
            return Err(status_error(
                &format!("{what}: {}", op_name(res.op)),
                res.status,
            ));
        }
    }
    if r.status != nfsstat4::NFS4_OK {
        return Err(status_error(&format!("{what}: COMPOUND"), r.status));
    }
    if r.results.len() != want.len() {
        return Err(fail(format!(
            "{what}: {} results for {} operations",
            r.results.len(),
            want.len()
        )));
    }
    Ok(r.results)
}

fn call_error(what: &str, e: CallError) -> OpError {
    match e {
        CallError::Rpc(s) => fail(format!("{what}: RPC {s} (is NFSv4 enabled?)")),
        e => fail(format!("{what}: {e}")),
    }
}

/// The encoded form of one operation (for the pre-encoded parts of a COMPOUND).
fn enc(op: &ArgOp) -> Bytes {
    to_bytes(op)
}

// ---- the session ---------------------------------------------------------------------------

pub struct Session {
    pub conn: Rc<Conn>,
    pub clientid: u64,
    pub sessionid: v4::sessionid4,
    /// The last sequence id used on each slot.
    seqids: RefCell<Vec<u32>>,
    /// Slots with no request outstanding.
    free: RefCell<Vec<u32>>,
    pub slots: u32,
    pub max_request: u32,
    pub max_response: u32,
}

impl Session {
    /// Takes a free slot and the sequence id of its next use.
    fn take_slot(&self) -> Option<(u32, u32)> {
        let slot = self.free.borrow_mut().pop()?;
        let mut seqids = self.seqids.borrow_mut();
        seqids[slot as usize] = seqids[slot as usize].wrapping_add(1);
        Some((slot, seqids[slot as usize]))
    }

    fn give_back(&self, slot: u32) {
        self.free.borrow_mut().push(slot);
    }

    fn sequence(&self, slot: u32, seqid: u32) -> ArgOp {
        ArgOp::Sequence(v4::SEQUENCE4args {
            sa_sessionid: self.sessionid,
            sa_sequenceid: seqid,
            sa_slotid: slot,
            sa_highest_slotid: self.slots - 1,
            sa_cachethis: false,
        })
    }

    /// Checks SEQUENCE's result against the slot and sequence id sent.
    fn check_sequence(r: &ResOp, slot: u32, seqid: u32) -> Result<(), OpError> {
        match &r.body {
            Some(ResBody::Sequence(s)) if s.sr_slotid == slot && s.sr_sequenceid == seqid => Ok(()),
            Some(ResBody::Sequence(s)) => Err(fail(format!(
                "SEQUENCE answered slot {} seqid {} for slot {slot} seqid {seqid}",
                s.sr_slotid, s.sr_sequenceid
            ))),
            _ => Err(fail("SEQUENCE result without body")),
        }
    }

    /// One untimed COMPOUND of SEQUENCE + `ops`; every status must be NFS4_OK. NFS4ERR_DELAY
    /// and NFS4ERR_GRACE are retried once a second for up to a minute, as a client would.
    pub async fn call(&self, ops: Vec<ArgOp>, what: &str) -> Result<Vec<ResOp>, OpError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (slot, seqid) = self
                .take_slot()
                .ok_or_else(|| fail("no free slot for a setup call"))?;
            let mut want = vec![OP_SEQUENCE];
            let mut b = head(1 + ops.len() as u32);
            self.sequence(slot, seqid).encode(&mut b);
            for o in &ops {
                want.push(o.num());
                o.encode(&mut b);
            }
            let r = self
                .conn
                .call(v4::NFSPROC4_COMPOUND, vec![b.freeze()])
                .await;
            self.give_back(slot);
            let res = r.map_err(|e| call_error(what, e))?;
            match check(res, &want, what) {
                Ok(mut results) => {
                    Self::check_sequence(&results[0], slot, seqid)?;
                    results.remove(0);
                    return Ok(results);
                }
                Err(OpError::Failed(m))
                    if (m.ends_with("NFS4ERR_DELAY") || m.ends_with("NFS4ERR_GRACE"))
                        && !m.contains("SEQUENCE")
                        && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Untimed: DESTROY_SESSION and DESTROY_CLIENTID (best effort).
    pub async fn destroy(&self) {
        for op in [
            ArgOp::DestroySession(self.sessionid),
            ArgOp::DestroyClientid(self.clientid),
        ] {
            let mut b = head(1);
            op.encode(&mut b);
            let _ = self
                .conn
                .call(v4::NFSPROC4_COMPOUND, vec![b.freeze()])
                .await;
        }
    }
}

/// Sends a COMPOUND without SEQUENCE (EXCHANGE_ID, CREATE_SESSION) and returns its one result.
async fn sessionless(conn: &Conn, op: ArgOp, what: &str) -> Result<ResOp, OpError> {
    let mut b = head(1);
    let num = op.num();
    op.encode(&mut b);
    let res = conn
        .call(v4::NFSPROC4_COMPOUND, vec![b.freeze()])
        .await
        .map_err(|e| call_error(what, e))?;
    Ok(check(res, &[num], what)?.remove(0))
}

/// Connects and sets up a session with `slots` fore-channel slots.
pub async fn connect(ctx: &Ctx, slots: u32) -> Result<Rc<Session>, OpError> {
    let conns = ctx.connect().await.map_err(fail)?;
    let conn = conns[0].clone();
    conn.set_version(v4::NFS_V4);
    let pid = std::process::id();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let r = sessionless(
        &conn,
        ArgOp::ExchangeId(v4::EXCHANGE_ID4args {
            eia_clientowner: v4::client_owner4 {
                co_verifier: nanos.to_be_bytes(),
                co_ownerid: Opaque(Bytes::from(format!("rnfs-loadgen-{pid}-{nanos}"))),
            },
            eia_flags: 0,
            eia_state_protect: v4::state_protect4_a::None,
            eia_client_impl_id: rnfs_xdr::Array(Vec::new()),
        }),
        "EXCHANGE_ID",
    )
    .await?;
    let Some(ResBody::ExchangeId(eid)) = r.body else {
        return Err(fail("EXCHANGE_ID: no result body"));
    };
    let chan = |req: u32, resp: u32, cached: u32, ops: u32, n: u32| v4::channel_attrs4 {
        ca_headerpadsize: 0,
        ca_maxrequestsize: req,
        ca_maxresponsesize: resp,
        ca_maxresponsesize_cached: cached,
        ca_maxoperations: ops,
        ca_maxrequests: n,
        ca_rdma_ird: rnfs_xdr::Array(Vec::new()),
    };
    let r = sessionless(
        &conn,
        ArgOp::CreateSession(v4::CREATE_SESSION4args {
            csa_clientid: eid.eir_clientid,
            csa_sequence: eid.eir_sequenceid,
            csa_flags: 0,
            csa_fore_chan_attrs: chan(CHANNEL_BYTES, CHANNEL_BYTES, 4096, 16, slots),
            csa_back_chan_attrs: chan(4096, 4096, 0, 2, 1),
            csa_cb_program: CB_PROGRAM,
            csa_sec_parms: rnfs_xdr::Array(vec![v4::callback_sec_parms4::None]),
        }),
        "CREATE_SESSION",
    )
    .await?;
    let Some(ResBody::CreateSession(cs)) = r.body else {
        return Err(fail("CREATE_SESSION: no result body"));
    };
    let fore = &cs.csr_fore_chan_attrs;
    if fore.ca_maxrequests < slots {
        return Err(fail(format!(
            "CREATE_SESSION: asked for {slots} slots, granted {} (--qd needs one slot per call in \
             flight)",
            fore.ca_maxrequests
        )));
    }
    let sess = Rc::new(Session {
        conn,
        clientid: eid.eir_clientid,
        sessionid: cs.csr_sessionid,
        seqids: RefCell::new(vec![0; slots as usize]),
        free: RefCell::new((0..slots).rev().collect()),
        slots,
        max_request: fore.ca_maxrequestsize,
        max_response: fore.ca_maxresponsesize,
    });
    sess.call(vec![ArgOp::ReclaimComplete(false)], "RECLAIM_COMPLETE")
        .await?;
    Ok(sess)
}

fn component(s: &str) -> v4::component4 {
    Opaque(Bytes::copy_from_slice(s.as_bytes()))
}

/// PUTROOTFH and one LOOKUP per component of `/export/path`, then GETFH and the type and size.
pub async fn walk(sess: &Session, export: &str, path: &str) -> Result<(v4::nfs_fh4, u64), OpError> {
    let mut ops = vec![ArgOp::PutRootFh];
    let full = format!("{export}/{path}");
    for c in full.split('/').filter(|c| !c.is_empty()) {
        ops.push(ArgOp::Lookup(component(c)));
    }
    ops.push(ArgOp::GetFh);
    ops.push(ArgOp::GetAttr(Bitmap::from_bits(&[attr::num::SIZE])));
    let mut r = sess.call(ops, &format!("LOOKUP {full}")).await?;
    let size = match r.pop().and_then(|r| r.body) {
        Some(ResBody::GetAttr(f)) if f.attrmask.contains(attr::num::SIZE) => {
            Decoder::new(f.attr_vals.0).u64().unwrap_or(0)
        }
        _ => return Err(fail(format!("GETATTR {full}: no size"))),
    };
    match r.pop().and_then(|r| r.body) {
        Some(ResBody::GetFh(fh)) => Ok((fh, size)),
        _ => Err(fail(format!("GETFH {full}: no handle"))),
    }
}

/// A 4.1 open owner of this client.
fn owner(sess: &Session, name: &str) -> v4::open_owner4 {
    v4::state_owner4 {
        clientid: sess.clientid,
        owner: Opaque(Bytes::from(name.to_string())),
    }
}

/// PUTFH `dir`, OPEN `leaf` (creating it when `create`), GETFH: the open stateid and handle.
async fn open(
    sess: &Session,
    dir: &v4::nfs_fh4,
    leaf: &str,
    create: bool,
) -> Result<(v4::stateid4, v4::nfs_fh4), OpError> {
    let openhow = if create {
        let mut mode = BytesMut::new();
        mode.put_u32(0o644);
        v4::OpenHow(Some(v4::createhow4::Unchecked(v4::fattr4 {
            attrmask: Bitmap::from_bits(&[attr::num::MODE]),
            attr_vals: Opaque(mode.freeze()),
        })))
    } else {
        v4::OpenHow(None)
    };
    let mut r = sess
        .call(
            vec![
                ArgOp::PutFh(dir.clone()),
                ArgOp::Open(v4::OPEN4args {
                    seqid: 0,
                    share_access: v4::OPEN4_SHARE_ACCESS_WANT_NO_DELEG
                        | if create {
                            v4::OPEN4_SHARE_ACCESS_BOTH
                        } else {
                            v4::OPEN4_SHARE_ACCESS_READ
                        },
                    share_deny: v4::OPEN4_SHARE_DENY_NONE,
                    owner: owner(sess, "rnfs-loadgen"),
                    openhow,
                    claim: v4::open_claim4::Null(component(leaf)),
                }),
                ArgOp::GetFh,
            ],
            &format!("OPEN {leaf}"),
        )
        .await?;
    let fh = match r.pop().and_then(|r| r.body) {
        Some(ResBody::GetFh(fh)) => fh,
        _ => return Err(fail("GETFH after OPEN: no handle")),
    };
    match r.pop().and_then(|r| r.body) {
        Some(ResBody::Open(o)) => Ok((o.stateid, fh)),
        _ => Err(fail("OPEN: no result body")),
    }
}

async fn close(sess: &Session, fh: &v4::nfs_fh4, stateid: v4::stateid4) -> Result<(), OpError> {
    sess.call(
        vec![
            ArgOp::PutFh(fh.clone()),
            ArgOp::Close(v4::CLOSE4args {
                seqid: 0,
                open_stateid: stateid,
            }),
        ],
        "CLOSE",
    )
    .await
    .map(|_| ())
}

// ---- the closed loop over slots ------------------------------------------------------------

/// What one workload sends after SEQUENCE, and how it checks the results.
pub trait Work {
    /// The operations after SEQUENCE of the next COMPOUND on `slot`: a tag for [`Work::done`],
    /// the operation numbers, and their encoded arguments as consecutive parts. `None` when done.
    fn next(&mut self, slot: u32) -> Option<(u64, &'static [u32], Vec<Bytes>)>;
    /// Checks the results after SEQUENCE's (all NFS4_OK); returns the payload bytes moved.
    fn done(&mut self, tag: u64, res: Vec<ResOp>) -> Result<u64, OpError>;
}

/// Adapts a [`Work`] to the engine: a slot per COMPOUND in flight.
pub struct SlotGen<W> {
    sess: Rc<Session>,
    pub work: W,
    /// Per slot: the sequence id sent, the operations and the work's tag.
    inflight: Vec<(u32, &'static [u32], u64)>,
    want: Vec<u32>,
}

impl<W: Work> SlotGen<W> {
    pub fn new(sess: Rc<Session>, work: W) -> Self {
        let n = sess.slots as usize;
        SlotGen {
            sess,
            work,
            inflight: vec![(0, &[], 0); n],
            want: Vec::with_capacity(8),
        }
    }
}

impl<W: Work> Gen for SlotGen<W> {
    fn next(&mut self) -> Option<Req> {
        let (slot, seqid) = self.sess.take_slot()?;
        let Some((tag, ops, parts)) = self.work.next(slot) else {
            // Not used after all: its sequence id goes back too.
            let mut seqids = self.sess.seqids.borrow_mut();
            seqids[slot as usize] = seqids[slot as usize].wrapping_sub(1);
            drop(seqids);
            self.sess.give_back(slot);
            return None;
        };
        self.inflight[slot as usize] = (seqid, ops, tag);
        let mut b = head(1 + ops.len() as u32);
        self.sess.sequence(slot, seqid).encode(&mut b);
        let mut args = Vec::with_capacity(parts.len() + 1);
        args.push(b.freeze());
        args.extend(parts);
        Some(Req {
            tag: slot as u64,
            proc: v4::NFSPROC4_COMPOUND,
            args,
        })
    }

    fn done(&mut self, slot: u64, res: Bytes) -> Result<u64, OpError> {
        let slot = slot as u32;
        self.sess.give_back(slot);
        let (seqid, ops, tag) = self.inflight[slot as usize];
        self.want.clear();
        self.want.push(OP_SEQUENCE);
        self.want.extend_from_slice(ops);
        let mut results = check(res, &self.want, "COMPOUND")?;
        Session::check_sequence(&results[0], slot, seqid)?;
        results.remove(0);
        self.work.done(tag, results)
    }
}

// ---- READ and WRITE ------------------------------------------------------------------------

const PUTFH_READ: &[u32] = &[OP_PUTFH, OP_READ];
const PUTFH_WRITE: &[u32] = &[OP_PUTFH, OP_WRITE];
const PUTFH_GETATTR: &[u32] = &[OP_PUTFH, OP_GETATTR];
const OPEN_READ_CLOSE: &[u32] = &[OP_PUTFH, OP_OPEN, OP_READ, OP_CLOSE];

pub struct ReadWork {
    putfh: Bytes,
    stateid: v4::stateid4,
    size: u64,
    bs: u64,
    pattern: Pattern,
}

impl Work for ReadWork {
    fn next(&mut self, _: u32) -> Option<(u64, &'static [u32], Vec<Bytes>)> {
        let off = self.pattern.next_offset(self.size, self.bs)?;
        let read = enc(&ArgOp::Read(v4::READ4args {
            stateid: self.stateid,
            offset: off,
            count: self.bs as u32,
        }));
        Some((off, PUTFH_READ, vec![self.putfh.clone(), read]))
    }

    fn done(&mut self, off: u64, mut res: Vec<ResOp>) -> Result<u64, OpError> {
        let Some(ResBody::Read(r)) = res.pop().and_then(|r| r.body) else {
            return Err(fail("READ: no result body"));
        };
        let want = self.bs.min(self.size.saturating_sub(off));
        let got = r.data.len() as u64;
        if got != want {
            return Err(fail(format!("READ at {off}: {got} bytes, wanted {want}")));
        }
        Ok(got)
    }
}

pub struct WriteWork {
    putfh: Bytes,
    stateid: v4::stateid4,
    size: u64,
    bs: u64,
    pattern: Pattern,
    data: Bytes,
    pub uncommitted: bool,
}

impl Work for WriteWork {
    fn next(&mut self, _: u32) -> Option<(u64, &'static [u32], Vec<Bytes>)> {
        let off = self.pattern.next_offset(self.size, self.bs)?;
        let len = self.bs.min(self.size - off) as usize;
        let rot = ((off / self.bs) as usize * 4096) % (self.data.len() - len + 1);
        // WRITE4args up to the data's length word; the payload follows as its own part (a
        // slice of the shared buffer, never copied), then its padding.
        let mut w = BytesMut::with_capacity(40);
        w.put_u32(OP_WRITE);
        self.stateid.encode(&mut w);
        w.put_u64(off);
        w.put_u32(0); // UNSTABLE4
        w.put_u32(len as u32);
        let mut parts = vec![
            self.putfh.clone(),
            w.freeze(),
            self.data.slice(rot..rot + len),
        ];
        let pad = (4 - len % 4) % 4;
        if pad > 0 {
            parts.push(Bytes::from(vec![0u8; pad]));
        }
        Some((len as u64, PUTFH_WRITE, parts))
    }

    fn done(&mut self, len: u64, mut res: Vec<ResOp>) -> Result<u64, OpError> {
        let Some(ResBody::Write(w)) = res.pop().and_then(|r| r.body) else {
            return Err(fail("WRITE: no result body"));
        };
        if w.count as u64 != len {
            return Err(fail(format!("short WRITE: {} of {len} bytes", w.count)));
        }
        if w.committed != v4::stable_how4::FILE_SYNC4 {
            self.uncommitted = true;
        }
        Ok(len)
    }
}

// ---- GETATTR -------------------------------------------------------------------------------

/// What a Linux client asks to revalidate a file: type, change, size, fsid, fileid, mode,
/// numlinks, owner, owner_group, rawdev, space_used, the times and mounted_on_fileid.
fn getattr_bits() -> Bitmap {
    use attr::num::*;
    Bitmap::from_bits(&[
        TYPE,
        CHANGE,
        SIZE,
        FSID,
        FILEID,
        MODE,
        NUMLINKS,
        OWNER,
        OWNER_GROUP,
        RAWDEV,
        SPACE_USED,
        TIME_ACCESS,
        TIME_METADATA,
        TIME_MODIFY,
        MOUNTED_ON_FILEID,
    ])
}

pub struct GetattrWork {
    putfhs: Vec<Bytes>,
    getattr: Bytes,
    next: usize,
}

impl Work for GetattrWork {
    fn next(&mut self, _: u32) -> Option<(u64, &'static [u32], Vec<Bytes>)> {
        let i = self.next;
        let putfh = self.putfhs.get(i)?.clone();
        self.next += 1;
        Some((i as u64, PUTFH_GETATTR, vec![putfh, self.getattr.clone()]))
    }

    fn done(&mut self, i: u64, mut res: Vec<ResOp>) -> Result<u64, OpError> {
        match res.pop().and_then(|r| r.body) {
            Some(ResBody::GetAttr(f)) if f.attrmask.contains(attr::num::SIZE) => Ok(0),
            _ => Err(fail(format!("GETATTR of entry {i}: no size in the reply"))),
        }
    }
}

/// READDIR of `dir` asking for the file handle (and type) of each entry, until `count` regular
/// files are found or the directory ends: their names and handles.
async fn list(
    sess: &Session,
    dir: &v4::nfs_fh4,
    count: usize,
) -> Result<Vec<(String, v4::nfs_fh4)>, OpError> {
    let mut out = Vec::new();
    let (mut cookie, mut verf) = (0u64, [0u8; 8]);
    loop {
        let mut r = sess
            .call(
                vec![
                    ArgOp::PutFh(dir.clone()),
                    ArgOp::ReadDir(v4::READDIR4args {
                        cookie,
                        cookieverf: verf,
                        dircount: 8192,
                        maxcount: 65536,
                        attr_request: Bitmap::from_bits(&[attr::num::TYPE, attr::num::FILEHANDLE]),
                    }),
                ],
                "READDIR",
            )
            .await?;
        let Some(ResBody::ReadDir(page)) = r.pop().and_then(|r| r.body) else {
            return Err(fail("READDIR: no result body"));
        };
        verf = page.cookieverf;
        for e in &page.entries.0 {
            cookie = e.cookie;
            let a = &e.attrs;
            if !a.attrmask.contains(attr::num::FILEHANDLE) || !a.attrmask.contains(attr::num::TYPE)
            {
                return Err(fail("READDIR: entry without type or file handle"));
            }
            let mut d = Decoder::new(a.attr_vals.0.clone());
            let ftype = d.u32().map_err(|e| fail(format!("READDIR attrs: {e}")))?;
            let fh: v4::nfs_fh4 = d
                .decode()
                .map_err(|e| fail(format!("READDIR attrs: {e}")))?;
            if ftype == v4::nfs_ftype4::NF4REG as u32 {
                out.push((String::from_utf8_lossy(e.name.as_bytes()).into_owned(), fh));
                if out.len() >= count {
                    return Ok(out);
                }
            }
        }
        if page.eof {
            return Ok(out);
        }
        if page.entries.0.is_empty() {
            return Err(fail("READDIR page with no entries and no eof"));
        }
    }
}

// ---- OPEN + READ + CLOSE -------------------------------------------------------------------

/// One COMPOUND per file: SEQUENCE, PUTFH (the directory), OPEN (CLAIM_NULL, no create, read
/// access, deny none, the slot's own open owner), READ `bs` at 0 with the current stateid,
/// CLOSE of the current stateid. Files are taken in turn from the directory's list.
pub struct OpenReadCloseWork {
    putfh: Bytes,
    names: Vec<String>,
    owners: Vec<v4::open_owner4>,
    bs: u32,
    next: usize,
    deadline: Instant,
    read_close: Bytes,
}

impl Work for OpenReadCloseWork {
    fn next(&mut self, slot: u32) -> Option<(u64, &'static [u32], Vec<Bytes>)> {
        if Instant::now() >= self.deadline {
            return None;
        }
        let i = self.next % self.names.len();
        self.next += 1;
        let open = enc(&ArgOp::Open(v4::OPEN4args {
            seqid: 0,
            share_access: v4::OPEN4_SHARE_ACCESS_READ | v4::OPEN4_SHARE_ACCESS_WANT_NO_DELEG,
            share_deny: v4::OPEN4_SHARE_DENY_NONE,
            owner: self.owners[slot as usize].clone(),
            openhow: v4::OpenHow(None),
            claim: v4::open_claim4::Null(component(&self.names[i])),
        }));
        Some((
            i as u64,
            OPEN_READ_CLOSE,
            vec![self.putfh.clone(), open, self.read_close.clone()],
        ))
    }

    fn done(&mut self, i: u64, res: Vec<ResOp>) -> Result<u64, OpError> {
        match res.get(2).and_then(|r| r.body.as_ref()) {
            Some(ResBody::Read(r))
                if r.data.len() == self.bs as usize || (r.eof && !r.data.is_empty()) =>
            {
                Ok(r.data.len() as u64)
            }
            Some(ResBody::Read(r)) => Err(fail(format!(
                "READ of {}: {} bytes (eof {}), wanted {}",
                self.names[i as usize],
                r.data.len(),
                r.eof,
                self.bs
            ))),
            _ => Err(fail("READ: no result body")),
        }
    }
}

// ---- the workloads -------------------------------------------------------------------------

fn putfh(fh: &v4::nfs_fh4) -> Bytes {
    enc(&ArgOp::PutFh(fh.clone()))
}

fn finish(
    ctx: &Ctx,
    name: &str,
    sess: &Session,
    mut s: engine::RunStats,
    extra_secs: f64,
    probe: &Probe,
    fields: &[(&str, f64)],
) {
    let mut j = ctx.json(name);
    j.s("proto", "nfs4.1").n("slots", sess.slots as f64);
    for (k, v) in fields {
        j.n(k, *v);
    }
    report(&mut j, &mut s, extra_secs);
    probe.finish(&mut j);
    status(&mut j, &s.error);
    j.print();
}

/// `seq-read`, `rand-read`, `seq-write`, `rand-write` over NFSv4.1. The file is opened
/// (untimed; `seq-write` creates it) and its open stateid used by every READ or WRITE; writes
/// are UNSTABLE and followed by one COMMIT (timed) when any reply was not FILE_SYNC.
pub async fn io_workload(ctx: &Ctx, o: &Opts, kind: &str, name: &str) -> Result<(), OpError> {
    let path = o.opt("file").ok_or_else(|| fail("--file is required"))?;
    let bs = o.size("bs", 1 << 20).map_err(fail)?;
    let secs: f64 = o.num("secs", 5.0).map_err(fail)?;
    let seed: u64 = o.num("seed", 0x9e37_79b9_7f4a_7c15).map_err(fail)?;
    let write = kind.ends_with("write");
    let sess = connect(ctx, ctx.qd.max(1) as u32).await?;
    let need = bs + IO_OVERHEAD;
    if (write && (sess.max_request as u64) < need) || (!write && (sess.max_response as u64) < need)
    {
        return Err(fail(format!(
            "session grants ca_maxrequestsize {} / ca_maxresponsesize {}: too small for --bs {bs}",
            sess.max_request, sess.max_response
        )));
    }
    let (parent, leaf) = split_parent(&path);
    let (dir, _) = walk(&sess, &ctx.export, parent).await?;
    let create = kind == "seq-write";
    let (stateid, fh) = open(&sess, &dir, leaf, create).await?;
    let size = if create {
        o.size("size", 1 << 30).map_err(fail)?
    } else {
        let (_, fsize) = walk(&sess, &ctx.export, &path).await?;
        o.size("size", fsize).map_err(fail)?.min(fsize)
    };
    if size < bs {
        return Err(fail(format!("{path}: {size} bytes, less than one block")));
    }
    let pattern = if kind.starts_with("seq") {
        Pattern::Seq { next: 0 }
    } else {
        Pattern::Rand {
            rng: Rng::new(seed),
            deadline: Instant::now() + Duration::from_secs_f64(secs),
        }
    };
    let probe = Probe::start(ctx.server_pid);
    let fields = [("bs", bs as f64), ("size", size as f64)];
    if write {
        let gen = Rc::new(RefCell::new(SlotGen::new(
            sess.clone(),
            WriteWork {
                putfh: putfh(&fh),
                stateid,
                size,
                bs,
                pattern,
                data: payload((bs as usize).max(1 << 20) + (1 << 20), seed),
                uncommitted: false,
            },
        )));
        let mut s = engine::run(std::slice::from_ref(&sess.conn), ctx.qd, gen.clone()).await;
        let uncommitted = gen.borrow().work.uncommitted;
        let mut commit_secs = 0.0;
        if s.error.is_none() && uncommitted {
            let t = Instant::now();
            let r = sess
                .call(
                    vec![
                        ArgOp::PutFh(fh.clone()),
                        ArgOp::Commit(v4::COMMIT4args {
                            offset: 0,
                            count: 0,
                        }),
                    ],
                    "COMMIT",
                )
                .await;
            commit_secs = t.elapsed().as_secs_f64();
            s.error = r.err();
        }
        let mut f = fields.to_vec();
        f.push(("commit_secs", commit_secs));
        f.push(("committed_by_write", if uncommitted { 0.0 } else { 1.0 }));
        finish(ctx, name, &sess, s, commit_secs, &probe, &f);
    } else {
        let gen = Rc::new(RefCell::new(SlotGen::new(
            sess.clone(),
            ReadWork {
                putfh: putfh(&fh),
                stateid,
                size,
                bs,
                pattern,
            },
        )));
        let s = engine::run(std::slice::from_ref(&sess.conn), ctx.qd, gen).await;
        finish(ctx, name, &sess, s, 0.0, &probe, &fields);
    }
    // Untimed clean-up: CLOSE, the written file, the session.
    let _ = close(&sess, &fh, stateid).await;
    if create && o.str("keep", "no") != "yes" {
        let _ = sess
            .call(
                vec![ArgOp::PutFh(dir.clone()), ArgOp::Remove(component(leaf))],
                "REMOVE",
            )
            .await;
    }
    sess.destroy().await;
    Ok(())
}

/// `getattr`: PUTFH + GETATTR (the attributes a Linux client revalidates with) of `--count`
/// files of `--dir` each once, their handles from an untimed READDIR.
pub async fn getattr_workload(ctx: &Ctx, o: &Opts, name: &str) -> Result<(), OpError> {
    let dirpath = o.opt("dir").ok_or_else(|| fail("--dir is required"))?;
    let count: usize = o.num("count", 10_000).map_err(fail)?;
    let sess = connect(ctx, ctx.qd.max(1) as u32).await?;
    let (dir, _) = walk(&sess, &ctx.export, &dirpath).await?;
    let files = list(&sess, &dir, count).await?;
    if files.is_empty() {
        return Err(fail(format!("{dirpath}: no files")));
    }
    let n = files.len();
    let gen = Rc::new(RefCell::new(SlotGen::new(
        sess.clone(),
        GetattrWork {
            putfhs: files.iter().map(|(_, fh)| putfh(fh)).collect(),
            getattr: enc(&ArgOp::GetAttr(getattr_bits())),
            next: 0,
        },
    )));
    let probe = Probe::start(ctx.server_pid);
    let s = engine::run(std::slice::from_ref(&sess.conn), ctx.qd, gen).await;
    finish(ctx, name, &sess, s, 0.0, &probe, &[("count", n as f64)]);
    sess.destroy().await;
    Ok(())
}

/// `open-read-close`: for `--secs`, one COMPOUND per call of OPEN + READ `--bs` + CLOSE of the
/// regular files of `--dir` (at most `--count`, taken in turn).
pub async fn open_read_close_workload(ctx: &Ctx, o: &Opts, name: &str) -> Result<(), OpError> {
    let dirpath = o.opt("dir").ok_or_else(|| fail("--dir is required"))?;
    let count: usize = o.num("count", 1000).map_err(fail)?;
    let bs = o.size("bs", 4096).map_err(fail)? as u32;
    let secs: f64 = o.num("secs", 5.0).map_err(fail)?;
    let sess = connect(ctx, ctx.qd.max(1) as u32).await?;
    let (dir, _) = walk(&sess, &ctx.export, &dirpath).await?;
    let files = list(&sess, &dir, count).await?;
    if files.is_empty() {
        return Err(fail(format!("{dirpath}: no files")));
    }
    let mut read_close = BytesMut::new();
    ArgOp::Read(v4::READ4args {
        stateid: v4::stateid4::CURRENT,
        offset: 0,
        count: bs,
    })
    .encode(&mut read_close);
    ArgOp::Close(v4::CLOSE4args {
        seqid: 0,
        open_stateid: v4::stateid4::CURRENT,
    })
    .encode(&mut read_close);
    let pid = std::process::id();
    let n = files.len();
    let gen = Rc::new(RefCell::new(SlotGen::new(
        sess.clone(),
        OpenReadCloseWork {
            putfh: putfh(&dir),
            names: files.into_iter().map(|(n, _)| n).collect(),
            owners: (0..sess.slots)
                .map(|i| owner(&sess, &format!("rnfs-loadgen-{pid}-slot-{i}")))
                .collect(),
            bs,
            next: 0,
            deadline: Instant::now() + Duration::from_secs_f64(secs),
            read_close: read_close.freeze(),
        },
    )));
    let probe = Probe::start(ctx.server_pid);
    let s = engine::run(std::slice::from_ref(&sess.conn), ctx.qd, gen).await;
    finish(
        ctx,
        name,
        &sess,
        s,
        0.0,
        &probe,
        &[("bs", bs as f64), ("files", n as f64)],
    );
    sess.destroy().await;
    Ok(())
}
