//! Delegations (RFC 8881 §10.2, §10.4, §18.6, §20.2): granted by OPEN, recalled with CB_RECALL
//! over the back channel, given back with DELEGRETURN, revoked when not returned within a lease.
//!
//! The rules of who may hold what are `rnfs-nfs4state`'s ([`st::Nfs4State::delegate`],
//! [`st::Nfs4State::break_delegations`]); this module adds what that crate cannot see before a
//! grant — other clients' share reservations and locks in the lock manager (NLM and NFSv4),
//! the `nfs4_delegations` switch, a back channel that answered its probe — and sends the recalls.
//!
//! Every access by someone else that conflicts with a delegation — an NFSv4 OPEN, READ, WRITE,
//! SETATTR, REMOVE, RENAME or LINK by another client, an NFSv3 request — calls [`break_for`]
//! first: while a conflicting delegation is out, the access is answered NFS4ERR_DELAY (NFSv3:
//! JUKEBOX) and never waits; the recall's deadline bounds how long that lasts.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use rnfs_nfs4::{self as w, nfsstat4, op::*, stateid4, ResOp};
use rnfs_nfs4state::{ClientId, NoDeleg, StateInfo, StateKind};
use tracing::debug;

use super::ctx::{ours, st_err, wire, Ctx};
use crate::service::{Authorized, Service};
use crate::v4state::client_key;

/// why_no_delegation4 (RFC 8881 §18.16.2).
const WND4_NOT_WANTED: u32 = 0;
const WND4_CONTENTION: u32 = 1;
const WND4_RESOURCE: u32 = 2;
const WND4_CANCELLED: u32 = 7;
const WANT_WRITE: u32 = 0x0200;
const WANT_ANY: u32 = 0x0300;

/// A change to `file` by this compound's client (SETATTR, LINK): other clients' delegations of
/// it are recalled; NFS4ERR_DELAY while one is out.
pub fn allow_change(ctx: &Ctx<'_>, file: &[u8]) -> Result<(), nfsstat4> {
    if !ctx.svc.v4().any_delegations() {
        return Ok(());
    }
    let by = ctx.clientid().map(ClientId);
    if ctx
        .svc
        .v4()
        .break_for(ctx.svc.callbacks(), ctx.call.now_ms, file, by, true)
    {
        Ok(())
    } else {
        Err(nfsstat4::NFS4ERR_DELAY)
    }
}

/// [`allow_change`] for the file `name` in `dir` (REMOVE, RENAME), looked up only while some
/// delegation exists.
pub fn allow_change_name(ctx: &Ctx<'_>, dir: &Authorized, name: &[u8]) -> Result<(), nfsstat4> {
    if !ctx.svc.v4().any_delegations() {
        return Ok(());
    }
    match dir.export.backend.lookup(&dir.who, &dir.handle, name) {
        Ok((fh, _)) => allow_change(ctx, &fh.to_bytes()),
        Err(_) => Ok(()),
    }
}

/// An OPEN for writing by the holder of a read delegation of the file: the delegation no longer
/// fits, so it is recalled, and the file's lease released at once — the client's own writes
/// must not wait for it (its return flushes them first). Other clients' delegations were broken
/// before ([`break_for`]), so no one else relies on the lease.
pub fn own_write_open(svc: &Service, now_ms: u64, client: ClientId, file: &Bytes) {
    if !svc.v4().any_delegations() {
        return;
    }
    // A write delegation covers its holder's writes: nothing to do.
    let recall = svc.v4().with(|s| match s.delegation_of(client, file) {
        Some((_, false)) => Some(s.recall_own(now_ms, client, file)),
        _ => None,
    });
    let Some(recall) = recall else {
        return;
    };
    svc.v4()
        .send_recalls(svc.callbacks(), recall.into_iter().collect());
    let leased = svc.v4().leases.lock().remove(file);
    if let Some(l) = leased {
        l.backend.unlease(file);
    }
}

/// The delegation an OPEN by `client` of `fh` (now open with `access`) comes with.
pub fn offer(
    ctx: &Ctx<'_>,
    client: ClientId,
    fh: &Authorized,
    file: &Bytes,
    share_access: u32,
    claim: &w::open_claim4,
) -> w::open_delegation4 {
    let want = share_access & w::OPEN4_SHARE_ACCESS_WANT_DELEG_MASK;
    let none = |why| {
        if want == 0 {
            w::open_delegation4::None
        } else {
            w::open_delegation4::NoneExt(why)
        }
    };
    match want {
        w::OPEN4_SHARE_ACCESS_WANT_NO_DELEG => return none(WND4_NOT_WANTED),
        w::OPEN4_SHARE_ACCESS_WANT_CANCEL => return none(WND4_CANCELLED),
        _ => {}
    }
    // A write delegation for an open for writing that asks for one (or for any); a read
    // delegation for a read-only open (asked for, or not: as Linux's nfsd). A read delegation
    // would not cover its holder's own writes (they would break its lease).
    let writing = share_access & w::OPEN4_SHARE_ACCESS_WRITE != 0;
    let write = match want {
        WANT_WRITE | WANT_ANY if writing => true,
        _ if writing => return none(WND4_CONTENTION),
        WANT_WRITE => return none(WND4_CONTENTION),
        _ => false,
    };
    if !matches!(claim, w::open_claim4::Null(_) | w::open_claim4::Fh)
        || !ctx.svc.v4().delegations.load(Ordering::Relaxed)
    {
        return none(WND4_RESOURCE);
    }
    if !callbacks_work(ctx, client) || !unshared(ctx, client, file, write) {
        return none(WND4_CONTENTION);
    }
    let got = ctx
        .svc
        .v4()
        .with(|s| s.delegate(client, file.clone(), fh.handle.handle().to_bytes(), write));
    // A delegation stands only with a lease on the file, which makes local writers wait for it.
    // Another client's open may have slipped in between the first look and the grant (its own
    // look at the delegations came before the grant): looked at again, now that the grant is
    // visible to everyone's next look.
    let got = match got {
        Ok(stateid) if !leased(ctx.svc, fh, file, write) || !unshared(ctx, client, file, write) => {
            ctx.svc.v4().with(|s| s.undelegate(client, &stateid));
            ctx.svc.v4().release_leases();
            Err(NoDeleg::Contention)
        }
        other => other,
    };
    match got {
        Ok(stateid) if write => w::open_delegation4::Write {
            stateid: wire(stateid),
            recall: false,
            filesize: u64::MAX,
        },
        Ok(stateid) => w::open_delegation4::Read {
            stateid: wire(stateid),
            recall: false,
        },
        Err(NoDeleg::Contention) => none(WND4_CONTENTION),
        Err(NoDeleg::Resource) => none(WND4_RESOURCE),
    }
}

/// Whether `file` is leased (taking the lease now if not): local processes that open it for
/// writing are then seen and made to wait (see [`rnfs_storage::Backend::lease`]).
fn leased(svc: &Service, fh: &Authorized, file: &Bytes, write: bool) -> bool {
    if let Some(l) = svc.v4().leases.lock().get(file) {
        // A lease of the other kind lingers (its delegation just went): none this time.
        return l.write == write;
    }
    let backend = &fh.export.backend;
    match backend.lease(&fh.handle, write) {
        Ok(true) => {
            let leased = crate::v4state::Leased {
                backend: backend.clone(),
                write,
            };
            svc.v4().leases.lock().insert(file.clone(), leased);
            true
        }
        Ok(false) => false,
        Err(e) => {
            debug!(error = %e, "no lease, so no delegation");
            false
        }
    }
}

/// The client's back channel answered its probe: a recall can reach it.
fn callbacks_work(ctx: &Ctx<'_>, client: ClientId) -> bool {
    ctx.svc.v4().with(|s| !s.client_sessions(client).is_empty())
}

/// No client (NFSv4 or NLM) has the file open in a way the delegation would hide: for a read
/// delegation, nobody writes it (the holder included: its writes would break the file's
/// lease); for a write delegation, nobody else has it open or locked.
fn unshared(ctx: &Ctx<'_>, client: ClientId, file: &Bytes, write: bool) -> bool {
    let me = client_key(client.0);
    let (others, all) = ctx.svc.locking.with_manager(None, |m, _| {
        (m.used_by_others(file, &me), m.used_by_others(file, b""))
    });
    if write {
        others == rnfs_locks::OthersUse::default()
    } else {
        all.access & rnfs_locks::SHARE_WRITE == 0
    }
}

/// The delegation a CLAIM_DELEGATE_CUR or CLAIM_DELEG_CUR_FH open names: this client's, on
/// this file (it may be under recall: that is when clients reopen under it).
pub fn check_claim(ctx: &Ctx<'_>, s: &stateid4, file: &[u8]) -> Result<(), nfsstat4> {
    let client = ctx.client()?;
    let r = ctx
        .svc
        .v4()
        .with(|st| st.check(client, &ours(s), StateKind::Deleg))
        .map_err(st_err)?;
    match &r.info {
        StateInfo::Deleg { file: f, .. } if f[..] == file[..] => Ok(()),
        _ => Err(nfsstat4::NFS4ERR_BAD_STATEID),
    }
}

/// DELEGRETURN (§18.6).
pub fn delegreturn(ctx: &mut Ctx<'_>, sid: stateid4) -> ResOp {
    let res = (|| {
        let a = ctx.real(nfsstat4::NFS4ERR_INVAL)?;
        let file = a.handle.handle().to_bytes();
        let client = ctx.client()?;
        let sid = ctx.resolve(&sid)?;
        check_claim(ctx, &sid, &file)?;
        ctx.svc
            .v4()
            .with(|s| s.delegreturn(client, &ours(&sid)))
            .map_err(st_err)?;
        ctx.svc.v4().release_leases();
        Ok(())
    })();
    match res {
        Ok(()) => ResOp::status(OP_DELEGRETURN, nfsstat4::NFS4_OK),
        Err(s) => ResOp::status(OP_DELEGRETURN, s),
    }
}
