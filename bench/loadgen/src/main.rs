//! `loadgen`: a pipelined NFSv3 load generator for the rnfsd benchmark harness (bench/run).
//!
//! One invocation runs one workload against one server and prints one JSON object per result
//! line on stdout (a workload with phases prints one per phase). Setup (MOUNT, LOOKUPs, creating
//! the target file) is untimed and uses the blocking `rnfs-client`; the timed part uses the
//! pipelined engine in `engine.rs` (one thread, `--qd` calls in flight over `--conns` TCP
//! connections). With `--server-pid` it also reports the server's CPU seconds (utime + stime from
//! /proc/PID/stat) and peak RSS (VmHWM, reset through /proc/PID/clear_refs before the timed part).
//!
//! See bench/README.md for the workloads; `loadgen help` lists the options.

mod engine;
mod v4;
mod workloads;

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rnfs_client::nfs3::*;
use rnfs_client::{Auth, Client};

use engine::{Conn, Gen, OpError, RunStats};
use workloads::*;

const HELP: &str = "\
usage: loadgen WORKLOAD [options]

workloads:
  seq-read     READ a file from start to end                 (--file, --bs, --size)
  rand-read    READ random bs-aligned blocks for --secs      (--file, --bs, --secs)
  seq-write    CREATE a new file, WRITE it start to end, COMMIT, REMOVE it (untimed; --keep yes
               keeps it)                                     (--file, --bs, --size, --stable)
  rand-write   WRITE random blocks of an existing file for --secs, COMMIT (--file, --bs, --secs)
  meta         MKDIR --dir, then CREATE, SETATTR, REMOVE --count files (one result per phase)
  stat         LOOKUP then GETATTR --count entries of an existing directory --dir
  readdirplus  list --dir with READDIRPLUS until eof        (--dircount, --maxcount)
  mix          --conns clients (each from its own 127.0.1.x address), --qd calls in flight in
               all (use --qd = --conns: one per client), for --secs: 4 KiB and 64 KiB random
               READs of --file, 4 KiB WRITEs of --write-file, LOOKUP/GETATTR/SETATTR of the first
               --count entries of --dir, CREATE/REMOVE in a scratch directory, READDIRPLUS pages
  With --proto v4 (NFSv4.1: a session with --qd slots, each COMPOUND SEQUENCE-first on its own
  slot; the path walked from PUTROOTFH through --export): seq-read, rand-read, seq-write,
  rand-write as above (the file OPENed untimed; seq-write creates it), and
  getattr      PUTFH + GETATTR of --count files of --dir, each once (handles from READDIR)
  open-read-close  for --secs, one COMPOUND per file of --dir (at most --count, in turn):
               PUTFH dir, OPEN, READ --bs [4K] at 0, CLOSE (current stateid)
  tcp-limit    loopback TCP throughput of --bs messages, no NFS (stream and request/reply;
               named tcp-stream/tcp-rr for 1M, tcp-stream-NB/tcp-rr-NB for N bytes; with
               --qd N > 1 only request/reply, N in flight, named tcp-rr-qdN)

options (defaults in brackets):
  --addr ADDR:PORT [127.0.0.1:2049]  --mount-port N [the NFS port]  --export PATH [/]
  --uid N [1000]  --gid N [1000]  --proto v3|v4 [v3]
  --qd N [1]  --conns N [1]  --timeout SECS [60] (per call)  --server-pid PID
  --server NAME  --rep N  --name ID  (copied into the output)
  --file PATH  --dir PATH (relative to the export)  --bs BYTES [1M]  --size BYTES [file size]
  --secs SECS [5]  --count N [10000]  --stable unstable|data_sync|file_sync [unstable]
  --dircount BYTES [8192]  --maxcount BYTES [65536]  --seed N  --from FILE (tcp-limit)
sizes take K, M, G suffixes (powers of 1024).";

// ---- options -------------------------------------------------------------------------------

struct Opts {
    map: HashMap<String, String>,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mul) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 1 << 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .map(|n| n * mul)
        .map_err(|_| format!("bad size {s:?}"))
}

impl Opts {
    fn parse(args: &[String]) -> Result<Opts, String> {
        let mut map = HashMap::new();
        let mut i = 0;
        while i < args.len() {
            let k = args[i]
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {:?}", args[i]))?;
            let v = args
                .get(i + 1)
                .ok_or_else(|| format!("--{k} needs a value"))?;
            map.insert(k.to_string(), v.clone());
            i += 2;
        }
        Ok(Opts { map })
    }
    fn str(&self, k: &str, d: &str) -> String {
        self.map.get(k).cloned().unwrap_or_else(|| d.to_string())
    }
    fn opt(&self, k: &str) -> Option<String> {
        self.map.get(k).cloned()
    }
    fn size(&self, k: &str, d: u64) -> Result<u64, String> {
        self.map.get(k).map_or(Ok(d), |v| parse_size(v))
    }
    fn num<T: std::str::FromStr>(&self, k: &str, d: T) -> Result<T, String> {
        match self.map.get(k) {
            None => Ok(d),
            Some(v) => v.parse().map_err(|_| format!("bad --{k} {v:?}")),
        }
    }
}

// ---- JSON output ---------------------------------------------------------------------------

#[derive(Default)]
struct Json(Vec<(String, String)>);

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

impl Json {
    fn s(&mut self, k: &str, v: &str) -> &mut Self {
        self.0.push((k.into(), json_str(v)));
        self
    }
    fn n(&mut self, k: &str, v: f64) -> &mut Self {
        let v = if v.is_finite() {
            if v.fract() == 0.0 && v.abs() < 1e15 {
                format!("{}", v as i64)
            } else {
                format!("{:.6}", v)
            }
        } else {
            "null".into()
        };
        self.0.push((k.into(), v));
        self
    }
    fn print(&self) {
        let body: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| format!("{}: {v}", json_str(k)))
            .collect();
        println!("{{{}}}", body.join(", "));
        let _ = std::io::stdout().flush();
    }
}

// ---- /proc probes --------------------------------------------------------------------------

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime of a process, in seconds.
fn cpu_secs(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields after the command: state is field 3, utime 14, stime 15.
    let ut: u64 = f.get(11)?.parse().ok()?;
    let st: u64 = f.get(12)?.parse().ok()?;
    Some((ut + st) as f64 / clk_tck())
}

fn status_kib(pid: u32, key: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Context switches so far of each thread of a process, by thread id.
fn ctx_switches(pid: u32) -> Option<std::collections::HashMap<String, f64>> {
    let mut by_thread = std::collections::HashMap::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(t) = t else { continue };
        let Ok(s) = std::fs::read_to_string(t.path().join("status")) else {
            continue;
        };
        let n: f64 = s
            .lines()
            .filter(|l| {
                l.starts_with("voluntary_ctxt_switches:")
                    || l.starts_with("nonvoluntary_ctxt_switches:")
            })
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .sum();
        by_thread.insert(t.file_name().to_string_lossy().into_owned(), n);
    }
    Some(by_thread)
}

/// Context switches between two snapshots: each living thread's since the first (all of them for
/// a thread started since). A thread that ended meanwhile drops out, so this may undercount but,
/// unlike a difference of sums, never goes negative.
fn ctx_switches_since(
    before: &std::collections::HashMap<String, f64>,
    after: &std::collections::HashMap<String, f64>,
) -> f64 {
    after
        .iter()
        .map(|(tid, n)| (n - before.get(tid).copied().unwrap_or(0.0)).max(0.0))
        .sum()
}

struct Probe {
    server: Option<u32>,
    server_cs0: std::collections::HashMap<String, f64>,
    server_cpu0: f64,
    client_cpu0: f64,
}

impl Probe {
    fn start(server: Option<u32>) -> Probe {
        if let Some(pid) = server {
            // Resets VmHWM to the current RSS, so the peak is this workload's.
            let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
        }
        Probe {
            server,
            server_cs0: server.and_then(ctx_switches).unwrap_or_default(),
            server_cpu0: server.and_then(cpu_secs).unwrap_or(0.0),
            client_cpu0: cpu_secs(std::process::id()).unwrap_or(0.0),
        }
    }
    fn finish(&self, j: &mut Json) {
        if let Some(pid) = self.server {
            if let Some(c) = cpu_secs(pid) {
                j.n("server_cpu_s", c - self.server_cpu0);
            }
            if let Some(c) = ctx_switches(pid) {
                j.n(
                    "server_ctx_switches",
                    ctx_switches_since(&self.server_cs0, &c),
                );
            }
            if let Some(h) = status_kib(pid, "VmHWM:") {
                j.n("server_hwm_kib", h);
            }
            if let Some(r) = status_kib(pid, "VmRSS:") {
                j.n("server_rss_kib", r);
            }
        }
        if let Some(c) = cpu_secs(std::process::id()) {
            j.n("client_cpu_s", c - self.client_cpu0);
        }
    }
}

// ---- common --------------------------------------------------------------------------------

struct Ctx {
    addr: SocketAddr,
    mount_addr: SocketAddr,
    export: String,
    uid: u32,
    gid: u32,
    qd: usize,
    conns: usize,
    timeout: Duration,
    server_pid: Option<u32>,
    base: Vec<(String, String)>,
}

impl Ctx {
    fn auth(&self) -> Auth {
        Auth::Sys {
            stamp: 0,
            machinename: Bytes::from_static(b"loadgen"),
            uid: self.uid,
            gid: self.gid,
            gids: vec![self.gid],
        }
    }

    fn json(&self, workload: &str) -> Json {
        let mut j = Json(self.base.clone());
        j.s("workload", workload);
        j.n("qd", self.qd as f64).n("conns", self.conns as f64);
        j
    }

    fn client(&self) -> Result<Client, String> {
        let mut c = Client::connect_tcp(self.addr).map_err(|e| format!("connect: {e}"))?;
        c.set_timeout(self.timeout).map_err(|e| e.to_string())?;
        Ok(c.with_auth_sys(self.uid, self.gid, &[self.gid]))
    }

    /// MOUNT over its own connection to the MOUNT port (the NFS port unless --mount-port).
    fn mount(&self, c: &mut Client) -> Result<nfs_fh3, String> {
        let r = if self.mount_addr == self.addr {
            c.mount(self.export.as_bytes())
        } else {
            let mut m = Client::connect_tcp(self.mount_addr)
                .map_err(|e| format!("connect to MOUNT port: {e}"))?
                .with_auth_sys(self.uid, self.gid, &[self.gid]);
            m.mount(self.export.as_bytes())
        };
        r.map_err(|e| format!("MOUNT {}: {e}", self.export))
    }

    /// Opens `conns` pipelined connections (inside the LocalSet).
    async fn connect(&self) -> Result<Vec<Rc<Conn>>, String> {
        self.connect_from(|_| None).await
    }

    /// Opens `conns` pipelined connections, connection `i` from local address `from(i)`.
    async fn connect_from(
        &self,
        from: impl Fn(usize) -> Option<std::net::IpAddr>,
    ) -> Result<Vec<Rc<Conn>>, String> {
        let mut v = Vec::new();
        let seed = (std::process::id() << 12) ^ (Instant::now().elapsed().subsec_nanos());
        for i in 0..self.conns.max(1) {
            v.push(
                Conn::connect(
                    self.addr,
                    from(i),
                    self.auth(),
                    self.timeout,
                    seed.wrapping_add((i as u32) << 24),
                )
                .await
                .map_err(|e| format!("connect: {e}"))?,
            );
        }
        Ok(v)
    }
}

fn walk(c: &mut Client, root: &nfs_fh3, path: &str) -> Result<nfs_fh3, String> {
    let mut fh = root.clone();
    for comp in path.split('/').filter(|s| !s.is_empty()) {
        fh = c
            .lookup(&fh, comp.as_bytes())
            .map_err(|e| format!("LOOKUP {path}: {e}"))?
            .object;
    }
    Ok(fh)
}

fn split_parent(path: &str) -> (&str, &str) {
    let p = path.trim_matches('/');
    match p.rfind('/') {
        Some(i) => (&p[..i], &p[i + 1..]),
        None => ("", p),
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p / 100.0) as usize).min(sorted.len() - 1);
    sorted[i] as f64 / 1000.0
}

/// Fills the throughput and latency fields of one result line.
/// Latency percentiles reported besides p50 and p99 (key, percentile).
const LATENCY_PERCENTILES: [(&str, f64); 7] = [
    ("p1_us", 1.0),
    ("p10_us", 10.0),
    ("p25_us", 25.0),
    ("p75_us", 75.0),
    ("p90_us", 90.0),
    ("p95_us", 95.0),
    ("p999_us", 99.9),
];

fn report(j: &mut Json, s: &mut RunStats, extra_secs: f64) {
    let secs = s.secs + extra_secs;
    s.lat_ns.sort_unstable();
    j.n("ops", s.ops as f64)
        .n("bytes", s.bytes as f64)
        .n("secs", secs)
        .n("ops_per_s", s.ops as f64 / secs)
        .n("mib_per_s", s.bytes as f64 / secs / (1 << 20) as f64)
        .n("p50_us", percentile(&s.lat_ns, 50.0))
        .n("p99_us", percentile(&s.lat_ns, 99.0));
    // The rest of the distribution, for bench/report.py's latency plot.
    for (key, p) in LATENCY_PERCENTILES {
        j.n(key, percentile(&s.lat_ns, p));
    }
    j.n(
        "max_us",
        s.lat_ns.last().map_or(f64::NAN, |&ns| ns as f64 / 1000.0),
    )
    .n(
        "mean_us",
        if s.lat_ns.is_empty() {
            f64::NAN
        } else {
            s.lat_ns.iter().sum::<u64>() as f64 / s.lat_ns.len() as f64 / 1000.0
        },
    );
}

/// Prints a result line for a run that stopped on an error (or "ok").
fn status(j: &mut Json, e: &Option<OpError>) {
    match e {
        None => j.s("status", "ok"),
        Some(OpError::Unsupported(m)) => j.s("status", "unsupported").s("message", m),
        Some(OpError::Failed(m)) => j.s("status", "error").s("message", m),
    };
}

fn print_failure(ctx: &Ctx, workload: &str, e: OpError) {
    let mut j = ctx.json(workload);
    status(&mut j, &Some(e));
    j.print();
}

fn setup_error(e: rnfs_client::Error, what: &str) -> OpError {
    match e {
        rnfs_client::Error::Nfs(s) => status_error(what, s),
        rnfs_client::Error::Rpc(rnfs_client::ReplyStatus::ProcUnavail) => {
            OpError::Unsupported(format!("{what}: PROC_UNAVAIL"))
        }
        e => OpError::Failed(format!("{what}: {e}")),
    }
}

fn payload(len: usize, seed: u64) -> Bytes {
    let mut rng = Rng::new(seed | 1);
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&rng.next().to_le_bytes());
    }
    v.truncate(len);
    Bytes::from(v)
}

// ---- workloads -----------------------------------------------------------------------------

/// After a run that left UNSTABLE writes (and no error), COMMITs `fh` as a client would (timed);
/// a failure becomes the run's error. Returns the seconds the COMMIT took.
async fn commit_if_unstable(
    conn: &Conn,
    fh: &nfs_fh3,
    uncommitted: bool,
    s: &mut engine::RunStats,
) -> f64 {
    if s.error.is_some() || !uncommitted {
        return 0.0;
    }
    let t = Instant::now();
    let r = engine::call_one(conn, NFSPROC3_COMMIT, commit_args(fh)).await;
    s.error = match r {
        Ok(res) => check_commit(res).err(),
        Err(engine::CallError::Rpc(rnfs_client::ReplyStatus::ProcUnavail)) => Some(
            OpError::Failed("COMMIT unavailable after UNSTABLE writes".into()),
        ),
        Err(e) => Some(OpError::Failed(format!("COMMIT: {e}"))),
    };
    t.elapsed().as_secs_f64()
}

async fn io_workload(ctx: &Ctx, o: &Opts, kind: &str, name: &str) -> Result<(), OpError> {
    let fail = |e: String| OpError::Failed(e);
    let path = o
        .opt("file")
        .ok_or_else(|| fail("--file is required".into()))?;
    let bs = o.size("bs", 1 << 20).map_err(fail)?;
    let secs: f64 = o.num("secs", 5.0).map_err(fail)?;
    let seed: u64 = o.num("seed", 0x9e37_79b9_7f4a_7c15).map_err(fail)?;
    let write = kind.ends_with("write");
    let seq = kind.starts_with("seq");

    let mut c = ctx.client().map_err(fail)?;
    let root = ctx.mount(&mut c).map_err(fail)?;
    let (fh, size) = if kind == "seq-write" {
        let size = o.size("size", 1 << 30).map_err(fail)?;
        let (parent, leaf) = split_parent(&path);
        let dir = walk(&mut c, &root, parent).map_err(fail)?;
        let ok = c
            .create(
                &dir,
                leaf.as_bytes(),
                createhow3::Unchecked(sattr3 {
                    mode: Some(0o644),
                    size: Some(0),
                    ..Default::default()
                }),
            )
            .map_err(|e| setup_error(e, "CREATE"))?;
        let fh = match ok.obj {
            Some(fh) => fh,
            None => walk(&mut c, &root, &path).map_err(fail)?,
        };
        (fh, size)
    } else {
        let fh = walk(&mut c, &root, &path).map_err(fail)?;
        let attr = c.getattr(&fh).map_err(|e| fail(format!("GETATTR: {e}")))?;
        (fh, o.size("size", attr.size).map_err(fail)?.min(attr.size))
    };
    if size < bs {
        return Err(fail(format!("{path}: {size} bytes, less than one block")));
    }
    let conns = ctx.connect().await.map_err(fail)?;
    let pattern = if seq {
        Pattern::Seq { next: 0 }
    } else {
        Pattern::Rand {
            rng: Rng::new(seed),
            deadline: Instant::now() + Duration::from_secs_f64(secs),
        }
    };
    let probe = Probe::start(ctx.server_pid);
    let mut j = ctx.json(name);
    j.n("bs", bs as f64).n("size", size as f64);
    if write {
        let stable = match o.str("stable", "unstable").as_str() {
            "unstable" => stable_how::UNSTABLE,
            "data_sync" => stable_how::DATA_SYNC,
            "file_sync" => stable_how::FILE_SYNC,
            s => return Err(fail(format!("bad --stable {s}"))),
        };
        let gen = Rc::new(RefCell::new(WriteGen {
            fh: fh.clone(),
            size,
            bs,
            pattern,
            stable,
            data: payload((bs as usize).max(1 << 20) + (1 << 20), seed),
            uncommitted: false,
        }));
        let mut s = engine::run(&conns, ctx.qd, gen.clone()).await;
        let uncommitted = gen.borrow().uncommitted;
        let commit_secs = commit_if_unstable(&conns[0], &fh, uncommitted, &mut s).await;
        if kind == "seq-write" && o.str("keep", "no") != "yes" {
            // Untimed: remove the file over NFS, so the server's caches stay coherent.
            let (parent, leaf) = split_parent(&path);
            if let Ok(dir) = walk(&mut c, &root, parent) {
                let _ = c.remove(&dir, leaf.as_bytes());
            }
        }
        j.n("commit_secs", commit_secs).n(
            "committed_by_write",
            if gen.borrow().uncommitted { 0.0 } else { 1.0 },
        );
        report(&mut j, &mut s, commit_secs);
        probe.finish(&mut j);
        status(&mut j, &s.error);
    } else {
        let gen = Rc::new(RefCell::new(ReadGen {
            fh,
            size,
            bs,
            pattern,
        }));
        let mut s = engine::run(&conns, ctx.qd, gen).await;
        report(&mut j, &mut s, 0.0);
        probe.finish(&mut j);
        status(&mut j, &s.error);
    }
    j.print();
    Ok(())
}

async fn meta_workload(ctx: &Ctx, o: &Opts, name: &str) -> Result<(), OpError> {
    let fail = |e: String| OpError::Failed(e);
    let count: usize = o.num("count", 10_000).map_err(fail)?;
    let dirpath = o
        .opt("dir")
        .unwrap_or_else(|| format!("meta-{}", std::process::id()));
    let mut c = ctx.client().map_err(fail)?;
    let root = ctx.mount(&mut c).map_err(fail)?;
    let (parent, leaf) = split_parent(&dirpath);
    let pfh = walk(&mut c, &root, parent).map_err(fail)?;
    let phases = [MetaOp::Create, MetaOp::Setattr, MetaOp::Remove];
    let dir = match c.mkdir(
        &pfh,
        leaf.as_bytes(),
        sattr3 {
            mode: Some(0o755),
            ..Default::default()
        },
    ) {
        Ok(ok) => match ok.obj {
            Some(fh) => fh,
            None => walk(&mut c, &pfh, leaf).map_err(fail)?,
        },
        Err(e) => {
            let e = setup_error(e, "MKDIR");
            for p in phases {
                print_failure(ctx, &format!("{name}-{}", p.label()), e.clone());
            }
            return Ok(());
        }
    };
    let conns = ctx.connect().await.map_err(fail)?;
    let names: Vec<String> = (0..count).map(|i| format!("f{i:06}")).collect();
    let mut fhs = vec![None; count];
    let mut failed: Option<OpError> = None;
    for op in phases {
        let label = format!("{name}-{}", op.label());
        if let Some(e) = &failed {
            print_failure(ctx, &label, e.clone());
            continue;
        }
        if op == MetaOp::Setattr && fhs.iter().any(Option::is_none) {
            // CREATE returned no handle for some files: look them up (untimed).
            let g = Rc::new(RefCell::new(MetaGen {
                op: MetaOp::Lookup,
                dir: dir.clone(),
                names: names.clone(),
                fhs: fhs.clone(),
                next: 0,
            }));
            let s = engine::run(&conns, ctx.qd, g.clone()).await;
            if let Some(e) = s.error {
                failed = Some(e.clone());
                print_failure(ctx, &label, e);
                continue;
            }
            fhs = std::mem::take(&mut g.borrow_mut().fhs);
        }
        let gen = Rc::new(RefCell::new(MetaGen {
            op,
            dir: dir.clone(),
            names: names.clone(),
            fhs: std::mem::take(&mut fhs),
            next: 0,
        }));
        let probe = Probe::start(ctx.server_pid);
        let mut s = engine::run(&conns, ctx.qd, gen.clone()).await;
        let mut j = ctx.json(&label);
        j.n("count", count as f64);
        report(&mut j, &mut s, 0.0);
        probe.finish(&mut j);
        status(&mut j, &s.error);
        j.print();
        fhs = std::mem::take(&mut gen.borrow_mut().fhs);
        failed = s.error;
    }
    // Best effort clean-up (a failed run leaves files; the harness removes the directory).
    let _ = c.rmdir(&pfh, leaf.as_bytes());
    Ok(())
}

async fn stat_workload(ctx: &Ctx, o: &Opts, name: &str) -> Result<(), OpError> {
    let fail = |e: String| OpError::Failed(e);
    let count: usize = o.num("count", 10_000).map_err(fail)?;
    let dirpath = o
        .opt("dir")
        .ok_or_else(|| fail("--dir is required".into()))?;
    let mut c = ctx.client().map_err(fail)?;
    let root = ctx.mount(&mut c).map_err(fail)?;
    let dir = walk(&mut c, &root, &dirpath).map_err(fail)?;
    let conns = ctx.connect().await.map_err(fail)?;
    // Untimed: names and handles of the first `count` entries.
    let mut lister = ReaddirplusGen::new(dir.clone(), 8192, 65536);
    lister.keep = Some(Vec::new());
    let lister = Rc::new(RefCell::new(LimitGen {
        inner: lister,
        limit: count,
    }));
    let s = engine::run(&conns, 1, lister.clone()).await;
    if let Some(e) = s.error {
        return Err(e);
    }
    let mut keep = lister.borrow_mut().inner.keep.take().unwrap_or_default();
    keep.truncate(count);
    let names: Vec<String> = keep.iter().map(|(n, _)| n.clone()).collect();
    let fhs: Vec<Option<nfs_fh3>> = keep.into_iter().map(|(_, fh)| Some(fh)).collect();
    for op in [MetaOp::Lookup, MetaOp::Getattr] {
        let gen = Rc::new(RefCell::new(MetaGen {
            op,
            dir: dir.clone(),
            names: names.clone(),
            fhs: fhs.clone(),
            next: 0,
        }));
        let probe = Probe::start(ctx.server_pid);
        let mut s = engine::run(&conns, ctx.qd, gen).await;
        let mut j = ctx.json(&format!("{name}-{}", op.label()));
        j.n("count", names.len() as f64);
        report(&mut j, &mut s, 0.0);
        probe.finish(&mut j);
        status(&mut j, &s.error);
        j.print();
    }
    Ok(())
}

/// Stops a directory listing once `limit` entries are kept.
struct LimitGen {
    inner: ReaddirplusGen,
    limit: usize,
}

impl Gen for LimitGen {
    fn next(&mut self) -> Option<Req> {
        if self.inner.keep.as_ref().map_or(0, Vec::len) >= self.limit {
            return None;
        }
        self.inner.next()
    }
    fn done(&mut self, tag: u64, res: Bytes) -> Result<u64, OpError> {
        self.inner.done(tag, res)
    }
}
use engine::Req;

async fn readdirplus_workload(ctx: &Ctx, o: &Opts, name: &str) -> Result<(), OpError> {
    let fail = |e: String| OpError::Failed(e);
    let dirpath = o
        .opt("dir")
        .ok_or_else(|| fail("--dir is required".into()))?;
    let dircount = o.size("dircount", 8192).map_err(fail)? as u32;
    let maxcount = o.size("maxcount", 65536).map_err(fail)? as u32;
    let mut c = ctx.client().map_err(fail)?;
    let root = ctx.mount(&mut c).map_err(fail)?;
    let dir = walk(&mut c, &root, &dirpath).map_err(fail)?;
    let conns = ctx.connect().await.map_err(fail)?;
    let gen = Rc::new(RefCell::new(ReaddirplusGen::new(dir, dircount, maxcount)));
    let probe = Probe::start(ctx.server_pid);
    let mut s = engine::run(&conns, 1, gen.clone()).await;
    let g = gen.borrow();
    let mut j = ctx.json(name);
    j.n("dircount", dircount as f64)
        .n("maxcount", maxcount as f64)
        .n("entries", g.entries as f64)
        .n("pages", g.pages as f64)
        .n("entries_without_attrs_or_handle", g.incomplete as f64)
        .n("entries_per_s", g.entries as f64 / s.secs);
    report(&mut j, &mut s, 0.0);
    probe.finish(&mut j);
    status(&mut j, &s.error);
    j.print();
    Ok(())
}

/// Many clients at once, each with one call in flight, each call drawn from a mix of the other
/// workloads (see [`MixGen`]). Client `i` connects from 127.0.1.(i+1) when the server is on IPv4
/// loopback, so the server sees as many client hosts as connections (and per-host connection
/// limits do not apply).
async fn mix_workload(ctx: &Ctx, o: &Opts, name: &str) -> Result<(), OpError> {
    let fail = |e: String| OpError::Failed(e);
    let need = |k: &str| o.opt(k).ok_or_else(|| fail(format!("--{k} is required")));
    let (read_path, write_path, dir_path) = (need("file")?, need("write-file")?, need("dir")?);
    let secs: f64 = o.num("secs", 10.0).map_err(fail)?;
    let seed: u64 = o.num("seed", 0x9e37_79b9_7f4a_7c15).map_err(fail)?;
    let count: usize = o.num("count", 10_000).map_err(fail)?;
    let mut c = ctx.client().map_err(fail)?;
    let root = ctx.mount(&mut c).map_err(fail)?;
    let read_fh = walk(&mut c, &root, &read_path).map_err(fail)?;
    let write_fh = walk(&mut c, &root, &write_path).map_err(fail)?;
    let size_of = |c: &mut Client, fh: &nfs_fh3| {
        c.getattr(fh)
            .map(|a| a.size)
            .map_err(|e| fail(format!("GETATTR: {e}")))
    };
    let (read_size, write_size) = (size_of(&mut c, &read_fh)?, size_of(&mut c, &write_fh)?);
    let dir = walk(&mut c, &root, &dir_path).map_err(fail)?;
    // Untimed: names and handles of the directory's first `count` entries, and a scratch
    // directory for CREATE/REMOVE.
    let mut lister = ReaddirplusGen::new(dir.clone(), 8192, 65536);
    lister.keep = Some(Vec::new());
    let lister = Rc::new(RefCell::new(LimitGen {
        inner: lister,
        limit: count,
    }));
    let setup = Conn::connect(ctx.addr, None, ctx.auth(), ctx.timeout, std::process::id())
        .await
        .map_err(|e| fail(format!("connect: {e}")))?;
    let s = engine::run(&[setup], 1, lister.clone()).await;
    if let Some(e) = s.error {
        return Err(e);
    }
    let mut entries = lister.borrow_mut().inner.keep.take().unwrap_or_default();
    entries.truncate(count);
    if entries.is_empty() {
        return Err(fail(format!("{dir_path}: no entries")));
    }
    let scratch_name = format!("mix-{}", std::process::id());
    let scratch = c
        .mkdir(
            &root,
            scratch_name.as_bytes(),
            sattr3 {
                mode: Some(0o755),
                ..Default::default()
            },
        )
        .map_err(|e| setup_error(e, "MKDIR"))?
        .obj
        .ok_or_else(|| fail("MKDIR returned no handle".into()))?;
    let from = |i: usize| match ctx.addr.ip() {
        std::net::IpAddr::V4(_) => Some(std::net::IpAddr::V4(std::net::Ipv4Addr::new(
            127,
            0,
            1 + (i / 250) as u8,
            1 + (i % 250) as u8,
        ))),
        std::net::IpAddr::V6(_) => None,
    };
    let conns = ctx.connect_from(from).await.map_err(fail)?;
    let gen = Rc::new(RefCell::new(MixGen::new(MixSetup {
        read_fh,
        read_size,
        write_fh: write_fh.clone(),
        write_size,
        dir,
        entries,
        scratch: scratch.clone(),
        seed,
        deadline: Instant::now() + Duration::from_secs_f64(secs),
    })));
    let probe = Probe::start(ctx.server_pid);
    let mut s = engine::run(&conns, ctx.qd, gen.clone()).await;
    let uncommitted = gen.borrow().uncommitted;
    let commit_secs = commit_if_unstable(&conns[0], &write_fh, uncommitted, &mut s).await;
    let mut j = ctx.json(name);
    j.n("clients", conns.len() as f64);
    for (op, n) in gen.borrow().counts() {
        j.n(&format!("ops_{op}"), n as f64);
    }
    report(&mut j, &mut s, commit_secs);
    probe.finish(&mut j);
    status(&mut j, &s.error);
    j.print();
    // Untimed clean-up: files still created, then the scratch directory.
    for leaf in gen.borrow().leftovers() {
        let _ = c.remove(&scratch, leaf.as_bytes());
    }
    let _ = c.rmdir(&root, scratch_name.as_bytes());
    Ok(())
}

// ---- the machine's own limit ---------------------------------------------------------------

/// Where the request/reply server's replies come from.
enum ReplySource {
    /// One buffer, written with `write` (copied into the socket; it stays in the CPU's caches).
    Buffer(Vec<u8>),
    /// A file, sent with `sendfile` from its page cache (no copy on the sending side, as a
    /// zero-copy server does), cycling through the file from `offset`.
    File {
        file: std::fs::File,
        size: i64,
        offset: i64,
    },
}

impl ReplySource {
    fn send(&mut self, s: &mut TcpStream, bs: usize) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        match self {
            ReplySource::Buffer(msg) => s.write_all(msg),
            ReplySource::File { file, size, offset } => {
                let mut left = bs;
                while left > 0 {
                    if *offset + left as i64 > *size {
                        *offset = 0;
                    }
                    // SAFETY: both descriptors are open for the call; `offset` is a valid i64
                    // the kernel updates.
                    let n =
                        unsafe { libc::sendfile(s.as_raw_fd(), file.as_raw_fd(), offset, left) };
                    if n <= 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    left -= n as usize;
                }
                Ok(())
            }
        }
    }
}

fn tcp_limit(ctx: &Ctx, o: &Opts) -> Result<(), String> {
    let bs = o.size("bs", 1 << 20)? as usize;
    let secs: f64 = o.num("secs", 3.0)?;
    // With --qd N > 1, N requests are in flight (the ceiling for pipelined READs); with --from
    // FILE, replies are sent from FILE's page cache with sendfile (the ceiling for a zero-copy
    // READ). Either way only the request/reply form runs: the stream form is one figure.
    let depth = o.num::<usize>("qd", 1)?.max(1);
    let from = o.opt("from");
    let modes: &[&str] = if depth > 1 || from.is_some() {
        &["rr"]
    } else {
        &["stream", "rr"]
    };
    for &mode in modes {
        let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let addr = l.local_addr().map_err(|e| e.to_string())?;
        let rr = mode == "rr";
        let mut source = match &from {
            None => ReplySource::Buffer(vec![0x5au8; bs]),
            Some(path) => {
                let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
                let size = file.metadata().map_err(|e| format!("{path}: {e}"))?.len() as i64;
                if size < bs as i64 {
                    return Err(format!("{path}: smaller than --bs"));
                }
                ReplySource::File {
                    file,
                    size,
                    offset: 0,
                }
            }
        };
        let server = std::thread::spawn(move || -> std::io::Result<()> {
            let (mut s, _) = l.accept()?;
            s.set_nodelay(true)?;
            let mut req = [0u8; 16];
            loop {
                if rr && s.read_exact(&mut req).is_err() {
                    return Ok(());
                }
                if source.send(&mut s, bs).is_err() {
                    return Ok(());
                }
            }
        });
        let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; bs];
        // Send times of the requests not yet answered, oldest first.
        let mut sent = std::collections::VecDeque::with_capacity(depth);
        let probe = Probe::start(None);
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs_f64(secs);
        let mut lat = Vec::new();
        let mut n = 0u64;
        while Instant::now() < deadline {
            if rr {
                // 16-byte requests are far below the socket buffers: these writes never wait
                // for the replies still to be read.
                while sent.len() < depth {
                    s.write_all(&[0u8; 16]).map_err(|e| e.to_string())?;
                    sent.push_back(Instant::now());
                }
            }
            let t = sent.pop_front().unwrap_or_else(Instant::now);
            s.read_exact(&mut buf).map_err(|e| e.to_string())?;
            lat.push(t.elapsed().as_nanos() as u64);
            n += 1;
        }
        let mut st = RunStats {
            ops: n,
            bytes: n * bs as u64,
            secs: t0.elapsed().as_secs_f64(),
            lat_ns: lat,
            error: None,
        };
        drop(s);
        let _ = server.join();
        // Named by what differs from the 1 MiB, one-in-flight, buffered case.
        let mut workload = format!("tcp-{mode}");
        if from.is_some() {
            workload += "-sendfile";
        }
        if bs != 1 << 20 {
            workload += &format!("-{bs}B");
        }
        if depth > 1 {
            workload += &format!("-qd{depth}");
        }
        let mut j = ctx.json(&workload);
        j.n("bs", bs as f64);
        report(&mut j, &mut st, 0.0);
        probe.finish(&mut j);
        j.s("status", "ok");
        j.print();
    }
    Ok(())
}

// ---- main ----------------------------------------------------------------------------------

/// Keeps freed reply buffers in the process. The reader hands each reply out as a slice of its
/// receive buffer; with several 1 MiB replies in flight the buffer is often still shared when it
/// needs room, so a new one is allocated. glibc's defaults return such blocks to the kernel when
/// freed (mmap above 128 KiB, heap trimmed above 128 KiB free at the top), so every new buffer was
/// page-faulted in again as the kernel copied a reply into it: 12,000–150,000 faults per 1 GiB
/// read at 8 in flight (1,450 at 1), and the client, not the server, set the pace.
fn keep_freed_memory() {
    const MMAP_THRESHOLD_BYTES: libc::c_int = 32 << 20; // glibc's maximum on 64-bit
    const TRIM_THRESHOLD_BYTES: libc::c_int = 1 << 30;
    // SAFETY: mallopt only changes allocator tuning parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES);
    }
}

fn main() {
    keep_freed_memory();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(kind) = args.first().cloned() else {
        eprintln!("{HELP}");
        std::process::exit(2);
    };
    if matches!(kind.as_str(), "help" | "-h" | "--help") {
        println!("{HELP}");
        return;
    }
    let o = match Opts::parse(&args[1..]) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("loadgen: {e}\n\n{HELP}");
            std::process::exit(2);
        }
    };
    let ctx = match make_ctx(&o, &kind) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(2);
        }
    };
    let name = o.str("name", &kind);
    if kind == "tcp-limit" {
        if let Err(e) = tcp_limit(&ctx, &o) {
            eprintln!("loadgen: tcp-limit: {e}");
            std::process::exit(1);
        }
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    let proto = o.str("proto", "v3");
    let r = local.block_on(&rt, async {
        if proto == "v4" {
            return match kind.as_str() {
                "seq-read" | "rand-read" | "seq-write" | "rand-write" => {
                    v4::io_workload(&ctx, &o, &kind, &name).await
                }
                "getattr" => v4::getattr_workload(&ctx, &o, &name).await,
                "open-read-close" => v4::open_read_close_workload(&ctx, &o, &name).await,
                k => Err(OpError::Failed(format!(
                    "unknown NFSv4.1 workload {k:?} (see loadgen help)"
                ))),
            };
        } else if proto != "v3" {
            return Err(OpError::Failed(format!("bad --proto {proto:?} (v3 or v4)")));
        }
        match kind.as_str() {
            "seq-read" | "rand-read" | "seq-write" | "rand-write" => {
                io_workload(&ctx, &o, &kind, &name).await
            }
            "meta" => meta_workload(&ctx, &o, &name).await,
            "stat" => stat_workload(&ctx, &o, &name).await,
            "readdirplus" => readdirplus_workload(&ctx, &o, &name).await,
            "mix" => mix_workload(&ctx, &o, &name).await,
            k => Err(OpError::Failed(format!(
                "unknown workload {k:?} (see loadgen help)"
            ))),
        }
    });
    if let Err(e) = r {
        let failed = matches!(e, OpError::Failed(_));
        print_failure(&ctx, &name, e);
        if failed {
            std::process::exit(1);
        }
    }
}

fn make_ctx(o: &Opts, kind: &str) -> Result<Ctx, String> {
    let addr: SocketAddr = o
        .str("addr", "127.0.0.1:2049")
        .parse()
        .map_err(|e| format!("bad --addr: {e}"))?;
    if !addr.ip().is_loopback() {
        return Err("loadgen only targets loopback addresses".into());
    }
    let mut base = Vec::new();
    for k in ["server", "rep"] {
        if let Some(v) = o.opt(k) {
            base.push((
                k.to_string(),
                if k == "rep" {
                    v.parse::<u64>().map_err(|_| "bad --rep")?.to_string()
                } else {
                    json_str(&v)
                },
            ));
        }
    }
    base.push(("kind".into(), json_str(kind)));
    let mut mount_addr = addr;
    if let Some(p) = o.opt("mount-port") {
        mount_addr.set_port(p.parse().map_err(|_| "bad --mount-port")?);
    }
    Ok(Ctx {
        addr,
        mount_addr,
        export: o.str("export", "/"),
        uid: o.num("uid", 1000)?,
        gid: o.num("gid", 1000)?,
        qd: o.num("qd", 1)?,
        conns: o.num("conns", 1)?,
        timeout: Duration::from_secs_f64(o.num("timeout", 60.0)?),
        server_pid: o
            .opt("server-pid")
            .map(|p| p.parse())
            .transpose()
            .map_err(|_| "bad --server-pid")?,
        base,
    })
}
