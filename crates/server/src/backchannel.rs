//! The NFSv4.1 back channel (RFC 8881 §2.10.3.1, §20): calls from the server to a client, sent
//! on a TCP connection the client made and bound to its session's back channel, their replies
//! read back from that same connection.
//!
//! * [`BackChannels`] knows every open TCP connection's way out (the worker's [`SendSide`]) and
//!   the calls on it waiting for a reply, by xid. A connection's reader hands every RPC *reply*
//!   it reads to [`BackChannels::deliver`] instead of the worker pool.
//! * Workers never call a client: they queue a [`CbJob`] ([`crate::callbacks::Callbacks::submit`],
//!   a `try_send` on a bounded channel) and the dispatcher task ([`start`]) makes the call: a CB_NULL probe of a
//!   new back channel, or a CB_COMPOUND (CB_SEQUENCE first, then CB_RECALL...) on the client's
//!   session whose back channel is up and free.
//!
//! # Liveness rules
//! * A call is a message queued like a reply: it takes one of its connection's request permits
//!   and its size in reply memory, both without waiting (a full connection is a failed call), and
//!   the connection's writer sends it; nothing here touches the socket.
//! * Every wait is bounded: a call waits for its reply at most `timeout_ms`; a CB_COMPOUND waits
//!   for its session's one back-channel slot until the same deadline. The pending-call map's
//!   lock is a leaf, held for one insert or removal, never across `.await`.
//! * A closed connection drops its pending calls: their callers see it at once.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use rnfs_nfs4::cb::{CB_COMPOUND4args, CB_COMPOUND4res, CB_SEQUENCE4args, CbArgOp};
use rnfs_nfs4::{self as w, callback_sec_parms4};
use rnfs_nfs4state::{CbUnavailable, ClientId, SessionId};
use rnfs_oncrpc::{OpaqueAuth, ReplyHeader};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tracing::{debug, warn};

use crate::call::Reply;
use crate::callbacks::{count, CbCounters, CbError, CbJob};
use crate::lockdep::TrackedMutex;
use crate::outgoing::{Outgoing, Queued, SendSide};
use crate::reply_memory::ReplyBudget;
use crate::service::Service;

/// The callback program's version (RFC 8881 §20: `NFS_CB` is version 1).
pub const CB_VERSION: u32 = 1;
const CB_NULL: u32 = 0;
const CB_COMPOUND: u32 = 1;
/// Calls waiting for a reply on one connection: a session's slot carries one CB_COMPOUND at a
/// time, so this bounds what many sessions sharing a connection, and their probes, may have.
const PENDING_PER_CONN_MAX: usize = 64;
/// Jobs queued for the dispatcher; a full queue refuses more at once.
const JOBS_QUEUE_MAX: usize = 1024;
/// Jobs running at the same time (each waits at most one call's timeout).
const JOBS_IN_FLIGHT_MAX: usize = 64;
/// How often a CB_COMPOUND waiting for its session's busy slot looks again.
const SLOT_RETRY_MS: u64 = 5;
/// Largest CB_COMPOUND reply decoded (bytes): CB_SEQUENCE's and a few statuses.
const CB_REPLY_BYTES_MAX: usize = 64 << 10;

/// One connection's way out, and its calls waiting for replies.
pub struct CbConn {
    side: SendSide,
    /// The connection's request permits: a call in the send queue takes one, like a reply.
    in_flight: Arc<Semaphore>,
    budget: Arc<ReplyBudget>,
    pending: TrackedMutex<HashMap<u32, oneshot::Sender<Bytes>>>,
}

impl CbConn {
    pub fn new(side: SendSide, in_flight: Arc<Semaphore>, budget: Arc<ReplyBudget>) -> CbConn {
        CbConn {
            side,
            in_flight,
            budget,
            pending: TrackedMutex::new("backchannel.pending", HashMap::new()),
        }
    }
}

/// Every connection's back-channel side (held by the transport).
pub struct BackChannels {
    conns: TrackedMutex<HashMap<u64, Arc<CbConn>>>,
    /// Whose calls these are (its counts, see [`crate::callbacks`]).
    service: Arc<Service>,
}

/// An RPC reply message (msg_type REPLY, RFC 5531 §9): the record after its xid says 1.
pub fn is_reply(record: &[u8]) -> bool {
    record.get(4..8) == Some(&[0, 0, 0, 1])
}

impl BackChannels {
    pub fn new(service: Arc<Service>) -> BackChannels {
        BackChannels {
            conns: TrackedMutex::new("backchannel.conns", HashMap::new()),
            service,
        }
    }

    fn counts(&self) -> &CbCounters {
        &self.service.callbacks().counters
    }

    /// A TCP connection opened: calls may be sent on it.
    pub fn register(&self, conn_id: u64, conn: CbConn) {
        self.conns.lock().insert(conn_id, Arc::new(conn));
    }

    /// The connection closed: its pending calls fail now (their senders are dropped).
    pub fn unregister(&self, conn_id: u64) {
        let gone = self.conns.lock().remove(&conn_id);
        if let Some(conn) = gone {
            conn.pending.lock().clear();
        }
    }

    /// A reply read on connection `conn_id`: to the call waiting for its xid, if any.
    pub fn deliver(&self, conn_id: u64, record: Bytes) {
        let Some(xid) = record
            .get(..4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        else {
            return;
        };
        let conn = self.conns.lock().get(&conn_id).cloned();
        let waiter = conn.and_then(|c| c.pending.lock().remove(&xid));
        match waiter {
            Some(tx) => {
                let _ = tx.send(record);
            }
            None => {
                count(&self.counts().stray_replies);
                debug!(conn_id, xid, "reply to no call of ours: dropped");
            }
        }
    }

    /// Calls `proc_num` of program `prog` on connection `conn_id` and waits (at most
    /// `timeout_ms`) for the reply's results.
    async fn call(
        &self,
        conn_id: u64,
        prog: u32,
        proc_num: u32,
        cred: &OpaqueAuth,
        args: &[u8],
        timeout_ms: u64,
    ) -> Result<Bytes, CbError> {
        count(&self.counts().calls);
        let conn = self
            .conns
            .lock()
            .get(&conn_id)
            .cloned()
            .ok_or(CbError::NoPath)?;
        let xid = crate::nlm_callback::next_xid();
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = conn.pending.lock();
            if pending.len() >= PENDING_PER_CONN_MAX {
                return Err(CbError::ConnBusy);
            }
            pending.insert(xid, tx);
        }
        // Removes the entry however the wait ends (a reply took it already: no-op).
        let _forget = Forget(&conn, xid);
        send_call(&conn, xid, prog, proc_num, cred, args)?;
        let wait = std::time::Duration::from_millis(timeout_ms);
        let reply = match tokio::time::timeout(wait, rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => return Err(CbError::NoPath),
            Err(_) => {
                count(&self.counts().timeouts);
                return Err(CbError::Timeout(timeout_ms));
            }
        };
        match rnfs_oncrpc::decode_reply(reply) {
            Ok((_, ReplyHeader::Success, results)) => {
                count(&self.counts().answered);
                Ok(results)
            }
            Ok((_, other, _)) => Err(CbError::Refused(format!("{other:?}"))),
            Err(_) => Err(CbError::Garbage),
        }
    }
}

struct Forget<'a>(&'a CbConn, u32);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0.pending.lock().remove(&self.1);
    }
}

/// Queues the call message on the connection like a reply (see the module docs).
fn send_call(
    conn: &CbConn,
    xid: u32,
    prog: u32,
    proc_num: u32,
    cred: &OpaqueAuth,
    args: &[u8],
) -> Result<(), CbError> {
    let mut reply = Reply::new();
    rnfs_oncrpc::encode_call(&mut reply.head, xid, prog, CB_VERSION, proc_num, cred);
    reply.head.put_slice(args);
    let bytes = crate::reply_memory::reply_bytes(&reply);
    let permit = conn
        .in_flight
        .clone()
        .try_acquire_owned()
        .map_err(|_| CbError::ConnBusy)?;
    let charge = conn
        .budget
        .try_charge(bytes, None)
        .ok_or(CbError::ConnBusy)?;
    let item = Queued::new(Outgoing::new(reply), None, permit, charge);
    match conn.side.send_or_queue(item) {
        crate::outgoing::Sent::Dropped => Err(CbError::NoPath),
        _ => Ok(()),
    }
}

/// The credential for calls on a back channel: the first of the client's `csa_sec_parms` this
/// server can use (AUTH_NONE, or AUTH_SYS with the client's own parameters, §18.36.3).
pub fn credential(cb_sec: &Bytes) -> Result<OpaqueAuth, CbError> {
    let list: rnfs_xdr::Array<callback_sec_parms4, { w::SEC_PARMS_MAX }> =
        rnfs_xdr::from_bytes(cb_sec.clone()).map_err(|_| CbError::NoSecurity)?;
    for p in list.0 {
        match p {
            callback_sec_parms4::None => return Ok(OpaqueAuth::none()),
            callback_sec_parms4::Sys(sys) => {
                return Ok(OpaqueAuth {
                    flavor: rnfs_oncrpc::auth::AUTH_SYS,
                    body: rnfs_xdr::to_bytes(&sys),
                })
            }
            callback_sec_parms4::Gss(_) => {}
        }
    }
    Err(CbError::NoSecurity)
}

/// Starts the dispatcher on the current runtime; it runs until the service is dropped.
pub fn start(service: &Arc<Service>, conns: Arc<BackChannels>) {
    let (tx, mut rx) = mpsc::channel::<CbJob>(JOBS_QUEUE_MAX);
    if !service.callbacks().set_queue(tx) {
        return;
    }
    let weak = Arc::downgrade(service);
    let permits = Arc::new(Semaphore::new(JOBS_IN_FLIGHT_MAX));
    tokio::spawn(async move {
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let Some(job) = rx.recv().await else {
                break;
            };
            let Some(svc) = weak.upgrade() else {
                break;
            };
            let conns = conns.clone();
            tokio::spawn(async move {
                run(&svc, &conns, job).await;
                drop(permit);
            });
        }
    });
}

/// Runs one job.
async fn run(svc: &Service, conns: &BackChannels, job: CbJob) {
    match job {
        CbJob::Probe(sid) => probe(svc, conns, sid).await,
        CbJob::Compound { client, ops, done } => {
            let res = compound(svc, conns, client, ops).await;
            if let Err(e) = &res {
                warn!(client = format_args!("{:016x}", client.0), error = %e, "NFSv4 callback failed");
            }
            done(res);
        }
    }
}

fn timeout_ms(svc: &Service) -> u64 {
    svc.limits().lock_callback_timeout_ms
}

/// CB_NULL on the session's back channel.
async fn probe(svc: &Service, conns: &BackChannels, sid: SessionId) {
    let Ok(target) = svc.v4().with(|s| s.probe_target(sid)) else {
        return;
    };
    let answered = match credential(&target.cb_sec) {
        Ok(cred) => {
            let res = conns
                .call(
                    target.conn,
                    target.cb_program,
                    CB_NULL,
                    &cred,
                    &[],
                    timeout_ms(svc),
                )
                .await;
            if let Err(e) = &res {
                warn!(error = %e, "NFSv4 back channel probe (CB_NULL) failed: callbacks are off for this session");
                count(&svc.callbacks().counters.failed);
            }
            res.is_ok()
        }
        Err(e) => {
            warn!(error = %e, "NFSv4 back channel unusable");
            false
        }
    };
    svc.v4().with(|s| s.probe_done(sid, answered));
}

/// A CB_COMPOUND of CB_SEQUENCE and `ops` to the client.
async fn compound(
    svc: &Service,
    conns: &BackChannels,
    client: ClientId,
    ops: Vec<CbArgOp>,
) -> Result<CB_COMPOUND4res, CbError> {
    let deadline_ms = crate::clock::now_ms() + timeout_ms(svc);
    let target = loop {
        match svc.v4().with(|s| s.client_backchannel(client)) {
            Ok(t) => break t,
            Err(CbUnavailable::Busy) if crate::clock::now_ms() < deadline_ms => {
                tokio::time::sleep(std::time::Duration::from_millis(SLOT_RETRY_MS)).await;
            }
            Err(CbUnavailable::Busy) => return Err(CbError::Timeout(timeout_ms(svc))),
            Err(_) => return Err(CbError::NoPath),
        }
    };
    let sid = target.sessionid;
    let mut argarray = Vec::with_capacity(ops.len() + 1);
    argarray.push(CbArgOp::Sequence(CB_SEQUENCE4args {
        csa_sessionid: sid.0,
        csa_sequenceid: target.sequenceid,
        csa_slotid: target.slotid,
        csa_highest_slotid: 0,
        csa_cachethis: false,
        csa_referring_call_lists: rnfs_xdr::Array(Vec::new()),
    }));
    argarray.extend(ops);
    let args = CB_COMPOUND4args {
        tag: w::Opaque(Bytes::new()),
        minorversion: target.minor,
        callback_ident: 0,
        argarray: rnfs_xdr::Array(argarray),
    };
    let mut body = BytesMut::new();
    rnfs_xdr::XdrEncode::encode(&args, &mut body);
    let res = match credential(&target.cb_sec) {
        Ok(cred) => {
            let left_ms = deadline_ms.saturating_sub(crate::clock::now_ms()).max(1);
            conns
                .call(
                    target.conn,
                    target.cb_program,
                    CB_COMPOUND,
                    &cred,
                    &body,
                    left_ms,
                )
                .await
        }
        Err(e) => Err(e),
    };
    let res = res.and_then(|results| {
        if results.len() > CB_REPLY_BYTES_MAX {
            return Err(CbError::Garbage);
        }
        rnfs_xdr::from_bytes::<CB_COMPOUND4res>(results).map_err(|_| CbError::Garbage)
    });
    // Any decoded reply means the client's CB_SEQUENCE saw the sequence id.
    svc.v4().with(|s| s.callback_done(sid, res.is_ok()));
    if res.is_err() {
        count(&svc.callbacks().counters.failed);
    }
    res
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn replies_are_told_from_calls() {
        assert!(is_reply(&[0, 0, 0, 9, 0, 0, 0, 1, 0]));
        assert!(!is_reply(&[0, 0, 0, 9, 0, 0, 0, 0, 0]));
        assert!(!is_reply(&[0, 0, 0]));
    }

    #[test]
    fn credential_picks_the_first_usable_flavor() {
        let sys = w::authsys_parms {
            stamp: 1,
            machinename: w::Opaque(Bytes::from_static(b"m")),
            uid: 17,
            gid: 19,
            gids: rnfs_xdr::Array(Vec::new()),
        };
        let gss = callback_sec_parms4::Gss(w::gss_cb_handles4 {
            gcbp_service: 1,
            gcbp_handle_from_server: w::Opaque(Bytes::new()),
            gcbp_handle_from_client: w::Opaque(Bytes::new()),
        });
        let enc = |v: Vec<callback_sec_parms4>| {
            rnfs_xdr::to_bytes(&rnfs_xdr::Array::<callback_sec_parms4, { w::SEC_PARMS_MAX }>(v))
        };
        let c = credential(&enc(vec![
            gss.clone(),
            callback_sec_parms4::Sys(sys.clone()),
        ]))
        .unwrap();
        assert_eq!(c.flavor, rnfs_oncrpc::auth::AUTH_SYS);
        assert_eq!(c.body, rnfs_xdr::to_bytes(&sys));
        let c = credential(&enc(vec![callback_sec_parms4::None])).unwrap();
        assert_eq!(c.flavor, rnfs_oncrpc::auth::AUTH_NONE);
        assert_eq!(credential(&enc(vec![gss])), Err(CbError::NoSecurity));
        assert_eq!(
            credential(&Bytes::from_static(b"\xff")),
            Err(CbError::NoSecurity)
        );
    }
}
