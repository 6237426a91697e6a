//! READDIR and READDIRPLUS (RFC 1813 §3.3.16, §3.3.17).
//!
//! The backend streams entries into a sink; the sink takes an entry only if its exact encoded size
//! still fits the client's budget (`count` for READDIR; `maxcount` for the whole READDIRPLUS reply
//! and `dircount` for its names, cookies and file ids). So a reply never exceeds what was asked,
//! `eof` is true only when the last entry of the directory is in this reply, and nothing is read
//! past the last entry sent. A budget too small for even one entry is NFS3ERR_TOOSMALL.
//!
//! Both procedures are served fully: Windows clients list with READDIR, not READDIRPLUS. They share
//! one result assembly ([`assemble`]: fitting, the TOOSMALL rule, verifier and `eof`); what differs
//! (the entry type, its cost, the result type) is [`DirReply`].

use rnfs_nfs3::*;
use rnfs_oncrpc::AuthStat;
use rnfs_storage::DirEntry;

use super::{authorize, fattr, nfs_fh, post_op, status};
use crate::call::Call;
use crate::service::{Authorized, Service};

/// The status word plus the largest fixed part of a READDIR(PLUS) reply.
const REPLY_OVERHEAD_BYTES: usize = 4 + READDIR3RESOK_MAX_OVERHEAD;

pub fn readdir(svc: &Service, call: &Call, a: READDIR3args) -> Result<READDIR3res, AuthStat> {
    let auth = authorize!(svc, call, a.dir, READDIR3res);
    // READDIR has no dircount: only `count` bounds it.
    let budget = Budget::new(svc, call, a.count, usize::MAX);
    Ok(assemble(&auth, a.cookie, a.cookieverf, budget))
}

pub fn readdirplus(
    svc: &Service,
    call: &Call,
    a: READDIRPLUS3args,
) -> Result<READDIRPLUS3res, AuthStat> {
    let auth = authorize!(svc, call, a.dir, READDIRPLUS3res);
    // dircount bounds only names, cookies and file ids; 0 would mean "no room", which no client
    // means: treat it as unbounded (the reply stays within maxcount either way).
    let dircount = if a.dircount == 0 {
        usize::MAX
    } else {
        a.dircount as usize
    };
    let budget = Budget::new(svc, call, a.maxcount, dircount);
    Ok(assemble(&auth, a.cookie, a.cookieverf, budget))
}

/// What is left of the client's limits, in bytes.
struct Budget {
    /// `count` (READDIR) or `maxcount` (READDIRPLUS), capped by the transport, less the fixed part.
    reply: usize,
    /// READDIRPLUS's `dircount`.
    dir: usize,
}

impl Budget {
    fn new(svc: &Service, call: &Call, count: u32, dir: usize) -> Budget {
        let count = count.min(call.transport.payload_bytes_max(svc.limits())) as usize;
        Budget {
            reply: count.saturating_sub(REPLY_OVERHEAD_BYTES),
            dir,
        }
    }

    /// Takes `(reply bytes, dircount bytes)` if both still fit.
    fn take(&mut self, (len, dir_len): (usize, usize)) -> bool {
        if len > self.reply || dir_len > self.dir {
            return false;
        }
        self.reply -= len;
        self.dir -= dir_len;
        true
    }
}

/// What READDIR and READDIRPLUS differ in; everything else is [`assemble`].
trait DirReply: Sized {
    type Entry;
    /// Whether the backend should read each entry's attributes and handle.
    const PLUS: bool;
    /// The reply entry for `e`, or `None` if its name cannot be sent.
    fn entry(e: DirEntry) -> Option<Self::Entry>;
    /// What `e` costs: bytes against `count`/`maxcount`, bytes against `dircount`.
    fn cost(e: &Self::Entry) -> (usize, usize);
    fn ok(attrs: post_op_attr, verf: cookieverf3, entries: Vec<Self::Entry>, eof: bool) -> Self;
    fn fail(status: nfsstat3, dir_attributes: post_op_attr) -> Self;
}

/// Lists the authorized directory from `cookie`, keeping entries while they fit `budget`, and
/// builds the result.
fn assemble<R: DirReply>(
    auth: &Authorized,
    cookie: cookie3,
    verf: cookieverf3,
    mut budget: Budget,
) -> R {
    let mut entries = Vec::new();
    let mut sink = |e: DirEntry| {
        // A name longer than filename3 allows is left out; the listing goes on.
        let Some(entry) = R::entry(e) else {
            return true;
        };
        if !budget.take(R::cost(&entry)) {
            return false;
        }
        entries.push(entry);
        true
    };
    let listing =
        auth.export
            .backend
            .readdir(&auth.who, &auth.handle, cookie, verf, R::PLUS, &mut sink);
    match listing {
        // The TOOSMALL rule: not even one entry fit, and the directory has more.
        Ok(l) if entries.is_empty() && !l.eof => {
            R::fail(nfsstat3::NFS3ERR_TOOSMALL, Some(fattr(&l.dir_attr)))
        }
        Ok(l) => R::ok(Some(fattr(&l.dir_attr)), l.verifier, entries, l.eof),
        Err(e) => R::fail(status(&e), post_op(auth)),
    }
}

impl DirReply for READDIR3res {
    type Entry = entry3;
    const PLUS: bool = false;

    fn entry(e: DirEntry) -> Option<entry3> {
        Some(entry3 {
            fileid: e.fileid,
            name: Opaque::new(e.name)?,
            cookie: e.cookie,
        })
    }
    fn cost(e: &entry3) -> (usize, usize) {
        (e.list_len(), 0)
    }
    fn ok(attrs: post_op_attr, verf: cookieverf3, entries: Vec<entry3>, eof: bool) -> Self {
        READDIR3res::Ok(READDIR3resok {
            dir_attributes: attrs,
            cookieverf: verf,
            reply: dirlist3 {
                entries: List(entries),
                eof,
            },
        })
    }
    fn fail(status: nfsstat3, dir_attributes: post_op_attr) -> Self {
        READDIR3res::Fail(status, READDIR3resfail { dir_attributes })
    }
}

impl DirReply for READDIRPLUS3res {
    type Entry = entryplus3;
    const PLUS: bool = true;

    fn entry(e: DirEntry) -> Option<entryplus3> {
        Some(entryplus3 {
            fileid: e.fileid,
            name: Opaque::new(e.name)?,
            cookie: e.cookie,
            name_attributes: e.attr.as_ref().map(fattr),
            name_handle: e.handle.as_ref().and_then(nfs_fh),
        })
    }
    fn cost(e: &entryplus3) -> (usize, usize) {
        (e.list_len(), e.dircount_len())
    }
    fn ok(attrs: post_op_attr, verf: cookieverf3, entries: Vec<entryplus3>, eof: bool) -> Self {
        READDIRPLUS3res::Ok(READDIRPLUS3resok {
            dir_attributes: attrs,
            cookieverf: verf,
            reply: dirlistplus3 {
                entries: List(entries),
                eof,
            },
        })
    }
    fn fail(status: nfsstat3, dir_attributes: post_op_attr) -> Self {
        READDIRPLUS3res::Fail(status, READDIRPLUS3resfail { dir_attributes })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::embed::Embedded;
    use rnfs_client::{Client, Error};
    use std::sync::Arc;

    #[test]
    fn budget_takes_only_what_fits_both_limits() {
        let mut b = Budget { reply: 10, dir: 5 };
        assert!(!b.take((11, 0)), "over the reply budget");
        assert!(!b.take((1, 6)), "over dircount");
        assert!(b.take((10, 5)));
        assert!(!b.take((1, 0)));
        assert!((b.reply, b.dir) == (0, 0));
    }

    /// An in-process server over a directory holding one file "a" ("." and ".." are listed too).
    fn serve() -> (Embedded, tempfile::TempDir, tempfile::TempDir) {
        let (dir, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::write(dir.path().join("a"), b"x").unwrap();
        let key = rnfs_storage::handle::HandleKey::random().unwrap();
        let fs = rnfs_storage::local::LocalFs::new(5, dir.path(), key).unwrap();
        let limits = crate::config::Limits::default();
        let server = Embedded::start(
            Arc::new(fs),
            5,
            "/export",
            dir.path().to_owned(),
            limits,
            state.path().join("state"),
        )
        .unwrap();
        (server, dir, state)
    }
    fn client(server: &Embedded) -> (Client, nfs_fh3) {
        let mut c = Client::connect_tcp(server.addr()).unwrap();
        let root = c.mount(b"/export").unwrap();
        (c, root)
    }

    #[test]
    fn toosmall_paging_and_eof_are_shared() {
        if !crate::running_as_root() {
            return; // open_by_handle_at needs root
        }
        let (server, _dir, _state) = serve();
        let (mut c, root) = client(&server);
        let none = [0; NFS3_COOKIEVERFSIZE];
        let fixed = REPLY_OVERHEAD_BYTES as u32;
        let toosmall = Err(nfsstat3::NFS3ERR_TOOSMALL);
        let status = |e: Error| match e {
            Error::Nfs(s) => s,
            e => panic!("{e}"),
        };
        // The TOOSMALL rule, for each of READDIR's and READDIRPLUS's limits.
        let r = c.readdir_page(&root, 0, none, fixed).map_err(status);
        assert_eq!(r.map(|_| ()), toosmall);
        let r = c.readdirplus_page(&root, 0, none, 8192, fixed);
        assert_eq!(r.map(|_| ()).map_err(status), toosmall);
        let r = c.readdirplus_page(&root, 0, none, 1, 32768);
        assert_eq!(r.map(|_| ()).map_err(status), toosmall);

        // One entry per READDIR page; eof only with the last one.
        let (mut cookie, mut verf, mut names) = (0, none, Vec::new());
        let one = fixed + entry3_list_len(2) as u32;
        loop {
            let page = c.readdir_page(&root, cookie, verf, one).unwrap();
            assert_eq!(page.reply.entries.len(), 1);
            (cookie, verf) = (page.reply.entries[0].cookie, page.cookieverf);
            names.push(page.reply.entries[0].name.as_bytes().to_vec());
            if page.reply.eof {
                break;
            }
            assert!(names.len() < 3, "eof missing");
        }
        names.sort();
        assert_eq!(names, [&b"."[..], b"..", b"a"]);

        // READDIRPLUS with dircount 0 (unbounded) lists everything, with handles.
        let page = c.readdirplus_page(&root, 0, none, 0, 32768).unwrap();
        assert!(page.reply.eof);
        assert_eq!(page.reply.entries.len(), 3);
        assert!(page.reply.entries.iter().all(|e| e.name_handle.is_some()));
    }
}
