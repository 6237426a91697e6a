//! What the server reads from an NFS call before decoding it: its file handle and a WRITE's size,
//! and whether an NFSv4 COMPOUND may run in place.
//!
//! The RPC header is peeked by [`rnfs_oncrpc::peek`] (bounded, fuzzed); these read the first
//! arguments of NFSv3 calls (RFC 1813 §3.3) the same way, trusting nothing: a malformed call
//! yields `None`, and the service answers it properly once it decodes it. A COMPOUND's operations
//! (RFC 8881 §16.2) are read with the NFSv4 crate's own decoders.

use bytes::Bytes;
use rnfs_nfs4::{ArgOp, CompoundHeader};
use rnfs_oncrpc::peek::{CallPeek, Cursor};
use rnfs_xdr::Decoder;

/// Most operations of an NFSv4 COMPOUND that may run in place; longer ones run on the pool.
pub const COMPOUND_OPS_IN_PLACE_MAX: u32 = 16;

/// An NFS call's file handle (the first argument of every procedure but NULL) and a cursor at the
/// arguments that follow it.
pub fn nfs_handle<'a>(call: &CallPeek<'a>) -> Option<(&'a [u8], Cursor<'a>)> {
    if call.prog != rnfs_nfs3::NFS_PROGRAM || call.proc_num == rnfs_nfs3::NFSPROC3_NULL {
        return None;
    }
    let mut args = Cursor::new(call.args);
    let fh = args.opaque(rnfs_nfs3::NFS3_FHSIZE).ok()?;
    Some((fh, args))
}

/// A WRITE's `count` argument (WRITE3args: file handle, offset, count).
pub fn write_count(call: &CallPeek) -> Option<u32> {
    if call.proc_num != rnfs_nfs3::NFSPROC3_WRITE {
        return None;
    }
    let (_, mut rest) = nfs_handle(call)?;
    rest.take(8).ok()?;
    rest.u32().ok()
}

/// A WRITE's `stable` argument (WRITE3args: file handle, offset, count, stable).
pub fn write_stable(call: &CallPeek) -> Option<u32> {
    if call.proc_num != rnfs_nfs3::NFSPROC3_WRITE {
        return None;
    }
    let (_, mut rest) = nfs_handle(call)?;
    rest.take(12).ok()?;
    rest.u32().ok()
}

/// Whether an NFSv4 COMPOUND, whose arguments are `args` (a slice of the record, so a WRITE's data
/// is not copied), may run in place (see `transport::InPlace`): at most
/// [`COMPOUND_OPS_IN_PLACE_MAX`] operations, each of them one that creates no object (a creation
/// gives its thread a private umask), does not wait for the disk (COMMIT, stable WRITE, COPY,
/// ALLOCATE, ...) and does not change what is kept on stable storage (EXCHANGE_ID,
/// CREATE_SESSION, RECLAIM_COMPLETE, ...). One that does not decode runs on the pool.
pub fn compound_may_run_in_place(args: Bytes) -> bool {
    let mut d = Decoder::new(args);
    let Ok(head) = CompoundHeader::decode(&mut d) else {
        return false;
    };
    head.op_count <= COMPOUND_OPS_IN_PLACE_MAX
        && (0..head.op_count)
            .all(|_| ArgOp::decode(&mut d).is_ok_and(|op| crate::nfs4::may_run_in_place(&op)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rnfs_nfs4::{
        createhow4, fattr4, open_claim4, stable_how4, state_owner4, stateid4, Bitmap, COMMIT4args,
        Compound, OPEN4args, Opaque, OpenHow, SEQUENCE4args, WRITE4args,
    };

    fn args(ops: Vec<ArgOp>) -> Bytes {
        rnfs_xdr::to_bytes(&Compound {
            tag: Opaque(Bytes::new()),
            minorversion: 1,
            ops,
        })
    }

    fn sequence() -> ArgOp {
        ArgOp::Sequence(SEQUENCE4args {
            sa_sessionid: [1; 16],
            sa_sequenceid: 1,
            sa_slotid: 0,
            sa_highest_slotid: 0,
            sa_cachethis: false,
        })
    }

    fn putfh() -> ArgOp {
        ArgOp::PutFh(Opaque(Bytes::from_static(&[7; 32])))
    }

    fn write(stable: stable_how4) -> ArgOp {
        ArgOp::Write(WRITE4args {
            stateid: stateid4::default(),
            offset: 0,
            stable,
            data: Opaque(Bytes::from_static(&[1; 4096])),
        })
    }

    fn open(openhow: Option<createhow4>) -> ArgOp {
        ArgOp::Open(OPEN4args {
            seqid: 0,
            share_access: 1,
            share_deny: 0,
            owner: state_owner4 {
                clientid: 1,
                owner: Opaque(Bytes::from_static(b"o")),
            },
            openhow: OpenHow(openhow),
            claim: open_claim4::Null(Opaque(Bytes::from_static(b"f"))),
        })
    }

    #[test]
    fn reads_lookups_and_unstable_writes_may_run_in_place() {
        let getattr = ArgOp::GetAttr(Bitmap(vec![0x18]));
        for ops in [
            vec![sequence(), putfh(), getattr.clone()],
            vec![sequence(), putfh(), write(stable_how4::UNSTABLE4), getattr],
            vec![sequence(), putfh(), open(None), ArgOp::GetFh],
            vec![],
        ] {
            assert!(compound_may_run_in_place(args(ops.clone())), "{ops:?}");
        }
    }

    #[test]
    fn creations_disk_waits_and_stable_state_changes_run_on_the_pool() {
        let create = createhow4::Unchecked(fattr4::default());
        for op in [
            open(Some(create)),
            write(stable_how4::FILE_SYNC4),
            write(stable_how4::DATA_SYNC4),
            ArgOp::Commit(COMMIT4args {
                offset: 0,
                count: 0,
            }),
            ArgOp::ReclaimComplete(false),
            ArgOp::DestroySession([1; 16]),
        ] {
            let ops = vec![sequence(), putfh(), op];
            assert!(!compound_may_run_in_place(args(ops.clone())), "{ops:?}");
        }
    }

    #[test]
    fn long_or_malformed_compounds_run_on_the_pool() {
        let at_most = vec![putfh(); COMPOUND_OPS_IN_PLACE_MAX as usize];
        assert!(compound_may_run_in_place(args(at_most)));
        let longer = vec![putfh(); COMPOUND_OPS_IN_PLACE_MAX as usize + 1];
        assert!(!compound_may_run_in_place(args(longer)));
        let whole = args(vec![sequence(), putfh()]);
        assert!(compound_may_run_in_place(whole.clone()));
        for cut in 0..whole.len() {
            assert!(
                !compound_may_run_in_place(whole.slice(..cut)),
                "cut at {cut}"
            );
        }
    }
}
