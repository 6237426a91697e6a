//! NFSv4.2's sparse-file operations (RFC 7862 §15): SEEK (§15.11), ALLOCATE (§15.1), DEALLOCATE
//! (§15.4) and READ_PLUS (§15.10), on the export's backend as the caller.
//!
//! They take a stateid as READ and WRITE do ([`check_io_stateid`]); ALLOCATE and DEALLOCATE
//! change the file, so they need a writable export and an open for writing (the READ-bypass
//! stateid counts as the anonymous one there, as for Linux's nfsd: it bypasses nothing).
//!
//! SEEK follows §15.11.3: an offset at or past the end is NFS4ERR_NXIO; no data after the offset
//! is success with `sr_eof` and the file's size; a hole found at the end is `sr_eof` too.
//!
//! READ_PLUS returns the range as data and hole segments, in file order: holes are found with
//! the backend's SEEK (`SEEK_DATA`/`SEEK_HOLE` on the local backend); a backend that cannot tell
//! gets one data segment, as READ would return. The data is read into the reply (no zero-copy: a
//! hole-aware reply interleaves data with segment headers), bounded like READ's by the transfer
//! limit and the session's reply size, less room for [`SEGMENTS_MAX`] segment headers. Holes are
//! reported up to the end of the requested range, never past it.

use rnfs_nfs4::{
    data4, data_content4, data_info4, read_plus_content, read_plus_res4, seek_res4, ALLOCATE4args,
    Opaque, READ_PLUS4args, SEEK4args,
};
use rnfs_nfs4::{nfsstat4, op::*, stateid4, ResBody, ResOp};
use rnfs_storage::{self as storage, SeekWhat};

use super::attrs::writable;
use super::ctx::{check_io_stateid, Ctx};
use super::status;
use crate::service::Authorized;

/// Most segments in one READ_PLUS reply; a range with more continues in the client's next call.
pub const SEGMENTS_MAX: usize = 64;
/// Bytes of one segment besides its data: content type, offset, length (data padding included).
const SEGMENT_HEAD_BYTES: usize = 4 + 8 + 8 + 4;
/// What a reply holds besides READ_PLUS's result (headers, SEQUENCE, PUTFH...), generously.
const REPLY_OVERHEAD_BYTES: usize = 1024;

pub fn seek(ctx: &Ctx<'_>, a: SEEK4args) -> ResOp {
    let res = (|| {
        let (auth, _) = ctx.regular()?;
        check_io_stateid(ctx, &a.stateid, false)?;
        let what = match a.what {
            data_content4::NFS4_CONTENT_DATA => SeekWhat::Data,
            data_content4::NFS4_CONTENT_HOLE => SeekWhat::Hole,
        };
        let s = auth
            .export
            .backend
            .seek(&auth.who, &auth.handle, what, a.offset)
            .map_err(|e| status(&e))?;
        Ok(seek_result(s))
    })();
    match res {
        Ok(r) => ResOp::ok(OP_SEEK, ResBody::Seek(r)),
        Err(s) => ResOp::status(OP_SEEK, s),
    }
}

/// SEEK's answer for what the backend found (§15.11.3).
fn seek_result(s: storage::Sought) -> seek_res4 {
    match s.offset {
        Some(at) => seek_res4 {
            eof: at >= s.size_bytes,
            offset: at,
        },
        None => seek_res4 {
            eof: true,
            offset: s.size_bytes,
        },
    }
}

/// ALLOCATE and DEALLOCATE's stateid: as WRITE's, with the READ-bypass one taken as anonymous.
fn check_change_stateid(ctx: &Ctx<'_>, s: &stateid4) -> Result<(), nfsstat4> {
    let s = ctx.resolve(s)?;
    if s == stateid4::BYPASS {
        // Still a change: other clients' delegations of the file are recalled first.
        return check_io_stateid(ctx, &stateid4::ANONYMOUS, true);
    }
    check_io_stateid(ctx, &s, true)
}

/// ALLOCATE (`punch` false) and DEALLOCATE.
pub fn fallocate(ctx: &Ctx<'_>, a: ALLOCATE4args, punch: bool) -> ResOp {
    let op = if punch { OP_DEALLOCATE } else { OP_ALLOCATE };
    let res = (|| {
        let auth = writable(ctx)?;
        ctx.regular()?;
        check_change_stateid(ctx, &a.stateid)?;
        // §15.1.3, §15.4.3: a range past the largest file is NFS4ERR_FBIG, an empty one invalid.
        if a.length == 0 {
            return Err(nfsstat4::NFS4ERR_INVAL);
        }
        let b = &auth.export.backend;
        let done = if punch {
            b.deallocate(&auth.who, &auth.handle, a.offset, a.length)
        } else {
            b.allocate(&auth.who, &auth.handle, a.offset, a.length)
        };
        done.map(drop).map_err(|e| status(&e))
    })();
    ResOp::status(op, res.err().unwrap_or(nfsstat4::NFS4_OK))
}

pub fn read_plus(ctx: &Ctx<'_>, a: READ_PLUS4args) -> ResOp {
    let res = (|| {
        let (auth, _) = ctx.regular()?;
        check_io_stateid(ctx, &a.stateid, false)?;
        segments(auth, a.offset, plus_count(ctx, a.count))
    })();
    match res {
        Ok(r) => ResOp::ok(OP_READ_PLUS, ResBody::ReadPlus(r)),
        Err(s) => ResOp::status(OP_READ_PLUS, s),
    }
}

/// The most data bytes this reply may carry: the client's count, the transfer limit, and what
/// the session's response size leaves after the segment headers.
fn plus_count(ctx: &Ctx<'_>, asked: u32) -> u32 {
    let mut count = asked.min(ctx.svc.limits().transfer_bytes_max);
    if let Some(slot) = &ctx.slot {
        let room = slot
            .response_bytes_max
            .saturating_sub(REPLY_OVERHEAD_BYTES + SEGMENTS_MAX * SEGMENT_HEAD_BYTES);
        count = count.min(u32::try_from(room).unwrap_or(u32::MAX));
    }
    count
}

/// Where the next data at or after `pos` starts: `Ok(None)` at or past the end of the file.
/// A backend that cannot tell says `pos` (all data).
fn next_data(auth: &Authorized, pos: u64) -> Result<Option<(u64, u64)>, nfsstat4> {
    match auth
        .export
        .backend
        .seek(&auth.who, &auth.handle, SeekWhat::Data, pos)
    {
        Ok(s) => Ok(Some((s.offset.unwrap_or(s.size_bytes), s.size_bytes))),
        Err(storage::Error::NxIo) => Ok(None),
        Err(storage::Error::NotSupp) => Ok(Some((pos, u64::MAX))),
        Err(e) => Err(status(&e)),
    }
}

/// Where the hole after the data at `pos` starts (the end of the file at the latest).
fn next_hole(auth: &Authorized, pos: u64) -> Result<u64, nfsstat4> {
    match auth
        .export
        .backend
        .seek(&auth.who, &auth.handle, SeekWhat::Hole, pos)
    {
        Ok(s) => Ok(s.offset.unwrap_or(s.size_bytes)),
        Err(storage::Error::NxIo | storage::Error::NotSupp) => Ok(u64::MAX),
        Err(e) => Err(status(&e)),
    }
}

/// The segments of `count` bytes from `offset`, at most [`SEGMENTS_MAX`] of them.
fn segments(auth: &Authorized, offset: u64, count: u32) -> Result<read_plus_res4, nfsstat4> {
    let end = offset.saturating_add(u64::from(count));
    let mut pos = offset;
    let mut out = Vec::new();
    let mut eof = false;
    while pos < end && out.len() < SEGMENTS_MAX {
        let Some((data_at, size)) = next_data(auth, pos)? else {
            eof = true;
            break;
        };
        if data_at > pos {
            let hole_end = data_at.min(end);
            out.push(read_plus_content::Hole(data_info4 {
                offset: pos,
                length: hole_end - pos,
            }));
            pos = hole_end;
            eof = pos >= size;
            continue;
        }
        let want = next_hole(auth, pos)?.min(end) - pos;
        let want = u32::try_from(want).unwrap_or(u32::MAX);
        let r = auth
            .export
            .backend
            .read(&auth.who, &auth.handle, pos, want)
            .map_err(|e| status(&e))?;
        let n = r.data.len().min(want as usize);
        if n > 0 {
            out.push(read_plus_content::Data(data4 {
                offset: pos,
                data: Opaque(r.data.slice(..n)),
            }));
        }
        pos += n as u64;
        eof = r.eof;
        if r.eof || n == 0 {
            break;
        }
    }
    Ok(read_plus_res4 {
        eof,
        contents: rnfs_xdr::Array(out),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seek_answers_follow_rfc_7862() {
        let found = |offset, size_bytes| seek_result(storage::Sought { offset, size_bytes });
        // Data or a hole inside the file.
        assert_eq!(
            found(Some(10), 100),
            seek_res4 {
                eof: false,
                offset: 10
            }
        );
        // The hole at the end of the file.
        assert_eq!(
            found(Some(100), 100),
            seek_res4 {
                eof: true,
                offset: 100
            }
        );
        // No data after the offset: success, eof, the size.
        assert_eq!(
            found(None, 100),
            seek_res4 {
                eof: true,
                offset: 100
            }
        );
    }
}
