//! Linux exports(5) syntax end to end: `rnfsd serve --exports FILE`, `rnfsd serve DIR --client
//! MATCH -o OPTIONS` and `rnfsd exports --check FILE`, with libnfs as the client. What a line says
//! (ro/rw, root_squash, no_root_squash, all_squash with anonuid) must be what a client gets, also
//! after `rnfsd ctl exports reload` re-reads the file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// An export holding `f.txt` (root's, 0644) and `open/` (0777), to upload into.
fn server_with_files() -> TestServer {
    let srv = TestServer::new();
    std::fs::write(srv.export().join("f.txt"), b"hello\n").unwrap();
    set_mode(&srv.export().join("f.txt"), 0o644);
    std::fs::create_dir(srv.export().join("open")).unwrap();
    set_mode(&srv.export().join("open"), 0o777);
    srv
}

/// Uploads a small file as `uid` to `open/NAME`; `Some(owner uid)` when it was written.
fn upload_as(srv: &TestServer, uid: u32, name: &str) -> Option<u32> {
    let src = srv.scratch().join("upload.src");
    std::fs::write(&src, b"data\n").unwrap();
    let out = nfs_cp(
        src.to_str().unwrap(),
        &srv.url(&format!("/open/{name}"), uid, uid),
        TOOL_TIMEOUT,
    );
    let landed = srv.export().join("open").join(name);
    if !out.success() {
        assert!(!landed.exists(), "a failed upload left {name}");
        return None;
    }
    Some(std::fs::metadata(landed).unwrap().uid())
}

fn write_exports(srv: &TestServer, body: &str) -> std::path::PathBuf {
    let path = srv.scratch().join("exports");
    std::fs::write(&path, body).unwrap();
    path
}

fn rnfsd(args: &[&str]) -> ToolOutput {
    run_bounded(
        Command::new(env!("CARGO_BIN_EXE_rnfsd")).args(args),
        RUN_TIMEOUT,
    )
}

#[test]
fn exports_file_rules_reach_the_wire_and_reload() {
    require_root("rnfsd uses open_by_handle_at; uploads change owners");
    let mut srv = server_with_files();
    let export = srv.mount_path();
    // Quoted path, a continuation line, a comment, a CIDR client: read-only to loopback.
    let file = write_exports(
        &srv,
        &format!("# exports\n\"{export}\" \\\n  127.0.0.0/8(ro,insecure,sync,no_subtree_check)\n"),
    );
    // The TOML file gives the rest (none here); --exports gives the exports.
    srv.set_config("");
    let mut srv = srv.args(["--exports", file.to_str().unwrap()]);
    srv.start();

    let out = nfs_cat(&srv.url("/f.txt", USER, USER), TOOL_TIMEOUT);
    out.assert_success();
    assert_eq!(out.stdout, b"hello\n");
    assert_eq!(upload_as(&srv, USER, "ro"), None, "ro refuses writes");

    let reload = |body: String| {
        write_exports(&srv, &body);
        ctl(srv.state_dir(), &["exports", "reload"]);
    };
    // Linux's default root_squash: root writes as nobody.
    reload(format!("{export} 127.0.0.1(rw,insecure)\n"));
    assert_eq!(upload_as(&srv, 0, "squashed"), Some(65534));
    assert_eq!(upload_as(&srv, USER, "user"), Some(USER));
    // Defaults for the clients after a dash, then no_root_squash: root stays root.
    reload(format!("{export} -rw,insecure 127.0.0.1(no_root_squash)\n"));
    assert_eq!(upload_as(&srv, 0, "root"), Some(0));
    // all_squash with anonuid/anongid: everyone writes as 4321.
    reload(format!(
        "{export} 127.0.0.1(rw,insecure,all_squash,anonuid=4321,anongid=4321)\n"
    ));
    assert_eq!(upload_as(&srv, USER, "all"), Some(4321));
    // A client the file does not name is refused.
    reload(format!("{export} 10.9.9.9(rw,insecure)\n"));
    nfs_cat(&srv.url("/f.txt", USER, USER), TOOL_TIMEOUT).assert_failure();

    // A bad line at reload keeps the table and names the line.
    write_exports(&srv, &format!("# one\n{export} 127.0.0.1(rw,bogus)\n"));
    let out = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_rnfsd"))
            .args(["ctl", "exports", "reload", "--json", "--state-dir"])
            .arg(srv.state_dir()),
        RUN_TIMEOUT,
    );
    out.assert_failure();
    let reply = out.stdout_str();
    assert!(
        reply.contains("line 2") && reply.contains("bogus"),
        "{reply}"
    );
}

#[test]
fn serve_dir_with_client_and_options() {
    require_root("rnfsd uses open_by_handle_at; uploads change owners");
    let mut srv = server_with_files().args(["--client", "127.0.0.1", "-o", "ro"]);
    srv.start();
    nfs_cat(&srv.url("/f.txt", USER, USER), TOOL_TIMEOUT).assert_success();
    assert_eq!(upload_as(&srv, USER, "ro"), None, "-o ro refuses writes");
    srv.stop();

    let mut srv = server_with_files().args(["-o", "rw,no_root_squash"]);
    srv.start();
    assert_eq!(upload_as(&srv, 0, "root"), Some(0), "no_root_squash");
    srv.stop();

    let mut srv = server_with_files().args(["--client", "10.9.9.9", "-o", "rw"]);
    srv.start();
    nfs_cat(&srv.url("/f.txt", USER, USER), TOOL_TIMEOUT).assert_failure();
}

#[test]
fn bad_options_and_lines_stop_the_start_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = rnfsd(&["serve", d, "-o", "rw,frobnicate", "--portmap", "off"]);
    out.assert_failure();
    assert!(out.stderr.contains("frobnicate"), "{}", out.describe());

    let file = dir.path().join("exports");
    std::fs::write(&file, format!("{d} *(rw)\n\n{d}/x *(ro,async)\n")).unwrap();
    let out = rnfsd(&[
        "serve",
        "--exports",
        file.to_str().unwrap(),
        "--portmap",
        "off",
    ]);
    out.assert_failure();
    assert!(
        out.stderr.contains("line 3") && out.stderr.contains("async"),
        "{}",
        out.describe()
    );
}

#[test]
fn check_prints_the_table_or_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exports");
    std::fs::write(
        &file,
        "/srv/a 10.0.0.0/255.0.0.0(rw,no_root_squash) *(ro)\n\"/srv/b c\" ::1(rw,all_squash,anonuid=7,fsid=3)\n",
    )
    .unwrap();
    let check = |f: &Path| rnfsd(&["exports", "--check", f.to_str().unwrap()]);
    let out = check(&file);
    out.assert_success();
    let table = out.stdout_str();
    for want in [
        "/srv/a (id derived)",
        "10.0.0.0/8",
        "rw no_root_squash",
        "ro root_squash",
        "/srv/b c (id 3)",
        "all_squash anonuid=7",
    ] {
        assert!(table.contains(want), "{want:?} in\n{table}");
    }
    std::fs::write(&file, "/srv/a *(rw)\n/srv/b @group(rw)\n").unwrap();
    let out = check(&file);
    out.assert_failure();
    assert!(
        out.stderr.contains("line 2") && out.stderr.contains("netgroups"),
        "{}",
        out.describe()
    );
    // A file that exports nothing is refused by `serve --exports`, so the check refuses it too.
    std::fs::write(&file, "# all commented out\n# /srv/a *(rw)\n").unwrap();
    let out = check(&file);
    out.assert_failure();
    assert!(out.stderr.contains("no exports"), "{}", out.describe());
}
