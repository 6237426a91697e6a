//! NLM clients for the tests: `nlmtool` (tests/nlm/nlmtool.c, built here on libnfs's raw NLM and
//! NSM API, Debian's libnfs-dev), one process per NFS client host (`caller_name`), driven one
//! command line at a time.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::OnceLock;
use std::time::Duration;

use super::TestServer;

/// How long one nlmtool command may take.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds nlmtool once per test binary (gcc and libnfs-dev: scripts/test installs them).
pub fn nlmtool() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nlm/nlmtool.c");
        let out = std::env::temp_dir().join(format!("rnfs-nlmtool-{}", std::process::id()));
        let status = Command::new("cc")
            .args(["-O2", "-Wall", "-Werror", "-o"])
            .arg(&out)
            .arg(&src)
            .arg("-lnfs")
            .status()
            .expect("cc (install gcc and libnfs-dev: scripts/test does)");
        assert!(status.success(), "building nlmtool failed");
        out
    })
}

/// One NFS client host: an nlmtool process speaking NLM for `caller_name` on one file.
pub struct NlmHost {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl NlmHost {
    /// A host locking `file` of the export mounted at `mount_path` on `server` (its TCP
    /// address serves NFS, MOUNT and NLM).
    pub fn new(server: &TestServer, mount_path: &str, file: &str, caller_name: &str) -> NlmHost {
        let addr = server.tcp_addr();
        let port = addr.port().to_string();
        let mut child = Command::new(nlmtool())
            .arg(addr.ip().to_string())
            .args([&port, &port, &port, mount_path, file, caller_name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        NlmHost {
            child,
            stdin,
            lines,
        }
    }

    /// Sends one command, returns its one-line answer.
    pub fn ask(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
        self.lines
            .recv_timeout(REPLY_TIMEOUT)
            .unwrap_or_else(|e| panic!("nlmtool gave no answer to {command:?}: {e}"))
    }
}

impl Drop for NlmHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
