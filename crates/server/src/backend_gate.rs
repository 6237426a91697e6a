//! The per-export gate on backend calls: how many requests may be busy in one export's backend at
//! once (`export_fs_workers_max`), and which backend call each of them is in.
//!
//! # Why
//! Backend calls block their worker (see `rnfs_storage`). When a backend stops answering — a Ceph
//! MDS or OSD that hangs, a dead disk — every request for its export holds a worker until it
//! answers, and with enough of them the bounded pool (`fs_workers_max`) would have no worker left
//! for the other exports. The gate keeps a share of the workers for them: at most
//! `export_fs_workers_max` requests are busy in one export's backend. A request finding them all
//! busy waits for one to finish while the backend is moving (one of its requests' calls finished
//! within [`WAIT_MS`]), for at most [`WAIT_MS`], so a busy but healthy export only queues; it is
//! answered [`Error::Delay`] (NFS3ERR_JUKEBOX, NFS4ERR_DELAY: "try again later") when the backend
//! is stuck (nothing finished for [`WAIT_MS`]) or the wait ran out. A stuck backend thus holds at
//! most its share of the workers, plus, briefly, those of requests waiting to be refused.
//!
//! # How
//! * Each export's backend is wrapped in a [`Gated`] with a fixed array of slots, one per request
//!   that may be busy in it. A request takes a slot at its first call to that backend and keeps it
//!   until it ends ([`request_scope`]), so a request is refused only before its first call there:
//!   never half-way through a change. Taking and giving back a slot is an atomic store; nothing
//!   here locks. The one wait (for a slot, above) holds no lock, is bounded by [`WAIT_MS`], and
//!   shows as the export's `backend_waiting` in `rnfsd ctl status`.
//! * Every slot records the call running in it (its name, since when, and the request's connection
//!   and xid), so `rnfsd ctl requests` and the watchdog's stall reports say which backend call a
//!   request waits in.
//! * Calls outside a request (housekeeping, shutdown, asynchronous copies on their own threads) are
//!   never refused — they hold no request worker — and are shown in a few extra slots while any is
//!   free.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use rnfs_storage::*;

use crate::clock::now_ms;
use crate::lockdep::TrackedMutex;

/// Slots for calls made outside a request, per export.
const BACKGROUND_SLOTS: usize = 4;
/// How long a request waits for a busy export's slot, and how long without any of its requests'
/// calls finishing makes an export stuck (then requests are refused without waiting).
pub const WAIT_MS: u64 = 1000;
/// How often a waiting request looks for a free slot.
const WAIT_POLL_MS: u64 = 1;
/// Exports' slots one request may hold at once (a request naming more exports than this takes the
/// others' slots per call).
const HELD_MAX: usize = 4;

/// The backend calls, by the number a slot stores (0 = free).
const OPS: &[&str] = &[
    "",
    "getattr",
    "lookup",
    "access",
    "readlink",
    "read",
    "readdir",
    "fsstat",
    "pathconf",
    "setattr",
    "write",
    "commit",
    "create",
    "mkdir",
    "symlink",
    "mknod",
    "remove",
    "rmdir",
    "rename",
    "link",
    "seek",
    "allocate",
    "deallocate",
    "copy_range",
    "clone_range",
    "getxattr",
    "setxattr",
    "listxattrs",
    "removexattr",
    "close_idle_files",
    "close_all_files",
    "open_lock_file",
    "lease",
    "unlease",
    "leases_broken",
];

fn op_number(name: &str) -> u8 {
    OPS.iter()
        .position(|o| *o == name)
        .and_then(|i| u8::try_from(i).ok())
        // Never 0 (that would leave the slot free): a name missing from OPS shows as no call.
        .unwrap_or(BETWEEN_CALLS)
}

/// A slot of [`Table`]: free when `op` is 0.
#[derive(Default)]
struct Slot {
    /// Taken (by a request) while nonzero; the running call's number, or `u8::MAX` between calls.
    op: AtomicU8,
    call_started_ms: AtomicU64,
    conn_id: AtomicU64,
    xid: AtomicU32,
}

/// Between two calls of a request that holds its slot.
const BETWEEN_CALLS: u8 = u8::MAX;

/// One export's slots and counters.
struct Table {
    export_id: u32,
    describe: String,
    /// The first `busy_max` are for requests, the rest for calls outside a request.
    slots: Box<[Slot]>,
    busy_max: usize,
    /// Requests answered [`Error::Delay`] because every request slot was taken.
    refused_total: AtomicU64,
    /// Calls outside a request that found no free slot to show in (they ran anyway).
    unshown_total: AtomicU64,
    /// When a call of a request last finished (the backend is moving).
    last_done_ms: AtomicU64,
    /// Requests waiting for a slot now.
    waiting: AtomicU64,
    /// A call answered [`Error::Fenced`]: the backend's client was evicted by its cluster.
    fenced: AtomicBool,
}

impl Table {
    /// Takes a free slot in `range` for `op`; `None` if all are taken.
    fn claim(
        &self,
        range: std::ops::Range<usize>,
        op: u8,
        req: Option<(u64, u32)>,
    ) -> Option<usize> {
        for i in range {
            let s = &self.slots[i];
            if s.op
                .compare_exchange(0, op, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                let (conn, xid) = req.unwrap_or((0, 0));
                s.conn_id.store(conn, Ordering::Relaxed);
                s.xid.store(xid, Ordering::Relaxed);
                s.call_started_ms.store(now_ms(), Ordering::Relaxed);
                return Some(i);
            }
        }
        None
    }
}

impl Table {
    /// A request slot for `op` of request `req`: at once if one is free; else, while the
    /// backend is moving, the first to come free within [`WAIT_MS`]. `None` when the backend is
    /// stuck or the wait ran out.
    fn claim_waiting(&self, op: u8, req: (u64, u32)) -> Option<usize> {
        if let Some(i) = self.claim(0..self.busy_max, op, Some(req)) {
            return Some(i);
        }
        struct Waiting<'a>(&'a AtomicU64);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&self.waiting);
        let started = now_ms();
        loop {
            let now = now_ms();
            let idle_ms = now.saturating_sub(self.last_done_ms.load(Ordering::Relaxed));
            if idle_ms >= WAIT_MS || now.saturating_sub(started) >= WAIT_MS {
                return None;
            }
            // No lock is held, and the wait is bounded (see the module docs).
            std::thread::sleep(std::time::Duration::from_millis(WAIT_POLL_MS));
            if let Some(i) = self.claim(0..self.busy_max, op, Some(req)) {
                return Some(i);
            }
        }
    }

    /// A call of a request ended: the backend is moving.
    fn done(&self) {
        self.last_done_ms.store(now_ms(), Ordering::Relaxed);
    }
}

/// Every gate alive, for the watchdog and the admin interface (a leaf lock, taken when an export
/// is opened and when someone reads the list).
static GATES: std::sync::LazyLock<TrackedMutex<Vec<Weak<Table>>>> =
    std::sync::LazyLock::new(|| TrackedMutex::new("backend_gate.gates", Vec::new()));

/// A backend call in flight, as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendCall {
    pub export_id: u32,
    /// The backend's [`Backend::describe`] (e.g. `ceph:cephfs:/nfs`).
    pub backend: String,
    /// The backend method (`create`, `lookup`, `read`, ...).
    pub call: &'static str,
    pub started_ms: u64,
    /// The request's connection and xid; `None` for a call outside a request.
    pub request: Option<(u64, u32)>,
}

/// One export's gate, as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateInfo {
    pub export_id: u32,
    pub busy: usize,
    pub busy_max: usize,
    pub waiting: u64,
    pub refused_total: u64,
    pub fenced: bool,
}

fn live_tables() -> Vec<Arc<Table>> {
    let mut gates = GATES.lock();
    gates.retain(|w| w.strong_count() > 0);
    gates.iter().filter_map(Weak::upgrade).collect()
}

/// Every backend call in flight, oldest first.
pub fn calls() -> Vec<BackendCall> {
    let mut out = Vec::new();
    for t in live_tables() {
        for (i, s) in t.slots.iter().enumerate() {
            let op = s.op.load(Ordering::Acquire);
            let Some(name) = OPS.get(usize::from(op)).filter(|_| op != 0) else {
                continue;
            };
            let conn = s.conn_id.load(Ordering::Relaxed);
            out.push(BackendCall {
                export_id: t.export_id,
                backend: t.describe.clone(),
                call: name,
                started_ms: s.call_started_ms.load(Ordering::Relaxed),
                request: (i < t.busy_max && conn != 0)
                    .then(|| (conn, s.xid.load(Ordering::Relaxed))),
            });
        }
    }
    out.sort_by_key(|c| c.started_ms);
    out
}

/// Every export's gate.
pub fn gates() -> Vec<GateInfo> {
    live_tables()
        .iter()
        .map(|t| GateInfo {
            export_id: t.export_id,
            busy: t.slots[..t.busy_max]
                .iter()
                .filter(|s| s.op.load(Ordering::Relaxed) != 0)
                .count(),
            busy_max: t.busy_max,
            waiting: t.waiting.load(Ordering::Relaxed),
            refused_total: t.refused_total.load(Ordering::Relaxed),
            fenced: t.fenced.load(Ordering::Relaxed),
        })
        .collect()
}

/// The request a worker thread is serving, and the slots it holds.
struct Scope {
    request: (u64, u32),
    held: [Option<(Arc<Table>, usize)>; HELD_MAX],
}

thread_local! {
    static SCOPE: std::cell::RefCell<Option<Scope>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` (one request's handling, on a worker) as the request `conn_id`/`xid`: backend calls
/// inside take their export's slot for the rest of the request, and give it back when `f` returns
/// (or panics).
pub fn request_scope<R>(conn_id: u64, xid: u32, f: impl FnOnce() -> R) -> R {
    struct Release;
    impl Drop for Release {
        fn drop(&mut self) {
            let scope = SCOPE.with(|s| s.borrow_mut().take());
            if let Some(scope) = scope {
                for (t, i) in scope.held.into_iter().flatten() {
                    t.slots[i].op.store(0, Ordering::Release);
                }
            }
        }
    }
    SCOPE.with(|s| {
        *s.borrow_mut() = Some(Scope {
            request: (conn_id, xid),
            held: Default::default(),
        })
    });
    let _release = Release;
    f()
}

/// A backend behind its export's gate. Every method is forwarded unchanged; only the slot
/// bookkeeping (and the refusal when the export's request slots are all taken) is added.
pub struct Gated {
    inner: Arc<dyn Backend>,
    table: Arc<Table>,
}

impl Gated {
    /// Wraps `inner`, the backend of export `export_id`, letting at most `busy_max` requests be
    /// busy in it at once.
    pub fn new(inner: Arc<dyn Backend>, export_id: u32, busy_max: usize) -> Gated {
        let busy_max = busy_max.max(1);
        let table = Arc::new(Table {
            export_id,
            describe: inner.describe(),
            slots: (0..busy_max + BACKGROUND_SLOTS)
                .map(|_| Slot::default())
                .collect(),
            busy_max,
            refused_total: AtomicU64::new(0),
            unshown_total: AtomicU64::new(0),
            last_done_ms: AtomicU64::new(now_ms()),
            waiting: AtomicU64::new(0),
            fenced: AtomicBool::new(false),
        });
        GATES.lock().push(Arc::downgrade(&table));
        Gated { inner, table }
    }

    /// Runs `f` as backend call `name`, in the request's slot (taken now if needed: `Delay` when
    /// none is free) or, outside a request, in a background slot if one is free.
    fn call<T>(&self, name: &'static str, f: impl FnOnce(&dyn Backend) -> Result<T>) -> Result<T> {
        match self.enter(name, true) {
            Entered::Refused => Err(Error::Delay),
            entered => {
                let _leave = Leave(&self.table, entered);
                let result = f(self.inner.as_ref());
                if matches!(result, Err(Error::Fenced)) {
                    self.note_fenced(name);
                }
                result
            }
        }
    }

    /// Records that call `name` found the backend's client evicted by its cluster; the server
    /// stops when it sees it (see `crate::watch_fenced`).
    #[cold]
    fn note_fenced(&self, name: &'static str) {
        if !self.table.fenced.swap(true, Ordering::Relaxed) {
            tracing::error!(
                export = self.table.export_id,
                backend = %self.table.describe,
                call = name,
                "the backend's client was evicted (fenced) by its cluster: nothing it held is \
                 valid any more; the server stops so that a restart recovers"
            );
        }
    }

    /// [`Gated::call`] for a method that cannot fail (its callers have no error to give): it
    /// never waits for a slot and always runs, shown in a slot if one is free.
    fn call_infallible<T>(&self, name: &'static str, f: impl FnOnce(&dyn Backend) -> T) -> T {
        let entered = self.enter(name, false);
        let _leave = Leave(&self.table, entered);
        f(self.inner.as_ref())
    }

    /// Takes (or reuses) the slot `name` runs in. `refusable`: a request may wait for a slot
    /// and be refused; else the call never waits and runs even without one.
    fn enter(&self, name: &'static str, refusable: bool) -> Entered {
        let op = op_number(name);
        let t = &self.table;
        let in_scope = SCOPE.with(|s| {
            let mut s = s.borrow_mut();
            let scope = s.as_mut()?;
            // Already holding this export's slot: just say which call it is in now.
            if let Some((_, i)) = scope.held.iter().flatten().find(|(h, _)| Arc::ptr_eq(h, t)) {
                let slot = &t.slots[*i];
                slot.call_started_ms.store(now_ms(), Ordering::Relaxed);
                slot.op.store(op, Ordering::Release);
                return Some(Entered::Held(*i));
            }
            let claimed = if refusable {
                t.claim_waiting(op, scope.request)
            } else {
                t.claim(0..t.busy_max, op, Some(scope.request))
            };
            let Some(i) = claimed else {
                if !refusable {
                    t.unshown_total.fetch_add(1, Ordering::Relaxed);
                    return Some(Entered::Unshown);
                }
                t.refused_total.fetch_add(1, Ordering::Relaxed);
                return Some(Entered::Refused);
            };
            match scope.held.iter_mut().find(|h| h.is_none()) {
                Some(free) => {
                    *free = Some((t.clone(), i));
                    Some(Entered::Held(i))
                }
                // Too many exports in one request: this slot is for this call only.
                None => Some(Entered::Once(i)),
            }
        });
        match in_scope {
            Some(e) => e,
            None => match t.claim(t.busy_max..t.slots.len(), op, None) {
                Some(i) => Entered::Once(i),
                None => {
                    t.unshown_total.fetch_add(1, Ordering::Relaxed);
                    Entered::Unshown
                }
            },
        }
    }
}

enum Entered {
    /// The request's slot, kept until the request ends.
    Held(usize),
    /// A slot for this call only.
    Once(usize),
    /// Ran without a slot (a call outside a request, all background slots taken).
    Unshown,
    /// Every request slot taken.
    Refused,
}

/// Marks the end of a call: the request's slot goes back to "between calls", a per-call slot is
/// freed.
struct Leave<'a>(&'a Table, Entered);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        match self.1 {
            Entered::Held(i) => {
                self.0.done();
                self.0.slots[i].op.store(BETWEEN_CALLS, Ordering::Release);
            }
            Entered::Once(i) => {
                if i < self.0.busy_max {
                    self.0.done();
                }
                self.0.slots[i].op.store(0, Ordering::Release);
            }
            Entered::Unshown | Entered::Refused => {}
        }
    }
}

impl Backend for Gated {
    fn root(&self) -> FileHandle {
        self.inner.root()
    }

    fn handle_key(&self) -> &handle::ExportKey {
        self.inner.handle_key()
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn source_identity(&self) -> String {
        self.inner.source_identity()
    }

    fn lock_files_may_wait(&self) -> bool {
        self.inner.lock_files_may_wait()
    }

    fn local_root(&self) -> Option<Vec<u8>> {
        self.inner.local_root()
    }

    fn answers_promptly(&self) -> bool {
        self.inner.answers_promptly()
    }

    fn fenced(&self) -> bool {
        self.table.fenced.load(Ordering::Relaxed)
    }

    fn getattr(&self, who: &Identity, fh: &VerifiedHandle) -> Result<Attr> {
        self.call("getattr", |b| b.getattr(who, fh))
    }

    fn lookup(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
    ) -> Result<(FileHandle, Attr)> {
        self.call("lookup", |b| b.lookup(who, dir, name))
    }

    fn lookup_with_dir(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
    ) -> (Result<(FileHandle, Attr)>, Option<Attr>) {
        let mut dir_attr = None;
        let found = self.call("lookup", |b| {
            let (found, attr) = b.lookup_with_dir(who, dir, name);
            dir_attr = attr;
            found
        });
        (found, dir_attr)
    }

    fn access(&self, who: &Identity, fh: &VerifiedHandle, requested: u32) -> Result<(u32, Attr)> {
        self.call("access", |b| b.access(who, fh, requested))
    }

    fn readlink(&self, who: &Identity, fh: &VerifiedHandle) -> Result<(Bytes, Attr)> {
        self.call("readlink", |b| b.readlink(who, fh))
    }

    fn read(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        offset: u64,
        count: u32,
    ) -> Result<ReadData> {
        self.call("read", |b| b.read(who, fh, offset, count))
    }

    fn read_spliced(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        offset: u64,
        count: u32,
        pipe: &rnfs_sys::pipe::Pipe,
    ) -> Result<Option<SplicedRead>> {
        self.call("read", |b| b.read_spliced(who, fh, offset, count, pipe))
    }

    fn readdir(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        cookie: u64,
        verifier: [u8; 8],
        plus: bool,
        sink: &mut dyn FnMut(DirEntry) -> bool,
    ) -> Result<DirListing> {
        self.call("readdir", |b| {
            b.readdir(who, dir, cookie, verifier, plus, sink)
        })
    }

    fn fsstat(&self, who: &Identity, fh: &VerifiedHandle) -> Result<(FsStat, Attr)> {
        self.call("fsstat", |b| b.fsstat(who, fh))
    }

    fn pathconf(&self, who: &Identity, fh: &VerifiedHandle) -> Result<(PathConf, Attr)> {
        self.call("pathconf", |b| b.pathconf(who, fh))
    }

    fn setattr(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        attrs: &SetAttrs,
        guard: Option<Timestamp>,
    ) -> Result<Wcc> {
        self.call("setattr", |b| b.setattr(who, fh, attrs, guard))
    }

    fn write(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        offset: u64,
        data: &[u8],
        stable: Stability,
    ) -> Result<Written> {
        self.call("write", |b| b.write(who, fh, offset, data, stable))
    }

    fn commit(&self, who: &Identity, fh: &VerifiedHandle, offset: u64, count: u32) -> Result<Wcc> {
        self.call("commit", |b| b.commit(who, fh, offset, count))
    }

    fn create(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
        how: &CreateMode,
    ) -> Result<Created> {
        self.call("create", |b| b.create(who, dir, name, how))
    }

    fn mkdir(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
        attrs: &SetAttrs,
    ) -> Result<Created> {
        self.call("mkdir", |b| b.mkdir(who, dir, name, attrs))
    }

    fn symlink(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
        target: &[u8],
        attrs: &SetAttrs,
    ) -> Result<Created> {
        self.call("symlink", |b| b.symlink(who, dir, name, target, attrs))
    }

    fn mknod(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
        kind: NodeKind,
        attrs: &SetAttrs,
    ) -> Result<Created> {
        self.call("mknod", |b| b.mknod(who, dir, name, kind, attrs))
    }

    fn remove(&self, who: &Identity, dir: &VerifiedHandle, name: &[u8]) -> Result<Wcc> {
        self.call("remove", |b| b.remove(who, dir, name))
    }

    fn rmdir(&self, who: &Identity, dir: &VerifiedHandle, name: &[u8]) -> Result<Wcc> {
        self.call("rmdir", |b| b.rmdir(who, dir, name))
    }

    fn rename(
        &self,
        who: &Identity,
        from_dir: &VerifiedHandle,
        from_name: &[u8],
        to_dir: &VerifiedHandle,
        to_name: &[u8],
    ) -> Result<(Wcc, Wcc)> {
        self.call("rename", |b| {
            b.rename(who, from_dir, from_name, to_dir, to_name)
        })
    }

    fn link(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        dir: &VerifiedHandle,
        name: &[u8],
    ) -> Result<(Option<Attr>, Wcc)> {
        self.call("link", |b| b.link(who, fh, dir, name))
    }

    fn seek(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        what: SeekWhat,
        offset: u64,
    ) -> Result<Sought> {
        self.call("seek", |b| b.seek(who, fh, what, offset))
    }

    fn allocate(&self, who: &Identity, fh: &VerifiedHandle, offset: u64, len: u64) -> Result<Wcc> {
        self.call("allocate", |b| b.allocate(who, fh, offset, len))
    }

    fn deallocate(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        offset: u64,
        len: u64,
    ) -> Result<Wcc> {
        self.call("deallocate", |b| b.deallocate(who, fh, offset, len))
    }

    fn copy_range(
        &self,
        who: &Identity,
        src: &VerifiedHandle,
        dst: &VerifiedHandle,
        offsets: (u64, u64),
        len: u64,
    ) -> Result<u64> {
        self.call("copy_range", |b| b.copy_range(who, src, dst, offsets, len))
    }

    fn clone_range(
        &self,
        who: &Identity,
        src: &VerifiedHandle,
        dst: &VerifiedHandle,
        offsets: (u64, u64),
        len: u64,
    ) -> Result<()> {
        self.call("clone_range", |b| {
            b.clone_range(who, src, dst, offsets, len)
        })
    }

    fn xattr_support(&self) -> bool {
        self.inner.xattr_support()
    }

    fn getxattr(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        name: &[u8],
        max_bytes: usize,
    ) -> Result<Bytes> {
        self.call("getxattr", |b| b.getxattr(who, fh, name, max_bytes))
    }

    fn setxattr(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        name: &[u8],
        value: &[u8],
        how: XattrSet,
    ) -> Result<Wcc> {
        self.call("setxattr", |b| b.setxattr(who, fh, name, value, how))
    }

    fn listxattrs(&self, who: &Identity, fh: &VerifiedHandle) -> Result<Vec<Bytes>> {
        self.call("listxattrs", |b| b.listxattrs(who, fh))
    }

    fn removexattr(&self, who: &Identity, fh: &VerifiedHandle, name: &[u8]) -> Result<Wcc> {
        self.call("removexattr", |b| b.removexattr(who, fh, name))
    }

    fn writeback_errors(&self) -> u64 {
        // A counter read: no backend call to gate or show.
        self.inner.writeback_errors()
    }

    fn close_idle_files(&self) {
        self.call_infallible("close_idle_files", |b| b.close_idle_files())
    }

    fn close_all_files(&self) {
        self.call_infallible("close_all_files", |b| b.close_all_files())
    }

    fn open_lock_file(&self, fh: &VerifiedHandle) -> Result<Option<Box<dyn LockFile>>> {
        self.call("open_lock_file", |b| b.open_lock_file(fh))
    }

    fn lease(&self, fh: &VerifiedHandle, write: bool) -> Result<bool> {
        self.call("lease", |b| b.lease(fh, write))
    }

    fn unlease(&self, key: &[u8]) {
        self.call_infallible("unlease", |b| b.unlease(key))
    }

    fn leases_broken(&self) -> Vec<Bytes> {
        self.call_infallible("leases_broken", |b| b.leases_broken())
    }

    fn lease_break_ms(&self) -> Option<u64> {
        self.inner.lease_break_ms()
    }
}

#[cfg(test)]
mod tests {
    /// Every method of `Backend` is forwarded: one left to its default would silently answer
    /// for the inner backend (a ceph export's lock calls would then pass for calls that never
    /// wait, and be made under the lock manager's mutex).
    #[test]
    fn the_gate_forwards_every_backend_method() {
        let names = |text: &str, from: &str| -> std::collections::BTreeSet<String> {
            let start = text.find(from).expect(from);
            let body = &text[start..];
            let end = body.find("\n}\n").unwrap_or(body.len());
            body[..end]
                .lines()
                .filter_map(|l| l.strip_prefix("    fn "))
                .filter_map(|l| l.split(['(', '<']).next())
                .map(str::to_owned)
                .collect()
        };
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let storage = std::fs::read_to_string(root.join("../storage/src/lib.rs")).unwrap();
        let gate = std::fs::read_to_string(root.join("src/backend_gate.rs")).unwrap();
        let trait_methods = names(&storage, "pub trait Backend");
        let forwarded = names(&gate, "impl Backend for");
        assert!(trait_methods.len() > 30, "{trait_methods:?}");
        let missing: Vec<_> = trait_methods.difference(&forwarded).collect();
        assert!(missing.is_empty(), "not forwarded by the gate: {missing:?}");
    }

    use super::*;
    use rnfs_storage::handle::HandleKey;
    use rnfs_storage::local::LocalFs;

    fn gated(busy_max: usize) -> (tempfile::TempDir, Gated, VerifiedHandle) {
        let dir = tempfile::tempdir().unwrap();
        let key = HandleKey::random().unwrap();
        let fs: Arc<dyn Backend> = Arc::new(LocalFs::new(7, dir.path(), key).unwrap());
        let root = fs.handle_key().verify(7, &fs.root()).unwrap();
        (dir, Gated::new(fs, 7, busy_max), root)
    }

    #[test]
    fn a_request_keeps_its_slot_and_the_next_is_refused_when_none_is_free() {
        let (_dir, g, root) = gated(1);
        let who = Identity::root();
        let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
        let (in_tx, in_rx) = std::sync::mpsc::channel::<()>();
        let g = Arc::new(g);
        let g2 = g.clone();
        let root2 = root.clone();
        let busy = std::thread::spawn(move || {
            request_scope(1, 0x10, || {
                g2.getattr(&Identity::root(), &root2).unwrap();
                in_tx.send(()).unwrap();
                hold_rx.recv().unwrap();
                // The same request's next call uses the slot it holds.
                g2.getattr(&Identity::root(), &root2).unwrap();
            })
        });
        in_rx.recv().unwrap();
        // Between its calls the request holds its slot, in no call.
        assert_eq!(gates().iter().find(|i| i.export_id == 7).unwrap().busy, 1);
        assert!(!calls().iter().any(|c| c.export_id == 7), "{:?}", calls());
        // Another request finds the only slot taken and waits for it, at most WAIT_MS (the
        // backend moved just now), then is refused: Delay, counted.
        let t0 = std::time::Instant::now();
        let refused = request_scope(2, 0x20, || g.getattr(&who, &root));
        assert!(matches!(refused, Err(Error::Delay)), "{refused:?}");
        let waited = t0.elapsed();
        assert!(
            waited >= std::time::Duration::from_millis(WAIT_MS / 2)
                && waited < std::time::Duration::from_millis(3 * WAIT_MS),
            "{waited:?}"
        );
        // Now nothing has finished for WAIT_MS: the export is stuck, refused without a wait.
        let t0 = std::time::Instant::now();
        let refused = request_scope(2, 0x21, || g.getattr(&who, &root));
        assert!(matches!(refused, Err(Error::Delay)), "{refused:?}");
        assert!(
            t0.elapsed() < std::time::Duration::from_millis(WAIT_MS / 2),
            "{:?}",
            t0.elapsed()
        );
        assert_eq!(
            gates()
                .iter()
                .find(|i| i.export_id == 7)
                .unwrap()
                .refused_total,
            2
        );
        // Outside a request, a call is never refused.
        g.getattr(&who, &root).unwrap();
        hold_tx.send(()).unwrap();
        busy.join().unwrap();
        // The slot came back when the request ended.
        request_scope(3, 0x30, || g.getattr(&who, &root)).unwrap();
        // A request waiting while the slot's holder is moving gets it when it is given back.
        let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
        let (in_tx, in_rx) = std::sync::mpsc::channel::<()>();
        let g2 = g.clone();
        let root2 = root.clone();
        let busy = std::thread::spawn(move || {
            request_scope(4, 0x40, || {
                g2.getattr(&Identity::root(), &root2).unwrap();
                in_tx.send(()).unwrap();
                hold_rx.recv().unwrap();
            })
        });
        in_rx.recv().unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(WAIT_MS / 5));
            hold_tx.send(()).unwrap();
        });
        request_scope(5, 0x50, || g.getattr(&who, &root)).unwrap();
        busy.join().unwrap();
        release.join().unwrap();
        assert_eq!(gates().iter().find(|i| i.export_id == 7).unwrap().busy, 0);
    }
}
