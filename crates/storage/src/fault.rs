//! A backend wrapper that injects faults: errors or delays on chosen calls.
//!
//! Used by tests to check that the right NFS status reaches the client, that the write verifier
//! changes after a write-back error, and that a stalled file-system call is reported by the
//! watchdog while the rest of the server keeps serving. Rules are checked in order; the first that
//! matches the call fires (and counts down, if it has a count). The rule list's lock is held only
//! to pick a rule, never during a delay.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;

use crate::*;

/// The backend calls a rule can match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    Getattr,
    Lookup,
    Access,
    Readlink,
    Read,
    Readdir,
    Fsstat,
    Pathconf,
    Setattr,
    Write,
    Commit,
    Create,
    Mkdir,
    Symlink,
    Mknod,
    Remove,
    Rmdir,
    Rename,
    Link,
}

/// What a rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Fail the call with this error without running it.
    Fail(Error),
    /// Sleep this long, then run the call.
    Delay(Duration),
    /// Run the call, then fail with this error and count a write-back error (as a failed
    /// `fsync` after the data reached the page cache would).
    FailAfter(Error),
}

/// One rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub op: Op,
    pub action: Action,
    /// How many more times it fires; `None` = always.
    pub times: Option<u32>,
}

/// Wraps a backend and applies [`Rule`]s.
pub struct FaultBackend {
    inner: Arc<dyn Backend>,
    rules: Mutex<Vec<Rule>>,
    injected_writeback_errors: AtomicU64,
    fired: AtomicU64,
}

impl FaultBackend {
    pub fn new(inner: Arc<dyn Backend>) -> Self {
        FaultBackend {
            inner,
            rules: Mutex::new(Vec::new()),
            injected_writeback_errors: AtomicU64::new(0),
            fired: AtomicU64::new(0),
        }
    }

    /// Adds a rule (after the existing ones).
    pub fn add_rule(&self, rule: Rule) {
        self.rules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(rule);
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.rules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// How many times a rule fired.
    pub fn fired(&self) -> u64 {
        self.fired.load(Ordering::Relaxed)
    }

    fn pick(&self, op: Op) -> Option<Action> {
        let mut rules = self.rules.lock().unwrap_or_else(PoisonError::into_inner);
        let i = rules
            .iter()
            .position(|r| r.op == op && r.times != Some(0))?;
        if let Some(t) = rules[i].times.as_mut() {
            *t -= 1;
        }
        self.fired.fetch_add(1, Ordering::Relaxed);
        Some(rules[i].action.clone())
    }

    /// Applies the rule for `op` around `call`.
    fn run<T>(&self, op: Op, call: impl FnOnce() -> Result<T>) -> Result<T> {
        match self.pick(op) {
            None => call(),
            Some(Action::Fail(e)) => Err(e),
            Some(Action::Delay(d)) => {
                std::thread::sleep(d);
                call()
            }
            Some(Action::FailAfter(e)) => {
                let _ = call()?;
                self.injected_writeback_errors
                    .fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }
}

impl Backend for FaultBackend {
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
    fn local_root(&self) -> Option<Vec<u8>> {
        self.inner.local_root()
    }
    fn answers_promptly(&self) -> bool {
        self.inner.answers_promptly()
    }
    fn getattr(&self, who: &Identity, fh: &VerifiedHandle) -> Result<Attr> {
        self.run(Op::Getattr, || self.inner.getattr(who, fh))
    }
    fn lookup(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
    ) -> Result<(FileHandle, Attr)> {
        self.run(Op::Lookup, || self.inner.lookup(who, dir, name))
    }
    fn access(&self, who: &Identity, fh: &VerifiedHandle, requested: u32) -> Result<(u32, Attr)> {
        self.run(Op::Access, || self.inner.access(who, fh, requested))
    }
    fn readlink(&self, who: &Identity, fh: &VerifiedHandle) -> Result<(Bytes, Attr)> {
        self.run(Op::Readlink, || self.inner.readlink(who, fh))
    }
    fn read(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        offset: u64,
        count: u32,
    ) -> Result<ReadData> {
        self.run(Op::Read, || self.inner.read(who, fh, offset, count))
    }
    fn read_spliced(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        offset: u64,
        count: u32,
        pipe: &rnfs_sys::pipe::Pipe,
    ) -> Result<Option<SplicedRead>> {
        self.run(Op::Read, || {
            self.inner.read_spliced(who, fh, offset, count, pipe)
        })
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
        self.run(Op::Readdir, || {
            self.inner.readdir(who, dir, cookie, verifier, plus, sink)
        })
    }
    fn fsstat(&self, who: &Identity, fh: &VerifiedHandle) -> Result<(FsStat, Attr)> {
        self.run(Op::Fsstat, || self.inner.fsstat(who, fh))
    }
    fn pathconf(&self, who: &Identity, fh: &VerifiedHandle) -> Result<(PathConf, Attr)> {
        self.run(Op::Pathconf, || self.inner.pathconf(who, fh))
    }
    fn setattr(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        attrs: &SetAttrs,
        guard: Option<Timestamp>,
    ) -> Result<Wcc> {
        self.run(Op::Setattr, || self.inner.setattr(who, fh, attrs, guard))
    }
    fn write(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        offset: u64,
        data: &[u8],
        stable: Stability,
    ) -> Result<Written> {
        self.run(Op::Write, || {
            self.inner.write(who, fh, offset, data, stable)
        })
    }
    fn commit(&self, who: &Identity, fh: &VerifiedHandle, offset: u64, count: u32) -> Result<Wcc> {
        self.run(Op::Commit, || self.inner.commit(who, fh, offset, count))
    }
    fn create(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
        how: &CreateMode,
    ) -> Result<Created> {
        self.run(Op::Create, || self.inner.create(who, dir, name, how))
    }
    fn mkdir(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
        attrs: &SetAttrs,
    ) -> Result<Created> {
        self.run(Op::Mkdir, || self.inner.mkdir(who, dir, name, attrs))
    }
    fn symlink(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
        target: &[u8],
        attrs: &SetAttrs,
    ) -> Result<Created> {
        self.run(Op::Symlink, || {
            self.inner.symlink(who, dir, name, target, attrs)
        })
    }
    fn mknod(
        &self,
        who: &Identity,
        dir: &VerifiedHandle,
        name: &[u8],
        kind: NodeKind,
        attrs: &SetAttrs,
    ) -> Result<Created> {
        self.run(Op::Mknod, || self.inner.mknod(who, dir, name, kind, attrs))
    }
    fn remove(&self, who: &Identity, dir: &VerifiedHandle, name: &[u8]) -> Result<Wcc> {
        self.run(Op::Remove, || self.inner.remove(who, dir, name))
    }
    fn rmdir(&self, who: &Identity, dir: &VerifiedHandle, name: &[u8]) -> Result<Wcc> {
        self.run(Op::Rmdir, || self.inner.rmdir(who, dir, name))
    }
    fn rename(
        &self,
        who: &Identity,
        from_dir: &VerifiedHandle,
        from_name: &[u8],
        to_dir: &VerifiedHandle,
        to_name: &[u8],
    ) -> Result<(Wcc, Wcc)> {
        self.run(Op::Rename, || {
            self.inner.rename(who, from_dir, from_name, to_dir, to_name)
        })
    }
    fn link(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        dir: &VerifiedHandle,
        name: &[u8],
    ) -> Result<(Option<Attr>, Wcc)> {
        self.run(Op::Link, || self.inner.link(who, fh, dir, name))
    }
    fn seek(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        what: crate::SeekWhat,
        offset: u64,
    ) -> Result<crate::Sought> {
        self.inner.seek(who, fh, what, offset)
    }
    fn allocate(&self, who: &Identity, fh: &VerifiedHandle, offset: u64, len: u64) -> Result<Wcc> {
        self.inner.allocate(who, fh, offset, len)
    }
    fn deallocate(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        offset: u64,
        len: u64,
    ) -> Result<Wcc> {
        self.inner.deallocate(who, fh, offset, len)
    }
    fn copy_range(
        &self,
        who: &Identity,
        src: &VerifiedHandle,
        dst: &VerifiedHandle,
        offsets: (u64, u64),
        len: u64,
    ) -> Result<u64> {
        self.inner.copy_range(who, src, dst, offsets, len)
    }
    fn clone_range(
        &self,
        who: &Identity,
        src: &VerifiedHandle,
        dst: &VerifiedHandle,
        offsets: (u64, u64),
        len: u64,
    ) -> Result<()> {
        self.inner.clone_range(who, src, dst, offsets, len)
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
        self.inner.getxattr(who, fh, name, max_bytes)
    }
    fn setxattr(
        &self,
        who: &Identity,
        fh: &VerifiedHandle,
        name: &[u8],
        value: &[u8],
        how: crate::XattrSet,
    ) -> Result<Wcc> {
        self.inner.setxattr(who, fh, name, value, how)
    }
    fn listxattrs(&self, who: &Identity, fh: &VerifiedHandle) -> Result<Vec<Bytes>> {
        self.inner.listxattrs(who, fh)
    }
    fn removexattr(&self, who: &Identity, fh: &VerifiedHandle, name: &[u8]) -> Result<Wcc> {
        self.inner.removexattr(who, fh, name)
    }
    fn close_idle_files(&self) {
        self.inner.close_idle_files()
    }
    fn close_all_files(&self) {
        self.inner.close_all_files()
    }
    fn writeback_errors(&self) -> u64 {
        self.inner.writeback_errors() + self.injected_writeback_errors.load(Ordering::Relaxed)
    }
}
