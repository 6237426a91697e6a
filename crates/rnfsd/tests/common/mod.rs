//! Shared harness for the `rnfsd` integration tests: a [`TestServer`] that runs the real binary on a
//! random loopback port over a scratch directory, and bounded runners for the libnfs client tools
//! (`nfs-ls`, `nfs-cat`, `nfs-cp`).
//!
//! Rules kept here so every test gets them for free:
//! * every server listens on `127.0.0.1:0` (or what a test asks, always loopback) and reports its
//!   port through `--ready-file`; nothing else on the machine is touched (`--portmap off`, so no
//!   server ever binds port 111 when the tests run as root);
//! * everything lives in one [`tempfile::TempDir`]: `export/`, `state/`, the ready file and the
//!   server's log;
//! * a server is always stopped: SIGTERM, then SIGKILL after [`STOP_TIMEOUT`], in `Drop`; and it
//!   is started with `PR_SET_PDEATHSIG` so it dies with the test process even if that is killed;
//! * every external command runs under a deadline and is killed when it passes;
//! * when a test panics, the server's log is printed.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::io::Read;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub mod ceph;
pub mod nlm;

/// How long a server may take to write its ready file.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a server may take to exit after SIGTERM before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Default deadline for one libnfs tool invocation on small data.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(30);
/// Most of the server log printed when a test fails.
const LOG_DUMP_BYTES: u64 = 64 << 10;

/// The uid/gid of an ordinary user, as libnfs will claim in AUTH_SYS.
pub const USER: u32 = 1000;

/// A transport in the ready file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

/// One line of the ready file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    pub proto: Proto,
    pub addr: SocketAddr,
}

/// Parses the ready file: one `tcp ADDR:PORT` or `udp ADDR:PORT` line per bound socket
/// (`[::1]:PORT` for IPv6).
pub fn parse_ready(text: &str) -> Result<Vec<Listener>, String> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (proto, addr) = line
            .split_once(' ')
            .ok_or_else(|| format!("ready-file line without a space: {line:?}"))?;
        let proto = match proto {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            other => return Err(format!("unknown transport {other:?} in {line:?}")),
        };
        let addr: SocketAddr = addr
            .trim()
            .parse()
            .map_err(|e| format!("bad address in {line:?}: {e}"))?;
        out.push(Listener { proto, addr });
    }
    if out.is_empty() {
        return Err("ready file is empty".into());
    }
    Ok(out)
}

/// The real `rnfsd` binary serving a scratch directory.
pub struct TestServer {
    dir: tempfile::TempDir,
    export: PathBuf,
    state_dir: PathBuf,
    ready_file: PathBuf,
    log_path: PathBuf,
    /// `--listen` values for the next start (resolved to the bound ports after the first start, so
    /// a restart keeps the ports).
    listen: Vec<String>,
    extra_args: Vec<OsString>,
    /// When set, the server runs `serve --config FILE` instead of `serve DIR`.
    config: Option<PathBuf>,
    child: Option<Child>,
    listeners: Vec<Listener>,
    starts: u32,
    starts_with_fresh_state: u32,
}

impl TestServer {
    /// A scratch directory with an empty `export/` (mode 0755) and `state/`; not started yet, so a
    /// test can fill the export first.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("rnfsd-test-")
            .tempdir()
            .unwrap();
        // TempDir is 0700; let any uid traverse it, as a real export's parents usually allow.
        set_mode(dir.path(), 0o755);
        let export = dir.path().join("export");
        std::fs::create_dir(&export).unwrap();
        set_mode(&export, 0o755);
        let export = export.canonicalize().unwrap();
        let state_dir = dir.path().join("state");
        std::fs::create_dir(&state_dir).unwrap();
        set_mode(&state_dir, 0o700);
        TestServer {
            ready_file: dir.path().join("ready"),
            log_path: dir.path().join("rnfsd.log"),
            export,
            state_dir,
            dir,
            listen: vec!["127.0.0.1:0".into()],
            extra_args: Vec::new(),
            config: None,
            child: None,
            listeners: Vec::new(),
            starts: 0,
            starts_with_fresh_state: 0,
        }
    }

    /// `new()` then `start()`.
    pub fn start_default() -> Self {
        let mut s = Self::new();
        s.start();
        s
    }

    /// Replaces the `--listen` addresses (loopback only!).
    pub fn listen(mut self, addrs: &[&str]) -> Self {
        self.listen = addrs.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Adds arguments after `serve DIR` on every start.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.extra_args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Serves with this TOML configuration (written to `rnfsd.toml` in the scratch directory) from
    /// the next start on: `serve --config FILE` instead of `serve DIR`. `--state-dir`,
    /// `--ready-file`, `--portmap off` and `--listen` are still passed, so the file's own `listen`
    /// and `state_dir` do not matter. Use [`TestServer::export`] as an export `path` (without a
    /// `mount_path`) to keep [`TestServer::mount_path`] and [`TestServer::url`] right.
    pub fn set_config(&mut self, toml: &str) {
        let path = self.dir.path().join("rnfsd.toml");
        std::fs::write(&path, toml).unwrap();
        self.config = Some(path);
    }

    /// The scratch directory holding `export/`, `state/`, the ready file and the log.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// The exported directory (canonical, so it is also the mount path).
    pub fn export(&self) -> &Path {
        &self.export
    }

    /// The export's mount path as a string.
    pub fn mount_path(&self) -> String {
        self.export.to_str().expect("UTF-8 temp path").to_owned()
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Points later starts at a new, empty state directory (a new file-handle key).
    pub fn use_fresh_state_dir(&mut self) {
        self.starts_with_fresh_state += 1;
        let dir = self
            .dir
            .path()
            .join(format!("state-{}", self.starts_with_fresh_state));
        std::fs::create_dir(&dir).unwrap();
        set_mode(&dir, 0o700);
        self.state_dir = dir;
    }

    pub fn listeners(&self) -> &[Listener] {
        &self.listeners
    }

    /// The first TCP listener's address.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.addr_of(Proto::Tcp)
    }

    /// The first UDP listener's address.
    pub fn udp_addr(&self) -> SocketAddr {
        self.addr_of(Proto::Udp)
    }

    fn addr_of(&self, proto: Proto) -> SocketAddr {
        self.listeners
            .iter()
            .find(|l| l.proto == proto)
            .unwrap_or_else(|| panic!("no {proto:?} listener in {:?}", self.listeners))
            .addr
    }

    /// The TCP port (NFS, MOUNT and portmap all answer on it).
    pub fn port(&self) -> u16 {
        self.tcp_addr().port()
    }

    /// A libnfs URL for `path` below the export (`""` = the export itself, else starting with
    /// `/`), with AUTH_SYS `uid`/`gid`, NFSv3, and both NFS and MOUNT on our port (no portmapper).
    pub fn url(&self, path: &str, uid: u32, gid: u32) -> String {
        let addr = self.tcp_addr();
        let host = match addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        format!(
            "nfs://{host}{}{path}?version=3&nfsport={p}&mountport={p}&uid={uid}&gid={gid}",
            self.mount_path(),
            p = addr.port()
        )
    }

    /// Starts the server and waits for its ready file. Panics (with the log) if it exits or is not
    /// ready within [`READY_TIMEOUT`].
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let _ = std::fs::remove_file(&self.ready_file);
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap();
        self.starts += 1;
        {
            use std::io::Write;
            writeln!(log, "===== test harness: start #{} =====", self.starts).unwrap();
        }
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rnfsd"));
        cmd.arg("serve");
        match &self.config {
            Some(config) => cmd.arg("--config").arg(config),
            None => cmd.arg(&self.export),
        };
        cmd.arg("--state-dir")
            .arg(&self.state_dir)
            .arg("--ready-file")
            .arg(&self.ready_file)
            .arg("--portmap")
            .arg("off");
        for l in &self.listen {
            cmd.arg("--listen").arg(l);
        }
        cmd.args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        die_with_parent(&mut cmd);
        let started = Instant::now();
        let mut child = cmd.spawn().expect("cannot run the rnfsd binary");
        loop {
            if let Ok(text) = std::fs::read_to_string(&self.ready_file) {
                if let Ok(listeners) = parse_ready(&text) {
                    self.listeners = listeners;
                    break;
                }
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "rnfsd exited ({status}) before it was ready\n{}",
                    self.log_tail()
                );
            }
            if started.elapsed() > READY_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "rnfsd not ready after {READY_TIMEOUT:?} (ready file {:?})\n{}",
                    std::fs::read_to_string(&self.ready_file).ok(),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
        // Restarts listen where this run listens, so clients keep their port.
        self.listen = self
            .listeners
            .iter()
            .filter(|l| l.proto == Proto::Tcp)
            .map(|l| l.addr.to_string())
            .collect();
    }

    /// Sends `signal` and waits up to [`STOP_TIMEOUT`]; returns the exit status, or `None` if the
    /// server had to be killed.
    pub fn stop_with(&mut self, signal: libc::c_int) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        let pid = libc::pid_t::try_from(child.id()).unwrap();
        // SAFETY: kill(2) on our own child, which has not been reaped (try_wait said so above).
        unsafe {
            libc::kill(pid, signal);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return None;
                }
            }
        }
    }

    /// SIGKILL (a crash: no shutdown code runs) and reap; returns the exit status.
    pub fn kill_hard(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = child.kill();
        child.wait().ok()
    }

    /// The server's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGTERM, bounded; returns the exit status (`None` = had to SIGKILL).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.stop_with(libc::SIGTERM)
    }

    /// Stops (SIGTERM) and starts again with the same export, state dir and ports. Panics if the
    /// server did not exit cleanly.
    pub fn restart(&mut self) {
        let status = self.stop();
        assert!(
            status.is_some_and(|s| s.success()),
            "rnfsd did not exit cleanly on SIGTERM: {status:?}\n{}",
            self.log_tail()
        );
        self.start();
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().unwrap().is_none(),
            None => false,
        }
    }

    /// The server's log so far (all runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The end of the log, for failure messages.
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log_path) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            if len > LOG_DUMP_BYTES {
                use std::io::Seek;
                let _ = f.seek(std::io::SeekFrom::Start(len - LOG_DUMP_BYTES));
                text.push_str("[... log truncated ...]\n");
            }
            let mut buf = Vec::new();
            let _ = f.read_to_end(&mut buf);
            text.push_str(&String::from_utf8_lossy(&buf));
        }
        format!(
            "----- rnfsd log ({}) -----\n{text}----- end of rnfsd log -----",
            self.log_path.display()
        )
    }
}

impl Default for TestServer {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let running = self.child.is_some();
        let status = self.stop();
        if std::thread::panicking() {
            eprintln!(
                "test failed; rnfsd exit on SIGTERM: {status:?}\n{}",
                self.log_tail()
            );
        } else if running && status.is_none() {
            eprintln!(
                "warning: rnfsd ignored SIGTERM for {STOP_TIMEOUT:?} and was killed\n{}",
                self.log_tail()
            );
        }
    }
}

/// The child gets SIGKILL if the thread that spawned it dies (e.g. the test process is killed by
/// the runner's timeout), so no server outlives its test.
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl(2) is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Whether the tests run as root (they can then create files owned by others).
pub fn running_as_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and has no side effects.
    unsafe { libc::geteuid() == 0 }
}

/// Fails the test with `why` unless it runs as root.
#[track_caller]
pub fn require_root(why: &str) {
    assert!(running_as_root(), "needs root: {why}");
}

/// A `/proc/PID/status` field in KiB (VmHWM = peak resident set, VmRSS = resident now).
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

pub fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
}

// -------------------------------------------------------------------------------------------------
// Bounded external commands

/// What a finished command produced.
#[derive(Debug)]
pub struct ToolOutput {
    pub desc: String,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub elapsed: Duration,
}

impl ToolOutput {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Panics with everything known unless the command succeeded.
    pub fn assert_success(&self) -> &Self {
        assert!(self.success(), "{} failed:\n{}", self.desc, self.describe());
        self
    }

    /// Panics unless the command failed.
    pub fn assert_failure(&self) -> &Self {
        assert!(
            !self.success(),
            "{} should have failed:\n{}",
            self.desc,
            self.describe()
        );
        self
    }

    /// Exit status, time, stderr and the start of stdout.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "status: {}, {:.2?}\nstderr: {}\n",
            self.status, self.elapsed, self.stderr
        );
        let shown = &self.stdout[..self.stdout.len().min(2048)];
        let _ = write!(
            s,
            "stdout ({} bytes): {}",
            self.stdout.len(),
            String::from_utf8_lossy(shown)
        );
        s
    }
}

/// A running command whose stdout the caller reads; it is killed at its deadline.
pub struct Bounded {
    pub desc: String,
    pub stdout: Option<ChildStdout>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    waiter: Option<JoinHandle<(ExitStatus, bool)>>,
    started: Instant,
    timeout: Duration,
}

impl Bounded {
    /// Spawns `cmd` (stdin null, stdout and stderr piped) with a deadline.
    pub fn spawn(cmd: &mut Command, timeout: Duration) -> Self {
        let desc = describe_cmd(cmd);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        die_with_parent(cmd);
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {desc}: {e}"));
        let stdout = child.stdout.take();
        let mut stderr_pipe = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stderr_pipe.read_to_end(&mut buf);
            buf
        });
        // The waiter owns the child: it alone reaps it, so killing it at the deadline can never hit
        // a recycled pid.
        let deadline = started + timeout;
        let waiter = std::thread::spawn(move || loop {
            match child.try_wait() {
                Ok(Some(status)) => return (status, false),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => {
                    let _ = child.kill();
                    let status = child.wait().expect("wait for killed child");
                    return (status, true);
                }
            }
        });
        Bounded {
            desc,
            stdout,
            stderr: Some(stderr),
            waiter: Some(waiter),
            started,
            timeout,
        }
    }

    /// Waits for the command (bounded by its deadline). Panics if the deadline passed.
    pub fn finish(mut self, stdout: Vec<u8>) -> ToolOutput {
        drop(self.stdout.take());
        let (status, timed_out) = self.waiter.take().unwrap().join().unwrap();
        let stderr = self.stderr.take().unwrap().join().unwrap();
        let out = ToolOutput {
            desc: self.desc.clone(),
            status,
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            elapsed: self.started.elapsed(),
        };
        assert!(
            !timed_out,
            "{} did not finish within {:?} and was killed:\n{}",
            out.desc,
            self.timeout,
            out.describe()
        );
        out
    }
}

impl Drop for Bounded {
    fn drop(&mut self) {
        // On an early return (a failed assertion while streaming), still reap the child: closing
        // stdout makes a writer die of SIGPIPE, and the waiter kills it at the deadline at worst.
        drop(self.stdout.take());
        if let Some(w) = self.waiter.take() {
            let _ = w.join();
        }
        if let Some(e) = self.stderr.take() {
            let _ = e.join();
        }
    }
}

/// Runs `cmd` to completion within `timeout`, collecting its output. Panics on timeout.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> ToolOutput {
    let mut b = Bounded::spawn(cmd, timeout);
    let mut stdout = Vec::new();
    if let Some(mut pipe) = b.stdout.take() {
        let _ = pipe.read_to_end(&mut stdout);
    }
    b.finish(stdout)
}

fn describe_cmd(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Finds a libnfs tool; the test command (`scripts/test`) installs libnfs-utils, so a missing tool
/// is a hard failure, not a skip.
pub fn tool(name: &str) -> Command {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{name} not found in PATH: install libnfs-utils (scripts/test does this)"
    );
    Command::new(name)
}

/// `nfs-ls [-R] URL`.
pub fn nfs_ls(url: &str, recursive: bool, timeout: Duration) -> ToolOutput {
    let mut cmd = tool("nfs-ls");
    if recursive {
        cmd.arg("-R");
    }
    cmd.arg(url);
    run_bounded(&mut cmd, timeout)
}

/// `nfs-cat URL`, output collected.
pub fn nfs_cat(url: &str, timeout: Duration) -> ToolOutput {
    run_bounded(tool("nfs-cat").arg(url), timeout)
}

/// `nfs-cat URL` with its stdout left to the caller (for large files).
pub fn nfs_cat_stream(url: &str, timeout: Duration) -> Bounded {
    Bounded::spawn(tool("nfs-cat").arg(url), timeout)
}

/// `nfs-cp SRC DST` (either may be a local path or an nfs:// URL).
pub fn nfs_cp(src: &str, dst: &str, timeout: Duration) -> ToolOutput {
    run_bounded(tool("nfs-cp").arg(src).arg(dst), timeout)
}

/// One line of `nfs-ls` output: `drwxr-xr-x  2  1000  1000         4096 path/below/export`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LsEntry {
    /// The ten-character mode string; the first character is the type (`-`, `d`, `l`, `c`, `b`).
    pub mode: String,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub path: String,
}

/// Parses `nfs-ls` output. Paths may contain spaces (everything after the size field is the path).
pub fn parse_ls(out: &str) -> Result<Vec<LsEntry>, String> {
    let mut entries = Vec::new();
    for line in out.lines().filter(|l| !l.is_empty()) {
        let bad = || format!("unparsable nfs-ls line: {line:?}");
        let mode = line.get(..10).ok_or_else(bad)?.to_owned();
        let mut rest = line.get(10..).ok_or_else(bad)?;
        let mut nums = [0u64; 4];
        for n in &mut nums {
            rest = rest.trim_start_matches(' ');
            let end = rest.find(' ').ok_or_else(bad)?;
            *n = rest[..end].parse().map_err(|_| bad())?;
            rest = &rest[end..];
        }
        let path = rest.strip_prefix(' ').ok_or_else(bad)?.to_owned();
        entries.push(LsEntry {
            mode,
            nlink: nums[0],
            uid: u32::try_from(nums[1]).map_err(|_| bad())?,
            gid: u32::try_from(nums[2]).map_err(|_| bad())?,
            size: nums[3],
            path,
        });
    }
    Ok(entries)
}

/// The `ls -l` style mode string nfs-ls prints for local metadata.
pub fn mode_string(meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::PermissionsExt;
    let ft = meta.file_type();
    let t = if ft.is_symlink() {
        'l'
    } else if ft.is_dir() {
        'd'
    } else {
        '-'
    };
    let m = meta.permissions().mode();
    let mut s = String::from(t);
    for (bit, c) in [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o040, 'r'),
        (0o020, 'w'),
        (0o010, 'x'),
        (0o004, 'r'),
        (0o002, 'w'),
        (0o001, 'x'),
    ] {
        s.push(if m & bit != 0 { c } else { '-' });
    }
    s
}

/// Fills `out` with a deterministic pseudo-random stream (xorshift64*), fast enough for hundreds
/// of MiB. Use one generator per file so content never repeats with a short period.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        XorShift(seed | 1)
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        let mut chunks = out.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        let n = rest.len();
        rest.copy_from_slice(&last[..n]);
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Writes `len` pseudo-random bytes to `path` (mode 0644).
pub fn write_random_file(path: &Path, len: u64, seed: u64) {
    use std::io::Write;
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut rng = XorShift::new(seed);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left.min(buf.len() as u64)).unwrap();
        rng.fill(&mut buf[..n]);
        f.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    f.into_inner().unwrap().sync_all().unwrap();
    set_mode(path, 0o644);
}

/// `rnfsd ctl --json ARGS` against the server with state directory `state_dir`: the reply's
/// `data`; panics unless the reply is `ok`.
pub fn ctl(state_dir: &Path, args: &[&str]) -> serde_json::Value {
    let out = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_rnfsd"))
            .arg("ctl")
            .arg("--state-dir")
            .arg(state_dir)
            .arg("--json")
            .args(args),
        Duration::from_secs(30),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("ctl {args:?}: {e}\n{}", out.describe()));
    assert_eq!(v["ok"], serde_json::Value::Bool(true), "ctl {args:?}: {v}");
    v["data"].clone()
}

/// The /metrics page of the server with state directory `state_dir` (its address from
/// `rnfsd ctl status`).
pub fn scrape_metrics(state_dir: &Path) -> String {
    use std::io::Write as _;
    let status = ctl(state_dir, &["status"]).to_string();
    let addr = status
        .split("\"metrics\":\"http://")
        .nth(1)
        .and_then(|r| r.split("/metrics").next())
        .unwrap_or_else(|| panic!("no metrics URL in {status}"))
        .to_owned();
    let mut conn = std::net::TcpStream::connect(&addr).expect("metrics listener");
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    write!(conn, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").expect("request");
    let mut text = String::new();
    conn.read_to_string(&mut text).expect("metrics page");
    text
}

/// The value of the sample `series` (`name{labels}` exactly as printed) in a /metrics page;
/// panics when it is not there.
pub fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {series} in /metrics:\n{text}"))
}
