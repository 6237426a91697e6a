//! READ data on loan, for every program that reads (NFSv3 READ, NFSv4 READ): the zero-copy path
//! that splices a file's pages into a loan slot's pipe, and the loan a buffered READ holds while
//! its reply is in flight. The programs only encode their own headers around what this returns.
//!
//! Either way the loan table sees every READ being sent (owner, file, range, age): the watchdog
//! and `rnfsd ctl loans` read it.

use std::sync::atomic::Ordering;

use rnfs_loan::{Claim, LoanKind};
use rnfs_storage::{self as storage, SplicedRead};

use crate::call::{Call, LoanedPipe, PipeResource};
use crate::service::{Authorized, Service};

/// How [`splice`] went.
pub enum Spliced {
    /// The data is in the loan's pipe: `read.bytes` of it, to be sent as the reply's tail.
    Lent { loan: LoanedPipe, read: SplicedRead },
    /// No pipe, or the backend cannot splice: serve it buffered, with the claim.
    Declined,
    /// The backend declined but left bytes in the pipe: serve it buffered without the claim
    /// (the reaper empties the pipe).
    DeclinedPipeDirty,
    /// The backend refused the READ; the claim went back through the reaper.
    Failed(storage::Error),
}

/// The zero-copy path: `count` bytes of `auth`'s file from `offset` spliced into the claim's
/// pipe, which is then lent to the reply (the claim is taken).
pub fn splice(
    svc: &Service,
    call: &Call,
    auth: &Authorized,
    offset: u64,
    count: u32,
    claim: &mut Option<Claim<PipeResource>>,
) -> Spliced {
    let Some(c) = claim.as_mut() else {
        return Spliced::Declined;
    };
    let pipe_bytes = svc.limits().transfer_bytes_max as usize;
    let Ok(pipe) =
        c.resource_or_try_init(|| rnfs_sys::pipe::Pipe::new(pipe_bytes).map(PipeResource))
    else {
        return Spliced::Declined;
    };
    let read = auth
        .export
        .backend
        .read_spliced(&auth.who, &auth.handle, offset, count, &pipe.0);
    match read {
        Ok(Some(read)) => {
            let Some(c) = claim.take() else {
                return Spliced::Declined;
            };
            let bytes = u64::from(read.bytes);
            let loan = c.lend(
                LoanKind::Spliced,
                call.conn_id,
                read.attr.fileid,
                offset,
                bytes,
                call.now_ms,
            );
            svc.counters
                .read_bytes_spliced
                .fetch_add(bytes, Ordering::Relaxed);
            Spliced::Lent { loan, read }
        }
        Ok(None) if matches!(pipe.0.len_bytes(), Ok(0)) => Spliced::Declined,
        Ok(None) => Spliced::DeclinedPipeDirty,
        Err(e) => {
            // The claim goes back through the reaper, which empties its pipe.
            *claim = None;
            Spliced::Failed(e)
        }
    }
}

/// The loan a buffered READ of `bytes` holds while its reply is in flight (none without a
/// claim), and the bytes counted as copied once.
pub fn lend_buffered(
    svc: &Service,
    call: &Call,
    claim: Option<Claim<PipeResource>>,
    fileid: u64,
    offset: u64,
    bytes: u64,
) -> Option<LoanedPipe> {
    svc.counters
        .read_bytes_buffered
        .fetch_add(bytes, Ordering::Relaxed);
    claim.map(|c| {
        let mut loan = c.lend(
            LoanKind::Buffered,
            call.conn_id,
            fileid,
            offset,
            bytes,
            call.now_ms,
        );
        // The slot's pipe (if it has one) holds nothing: the reaper has nothing to do.
        loan.mark_clean();
        loan
    })
}
