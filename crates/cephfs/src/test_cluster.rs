//! A throw-away Ceph cluster for tests: `scripts/ceph-cluster start` in a temporary directory,
//! stopped (by PID) when the guard drops, even when the test panics.
//!
//! Without Ceph's daemons installed, [`TestCluster::start`] returns `Ok(None)` and says why, so a
//! test can skip on a developer's machine; in CI (`CI=true`) that is an error instead.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The repository's cluster script.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/ceph-cluster");

/// A running cluster; stopped on drop.
#[derive(Debug)]
pub struct TestCluster {
    dir: tempfile::TempDir,
    conf: PathBuf,
    /// How long the script took to bring it up.
    pub started_in: Duration,
}

impl TestCluster {
    /// Starts a cluster, or `Ok(None)` (with the reason printed) when Ceph is not installed and
    /// this is not CI.
    pub fn start() -> Result<Option<TestCluster>, String> {
        if let Some(missing) = missing_tool() {
            let why = format!("{missing} not installed (apt-get install ceph-mon ceph-mgr ceph-osd ceph-mds ceph-common uuid-runtime libcephfs2)");
            if std::env::var("CI").as_deref() == Ok("true") {
                return Err(why);
            }
            eprintln!("skipped: {why}");
            return Ok(None);
        }
        let dir = tempfile::Builder::new()
            .prefix("rnfs-ceph.")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?;
        let t0 = Instant::now();
        let out = Command::new("bash")
            .arg(SCRIPT)
            .arg("start")
            .arg(dir.path())
            .output()
            .map_err(|e| format!("running {SCRIPT}: {e}"))?;
        let started_in = t0.elapsed();
        let cluster = TestCluster {
            conf: dir.path().join("ceph.conf"),
            dir,
            started_in,
        };
        if !out.status.success() {
            // `cluster` drops here and stops whatever did start.
            return Err(format!(
                "{SCRIPT} start failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(Some(cluster))
    }

    /// The cluster's `ceph.conf`.
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// Sends `signal` (a `kill -s` name: `STOP`, `CONT`, ...) to daemon `name` (`mon.a`,
    /// `osd.0`, `mgr.x`, `mds.z`), whose PID the script recorded: a test stops a daemon (SIGSTOP)
    /// to make the cluster stop answering, and lets it go on (SIGCONT).
    pub fn signal(&self, name: &str, signal: &str) -> Result<(), String> {
        let pid_file = self.dir.path().join("pids").join(format!("{name}.pid"));
        let pid = std::fs::read_to_string(&pid_file)
            .map_err(|e| format!("{}: {e}", pid_file.display()))?;
        let pid = pid.trim();
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{}: not a PID: {pid:?}", pid_file.display()));
        }
        let out = Command::new("kill")
            .args(["-s", signal, pid])
            .output()
            .map_err(|e| format!("running kill: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "kill -s {signal} {pid} ({name}): {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let stopped = Command::new("bash")
            .arg(SCRIPT)
            .arg("stop")
            .arg(self.dir.path())
            .status();
        if !matches!(stopped, Ok(s) if s.success()) {
            eprintln!(
                "{SCRIPT} stop {} failed: {stopped:?}",
                self.dir.path().display()
            );
        }
    }
}

fn missing_tool() -> Option<&'static str> {
    let tools = [
        "ceph-mon", "ceph-osd", "ceph-mgr", "ceph-mds", "ceph", "uuidgen",
    ];
    let path = std::env::var_os("PATH")?;
    tools
        .into_iter()
        .find(|t| !std::env::split_paths(&path).any(|d| d.join(t).is_file()))
}
