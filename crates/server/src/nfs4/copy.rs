//! NFSv4.2 server-side copy and clone (RFC 7862 §4, §15.2 COPY, §15.8 OFFLOAD_CANCEL, §15.9
//! OFFLOAD_STATUS, §15.13 CLONE, §16.1 CB_OFFLOAD), within one export of this server.
//!
//! COPY and CLONE take the source as the saved handle and the destination as the current one
//! (§15.2.3): both regular files of the same export (another export is NFS4ERR_XDEV, even on the
//! same file system: each export is its own security boundary), the source's stateid checked as
//! READ's and the destination's as WRITE's ([`check_io_stateid_of`]; other clients'
//! delegations of the destination are recalled first), on a writable export. The range must lie
//! within the source (`count` 0: to its end; past the end is NFS4ERR_INVAL, §15.2.3), and the
//! two ranges of one file must not overlap (NFS4ERR_INVAL).
//!
//! * **Intra-server only.** A COPY naming source servers (`ca_source_server`) is an inter-server
//!   copy, which needs COPY_NOTIFY and a server-to-server mount: not offered (NFS4ERR_NOTSUPP,
//!   as Linux's nfsd answers with inter-server copy off).
//! * **Synchronous** when the client asks for it, when the range is at most
//!   `copy_sync_bytes_max`, or when the client's back channel cannot carry CB_OFFLOAD: done
//!   within the request, on the worker, at most `copy_sync_bytes_max` bytes (a longer range gets
//!   a short `wr_count`, which §15.2.3 allows: the client copies the rest with another COPY).
//! * **Asynchronous** otherwise: the reply carries a callback stateid at once, a job
//!   ([`crate::copies`]) copies the range on its own thread in slices, and [`supervise_copies`]
//!   sends CB_OFFLOAD when it is over. Past `copy_jobs_max` (or the client's share):
//!   NFS4ERR_DELAY. OFFLOAD_STATUS reports a job's progress; OFFLOAD_CANCEL stops it within one
//!   slice (no CB_OFFLOAD follows). Another client's callback stateid, or an unknown one, is
//!   NFS4ERR_BAD_STATEID.
//! * **Durability.** Copied data is UNSTABLE (the server's write verifier; COMMIT makes it
//!   durable), as an UNSTABLE WRITE's.
//! * **CLONE** shares extents (`FICLONERANGE`) where the file system can (XFS, Btrfs); elsewhere
//!   (ext4, tmpfs) it is NFS4ERR_NOTSUPP, and the client copies instead.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rnfs_nfs4::cb::{offload_info4, CB_COMPOUND4res, CB_OFFLOAD4args, CbArgOp};
use rnfs_nfs4::{
    copy_requirements4, write_response4, CLONE4args, COPY4args, COPY4resok, OFFLOAD_STATUS4resok,
    Opaque,
};
use rnfs_nfs4::{nfsstat4, op::*, stable_how4, stateid4, ResBody, ResOp};
use rnfs_nfs4state::ClientId;
use tracing::debug;

use super::attrs::writable;
use super::ctx::{attr_of, check_io_stateid, check_io_stateid_of, type_check, Ctx, Fh};
use super::status;
use crate::callbacks::{CbError, CbJob};
use crate::copies::{CopyJobs, Job, SliceFn, KEEP_FINISHED_MS};
use crate::service::{Authorized, Service};

/// How often the supervisor looks for purged clients when no job finishes.
const SUPERVISE_TICK_MS: u64 = 500;

/// The byte range a COPY or CLONE acts on, once checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    src_off: u64,
    dst_off: u64,
    count: u64,
}

/// Checks a range against the source's size (§15.2.3, §15.13.3): `count` 0 is "to the end";
/// a range reaching past the end is NFS4ERR_INVAL, as are overlapping ranges of one file; a
/// destination end past the largest file NFS4ERR_FBIG.
fn check_range(
    (src_off, dst_off, count): (u64, u64, u64),
    src_size: u64,
    same_file: bool,
) -> Result<Range, nfsstat4> {
    if src_off > src_size {
        return Err(nfsstat4::NFS4ERR_INVAL);
    }
    let count = if count == 0 {
        src_size - src_off
    } else {
        count
    };
    let src_end = src_off.checked_add(count).ok_or(nfsstat4::NFS4ERR_INVAL)?;
    if src_end > src_size {
        return Err(nfsstat4::NFS4ERR_INVAL);
    }
    let dst_end = dst_off.checked_add(count);
    if dst_end.is_none_or(|end| end > i64::MAX as u64) {
        return Err(nfsstat4::NFS4ERR_FBIG);
    }
    if same_file && count > 0 && src_off < dst_off + count && dst_off < src_end {
        return Err(nfsstat4::NFS4ERR_INVAL);
    }
    Ok(Range {
        src_off,
        dst_off,
        count,
    })
}

/// The source (saved handle) and destination (current handle) of a COPY or CLONE, checked: both
/// regular files of one export, the destination's export writable, both stateids.
fn endpoints<'c>(
    ctx: &'c Ctx<'_>,
    src_stateid: &stateid4,
    dst_stateid: &stateid4,
) -> Result<(&'c Authorized, &'c Authorized, u64), nfsstat4> {
    ctx.current()?;
    let src = match ctx.saved.as_ref().ok_or(nfsstat4::NFS4ERR_NOFILEHANDLE)? {
        Fh::Real(a) => a.as_ref(),
        Fh::Pseudo(_) => return Err(nfsstat4::NFS4ERR_ISDIR),
    };
    let (dst, _) = ctx.regular()?;
    let src_attr = attr_of(src)?;
    type_check(src_attr.file_type)?;
    if src.export.id != dst.export.id {
        return Err(nfsstat4::NFS4ERR_XDEV);
    }
    writable(ctx)?;
    check_io_stateid_of(ctx, src, src_stateid, false)?;
    check_io_stateid(ctx, dst_stateid, true)?;
    Ok((src, dst, src_attr.size_bytes))
}

/// Whether the client's back channel answered its probe (CB_OFFLOAD can reach it).
fn callbacks_work(ctx: &Ctx<'_>, client: ClientId) -> bool {
    ctx.svc.v4().with(|s| !s.client_sessions(client).is_empty())
}

pub fn copy(ctx: &Ctx<'_>, a: COPY4args) -> ResOp {
    match copy_inner(ctx, &a) {
        Ok(r) => ResOp::ok(OP_COPY, ResBody::Copy(r)),
        Err(s) => ResOp::status(OP_COPY, s),
    }
}

fn copy_inner(ctx: &Ctx<'_>, a: &COPY4args) -> Result<COPY4resok, nfsstat4> {
    if !a.ca_source_server.0.is_empty() {
        return Err(nfsstat4::NFS4ERR_NOTSUPP);
    }
    let client = ctx.client()?;
    let (src, dst, size) = endpoints(ctx, &a.ca_src_stateid, &a.ca_dst_stateid)?;
    let same = src.handle.as_bytes() == dst.handle.as_bytes();
    let asked = (a.ca_src_offset, a.ca_dst_offset, a.ca_count);
    let range = check_range(asked, size, same)?;
    let sync_max = ctx.svc.limits().copy_sync_bytes_max;
    if a.ca_synchronous || range.count <= sync_max || !callbacks_work(ctx, client) {
        let count = range.count.min(sync_max);
        return copy_now(ctx, src, dst, Range { count, ..range });
    }
    let job = start_job(ctx, client, src, dst, range)?;
    Ok(COPY4resok {
        cr_response: write_response4 {
            wr_callback_id: rnfs_xdr::Array(vec![callback_stateid(&job)]),
            wr_count: 0,
            wr_committed: stable_how4::UNSTABLE4,
            wr_writeverf: ctx.svc.write_verifier(),
        },
        cr_requirements: copy_requirements4 {
            cr_consecutive: true,
            cr_synchronous: false,
        },
    })
}

/// A synchronous copy of `r`, within this request.
fn copy_now(
    ctx: &Ctx<'_>,
    src: &Authorized,
    dst: &Authorized,
    r: Range,
) -> Result<COPY4resok, nfsstat4> {
    let copied = if r.count == 0 {
        0
    } else {
        dst.export
            .backend
            .copy_range(
                &dst.who,
                &src.handle,
                &dst.handle,
                (r.src_off, r.dst_off),
                r.count,
            )
            .map_err(|e| status(&e))?
    };
    let copies = ctx.svc.copies();
    copies.counters.bytes.fetch_add(copied, Ordering::Relaxed);
    copies.counters.sync_copies.fetch_add(1, Ordering::Relaxed);
    Ok(COPY4resok {
        cr_response: write_response4 {
            wr_callback_id: rnfs_xdr::Array(Vec::new()),
            wr_count: copied,
            wr_committed: stable_how4::UNSTABLE4,
            wr_writeverf: ctx.svc.write_verifier(),
        },
        cr_requirements: copy_requirements4 {
            cr_consecutive: true,
            cr_synchronous: true,
        },
    })
}

/// Starts an asynchronous copy of `r` (NFS4ERR_DELAY past the job limits).
fn start_job(
    ctx: &Ctx<'_>,
    client: ClientId,
    src: &Authorized,
    dst: &Authorized,
    r: Range,
) -> Result<Arc<Job>, nfsstat4> {
    let backend = dst.export.backend.clone();
    let who = dst.who.clone();
    let (src_h, dst_h) = (src.handle.clone(), dst.handle.clone());
    let slice: SliceFn = Box::new(move |done, len| {
        let at = (r.src_off + done, r.dst_off + done);
        backend.copy_range(&who, &src_h, &dst_h, at, len)
    });
    let fhs = (
        src.handle.handle().to_bytes(),
        dst.handle.handle().to_bytes(),
    );
    ctx.svc
        .copies()
        .start(client.0, fhs, r.count, ctx.call.now_ms, slice)
        .map_err(|e| {
            debug!(error = %e, "COPY: NFS4ERR_DELAY");
            nfsstat4::NFS4ERR_DELAY
        })
}

fn callback_stateid(job: &Job) -> stateid4 {
    stateid4 {
        seqid: 1,
        other: job.id,
    }
}

/// The job a callback stateid names, if it is this client's (else NFS4ERR_BAD_STATEID).
fn own_job(ctx: &Ctx<'_>, s: &stateid4) -> Result<Arc<Job>, nfsstat4> {
    let client = ctx.client()?;
    let s = ctx.resolve(s)?;
    match ctx.svc.copies().get(&s.other) {
        Some(job) if job.client == client.0 => Ok(job),
        _ => Err(nfsstat4::NFS4ERR_BAD_STATEID),
    }
}

pub fn offload_status(ctx: &Ctx<'_>, s: stateid4) -> ResOp {
    let res = own_job(ctx, &s).map(|job| {
        let complete = job.outcome().map(|o| match &o.error {
            Some(e) if o.copied == 0 => status(e),
            _ => nfsstat4::NFS4_OK,
        });
        OFFLOAD_STATUS4resok {
            osr_count: job.outcome().map_or(job.copied(), |o| o.copied),
            osr_complete: rnfs_xdr::Array(complete.into_iter().collect()),
        }
    });
    match res {
        Ok(r) => ResOp::ok(OP_OFFLOAD_STATUS, ResBody::OffloadStatus(r)),
        Err(e) => ResOp::status(OP_OFFLOAD_STATUS, e),
    }
}

/// OFFLOAD_CANCEL: the job stops within one slice and its record goes at once (no CB_OFFLOAD).
pub fn offload_cancel(ctx: &Ctx<'_>, s: stateid4) -> ResOp {
    let res = own_job(ctx, &s).map(|job| {
        job.cancel();
        ctx.svc.copies().remove(&job.id);
    });
    ResOp::status(OP_OFFLOAD_CANCEL, res.err().unwrap_or(nfsstat4::NFS4_OK))
}

pub fn clone(ctx: &Ctx<'_>, a: CLONE4args) -> ResOp {
    let res = (|| {
        let (src, dst, size) = endpoints(ctx, &a.cl_src_stateid, &a.cl_dst_stateid)?;
        let same = src.handle.as_bytes() == dst.handle.as_bytes();
        let asked = (a.cl_src_offset, a.cl_dst_offset, a.cl_count);
        let r = check_range(asked, size, same)?;
        dst.export
            .backend
            .clone_range(
                &dst.who,
                &src.handle,
                &dst.handle,
                (r.src_off, r.dst_off),
                r.count,
            )
            .map_err(|e| status(&e))
    })();
    ResOp::status(OP_CLONE, res.err().unwrap_or(nfsstat4::NFS4_OK))
}

/// The supervisor of asynchronous copies: sends CB_OFFLOAD for each finished job (RFC 7862
/// §16.1), cancels the jobs of purged clients, and forgets finished jobs once their CB_OFFLOAD
/// was answered, or [`KEEP_FINISHED_MS`] after they ended when it was not. Holds no lock across
/// an await; the callback itself is queued without waiting ([`crate::callbacks`]).
pub async fn supervise_copies(svc: Arc<Service>) {
    let jobs = svc.copies().clone();
    loop {
        let tick = tokio::time::sleep(Duration::from_millis(SUPERVISE_TICK_MS));
        tokio::select! {
            _ = jobs.finished.notified() => {}
            _ = tick => {}
        }
        supervise_once(&svc, &jobs);
    }
}

fn supervise_once(svc: &Service, jobs: &Arc<CopyJobs>) {
    let now = crate::clock::now_ms();
    for job in jobs.list() {
        let gone = svc
            .v4()
            .with(|s| s.client_info(now, ClientId(job.client)).is_none());
        match job.outcome() {
            None if gone => job.cancel(),
            None => {}
            Some(_) if gone => drop(jobs.remove(&job.id)),
            Some(o) if job.take_report() => send_offload(svc, jobs, &job, o),
            Some(o) if now.saturating_sub(o.finished_ms) > KEEP_FINISHED_MS => {
                drop(jobs.remove(&job.id))
            }
            Some(_) => {}
        }
    }
}

/// CB_OFFLOAD for a finished job: its write response, or its error and the bytes copied.
fn send_offload(svc: &Service, jobs: &Arc<CopyJobs>, job: &Job, o: &crate::copies::Outcome) {
    let info = match &o.error {
        Some(e) if o.copied == 0 => offload_info4::Failed(status(e), 0),
        // Some bytes were copied: a short copy, which the client completes itself.
        _ => offload_info4::Done(write_response4 {
            wr_callback_id: rnfs_xdr::Array(Vec::new()),
            wr_count: o.copied,
            wr_committed: stable_how4::UNSTABLE4,
            wr_writeverf: svc.write_verifier(),
        }),
    };
    let op = CbArgOp::Offload(CB_OFFLOAD4args {
        coa_fh: Opaque(job.dst_fh.clone()),
        coa_stateid: callback_stateid(job),
        coa_offload_info: info,
    });
    let (forget, id) = (jobs.clone(), job.id);
    let done = Arc::new(move |res: Result<CB_COMPOUND4res, CbError>| {
        // Answered: the client knows; unanswered: kept a while for OFFLOAD_STATUS.
        if res.is_ok_and(|r| r.status == nfsstat4::NFS4_OK) {
            forget.remove(&id);
        }
    });
    let queued = svc.callbacks().submit(CbJob::Compound {
        client: ClientId(job.client),
        ops: vec![op],
        done,
    });
    if queued {
        jobs.counters.offloads_sent.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_7862() {
        use nfsstat4::*;
        let r = |src_off, dst_off, count| Range {
            src_off,
            dst_off,
            count,
        };
        // count 0: to the end of the source.
        assert_eq!(check_range((3, 0, 0), 10, false), Ok(r(3, 0, 7)));
        assert_eq!(check_range((10, 0, 0), 10, false), Ok(r(10, 0, 0)));
        // Past the end of the source.
        assert_eq!(check_range((11, 0, 0), 10, false), Err(NFS4ERR_INVAL));
        assert_eq!(check_range((5, 0, 6), 10, false), Err(NFS4ERR_INVAL));
        assert_eq!(check_range((5, 0, u64::MAX), 10, false), Err(NFS4ERR_INVAL));
        // The destination may lie past its end, not past the largest file.
        assert_eq!(
            check_range((0, 1 << 40, 10), 10, false),
            Ok(r(0, 1 << 40, 10))
        );
        assert_eq!(
            check_range((0, i64::MAX as u64, 10), 10, false),
            Err(NFS4ERR_FBIG)
        );
        // One file: overlapping ranges are invalid, adjacent ones fine.
        assert_eq!(check_range((0, 5, 6), 20, true), Err(NFS4ERR_INVAL));
        assert_eq!(check_range((5, 0, 6), 20, true), Err(NFS4ERR_INVAL));
        assert_eq!(check_range((0, 5, 5), 20, true), Ok(r(0, 5, 5)));
        assert_eq!(check_range((0, 5, 6), 20, false), Ok(r(0, 5, 6)));
    }
}
