//! Open and lock state (RFC 8881 §9, §18.2, §18.10–18.12, §18.16, §18.18, §18.38, §18.48):
//! OPEN, CLOSE, OPEN_DOWNGRADE, LOCK, LOCKT, LOCKU, TEST_STATEID, FREE_STATEID, DELEGRETURN,
//! and the stateid check of READ, WRITE and SETATTR.
//!
//! Stateids are `rnfs-nfs4state`'s; share reservations and byte ranges live in the server's one
//! lock manager ([`crate::locking`]), the one NLM uses, so NFSv3 clients (NLM), NFSv4 clients and
//! local processes (OFD locks) all see each other's locks and shares. An NFSv4 client is the
//! manager client `nfs4:<clientid>`, an open-owner the owner `o<owner>` (its shares), a
//! lock-owner `l<owner>` (its ranges). A courtesy client (lease expired, state kept) in the way
//! of another is expired on the spot and the request tried again, as Linux's courteous server.
//!
//! The state machine's lock and the lock manager's are never held together: each call takes one,
//! then the other.

use bytes::Bytes;
use rnfs_locks::{
    Holder, LockKind, LockOutcome, LockRequest, Range, ShareOutcome, ShareRequest, Target,
    TestOutcome,
};
use rnfs_nfs4::{self as w, nfsstat4, op::*, stateid4, ResBody, ResOp};
use rnfs_nfs4state::{self as st, ClientId, StateInfo, StateKind};
use rnfs_storage as storage;

use super::attrs::cinfo;
use super::attrs::{self, storage_attrs};
use super::ctx::{check_name, file_key, ours, require_dir, st_err, type_check, wire, Ctx, Fh};
use super::deleg;
use super::status;
use crate::config::Access;
use crate::locking::Before;
use crate::service::Authorized;
use crate::v4state::{client_key, client_of_key, lock_owner_key, open_owner_key, release};

/// Courtesy clients one request may expire to get its way (each conflict found expires one, and
/// the request is tried again); past it, the request is refused as if they were active.
const COURTESY_EXPIRIES_MAX: usize = 64;

/// What OPEN resolved: the file, whether it was created now, what changed in its directory,
/// and which attributes were set.
struct Opened {
    fh: Authorized,
    created: bool,
    cinfo: w::change_info4,
    attrset: w::Bitmap,
}

pub fn open(ctx: &mut Ctx<'_>, a: w::OPEN4args) -> ResOp {
    match open_inner(ctx, &a) {
        Ok((fh, res)) => {
            ctx.cur_stateid = Some(res.stateid);
            ctx.cur = Some(Fh::Real(Box::new(fh)));
            ResOp::ok(OP_OPEN, ResBody::Open(res))
        }
        Err(s) => ResOp::status(OP_OPEN, s),
    }
}

fn open_inner(ctx: &Ctx<'_>, a: &w::OPEN4args) -> Result<(Authorized, w::OPEN4resok), nfsstat4> {
    let client = ctx.client()?;
    let access = a.share_access & !w::OPEN4_SHARE_ACCESS_WANT_DELEG_MASK & 0xffff;
    if !(1..=3).contains(&access) || a.share_deny > 3 {
        return Err(nfsstat4::NFS4ERR_INVAL);
    }
    ctx.current()?;
    let reclaim = matches!(a.claim, w::open_claim4::Previous(_));
    grace_check(ctx, client, reclaim)?;
    let opened = resolve_open(ctx, a)?;
    if !opened.created {
        check_open_access(&opened.fh, access)?;
    }
    let owner = a.owner.owner.0.clone();
    let file = file_key(&opened.fh);
    let now = ctx.call.now_ms;
    // Other clients' delegations this open would invalidate are recalled first (§10.4.4).
    let writes = access & w::OPEN4_SHARE_ACCESS_WRITE != 0 || a.share_deny != 0;
    let callbacks = ctx.svc.callbacks();
    if !reclaim
        && !ctx
            .svc
            .v4()
            .break_for(callbacks, now, &file, Some(client), writes)
    {
        return Err(nfsstat4::NFS4ERR_DELAY);
    }
    if let w::open_claim4::DelegateCur(sid, _) | w::open_claim4::DelegCurFh(sid) = &a.claim {
        deleg::check_claim(ctx, sid, &file)?;
    } else if access & w::OPEN4_SHARE_ACCESS_WRITE != 0 {
        deleg::own_write_open(ctx.svc, now, client, &file);
    }
    let (union_access, union_deny) = ctx
        .svc
        .v4()
        .with(|s| s.open_state(client, &owner, &file))
        .map_or((access, a.share_deny), |(acc, deny)| {
            (acc | access, deny | a.share_deny)
        });
    share(
        ctx,
        client,
        &owner,
        &file,
        union_access,
        union_deny,
        reclaim,
    )?;
    let r = ctx
        .svc
        .v4()
        .with(|s| s.open(now, client, owner, file.clone(), access, a.share_deny))
        .map_err(st_err)?;
    let delegation = deleg::offer(ctx, client, &opened.fh, &file, a.share_access, &a.claim);
    let res = w::OPEN4resok {
        stateid: wire(r.stateid),
        cinfo: opened.cinfo,
        rflags: w::OPEN4_RESULT_LOCKTYPE_POSIX,
        attrset: opened.attrset,
        delegation,
    };
    Ok((opened.fh, res))
}

/// NFS4ERR_GRACE for a non-reclaim during the grace period, NFS4ERR_NO_GRACE (or
/// NFS4ERR_RECLAIM_BAD) for a reclaim that may not be one.
fn grace_check(ctx: &Ctx<'_>, client: ClientId, reclaim: bool) -> Result<(), nfsstat4> {
    let now = ctx.call.now_ms;
    ctx.svc
        .v4()
        .with(|s| {
            if reclaim {
                return s.may_reclaim(now, client);
            }
            s.check_grace(now)?;
            // A client takes new locks only after its RECLAIM_COMPLETE (§18.51.3, as Linux's
            // and ganesha's servers enforce): before it, its own grace is not over.
            match s.client_info(now, client) {
                Some(c) if !c.reclaim_complete => Err(st::Error::Grace),
                _ => Ok(()),
            }
        })
        .map_err(st_err)
}

/// The file OPEN names (and creates), per its claim.
fn resolve_open(ctx: &Ctx<'_>, a: &w::OPEN4args) -> Result<Opened, nfsstat4> {
    match &a.claim {
        w::open_claim4::Null(name) | w::open_claim4::DelegateCur(_, name) => {
            let dir = ctx.real(nfsstat4::NFS4ERR_ISDIR).map_err(|s| {
                // The pseudo file system holds no files: nothing to open, nothing to create.
                if a.openhow.0.is_some() {
                    nfsstat4::NFS4ERR_ROFS
                } else {
                    s
                }
            })?;
            let name = check_name(name.as_bytes())?;
            require_dir(dir)?;
            match &a.openhow.0 {
                Some(how) if matches!(a.claim, w::open_claim4::Null(_)) => {
                    create_file(ctx, dir, name, how)
                }
                Some(_) => Err(nfsstat4::NFS4ERR_INVAL),
                None => lookup_file(ctx, dir, name),
            }
        }
        w::open_claim4::Fh | w::open_claim4::Previous(_) | w::open_claim4::DelegCurFh(_) => {
            if a.openhow.0.is_some() {
                return Err(nfsstat4::NFS4ERR_INVAL);
            }
            let (fh, _) = ctx.regular()?;
            let fh = fh.clone();
            Ok(Opened {
                fh,
                created: false,
                cinfo: w::change_info4::default(),
                attrset: w::Bitmap::default(),
            })
        }
        // Delegations do not survive a restart of the server or the client: none to reclaim.
        w::open_claim4::DelegatePrev(_) | w::open_claim4::DelegPrevFh => {
            Err(nfsstat4::NFS4ERR_NOTSUPP)
        }
    }
}

fn lookup_file(ctx: &Ctx<'_>, dir: &Authorized, name: &str) -> Result<Opened, nfsstat4> {
    // The directory's attributes come with the lookup (for OPEN's change information).
    let (found, before) =
        dir.export
            .backend
            .lookup_with_dir(&dir.who, &dir.handle, name.as_bytes());
    let (fh, attr) = found.map_err(|e| status(&e))?;
    type_check(attr.file_type)?;
    let Fh::Real(fh) = ctx.authorize(fh.to_bytes())? else {
        return Err(nfsstat4::NFS4ERR_SERVERFAULT);
    };
    let change = before.as_ref().map_or(0, attrs::change);
    Ok(Opened {
        fh: *fh,
        created: false,
        cinfo: w::change_info4 {
            atomic: true,
            before: change,
            after: change,
        },
        attrset: w::Bitmap::default(),
    })
}

fn create_file(
    ctx: &Ctx<'_>,
    dir: &Authorized,
    name: &str,
    how: &w::createhow4,
) -> Result<Opened, nfsstat4> {
    if dir.rule.access == Access::Ro {
        return Err(nfsstat4::NFS4ERR_ROFS);
    }
    let (mode, after) = match how {
        w::createhow4::Unchecked(f) | w::createhow4::Guarded(f) => {
            let set = w::attr::decode_settable(f)?;
            let sattrs = storage_attrs(ctx, &set)?;
            let mode = if matches!(how, w::createhow4::Guarded(_)) {
                storage::CreateMode::Guarded(sattrs)
            } else {
                storage::CreateMode::Unchecked(sattrs)
            };
            (mode, (set.mask, None))
        }
        w::createhow4::Exclusive(v) => (
            storage::CreateMode::Exclusive(*v),
            (w::Bitmap::default(), None),
        ),
        w::createhow4::Exclusive41(v, f) => {
            let set = w::attr::decode_settable(f)?;
            if set
                .mask
                .iter()
                .any(|b| !w::attr::suppattr_exclcreat().contains(b))
            {
                return Err(nfsstat4::NFS4ERR_INVAL);
            }
            let sattrs = storage_attrs(ctx, &set)?;
            (storage::CreateMode::Exclusive(*v), (set.mask, Some(sattrs)))
        }
    };
    let b = &dir.export.backend;
    let created = b
        .create(&dir.who, &dir.handle, name.as_bytes(), &mode)
        .map_err(|e| status(&e))?;
    type_check(created.attr.file_type)?;
    let Fh::Real(fh) = ctx.authorize(created.handle.to_bytes())? else {
        return Err(nfsstat4::NFS4ERR_SERVERFAULT);
    };
    let (attrset, later) = after;
    if let Some(sattrs) = later {
        // EXCLUSIVE4_1's attributes, set once the verifier made the create exactly-once.
        b.setattr(&fh.who, &fh.handle, &sattrs, None)
            .map_err(|e| status(&e))?;
    }
    Ok(Opened {
        fh: *fh,
        created: true,
        cinfo: cinfo(&created.dir),
        attrset,
    })
}

/// The caller may read (ACCESS4_READ) and, for write access, modify the file.
fn check_open_access(fh: &Authorized, access: u32) -> Result<(), nfsstat4> {
    let want_write = access & w::OPEN4_SHARE_ACCESS_WRITE != 0;
    if want_write && fh.rule.access == Access::Ro {
        return Err(nfsstat4::NFS4ERR_ROFS);
    }
    let mut bits = 0;
    if access & w::OPEN4_SHARE_ACCESS_READ != 0 {
        bits |= storage::access::READ;
    }
    if want_write {
        bits |= storage::access::MODIFY;
    }
    let (granted, _) = fh
        .export
        .backend
        .access(&fh.who, &fh.handle, bits)
        .map_err(|e| status(&e))?;
    if granted & bits != bits {
        return Err(nfsstat4::NFS4ERR_ACCESS);
    }
    Ok(())
}

/// Takes (or replaces) the open-owner's share reservation on the file, expiring a courtesy
/// client in the way once.
fn share(
    ctx: &Ctx<'_>,
    client: ClientId,
    owner: &[u8],
    file: &Bytes,
    access: u32,
    deny: u32,
    reclaim: bool,
) -> Result<(), nfsstat4> {
    let req = ShareRequest {
        target: Target {
            client: client_key(client.0),
            owner: open_owner_key(owner),
            file: file.clone(),
        },
        access: access as u8,
        deny: deny as u8,
        reclaim,
    };
    let locking = &ctx.svc.locking;
    let now = ctx.call.now_ms;
    for _ in 0..=COURTESY_EXPIRIES_MAX {
        let (outcome, holder) = locking.with_manager(None, |m, _| {
            let o = m.share(now, &req);
            let holder = match o {
                ShareOutcome::Denied { client, .. } => {
                    m.client_key(client).and_then(|k| client_of_key(k))
                }
                _ => None,
            };
            (o, holder)
        });
        match outcome {
            ShareOutcome::Granted => return Ok(()),
            ShareOutcome::GracePeriod => return Err(nfsstat4::NFS4ERR_GRACE),
            ShareOutcome::NoLocks(_) => return Err(nfsstat4::NFS4ERR_DELAY),
            ShareOutcome::Denied { .. } => {
                let expired =
                    holder.is_some_and(|id| ctx.svc.v4().expire_courtesy(now, id, locking));
                if !expired {
                    return Err(nfsstat4::NFS4ERR_SHARE_DENIED);
                }
            }
        }
    }
    Err(nfsstat4::NFS4ERR_SHARE_DENIED)
}

/// The open stateid named, checked to be this client's open of the current file.
fn open_of(
    ctx: &Ctx<'_>,
    s: &stateid4,
    kind: StateKind,
) -> Result<(ClientId, st::StateRef), nfsstat4> {
    let client = ctx.client()?;
    let s = ctx.resolve(s)?;
    let r = ctx
        .svc
        .v4()
        .with(|st| st.check(client, &ours(&s), kind))
        .map_err(st_err)?;
    let file = match &r.info {
        StateInfo::Open { file, .. } | StateInfo::Lock { file, .. } => file,
        StateInfo::Deleg { .. } => return Err(nfsstat4::NFS4ERR_BAD_STATEID),
    };
    let a = ctx.real(nfsstat4::NFS4ERR_ISDIR)?;
    if file[..] != a.handle.as_bytes()[..] {
        return Err(nfsstat4::NFS4ERR_BAD_STATEID);
    }
    Ok((client, r))
}

pub fn close(ctx: &mut Ctx<'_>, a: w::CLOSE4args) -> ResOp {
    let res = (|| {
        let (client, r) = open_of(ctx, &a.open_stateid, StateKind::Open)?;
        if locks_held(ctx, client, &r)? {
            return Err(nfsstat4::NFS4ERR_LOCKS_HELD);
        }
        ctx.svc
            .v4()
            .with(|s| s.close(client, &r.stateid))
            .map_err(st_err)?;
        if let StateInfo::Open { owner, file, .. } = &r.info {
            let target = Target {
                client: client_key(client.0),
                owner: open_owner_key(owner),
                file: file.clone(),
            };
            ctx.svc
                .locking
                .with_manager(None, |m, _| m.unshare(&target));
        }
        // NFSv4.1 returns the invalid special stateid for a closed open (§18.2.4).
        Ok(stateid4::INVALID)
    })();
    match res {
        Ok(s) => {
            ctx.cur_stateid = None;
            ResOp::ok(OP_CLOSE, ResBody::Stateid(s))
        }
        Err(s) => ResOp::status(OP_CLOSE, s),
    }
}

/// Whether any lock-owner that came from this open still holds a range of its file.
fn locks_held(ctx: &Ctx<'_>, client: ClientId, open: &st::StateRef) -> Result<bool, nfsstat4> {
    let locks = ctx.svc.v4().with(|s| s.locks_of(client));
    let ckey = client_key(client.0);
    Ok(ctx.svc.locking.with_manager(None, |m, _| {
        locks.iter().any(|l| match &l.info {
            StateInfo::Lock {
                owner,
                file,
                open: o,
            } if o.other == open.stateid.other => {
                match (m.owner_id(&ckey, &lock_owner_key(owner)), m.file_id(file)) {
                    (Some(o), Some(f)) => m.holds(f, o),
                    _ => false,
                }
            }
            _ => false,
        })
    }))
}

pub fn open_downgrade(ctx: &mut Ctx<'_>, a: w::OPEN_DOWNGRADE4args) -> ResOp {
    let res = (|| {
        let (client, r) = open_of(ctx, &a.open_stateid, StateKind::Open)?;
        let access = a.share_access & 0xff;
        if !(1..=3).contains(&access) || a.share_deny > 3 {
            return Err(nfsstat4::NFS4ERR_INVAL);
        }
        let s = ctx
            .svc
            .v4()
            .with(|s| s.open_downgrade(client, &r.stateid, access, a.share_deny))
            .map_err(st_err)?;
        if let StateInfo::Open { owner, file, .. } = &r.info {
            share(ctx, client, owner, file, access, a.share_deny, false)?;
        }
        Ok(wire(s))
    })();
    match res {
        Ok(s) => {
            ctx.cur_stateid = Some(s);
            ResOp::ok(OP_OPEN_DOWNGRADE, ResBody::Stateid(s))
        }
        Err(s) => ResOp::status(OP_OPEN_DOWNGRADE, s),
    }
}

/// A lock's byte range (§18.10.3): length 0 is NFS4ERR_INVAL, all ones means to the end,
/// a range past 2^64 - 1 is NFS4ERR_INVAL.
fn range(offset: u64, length: u64) -> Result<Range, nfsstat4> {
    if length == 0 {
        return Err(nfsstat4::NFS4ERR_INVAL);
    }
    let r = if length == u64::MAX {
        Range::to_eof(offset)
    } else {
        Range::from_offset_len(offset, length)
    };
    r.map_err(|_| nfsstat4::NFS4ERR_INVAL)
}

fn kind(t: w::nfs_lock_type4) -> LockKind {
    if t.is_write() {
        LockKind::Exclusive
    } else {
        LockKind::Shared
    }
}

/// LOCK4denied for a conflict: the holder's kind, range and owner (an NFSv4 lock-owner, an
/// NLM owner's key, or nothing for a local process).
fn denied(m: &rnfs_locks::LockManager, c: &rnfs_locks::Conflict) -> w::LOCK4denied {
    let (offset, len) = c.range.to_offset_len();
    let (clientid, owner) = match c.holder {
        Holder::Owner { owner, client } => {
            let cid = m
                .client_key(client)
                .and_then(|k| client_of_key(k))
                .unwrap_or(0);
            let key = m
                .owner_key(owner)
                .map(|(_, k)| k.clone())
                .unwrap_or_default();
            let key = if cid != 0 && !key.is_empty() {
                key.slice(1..)
            } else {
                key
            };
            (cid, key)
        }
        Holder::External => (0, Bytes::new()),
    };
    w::LOCK4denied {
        offset,
        // NLM's "to the end" is 0; NFSv4's is all ones.
        length: if c.range.is_to_eof() { u64::MAX } else { len },
        locktype: if c.kind == LockKind::Exclusive {
            w::nfs_lock_type4::WRITE_LT
        } else {
            w::nfs_lock_type4::READ_LT
        },
        owner: w::state_owner4 {
            clientid,
            owner: w::Opaque(owner.slice(..owner.len().min(w::NFS4_OPAQUE_LIMIT))),
        },
    }
}

/// How LOCK went.
enum Locked {
    Ok(stateid4),
    Denied(w::LOCK4denied),
}

pub fn lock(ctx: &mut Ctx<'_>, a: w::LOCK4args) -> ResOp {
    match lock_inner(ctx, &a) {
        Ok(Locked::Ok(s)) => {
            ctx.cur_stateid = Some(s);
            ResOp::ok(OP_LOCK, ResBody::Stateid(s))
        }
        Ok(Locked::Denied(d)) => ResOp {
            op: OP_LOCK,
            status: nfsstat4::NFS4ERR_DENIED,
            body: Some(ResBody::Denied(d)),
        },
        Err(s) => ResOp::status(OP_LOCK, s),
    }
}

/// Whose lock LOCK takes, resolved without changing any state.
struct Locker {
    client: ClientId,
    owner: Bytes,
    /// The open's share access (what lock types it allows).
    access: u32,
    /// The lock stateid given (exist_lock_owner4), or the open stateid a new one comes from.
    from: LockerFrom,
}

enum LockerFrom {
    Existing(st::Stateid),
    Open(st::Stateid),
}

fn resolve_locker(ctx: &Ctx<'_>, locker: &w::locker4) -> Result<Locker, nfsstat4> {
    match locker {
        w::locker4::New(n) => {
            let (client, open) = open_of(ctx, &n.open_stateid, StateKind::Open)?;
            let StateInfo::Open { access, .. } = open.info else {
                return Err(nfsstat4::NFS4ERR_BAD_STATEID);
            };
            Ok(Locker {
                client,
                owner: n.lock_owner.owner.0.clone(),
                access,
                from: LockerFrom::Open(open.stateid),
            })
        }
        w::locker4::Existing(e) => {
            let (client, r) = open_of(ctx, &e.lock_stateid, StateKind::Lock)?;
            let StateInfo::Lock { owner, open, .. } = &r.info else {
                return Err(nfsstat4::NFS4ERR_BAD_STATEID);
            };
            // The open it came from may be closed by now (its locks outlive it): any type.
            let access = ctx
                .svc
                .v4()
                .with(|s| s.check(client, open, StateKind::Open))
                .ok()
                .and_then(|o| match o.info {
                    StateInfo::Open { access, .. } => Some(access),
                    StateInfo::Lock { .. } | StateInfo::Deleg { .. } => None,
                })
                .unwrap_or(w::OPEN4_SHARE_ACCESS_BOTH);
            Ok(Locker {
                client,
                owner: owner.clone(),
                access,
                from: LockerFrom::Existing(r.stateid),
            })
        }
    }
}

fn lock_inner(ctx: &Ctx<'_>, a: &w::LOCK4args) -> Result<Locked, nfsstat4> {
    let range = range(a.offset, a.length)?;
    let (fh, _) = ctx.regular()?;
    let locker = resolve_locker(ctx, &a.locker)?;
    let need = if a.locktype.is_write() {
        w::OPEN4_SHARE_ACCESS_WRITE
    } else {
        w::OPEN4_SHARE_ACCESS_READ
    };
    if locker.access & need == 0 {
        return Err(nfsstat4::NFS4ERR_OPENMODE);
    }
    let (client, owner) = (locker.client, locker.owner);
    grace_check(ctx, client, a.reclaim)?;
    // Only now, when nothing else can refuse it before the lock manager does, a new lock
    // stateid (freed again if the lock is not granted).
    let (lock_sid, new) = match locker.from {
        LockerFrom::Existing(s) => (s, false),
        LockerFrom::Open(open) => ctx
            .svc
            .v4()
            .with(|s| s.lock_stateid(client, &open, owner.clone()))
            .map_err(st_err)?,
    };
    let target = Target {
        client: client_key(client.0),
        owner: lock_owner_key(&owner),
        file: file_key(fh),
    };
    match take_lock(ctx, fh, &target, kind(a.locktype), range, a.reclaim) {
        Ok(None) => {
            let s = if new {
                lock_sid
            } else {
                ctx.svc
                    .v4()
                    .with(|s| s.bump(client, &lock_sid))
                    .map_err(st_err)?
            };
            Ok(Locked::Ok(wire(s)))
        }
        Ok(Some(d)) => {
            if new {
                let _ = ctx.svc.v4().with(|s| s.free_stateid(client, &lock_sid));
            }
            Ok(Locked::Denied(d))
        }
        Err(e) => {
            if new {
                let _ = ctx.svc.v4().with(|s| s.free_stateid(client, &lock_sid));
            }
            Err(e)
        }
    }
}

/// Takes the lock in the manager (mirrored as an OFD lock); `Some(denied)` on a conflict.
fn take_lock(
    ctx: &Ctx<'_>,
    fh: &Authorized,
    target: &Target,
    kind: LockKind,
    range: Range,
    reclaim: bool,
) -> Result<Option<w::LOCK4denied>, nfsstat4> {
    let locking = &ctx.svc.locking;
    let now = ctx.call.now_ms;
    let req = LockRequest {
        target: target.clone(),
        kind,
        range,
        block: false,
        reclaim,
    };
    for _ in 0..=COURTESY_EXPIRIES_MAX {
        // On a ceph export the CephFS lock is taken first, outside the manager's mutex, so the
        // MDS arbitrates against other heads (see `crate::locking`).
        let spare = locking.request_spare_for(target, fh.export.backend.as_ref(), &fh.handle);
        let before = Before::Lock(kind, range);
        let (outcome, info) = locking.with_request(target, spare, before, |m, mirror| {
            let reply = m.lock(now, &req, mirror);
            let info = match &reply.outcome {
                LockOutcome::Denied(c) => Some((
                    denied(m, c),
                    match c.holder {
                        Holder::Owner { client, .. } => {
                            m.client_key(client).and_then(|k| client_of_key(k))
                        }
                        Holder::External => None,
                    },
                )),
                _ => None,
            };
            locking.push_granted(reply.granted);
            (reply.outcome, info)
        });
        match outcome {
            LockOutcome::Granted => return Ok(None),
            LockOutcome::Deadlock => return Err(nfsstat4::NFS4ERR_DEADLOCK),
            LockOutcome::GracePeriod => return Err(nfsstat4::NFS4ERR_GRACE),
            LockOutcome::NoLocks(_) | LockOutcome::Blocked(_) => {
                return Err(nfsstat4::NFS4ERR_DELAY)
            }
            LockOutcome::Denied(_) => {
                let Some((d, holder)) = info else {
                    return Err(nfsstat4::NFS4ERR_DENIED);
                };
                let expired =
                    holder.is_some_and(|id| ctx.svc.v4().expire_courtesy(now, id, locking));
                if !expired {
                    return Ok(Some(d));
                }
            }
        }
    }
    Err(nfsstat4::NFS4ERR_DELAY)
}

pub fn lockt(ctx: &mut Ctx<'_>, a: w::LOCKT4args) -> ResOp {
    let res = (|| {
        let range = range(a.offset, a.length)?;
        let (fh, _) = ctx.regular()?;
        let client = ctx.client()?;
        let target = Target {
            client: client_key(client.0),
            owner: lock_owner_key(&a.owner.owner.0),
            file: file_key(fh),
        };
        let now = ctx.call.now_ms;
        let want = kind(a.locktype);
        let locking = &ctx.svc.locking;
        let spare = locking.request_spare_for(&target, fh.export.backend.as_ref(), &fh.handle);
        let before = Before::Test(want, range);
        Ok(locking.with_request(&target, spare, before, |m, mirror| {
            match m.test(now, &target, want, range) {
                // The manager knows this server's NFS owners only: the file system (a local
                // process, or another head through CephFS) may hold a lock in the way.
                TestOutcome::Free => {
                    Ok(mirror.probe(m, &target, want, range).map(|c| denied(m, &c)))
                }
                TestOutcome::Conflict(c) => Ok(Some(denied(m, &c))),
                TestOutcome::GracePeriod => Err(nfsstat4::NFS4ERR_GRACE),
            }
        }))
    })();
    match res.and_then(|r| r) {
        Ok(None) => ResOp::status(OP_LOCKT, nfsstat4::NFS4_OK),
        Ok(Some(d)) => ResOp {
            op: OP_LOCKT,
            status: nfsstat4::NFS4ERR_DENIED,
            body: Some(ResBody::Denied(d)),
        },
        Err(s) => ResOp::status(OP_LOCKT, s),
    }
}

pub fn locku(ctx: &mut Ctx<'_>, a: w::LOCKU4args) -> ResOp {
    let res = (|| {
        let range = range(a.offset, a.length)?;
        let (client, r) = open_of(ctx, &a.lock_stateid, StateKind::Lock)?;
        let StateInfo::Lock { owner, file, .. } = &r.info else {
            return Err(nfsstat4::NFS4ERR_BAD_STATEID);
        };
        let target = Target {
            client: client_key(client.0),
            owner: lock_owner_key(owner),
            file: file.clone(),
        };
        let now = ctx.call.now_ms;
        let locking = &ctx.svc.locking;
        let granted = locking
            .with_manager(None, |m, mirror| m.unlock(now, &target, range, mirror))
            .map_err(|_| nfsstat4::NFS4ERR_DELAY)?;
        locking.push_granted(granted);
        let s = ctx
            .svc
            .v4()
            .with(|s| s.bump(client, &r.stateid))
            .map_err(st_err)?;
        Ok(wire(s))
    })();
    match res {
        Ok(s) => {
            ctx.cur_stateid = Some(s);
            ResOp::ok(OP_LOCKU, ResBody::Stateid(s))
        }
        Err(s) => ResOp::status(OP_LOCKU, s),
    }
}

pub fn test_stateid(
    ctx: &mut Ctx<'_>,
    a: rnfs_xdr::Array<stateid4, { w::TEST_STATEIDS_MAX }>,
) -> ResOp {
    let Ok(client) = ctx.client() else {
        return ResOp::status(OP_TEST_STATEID, nfsstat4::NFS4ERR_OP_NOT_IN_SESSION);
    };
    let codes = ctx.svc.v4().with(|s| {
        a.0.iter()
            .map(|sid| match s.test_stateid(client, &ours(sid)) {
                Ok(()) => nfsstat4::NFS4_OK,
                Err(e) => st_err(e),
            })
            .collect()
    });
    ResOp::ok(
        OP_TEST_STATEID,
        ResBody::TestStateid(rnfs_xdr::Array(codes)),
    )
}

pub fn free_stateid(ctx: &mut Ctx<'_>, sid: stateid4) -> ResOp {
    let res = (|| {
        let client = ctx.client()?;
        let sid = ctx.resolve(&sid)?;
        let checked = ctx
            .svc
            .v4()
            .with(|s| s.check(client, &ours(&sid), StateKind::Any));
        // A revoked stateid is what FREE_STATEID is for (§18.38.3): it holds nothing any more.
        let live = match checked {
            Ok(r) => Some(r),
            Err(st::Error::AdminRevoked | st::Error::DelegRevoked) => None,
            Err(e) => return Err(st_err(e)),
        };
        if let Some(StateInfo::Lock { owner, file, .. }) = live.as_ref().map(|r| &r.info) {
            let ckey = client_key(client.0);
            let held = ctx.svc.locking.with_manager(None, |m, _| {
                match (m.owner_id(&ckey, &lock_owner_key(owner)), m.file_id(file)) {
                    (Some(o), Some(f)) => m.holds(f, o),
                    _ => false,
                }
            });
            if held {
                return Err(nfsstat4::NFS4ERR_LOCKS_HELD);
            }
        }
        let freed = ctx
            .svc
            .v4()
            .with(|s| s.free_stateid(client, &ours(&sid)))
            .map_err(st_err)?;
        release(ctx.call.now_ms, &ctx.svc.locking, client, &[freed]);
        Ok(())
    })();
    match res {
        Ok(()) => ResOp::status(OP_FREE_STATEID, nfsstat4::NFS4_OK),
        Err(s) => ResOp::status(OP_FREE_STATEID, s),
    }
}
