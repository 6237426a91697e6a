//! One table per RPC program: each procedure's number, name, handler and flags in one row.
//!
//! Dispatch ([`Service::handle_record`], here), the duplicate request cache ([`cached`]),
//! statistics slots and names ([`crate::stats`], hence metrics labels and `rnfsd ctl` output) all
//! read these rows, so what one procedure is and does is written once. The tables live next to
//! their handlers: [`crate::nfs::NFS3`] (RFC 1813 §3), `MOUNT` in `service/mount.rs` (RFC 1813
//! Appendix I) and `PORTMAP` in `service/portmap.rs` (RFC 1833 §3); [`PROGRAMS`] lists them.
//!
//! # Adding a procedure
//! 1. Its argument and result types (and procedure number) in the protocol crate (`rnfs-nfs3`,
//!    `rnfs-mount`, `rnfs-portmap`), with their XDR codecs.
//! 2. A handler: `fn(&Service, &Call, Args) -> Result<Res, AuthStat>`, or, when it writes its own
//!    reply, `fn(&Service, &Call, Args, &mut Reply) -> Result<Outcome, AuthStat>`.
//! 3. A row in the program's table, at the index equal to its number, with its flags.
//!
//! The unit tests below check that every table covers its program's procedures in order and that
//! the cache covers exactly the flagged rows. Adding a program is a table and an entry in
//! [`PROGRAMS`] (its statistics slots follow from the table's length).

use bytes::Bytes;
use rnfs_oncrpc::{decode_call, AuthStat, ReplyHeader};
use rnfs_xdr::{XdrDecode, XdrEncode};
use tracing::debug;

use crate::call::{
    refuse_args, reply_header, reply_success, Call, Origin, Outcome, Reply, Tail, Transport,
};
use crate::service::Service;

/// Serves one call whose program, version and procedure are known: decodes `call.args`, runs the
/// procedure and writes the reply (or returns [`Outcome::Drop`]). One shape for every row, so a
/// table can hold it; `handler!` makes one from a typed handler.
pub type Handler = fn(&Service, &Call, &mut Reply) -> Outcome;

/// One procedure of a program version.
#[derive(Clone, Copy)]
pub struct Procedure {
    /// The procedure number; equal to the row's index.
    pub num: u32,
    /// The RFC name ("GETATTR"), for statistics, metrics and logs.
    pub name: &'static str,
    pub handler: Handler,
    /// Changes server state (files, mounts, registrations).
    pub modifies: bool,
    /// Not idempotent, so its reply goes through the duplicate request cache: a retransmission is
    /// answered from there instead of being executed again.
    pub cached: bool,
    /// Its results start with a status word (nfsstat3 or mountstat3) that statistics count.
    pub status: bool,
    /// Whether a lone call may run on the thread that read it (see `transport::InPlace`).
    pub in_place: InPlaceRule,
}

/// When a lone call of a procedure may run where it was read instead of on the pool: only calls
/// that create nothing (creations give their thread a private umask) and do not wait for the
/// disk (a COMMIT, a stable WRITE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InPlaceRule {
    /// Never: the default, so that a new procedure runs on the pool until its row says
    /// otherwise.
    Never,
    Always,
    /// An NFSv3 WRITE whose `stable` is UNSTABLE.
    IfUnstable,
    /// An NFSv4 COMPOUND whose every operation may (`nfs4::table::may_run_in_place`).
    IfEveryOperationMay,
}

impl Procedure {
    /// A row with no flags set.
    pub const fn new(num: u32, name: &'static str, handler: Handler) -> Procedure {
        Procedure {
            num,
            name,
            handler,
            modifies: false,
            cached: false,
            status: false,
            in_place: InPlaceRule::Never,
        }
    }

    /// When a lone call may run where it was read.
    pub const fn in_place(self, rule: InPlaceRule) -> Procedure {
        Procedure {
            in_place: rule,
            ..self
        }
    }

    /// Changes state but may run twice (e.g. MOUNT's list of mounts).
    pub const fn modifies(self) -> Procedure {
        Procedure {
            modifies: true,
            ..self
        }
    }

    /// Changes state and must not run twice: replies are cached.
    pub const fn non_idempotent(self) -> Procedure {
        Procedure {
            modifies: true,
            cached: true,
            ..self
        }
    }

    /// Replies with a status word first.
    pub const fn status(self) -> Procedure {
        Procedure {
            status: true,
            ..self
        }
    }
}

/// An RPC program: the versions served and one row per procedure (the same for every version
/// served; MOUNT's handlers look at the version where v1 and v3 differ).
pub struct Program {
    pub prog: u32,
    /// Label in statistics, metrics and reports ("NFS").
    pub name: &'static str,
    /// The versions served, `low..=high`; others get PROG_MISMATCH with this range.
    pub low: u32,
    pub high: u32,
    pub procedures: &'static [Procedure],
    /// Statistics count calls of versions not served in this program's slots too. False for NFS,
    /// so NFSv4 probes (NULL, COMPOUND) are not counted as NFSv3 procedures.
    pub stats_any_version: bool,
    /// Served over TCP only (NFSv4: RFC 8881 §2.9.1 requires a congestion-controlled
    /// transport); over UDP its versions get PROG_MISMATCH with the others' range.
    pub tcp_only: bool,
}

impl Program {
    pub fn serves(&self, vers: u32) -> bool {
        (self.low..=self.high).contains(&vers)
    }

    /// The row of procedure `num` (rows are indexed by number).
    pub fn procedure(&self, num: u32) -> Option<&'static Procedure> {
        let row = self.procedures.get(usize::try_from(num).ok()?)?;
        debug_assert_eq!(row.num, num, "{} table out of order", self.name);
        Some(row)
    }
}

/// Every program served, in the order of their statistics slots.
pub const PROGRAMS: [&Program; 6] = [
    &crate::nfs::NFS3,
    &crate::nfs4::NFS4,
    &crate::service::MOUNT,
    &crate::service::PORTMAP,
    &crate::nlm::NLM4,
    &crate::nlm::NSM,
];

/// The table serving version `vers` of program `prog`; for a version we do not serve, the
/// program's first table (whose call then gets PROG_MISMATCH). `None` when we serve no version of
/// `prog`. NFS has two tables: version 3's procedures and version 4's COMPOUND.
pub fn find(prog: u32, vers: u32) -> Option<&'static Program> {
    PROGRAMS
        .into_iter()
        .find(|p| p.prog == prog && p.serves(vers))
        .or_else(|| PROGRAMS.into_iter().find(|p| p.prog == prog))
}

/// The lowest and highest version of `prog` served over `transport`, over all its tables
/// (PROG_MISMATCH's range).
fn versions(prog: u32, transport: Transport) -> (u32, u32) {
    PROGRAMS
        .into_iter()
        .filter(|p| p.prog == prog && (transport == Transport::Tcp || !p.tcp_only))
        .fold((u32::MAX, 0), |(low, high), p| {
            (low.min(p.low), high.max(p.high))
        })
}

/// The row of a call by program, version and procedure number (for names and statistics).
pub fn procedure(prog: u32, vers: u32, proc_num: u32) -> Option<&'static Procedure> {
    find(prog, vers)?.procedure(proc_num)
}

/// Procedures of every program together: the statistics slots they take.
pub const fn procedures_total() -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < PROGRAMS.len() {
        n += PROGRAMS[i].procedures.len();
        i += 1;
    }
    n
}

/// Statistics slot of a call: the rows of [`PROGRAMS`] one after another. `None` for a program,
/// version or procedure we do not count.
pub fn slot(prog: u32, vers: u32, proc_num: u32) -> Option<usize> {
    let mut base = 0;
    let counted = |p: &Program| p.serves(vers) || p.stats_any_version;
    for p in PROGRAMS {
        if p.prog == prog && counted(p) {
            let i = usize::try_from(proc_num).ok()?;
            return (i < p.procedures.len()).then_some(base + i);
        }
        base += p.procedures.len();
    }
    None
}

/// The program and row of statistics slot `i` (`None` past the last row).
pub fn of_slot(mut i: usize) -> Option<(&'static Program, &'static Procedure)> {
    for p in PROGRAMS {
        match p.procedures.get(i) {
            Some(row) => return Some((p, row)),
            None => i -= p.procedures.len(),
        }
    }
    None
}

/// Whether a call goes through the cache: its procedure's row  says its
/// reply is cached, in a version of the program we serve.
pub fn cached(prog: u32, vers: u32, proc_num: u32) -> bool {
    find(prog, vers)
        .filter(|p| p.serves(vers))
        .and_then(|p| p.procedure(proc_num))
        .is_some_and(|row| row.cached)
}

impl Service {
    /// Serves one RPC message, building its reply in `reply`.
    pub fn handle_record(
        &self,
        record: Bytes,
        origin: Origin,
        now_ms: u64,
        reply: &mut Reply,
    ) -> Outcome {
        let peer = origin.peer;
        let (header, args) = match decode_call(record) {
            Ok(x) => x,
            Err(err) => {
                debug!(%peer, error = %err, "refused RPC message");
                return match err.reply() {
                    Some((xid, header)) => reply_header(&mut reply.head, xid, header),
                    None => Outcome::Drop,
                };
            }
        };
        let call = Call {
            header,
            args,
            peer,
            transport: origin.transport,
            conn_id: origin.conn_id,
            now_ms,
        };
        match find(call.header.prog, call.header.vers) {
            Some(program) => self.serve(program, &call, reply),
            None => reply_header(&mut reply.head, call.header.xid, ReplyHeader::ProgUnavail),
        }
    }

    /// Serves a call of one of our programs by its table: the version, then the procedure's row,
    /// through the duplicate request cache if the row says so.
    fn serve(&self, program: &Program, call: &Call, reply: &mut Reply) -> Outcome {
        let h = &call.header;
        if !program.serves(h.vers) || (program.tcp_only && call.transport == Transport::Udp) {
            // Linux tries NFSv4 first and falls back to v3 on this answer.
            let (low, high) = versions(program.prog, call.transport);
            return reply_header(
                &mut reply.head,
                h.xid,
                ReplyHeader::ProgMismatch { low, high },
            );
        }
        let Some(procedure) = program.procedure(h.proc_num) else {
            return reply_header(&mut reply.head, h.xid, ReplyHeader::ProcUnavail);
        };
        // Only a call that changes something can do harm when executed twice.
        debug_assert!(
            procedure.modifies || !procedure.cached,
            "{}",
            procedure.name
        );
        if !procedure.cached {
            return (procedure.handler)(self, call, reply);
        }
        let key = crate::drc::Key {
            client: call.peer.ip().to_canonical(),
            xid: h.xid,
            prog: h.prog,
            vers: h.vers,
            proc_num: h.proc_num,
            checksum: crate::drc::Key::checksum(&h.credential, &call.args),
        };
        match self.drc.begin(key) {
            crate::drc::Lookup::Replay(bytes) => {
                reply.head.extend_from_slice(&bytes);
                Outcome::Reply
            }
            crate::drc::Lookup::Drop => {
                debug!(peer = %call.peer, xid = h.xid, "retransmission of a call in progress: dropped");
                Outcome::Drop
            }
            crate::drc::Lookup::Execute(pending) => {
                let outcome = (procedure.handler)(self, call, reply);
                // Modifying procedures reply with a head only (no READ data tail).
                if outcome == Outcome::Reply && matches!(reply.tail, Tail::None) {
                    pending.complete(&reply.head[Reply::MARKER_BYTES..]);
                }
                outcome
            }
        }
    }
}

/// Runs a typed handler: decodes its arguments, calls it, encodes its results. Arguments that do
/// not decode (or leave bytes over) get GARBAGE_ARGS, as every protocol crate's `Args::decode`.
#[inline]
pub fn typed<A: XdrDecode, R: XdrEncode>(
    svc: &Service,
    call: &Call,
    reply: &mut Reply,
    f: fn(&Service, &Call, A) -> Result<R, AuthStat>,
) -> Outcome {
    let xid = call.header.xid;
    // A clone of `Bytes` is a reference count, not a copy; payloads stay slices of the record.
    match rnfs_xdr::from_bytes(call.args.clone()) {
        Ok(args) => match f(svc, call, args) {
            Ok(res) => reply_success(&mut reply.head, xid, &res),
            Err(stat) => reply_header(&mut reply.head, xid, ReplyHeader::AuthError(stat)),
        },
        Err(e) => refuse_args(&mut reply.head, call, &rnfs_xdr::ArgsError::GarbageArgs(e)),
    }
}

/// Runs a typed handler that writes its own reply (READ, whose data is the reply's tail).
#[inline]
pub fn typed_into<A: XdrDecode>(
    svc: &Service,
    call: &Call,
    reply: &mut Reply,
    f: fn(&Service, &Call, A, &mut Reply) -> Result<Outcome, AuthStat>,
) -> Outcome {
    match rnfs_xdr::from_bytes(call.args.clone()) {
        Ok(args) => match f(svc, call, args, reply) {
            Ok(outcome) => outcome,
            Err(stat) => reply_header(
                &mut reply.head,
                call.header.xid,
                ReplyHeader::AuthError(stat),
            ),
        },
        Err(e) => refuse_args(&mut reply.head, call, &rnfs_xdr::ArgsError::GarbageArgs(e)),
    }
}

/// A [`Handler`] from a typed handler: `handler!(f)` for `fn(&Service, &Call, A) ->
/// Result<R, AuthStat>`, `handler!(into f)` for one that writes its own reply. Each use is its own
/// small function, so the row holds a plain fn pointer and the decode is monomorphic.
macro_rules! handler {
    ($f:expr) => {{
        fn handler(
            svc: &crate::service::Service,
            call: &crate::call::Call,
            reply: &mut crate::call::Reply,
        ) -> crate::call::Outcome {
            crate::program::typed(svc, call, reply, $f)
        }
        handler as crate::program::Handler
    }};
    (into $f:expr) => {{
        fn handler(
            svc: &crate::service::Service,
            call: &crate::call::Call,
            reply: &mut crate::call::Reply,
        ) -> crate::call::Outcome {
            crate::program::typed_into(svc, call, reply, $f)
        }
        handler as crate::program::Handler
    }};
}
pub(crate) use handler;

/// A row for a procedure number the program leaves unused or does not serve (NLM's 16-19): the
/// call gets PROC_UNAVAIL, as a number past the table's end does.
pub const fn unavailable(num: u32, name: &'static str) -> Procedure {
    Procedure::new(num, name, proc_unavail)
}

fn proc_unavail(_: &Service, call: &Call, reply: &mut Reply) -> Outcome {
    reply_header(&mut reply.head, call.header.xid, ReplyHeader::ProcUnavail)
}

/// A NULL procedure (number 0 of every program): no arguments, no results.
pub fn null(_: &Service, _: &Call, (): ()) -> Result<(), AuthStat> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats;

    /// Every program's procedure numbers, from its protocol crate: NFSv3 by the names
    /// `rnfs_nfs3` knows, MOUNT and portmap by their constants.
    fn protocol_procedures(prog: u32, vers: u32) -> Vec<(u32, &'static str)> {
        match prog {
            rnfs_nfs3::NFS_PROGRAM if vers == rnfs_nfs4::NFS_V4 => vec![
                (rnfs_nfs4::NFSPROC4_NULL, "NULL"),
                (rnfs_nfs4::NFSPROC4_COMPOUND, "COMPOUND"),
            ],
            rnfs_nfs3::NFS_PROGRAM => {
                let v: Vec<_> = (0..64)
                    .filter_map(|n| Some((n, rnfs_nfs3::procedure_name(n)?)))
                    .collect();
                assert_eq!(v.len(), 22, "NFSv3 has procedures 0..=21");
                v
            }
            rnfs_mount::MOUNT_PROG => {
                use rnfs_mount::*;
                vec![
                    (MOUNTPROC3_NULL, "NULL"),
                    (MOUNTPROC3_MNT, "MNT"),
                    (MOUNTPROC3_DUMP, "DUMP"),
                    (MOUNTPROC3_UMNT, "UMNT"),
                    (MOUNTPROC3_UMNTALL, "UMNTALL"),
                    (MOUNTPROC3_EXPORT, "EXPORT"),
                ]
            }
            rnfs_portmap::PMAP_PROG => {
                use rnfs_portmap::*;
                vec![
                    (PMAPPROC_NULL, "NULL"),
                    (PMAPPROC_SET, "SET"),
                    (PMAPPROC_UNSET, "UNSET"),
                    (PMAPPROC_GETPORT, "GETPORT"),
                    (PMAPPROC_DUMP, "DUMP"),
                    (PMAPPROC_CALLIT, "CALLIT"),
                ]
            }
            rnfs_nlm::NLM_PROG => {
                use rnfs_nlm::*;
                let mut v = vec![
                    (NLMPROC4_NULL, "NULL"),
                    (NLMPROC4_TEST, "TEST"),
                    (NLMPROC4_LOCK, "LOCK"),
                    (NLMPROC4_CANCEL, "CANCEL"),
                    (NLMPROC4_UNLOCK, "UNLOCK"),
                    (NLMPROC4_GRANTED, "GRANTED"),
                    (NLMPROC4_TEST_MSG, "TEST_MSG"),
                    (NLMPROC4_LOCK_MSG, "LOCK_MSG"),
                    (NLMPROC4_CANCEL_MSG, "CANCEL_MSG"),
                    (NLMPROC4_UNLOCK_MSG, "UNLOCK_MSG"),
                    (NLMPROC4_GRANTED_MSG, "GRANTED_MSG"),
                    (NLMPROC4_TEST_RES, "TEST_RES"),
                    (NLMPROC4_LOCK_RES, "LOCK_RES"),
                    (NLMPROC4_CANCEL_RES, "CANCEL_RES"),
                    (NLMPROC4_UNLOCK_RES, "UNLOCK_RES"),
                    (NLMPROC4_GRANTED_RES, "GRANTED_RES"),
                ];
                // 16 is the host status monitor's callback (as Linux's lockd has it); 17-19 are
                // not NLM procedures: their rows refuse them.
                v.push((NLMPROC_NSM_NOTIFY, "NSM_NOTIFY"));
                v.extend((17..20).map(|n| (n, "-")));
                v.extend([
                    (NLMPROC4_SHARE, "SHARE"),
                    (NLMPROC4_UNSHARE, "UNSHARE"),
                    (NLMPROC4_NM_LOCK, "NM_LOCK"),
                    (NLMPROC4_FREE_ALL, "FREE_ALL"),
                ]);
                v
            }
            rnfs_nlm::nsm::SM_PROG => {
                use rnfs_nlm::nsm::*;
                vec![
                    (SM_NULL, "NULL"),
                    (SM_STAT, "STAT"),
                    (SM_MON, "MON"),
                    (SM_UNMON, "UNMON"),
                    (SM_UNMON_ALL, "UNMON_ALL"),
                    (SM_SIMU_CRASH, "SIMU_CRASH"),
                    (SM_NOTIFY, "NOTIFY"),
                ]
            }
            p => panic!("program {p} has no protocol crate here"),
        }
    }

    #[test]
    fn tables_cover_every_procedure_in_order() {
        let progs: Vec<u32> = PROGRAMS.iter().map(|p| p.prog).collect();
        assert_eq!(
            progs,
            [
                rnfs_nfs3::NFS_PROGRAM,
                rnfs_nfs4::NFS4_PROGRAM,
                rnfs_mount::MOUNT_PROG,
                rnfs_portmap::PMAP_PROG,
                rnfs_nlm::NLM_PROG,
                rnfs_nlm::nsm::SM_PROG,
            ]
        );
        for p in PROGRAMS {
            let rows: Vec<(u32, &str)> = p.procedures.iter().map(|r| (r.num, r.name)).collect();
            assert_eq!(rows, protocol_procedures(p.prog, p.low), "{}", p.name);
            for (i, row) in p.procedures.iter().enumerate() {
                assert_eq!(
                    row.num as usize, i,
                    "{} {}: number is its index",
                    p.name, row.name
                );
                assert!(
                    !row.cached || row.modifies,
                    "{} {}: cached but modifies nothing",
                    p.name,
                    row.name
                );
            }
            assert!(p.procedure(p.procedures.len() as u32).is_none());
        }
    }

    #[test]
    fn cache_covers_exactly_the_non_idempotent_nfs_procedures() {
        use rnfs_nfs3::*;
        // What the cache has covered since it was written (drc.rs): the NFSv3 procedures that
        // change state, COMMIT included.
        let expected = [
            NFSPROC3_SETATTR,
            NFSPROC3_WRITE,
            NFSPROC3_CREATE,
            NFSPROC3_MKDIR,
            NFSPROC3_SYMLINK,
            NFSPROC3_MKNOD,
            NFSPROC3_REMOVE,
            NFSPROC3_RMDIR,
            NFSPROC3_RENAME,
            NFSPROC3_LINK,
            NFSPROC3_COMMIT,
        ];
        for p in PROGRAMS {
            for vers in 0..=p.high + 1 {
                for n in 0..=p.procedures.len() as u32 + 1 {
                    let flagged = p.serves(vers) && p.procedure(n).is_some_and(|r| r.cached);
                    if p.serves(vers) {
                        assert_eq!(cached(p.prog, vers, n), flagged, "{} v{vers} {n}", p.name);
                    }
                    let want = p.prog == NFS_PROGRAM
                        && p.serves(NFS_V3)
                        && vers == NFS_V3
                        && expected.contains(&n);
                    assert_eq!(flagged, want, "{} v{vers} {n}", p.name);
                }
            }
        }
        // In NFS, "modifies" and "cached" are the same set; elsewhere nothing is cached.
        for row in crate::nfs::NFS3.procedures {
            assert_eq!(row.modifies, row.cached, "NFS {}", row.name);
            assert_eq!(row.status, row.num != NFSPROC3_NULL, "NFS {}", row.name);
        }
    }

    #[test]
    fn only_nfs_calls_that_create_nothing_and_wait_for_no_disk_run_in_place() {
        use rnfs_nfs3::*;
        for p in PROGRAMS {
            for row in p.procedures {
                let want = match (p.prog, row.num) {
                    (NFS_PROGRAM, 0) => InPlaceRule::Always,
                    (NFS_PROGRAM, NFSPROC3_CREATE..=NFSPROC3_MKNOD) if p.low == 3 => {
                        InPlaceRule::Never
                    }
                    (NFS_PROGRAM, NFSPROC3_COMMIT) if p.low == 3 => InPlaceRule::Never,
                    (NFS_PROGRAM, NFSPROC3_WRITE) if p.low == 3 => InPlaceRule::IfUnstable,
                    (NFS_PROGRAM, _) if p.low == 3 => InPlaceRule::Always,
                    (NFS_PROGRAM, _) => InPlaceRule::IfEveryOperationMay,
                    _ => InPlaceRule::Never,
                };
                assert_eq!(row.in_place, want, "{} {}", p.name, row.name);
            }
        }
    }

    #[test]
    fn stats_slots_are_distinct_and_dense() {
        let mut seen = Vec::new();
        for p in PROGRAMS {
            for row in p.procedures {
                let i = stats::proc_index(p.prog, p.low, row.num);
                assert_eq!(stats::program_name(i), p.name);
                assert_eq!(stats::procedure_name(i), row.name);
                seen.push(i);
            }
        }
        let n = procedures_total();
        assert_eq!(
            seen,
            (0..n).collect::<Vec<_>>(),
            "slots in table order, no gaps"
        );
        assert_eq!(stats::PROCEDURES, n + 1, "plus one for everything else");
        assert_eq!(stats::procedure_name(n), "OTHER");
        assert_eq!(stats::program_name(n), "OTHER");
        // Anything else lands in the last slot.
        assert_eq!(stats::proc_index(rnfs_nfs3::NFS_PROGRAM, 3, 22), n);
        assert_eq!(stats::proc_index(rnfs_nfs3::NFS_PROGRAM, 5, 1), n);
        // NFSv4's COMPOUND has its own slot, not NFSv3's GETATTR.
        let compound = stats::proc_index(rnfs_nfs3::NFS_PROGRAM, 4, 1);
        assert_eq!(stats::procedure_name(compound), "COMPOUND");
        assert_eq!(stats::proc_index(1, 1, 0), n);
        // MOUNT and portmap count other versions as before.
        let mount_null = stats::proc_index(rnfs_mount::MOUNT_PROG, 3, 0);
        assert_eq!(stats::proc_index(rnfs_mount::MOUNT_PROG, 4, 0), mount_null);
    }

    /// Encodes a call with AUTH_NONE and serves it; returns the reply header and results.
    fn serve(
        svc: &Service,
        prog: u32,
        vers: u32,
        proc_num: u32,
        args: &[u8],
    ) -> (ReplyHeader, bytes::Bytes) {
        let mut msg = bytes::BytesMut::new();
        rnfs_oncrpc::encode_call(
            &mut msg,
            7,
            prog,
            vers,
            proc_num,
            &rnfs_oncrpc::OpaqueAuth::none(),
        );
        msg.extend_from_slice(args);
        let origin = crate::call::Origin {
            peer: "127.0.0.1:700".parse().expect("literal address"),
            transport: crate::call::Transport::Tcp,
            conn_id: 1,
        };
        let mut reply = Reply::new();
        let outcome = svc.handle_record(msg.freeze(), origin, 0, &mut reply);
        assert_eq!(outcome, Outcome::Reply);
        let msg = bytes::Bytes::copy_from_slice(&reply.head[Reply::MARKER_BYTES..]);
        let (xid, header, results) = rnfs_oncrpc::decode_reply(msg).expect("a reply");
        assert_eq!(xid, 7);
        (header, results)
    }

    #[test]
    fn unknown_procedures_versions_and_programs_are_refused() {
        let svc = Service::new(
            crate::exports::ExportTable::from_exports(Vec::new()),
            crate::config::Limits::default(),
            [0; 8],
        );
        for p in PROGRAMS {
            let past = p.procedures.len() as u32;
            for n in [past, past + 1, 99, u32::MAX] {
                let (h, _) = serve(&svc, p.prog, p.low, n, &[]);
                assert_eq!(h, ReplyHeader::ProcUnavail, "{} proc {n}", p.name);
            }
            // Past the highest version of any table of the program: the whole range.
            let (low, high) = versions(p.prog, Transport::Tcp);
            let (h, _) = serve(&svc, p.prog, high + 1, 0, &[]);
            assert_eq!(h, ReplyHeader::ProgMismatch { low, high }, "{}", p.name);
            // NULL answers, and refuses arguments it does not take.
            let (h, results) = serve(&svc, p.prog, p.high, 0, &[]);
            assert_eq!((h, results.len()), (ReplyHeader::Success, 0), "{}", p.name);
            let (h, _) = serve(&svc, p.prog, p.high, 0, &[0; 4]);
            assert_eq!(h, ReplyHeader::GarbageArgs, "{}", p.name);
        }
        let (h, _) = serve(&svc, 1, 1, 0, &[]);
        assert_eq!(h, ReplyHeader::ProgUnavail);
    }
}
