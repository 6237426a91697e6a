//! The NFSv3 procedure table (RFC 1813 §3.3): one row per procedure, in procedure-number order.
//! See [`crate::program`] for what a row holds and how to add one.

use rnfs_nfs3::*;

use super::{attrs, read, readdir, write, NFS_PROGRAM, NFS_VERSION};
use crate::program::{handler, null, InPlaceRule, Procedure, Program};

/// NFS version 3. The non-idempotent rows are those that change state: a retransmitted REMOVE,
/// RENAME or exclusive CREATE run twice would turn success into an error, a WRITE run twice could
/// undo a later one (see [`crate::drc`]). Every reply but NULL's starts with an nfsstat3. Lone
/// calls run in place but for the creations (CREATE, MKDIR, SYMLINK, MKNOD), COMMIT and stable
/// WRITEs ([`InPlaceRule`]).
pub const NFS3: Program = Program {
    prog: NFS_PROGRAM,
    name: "NFS",
    low: NFS_VERSION,
    high: NFS_VERSION,
    procedures: &[
        Procedure::new(NFSPROC3_NULL, "NULL", handler!(null)).in_place(InPlaceRule::Always),
        Procedure::new(NFSPROC3_GETATTR, "GETATTR", handler!(attrs::getattr))
            .status()
            .in_place(InPlaceRule::Always),
        Procedure::new(NFSPROC3_SETATTR, "SETATTR", handler!(write::setattr))
            .non_idempotent()
            .status()
            .in_place(InPlaceRule::Always),
        Procedure::new(NFSPROC3_LOOKUP, "LOOKUP", handler!(attrs::lookup))
            .status()
            .in_place(InPlaceRule::Always),
        Procedure::new(NFSPROC3_ACCESS, "ACCESS", handler!(attrs::access))
            .status()
            .in_place(InPlaceRule::Always),
        Procedure::new(NFSPROC3_READLINK, "READLINK", handler!(read::readlink))
            .status()
            .in_place(InPlaceRule::Always),
        // READ writes its own reply: its data travels as the reply's tail, on loan.
        Procedure::new(NFSPROC3_READ, "READ", handler!(into read::read))
            .status()
            .in_place(InPlaceRule::Always),
        Procedure::new(NFSPROC3_WRITE, "WRITE", handler!(write::write))
            .non_idempotent()
            .status()
            .in_place(InPlaceRule::IfUnstable),
        Procedure::new(NFSPROC3_CREATE, "CREATE", handler!(write::create))
            .non_idempotent()
            .status(),
        Procedure::new(NFSPROC3_MKDIR, "MKDIR", handler!(write::mkdir))
            .non_idempotent()
            .status(),
        Procedure::new(NFSPROC3_SYMLINK, "SYMLINK", handler!(write::symlink))
            .non_idempotent()
            .status(),
        Procedure::new(NFSPROC3_MKNOD, "MKNOD", handler!(write::mknod))
            .non_idempotent()
            .status(),
        Procedure::new(NFSPROC3_REMOVE, "REMOVE", handler!(write::remove))
            .non_idempotent()
            .status()
            .in_place(InPlaceRule::Always),
        Procedure::new(NFSPROC3_RMDIR, "RMDIR", handler!(write::rmdir))
            .non_idempotent()
            .status()
            .in_place(InPlaceRule::Always),
        Procedure::new(NFSPROC3_RENAME, "RENAME", handler!(write::rename))
            .non_idempotent()
            .status()
            .in_place(InPlaceRule::Always),
        Procedure::new(NFSPROC3_LINK, "LINK", handler!(write::link))
            .non_idempotent()
            .status()
            .in_place(InPlaceRule::Always),
        Procedure::new(NFSPROC3_READDIR, "READDIR", handler!(readdir::readdir))
            .status()
            .in_place(InPlaceRule::Always),
        Procedure::new(
            NFSPROC3_READDIRPLUS,
            "READDIRPLUS",
            handler!(readdir::readdirplus),
        )
        .status()
        .in_place(InPlaceRule::Always),
        Procedure::new(NFSPROC3_FSSTAT, "FSSTAT", handler!(attrs::fsstat))
            .status()
            .in_place(InPlaceRule::Always),
        Procedure::new(NFSPROC3_FSINFO, "FSINFO", handler!(attrs::fsinfo))
            .status()
            .in_place(InPlaceRule::Always),
        Procedure::new(NFSPROC3_PATHCONF, "PATHCONF", handler!(attrs::pathconf))
            .status()
            .in_place(InPlaceRule::Always),
        // COMMIT is cached as it always was: a replayed reply carries the verifier of the
        // commit that ran.
        Procedure::new(NFSPROC3_COMMIT, "COMMIT", handler!(write::commit))
            .non_idempotent()
            .status(),
    ],
    stats_any_version: false,
    tcp_only: false,
};
