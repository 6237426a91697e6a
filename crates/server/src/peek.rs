//! What the server reads from an NFS call before decoding it: its file handle and a WRITE's size.
//!
//! The RPC header is peeked by [`rnfs_oncrpc::peek`] (bounded, fuzzed); these read the first
//! arguments of NFSv3 calls (RFC 1813 §3.3) the same way, trusting nothing: a malformed call
//! yields `None`, and the service answers it properly once it decodes it.

use rnfs_oncrpc::peek::{CallPeek, Cursor};

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
