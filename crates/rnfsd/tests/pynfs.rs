//! pynfs, the NFSv4.1 server test suite, against the real server, as a ratchet.
//!
//! pynfs (GPL-2.0) is a tool we only run: `scripts/pynfs` copies it from `$RNFS_PYNFS_DIR`
//! (default `../shared/pynfs` next to the repository) and runs its `all` group (minor version 2, so
//! NFSv4.2's sparse-file and xattr tests are in; and the CB_NULL probes CSESS20/21 and COPY5) against `rnfsd serve`
//! of a scratch directory (read-write, no root squash: pynfs sends AUTH_SYS as the uid running it,
//! from unprivileged ports). `tests/pynfs/expected-pass.txt` lists the codes that must pass (PASS
//! or WARNING); the test fails if one of them failed, was skipped or not run, or is no pynfs code,
//! and prints the codes that pass but are not listed yet, to be added. It also fails when pynfs did
//! not complete (no `result.json`, or one listing ≤ 100 tests), so it cannot pass vacuously.
//! The same run against a CephFS export of a throw-away cluster has its own ratchet,
//! `tests/pynfs/expected-pass-ceph.txt` (skipped without Ceph, except in CI).
//!
//! Needs pynfs and Debian's python3-ply (scripts/test installs it). When either is missing the test
//! is skipped, except in CI (`CI=true`), where it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{run_bounded, TestServer};

/// pynfs's own bound (scripts/pynfs kills it then) ...
const PYNFS_SECONDS: u64 = 900;
/// ... and ours on the runner, in case that fails.
const RUNNER_TIMEOUT: Duration = Duration::from_secs(PYNFS_SECONDS + 120);
/// A completed pynfs nfs4.1 run lists every test it knows (264 at the snapshot in use).
const MIN_LISTED: usize = 100;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Outcomes (scripts/pynfs's outcomes.txt) that count as passing.
fn passed(outcome: &str) -> bool {
    matches!(outcome, "PASS" | "WARN")
}

/// The codes of a ratchet file: one per line, `#` starts a comment.
fn parse_expected(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `CODE OUTCOME` lines (outcomes.txt) into a map.
fn parse_outcomes(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(c, o)| (c.to_owned(), o.trim().to_owned()))
        .collect()
}

/// Compares outcomes with the ratchet: (expected codes that did not pass, with why; codes that
/// pass but are not expected).
fn compare(expected: &[String], outcomes: &BTreeMap<String, String>) -> (Vec<String>, Vec<String>) {
    let listed: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
    let mut regressions = Vec::new();
    for code in expected {
        match outcomes.get(code).map(String::as_str) {
            None => regressions.push(format!("{code}: not a test pynfs knows")),
            Some(o) if passed(o) => {}
            Some(o @ ("SKIP" | "NOTRUN" | "NOTSEL")) => {
                regressions.push(format!("{code}: did not run ({o})"))
            }
            Some(o) => regressions.push(format!("{code}: {o}")),
        }
    }
    let new_passes = outcomes
        .iter()
        .filter(|(c, o)| passed(o) && !listed.contains(c.as_str()))
        .map(|(c, _)| c.clone())
        .collect();
    (regressions, new_passes)
}

/// Whether pynfs can run here; outside CI a missing piece skips the test (with a note), in CI it
/// fails it.
fn pynfs_available() -> bool {
    let dir = std::env::var_os("RNFS_PYNFS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/pynfs"));
    let mut missing = Vec::new();
    if !dir.join("nfs4.1/testserver.py").is_file() {
        missing.push(format!("pynfs at {} (set RNFS_PYNFS_DIR)", dir.display()));
    }
    let ply = Command::new("/usr/bin/python3")
        .args(["-c", "import ply"])
        .output();
    if !ply.is_ok_and(|o| o.status.success()) {
        missing.push("/usr/bin/python3 with ply (apt-get install python3-ply)".into());
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!("pynfs cannot run, missing: {}", missing.join("; "));
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "{msg} (CI=true: this test may not skip; scripts/test installs python3-ply)"
    );
    eprintln!("SKIPPED: {msg}");
    false
}

#[test]
fn pynfs_all_keeps_every_expected_pass() {
    if !pynfs_available() {
        return;
    }
    let mut srv = TestServer::new();
    // A 15 s lease: the courtesy tests sleep for leases, and DELEG8 waits for a revocation (one
    // lease) while pynfs's client leaks a slot per 10 s of NFS4ERR_DELAY retries.
    srv.set_config(&format!(
        "[limits]\nnfs4_lease_ms = 15000\n\n[[export]]\npath = {:?}\n\n[[export.client]]\nmatch = \"127.0.0.1\"\naccess = \"rw\"\nroot_squash = false\n",
        srv.export()
    ));
    srv.start();
    let path = srv.mount_path();
    run_all(&srv, &path, "expected-pass.txt");
}

/// The same run against a `backend = "ceph"` export of a throw-away cluster
/// (scripts/ceph-cluster), with its own ratchet: what passes on a local export and not here is
/// a difference of the backend, listed in the ratchet's header.
#[test]
fn pynfs_all_on_a_ceph_export_keeps_every_expected_pass() {
    if !pynfs_available() {
        return;
    }
    let Some(cluster) = rnfs_cephfs::test_cluster::TestCluster::start().unwrap() else {
        return;
    };
    const DIR: &str = "/pynfs";
    {
        let m = rnfs_cephfs::Mount::new(&rnfs_cephfs::MountConfig {
            conf: cluster.conf().to_owned(),
            client_id: "admin".into(),
            fs_name: None,
            root: "/".into(),
            uuid: None,
        })
        .unwrap();
        let root = rnfs_cephfs::Perm::new(0, 0, &[]).unwrap();
        m.mkdir(&m.root().unwrap(), &DIR.as_bytes()[1..], 0o777, &root)
            .unwrap();
    }
    let mut srv = TestServer::new();
    srv.set_config(&format!(
        "[limits]\nnfs4_lease_ms = 15000\n\n[[export]]\nbackend = \"ceph\"\npath = \"{DIR}\"\n\
         ceph_conf = {:?}\n\n[[export.client]]\nmatch = \"127.0.0.1\"\naccess = \"rw\"\n\
         root_squash = false\n",
        cluster.conf()
    ));
    srv.start();
    run_all(&srv, DIR, "expected-pass-ceph.txt");
}

/// Runs pynfs's `all` (and a few more codes) against `srv`'s export at `path` and checks the
/// outcomes against the ratchet `tests/pynfs/<ratchet>`.
fn run_all(srv: &TestServer, path: &str, ratchet: &str) {
    let expected_path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/pynfs")
        .join(ratchet);
    let expected = parse_expected(&std::fs::read_to_string(&expected_path).unwrap());
    let out = srv.scratch().join("pynfs");
    let run = run_bounded(
        Command::new(repo().join("scripts/pynfs"))
            .arg("--server")
            .arg(srv.tcp_addr().to_string())
            .arg("--path")
            .arg(path)
            .arg("--out")
            .arg(&out)
            // Minor version 2: `all` then includes the 4.2 tests (sparse files, xattrs).
            // CSESS20/21 (flagged "ganesha", outside `all`): the back channel's CB_NULL probe;
            // COPY5 (flagged "copy", outside `all`): NFSv4.2 COPY to the end of the source.
            .args([
                "--minorversion",
                "2",
                "--tests",
                "all",
                "CSESS20",
                "CSESS21",
                "COPY5",
            ])
            .args(["--timeout", &PYNFS_SECONDS.to_string()]),
        RUNNER_TIMEOUT,
    );
    // Printed here once: a failing test's captured output is shown with its panic message.
    let summary = std::fs::read_to_string(out.join("summary.txt")).unwrap_or_default();
    println!("{summary}");

    // pynfs completed: its JSON exists and lists the whole suite.
    let json = std::fs::read_to_string(out.join("result.json")).unwrap_or_else(|_| {
        panic!(
            "pynfs did not complete (no result.json; runner {}; summary above):\n{}",
            run.status, run.stderr
        )
    });
    let result: serde_json::Value = serde_json::from_str(&json).expect("result.json is JSON");
    let listed = result["testcase"].as_array().map_or(0, Vec::len);
    assert!(
        listed > MIN_LISTED,
        "result.json lists {listed} tests, expected more than {MIN_LISTED} (summary above)"
    );
    let outcomes = parse_outcomes(&std::fs::read_to_string(out.join("outcomes.txt")).unwrap());
    assert_eq!(outcomes.len(), listed, "outcomes.txt vs result.json");

    let (regressions, new_passes) = compare(&expected, &outcomes);
    if !new_passes.is_empty() {
        println!(
            "{} tests pass but are not in {} yet (add them):\n{}",
            new_passes.len(),
            expected_path.display(),
            new_passes.join("\n")
        );
    }
    assert!(
        regressions.is_empty(),
        "{} expected passes did not pass (summary above):\n{}",
        regressions.len(),
        regressions.join("\n")
    );
}

/// pynfs's reboot tests, run separately (`all` does not select them): each SIGKILLs the server
/// (through `tests/pynfs/reboot-helper`) while clients hold opens, then checks that the restarted
/// server refuses the old client ids and sessions, lets the clients reclaim (CLAIM_PREVIOUS) in
/// its grace period, refuses new opens until grace ends, and refuses a second reclaim.
const REBOOT_TESTS: [&str; 3] = ["REBT1", "REBT2a", "REBT3a"];

#[test]
fn pynfs_reboot_reclaims_after_sigkill() {
    if !pynfs_available() {
        return;
    }
    let mut srv = TestServer::new();
    srv.set_config(&format!(
        "[[export]]\npath = {:?}\n\n[[export.client]]\nmatch = \"127.0.0.1\"\naccess = \"rw\"\nroot_squash = false\n",
        srv.export()
    ));
    srv.start();
    let out = srv.scratch().join("pynfs-reboot");
    let signals = srv.scratch().join("reboot");
    std::fs::create_dir_all(&signals).unwrap();
    let helper = format!(
        "{} {}",
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/pynfs/reboot-helper")
            .display(),
        signals.display()
    );
    let mut cmd = Command::new(repo().join("scripts/pynfs"));
    cmd.arg("--server")
        .arg(srv.tcp_addr().to_string())
        .arg("--path")
        .arg(srv.mount_path())
        .arg("--out")
        .arg(&out)
        .args(["--serverhelper", &helper])
        .args(["--timeout", &PYNFS_SECONDS.to_string(), "--tests"])
        .arg(REBOOT_TESTS.join(" "));
    let runner = std::thread::spawn(move || run_bounded(&mut cmd, RUNNER_TIMEOUT));
    let mut reboots = 0;
    while !runner.is_finished() {
        if std::fs::remove_file(signals.join("reboot.req")).is_ok() {
            assert!(srv.kill_hard().is_some(), "rnfsd was not running");
            srv.start();
            reboots += 1;
            std::fs::write(signals.join("reboot.done"), b"").unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let run = runner.join().unwrap();
    let summary = std::fs::read_to_string(out.join("summary.txt")).unwrap_or_default();
    println!("{summary}\n{reboots} restarts");
    let outcomes = parse_outcomes(
        &std::fs::read_to_string(out.join("outcomes.txt")).unwrap_or_else(|_| {
            panic!(
                "pynfs did not complete (runner {}):\n{}",
                run.status, run.stderr
            )
        }),
    );
    let expected: Vec<String> = REBOOT_TESTS.iter().map(|c| c.to_string()).collect();
    let (regressions, _) = compare(&expected, &outcomes);
    assert!(
        regressions.is_empty(),
        "reboot tests did not pass:\n{}\n{}",
        regressions.join("\n"),
        srv.log_tail()
    );
    // REBT1 and REBT2a restart once each, REBT3a twice.
    assert!(reboots >= 4, "only {reboots} restarts");
}

#[test]
fn ratchet_comparison_flags_failed_unrun_and_unknown_codes() {
    let expected =
        parse_expected("# header\nSEQ1\n EID5a # trailing comment\n\nDELEG1\nCOUR2\nNOPE9\n");
    assert_eq!(expected, ["SEQ1", "EID5a", "DELEG1", "COUR2", "NOPE9"]);
    let outcomes =
        parse_outcomes("SEQ1 PASS\nEID5a WARN\nDELEG1 FAIL\nCOUR2 NOTSEL\nCSESS2 PASS\n");
    let (regressions, new_passes) = compare(&expected, &outcomes);
    assert_eq!(
        regressions,
        [
            "DELEG1: FAIL",
            "COUR2: did not run (NOTSEL)",
            "NOPE9: not a test pynfs knows"
        ]
    );
    assert_eq!(new_passes, ["CSESS2"]);
}
