//! rnfsd as a service: SIGHUP reloads the exports as `rnfsd ctl exports reload` does; systemd's
//! readiness protocol (READY=1 once the port accepts connections, RELOADING=1/READY=1 around a
//! reload, STOPPING=1 at SIGTERM); the man pages cover every subcommand; and the Debian package
//! (packaging/build-deb) installs into a scratch root with a unit systemd-analyze accepts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const RUN_TIMEOUT: Duration = Duration::from_secs(30);
/// Building the release binary and the package from scratch (CI) takes minutes on 2 cores.
const BUILD_TIMEOUT: Duration = Duration::from_secs(1800);

fn rnfsd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rnfsd"))
}

fn signal(pid: u32, name: &str) {
    let out = run_bounded(
        Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string()),
        RUN_TIMEOUT,
    );
    out.assert_success();
}

/// Waits up to 15 s for `cond`, polling.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The mount paths `rnfsd ctl exports` lists.
fn listed_exports(state_dir: &Path) -> Vec<String> {
    let data = ctl(state_dir, &["exports"]);
    data["exports"]
        .as_array()
        .expect("exports array")
        .iter()
        .map(|e| e["mount_path"].as_str().expect("mount_path").to_owned())
        .collect()
}

/// A second exported directory holding `b.txt`, next to the harness's `export/`.
fn second_export(srv: &TestServer) -> PathBuf {
    let dir = srv.scratch().join("second");
    std::fs::create_dir(&dir).unwrap();
    set_mode(&dir, 0o755);
    std::fs::write(dir.join("b.txt"), b"second\n").unwrap();
    set_mode(&dir.join("b.txt"), 0o644);
    dir.canonicalize().unwrap()
}

fn url_of(srv: &TestServer, export: &Path, file: &str) -> String {
    let addr = srv.tcp_addr();
    format!(
        "nfs://{}{}/{file}?version=3&nfsport={p}&mountport={p}&uid={USER}&gid={USER}",
        addr.ip(),
        export.display(),
        p = addr.port()
    )
}

#[test]
fn sighup_reloads_the_exports_and_a_broken_file_keeps_the_table() {
    require_root("rnfsd uses open_by_handle_at");
    let mut srv = TestServer::new();
    std::fs::write(srv.export().join("a.txt"), b"first\n").unwrap();
    set_mode(&srv.export().join("a.txt"), 0o644);
    let second = second_export(&srv);
    let first = srv.mount_path();
    let exports = srv.scratch().join("exports");
    std::fs::write(&exports, format!("{first} 127.0.0.1(ro,insecure)\n")).unwrap();
    srv.set_config("");
    let mut srv = srv.args(["--exports", exports.to_str().unwrap()]);
    srv.start();
    let pid = srv.pid().unwrap();
    assert_eq!(listed_exports(srv.state_dir()), vec![first.clone()]);
    nfs_cat(&url_of(&srv, &second, "b.txt"), TOOL_TIMEOUT).assert_failure();

    // Add an export and send SIGHUP: it is listed and served, without a restart.
    std::fs::write(
        &exports,
        format!(
            "{first} 127.0.0.1(ro,insecure)\n{} 127.0.0.1(ro,insecure)\n",
            second.display()
        ),
    )
    .unwrap();
    signal(pid, "HUP");
    wait_for("the second export after SIGHUP", || {
        listed_exports(srv.state_dir()).len() == 2
    });
    let out = nfs_cat(&url_of(&srv, &second, "b.txt"), TOOL_TIMEOUT);
    out.assert_success();
    assert_eq!(out.stdout, b"second\n");
    assert!(
        srv.log().contains("SIGHUP: exports reloaded"),
        "{}",
        srv.log_tail()
    );
    assert_eq!(srv.pid(), Some(pid), "SIGHUP must not restart the server");

    // A broken file: SIGHUP keeps the table and the log says why.
    std::fs::write(&exports, format!("{first} 127.0.0.1(ro,bogus_option)\n")).unwrap();
    signal(pid, "HUP");
    wait_for("the failed reload in the log", || {
        srv.log().contains("SIGHUP: exports not reloaded")
    });
    assert!(srv.log().contains("bogus_option"), "{}", srv.log_tail());
    assert!(srv.is_running(), "a failed reload stopped the server");
    let mut listed = listed_exports(srv.state_dir());
    listed.sort();
    let mut want = vec![first.clone(), second.display().to_string()];
    want.sort();
    assert_eq!(listed, want, "the old table stays");
    nfs_cat(&url_of(&srv, &second, "b.txt"), TOOL_TIMEOUT).assert_success();

    // A file with no exports left is refused as well.
    std::fs::write(&exports, "# nothing\n").unwrap();
    signal(pid, "HUP");
    wait_for("the second failed reload", || {
        srv.log().matches("SIGHUP: exports not reloaded").count() == 2
    });
    assert_eq!(listed_exports(srv.state_dir()).len(), 2);
    let status = srv.stop();
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

/// `rnfsd serve` under a fake systemd: our own datagram socket as `$NOTIFY_SOCKET`.
struct Notified {
    child: Child,
    socket: UnixDatagram,
    dir: tempfile::TempDir,
    log: PathBuf,
}

impl Notified {
    /// Starts rnfsd on an exports file of one export; `abstract_name` binds `@NAME` instead of
    /// a path.
    fn start(abstract_name: bool) -> Notified {
        let dir = tempfile::Builder::new()
            .prefix("rnfsd-notify-")
            .tempdir()
            .unwrap();
        set_mode(dir.path(), 0o755);
        let export = dir.path().join("export");
        std::fs::create_dir(&export).unwrap();
        std::fs::create_dir(dir.path().join("state")).unwrap();
        std::fs::write(
            dir.path().join("exports"),
            format!(
                "{} 127.0.0.1(ro)\n",
                export.canonicalize().unwrap().display()
            ),
        )
        .unwrap();
        let (socket, name) = if abstract_name {
            let name = format!(
                "rnfsd-test-notify-{}-{}",
                std::process::id(),
                dir.path().file_name().unwrap().to_string_lossy()
            );
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
            (UnixDatagram::bind_addr(&addr).unwrap(), format!("@{name}"))
        } else {
            let path = dir.path().join("notify.sock");
            (
                UnixDatagram::bind(&path).unwrap(),
                path.to_str().unwrap().to_owned(),
            )
        };
        socket
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let log = dir.path().join("rnfsd.log");
        let logf = std::fs::File::create(&log).unwrap();
        let mut cmd = rnfsd();
        cmd.args(["serve", "--exports"])
            .arg(dir.path().join("exports"))
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--ready-file")
            .arg(dir.path().join("ready"))
            .args(["--portmap", "off", "--listen", "127.0.0.1:0"])
            .env("NOTIFY_SOCKET", &name)
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf);
        // SAFETY: prctl(2) is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        Notified {
            child,
            socket,
            dir,
            log,
        }
    }

    /// The next notification (panics with the log after 20 s).
    fn next(&self) -> String {
        let mut buf = [0u8; 4096];
        match self.socket.recv(&mut buf) {
            Ok(n) => String::from_utf8(buf[..n].to_vec()).unwrap(),
            Err(e) => panic!("no notification: {e}\n{}", self.log()),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn tcp_addr(&self) -> std::net::SocketAddr {
        let text = std::fs::read_to_string(self.dir.path().join("ready"))
            .unwrap_or_else(|e| panic!("READY=1 before the ready file: {e}\n{}", self.log()));
        parse_ready(&text)
            .unwrap()
            .iter()
            .find(|l| l.proto == Proto::Tcp)
            .expect("a TCP listener")
            .addr
    }
}

impl Drop for Notified {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("----- rnfsd log -----\n{}", self.log());
        }
    }
}

/// CLOCK_MONOTONIC in microseconds, as the test sees it.
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for clock_gettime to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0);
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

fn has_line(msg: &str, line: &str) -> bool {
    msg.lines().any(|l| l == line)
}

#[test]
fn sd_notify_ready_reloading_stopping() {
    require_root("rnfsd uses open_by_handle_at");
    let mut n = Notified::start(false);
    let first = n.next();
    assert!(has_line(&first, "READY=1"), "first notification: {first:?}");
    // Ready means serving: the port takes connections the moment READY=1 is read.
    std::net::TcpStream::connect_timeout(&n.tcp_addr(), Duration::from_secs(5))
        .expect("READY=1 before the NFS port accepts connections");
    assert!(
        first
            .lines()
            .any(|l| l.starts_with("STATUS=serving 1 exports")),
        "{first:?}"
    );

    let pid = n.child.id();
    let before = monotonic_usec();
    signal(pid, "HUP");
    let reloading = n.next();
    let after = monotonic_usec();
    assert!(has_line(&reloading, "RELOADING=1"), "{reloading:?}");
    let usec: u64 = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {reloading:?}"))
        .parse()
        .unwrap();
    assert!(
        (before..=after).contains(&usec),
        "MONOTONIC_USEC={usec} not between {before} and {after}"
    );
    let ready = n.next();
    assert!(has_line(&ready, "READY=1"), "after a reload: {ready:?}");
    assert!(ready.contains("reloaded"), "{ready:?}");

    signal(pid, "TERM");
    let stopping = n.next();
    assert!(has_line(&stopping, "STOPPING=1"), "{stopping:?}");
    let deadline = Instant::now() + STOP_TIMEOUT;
    let status = loop {
        if let Some(s) = n.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "rnfsd did not stop\n{}", n.log());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}\n{}", n.log());
}

#[test]
fn sd_notify_abstract_socket() {
    require_root("rnfsd uses open_by_handle_at");
    let n = Notified::start(true);
    let first = n.next();
    assert!(has_line(&first, "READY=1"), "{first:?}");
    std::net::TcpStream::connect_timeout(&n.tcp_addr(), Duration::from_secs(5)).unwrap();
    signal(n.child.id(), "TERM");
    assert!(has_line(&n.next(), "STOPPING=1"));
}

#[test]
fn without_notify_socket_nothing_changes() {
    require_root("rnfsd uses open_by_handle_at");
    // The harness's server has no NOTIFY_SOCKET: it starts and stops as always.
    let mut srv = TestServer::start_default();
    let status = srv.stop();
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

/// The subcommands `rnfsd --help` lists (not `help`).
fn subcommands() -> Vec<String> {
    let out = run_bounded(rnfsd().arg("--help"), RUN_TIMEOUT);
    out.assert_success();
    let text = out.stdout_str();
    let list: Vec<String> = text
        .split("Commands:")
        .nth(1)
        .expect("a Commands: section")
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect();
    assert!(list.len() >= 3, "{text}");
    list
}

#[test]
fn man_pages_cover_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_bounded(
        rnfsd().args(["generate", "man"]).arg(dir.path()),
        RUN_TIMEOUT,
    );
    out.assert_success();
    let page = |name: &str| {
        std::fs::read_to_string(dir.path().join(format!("{name}.8")))
            .unwrap_or_else(|e| panic!("no man page {name}.8: {e}"))
    };
    let main = page("rnfsd");
    assert!(main.contains(".TH rnfsd 8"), "{main}");
    assert!(main.contains("SIGHUP"), "the signals are documented");
    for sub in subcommands() {
        let text = page(&format!("rnfsd-{sub}"));
        assert!(text.contains(&format!(".TH rnfsd-{sub} 8")), "{text}");
        assert!(
            main.contains(&format!("rnfsd\\-{sub}(8)")),
            "rnfsd.8 names {sub}"
        );
    }
    // Hidden commands get no page.
    assert!(!dir.path().join("rnfsd-generate.8").exists());
    let written = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(written, subcommands().len() + 1, "one page per command");

    for (shell, file) in [
        ("bash", "rnfsd.bash"),
        ("zsh", "_rnfsd"),
        ("fish", "rnfsd.fish"),
    ] {
        run_bounded(
            rnfsd()
                .args(["generate", "completions", shell])
                .arg(dir.path().join("c")),
            RUN_TIMEOUT,
        )
        .assert_success();
        let text = std::fs::read_to_string(dir.path().join("c").join(file)).unwrap();
        assert!(
            text.contains("serve") && text.contains("exports"),
            "{shell}: {text}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The Debian package
// ---------------------------------------------------------------------------------------------

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Whether `cargo deb` can run; without it the test fails in CI and is skipped elsewhere.
fn have_cargo_deb() -> bool {
    let ok = Command::new("cargo")
        .args(["deb", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "cargo-deb is not installed (scripts/test installs it)"
        );
        eprintln!(
            "SKIPPED: cargo-deb is not installed (cargo install cargo-deb --version 3.8.0 --locked)"
        );
    }
    ok
}

fn run_ok(cmd: &mut Command, timeout: Duration) -> String {
    let out = run_bounded(cmd, timeout);
    out.assert_success();
    out.stdout_str()
}

/// `systemd-analyze verify` of `unit` inside `root`: Err(what it said about the unit).
fn verify_unit(root: &Path, unit: &Path) -> Result<(), String> {
    let out = run_bounded(
        Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(format!("--root={}", root.display()))
            .arg(unit),
        RUN_TIMEOUT,
    );
    let said = format!("{}{}", out.stdout_str(), out.stderr.clone());
    // Warnings about the unit (unknown keys, bad values) do not change the exit code: any line
    // naming it fails. Lines about the host's other units are not ours to judge.
    let ours: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("rnfsd.service"))
        .collect();
    if !out.success() || !ours.is_empty() {
        return Err(format!("{}\n{said}", out.describe()));
    }
    Ok(())
}

#[test]
fn debian_package_installs_a_verified_service() {
    if !have_cargo_deb() {
        return;
    }
    let root = workspace_root();
    let out = run_bounded(
        Command::new(root.join("packaging/build-deb"))
            .arg("--fast")
            .current_dir(&root),
        BUILD_TIMEOUT,
    );
    out.assert_success();
    let deb = PathBuf::from(
        out.stdout_str()
            .lines()
            .rev()
            .find(|l| l.trim_end().ends_with(".deb"))
            .unwrap_or_else(|| panic!("no .deb path printed\n{}", out.describe()))
            .trim(),
    );
    assert!(deb.is_file(), "{}", deb.display());

    // Control fields.
    let field = |name: &str| {
        run_ok(
            Command::new("dpkg-deb").arg("-f").arg(&deb).arg(name),
            RUN_TIMEOUT,
        )
        .trim()
        .to_owned()
    };
    assert_eq!(field("Package"), "rnfsd");
    assert!(field("Version").starts_with(env!("CARGO_PKG_VERSION")));
    assert_eq!(field("Section"), "net");
    assert!(field("Depends").contains("libc6"), "{}", field("Depends"));
    assert!(!field("Description").is_empty());

    // Install into a scratch root: dpkg's own database, conffiles registered.
    let tmp = tempfile::Builder::new()
        .prefix("rnfsd-deb-")
        .tempdir()
        .unwrap();
    let t = tmp.path();
    for d in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
    ] {
        std::fs::create_dir_all(t.join(d)).unwrap();
    }
    std::fs::write(t.join("var/lib/dpkg/status"), "").unwrap();
    // A full install (unpack and configure, which puts the conffiles in place). The package has
    // no maintainer scripts (it is installed disabled and stopped), so dpkg runs nothing in the
    // shell-less root. --force-depends: the root's database knows no libc6 (the host has it).
    run_ok(
        Command::new("dpkg")
            .arg(format!("--root={}", t.display()))
            .args([
                "--force-not-root",
                "--force-depends",
                "--log=/dev/null",
                "--install",
            ])
            .arg(&deb),
        RUN_TIMEOUT,
    );
    let status = std::fs::read_to_string(t.join("var/lib/dpkg/status")).unwrap();
    assert!(status.contains("Package: rnfsd"), "{status}");
    assert!(status.contains("Status: install ok installed"), "{status}");
    for conf in ["/etc/rnfsd/rnfsd.toml", "/etc/rnfsd/exports"] {
        assert!(
            status
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{conf} "))),
            "{conf} is not a conffile:\n{status}"
        );
    }

    // The binary runs and is the version built.
    let bin = t.join("usr/sbin/rnfsd");
    let version = run_ok(Command::new(&bin).arg("--version"), RUN_TIMEOUT);
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
    // The default configuration parses and exports nothing: the server refuses to start, saying
    // so, instead of serving anything.
    let state = t.join("state");
    let out = run_bounded(
        Command::new(&bin)
            .arg("serve")
            .arg("--config")
            .arg(t.join("etc/rnfsd/rnfsd.toml"))
            .arg("--exports")
            .arg(t.join("etc/rnfsd/exports"))
            .arg("--state-dir")
            .arg(&state)
            .args(["--portmap", "off", "--listen", "127.0.0.1:0"]),
        RUN_TIMEOUT,
    );
    out.assert_failure();
    let said = out.stderr.clone();
    assert!(said.contains("no exports"), "{}", out.describe());
    let toml = std::fs::read_to_string(t.join("etc/rnfsd/rnfsd.toml")).unwrap();
    assert!(
        toml.lines().any(|l| l == "listen = [\"127.0.0.1:2049\"]"),
        "loopback by default:\n{toml}"
    );

    // Man pages, gzipped, one per subcommand; completions.
    for name in std::iter::once("rnfsd".to_owned())
        .chain(subcommands().iter().map(|s| format!("rnfsd-{s}")))
    {
        let page = t.join(format!("usr/share/man/man8/{name}.8.gz"));
        let text = run_ok(Command::new("gzip").arg("-dc").arg(&page), RUN_TIMEOUT);
        assert!(
            text.contains(&format!(".TH {name} 8")),
            "{}",
            page.display()
        );
    }
    for c in [
        "usr/share/bash-completion/completions/rnfsd",
        "usr/share/zsh/vendor-completions/_rnfsd",
        "usr/share/fish/vendor_completions.d/rnfsd.fish",
    ] {
        let len = std::fs::metadata(t.join(c)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 100, "{c}: {len} bytes");
    }

    // The unit: where systemd looks, hardened, and accepted by systemd-analyze.
    let unit_dir = t.join("usr/lib/systemd/system");
    let unit = unit_dir.join("rnfsd.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    for line in [
        "Type=notify",
        "ExecStart=/usr/sbin/rnfsd serve --config /etc/rnfsd/rnfsd.toml --exports /etc/rnfsd/exports --state-dir /var/lib/rnfsd",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "StateDirectory=rnfsd",
        "PrivateTmp=yes",
    ] {
        assert!(text.lines().any(|l| l == line), "unit lacks {line}");
    }
    // The targets the unit's default dependencies name, from the host: the scratch root has no
    // systemd of its own.
    for entry in std::fs::read_dir("/usr/lib/systemd/system").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "target") {
            let to = unit_dir.join(path.file_name().unwrap());
            if !to.exists() {
                std::fs::copy(&path, to).unwrap();
            }
        }
    }
    // First the check itself: a bad value in the installed unit must be noticed (verify reads
    // the unit from the root's search path, so the broken copy goes in its place).
    std::fs::write(
        &unit,
        text.replace("ProtectSystem=strict", "ProtectSystem=stric"),
    )
    .unwrap();
    assert!(verify_unit(t, &unit).is_err(), "a bad value went unnoticed");
    std::fs::write(&unit, &text).unwrap();
    if let Err(e) = verify_unit(t, &unit) {
        panic!("systemd-analyze rejects the unit: {e}");
    }

    // The payload stays in /usr and /etc (state is systemd's StateDirectory=, made at start).
    let listing = run_ok(Command::new("dpkg-deb").arg("-c").arg(&deb), RUN_TIMEOUT);
    for line in listing.lines() {
        let path = line.split_whitespace().nth(5).unwrap_or("");
        assert!(
            path == "./" || path.starts_with("./usr/") || path.starts_with("./etc/"),
            "{line}"
        );
    }
}
