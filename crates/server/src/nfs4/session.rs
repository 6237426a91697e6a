//! Clients and sessions (RFC 8881 §2.4, §2.10, §18.35–18.37, §18.33, §18.34, §18.46, §18.50,
//! §18.51): EXCHANGE_ID, CREATE_SESSION, DESTROY_SESSION, BIND_CONN_TO_SESSION,
//! BACKCHANNEL_CTL, SEQUENCE, DESTROY_CLIENTID, RECLAIM_COMPLETE. The rules (the EXCHANGE_ID
//! cases, CREATE_SESSION's own sequence, the slot table and its reply cache) are
//! `rnfs-nfs4state`'s; this module maps the wire to it and back, and releases what a destroyed
//! client held in the lock manager.

use bytes::{BufMut, Bytes, BytesMut};
use rnfs_nfs4::{self as w, nfsstat4, op::*, ResBody, ResOp};
use rnfs_nfs4state::{self as st, ClientId, SessionId};
use rnfs_oncrpc::Credential;

use super::ctx::{Ctx, SlotTicket};
use crate::call::{Reply, Tail};
use crate::service::Service;

/// How SEQUENCE went.
pub enum Begun {
    /// Its result (the compound goes on if it is NFS4_OK).
    Res(ResOp),
    /// A retransmission answered from the slot's cache: the whole COMPOUND4res.
    Replay(Bytes),
}

fn err(op: u32, e: st::Error) -> ResOp {
    ResOp::status(op, nfsstat4::from_u32(e.nfsstat4()))
}

/// The caller as EXCHANGE_ID and CREATE_SESSION compare it (§2.4.3): flavor and uid.
pub fn principal(ctx: &Ctx<'_>) -> Bytes {
    match &ctx.call.header.credential {
        Credential::Sys(sys) => Bytes::from(format!("sys:{}", sys.uid)),
        Credential::None => Bytes::from_static(b"none"),
    }
}

pub fn exchange_id(ctx: &mut Ctx<'_>, a: w::EXCHANGE_ID4args) -> ResOp {
    let flags = a.eia_flags;
    if flags & !w::EXCHGID4_FLAG_MASK_A != 0 || flags & w::EXCHGID4_FLAG_CONFIRMED_R != 0 {
        return ResOp::status(OP_EXCHANGE_ID, nfsstat4::NFS4ERR_INVAL);
    }
    match a.eia_state_protect {
        w::state_protect4_a::None => {}
        // Machine credentials need RPCSEC_GSS to mean anything; SSV is not offered.
        w::state_protect4_a::MachCred(_) | w::state_protect4_a::Ssv(_) => {
            return ResOp::status(OP_EXCHANGE_ID, nfsstat4::NFS4ERR_NOTSUPP)
        }
    }
    let req = st::ExchangeId {
        owner: a.eia_clientowner.co_ownerid.0.clone(),
        verifier: a.eia_clientowner.co_verifier,
        principal: principal(ctx),
        update: flags & w::EXCHGID4_FLAG_UPD_CONFIRMED_REC_A != 0,
    };
    let now = ctx.call.now_ms;
    let done = ctx.svc.v4().with(|s| s.exchange_id(now, req));
    match done {
        Ok(ok) => ResOp::ok(
            OP_EXCHANGE_ID,
            ResBody::ExchangeId(w::EXCHANGE_ID4resok {
                eir_clientid: ok.clientid.0,
                eir_sequenceid: ok.sequenceid,
                eir_flags: ok.flags() | w::EXCHGID4_FLAG_USE_NON_PNFS,
                eir_state_protect: w::state_protect4_r::None,
                eir_server_owner: w::server_owner4 {
                    so_minor_id: 0,
                    so_major_id: w::Opaque(ctx.svc.v4().server_owner()),
                },
                eir_server_scope: w::Opaque(ctx.svc.v4().server_owner()),
                eir_server_impl_id: rnfs_xdr::Array(vec![w::nfs_impl_id4 {
                    nii_domain: w::Opaque(Bytes::from_static(b"rnfsd.invalid")),
                    nii_name: w::Opaque(Bytes::from(format!(
                        "rnfsd {}",
                        env!("CARGO_PKG_VERSION")
                    ))),
                    nii_date: w::nfstime4::default(),
                }]),
            }),
        ),
        Err(e) => err(OP_EXCHANGE_ID, e),
    }
}

fn channel(c: &w::channel_attrs4) -> st::ChannelAttrs {
    st::ChannelAttrs::new(
        c.ca_maxrequestsize,
        c.ca_maxresponsesize,
        c.ca_maxresponsesize_cached,
        c.ca_maxoperations,
        c.ca_maxrequests,
    )
}

fn channel4(c: &st::ChannelAttrs) -> w::channel_attrs4 {
    w::channel_attrs4 {
        ca_headerpadsize: c.headerpadsize,
        ca_maxrequestsize: c.maxrequestsize,
        ca_maxresponsesize: c.maxresponsesize,
        ca_maxresponsesize_cached: c.maxresponsesize_cached,
        ca_maxoperations: c.maxoperations,
        ca_maxrequests: c.maxrequests,
        ca_rdma_ird: rnfs_xdr::Array(Vec::new()),
    }
}

pub fn create_session(ctx: &mut Ctx<'_>, a: w::CREATE_SESSION4args) -> ResOp {
    if a.csa_flags
        & !(w::CREATE_SESSION4_FLAG_PERSIST
            | w::CREATE_SESSION4_FLAG_CONN_BACK_CHAN
            | w::CREATE_SESSION4_FLAG_CONN_RDMA)
        != 0
    {
        return ResOp::status(OP_CREATE_SESSION, nfsstat4::NFS4ERR_INVAL);
    }
    let req = st::CreateSession {
        clientid: ClientId(a.csa_clientid),
        sequence: a.csa_sequence,
        principal: principal(ctx),
        flags: a.csa_flags,
        fore: channel(&a.csa_fore_chan_attrs),
        back: channel(&a.csa_back_chan_attrs),
        cb_program: a.csa_cb_program,
        cb_sec: rnfs_xdr::to_bytes(&a.csa_sec_parms),
        conn: ctx.call.conn_id,
        minor: ctx.minor,
    };
    let now = ctx.call.now_ms;
    match ctx.svc.v4().with(|s| s.create_session(now, req)) {
        Ok(ok) => {
            // The client may now be confirmed: its record must survive a restart.
            ctx.svc.v4().persist(now);
            if ok.flags & w::CREATE_SESSION4_FLAG_CONN_BACK_CHAN != 0 {
                probe(ctx, ok.sessionid);
            }
            ResOp::ok(
                OP_CREATE_SESSION,
                ResBody::CreateSession(w::CREATE_SESSION4resok {
                    csr_sessionid: ok.sessionid.0,
                    csr_sequence: ok.sequence,
                    csr_flags: ok.flags,
                    csr_fore_chan_attrs: channel4(&ok.fore),
                    csr_back_chan_attrs: channel4(&ok.back),
                }),
            )
        }
        Err(e) => err(OP_CREATE_SESSION, e),
    }
}

pub fn destroy_session(ctx: &mut Ctx<'_>, sid: w::sessionid4) -> ResOp {
    let own = ctx
        .slot
        .as_ref()
        .is_some_and(|s| s.ticket.sessionid.0 == sid);
    if own && !ctx.last {
        // Destroying the compound's own session must be its last operation (§18.37.3).
        return ResOp::status(OP_DESTROY_SESSION, nfsstat4::NFS4ERR_BAD_SESSION_DIGEST);
    }
    match ctx.svc.v4().with(|s| s.destroy_session(SessionId(sid))) {
        Ok(()) => {
            if own {
                // Nothing left to cache the reply in.
                ctx.slot = None;
            }
            ResOp::status(OP_DESTROY_SESSION, nfsstat4::NFS4_OK)
        }
        Err(e) => err(OP_DESTROY_SESSION, e),
    }
}

pub fn destroy_clientid(ctx: &mut Ctx<'_>, id: u64) -> ResOp {
    if ctx.clientid() == Some(id) {
        // A client cannot destroy itself from inside one of its sessions (§18.50.3).
        return ResOp::status(OP_DESTROY_CLIENTID, nfsstat4::NFS4ERR_CLIENTID_BUSY);
    }
    match ctx.svc.v4().with(|s| s.destroy_clientid(ClientId(id))) {
        Ok(()) => {
            ctx.svc.v4().persist(ctx.call.now_ms);
            ResOp::status(OP_DESTROY_CLIENTID, nfsstat4::NFS4_OK)
        }
        Err(e) => err(OP_DESTROY_CLIENTID, e),
    }
}

pub fn bind_conn(ctx: &mut Ctx<'_>, a: w::BIND_CONN_TO_SESSION4args) -> ResOp {
    let dir = match a.bctsa_dir {
        1 => st::BindDir::Fore,
        2 => st::BindDir::Back,
        3 => st::BindDir::ForeOrBoth,
        7 => st::BindDir::BackOrBoth,
        _ => return ResOp::status(OP_BIND_CONN_TO_SESSION, nfsstat4::NFS4ERR_INVAL),
    };
    let conn = ctx.call.conn_id;
    match ctx
        .svc
        .v4()
        .with(|s| s.bind_conn(SessionId(a.bctsa_sessid), conn, dir))
    {
        Ok(granted) => {
            if granted != st::ConnDir::Fore {
                probe(ctx, SessionId(a.bctsa_sessid));
            }
            bound(a.bctsa_sessid, granted)
        }
        Err(e) => err(OP_BIND_CONN_TO_SESSION, e),
    }
}

/// Checks a new or changed back channel with CB_NULL (its outcome shows in SEQUENCE's status
/// flags). Queued, never waited for.
fn probe(ctx: &Ctx<'_>, sid: SessionId) {
    ctx.svc
        .callbacks()
        .submit(crate::callbacks::CbJob::Probe(sid));
}

fn bound(sessid: w::sessionid4, granted: st::ConnDir) -> ResOp {
    ResOp::ok(
        OP_BIND_CONN_TO_SESSION,
        ResBody::BindConn(w::BIND_CONN_TO_SESSION4resok {
            bctsr_sessid: sessid,
            bctsr_dir: match granted {
                st::ConnDir::Fore => 1,
                st::ConnDir::Back => 2,
                st::ConnDir::Both => 3,
            },
            bctsr_use_conn_in_rdma_mode: false,
        }),
    )
}

pub fn backchannel_ctl(ctx: &mut Ctx<'_>, a: w::BACKCHANNEL_CTL4args) -> ResOp {
    let Some(slot) = &ctx.slot else {
        return ResOp::status(OP_BACKCHANNEL_CTL, nfsstat4::NFS4ERR_OP_NOT_IN_SESSION);
    };
    let sid = slot.ticket.sessionid;
    let sec = rnfs_xdr::to_bytes(&a.bca_sec_parms);
    match ctx
        .svc
        .v4()
        .with(|s| s.backchannel_ctl(sid, a.bca_cb_program, sec))
    {
        Ok(()) => {
            probe(ctx, sid);
            ResOp::status(OP_BACKCHANNEL_CTL, nfsstat4::NFS4_OK)
        }
        Err(e) => err(OP_BACKCHANNEL_CTL, e),
    }
}

pub fn reclaim_complete(ctx: &mut Ctx<'_>, one_fs: bool) -> ResOp {
    let Some(id) = ctx.clientid() else {
        return ResOp::status(OP_RECLAIM_COMPLETE, nfsstat4::NFS4ERR_OP_NOT_IN_SESSION);
    };
    if one_fs {
        // Per file system reclaim (migration) is not tracked: every file system recovers with
        // the client's global RECLAIM_COMPLETE; this one is answered as done.
        return match ctx.current() {
            Ok(_) => ResOp::status(OP_RECLAIM_COMPLETE, nfsstat4::NFS4_OK),
            Err(s) => ResOp::status(OP_RECLAIM_COMPLETE, s),
        };
    }
    match ctx.svc.v4().with(|s| s.reclaim_complete(ClientId(id))) {
        Ok(()) => ResOp::status(OP_RECLAIM_COMPLETE, nfsstat4::NFS4_OK),
        Err(e) => err(OP_RECLAIM_COMPLETE, e),
    }
}

/// SEQUENCE (§18.46), first in the compound: takes the slot, or answers a retransmission from
/// its cache.
pub fn sequence(ctx: &mut Ctx<'_>, a: &w::SEQUENCE4args, ops: u32, _rest_bytes: usize) -> Begun {
    let req = st::Sequence {
        sessionid: SessionId(a.sa_sessionid),
        sequenceid: a.sa_sequenceid,
        slotid: a.sa_slotid,
        highest_slotid: a.sa_highest_slotid,
        cachethis: a.sa_cachethis,
        conn: ctx.call.conn_id,
        digest: Some(digest(&ctx.call.args)),
    };
    let now = ctx.call.now_ms;
    let request_bytes = ctx.call.args.len();
    let ticket = match ctx.svc.v4().with(|s| {
        // The session's limits first: a SEQUENCE refused for them leaves its slot as it was
        // (§18.46.3), so the client's next request on the slot carries the same sequence id.
        if let Some(fore) = s.session_fore(req.sessionid) {
            too_big(&fore, request_bytes, ops as usize)?;
        }
        s.sequence(now, req)
    }) {
        Ok(st::SequenceOutcome::Execute(t)) => t,
        Ok(st::SequenceOutcome::Replay(bytes)) => return Begun::Replay(bytes),
        Err(e) => return Begun::Res(err(OP_SEQUENCE, e)),
    };
    let slot = SlotTicket {
        ticket,
        clientid: ticket.clientid.0,
        cachethis: a.sa_cachethis,
        response_bytes_max: ticket.fore.maxresponsesize as usize,
    };
    let res = ResOp::ok(
        OP_SEQUENCE,
        ResBody::Sequence(w::SEQUENCE4resok {
            sr_sessionid: a.sa_sessionid,
            sr_sequenceid: ticket.sequenceid,
            sr_slotid: ticket.slotid,
            sr_highest_slotid: ticket.highest_slotid,
            sr_target_highest_slotid: ticket.target_highest_slotid,
            sr_status_flags: ticket.status_flags,
        }),
    );
    ctx.slot = Some(slot);
    Begun::Res(res)
}

/// NFS4ERR_REQ_TOO_BIG or NFS4ERR_TOO_MANY_OPS for a request over the session's fore channel.
fn too_big(fore: &st::ChannelAttrs, request_bytes: usize, ops: usize) -> Result<(), st::Error> {
    if request_bytes > fore.maxrequestsize as usize {
        return Err(st::Error::ReqTooBig);
    }
    if ops > fore.maxoperations as usize {
        return Err(st::Error::TooManyOps);
    }
    Ok(())
}

/// Bytes of a request the false-retry digest covers, after its length.
const DIGEST_PREFIX_BYTES: usize = 512;

/// A digest of the request for the slot's false-retry check (§2.10.6.1.3): its length and its
/// first [`DIGEST_PREFIX_BYTES`] (the operations and their arguments but bulk data), as the
/// NFSv3 duplicate request cache does: hashing a whole 1 MiB WRITE cost 7% of the server's CPU.
fn digest(args: &Bytes) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(&(args.len() as u64).to_be_bytes());
    h.update(&args[..args.len().min(DIGEST_PREFIX_BYTES)]);
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.finalize().as_bytes()[..8]);
    u64::from_be_bytes(b)
}

/// Stores the finished compound's reply in its slot (all of it when the client asked for
/// caching, else only the fact that it was executed).
pub fn complete(svc: &Service, slot: SlotTicket, reply: &Reply, body_at: usize) {
    let bytes = if slot.cachethis {
        let body = &reply.head[body_at..];
        let mut b = BytesMut::with_capacity(body.len() + reply.tail_len() + 3);
        b.put_slice(body);
        if let Tail::Bytes(t) = &reply.tail {
            b.put_slice(t);
            b.put_bytes(0, rnfs_xdr::pad_len(t.len()));
        }
        b.freeze()
    } else {
        Bytes::new()
    };
    let t = slot.ticket;
    // A session destroyed meanwhile has no slot to fill: nothing to do.
    let _ = svc
        .v4()
        .with(|s| s.complete(t.sessionid, t.slotid, bytes, slot.cachethis));
}
