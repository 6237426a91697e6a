//! Starting rnfsd without root: the error says what to do, and the capabilities it names are
//! enough to serve (with each caller's permissions still enforced).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The capabilities the error message asks for, in setpriv's spelling.
const CAPS: &str = "+dac_read_search,+setuid,+setgid,+dac_override,+fowner,+fsetid,+chown,\
                    +mknod,+lease,+net_bind_service";

/// `setpriv` to run as nobody, or `None` (the test is skipped) when it is missing.
fn as_nobody() -> Option<Command> {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("setpriv").is_file()));
    if !found || !running_as_root() {
        eprintln!("skipped: needs root and setpriv (util-linux)");
        return None;
    }
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
    Some(cmd)
}

#[test]
fn unprivileged_start_says_how_to_grant_privileges() {
    let Some(mut cmd) = as_nobody() else { return };
    let srv = TestServer::new();
    let out = run_bounded(
        cmd.arg(env!("CARGO_BIN_EXE_rnfsd"))
            .arg("serve")
            .arg(srv.export())
            .args(["--portmap", "off", "--listen", "127.0.0.1:0", "--state-dir"])
            .arg(srv.scratch().join("nobody-state"))
            .env("RUST_BACKTRACE", "0"),
        TOOL_TIMEOUT,
    );
    out.assert_failure();
    for want in [
        "CAP_DAC_READ_SEARCH",
        "run it as root",
        "AmbientCapabilities=CAP_DAC_READ_SEARCH CAP_SETUID CAP_SETGID",
        "sudo setcap cap_dac_read_search,cap_setuid,cap_setgid,",
        "+ep $(command -v rnfsd)",
    ] {
        assert!(out.stderr.contains(want), "{want:?}:\n{}", out.describe());
    }
}

/// With the capabilities the message names (as ambient capabilities, what systemd's
/// AmbientCapabilities gives), rnfsd serves as nobody, and a caller still gets only its own
/// permissions: a root-only file stays closed to uid 1000.
#[test]
fn the_named_capabilities_are_enough_and_callers_stay_themselves() {
    let Some(mut cmd) = as_nobody() else { return };
    let srv = TestServer::new();
    for (name, mode) in [("pub", 0o644), ("secret", 0o600)] {
        std::fs::write(srv.export().join(name), format!("{name}\n")).unwrap();
        set_mode(&srv.export().join(name), mode);
    }
    let state = srv.scratch().join("nobody-state");
    std::fs::create_dir(&state).unwrap();
    chown(&state, 65534, 65534);
    let ready = srv.scratch().join("nobody-ready");
    let mut child = cmd
        .arg(format!("--inh-caps={CAPS}"))
        .arg(format!("--ambient-caps={CAPS}"))
        .arg(env!("CARGO_BIN_EXE_rnfsd"))
        .arg("serve")
        .arg(srv.export())
        .args(["--portmap", "off", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(&state)
        .arg("--ready-file")
        .arg(&ready)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let listeners = loop {
        if let Some(l) = std::fs::read_to_string(&ready)
            .ok()
            .and_then(|t| parse_ready(&t).ok())
        {
            break l;
        }
        if start.elapsed() > READY_TIMEOUT || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("rnfsd with capabilities did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let port = listeners[0].addr.port();
    let url = |name: &str| {
        format!(
            "nfs://127.0.0.1{}/{name}?version=3&nfsport={port}&mountport={port}&uid={USER}&gid={USER}",
            srv.mount_path()
        )
    };
    // Several at once, so several workers make their first identity switch.
    let secrets: Vec<_> = (0..6)
        .map(|_| {
            let u = url("secret");
            std::thread::spawn(move || nfs_cat(&u, TOOL_TIMEOUT))
        })
        .collect();
    let public = nfs_cat(&url("pub"), TOOL_TIMEOUT);
    // Every read is answered before the server goes (a read still running when it is killed
    // would wait for its tool's timeout).
    let secrets: Vec<_> = secrets.into_iter().map(|s| s.join().unwrap()).collect();
    let _ = child.kill();
    let _ = child.wait();
    public.assert_success();
    assert_eq!(public.stdout, b"pub\n");
    for out in secrets {
        assert!(
            !out.success() && out.stdout.is_empty(),
            "{}",
            out.describe()
        );
    }
}
