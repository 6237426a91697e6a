//! The seed scenario of the 2011 lockup, as a bounded test.
//!
//! Many clients read large files with many READs outstanding each and reset their connections
//! (RST) at random moments, mid-reply; meanwhile other clients overwrite, truncate and remove the
//! same files, and the server's timers run at a high rate. Throughout: the runtime heartbeat never
//! stalls for 1 s, a fresh client is served within 1 s, every record on the wire is exactly as
//! long as its marker says, and every byte of every completed READ is a byte the file held at some
//! moment during that READ (or zero, where a truncate cut below it). Afterwards every loan is
//! returned and no file descriptor is left open.
//!
//! `RNFS_STORM_SECONDS` sets the duration (default 12).
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use rnfs_client::nfs3::{self, nfs_fh3, READ3args, READ3res};
use rnfs_client::Client;
use rnfs_oncrpc::{decode_reply, encode_call, AuthSys, ReplyHeader};
use rnfs_server::config::Limits;
use rnfs_server::Embedded;
use rnfs_storage::handle::HandleKey;
use rnfs_storage::local::LocalFs;
use rnfs_xdr::{Decoder, XdrDecode, XdrEncode};

const FILES: usize = 4;
const FILE_BYTES: u64 = 4 << 20;
const READERS: usize = 16;
const READS_IN_FLIGHT: usize = 8;
const READ_BYTES: u32 = 256 << 10;
const WRITERS: usize = 3;

/// The byte at `pos` of the file's `version`: never zero, so zeros mean "cut by a truncate".
fn pattern(version: u64, pos: u64) -> u8 {
    ((pos.wrapping_mul(31).wrapping_add(version.wrapping_mul(17))) % 251 + 1) as u8
}

/// One write of a file: its version, when it started and ended, and whether it replaced every
/// byte (a complete overwrite, or a remove-and-recreate, after which no older byte can be read).
#[derive(Clone, Copy)]
struct FileWrite {
    version: u64,
    start_ms: u64,
    end_ms: Option<u64>,
    complete: bool,
}

/// Every write of every file, by file handle (a file removed and recreated under the same name is a
/// new file even when the file system reuses its inode number; a client still holding the old
/// handle may read the old file).
#[derive(Default)]
struct History {
    writes: std::collections::HashMap<Vec<u8>, Vec<FileWrite>>,
}

impl History {
    fn begin(&mut self, fh: &[u8], version: u64, now: u64) -> usize {
        let ws = self.writes.entry(fh.to_vec()).or_default();
        ws.push(FileWrite {
            version,
            start_ms: now,
            end_ms: None,
            complete: false,
        });
        ws.len() - 1
    }

    fn end(&mut self, fh: &[u8], idx: usize, now: u64, complete: bool) {
        if let Some(w) = self.writes.get_mut(fh).and_then(|ws| ws.get_mut(idx)) {
            w.end_ms = Some(now);
            w.complete = complete;
        }
    }

    /// Versions whose bytes a READ running from `from_ms` to `to_ms` may return: every version
    /// begun by `to_ms`, unless a complete overwrite that began after it ended had finished by
    /// `from_ms`.
    fn allowed(&self, fh: &[u8], from_ms: u64, to_ms: u64) -> Vec<u64> {
        let Some(ws) = self.writes.get(fh) else {
            return Vec::new();
        };
        ws.iter()
            .enumerate()
            .filter(|(_, v)| v.start_ms <= to_ms)
            .filter(|(i, v)| {
                let Some(v_end) = v.end_ms else { return true };
                !ws.iter().enumerate().any(|(j, w)| {
                    j != *i
                        && w.complete
                        && w.start_ms >= v_end
                        && w.end_ms.is_some_and(|e| e <= from_ms)
                })
            })
            .map(|(_, v)| v.version)
            .collect()
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

struct Stats {
    reads_ok: AtomicU64,
    bytes_checked: AtomicU64,
    resets: AtomicU64,
    stale: AtomicU64,
    zeros: AtomicU64,
}

#[test]
fn storm_of_reads_resets_and_rewrites_never_stalls_or_leaks() {
    let seconds: u64 = std::env::var("RNFS_STORM_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let dir = tempfile::tempdir().unwrap();
    let export_dir = dir.path().join("export");
    std::fs::create_dir(&export_dir).unwrap();
    std::fs::set_permissions(
        &export_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let t0 = Instant::now();
    let now_ms = move || t0.elapsed().as_millis() as u64;
    let history = Arc::new(Mutex::new(History::default()));
    for f in 0..FILES {
        let data: Vec<u8> = (0..FILE_BYTES).map(|p| pattern(0, p)).collect();
        std::fs::write(export_dir.join(format!("f{f}")), data).unwrap();
        std::os::unix::fs::chown(export_dir.join(format!("f{f}")), Some(1000), Some(1000)).unwrap();
    }

    let limits = Limits {
        stall_bound_ms: 1000,
        // Small enough that the table fills and the fallback path runs too.
        loans_max: 64,
        connection_requests_max: READS_IN_FLIGHT,
        ..Limits::default()
    };
    let export_dir = std::fs::canonicalize(&export_dir).unwrap();
    let key = HandleKey::random().unwrap();
    let backend = Arc::new(LocalFs::new(1, &export_dir, key).unwrap());
    let server = Embedded::start(
        backend,
        1,
        export_dir.to_str().unwrap(),
        export_dir.clone(),
        limits,
        dir.path().join("state"),
    )
    .unwrap();
    let running = &server.running;
    let addr: SocketAddr = server.addr();
    let mount_path = export_dir.to_str().unwrap().as_bytes().to_vec();

    // Warm up once so lazily created state (pipes, cached files) is in the baseline, and record
    // the initial version of every file under its handle.
    {
        let mut c = Client::connect_tcp(addr)
            .unwrap()
            .with_auth_sys(1000, 1000, &[]);
        let root = c.mount(&mount_path).unwrap();
        for f in 0..FILES {
            let fh = c.lookup(&root, format!("f{f}").as_bytes()).unwrap().object;
            let mut h = history.lock().unwrap();
            let idx = h.begin(fh.as_bytes(), 0, 0);
            h.end(fh.as_bytes(), idx, 0, true);
        }
        let fh = c.lookup(&root, b"f0").unwrap().object;
        c.read(&fh, 0, READ_BYTES).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let fds_before = open_fds();
    // Loan slots keep their pipes (two descriptors each) for reuse: a bounded pool, not a leak.
    let pipes_before = running.service.loans().stats().resources_live;
    let fds_allowed = |pipes_now: usize| fds_before + 2 * pipes_now.saturating_sub(pipes_before);

    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Stats {
        reads_ok: AtomicU64::new(0),
        bytes_checked: AtomicU64::new(0),
        resets: AtomicU64::new(0),
        stale: AtomicU64::new(0),
        zeros: AtomicU64::new(0),
    });
    let mut threads = Vec::new();

    // Writers: overwrite (a new version), truncate, or remove and recreate, through NFS.
    for w in 0..WRITERS {
        let (stop, history, mount_path) = (stop.clone(), history.clone(), mount_path.clone());
        threads.push(std::thread::spawn(move || {
            let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (w as u64 + 1);
            let mut c = Client::connect_tcp(addr)
                .unwrap()
                .with_auth_sys(1000, 1000, &[]);
            let root = c.mount(&mount_path).unwrap();
            let mut version = (w as u64 + 1) * 1_000_000;
            while !stop.load(Ordering::Relaxed) {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let f = (rng % FILES as u64) as usize;
                let name = format!("f{f}");
                version += 1;
                let fh = match c.lookup(&root, name.as_bytes()) {
                    Ok(r) => r.object,
                    Err(_) => continue,
                };
                match rng % 8 {
                    // Truncate to a random length (bytes past it read as zero or not at all).
                    0 => {
                        let size = rng % FILE_BYTES;
                        let attrs = nfs3::sattr3 {
                            size: Some(size),
                            ..Default::default()
                        };
                        let _ = c.setattr(&fh, attrs, None);
                    }
                    // Remove and recreate (a new inode), then write the new version into it.
                    1 => {
                        let _ = c.remove(&root, name.as_bytes());
                        let created = c.create(
                            &root,
                            name.as_bytes(),
                            nfs3::createhow3::Unchecked(Default::default()),
                        );
                        if let Ok(r) = created {
                            if let Some(fh) = r.obj {
                                write_version(&mut c, &fh, version, &history, &now_ms);
                            }
                        }
                    }
                    // Overwrite in place.
                    _ => write_version(&mut c, &fh, version, &history, &now_ms),
                }
            }
        }));
    }

    // Readers: pipelined READs on raw connections, reset at random moments.
    for r in 0..READERS {
        let (stop, history, stats, mount_path) = (
            stop.clone(),
            history.clone(),
            stats.clone(),
            mount_path.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let mut rng = 0x2545_f491_4f6c_dd1du64 ^ ((r as u64 + 1) << 20);
            let mut meta = Client::connect_tcp(addr)
                .unwrap()
                .with_auth_sys(1000, 1000, &[]);
            let root = meta.mount(&mount_path).unwrap();
            while !stop.load(Ordering::Relaxed) {
                reader_session(addr, &mut meta, &root, &mut rng, &history, &stats, &now_ms);
            }
        }));
    }

    // The monitor: heartbeat fresh, and a fresh client served within 1 s, all along.
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut worst_heartbeat_ms = 0;
    let mut worst_fresh = Duration::ZERO;
    while Instant::now() < deadline {
        let hb = rnfs_server::now_ms()
            .saturating_sub(running.watch.heartbeat_ms.load(Ordering::Relaxed));
        worst_heartbeat_ms = worst_heartbeat_ms.max(hb);
        let t = Instant::now();
        let mut fresh = Client::connect_tcp(addr)
            .unwrap()
            .with_auth_sys(1000, 1000, &[]);
        fresh.set_timeout(Duration::from_secs(5)).unwrap();
        fresh.null().unwrap();
        let root = fresh.mount(&mount_path).unwrap();
        fresh.getattr(&root).unwrap();
        worst_fresh = worst_fresh.max(t.elapsed());
        drop(fresh);
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }

    // All loans come back and no descriptor is left behind.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(10)
        && (running.service.loans().stats().outstanding != 0
            || !running.service.loans().snapshot().is_empty()
            || open_fds() > fds_allowed(running.service.loans().stats().resources_live))
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let loans = running.service.loans().stats();
    let spliced = running
        .service
        .counters
        .read_bytes_spliced
        .load(Ordering::Relaxed);
    let buffered = running
        .service
        .counters
        .read_bytes_buffered
        .load(Ordering::Relaxed);
    eprintln!(
        "storm: {} s, {} READs checked ({} MiB), {} resets, {} stale, {} zero bytes; worst heartbeat {} ms, \
         worst fresh client {:?}; loans lent {} abandoned {} reaped {} returned clean {} exhausted {}; pipes kept {}; \
         spliced {} MiB buffered {} MiB; fds {} -> {}",
        seconds,
        stats.reads_ok.load(Ordering::Relaxed),
        stats.bytes_checked.load(Ordering::Relaxed) >> 20,
        stats.resets.load(Ordering::Relaxed),
        stats.stale.load(Ordering::Relaxed),
        stats.zeros.load(Ordering::Relaxed),
        worst_heartbeat_ms,
        worst_fresh,
        loans.lent_total,
        loans.claims_abandoned,
        loans.returned_by_reaper,
        loans.returned_clean,
        loans.exhausted,
        loans.resources_live,
        spliced >> 20,
        buffered >> 20,
        fds_before,
        open_fds()
    );
    assert!(
        worst_heartbeat_ms < 1000,
        "runtime heartbeat stalled {worst_heartbeat_ms} ms"
    );
    assert!(
        worst_fresh < Duration::from_secs(1),
        "a fresh client waited {worst_fresh:?}"
    );
    assert!(
        stats.reads_ok.load(Ordering::Relaxed) > 100,
        "the storm did real work"
    );
    assert!(
        stats.resets.load(Ordering::Relaxed) > 10,
        "connections were reset mid-stream"
    );
    assert_eq!(loans.outstanding, 0, "every loan returned");
    assert!(
        running.service.loans().snapshot().is_empty(),
        "every slot reaped"
    );
    assert_eq!(
        loans.lent_total + loans.claims_abandoned,
        loans.returned_by_reaper + loans.returned_clean,
        "each loan and each abandoned claim returned exactly once"
    );
    assert!(
        loans.returned_clean > 0,
        "READs sent whole return their loans without the reaper"
    );
    assert!(
        loans.returned_by_reaper > 0,
        "READs cut off by resets go back through the reaper"
    );
    assert!(
        loans.resources_live <= running.service.loans().capacity(),
        "at most one pipe per slot"
    );
    let fds_after = open_fds();
    assert!(
        fds_after <= fds_allowed(loans.resources_live),
        "file descriptors leaked: {fds_before} -> {fds_after} with {} pipes kept",
        loans.resources_live
    );
    assert!(spliced > 0, "the zero-copy path was exercised");
    assert_eq!(
        running.watch.stalls_total.load(Ordering::Relaxed),
        0,
        "the watchdog saw no stall"
    );

    server.stop().unwrap();
}

fn write_version(
    c: &mut Client,
    fh: &nfs_fh3,
    version: u64,
    history: &Mutex<History>,
    now_ms: &dyn Fn() -> u64,
) {
    let idx = history
        .lock()
        .unwrap()
        .begin(fh.as_bytes(), version, now_ms());
    let mut off = 0u64;
    let mut complete = true;
    while off < FILE_BYTES {
        let n = (1u64 << 20).min(FILE_BYTES - off);
        let data: Vec<u8> = (off..off + n).map(|p| pattern(version, p)).collect();
        if c.write(fh, off, Bytes::from(data), nfs3::stable_how::UNSTABLE)
            .is_err()
        {
            complete = false;
            break;
        }
        off += n;
    }
    history
        .lock()
        .unwrap()
        .end(fh.as_bytes(), idx, now_ms(), complete);
}

/// One reader connection: keeps READS_IN_FLIGHT READs outstanding, checks each reply, and ends
/// with a reset (SO_LINGER 0) at a random point — often with replies still being sent.
fn reader_session(
    addr: SocketAddr,
    meta: &mut Client,
    root: &nfs_fh3,
    rng: &mut u64,
    history: &Mutex<History>,
    stats: &Stats,
    now_ms: &dyn Fn() -> u64,
) {
    let mut next = || {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *rng
    };
    let file = (next() % FILES as u64) as usize;
    let Ok(found) = meta.lookup(root, format!("f{file}").as_bytes()) else {
        return;
    };
    let fh = found.object;
    let Ok(mut sock) = TcpStream::connect(addr) else {
        return;
    };
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let cred = AuthSys {
        stamp: 0,
        machine_name: Bytes::from_static(b"storm"),
        uid: 1000,
        gid: 1000,
        gids: vec![],
    }
    .to_opaque();
    let calls_before_reset = 1 + next() % 40;
    let mut pending: std::collections::VecDeque<(u32, u64, u64)> = Default::default();
    let mut xid = (next() as u32) & 0x7fff_ffff;
    for i in 0..calls_before_reset {
        while pending.len() < READS_IN_FLIGHT {
            xid = xid.wrapping_add(1);
            let offset = (next() % (FILE_BYTES / 4096)) * 4096;
            let mut msg = BytesMut::new();
            msg.put_u32(0);
            encode_call(
                &mut msg,
                xid,
                nfs3::NFS_PROGRAM,
                3,
                nfs3::NFSPROC3_READ,
                &cred,
            );
            READ3args {
                file: fh.clone(),
                offset,
                count: READ_BYTES,
            }
            .encode(&mut msg);
            let len = (msg.len() - 4) as u32 | 0x8000_0000;
            msg[..4].copy_from_slice(&len.to_be_bytes());
            if sock.write_all(&msg).is_err() {
                return;
            }
            pending.push_back((xid, offset, now_ms()));
        }
        // Reset partway through a reply sometimes: read only part of a record, then RST.
        if i + 1 == calls_before_reset {
            let mut partial = vec![0u8; (next() % 100_000) as usize];
            let _ = sock.read(&mut partial);
            break;
        }
        let Some(record) = read_record(&mut sock) else {
            return;
        };
        let Ok((rx, ReplyHeader::Success, body)) = decode_reply(record) else {
            panic!("malformed reply")
        };
        let Some(pos) = pending.iter().position(|p| p.0 == rx) else {
            panic!("reply to unknown xid {rx}")
        };
        let (_, offset, started) = pending.remove(pos).unwrap();
        let mut d = Decoder::new(body);
        match READ3res::decode(&mut d).unwrap() {
            READ3res::Ok(ok) => {
                d.finish().unwrap();
                let done = now_ms();
                let allowed = history
                    .lock()
                    .unwrap()
                    .allowed(fh.as_bytes(), started, done);
                for (k, b) in ok.data.as_bytes().iter().enumerate() {
                    let p = offset + k as u64;
                    if *b == 0 {
                        stats.zeros.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    if !allowed.iter().any(|v| pattern(*v, p) == *b) {
                        let h = history.lock().unwrap();
                        let ws: Vec<_> = h
                            .writes
                            .get(fh.as_bytes())
                            .map(|ws| {
                                ws.iter()
                                    .map(|w| (w.version, w.start_ms, w.end_ms, w.complete))
                                    .collect()
                            })
                            .unwrap_or_default();
                        panic!(
                            "byte {p} of f{file} = {b} was in no version the file held during the READ \
                             ({started}..{done} ms, allowed {allowed:?}); writes of this handle: {ws:?}"
                        );
                    }
                }
                stats.reads_ok.fetch_add(1, Ordering::Relaxed);
                stats
                    .bytes_checked
                    .fetch_add(ok.data.len() as u64, Ordering::Relaxed);
            }
            READ3res::Fail(nfs3::nfsstat3::NFS3ERR_STALE, _) => {
                stats.stale.fetch_add(1, Ordering::Relaxed);
                break;
            }
            READ3res::Fail(s, _) => panic!("READ failed: {s:?}"),
        }
    }
    // RST: linger 0 then close, with replies possibly mid-flight.
    let sock2 = socket2_linger_zero(sock);
    drop(sock2);
    stats.resets.fetch_add(1, Ordering::Relaxed);
}

/// Reads one record; asserts it is exactly as long as its marker says (the stream must not end
/// inside a record: the server never closes mid-record on its own).
fn read_record(sock: &mut TcpStream) -> Option<Bytes> {
    let mut marker = [0u8; 4];
    sock.read_exact(&mut marker).ok()?;
    let m = u32::from_be_bytes(marker);
    assert!(
        m & 0x8000_0000 != 0,
        "the server sends single-fragment records"
    );
    let len = (m & 0x7fff_ffff) as usize;
    let mut buf = vec![0u8; len];
    sock.read_exact(&mut buf)
        .unwrap_or_else(|e| panic!("record shorter than its marker ({len} bytes): {e}"));
    Some(Bytes::from(buf))
}

fn socket2_linger_zero(sock: TcpStream) -> TcpStream {
    let sock = socket2::Socket::from(sock);
    sock.set_linger(Some(Duration::ZERO)).unwrap();
    sock.into()
}
