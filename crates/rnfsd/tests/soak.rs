//! Soak: 64 concurrent clients, each from its own loopback address, mix metadata and data
//! operations against one `rnfsd` for `RNFS_SOAK_SECONDS` (default 120), and the server is killed
//! with SIGKILL at half time and started again on the same port and state directory.
//!
//! Each client owns a directory and keeps a model of it: the names, handles and bytes of its
//! files, and which ranges were written UNSTABLE and not yet committed. It behaves like a real NFS
//! client (RFC 1813 §3.3.7, §3.3.21): it keeps uncommitted ranges until a COMMIT with the same
//! write verifier, and when a WRITE or COMMIT reply carries a new verifier it sends those ranges
//! again. When a call fails because the connection broke, the object it touched is uncertain
//! (executed or not, nobody can tell): the client reconnects, removes it and forgets it.
//!
//! It checks that:
//! * every READ returns exactly the model's bytes, every GETATTR the model's size, every
//!   READDIRPLUS the model's names (no client ever sees a wrong byte);
//! * the write verifier is the same for the whole of one server run and changes exactly once,
//!   at the restart;
//! * after the run, every file holds exactly what its client wrote (acknowledged FILE_SYNC,
//!   committed, or re-sent after the verifier changed), through NFS and on the local disk;
//! * the restarted server's memory comes back near its baseline once the clients are gone.
//!
//! Bounded: every call has a timeout, reconnection gives up after [`RECONNECT_WAIT`], and the
//! whole run after `RNFS_SOAK_SECONDS`. Needs root (AUTH_SYS identities, file handles).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod nfsutil;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use nfsutil::*;
use rnfs_client::nfs3::*;
use rnfs_client::{Client, Error};

const CLIENTS: usize = 64;
const UID: u32 = USER;
/// Files a client keeps at most.
const FILES_MAX: usize = 6;
/// Largest single WRITE and largest file, so that 64 clients stay within a debug build's means.
const WRITE_BYTES_MAX: usize = 96 << 10;
const FILE_BYTES_MAX: usize = 768 << 10;
/// How long a client waits for the server to come back after the connection broke.
const RECONNECT_WAIT: Duration = Duration::from_secs(60);
/// Time allowed for one call (debug build, 64 clients on 2 cores).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long after the restarted server answers a call may still find a connection broken by the
/// kill (a client that was between calls notices at its next one).
const BROKEN_AFTER_RESTART_MAX: Duration = Duration::from_secs(10);
/// How far the restarted server's RSS may stay above its own baseline once the clients are gone
/// and it has trimmed its heap: the duplicate request cache (up to `drc_bytes_max`, 16 MiB by
/// default) and the stacks of the worker threads the run started (about 10 MiB measured).
const RSS_GROWTH_MIB_MAX: f64 = 32.0;

fn soak_duration() -> Duration {
    let secs = std::env::var("RNFS_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120u64);
    Duration::from_secs(secs.max(10))
}

/// One file as its client knows it.
#[derive(Debug)]
struct FileModel {
    name: String,
    fh: nfs_fh3,
    data: Vec<u8>,
    /// Ranges written UNSTABLE since the last successful COMMIT.
    uncommitted: Vec<(usize, usize)>,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Create,
    Write,
    Commit,
    Read,
    Getattr,
    Truncate,
    Rename,
    Remove,
    List,
    Lookup,
}

/// What a client did, for the summary.
#[derive(Debug, Default, Clone)]
struct Tally {
    calls: u64,
    bytes_written: u64,
    bytes_read: u64,
    broken_calls: u64,
    /// When each broken call failed.
    broken_at: Vec<Instant>,
    uncertain_removed: u64,
    resent_ranges: u64,
    verifier_changes: u64,
}

struct SoakClient {
    id: usize,
    server: SocketAddr,
    local: SocketAddr,
    c: Client,
    dir: nfs_fh3,
    files: Vec<FileModel>,
    /// The write verifier of the server run this client last heard from.
    verifier: Option<writeverf3>,
    rng: XorShift,
    next_name: u64,
    tally: Tally,
    /// Calls made by all clients so far.
    calls_all: Arc<AtomicU64>,
}

/// A call that failed because the connection broke (or timed out), as opposed to an NFS error.
fn is_broken(e: &Error) -> bool {
    matches!(e, Error::Io(_) | Error::Timeout(_) | Error::Protocol(_))
}

fn connect(local: SocketAddr, server: SocketAddr) -> Result<Client, Error> {
    let mut c = Client::connect_tcp_from(local, server)?.with_auth_sys(UID, UID, &[UID]);
    c.set_timeout(CALL_TIMEOUT)?;
    Ok(c)
}

impl SoakClient {
    fn new(
        id: usize,
        server: SocketAddr,
        dir: nfs_fh3,
        seed: u64,
        calls_all: Arc<AtomicU64>,
    ) -> Self {
        // 127.0.1.x: one address per client, so per-address limits and the duplicate request
        // cache see 64 distinct clients.
        let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 1, id as u8 + 1)), 0);
        let c = connect(local, server).unwrap();
        SoakClient {
            id,
            server,
            local,
            c,
            dir,
            files: Vec::new(),
            verifier: None,
            rng: XorShift::new(seed),
            next_name: 0,
            tally: Tally::default(),
            calls_all,
        }
    }

    fn below(&mut self, n: usize) -> usize {
        (self.rng.next_u64() % n.max(1) as u64) as usize
    }

    fn new_name(&mut self) -> String {
        self.next_name += 1;
        format!("f{}", self.next_name)
    }

    fn pick_op(&mut self) -> Op {
        if self.files.is_empty() {
            return Op::Create;
        }
        match self.below(100) {
            0..=7 if self.files.len() < FILES_MAX => Op::Create,
            0..=29 => Op::Write,
            30..=37 => Op::Commit,
            38..=59 => Op::Read,
            60..=69 => Op::Getattr,
            70..=73 => Op::Truncate,
            74..=79 => Op::Rename,
            80..=83 => Op::Remove,
            84..=89 => Op::List,
            _ => Op::Lookup,
        }
    }

    /// Runs operations until `deadline`, reconnecting (and forgetting uncertain files) whenever
    /// the connection breaks.
    fn run(&mut self, deadline: Instant) {
        while Instant::now() < deadline {
            let op = self.pick_op();
            let target = self.below(self.files.len());
            self.tally.calls += 1;
            self.calls_all.fetch_add(1, Ordering::Relaxed);
            match self.step(op, target) {
                Ok(()) => {}
                Err(e) if is_broken(&e) => {
                    self.tally.broken_calls += 1;
                    self.tally.broken_at.push(Instant::now());
                    self.recover(op, target);
                }
                Err(e) => panic!(
                    "client {}: {op:?} on {:?}: unexpected {e}",
                    self.id,
                    self.files.get(target).map(|f| &f.name)
                ),
            }
        }
    }

    /// Notes the verifier of a WRITE or COMMIT reply; if it changed, the server restarted and
    /// lost what was not committed: send every uncommitted range again, FILE_SYNC.
    fn saw_verifier(&mut self, verf: writeverf3) -> Result<(), Error> {
        match self.verifier {
            None => self.verifier = Some(verf),
            Some(v) if v == verf => {}
            Some(_) => {
                self.verifier = Some(verf);
                self.tally.verifier_changes += 1;
                for i in 0..self.files.len() {
                    // Cleared only once all are re-sent, so a broken re-send keeps them.
                    let ranges = self.files[i].uncommitted.clone();
                    for (off, len) in ranges {
                        let f = &self.files[i];
                        let data = Bytes::copy_from_slice(&f.data[off..off + len]);
                        let r = self
                            .c
                            .write(&f.fh, off as u64, data, stable_how::FILE_SYNC)?;
                        assert_eq!(r.count as usize, len, "client {}: short re-send", self.id);
                        assert_eq!(
                            r.verf, verf,
                            "client {}: the verifier changed again while re-sending",
                            self.id
                        );
                        self.tally.resent_ranges += 1;
                    }
                    self.files[i].uncommitted.clear();
                }
            }
        }
        Ok(())
    }

    fn step(&mut self, op: Op, i: usize) -> Result<(), Error> {
        match op {
            Op::Create => {
                let name = self.new_name();
                let r = self.c.create(
                    &self.dir,
                    name.as_bytes(),
                    createhow3::Guarded(mode_attr(0o644)),
                )?;
                let fh = r.obj.expect("CREATE returns the new handle");
                self.files.push(FileModel {
                    name,
                    fh,
                    data: Vec::new(),
                    uncommitted: Vec::new(),
                });
            }
            Op::Write => {
                let len_now = self.files[i].data.len();
                let off = if self.below(3) == 0 {
                    len_now
                } else {
                    self.below(len_now + 1)
                };
                let room = FILE_BYTES_MAX.saturating_sub(off);
                if room == 0 {
                    return Ok(());
                }
                let len = 1 + self.below(WRITE_BYTES_MAX.min(room));
                let mut data = vec![0; len];
                self.rng.fill(&mut data);
                let stable = if self.below(2) == 0 {
                    stable_how::FILE_SYNC
                } else {
                    stable_how::UNSTABLE
                };
                let fh = self.files[i].fh.clone();
                let r = self
                    .c
                    .write(&fh, off as u64, Bytes::from(data.clone()), stable)?;
                assert_eq!(r.count as usize, len, "client {}: short WRITE", self.id);
                let f = &mut self.files[i];
                if f.data.len() < off + len {
                    f.data.resize(off + len, 0);
                }
                f.data[off..off + len].copy_from_slice(&data);
                if r.committed == stable_how::UNSTABLE {
                    f.uncommitted.push((off, len));
                }
                self.tally.bytes_written += len as u64;
                self.saw_verifier(r.verf)?;
            }
            Op::Commit => {
                let fh = self.files[i].fh.clone();
                let r = self.c.commit(&fh, 0, 0)?;
                if self.verifier == Some(r.verf) {
                    self.files[i].uncommitted.clear();
                }
                self.saw_verifier(r.verf)?;
            }
            Op::Read => {
                let len_now = self.files[i].data.len();
                let off = self.below(len_now + 1);
                let count = 1 + self.below(WRITE_BYTES_MAX);
                let fh = self.files[i].fh.clone();
                let r = self.c.read(&fh, off as u64, count as u32)?;
                let f = &self.files[i];
                let end = (off + count).min(len_now);
                let want = &f.data[off.min(end)..end];
                assert!(
                    r.data.0[..] == *want,
                    "client {}: READ {} [{off}, +{count}) returned {} bytes that differ from the \
                     {} written",
                    self.id,
                    f.name,
                    r.data.0.len(),
                    want.len()
                );
                assert_eq!(r.eof, end == len_now, "client {}: READ eof", self.id);
                self.tally.bytes_read += r.data.0.len() as u64;
            }
            Op::Getattr => {
                let fh = self.files[i].fh.clone();
                let a = self.c.getattr(&fh)?;
                let f = &self.files[i];
                assert_eq!(
                    a.size,
                    f.data.len() as u64,
                    "client {}: GETATTR {} size",
                    self.id,
                    f.name
                );
            }
            Op::Truncate => {
                // A real client flushes before it truncates: uncommitted ranges past the new end
                // must not come back if they are re-sent later.
                if !self.files[i].uncommitted.is_empty() {
                    return self.step(Op::Commit, i);
                }
                let size = self.below(self.files[i].data.len() + 1);
                let fh = self.files[i].fh.clone();
                self.c.setattr(&fh, size_attr(size as u64), None)?;
                self.files[i].data.truncate(size);
            }
            Op::Rename => {
                let to = self.new_name();
                let from = self.files[i].name.clone();
                self.c
                    .rename(&self.dir, from.as_bytes(), &self.dir, to.as_bytes())?;
                self.files[i].name = to;
            }
            Op::Remove => {
                let name = self.files[i].name.clone();
                self.c.remove(&self.dir, name.as_bytes())?;
                self.files.remove(i);
            }
            Op::List => {
                let listed: BTreeSet<String> = self
                    .c
                    .readdirplus(&self.dir)?
                    .into_iter()
                    .map(|e| String::from_utf8_lossy(&e.name.0).into_owned())
                    .filter(|n| n != "." && n != "..")
                    .collect();
                let model: BTreeSet<String> = self.files.iter().map(|f| f.name.clone()).collect();
                assert_eq!(listed, model, "client {}: READDIRPLUS", self.id);
            }
            Op::Lookup => {
                let name = self.files[i].name.clone();
                let r = self.c.lookup(&self.dir, name.as_bytes())?;
                assert!(
                    r.object == self.files[i].fh,
                    "client {}: LOOKUP {name} returned another handle",
                    self.id
                );
            }
        }
        Ok(())
    }

    /// After a broken call: reconnect, then remove whatever the call may or may not have changed.
    /// Both are retried until the server answers (a connection made while the old process was
    /// dying is reset too).
    fn recover(&mut self, op: Op, i: usize) {
        let uncertain: Vec<String> = match op {
            // The name just generated, which the model never got.
            Op::Create => vec![format!("f{}", self.next_name)],
            Op::Write | Op::Truncate | Op::Remove => vec![self.files[i].name.clone()],
            Op::Rename => vec![self.files[i].name.clone(), format!("f{}", self.next_name)],
            // Nothing changed, or nothing the model relies on (COMMIT keeps its ranges).
            Op::Commit | Op::Read | Op::Getattr | Op::List | Op::Lookup => Vec::new(),
        };
        if matches!(op, Op::Write | Op::Truncate | Op::Remove | Op::Rename) {
            self.files.remove(i);
        }
        let give_up = Instant::now() + RECONNECT_WAIT;
        let mut pending = uncertain;
        loop {
            let attempt = connect(self.local, self.server).and_then(|c| {
                self.c = c;
                while let Some(name) = pending.last() {
                    match self.c.remove(&self.dir, name.as_bytes()) {
                        Ok(_) => self.tally.uncertain_removed += 1,
                        Err(Error::Nfs(nfsstat3::NFS3ERR_NOENT)) => {}
                        Err(e) => return Err(e),
                    }
                    pending.pop();
                }
                Ok(())
            });
            match attempt {
                Ok(()) => return,
                Err(e) if is_broken(&e) => {
                    assert!(
                        Instant::now() < give_up,
                        "client {}: server unreachable for {RECONNECT_WAIT:?}: {e}",
                        self.id
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("client {}: removing uncertain {pending:?}: {e}", self.id),
            }
        }
    }

    /// The end of the run: commit what is uncommitted, then compare every file, through NFS and
    /// on the local disk, with the model.
    fn finish(&mut self, local_dir: &std::path::Path) {
        for i in 0..self.files.len() {
            if !self.files[i].uncommitted.is_empty() {
                let fh = self.files[i].fh.clone();
                let r = self.c.commit(&fh, 0, 0).unwrap();
                assert_eq!(
                    Some(r.verf),
                    self.verifier,
                    "client {}: the verifier changed after the restart",
                    self.id
                );
                self.files[i].uncommitted.clear();
            }
        }
        for f in &self.files {
            let mut got = Vec::new();
            loop {
                let r = self.c.read(&f.fh, got.len() as u64, 1 << 20).unwrap();
                got.extend_from_slice(&r.data.0);
                if r.eof || r.data.0.is_empty() {
                    break;
                }
            }
            assert!(
                got == f.data,
                "client {}: {} holds {} bytes through NFS, not the {} written",
                self.id,
                f.name,
                got.len(),
                f.data.len()
            );
            let on_disk = std::fs::read(local_dir.join(&f.name)).unwrap();
            assert!(
                on_disk == f.data,
                "client {}: {} holds {} bytes on disk, not the {} written",
                self.id,
                f.name,
                on_disk.len(),
                f.data.len()
            );
        }
        let on_disk: BTreeSet<String> = std::fs::read_dir(local_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let model: BTreeSet<String> = self.files.iter().map(|f| f.name.clone()).collect();
        assert_eq!(on_disk, model, "client {}: the directory on disk", self.id);
    }
}

fn rss_mib(pid: u32) -> f64 {
    proc_status_kib(pid, "VmRSS") as f64 / 1024.0
}

#[test]
fn sixty_four_clients_with_a_sigkill_restart_lose_nothing_acknowledged() {
    require_root("rnfsd needs CAP_DAC_READ_SEARCH; the clients' directories belong to uid 1000");
    let duration = soak_duration();
    let mut srv = TestServer::new();
    for id in 0..CLIENTS {
        let d = srv.export().join(format!("c{id}"));
        std::fs::create_dir(&d).unwrap();
        chown(&d, UID, UID);
    }
    srv.start();
    let server = srv.tcp_addr();
    let first_pid = srv.pid().unwrap();

    // Mount once and resolve every client's directory (handles survive the restart).
    let mut admin = connect(SocketAddr::from(([127, 0, 1, 100], 0)), server).unwrap();
    let root = mount_root(&mut admin, &srv);
    let dirs: Vec<nfs_fh3> = (0..CLIENTS)
        .map(|id| fh_of(&mut admin, &root, &format!("c{id}")))
        .collect();
    drop(admin);
    let baseline_first_mib = rss_mib(first_pid);

    let start = Instant::now();
    let deadline = start + duration;
    let ready = Arc::new(Barrier::new(CLIENTS + 1));
    let clients_calls = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = dirs
        .into_iter()
        .enumerate()
        .map(|(id, dir)| {
            let ready = ready.clone();
            let calls = clients_calls.clone();
            std::thread::Builder::new()
                .name(format!("soak-{id}"))
                .spawn(move || {
                    let mut c = SoakClient::new(id, server, dir, 0x50a6 + id as u64, calls);
                    ready.wait();
                    c.run(deadline);
                    c
                })
                .unwrap()
        })
        .collect();
    ready.wait();

    // Peak RSS of the first run (VmHWM), sampled just before the kill.
    let kill_at = start + duration / 2;
    std::thread::sleep(kill_at.saturating_duration_since(Instant::now()));
    let first_peak_mib = proc_status_kib(first_pid, "VmHWM") as f64 / 1024.0;
    let calls_before_kill = clients_calls.load(Ordering::Relaxed);
    let kill_sent = Instant::now();
    let status = srv.kill_hard();
    let killed_at = start.elapsed();
    srv.start();
    let serving_again = Instant::now();
    let restarted_after = start.elapsed() - killed_at;
    let second_pid = srv.pid().unwrap();
    let baseline_second_mib = rss_mib(second_pid);
    println!(
        "soak: SIGKILL at {killed_at:.1?} ({status:?}), serving again {restarted_after:.1?} later \
         (pid {first_pid} -> {second_pid})"
    );

    let mut clients: Vec<SoakClient> = handles
        .into_iter()
        .map(|h| {
            h.join()
                .unwrap_or_else(|_| panic!("a soak client failed\n{}", srv.log_tail()))
        })
        .collect();
    let elapsed = start.elapsed();
    let second_peak_mib = proc_status_kib(second_pid, "VmHWM") as f64 / 1024.0;

    for c in &mut clients {
        let local_dir = srv.export().join(format!("c{}", c.id));
        c.finish(&local_dir);
    }
    let mut total = Tally::default();
    for c in &clients {
        let t = &c.tally;
        for at in &t.broken_at {
            assert!(
                *at >= kill_sent && *at <= serving_again + BROKEN_AFTER_RESTART_MAX,
                "client {}: a call broke {:.1?} after the start, outside the restart ({killed_at:.1?} \
                 + {restarted_after:.1?})",
                c.id,
                at.duration_since(start)
            );
        }
        assert_eq!(
            t.verifier_changes, 1,
            "client {}: the write verifier must change exactly once (at the restart): {t:?}",
            c.id
        );
        total.calls += t.calls;
        total.bytes_written += t.bytes_written;
        total.bytes_read += t.bytes_read;
        total.broken_calls += t.broken_calls;
        total.uncertain_removed += t.uncertain_removed;
        total.resent_ranges += t.resent_ranges;
        total.verifier_changes += t.verifier_changes;
    }
    let files: usize = clients.iter().map(|c| c.files.len()).sum();
    let bytes_kept: usize = clients
        .iter()
        .flat_map(|c| c.files.iter().map(|f| f.data.len()))
        .sum();
    drop(clients);

    // Memory once the clients are gone: the server closes their connections on EOF, and gives
    // freed memory back once it has been quiet for a housekeeping interval (2 s); then compare
    // with the restarted process's own baseline.
    std::thread::sleep(Duration::from_secs(6));
    let after_mib = rss_mib(second_pid);
    println!(
        "soak: {CLIENTS} clients for {elapsed:.1?}: {} calls ({} before the kill), {:.1} MiB \
         written, {:.1} MiB read; {} calls broken by the kill, {} uncertain files removed, {} \
         uncommitted ranges re-sent after the verifier changed; {files} files ({:.1} MiB) \
         verified through NFS and on disk",
        total.calls,
        calls_before_kill,
        total.bytes_written as f64 / (1 << 20) as f64,
        total.bytes_read as f64 / (1 << 20) as f64,
        total.broken_calls,
        total.uncertain_removed,
        total.resent_ranges,
        bytes_kept as f64 / (1 << 20) as f64,
    );
    println!(
        "soak: server RSS MiB: first run baseline {baseline_first_mib:.1}, peak \
         {first_peak_mib:.1}; restarted baseline {baseline_second_mib:.1}, peak \
         {second_peak_mib:.1}, after the clients left {after_mib:.1} (allowed growth \
         {RSS_GROWTH_MIB_MAX} MiB)"
    );
    assert!(
        after_mib <= baseline_second_mib + RSS_GROWTH_MIB_MAX,
        "the server's RSS did not come back near its baseline: {after_mib:.1} MiB after, \
         {baseline_second_mib:.1} MiB at start"
    );
    let status = srv.stop();
    assert!(
        status.is_some_and(|s| s.success()),
        "rnfsd did not exit cleanly after the soak: {status:?}\n{}",
        srv.log_tail()
    );
}
